"""Run aelab's real entry points in tests, in-process or as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra

from conftest import REPO, SMALL


def cli_args(run_dir: Path, *overrides: str, small: bool = True) -> list[str]:
    return [*(SMALL if small else []), f"hydra.run.dir={run_dir}", *overrides]


def run_inprocess(main, argv: list[str], monkeypatch, data_dir: Path) -> None:
    """Call a ``@hydra.main`` entry point as the command line would, inside this process."""
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.setattr(sys, "argv", ["aelab", *argv])
    GlobalHydra.instance().clear()
    main()
    GlobalHydra.instance().clear()


def run_subprocess(args: list[str], data_dir: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a command with DATA_DIR set; fail the test with its output when it fails."""
    env = {**os.environ, "DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def console_script(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def read_metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())


class CrashAtEpoch:
    """A callback that raises at the start of a given epoch (to test what a crash leaves behind)."""

    def __new__(cls, epoch: int = 1):
        import pytorch_lightning as pl

        class _Crash(pl.Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                if trainer.current_epoch == epoch:
                    raise RuntimeError(f"planned crash at epoch {epoch}")

        return _Crash()


class SignalAtEpoch:
    """A callback that sends this process ``signum`` once, at the start of batch ``batch`` of ``epoch``
    (to test what SIGINT/SIGTERM leave behind)."""

    def __new__(cls, signum: int = 15, epoch: int = 1, batch: int = 0):
        import signal as _signal

        import pytorch_lightning as pl

        class _Signal(pl.Callback):
            sent = False

            def on_train_batch_start(self, trainer, pl_module, b, batch_idx):
                if not self.sent and trainer.current_epoch == epoch and batch_idx == batch:
                    self.sent = True
                    if trainer.is_global_zero:
                        os.kill(os.getpid(), _signal.Signals(signum))

        return _Signal()
