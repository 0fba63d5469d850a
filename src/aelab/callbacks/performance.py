"""Speed settings of a run as callbacks (not model arguments): channels-last conv weights and ``torch.compile``."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn


def has_convolutions(module: nn.Module) -> bool:
    """Whether any layer of ``module`` is a 2-D (transposed) convolution."""
    return any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in module.modules())


class ChannelsLast(pl.Callback):
    """Keeps the model's conv weights in the channels-last (NHWC) memory format, which oneDNN and cuDNN run faster
    (measured: docs/BENCHMARKS.md); a model without convolutions is left alone."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if has_convolutions(pl_module):
            pl_module.to(memory_format=torch.channels_last)


class Compile(pl.Callback):
    """``torch.compile`` the model's submodules in place when fitting or testing starts (once).

    Args:
        mode: ``default``, ``reduce-overhead`` or ``max-autotune``.
    """

    def __init__(self, mode: str = "default") -> None:
        self.mode = mode
        self._done = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._done:
            return
        for child in pl_module.net.children():
            child.compile(mode=self.mode)
        self._done = True
