"""One run folder's layout, owned in one place.

``<run>/`` holds ``.hydra/config.yaml`` (the composed config), ``checkpoints/last.ckpt`` (and the best by the
checkpoint monitor), ``metrics.json`` (the final test metrics, and ``best_ckpt``: the best checkpoint Lightning
kept, relative to the folder, recorded at the end of fit) and, for a run that did not finish, one mark file
(``FAILED``, ``INTERRUPTED`` or ``PRUNED``) holding one line. Every tool that reads or writes a run folder goes
through :class:`RunDir`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from aelab.utils import runs

#: the marks of a run that did not finish
STATUSES = runs.RUN_STATUS_FILES


class RunDir:
    """A run folder (``aelab-train``'s ``hydra.run.dir``; it need not exist yet).

    Args:
        path: the folder.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ------------------------------------------------------------------ layout
    @property
    def config_file(self) -> Path:
        """``.hydra/config.yaml``: the run's composed config."""
        return self.path / ".hydra" / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_ckpt(self) -> Path:
        """``checkpoints/last.ckpt`` (written every epoch and on preemption; it may not exist yet)."""
        return self.checkpoints / "last.ckpt"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def is_run(self) -> bool:
        """Whether the folder holds a run's config (an aelab run folder)."""
        return self.config_file.is_file()

    # ------------------------------------------------------------------ results
    def metrics(self) -> dict[str, Any]:
        """``metrics.json`` (``{}`` when there is none)."""
        return json.loads(self.metrics_file.read_text()) if self.metrics_file.is_file() else {}

    @property
    def best_ckpt(self) -> Path | None:
        """The best checkpoint the run recorded (``metrics.json: best_ckpt``) when it is still there, else
        ``last.ckpt`` when it exists, else ``None``."""
        recorded = self.metrics().get("best_ckpt")
        if isinstance(recorded, str) and recorded:
            path = self.path / recorded
            if path.is_file():
                return path
        return self.last_ckpt if self.last_ckpt.is_file() else None

    def relative(self, path: str | Path) -> str:
        """``path`` relative to the folder (as ``metrics.json`` records it), or as given when outside it."""
        try:
            return str(Path(path).resolve().relative_to(self.path.resolve()))
        except ValueError:
            return str(path)

    def record(self, **entries: Any) -> None:
        """Merge ``entries`` into ``metrics.json`` (atomically; rank 0 only)."""
        if runs.global_rank() != 0:
            return
        data = {**self.metrics(), **entries}
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.metrics_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.metrics_file)

    # ------------------------------------------------------------------ status
    @property
    def status(self) -> str | None:
        """The mark of a run that did not finish (``FAILED``, ``INTERRUPTED``, ``PRUNED``), else ``None``."""
        return runs.run_status(self.path)

    def mark(self, status: str, line: str) -> None:
        """Mark the folder ``status`` with one line (the error, the resume command, the pruning step)."""
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}; use one of {STATUSES}")
        runs.mark_run(self.path, status, line)

    def clear_status(self) -> None:
        """Remove an earlier attempt's mark (when the run finishes)."""
        runs.clear_run_status(self.path)

    @property
    def finished(self) -> bool:
        """A ``metrics.json`` and no mark."""
        return runs.run_finished(self.path)

    @property
    def interrupted_with_checkpoint(self) -> bool:
        """Marked ``INTERRUPTED`` with a ``last.ckpt`` to continue from (a requeued or re-run job)."""
        return self.status == "INTERRUPTED" and self.last_ckpt.is_file()
