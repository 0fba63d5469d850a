"""``aelab-train`` / ``python -m aelab.train``: train, validate and test a model from the Hydra configs.

Examples::

    aelab-train                                   # MLP AE on MNIST, CPU or GPU (accelerator auto)
    aelab-train model=vae trainer=gpu data.batch_size=512
    aelab-train -m model=ae,conv_ae seed=1,2,3    # a multirun sweep
    aelab-train resume=logs/train/runs/<id> trainer.max_epochs=20   # continue a run in its own folder

One job is one run folder, whatever launches it (see :mod:`aelab.utils.runs`); Lightning's DDP children run
their parent's job (:mod:`aelab.jobs`); ``resume=`` is :mod:`aelab.resume`. A refusal (a bad override, a
broken data file, an untrusted target) is one line and a non-zero exit; ``HYDRA_FULL_ERROR=1`` shows the
traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from aelab import CONF_DIR, jobs, reporting
from aelab.callbacks.guards import DivergenceGuard, RNGState
from aelab.callbacks.preemption import ConfigInCheckpoint, Preemption, RunInterrupted
from aelab.checkpoint import check_state_matches, read_checkpoint
from aelab.errors import AelabError, exit_with_one_line
from aelab.resume import record_resume, resume_config
from aelab.rundir import RunDir
from aelab.trust import check_run_config, trusted_prefixes
from aelab.utils import runs
from aelab.utils.config import apply_matmul_precision, instantiate_group
from aelab.utils.validate import validate_loggers, validate_run_config

log = logging.getLogger("aelab")


def train(cfg: DictConfig, resumed: bool = False) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit, then test the best checkpoint; write ``metrics.json`` and the hparams entry with the final metrics.

    Every value and every ``_target_`` of ``cfg`` is checked before anything is built (:mod:`aelab.utils.validate`,
    :mod:`aelab.trust`: classes of aelab, torch.optim, Lightning and the trusted packages only).

    Args:
        cfg: the composed run config.
        resumed: the run continues in its own folder (``resume=``); changes the advice of a shape mismatch.

    Returns:
        ``(test metrics, objects)`` with the instantiated ``model``, ``datamodule`` and ``trainer``.
    """
    validate_run_config(cfg)
    validate_loggers(cfg)
    trust = trusted_prefixes(cfg.get("trust"))
    check_run_config(OmegaConf.to_container(cfg, resolve=True), "the run config", trust)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    apply_matmul_precision(cfg)

    datamodule: pl.LightningDataModule = instantiate(cfg.data)
    model: pl.LightningModule = instantiate(cfg.model)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path:
        # Lightning loads it through aelab's CheckpointIO, which takes this read (checked, safe) over
        fix = (
            "the resume overrides change the model's shape; drop them (a resumed run keeps its model)"
            if resumed
            else "add that model's override (e.g. model=conv_ae), or continue its run with aelab-train resume=<run dir>"
        )
        check_state_matches(model, read_checkpoint(ckpt_path, trust), ckpt_path, fix)
    preemption = Preemption(cfg.paths.output_dir)
    # the guard first: a diverged run stops before any other callback sees its weights
    callbacks = [DivergenceGuard(), RNGState(), *instantiate_group(cfg.get("callbacks"), "callbacks")]
    callbacks += [ConfigInCheckpoint(cfg), preemption]
    loggers = instantiate_group(cfg.get("logger"), "logger")
    trainer: pl.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=_plugins(cfg)
    )

    reporting.log_config_text(loggers, cfg)
    with jobs.config_for_children(trainer, cfg):
        try:
            trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        except BaseException as err:
            if preemption.stopped_by:
                raise RunInterrupted(preemption.stopped_by, cfg.paths.output_dir) from err
            raise

        metrics: dict[str, float] = {}
        ckpt = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        run_dir = RunDir(cfg.paths.output_dir)
        best = {"best_ckpt": run_dir.relative(ckpt)} if ckpt else {}
        if cfg.get("test"):
            if not ckpt:
                log.warning("no best checkpoint (e.g. fast_dev_run): testing the current weights")
            trainer.test(model=model, datamodule=datamodule, ckpt_path=ckpt or None, weights_only=True)
            metrics = reporting.collect_metrics(trainer, "test/")
            reporting.report_final_metrics(
                loggers, cfg, metrics, cfg.paths.output_dir, ckpt or "current weights", record=best
            )
        elif best and trainer.is_global_zero:
            run_dir.record(**best)
    return metrics, {"model": model, "datamodule": datamodule, "trainer": trainer}


