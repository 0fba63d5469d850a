"""Convolutional encoder and decoder for images of any size (28×28 → 7×7 → 28×28 for MNIST with two stages).

Each stride-2 stage halves the resolution, so the parts work on a grid of ``f = 2 ** len(channels)``: an image
whose height or width is not a multiple of ``f`` is zero-padded (evenly on both sides) to the next multiple on
the way in, and the decoder's output is cropped back to the image size on the way out. Sizes that are a
multiple of ``f`` (MNIST's 28 with two stages) are neither padded nor cropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from aelab.errors import ConfigError
from aelab.models.components.mlp import activation_module as make_activation
from aelab.utils.shapes import grid_padding


def stages_for(h: int, w: int, stages: int, min_grid: int = 1) -> int:
    """How many of ``stages`` stride-2 stages an ``h × w`` image takes so that the smallest side of the latent map,
    ``ceil(min(h, w) / 2**s)``, stays at least ``min_grid`` (at least one stage; ``min_grid=1``: all of them).

    Example: an 8×8 image with two stages and ``min_grid=4`` takes one (8 → 4), not two (8 → 4 → 2)."""
    s = int(stages)
    while s > 1 and math.ceil(min(h, w) / 2**s) < int(min_grid):
        s -= 1
    return s


def image_shape_of(shape: Sequence[int]) -> tuple[int, int, int]:
    """``(C, H, W)`` of an image shape.

    Raises:
        ConfigError: for a shape that is not an image's (a table row ``(F,)``), naming the parts to use instead.
    """
    if len(shape) != 3:
        raise ConfigError(
            f"conv parts take images (C, H, W), and the data's examples are {list(shape)}: use MLP parts "
            "(model/encoder=mlp model/decoder=mlp, or model=ae / vae)"
        )
    return tuple(int(s) for s in shape)


class ConvEncoder(nn.Module):
    """Stride-2 convolutions halve the resolution once per entry of ``channels``, then a linear head.

    With two entries a 28×28 image becomes 7×7 (28 → 14 → 7). Each stage is
    ``Conv3x3(stride 2) → BatchNorm → act`` (``batch_norm=False`` drops the norm).

    Args:
        out_dim: output features (``latent_dim``, or ``2 * latent_dim`` for a VAE); with ``spatial`` the
            channels of the output map.
        channels: output channels per downsampling stage (e.g. ``[32, 64]``).
        in_shape: image shape ``(C, H, W)``; ``H`` and ``W`` are zero-padded to a multiple of
            ``2 ** len(channels)`` when they are not one.
        activation: activation name.
        batch_norm: use BatchNorm after each convolution.
        spatial: keep the feature map: a 1×1 convolution to ``out_dim`` channels instead of the linear head
            (for vector-quantized and entropy-coded latents).
        min_grid: use only the first stages of ``channels`` that keep the latent map at least this many pixels
            a side (:func:`stages_for`; 1: every stage).

    Shapes: ``(B, C, H, W)`` → ``(B, out_dim)``, or ``(B, out_dim, H', W')`` with ``spatial``
    (``H' = ceil(H / 2**len(channels))``).
    """

    def __init__(
        self,
        out_dim: int = 32,
        channels: Sequence[int] = (32, 64),
        in_shape: Sequence[int] = (1, 28, 28),
        activation: str = "relu",
        batch_norm: bool = True,
        spatial: bool = False,
        min_grid: int = 1,
    ) -> None:
        super().__init__()
        c, h, w = image_shape_of(in_shape)
        channels = list(channels)[: stages_for(h, w, len(channels), min_grid)]
        f = 2 ** len(channels)
        self.out_dim = int(out_dim)
        self.in_shape = (c, h, w)
        self.padding = grid_padding(h, w, f)
        self.grid = (math.ceil(h / f), math.ceil(w / f))
        self.spatial = bool(spatial)
        layers: list[nn.Module] = []
        for c_out in channels:
            layers += [nn.Conv2d(c, c_out, 3, stride=2, padding=1, bias=not batch_norm)]
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(make_activation(activation))
            c = c_out
        self.features = nn.Sequential(*layers)
        if self.spatial:
            self.head = nn.Conv2d(c, self.out_dim, 1)
        else:
            self.head = nn.Linear(c * self.grid[0] * self.grid[1], self.out_dim)

    def forward(self, x: Tensor) -> Tensor:
        if any(self.padding):
            x = F.pad(x, self.padding)
        h = self.features(x)
        return self.head(h) if self.spatial else self.head(h.flatten(1))


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: linear to ``(channels[0], H/f, W/f)``, then stride-2 transposed convs.

    Args:
        latent_dim: size of the code; with ``spatial`` the channels of the input map.
        channels: channels per upsampling stage, low-resolution side first (e.g. ``[64, 32]``).
        out_shape: image shape ``(C, H, W)``; the output is cropped to it from the padded size.
        activation: activation name.
        batch_norm: use BatchNorm after each hidden transposed convolution.
        spatial: take a code map ``(B, latent_dim, H/f, W/f)`` (a 1×1 convolution instead of the linear layer).
        min_grid: as for :class:`ConvEncoder`: the stages dropped are the low-resolution ones (the first entries
            of ``channels``), so the parts stay mirrors.

    Shapes: ``(B, latent_dim)`` (or ``(B, latent_dim, H/f, W/f)``) → logits ``(B, C, H, W)``.
    """

    def __init__(
        self,
        latent_dim: int = 32,
        channels: Sequence[int] = (64, 32),
        out_shape: Sequence[int] = (1, 28, 28),
        activation: str = "relu",
        batch_norm: bool = True,
        spatial: bool = False,
        min_grid: int = 1,
    ) -> None:
        super().__init__()
        c_img, h, w = image_shape_of(out_shape)
        channels = list(channels)[len(channels) - stages_for(h, w, len(channels), min_grid) :]
        f = 2 ** len(channels)
        self.latent_dim = int(latent_dim)
        self.out_shape = (c_img, h, w)
        self.spatial = bool(spatial)
        gh, gw = math.ceil(h / f), math.ceil(w / f)
        left, _, top, _ = grid_padding(h, w, f)
        self._crop = (top, left) if (gh * f, gw * f) != (h, w) else None
        self._start = (channels[0], gh, gw)
        if self.spatial:
            self.fc = nn.Sequential(nn.Conv2d(self.latent_dim, channels[0], 1), make_activation(activation))
        else:
            self.fc = nn.Sequential(
                nn.Linear(self.latent_dim, channels[0] * gh * gw), make_activation(activation)
            )
        layers: list[nn.Module] = []
        outs = [*channels[1:], None]
        for c_in, c_out in zip(channels, outs, strict=True):
            if c_out is None:  # last stage: to image channels, no norm / activation (logits)
                layers.append(nn.ConvTranspose2d(c_in, c_img, 4, stride=2, padding=1))
            else:
                layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(c_out))
                layers.append(make_activation(activation))
        self.features = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        h = self.fc(z) if self.spatial else self.fc(z).view(-1, *self._start)
        out = self.features(h)
        if self._crop is not None:
            top, left = self._crop
            out = out[..., top : top + self.out_shape[1], left : left + self.out_shape[2]]
        return out
