#!/usr/bin/env python
"""``make results``: train every model's best experiment, run the evaluation suite, write docs/RESULTS.md.

For each model the script runs ``aelab-train experiment=<model>_best`` then ``aelab-eval`` on the best
checkpoint, timing both; optionally the one-class sweep (``scripts/one_class.py``). With ``--dir`` the
same command continues an earlier invocation: finished parts are kept, an interrupted training continues
from its last checkpoint (``aelab-train resume=``), and each part prints a ``[k/N]`` progress line. The report lists the
device, date, versions, every command with its wall time, the headline figures beside their anchors
(published numbers and the project's targets), and every figure of every ``metrics.json``.

::

    python scripts/results.py                                   # full runs
    nohup make results ARGS="--dir logs/results/full" > logs/results-full.log 2>&1 &   # in the background
    make results ARGS="--dir logs/results/full"                 # again after an interruption: continues
    python scripts/results.py --train-extra trainer.max_epochs=10 \\
        --eval-extra suite.sections.likelihood.k=200 suite.sections.likelihood.num_images=1000   # a shorter CPU run
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from aelab import CONF_DIR
from aelab.utils.config import repo_root
from aelab.utils.run import run_finished

REPO = Path(repo_root())  # the checkout (editable install) or the working directory

HEADLINES_FILE = CONF_DIR / "results" / "headlines.yaml"


def load_headlines(path: Path = HEADLINES_FILE) -> dict[str, list[dict[str, Any]]]:
    """``{model: [{label, metric, over?, anchor, target?: {op, value}}]}`` from ``conf/results/headlines.yaml``."""
    return yaml.safe_load(Path(path).read_text())


def headline_value(metrics: dict, entry: dict[str, Any]) -> float | None:
    """The entry's figure: ``metrics[metric]``, or ``metrics[metric] / metrics[over]`` for a ratio."""
    v = metrics.get(entry["metric"])
    if not isinstance(v, int | float):
        return None
    if "over" in entry:
        d = metrics.get(entry["over"])
        return float(v) / float(d) if isinstance(d, int | float) and d else None
    return float(v)


def anchor_text(entry: dict[str, Any], metrics: dict) -> str:
    """The entry's anchor with its ``{name}`` fields filled from ``metrics`` via ``values: {name: key}``
    (``n/a`` in place of the whole anchor when one of those metrics is missing)."""
    values = {name: metrics.get(key) for name, key in entry.get("values", {}).items()}
    if any(not isinstance(v, int | float) for v in values.values()):
        return "n/a"
    return entry["anchor"].format(**values)


def meets(entry: dict[str, Any], v: float | None) -> bool | None:
    """Whether ``v`` meets the entry's target (``None`` without a target or a value)."""
    target = entry.get("target")
    if target is None or v is None:
        return None
    return v <= target["value"] if target["op"] == "<=" else v >= target["value"]


def overrides_for(part: str, train_extra: list[str]) -> list[str]:
    """The ``--train-extra`` overrides of one part: the unprefixed ones and ``part:key=value`` ones (prefix
    dropped), in the order given. ``overrides_for("seeds", ["a=1", "seeds:b=2", "vae:c=3"]) == ["a=1", "b=2"]``."""
    out = []
    for o in train_extra:
        key = o.split("=", 1)[0]
        if ":" not in key:
            out.append(o)
        elif o.split(":", 1)[0] == part:
            out.append(o.split(":", 1)[1])
    return out


