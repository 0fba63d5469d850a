"""Denoising autoencoder (Vincent et al., "Extracting and Composing Robust Features with Denoising Autoencoders",
ICML 2008): an :class:`~aelab.models.Autoencoder` trained on corrupted input."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aelab.models.autoencoder import Autoencoder
from aelab.models.components.corruption import Corruption


def psnr(x_hat: Tensor, x: Tensor) -> Tensor:
    """Mean over images of the per-image PSNR in dB, values in [0, 1]: ``mean_i 10 log10(1 / MSE_i)``."""
    mse = (x_hat.detach().float() - x.float()).pow(2).flatten(1).mean(1)
    return (-10 * torch.log10(mse.clamp_min(1e-20))).mean()


class DenoisingAutoencoder(Autoencoder):
    """Denoising autoencoder: input ``corruption(x)``, target the clean ``x``.

    The noise comes from ``generator`` (aelab's LightningModule seeds one per validation/test batch, so those
    numbers compare across epochs and runs; ``None`` in training: fresh noise every step).

    Args:
        encoder, decoder, latent_dim, loss, output: as for :class:`~aelab.models.Autoencoder`.
        corruption: a :class:`~aelab.models.components.Corruption` (gaussian, masking, salt-and-pepper).

    Terms: ``noisy_psnr`` (dB, mean over images, evaluation only): the corrupted input's PSNR, the baseline the
    denoised output (``*/psnr``) has to beat.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, corruption: Corruption, **kwargs) -> None:
        super().__init__(encoder, decoder, **kwargs)
        self.corruption = corruption

    def inputs(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        return self.corruption(x, generator), x

    def diagnostics(self, x: Tensor, x_in: Tensor) -> dict[str, Tensor]:
        return {"noisy_psnr": psnr(x_in, x)}
