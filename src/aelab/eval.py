"""``aelab-eval ckpt_path=...``: test a checkpoint written by ``aelab-train``, then run the evaluation suite.

The model is rebuilt from the run config stored inside the checkpoint, and by default the data config
too (same split, batch size and noise seeds), so the numbers equal the ones the training run reported
for that checkpoint. ``data_from_checkpoint=false data=fashion_mnist`` tests on another dataset.
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from aelab import CONF_DIR
from aelab.checkpoint import load_run_config
from aelab.utils import run

log = logging.getLogger("aelab")


def evaluate(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Test ``cfg.ckpt_path`` and run the suite (``cfg.suite``, see :mod:`aelab.evaluation.suite`); write every
    figure to ``metrics.json``, TensorBoard (scalars + hparams) and a table on stdout."""
    if not cfg.get("ckpt_path"):
        raise ValueError("aelab-eval needs a checkpoint: aelab-eval ckpt_path=logs/train/runs/.../last.ckpt")
    run.apply_matmul_precision(cfg)
    run_cfg = load_run_config(cfg.ckpt_path)
    model: pl.LightningModule = instantiate(run_cfg.model)
    data_cfg = run_cfg.data if cfg.get("data_from_checkpoint", True) else cfg.data
    data_cfg = OmegaConf.merge(data_cfg, {"data_dir": cfg.paths.data_dir})
    datamodule: pl.LightningDataModule = instantiate(data_cfg)
    loggers = run.instantiate_group(cfg.get("logger"), "logger")
    trainer_cfg = cfg.trainer
    if cfg.get("precision_from_checkpoint", True) and run_cfg.get("trainer", {}).get("precision"):
        trainer_cfg = OmegaConf.merge(trainer_cfg, {"precision": run_cfg.trainer.precision})
    trainer: pl.Trainer = instantiate(trainer_cfg, logger=loggers or False, callbacks=[])
    run.log_config_text(loggers, cfg)
    trainer.test(model=model, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    metrics = run.collect_metrics(trainer, "test/")
    suite_cfg = cfg.get("suite")
    if suite_cfg is not None and suite_cfg.enabled:
        from aelab.evaluation.suite import run_suite

        extra = run_suite(model, datamodule, suite_cfg, cfg.paths.output_dir, trainer.strategy.root_device)
        run.log_scalars(loggers, extra, trainer.global_step)
        metrics = dict(sorted({**metrics, **extra}.items()))
    hp_cfg = OmegaConf.merge(run_cfg, {"data": OmegaConf.to_container(data_cfg)})
    run.report_final_metrics(loggers, hp_cfg, metrics, cfg.paths.output_dir, cfg.ckpt_path)
    return metrics, {"model": model, "datamodule": datamodule, "trainer": trainer}


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
