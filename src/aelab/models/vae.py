"""Variational autoencoder (Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from aelab.models import objectives
from aelab.models.autoencoder import Autoencoder, Latent
from aelab.models.outputs import activate

LIKELIHOODS = ("bernoulli", "gaussian")


class VAE(Autoencoder):
    """VAE with a diagonal-Gaussian posterior ``q(z|x) = N(μ(x), σ²(x))`` and prior ``N(0, I)``.

    The encoder is any aelab encoder with ``out_dim = 2 * latent_dim``; its output is split into μ and log σ².
    ``z = μ + σ ⊙ ε`` (the reparameterization trick, Kingma & Welling 2014, Sec. 2.4); the decoder gives logits.

    Args:
        encoder, decoder, output, init, pca_lr_scale: as for :class:`~aelab.models.Autoencoder` (``init=pca``: the mean path μ starts
            at the PCA of the code size; a Gaussian likelihood).
        latent_dim: size of z.
        likelihood: ``bernoulli`` (decoder logits, for binary or [0, 1] pixels) or ``gaussian`` (mean
            ``output(logits)``, standard deviation ``sigma``).
        sigma: the Gaussian likelihood's standard deviation (data units); ``None`` learns it.
        sigma_per_value: with a learned σ, one per value of an example (per pixel, per table column) instead of one
            for all: the −ELBO then weighs each value's error by how well the model reconstructs that value.
        binarize: dynamic binarization: input *and* target resampled as ``Bernoulli(x)`` each step, as in the
            VAE/IWAE literature (from ``generator`` when one is given: seeded in validation/test).
        kl_coeff: β, the weight of the KL term (β-VAE, Higgins et al. 2017); 1 gives the ELBO.
        kl_warmup_steps: β grows linearly from 0 to ``kl_coeff`` over this many training steps (Bowman et al.
            2016; Sønderby et al. 2016); 0 disables warm-up. Needs the ``step`` argument of :meth:`forward`.
        corruption: as for :class:`~aelab.models.Autoencoder`: the input is corrupted after the binarization, the
            target stays the (binarized) clean batch — a denoising VAE.

    The forward template's hooks (:class:`~aelab.models.Autoencoder`): :meth:`inputs` binarizes (then corrupts),
    :meth:`latent` draws ``z = μ + σ ⊙ ε``, :meth:`objective` is ``recon + β·kl``.

    The loss is ``recon + β·kl``: sums over values, means over the batch, in nats. Terms: ``elbo`` (the negative
    ELBO per example, ``recon + kl``, β = 1), ``recon`` (−E_q[log p(x|z)]), ``kl``. The reconstruction is the
    decoder mean at the posterior mean.

    Raises:
        ValueError: on an encoder whose ``out_dim`` is not ``2 * latent_dim``, an unknown likelihood, or a
            Bernoulli likelihood without a sigmoid output.
    """

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
        output: str = "sigmoid",
        init: str = "random",
        pca_lr_scale: float = 0.1,
        sigma_per_value: bool = False,
        corruption: nn.Module | None = None,
    ) -> None:
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"model.likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        loss = "bce" if likelihood == "bernoulli" else "mse"
        super().__init__(encoder, decoder, latent_dim=latent_dim, loss=loss, output=output, init=init,
                         pca_lr_scale=pca_lr_scale, corruption=corruption)  # fmt: skip
        self.likelihood, self.binarize = likelihood, bool(binarize)
        self.kl_coeff, self.kl_warmup_steps = float(kl_coeff), int(kl_warmup_steps)
        if sigma is not None and float(sigma) <= 0:
            raise ValueError(f"model.sigma={sigma} must be > 0 (or null to learn it)")
        self.sigma = None if sigma is None else float(sigma)
        learned = likelihood == "gaussian" and sigma is None
        shape = tuple(getattr(self.decoder, "out_shape", ())) if sigma_per_value else ()
        self.log_sigma = nn.Parameter(torch.zeros(shape)) if learned else None

    def encoder_out_dim(self, latent_dim: int) -> int:
        """μ and log σ²: ``2 * latent_dim`` (set ``out_dim: ${aelab.mul:${model.latent_dim},2}``)."""
        return 2 * latent_dim

    # ------------------------------------------------------------------ probabilistic parts
    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(μ, log σ²)``, each ``(B, latent_dim)``, of q(z|x) for inputs ``(B, *shape)``."""
        return self.posterior_params(self.encoder(x))

    def posterior_params(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """``(μ, log σ²)`` of the encoder's output ``h`` ``(B, 2·latent_dim)``: its two halves."""
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar

    def log_likelihood(self, logits: Tensor, target: Tensor) -> Tensor:
        """log p(x|z) per example in nats, summed over values: ``(B, *shape) → (B,)``."""
        if self.likelihood == "bernoulli":
            return objectives.bernoulli_log_likelihood(logits, target)
        log_sigma = self.log_sigma if self.log_sigma is not None else torch.tensor(math.log(self.sigma))
        return objectives.gaussian_log_likelihood(activate(logits, self.output), target, log_sigma)

    def log_px(self, target: Tensor, z: Tensor) -> Tensor:
        """log p(target|z) of latents ``z (S, B, D)`` for each of the ``S`` samples: ``(S, B)`` nats (one decoder
        pass over all ``S·B`` codes; under an autocast the decoder runs at its precision, the likelihood in
        float32)."""
        s, b, d = z.shape
        logits = self.decoder(z.reshape(s * b, d))  # at whatever precision an enclosing autocast asks
        target_s = target.unsqueeze(0).expand(s, *target.shape).reshape(s * b, *target.shape[1:])
        with torch.autocast(z.device.type, enabled=False):  # the likelihood itself in float32
            return self.log_likelihood(logits.float(), target_s.float()).view(s, b)

    def likelihood_input(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """What the likelihood is evaluated on: ``Bernoulli(x)`` when the model was trained binarized, else ``x``."""
        return torch.bernoulli(x, generator=generator) if self.binarize else x

    def inputs(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(input, target)``: the likelihood's input (:meth:`likelihood_input`: ``Bernoulli(x)`` when binarizing),
        corrupted when the model has a corruption, and the uncorrupted one as the target."""
        target = self.likelihood_input(x, generator)
        return self.corrupt(target, generator), target

    def elbo_terms(
        self, x_in: Tensor, target: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per example, in nats, with one posterior sample: ``(−log p(target|z), KL(q(z|x_in) ‖ p(z)), μ)``:
        ``(B,), (B,), (B, latent_dim)``; the negative ELBO is the sum of the first two (Kingma & Welling 2014,
        eq. 10)."""
        mu, logvar = self.posterior(x_in)
        z = objectives.reparameterize(mu, logvar, generator)
        return -self.log_likelihood(self.decoder(z), target), objectives.gaussian_kl(mu, logvar), mu

    def negative_elbo(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The −ELBO (nats) of each example of a clean batch, one posterior sample (binarized first when the model
        was trained so): ``(B, *shape) → (B,)``: the VAE's anomaly score."""
        x_in = self.likelihood_input(x, generator)
        recon, kl, _ = self.elbo_terms(x_in, x_in, generator)
        return recon + kl

    # ------------------------------------------------------------------ the autoencoder's view
    def encode(self, x: Tensor) -> Tensor:
        """Posterior mean μ ``(B, latent_dim)`` (the deterministic code used for features and plots)."""
        return self.posterior(x)[0]

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` decoder means ``(n, *shape)`` at ``z ~ N(0, I)``."""
        device = generator.device if generator is not None else next(self.parameters()).device
        return self.decode(torch.randn((n, self.latent_dim), generator=generator, device=device))

    # ------------------------------------------------------------------ the objective
    def latent(self, h: Tensor, generator: torch.Generator | None = None) -> Latent:
        """The posterior ``(μ, log σ²)`` of the encoder's output and one draw ``z = μ + σ ⊙ ε`` from it (the
        reparameterization trick; ``ε`` from ``generator``), decoded by the template; the code is μ."""
        mu, logvar = self.posterior_params(h)
        z = objectives.reparameterize(mu, logvar, generator)
        return Latent(z=z, h=h, code=mu, params={"mu": mu, "logvar": logvar})

    def elbo_loss(
        self, latent: Latent, logits: Tensor, target: Tensor, step: int | None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``recon + β·kl`` (β with its warm-up while training) and the terms ``elbo``, ``recon``, ``kl``, for the
        decoder's ``logits`` of the latent step's draw and their ``target``."""
        recon = -self.log_likelihood(logits, target).mean()
        kl = objectives.gaussian_kl(latent.params["mu"], latent.params["logvar"]).mean()
        beta = objectives.kl_weight(self.kl_coeff, self.kl_warmup_steps, step if self.training else None)
        terms = {"elbo": (recon + kl).detach(), "recon": recon.detach(), "kl": kl.detach()}
        return recon + beta * kl, terms

    def objective(
        self,
        latent: Latent,
        logits: Tensor | None,
        target: Tensor,
        generator: torch.Generator | None = None,
        step: int | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The β-weighted negative ELBO (:meth:`elbo_loss`) and any penalty (:meth:`penalized`)."""
        loss, terms = self.elbo_loss(latent, logits, target, step)
        return self.penalized(loss, terms, latent, logits, generator)
