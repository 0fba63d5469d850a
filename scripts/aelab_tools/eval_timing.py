"""How long the default ``aelab-eval`` takes, per model and section (``scripts/benchmark.py --study eval``).

Each model trains a short run (its best experiment for ``--epochs`` epochs of ``--limit-batches`` batches), then
its checkpoint is evaluated with ``aelab-eval``'s defaults (the quick suite; ``--extra suite=full`` for the full
one), as a user would run it: one process each, one after the other. The JSON holds every command, the wall time
of each ``aelab-eval`` (start-up and test loop included) and the suite's own ``test/timing/<section>_s``.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aelab.rundir import RunDir
from aelab_tools import schema

#: the experiment a model's short run trains
EXPERIMENTS = {"codec": "codec_mnist", "codec_hyperprior": "codec_hyperprior_mnist"}


def run_logged(cmd: list[str], log: Path) -> float:
    """Run ``cmd`` with its output in ``log``; its wall time (s). A failure stops with the end of its log."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(cmd)}; the end of its log:\n{tail}")
    return time.perf_counter() - t0


def eval_study(args, device) -> dict:
    """``{models: {name: {train_cmd, eval_cmd, eval_wall_s, suite_s, sections: {name: s}, suite}}}``."""
    out: dict = {"models": {}, "epochs": args.epochs, "limit_batches": args.limit_batches or 60}
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    with tempfile.TemporaryDirectory(prefix="aelab-eval-timing-") as tmp:
        for name in args.models:
            run_dir, eval_dir = Path(tmp) / name, Path(tmp) / f"{name}_eval"
            exp = EXPERIMENTS.get(name, f"{name}_best")
            train = [sys.executable, "-m", "aelab.train", f"experiment={exp}", f"trainer.max_epochs={args.epochs}",
                     f"+trainer.limit_train_batches={out['limit_batches']}", f"trainer.accelerator={accelerator}",
                     "trainer.enable_progress_bar=false", "callbacks.progress_bar=null", f"paths.data_dir={args.data_dir}",
                     f"hydra.run.dir={run_dir}"]  # fmt: skip
            run_logged(train, Path(tmp) / f"{name}_train.log")
            ckpt = RunDir(run_dir).best_ckpt
            if ckpt is None:
                raise SystemExit(f"{name}: the short run in {run_dir} wrote no checkpoint")
            # cold: a data root of its own, its cache empty (the raw files linked in); warm: the same command again
            fresh = fresh_data_root(Path(args.data_dir), Path(tmp) / f"{name}_data")
            evaluate = [sys.executable, "-m", "aelab.eval", f"ckpt_path={ckpt}", f"trainer.accelerator={accelerator}",
                        "trainer.enable_progress_bar=false", f"paths.data_dir={fresh}",
                        f"hydra.run.dir={eval_dir}", *args.extra]  # fmt: skip
            wall = run_logged(evaluate, Path(tmp) / f"{name}_eval.log")
            metrics = RunDir(eval_dir).metrics()
            sections = schema.section_times(metrics)
            warm = run_logged(evaluate, Path(tmp) / f"{name}_eval_warm.log")
            warm_sections = schema.section_times(RunDir(eval_dir).metrics())
            out["models"][name] = {
                "train_cmd": shlex.join(train[1:]).replace(tmp, "<tmp>").replace(args.data_dir, "<data dir>"),
                "eval_cmd": shlex.join(evaluate[1:])
                .replace(str(fresh), "<empty data root>")
                .replace(tmp, "<tmp>"),
                "eval_wall_s": wall,
                "eval_warm_wall_s": warm,
                "warm_sections": warm_sections,
                "suite_s": metrics.get("test/timing/suite_s"),
                "suite": "full" if metrics.get("test/suite/full") else "quick",
                "sections": sections,
            }
            print(
                name,
                json.dumps(out["models"][name]["sections"]),
                f"cold {wall:.1f} s, warm {warm:.1f} s",
                flush=True,
            )
    return out


def fresh_data_root(data_dir: Path, root: Path) -> Path:
    """A data root with nothing cached: the raw MNIST and Fashion-MNIST files of ``data_dir`` linked in."""
    for name in ("MNIST", "FashionMNIST"):
        raw = data_dir / name / "raw"
        if raw.is_dir():
            (root / name).mkdir(parents=True, exist_ok=True)
            (root / name / "raw").symlink_to(raw.resolve(), target_is_directory=True)
    root.mkdir(parents=True, exist_ok=True)
    return root


def merge_eval_studies(old: dict, new: dict) -> dict:
    """``new`` with the models of ``old`` it did not re-measure; each model keeps the command and date that
    measured it (``measured_by``)."""
    for d in (old, new):
        for m in d["models"].values():
            m.setdefault("measured_by", {"command": d["command"], "date": d["date"]})
    return {**new, "models": {**old["models"], **new["models"]}}


def render_eval_study(d: dict) -> list[str]:
    """The Markdown section of an ``eval`` study: model × section × seconds (cold), the suite's total and the
    command's wall time cold and warm, against issue 38's targets (≤ 120 s cold, ≤ 30 s warm)."""
    names = sorted({s for m in d["models"].values() for s in m["sections"]})
    lines = [f"## The default evaluation's cost: {d['device']}", "",
             f"{d['date']} · `{d['command']}` · JSON: [{d['file']}]({d['file']}). Each model trained "
             f"{d['epochs']} epoch(s) of {d['limit_batches']} batches, then `aelab-eval` with its defaults "
             "(one process after another; the device line gives the threads each had), cold (a data root of its own "
             "with nothing cached: the Fréchet feature classifier comes from the package's shipped weights, every "
             "other cache is computed) and warm (the same command again); seconds per section of the cold run "
             "(`test/timing/<section>_s`), the suite's total, and the whole command's wall time (start-up and test "
             "loop included). A blank cell: the section does not apply to the model; a dash: not measured then.", "",
             "| model | suite | " + " | ".join(names) + " | suite total (s) | aelab-eval cold (s), ≤ 120 | warm (s), ≤ 30 |",
             "| --- | --- | " + " | ".join("---" for _ in names) + " | --- | --- | --- |"]  # fmt: skip
    for model, m in d["models"].items():
        cells = [f"{m['sections'][s]:.1f}" if s in m["sections"] else "" for s in names]
        warm = m.get("eval_warm_wall_s")
        lines.append(
            f"| {model} | {m['suite']} | "
            + " | ".join(cells)
            + f" | {m['suite_s']:.1f} | {_against(m['eval_wall_s'], 120)} | "
            + ("—" if warm is None else _against(warm, 30))
            + " |"
        )
    for name, m in d["models"].items():  # a model re-measured apart, or kept from an earlier measurement
        by = m.get("measured_by")
        if by and by.get("command") != d["command"]:
            lines += ["", f"{name}: measured on {by['date']} by `{by['command']}`."]
    return lines + [""]


def _against(seconds: float, target: float) -> str:
    return f"{seconds:.1f}" if seconds <= target else f"**{seconds:.1f}**"
