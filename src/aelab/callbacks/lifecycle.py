"""What happens when a run is stopped from outside: SIGTERM/SIGUSR1 (SLURM's time limit or preemption) and
Ctrl-C."""

from __future__ import annotations

import logging
import shlex
import signal
from pathlib import Path

import pytorch_lightning as pl
from lightning_fabric.plugins.environments import SLURMEnvironment
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger("aelab")


def resume_command(run_dir: str | Path) -> str:
    """The command that continues the run in ``run_dir`` (same folder, same TensorBoard run)."""
    return f"aelab-train resume={shlex.quote(str(run_dir))}"


class Preemption(pl.Callback):
    """Save and say how to resume when the run is stopped.

    * SIGTERM (what SLURM, Kubernetes and ``kill`` send) — and SIGUSR1, SLURM's usual ``--signal`` warning
      before a time limit — make Lightning stop at the next batch boundary; this callback then writes
      ``checkpoints/last.ckpt`` atomically *mid-epoch* (model, optimizer, loop and data-loader position), so
      ``aelab-train resume=<run dir>`` — or the requeued job — continues with the next batch.
    * Ctrl-C (SIGINT): Lightning stops at once, possibly mid-step, so nothing is saved; ``last.ckpt`` from
      the last finished epoch is what resume continues from.

    Either way the resume command is printed and ``stopped_by`` names the signal.

    Args:
        run_dir: the run's folder (``paths.output_dir``).
        checkpoint_dir: where ``last.ckpt`` lives (``<run_dir>/checkpoints``).
    """

    def __init__(self, run_dir: str, checkpoint_dir: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else self.run_dir / "checkpoints"
        self.stopped_by: str | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and hasattr(signal, "SIGUSR1") and not SLURMEnvironment.detect():
            # Outside SLURM, SIGUSR1 stops the run like SIGTERM does; under SLURM, Lightning's auto-requeue
            # owns it (saves hpc_ckpt_N.ckpt in the run folder, requeues, and the requeued job resumes there).
            def on_usr1(signum, frame):
                trainer._signal_connector._sigterm_notifier_fn(signum, frame)

            if signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGUSR1, on_usr1)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, SIGTERMException):
            self.stopped_by = "SIGTERM"
            path = self.checkpoint_dir / "last.ckpt"
            trainer.save_checkpoint(path)
            rank_zero_info(
                f"\nStopped by a signal at epoch {trainer.current_epoch}, step {trainer.global_step}; "
                f"saved {path}.\nContinue this run with: {resume_command(self.run_dir)}"
            )
        elif isinstance(exception, KeyboardInterrupt):
            self.stopped_by = "SIGINT"
            rank_zero_info(
                f"\nInterrupted at epoch {trainer.current_epoch}, step {trainer.global_step}; the last finished "
                f"epoch is in {self.checkpoint_dir / 'last.ckpt'}.\nContinue this run with: "
                f"{resume_command(self.run_dir)}"
            )
