"""Every report figure renders from plain inputs to a PNG of page width."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from aelab_tools import figures as plots


@pytest.fixture(autouse=True)
def _figures_plot_something(monkeypatch):
    """Every figure a test saves has data on each of its axes that shows an axis (lines, markers, bars, images):
    a figure with an empty panel fails, whatever its PNG looks like."""
    import matplotlib.figure

    saved = []
    real = matplotlib.figure.Figure.savefig

    def savefig(fig, *args, **kwargs):
        saved.append(fig)
        empty = [ax.get_title() or str(i) for i, ax in enumerate(fig.axes) if ax.axison and not ax.has_data()]
        assert not empty, f"figure with empty axes: {empty}"
        assert any(ax.has_data() for ax in fig.axes), "figure with no data at all"
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    yield
    assert saved, "the test saved no figure"


def _png(path):
    with Image.open(path) as im:
        assert im.format == "PNG" and 450 <= im.width <= 900 and im.height > 150
    return path


def test_rate_distortion_and_roc(tmp_path):
    m = {
        f"test/compression/{w}_{f}_{k}": v
        for w in ("ae", "pca")
        for f, b in (("uint8", 32), ("float16", 64), ("float32", 128))
        for k, v in (("bytes_per_image", b + 2.0), ("psnr", 20.0 + b / 64))
    }
    m |= {"test/compression/jpeg_q10_bytes_per_image": 300.0, "test/compression/jpeg_q10_psnr": 18.0}
    m |= {"test/compression/jpeg_q90_bytes_per_image": 700.0, "test/compression/jpeg_q90_psnr": 30.0}
    m |= {"test/compression/gzip_bytes_per_image": 160.0}
    _png(plots.rate_distortion({"ConvAE": m}, tmp_path / "rd.png", caption="CPU, 3 epochs, command ..."))
    rng = np.random.default_rng(0)
    _png(
        plots.roc_curves(
            {"AE recon. error": (rng.normal(0, 1, 500), rng.normal(2, 1, 500))}, tmp_path / "roc.png"
        )
    )


def test_bars_images_latent_and_stability(tmp_path):
    _png(plots.one_class_bars({d: 0.9 + d / 100 for d in range(10)}, tmp_path / "oc.png"))
    rows = [("clean", torch.rand(10, 1, 28, 28)), ("noisy", torch.rand(10, 1, 28, 28))]
    _png(plots.image_rows(rows, tmp_path / "rows.png", "denoising"))
    _png(plots.latent_map(torch.randn(300, 2), torch.randint(0, 10, (300,)), tmp_path / "z.png"))
    with pytest.raises(ValueError, match="2-D codes"):
        plots.latent_map(torch.randn(3, 4), torch.zeros(3), tmp_path / "bad.png")
    summary = {
        "test/mse": {"mean": 0.015, "std": 0.0003, "n": 3},
        "test/psnr": {"mean": 19.0, "std": 0.1, "n": 3},
    }
    _png(
        plots.seed_stability(
            summary, ["test/mse", "test/psnr"], tmp_path / "seeds.png", "c", {"test/mse": [0.01, 0.011]}
        )
    )


def test_validation_curves_read_tensorboard(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    for name in ("ae", "vae"):
        w = SummaryWriter(tmp_path / name / "tensorboard")
        for step, v in enumerate([0.3, 0.2, 0.15]):
            w.add_scalar("val/loss", v, step)
        w.close()
    _png(plots.validation_curves({"MLP AE": tmp_path / "ae", "VAE": tmp_path / "vae"}, tmp_path / "val.png"))
