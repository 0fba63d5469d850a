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
from aelab.utils import run

log = logging.getLogger("aelab")


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit, then test the best checkpoint; write ``metrics.json`` and the TensorBoard hparams entry.

    Returns:
        ``(test metrics, objects)`` with the instantiated ``model``, ``datamodule`` and ``trainer``.
    """
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    run.apply_matmul_precision(cfg)

    datamodule: pl.LightningDataModule = instantiate(cfg.data)
    model: pl.LightningModule = instantiate(cfg.model)
    callbacks = run.instantiate_group(cfg.get("callbacks"), "callbacks") + [run.ConfigInCheckpoint(cfg)]
    loggers = run.instantiate_group(cfg.get("logger"), "logger")
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    run.log_config_text(loggers, cfg)
    trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    metrics: dict[str, float] = {}
    if cfg.get("test"):
        ckpt = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if not ckpt:
            log.warning("no best checkpoint (e.g. fast_dev_run): testing the current weights")
        trainer.test(model=model, datamodule=datamodule, ckpt_path=ckpt or None)
        metrics = run.collect_metrics(trainer, "test/")
        run.report_final_metrics(loggers, cfg, metrics, cfg.paths.output_dir, ckpt or "current weights")
    return metrics, {"model": model, "datamodule": datamodule, "trainer": trainer}


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics, _ = train(cfg)
    name = cfg.get("optimized_metric")
    if name:
        if name not in metrics:
            raise KeyError(f"optimized_metric={name!r} is not among the test metrics {sorted(metrics)}")
        return metrics[name]
    return None


if __name__ == "__main__":
    main()
