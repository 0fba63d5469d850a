"""The learned codec's analysis and synthesis transforms (Ballé, Laparra & Simoncelli, "End-to-end Optimized Image
Compression", ICLR 2017): stride-2 5×5 convolutions with (inverse) generalized divisive normalization.

Both are fully convolutional: they code any image size (padded to a multiple of ``2 ** stages`` on the way in
by reflection, cropped on the way out). :class:`HyperAnalysis` and :class:`HyperSynthesis` are the hyperprior's
``h_a`` and ``h_s`` (Ballé, Minnen, Singh, Hwang & Johnston, "Variational Image Compression with a Scale
Hyperprior", ICLR 2018, Fig. 4; CompressAI's ``ScaleHyperprior`` / ``MeanScaleHyperprior``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from aelab.codecs.gdn import GDN
from aelab.codecs.integer import fixed_point_forward
from aelab.utils.shapes import grid_padding


class AnalysisTransform(nn.Module):
    """``g_a``: ``stages`` × (Conv 5×5 stride 2 → GDN), the last without GDN, to ``latent_channels`` maps.

    Args:
        in_shape: the training images' ``(C, H, W)`` (C is what counts: any size is coded).
        hidden_channels: N, the channels between the stages.
        latent_channels: M, the channels of the latent map.
        stages: stride-2 stages (2 for 28×28 MNIST: a 7×7 map; 4 for photographs: H/16).
        padding_mode: how an image is padded to a multiple of ``2 ** stages``: ``reflect`` (a border that looks
            like the image; ``replicate`` where the image is too small to reflect) or ``zeros``.

    Shapes: ``(B, C, H, W) → (B, M, ceil(H / 2**stages), ceil(W / 2**stages))``.
    """

    def __init__(
        self,
        in_shape: Sequence[int] = (1, 28, 28),
        hidden_channels: int = 64,
        latent_channels: int = 32,
        stages: int = 2,
        padding_mode: str = "reflect",
    ) -> None:
        super().__init__()
        if padding_mode not in ("reflect", "zeros"):
            raise ValueError(f"padding_mode must be 'reflect' or 'zeros', got {padding_mode!r}")
        self.padding_mode = padding_mode
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
        return self.net(pad_to_grid(x, self.factor, self.padding_mode))


def pad_to_grid(x: Tensor, factor: int, mode: str = "reflect") -> Tensor:
    """``x (B, C, H, W)`` padded (centred) to a multiple of ``factor`` on both sides: by reflection (by replication
    where a side is too short to reflect) or with zeros (``mode="zeros"``)."""
    pad = grid_padding(x.shape[-2], x.shape[-1], factor)
    if not any(pad):
        return x
    if mode == "zeros":
        return F.pad(x, pad)
    short = max(pad[0], pad[1]) >= x.shape[-1] or max(pad[2], pad[3]) >= x.shape[-2]
    return F.pad(x, pad, mode="replicate" if short else "reflect")


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


class HyperAnalysis(nn.Module):
    """``h_a``: the latents' side information ``z`` (Ballé et al. 2018, Fig. 4): Conv 3×3 → ReLU, then ``stages`` ×
    (Conv 5×5 stride 2), ReLU between; on ``|y|`` for the scale hyperprior (``absolute``), on ``y`` for the
    mean–scale one (Minnen et al. 2018).

    Shapes: ``(B, M, h, w) → (B, N, ceil(h / 2**stages), ceil(w / 2**stages))``; ``y`` is zero-padded below and
    to the right to a multiple of ``2**stages``.
    """

    def __init__(
        self, latent_channels: int = 32, hyper_channels: int = 32, stages: int = 1, absolute: bool = True
    ) -> None:
        super().__init__()
        self.absolute = bool(absolute)
        self.factor = 2 ** int(stages)
        self.out_dim = int(hyper_channels)
        layers: list[nn.Module] = [nn.Conv2d(latent_channels, hyper_channels, 3, padding=1)]
        for _ in range(int(stages)):
            layers += [nn.ReLU(), nn.Conv2d(hyper_channels, hyper_channels, 5, stride=2, padding=2)]
        self.net = nn.Sequential(*layers)

    def forward(self, y: Tensor) -> Tensor:
        # zeros below and to the right only: the latents' first row and column always start a stride of z, as in
        # training on crops whose grid is a multiple of the factor (centred padding would shift that phase on a
        # whole image of another size, and h_s's scales with it: twice the bits on a 536 × 512 photograph)
        y = y.abs() if self.absolute else y
        h, w = y.shape[-2:]
        return self.net(F.pad(y, (0, (-w) % self.factor, 0, (-h) % self.factor)))


class HyperSynthesis(nn.Module):
    """``h_s``: the Gaussian's parameters from ``ẑ``: ``stages`` × (ConvTranspose 5×5 stride 2 → ReLU), then Conv
    3×3 to ``out_channels`` (M scales, or 2M: means then scales), cropped to the latents' grid. The scales' lower
    bound is the Gaussian conditional's.

    Shapes: ``(B, N, h', w') → (B, out_channels, h, w)`` for the grid ``(h, w)`` asked.
    """

    def __init__(self, hyper_channels: int = 32, out_channels: int = 64, stages: int = 1) -> None:
        super().__init__()
        self.factor = 2 ** int(stages)
        layers: list[nn.Module] = []
        for _ in range(int(stages)):
            layers += [
                nn.ConvTranspose2d(hyper_channels, hyper_channels, 5, stride=2, padding=2, output_padding=1),
                nn.ReLU(),
            ]
        layers.append(nn.Conv2d(hyper_channels, out_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z_hat: Tensor, grid: tuple[int, int]) -> Tensor:
        return self.crop(self.net(z_hat), grid)

    def crop(self, out: Tensor, grid: tuple[int, int]) -> Tensor:
        """The top-left ``grid`` of an output map (the latents' grid; the side information covers a multiple,
        padded below and to the right by :class:`HyperAnalysis`)."""
        h, w = grid
        return out[..., :h, :w]

    def forward_exact(self, z_hat: Tensor, grid: tuple[int, int], bits: int = 14) -> Tensor:
        """:meth:`forward` in exact fixed point (:func:`aelab.codecs.integer.fixed_point_forward`) on the integers
        ``ẑ``: float64 integers, the parameters times ``2**bits``, on the CPU."""
        return self.crop(fixed_point_forward(self.net, z_hat, 0, bits, bits), grid)
