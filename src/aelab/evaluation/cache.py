"""Figures that depend on the data alone (a classical codec's bytes on the test images, the Fréchet floor between
the training and test images, a detector's VUS on a series), kept in the data's cache folder so that a second
evaluation of any model reads them instead of computing them again."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

log = logging.getLogger("aelab")
#: part of every key: raised when a cached figure's definition changes, so no older file is read as a newer figure
CACHE_VERSION = 1


def fingerprint(parts: Iterable) -> str:
    """SHA-256 (hex) of ``parts``: arrays or tensors by their dtype, shape and bytes, anything else by its text."""
    h = hashlib.sha256()
    for part in parts:
        if hasattr(part, "detach"):  # a torch tensor
            part = part.detach().cpu().contiguous().numpy()
        if isinstance(part, np.ndarray):
            a = np.ascontiguousarray(part)
            h.update(f"{a.dtype}{a.shape}|".encode())
            h.update(a.tobytes())
        else:
            h.update(f"{part!r}|".encode())
    return h.hexdigest()


def cached_figures(
    cache_dir: str | Path, folder: str, key: Iterable, compute: Callable[[], dict[str, float]] | None
) -> dict[str, float] | None:
    """``compute()`` — a dict of float figures — kept in ``cache_dir/folder/figures-<fingerprint of key>.json``: a
    file that reads back as such a dict is returned instead; one that does not is computed again (``compute=None``:
    ``None`` then, nothing computed). The key holds :data:`CACHE_VERSION` and ``folder`` too. Written atomically
    (a temporary file of this process, renamed); a folder that cannot be written costs a warning, never the
    figures."""
    path = Path(cache_dir) / folder / f"figures-{fingerprint((CACHE_VERSION, folder, *key))[:24]}.json"
    if path.is_file():
        try:
            cached = json.loads(path.read_text())
            if isinstance(cached, dict) and all(isinstance(v, float) for v in cached.values()):
                return cached
        except (OSError, ValueError):
            pass
    if compute is None:
        return None
    figures = {k: float(v) for k, v in compute().items()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(figures))
        tmp.replace(path)
    except OSError as err:
        log.warning("figures not cached in %s (%s)", path.parent, err)
    return figures
