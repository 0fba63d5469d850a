"""``aelab-train`` / ``python -m aelab.train``: train, validate and test a model from the Hydra configs.

Examples::

    aelab-train                                   # MLP AE on MNIST, CPU or GPU (accelerator auto)
    aelab-train model=vae trainer=gpu data.batch_size=512
    aelab-train -m model=ae,conv_ae seed=1,2,3    # a multirun sweep
    aelab-train resume=logs/train/runs/<id> trainer.max_epochs=20   # continue a run in its own folder

One job is one run folder, whatever launches it (see :mod:`aelab.utils.runs`). Lightning's DDP launcher starts
the other ranks by re-running this command; those children do not compose a config or run a sweep of their
own: they read the job's resolved config (``AELAB_JOB_CONFIG``) and run that one job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from aelab import CONF_DIR
from aelab.callbacks.lifecycle import Preemption, resume_command
from aelab.checkpoint import check_state_matches, read_checkpoint
from aelab.tune import trial_callback
from aelab.utils import run, runs
from aelab.utils.validate import validate_run_config

log = logging.getLogger("aelab")

JOB_CONFIG_ENV = "AELAB_JOB_CONFIG"  # the resolved job config handed to Lightning's DDP children


def train(cfg: DictConfig, resumed: bool = False) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit, then test the best checkpoint; write ``metrics.json`` and the TensorBoard hparams entry.

    Args:
        cfg: the composed run config.
        resumed: the run continues in its own folder (``resume=``); changes the advice of a shape mismatch.

    Returns:
        ``(test metrics, objects)`` with the instantiated ``model``, ``datamodule`` and ``trainer``.
    """
    validate_run_config(cfg)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    run.apply_matmul_precision(cfg)

    datamodule: pl.LightningDataModule = instantiate(cfg.data)
    model: pl.LightningModule = instantiate(cfg.model)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path:
        # Lightning would load it itself; read it safely first and check that it fits the configured model.
        fix = (
            "the resume overrides change the model's shape; drop them (a resumed run keeps its model)"
            if resumed
            else "add that model's override (e.g. model=conv_ae), or continue its run with aelab-train resume=<run dir>"
        )
        check_state_matches(model, read_checkpoint(ckpt_path), ckpt_path, fix)
    preemption = Preemption(cfg.paths.output_dir)
    tune_cb = trial_callback(cfg)  # set when this run is a trial of an Optuna study
    callbacks = run.instantiate_group(cfg.get("callbacks"), "callbacks")
    callbacks += [run.ConfigInCheckpoint(cfg), preemption, *([tune_cb] if tune_cb else [])]
    loggers = run.instantiate_group(cfg.get("logger"), "logger")
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    run.log_config_text(loggers, cfg)
    with _job_config_for_children(trainer, cfg):
        try:
            trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        except BaseException as err:
            if preemption.stopped_by:
                raise RunInterrupted(preemption.stopped_by, cfg.paths.output_dir) from err
            raise
        if tune_cb is not None:
            tune_cb.check_pruned()  # optuna.TrialPruned: the folder is marked PRUNED, the study told

        metrics: dict[str, float] = {}
        if cfg.get("test"):
            ckpt = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            if not ckpt:
                log.warning("no best checkpoint (e.g. fast_dev_run): testing the current weights")
            trainer.test(model=model, datamodule=datamodule, ckpt_path=ckpt or None, weights_only=True)
            metrics = run.collect_metrics(trainer, "test/")
            run.report_final_metrics(loggers, cfg, metrics, cfg.paths.output_dir, ckpt or "current weights")
    objective = tune_cb.best if tune_cb is not None else None
    return metrics, {"model": model, "datamodule": datamodule, "trainer": trainer, "objective": objective}


def sweep_value(cfg: DictConfig, metrics: dict[str, float], objects: dict[str, Any]) -> float | None:
    """What a Hydra sweeper gets back: an Optuna trial's best validation value; else ``optimized_metric`` —
    ``val/...`` as its best epoch (the checkpoint's monitor) or last value, ``test/...`` from the test."""
    if cfg.get("optuna"):
        return objects["objective"]
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


