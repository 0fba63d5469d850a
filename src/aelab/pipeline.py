"""The pipeline under aelab's command lines: :func:`train` (fit, test, record), :func:`run_job` (one job in its run
folder: marks, a requeued or interrupted job continued), :func:`resume` (a run folder continued) and
:func:`evaluate` (a checkpoint tested and the evaluation suite run). The command lines (:mod:`aelab.cli`) only
parse and report; the same functions serve sweeps, the DDP children and the tests.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from aelab import jobs, reporting
from aelab.callbacks.guards import DivergenceGuard, RNGState
from aelab.callbacks.preemption import ConfigInCheckpoint, LastCheckpointAtFitEnd, Preemption, RunInterrupted
from aelab.checkpoint import check_state_matches, load_run_config, read_checkpoint
from aelab.data.contract import sample_kind
from aelab.errors import ConfigError, DeviceError, UntrustedFileError
from aelab.module import AutoencoderModule
from aelab.resume import record_resume, resume_config
from aelab.rundir import RunDir
from aelab.trust import check_run_targets, trusted_prefixes
from aelab.utils.config import apply_matmul_precision, instantiate_group
from aelab.utils.validate import check_config_values, validate_loggers

log = logging.getLogger("aelab")


def preflight(cfg: DictConfig) -> tuple[str, ...]:
    """Everything checked before a run builds anything, in one place: the values (sizes, probabilities, σ:
    :func:`aelab.utils.validate.check_config_values`), the loggers' packages, and the classes the config may build
    (:func:`aelab.trust.check_run_targets`, against aelab's and the trusted prefixes). Returns the trusted prefixes.

    Raises:
        ConfigError: for a bad value or a logger whose package is missing.
        UntrustedFileError: for a target the config may not build.
    """
    check_config_values(cfg)
    validate_loggers(cfg)
    trust = trusted_prefixes(cfg.get("trust"))
    check_run_targets(OmegaConf.to_container(cfg, resolve=True), "the run config", trust)
    return trust


def build(node: DictConfig, key: str, **kwargs) -> Any:
    """``instantiate(node)``; a constructor's refusal of a value (a ``ValueError`` or an aelab refusal, which Hydra
    wraps) comes out as one :class:`~aelab.errors.ConfigError` line naming ``key``.

    Raises:
        ConfigError: for a value the object's constructor refused.
    """
    from hydra.errors import InstantiationException

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, ConfigError | ValueError) and not isinstance(cause, UntrustedFileError):
            raise ConfigError(f"{key}: {cause}") from None
        raise


def build_module(cfg: DictConfig, net=None) -> AutoencoderModule:
    """The LightningModule of a run: its model (``cfg.model``, an ``nn.Module``), optimizer, scheduler and
    evaluation seed."""
    scheduler = cfg.get("scheduler")
    return AutoencoderModule(
        net=build(cfg.model, "model") if net is None else net,
        optimizer=instantiate(cfg.optimizer) if cfg.get("optimizer") else None,
        scheduler=instantiate(scheduler) if scheduler else None,
        scheduler_interval=str(cfg.get("scheduler_interval") or "epoch"),
        eval_seed=int(cfg.get("eval_seed", 1234)),
    )


def build_trainer(trainer_cfg: DictConfig, **kwargs) -> pl.Trainer:
    """The Lightning trainer of ``trainer_cfg``; a trainer this machine cannot run (``trainer=gpu`` without a GPU,
    an unknown strategy) is refused with one line.

    Raises:
        DeviceError: naming the trainer setting and a fix.
    """
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    try:
        return instantiate(trainer_cfg, **kwargs)
    except Exception as err:  # Hydra wraps the trainer's own error
        cause = err
        while cause is not None and not isinstance(cause, MisconfigurationException):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        first = str(cause).strip().splitlines()[0]
        raise DeviceError(
            f"trainer (accelerator={trainer_cfg.get('accelerator')}, devices={trainer_cfg.get('devices')}, "
            f"strategy={trainer_cfg.get('strategy')}) cannot run here: {first} Choose one that fits this machine, "
            "e.g. trainer=cpu or trainer=default (the accelerator found)"
        ) from None


def attach_data_shape(cfg: DictConfig, datamodule) -> None:
    """Fill ``data.shape`` and the data's other derived fields (the data contract's ``derived_config()``: the
    training users a CDAE's user nodes number) where the config leaves them to the data (``null``: a table's feature
    count is known once the file is read), so the model's ``${data.shape}`` resolves."""
    with open_dict(cfg):
        if OmegaConf.select(cfg, "data.shape") is None and hasattr(datamodule, "shape"):
            cfg.data.shape = list(datamodule.shape)
        derived = datamodule.derived_config() if hasattr(datamodule, "derived_config") else {}
        for key, value in derived.items():
            if OmegaConf.select(cfg, f"data.{key}") is None:
                cfg.data[key] = value


