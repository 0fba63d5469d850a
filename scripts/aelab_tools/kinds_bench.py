"""How fast the data kinds beyond images train and evaluate on this machine (``make bench-kinds``): the figures the
issues of each kind set targets for, measured as a user would run them, written to ``docs/kinds_speed.json`` and
rendered to ``docs/BENCHMARKS_KINDS.md`` from that JSON alone.

Interactions (MovieLens 100K):

- one Mult-VAE epoch: the median of ``train/epoch_time`` (the throughput callback's seconds per training epoch,
  validation excluded) over the epochs after the first of ``aelab-train experiment=recsys_mult_vae`` cut to
  ``--epochs`` epochs;
- the EASE fit: :meth:`aelab.models.EASE.fit_start` on the same data (the Gram matrix, one inverse per λ of the grid,
  the validation choice), timed in this process with the data already read;
- the default evaluation: the wall time of ``aelab-eval ckpt_path=<that Mult-VAE's last.ckpt>`` in a fresh process
  (start-up, test loop and the quick suite).

Series (internal_bleeding):

- one LSTM-AE epoch: the median ``train/epoch_time`` of ``aelab-train data=internal_bleeding model=lstm_ae`` over the
  epochs after the first;
- the default evaluation of that checkpoint, cold (a fresh data root: aeon's detectors run and their scores are
  cached) and warm (the same command again: the detectors' scores come from the cache).

Text (rotten_tomatoes):

- one epoch of each sentence model (``lstm_lm``, ``sentence_vae``, ``text_ae``): the median ``train/epoch_time`` of
  ``aelab-train data=rotten_tomatoes model=<model>`` over the epochs after the first;
- the default evaluation of the sentence VAE's checkpoint (the costliest: its importance-weighted bound), cold.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aelab_tools.eval_timing import run_logged

#: each figure's target (seconds, at most), from the issue that set it
TARGETS = {
    "recsys/mult_vae_epoch_s": 5.0,
    "recsys/ease_fit_s": 5.0,
    "recsys/eval_wall_s": 60.0,
    "series/lstm_ae_epoch_s": 10.0,
    "series/eval_cold_wall_s": 60.0,
    "series/eval_warm_wall_s": 60.0,
}
KINDS = ("recsys", "series", "text")
TEXT_MODELS = ("lstm_lm", "sentence_vae", "text_ae")
TARGETS |= {f"text/{m}_epoch_s": 60.0 for m in TEXT_MODELS} | {"text/eval_wall_s": 90.0}
LABELS = {
    "series/lstm_ae_epoch_s": "one LSTM-AE epoch on internal_bleeding (s)",
    "series/eval_cold_wall_s": "the default aelab-eval of that LSTM-AE, cold process and an empty detector cache (s)",
    "series/eval_warm_wall_s": "the same evaluation again, the detectors' scores cached (s)",
    **{f"text/{m}_epoch_s": f"one {m} epoch on rotten_tomatoes (s)" for m in TEXT_MODELS},
    "text/eval_wall_s": "the default aelab-eval of a sentence_vae checkpoint, cold process (s)",
    "recsys/mult_vae_epoch_s": "one Mult-VAE epoch on movielens_100k (s)",
    "recsys/ease_fit_s": "the EASE fit on movielens_100k, λ grid included (s)",
    "recsys/eval_wall_s": "the default aelab-eval of a Mult-VAE checkpoint, cold process (s)",
}


def shown(cmd: list[str], work: Path) -> str:
    """A command as the report shows it: the console script by name, the scratch folder as ``<tmp>``."""
    return shlex.join([Path(cmd[0]).name, *cmd[1:]]).replace(str(work), "<tmp>")


def recsys(work: Path, epochs: int, data_dir: str) -> dict:
    """The interaction figures and the commands that gave them."""
    bin_dir = Path(sys.executable).parent
    run = work / "mult_vae"
    train_cmd = [str(bin_dir / "aelab-train"), "experiment=recsys_mult_vae", f"trainer.max_epochs={epochs}",
                 "trainer.accelerator=cpu", "logger=csv", "callbacks.progress_bar=null", f"hydra.run.dir={run}",
                 f"paths.data_dir={data_dir}"]  # fmt: skip
    run_logged(train_cmd, work / "train.log")
    times = epoch_times(run)
    eval_cmd = [str(bin_dir / "aelab-eval"), f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "trainer.accelerator=cpu",
                f"hydra.run.dir={work / 'eval'}", f"paths.data_dir={data_dir}"]  # fmt: skip
    eval_s = run_logged(eval_cmd, work / "eval.log")

    from aelab.data import MovieLensDataModule
    from aelab.models import EASE

    dm = MovieLensDataModule(data_dir=data_dir)
    dm.setup()
    model = EASE(num_items=dm.shape[0])
    t0 = time.perf_counter()
    line = model.fit_start(dm)
    ease_s = time.perf_counter() - t0
    return {
        "figures": {
            "recsys/mult_vae_epoch_s": statistics.median(times[1:]),
            "recsys/ease_fit_s": ease_s,
            "recsys/eval_wall_s": eval_s,
        },
        "epoch_times_s": times,
        "ease": line,
        "commands": {
            "recsys/mult_vae_epoch_s": shown(train_cmd, work),
            "recsys/ease_fit_s": "EASE(num_items).fit_start(MovieLensDataModule()) in process",
            "recsys/eval_wall_s": shown(eval_cmd, work),
        },
    }


def epoch_times(run: Path) -> list[float]:
    """The ``train/epoch_time`` values a run's CSV logger wrote."""
    times = []
    for path in run.rglob("metrics.csv"):
        with open(path) as f:
            times += [float(r["train/epoch_time"]) for r in csv.DictReader(f) if r.get("train/epoch_time")]
    if len(times) < 2:
        raise SystemExit(f"{run}: fewer than 2 epoch times were logged (train/epoch_time)")
    return times


