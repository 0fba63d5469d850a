"""Which classes a config may build: aelab's, torch's optimizers, Lightning's — and those of the packages the
*reader* trusts.

Every config aelab instantiates is checked before anything is built: the one a user composes on the command
line, a run folder's (``resume=``) and a checkpoint's (``aelab-eval``, ``aelab-compress``, the one-class and
results tools). A ``_target_`` must name a class under an allowed module prefix, of the kind its place in the
config needs (an ``nn.Module`` at ``model``, a LightningDataModule at ``data``, a Callback under
``callbacks``, a Logger under ``logger``, ...). A function, or a class of the wrong kind, is refused.

**Trust is declared by the reader, never by the file.** The user trusts more module prefixes with the
environment variable ``AELAB_TRUST=mypkg,otherpkg`` (read by every tool) or each tool's own option
(``trust=[mypkg]`` for the Hydra entry points, ``--trust mypkg`` for the others). A ``trust`` key stored in a
checkpoint or a run folder is ignored. A refusal names the refused key and target and how to trust it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aelab.errors import ConfigError, UntrustedFileError

TRUST_ENV = "AELAB_TRUST"

#: module prefixes whose classes a checkpoint's ``model`` and ``data`` sections may name, with the kinds allowed
CHECKPOINT_TARGETS: dict[str, tuple[str, ...]] = {
    "aelab.models.": ("torch.nn.Module",),
    "aelab.codecs.": ("torch.nn.Module",),
    "aelab.data.": ("pytorch_lightning.LightningDataModule",),
    "torch.optim.": (
        "torch.optim.Optimizer",
        "torch.optim.lr_scheduler.LRScheduler",
        "torch.optim.lr_scheduler.ReduceLROnPlateau",
    ),
}

#: a run's whole config also builds the trainer, its callbacks, loggers and plugins
RUN_TARGETS: dict[str, tuple[str, ...]] = {
    **CHECKPOINT_TARGETS,
    "aelab.callbacks.": ("pytorch_lightning.Callback",),
    "aelab.checkpoint.": ("lightning_fabric.plugins.CheckpointIO",),
    "pytorch_lightning.callbacks.": ("pytorch_lightning.Callback",),
    "pytorch_lightning.loggers.": ("pytorch_lightning.loggers.Logger",),
    "pytorch_lightning.Trainer": ("pytorch_lightning.Trainer",),
}

#: the kinds a trusted package's class may be (its place in the config then narrows it, see :data:`KIND_AT`)
TRUSTED_KINDS = (
    "torch.nn.Module",
    "torch.optim.Optimizer",
    "torch.optim.lr_scheduler.LRScheduler",
    "pytorch_lightning.LightningDataModule",
    "pytorch_lightning.Callback",
    "pytorch_lightning.loggers.Logger",
    "lightning_fabric.plugins.CheckpointIO",
)

#: the kind an object must be at a place of the config (``*`` stands for any one key)
KIND_AT = {
    "model": "torch.nn.Module",
    "data": "pytorch_lightning.LightningDataModule",
    "ood": "pytorch_lightning.LightningDataModule",
    "callbacks.*": "pytorch_lightning.Callback",
    "logger.*": "pytorch_lightning.loggers.Logger",
    "trainer": "pytorch_lightning.Trainer",
}

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
        "aelab.image_shape",
        "aelab.if",
        "aelab.reversed",
        "aelab.default",
        "aelab.first",
        "aelab.run_id",
        "aelab.rank0",
    }
)

_INTERPOLATION = re.compile(r"\$\{")
_RESOLVER = re.compile(r"\$\{\s*([\w.]+)\s*:")


def _bases(names: Sequence[str]) -> tuple[type, ...]:
    out = []
    for name in names:
        module, _, attr = name.rpartition(".")
        out.append(getattr(importlib.import_module(module), attr))
    return tuple(out)


def trusted_prefixes(extra: Iterable[str] | None = None) -> tuple[str, ...]:
    """The module prefixes the reader trusts: ``AELAB_TRUST`` (comma-separated) and ``extra`` (the command's own
    ``trust=[...]`` / ``--trust``), each ending in ``.`` (``mypkg`` trusts ``mypkg.*``).

    Raises:
        ConfigError: for a prefix that is not an importable module (names it and the fix).
    """
    names = [p.strip() for p in os.environ.get(TRUST_ENV, "").split(",") if p.strip()]
    names += [str(p).strip() for p in (extra or []) if str(p).strip()]
    out = []
    for name in dict.fromkeys(names):
        module = name.rstrip(".")
        if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", module):
            raise ConfigError(f"trusted prefix {name!r} is not a module name: use e.g. AELAB_TRUST=mypkg")
        if module.split(".")[0] in ("aelab", "torch", "pytorch_lightning", "lightning_fabric"):
            continue  # already allowed, kind by kind
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ConfigError(
                f"trusted prefix {module!r} (from {TRUST_ENV} or trust=) is not an importable module here: "
                f"install it (pip install -e <your package>) or fix the name"
            )
        out.append(module + ".")
    return tuple(out)


def allowlist(base: Mapping[str, tuple[str, ...]], trust: Sequence[str] = ()) -> dict[str, tuple[str, ...]]:
    """``base`` plus each trusted prefix with :data:`TRUSTED_KINDS`."""
    return {**base, **{p: TRUSTED_KINDS for p in trust}}


def _kind_at(where: str) -> str | None:
    parts = where.removeprefix("config.").split(".", 1)  # "callbacks", "x"
    if len(parts) == 1:
        return KIND_AT.get(parts[0])
    return KIND_AT.get(f"{parts[0]}.*") if "." not in parts[1] and "[" not in parts[1] else None


def _already_imported(target: str) -> Any:
    """The object ``target`` names when its module is imported already (nothing is imported here), else ``None``."""
    import sys

    module, _, attr = target.rpartition(".")
    return getattr(sys.modules[module], attr, None) if module in sys.modules else None


def _what(obj: Any) -> str:
    """Plain words for a non-class object (the target itself is named beside them): ``function``."""
    return "function" if callable(obj) else type(obj).__name__


def _refusal(source: str, where: str, target: str, allowed: Mapping[str, tuple[str, ...]], why: str) -> str:
    top = target.split(".")[0]
    return (
        f"{source}: refused {where}._target_={target!r}: {why}. Nothing was built or written. To trust "
        f"your own package's classes, set {TRUST_ENV}={top} (or pass trust=[{top}] / --trust {top}); "
        f"allowed now: {', '.join(p.rstrip('.') + ('.*' if p.endswith('.') else '') for p in allowed)}"
    )


def check_target(target: Any, where: str, source: str, allowed: Mapping[str, tuple[str, ...]]) -> None:
    """Refuse ``target`` unless it is a class under an allowed prefix, of the kinds that prefix allows and of the
    kind the place ``where`` needs.

    Raises:
        UntrustedFileError: naming ``source``, ``where``, the target and how to trust it.
    """
    if not isinstance(target, str):
        raise UntrustedFileError(f"{source}: refused {where}._target_={target!r}: not a class path")
    prefix = next((p for p in allowed if target == p or target.startswith(p)), None)
    if prefix is None:
        named = _already_imported(
            target
        )  # never imported for the check: only a module loaded already is looked at
        if named is not None and not inspect.isclass(named):
            raise UntrustedFileError(
                f"{source}: refused {where}._target_={target!r}: the file names a {_what(named)}, not a class, and "
                "aelab never calls one from a file. Nothing was built or written; use a checkpoint or config that "
                "aelab or your own package wrote"
            )
        raise UntrustedFileError(_refusal(source, where, target, allowed, "not an allowed module"))
    module, _, attr = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise UntrustedFileError(
            f"{source}: refused {where}._target_={target!r}: no such class ({err})"
        ) from None
    if not inspect.isclass(obj):
        raise UntrustedFileError(
            f"{source}: refused {where}._target_={target!r}: the file names a {_what(obj)}, not a class, and aelab "
            "never calls one from a file. Nothing was built or written"
        )
    if not issubclass(obj, _bases(allowed[prefix])):
        kinds = " or ".join(k.rpartition(".")[2] for k in allowed[prefix])
        raise UntrustedFileError(
            f"{source}: refused {where}._target_={target!r}: {obj.__name__} is a class, but not a {kinds}. "
            "Nothing was built or written"
        )
    kind = _kind_at(where)
    if kind is not None and not issubclass(obj, _bases([kind])):
        raise UntrustedFileError(
            f"{source}: refused {where}._target_={target!r}: {where.removeprefix('config.')} must build a "
            f"{kind.rpartition('.')[2]}, and {obj.__name__} is not one. Nothing was built or written"
        )


def check_config_tree(
    tree: Any,
    source: str,
    allowed: Mapping[str, tuple[str, ...]] = CHECKPOINT_TARGETS,
    where: str = "config",
    resolvers: frozenset[str] | None = None,
) -> None:
    """Walk a config (plain containers) and refuse any disallowed ``_target_`` or interpolation.

    ``resolvers=None`` refuses every ``${...}`` (checkpoints and composed configs are checked resolved); a set
    allows plain references and those resolvers (a run folder's ``.hydra/config.yaml``).

    Raises:
        UntrustedFileError: naming ``source``, the key path and the refused value.
    """
    if isinstance(tree, Mapping):
        if "_target_" in tree:
            check_target(tree["_target_"], where, source, allowed)
        for key, value in tree.items():
            if not isinstance(key, str):
                raise UntrustedFileError(f"{source}: refused {where}: non-string key {key!r}")
            check_config_tree(value, source, allowed, f"{where}.{key}" if where else key, resolvers)
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


def check_run_targets(tree: Mapping[str, Any], source: str, trust: Sequence[str] = ()) -> None:
    """Check a run's whole (resolved) config — what ``aelab-train`` is about to build — against
    :data:`RUN_TARGETS` plus ``trust``; the ``hydra`` node (Hydra's own plugins) is not built by aelab.

    Raises:
        UntrustedFileError: for the first target that is not allowed (names it and ``AELAB_TRUST``).
    """
    tree = {k: v for k, v in tree.items() if k != "hydra"}
    check_config_tree(tree, source, allowlist(RUN_TARGETS, trust), where="")
