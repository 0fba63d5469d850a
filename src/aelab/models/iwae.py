"""Importance-weighted autoencoder (Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from aelab.models.distributions import log_normal, log_standard_normal
from aelab.models.outputs import LossOutput
from aelab.models.vae import VAE


class IWAE(VAE):
    """The VAE trained on the ``k``-sample importance-weighted bound instead of the ELBO.

    ``L_k = E[log (1/k) Σ_i p(x, z_i) / q(z_i|x)]``, ``z_i ~ q(z|x)`` (Burda et al. 2016, eq. 8): ``L_1`` is the
    ELBO and ``L_k`` tightens with ``k`` (Theorem 1); the gradient weights each sample by its normalized
    importance weight. The parts, likelihoods, binarization and evaluation are the VAE's (the likelihood section
    reports the test NLL at ``suite.sections.likelihood.k`` samples).

    Args:
        k: importance samples per image in training (and in ``val|test/iwae``).
        encoder, decoder, latent_dim, likelihood, sigma, binarize, eval_seed, ...: as for :class:`~aelab.models.VAE`
            (``kl_coeff`` and ``kl_warmup_steps`` do not apply: the bound has no separate KL weight).

    Metrics: ``*/loss`` = −L_k (nats); ``*/iwae`` = −L_k; and the VAE's ``*/elbo``, ``*/recon``, ``*/kl`` of one
    posterior sample, so IWAE and VAE runs compare on the same numbers.
    """

    extra_terms = ("elbo", "recon", "kl", "iwae")

    def __init__(self, *args, k: int = 5, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if int(k) < 1:
            raise ValueError(f"model.k={k} must be >= 1 (importance samples)")

    @property
    def k(self) -> int:
        """The importance samples per image of the training (and ``val|test/iwae``) bound."""
        return int(self.hparams.k)

    def iwae_bound(
        self, x_in: Tensor, target: Tensor, k: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """``L_k`` per image in nats, ``(B,)``, differentiable (the reparameterized samples share one decoder pass)."""
        mu, logvar = self.posterior(x_in)
        eps = torch.randn((k, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps  # (k, B, D)
        logits = self.decoder(z.reshape(-1, z.shape[-1]))
        target_k = target.unsqueeze(0).expand(k, *target.shape).reshape(-1, *target.shape[1:])
        log_px = self.log_likelihood(logits, target_k).view(k, -1)
        log_w = (
            log_px.float()
            + log_standard_normal(z.float())
            - log_normal(z.float(), mu.float(), logvar.float())
        )
        return torch.logsumexp(log_w, dim=0) - math.log(k)

    def loss_terms(
        self, x_in: Tensor, target: Tensor, stage: str, generator: torch.Generator | None = None
    ) -> LossOutput:
        bound = self.iwae_bound(x_in, target, self.k, generator).mean()
        if stage == "train":
            return LossOutput(-bound, None, {"iwae": -bound})
        _, x_hat, terms = super().loss_terms(x_in, target, stage, generator)
        return LossOutput(-bound, x_hat, {**terms, "iwae": -bound})
