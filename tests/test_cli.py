"""The real entry points: every model and every experiment through the Hydra CLI, eval, errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from aelab import CONF_DIR
from aelab.eval import main as eval_main
from aelab.rundir import RunDir
from aelab.train import main as train_main
from helpers import (
    cli_args,
    console_script,
    model_kinds,
    read_metrics,
    recbole_installed,
    run_inprocess,
    run_subprocess,
)

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
LEARN = ["data.batch_size=10", "trainer.max_epochs=6"]  # 300 steps: an MLP AE beats the mean image 10-fold
EXPERIMENTS = [  # the photo codecs decode photographs and code whole ones, the text recipes score every test sentence:
    # with the slow tests (make test-all)
    pytest.param(n, marks=pytest.mark.slow) if "photos" in n or n.startswith("text_") else n
    for n in sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
]


@pytest.mark.parametrize("model", MODELS)
def test_fast_dev_run_every_model(tmp_path, monkeypatch, fake_data_dir, model):
    from conftest import MNIST_SMALL, SMALL

    if "image" in model_kinds(model):
        run_inprocess(
            train_main, cli_args(tmp_path, f"model={model}", "debug=fdr"), monkeypatch, fake_data_dir
        )
        metrics = read_metrics(tmp_path)
        assert "test/mse" in metrics and math.isfinite(metrics["test/mse"])
        return
    small = [o for o in SMALL if o not in MNIST_SMALL]
    kinds = model_kinds(model)
    if "series" in kinds:  # windows of the bundled Yahoo series
        argv = [*small, f"hydra.run.dir={tmp_path}", "data=yahoo", f"model={model}", "debug=fdr"]
        run_inprocess(train_main, argv, monkeypatch, fake_data_dir)
        metrics = read_metrics(tmp_path)
        assert math.isfinite(metrics["test/anomaly/vus_pr"]) and "test/anomaly/stomp_vus_pr" in metrics
        return
    if "tokens" in kinds:  # a small text file
        docs = tmp_path / "docs.txt"
        docs.write_text(
            "\n".join(f"the film {w} was {v}" for w in ("plot", "cast", "score") for v in range(20))
        )
        argv = [*small, f"hydra.run.dir={tmp_path / 'run'}", "data=text", f"data.path={docs}", "data.min_frequency=1",
                f"model={model}", "debug=fdr"]  # fmt: skip
        run_inprocess(train_main, argv, monkeypatch, fake_data_dir)
        metrics = read_metrics(tmp_path / "run")
        assert math.isfinite(metrics["test/text/nll_per_token"])
        return
    if not recbole_installed():  # users' item vectors: the bundled MovieLens 100K (make install installs it)
        pytest.skip("recbole's ml-100k file is not installed (make install installs it)")
    argv = [*small, f"hydra.run.dir={tmp_path}", "data=movielens_100k", f"model={model}", "debug=fdr"]
    run_inprocess(train_main, argv, monkeypatch, fake_data_dir)
    metrics = read_metrics(tmp_path)
    assert math.isfinite(metrics["test/recommend/ndcg@100"]) and "test/recommend/ease_ndcg@100" in metrics


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_fast_dev_run_every_experiment(tmp_path, monkeypatch, fake_data_dir, experiment):
    from conftest import MNIST_SMALL, SMALL

    own_data = "override /data" in (CONF_DIR / "experiment" / f"{experiment}.yaml").read_text()
    small = (
        [o for o in SMALL if o not in MNIST_SMALL] if own_data else SMALL
    )  # its own data: not MNIST's sizes
    argv = [*small, f"hydra.run.dir={tmp_path}", f"experiment={experiment}", "debug=fdr"]
    run_inprocess(train_main, argv, monkeypatch, fake_data_dir)
    assert "test/loss" in read_metrics(tmp_path)


def test_model_specific_metrics(tmp_path, monkeypatch, fake_data_dir):
    run_inprocess(
        train_main, cli_args(tmp_path / "dae", "model=dae", "debug=fdr"), monkeypatch, fake_data_dir
    )
    dae = read_metrics(tmp_path / "dae")
    assert {"test/noisy_psnr", "test/mse", "test/psnr"} <= dae.keys() and "test/denoise_psnr" not in dae
    # σ = 0.5 Gaussian noise: the noisy input's PSNR is about 10·log10(1/0.25) ≈ 6 dB
    assert 5.0 < dae["test/noisy_psnr"] < 7.0
    # the DAE's own PSNR is of its output on the corrupted input (one forward pass): not of the noisy input
    assert dae["test/psnr"] != dae["test/noisy_psnr"]
    run_inprocess(
        train_main, cli_args(tmp_path / "vae", "model=vae", "debug=fdr"), monkeypatch, fake_data_dir
    )
    vae = read_metrics(tmp_path / "vae")
    assert {"test/elbo", "test/recon", "test/kl", "test/mse", "test/psnr"} <= vae.keys()
    assert vae["test/elbo"] == pytest.approx(vae["test/recon"] + vae["test/kl"], rel=1e-4)


@pytest.mark.parametrize("model", [["model=ae"], ["model=vae", "model.binarize=true"]])
def test_run_directory_layout_and_eval_reproduces(tmp_path, monkeypatch, fake_data_dir, model):
    """Validation/test randomness (binarization, posterior samples) is seeded, so eval repeats training."""
    run_dir = tmp_path / "train"
    run_inprocess(train_main, cli_args(run_dir, *model), monkeypatch, fake_data_dir)
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    ckpts = {p.name for p in (run_dir / "checkpoints").iterdir()}
    assert "last.ckpt" in ckpts and any(n.startswith("epoch_") for n in ckpts)
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    trained = read_metrics(run_dir)
    assert {"test/loss", "test/mse", "test/psnr"} <= trained.keys()
    best = run_dir / trained.pop("best_ckpt")  # recorded from Lightning's best_model_path
    assert best.parent.name == "checkpoints" and best.name.startswith("epoch_") and best.is_file()
    assert RunDir(run_dir).best_ckpt == best
    eval_dir = tmp_path / "eval"
    argv = [
        f"ckpt_path={best}",
        f"hydra.run.dir={eval_dir}",
        "trainer.accelerator=cpu",
        "suite.enabled=false",
    ]
    run_inprocess(eval_main, argv, monkeypatch, fake_data_dir)
    assert read_metrics(eval_dir) == pytest.approx(trained, rel=1e-6)


def test_eval_without_checkpoint_names_the_fix(tmp_path, monkeypatch, fake_data_dir):
    from aelab.checkpoint import load_run_config

    with pytest.raises(FileNotFoundError, match="ckpt_path="):
        load_run_config(tmp_path / "nope.ckpt")


@pytest.mark.slow
def test_python_dash_m_and_console_script(tmp_path, fake_data_dir):
    import sys

    run_subprocess(
        [sys.executable, "-m", "aelab.train", *cli_args(tmp_path / "m", "debug=fdr")], fake_data_dir
    )
    assert (tmp_path / "m" / "metrics.json").is_file()
    proc = run_subprocess(
        [console_script("aelab-train"), *cli_args(tmp_path / "s", "debug=fdr", "model=conv_ae")],
        fake_data_dir,
    )
    assert "test/mse" in proc.stdout + proc.stderr


def test_missing_data_fails_with_the_clear_message(tmp_path):
    import subprocess
    import sys

    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "aelab.train", *cli_args(tmp_path / "run", "debug=fdr")],
        env={**__import__("os").environ, "DATA_DIR": str(empty)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "train-images-idx3-ubyte" in out and str(empty) in out and "make data" in out


def test_bad_override_is_reported(tmp_path, fake_data_dir):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "aelab.train", "model=nonexistent"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0 and "nonexistent" in proc.stderr


@pytest.mark.parametrize("case", ["value", "data", "target"])
def test_a_refusal_is_one_line(tmp_path, fake_data_dir, case):
    """A wrong override, a truncated data file and an untrusted target each print their message alone (no
    traceback) and exit non-zero; HYDRA_FULL_ERROR=1 gives the traceback back."""
    import os
    import subprocess
    import sys

    from conftest import make_fake_mnist

    data = fake_data_dir
    overrides = {"value": ["data.batch_size=abc"], "data": [], "target": ["model._target_=os.system"]}[case]
    if case == "data":
        data = make_fake_mnist(tmp_path / "broken")
        f = data / "MNIST" / "raw" / "train-images-idx3-ubyte"
        f.write_bytes(f.read_bytes()[:5000])
    cmd = [sys.executable, "-m", "aelab.train", *cli_args(tmp_path / "run", "debug=fdr", *overrides)]
    env = {**os.environ, "DATA_DIR": str(data)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    expected = {"value": "data.batch_size='abc' must be a positive integer", "data": "is truncated",
                "target": "refused model._target_='os.system'"}[case]  # fmt: skip
    assert proc.returncode != 0 and expected in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Error executing job" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if expected in line]) == 1
    if case == "value":
        full = subprocess.run(
            cmd, capture_output=True, text=True, timeout=120, env={**env, "HYDRA_FULL_ERROR": "1"}
        )
        assert "Traceback" in full.stderr


def test_a_crash_keeps_checkpoints_and_logs(tmp_path, monkeypatch, fake_data_dir):
    argv = cli_args(
        tmp_path,
        "trainer.max_epochs=3",
        "+callbacks.crash._target_=helpers.CrashAtEpoch",
        "+callbacks.crash.epoch=2",
    )
    with pytest.raises(SystemExit):  # Hydra reports the exception and exits non-zero
        run_inprocess(train_main, argv, monkeypatch, fake_data_dir)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(tmp_path / "tensorboard"))
    ea.Reload()
    assert len(ea.Scalars("val/loss")) == 2  # the two finished epochs


@pytest.mark.slow
@pytest.mark.parametrize("resident", ["true", "false"])
def test_both_data_paths_train(tmp_path, monkeypatch, fake_data_dir, resident):
    """Either data path learns: the test MSE falls below half the test images' MSE to the training mean image
    (computed here; a constant 0.5 output scores 0.18, the mean image 0.03 on the synthetic digits)."""
    from helpers import mean_image_mse

    argv = cli_args(tmp_path, f"data.resident={resident}", "data.num_workers=0", *LEARN)
    run_inprocess(train_main, argv, monkeypatch, fake_data_dir)
    assert read_metrics(tmp_path)["test/mse"] < 0.5 * mean_image_mse(fake_data_dir)


def test_the_recorded_best_checkpoint_is_lightnings_with_several_kept(tmp_path, monkeypatch, fake_data_dir):
    """With save_top_k=3 over 3 epochs there are three epoch_*.ckpt files: metrics.json's best_ckpt is the one
    Lightning's ModelCheckpoint chose (its best_model_path, read back from last.ckpt), and RunDir reads it."""
    run_dir = tmp_path / "train"
    argv = cli_args(run_dir, "trainer.max_epochs=3", "callbacks.model_checkpoint.save_top_k=3")
    run_inprocess(train_main, argv, monkeypatch, fake_data_dir)
    run = RunDir(run_dir)
    assert len(list(run.checkpoints.glob("epoch_*.ckpt"))) == 3
    state = torch.load(run.last_ckpt, map_location="cpu", weights_only=False)["callbacks"]
    chosen = next(v["best_model_path"] for k, v in state.items() if k.startswith("ModelCheckpoint"))
    assert run.best_ckpt == Path(chosen) and run.metrics()["best_ckpt"] == f"checkpoints/{Path(chosen).name}"
    assert run.finished and run.status is None


def test_the_best_checkpoint_is_the_recorded_one_else_last(tmp_path):
    """metrics.json's best_ckpt when it is there; without it (a run stopped before testing), last.ckpt."""
    run = RunDir(tmp_path)
    run.checkpoints.mkdir()
    for name in ("epoch_003.ckpt", "last.ckpt"):
        (run.checkpoints / name).write_bytes(b"x")
    (tmp_path / "metrics.json").write_text('{"test/mse": 0.01}')
    assert run.best_ckpt == run.last_ckpt
    run.record(best_ckpt="checkpoints/epoch_003.ckpt")
    assert run.best_ckpt == run.checkpoints / "epoch_003.ckpt" and run.metrics()["test/mse"] == 0.01
