"""``aelab-eval ckpt_path=...``: test a checkpoint written by ``aelab-train``, then run the evaluation suite.

The model is rebuilt from the run config stored inside the checkpoint, and by default the data config
too (same split, batch size and noise seeds), so the numbers equal the ones the training run reported
for that checkpoint. ``data_from_checkpoint=false data=fashion_mnist`` tests on another dataset. The
checkpoint is untrusted: its config may only build aelab's classes and those of the packages trusted now
(``AELAB_TRUST=mypkg`` or ``trust=[mypkg]``). Under DDP every rank tests its shard; the suite runs on rank 0.
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from aelab import CONF_DIR, reporting
from aelab.checkpoint import load_run_config
from aelab.errors import AelabError, ConfigError, exit_with_one_line
from aelab.trust import trusted_prefixes
from aelab.utils.config import apply_matmul_precision, instantiate_group
from aelab.utils.validate import validate_loggers

log = logging.getLogger("aelab")


def evaluate(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Test ``cfg.ckpt_path`` and run the suite (``cfg.suite``, see :mod:`aelab.evaluation.suite`); write every
    figure to ``metrics.json``, the loggers (scalars, images, hparams) and a table on stdout."""
    if not cfg.get("ckpt_path"):
        raise ConfigError("aelab-eval needs a checkpoint: aelab-eval ckpt_path=logs/train/runs/.../last.ckpt")
    apply_matmul_precision(cfg)
    validate_loggers(cfg)
    run_cfg = load_run_config(cfg.ckpt_path, trusted_prefixes(cfg.get("trust")))
    model: pl.LightningModule = instantiate(run_cfg.model)
    data_cfg = run_cfg.data if cfg.get("data_from_checkpoint", True) else cfg.data
    data_cfg = OmegaConf.merge(data_cfg, {"data_dir": cfg.paths.data_dir})
    datamodule: pl.LightningDataModule = instantiate(data_cfg)
    cfg = default_ood_for(cfg, data_cfg)
    loggers = instantiate_group(cfg.get("logger"), "logger")
    trainer_cfg = cfg.trainer
    if cfg.get("precision_from_checkpoint", True) and run_cfg.get("trainer", {}).get("precision"):
        trainer_cfg = OmegaConf.merge(trainer_cfg, {"precision": run_cfg.trainer.precision})
    trainer: pl.Trainer = instantiate(trainer_cfg, logger=loggers or False, callbacks=[])
    reporting.log_config_text(loggers, cfg)
    trainer.test(model=model, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    metrics = reporting.collect_metrics(trainer, "test/")
    suite_cfg = cfg.get("suite")
    if suite_cfg is not None and suite_cfg.enabled and trainer.is_global_zero:
        from aelab.evaluation.suite import run_suite

        extra = run_suite(
            model, datamodule, suite_cfg, cfg.paths.output_dir, trainer.strategy.root_device,
            loggers=loggers, step=trainer.global_step, precision=str(trainer_cfg.precision),
        )  # fmt: skip
        reporting.log_scalars(loggers, extra, trainer.global_step)
        metrics = dict(sorted({**metrics, **extra}.items()))
    hp_cfg = OmegaConf.merge(run_cfg, {"data": OmegaConf.to_container(data_cfg)})
    reporting.report_final_metrics(loggers, hp_cfg, metrics, cfg.paths.output_dir, cfg.ckpt_path)
    return metrics, {"model": model, "datamodule": datamodule, "trainer": trainer}


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
    ood_shape, data_shape = list(ood.get("image_shape") or []), list(data_cfg.get("image_shape") or [])
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


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    try:
        evaluate(cfg)
    except AelabError as err:
        exit_with_one_line("aelab-eval", err)
        raise


if __name__ == "__main__":
    main()
