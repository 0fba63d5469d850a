"""The checkerboard context model (He, Zheng, Sun, Wang & Qin, "Checkerboard Context Model for Efficient Learned
Image Compression", CVPR 2021) on the mean–scale hyperprior: :class:`CheckerboardContextHyperprior`, with its
masked convolution and the anchor pattern; coded in two parallel passes with exact fixed-point parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from aelab.codecs.integer import fixed_point_forward
from aelab.codecs.models import MeanScaleHyperprior
from aelab.codecs.range_coder import new_encoder, to_bytes


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only the kernel positions where ``mask`` is 1 (a ``mask`` buffer: the weight is
    multiplied by it in every pass, and the exact fixed-point evaluation applies it too)."""

    def __init__(self, *args, mask: Tensor, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer(
            "mask", mask.to(self.weight.dtype).expand_as(self.weight).clone(), persistent=False
        )

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


def checkerboard(grid: tuple[int, int], device=None) -> Tensor:
    """``(1, 1, h, w)``: 1 at the anchors (``(i + j)`` even), 0 at the positions coded after them."""
    i = torch.arange(grid[0], device=device)[:, None]
    j = torch.arange(grid[1], device=device)[None, :]
    return ((i + j) % 2 == 0).float()[None, None]


class CheckerboardContextHyperprior(MeanScaleHyperprior):
    """:class:`MeanScaleHyperprior` with the checkerboard context model of He, Zheng, Sun, Wang & Qin, "Checkerboard
    Context Model for Efficient Learned Image Compression", CVPR 2021: the latents are coded in two passes, the
    anchors (``(i + j)`` even) with the hyperprior alone, then the others with the hyperprior and a 5×5 masked
    convolution of the decoded anchors around them (both passes parallel over the image). The Gaussian's means and
    scales come from ``entropy_parameters`` (1×1 convolutions, Minnen et al. 2018, Fig. 4) of the hyperprior's
    ``2M`` features and the context's ``2M`` (zero for the anchors). At coding time ``h_s``, the context and the
    entropy parameters run in exact fixed point (:mod:`aelab.codecs.integer`): a string holds ``ẑ``, the anchors,
    then the rest.

    Args:
        as for :class:`MeanScaleHyperprior`.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        m = self.g_a.out_dim
        k = torch.arange(5)
        mask = (
            (k[:, None] + k[None, :]) % 2 == 1
        ).float()  # the anchors around a non-anchor (offsets of odd sum)
        self.context_prediction = MaskedConv2d(m, 2 * m, 5, padding=2, mask=mask)
        self.entropy_parameters = nn.Sequential(
            nn.Conv2d(4 * m, 3 * m, 1), nn.LeakyReLU(0.01), nn.Conv2d(3 * m, 2 * m, 1)
        )

    def _params(self, hyper: Tensor, ctx: Tensor) -> tuple[Tensor, Tensor]:
        means, scales = self.entropy_parameters(torch.cat([hyper, ctx], 1)).chunk(2, dim=1)
        return means, scales

    def latents(self, x, noise, generator=None):
        y = self.g_a(x).float()
        z_hat = self.entropy_bottleneck.quantize(self.h_a(y).float(), noise, generator)
        grid = tuple(y.shape[-2:])
        likelihoods = {"z": self.entropy_bottleneck.likelihood(z_hat)}
        if noise:
            anchor = checkerboard(grid, y.device)
            y_hat = self.gaussian_conditional.quantize(y, True, generator)
            ctx = self.context_prediction(y_hat * anchor) * (1 - anchor)
            means, scales = self._params(self.h_s(z_hat, grid), ctx)
        else:  # evaluation: the coder's own (fixed-point) parameters, two passes
            with torch.no_grad():
                y_hat, means, scales = self._two_passes(y, z_hat.double())
            y_hat, means, scales = (t.float().to(y.device) for t in (y_hat, means, scales))
        likelihoods["y"] = self.gaussian_conditional.likelihood(y_hat, scales, means)
        return y_hat, {"y": likelihoods["y"], "z": likelihoods["z"]}

    def _exact(self, module: nn.Module, x: Tensor, in_bits: int) -> Tensor:
        bits = self.gaussian_conditional.scale_bits
        return fixed_point_forward(module, x, in_bits, bits, bits)

    def _pass_params(self, hyper: Tensor, ctx: Tensor) -> tuple[Tensor, Tensor]:
        """Fixed-point ``(means, scales)`` (× 2**scale_bits) from fixed-point hyper features and context."""
        out = self._exact(
            self.entropy_parameters, torch.cat([hyper, ctx], 1), self.gaussian_conditional.scale_bits
        )
        means, scales = out.chunk(2, dim=1)
        return means, scales

    def _passes(self, z_int: Tensor, grid: tuple[int, int], quantize) -> tuple[Tensor, Tensor, Tensor]:
        """The two passes in fixed point: the anchors' parameters from the hyperprior alone, their integers
        (``quantize(means_int, scales_int, part) → q``: rounded from ``y`` by the encoder, read from the strings by
        the decoder), the context of the decoded anchors, the rest's parameters and integers. Returns ``(q, means,
        scales)``: the integers, and the parameters × 2**scale_bits (float64, on the CPU)."""
        bits = self.gaussian_conditional.scale_bits
        one = float(1 << bits)
        hyper = self.h_s.forward_exact(z_int, grid, bits)
        anchor = checkerboard(grid).double()
        means_a, scales_a = self._pass_params(hyper, torch.zeros_like(hyper))
        q_a = quantize(means_a, scales_a, anchor) * anchor
        ctx = self._exact(self.context_prediction, (q_a * one + means_a) * anchor, bits) * (1 - anchor)
        means_n, scales_n = self._pass_params(hyper, ctx)
        q_n = quantize(means_n, scales_n, 1 - anchor) * (1 - anchor)
        means = means_a * anchor + means_n * (1 - anchor)
        return q_a + q_n, means, scales_a * anchor + scales_n * (1 - anchor)

    def _encoder_passes(self, y: Tensor, z_int: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        one = float(1 << self.gaussian_conditional.scale_bits)
        y64 = y.double().cpu()
        return self._passes(
            z_int, tuple(y.shape[-2:]), lambda means, scales, part: torch.round(y64 - means / one)
        )

    def _two_passes(self, y: Tensor, z_int: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(ŷ, means, scales)`` in units (float64) as the coder computes them, for evaluation."""
        one = float(1 << self.gaussian_conditional.scale_bits)
        q, means, scales = self._encoder_passes(y, z_int)
        return q + means / one, means / one, scales / one

    @torch.no_grad()
    def compress(self, x: Tensor) -> dict:
        gc, eb = self.gaussian_conditional, self.entropy_bottleneck
        y = self.g_a(x).float()
        z = torch.round(self.h_a(y).float()).cpu().long()
        q, means, scales = self._encoder_passes(y, z.double())
        indexes = gc.indexes(scales)
        anchor = checkerboard(tuple(y.shape[-2:])).bool()[0].expand_as(q[0])
        q = q.long()
        strings = []
        for i in range(len(x)):
            encoder = new_encoder()
            eb.compress_into(encoder, z[i].reshape(len(z[i]), -1).numpy())
            for part in (anchor, ~anchor):
                gc.compress_into(encoder, q[i][part].numpy(), indexes[i][part].numpy())
            strings.append(to_bytes(encoder))
        size = tuple(x.shape[-2:])
        y_hat = gc.dequantize(q, means)
        return {"strings": strings, "shape": size, "x_hat": self.synthesize(y_hat.float().to(x.device), size)}

    @torch.no_grad()
    def decompress(self, strings: Sequence[bytes], shape: tuple[int, int]) -> dict:
        gc = self.gaussian_conditional
        decoders, z, grid = self.decode_side_information(strings, shape)
        m = self.g_a.out_dim

        def read(means: Tensor, scales: Tensor, part: Tensor) -> Tensor:
            indexes = gc.indexes(scales)
            where = part.bool()[0].expand(m, *grid)
            q = torch.zeros(len(strings), m, *grid, dtype=torch.float64)
            for i, d in enumerate(decoders):
                q[i][where] = torch.from_numpy(gc.decompress_from(d, indexes[i][where].numpy())).double()
            return q

        q, means, _ = self._passes(z, grid, read)
        y_hat = gc.dequantize(q, means)
        return {"x_hat": self.synthesize(y_hat.float().to(self.device), tuple(shape))}


__all__ = ["CheckerboardContextHyperprior", "MaskedConv2d", "checkerboard"]
