"""Reading checkpoints and run configs that a user hands in — every such file is untrusted.

An aelab checkpoint is a Lightning checkpoint with the resolved run config stored under ``aelab_config``.
Loading one must never run code or write files:

* the file is read with ``torch.load(weights_only=True)`` (tensors and plain data only); a file that asks
  for anything else is refused with the name of what it asked for, and a file torch cannot read is
  reported as "not an aelab checkpoint" — aelab never retries with the unsafe ``weights_only=False``;
* before any object is built from a stored config, every ``_target_`` in the whole tree is checked
  against an allowlist (:data:`CHECKPOINT_TARGETS`: aelab's models, components and datamodules, torch's
  optimizers and LR schedulers) and must name a class of the expected kind; OmegaConf interpolations
  (``${...}``) are refused too. A refusal names the refused key and target (:class:`UntrustedFileError`).

Every CLI and tool builds models through :func:`load_model` / :func:`load_run_config`.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import pickle
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

CONFIG_KEY = "aelab_config"  # where the resolved run config is stored inside checkpoints
CHOICES_KEY = "aelab_choices"  # the Hydra group choices of the run (model=conv_ae, ...)


class UntrustedFileError(ValueError):
    """A file handed to aelab was refused: not the expected format, or it asks for something unsafe."""


def _bases(names: Sequence[str]) -> tuple[type, ...]:
    out = []
    for name in names:
        module, _, attr = name.rpartition(".")
        out.append(getattr(importlib.import_module(module), attr))
    return tuple(out)


#: module prefixes whose classes a *checkpoint's* stored config may name, with the base classes allowed
CHECKPOINT_TARGETS: dict[str, tuple[str, ...]] = {
    "aelab.models.": ("torch.nn.Module",),
    "aelab.data.": ("pytorch_lightning.LightningDataModule",),
    "torch.optim.": (
        "torch.optim.Optimizer",
        "torch.optim.lr_scheduler.LRScheduler",
        "torch.optim.lr_scheduler.ReduceLROnPlateau",
    ),
}

#: a *run folder's* config (``resume=``) also builds the trainer, its callbacks, loggers and plugins
RUN_TARGETS: dict[str, tuple[str, ...]] = {
    **CHECKPOINT_TARGETS,
    "aelab.callbacks.": ("pytorch_lightning.Callback",),
    "aelab.utils.": ("pytorch_lightning.Callback", "lightning_fabric.plugins.CheckpointIO"),
    "pytorch_lightning.callbacks.": ("pytorch_lightning.Callback",),
    "pytorch_lightning.loggers.": ("pytorch_lightning.loggers.Logger",),
    "pytorch_lightning.Trainer": ("pytorch_lightning.Trainer",),
}

#: the config sections aelab instantiates from a checkpoint, and the kind of object each must build
BUILT_FROM_CHECKPOINT = {
    "model": "pytorch_lightning.LightningModule",
    "data": "pytorch_lightning.LightningDataModule",
}

_INTERPOLATION = re.compile(r"\$\{")
_RESOLVER = re.compile(r"\$\{\s*([\w.]+)\s*:")
#: the resolvers a run folder's (unresolved) config may use; checkpoints store resolved configs only
RUN_RESOLVERS = frozenset(
    {
        "oc.env",
        "oc.select",
        "now",
        "hydra",
        "aelab.root",
        "aelab.mul",
        "aelab.precision",
        "aelab.reversed",
        "aelab.run_id",
        "aelab.rank0",
    }
)


def _check_target(target: Any, where: str, source: str, allowed: Mapping[str, tuple[str, ...]]) -> None:
    if not isinstance(target, str):
        raise UntrustedFileError(f"{source}: refused {where}._target_={target!r}: not a class path")
    prefix = next((p for p in allowed if target == p or target.startswith(p)), None)
    if prefix is None:
        raise UntrustedFileError(
            f"{source}: refused {where}._target_={target!r}: a stored config may only build "
            f"{', '.join(p.rstrip('.') + ('*' if p.endswith('.') else '') for p in allowed)} objects. "
            "Nothing was built or written; use a checkpoint or run folder written by aelab-train."
        )
    module, _, attr = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise UntrustedFileError(
            f"{source}: refused {where}._target_={target!r}: no such class ({err})"
        ) from err
    if not (inspect.isclass(obj) and issubclass(obj, _bases(allowed[prefix]))):
        raise UntrustedFileError(
            f"{source}: refused {where}._target_={target!r}: not a {' / '.join(allowed[prefix])} class"
        )


def check_config_tree(
    tree: Any,
    source: str,
    allowed: Mapping[str, tuple[str, ...]] = CHECKPOINT_TARGETS,
    where: str = "config",
    resolvers: frozenset[str] | None = None,
) -> None:
    """Walk a stored config (plain containers) and refuse any disallowed ``_target_`` or interpolation.

    ``resolvers=None`` refuses every ``${...}`` (checkpoints store resolved configs); a set allows plain
    references and those resolvers (a run folder's ``.hydra/config.yaml``).

    Raises:
        UntrustedFileError: naming ``source``, the key path and the refused value.
    """
    if isinstance(tree, Mapping):
        if "_target_" in tree:
            _check_target(tree["_target_"], where, source, allowed)
        for key, value in tree.items():
            if not isinstance(key, str):
                raise UntrustedFileError(f"{source}: refused {where}: non-string key {key!r}")
            check_config_tree(value, source, allowed, f"{where}.{key}", resolvers)
    elif isinstance(tree, list | tuple):
        for i, value in enumerate(tree):
            check_config_tree(value, source, allowed, f"{where}[{i}]", resolvers)
    elif isinstance(tree, str):
        if resolvers is not None:
            bad = sorted(set(_RESOLVER.findall(tree)) - resolvers)
            if bad:
                raise UntrustedFileError(
                    f"{source}: refused {where}={tree!r}: resolver {bad[0]!r} is not one of {sorted(resolvers)}"
                )
        elif _INTERPOLATION.search(tree):
            raise UntrustedFileError(
                f"{source}: refused {where}={tree!r}: stored configs are resolved and hold no ${{...}} "
                "interpolation"
            )
    elif not (tree is None or isinstance(tree, bool | int | float)):
        raise UntrustedFileError(f"{source}: refused {where}: unexpected value of type {type(tree).__name__}")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read an aelab checkpoint safely (``weights_only=True``) and check its stored config.

    Returns:
        the checkpoint dict (``state_dict``, ``aelab_config``, Lightning's loop states, ...).

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        UntrustedFileError: when the file is not a readable checkpoint, asks to import anything, was not
            written by ``aelab-train``, or its stored config names a disallowed target.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path.resolve()} does not exist; pass ckpt_path=path/to/file.ckpt"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", str(err))
        if found:
            raise UntrustedFileError(
                f"{path}: refused to load: the file asks to import {found.group(1)}; aelab checkpoints hold "
                "only tensors and plain data, and aelab never loads a checkpoint that can run code"
            ) from None
        operand = re.search(r"Unsupported (?:operand|class) [\w.]+", str(err))
        reason = f" ({operand.group(0)})" if operand else ""
        raise UntrustedFileError(
            f"{path} is not an aelab checkpoint: torch's safe loader refused its content{reason}; aelab "
            "checkpoints hold only tensors and plain data, and aelab never loads a file unsafely"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, IndexError) as err:
        raise UntrustedFileError(
            f"{path} is not an aelab checkpoint: torch cannot read it ({type(err).__name__}; truncated or "
            "not a checkpoint)"
        ) from None
    if not isinstance(ckpt, dict) or CONFIG_KEY not in ckpt or not isinstance(ckpt.get("state_dict"), dict):
        raise UntrustedFileError(
            f"{path} is not an aelab checkpoint: it holds no '{CONFIG_KEY}' run config and state_dict "
            "(only checkpoints written by aelab-train can be used)"
        )
    stored = ckpt[CONFIG_KEY]
    if not isinstance(stored, dict):
        raise UntrustedFileError(f"{path} is not an aelab checkpoint: its '{CONFIG_KEY}' is not a mapping")
    # The whole tree may only name aelab's, torch.optim's and Lightning's classes; the parts that aelab
    # builds from a checkpoint (model, data) only models, components, datamodules and optimizers.
    check_config_tree(stored, str(path), RUN_TARGETS)
    for key, base in BUILT_FROM_CHECKPOINT.items():
        node = stored.get(key)
        if not isinstance(node, dict) or "_target_" not in node:
            raise UntrustedFileError(
                f"{path} is not an aelab checkpoint: its stored config has no {key}._target_"
            )
        check_config_tree(node, str(path), CHECKPOINT_TARGETS, where=f"config.{key}")
        _check_target(node["_target_"], f"config.{key}", str(path), {p: (base,) for p in CHECKPOINT_TARGETS})
    if CHOICES_KEY in ckpt:
        check_config_tree(ckpt[CHOICES_KEY], str(path), where="choices")
    return ckpt


def load_run_config(ckpt_path: str | Path) -> DictConfig:
    """The resolved training config stored in an aelab checkpoint, checked (see :func:`read_checkpoint`)."""
    return OmegaConf.create(read_checkpoint(ckpt_path)[CONFIG_KEY])


def model_choice(ckpt: Mapping[str, Any]) -> str:
    """A readable name of the model a checkpoint holds: ``model=conv_ae`` when the run's Hydra choice is
    stored, else the model class and its encoder class."""
    choice = (ckpt.get(CHOICES_KEY) or {}).get("model")
    if choice:
        return f"model={choice}"
    model = ckpt[CONFIG_KEY].get("model", {})
    enc = model.get("encoder", {}).get("_target_", "?").rpartition(".")[2]
    return f"{model.get('_target_', '?').rpartition('.')[2]} with {enc}"


def check_state_matches(model: torch.nn.Module, ckpt: Mapping[str, Any], path: str | Path, fix: str) -> None:
    """Refuse a checkpoint whose weights do not fit ``model`` (names and shapes), before Lightning loads it.

    Raises:
        ValueError: naming the model the checkpoint holds and ``fix``.
    """
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in ckpt["state_dict"].items() if isinstance(v, torch.Tensor)}
    if want == got:
        return
    missing, unexpected = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
    shapes = sorted(k for k in want.keys() & got.keys() if want[k] != got[k])
    detail = "; ".join(
        f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("other shape", shapes))
        if keys
    )
    raise ValueError(
        f"{path} holds a different model ({model_choice(ckpt)}) than the one configured ({detail}): {fix}"
    )


def load_model(ckpt_path: str | Path, device: torch.device | str = "cpu"):
    """The model of an aelab checkpoint, rebuilt from its checked config, in eval mode on ``device``.

    Returns:
        ``(model, run config, checkpoint dict)``.
    """
    from hydra.utils import instantiate

    ckpt = read_checkpoint(ckpt_path)
    run_cfg = OmegaConf.create(ckpt[CONFIG_KEY])
    model = instantiate(run_cfg.model)
    check_state_matches(model, ckpt, ckpt_path, "the file's weights do not fit its own stored config")
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), run_cfg, ckpt


def state_fingerprint(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (hex) over the names, dtypes, shapes and bytes of a state dict's tensors, in key order.

    Two checkpoints share a fingerprint only when every weight is bit-identical.
    """
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key]
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{key}|{t.dtype}|{tuple(state_dict[key].shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
