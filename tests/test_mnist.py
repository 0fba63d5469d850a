"""Real MNIST (skipped with a reason when data/MNIST/raw lacks the four files; CI provides them)."""

from __future__ import annotations

import pytest

from aelab.data.mnist import RAW_FILES
from conftest import REAL_MNIST, compose_cfg

pytestmark = [
    pytest.mark.mnist,
    pytest.mark.skipif(
        not all((REAL_MNIST / f).is_file() or (REAL_MNIST / f"{f}.gz").is_file() for f in RAW_FILES),
        reason=f"real MNIST not found in {REAL_MNIST} (run `make data` or see README 'Offline use')",
    ),
]


def test_real_mnist_splits():
    from aelab.data import MNISTDataModule

    dm = MNISTDataModule(data_dir=str(REAL_MNIST.parents[1]), download=False)
    dm.prepare_data()
    dm.setup()
    sizes = {s: len(dm.split_tensors(s)[0]) for s in ("train", "val", "test")}
    assert sizes == {"train": 55_000, "val": 5_000, "test": 10_000}
    # label counts of the official test set (from shared/data/README.md)
    counts = dm.split_tensors("test")[1].bincount().tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.slow
def test_one_epoch_of_the_default_ae_beats_the_mean_image(tmp_path):
    from aelab.train import train

    overrides = [
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "callbacks.progress_bar=null",
        "trainer.enable_progress_bar=false",
        "data.download=false",
    ]
    cfg = compose_cfg("train", overrides, tmp_path, REAL_MNIST.parents[1])
    metrics, _ = train(cfg)
    # the mean-image predictor scores 0.0675; PCA-32 0.0168
    assert metrics["test/mse"] < 0.03, metrics
