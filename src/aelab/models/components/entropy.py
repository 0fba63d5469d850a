"""Entropy models of a learned codec's latents, named as CompressAI names them: :class:`EntropyBottleneck`, the
learned fully factorized density of Ballé, Minnen, Singh, Hwang & Johnston, "Variational Image Compression with a
Scale Hyperprior", ICLR 2018, Appendix 6.1 (CompressAI's ``EntropyBottleneck``; the whole model that uses it alone
is CompressAI's ``FactorizedPrior``, here :class:`aelab.models.LearnedCodec`). It both trains the rate and
drives the entropy coder, in float32 under any autocast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


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
