"""Fully connected encoder and decoder."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def activation_module(name: str) -> nn.Module:
    """An activation module by name (``relu``, ``leaky_relu``, ``gelu``, ``silu``, ``elu``, ``tanh``, ``sigmoid``).

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(_ACTIVATIONS)}") from None


def _mlp(dims: Sequence[int], act: str, last_act: bool, dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(dims) - 2 or last_act:
            layers.append(activation_module(act))
            if dropout and i < len(dims) - 2:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """Flatten, then ``Linear → act`` through ``hidden_dims``, then a linear map to ``out_dim``.

    Args:
        out_dim: output features (``latent_dim`` for an AE, ``2 * latent_dim`` for a VAE: μ and log σ²).
        hidden_dims: widths of the hidden layers, input side first (e.g. ``[512, 256]``).
        in_shape: image shape ``(C, H, W)``.
        activation: hidden-layer activation name.
        out_activation: optional activation on the output (e.g. ``relu`` for a non-negative code);
            ``None`` leaves it linear.
        dropout: dropout probability after each hidden activation (0: none).

    Shapes: ``(B, *in_shape)`` → ``(B, out_dim)``.
    """

    def __init__(
        self,
        out_dim: int = 32,
        hidden_dims: Sequence[int] = (512, 256),
        in_shape: Sequence[int] = (1, 28, 28),
        activation: str = "relu",
        out_activation: str | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.out_dim = int(out_dim)
        self.in_shape = tuple(in_shape)
        dims = [math.prod(self.in_shape), *hidden_dims, self.out_dim]
        self.net = _mlp(dims, activation, last_act=False, dropout=float(dropout))
        if out_activation is not None:
            self.net.append(activation_module(out_activation))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))


class MLPDecoder(nn.Module):
    """Mirror of :class:`MLPEncoder`: ``latent_dim`` through ``hidden_dims`` to pixel logits.

    Args:
        latent_dim: size of the code.
        hidden_dims: widths of the hidden layers, latent side first (e.g. ``[256, 512]``).
        out_shape: image shape ``(C, H, W)``.
        activation: hidden-layer activation name.
        dropout: dropout probability after each hidden activation (0: none).

    Shapes: ``(B, latent_dim)`` → logits ``(B, *out_shape)`` (unbounded; ``sigmoid`` gives [0, 1]).
    """

    def __init__(
        self,
        latent_dim: int = 32,
        hidden_dims: Sequence[int] = (256, 512),
        out_shape: Sequence[int] = (1, 28, 28),
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.out_shape = tuple(out_shape)
        dims = [self.latent_dim, *hidden_dims, math.prod(self.out_shape)]
        self.net = _mlp(dims, activation, last_act=False, dropout=float(dropout))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(-1, *self.out_shape)