def check_sample_kind(net, datamodule, model_key: str = "model") -> None:
    """Refuse a model on data of a kind it does not take (its declared ``sample_kinds``; a model that declares none
    takes any).

    Raises:
        ConfigError: naming the model, the data's kind and the fix.
    """
    kinds = getattr(net, "sample_kinds", None)
    kind = sample_kind(datamodule)
    if kinds is not None and kind not in kinds:
        raise ConfigError(
            f"{model_key}: {type(net).__name__} takes {' or '.join(kinds)} samples, but the data "
            f"({getattr(datamodule, 'name', type(datamodule).__name__)}) holds {kind} samples: choose a model for "
            f"{kind} data, or data of kind {kinds[0]}"
        )


def train(cfg: DictConfig, resumed: bool = False) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit, then test the best checkpoint; write ``metrics.json`` and the hparams entry with the final metrics.

    Every value and every ``_target_`` of ``cfg`` is checked before anything is built (:mod:`aelab.utils.validate`,
    :mod:`aelab.trust`: classes of aelab, torch.optim, Lightning and the trusted packages only).

    Args:
        cfg: the composed run config.
        resumed: the run continues in its own folder (``resume=``); changes the advice of a shape mismatch.

    Returns:
        ``(test metrics, objects)`` with the ``module`` (its ``net`` is the model), ``datamodule`` and ``trainer``.
    """
    trust = preflight(cfg)
    ckpt_path = cfg.get("ckpt_path")
    ckpt = read_checkpoint(ckpt_path, trust) if ckpt_path else None  # an unreadable or old one: refused first
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    apply_matmul_precision(cfg)

    datamodule: pl.LightningDataModule = build(cfg.data, "data")
    attach_data_shape(cfg, datamodule)
    module = build_module(cfg)
    check_sample_kind(module.net, datamodule)
    if ckpt is not None:
        # Lightning loads it through aelab's CheckpointIO, which takes this read (checked, safe) over
        fix = (
            "the resume overrides change the model's shape; drop them (a resumed run keeps its model)"
            if resumed
            else "add that model's override (e.g. model=conv_ae), or continue its run with aelab-train resume=<run dir>"
        )
        check_state_matches(module.net, ckpt, ckpt_path, fix)
    preemption = Preemption(cfg.paths.output_dir)
    # the guard first: a diverged run stops before any other callback sees its weights
    callbacks = [DivergenceGuard(int(cfg.get("nan_check_every", 50) or 0)), RNGState()]
    callbacks += [*instantiate_group(cfg.get("callbacks"), "callbacks"), ConfigInCheckpoint(cfg), preemption]
    callbacks.append(LastCheckpointAtFitEnd())
    loggers = instantiate_group(cfg.get("logger"), "logger")
    if not loggers:  # logger=none: Lightning's LR monitor refuses a trainer without a logger
        from pytorch_lightning.callbacks import LearningRateMonitor

        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer = build_trainer(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=_plugins(cfg))
    why = getattr(module.net, "single_process", None)
    if why and trainer.world_size > 1:
        raise ConfigError(
            f"model: {type(module.net).__name__} runs in one process ({why}), but the trainer has "
            f"{trainer.world_size}: use trainer=default or trainer=cpu"
        )
    run_dir = RunDir(cfg.paths.output_dir)

    reporting.log_config_text(loggers, cfg)
    with jobs.local_ranks(trainer, cfg, on_failure=lambda why: run_dir.mark("FAILED", why)):
        try:
            trainer.fit(model=module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        except BaseException as err:
            if preemption.stopped_by:
                raise RunInterrupted(preemption.stopped_by, cfg.paths.output_dir) from err
            raise

        metrics: dict[str, float] = {}
        ckpt_file = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        best = {"best_ckpt": run_dir.relative(ckpt_file)} if ckpt_file else {}
        if cfg.get("test"):
            if not ckpt_file:
                log.warning("no best checkpoint (e.g. fast_dev_run): testing the current weights")
            trainer.test(model=module, datamodule=datamodule, ckpt_path=ckpt_file or None, weights_only=True)
            metrics = reporting.collect_metrics(trainer, "test/")
            if trainer.is_global_zero:
                metrics |= train_sections(cfg, module.net, datamodule, trainer, loggers)
            reporting.report_final_metrics(
                loggers, cfg, metrics, cfg.paths.output_dir, ckpt_file or "current weights", record=best
            )
        elif best and trainer.is_global_zero:
            run_dir.record(**best)
    return metrics, {"module": module, "datamodule": datamodule, "trainer": trainer}


def train_sections(cfg: DictConfig, net, datamodule, trainer, loggers) -> dict[str, float]:
    """The evaluation sections the data declares for a training run (the data contract's ``train_sections``: the
    ``anomaly`` section for labelled records, ``recommend`` for held-out users), run right after the test with their
    default settings, so a training run reports its figures beside its baselines; ``{}`` for other data."""
    names = tuple(getattr(datamodule, "train_sections", ()) or ())
    if not names:
        return {}
    from aelab.evaluation import sections
    from aelab.evaluation.context import EvalContext

    ctx = EvalContext(
        net,
        datamodule,
        cfg.paths.output_dir,
        trainer.strategy.root_device,
        1000,
        loggers,
        trainer.global_step,
    )
    out: dict[str, float] = {}
    for name in names:
        out |= getattr(sections, name)(ctx)
    return out


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


# ---------------------------------------------------------------------------------------------- evaluate
def evaluate(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Test ``cfg.ckpt_path`` and run the suite (``cfg.suite``, see :mod:`aelab.evaluation.suite`); write every
    figure to ``metrics.json``, the loggers (scalars, images, hparams) and a table on stdout."""
    if not cfg.get("ckpt_path"):
        raise ConfigError("aelab-eval needs a checkpoint: aelab-eval ckpt_path=logs/train/runs/.../last.ckpt")
    apply_matmul_precision(cfg)
    validate_loggers(cfg)
    run_cfg = load_run_config(cfg.ckpt_path, trusted_prefixes(cfg.get("trust")))
    module = AutoencoderModule(instantiate(run_cfg.model), eval_seed=int(run_cfg.get("eval_seed", 1234)))
    data_cfg = run_cfg.data if cfg.get("data_from_checkpoint", True) else cfg.data
    data_cfg = OmegaConf.merge(data_cfg, {"data_dir": cfg.paths.data_dir})
    datamodule: pl.LightningDataModule = instantiate(data_cfg)
    cfg = default_ood_for(cfg, data_cfg)
    loggers = instantiate_group(cfg.get("logger"), "logger")
    trainer_cfg = cfg.trainer
    if cfg.get("precision_from_checkpoint", True) and run_cfg.get("trainer", {}).get("precision"):
        trainer_cfg = OmegaConf.merge(trainer_cfg, {"precision": run_cfg.trainer.precision})
    trainer = build_trainer(trainer_cfg, logger=loggers or False, callbacks=[])
    reporting.log_config_text(loggers, cfg)
    trainer.test(model=module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    metrics = reporting.collect_metrics(trainer, "test/")
    suite_cfg = cfg.get("suite")
    if suite_cfg is not None and suite_cfg.enabled and trainer.is_global_zero:
        from aelab.evaluation.suite import run_suite

        extra = run_suite(
            module.net, datamodule, suite_cfg, cfg.paths.output_dir, trainer.strategy.root_device,
            loggers=loggers, step=trainer.global_step, precision=str(trainer_cfg.precision),
        )  # fmt: skip
        reporting.log_scalars(loggers, extra, trainer.global_step)
        metrics = dict(sorted({**metrics, **extra}.items()))
    hp_cfg = OmegaConf.merge(run_cfg, {"data": OmegaConf.to_container(data_cfg)})
    reporting.report_final_metrics(loggers, hp_cfg, metrics, cfg.paths.output_dir, cfg.ckpt_path)
    return metrics, {"module": module, "datamodule": datamodule, "trainer": trainer}


def _chosen_on_the_command_line(prefixes: tuple[str, ...]) -> bool:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return False
    return any(o.lstrip("+~").startswith(prefixes) for o in HydraConfig.get().overrides.task)


def default_ood_for(cfg: DictConfig, data_cfg: DictConfig) -> DictConfig:
    """``cfg`` without the anomaly section's out-of-distribution set when that set is eval.yaml's default
    (``data@ood: fashion_mnist``) and does not fit the model's data: images of another shape ``(C, H, W)``, or the
    model's own dataset. The skip is logged with the override that chooses a set; a set chosen on the command line
    (``data@ood=...``, ``ood.*``) is kept, and a shape mismatch then stops the run with a line."""
    anomaly = OmegaConf.select(cfg, "suite.sections.anomaly")
    ood = cfg.get("ood")
    if anomaly is None or ood is None or anomaly.get("ood_data") is None:
        return cfg
    ood_shape, data_shape = list(ood.get("shape") or []), list(data_cfg.get("shape") or [])
    same = (ood.get("_target_"), ood.get("root")) == (data_cfg.get("_target_"), data_cfg.get("root"))
    if _chosen_on_the_command_line(("data@ood", "ood.", "ood=", "suite.sections.anomaly.ood_data")):
        if same:
            raise ConfigError(
                f"the chosen out-of-distribution set ({str(ood.get('_target_')).rsplit('.', 1)[-1]}) is the model's "
                "own dataset: choose another with data@ood=<data config>"
            )
        with open_dict(cfg):  # a chosen set that cannot be read stops the run (the section raises)
            cfg.suite.sections.anomaly.ood_required = True
        return cfg
    if ood_shape != data_shape:
        why = f"its images are {ood_shape} (C, H, W), the model's {data_shape}"
    elif same:
        why = "it is the model's own dataset"
    else:
        return cfg
    log.warning(
        "anomaly detection against the default out-of-distribution set (%s) skipped: %s; choose one with "
        "data@ood=<data config> (e.g. data@ood=image_folder ood.root=DIR ood.image_size=%s ood.channels=%s)",
        str(ood.get("_target_")).rsplit(".", 1)[-1], why, data_shape[1:] if data_shape else "H", data_shape[0] if data_shape else "C",
    )  # fmt: skip
    with open_dict(cfg):
        cfg.suite.sections.anomaly.ood_data = None
    return cfg
