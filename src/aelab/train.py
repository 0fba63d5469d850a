"""``aelab-train`` / ``python -m aelab.train``: train, validate and test a model from the Hydra configs.

Examples::

    aelab-train                                   # MLP AE on MNIST, CPU or GPU (accelerator auto)
    aelab-train model=vae trainer=gpu data.batch_size=512
    aelab-train -m model=ae,conv_ae seed=1,2,3    # a multirun sweep
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

from aelab import CONF_DIR
from aelab.callbacks.lifecycle import Preemption, resume_command
from aelab.checkpoint import check_state_matches, read_checkpoint
from aelab.utils import run
from aelab.utils.validate import validate_run_config

log = logging.getLogger("aelab")


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit, then test the best checkpoint; write ``metrics.json`` and the TensorBoard hparams entry.

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
        check_state_matches(
            model,
            read_checkpoint(ckpt_path),
            ckpt_path,
            "add that model's override (e.g. model=conv_ae), or continue its run with aelab-train resume=<run dir>",
        )
    preemption = Preemption(cfg.paths.output_dir)
    callbacks = run.instantiate_group(cfg.get("callbacks"), "callbacks")
    callbacks += [run.ConfigInCheckpoint(cfg), preemption]
    loggers = run.instantiate_group(cfg.get("logger"), "logger")
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    run.log_config_text(loggers, cfg)
    try:
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path)
    except BaseException as err:
        if preemption.stopped_by:
            raise RunInterrupted(preemption.stopped_by, cfg.paths.output_dir) from err
        raise

    metrics: dict[str, float] = {}
    if cfg.get("test"):
        ckpt = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if not ckpt:
            log.warning("no best checkpoint (e.g. fast_dev_run): testing the current weights")
        trainer.test(model=model, datamodule=datamodule, ckpt_path=ckpt or None)
        metrics = run.collect_metrics(trainer, "test/")
        run.report_final_metrics(loggers, cfg, metrics, cfg.paths.output_dir, ckpt or "current weights")
    return metrics, {"model": model, "datamodule": datamodule, "trainer": trainer}


class RunInterrupted(SystemExit):
    """The run was stopped by a signal (``SIGTERM``/``SIGUSR1``: exit 143; Ctrl-C: exit 130); it can be resumed."""

    def __init__(self, signal_name: str, run_dir: str) -> None:
        super().__init__(143 if signal_name == "SIGTERM" else 130)
        self.signal_name = signal_name
        self.run_dir = run_dir


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    output_dir = cfg.paths.output_dir
    run.clear_run_status(output_dir)
    try:
        metrics, _ = train(cfg)
    except RunInterrupted as err:
        run.mark_run(
            output_dir,
            "INTERRUPTED",
            f"stopped by {err.signal_name}; continue with: {resume_command(output_dir)}",
        )
        raise
    except BaseException as err:
        run.mark_run(output_dir, "FAILED", f"{type(err).__name__}: {err}")
        raise
    name = cfg.get("optimized_metric")
    if name:
        if name not in metrics:
            raise KeyError(f"optimized_metric={name!r} is not among the test metrics {sorted(metrics)}")
        return metrics[name]
    return None


if __name__ == "__main__":
    main()