def run(cmd: list[str], log: Path) -> float:
    """Run ``cmd`` in the repository, output to ``log``; returns the wall time in seconds."""
    print("$", shlex.join(cmd), flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(cmd)}; see {log}")
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(load_headlines()))
    p.add_argument(
        "--train-extra", nargs="*", default=[],
        help="Hydra overrides for every training run; 'PART:key=value' applies to that part only (PART: a "
        "model name, latent2d or seeds)",
    )  # fmt: skip
    p.add_argument("--eval-extra", nargs="*", default=[], help="Hydra overrides for every aelab-eval run")
    p.add_argument(
        "--one-class", nargs="*", default=None, help="also run scripts/one_class.py with these overrides"
    )
    p.add_argument("--out", default=str(REPO / "docs" / "RESULTS.md"))
    p.add_argument(
        "--latent-map", action=argparse.BooleanOptionalAction, default=True,
        help="also train experiment=seed_deep_3 with a 2-D code for the latent-map figure",
    )  # fmt: skip
    p.add_argument(
        "--seeds",
        nargs="*",
        type=int,
        default=[],
        help="also train experiment=ae_best with these seeds (stability)",
    )
    p.add_argument(
        "--figures-dir", default=str(REPO / "docs" / "figures"), help="where the figures go ('' for none)"
    )
    p.add_argument("--note", default="", help="a sentence for the report (e.g. why epochs were reduced)")
    p.add_argument(
        "--reuse", default=None,
        help="an earlier results folder: keep its trainings (and their timings.json wall times), rerun the evals",
    )  # fmt: skip
    p.add_argument(
        "--dir", default=None,
        help="the results folder; run the same command again to continue it: finished parts are kept, an "
        "interrupted training continues from its last checkpoint (aelab-train resume=), missing evals run",
    )  # fmt: skip
    args = p.parse_args()

    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    root = Path(args.reuse or args.dir or REPO / "logs" / "results" / stamp)
    root.mkdir(parents=True, exist_ok=True)
    timings_path = root / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    py = sys.executable
    results = {}
    parts = len(args.models) * 2 + (args.one_class is not None) + bool(args.latent_map) + len(args.seeds)
    step = 0

    def progress(part: str, what: str) -> None:
        print(f"[{step}/{parts}] {part}: {what}", flush=True)

    def train_part(name: str, train_cmd: list[str], train_dir: Path) -> float:
        """Train once: kept when finished earlier, continued (resume=) when interrupted; wall time in s."""
        last = train_dir / "checkpoints" / "last.ckpt"
        if name in timings and run_finished(train_dir):
            progress(f"{name} train", f"done earlier ({timings[name]:.0f} s)")
            return timings[name]
        if last.is_file() and (train_dir / ".hydra" / "config.yaml").is_file():
            epoch = torch.load(last, map_location="cpu", weights_only=True).get("epoch", 0)
            progress(f"{name} train", f"continuing the interrupted run from epoch {epoch}")
            cmd = [py, "-m", "aelab.train", f"resume={train_dir}"]
            timings[f"{name}_resumed"] = True  # the wall time below is the finishing attempt's only
        else:
            progress(f"{name} train", "starting")
            cmd = train_cmd
        timings[name] = run(cmd, root / f"{name}_train.log")
        timings_path.write_text(json.dumps(timings, indent=2) + "\n")
        progress(f"{name} train", f"finished ({timings[name]:.0f} s)")
        return timings[name]

    for model in args.models:
        exp = f"{model}_best"
        train_dir, eval_dir = root / model / "train", root / model / "eval"
        extra = overrides_for(model, args.train_extra)
        train_cmd = [py, "-m", "aelab.train", f"experiment={exp}", f"hydra.run.dir={train_dir}", *extra]
        step += 1
        t_train = train_part(model, train_cmd, train_dir)
        ckpt = next((train_dir / "checkpoints").glob("epoch_*.ckpt"))
        eval_cmd = [
            py,
            "-m",
            "aelab.eval",
            f"ckpt_path={ckpt}",
            f"hydra.run.dir={eval_dir}",
            *args.eval_extra,
        ]
        step += 1
        done = eval_dir / "metrics.json"
        if (
            not args.reuse
            and done.is_file()
            and done.stat().st_mtime > ckpt.stat().st_mtime
            and f"{model}_eval" in timings
        ):
            t_eval = timings[f"{model}_eval"]
            progress(f"{model} eval", f"done earlier ({t_eval:.0f} s)")
        else:
            progress(f"{model} eval", "starting")
            t_eval = run(eval_cmd, root / f"{model}_eval.log")
            timings[f"{model}_eval"] = t_eval
            timings_path.write_text(json.dumps(timings, indent=2) + "\n")
            progress(f"{model} eval", f"finished ({t_eval:.0f} s)")
        metrics = json.loads((eval_dir / "metrics.json").read_text())
        results[model] = {
            "train_cmd": train_cmd,
            "eval_cmd": eval_cmd,
            "t_train": t_train,
            "t_eval": t_eval,
            "metrics": metrics,
            "ckpt": ckpt,
            "train_dir": train_dir,
            "epochs": trained_epochs(ckpt),
            "resumed": bool(timings.get(f"{model}_resumed")),
            "eval_dir": eval_dir,
        }
        print(f"{model}: train {t_train:.0f} s, eval {t_eval:.0f} s", flush=True)

    one_class = None
    if args.one_class is not None:
        oc_dir = root / "one_class"
        cmd = [py, "-m", "aelab.experiments.one_class", "--sweep-dir", str(oc_dir), *args.one_class]
        step += 1
        if "one_class" in timings and (oc_dir / "one_class.json").exists():
            t = timings["one_class"]
            progress("one-class", f"done earlier ({t:.0f} s)")
        else:
            progress("one-class", "starting")
            t = run(cmd, root / "one_class.log")
            timings["one_class"] = t
            timings_path.write_text(json.dumps(timings, indent=2) + "\n")
        one_class = {"cmd": cmd, "t": t, **json.loads((oc_dir / "one_class.json").read_text())}

    extras: dict[str, Any] = {}
    if args.latent_map:
        step += 1
        train_dir = root / "latent2d" / "train"
        cmd = [
            py,
            "-m",
            "aelab.train",
            "experiment=seed_deep_3",
            "model.latent_dim=2",
            f"hydra.run.dir={train_dir}",
            *overrides_for("latent2d", args.train_extra),
        ]
        t = train_part("latent2d", cmd, train_dir)
        extras["latent2d"] = {
            "ckpt": next((train_dir / "checkpoints").glob("epoch_*.ckpt")),
            "t": t,
            "cmd": cmd,
        }
    if args.seeds:
        seed_runs = []
        for seed in args.seeds:
            step += 1
            train_dir = root / "seeds" / f"ae_seed{seed}"
            cmd = [
                py,
                "-m",
                "aelab.train",
                "experiment=ae_best",
                f"seed={seed}",
                f"hydra.run.dir={train_dir}",
                *overrides_for("seeds", args.train_extra),
            ]
            t = train_part(f"ae_seed{seed}", cmd, train_dir)
            seed_runs.append({"seed": seed, "t": t, "cmd": cmd,
                              "epochs": trained_epochs(next((train_dir / "checkpoints").glob("epoch_*.ckpt"))),
                              "metrics": json.loads((train_dir / "metrics.json").read_text())})  # fmt: skip
        extras["seeds"] = seed_runs

    figures = {}
    if args.figures_dir:
        from aelab.experiments.report_figures import make_figures

        device = (
            torch.cuda.get_device_name(0)
            if torch.cuda.is_available()
            else f"CPU ({torch.get_num_threads()} threads)"
        )
        figures = make_figures(
            results, one_class, Path(args.figures_dir), device, time.strftime("%Y-%m-%d"), rel, extras
        )
    write_report(Path(args.out), results, one_class, args, figures)
    print(f"wrote {args.out}")
    return 0


