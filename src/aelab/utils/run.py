"""Helpers shared by ``aelab-train`` and ``aelab-eval``: instantiation, TensorBoard text/hparams, metrics."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from aelab.checkpoint import CHOICES_KEY, CONFIG_KEY

log = logging.getLogger("aelab")


def instantiate_group(group: DictConfig | None, kind: str) -> list[Any]:
    """Instantiate every entry of a config group that maps names to ``_target_`` configs.

    ``null`` entries are skipped, so ``callbacks.early_stopping=null`` turns one off.

    Raises:
        TypeError: when an entry is not a mapping with ``_target_`` (names the entry and the fix).
    """
    objs: list[Any] = []
    if not group:
        return objs
    for name, conf in group.items():
        if conf is None:
            continue
        if not isinstance(conf, DictConfig) or "_target_" not in conf:
            raise TypeError(
                f"{kind}.{name} must be a config with a _target_ (or null to disable it), got {conf!r}"
            )
        objs.append(instantiate(conf))
    return objs


class ConfigInCheckpoint(pl.Callback):
    """Stores the resolved run config (and the Hydra group choices, e.g. ``model: conv_ae``) in every
    checkpoint, so ``aelab-eval`` can rebuild the model and errors can name it."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = OmegaConf.to_container(cfg, resolve=True)
        self.cfg.pop("hydra", None)  # present when a config was composed with return_hydra_config (tests)
        self.choices: dict[str, str] = {}
        if HydraConfig.initialized():
            choices = HydraConfig.get().runtime.choices
            self.choices = {k: str(v) for k, v in choices.items() if v is not None and "/" not in k}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.cfg
        checkpoint[CHOICES_KEY] = self.choices


def tensorboard_logger(loggers: list[Logger]) -> TensorBoardLogger | None:
    return next((lg for lg in loggers if isinstance(lg, TensorBoardLogger)), None)


#: model keys that are not hyperparameters (shapes derived from others, numeric checks, speed settings)
_NOT_HPARAMS = {
    "in_shape",
    "out_shape",
    "out_dim",
    "nan_check_every",
    "compile",
    "compile_mode",
    "channels_last",
    "fused",
    "eval_seed",
}


