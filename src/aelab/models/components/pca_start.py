"""The PCA start (``model.init=pca``): an autoencoder whose linear encoder and decoder paths start as the PCA of its
code size fitted on the training split, with its own (nonlinear) encoder and decoder as residual paths whose last
layers start at zero — so the model starts exactly at PCA's reconstruction, and training only adds to it.

``x̂ = μ + W_dec z + g(z)``, ``z = W_enc (x − μ) + f(x)``, with ``W_enc = W_decᵀ`` = the principal components and
``μ`` the training mean at the start (:func:`fit_pca_start`), ``f`` and ``g`` the encoder and decoder of the config.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn


def zero_last_layer(module: nn.Module) -> None:
    """Zero the weight and bias of the last linear or (transposed) convolution of ``module``: its output starts at 0
    (the residual starts silent) and the layers before it still learn once it moves."""
    layers = [
        m
        for m in module.modules()
        if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d | nn.ConvTranspose1d | nn.ConvTranspose2d)
    ]
    if not layers:
        raise ValueError(f"{type(module).__name__} has no linear or convolution layer to start at zero")
    with torch.no_grad():
        layers[-1].weight.zero_()
        if layers[-1].bias is not None:
            layers[-1].bias.zero_()


class LinearSkipEncoder(nn.Module):
    """``f(x) + [W_enc (x − μ), 0]``: the encoder ``inner`` with a linear path into the first ``code_size`` outputs
    (the code, or a VAE's μ; a VAE's log σ² stays the residual's alone).

    Shapes: ``(B, *in_shape) → (B, inner.out_dim)``.
    """

    def __init__(self, inner: nn.Module, in_shape: Sequence[int], code_size: int) -> None:
        super().__init__()
        self.inner = inner
        self.in_shape, self.out_dim = tuple(int(s) for s in in_shape), int(inner.out_dim)
        self.code_size = int(code_size)
        dim = math.prod(self.in_shape)
        self.register_buffer("mean", torch.zeros(dim))
        self.linear = nn.Linear(dim, self.code_size, bias=False)
        for name in ("grid", "spatial"):
            if hasattr(inner, name):
                setattr(self, name, getattr(inner, name))

    def forward(self, x: Tensor) -> Tensor:
        out = self.inner(x)
        lin = self.linear(x.flatten(1) - self.mean.to(x.dtype))
        if self.code_size == out.shape[1]:
            return out + lin
        return torch.cat([out[:, : self.code_size] + lin, out[:, self.code_size :]], 1)


class LinearSkipDecoder(nn.Module):
    """``g(z) + μ + W_dec z``, reshaped to the data's shape: the decoder ``inner`` with a linear path.

    Shapes: ``(B, latent_dim) → (B, *out_shape)``.
    """

    def __init__(self, inner: nn.Module, out_shape: Sequence[int]) -> None:
        super().__init__()
        self.inner = inner
        self.out_shape, self.latent_dim = tuple(int(s) for s in out_shape), int(inner.latent_dim)
        dim = math.prod(self.out_shape)
        self.register_buffer("mean", torch.zeros(dim))
        self.linear = nn.Linear(self.latent_dim, dim, bias=False)

    def forward(self, z: Tensor) -> Tensor:
        return self.inner(z) + (self.linear(z) + self.mean.to(z.dtype)).view(-1, *self.out_shape)


@torch.no_grad()
def fit_pca_start(
    encoder: LinearSkipEncoder,
    decoder: LinearSkipDecoder,
    x: Tensor,
    max_examples: int = 20000,
    seed: int = 0,
) -> float:
    """Set the linear paths to the PCA of ``x`` ``(N, *shape)`` (a seeded subset of at most ``max_examples``,
    scikit-learn's randomized PCA): ``μ`` the mean, ``W_enc`` the first ``code_size`` components, ``W_dec`` their
    transpose; with fewer than ``code_size`` examples, the components of their rank and zeros for the rest of the
    code. Returns the fraction of the variance the components keep."""
    from sklearn.decomposition import PCA

    flat = x.flatten(1).double()
    if len(flat) > max_examples:
        flat = flat[torch.randperm(len(flat), generator=torch.Generator().manual_seed(seed))[:max_examples]]
    k = encoder.code_size
    # fewer examples (or values) than the code: the PCA of their rank, the remaining code units' paths at zero
    rank = min(k, flat.shape[0], flat.shape[1])
    pca = PCA(n_components=rank, svd_solver="randomized", random_state=seed).fit(flat.numpy())
    mean = torch.from_numpy(pca.mean_)
    components = torch.zeros(k, flat.shape[1], dtype=torch.float64)  # (k, D), orthonormal rows (then zeros)
    components[:rank] = torch.from_numpy(np.ascontiguousarray(pca.components_))
    for path, weight in ((encoder, components), (decoder, components.T)):
        path.mean.copy_(mean.to(path.mean))
        path.linear.weight.copy_(weight.to(path.linear.weight))
    return float(pca.explained_variance_ratio_.sum())
