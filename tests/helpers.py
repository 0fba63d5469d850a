"""Run aelab's real entry points in tests, in-process or as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.core.global_hydra import GlobalHydra

from conftest import REPO, SMALL, synthetic_digits


def cli_args(run_dir: Path, *overrides: str, small: bool = True) -> list[str]:
    return [*(SMALL if small else []), f"hydra.run.dir={run_dir}", *overrides]


def run_inprocess(main, argv: list[str], monkeypatch, data_dir: Path) -> None:
    """Call a ``@hydra.main`` entry point as the command line would, inside this process."""
    import logging

    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.setattr(sys, "argv", ["aelab", *argv])
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    GlobalHydra.instance().clear()
    try:
        main()
    finally:  # Hydra's job logging writes to this test's captured streams: never to a later test's closed ones
        GlobalHydra.instance().clear()
        root.handlers[:] = handlers
        root.setLevel(level)


def run_subprocess(args: list[str], data_dir: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a command with DATA_DIR set; fail the test with its output when it fails."""
    env = {**os.environ, "DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def mean_image_mse(data_dir: Path) -> float:
    """MSE of the synthetic MNIST test images to the training split's mean image: the baseline a model that
    learned nothing image-specific reaches (0.032 on the synthetic digits; a constant 0.5 output gets 0.18)."""
    from aelab.data import MNISTDataModule

    dm = MNISTDataModule(str(data_dir), val_size=100, download=False)
    x, _ = dm.sample_images(len(dm.split_tensors("test")[0]), "test")
    mean = dm.sample_images(len(dm.split_tensors("train")[0]), "train")[0].mean(0)
    return (x - mean).pow(2).mean().item()


class RecordStart(pl.Callback):
    """Writes the global step a fit starts at to ``path`` (a resumed run must not start at 0)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_start(self, trainer, pl_module):
        if trainer.is_global_zero:
            Path(self.path).write_text(str(trainer.global_step))


class RecordRanks(pl.Callback):
    """Each rank writes ``<world_size>`` to ``<dir>/rank<global_rank>`` when training starts (which ranks ran)."""

    def __init__(self, dir: str) -> None:
        self.dir = dir

    def on_train_start(self, trainer, pl_module):
        Path(self.dir).mkdir(parents=True, exist_ok=True)
        (Path(self.dir) / f"rank{trainer.global_rank}").write_text(str(trainer.world_size))


def wait_for(condition, timeout: float = 120.0, what: str = "a condition") -> None:
    """Poll ``condition()`` every 10 ms until it is true (a test waits for what the code writes, never for time)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.01)


def write_marker(path: str, **kwargs) -> None:
    """A function (not a class) that writes a file when called: what a refused target must never do."""
    Path(path).write_text("called")


def console_script(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def read_metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())


class CrashAtEpoch(pl.Callback):
    """Raises at the start of ``epoch`` (to test what a crash leaves behind)."""

    def __init__(self, epoch: int = 1) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError(f"planned crash at epoch {self.epoch}")


class SignalAtEpoch(pl.Callback):
    """Sends this process ``signum`` once, at the start of batch ``batch`` of ``epoch`` (to test what SIGINT and
    SIGTERM leave behind)."""

    def __init__(self, signum: int = 15, epoch: int = 1, batch: int = 0) -> None:
        self.signum, self.epoch, self.batch = signum, epoch, batch
        self.sent = False

    def on_train_batch_start(self, trainer, pl_module, b, batch_idx):
        if not self.sent and trainer.current_epoch == self.epoch and batch_idx == self.batch:
            self.sent = True
            if trainer.is_global_zero:
                os.kill(os.getpid(), signal.Signals(self.signum))


class PauseAtStep(pl.Callback):
    """At global step ``step`` (after its batch), writes ``marker`` and waits (up to ``timeout`` s) until the run
    has received a stop signal: a test then signals the process at a step the code chose, not after a sleep."""

    def __init__(self, step: int, marker: str, timeout: float = 120.0) -> None:
        self.step, self.marker, self.timeout = int(step), marker, float(timeout)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step != self.step or Path(self.marker).exists():
            return
        Path(self.marker).write_text(str(os.getpid()))
        deadline = time.monotonic() + self.timeout
        while not trainer._signal_connector.received_sigterm and time.monotonic() < deadline:
            time.sleep(0.01)


def batch(n: int = 64, seed: int = 0):
    """``n`` synthetic digits as a batch: images ``(n, 1, 28, 28)`` in [0, 1] and labels ``(n,)``."""
    x, y = synthetic_digits(n, seed)
    return torch.from_numpy(x).float().div(255).unsqueeze(1), torch.from_numpy(y).long()


def model_kinds(name: str) -> tuple[str, ...]:
    """The sample kinds the model of ``conf/model/<name>.yaml`` declares it takes (``sample_kinds``; a model that
    declares none takes images)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import get_class

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            model = compose(config_name="train", overrides=[f"model={name}"]).model
    finally:
        GlobalHydra.instance().clear()
    encoder = str((model.get("encoder") or {}).get("_target_", ""))
    if (
        ".sequence." in encoder or encoder.rsplit(".", 1)[-1] in SEQUENCE_PARTS
    ):  # parts of series windows only
        return ("series",)
    return tuple(getattr(get_class(model._target_), "sample_kinds", ("image",)))


#: the encoders that take series windows (T, C) only
SEQUENCE_PARTS = ("Conv1dEncoder", "LSTMEncoder", "TransformerSeriesEncoder")


def recbole_installed() -> bool:
    """Whether the recbole wheel's MovieLens file is installed (``make install`` installs it)."""
    from aelab.data.interactions import recbole_file

    try:
        recbole_file("ml-100k/ml-100k.inter")
    except Exception:
        return False
    return True
