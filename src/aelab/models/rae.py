"""The regularized autoencoder (Ghosh, Sajjadi, Vergari, Black & Schölkopf, "From Variational to Deterministic
Autoencoders", ICLR 2020)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aelab.models.autoencoder import Autoencoder
from aelab.models.outputs import LossOutput


class RAE(Autoencoder):
    """Regularized autoencoder (Ghosh, Sajjadi, Vergari, Black & Schölkopf, "From Variational to Deterministic
    Autoencoders", ICLR 2020, eq. 11): ``L = L_rec + β · ½‖z‖² + λ · L_reg`` with

    * ``regularization="l2"`` (RAE-L2): ``L_reg = ‖θ_decoder‖²`` (the squared L2 norm of the decoder's weights);
    * ``regularization="gp"`` (RAE-GP): ``L_reg = ‖∇_z D(z)‖²``, the gradient of the decoder's summed output with
      respect to the code (as the authors' code computes it), per image, mean over the batch;
    * ``regularization="none"``: only the code penalty.

    Samples come from a density fitted to the training codes after training (the ``gmm`` sampler,
    :mod:`aelab.samplers`), as in the paper.

    Args:
        code_coeff: β, the weight of ``½‖z‖²`` (per image, mean over the batch).
        reg_coeff: λ, the weight of the decoder regularizer.
        regularization: ``l2``, ``gp`` or ``none``.
        encoder, decoder, latent_dim, loss, ...: as for :class:`~aelab.models.Autoencoder`.

    Metrics, besides the AE's: ``*/code_penalty`` (½‖z‖²), ``*/decoder_penalty`` (L_reg).
    """

    extra_terms = ("code_penalty", "decoder_penalty")

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        code_coeff: float = 1e-4,
        reg_coeff: float = 1e-7,
        regularization: str = "l2",
        **kwargs,
    ) -> None:
        super().__init__(encoder, decoder, **kwargs)
        if regularization not in ("l2", "gp", "none"):
            raise ValueError(f"model.regularization must be 'l2', 'gp' or 'none', got {regularization!r}")

    def loss_terms(
        self, x_in: Tensor, target: Tensor, stage: str, generator: torch.Generator | None = None
    ) -> LossOutput:
        z = self.encoder(x_in)
        reg = self.hparams.regularization
        logits = self.decoder(z)
        code_penalty = 0.5 * z.float().pow(2).sum(1).mean()
        if reg == "l2":
            decoder_penalty = sum(p.float().pow(2).sum() for p in self.decoder.parameters())
        elif reg == "gp" and stage == "train":
            (grad,) = torch.autograd.grad(logits.sum(), z, create_graph=True)
            decoder_penalty = grad.float().pow(2).sum(1).mean()
        else:
            decoder_penalty = torch.zeros((), device=z.device)
        loss = (
            self.reconstruction_loss(logits, target)
            + self.hparams.code_coeff * code_penalty
            + self.hparams.reg_coeff * decoder_penalty
        )
        extras = {"code_penalty": code_penalty.detach(), "decoder_penalty": decoder_penalty.detach()}
        return LossOutput(loss, None if stage == "train" else torch.sigmoid(logits), extras)
