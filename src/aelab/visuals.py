"""The pictures aelab draws of a model, one function each, shared by the dashboards, the evaluation suite and
the report's figures: reconstruction pairs, prior or sampler samples, interpolations, denoising strips, grids
and the 2-D latent scatter.

Images are float ``(N, C, H, W)`` in [0, 1] (grey or RGB); grids are ``(C, H', W')`` tensors in [0, 1]
(torchvision's ``make_grid``, white padding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.utils import make_grid


def grid(images: Tensor, nrow: int | None = None) -> Tensor:
    """A grid of images ``(N, C, H, W)`` in [0, 1], ``nrow`` per row (default: about square)."""
    n = len(images)
    nrow = nrow or max(1, round(math.sqrt(n)))
    return make_grid(images.float().clamp(0, 1).cpu(), nrow=nrow, padding=2, pad_value=1.0)


def rows(*batches: Tensor) -> Tensor:
    """One grid row per batch (each ``(n, C, H, W)`` in [0, 1], the same ``n``)."""
    return grid(torch.cat([b.float().cpu() for b in batches]), nrow=batches[0].shape[0])


def reconstruction_pairs(x: Tensor, x_hat: Tensor, per_row: int = 8) -> Tensor:
    """Pairs of rows, ``per_row`` originals over their reconstructions (32 images, 8 per row: an 8×8 grid)."""
    k = max(1, int(per_row))
    pairs = [t for i in range(0, len(x), k) for t in (x[i : i + k], x_hat[i : i + k])]
    return grid(torch.cat([p.float().cpu() for p in pairs]), nrow=k)


@torch.no_grad()
def prior_samples(model, n: int, seed: int = 0, device: torch.device | str = "cpu") -> Tensor:
    """``n`` images from a generative model's prior (``model.sample``), drawn with a generator on ``device`` (where
    the model is) seeded ``seed``."""
    gen = torch.Generator(device=device).manual_seed(int(seed))
    return model.sample(int(n), generator=gen)


@torch.no_grad()
def interpolation(model, x_a: Tensor, x_b: Tensor, steps: int = 10) -> Tensor:
    """Two images ``(C, H, W)`` with the decodes of the straight line between their codes in between:
    ``(steps + 2, C, H, W)`` (:meth:`aelab.models.Autoencoder.interpolate`)."""
    path = model.interpolate(x_a, x_b, int(steps)).cpu()
    return torch.cat([x_a[None].cpu(), path, x_b[None].cpu()])


@torch.no_grad()
def denoising_strip(model, x: Tensor, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """``(clean, corrupted, denoised)`` for a model with a ``corruption`` (the DAE): the model's own corruption
    with a generator seeded ``seed``; the corrupted images are what the model was given (unclipped)."""
    gen = torch.Generator(device=x.device).manual_seed(int(seed))
    noisy = model.corruption(x, gen)
    return x, noisy, model.reconstruct(noisy)


def latent_scatter(
    ax, codes: Tensor, labels: Tensor | None, class_names: Sequence[str] | None = None, s: float = 4
):
    """2-D codes ``(N, 2)`` on a matplotlib axis, coloured by class (one colour per class of ``class_names``);
    returns the scatter's artist (for a colour bar)."""
    codes = codes.float().cpu()
    if labels is None:
        return ax.scatter(codes[:, 0], codes[:, 1], s=s, alpha=0.7, color="C0")
    k = len(class_names) if class_names is not None else int(labels.max()) + 1
    cmap = "tab10" if k <= 10 else "tab20"
    points = ax.scatter(
        codes[:, 0], codes[:, 1], c=labels.cpu().numpy(), cmap=cmap, s=s, alpha=0.7, vmin=-0.5, vmax=k - 0.5
    )
    ax.set_xlabel("z₁")
    ax.set_ylabel("z₂")
    return points


def class_colorbar(fig, points, ax, class_names: Sequence[str] | None, label: str = "class") -> None:
    """A colour bar for :func:`latent_scatter` with one tick per class, named after it."""
    if class_names is None:
        return
    bar = fig.colorbar(points, ax=ax, ticks=range(len(class_names)), label=label)
    bar.ax.set_yticklabels(list(class_names))
