"""Reconstruction metrics and AUROC (torchmetrics), plus batching helpers for whole splits."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure

from aelab.data.resident import as_float
from aelab.utils.reconstruction import psnr


def to_float(images: Tensor) -> Tensor:
    """uint8 pixels 0..255 → float in [0, 1] (same shape, e.g. ``(N, C, H, W)``); float tensors as float32."""
    return as_float(images)


def batches(images: Tensor, batch_size: int, device: torch.device | str) -> Iterator[Tensor]:
    """Float batches on ``device``, in order: uint8 images ``(N, C, H, W)`` become floats in [0, 1]; float
    tensors (images or codes ``(N, D)``) pass through unchanged."""
    for i in range(0, len(images), batch_size):
        yield to_float(images[i : i + batch_size]).to(device)


@torch.no_grad()
def map_batches(fn: Callable[[Tensor], Tensor], images: Tensor, batch_size: int, device) -> Tensor:
    """``torch.cat([fn(b).cpu() for b in batches(images)])``: ``fn`` over uint8/float images or codes."""
    return torch.cat([fn(b).float().cpu() for b in batches(images, batch_size, device)])


def psnr_per_image(x_hat: Tensor, x: Tensor) -> Tensor:
    """PSNR in dB of each image, pixels in [0, 1]: ``10 log10(1 / MSE_i)``; ``(N, ...) → (N,)``
    (:func:`aelab.utils.reconstruction.psnr`)."""
    return psnr(x_hat, x, reduction="none")


def mse_per_image(x_hat: Tensor, x: Tensor) -> Tensor:
    """Mean squared error of each image; ``(N, ...) → (N,)``."""
    return (x_hat - x).pow(2).flatten(1).mean(1)


def ssim_window(x: Tensor) -> int:
    """SSIM's Gaussian window: 11 (torchmetrics' default), smaller (odd) for images under 11 px a side."""
    return max(3, min(11, (min(x.shape[-2:]) - 1) // 2 * 2 + 1))


def reconstruction_metrics(x_hat: Tensor, x: Tensor) -> dict[str, float]:
    """MSE, BCE (nats per pixel), PSNR (dB, mean over images) and SSIM of reconstructions in [0, 1].

    SSIM: Wang et al. 2004, Gaussian window 11 (smaller for tiny images, :func:`ssim_window`), σ 1.5, data range 1.
    """
    eps = 1e-6
    return {
        "mse": mse_per_image(x_hat, x).mean().item(),
        "bce": F.binary_cross_entropy(x_hat.clamp(eps, 1 - eps), x).item(),
        "psnr": psnr_per_image(x_hat, x).mean().item(),
        "ssim": structural_similarity_index_measure(
            x_hat, x, data_range=1.0, kernel_size=ssim_window(x)
        ).item(),
    }


def auroc(scores: Tensor, is_anomaly: Tensor) -> float:
    """Area under the ROC curve of ``scores`` (higher = more anomalous) for binary labels, in [0, 1].

    Rank-based (scikit-learn's ``roc_auc_score``), so any score scale works: torchmetrics' binary AUROC
    would pass scores outside [0, 1] through a sigmoid, which saturates for −ELBO values in nats.
    """
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(is_anomaly.long().cpu().numpy(), scores.double().cpu().numpy()))
