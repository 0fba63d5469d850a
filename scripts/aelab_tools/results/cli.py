"""``make results``: train and evaluate the parts of ``scripts/aelab_tools/results/parts.yaml`` (those of ``--data``), write
``results.json``, draw the figures and render ``docs/RESULTS.md`` from that JSON.

Each part trains ``python -m aelab.train <its overrides>`` into ``<dir>/<part>/train`` and evaluates the best
checkpoint into ``<dir>/<part>/eval``; the one-class protocol and the seed runs are optional parts. The same
command continues an earlier invocation with ``--dir``: finished parts are kept (with their recorded wall times),
an interrupted training continues from its checkpoint (``resume=``), missing evaluations run. Everything the
report shows — metrics, commands, wall times, captions, headline definitions — is written to ``results.json``
first, and the Markdown is rendered from that file alone::

    python scripts/results.py --dir logs/results/full                          # MNIST's parts (--data mnist)
    python scripts/results.py --dir logs/results/full --data mnist digits photo_patches  # every part
    python scripts/results.py --dir logs/results/mine --data image_folder --data-override data.root=DIR
    python scripts/results.py --dir logs/results/full --parts mnist/ae mnist/vae  # some parts
    python scripts/results.py --render docs/results.json --out docs/RESULTS.md    # the report, from its JSON
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from aelab import CONF_DIR
from aelab.utils.device import device_name
from aelab_tools.results.analysis import codec_study, generation_table, headline_rows, reproducibility_table
from aelab_tools.results.figure_set import make_figures
from aelab_tools.results.render import render
from aelab_tools.results.runner import PARTS_FILE, REPO, SCHEMA, Runner, load_headlines, load_parts, shown

# ---------------------------------------------------------------------------------------------- the command
CORE_MODELS = ("ae", "dae", "vae", "conv_ae", "conv_vae")  # the models a dataset without parts gets


def derived_parts(
    root: Path, datasets: list[str], known: dict[str, Any], overrides: list[str]
) -> dict[str, dict[str, Any]]:
    """Parts ``<data>/<model>`` for each data config in ``datasets`` that has none in the parts file: the core
    models' best experiments (``experiment=<model>_best data=<data> <overrides>``; the VAEs on continuous pixels,
    ``model.binarize=false``). Recorded in ``<root>/derived_parts.json``, so a later invocation keeps them in the
    report; parts recorded there earlier are returned too."""
    path = root / "derived_parts.json"
    out: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else {}
    prefixes = {n.split("/")[0] for n in known}
    for data in datasets:
        if data in prefixes or not (CONF_DIR / "data" / f"{data}.yaml").is_file():
            continue
        for model in CORE_MODELS:
            binarize = ["model.binarize=false"] if model.endswith("vae") else []
            out[f"{data}/{model}"] = {
                "train": [f"experiment={model}_best", f"data={data}", *overrides, *binarize]
            }
    if out:
        root.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1) + "\n")
    return out


def _one_run(runner: Runner, name: str, p: dict[str, Any], extra: list[str]) -> dict[str, Any]:
    entry = {"group": p.get("group"), **runner.train(name, [*p["train"], *extra])}
    if p.get("eval", True):
        entry |= runner.evaluate(name, entry["ckpt"], list(p.get("eval_overrides", [])))
    return entry


def seeded(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """One part of several seeds: the first run's entry with ``metrics`` the mean over the seeds of every numeric
    metric (of its evaluation, or with ``eval: false`` of its training run's test), ``metrics_std`` their standard deviation (n − 1), ``seeds`` the seeds and ``t_train`` the total."""
    import statistics

    # a part without an evaluation (eval: false) reports its training run's test metrics
    measured = {s: r.get("metrics") or r["train_metrics"] for s, r in runs.items()}
    first = next(iter(runs.values()))
    keys = [
        k
        for k, v in measured[next(iter(runs))].items()
        if isinstance(v, int | float) and all(k in m for m in measured.values())
    ]
    values = {k: [float(m[k]) for m in measured.values()] for k in keys}
    return {
        **first,
        "metrics": {k: statistics.fmean(v) for k, v in values.items()},
        "metrics_std": {k: statistics.stdev(v) if len(v) > 1 else 0.0 for k, v in values.items()},
        "seeds": sorted(runs),
        "t_train": sum(r["t_train"] for r in runs.values()),
        "train_cmd": first["train_cmd"],
    }


def collect(runner: Runner, names: list[str], spec: dict[str, Any], run: bool) -> dict[str, dict]:
    """Train and evaluate the named parts (``run``), or read what an earlier invocation left in the folder. A part
    with ``seeds: [...]`` runs once per seed (``seed=s data.split_seed=s``, into ``<part>/seed<s>``) and reports the
    mean and standard deviation over them (:func:`seeded`)."""
    parts: dict[str, dict] = {}
    for i, name in enumerate(names, 1):
        p = spec["parts"][name]
        print(f"[{i}/{len(names)}] {name}", flush=True)
        seeds = p.get("seeds")
        runs = (
            [(f"{name}/seed{s}", [f"seed={s}", f"data.split_seed={s}"], s) for s in seeds]
            if seeds
            else [(name, [], None)]
        )
        if not run and not all(runner.finished(n, evaluated=p.get("eval", True)) for n, _, _ in runs):
            continue  # read only what an earlier invocation finished; never start anything here
        done = {s: _one_run(runner, n, p, extra) for n, extra, s in runs}
        parts[name] = seeded(done) if seeds else done[None]
    return parts


def kept_parts(earlier: dict[str, Any], done: set[str]) -> dict[str, Any]:
    """The parts of an earlier results.json that ``done`` does not have, each marked ``kept_from`` (that report's
    date and command): their runs are not in this folder, so only their recorded figures are reused."""
    out = {}
    for name, entry in (earlier.get("parts") or {}).items():
        if name not in done:
            out[name] = {**entry, "kept_from": entry.get("kept_from") or {"date": earlier.get("date"),
                                                                          "command": earlier.get("command")}}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=None, help="the results folder (continued when run again)")
    p.add_argument(
        "--data",
        nargs="+",
        default=["mnist"],
        help="the datasets whose parts run (default: mnist); a data config without parts in the parts file gets "
        "the five core models' best experiments on it (with --data-override)",
    )
    p.add_argument(
        "--data-override",
        nargs="*",
        default=[],
        help="overrides of the parts derived for a data config without parts, e.g. data.root=DIR data.image_size=64",
    )
    p.add_argument("--parts", nargs="*", default=None, help="only these parts (instead of --data)")
    p.add_argument(
        "--parts-file",
        default=str(PARTS_FILE),
        help="the parts to run (default: scripts/aelab_tools/results/parts.yaml)",
    )
    p.add_argument("--eval-extra", nargs="*", default=[], help="more overrides for every evaluation")
    p.add_argument(
        "--one-class", nargs="*", default=None, help="also run the one-class protocol with these overrides"
    )
    p.add_argument("--note", action="append", default=[], help="a sentence for the report (repeatable)")
    p.add_argument(
        "--json", default=str(REPO / "docs" / "results.json"), help="where results.json goes ('' for none)"
    )
    p.add_argument(
        "--out", default=str(REPO / "docs" / "RESULTS.md"), help="the Markdown report ('' for none)"
    )
    p.add_argument(
        "--figures-dir", default=str(REPO / "docs" / "figures"), help="where the figures go ('' for none)"
    )
    p.add_argument("--render", default=None, help="render this results.json to --out, and nothing else")
    p.add_argument(
        "--keep-from",
        default=None,
        help="an earlier results.json: its parts that this folder has not run stay in the report, marked with "
        "that report's date and command (make results re-runs what changed)",
    )
    args = p.parse_args(argv)

    if args.render:
        results = json.loads(Path(args.render).read_text())
        Path(args.out).write_text(render(results))
        print(f"wrote {args.out}")
        return 0
    spec = load_parts(Path(args.parts_file))
    root = Path(args.dir or REPO / "logs" / "results" / time.strftime("%Y-%m-%d_%H-%M-%S"))
    runner = Runner(root, [*spec.get("eval_overrides", []), *args.eval_extra])
    with_parts = {n.split("/")[0] for n in spec["parts"]}
    no_config = [
        d for d in args.data if d not in with_parts and not (CONF_DIR / "data" / f"{d}.yaml").is_file()
    ]
    if no_config:
        p.error(
            f"--data {' '.join(no_config)}: no parts and no data config (conf/data/<name>.yaml) by that name"
        )
    spec["parts"] |= derived_parts(root, args.data, spec["parts"], args.data_override)
    if args.parts is not None:
        chosen = args.parts
    else:
        chosen = [n for n in spec["parts"] if n.split("/")[0] in args.data]
    unknown = sorted(set(chosen) - set(spec["parts"]))
    if unknown:
        p.error(f"unknown parts {unknown}; choose from {sorted(spec['parts'])}")
    parts = collect(runner, chosen, spec, run=True)
    # parts an earlier invocation finished stay in the report
    others = [n for n in spec["parts"] if n not in chosen]
    parts |= collect(runner, others, spec, run=False)
    earlier = json.loads(Path(args.keep_from).read_text()) if args.keep_from else None
    if earlier is not None:
        parts |= kept_parts(earlier, set(parts))
    parts = {n: parts[n] for n in spec["parts"] if n in parts}
    import pytorch_lightning as pl
    import torch

    results: dict[str, Any] = {
        "schema": SCHEMA,
        "date": dt.date.today().isoformat(),
        "device": device_name(),
        "versions": {
            "torch": torch.__version__,
            "lightning": pl.__version__,
            "python": platform.python_version(),
        },
        "command": shown(
            [sys.executable, "scripts/results.py", *(argv if argv is not None else sys.argv[1:])]
        ).replace(str(root), "<results dir>"),
        "notes": args.note,
        "parts": parts,
    }
    if args.one_class is not None:
        results["one_class"] = runner.one_class(args.one_class)
    elif (root / "mnist" / "one_class" / "one_class.json").is_file() and "one_class:cmd" in runner.timings:
        results["one_class"] = runner.one_class([])
    results["codec"] = codec_study(parts)
    results["generation"] = generation_table(parts)
    results["headline"] = headline_rows(parts, load_headlines())
    results["reproducibility"] = reproducibility_table(parts, results["codec"], results["generation"])
    if args.figures_dir:
        results["figures"] = make_figures(results, Path(args.figures_dir), root)
        if (
            earlier is not None
        ):  # an earlier figure not drawn again (its runs are not here) stays, with its caption
            results["figures"] = {
                **{
                    k: v
                    for k, v in earlier.get("figures", {}).items()
                    if (Path(args.figures_dir) / k).is_file()
                },
                **results["figures"],
            }
        results["figures_link"] = os.path.relpath(args.figures_dir, Path(args.out or args.json).parent)
    elif earlier is not None:  # no figures drawn now: the earlier report's stay, each with its caption
        for key in ("figures", "figures_link"):
            if key in earlier:
                results[key] = earlier[key]
    for entry in parts.values():  # machine paths stay out of the report's JSON
        for key in ("ckpt", "train_dir", "eval_dir"):
            if key in entry:
                entry[key] = entry[key].replace(str(root), "<results dir>")
    (root / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    if args.out:
        Path(args.out).write_text(render(results))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