@contextlib.contextmanager
def _job_config_for_children(trainer: pl.Trainer, cfg: DictConfig):
    """When Lightning's subprocess launcher will start the other ranks, hand them this job's resolved config.

    The launcher re-runs ``sys.argv``; in a ``-m`` sweep that would re-run the whole sweep (and compose a
    folder of its own). With ``AELAB_JOB_CONFIG`` set, :func:`main` in a child runs exactly this job.
    """
    from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    launcher = trainer.strategy.launcher
    if not isinstance(launcher, _SubprocessScriptLauncher) or JOB_CONFIG_ENV in os.environ:
        yield
        return
    fd, path = tempfile.mkstemp(prefix="aelab-job-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(OmegaConf.to_yaml(cfg, resolve=True))
    os.environ[JOB_CONFIG_ENV] = path
    try:
        yield
    finally:
        os.environ.pop(JOB_CONFIG_ENV, None)
        Path(path).unlink(missing_ok=True)


class RunInterrupted(SystemExit):
    """The run was stopped by a signal (``SIGTERM``/``SIGUSR1``: exit 143; Ctrl-C: exit 130); it can be resumed."""

    def __init__(self, signal_name: str, run_dir: str) -> None:
        super().__init__(143 if signal_name == "SIGTERM" else 130)
        self.signal_name = signal_name
        self.run_dir = run_dir


def run_job(cfg: DictConfig, resumed: bool = False) -> float | None:
    """One job in its run folder: train, mark the folder when it does not finish, return the sweep metric.

    A folder marked ``INTERRUPTED`` with a ``last.ckpt`` is continued from it (a requeued SLURM job, or the
    same command with the same ``run_id``). Marks are cleared only when the run finishes, so every rank of
    a job, however late it starts, sees the same mark and makes the same choice.
    """
    output_dir = Path(cfg.paths.output_dir)
    last = output_dir / "checkpoints" / "last.ckpt"
    if not cfg.get("ckpt_path") and (output_dir / "INTERRUPTED").exists() and last.is_file():
        log.info("continuing the interrupted run in %s from %s", output_dir, last)
        OmegaConf.update(cfg, "ckpt_path", str(last))
        resumed = True
    try:
        metrics, objects = train(cfg, resumed=resumed)
    except RunInterrupted as err:
        line = f"stopped by {err.signal_name}; continue with: {resume_command(output_dir)}"
        run.mark_run(output_dir, "INTERRUPTED", line)
        raise
    except BaseException as err:
        status = "PRUNED" if type(err).__name__ == "TrialPruned" else "FAILED"
        run.mark_run(output_dir, status, f"{type(err).__name__}: {err}")
        raise
    run.clear_run_status(output_dir)
    return sweep_value(cfg, metrics, objects)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    return run_job(cfg)


# ---------------------------------------------------------------------------- resume=<run dir>
def resume_config(run_dir: str | Path, overrides: list[str]) -> DictConfig:
    """The composed config of the run in ``run_dir`` (``.hydra/config.yaml``) with ``overrides`` applied, set to
    continue from ``checkpoints/last.ckpt`` in that same folder.

    The folder is untrusted: its config's targets (after the overrides, which may remove one) are checked
    against :data:`aelab.checkpoint.RUN_TARGETS` and its interpolations against ``RUN_RESOLVERS``.

    Raises:
        FileNotFoundError: when the folder is not a run folder, or has no checkpoint yet.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from aelab.checkpoint import RUN_RESOLVERS, RUN_TARGETS, check_config_tree

    run_dir = Path(run_dir).expanduser().resolve()
    cfg_file = run_dir / ".hydra" / "config.yaml"
    if not cfg_file.is_file():
        raise FileNotFoundError(
            f"resume={run_dir}: not an aelab run folder ({cfg_file} is missing); pass the folder of a run, "
            "e.g. resume=logs/train/runs/<id>"
        )
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise FileNotFoundError(
            f"resume={run_dir}: the run has no checkpoint yet ({ckpt} is missing: it stopped before its first "
            f"epoch ended). Start it afresh with the overrides in {run_dir / '.hydra' / 'overrides.yaml'}"
        )
    bad = [
        o for o in overrides if o.split("=", 1)[0].lstrip("+~") in ("paths.output_dir", "ckpt_path", "run_id")
    ]
    if bad:
        raise ValueError(f"resume= keeps the run's folder and checkpoint; drop {', '.join(bad)}")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(run_dir / ".hydra"), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
    finally:
        GlobalHydra.instance().clear()
    # what will be built: the stored config as the resume's own overrides left it
    check_config_tree(
        OmegaConf.to_container(cfg, resolve=False), str(cfg_file), RUN_TARGETS, resolvers=RUN_RESOLVERS
    )
    OmegaConf.update(cfg, "paths.output_dir", str(run_dir))
    OmegaConf.update(cfg, "ckpt_path", str(ckpt))
    return cfg


def resume(run_dir: str, overrides: list[str]) -> float | None:
    """``aelab-train resume=<run dir> [overrides]``: continue a run in its own folder and TensorBoard run."""
    import datetime as dt

    cfg = resume_config(run_dir, overrides)
    out = Path(cfg.paths.output_dir)
    if runs.global_rank() == 0:
        task = cfg.get("task_name", "train")
        handler = logging.FileHandler(out / f"{task}.log", mode="a")
        handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
        with open(out / ".hydra" / "resume_overrides.yaml", "a") as f:  # the original overrides.yaml stays
            f.write(f"# {dt.datetime.now().isoformat(timespec='seconds')}\n- {overrides!r}\n")
        log.info("resuming %s from %s with overrides %s", out, cfg.ckpt_path, overrides)
    return run_job(cfg, resumed=True)


def _child_job(path: str) -> None:
    """A DDP rank started by Lightning's launcher: run the parent's job (its resolved config), nothing else."""
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    train(OmegaConf.load(path))


def main() -> Any:
    """The ``aelab-train`` command: a DDP child, ``resume=<run dir>``, or the Hydra application."""
    runs.reset_run_id()
    job_config = os.environ.get(JOB_CONFIG_ENV)
    if job_config and os.path.isfile(job_config) and os.environ.get("LOCAL_RANK", "0") != "0":
        return _child_job(job_config)
    args = sys.argv[1:]
    resume_args = [a for a in args if a.startswith("resume=")]
    if resume_args:
        if "-m" in args or "--multirun" in args:
            raise SystemExit("aelab-train: resume= continues one run; it does not combine with -m")
        rest = [a for a in args if not a.startswith("resume=")]
        try:
            return resume(resume_args[-1].split("=", 1)[1], rest)
        except (FileNotFoundError, ValueError) as err:
            print(f"aelab-train: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
    return hydra_main()


if __name__ == "__main__":
    main()
