"""Checkpoints: written atomically, read safely — every file a user hands in is untrusted.

An aelab checkpoint is a Lightning checkpoint of :class:`aelab.module.AutoencoderModule` (the model's weights under
``net.``) with the resolved run config stored under ``aelab_config`` and its format under ``aelab_format``
(:data:`FORMAT`; a checkpoint of another format is refused with what to do).

**Writing** (:class:`AtomicCheckpointIO`, set in ``conf/trainer/default.yaml: plugins``): a local checkpoint goes
to a temporary file in the target's folder, is ``fsync``-ed and renamed over the target, so a crash, a kill or a
full disk never leaves a truncated checkpoint; remote paths (``s3://``, ``gs://``, ``memory://``, any fsspec
file system) are written in one piece by Lightning's own ``TorchCheckpointIO``, which is as atomic as that file
system makes a single write (said once).

**Reading** never runs code or writes files:

* the file is read with ``torch.load(weights_only=True)`` (tensors and plain data only); a file that asks for
  anything else is refused with the name of what it asked for, and a file torch cannot read is reported as
  "not an aelab checkpoint" — aelab never retries with the unsafe ``weights_only=False``;
* before any object is built from a stored config, every ``_target_`` in the whole tree is checked by
  :mod:`aelab.trust` (aelab's, torch.optim's and Lightning's classes, plus the packages the *reader* trusts,
  each of the kind its place needs); OmegaConf interpolations (``${...}``) are refused too. A refusal names
  the refused key and target (:class:`~aelab.errors.UntrustedFileError`).

Every CLI and tool builds models through :func:`load_model` / :func:`load_run_config`; Lightning's own loading
(``trainer.fit/test(ckpt_path=...)``) goes through :meth:`AtomicCheckpointIO.load_checkpoint`, which hands over
the dict that :func:`read_checkpoint` already read and checked instead of reading the file again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_fabric.utilities.cloud_io import _is_local_file_protocol
from omegaconf import DictConfig, OmegaConf

from aelab.errors import ConfigError, UntrustedFileError
from aelab.trust import CHECKPOINT_TARGETS, RUN_TARGETS, allowlist, check_config_tree, trusted_prefixes

log = logging.getLogger("aelab")

CONFIG_KEY = "aelab_config"  # where the resolved run config is stored inside checkpoints
CHOICES_KEY = "aelab_choices"  # the Hydra group choices of the run (model=conv_ae, ...)
FORMAT_KEY = "aelab_format"  # the checkpoint format
#: 2: the model is a plain nn.Module under ``net.`` of the one LightningModule (1: models were LightningModules)
FORMAT = 2
NET_PREFIX = "net."

#: the last checkpoint :func:`read_checkpoint` read and checked, handed to Lightning's loader once
_handoff: dict[str, Any] = {}


def _file_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def read_checkpoint(path: str | Path, trust: Sequence[str] = ()) -> dict[str, Any]:
    """Read an aelab checkpoint safely (``weights_only=True``) and check its stored config.

    Args:
        path: the file.
        trust: module prefixes the reader trusts (see :func:`aelab.trust.trusted_prefixes`); a ``trust`` key
            stored in the file is ignored.

    Returns:
        the checkpoint dict (``state_dict``, ``aelab_config``, Lightning's loop states, ...).

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        UntrustedFileError: when the file is not a readable checkpoint, asks to import anything, was not
            written by ``aelab-train``, or its stored config names a target that is not allowed.
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
    if ckpt.get(FORMAT_KEY) != FORMAT:
        raise UntrustedFileError(
            f"{path} was written by an older aelab (checkpoint format {ckpt.get(FORMAT_KEY, 1)}: its model was a "
            f"LightningModule); this aelab reads format {FORMAT}: retrain it with aelab-train and the overrides in "
            "its run's .hydra/overrides.yaml"
        )
    # The whole tree may only name aelab's, torch.optim's, Lightning's and the trusted packages' classes, each
    # of the kind its place needs (a LightningModule at model, a LightningDataModule at data, ...); the parts
    # built from a checkpoint (model, data) only models, components, datamodules and optimizers (and trusted
    # classes of those kinds).
    check_config_tree(stored, str(path), allowlist(RUN_TARGETS, trust))
    for key in ("model", "data"):
        node = stored.get(key)
        if not isinstance(node, dict) or "_target_" not in node:
            raise UntrustedFileError(
                f"{path} is not an aelab checkpoint: its stored config has no {key}._target_"
            )
        check_config_tree(node, str(path), allowlist(CHECKPOINT_TARGETS, trust), where=f"config.{key}")
    if CHOICES_KEY in ckpt:
        check_config_tree(ckpt[CHOICES_KEY], str(path), where="choices")
    _handoff.clear()
    _handoff[_file_key(path)] = ckpt
    return ckpt


def load_run_config(ckpt_path: str | Path, trust: Sequence[str] = ()) -> DictConfig:
    """The resolved training config stored in an aelab checkpoint, checked (see :func:`read_checkpoint`)."""
    return OmegaConf.create(read_checkpoint(ckpt_path, trust)[CONFIG_KEY])


def model_choice(ckpt: Mapping[str, Any]) -> str:
    """A readable name of the model a checkpoint holds: ``model=conv_ae`` when the run's Hydra choice is
    stored, else the model class and its encoder class."""
    choice = (ckpt.get(CHOICES_KEY) or {}).get("model")
    if choice:
        return f"model={choice}"
    model = ckpt[CONFIG_KEY].get("model", {})
    enc = model.get("encoder", {}).get("_target_", "?").rpartition(".")[2]
    return f"{model.get('_target_', '?').rpartition('.')[2]} with {enc}"


def net_state(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The model's own state dict in a checkpoint (its ``net.`` entries, the prefix removed)."""
    n = len(NET_PREFIX)
    return {k[n:]: v for k, v in ckpt["state_dict"].items() if k.startswith(NET_PREFIX)}


def _resizable(model: torch.nn.Module) -> set[str]:
    """State-dict keys whose shape follows the data they hold (an entropy model's frozen tables)."""
    return {
        f"{name}.{buffer}" if name else buffer
        for name, module in model.named_modules()
        for buffer in getattr(module, "table_buffers", ())
    }


def check_state_matches(model: torch.nn.Module, ckpt: Mapping[str, Any], path: str | Path, fix: str) -> None:
    """Refuse a checkpoint whose weights do not fit the model ``model`` (an ``nn.Module``: names and shapes), before
    anything loads it.

    Raises:
        ConfigError: naming the model the checkpoint holds and ``fix``.
    """
    resizable = _resizable(model)
    want = {k: () if k in resizable else tuple(v.shape) for k, v in model.state_dict().items()}
    got = {
        k: () if k in resizable else tuple(v.shape)
        for k, v in net_state(ckpt).items()
        if isinstance(v, torch.Tensor)
    }
    if want == got:
        return
    missing, unexpected = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
    shapes = sorted(k for k in want.keys() & got.keys() if want[k] != got[k])
    detail = "; ".join(
        f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("other shape", shapes))
        if keys
    )
    raise ConfigError(
        f"{path} holds a different model ({model_choice(ckpt)}) than the one configured ({detail}): {fix}"
    )


def load_model(ckpt_path: str | Path, device: torch.device | str = "cpu", trust: Sequence[str] = ()):
    """The model (a plain ``nn.Module``) of an aelab checkpoint, rebuilt from its checked config, in eval mode on
    ``device``: what a plain PyTorch program loads.

    Returns:
        ``(model, run config, checkpoint dict)``.
    """
    from hydra.utils import instantiate

    ckpt = read_checkpoint(ckpt_path, trust)
    _handoff.clear()  # loaded here, not by Lightning
    run_cfg = OmegaConf.create(ckpt[CONFIG_KEY])
    model = instantiate(run_cfg.model)
    check_state_matches(model, ckpt, ckpt_path, "the file's weights do not fit its own stored config")
    model.load_state_dict(net_state(ckpt))
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


# ---------------------------------------------------------------------------------------------- writing
def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the target's folder, ``fsync``, then ``os.replace``.

    ``os.replace`` is atomic on POSIX file systems, so ``path`` holds either the previous file or the
    complete new one; on any error (``ENOSPC``, a signal) the temporary file is removed and the previous
    file is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # persist the rename itself
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` with atomic local writes (:func:`atomic_torch_save`) and checked reads.

    Set in ``conf/trainer/default.yaml`` (``plugins``); Lightning's ``ModelCheckpoint`` (``last.ckpt``, best) and
    every ``trainer.save_checkpoint`` go through it. A remote path (an fsspec URL: ``s3://``, ``gs://``,
    ``memory://``) is written by ``TorchCheckpointIO`` in one write — there is no atomic rename there — and
    that is said once per run. Loading hands over the checkpoint :func:`read_checkpoint` has just read and
    checked (one read per file); any other path is read through :func:`read_checkpoint` too.

    Args:
        trust: module prefixes the reader trusts besides ``AELAB_TRUST`` (the run's ``trust=[...]``).
    """

    _said_remote = False

    def __init__(self, trust: Sequence[str] = ()) -> None:
        super().__init__()
        self.trust = [str(t) for t in trust or ()]

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        if _is_local_file_protocol(path):
            atomic_torch_save(checkpoint, path)
            return
        if not self._said_remote:
            type(self)._said_remote = True
            log.warning(
                "checkpoints to %s are written in one piece by fsspec, not atomically: that file system has no "
                "atomic rename",
                str(path).split("://")[0] + "://",
            )
        super().save_checkpoint(checkpoint, path)

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None):
        if not _is_local_file_protocol(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        key = _file_key(Path(path))
        ckpt = _handoff.pop(key, None)
        if ckpt is None:
            ckpt = read_checkpoint(path, trusted_prefixes(self.trust))
            _handoff.clear()
        return ckpt
