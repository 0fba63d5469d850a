"""The scripts in scripts/: the seed aggregator on known numbers, the benchmark report writer."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import REPO


def test_aggregate_mean_and_std(tmp_path, capsys):
    from aelab.experiments import aggregate as agg

    for i, v in enumerate([1.0, 2.0, 3.0, 4.0, 5.0]):
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / "metrics.json").write_text(json.dumps({"test/mse": v, "test/psnr": 20.0}))
    assert agg.main([str(tmp_path), "--json", str(tmp_path / "s.json")]) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["test/mse"] == {"mean": 3.0, "std": pytest.approx(1.5811388, rel=1e-6), "n": 5}
    assert summary["test/psnr"]["std"] == 0.0
    assert "5 runs" in capsys.readouterr().out


def test_benchmark_report_keeps_other_devices(tmp_path):
    from aelab.experiments import benchmark as bench

    out = tmp_path / "B.md"
    args = type("A", (), {"batch_size": 256, "epochs": 3})()
    rows = [{"model": "ae", "variant": "plain", "s_per_epoch": 1.0, "x_plain": 1.0, "peak_mb": 10.0,
             "precision": "32-true", "channels_last": False, "epoch_times": [1.0, 1.0, 1.0]}]  # fmt: skip
    bench.write_report(out, "| t |", rows, "CPU (x86_64, 2 threads)", "cmd", args, 2)
    bench.write_report(out, "| g |", rows, "NVIDIA H100", "cmd", args, 8)
    bench.write_report(out, "| t2 |", rows, "CPU (x86_64, 2 threads)", "cmd", args, 2)
    text = out.read_text()
    assert text.count("bench:cpu:start") == 1 and "| t2 |" in text and "| t |" not in text
    assert "| g |" in text and text.startswith("# Benchmarks")


def test_one_class_sweep_on_two_digits(tmp_path, fake_data_dir, monkeypatch, capsys):
    monkeypatch.setenv("DATA_DIR", str(fake_data_dir))
    from aelab.experiments import one_class

    argv = ["one_class.py", "--digits", "0", "1", "--sweep-dir", str(tmp_path), "--device", "cpu",
            "data.val_size=100", "data.batch_size=50", "trainer.max_epochs=1", "callbacks.progress_bar=null",
            "trainer.enable_progress_bar=false", "callbacks.projector=null"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    assert one_class.main() == 0
    summary = json.loads((tmp_path / "one_class.json").read_text())
    assert set(summary["digits"]) == {"0", "1"}
    for row in summary["digits"].values():
        assert 0.0 <= row["auroc"] <= 1.0
    assert summary["mean"]["auroc"] == pytest.approx(sum(r["auroc"] for r in summary["digits"].values()) / 2)
    assert " mean " in capsys.readouterr().out


def test_results_continue_where_they_stopped(tmp_path, fake_data_dir):
    """make results --dir: a second invocation keeps finished parts and continues an interrupted training."""
    import os
    import subprocess

    root = tmp_path / "results"
    cmd = [
        sys.executable, "scripts/results.py", "--models", "ae", "--dir", str(root), "--out", str(tmp_path / "R.md"),
        "--figures-dir", str(tmp_path / "figures"),
        "--train-extra", "trainer.max_epochs=1", "data.val_size=100", "data.batch_size=50", "data.download=false",
        "callbacks=minimal", "trainer.enable_progress_bar=false",
        "--eval-extra", "suite.enabled=false", "trainer.enable_progress_bar=false",
    ]  # fmt: skip
    env = {**os.environ, "DATA_DIR": str(fake_data_dir)}
    first = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "[1/3] ae train: starting" in first.stdout and "[2/3] ae eval: finished" in first.stdout
    assert "[3/3] latent2d train: finished" in first.stdout  # experiment=seed_deep_3 with a 2-D code
    assert (tmp_path / "figures" / "validation_curves.png").is_file()
    assert (tmp_path / "figures" / "latent_map.png").is_file()
    assert "![validation_curves.png](figures/validation_curves.png)" in (tmp_path / "R.md").read_text()
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert "[1/3] ae train: done earlier" in again.stdout and "[2/3] ae eval: done earlier" in again.stdout
    assert "[3/3] latent2d train: done earlier" in again.stdout
    # an interrupted training: its folder has a checkpoint but no result yet
    (root / "ae" / "train" / "metrics.json").unlink()
    (root / "ae" / "train" / "INTERRUPTED").write_text("stopped by SIGTERM\n")
    resumed = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "ae train: continuing the interrupted run from epoch 0" in resumed.stdout
    assert (root / "ae" / "train" / "metrics.json").is_file() and not (
        root / "ae" / "train" / "INTERRUPTED"
    ).exists()
    assert "ae eval: done earlier" in resumed.stdout  # the best checkpoint did not change: its eval stands


def test_train_extra_overrides_by_part():
    from aelab.experiments.results import overrides_for

    extra = ["callbacks.progress_bar=null", "conv_ae:trainer.max_epochs=100", "seeds:trainer.max_epochs=30"]
    assert overrides_for("conv_ae", extra) == ["callbacks.progress_bar=null", "trainer.max_epochs=100"]
    assert overrides_for("seeds", extra) == ["callbacks.progress_bar=null", "trainer.max_epochs=30"]
    assert overrides_for("vae", extra) == ["callbacks.progress_bar=null"]


def test_headline_targets_come_from_yaml():
    from aelab.experiments.results import anchor_text, headline_value, load_headlines, meets

    headlines = load_headlines()
    assert set(headlines) == {"ae", "conv_ae", "dae", "vae", "conv_vae"}
    mse = next(e for e in headlines["ae"] if e["metric"] == "test/mse")
    assert mse["target"] == {"op": "<=", "value": 0.0038}
    assert meets(mse, 0.0037) is True and meets(mse, 0.0039) is False and meets(mse, None) is None
    ratio = next(e for e in headlines["ae"] if "over" in e)
    assert headline_value({"test/compression/pca_mse": 0.0168, "test/mse": 0.0042}, ratio) == pytest.approx(
        4.0
    )
    assert headline_value({"test/mse": 0.0042}, ratio) is None
    every = [e for entries in headlines.values() for e in entries]
    assert all({"label", "metric", "anchor"} <= e.keys() for e in every)
    assert all(e["target"]["op"] in ("<=", ">=") for e in every if "target" in e)
    # anchors measured in the same evaluation (PCA, the noisy input, the Fréchet floor) are filled from it
    probe = next(e for e in headlines["ae"] if e["metric"] == "test/features/linear_probe_acc")
    assert anchor_text(probe, {"test/features/pca_linear_probe_acc": 0.9003}) == "PCA-32 0.9003"
    assert anchor_text(probe, {}) == "n/a"
    for e in every:  # every {field} has its metric, and no PCA figure is written into the YAML
        assert e["anchor"].format(**{k: 1.0 for k in e.get("values", {})})
        assert "PCA-32 0." not in e["anchor"]
