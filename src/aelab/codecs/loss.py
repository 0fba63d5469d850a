"""The rate–distortion objective of the learned codecs (CompressAI's ``RateDistortionLoss``), apart from the models."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DISTORTIONS = ("mse", "ms_ssim")


class RateDistortionLoss(nn.Module):
    """``L = R + λ · 255² · MSE`` (or ``R + λ · (1 − MS-SSIM)``), ``R`` the estimated rate in bits per pixel.

    ``R = Σ_k −Σ log2 p_k(·) / (B · H · W)`` over the model's likelihoods ``p_k`` (``y``; ``y`` and ``z`` with a
    hyperprior): Ballé, Laparra & Simoncelli, "End-to-end Optimized Image Compression", ICLR 2017, eq. 2 with λ on
    the distortion as CompressAI writes it: MSE of pixels in [0, 1] scaled to the 0..255 range, so λ is on
    CompressAI's scale (0.0018 … 0.0483 for photographs).

    Args:
        lmbda: λ, the rate–distortion trade-off (higher: more bits, less distortion).
        distortion: ``mse``, or ``ms_ssim`` (torchmetrics' MS-SSIM; images of at least 161 px a side).

    Returns (``forward``): ``{"loss", "bpp", "bpp_<k>" for each likelihood, "distortion"}``, scalars.

    Raises:
        ValueError: for an unknown distortion or ``lmbda <= 0``.
    """

    def __init__(self, lmbda: float = 0.01, distortion: str = "mse") -> None:
        super().__init__()
        if distortion not in DISTORTIONS:
            raise ValueError(f"model.distortion must be one of {DISTORTIONS}, got {distortion!r}")
        if float(lmbda) <= 0:
            raise ValueError(f"model.lmbda={lmbda} must be > 0")
        self.lmbda, self.distortion = float(lmbda), distortion

    def forward(self, likelihoods: dict[str, Tensor], x_hat: Tensor, target: Tensor) -> dict[str, Tensor]:
        pixels = target.shape[0] * target.shape[-2] * target.shape[-1]
        out = {f"bpp_{k}": -torch.log2(p).sum() / pixels for k, p in likelihoods.items()}
        bpp = sum(out.values())
        if self.distortion == "mse":
            distortion, scale = F.mse_loss(x_hat.float(), target.float()), 255.0**2
        else:
            from torchmetrics.functional.image import (
                multiscale_structural_similarity_index_measure as ms_ssim,
            )

            distortion, scale = 1 - ms_ssim(x_hat.float(), target.float(), data_range=1.0), 1.0
        return {"loss": bpp + self.lmbda * scale * distortion, "bpp": bpp, **out, "distortion": distortion}
