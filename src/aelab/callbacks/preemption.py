"""Run bookkeeping callbacks: what happens when a run is stopped from outside, and the run config stored in every
checkpoint.

**One behaviour for every stop signal.** SIGTERM (``kill``, Kubernetes, SLURM's end), SIGUSR1 (the warning
``sbatch --signal=USR1@120`` sends before a time limit, and what ``scancel --signal=USR1`` sends) and, under
Hydra's submitit launcher, submitit's preemption signal (``SUBMITIT_PREEMPT_SIGNAL``, default SIGUSR2) all do the
same: Lightning stops at the next batch boundary, :class:`Preemption` writes ``checkpoints/last.ckpt``
atomically *mid-epoch* (model, optimizer, loops, data-loader position, RNG), marks the folder ``INTERRUPTED``
with the resume command, and the run exits (143). The job is then continued in the same folder: by
``aelab-train resume=<run dir>``, or by the same command (a requeued SLURM job lands in the same
``slurm-<job>.<step>`` folder, a submitit job in the same sweep folder). Who requeues: under submitit, submitit
(its handler runs after the save); under plain SLURM, aelab (``scontrol requeue``, global rank 0) for SIGUSR1.
Lightning's own SLURM auto-requeue (``hpc_ckpt_N.ckpt``) is off, so there is one checkpoint and one way back.
Ctrl-C (SIGINT) stops at once, possibly mid-step: nothing is saved, ``last.ckpt`` of the last finished epoch
is what the resume continues from.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from pytorch_lightning.utilities.exceptions import SIGTERMException

from aelab.checkpoint import CHOICES_KEY, CONFIG_KEY, FORMAT, FORMAT_KEY
from aelab.rundir import RunDir

log = logging.getLogger("aelab")


def resume_command(run_dir: str | Path) -> str:
    """The command that continues the run in ``run_dir`` (same folder, same TensorBoard run)."""
    return f"aelab-train resume={shlex.quote(str(run_dir))}"


class RunInterrupted(SystemExit):
    """The run was stopped by a signal (SIGTERM/SIGUSR1/SIGUSR2: exit 143; Ctrl-C: exit 130); it can be resumed."""

    def __init__(self, signal_name: str, run_dir: str) -> None:
        super().__init__(130 if signal_name == "SIGINT" else 143)
        self.signal_name = signal_name
        self.run_dir = run_dir


def _stop_signals() -> list[signal.Signals]:
    """SIGUSR1, and submitit's preemption signal when this process is a submitit job."""
    out = [signal.SIGUSR1] if hasattr(signal, "SIGUSR1") else []
    if "SUBMITIT_FOLDER" in os.environ or "SUBMITIT_EXECUTOR" in os.environ:
        name = "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
        sig = getattr(signal, name, None)
        if sig is not None and sig not in out:
            out.append(sig)
    return out