def _model_hparams(node: Any, prefix: str) -> dict[str, Any]:
    """A model config's hyperparameters: no ``_target_``/``_partial_`` keys (a part's class becomes its short
    ``.../class`` name), no shapes, checks or speed settings."""
    out: dict[str, Any] = {}
    if not isinstance(node, Mapping):
        return {prefix.rstrip("/"): node}
    if "_target_" in node:
        out[f"{prefix}class"] = str(node["_target_"]).rpartition(".")[2]
    for key, value in node.items():
        if str(key).startswith("_") or key in _NOT_HPARAMS or (key == "latent_dim" and prefix != "model/"):
            continue  # a part's latent_dim repeats model/latent_dim
        if isinstance(value, Mapping):
            out.update(_model_hparams(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def run_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The hyperparameters worth comparing across runs in TensorBoard's HParams dashboard: the model's (class,
    sizes, loss, optimizer, scheduler, β, corruption, ...), the data set's name, the global batch size and
    whether the data is resident, the trainer's precision and epochs, the seed and the experiment name. No
    ``_target_``, paths or data-loading settings."""
    c = OmegaConf.to_container(cfg, resolve=True)
    out = _model_hparams(c.get("model") or {}, "model/")
    data, trainer = c.get("data") or {}, c.get("trainer") or {}
    out |= {
        "data/name": str(data.get("_target_", "")).rpartition(".")[2],
        "data/batch_size": data.get("batch_size"),
        "data/resident": data.get("resident"),
        "trainer/precision": trainer.get("precision"),
        "trainer/max_epochs": trainer.get("max_epochs"),
        "seed": c.get("seed"),
        "experiment_name": c.get("experiment_name"),
    }
    return {
        k: ("None" if v is None else str(v) if isinstance(v, list | tuple) else v) for k, v in out.items()
    }


@rank_zero_only
def log_config_text(loggers: list[Logger], cfg: DictConfig) -> None:
    """The resolved config as a TensorBoard text entry ``config``."""
    tb = tensorboard_logger(loggers)
    if tb is not None:
        text = OmegaConf.to_yaml(cfg, resolve=True)
        tb.experiment.add_text("config", "    " + text.replace("\n", "\n    "), 0)


@rank_zero_only
def log_hparams_with_metrics(loggers: list[Logger], cfg: DictConfig, metrics: Mapping[str, float]) -> None:
    """The HParams entry, once, with the final metrics attached (no ``hp_metric``): Lightning's
    ``logger.log_hyperparams(params, metrics)`` on every logger (TensorBoard's HParams dashboard, the CSV
    logger's hparams.yaml)."""
    finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
    params = run_hparams(cfg)
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, finite)
        else:
            logger.log_hyperparams(params)
        logger.save()


@rank_zero_only
def log_scalars(loggers: list[Logger], metrics: Mapping[str, float], step: int) -> None:
    """Log extra scalars to every logger (e.g. the evaluation suite's figures)."""
    for logger in loggers:
        logger.log_metrics(dict(metrics), step)


def collect_metrics(trainer: pl.Trainer, prefix: str = "test/") -> dict[str, float]:
    """Final ``prefix`` metrics from ``trainer.callback_metrics`` as Python floats."""
    out = {}
    for k, v in trainer.callback_metrics.items():
        if k.startswith(prefix):
            out[k] = float(v.item() if isinstance(v, torch.Tensor) else v)
    return dict(sorted(out.items()))


@rank_zero_only
def write_metrics(output_dir: str | Path, metrics: Mapping[str, float], name: str = "metrics.json") -> Path:
    """Write the finite ``metrics`` as JSON to ``output_dir/name``; non-finite ones are left out (with a
    warning naming them), never written as if they were results."""
    path = Path(output_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
    if bad:
        log.warning("left out of %s (not finite): %s", path, ", ".join(bad))
    clean = {k: v for k, v in metrics.items() if math.isfinite(v)}
    path.write_text(json.dumps(clean, indent=2) + "\n")
    log.info("metrics written to %s", path)
    return path


@rank_zero_only
def print_table(metrics: Mapping[str, float], title: str = "metrics") -> None:
    width = max((len(k) for k in metrics), default=10)
    lines = [title, "-" * (width + 16)] + [f"{k:<{width}}  {v:>12.6g}" for k, v in metrics.items()]
    print("\n".join(lines), flush=True)


def report_final_metrics(
    loggers: list[Logger], cfg: DictConfig, metrics: Mapping[str, float], output_dir: str | Path, source: str
) -> None:
    """The end of every run: the hparams entry with ``metrics``, ``metrics.json``, and a table on stdout."""
    log_hparams_with_metrics(loggers, cfg, metrics)
    write_metrics(output_dir, metrics)
    print_table(metrics, f"test metrics ({source})")


def apply_matmul_precision(cfg: DictConfig) -> None:
    precision = cfg.get("matmul_precision")
    if precision:
        torch.set_float32_matmul_precision(precision)


RUN_STATUS_FILES = ("FAILED", "INTERRUPTED", "PRUNED")


@rank_zero_only
def mark_run(output_dir: str | Path, status: str, line: str) -> None:
    """Mark a run folder that did not finish: ``FAILED``, ``INTERRUPTED`` or ``PRUNED`` holding one line (the
    error, how to resume, or when the Optuna pruner stopped it). Sweeps, ``make results`` and the aggregation skip folders so marked."""
    clear_run_status(output_dir)
    path = Path(output_dir) / status
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(line.strip().splitlines()[0] + "\n" if line.strip() else status + "\n")


@rank_zero_only
def clear_run_status(output_dir: str | Path) -> None:
    """Remove the ``FAILED``/``INTERRUPTED`` marks of an earlier attempt (when a run finishes)."""
    for name in RUN_STATUS_FILES:
        (Path(output_dir) / name).unlink(missing_ok=True)


def run_finished(run_dir: str | Path) -> bool:
    """True for a run folder with ``metrics.json`` and no ``FAILED``/``INTERRUPTED`` mark."""
    run_dir = Path(run_dir)
    return (run_dir / "metrics.json").is_file() and not any((run_dir / n).exists() for n in RUN_STATUS_FILES)
