"""Denoising autoencoder (Vincent et al. 2008): an :class:`Autoencoder` trained on corrupted input."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from aelab.models.autoencoder import Autoencoder, psnr_metric
from aelab.models.components.corruption import Corruption


class DenoisingAutoencoder(Autoencoder):
    """Denoising autoencoder: input ``corruption(x)``, target the clean ``x``.

    Training draws fresh noise every step; validation and test draw it from a generator seeded with
    ``eval_seed``, the stage and the batch index (and the DDP rank), so their numbers compare across
    epochs and runs.

    Args:
        encoder, decoder, loss, optimizer, scheduler, compile, compile_mode, nan_check_every: as for
            :class:`~aelab.models.Autoencoder`.
        corruption: a :class:`~aelab.models.components.Corruption` (gaussian, masking, salt-and-pepper).
        eval_seed: base seed of the validation/test noise.

    Metrics: ``*/mse`` and ``*/psnr`` (dB) measure the denoised output against the clean image (one forward
    pass, on the corrupted input: what a DAE is for); ``val/noisy_psnr`` and ``test/noisy_psnr`` (dB) the
    corrupted input itself — the baseline to beat; ``*/loss`` is the denoising loss. The clean-image
    reconstruction is the evaluation suite's (``reconstruction``, ``denoising`` sections).
    """

    hparams_ignore = (*Autoencoder.hparams_ignore, "corruption")

    def __init__(
        self, encoder: nn.Module, decoder: nn.Module, corruption: Corruption, eval_seed: int = 1234, **kwargs
    ) -> None:
        super().__init__(encoder, decoder, eval_seed=eval_seed, **kwargs)
        self.corruption = corruption

    def make_metrics(self, stage: str) -> dict[str, Metric]:
        return {**super().make_metrics(stage), "noisy_psnr": psnr_metric()}

    def model_input(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        return self.corruption(x, generator), x

    def update_reconstruction_metrics(self, m: nn.ModuleDict, x: Tensor, x_in: Tensor, x_hat: Tensor) -> None:
        m["noisy_psnr"].update(x_in, x)
        super().update_reconstruction_metrics(m, x, x_in, x_hat)
