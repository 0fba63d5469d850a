"""Entropy models of a learned codec's latents, named as CompressAI names them: :class:`EntropyBottleneck`, the
learned fully factorized density of Ballé, Minnen, Singh, Hwang & Johnston, "Variational Image Compression with a
Scale Hyperprior", ICLR 2018, Appendix 6.1 (CompressAI's ``EntropyBottleneck``; the whole model that uses it alone
is CompressAI's ``FactorizedPrior``, here :class:`aelab.models.LearnedCodec`), and :class:`GaussianConditional`,
the conditional Gaussian of the latents given a hyperprior's scales (and means) (Ballé et al. 2018, Sec. 3;
Minnen, Ballé & Toderici, "Joint Autoregressive and Hierarchical Priors for Learned Image Compression", NeurIPS
2018, Sec. 2). Each both trains the rate and drives the entropy coder, in float32 under any autocast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aelab.models.components.gdn import LowerBound


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


class EntropyBottleneck(nn.Module):
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


def scale_table(minimum: float = 0.11, maximum: float = 256.0, levels: int = 64) -> Tensor:
    """CompressAI's default scale table: ``levels`` scales spaced evenly in log between ``minimum`` and
    ``maximum`` (float64). The coder quantizes every predicted scale up to the next entry, so encoder and decoder
    pick a model from the same finite set."""
    return torch.exp(torch.linspace(math.log(minimum), math.log(maximum), int(levels), dtype=torch.float64))


class GaussianConditional(nn.Module):
    """The latents' density given a hyperprior's prediction: ``y ~ N(μ, σ²)`` convolved with U(−½, ½), so
    ``p(ŷ) = Φ((½ − |ŷ − μ|)/σ) − Φ((−½ − |ŷ − μ|)/σ)`` (Ballé et al. 2018, eq. 11; the mean–scale form of
    Minnen et al. 2018; evaluated on the side of the mean where Φ is accurate, as CompressAI does). Scales are
    bounded below by ``scale_bound`` (CompressAI's 0.11) with a gradient that passes upwards.

    At coding time a scale becomes the index of the next entry of :func:`scale_table` and the integer
    ``round(y − μ)`` is coded with constriction's quantized Gaussian of that entry's scale over
    ``[−max_symbol, max_symbol]`` (values outside are clamped).

    Args:
        scale_bound: the smallest scale, in latent units.
        table_min, table_max, table_levels: the scale table (:func:`scale_table`).
        max_symbol: the coded range of ``round(y − μ)`` is ``±max_symbol``.
        likelihood_bound: the smallest probability a value gets in training.

    Shapes: ``likelihood(y (B, M, h, w), scales (B, M, h, w), means (B, M, h, w) | None) → (B, M, h, w)``.
    """

    def __init__(
        self,
        scale_bound: float = 0.11,
        table_min: float = 0.11,
        table_max: float = 256.0,
        table_levels: int = 64,
        max_symbol: int = 1023,
        likelihood_bound: float = 1e-9,
    ) -> None:
        super().__init__()
        if not 0 < table_min < table_max or int(table_levels) < 2:
            raise ValueError(
                f"the scale table needs 0 < table_min ({table_min}) < table_max ({table_max}) and at least 2 levels"
            )
        self.lower_bound = LowerBound(scale_bound)
        self.register_buffer("table", scale_table(table_min, table_max, table_levels), persistent=False)
        self.max_symbol = int(max_symbol)
        self.likelihood_bound = float(likelihood_bound)

    def likelihood(self, y: Tensor, scales: Tensor, means: Tensor | None = None) -> Tensor:
        """``p(y)`` of each (noisy or quantized) latent, in (0, 1] (float32)."""
        with torch.autocast(y.device.type, enabled=False):
            y, scales = y.float(), self.lower_bound(scales.float())
            v = (y - means.float()).abs() if means is not None else y.abs()
            normal = torch.distributions.Normal(0.0, 1.0)
            p = normal.cdf((0.5 - v) / scales) - normal.cdf((-0.5 - v) / scales)
            return p.clamp_min(self.likelihood_bound)

    def indexes(self, scales: Tensor) -> Tensor:
        """The scale table's index for each scale: the first entry at least as large (the last one above the
        table), int64, same shape."""
        s = scales.double().clamp_min(float(self.table[0]))
        return torch.searchsorted(self.table.to(s.device), s.contiguous()).clamp_max(len(self.table) - 1)

    def coding_family(self):
        """constriction's model family for the coded integers (parameters: means 0, the table's scales)."""
        import constriction

        return constriction.stream.model.QuantizedGaussian(-self.max_symbol, self.max_symbol)
