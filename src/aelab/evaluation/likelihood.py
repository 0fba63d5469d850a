"""Marginal log-likelihood by importance sampling: the IWAE bound (Burda, Grosse & Salakhutdinov 2016).

``log p(x) ≥ L_k = E[ log (1/k) Σ_i p(x, z_i) / q(z_i|x) ]``, ``z_i ~ q(z|x)``; ``L_1`` is the ELBO and
``L_k → log p(x)`` as ``k → ∞`` (Burda et al. 2016, Theorem 1). Test NLL is reported as ``−L_k`` in nats.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from aelab.models.distributions import log_normal, log_standard_normal


@torch.no_grad()
def iwae_log_likelihood(
    x: Tensor,
    posterior: Callable[[Tensor], tuple[Tensor, Tensor]],
    log_likelihood: Callable[[Tensor, Tensor], Tensor],
    k: int,
    chunk: int = 500,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``L_k`` per example, nats: ``(B, ...) → (B,)``, in float64 (the samples are drawn in float32; the
    log-weights and their log-sum-exp are float64, so a low-precision decoder only perturbs ``log p(x|z)``).

    Args:
        x: a batch of data.
        posterior: ``x → (μ, log σ²)``, each ``(B, D)``: the diagonal-Gaussian q(z|x).
        log_likelihood: ``(x (B, ...), z (S, B, D)) → log p(x|z)`` of shape ``(S, B)``.
        k: importance samples per example.
        chunk: samples drawn at once (memory bound).
        generator: for reproducible samples.
    """
    mu, logvar = posterior(x)
    dtype = torch.promote_types(mu.dtype, torch.float32)  # bf16/half posteriors are sampled in float32
    mu, logvar = mu.to(dtype), logvar.to(dtype)
    std = (0.5 * logvar).exp()
    log_w = []
    for start in range(0, k, chunk):
        s = min(chunk, k - start)
        eps = torch.randn((s, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + std * eps
        log_prior = log_standard_normal(z.double())
        log_w.append(
            log_likelihood(x, z).double() + log_prior - log_normal(z.double(), mu.double(), logvar.double())
        )
    return torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k)


def vae_log_likelihood_fn(model, bf16: bool = False) -> Callable[[Tensor, Tensor], Tensor]:
    """log p(x|z) (nats, float32 sums over pixels) of an aelab VAE for ``z`` of shape ``(S, B, D)``.

    ``bf16`` runs the decoder under bf16 autocast (where the device has native bf16 this is 2–4× faster); its
    logits are cast to float32 before the per-pixel log-likelihoods are summed.
    """

    def fn(x: Tensor, z: Tensor) -> Tensor:
        s, b, d = z.shape
        with torch.autocast(z.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model.decoder(z.reshape(s * b, d))
        target = x.unsqueeze(0).expand(s, *x.shape).reshape(s * b, *x.shape[1:])
        return model.log_likelihood(logits.float(), target).view(s, b)

    return fn
