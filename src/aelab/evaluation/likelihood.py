"""Marginal log-likelihood by importance sampling: the IWAE bound (Burda, Grosse & Salakhutdinov 2016).

``log p(x) ≥ L_k = E[ log (1/k) Σ_i p(x, z_i) / q(z_i|x) ]``, ``z_i ~ q(z|x)``; ``L_1`` is the ELBO and
``L_k → log p(x)`` as ``k → ∞`` (Burda et al. 2016, Theorem 1). Test NLL is reported as ``−L_k`` in nats.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


def log_normal(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; μ, diag σ²) summed over the last dimension."""
    return (-0.5 * ((z - mu).pow(2) / logvar.exp() + logvar + LOG_2PI)).sum(-1)


@torch.no_grad()
def iwae_log_likelihood(
    x: Tensor,
    posterior: Callable[[Tensor], tuple[Tensor, Tensor]],
    log_likelihood: Callable[[Tensor, Tensor], Tensor],
    k: int,
    chunk: int = 500,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``L_k`` per example, nats: ``(B, ...) → (B,)``.

    Args:
        x: a batch of data.
        posterior: ``x → (μ, log σ²)``, each ``(B, D)``: the diagonal-Gaussian q(z|x).
        log_likelihood: ``(x (B, ...), z (S, B, D)) → log p(x|z)`` of shape ``(S, B)``.
        k: importance samples per example.
        chunk: samples drawn at once (memory bound).
        generator: for reproducible samples.
    """
    mu, logvar = posterior(x)
    std = (0.5 * logvar).exp()
    log_w = []
    for start in range(0, k, chunk):
        s = min(chunk, k - start)
        eps = torch.randn((s, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + std * eps
        log_prior = (-0.5 * (z.pow(2) + LOG_2PI)).sum(-1)
        log_w.append(log_likelihood(x, z) + log_prior - log_normal(z, mu, logvar))
    return torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k)


def vae_log_likelihood_fn(model) -> Callable[[Tensor, Tensor], Tensor]:
    """log p(x|z) of an aelab VAE for ``z`` of shape ``(S, B, D)``."""

    def fn(x: Tensor, z: Tensor) -> Tensor:
        s, b, d = z.shape
        logits = model.decoder(z.reshape(s * b, d))
        target = x.unsqueeze(0).expand(s, *x.shape).reshape(s * b, *x.shape[1:])
        return model.log_likelihood(logits, target).view(s, b)

    return fn
