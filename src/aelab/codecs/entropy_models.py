"""Entropy models of a learned codec's latents, named as CompressAI names them, each owning its coding.

* :class:`EntropyBottleneck`: the learned fully factorized density of Ballé, Minnen, Singh, Hwang & Johnston,
  "Variational Image Compression with a Scale Hyperprior", ICLR 2018, Appendix 6.1 (CompressAI's
  ``EntropyBottleneck``).
* :class:`GaussianConditional`: the latents given a hyperprior's scales (and means), ``N(μ, σ²)`` convolved with
  ``U(−½, ½)`` (Ballé et al. 2018, Sec. 3; Minnen, Ballé & Toderici, "Joint Autoregressive and Hierarchical Priors
  for Learned Image Compression", NeurIPS 2018, Sec. 2), coded with a table of scales (CompressAI's).

In training each gives the probability of its (noisy) latents, in float32 under any autocast. For coding,
:meth:`~EntropyModel.update` freezes **integer** CDF tables (24-bit frequencies, every value at least 1) into
buffers saved with the weights, so an encoder and any decoder use bit-identical models. Coding is CompressAI's
byte-string interface: ``compress(inputs, ...) → list[bytes]`` (one string per image) and ``decompress(strings,
...) → Tensor``. Where several entropy models share one string (a hyperprior's ``ẑ`` then ``ŷ``), ``compress_into``
/ ``decompress_from`` code one image's integers into and out of a shared coder of :mod:`aelab.codecs.range_coder`
(whose escapes code a value outside a table's support exactly: nothing is clamped, every integer round-trips).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aelab.codecs.gdn import LowerBound
from aelab.codecs.range_coder import (
    PRECISION,
    categorical,
    decode_values,
    encode_values,
    new_decoder,
    new_encoder,
    to_bytes,
)


def quantized_cdf(pmf: np.ndarray, overflow: float) -> np.ndarray:
    """The integer CDF of a pmf over a support plus its overflow symbol: ``(L,) → (L + 2,)`` int32, starting at 0
    and ending at ``2**24``; every symbol gets at least frequency 1 (so every value stays codable), the rest in
    proportion to its probability, the rounding remainder to the most probable symbol.

    Raises:
        ValueError: for a support too long for the frequencies.
    """
    p = np.concatenate([np.maximum(np.asarray(pmf, dtype=np.float64), 0.0), [max(float(overflow), 0.0)]])
    total, n = 1 << PRECISION, len(p)
    if n >= total:
        raise ValueError(f"a table of {n} symbols does not fit {PRECISION}-bit frequencies")
    freqs = np.floor(p / p.sum() * (total - n)).astype(np.int64) + 1
    freqs[int(np.argmax(p))] += total - int(freqs.sum())
    return np.concatenate([[0], np.cumsum(freqs)]).astype(np.int32)


class EntropyModel(nn.Module):
    """Base: frozen integer tables (``_quantized_cdf`` rows, ``_offset``, ``_cdf_length`` per table) in buffers that
    follow the weights into every checkpoint (resized on load), and the coders built from them on first use."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("_quantized_cdf", torch.zeros(0, 0, dtype=torch.int32))
        self.register_buffer("_offset", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("_cdf_length", torch.zeros(0, dtype=torch.int32))
        self._models: dict[int, object] = {}

    #: buffers whose shape follows the tables (a checkpoint's shapes are taken on load)
    table_buffers = ("_quantized_cdf", "_offset", "_cdf_length")

    def _set_tables(self, cdfs: Sequence[np.ndarray], offsets: Sequence[int]) -> None:
        width = max(len(c) for c in cdfs)
        table = np.zeros((len(cdfs), width), dtype=np.int32)
        for i, c in enumerate(cdfs):
            table[i, : len(c)] = c
        device = self._offset.device
        self._quantized_cdf = torch.from_numpy(table).to(device)
        self._offset = torch.as_tensor(np.asarray(offsets, dtype=np.int32), device=device)
        self._cdf_length = torch.as_tensor(np.asarray([len(c) for c in cdfs], dtype=np.int32), device=device)
        self._models.clear()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        for name in self.table_buffers:
            key = prefix + name
            if key in state_dict:
                setattr(self, name, torch.empty_like(state_dict[key], device=getattr(self, name).device))
        self._models.clear()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def ready(self) -> bool:
        """Whether :meth:`update` has frozen the tables."""
        return self._cdf_length.numel() > 0

    def _table(self, i: int) -> tuple[object, int, int]:
        """The coder model, offset and support length of table ``i``."""
        if not self.ready:
            raise RuntimeError(
                f"{type(self).__name__} has no coding tables: call model.update() before compressing"
            )
        if i not in self._models:
            n = int(self._cdf_length[i])
            self._models[i] = categorical(self._quantized_cdf[i, :n].cpu().numpy())
        return self._models[i], int(self._offset[i]), int(self._cdf_length[i]) - 2

    @staticmethod
    def quantize(
        y: Tensor, noise: bool, generator: torch.Generator | None = None, means: Tensor | None = None
    ) -> Tensor:
        """``y + U(−½, ½)`` (``noise``: the training proxy of rounding, Ballé et al. 2017, Sec. 2), else
        ``round(y − μ) + μ`` (``μ = 0`` without ``means``)."""
        if noise:
            return y + torch.rand(y.shape, generator=generator, device=y.device, dtype=y.dtype) - 0.5
        if means is None:
            return torch.round(y)
        return torch.round(y - means) + means


class _MonotoneLayer(nn.Module):
    """One layer ``f_k`` of the factorized density's cumulative (Ballé et al. 2018, Appendix 6.1): per channel,
    ``x ↦ g(softplus(H) x + b)`` with ``g(x) = x + tanh(a) ⊙ tanh(x)``: monotone increasing by construction."""

    def __init__(self, channels: int, d_in: int, d_out: int, init_scale: float, last: bool) -> None:
        super().__init__()
        init = math.log(math.expm1(1 / init_scale / d_out))
        self.matrix = nn.Parameter(torch.full((channels, d_out, d_in), init))
        self.bias = nn.Parameter(torch.rand(channels, d_out, 1) - 0.5)
        self.factor = None if last else nn.Parameter(torch.zeros(channels, d_out, 1))

    def forward(self, x: Tensor) -> Tensor:  # (C, d_in, N) → (C, d_out, N)
        x = F.softplus(self.matrix) @ x + self.bias
        return x if self.factor is None else x + torch.tanh(self.factor) * torch.tanh(x)


class EntropyBottleneck(EntropyModel):
    """A learned, fully factorized density of the latents: one flexible univariate density per channel (Ballé et
    al. 2018, Appendix 6.1), whose cumulative ``c(y) = sigmoid(f_K ∘ … ∘ f_1(y))`` gives the probability of a
    quantized value, ``p(ŷ) = c(ŷ + ½) − c(ŷ − ½)``.

    Args:
        channels: the latent channels.
        filters: hidden widths of the cumulative's layers (Ballé et al. use (3, 3, 3)).
        init_scale: the initial width of each density.
        likelihood_bound: the smallest probability a value gets in training (keeps the rate finite).
        tail_mass: the probability left outside a channel's coded support (its overflow symbol).
        max_value: the widest support looked at when the tables are frozen (``±max_value``).

    Shapes: ``likelihood((B, C, h, w)) → (B, C, h, w)`` probabilities in (0, 1]; the coder takes an image's
    integers ``(C, N)``.
    """

    def __init__(
        self,
        channels: int,
        filters: Sequence[int] = (3, 3, 3),
        init_scale: float = 10.0,
        likelihood_bound: float = 1e-9,
        tail_mass: float = 1e-9,
        max_value: int = 1024,
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
        self.tail_mass, self.max_value = float(tail_mass), int(max_value)

    def logits_cdf(self, y: Tensor) -> Tensor:
        """``f_K ∘ … ∘ f_1(y)`` of values ``(C, N)`` per channel → ``(C, N)`` (the cumulative's logit, float32)."""
        x = y.float().unsqueeze(1)
        for layer in self.layers:
            x = layer(x)
        return x.squeeze(1)

    def likelihood(self, y: Tensor) -> Tensor:
        """``p(y)`` of each (noisy or rounded) latent ``(B, C, h, w)`` under the density convolved with U(−½, ½)."""
        b, c, h, w = y.shape
        with torch.autocast(y.device.type, enabled=False):  # the density in float32 under any autocast
            v = y.float().permute(1, 0, 2, 3).reshape(c, -1)
            lower, upper = self.logits_cdf(v - 0.5), self.logits_cdf(v + 0.5)
            sign = -torch.sign(lower + upper).detach()  # evaluate in the tail where the sigmoid is accurate
            p = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
            p = p.clamp_min(self.likelihood_bound)
        return p.view(c, b, h, w).permute(1, 0, 2, 3)

    @torch.no_grad()
    def update(self, force: bool = False) -> bool:
        """Freeze each channel's integer table from the current density: the support holding all but
        ``tail_mass`` of the mass, and its overflow symbol. Returns True (the tables were rebuilt)."""
        limit = self.max_value
        grid = torch.arange(-limit, limit + 1, dtype=torch.float32, device=self.layers[0].matrix.device)
        cdf = torch.sigmoid(self.logits_cdf(grid.expand(self.channels, -1) + 0.5)).double().cpu().numpy()
        cdfs, offsets = [], []
        for c in cdf:  # c[k] = P(Y <= grid[k] + ½)
            lo = min(int(np.searchsorted(c, self.tail_mass / 2)), 2 * limit)
            hi = min(max(int(np.searchsorted(c, 1 - self.tail_mass / 2)), lo), 2 * limit)
            below = np.concatenate([[0.0], c])[lo : hi + 1]
            pmf = c[lo : hi + 1] - below
            overflow = below[0] + (1.0 - c[hi])
            cdfs.append(quantized_cdf(pmf, overflow))
            offsets.append(lo - limit)
        self._set_tables(cdfs, offsets)
        return True

    def compress_into(self, encoder, values: np.ndarray) -> None:
        """One image's integers ``(C, N)`` into ``encoder``, channel by channel."""
        for c in range(self.channels):
            encode_values(encoder, values[c], *self._table(c))

    def decompress_from(self, decoder, n: int) -> np.ndarray:
        """``(C, n)`` integers of one image from ``decoder`` (the inverse of :meth:`compress_into`)."""
        return np.stack([decode_values(decoder, n, *self._table(c)) for c in range(self.channels)])

    @torch.no_grad()
    def compress(self, inputs: Tensor) -> list[bytes]:
        """Latents ``(B, C, h, w)`` → one byte string per image: ``round(inputs)`` (an integer tensor as it is),
        channel by channel, each channel in raster order (CompressAI's ``EntropyBottleneck.compress``)."""
        symbols = (torch.round(inputs) if inputs.is_floating_point() else inputs).long().cpu()
        strings = []
        for image in symbols:
            encoder = new_encoder()
            self.compress_into(encoder, image.reshape(len(image), -1).numpy())
            strings.append(to_bytes(encoder))
        return strings

    @torch.no_grad()
    def decompress(self, strings: Sequence[bytes], size: tuple[int, int]) -> Tensor:
        """The strings of :meth:`compress` of latents of ``size`` ``(h, w)`` → the rounded latents ``(B, C, h,
        w)`` (float32, on the CPU)."""
        h, w = (int(s) for s in size)
        y = np.stack([self.decompress_from(new_decoder(s), h * w) for s in strings])
        return torch.from_numpy(y).view(len(strings), self.channels, h, w).float()


def scale_table(minimum: float = 0.11, maximum: float = 256.0, levels: int = 64) -> Tensor:
    """CompressAI's default scale table: ``levels`` scales spaced evenly in log between ``minimum`` and ``maximum``
    (float64)."""
    return torch.exp(torch.linspace(math.log(minimum), math.log(maximum), int(levels), dtype=torch.float64))


class GaussianConditional(EntropyModel):
    """The latents given predicted scales σ (and means μ): ``p(ŷ) = Φ((ŷ − μ + ½)/σ) − Φ((ŷ − μ − ½)/σ)``.

    At coding time the scales come in fixed point (``scale_bits`` fractional bits, from the hyperprior's exact
    integer synthesis, :mod:`aelab.codecs.integer`) and each picks the first entry of an integer scale table at
    least as large — an integer comparison, so an encoder and any decoder pick the same table for the same ``ẑ``.
    Each table entry has its frozen integer CDF over ``±ceil(σ · Φ⁻¹(1 − tail_mass / 2))`` and an overflow symbol.

    Args:
        scale_bound: the smallest scale, in training and coding (CompressAI's 0.11); its gradient passes upwards.
        table_min, table_max, table_levels: the coder's scales: ``table_levels`` log-spaced in
            [table_min, table_max] (CompressAI's 0.11, 256, 64), rounded up to the fixed-point grid.
        tail_mass: the probability left outside a table's support.
        likelihood_bound: the smallest probability a value gets in training.
        scale_bits: fractional bits of the fixed-point scales.

    Shapes: ``likelihood(y (B, M, h, w), scales (B, M, h, w), means | None) → (B, M, h, w)``.
    """

    def __init__(
        self,
        scale_bound: float = 0.11,
        table_min: float = 0.11,
        table_max: float = 256.0,
        table_levels: int = 64,
        tail_mass: float = 1e-9,
        likelihood_bound: float = 1e-9,
        scale_bits: int = 14,
    ) -> None:
        super().__init__()
        if not 0 < table_min < table_max or int(table_levels) < 2:
            raise ValueError(
                f"the scale table needs 0 < table_min ({table_min}) < table_max ({table_max}) and at least 2 levels"
            )
        self.lower_bound = LowerBound(scale_bound)
        self.scale_bound, self.tail_mass = float(scale_bound), float(tail_mass)
        self.likelihood_bound, self.scale_bits = float(likelihood_bound), int(scale_bits)
        one = 1 << self.scale_bits
        table = torch.ceil(scale_table(table_min, table_max, table_levels) * one).long()
        self.register_buffer("scale_table_int", table, persistent=False)
        self.update()

    @property
    def table(self) -> Tensor:
        """The coder's scales (float64), ``(levels,)``."""
        return self.scale_table_int.double() / (1 << self.scale_bits)

    def likelihood(self, y: Tensor, scales: Tensor, means: Tensor | None = None) -> Tensor:
        """``p(y)`` of each (noisy or quantized) latent, in (0, 1] (float32)."""
        with torch.autocast(y.device.type, enabled=False):
            y, scales = y.float(), self.lower_bound(scales.float())
            v = (y - means.float()).abs() if means is not None else y.abs()
            normal = torch.distributions.Normal(0.0, 1.0)
            p = normal.cdf((0.5 - v) / scales) - normal.cdf((-0.5 - v) / scales)
            return p.clamp_min(self.likelihood_bound)

    def indexes(self, scales_int: Tensor) -> Tensor:
        """The table index of each fixed-point scale (int64, ``scale_bits`` fractional bits): the first entry at
        least as large as ``max(scale, scale_bound)``, the last one above the table; same shape."""
        bound = math.ceil(self.scale_bound * (1 << self.scale_bits))
        s = scales_int.long().clamp_min(bound).contiguous()
        table = self.scale_table_int.to(s.device)
        return torch.searchsorted(table, s).clamp_max(len(table) - 1)

    @torch.no_grad()
    def update(self, force: bool = False) -> bool:
        """Freeze the integer CDF of every table scale (they depend on the table alone). Returns True."""
        multiplier = -torch.special.ndtri(torch.tensor(self.tail_mass / 2, dtype=torch.float64))
        cdfs, offsets = [], []
        for sigma in self.table.tolist():
            n = math.ceil(sigma * float(multiplier))
            k = torch.arange(-n, n + 1, dtype=torch.float64)
            upper, lower = torch.special.ndtr((k + 0.5) / sigma), torch.special.ndtr((k - 0.5) / sigma)
            overflow = 2 * float(torch.special.ndtr(torch.tensor((-n - 0.5) / sigma, dtype=torch.float64)))
            cdfs.append(quantized_cdf((upper - lower).numpy(), overflow))
            offsets.append(-n)
        self._set_tables(cdfs, offsets)
        return True

    def symbols(self, inputs: Tensor, means_int: Tensor | None = None) -> Tensor:
        """The integers the coder codes, ``round(y − μ)`` (int64, on the CPU; CompressAI's ``quantize(...,
        "symbols", means)``), with the means in fixed point (``scale_bits`` fractional bits, as :meth:`indexes`
        takes the scales; ``None``: no means) and the difference taken in float64."""
        y = inputs.double().cpu()
        if means_int is not None:
            y = y - means_int.cpu() / float(1 << self.scale_bits)
        return torch.round(y).long()

    def dequantize(self, symbols: Tensor, means_int: Tensor | None = None) -> Tensor:
        """``ŷ = q + μ`` (float64, on the CPU) of the coded integers ``q`` (the inverse of :meth:`symbols`)."""
        q = symbols.double().cpu()
        return q if means_int is None else q + means_int.cpu() / float(1 << self.scale_bits)

    def compress_into(self, encoder, values: np.ndarray, indexes: np.ndarray) -> None:
        """One image's integers ``round(y − μ)`` ``(N,)`` with their table indexes ``(N,)``: grouped by table, in
        ascending table order, each group in raster order."""
        for i in np.unique(indexes).tolist():
            encode_values(encoder, values[indexes == i], *self._table(i))

    def decompress_from(self, decoder, indexes: np.ndarray) -> np.ndarray:
        """``(N,)`` integers of one image, given the table indexes the decoder computed (the inverse of
        :meth:`compress_into`)."""
        out = np.zeros(len(indexes), dtype=np.int64)
        for i in np.unique(indexes).tolist():
            where = indexes == i
            out[where] = decode_values(decoder, int(where.sum()), *self._table(i))
        return out

    @torch.no_grad()
    def compress(self, inputs: Tensor, indexes: Tensor, means_int: Tensor | None = None) -> list[bytes]:
        """Latents ``(B, ...)`` with their table :meth:`indexes` (same shape) and means (fixed point, or
        ``None``) → one byte string per image holding its :meth:`symbols` (CompressAI's
        ``GaussianConditional.compress``)."""
        symbols, indexes = self.symbols(inputs, means_int), indexes.cpu()
        strings = []
        for q, i in zip(symbols, indexes, strict=True):
            encoder = new_encoder()
            self.compress_into(encoder, q.reshape(-1).numpy(), i.reshape(-1).numpy())
            strings.append(to_bytes(encoder))
        return strings

    @torch.no_grad()
    def decompress(
        self, strings: Sequence[bytes], indexes: Tensor, means_int: Tensor | None = None
    ) -> Tensor:
        """The strings of :meth:`compress`, the same indexes and means → ``ŷ`` (float64, on the CPU, shaped as
        ``indexes``)."""
        indexes = indexes.cpu()
        q = np.stack(
            [
                self.decompress_from(new_decoder(s), i.reshape(-1).numpy())
                for s, i in zip(strings, indexes, strict=True)
            ]
        )
        return self.dequantize(torch.from_numpy(q).view(indexes.shape), means_int)
