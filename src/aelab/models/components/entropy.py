"""The parts of a learned image codec (Ballé, Laparra & Simoncelli, "End-to-end Optimized Image Compression",
ICLR 2017; Ballé, Minnen, Singh, Hwang & Johnston, "Variational Image Compression with a Scale Hyperprior",
ICLR 2018): the analysis and synthesis transforms with (inverse) generalized divisive normalization, and a
learned factorized density of the latents that both trains the rate and drives the entropy coder.

All parts are fully convolutional: they code any image size (padded to a multiple of ``2 ** stages`` on the
way in, cropped on the way out).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
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


class _MonotoneLayer(nn.Module):
    """One layer ``f_k`` of the factorized density's cumulative (Ballé et al. 2018, Appendix 6.1): per channel,
    ``x ↦ g(softplus(H) x + b)`` with ``g(x) = x + tanh(a) ⊙ tanh(x)`` — monotone increasing by construction."""

    def __init__(self, channels: int, d_in: int, d_out: int, init_scale: float, last: bool) -> None:
        super().__init__()
        init = math.log(math.expm1(1 / init_scale / d_out))
        self.matrix = nn.Parameter(torch.full((channels, d_out, d_in), init))
        self.bias = nn.Parameter(torch.rand(channels, d_out, 1) - 0.5)
        self.factor = None if last else nn.Parameter(torch.zeros(channels, d_out, 1))

    def forward(self, x: Tensor) -> Tensor:  # (C, d_in, N) → (C, d_out, N)
        x = F.softplus(self.matrix) @ x + self.bias
        return x if self.factor is None else x + torch.tanh(self.factor) * torch.tanh(x)


class FactorizedPrior(nn.Module):
    """A learned, fully factorized density of the latents: one flexible univariate density per channel (Ballé et
    al. 2018, Appendix 6.1), whose cumulative ``c(y) = sigmoid(f_K ∘ … ∘ f_1(y))`` gives the probability of a
    quantized value, ``p(ŷ) = c(ŷ + ½) − c(ŷ − ½)`` — the probability the rate is measured with in training (on
    ``ŷ = y + U(−½, ½)``, the additive-noise proxy of quantization) and the entropy coder's model at coding time.

    Args:
        channels: M, the latent channels.
        filters: hidden widths of the cumulative's layers (Ballé et al. use (3, 3, 3)).
        init_scale: the initial width of each density.
        likelihood_bound: the smallest probability a value gets in training (keeps the rate finite).

    Shapes: ``likelihood((B, M, h, w)) → (B, M, h, w)`` probabilities in (0, 1].
    """

    def __init__(
        self,
        channels: int,
        filters: Sequence[int] = (3, 3, 3),
        init_scale: float = 10.0,
        likelihood_bound: float = 1e-9,
    ) -> None:
        super().__init__()
        dims = [1, *filters, 1]
        scale = init_scale ** (1 / (len(filters) + 1))
        self.layers = nn.ModuleList(
            _MonotoneLayer(channels, dims[i], dims[i + 1], scale, i == len(dims) - 2)
            for i in range(len(dims) - 1)
        )
        self.channels = int(channels)
        self.likelihood_bound = float(likelihood_bound)

    def logits_cdf(self, y: Tensor) -> Tensor:
        """``f_K ∘ … ∘ f_1(y)`` of values ``(M, N)`` per channel → ``(M, N)`` (the cumulative's logit, float32)."""
        x = y.float().unsqueeze(1)
        for layer in self.layers:
            x = layer(x)
        return x.squeeze(1)

    def likelihood(self, y: Tensor) -> Tensor:
        """``p(y)`` of each (noisy or rounded) latent ``(B, M, h, w)`` under the density convolved with U(−½, ½)."""
        b, m, h, w = y.shape
        with torch.autocast(y.device.type, enabled=False):  # the density in float32 under any autocast
            v = y.float().permute(1, 0, 2, 3).reshape(m, -1)
            lower, upper = self.logits_cdf(v - 0.5), self.logits_cdf(v + 0.5)
            sign = -torch.sign(lower + upper).detach()  # evaluate in the tail where the sigmoid is accurate
            p = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
            p = p.clamp_min(self.likelihood_bound)
        return p.view(m, b, h, w).permute(1, 0, 2, 3)

    @torch.no_grad()
    def coding_tables(self, tail: float = 1e-10, limit: int = 1024) -> tuple[np.ndarray, list[np.ndarray]]:
        """Per channel, the integer support ``[lo, hi]`` holding all but ``tail`` of the mass, and the probabilities
        of its values (float64, for the entropy coder; values outside are clamped to the support).

        Returns:
            ``(lo (M,) int64, [pmf of channel m over lo..hi])``.
        """
        grid = torch.arange(-limit, limit + 1, dtype=torch.float32, device=self.layers[0].matrix.device)
        v = grid.expand(self.channels, -1)
        cdf = torch.sigmoid(self.logits_cdf(v + 0.5)).double().cpu().numpy()  # P(Y <= k + ½)
        los, pmfs = [], []
        for m in range(self.channels):
            c = cdf[m]
            lo = int(np.searchsorted(c, tail))  # first k with P(Y <= k + ½) >= tail
            hi = int(np.searchsorted(c, 1 - tail))
            lo, hi = min(lo, limit * 2), min(max(hi, lo), limit * 2)
            below = np.concatenate([[0.0], c])[lo : hi + 1]
            pmf = c[lo : hi + 1] - below
            pmf[0] += below[0]  # the mass below lo goes to lo, above hi to hi (clamped values)
            pmf[-1] += 1.0 - c[hi]
            los.append(lo - limit)
            pmfs.append(np.maximum(pmf, 0.0))
        return np.asarray(los, dtype=np.int64), pmfs
