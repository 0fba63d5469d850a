#!/usr/bin/env python
"""Mean ± std of every metric across runs: reads each ``metrics.json`` under the given folders.

::

    python scripts/aggregate.py logs/train/multiruns/2026-11-23_16-00-00   # a seed sweep
    python scripts/aggregate.py run_a run_b run_c --json summary.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from aelab.utils.runs import run_status


def collect(paths: list[str]) -> list[dict[str, float]]:
    """Every ``metrics.json`` found at or below ``paths`` (sorted), as dicts of floats."""
    files = []
    for p in map(Path, paths):
        files += [p] if p.is_file() else sorted(p.rglob("metrics.json"))

    runs = []
    for f in files:
        mark = run_status(f.parent)
        if mark is not None:
            print(f"skipped {f.parent} (marked {mark})")
            continue
        data = json.loads(f.read_text())
        runs.append({k: float(v) for k, v in data.items() if isinstance(v, int | float)})
    return runs


def summarize(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "std", "n"}}`` over the runs that report it (std is the sample std; 0 for n=1)."""
    keys = sorted({k for r in runs for k in r})
    out = {}
    for k in keys:
        values = [r[k] for r in runs if k in r and math.isfinite(r[k])]
        if values:
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            out[k] = {"mean": statistics.fmean(values), "std": std, "n": len(values)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", help="run folders, sweep folders or metrics.json files")
    p.add_argument("--json", default=None, help="also write the summary here")
    args = p.parse_args(argv)
    runs = collect(args.paths)
    if not runs:
        print(f"no metrics.json under {args.paths}", file=sys.stderr)
        return 1
    summary = summarize(runs)
    width = max(len(k) for k in summary)
    print(f"{len(runs)} runs")
    for k, s in summary.items():
        print(f"{k:<{width}}  {s['mean']:12.6g} ± {s['std']:<10.3g} (n={s['n']})")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
