"""What every training run carries besides the model: the divergence guard and the RNG state in checkpoints.

Both are callbacks that ``aelab-train`` always adds (first in the list, so a diverged run stops before any other
callback sees its weights); the guard's interval is the run's ``nan_check_every``.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from aelab.errors import DivergenceError, divergence_message


class DivergenceGuard(pl.Callback):
    """Stop a run whose training loss became NaN or infinite, with a line that names the fixes.

    Every training loss is checked on the device (no host sync) before its backward pass; the flag is read (one
    sync; reduced over DDP ranks) every ``model.nan_check_every`` global steps, before every validation during
    fitting and at every training epoch end — so a diverged run stops before a checkpoint, a dashboard or a metric
    sees its weights.

    Args:
        check_every: read the flag every this many global steps (a host sync); 0: only at those epoch boundaries.

    Raises:
        DivergenceError: naming the step, the epoch and the fixes (one line on the command line).
    """

    def __init__(self, check_every: int = 50) -> None:
        self.check_every = int(check_every)
        self._nonfinite: Tensor | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._nonfinite = None

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: Tensor) -> None:
        bad = ~torch.isfinite(loss.detach())  # stays on the device
        self._nonfinite = bad if self._nonfinite is None else self._nonfinite | bad
        if self.check_every and trainer.global_step % self.check_every == 0:
            self.check(trainer, pl_module)

    def check(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Raise when any training loss so far was NaN/inf (on any DDP rank)."""
        if self._nonfinite is None:
            return
        diverged = bool(self._nonfinite)
        if trainer.world_size > 1:
            diverged = trainer.strategy.reduce_boolean_decision(diverged, all=False)
        if diverged:
            raise DivergenceError(
                divergence_message(
                    "the training loss became NaN or infinite", trainer.global_step, trainer.current_epoch
                )
            )

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.check(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer, pl_module)


def _device(trainer, pl_module) -> torch.device:
    """The device the run trains on: the strategy's (the module is moved there only after a checkpoint loads)."""
    strategy = getattr(trainer, "strategy", None)
    return strategy.root_device if strategy is not None else pl_module.device


class RNGState(pl.Callback):
    """The global RNG in every checkpoint (``aelab_rng``) and back on resume: it feeds the training noise (DAE
    corruption, VAE samples, binarization), so a resumed run draws what the uninterrupted one would have."""

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint["aelab_rng"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            device = _device(trainer, pl_module)
            checkpoint["aelab_rng"]["cuda"] = (
                torch.cuda.get_rng_state(device) if device.type == "cuda" else None
            )

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        rng = checkpoint.get("aelab_rng") or {}
        if isinstance(rng.get("torch"), Tensor):
            torch.set_rng_state(rng["torch"])
        device = _device(
            trainer, pl_module
        )  # the module may not be on its device yet while a checkpoint loads
        if isinstance(rng.get("cuda"), Tensor) and device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], device)
