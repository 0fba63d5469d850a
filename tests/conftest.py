"""Shared fixtures: synthetic MNIST-format IDX files (no network) and composed, shrunk configs."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from aelab import CONF_DIR

REPO = CONF_DIR.parent
REAL_MNIST = Path(os.environ.get("DATA_DIR", REPO / "data")) / "MNIST" / "raw"


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """Write a uint8 array in the IDX format (magic 0x08 = ubyte, then the dimension count)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28×28 uint8 images, 10 classes: class k is a bright horizontal bar at rows 2k+3..2k+5 plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        images[i, 2 * k + 3 : 2 * k + 6, 4 + k : 20 + k % 5] = 230
    return images, labels.astype(np.uint8)


def synthetic_clothes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28×28 uint8 images unlike :func:`synthetic_digits` (the out-of-distribution set of the tests): class k
    is a bright *vertical* band of width 6 at column 2k+1 on a mid-grey background."""
    rng = np.random.default_rng(seed + 100)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(90, 140, size=(n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        images[i, 2:26, 2 * k + 1 : 2 * k + 7] = 250
    return images, labels.astype(np.uint8)


def make_fake_mnist(
    root: Path, name: str = "MNIST", n_train: int = 600, n_test: int = 200, compress: bool = False, make=None
) -> Path:
    """IDX files of a synthetic set in ``root/<name>/raw`` (:func:`synthetic_digits`, or ``make(n, seed)``)."""
    make = make or synthetic_digits
    raw = root / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        x, y = make(n, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", x, compress)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y, compress)
    return root


@pytest.fixture(scope="session")
def fake_data_dir(tmp_path_factory) -> Path:
    """A data root with a small synthetic MNIST (600 train / 200 test) and a Fashion-MNIST that differs from it
    (:func:`synthetic_clothes`: the anomaly tests' out-of-distribution set must not be the in-distribution one)."""
    root = tmp_path_factory.mktemp("data")
    make_fake_mnist(root, "MNIST")
    make_fake_mnist(root, "FashionMNIST", make=synthetic_clothes)
    return root


def make_image_folder(
    root: Path, channels: int = 3, labelled: bool = True, n: int = 24, seed: int = 0
) -> Path:
    """A folder of PNGs of mixed sizes (36..60 px), grey (mode L) or RGB, in ``root/<class>/`` (two classes:
    a bright square or a bright disc on noise) or flat (no labels)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = int(rng.integers(36, 61)), int(rng.integers(36, 61))
        img = rng.integers(0, 60, size=(h, w, 3)).astype(np.uint8)
        k = i % 2
        yy, xx = np.mgrid[:h, :w]
        mask = (
            (abs(yy - h / 2) < h / 4) & (abs(xx - w / 2) < w / 4)
            if k == 0
            else ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 4) ** 2)
        )
        img[mask] = [230, 200 - 100 * k, 60 + 150 * k]
        folder = root / f"class_{k}" if labelled else root
        folder.mkdir(parents=True, exist_ok=True)
        pil = Image.fromarray(img, mode="RGB")
        (pil.convert("L") if channels == 1 else pil).save(folder / f"img_{i:03d}.png")
    return root


# Overrides that shrink any run to seconds on the synthetic data (MNIST-specific ones: MNIST_SMALL).
MNIST_SMALL = ["data.val_size=100", "data.download=false"]
SMALL = [
    *MNIST_SMALL,
    "data.batch_size=50",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_model_summary=false",
    "callbacks.progress_bar=null",
    "trainer.enable_progress_bar=false",
    "callbacks.latent_histogram.num_images=50",
    "callbacks.latent_scatter.num_images=50",
    "callbacks.projector.num_images=50",
]


def compose_cfg(config_name: str, overrides: list[str], output_dir: Path, data_dir: Path) -> DictConfig:
    """Compose a real config from conf/ as Hydra would, with its run-time fields set for a test."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir)
        cfg.paths.data_dir = str(data_dir)
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
        cfg.hydra.job.id = 0
    HydraConfig().set_config(cfg)
    return cfg


@pytest.fixture
def make_cfg(tmp_path, fake_data_dir):
    """``make_cfg(overrides, config_name="train", small=True)`` → a composed, shrunk config."""

    def _make(
        overrides: list[str] | None = None, config_name: str = "train", small: bool = True
    ) -> DictConfig:
        extra = list(SMALL) if small and config_name == "train" else []
        return compose_cfg(config_name, extra + list(overrides or []), tmp_path / "run", fake_data_dir)

    yield _make
    GlobalHydra.instance().clear()


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


# The test helpers' callbacks (tests/helpers.py) are a package outside aelab: the tests trust it like a user
# trusts their own (AELAB_TRUST); tests of the trust rules set or clear it themselves.
os.environ.setdefault("AELAB_TRUST", "helpers")
_tests = str(Path(__file__).resolve().parent)
if _tests not in os.environ.get("PYTHONPATH", "").split(os.pathsep):  # subprocesses import helpers too
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_tests, os.environ.get("PYTHONPATH")) if p)
