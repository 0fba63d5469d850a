"""Generalized divisive normalization (Ballé, Laparra & Simoncelli, "Density Modeling of Images using a Generalized
Normalization Transformation", ICLR 2016, eq. 6) with the non-negative reparametrization of CompressAI
(``compressai.layers.GDN``, ``compressai.ops.parametrizers.NonNegativeParametrizer``).

A parameter ``p`` that must stay non-negative is stored as ``θ`` with ``p = max(θ, √(m + ε))² − ε``: the pedestal
``ε = 2⁻³⁶`` keeps the derivative of the square away from 0 at ``p = 0`` (γ's off-diagonal entries start there,
and a plain square would leave them at exactly 0 forever), and the lower bound ``√(m + ε)`` passes a gradient
that would raise ``θ`` back above it (:class:`LowerBound`), so a parameter pinned at its bound can still grow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _LowerBoundFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, bound: Tensor) -> Tensor:
        ctx.save_for_backward(x, bound)
        return torch.max(x, bound)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, bound = ctx.saved_tensors
        # pass the gradient where x is above the bound, or where descending along it raises x (grad < 0)
        passes = (x >= bound) | (grad < 0)
        return passes.to(grad.dtype) * grad, None


class LowerBound(nn.Module):
    """``max(x, bound)`` whose gradient also passes below the bound when it points upwards (CompressAI's
    ``LowerBound``; Ballé et al. 2018's reference code)."""

    def __init__(self, bound: float) -> None:
        super().__init__()
        self.register_buffer("bound", torch.tensor(float(bound)), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return _LowerBoundFunction.apply(x, self.bound.to(x.dtype))


class NonNegativeParametrizer(nn.Module):
    """``p = max(θ, √(minimum + ε))² − ε`` with the pedestal ``ε = reparam_offset²``: a parameter ``p ≥ minimum``
    learnt through ``θ`` (CompressAI's ``NonNegativeParametrizer``). :meth:`init` maps a value to its ``θ``."""

    def __init__(self, minimum: float = 0.0, reparam_offset: float = 2**-18) -> None:
        super().__init__()
        self.pedestal = float(reparam_offset) ** 2
        self.lower_bound = LowerBound((float(minimum) + self.pedestal) ** 0.5)

    def init(self, value: Tensor) -> Tensor:
        """The stored ``θ`` of a value ``p`` (``√(p + ε)``, at least ``√ε``)."""
        return torch.sqrt(torch.clamp(value + self.pedestal, min=self.pedestal))

    def forward(self, theta: Tensor) -> Tensor:
        return self.lower_bound(theta).pow(2) - self.pedestal


class GDN(nn.Module):
    """``y_i = x_i / sqrt(β_i + Σ_j γ_ij x_j²)`` (Ballé et al. 2016, eq. 6); with ``inverse`` the synthesis's IGDN
    ``y_i = x_i · sqrt(β_i + Σ_j γ_ij x_j²)``. β ≥ ``beta_min`` and γ ≥ 0 through :class:`NonNegativeParametrizer`;
    β starts at 1 and γ at ``gamma_init · I`` (CompressAI's defaults), and the off-diagonal γ_ij learn the
    cross-channel normalization. Computed in float32 under any autocast (as CompressAI keeps it).

    Shapes: ``(B, C, H, W) → (B, C, H, W)`` (float32).
    """

    def __init__(
        self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1
    ) -> None:
        super().__init__()
        self.inverse = bool(inverse)
        self.beta_reparam = NonNegativeParametrizer(minimum=beta_min)
        self.gamma_reparam = NonNegativeParametrizer()
        self.beta = nn.Parameter(self.beta_reparam.init(torch.ones(channels)))
        self.gamma = nn.Parameter(self.gamma_reparam.init(gamma_init * torch.eye(channels)))

    def effective(self) -> tuple[Tensor, Tensor]:
        """``(β (C,), γ (C, C))`` as the layer uses them (float32)."""
        return self.beta_reparam(self.beta.float()), self.gamma_reparam(self.gamma.float())

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            beta, gamma = self.effective()
            c = x.shape[1]
            norm = F.conv2d(x.pow(2), gamma.view(c, c, 1, 1), beta)
            return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)
