"""The learned codec's analysis and synthesis transforms (Ballé, Laparra & Simoncelli, "End-to-end Optimized Image
Compression", ICLR 2017): stride-2 5×5 convolutions with (inverse) generalized divisive normalization.

Both are fully convolutional: they code any image size (padded to a multiple of ``2 ** stages`` on the way in,
cropped on the way out).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from aelab.models.components.conv import grid_padding
from aelab.models.components.gdn import GDN


class AnalysisTransform(nn.Module):
    """``g_a``: ``stages`` × (Conv 5×5 stride 2 → GDN), the last without GDN, to ``latent_channels`` maps.

    Args:
        in_shape: the training images' ``(C, H, W)`` (C is what counts: any size is coded).
        hidden_channels: N, the channels between the stages.
        latent_channels: M, the channels of the latent map.
        stages: stride-2 stages (2 for 28×28 MNIST: a 7×7 map; 4 for photographs: H/16).

    Shapes: ``(B, C, H, W) → (B, M, ceil(H / 2**stages), ceil(W / 2**stages))``.
    """

    def __init__(
        self,
        in_shape: Sequence[int] = (1, 28, 28),
        hidden_channels: int = 64,
        latent_channels: int = 32,
        stages: int = 2,
    ) -> None:
        super().__init__()
        c = int(in_shape[0])
        self.factor = 2 ** int(stages)
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_dim = int(latent_channels)
        self.spatial = True
        layers: list[nn.Module] = []
        for i in range(int(stages)):
            last = i == int(stages) - 1
            layers.append(nn.Conv2d(c, latent_channels if last else hidden_channels, 5, stride=2, padding=2))
            if not last:
                layers.append(GDN(hidden_channels))
            c = hidden_channels
        self.net = nn.Sequential(*layers)
        f = self.factor
        self.grid = (math.ceil(self.in_shape[1] / f), math.ceil(self.in_shape[2] / f))

    def forward(self, x: Tensor) -> Tensor:
        pad = grid_padding(x.shape[-2], x.shape[-1], self.factor)
        return self.net(F.pad(x, pad) if any(pad) else x)


class SynthesisTransform(nn.Module):
    """``g_s``: the mirror of :class:`AnalysisTransform` with IGDN and 5×5 stride-2 transposed convolutions, to pixel
    logits (a sigmoid gives [0, 1]); cropped to ``out_size`` (default: the training images' size).

    Shapes: ``(B, M, h, w) → (B, C, H, W)``.
    """

    def __init__(
        self,
        out_shape: Sequence[int] = (1, 28, 28),
        hidden_channels: int = 64,
        latent_channels: int = 32,
        stages: int = 2,
    ) -> None:
        super().__init__()
        self.out_shape = tuple(int(s) for s in out_shape)
        self.factor = 2 ** int(stages)
        self.latent_dim = int(latent_channels)
        c = int(latent_channels)
        layers: list[nn.Module] = []
        for i in range(int(stages)):
            last = i == int(stages) - 1
            layers.append(
                nn.ConvTranspose2d(
                    c,
                    self.out_shape[0] if last else hidden_channels,
                    5,
                    stride=2,
                    padding=2,
                    output_padding=1,
                )
            )
            if not last:
                layers.append(GDN(hidden_channels, inverse=True))
            c = hidden_channels
        self.net = nn.Sequential(*layers)

    def forward(self, y: Tensor, out_size: tuple[int, int] | None = None) -> Tensor:
        h, w = out_size or self.out_shape[1:]
        out = self.net(y)
        left, _, top, _ = grid_padding(h, w, self.factor)
        return out[..., top : top + h, left : left + w]
