"""Log densities and divergences of the Gaussians aelab's models use, in nats (one place for each formula)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


def log_normal(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; μ, diag σ²), summed over the last dimension: ``(..., D) → (...)``."""
    return (-0.5 * ((z - mu).pow(2) / logvar.exp() + logvar + LOG_2PI)).sum(-1)


def log_standard_normal(z: Tensor) -> Tensor:
    """log N(z; 0, I), summed over the last dimension: ``(..., D) → (...)``."""
    return (-0.5 * (z.pow(2) + LOG_2PI)).sum(-1)


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) per example, in nats, summed over latent dimensions.

    Closed form of Kingma & Welling (2014), Appendix B: ``-½ Σ (1 + log σ² − μ² − σ²)``.
    Shapes: ``(B, D), (B, D) → (B,)``.
    """
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)
