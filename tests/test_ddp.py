"""trainer=ddp_sim: two CPU processes (gloo) through the real command line."""

from __future__ import annotations

import math
import sys

from helpers import cli_args, mean_image_mse, read_metrics, run_subprocess


def test_ddp_sim_trains_and_tests_through_the_cli(tmp_path, fake_data_dir):
    run_dir = tmp_path / "run"
    args = cli_args(run_dir, "trainer=ddp_sim", "trainer.max_epochs=6", "data.batch_size=10")
    proc = run_subprocess([sys.executable, "-m", "aelab.train", *args], fake_data_dir, timeout=400)
    out = proc.stdout + proc.stderr
    assert "world_size: 2" in out or "distributed_backend=gloo" in out
    metrics = read_metrics(run_dir)
    # it learned: below half the mean image's MSE (a baseline computed here)
    assert math.isfinite(metrics["test/mse"]) and metrics["test/mse"] < 0.5 * mean_image_mse(fake_data_dir)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    # one run directory: the second rank re-uses the first one's folder
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) >= 1
