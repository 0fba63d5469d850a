"""Checks of a composed run config before anything is built: one clear line naming the key and the fix.

A value one object takes is checked by that object's constructor, once: its refusal comes out as one
:class:`~aelab.errors.ConfigError` line naming the config group (:func:`aelab.pipeline.build`), so :data:`RULES`
holds only what no aelab constructor checks (see the comment above it), and the helpers here are the bounds a
constructor shares (:func:`valid_sigma`, :func:`valid_probability`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from aelab.errors import ConfigError


def _num(v: Any) -> bool:
    """A finite real number (not a bool, not a string)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def valid_sigma(sigma: Any) -> bool:
    """A Gaussian noise std is valid when it is a finite number ``σ >= 0`` (pixel units)."""
    return _num(sigma) and sigma >= 0


def valid_probability(p: Any) -> bool:
    """A corruption probability is valid when it is a number in [0, 1]."""
    return _num(p) and 0.0 <= p <= 1.0


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive_int(v: Any) -> bool:
    return _int(v) and v > 0


def _ints_positive(v: Any) -> bool:
    return isinstance(v, list | tuple) and len(v) > 0 and all(_positive_int(x) for x in v)


def _widths(v: Any) -> bool:
    # [] is a single linear layer (e.g. experiment=seed_784_32)
    return isinstance(v, list | tuple) and all(_positive_int(x) for x in v)


def _devices(v: Any) -> bool:
    if isinstance(v, str) or v == -1 or _positive_int(v):
        return True
    return isinstance(v, list | tuple) and len(v) > 0 and all(_int(x) and x >= 0 for x in v)


# (key, check, what it must be, example fix); a key that is absent is not checked.
#
# Only values no aelab constructor checks (a bound a constructor checks is not repeated here: the corruption's σ and
# p, a VAE's sigma, the codecs' λ, ... are refused by their classes): the data's sizes (TensorDataModule takes them
# unchecked; a split is checked against the data's size only once it is read), the model's widths, code size and
# KL weight (the model classes take them unchecked), the optimizer's (built partially: torch checks only when the
# run starts, and allows lr=0), the divergence guard's interval, and the Lightning trainer's (whose own refusals
# are not one line naming the key).
RULES: list[tuple[str, Callable[[Any], bool], str, str]] = [
    ("data.batch_size", _positive_int, "a positive integer (the global batch)", "data.batch_size=128"),
    (
        "data.val_size",
        lambda v: _positive_int(v) or (isinstance(v, float) and 0 < v < 1),
        "a positive number of images or a fraction in (0, 1)",
        "data.val_size=5000",
    ),
    (
        "data.test_size",
        lambda v: _positive_int(v) or (isinstance(v, float) and 0 < v < 1),
        "a positive number of images or a fraction in (0, 1)",
        "data.test_size=0.1",
    ),
    ("data.num_workers", lambda v: _int(v) and v >= 0, "an integer >= 0", "data.num_workers=0"),
    ("model.latent_dim", _positive_int, "a positive integer (the code size)", "model.latent_dim=32"),
    (
        "model.encoder.hidden_dims",
        _widths,
        "a list of positive widths ([] for one linear layer)",
        "'model.encoder.hidden_dims=[512,256]'",
    ),
    (
        "model.decoder.hidden_dims",
        _widths,
        "a list of positive widths ([] for one linear layer)",
        "'model.decoder.hidden_dims=[256,512]'",
    ),
    (
        "model.encoder.channels",
        _ints_positive,
        "a non-empty list of positive channel counts",
        "'model.encoder.channels=[32,64]'",
    ),
    (
        "model.decoder.channels",
        _ints_positive,
        "a non-empty list of positive channel counts",
        "'model.decoder.channels=[64,32]'",
    ),
    (
        "optimizer.lr",
        lambda v: _num(v) and v > 0,
        "a finite learning rate > 0",
        "optimizer.lr=1e-3",
    ),
    (
        "optimizer.weight_decay",
        lambda v: _num(v) and v >= 0,
        "a finite value >= 0",
        "optimizer.weight_decay=0",
    ),
    ("model.kl_coeff", lambda v: _num(v) and v >= 0, "β >= 0", "model.kl_coeff=1.0"),
    ("model.kl_warmup_steps", lambda v: _int(v) and v >= 0, "an integer >= 0", "model.kl_warmup_steps=0"),
    ("nan_check_every", lambda v: _int(v) and v >= 0, "an integer >= 0", "nan_check_every=50"),
    (
        "trainer.max_epochs",
        lambda v: v is None or (_int(v) and (v >= 1 or v == -1)),
        "an integer >= 1 (or -1: no limit)",
        "trainer.max_epochs=10",
    ),
    ("trainer.num_nodes", _positive_int, "a positive integer", "trainer.num_nodes=1"),
    ("trainer.log_every_n_steps", _positive_int, "a positive integer", "trainer.log_every_n_steps=50"),
    (
        "trainer.check_val_every_n_epoch",
        lambda v: v is None or _positive_int(v),
        "a positive integer",
        "trainer.check_val_every_n_epoch=1",
    ),
    (
        "trainer.devices",
        _devices,
        "a positive count, -1, 'auto' or a list of device ids",
        "trainer.devices=1",
    ),
]


def check_config_values(cfg: DictConfig) -> None:
    """Check the values every run depends on (sizes > 0, probabilities in [0, 1], σ >= 0, ...).

    Raises:
        ConfigError: for the first bad value: ``data.batch_size=0 must be a positive integer (the global
            batch): set e.g. data.batch_size=128``.
    """
    for key, ok, what, fix in RULES:
        value = OmegaConf.select(cfg, key, default="__absent__", throw_on_missing=False)
        if isinstance(value, str) and value == "__absent__":
            continue
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        if not ok(value):
            raise ConfigError(f"{key}={value!r} must be {what}: set e.g. {fix}")


#: logger classes that need an optional extra: (class, the module it needs, the extra)
LOGGER_EXTRAS = {
    "pytorch_lightning.loggers.MLFlowLogger": ("mlflow", "mlflow"),
    "pytorch_lightning.loggers.WandbLogger": ("wandb", "wandb"),
}


def validate_loggers(cfg: DictConfig) -> None:
    """Check the configured loggers can work here, before training: their optional packages are installed (else the
    install command), and a remote MLflow tracking server answers (within 5 s).

    Raises:
        ConfigError: naming the logger and the fix.
    """
    import importlib.util

    for name, conf in (cfg.get("logger") or {}).items():
        if conf is None or "_target_" not in conf:
            continue
        extra = LOGGER_EXTRAS.get(str(conf._target_))
        if extra is None:
            continue
        module, pkg = extra
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"logger.{name} ({conf._target_.rpartition('.')[2]}) needs the {pkg} extra: pip install -e '.[{pkg}]' "
                f"(or pip install {pkg}); or choose another logger, e.g. logger=tensorboard"
            )
        uri = str(conf.get("tracking_uri") or "")
        if module == "mlflow" and uri.startswith(("http://", "https://")):
            _check_reachable(f"logger.{name}.tracking_uri", uri)


def _check_reachable(key: str, uri: str) -> None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5) as response:
            response.read(16)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise ConfigError(
            f"{key}={uri} does not answer ({reason}): start the server (mlflow server --host 0.0.0.0 --port 5000) "
            "or use the local store (leave logger.mlflow.tracking_uri to its default)"
        ) from None
