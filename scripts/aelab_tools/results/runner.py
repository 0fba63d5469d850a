"""Running the report's parts: each trains and evaluates once into one results folder, continued when interrupted."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from aelab.checkpoint import load_run_config, read_checkpoint
from aelab.rundir import RunDir
from aelab.utils.config import repo_root

REPO = Path(repo_root())  # the checkout (editable install) or the working directory
HERE = Path(__file__).resolve().parent  # the report's own files sit beside its code, outside the aelab wheel
PARTS_FILE = HERE / "parts.yaml"
HEADLINES_FILE = HERE / "headlines.yaml"
REFERENCES_FILE = HERE / "references.yaml"
SCHEMA = 2


def references(path: Path = REFERENCES_FILE) -> dict[str, Any]:
    """Published numbers and targets (``scripts/aelab_tools/results/references.yaml``)."""
    return yaml.safe_load(Path(path).read_text())


# ---------------------------------------------------------------------------------------------- running
def load_parts(path: Path = PARTS_FILE) -> dict[str, Any]:
    """``{eval_overrides: [...], parts: {name: {train: [...], eval?: bool, group?: str}}}``."""
    return yaml.safe_load(Path(path).read_text())


def load_headlines(path: Path = HEADLINES_FILE) -> dict[str, list[dict[str, Any]]]:
    """``{part: [{label, metric, over?, anchor, values?, vs?, target?}]}`` from ``scripts/aelab_tools/results/headlines.yaml``."""
    return yaml.safe_load(Path(path).read_text())


def shown(cmd: list[str]) -> str:
    """A command as a user would type it: ``python`` for the interpreter, folders relative to the repository."""
    return shlex.join(["python", *cmd[1:]]).replace(str(REPO) + "/", "")


class Runner:
    """Runs parts into one results folder and records what they did in ``<dir>/timings.json``.

    Args:
        root: the results folder.
        eval_overrides: overrides of every evaluation.
    """

    def __init__(self, root: Path, eval_overrides: list[str]) -> None:
        self.root = root
        self.eval_overrides = list(eval_overrides)
        self.timings_path = root / "timings.json"
        self.timings: dict[str, Any] = self._read()

    def _read(self) -> dict[str, Any]:
        return json.loads(self.timings_path.read_text()) if self.timings_path.exists() else {}

    def _record(self, **entries: Any) -> None:
        """Add ``entries`` to ``timings.json`` under a lock, keeping what other invocations on the folder wrote."""
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.timings_path) + ".lock"):
            self.timings = {**self._read(), **entries}
            tmp = self.timings_path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(self.timings, indent=2) + "\n")
            os.replace(tmp, self.timings_path)

    def run(self, cmd: list[str], log: Path) -> float:
        """Run ``cmd`` in the repository, output to ``log``; returns the wall time in seconds."""
        print("$", shown(cmd), flush=True)
        log.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with open(log, "w") as f:
            proc = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
        if proc.returncode:
            raise SystemExit(f"failed ({proc.returncode}): {shown(cmd)}; see {log}")
        return time.perf_counter() - t0

    def train(self, name: str, overrides: list[str]) -> dict[str, Any]:
        """Train a part once: kept when finished earlier, continued (``resume=``) when interrupted."""
        train_dir = self.root / name / "train"
        cmd = [sys.executable, "-m", "aelab.train", *overrides, f"hydra.run.dir={train_dir}"]
        self.timings = self._read()
        if (
            name not in self.timings
            and RunDir(train_dir).finished
            and (train_dir / ".hydra" / "config.yaml").is_file()
        ):
            # trained to the end outside this runner (a runner stopped while its child trained on): adopted, with
            # the wall time from the folder's start (its composed config) to its end (metrics.json)
            start = (train_dir / ".hydra" / "config.yaml").stat().st_mtime
            self._record(
                **{name: RunDir(train_dir).metrics_file.stat().st_mtime - start, f"{name}:adopted": True}
            )
            print(f"{name} train: adopted the finished run in {train_dir}", flush=True)
        if name in self.timings and RunDir(train_dir).finished:
            print(f"{name} train: done earlier ({self.timings[name]:.0f} s)", flush=True)
        else:
            if RunDir(train_dir).last_ckpt.is_file() and RunDir(train_dir).is_run:
                print(f"{name} train: continuing the interrupted run", flush=True)
                t = self.run(
                    [sys.executable, "-m", "aelab.train", f"resume={train_dir}"],
                    self.root / name / "train.log",
                )
                self._record(**{name: t, f"{name}:resumed": True})
            else:
                self._record(**{name: self.run(cmd, self.root / name / "train.log")})
        best = self.best_checkpoint(name)
        last = RunDir(train_dir).last_ckpt
        return {
            "train_cmd": shown(cmd).replace(str(self.root), "<results dir>"),
            "t_train": self.timings[name],
            "resumed": bool(self.timings.get(f"{name}:resumed")),
            "epochs": trained_epochs(last if last.is_file() else best),
            **run_plan(best),
            "best_epoch": best_epoch(best),
            "ckpt": str(best),
            "train_dir": str(train_dir),
            "train_metrics": json.loads((train_dir / "metrics.json").read_text()),
        }

    def best_checkpoint(self, name: str) -> Path:
        """A part's best checkpoint: the one its run recorded (:attr:`aelab.rundir.RunDir.best_ckpt`)."""
        run = RunDir(self.root / name / "train")
        return run.best_ckpt or run.last_ckpt

    def _evaluated(self, name: str, ckpt: Path) -> bool:
        done = self.root / name / "eval" / "metrics.json"
        return (
            done.is_file() and f"{name}:eval" in self.timings and done.stat().st_mtime > ckpt.stat().st_mtime
        )

    def finished(self, name: str, evaluated: bool = True) -> bool:
        """Whether an earlier invocation finished the part: trained (and, with ``evaluated``, evaluated since)."""
        self.timings = self._read()
        if not (name in self.timings and RunDir(self.root / name / "train").finished):
            return False
        return not evaluated or self._evaluated(name, self.best_checkpoint(name))

    def evaluate(self, name: str, ckpt: str, extra: list[str]) -> dict[str, Any]:
        """Evaluate a part's best checkpoint once (again when the checkpoint is newer than the evaluation)."""
        eval_dir = self.root / name / "eval"
        cmd = [
            sys.executable,
            "-m",
            "aelab.eval",
            f"ckpt_path={ckpt}",
            f"hydra.run.dir={eval_dir}",
            *self.eval_overrides,
            *extra,
        ]
        done = eval_dir / "metrics.json"
        key = f"{name}:eval"
        self.timings = self._read()
        if not self._evaluated(name, Path(ckpt)):
            self._record(**{key: self.run(cmd, self.root / name / "eval.log")})
        else:
            print(f"{name} eval: done earlier ({self.timings[key]:.0f} s)", flush=True)
        return {
            "eval_cmd": shown(cmd).replace(str(self.root), "<results dir>"),
            "t_eval": self.timings[key],
            "eval_dir": str(eval_dir),
            "metrics": json.loads(done.read_text()),
        }

    def one_class(self, overrides: list[str]) -> dict[str, Any]:
        """The one-class protocol over MNIST's digits (``scripts/one_class.py``)."""
        out = self.root / "mnist" / "one_class"
        cmd = [sys.executable, "-m", "aelab_tools.one_class", "--sweep-dir", str(out), *overrides]
        self.timings = self._read()
        if not ((out / "one_class.json").is_file() and "one_class:cmd" in self.timings):
            t = self.run(cmd, self.root / "mnist" / "one_class.log")
            self._record(
                one_class=t, **{"one_class:cmd": shown(cmd).replace(str(self.root), "<results dir>")}
            )
        return {"cmd": self.timings["one_class:cmd"], "t": self.timings["one_class"],
                **json.loads((out / "one_class.json").read_text())}  # fmt: skip


