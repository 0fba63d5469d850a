"""Run folders: one job is one run folder, chosen once and shared by all of its processes; a folder that did
not finish is marked (``FAILED``, ``INTERRUPTED``, ``PRUNED``).

The run folder is ``${paths.log_dir}/${task_name}/runs/${aelab.run_id:${run_id}}``. The id is chosen once per
job, in this order:

1. an explicit ``run_id=...`` override;
2. the id already chosen in this invocation (every later resolution sees the same one; Lightning's DDP
   children never compose a config of their own, see :mod:`aelab.train`);
3. under ``torchrun`` with several processes: global rank 0 picks an id and publishes it in the elastic
   agent's store (the TCPStore at ``MASTER_ADDR:MASTER_PORT`` every worker already reaches); the other ranks
   wait for it there, however late each starts;
4. inside a SLURM job step (``srun``): ``slurm-<job id>[_<array task>].<step id>``, the same for every task
   of the step and again after a requeue;
5. otherwise the time to the millisecond plus a random suffix (``2026-11-25_06-01-02.123_9f3ab1``):
   readable, sortable by time, and never shared by two jobs started in the same second.

Only global rank 0 writes ``.hydra/``, the log file, ``metrics.json`` and TensorBoard: the ``aelab.rank0``
resolver turns ``hydra.output_subdir`` and the log file off on the other ranks (their rank is known from
``RANK``/``SLURM_PROCID`` before Hydra starts).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import secrets
from pathlib import Path

_chosen: str | None = None
STORE_KEY = "aelab/run_id"
STORE_TIMEOUT_S = float(os.environ.get("AELAB_RUN_ID_TIMEOUT", "300"))


def global_rank() -> int:
    """This process's global rank from the launcher's environment, before any process group exists
    (torchrun: ``RANK``; SLURM: ``SLURM_PROCID`` when the step has several tasks; Lightning's DDP children:
    ``NODE_RANK`` × local world size + ``LOCAL_RANK``); 0 when launched alone."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ:
        return int(os.environ["SLURM_PROCID"])
    if "LOCAL_RANK" in os.environ:
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
        return int(os.environ.get("NODE_RANK", "0")) * per_node + int(os.environ["LOCAL_RANK"])
    return 0


def _timestamp_id() -> str:
    now = dt.datetime.now()
    return f"{now:%Y-%m-%d_%H-%M-%S}.{now.microsecond // 1000:03d}_{secrets.token_hex(3)}"


def _torchrun_id() -> str | None:
    """Rank 0's id through the torchrun agent's store, or ``None`` outside a multi-process torchrun job."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return None
    from torch.distributed import TCPStore

    store = TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        is_master=False,
        timeout=dt.timedelta(seconds=STORE_TIMEOUT_S),
    )
    key = f"{STORE_KEY}/{os.environ.get('TORCHELASTIC_RUN_ID', 'none')}"
    if global_rank() == 0:
        # compare_set keeps the first id: a restarted rank 0 (torchrun --max-restarts) reuses its run folder
        return store.compare_set(key, "", _timestamp_id()).decode()
    try:
        return store.get(key).decode()
    except RuntimeError as err:  # a store timeout
        raise RuntimeError(
            f"rank {global_rank()} waited {STORE_TIMEOUT_S:.0f} s for rank 0's run folder in the torchrun store "
            f"at {os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}: start node 0 too (or set run_id=...)"
        ) from err


def _slurm_id() -> str | None:
    if "SLURM_JOB_ID" not in os.environ or "SLURM_STEP_ID" not in os.environ:
        return None
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job else os.environ["SLURM_JOB_ID"]
    return f"slurm-{job}.{os.environ['SLURM_STEP_ID']}"


def run_id(explicit: str | None = None) -> str:
    """The id of this job's run folder (see the module docstring); stable until :func:`reset_run_id`."""
    global _chosen
    if explicit not in (None, "", "None"):
        if "/" in str(explicit) or str(explicit) in (".", ".."):
            raise ValueError(f"run_id={explicit!r} must be a folder name, without '/'")
        return str(explicit)
    if _chosen is None:
        _chosen = _torchrun_id() or _slurm_id() or _timestamp_id()
    return _chosen


def reset_run_id() -> None:
    """Forget the chosen id: the next :func:`run_id` chooses afresh (called at the start of every
    ``aelab-train`` invocation)."""
    global _chosen
    _chosen = None


def rank0(value, other=None):
    """``value`` on global rank 0, ``other`` (default ``None``) on every other rank."""
    return value if global_rank() == 0 else other


# ---------------------------------------------------------------------------- marks
def _on_rank_zero(fn):
    """Run ``fn`` on global rank 0 only (the rank known from the launcher's environment, :func:`global_rank`)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs) if global_rank() == 0 else None

    return wrapper


RUN_STATUS_FILES = ("FAILED", "INTERRUPTED", "PRUNED")


@_on_rank_zero
def mark_run(output_dir: str | Path, status: str, line: str) -> None:
    """Mark a run folder that did not finish: ``FAILED``, ``INTERRUPTED`` or ``PRUNED`` holding one line (the
    error, how to resume, or when the Optuna pruner stopped it). Sweeps, ``make results`` and the aggregation skip folders so marked."""
    clear_run_status(output_dir)
    path = Path(output_dir) / status
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(line.strip().splitlines()[0] + "\n" if line.strip() else status + "\n")


@_on_rank_zero
def clear_run_status(output_dir: str | Path) -> None:
    """Remove the ``FAILED``/``INTERRUPTED``/``PRUNED`` marks of an earlier attempt (when a run finishes)."""
    for name in RUN_STATUS_FILES:
        (Path(output_dir) / name).unlink(missing_ok=True)


def run_status(run_dir: str | Path) -> str | None:
    """The mark of a run folder that did not finish (``FAILED``, ``INTERRUPTED``, ``PRUNED``), else ``None``."""
    return next((n for n in RUN_STATUS_FILES if (Path(run_dir) / n).exists()), None)


def run_finished(run_dir: str | Path) -> bool:
    """True for a run folder with ``metrics.json`` and no ``FAILED``/``INTERRUPTED``/``PRUNED`` mark."""
    return (Path(run_dir) / "metrics.json").is_file() and run_status(run_dir) is None
