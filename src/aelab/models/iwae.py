"""Importance-weighted autoencoder (Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016)."""

from __future__ import annotations

import torch
from torch import Tensor

from aelab.models import objectives
from aelab.models.vae import VAE


class IWAE(VAE):
    """The VAE trained on the ``k``-sample importance-weighted bound instead of the ELBO
    (:func:`aelab.models.objectives.importance_weighted_bound`, Burda et al. 2016, eq. 8): ``L_1`` is the ELBO and
    ``L_k`` tightens with ``k``; the gradient weights each sample by its normalized importance weight.

    Args:
        k: importance samples per example in training (and in ``val|test/iwae``).
        encoder, decoder, latent_dim, likelihood, sigma, binarize, output: as for :class:`~aelab.models.VAE`
            (``kl_coeff`` and ``kl_warmup_steps`` do not apply: the bound has no separate KL weight).

    The loss is −L_k (nats). Terms: ``iwae`` = −L_k, and in evaluation the VAE's ``elbo``, ``recon``, ``kl`` of
    one posterior sample, so IWAE and VAE runs compare on the same numbers.
    """

    def __init__(self, *args, k: int = 5, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if int(k) < 1:
            raise ValueError(f"model.k={k} must be >= 1 (importance samples)")
        self.k = int(k)

    def objective(
        self, mu: Tensor, logvar: Tensor, target: Tensor, generator: torch.Generator | None, step: int | None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        bound = objectives.importance_weighted_bound(
            mu, logvar, lambda z: self.log_px(target, z), self.k, generator=generator
        ).mean()
        terms = {} if self.training else super().objective(mu, logvar, target, generator, step)[1]
        return -bound, {**terms, "iwae": -bound.detach()}
