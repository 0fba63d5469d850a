"""What a model can do, declared as protocols: dashboards and the evaluation suite check these with
``isinstance`` instead of probing attributes."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn


@runtime_checkable
class Generative(Protocol):
    """Draws new images: ``sample(n, generator) → (n, 1, 28, 28)`` in [0, 1] (the VAE's prior samples)."""

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
