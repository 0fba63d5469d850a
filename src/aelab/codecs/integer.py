"""Exact fixed-point evaluation of the small networks that choose the entropy coder's models.

A decoder must derive bit-identical model parameters (the hyperprior's scales and means, a context model's) from
what it has decoded, whatever its thread count, batch size or machine: a scale a hair on the other side of a table
boundary picks another table and the rest of the file decodes to garbage (CompressAI's most reported failure, its
issues #279, #309, #235, #320; Ballé, Johnston & Minnen, "Integer Networks for Data Compression with Latent-Variable
Models", ICLR 2019). Here every value is an integer held in float64: the weights are rounded to ``weight_bits``
fractional bits, the activations carry ``act_bits``, each layer's sums of integer products are exact (they stay
below 2**53, checked) and are rescaled by a floor division by a power of two. The result is the same in any
summation order, so on any machine.

Supported layers: ``Conv2d`` (a ``mask`` buffer, as a masked convolution has, is applied to the weight),
``ConvTranspose2d``, ``ReLU``, ``LeakyReLU`` and ``Identity``, in an ``nn.Sequential``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EXACT = 2.0**53  # the integers float64 holds exactly


def to_fixed(x: Tensor, bits: int) -> Tensor:
    """``x`` in fixed point: ``round(x · 2**bits)`` as float64 integers."""
    return torch.round(x.double() * float(1 << bits))


def _rescale(acc: Tensor, shift: int, what: str) -> Tensor:
    if acc.numel() and float(acc.abs().max()) >= EXACT / 2:
        raise ArithmeticError(
            f"fixed-point overflow in {what}: a sum reached 2**52; the model's activations are too large for exact "
            "integer coding (lower act_bits)"
        )
    return torch.floor(acc / float(1 << shift)) if shift > 0 else acc * float(1 << -shift)


@torch.no_grad()
def fixed_point_forward(
    module: nn.Module, x: Tensor, in_bits: int, weight_bits: int = 14, act_bits: int = 14
) -> Tensor:
    """Run ``module`` (an ``nn.Sequential`` of the supported layers, or one of them) exactly on fixed-point input.

    Args:
        x: float64 integers, the input times ``2**in_bits`` (``in_bits=0``: integer latents such as ``ẑ``).
        in_bits: the input's fractional bits.
        weight_bits: fractional bits of the rounded weights and biases.
        act_bits: fractional bits of every layer's output.

    Returns:
        float64 integers: the output times ``2**act_bits``. On the CPU.

    Raises:
        ArithmeticError: when a sum would leave float64's exact integers.
        TypeError: for a layer that is not supported.
    """
    layers = list(module) if isinstance(module, nn.Sequential) else [module]
    x, bits = x.double().cpu(), int(in_bits)
    for layer in layers:
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            weight = layer.weight.detach()
            if isinstance(getattr(layer, "mask", None), Tensor):
                weight = weight * layer.mask
            w = to_fixed(weight.cpu(), weight_bits)
            b = None if layer.bias is None else to_fixed(layer.bias.detach().cpu(), weight_bits + bits)
            if isinstance(layer, nn.Conv2d):
                acc = F.conv2d(x, w, b, layer.stride, layer.padding, layer.dilation, layer.groups)
            else:
                acc = F.conv_transpose2d(
                    x, w, b, layer.stride, layer.padding, layer.output_padding, layer.groups, layer.dilation
                )
            x, bits = _rescale(acc, weight_bits + bits - act_bits, type(layer).__name__), act_bits
        elif isinstance(layer, nn.ReLU):
            x = x.clamp_min(0)
        elif isinstance(layer, nn.LeakyReLU):
            slope = to_fixed(torch.tensor(layer.negative_slope), weight_bits)
            x = torch.where(x >= 0, x, _rescale(x * slope, weight_bits, "LeakyReLU"))
        elif not isinstance(layer, nn.Identity):
            raise TypeError(f"fixed_point_forward does not support {type(layer).__name__}")
    if bits != act_bits:
        x = (
            _rescale(x, bits - act_bits, "the output")
            if bits > act_bits
            else x * float(1 << (act_bits - bits))
        )
    return x
