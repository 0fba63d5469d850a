"""Training throughput and epoch time, logged once per epoch."""

from __future__ import annotations

import time

import pytorch_lightning as pl
import torch


class ThroughputMonitor(pl.Callback):
    """Logs ``train/throughput`` (images/s over all ranks) and ``train/epoch_time`` (s) per epoch.

    Counts the images of every training batch (a host-side integer, no device sync) and times the epoch
    with a single device synchronization at its end. Lightning's own ``ThroughputMonitor`` measures something
    else (a rolling window per logging step, with a CUDA synchronization after *every* batch — a cost a small model
    on a GPU feels), and its ``Timer`` times whole stages, not epochs; so aelab keeps this one.
    """

    def __init__(self) -> None:
        self._start = 0.0
        self._images = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._images = 0
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._images += len(batch[0])

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        seconds = time.perf_counter() - self._start
        if seconds > 0 and self._images:
            pl_module.log("train/throughput", self._images * trainer.world_size / seconds)
            pl_module.log("train/epoch_time", seconds)
