"""Every objective of aelab's autoencoders, each written once: the reconstruction losses and likelihoods, the
Gaussian KL with β and its warm-up, the importance-weighted bound (training *and* evaluation), and the MMD of the
Wasserstein AE. The models (:mod:`aelab.models`) combine them; the evaluation's likelihood uses the same bound.
All values are in nats unless said otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)
LOSSES = ("bce", "mse")


# ---------------------------------------------------------------------------------------------- reconstruction
def reconstruction_loss(logits: Tensor, target: Tensor, loss: str, output: str = "sigmoid") -> Tensor:
    """The mean per-value reconstruction loss of decoder logits against targets (same shape ``(B, ...)``):

    * ``bce``: binary cross-entropy on logits (targets in [0, 1]; the output must be ``sigmoid``);
    * ``mse``: squared error of the output in data units (:func:`aelab.models.outputs.activate`: ``sigmoid(logits)``
      for pixels, the values themselves for ``identity``, clamped for ``clamp``).
    """
    from aelab.models.outputs import activate

    if loss == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    return F.mse_loss(activate(logits, output), target)


def bernoulli_log_likelihood(logits: Tensor, target: Tensor) -> Tensor:
    """log p(x|z) of a Bernoulli decoder per example, summed over values: ``(B, ...) → (B,)`` nats."""
    return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)


def gaussian_log_likelihood(mean: Tensor, target: Tensor, log_sigma: Tensor) -> Tensor:
    """log N(x; mean, σ²) per example, σ one global value or one per value (``log_sigma``: a scalar tensor, or one of
    an example's shape), summed over values: ``(B, ...) → (B,)`` nats."""
    log_sigma = log_sigma.to(mean)
    sq = ((target - mean) / log_sigma.exp()).pow(2)
    return (-0.5 * sq - log_sigma - 0.5 * LOG_2PI).flatten(1).sum(1)


# ---------------------------------------------------------------------------------------------- Gaussians
def log_normal(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; μ, diag σ²), summed over the last dimension: ``(..., D) → (...)``."""
    return (-0.5 * ((z - mu).pow(2) / logvar.exp() + logvar + LOG_2PI)).sum(-1)


def log_standard_normal(z: Tensor) -> Tensor:
    """log N(z; 0, I), summed over the last dimension: ``(..., D) → (...)``."""
    return (-0.5 * (z.pow(2) + LOG_2PI)).sum(-1)


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) per example in nats, summed over latent dimensions: ``(B, D), (B, D) → (B,)``.

    Closed form of Kingma & Welling (2014), Appendix B: ``-½ Σ (1 + log σ² − μ² − σ²)``.
    """
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def kl_weight(kl_coeff: float, warmup_steps: int, step: int | None) -> float:
    """β at training step ``step``: ``kl_coeff · min(1, step / warmup_steps)`` (linear KL warm-up, Bowman et al.
    2016; Sønderby et al. 2016); ``kl_coeff`` itself without warm-up or without a step (evaluation)."""
    if not warmup_steps or step is None:
        return float(kl_coeff)
    return float(kl_coeff) * min(1.0, step / warmup_steps)


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``z = μ + exp(½ log σ²) ⊙ ε``, ``ε ~ N(0, I)`` (Kingma & Welling 2014, Sec. 2.4); differentiable in μ and
    log σ². Shapes: ``(B, D), (B, D) → (B, D)``."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


# ---------------------------------------------------------------------------------------------- the IWAE bound
def importance_weighted_bound(
    mu: Tensor,
    logvar: Tensor,
    log_likelihood: Callable[[Tensor], Tensor],
    k: int,
    chunk: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``L_k = log (1/k) Σ_i p(x, z_i) / q(z_i|x)``, ``z_i ~ q(z|x) = N(μ, σ²)``, per example in nats, ``(B,)``
    (Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016, eq. 8): ``L_1`` is the ELBO,
    ``L_k`` tightens with ``k`` and tends to ``log p(x)`` (Theorem 1). Differentiable in μ, log σ² and the decoder
    (the reparameterized samples); the IWAE's training objective and the evaluation's test NLL (``k`` = 5000).

    Args:
        mu, logvar: the posterior ``(B, D)`` each.
        log_likelihood: ``z (S, B, D) → log p(x|z) (S, B)`` (the decoder, summed over values).
        k: importance samples per example.
        chunk: samples drawn at once (a memory bound; ``None``: all ``k``).
        generator: the source of the samples.
        dtype: the precision of the log-weights and their log-sum-exp (``float64`` in the evaluation, so a
            low-precision decoder only perturbs ``log p(x|z)``).
    """
    std = (0.5 * logvar).exp()
    log_w = []
    step = int(chunk or k)
    for start in range(0, int(k), step):
        s = min(step, int(k) - start)
        eps = torch.randn((s, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + std * eps
        zd, mud, lvd = z.to(dtype), mu.to(dtype), logvar.to(dtype)
        log_w.append(log_likelihood(z).to(dtype) + log_standard_normal(zd) - log_normal(zd, mud, lvd))
    return torch.logsumexp(torch.cat(log_w), dim=0) - math.log(int(k))


# ---------------------------------------------------------------------------------------------- MMD
def imq_mmd(z: Tensor, prior: Tensor, scales=(0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)) -> Tensor:
    """Unbiased MMD² between codes ``z`` and prior samples ``prior`` (both ``(N, d)``) with the inverse multiquadratic
    kernel ``k(x, y) = C / (C + ‖x − y‖²)``, ``C = 2 d · s`` summed over the ``scales`` s (Tolstikhin et al.,
    "Wasserstein Auto-Encoders", ICLR 2018, Sec. 4; the scales of the authors' code for a prior N(0, I))."""
    n, d = z.shape
    z, prior = z.float(), prior.float()
    zz, pp, zp = torch.cdist(z, z).pow(2), torch.cdist(prior, prior).pow(2), torch.cdist(z, prior).pow(2)
    off = 1 - torch.eye(n, device=z.device)
    total = torch.zeros((), device=z.device)
    for s in scales:
        c = 2.0 * d * s
        total = (
            total
            + ((c / (c + zz)) * off).sum() / (n * (n - 1))
            + ((c / (c + pp)) * off).sum() / (n * (n - 1))
        )
        total = total - 2 * (c / (c + zp)).mean()
    return total