def trained_epochs(ckpt: Path) -> int:
    """``trainer.max_epochs`` of the run that wrote ``ckpt``, from the config stored in the checkpoint."""
    from aelab.checkpoint import load_run_config

    return int(load_run_config(ckpt).trainer.max_epochs)


def best_epoch(ckpt: Path) -> str:
    """``epoch N`` (1-based) of a kept ``epoch_NNN.ckpt``; ``?`` for another name."""
    stem = Path(ckpt).stem
    return f"epoch {int(stem[6:]) + 1}" if stem.startswith("epoch_") and stem[6:].isdigit() else "?"


def rel(cmd: list[str]) -> str:
    """A command as a user would type it (repo-relative paths, the venv's python as `python`)."""
    text = shlex.join(["python", *cmd[1:]])
    return text.replace(str(REPO) + "/", "")


def write_report(
    path: Path, results: dict, one_class: dict | None, args, figures: dict | None = None
) -> None:
    device = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    )
    import pytorch_lightning as pl

    lines = [
        "# Results",
        "",
        f"Written by `make results` (`scripts/results.py`) on {dt.date.today().isoformat()}; device: {device}; "
        f"torch {torch.__version__}, pytorch-lightning {pl.__version__}, Python {platform.python_version()}.",
        "Every figure below is read from the `metrics.json` of the runs listed under *Commands*; anchors are "
        "published numbers or the project's targets.",
        "",
    ]
    if args.note:
        lines += [f"> {args.note}", ""]
    headlines = load_headlines()
    lines += ["## Headline", "", "| figure | value | anchor | meets target |", "| --- | --- | --- | --- |"]
    for model, r in results.items():
        for entry in headlines.get(model, []):
            v = headline_value(r["metrics"], entry)
            shown = "n/a" if v is None else (f"{v:.4g}×" if "over" in entry else f"{v:.4g}")
            target = entry.get("target")
            anchor = anchor_text(entry, r["metrics"]) + (
                f"; target {target['op']} {target['value']}" if target else ""
            )
            ok = meets(entry, v)
            verdict = "" if ok is None else ("yes" if ok else "**no**")
            lines.append(f"| {entry['label']} | {shown} | {anchor} | {verdict} |")
    if one_class:
        m = one_class["mean"]
        lines.append(
            f"| one-class mean AUROC ({len(one_class['digits'])} digits) | {100 * m['auroc']:.1f} | target ≥ 90; Deep SVDD 94.8, CAE ≈ 89.7 | {'yes' if 100 * m['auroc'] >= 90 else '**no**'} |"
        )
    lines += [
        "",
        "## Runs: epochs, wall times, commands",
        "",
        "| model | experiment | epochs (best checkpoint) | train | eval |",
        "| --- | --- | --- | --- | --- |",
    ]
    for model, r in results.items():
        resumed = " (finishing attempt of a resumed run)" if r.get("resumed") else ""
        lines.append(
            f"| {model} | `{model}_best` | {r['epochs']} ({best_epoch(r['ckpt'])}) | {r['t_train']:.0f} s{resumed} "
            f"| {r['t_eval']:.0f} s |"
        )
    lines.append("")
    for model, r in results.items():
        lines += [
            f"- {model}: train {r['t_train']:.0f} s — `{rel(r['train_cmd'])}`",
            f"  eval {r['t_eval']:.0f} s — `{rel(r['eval_cmd'])}`",
        ]
    if one_class:
        lines += [f"- one-class sweep: {one_class['t']:.0f} s — `{rel(one_class['cmd'])}`"]
        lines += ["", "| digit | AUROC (recon. error) |", "| --- | --- |"]
        lines += [f"| {d} | {100 * r['auroc']:.1f} |" for d, r in one_class["digits"].items()]
    if figures:
        lines += ["", "## Figures", ""]
        for name, text in figures.items():
            link = os.path.relpath(Path(args.figures_dir) / name, path.parent)
            lines += [f"![{name}]({link})", "", f"*{text}*", ""]
    lines += ["", "## Compression (rate–distortion on the test set)", ""]
    for model, r in results.items():
        m = r["metrics"]
        if "test/compression/gzip_bytes_per_image" not in m:
            continue
        lines += [
            f"### {model}",
            "",
            "| method | bytes/image | ratio vs raw (784 B) | ratio vs gzip | PSNR (dB) |",
            "| --- | --- | --- | --- | --- |",
        ]
        gz = m["test/compression/gzip_bytes_per_image"]
        lines.append(f"| gzip (lossless, whole split) | {gz:.1f} | {784 / gz:.2f} | 1.00 | ∞ |")
        for name in ("ae", "pca"):
            for fmt in ("float32", "float16", "uint8"):
                k = f"test/compression/{name}_{fmt}"
                lines.append(
                    f"| {name.upper()} codes, {fmt} | {m[k + '_bytes_per_image']:.1f} | {m[k + '_ratio_vs_raw']:.1f} | {m[k + '_ratio_vs_gzip']:.2f} | {m[k + '_psnr']:.2f} |"
                )
        for key in sorted(
            k for k in m if k.startswith("test/compression/jpeg_q") and k.endswith("_bytes_per_image")
        ):
            q = key.split("jpeg_q")[1].split("_")[0]
            b = m[key]
            lines.append(
                f"| JPEG q={q} | {b:.1f} | {784 / b:.2f} | {gz / b:.2f} | {m[f'test/compression/jpeg_q{q}_psnr']:.2f} |"
            )
        lines.append("")
    lines += ["## Every figure", ""]
    for model, r in results.items():
        lines += [
            f"<details><summary>{model} ({len(r['metrics'])} figures)</summary>",
            "",
            "| key | value |",
            "| --- | --- |",
        ]
        lines += [
            f"| `{k}` | {v:.6g} |" if isinstance(v, int | float) else f"| `{k}` | {v} |"
            for k, v in r["metrics"].items()
        ]
        lines += ["", "</details>", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
