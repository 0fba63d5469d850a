"""What a model can do, declared as protocols: dashboards and the evaluation suite check these with
``isinstance`` instead of probing attributes."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn


@runtime_checkable
class Generative(Protocol):
    """Has a prior over its codes and draws new images from it: ``sample(n, generator) → (n, C, H, W)`` in
    [0, 1] (decodes of ``z ~ N(0, I)``: the VAE, IWAE and WAE)."""

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor: ...


@runtime_checkable
class Probabilistic(Protocol):
    """Has a posterior q(z|x) and a per-image ELBO in nats (the VAE)."""

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]: ...

    def elbo_terms(
        self, x_in: Tensor, target: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]: ...


@runtime_checkable
class Denoising(Protocol):
    """Trained on corrupted input: ``corruption(x, generator)`` gives the noisy images (the DAE)."""

    corruption: nn.Module


@runtime_checkable
class Quantized(Protocol):
    """Codes are vectors of a finite codebook (the VQ-VAE): ``codebook_size`` entries; ``code_indices(codes)`` maps
    codes ``(N, latent_dim)`` to their indices ``(N, positions)`` and ``codes_from_indices`` back."""

    codebook_size: int

    def code_indices(self, codes: Tensor) -> Tensor: ...

    def codes_from_indices(self, indices: Tensor) -> Tensor: ...
