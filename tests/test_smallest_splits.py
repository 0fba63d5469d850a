"""A dashboard never kills a run: every data kind trains, validates and tests on the smallest splits it allows (one
validation and one test example), with the default dashboards on. A statistic a one-example split cannot give (the
codes' spread) is not logged, with a warning naming it; the run ends with its metrics."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from conftest import MNIST_SMALL, SMALL, make_image_folder
from helpers import read_metrics, run_inprocess


def _small() -> list[str]:
    return [o for o in SMALL if o not in MNIST_SMALL]


def test_a_folder_of_three_photos_with_one_validation_and_one_test_image_trains(
    tmp_path, monkeypatch, fake_data_dir
):
    from aelab.cli.train import main

    root = make_image_folder(tmp_path / "photos", channels=3, labelled=False, n=3)
    run = tmp_path / "run"
    argv = [*_small(), "data=image_folder", f"data.root={root}", "data.image_size=16", "data.channels=3",
            "data.val_size=1", "data.test_size=1", "data.batch_size=1", "model=conv_ae", "model.latent_dim=4",
            "trainer.max_epochs=1", f"hydra.run.dir={run}"]  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_inprocess(main, argv, monkeypatch, fake_data_dir)
    metrics = read_metrics(run)
    assert math.isfinite(metrics["test/mse"])  # the run was not lost at the first validation's end
    said = " ".join(str(w.message) for w in caught)
    assert "latent/std_per_dim not logged: the val split has 1 example(s)" in said


def test_an_interaction_log_with_one_validation_and_one_test_user_trains(
    tmp_path, monkeypatch, fake_data_dir
):
    from aelab.cli.train import main

    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}") for u in range(8) for i in rng.choice(20, size=8, replace=False)]
    pd.DataFrame(rows, columns=["user_id", "item_id"]).to_csv(tmp_path / "log.csv", index=False)
    run = tmp_path / "run"
    argv = [*_small(), "data=interactions", f"data.path={tmp_path / 'log.csv'}", "data.val_size=1",
            "data.test_size=1", "data.batch_size=2", "model=mult_vae", "model.hidden_dims=[16]",
            "model.latent_dim=4", "trainer.max_epochs=1", f"hydra.run.dir={run}"]  # fmt: skip
    run_inprocess(main, argv, monkeypatch, fake_data_dir)
    metrics = read_metrics(run)
    assert math.isfinite(metrics["test/recommend/ndcg@100"]) and metrics["test/recommend/test_users"] == 1