def _plugins(cfg: DictConfig) -> list:
    """The trainer's plugins: the configured ones, and under SLURM Lightning's SLURM environment without its own
    auto-requeue (aelab's :class:`~aelab.callbacks.preemption.Preemption` saves ``last.ckpt`` and requeues)."""
    plugins = [instantiate(p) for p in cfg.trainer.get("plugins") or []]
    from lightning_fabric.plugins.environments import SLURMEnvironment

    if SLURMEnvironment.detect():
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return plugins


def sweep_value(cfg: DictConfig, metrics: dict[str, float], objects: dict[str, Any]) -> float | None:
    """What a Hydra sweeper gets back: ``optimized_metric`` — ``val/...`` as its best epoch (the checkpoint's
    monitor) or last value, ``test/...`` from the test — or ``None``."""
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name.startswith("val/"):
        trainer = objects["trainer"]
        ckpt = trainer.checkpoint_callback
        if ckpt is not None and ckpt.monitor == name and ckpt.best_model_score is not None:
            return float(ckpt.best_model_score)
        if name in trainer.callback_metrics:
            return float(trainer.callback_metrics[name])
        raise KeyError(
            f"optimized_metric={name!r} was never logged; logged: {sorted(trainer.callback_metrics)}"
        )
    if name not in metrics:
        raise KeyError(f"optimized_metric={name!r} is not among the test metrics {sorted(metrics)}")
    return metrics[name]


def _is_pruned(err: BaseException) -> bool:
    """Whether ``err`` is Optuna's pruning signal (optuna is imported only where a trial could raise it)."""
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(err, optuna.TrialPruned)


def run_job(cfg: DictConfig, resumed: bool = False) -> float | None:
    """One job in its run folder: train, mark the folder when it does not finish, return the sweep metric.

    A folder marked ``INTERRUPTED`` with a ``last.ckpt`` is continued from it (a requeued SLURM job, or the
    same command with the same ``run_id``). Marks are cleared only when the run finishes, so every rank of
    a job, however late it starts, sees the same mark and makes the same choice. The job leaves the process as
    it found it (:func:`aelab.jobs.isolated_job`), so the next job of a sweep starts afresh.
    """
    run_dir = RunDir(cfg.paths.output_dir)
    if not cfg.get("ckpt_path") and run_dir.interrupted_with_checkpoint:
        log.info("continuing the interrupted run in %s from %s", run_dir.path, run_dir.last_ckpt)
        OmegaConf.update(cfg, "ckpt_path", str(run_dir.last_ckpt))
        resumed = True
    with jobs.isolated_job():
        try:
            metrics, objects = train(cfg, resumed=resumed)
        except RunInterrupted:
            raise  # the Preemption callback marked the folder INTERRUPTED
        except BaseException as err:
            run_dir.mark("PRUNED" if _is_pruned(err) else "FAILED", f"{type(err).__name__}: {err}")
            raise
        run_dir.clear_status()
        return sweep_value(cfg, metrics, objects)


def resume(run_dir: str, overrides: list[str]) -> float | None:
    """Continue the run in ``run_dir`` with ``overrides`` (:func:`aelab.resume.resume_config`); returns the sweep
    metric (see :func:`run_job`)."""
    cfg = resume_config(run_dir, overrides)
    record_resume(cfg, overrides)
    return run_job(cfg, resumed=True)


def _one_line(fn, *args) -> Any:
    """``fn(*args)``, a refusal printed as one line with exit 2 (``HYDRA_FULL_ERROR=1``: the traceback)."""
    try:
        return fn(*args)
    except AelabError as err:
        exit_with_one_line("aelab-train", err)
        raise


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    return _one_line(run_job, cfg)


def main() -> Any:
    """The ``aelab-train`` command: a DDP child, ``resume=<run dir>``, or the Hydra application."""
    runs.reset_run_id()
    child = jobs.child_config()
    if child is not None:  # a DDP rank started by Lightning's launcher: the parent's job, nothing else
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
        return train(child)
    args = sys.argv[1:]
    resume_args = [a for a in args if a.startswith("resume=")]
    if resume_args:
        if "-m" in args or "--multirun" in args:
            raise SystemExit("aelab-train: resume= continues one run; it does not combine with -m")
        return _one_line(
            resume, resume_args[-1].split("=", 1)[1], [a for a in args if not a.startswith("resume=")]
        )
    return hydra_main()


if __name__ == "__main__":
    main()
