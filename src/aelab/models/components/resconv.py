"""Residual conv parts for natural images (``model/encoder=resconv``, ``model/decoder=resconv``): stride-2 stages,
each followed by pre-activation residual blocks with GroupNorm (He et al., "Identity Mappings in Deep Residual
Networks", ECCV 2016; Wu & He, "Group Normalization", ECCV 2018), and a dense head to a flat code or a 1×1 head to a
latent map (flattened: the code is still ``(B, latent_dim)``).

Like :mod:`aelab.models.components.conv`, any image size works: padded to the grid on the way in, cropped back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from aelab.errors import ConfigError
from aelab.models.components.conv import image_shape_of, stages_for
from aelab.models.components.mlp import activation_module
from aelab.utils.shapes import grid_padding

NORMS = ("group", "batch", "none")
HEADS = ("dense", "map")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


class ResBlock(nn.Module):
    """``x + conv(act(norm(conv(act(norm(x))))))``, 3×3 convolutions, the same channels and size."""

    def __init__(self, channels: int, norm: str = "group", activation: str = "silu") -> None:
        super().__init__()
        self.body = nn.Sequential(
            _norm(norm, channels), activation_module(activation), nn.Conv2d(channels, channels, 3, padding=1),
            _norm(norm, channels), activation_module(activation), nn.Conv2d(channels, channels, 3, padding=1),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _check(norm: str, head: str) -> None:
    if norm not in NORMS:
        raise ConfigError(f"model.encoder.norm={norm!r} must be one of {NORMS}")
    if head not in HEADS:
        raise ConfigError(f"model.encoder.head={head!r} must be one of {HEADS}")


def _map_channels(code: int, grid: tuple[int, int]) -> int:
    cells = grid[0] * grid[1]
    if code % cells:
        raise ConfigError(
            f"a latent map head needs a code size divisible by the map's {grid[0]}×{grid[1]} cells, got {code}: set "
            f"model.latent_dim to a multiple of {cells}, or model.encoder.head=dense"
        )
    return code // cells


class ResConvEncoder(nn.Module):
    """A 3×3 stem, then per entry of ``channels`` a stride-2 3×3 convolution and ``blocks`` residual blocks, then the
    head: ``dense`` (norm, act, a linear layer of the flattened map to ``out_dim``) or ``map`` (a 1×1 convolution to
    ``out_dim / (h·w)`` channels, flattened).

    Args:
        out_dim: the code size (``2 · latent_dim`` for a VAE).
        channels: channels of the stride-2 stages (e.g. ``[32, 64, 128]``: 32×32 → 4×4).
        blocks: residual blocks after each stage.
        in_shape: the images' ``(C, H, W)``.
        norm: ``group`` (GroupNorm, up to 8 groups), ``batch`` or ``none``.
        activation: activation name.
        head: ``dense`` or ``map``.
        min_grid: drop the last stages while the map would be under this many pixels a side (at least one stays).

    Shapes: ``(B, C, H, W) → (B, out_dim)``.
    """

    def __init__(
        self,
        out_dim: int = 32,
        channels: Sequence[int] = (32, 64, 128),
        blocks: int = 1,
        in_shape: Sequence[int] = (3, 32, 32),
        norm: str = "group",
        activation: str = "silu",
        head: str = "dense",
        min_grid: int = 4,
    ) -> None:
        super().__init__()
        _check(norm, head)
        c, h, w = image_shape_of(in_shape)
        channels = list(channels)[: stages_for(h, w, len(channels), min_grid)]
        f = 2 ** len(channels)
        self.in_shape, self.out_dim, self.head_kind = (c, h, w), int(out_dim), head
        self.padding = grid_padding(h, w, f)
        self.grid = (math.ceil(h / f), math.ceil(w / f))
        layers: list[nn.Module] = [nn.Conv2d(c, channels[0], 3, padding=1)]
        c = channels[0]
        for c_out in channels:
            layers.append(nn.Conv2d(c, c_out, 3, stride=2, padding=1))
            layers += [ResBlock(c_out, norm, activation) for _ in range(int(blocks))]
            c = c_out
        layers += [_norm(norm, c), activation_module(activation)]
        self.features = nn.Sequential(*layers)
        if head == "dense":
            self.head = nn.Linear(c * self.grid[0] * self.grid[1], self.out_dim)
        else:
            self.head = nn.Conv2d(c, _map_channels(self.out_dim, self.grid), 1)

    def forward(self, x: Tensor) -> Tensor:
        if any(self.padding):
            x = F.pad(x, self.padding)
        h = self.features(x)
        return self.head(h.flatten(1)) if self.head_kind == "dense" else self.head(h).flatten(1)


class ResConvDecoder(nn.Module):
    """The mirror of :class:`ResConvEncoder`: the code to a ``(channels[0], h, w)`` map (dense: a linear layer; map:
    the code reshaped and a 1×1 convolution), then per entry of ``channels`` ``blocks`` residual blocks and a stride-2
    transposed convolution, then norm, act and a 3×3 convolution to the image's channels (logits), cropped.

    Args:
        latent_dim: the code size.
        channels: channels per stage, low resolution first (e.g. ``[128, 64, 32]``).
        blocks, norm, activation, head, min_grid: as for :class:`ResConvEncoder` (the stages dropped are the
            low-resolution ones, so the parts stay mirrors).
        out_shape: the images' ``(C, H, W)``.

    Shapes: ``(B, latent_dim) → (B, C, H, W)`` logits.
    """

    def __init__(
        self,
        latent_dim: int = 32,
        channels: Sequence[int] = (128, 64, 32),
        blocks: int = 1,
        out_shape: Sequence[int] = (3, 32, 32),
        norm: str = "group",
        activation: str = "silu",
        head: str = "dense",
        min_grid: int = 4,
    ) -> None:
        super().__init__()
        _check(norm, head)
        c_img, h, w = image_shape_of(out_shape)
        channels = list(channels)[len(channels) - stages_for(h, w, len(channels), min_grid) :]
        f = 2 ** len(channels)
        self.latent_dim, self.out_shape, self.head_kind = int(latent_dim), (c_img, h, w), head
        gh, gw = math.ceil(h / f), math.ceil(w / f)
        left, _, top, _ = grid_padding(h, w, f)
        self._crop = (top, left) if (gh * f, gw * f) != (h, w) else None
        self._start = (channels[0], gh, gw)
        if head == "dense":
            self.fc = nn.Linear(self.latent_dim, channels[0] * gh * gw)
        else:
            self._map = (_map_channels(self.latent_dim, (gh, gw)), gh, gw)
            self.fc = nn.Conv2d(self._map[0], channels[0], 1)
        layers: list[nn.Module] = []
        outs = [*channels[1:], channels[-1]]
        for c_in, c_out in zip(channels, outs, strict=True):
            layers += [ResBlock(c_in, norm, activation) for _ in range(int(blocks))]
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
        layers += [
            _norm(norm, outs[-1]),
            activation_module(activation),
            nn.Conv2d(outs[-1], c_img, 3, padding=1),
        ]
        self.features = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        h = (
            self.fc(z).view(-1, *self._start)
            if self.head_kind == "dense"
            else self.fc(z.view(-1, *self._map))
        )
        out = self.features(h)
        if self._crop is not None:
            top, left = self._crop
            out = out[..., top : top + self.out_shape[1], left : left + self.out_shape[2]]
        return out