def series(work: Path, epochs: int, data_dir: str) -> dict:
    """The series figures and the commands that gave them."""
    bin_dir = Path(sys.executable).parent
    run = work / "lstm_ae"
    train_cmd = [str(bin_dir / "aelab-train"), "data=internal_bleeding", "model=lstm_ae", f"trainer.max_epochs={epochs}",
                 "trainer.accelerator=cpu", "logger=csv", "callbacks.progress_bar=null", f"hydra.run.dir={run}",
                 f"paths.data_dir={data_dir}"]  # fmt: skip
    run_logged(train_cmd, work / "series_train.log")
    times = epoch_times(run)
    cold = work / "cold_data"  # a data root of its own: nothing cached
    eval_cmd = [str(bin_dir / "aelab-eval"), f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "trainer.accelerator=cpu",
                f"hydra.run.dir={work / 'series_eval'}", f"paths.data_dir={cold}"]  # fmt: skip
    cold_s = run_logged(eval_cmd, work / "series_eval_cold.log")
    warm_s = run_logged(eval_cmd, work / "series_eval_warm.log")
    return {
        "figures": {
            "series/lstm_ae_epoch_s": statistics.median(times[1:]),
            "series/eval_cold_wall_s": cold_s,
            "series/eval_warm_wall_s": warm_s,
        },  # fmt: skip
        "epoch_times_s": times,
        "commands": {
            "series/lstm_ae_epoch_s": shown(train_cmd, work),
            "series/eval_cold_wall_s": shown(eval_cmd, work),
            "series/eval_warm_wall_s": shown(eval_cmd, work) + " (again)",
        },  # fmt: skip
    }