class Preemption(pl.Callback):
    """Save mid-epoch, mark the folder and say how to resume when the run is stopped (see the module docstring).

    Not Lightning's ``OnExceptionCheckpoint``, which does something else: it saves on *any* exception (a diverged
    run would leave a NaN ``last.ckpt``), deletes its file when a run ends, and its presence makes every
    ``fit(ckpt_path=None)`` resume from the folder's last checkpoint (a fresh run in a reused folder would continue
    silently). This callback saves through the trainer (aelab's atomic CheckpointIO) on a stop signal only.

    Args:
        run_dir: the run's folder (``paths.output_dir``).
        checkpoint_dir: where ``last.ckpt`` lives (``<run_dir>/checkpoints``).
    """

    def __init__(self, run_dir: str, checkpoint_dir: str | None = None) -> None:
        self.run = RunDir(run_dir)
        self.run_dir = self.run.path
        self.ckpt_path = Path(checkpoint_dir) / "last.ckpt" if checkpoint_dir else self.run.last_ckpt
        self.stopped_by: str | None = None
        self._signal: str = "SIGTERM"
        self._originals: dict[int, Any] = {}  # the handlers before this run's (restored at teardown)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return

        # before Lightning registers its own handlers: it then leaves these signals to us (its SIGTERM handler
        # also stops at the next batch boundary)
        def handler(signum, frame):
            self._signal = signal.Signals(signum).name
            trainer._signal_connector._sigterm_notifier_fn(signum, frame)

        for sig in _stop_signals():
            self._originals[sig] = signal.getsignal(sig)
            signal.signal(sig, handler)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, SIGTERMException):
            self.stopped_by = self._signal
            trainer.save_checkpoint(self.ckpt_path)
            line = f"stopped by {self.stopped_by}; continue with: {resume_command(self.run_dir)}"
            self.run.mark("INTERRUPTED", line)
            rank_zero_info(
                f"\nStopped by {self.stopped_by} at epoch {trainer.current_epoch}, step {trainer.global_step}; "
                f"saved {self.ckpt_path}.\nContinue this run with: {resume_command(self.run_dir)}"
            )
            self._requeue(trainer)
            self._restore()
        elif isinstance(exception, KeyboardInterrupt):
            self.stopped_by = "SIGINT"
            line = f"stopped by SIGINT; continue with: {resume_command(self.run_dir)}"
            self.run.mark("INTERRUPTED", line)
            rank_zero_info(
                f"\nInterrupted at epoch {trainer.current_epoch}, step {trainer.global_step}; the last finished "
                f"epoch is in {self.ckpt_path}.\nContinue this run with: {resume_command(self.run_dir)}"
            )

    def _requeue(self, trainer: pl.Trainer) -> None:
        """Hand over to whoever requeues: submitit's own handler, or ``scontrol requeue`` under plain SLURM."""
        signum = getattr(signal, self._signal, None)
        previous = self._originals.get(signum)
        if callable(previous):  # submitit: it checkpoints its job, requeues it and exits
            previous(signum, None)
            return
        if self._signal != "SIGUSR1" or "SLURM_JOB_ID" not in os.environ or not trainer.is_global_zero:
            return
        job = os.environ.get("SLURM_ARRAY_JOB_ID")
        job = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job else os.environ["SLURM_JOB_ID"]
        if shutil.which("scontrol") is None:
            rank_zero_warn(
                f"scontrol is not on PATH: SLURM job {job} was not requeued; resubmit it to continue"
            )
            return
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
        if result.returncode == 0:
            rank_zero_info(f"requeued SLURM job {job}: it continues in {self.run_dir}")
        else:
            rank_zero_warn(
                f"scontrol requeue {job} failed ({result.stderr.strip()}); resubmit it to continue"
            )

    def _restore(self) -> None:
        for sig, previous in self._originals.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._originals.clear()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore()


class ConfigInCheckpoint(pl.Callback):
    """Stores the resolved run config (and the Hydra group choices, e.g. ``model: conv_ae``) in every
    checkpoint, so ``aelab-eval`` can rebuild the model and errors can name it."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = OmegaConf.to_container(cfg, resolve=True)
        self.cfg.pop("hydra", None)  # present when a config was composed with return_hydra_config (tests)
        self.choices: dict[str, str] = {}
        if HydraConfig.initialized():
            choices = HydraConfig.get().runtime.choices
            self.choices = {k: str(v) for k, v in choices.items() if v is not None and "/" not in k}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.cfg
        checkpoint[CHOICES_KEY] = self.choices
        checkpoint[FORMAT_KEY] = FORMAT


class LastCheckpointAtFitEnd(pl.Callback):
    """Writes ``last.ckpt`` when a fit ends (``max_epochs`` reached, early stopping), so it always holds the run's
    final state. Lightning writes ``last.ckpt`` only beside a new best checkpoint (and at the fit's end only when it
    wrote none during it): a run whose final epoch improved would otherwise leave a ``last.ckpt`` saved at that
    epoch's validation, before the epoch was complete. A stop signal's mid-epoch checkpoint (:class:`Preemption`) and
    a run that fails write no checkpoint here."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        callback = trainer.checkpoint_callback
        if callback is None or trainer.fast_dev_run or not getattr(callback, "save_last", False):
            return
        if callback.dirpath is None:
            return
        trainer.save_checkpoint(
            str(Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}")
        )
