"""Reconstruction: the test metrics beyond the test loop's, and denoising against the noisy input and PCA."""

from __future__ import annotations

import logging
import math

import torch

from aelab.codecs.pca import fit_pca
from aelab.evaluation.context import EvalContext, requires
from aelab.evaluation.metrics import (
    mse_per_image,
    psnr_per_image,
    reconstruction_metrics,
    to_float,
)
from aelab.models.capabilities import Autoencoding, Reconstructs

log = logging.getLogger("aelab")


@requires(Reconstructs, images=True)
def reconstruction(ctx: EvalContext) -> dict[str, float]:
    """``test/bce`` and ``test/ssim`` (``test/mse`` and ``test/psnr`` come from the DDP-correct test loop), and the
    baseline a model must beat to have learned anything image-specific: the MSE and PSNR of the training images'
    mean image as every reconstruction (``test/baseline/mean_image_mse``, ``..._psnr``)."""
    rec = reconstruction_metrics(ctx.recon, ctx.x_test)
    mean = to_float(ctx.train_u8).mean(0, keepdim=True).expand_as(ctx.x_test)
    return {
        "test/bce": rec["bce"],
        "test/ssim": rec["ssim"],
        "test/baseline/mean_image_mse": mse_per_image(mean, ctx.x_test).mean().item(),
        "test/baseline/mean_image_psnr": psnr_per_image(mean, ctx.x_test).mean().item(),
    }


@requires(Autoencoding, images=True)
def denoising(
    ctx: EvalContext, sigmas=(0.1, 0.3, 0.5, 0.7), pca_components=(8, 16, 32, 64, 128), seed: int = 0
) -> dict[str, float]:
    """Gaussian noise at each σ: PSNR of the model's output, of the noisy input, and of the best PCA
    projection (the number of components chosen by the best test PSNR: an optimistic baseline)."""
    out: dict[str, float] = {}
    x_test = ctx.x_test
    limit = min(math.prod(ctx.image_shape), len(ctx.train_u8))
    comps = sorted({min(int(c), limit) for c in pca_components})
    pca = fit_pca(to_float(ctx.train_u8), max(comps))
    mean = torch.from_numpy(pca.mean_).float()
    basis = torch.from_numpy(pca.components_).float()  # (max, C·H·W), ordered by variance
    for sigma in sigmas:
        gen = torch.Generator().manual_seed(int(seed))
        noisy = x_test + float(sigma) * torch.randn(x_test.shape, generator=gen)
        den = ctx.map(ctx.model.reconstruct, noisy)
        scores = (noisy.flatten(1) - mean) @ basis.T  # (N, max components)
        best = -math.inf
        for c in comps:
            rec = (mean + scores[:, :c] @ basis[:c]).clamp(0, 1).view_as(x_test)
            best = max(best, psnr_per_image(rec, x_test).mean().item())
        key = f"test/denoise/sigma{sigma}"
        out[f"{key}_model_psnr"] = psnr_per_image(den, x_test).mean().item()
        out[f"{key}_noisy_psnr"] = psnr_per_image(noisy, x_test).mean().item()
        out[f"{key}_pca_psnr"] = best
    return out
