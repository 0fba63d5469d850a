"""Extending aelab without editing it: a package outside aelab (examples/aelab_example) trains, evaluates,
resumes and compresses when the reader trusts it, and is refused otherwise; nothing a file stores widens trust."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from aelab.errors import ConfigError, UntrustedFileError
from aelab.trust import trusted_prefixes
from conftest import REPO, SMALL, compose_cfg
from helpers import read_metrics

EXAMPLE = REPO / "examples" / "aelab_example"


@pytest.fixture(scope="module")
def example_site(tmp_path_factory) -> Path:
    """examples/aelab_example pip-installed (as a user would, no network) into a folder of its own; built from a
    copy, so that setuptools' build/ and egg-info never land in the checkout."""
    site = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("example") / EXAMPLE.name
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return site


@pytest.fixture
def on_path(example_site, monkeypatch):
    monkeypatch.syspath_prepend(str(example_site))
    return example_site


def _env(site: Path, data_dir: Path, trust: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AELAB_TRUST"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    env["DATA_DIR"] = str(data_dir)
    if trust is not None:
        env["AELAB_TRUST"] = trust
    return env


TRAIN = [sys.executable, "-m", "aelab.train", "model=my_ae", "callbacks=with_code_norm", *SMALL,
         "trainer.max_epochs=1", "callbacks.code_norm.num_images=32"]  # fmt: skip


@pytest.fixture(scope="module")
def example_run(example_site, tmp_path_factory, fake_data_dir) -> Path:
    """A run of the example's model and callback, found through its search-path plugin, with AELAB_TRUST set."""
    run_dir = tmp_path_factory.mktemp("example") / "run"
    proc = subprocess.run([*TRAIN, f"hydra.run.dir={run_dir}"], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=_env(example_site, fake_data_dir, "aelab_example"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def test_the_example_trains_with_trust_and_logs_its_own_terms(example_run):
    metrics = read_metrics(example_run)
    assert "test/tv" in metrics and "test/mse" in metrics  # the model's extra loss term
    ckpt = torch.load(example_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["aelab_config"]["model"]["_target_"] == "aelab_example.SmoothAE"
    assert (
        ckpt["aelab_config"]["model"]["tv_coeff"] == 0.01 and "net.encoder.net.0.weight" in ckpt["state_dict"]
    )
    assert ckpt["aelab_config"]["callbacks"]["code_norm"]["_target_"] == "aelab_example.CodeNormMonitor"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(example_run / "tensorboard"))
    ea.Reload()
    assert "val/code_norm" in ea.Tags()["scalars"]  # the callback ran


@pytest.mark.slow
def test_the_example_is_refused_without_trust(example_site, tmp_path, fake_data_dir):
    run_dir = tmp_path / "run"
    proc = subprocess.run([*TRAIN, f"hydra.run.dir={run_dir}"], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=_env(example_site, fake_data_dir, None))  # fmt: skip
    assert proc.returncode != 0
    assert (
        "refused model._target_='aelab_example.SmoothAE'" in proc.stderr
        and "AELAB_TRUST=aelab_example" in proc.stderr
    )
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "metrics.json").exists()


@pytest.mark.slow
def test_eval_resume_and_compress_the_example(example_run, on_path, tmp_path, monkeypatch, fake_data_dir):
    from aelab.compress import compress, decompress
    from aelab.eval import evaluate
    from aelab.train import resume

    monkeypatch.setenv("AELAB_TRUST", "aelab_example")
    ckpt = example_run / "checkpoints" / "last.ckpt"
    cfg = compose_cfg(
        "eval", [f"ckpt_path={ckpt}", "trainer=cpu", "suite.enabled=false"], tmp_path / "eval", fake_data_dir
    )
    metrics, _ = evaluate(cfg)
    assert metrics["test/tv"] == pytest.approx(read_metrics(example_run)["test/tv"], rel=1e-5)
    assert compress([str(ckpt), "--out", str(tmp_path / "c.npz")]) == 0
    assert (
        decompress([str(ckpt), str(tmp_path / "c.npz"), "--out-dir", str(tmp_path / "png"), "--limit", "2"])
        == 0
    )
    resume(str(example_run), ["trainer.max_epochs=2"])
    assert (
        torch.load(ckpt, weights_only=True)["epoch"] == 2
    )  # last.ckpt is written when the fit ends: epoch = the epochs trained


def test_files_cannot_widen_trust(example_run, on_path, tmp_path, monkeypatch, capsys):
    """A checkpoint or a run folder that names the package as trusted is still refused: trust is the reader's."""
    from aelab.checkpoint import read_checkpoint
    from aelab.compress import compress
    from aelab.resume import resume_config

    monkeypatch.delenv("AELAB_TRUST", raising=False)
    ckpt = torch.load(example_run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["aelab_config"]["trust"] = ["aelab_example"]
    ckpt["aelab_config"]["trainer"]["plugins"][0]["trust"] = ["aelab_example"]
    torch.save(ckpt, tmp_path / "self-trusting.ckpt")
    with pytest.raises(UntrustedFileError, match=r"aelab_example\.SmoothAE.*AELAB_TRUST=aelab_example"):
        read_checkpoint(tmp_path / "self-trusting.ckpt")
    assert compress([str(tmp_path / "self-trusting.ckpt"), "--out", str(tmp_path / "c.npz")]) == 2
    assert "AELAB_TRUST" in capsys.readouterr().err and not (tmp_path / "c.npz").exists()
    stored = example_run / ".hydra" / "config.yaml"
    cfg = OmegaConf.load(stored)
    cfg.trust = ["aelab_example"]
    OmegaConf.save(cfg, stored)
    with pytest.raises(UntrustedFileError, match="AELAB_TRUST"):
        resume_config(example_run, [])
    assert resume_config(example_run, ["trust=[aelab_example]"]).trust == [
        "aelab_example"
    ]  # the reader's own


@pytest.mark.parametrize("target", ["helpers.write_marker", "helpers.mean_image_mse"])
def test_a_trusted_function_is_refused_and_writes_nothing(make_cfg, tmp_path, target):
    from aelab.train import train

    marker = tmp_path / "marker"
    cfg = make_cfg([f"model._target_={target}", f"+model.path={marker}"])  # helpers is trusted in the tests
    with pytest.raises(
        UntrustedFileError, match=f"refused model._target_='{target}': the file names a function"
    ):
        train(cfg)
    assert not marker.exists() and not (tmp_path / "run" / "checkpoints").exists()


def test_a_trusted_class_of_the_wrong_kind_is_refused(make_cfg, on_path, monkeypatch):
    from aelab.train import train

    monkeypatch.setenv("AELAB_TRUST", "aelab_example,helpers")
    cfg = make_cfg(["+callbacks.x._target_=aelab_example.SmoothAE"])
    with pytest.raises(UntrustedFileError, match="callbacks.x must build a Callback"):
        train(cfg)
    cfg = make_cfg(["data._target_=helpers.CrashAtEpoch"])
    with pytest.raises(UntrustedFileError, match="data must build a LightningDataModule"):
        train(cfg)


def test_a_trusted_prefix_must_be_importable(monkeypatch):
    monkeypatch.setenv("AELAB_TRUST", "helpers,no_such_package")
    with pytest.raises(ConfigError, match="'no_such_package'.*not an importable module"):
        trusted_prefixes()
    monkeypatch.setenv("AELAB_TRUST", "helpers")
    assert trusted_prefixes(["helpers", " "]) == ("helpers.",)
    with pytest.raises(ConfigError, match="not a module name"):
        trusted_prefixes(["os; rm -rf"])
