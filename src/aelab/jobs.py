"""How a job runs in a process it shares with other jobs: Lightning's DDP hand-off and the job's isolation.

* **DDP hand-off.** Lightning's subprocess launcher starts the other ranks by re-running ``sys.argv``; in a
  ``-m`` sweep that would re-run the whole sweep (and compose a folder of its own), and under Hydra's submitit
  launcher it would re-run submitit's own job runner. :func:`config_for_children` writes the job's resolved
  config to a temporary file, names it in ``AELAB_JOB_CONFIG`` and has the launcher start the children as
  ``python -m aelab.train`` whatever started the parent; a child (``LOCAL_RANK`` > 0) sees the file and runs
  exactly that job (:func:`child_config`).
* **Isolation.** A ``-m`` sweep (basic launcher) and an Optuna search run several jobs in one process. Each job
  must leave the process as it found it: :func:`isolated_job` restores the environment variables (Lightning's
  launcher sets ``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK``, ``WORLD_SIZE``, ...) and destroys the
  process group a DDP job created, so the next DDP job starts its own ranks instead of talking to the dead ones
  of the last.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
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


@contextlib.contextmanager
def config_for_children(trainer, cfg: DictConfig):
    """When Lightning's subprocess launcher will start the other ranks, hand them this job's resolved config
    (the file is removed afterwards)."""
    from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    launcher = trainer.strategy.launcher
    if not isinstance(launcher, _SubprocessScriptLauncher) or JOB_CONFIG_ENV in os.environ:
        yield
        return
    import pytorch_lightning.strategies.launchers.subprocess_script as sps

    fd, path = tempfile.mkstemp(prefix="aelab-job-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(OmegaConf.to_yaml(cfg, resolve=True))
    os.environ[JOB_CONFIG_ENV] = path
    # Lightning builds the children's command from sys.argv (submitit's runner, a sweep); they need aelab's entry
    # point only, as the job comes from the file (the launcher module's command builders, restored afterwards)
    builders = sps._basic_subprocess_cmd, sps._hydra_subprocess_cmd
    sps._basic_subprocess_cmd = _child_command
    sps._hydra_subprocess_cmd = lambda local_rank: (_child_command(), os.getcwd())
    try:
        yield
    finally:
        sps._basic_subprocess_cmd, sps._hydra_subprocess_cmd = builders
        os.environ.pop(JOB_CONFIG_ENV, None)
        Path(path).unlink(missing_ok=True)


def _child_command() -> list[str]:
    """How a DDP child starts: aelab's training entry point (it runs the job of ``AELAB_JOB_CONFIG``)."""
    return [sys.executable, "-m", "aelab.train"]


def child_config() -> DictConfig | None:
    """The parent's resolved job config when this process is a DDP rank Lightning's launcher started, else ``None``."""
    path = os.environ.get(JOB_CONFIG_ENV)
    if path and os.path.isfile(path) and os.environ.get("LOCAL_RANK", "0") != "0":
        return OmegaConf.load(path)
    return None
