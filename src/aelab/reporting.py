"""What a run reports: its hyperparameters beside its final metrics (TensorBoard's HParams, MLflow params, W&B
config), the resolved config as text, ``metrics.json`` and the table on stdout — the same for ``aelab-train``
and ``aelab-eval``."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from aelab.media import Media

log = logging.getLogger("aelab")


#: model keys that are not hyperparameters (shapes derived from others, numeric checks, speed settings)
_NOT_HPARAMS = {
    "in_shape",
    "out_shape",
    "out_dim",
    "fused",
    "image_shape",
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
    for group in ("optimizer", "scheduler"):
        out |= _model_hparams(c.get(group), f"{group}/") if c.get(group) else {f"{group}/class": "None"}
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
    """The resolved config as a text entry ``config`` in every logger that shows text (:class:`aelab.media.Media`)."""

    Media(loggers).text("config", OmegaConf.to_yaml(cfg, resolve=True))


@rank_zero_only
def log_hparams_with_metrics(loggers: list[Logger], cfg: DictConfig, metrics: Mapping[str, float]) -> None:
    """The HParams entry, once, with the final metrics attached (no ``hp_metric``): Lightning's
    ``logger.log_hyperparams(params, metrics)`` for TensorBoard (its HParams dashboard); the other loggers (CSV's
    hparams.yaml, MLflow's params, W&B's config) take the params, and the metrics as scalars."""
    finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
    params = run_hparams(cfg)
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, finite)
        else:
            logger.log_hyperparams(params)
            logger.log_metrics(finite, step=None)
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
def write_metrics(
    output_dir: str | Path,
    metrics: Mapping[str, float],
    name: str = "metrics.json",
    record: Mapping[str, str] | None = None,
) -> Path:
    """Write the finite ``metrics`` as JSON to ``output_dir/name``; non-finite ones are left out (with a
    warning naming them), never written as if they were results. ``record`` adds text entries (the run's
    ``best_ckpt``)."""
    path = Path(output_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
    if bad:
        log.warning("left out of %s (not finite): %s", path, ", ".join(bad))
    clean = {**{k: v for k, v in metrics.items() if math.isfinite(v)}, **dict(record or {})}
    path.write_text(json.dumps(clean, indent=2) + "\n")
    log.info("metrics written to %s", path)
    return path


@rank_zero_only
def print_table(metrics: Mapping[str, float], title: str = "metrics") -> None:
    width = max((len(k) for k in metrics), default=10)
    lines = [title, "-" * (width + 16)] + [f"{k:<{width}}  {v:>12.6g}" for k, v in metrics.items()]
    print("\n".join(lines), flush=True)


@rank_zero_only
def finish_loggers(loggers: list[Logger]) -> None:
    """End the loggers' runs that stay open otherwise (a W&B run: its summary is written, and the next run of a
    sweep in this process starts its own)."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish()


def report_final_metrics(
    loggers: list[Logger],
    cfg: DictConfig,
    metrics: Mapping[str, float],
    output_dir: str | Path,
    source: str,
    record: Mapping[str, str] | None = None,
) -> None:
    """The end of every run: the hparams entry with ``metrics``, ``metrics.json`` (with the text entries of
    ``record``), a table on stdout, and the loggers' runs finished."""
    log_hparams_with_metrics(loggers, cfg, metrics)
    write_metrics(output_dir, metrics, record=record)
    print_table(metrics, f"test metrics ({source})")
    finish_loggers(loggers)
