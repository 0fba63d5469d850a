"""A user's first try on tables (``make bench-first-try``): the held-out AUROC of ``aelab-train data=<table>``
with no model override, beside IsolationForest fitted on the same training records, over 5 seeds (each seed
redraws the split: ``seed=s data.split_seed=s``), and the candidates measured to choose that default. Written to
``docs/first_try.json`` and rendered to ``docs/FIRST_TRY.md`` from that JSON alone.

Tables: ``breast_cancer`` and ``wine`` (bundled, ODDS protocols) and scikit-learn's 8×8 digits written as a CSV
the way a user would hand it over (64 pixel columns and a ``digit`` column; digit 0 normal, every other digit an
anomaly), read by ``data=tabular``. Each run is a fresh ``aelab-train`` process; its ``metrics.json`` gives the
model's ``test/anomaly/auroc`` and ``test/anomaly/iforest_auroc`` (scikit-learn's defaults, the same records).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SEEDS = (100, 101, 102, 103, 104)
#: the MLP the defaults used before this benchmark (512-256, no dropout, the plain MSE score)
BEFORE = ["model.encoder.hidden_dims=[512,256]", "model.decoder.hidden_dims=[256,512]", "model.encoder.dropout=0",
          "model.decoder.dropout=0", "data.standardize_errors=false"]  # fmt: skip
#: candidate → overrides on top of ``aelab-train data=<table>``; ``default`` is what a user gets
CANDIDATES = {
    "default": [],
    "before": BEFORE,
    "before + PCA start": [*BEFORE, "model.init=pca"],
    "before + standardised errors": [*BEFORE[:-1], "data.standardize_errors=true"],
    "tables' MLP, plain MSE": ["data.standardize_errors=false"],
    "default, MLP 128-64": ["data.mlp_hidden_dims=[128,64]"],
    "VAE (model=vae)": ["model=vae"],
}
LABELS = {
    "default": "the default: the tables' MLP (64-32, dropout 0.2; data.mlp_hidden_dims, data.mlp_dropout) and "
    "standardised errors (data.standardize_errors, shrunk)",
    "before": "the previous default: MLP 512-256, no dropout, the plain MSE score",
}


def digits_csv(folder: Path) -> Path:
    """scikit-learn's 8×8 digits as a user's CSV: columns ``p0``–``p63`` and ``digit``."""
    import pandas as pd
    from sklearn.datasets import load_digits

    digits = load_digits()
    frame = pd.DataFrame(digits.data, columns=[f"p{i}" for i in range(digits.data.shape[1])])
    frame["digit"] = digits.target
    path = folder / "digits.csv"
    frame.to_csv(path, index=False)
    return path


def tables(folder: Path) -> dict[str, list[str]]:
    """Each table's data overrides."""
    return {
        "breast_cancer": ["data=breast_cancer"],
        "wine": ["data=wine"],
        "digits_csv": [
            "data=tabular",
            f"data.path={digits_csv(folder)}",
            "data.label_column=digit",
            "data.anomaly_values=[1,2,3,4,5,6,7,8,9]",
        ],  # fmt: skip
    }


def run(data: list[str], overrides: list[str], seed: int, folder: Path, data_dir: str) -> dict[str, float]:
    """One ``aelab-train`` run's AUROC and IsolationForest's on the same split (a run already in ``folder`` is read)."""
    if not (folder / "metrics.json").is_file():
        cmd = [str(Path(sys.executable).parent / "aelab-train"), *data, *overrides, f"seed={seed}",
               f"data.split_seed={seed}", "trainer.accelerator=cpu", "logger=none", "callbacks.progress_bar=null",
               f"paths.data_dir={data_dir}", f"hydra.run.dir={folder}"]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    m = json.loads((folder / "metrics.json").read_text())
    return {"auroc": m["test/anomaly/auroc"], "iforest_auroc": m["test/anomaly/iforest_auroc"]}


