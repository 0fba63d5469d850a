"""Sparse autoencoders: an overcomplete code of which only a few units are active per image."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from aelab.models.autoencoder import Autoencoder
from aelab.models.code_metrics import DeadFraction


class SparseAutoencoder(Autoencoder):
    """A sparse autoencoder: ``z = sparsify(encoder(x))``, ``x̂ = decoder(z)``.

    * ``sparsity="topk"`` — only the ``k`` largest pre-activations of each code survive, through a ReLU
      (Makhzani & Frey, "k-Sparse Autoencoders", ICLR 2014; the TopK activation of Gao et al., "Scaling and
      Evaluating Sparse Autoencoders", 2024, eq. 3): exactly at most ``k`` active units per image.
    * ``sparsity="l1"`` — ``z = ReLU(encoder(x))`` with ``l1_coeff · ‖z‖₁`` (mean over images) added to the loss.

    Args:
        encoder, decoder, latent_dim, loss, optimizer, scheduler, compile, compile_mode, nan_check_every,
            channels_last, eval_seed: as for :class:`~aelab.models.Autoencoder` (``latent_dim`` typically larger
            than the image: an overcomplete code).
        sparsity: ``topk`` or ``l1``.
        k: active units per code with ``topk``.
        l1_coeff: weight of the L1 penalty with ``l1``.

    Metrics, besides the AE's: ``*/sparsity/l0`` (active units per image, mean), ``*/sparsity/l1`` (‖z‖₁ per
    image), and over the whole split ``val|test/sparsity/dead_fraction`` (the fraction of code units never
    active).

    Raises:
        ValueError: for an unknown ``sparsity``, or ``k`` outside [1, latent_dim].
    """

    extra_terms = ("sparsity/l0", "sparsity/l1")

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        latent_dim: int | None = None,
        sparsity: str = "topk",
        k: int = 32,
        l1_coeff: float = 1e-3,
        **kwargs,
    ) -> None:
        super().__init__(encoder, decoder, latent_dim=latent_dim, **kwargs)
        if sparsity not in ("topk", "l1"):
            raise ValueError(f"model.sparsity must be 'topk' or 'l1', got {sparsity!r}")
        if sparsity == "topk" and not 1 <= int(k) <= self.latent_dim:
            raise ValueError(f"model.k={k} must be in [1, latent_dim={self.latent_dim}]")

    def sparsify(self, h: Tensor) -> Tensor:
        """The sparse code of encoder outputs ``(B, latent_dim)``."""
        if self.hparams.sparsity == "l1":
            return torch.relu(h)
        top = torch.topk(h, int(self.hparams.k), dim=1)
        return torch.zeros_like(h).scatter(1, top.indices, torch.relu(top.values))

    def encode(self, x: Tensor) -> Tensor:
        """Sparse codes ``(B, latent_dim)`` (non-negative; at most ``k`` non-zero with ``topk``)."""
        return self.sparsify(self.encoder(x))

    def make_metrics(self, stage: str) -> dict[str, Metric]:
        return {**super().make_metrics(stage), "sparsity/dead_fraction": DeadFraction(self.latent_dim)}

    def loss_terms(
        self, x_in: Tensor, target: Tensor, stage: str, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        z = self.sparsify(self.encoder(x_in))
        logits = self.decoder(z)
        l1 = z.abs().sum(1).mean()
        loss = self.reconstruction_loss(logits, target)
        if self.hparams.sparsity == "l1":
            loss = loss + self.hparams.l1_coeff * l1
        extras = {"sparsity/l0": (z != 0).sum(1).float().mean(), "sparsity/l1": l1}
        if stage == "train":
            return loss, None, extras
        return loss, torch.sigmoid(logits), {**extras, "sparsity/dead_fraction": z}
