"""Variational autoencoder (Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aelab.models.autoencoder import Autoencoder
from aelab.models.distributions import LOG_2PI, gaussian_kl
from aelab.models.outputs import LossOutput


class VAE(Autoencoder):
    """VAE with a diagonal-Gaussian posterior ``q(z|x) = N(μ(x), σ²(x))`` and prior ``N(0, I)``.

    The encoder is any aelab encoder with ``out_dim = 2 * latent_dim``; its output is split into μ and
    log σ². ``z = μ + σ ⊙ ε`` with ``ε ~ N(0, I)`` (the reparameterization trick, Kingma & Welling 2014,
    Sec. 2.4). The decoder gives pixel logits.

    Args:
        encoder, decoder, optimizer, scheduler, compile, compile_mode, nan_check_every: as for
            :class:`~aelab.models.Autoencoder`.
        latent_dim: size of z.
        likelihood: ``"bernoulli"`` (decoder logits, for binary or [0, 1] pixels) or ``"gaussian"``
            (decoder mean ``sigmoid(logits)``, standard deviation ``sigma``).
        sigma: the Gaussian likelihood's standard deviation (pixel units); ``None`` learns one global σ.
        binarize: dynamic binarization: every step the input *and* target are resampled as
            ``Bernoulli(x)`` (validation/test use a seeded generator), as in the VAE/IWAE literature.
        kl_coeff: β, the weight of the KL term (β-VAE, Higgins et al. 2017); 1 gives the ELBO.
        kl_warmup_steps: β grows linearly from 0 to ``kl_coeff`` over this many training steps
            (Bowman et al. 2016; Sønderby et al. 2016); 0 disables warm-up.
        eval_seed: seed of the validation/test binarization and posterior samples.

    Losses are sums over pixels, averaged over the batch, in nats. Metrics: ``*/elbo`` is the negative
    ELBO per image in nats (``recon + kl``, lower is better, β = 1), ``*/recon`` = −E_q[log p(x|z)],
    ``*/kl``; plus ``*/mse`` and ``*/psnr`` of the reconstruction from the posterior mean μ.
    ``*/loss`` is ``recon + β kl`` (β without warm-up outside training).

    Raises:
        ValueError: on an encoder whose ``out_dim`` is not ``2 * latent_dim``, or an unknown likelihood.
    """

    extra_terms = ("elbo", "recon", "kl")
    eval_sections = (*Autoencoder.eval_sections, "likelihood", "generation")

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        latent_dim: int = 32,
        likelihood: str = "bernoulli",
        sigma: float | None = 0.1,
        binarize: bool = False,
        kl_coeff: float = 1.0,
        kl_warmup_steps: int = 0,
        eval_seed: int = 1234,
        **kwargs,
    ) -> None:
        super().__init__(encoder, decoder, latent_dim=latent_dim, loss="bce", eval_seed=eval_seed, **kwargs)
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"model.likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
        self.log_sigma = nn.Parameter(torch.zeros(())) if likelihood == "gaussian" and sigma is None else None

    def encoder_out_dim(self, latent_dim: int) -> int:
        """μ and log σ²: ``2 * latent_dim`` (set ``out_dim: ${aelab.mul:${model.latent_dim},2}``)."""
        return 2 * latent_dim

    # ------------------------------------------------------------------ probabilistic parts
    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(μ, log σ²)``, each ``(B, latent_dim)``, of q(z|x) for images ``(B, C, H, W)``."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    @staticmethod
    def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``z = μ + exp(½ log σ²) ⊙ ε``, ``ε ~ N(0, I)``; differentiable in μ and log σ²."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def log_likelihood(self, logits: Tensor, target: Tensor) -> Tensor:
        """log p(x|z) per image in nats, summed over pixels: ``(B, C, H, W) → (B,)``."""
        if self.hparams.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)
        mean = torch.sigmoid(logits)
        log_sigma = (
            self.log_sigma if self.log_sigma is not None else torch.tensor(math.log(self.hparams.sigma))
        )
        log_sigma = log_sigma.to(mean)
        sq = ((target - mean) / log_sigma.exp()).pow(2)
        return (-0.5 * sq - log_sigma - 0.5 * LOG_2PI).flatten(1).sum(1)

    def beta(self) -> float:
        """Current KL weight: ``kl_coeff * min(1, step / kl_warmup_steps)`` while training."""
        warm = self.hparams.kl_warmup_steps
        frac = 1.0 if not warm or not self.training else min(1.0, self.global_step / warm)
        return self.hparams.kl_coeff * frac

    # ------------------------------------------------------------------ API
    def encode(self, x: Tensor) -> Tensor:
        """Posterior mean μ ``(B, latent_dim)`` (the deterministic code used for features/plots)."""
        return self.posterior(x)[0]

    def reconstruct(self, x: Tensor) -> Tensor:
        """Decoder mean at the posterior mean, ``(B, C, H, W)`` in [0, 1]."""
        return self.decode(self.encode(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.reconstruct(x)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` images ``(n, C, H, W)`` in [0, 1]: decoder means at ``z ~ N(0, I)``."""
        z = torch.randn((n, self.latent_dim), generator=generator, device=self.device)
        return self.decode(z)

    # ------------------------------------------------------------------ training hooks
    def model_input(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        if not self.hparams.binarize:
            return x, x
        xb = torch.bernoulli(x, generator=generator)
        return xb, xb

    def elbo_terms(
        self, x_in: Tensor, target: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per image, in nats, with one posterior sample: ``(−log p(target|z), KL(q(z|x_in) ‖ p(z)), μ)``.

        Shapes: ``(B, C, H, W)`` inputs → ``(B,), (B,), (B, latent_dim)``; the negative ELBO is the sum of
        the first two (Kingma & Welling 2014, eq. 10).
        """
        mu, logvar = self.posterior(x_in)
        z = self.reparameterize(mu, logvar, generator)
        return -self.log_likelihood(self.decoder(z), target), gaussian_kl(mu, logvar), mu

    def loss_terms(
        self, x_in: Tensor, target: Tensor, stage: str, generator: torch.Generator | None = None
    ) -> LossOutput:
        recon_i, kl_i, mu = self.elbo_terms(x_in, target, generator)
        recon, kl = recon_i.mean(), kl_i.mean()
        beta = self.beta() if stage == "train" else self.hparams.kl_coeff
        loss = recon + beta * kl
        x_hat = None if stage == "train" else self.decode(mu)
        return LossOutput(loss, x_hat, {"elbo": recon + kl, "recon": recon, "kl": kl})