def trained_epochs(ckpt: Path) -> int:
    """The epochs a run had trained when it wrote ``ckpt`` (its ``last.ckpt``: the whole run): Lightning's
    count of processed epochs in the fit loop's state stored in the checkpoint (its ``epoch`` index plus one is one
    too many for a ``last.ckpt`` written when the fit ends). Fewer than :func:`run_plan`'s ``max_epochs`` when early stopping
    ended the run or it was continued with a smaller ``trainer.max_epochs`` (a run cut short)."""
    state = read_checkpoint(ckpt)
    progress = state.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    return int(progress["processed"]) if "processed" in progress else int(state["epoch"]) + 1


def run_plan(ckpt: Path) -> dict[str, Any]:
    """What the run that wrote ``ckpt`` was set to do, from the config stored in the checkpoint (read once):
    ``max_epochs`` (its ``trainer.max_epochs``, the epochs planned) and ``init`` (its ``model.init``: ``pca`` for
    the PCA start, ``None`` for a model without one)."""
    cfg = load_run_config(ckpt)
    init = cfg.model.get("init")
    return {"max_epochs": int(cfg.trainer.max_epochs), "init": None if init is None else str(init)}


def best_epoch(ckpt: Path) -> int | None:
    """The epoch (1-based) of a kept ``epoch_NNN.ckpt``; ``None`` for another name."""
    stem = Path(ckpt).stem
    return int(stem[6:]) + 1 if stem.startswith("epoch_") and stem[6:].isdigit() else None
