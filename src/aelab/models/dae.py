"""Denoising autoencoder (Vincent et al., "Extracting and Composing Robust Features with Denoising Autoencoders",
ICML 2008): an :class:`~aelab.models.Autoencoder` trained on corrupted input."""

from __future__ import annotations

from torch import Tensor, nn

from aelab.models.autoencoder import Autoencoder
from aelab.models.components.corruption import Corruption
from aelab.utils.reconstruction import psnr


class DenoisingAutoencoder(Autoencoder):
    """Denoising autoencoder (``model=dae``): an :class:`~aelab.models.Autoencoder` whose corruption is required:
    input ``corruption(x)``, target the clean ``x`` (the base class's :meth:`~aelab.models.Autoencoder.inputs`; any
    model given a ``corruption`` is denoising the same way, e.g. ``model=sparse_ae +model.corruption=...``).

    The noise comes from ``generator`` (aelab's LightningModule seeds one per validation/test batch, so those
    numbers compare across epochs and runs; ``None`` in training: fresh noise every step).

    Args:
        encoder, decoder, latent_dim, loss, output: as for :class:`~aelab.models.Autoencoder`.
        corruption: a :class:`~aelab.models.components.Corruption` (gaussian, masking, salt-and-pepper).

    Raises:
        ValueError: without a corruption.

    Terms: ``noisy_psnr`` (dB, mean over images, evaluation only): the corrupted input's PSNR, the baseline the
    denoised output (``*/psnr``) has to beat.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, corruption: Corruption, **kwargs) -> None:
        if corruption is None:
            raise ValueError(
                "model=dae needs a corruption (model.corruption); model=ae is the plain autoencoder"
            )
        super().__init__(encoder, decoder, corruption=corruption, **kwargs)

    def diagnostics(self, x: Tensor, x_in: Tensor) -> dict[str, Tensor]:
        return {"noisy_psnr": psnr(x_in, x)}
