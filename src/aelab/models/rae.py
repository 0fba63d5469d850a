"""The regularized autoencoder (Ghosh, Sajjadi, Vergari, Black & Schölkopf, "From Variational to Deterministic
Autoencoders", ICLR 2020)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aelab.models.autoencoder import Autoencoder

REGULARIZATIONS = ("l2", "gp", "none")


class RAE(Autoencoder):
    """Regularized autoencoder (Ghosh et al. 2020, eq. 11): ``L = L_rec + β · ½‖z‖² + λ · L_reg`` with

    * ``regularization="l2"`` (RAE-L2): ``L_reg = ‖θ_decoder‖²`` (the squared L2 norm of the decoder's weights);
    * ``regularization="gp"`` (RAE-GP): ``L_reg = ‖∇_z D(z)‖²``, the gradient of the decoder's summed output with
      respect to the code (as the authors' code computes it), per example, mean over the batch (training only);
    * ``regularization="none"``: only the code penalty.

    Samples come from a density fitted to the training codes after training (the ``gmm`` sampler,
    :mod:`aelab.samplers`), as in the paper.

    Args:
        code_coeff: β, the weight of ``½‖z‖²`` (per example, mean over the batch).
        reg_coeff: λ, the weight of the decoder regularizer.
        regularization: ``l2``, ``gp`` or ``none``.
        encoder, decoder, latent_dim, loss, output: as for :class:`~aelab.models.Autoencoder`.

    Terms: ``code_penalty`` (½‖z‖²), ``decoder_penalty`` (L_reg).
    """

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
        if regularization not in REGULARIZATIONS:
            raise ValueError(f"model.regularization must be one of {REGULARIZATIONS}, got {regularization!r}")
        self.code_coeff, self.reg_coeff, self.regularization = (
            float(code_coeff),
            float(reg_coeff),
            regularization,
        )

    def regularizer(
        self, z: Tensor, logits: Tensor, generator: torch.Generator | None = None
    ) -> dict[str, tuple[float, Tensor]]:
        if self.regularization == "l2":
            decoder_penalty = sum(p.float().pow(2).sum() for p in self.decoder.parameters())
        elif self.regularization == "gp" and self.training:
            (grad,) = torch.autograd.grad(logits.sum(), z, create_graph=True)
            decoder_penalty = grad.float().pow(2).sum(1).mean()
        else:
            decoder_penalty = torch.zeros((), device=z.device)
        return {
            "code_penalty": (self.code_coeff, 0.5 * z.float().pow(2).sum(1).mean()),
            "decoder_penalty": (self.reg_coeff, decoder_penalty),
        }