def render(result: dict) -> str:
    """``docs/FIRST_TRY.md`` from the JSON alone."""
    lines = [
        "# A user's first try on tables",
        "",
        f"Rendered by `python scripts/bench_first_try.py --render docs/first_try.json --out docs/FIRST_TRY.md` from "
        f"the JSON that `{result['command']}` wrote on {result['date']}; device: {result['device']}; torch "
        f"{result['versions']['torch']}, Python {result['versions']['python']}.",
        "",
        f"Held-out AUROC (test split: held-out normal records and every anomaly), mean ± std over seeds "
        f"{', '.join(map(str, result['seeds']))} (each redraws the split), of `aelab-train data=<table>` with the "
        "overrides of each row, and IsolationForest (scikit-learn's defaults) fitted on the same training records. "
        "digits_csv is scikit-learn's 8×8 digits written as a CSV (digit 0 normal), read by `data=tabular`.",
        "",
    ]
    names = list(result["tables"])
    lines += ["| candidate | overrides | " + " | ".join(names) + " | mean |",
              "| --- | --- | " + " | ".join("---" for _ in names) + " | --- |"]  # fmt: skip
    iforest = {t: result["tables"][t]["iforest_auroc"] for t in names}
    for cand, overrides in result["candidates"].items():
        cells, means = [], []
        for t in names:
            r = result["tables"][t]["candidates"].get(cand)
            if r is None:
                cells.append("")
                continue
            means.append(r["mean"])
            mark = "**" if r["mean"] >= iforest[t] else ""
            cells.append(f"{mark}{r['mean']:.4f}{mark} ± {r['std']:.4f}")
        mean = f"{statistics.fmean(means):.4f}" if len(means) == len(names) else ""
        shown = " ".join(f"`{o}`" for o in overrides) or "(none)"
        lines.append(f"| {LABELS.get(cand, cand)} | {shown} | " + " | ".join(cells) + f" | {mean} |")
    lines.append("| IsolationForest (same split) | | " + " | ".join(f"{iforest[t]:.4f}" for t in names)
                 + f" | {statistics.fmean(iforest.values()):.4f} |")  # fmt: skip
    tables = result["tables"]
    if all("default" in tables[t]["candidates"] for t in names):
        met = all(tables[t]["candidates"]["default"]["mean"] >= iforest[t] for t in names)
        verdict = f"**{'met' if met else 'missed'}**"
    else:
        verdict = "not judged (the default was not measured)"
    lines += ["", "Bold: at or above IsolationForest on that table. The target (issue 38): the default at or above "
              f"IsolationForest on every table — {verdict}.", "",
              "The default was chosen among these candidates on these seeds; docs/RESULTS.md's anomaly table reports "
              "it (parts `breast_cancer/default`, `wine/default`) on seeds 200–204, which the choice never saw."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_first_try", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--json", default="docs/first_try.json", help="where the figures go")
    p.add_argument("--out", default="docs/FIRST_TRY.md", help="the Markdown rendered from them")
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    p.add_argument("--data-dir", default="data", help="the data root")
    p.add_argument("--render", default=None, help="only render this JSON to --out")
    p.add_argument(
        "--work-dir",
        default=None,
        help="keep the runs here and reuse those done (default: a temporary folder)",
    )
    args = p.parse_args(argv)
    if args.render:
        Path(args.out).write_text(render(json.loads(Path(args.render).read_text())))
        return 0
    import torch

    from aelab.utils.device import device_name

    command = "python scripts/bench_first_try.py " + " ".join(
        [f"--candidates {' '.join(repr(c) for c in args.candidates)}"]
        if args.candidates != list(CANDIDATES)
        else []
    )
    result = {"date": dt.date.today().isoformat(), "device": device_name(), "command": command.strip(),
              "versions": {"torch": torch.__version__, "python": platform.python_version()},
              "seeds": args.seeds, "candidates": {c: CANDIDATES[c] for c in args.candidates}, "tables": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="aelab-first-try-") as scratch:
        tmp = args.work_dir or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        for table, data in tables(Path(tmp)).items():
            entry = result["tables"].setdefault(table, {"data": data, "candidates": {}})
            for cand in args.candidates:
                runs = [run(data, CANDIDATES[cand], s, Path(tmp) / table / re.sub(r"[^A-Za-z0-9]+", "_", cand) / str(s),
                            args.data_dir) for s in args.seeds]  # fmt: skip
                aurocs = [r["auroc"] for r in runs]
                entry["candidates"][cand] = {"mean": statistics.fmean(aurocs), "std": statistics.stdev(aurocs) if len(aurocs) > 1 else 0.0,
                                             "per_seed": aurocs}  # fmt: skip
                entry["iforest_auroc"] = statistics.fmean(r["iforest_auroc"] for r in runs)
                print(f"{table} {cand}: {entry['candidates'][cand]['mean']:.4f} (IsolationForest "
                      f"{entry['iforest_auroc']:.4f})", flush=True)  # fmt: skip
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    Path(args.out).write_text(render(result))
    print(render(result))
    return 0