def text(work: Path, epochs: int, data_dir: str) -> dict:
    """The text figures and the commands that gave them."""
    bin_dir = Path(sys.executable).parent
    figures, commands, all_times = {}, {}, {}
    for model in TEXT_MODELS:
        run = work / model
        cmd = [str(bin_dir / "aelab-train"), "data=rotten_tomatoes", f"model={model}", f"trainer.max_epochs={epochs}",
               "trainer.accelerator=cpu", "logger=csv", "callbacks.progress_bar=null", f"hydra.run.dir={run}",
               f"paths.data_dir={data_dir}"]  # fmt: skip
        run_logged(cmd, work / f"text_{model}.log")
        times = epoch_times(run)
        all_times[model] = times
        figures[f"text/{model}_epoch_s"] = statistics.median(times[1:])
        commands[f"text/{model}_epoch_s"] = shown(cmd, work)
    eval_cmd = [str(bin_dir / "aelab-eval"), f"ckpt_path={work / 'sentence_vae' / 'checkpoints' / 'last.ckpt'}",
                "trainer.accelerator=cpu", f"hydra.run.dir={work / 'text_eval'}", f"paths.data_dir={data_dir}"]  # fmt: skip
    figures["text/eval_wall_s"] = run_logged(eval_cmd, work / "text_eval.log")
    commands["text/eval_wall_s"] = shown(eval_cmd, work)
    return {"figures": figures, "epoch_times_s": all_times, "commands": commands}


def render(result: dict) -> str:
    """``docs/BENCHMARKS_KINDS.md`` from the JSON alone."""
    lines = [
        "# Speed of the data kinds beyond images",
        "",
        f"Rendered by `python scripts/bench_kinds.py --render docs/kinds_speed.json --out docs/BENCHMARKS_KINDS.md` "
        f"from the JSON that `make bench-kinds` wrote on {result['date']}; device: {result['device']}; "
        f"torch {result['versions']['torch']}, Python {result['versions']['python']}.",
        "",
        *[
            f"> {kind}: measured on {result[kind]['date']}."
            for kind in KINDS
            if result.get(kind, {}).get("date")
        ],
        "",
        "| figure | value | target | met | command |",
        "| --- | --- | --- | --- | --- |",
    ]
    for kind in KINDS:
        part = result.get(kind)
        if not part:
            continue
        for key, value in part["figures"].items():
            goal = TARGETS.get(key)
            met = "" if goal is None else ("yes" if value <= goal else "**no**")
            lines.append(
                f"| {LABELS.get(key, key)} | {value:.2f} | {'' if goal is None else f'≤ {goal:g}'} | {met} | "
                f"`{part['commands'][key]}` |"
            )
    notes = [f"EASE's own line: {result['recsys']['ease']}"] if result.get("recsys", {}).get("ease") else []
    return "\n".join([*lines, *(["", *notes] if notes else [])]) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="bench_kinds", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--json", default="docs/kinds_speed.json", help="where the figures go")
    p.add_argument("--out", default="docs/BENCHMARKS_KINDS.md", help="the Markdown rendered from them")
    p.add_argument(
        "--epochs", type=int, default=6, help="Mult-VAE and LSTM-AE epochs timed (the first is left out)"
    )
    p.add_argument(
        "--text-epochs", type=int, default=2, help="epochs of each sentence model (the first is left out)"
    )
    p.add_argument("--data-dir", default="data", help="the data root")
    p.add_argument("--render", default=None, help="only render this JSON to --out")
    p.add_argument(
        "--kinds",
        nargs="+",
        default=list(KINDS),
        choices=KINDS,
        help="the kinds to measure (the others are kept from --json when it exists)",
    )
    args = p.parse_args(argv)
    if args.render:
        Path(args.out).write_text(render(json.loads(Path(args.render).read_text())))
        return 0
    import torch

    from aelab.utils.device import device_name

    previous = json.loads(Path(args.json).read_text()) if Path(args.json).is_file() else {}
    result = {
        "date": dt.date.today().isoformat(),
        "device": device_name(),
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }
    for kind in KINDS:
        if kind not in args.kinds and kind in previous:
            kept = dict(previous[kind])
            kept.setdefault("date", previous.get("date"))
            result[kind] = kept
    measure = {"recsys": recsys, "series": series, "text": text}
    with tempfile.TemporaryDirectory(prefix="aelab-bench-kinds-") as tmp:
        for kind in args.kinds:
            epochs = args.text_epochs if kind == "text" else args.epochs
            result[kind] = measure[kind](Path(tmp), epochs, args.data_dir) | {"date": result["date"]}
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    Path(args.out).write_text(render(result))
    print(render(result))
    return 0
