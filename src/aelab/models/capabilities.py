"""What a model can do, declared as protocols: the LightningModule, the dashboards and the evaluation suite check
these with ``isinstance`` (never a model's class name or a list of section names).

Shapes: inputs are ``(B, *shape)`` (images ``(B, C, H, W)`` in [0, 1], table rows ``(B, F)``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn


@runtime_checkable
class Reconstructs(Protocol):
    """Gives a deterministic reconstruction ``reconstruct(x) → (B, *shape)`` in the data's units (every model)."""

    def reconstruct(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class Autoencoding(Protocol):
    """Maps inputs to flat codes and back: ``encode(x) → (B, latent_dim)``, ``decode(z) → (B, *shape)``
    (every autoencoder; not the codecs, whose latents are integer maps written to files)."""

    latent_dim: int

    def encode(self, x: Tensor) -> Tensor: ...

    def decode(self, z: Tensor) -> Tensor: ...

    def reconstruct(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class Generative(Protocol):
    """Has a prior over its codes and draws new examples from it: ``sample(n, generator) → (n, *shape)``
    (decodes of ``z ~ N(0, I)``: the VAE, IWAE and WAE)."""

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor: ...


@runtime_checkable
class Probabilistic(Protocol):
    """Has a Gaussian posterior q(z|x) and a likelihood (the VAE, IWAE): ``posterior(x) → (μ, log σ²)``,
    ``log_px(target, z (S, B, D)) → (S, B)`` nats, ``likelihood_input(x, generator)`` (a binarizing model's
    resampled input) and ``negative_elbo(x, generator) → (B,)`` nats."""

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]: ...

    def log_px(self, target: Tensor, z: Tensor) -> Tensor: ...

    def likelihood_input(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor: ...

    def negative_elbo(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor: ...


@runtime_checkable
class Denoising(Protocol):
    """Trained on corrupted input: ``corruption(x, generator)`` gives the noisy inputs (the DAE)."""

    corruption: nn.Module


@runtime_checkable
class Quantized(Protocol):
    """Codes are vectors of a finite codebook (the VQ-VAE): ``codebook_size`` entries; ``code_indices(codes)`` maps
    codes ``(N, latent_dim)`` to their indices ``(N, positions)`` and ``codes_from_indices`` back."""

    codebook_size: int

    def code_indices(self, codes: Tensor) -> Tensor: ...

    def codes_from_indices(self, indices: Tensor) -> Tensor: ...


@runtime_checkable
class Compressor(Protocol):
    """Writes images to its own bytes and reads them back exactly (the learned codecs, CompressAI's interface):
    ``compress(x (B, C, H, W)) → {"strings": [bytes per image], "shape": (H, W), "x_hat": the decoder's images}``,
    ``decompress(strings, shape) → {"x_hat": (B, C, H, W)}`` in [0, 1]; ``update()`` freezes the entropy models'
    integer tables first; ``rate_bits(x) → (B,)`` is the estimated rate of each image (bits)."""

    image_channels: int
    training_size: tuple[int, int]

    def update(self, force: bool = False) -> bool: ...

    def compress(self, x: Tensor) -> dict: ...

    def decompress(self, strings: list[bytes], shape: tuple[int, int]) -> dict: ...

    def rate_bits(self, x: Tensor) -> Tensor: ...
