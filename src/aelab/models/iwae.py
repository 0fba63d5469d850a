"""Importance-weighted autoencoder (Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016)."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from aelab.models import objectives
from aelab.models.autoencoder import Latent
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

    Hooks (:class:`~aelab.models.Autoencoder`): :meth:`latent` draws nothing (``z`` is ``None``: the template
    decodes nothing), :meth:`objective` draws and decodes the bound's ``k`` samples, then in evaluation the VAE's
    one sample.
    """

    def __init__(self, *args, k: int = 5, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if int(k) < 1:
            raise ValueError(f"model.k={k} must be >= 1 (importance samples)")
        self.k = int(k)

    def latent(self, h: Tensor, generator: torch.Generator | None = None) -> Latent:
        """The posterior of the encoder's output, no draw: the bound draws its own ``k`` (:meth:`objective`)."""
        mu, logvar = self.posterior_params(h)
        return Latent(z=None, h=h, code=mu, params={"mu": mu, "logvar": logvar})

    def objective(
        self,
        latent: Latent,
        logits: Tensor | None,
        target: Tensor,
        generator: torch.Generator | None = None,
        step: int | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """−L_k (``iwae``) of ``k`` draws, and in evaluation the VAE's terms of one more draw (after the bound's)."""
        mu, logvar = latent.params["mu"], latent.params["logvar"]
        bound = objectives.importance_weighted_bound(
            mu, logvar, lambda z: self.log_px(target, z), self.k, generator=generator
        ).mean()
        terms = {}
        if not self.training:
            z = objectives.reparameterize(mu, logvar, generator)
            terms = self.elbo_loss(replace(latent, z=z), self.decoder(z), target, step)[1]
        return self.penalized(-bound, {**terms, "iwae": -bound.detach()}, latent, logits, generator)
