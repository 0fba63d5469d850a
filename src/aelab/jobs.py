"""How a job runs in a process it shares with other jobs: Lightning's DDP hand-off and the job's isolation.

* **Local ranks.** Lightning's subprocess launcher would start the other ranks by re-running ``sys.argv``; in a
  ``-m`` sweep that re-runs the whole sweep (and composes a folder of its own), and under Hydra's submitit
  launcher it re-runs submitit's own job runner. :func:`local_ranks` starts them instead, as torchrun would: it
  sets the variables that make Lightning's environment report the processes as created externally (so Lightning
  launches none, through its public behaviour; nothing of Lightning is patched), writes the job's resolved config
  to a temporary file named in ``AELAB_JOB_CONFIG``, and starts each rank as ``python -m aelab.train``; a rank
  (``LOCAL_RANK`` > 0) sees the file and runs exactly that job (:func:`child_config`).
* **Isolation.** A ``-m`` sweep (basic launcher) and an Optuna search run several jobs in one process. Each job
  must leave the process as it found it: :func:`isolated_job` restores the environment variables (Lightning's
  launcher sets ``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK``, ``WORLD_SIZE``, ...) and destroys the
  process group a DDP job created, so the next DDP job starts its own ranks instead of talking to the dead ones
  of the last.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

JOB_CONFIG_ENV = "AELAB_JOB_CONFIG"  # the resolved job config handed to Lightning's DDP children


@contextlib.contextmanager
def isolated_job():
    """Run one job: afterwards the environment variables are as before and no process group is left."""
    before = dict(os.environ)
    try:
        yield
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        os.environ.clear()
        os.environ.update(before)


class _RankObserver(threading.Thread):
    """Watches the local ranks this process started: when one exits with an error, the others and this process are
    killed (a rank waiting in a collective for a dead peer would wait forever), after ``on_failure`` has said so."""

    def __init__(self, procs: list[subprocess.Popen], on_failure) -> None:
        super().__init__(daemon=True, name="aelab-rank-observer")
        self.procs, self.on_failure = procs, on_failure
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            # 130 / 143: a rank stopped by a signal with the job (its checkpoint is rank 0's business)
            failed = [
                (r, p.returncode) for r, p in enumerate(self.procs, 1) if p.poll() not in (None, 0, 130, 143)
            ]
            if failed and not self.stopped.is_set():
                rank, code = failed[0]
                self.on_failure(f"local rank {rank} exited with code {code}")
                for p in self.procs:
                    if p.poll() is None:
                        p.kill()
                os.kill(os.getpid(), signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_ranks(trainer, cfg: DictConfig, on_failure=lambda why: None):
    """Start the other local ranks of a DDP job as ``python -m aelab.train`` processes running exactly this job.

    When Lightning's DDP would start the local ranks itself (its subprocess launcher, nothing else having created
    them: no torchrun, no SLURM), this process becomes local rank 0 the way torchrun would make it: ``LOCAL_RANK``,
    ``NODE_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` and ``WORLD_SIZE`` are set, so Lightning's environment reports the
    processes as created externally (its documented behaviour) and launches none; the ranks 1..n−1 start with the
    job's resolved config in ``AELAB_JOB_CONFIG`` (:func:`child_config`). Whatever started this process (a ``-m``
    sweep, submitit's runner, Optuna), the ranks run the job and nothing else. Afterwards the ranks are waited for
    (and killed when they outlive the job by a minute); :func:`isolated_job` restores the environment.

    Args:
        trainer: the job's trainer (built, not yet fitted).
        cfg: the job's config (resolved into the file the ranks read).
        on_failure: called with a line when a rank fails (the run folder's mark).
    """
    from pytorch_lightning.strategies.launchers import _SubprocessScriptLauncher

    launcher = getattr(trainer.strategy, "launcher", None)
    n = int(trainer.num_devices)
    if (
        not isinstance(launcher, _SubprocessScriptLauncher)
        or n < 2
        or "LOCAL_RANK" in os.environ
        or launcher.cluster_environment.creates_processes_externally
    ):
        yield
        return
    fd, path = tempfile.mkstemp(prefix="aelab-job-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(OmegaConf.to_yaml(cfg, resolve=True))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))
    os.environ.setdefault("NODE_RANK", "0")
    os.environ["WORLD_SIZE"] = str(n * int(trainer.num_nodes))
    os.environ["LOCAL_RANK"] = "0"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "aelab.train"],
            env={**os.environ, "LOCAL_RANK": str(rank), JOB_CONFIG_ENV: path},
            cwd=os.getcwd(),
        )
        for rank in range(1, n)
    ]
    observer = _RankObserver(procs, on_failure)
    observer.start()
    try:
        yield
    finally:
        observer.stopped.set()
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        Path(path).unlink(missing_ok=True)


def child_config() -> DictConfig | None:
    """The parent's resolved job config when this process is a DDP rank Lightning's launcher started, else ``None``."""
    path = os.environ.get(JOB_CONFIG_ENV)
    if path and os.path.isfile(path) and os.environ.get("LOCAL_RANK", "0") != "0":
        return OmegaConf.load(path)
    return None
