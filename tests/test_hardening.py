"""Hostile and broken input: foreign checkpoints, diverging runs, foreign codes, failing disks, bad configs.

Each case must end in a clear refusal that names the file or key and the fix, early, with nothing written.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aelab.checkpoint import CONFIG_KEY, UntrustedFileError, load_model, read_checkpoint
from aelab.compress import compress, decompress
from aelab.eval import main as eval_main
from aelab.train import main as train_main
from aelab.train import train
from aelab.utils.validate import ConfigError
from conftest import REPO, SMALL, compose_cfg, make_fake_mnist, write_idx
from helpers import cli_args, read_metrics, run_inprocess

NO_DASHBOARDS = [o for o in SMALL if not o.startswith("callbacks.")] + ["callbacks=minimal"]


def _train_tiny(root: Path, data_dir: Path, *overrides: str) -> Path:
    cfg = compose_cfg("train", [*NO_DASHBOARDS, "trainer.max_epochs=1", *overrides], root, data_dir)
    train(cfg)
    return root / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory, fake_data_dir):
    """Two MLP AE checkpoints with the same latent size (different seeds) and a conv AE checkpoint."""
    root = tmp_path_factory.mktemp("ckpts")
    return {
        "ae": _train_tiny(root / "ae", fake_data_dir, "seed=1"),
        "ae2": _train_tiny(root / "ae2", fake_data_dir, "seed=2"),
        "conv_ae": _train_tiny(root / "conv", fake_data_dir, "model=conv_ae"),
    }


def _tampered(src: Path, dst: Path, edit) -> Path:
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    edit(ckpt[CONFIG_KEY])
    torch.save(ckpt, dst)
    return dst


# ---------------------------------------------------------------- 1. a checkpoint's stored config
@pytest.fixture
def evil_ckpt(ckpts, tmp_path):
    victim = tmp_path / "victim.pth"

    def edit(cfg):
        cfg["model"] = {"_target_": "numpy.savetxt", "fname": str(victim), "X": [1.0, 2.0]}

    return _tampered(ckpts["ae"], tmp_path / "evil.ckpt", edit), victim


def test_foreign_target_refused_by_the_loader(evil_ckpt):
    path, victim = evil_ckpt
    with pytest.raises(UntrustedFileError, match=r"refused config\.model\._target_='numpy\.savetxt'"):
        load_model(path)
    assert not victim.exists()


def test_foreign_target_refused_by_every_cli(evil_ckpt, tmp_path, monkeypatch, fake_data_dir, capsys):
    path, victim = evil_ckpt
    codes = tmp_path / "codes.npz"
    assert compress([str(path), "--out", str(codes), "--data-dir", str(fake_data_dir)]) == 2
    assert decompress([str(path), str(codes), "--out-dir", str(tmp_path / "png")]) == 2
    err = capsys.readouterr().err
    assert err.count("numpy.savetxt") == 2 and "refused" in err
    with pytest.raises(SystemExit):
        run_inprocess(
            eval_main, [f"ckpt_path={path}", f"hydra.run.dir={tmp_path / 'eval'}"], monkeypatch, fake_data_dir
        )
    with pytest.raises(SystemExit):
        run_inprocess(train_main, cli_args(tmp_path / "t", f"ckpt_path={path}"), monkeypatch, fake_data_dir)
    assert not victim.exists() and not codes.exists() and not (tmp_path / "png").exists()
    assert not (tmp_path / "t" / "checkpoints").exists()
    assert "numpy.savetxt" in (tmp_path / "t" / "FAILED").read_text()


@pytest.mark.parametrize(
    "where, target",
    [
        (("model", "encoder"), "os.system"),  # nested
        (("model",), "aelab.reporting.write_metrics"),  # aelab, but a function
        (("data",), "aelab.models.Autoencoder"),  # an allowed class in the wrong place is still a model
        (("callbacks", "x"), "builtins.exec"),  # a section aelab never builds is checked too
    ],
)
def test_allowlist_covers_the_whole_tree(ckpts, tmp_path, where, target):
    def edit(cfg):
        node = cfg
        for key in where[:-1]:
            node = node.setdefault(key, {})
        node[where[-1]] = {"_target_": target}

    path = _tampered(ckpts["ae"], tmp_path / "x.ckpt", edit)
    if target == "aelab.models.Autoencoder":  # allowed class: refused later because data must be a datamodule
        with pytest.raises(UntrustedFileError, match="LightningDataModule"):
            read_checkpoint(path)
        return
    with pytest.raises(UntrustedFileError, match=target.replace(".", r"\.")) as err:
        read_checkpoint(path)
    # a function is named as such, with no hint to trust its module (aelab never calls one from a file)
    assert "names a function" in str(err.value) and "AELAB_TRUST" not in str(err.value)


def test_interpolation_in_a_stored_config_is_refused(ckpts, tmp_path):
    path = _tampered(
        ckpts["ae"], tmp_path / "i.ckpt", lambda c: c["model"].update(latent_dim="${oc.env:HOME}")
    )
    with pytest.raises(UntrustedFileError, match="interpolation"):
        read_checkpoint(path)


def test_pickle_payload_and_random_bytes(tmp_path):
    victim = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {victim}",))

    evil = tmp_path / "payload.ckpt"
    torch.save({"x": Payload()}, evil)
    with pytest.raises(UntrustedFileError, match=r"refused to load.*(posix|os)\.system"):
        read_checkpoint(evil)
    torch.save({"x": Payload()}, evil, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(UntrustedFileError, match=r"not an aelab checkpoint.*refused.*Unsupported operand"):
        read_checkpoint(evil)
    assert not victim.exists()

    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(UntrustedFileError, match="not an aelab checkpoint") as err:
        read_checkpoint(junk)
    assert "weights_only=False" not in str(err.value) and "likely succeed" not in str(err.value)


def test_checkpoint_of_another_model_names_it(ckpts, tmp_path, make_cfg):
    cfg = make_cfg([f"ckpt_path={ckpts['conv_ae']}"])
    with pytest.raises(ValueError, match=r"model=conv_ae.*resume=") as err:
        train(cfg)
    assert "Missing key" not in str(err.value)
    assert not (tmp_path / "run" / "checkpoints").exists()


# ---------------------------------------------------------------- 2. divergence
@pytest.mark.parametrize("callbacks", ["minimal", "default"])
def test_diverging_run_stops_with_the_clear_message(tmp_path, monkeypatch, fake_data_dir, capsys, callbacks):
    # 500 training images / 25 = 20 batches an epoch: shorter than nan_check_every (50)
    base = SMALL if callbacks == "default" else NO_DASHBOARDS
    argv = [*base, f"hydra.run.dir={tmp_path}", "optimizer.lr=1e6", "data.batch_size=25"]
    with pytest.raises(SystemExit) as exit_info:
        run_inprocess(train_main, argv, monkeypatch, fake_data_dir)
    assert exit_info.value.code != 0
    out = capsys.readouterr()
    assert "training diverged" in out.err + out.out
    assert "histogram is empty" not in out.err + out.out
    assert not (tmp_path / "metrics.json").exists()
    assert "training diverged" in (tmp_path / "FAILED").read_text()
    for ckpt in (tmp_path / "checkpoints").glob("*.ckpt") if (tmp_path / "checkpoints").exists() else []:
        state = read_checkpoint(ckpt)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), ckpt


def test_metrics_json_never_holds_non_finite_values(tmp_path):
    from aelab.reporting import write_metrics

    write_metrics(tmp_path, {"test/mse": 0.01, "test/psnr": float("nan"), "test/kl": float("inf")})
    assert read_metrics(tmp_path) == {"test/mse": 0.01}


# ---------------------------------------------------------------- 3. foreign codes
def test_codes_of_another_checkpoint_are_refused(ckpts, tmp_path, fake_data_dir, capsys):
    codes = tmp_path / "codes.npz"
    assert compress([str(ckpts["ae"]), "--out", str(codes), "--data-dir", str(fake_data_dir)]) == 0
    out = tmp_path / "png"
    assert decompress([str(ckpts["ae2"]), str(codes), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(codes) in err and str(ckpts["ae2"]) in err and "fingerprint" in err
    assert not out.exists()
    assert decompress([str(ckpts["ae"]), str(codes), "--out-dir", str(out), "--limit", "3"]) == 0
    assert len(list(out.glob("*.png"))) == 3


@pytest.mark.parametrize("damage", ["garbage", "truncated", "pickled"])
def test_broken_codes_files(ckpts, tmp_path, fake_data_dir, capsys, damage):
    codes = tmp_path / "codes.npz"
    assert compress([str(ckpts["ae"]), "--out", str(codes), "--data-dir", str(fake_data_dir)]) == 0
    data = codes.read_bytes()
    if damage == "garbage":
        codes.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif damage == "truncated":
        codes.write_bytes(data[: len(data) // 2])
    else:
        np.savez(codes, codes=np.array([{"a": 1}], dtype=object))
    assert decompress([str(ckpts["ae"]), str(codes), "--out-dir", str(tmp_path / "png")]) == 2
    err = capsys.readouterr().err
    assert f"not an aelab codes file: {codes}" in err and "allow_pickle" not in err


def test_compress_refuses_images_of_another_size(ckpts, tmp_path, capsys):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 300), ("t10k", 50)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", np.zeros((n, 32, 32), np.uint8))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.zeros(n, np.uint8))
    assert compress([str(ckpts["ae"]), "--out", str(tmp_path / "c.npz"), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "(32, 32)" in err and "(28, 28)" in err and "images-idx3-ubyte" in err


# ---------------------------------------------------------------- 4. a failing checkpoint write
def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch, fake_data_dir):
    import aelab.checkpoint as cio

    real_save, calls = torch.save, []

    def save_then_fail(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) <= 2:  # epoch 0: the best checkpoint and last.ckpt
            return real_save(obj, f, *args, **kwargs)
        f.write(b"\0" * 1000)  # a partial write, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cio.torch, "save", save_then_fail)
    with pytest.raises(SystemExit):
        run_inprocess(train_main, cli_args(tmp_path, "trainer.max_epochs=3"), monkeypatch, fake_data_dir)
    monkeypatch.setattr(cio.torch, "save", real_save)
    ckpt = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert ckpt["epoch"] == 0
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    assert "No space left" in (tmp_path / "FAILED").read_text()


def test_atomic_save_unit(tmp_path, monkeypatch):
    from aelab import checkpoint as cio

    target = tmp_path / "last.ckpt"
    cio.atomic_torch_save({"v": 1}, target)

    def boom(obj, f, *a, **k):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(cio.torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        cio.atomic_torch_save({"v": 2}, target)
    assert torch.load(target, weights_only=True) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


# ---------------------------------------------------------------- weak spots: early, clear lines
@pytest.mark.parametrize(
    "override, key",
    [
        ("data.batch_size=0", "data.batch_size=0"),
        ("data.batch_size=-5", "data.batch_size=-5"),
        ("model.latent_dim=0", "model.latent_dim=0"),
        ("optimizer.lr=0", "optimizer.lr=0"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0"),
    ],
)
def test_bad_values_fail_before_anything_is_built(make_cfg, tmp_path, override, key):
    cfg = make_cfg([override])
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        train(cfg)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


@pytest.mark.parametrize(
    "model, override, message",
    [
        # the class that takes the value refuses it (pipeline.build names its config group), or a rule of
        # utils.validate does where no constructor checks it (a VAE's KL weight)
        ("dae", "model.corruption.sigma=-0.1", "model: sigma must be >= 0, got -0.1"),
        ("dae", "model.corruption.sigma=abc", "model: sigma must be >= 0, got abc"),
        ("dae", "model.corruption._target_=aelab.models.components.Masking", None),
        ("vae", "model.kl_coeff=-1", "model.kl_coeff=-1 must be β >= 0"),
        ("vae", "model.sigma=0", "model: model.sigma=0 must be > 0"),
    ],
)
def test_model_specific_values(make_cfg, model, override, message):
    overrides = [f"model={model}", override]
    if message is None:  # masking with p=1.5
        overrides = [f"model={model}", "~model.corruption.sigma", override, "+model.corruption.p=1.5"]
        message = "model: masking probability p must be in [0, 1], got 1.5"
    with pytest.raises(ConfigError) as err:
        train(make_cfg(overrides))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_broken_gz_file_is_named(tmp_path):
    from aelab.data import MNISTDataModule

    make_fake_mnist(tmp_path, compress=True)
    gz = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    with pytest.raises(RuntimeError, match="not a valid gzip file") as err:
        MNISTDataModule(str(tmp_path), download=False, val_size=100).setup()
    assert str(gz) in str(err.value)
    assert not (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()  # no half-unpacked file left


@pytest.mark.parametrize("damage", ["magic", "random", "truncated", "count"])
def test_broken_idx_files_are_named(tmp_path, damage):
    from aelab.data import MNISTDataModule

    make_fake_mnist(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    f = raw / "train-images-idx3-ubyte"
    data = bytearray(f.read_bytes())
    if damage == "magic":
        data[2] = 0x0D
    elif damage == "random":
        data = bytearray(np.random.default_rng(0).bytes(len(data)))
    elif damage == "truncated":
        data = data[:-100]
    else:
        shutil.copy(raw / "t10k-labels-idx1-ubyte", raw / "train-labels-idx1-ubyte")
    f.write_bytes(bytes(data))
    dm = MNISTDataModule(str(tmp_path), download=False, val_size=100)
    expected = {
        "magic": "magic number",
        "random": "magic number",
        "truncated": "truncated",
        "count": "labels",
    }
    with pytest.raises(RuntimeError, match=expected[damage]) as err:
        dm.setup()
    assert "train-" in str(err.value)


@pytest.mark.slow
def test_signal_interrupt_prints_the_resume_command(tmp_path, fake_data_dir):
    run_dir = tmp_path / "run"
    args = cli_args(run_dir, "trainer.max_epochs=5", "+callbacks.sig._target_=helpers.SignalAtEpoch")
    env = {
        **os.environ,
        "DATA_DIR": str(fake_data_dir),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPO / "tests"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "aelab.train", *args, "+callbacks.sig.signum=2"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        # a process started with SIGINT ignored keeps ignoring it (pytest-xdist's workers ignore it): the
        # training gets the default disposition, as from a terminal
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.returncode == 130  # Ctrl-C's conventional exit status
    out = proc.stdout + proc.stderr
    assert f"aelab-train resume={run_dir}" in out
    assert "stopped by SIGINT" in (run_dir / "INTERRUPTED").read_text()
    assert not (run_dir / "metrics.json").exists()


@pytest.mark.parametrize("model", ["ae", "conv_vae", "dae"])
def test_aelab_own_run_configs_pass_the_resume_allowlist(make_cfg, model):
    """What Hydra saves as .hydra/config.yaml (unresolved) must pass resume='s checks: every resolver and
    target aelab's own configs use is allowed."""
    from omegaconf import OmegaConf

    from aelab.trust import RUN_RESOLVERS, RUN_TARGETS, check_config_tree

    cfg = make_cfg([f"model={model}"], small=False)
    tree = OmegaConf.to_container(cfg, resolve=False)
    tree.pop("hydra")
    check_config_tree(tree, "composed", RUN_TARGETS, resolvers=RUN_RESOLVERS)


def test_remote_checkpoint_paths_still_work(caplog):
    """fsspec file systems (here memory://, as s3:// or gs://) are written in one piece and said once to have no
    atomic rename; a local path is atomic."""
    import fsspec

    from aelab.checkpoint import AtomicCheckpointIO

    AtomicCheckpointIO._said_remote = False
    io = AtomicCheckpointIO()
    with caplog.at_level("WARNING", logger="aelab"):
        io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, "memory://runs/r/last.ckpt")
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, "memory://runs/r/last.ckpt")
    assert sum("not atomically" in r.message for r in caplog.records) == 1
    with fsspec.open("memory://runs/r/last.ckpt", "rb") as f:
        assert torch.equal(torch.load(f, weights_only=True)["state_dict"]["w"], torch.zeros(3))
    assert torch.equal(io.load_checkpoint("memory://runs/r/last.ckpt")["state_dict"]["w"], torch.zeros(3))
