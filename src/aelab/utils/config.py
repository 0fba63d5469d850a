"""Where the Hydra configs live, the OmegaConf resolvers they use, and building objects from config groups.

The configs live in ``conf/`` at the repository's top level. An editable install finds them next to
``src/``; a wheel carries a copy as ``aelab/conf``. No environment variable is needed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

_PKG_DIR = Path(__file__).resolve().parents[1]  # src/aelab
_REPO_CANDIDATE = _PKG_DIR.parents[1]  # the checkout, for an editable install


def _find_conf_dir() -> Path:
    for candidate in (_REPO_CANDIDATE / "conf", _PKG_DIR / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"aelab's Hydra configs were not found in {_REPO_CANDIDATE / 'conf'} nor {_PKG_DIR / 'conf'}; "
        "reinstall aelab (`make install`) from a full checkout."
    )


CONF_DIR: Path = _find_conf_dir()


def repo_root() -> str:
    """The checkout holding ``conf/`` (editable install), else the current working directory."""
    if CONF_DIR.parent == _REPO_CANDIDATE:
        return str(_REPO_CANDIDATE)
    return os.getcwd()


def _image_shape(channels, image_size) -> list[int]:
    """``[C, H, W]`` from ``data.channels`` and ``data.image_size`` (an int or ``[H, W]``)."""
    from aelab.utils.shapes import shape_of

    size = OmegaConf.to_object(image_size) if OmegaConf.is_config(image_size) else image_size
    return shape_of(int(channels), size)


def register_resolvers() -> None:
    """Register ``${aelab.root:}``, ``${aelab.mul:a,b}``, ``${aelab.precision:accelerator}``,
    ``${aelab.image_shape:channels,image_size}``, ``${aelab.if:cond,yes,no}``, ``${aelab.reversed:list}``,
    ``${aelab.first:list}`` (its first entry, ``null`` for ``null``: ``${aelab.first:${data.shape}}`` is the item count
    of interaction data, known once the log is read), ``${aelab.run_id:explicit}`` (the
    run folder's name, see :mod:`aelab.utils.runs`) and ``${aelab.rank0:value,other}`` (idempotent)."""
    from aelab.utils import runs

    if not OmegaConf.has_resolver("aelab.root"):
        OmegaConf.register_new_resolver("aelab.root", repo_root)
    if not OmegaConf.has_resolver("aelab.mul"):
        OmegaConf.register_new_resolver("aelab.mul", lambda a, b: a * b)
    if not OmegaConf.has_resolver("aelab.precision"):
        from aelab.utils.device import auto_precision

        OmegaConf.register_new_resolver("aelab.precision", auto_precision)
    if not OmegaConf.has_resolver("aelab.image_shape"):
        OmegaConf.register_new_resolver("aelab.image_shape", _image_shape)
    if not OmegaConf.has_resolver("aelab.if"):
        OmegaConf.register_new_resolver("aelab.if", lambda cond, yes, no: yes if bool(cond) else no)
    if not OmegaConf.has_resolver("aelab.reversed"):
        OmegaConf.register_new_resolver("aelab.reversed", lambda xs: list(reversed(list(xs))))
    if not OmegaConf.has_resolver(
        "aelab.default"
    ):  # ${aelab.default:${oc.select:key,null},fallback}: null → fallback
        OmegaConf.register_new_resolver(
            "aelab.default", lambda value, fallback: fallback if value is None else value
        )
    if not OmegaConf.has_resolver("aelab.first"):
        OmegaConf.register_new_resolver("aelab.first", lambda xs: None if xs is None else list(xs)[0])
    if not OmegaConf.has_resolver("aelab.run_id"):
        # cached in the config, like Hydra's ${now:}: Hydra copies the cache into every sweep job's config,
        # so a job that runs in another process (submitit) keeps the sweep's id
        OmegaConf.register_new_resolver(
            "aelab.run_id", lambda explicit=None: runs.run_id(explicit), use_cache=True
        )
    if not OmegaConf.has_resolver("aelab.rank0"):
        OmegaConf.register_new_resolver("aelab.rank0", lambda value, other=None: runs.rank0(value, other))


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
        from hydra.utils import instantiate

        objs.append(instantiate(conf))
    return objs


def apply_matmul_precision(cfg: DictConfig) -> None:
    """``torch.set_float32_matmul_precision(cfg.matmul_precision)`` when set."""
    import torch

    precision = cfg.get("matmul_precision")
    if precision:
        torch.set_float32_matmul_precision(precision)


def compose_config(
    config_name: str, overrides: list[str] | tuple[str, ...] = (), config_dir: str | Path | None = None
):
    """A config composed in-process as the command line would compose it (Hydra's compose API), from
    ``config_dir`` (default: aelab's ``conf/``); Hydra is left uninitialized afterwards, whatever happens."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir or CONF_DIR), version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()
