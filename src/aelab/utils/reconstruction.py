"""Reconstruction quality against the clean examples, written once on torchmetrics.

:func:`psnr` is the one PSNR of aelab: the module's ``val|test/psnr`` (through :class:`ReconstructionPSNR`), the
DAE's noisy-input diagnostic and the evaluation sections' per-image numbers all call it. The metrics here are the
split metrics a datamodule declares for its reconstructions (the data contract's ``eval_metrics()``): each is a
torchmetrics ``Metric`` updated with ``(x_hat, batch)`` and compares ``x_hat`` with the clean examples ``batch[0]``.

Shapes: ``x_hat`` and ``x`` ``(N, ...)``: one example per row (an image ``(C, H, W)``, a table row ``(F,)``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torchmetrics import MeanSquaredError
from torchmetrics.functional.image import peak_signal_noise_ratio
from torchmetrics.image import PeakSignalNoiseRatio

#: the range of the values PSNR is measured on: pixels in [0, 1]
DATA_RANGE = 1.0


def example_dims(ndim: int) -> tuple[int, ...]:
    """The dims of one example in a batch of ``ndim`` dims: every dim but the first, ``(1, ..., ndim - 1)``."""
    return tuple(range(1, ndim))


def _float(t: Tensor) -> Tensor:
    return t if t.dtype == torch.float64 else t.float()


def psnr(
    x_hat: Tensor, x: Tensor, reduction: Literal["elementwise_mean", "none"] = "elementwise_mean"
) -> Tensor:
    """PSNR in dB of each example of values in [0, 1], ``10 log10(1 / MSE_i)`` (torchmetrics'
    ``peak_signal_noise_ratio``, data range 1, over every dim but the first): their mean (``elementwise_mean``,
    a scalar) or each (``none``, ``(N,)``). Detached, in float32 (float64 stays). An exact example is ``inf`` dB.
    """
    return peak_signal_noise_ratio(
        _float(x_hat.detach()),
        _float(x.detach()),
        data_range=DATA_RANGE,
        reduction=reduction,
        dim=example_dims(x.ndim),
    )


class ReconstructionMSE(MeanSquaredError):
    """The split's mean squared error of the reconstruction against the clean examples: ``update(x_hat, batch)``
    with ``batch[0]`` the examples ``(B, ...)``."""

    def update(self, x_hat: Tensor, batch) -> None:  # type: ignore[override]
        super().update(x_hat, batch[0])


class ReconstructionPSNR(PeakSignalNoiseRatio):
    """The split's PSNR (dB) of the reconstruction against the clean examples ``batch[0]`` of values in [0, 1]: the
    mean over the split's examples of each one's PSNR, :func:`psnr` over a whole split (torchmetrics'
    ``PeakSignalNoiseRatio``, so reduced across DDP ranks).

    Args:
        example_ndim: the dims of one example (3 for an image ``(C, H, W)``).
    """

    def __init__(self, example_ndim: int = 3, **kwargs) -> None:
        super().__init__(
            data_range=DATA_RANGE,
            reduction="elementwise_mean",
            dim=example_dims(int(example_ndim) + 1),
            **kwargs,
        )

    def update(self, x_hat: Tensor, batch) -> None:  # type: ignore[override]
        super().update(x_hat, batch[0])


__all__ = ["DATA_RANGE", "ReconstructionMSE", "ReconstructionPSNR", "example_dims", "psnr"]
