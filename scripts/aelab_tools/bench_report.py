"""``docs/BENCHMARKS.md`` rendered from the benchmark and study JSONs alone (``scripts/benchmark.py --render``)."""

from __future__ import annotations

import json
from pathlib import Path

from aelab_tools.eval_timing import render_eval_study

NOISY_SPREAD = 0.20  # per-round ratios that spread by more than this mark a run noisy


def _speed_section(d: dict) -> list[str]:
    lines = [f"## Speed: {d['device']}", "",
             f"{d['date']} · `{d['command']}` · batch {d['batch_size']} · {d['rounds']} interleaved rounds (round 1 warm-up) · "
             f"aelab {d['versions']['aelab']}, torch {d['versions']['torch']}, pytorch-lightning {d['versions']['lightning']} · "
             f"JSON: [{d['file']}]({d['file']}).", "",
             "| model | variant | precision | channels-last | compile | median s/epoch | epochs (s) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for model, m in d["models"].items():
        for v, r in m["variants"].items():
            lines.append(f"| {model} | {v} | {r['precision']} | {'yes' if r['channels_last'] else 'no'} | {'yes' if r['compile'] else 'no'} | "
                         f"{r['median_s']:.3f} | {', '.join(f'{t:.3f}' for t in r['epoch_times'])} |")  # fmt: skip
    lines += [
        "",
        "| model | ratio | median of the per-round ratios | per round | spread |",
        "| --- | --- | --- | --- | --- |",
    ]
    for model, m in d["models"].items():
        for name, r in m["ratios"].items():
            noisy = " **noisy**" if r["noisy"] else ""
            lines.append(
                f"| {model} | {name} | {r['median']:.3f}× | {', '.join(f'{p:.3f}' for p in r['per_round'])} | {100 * r['spread']:.0f}%{noisy} |"
            )
    return lines + [""]


def render(docs: list[dict]) -> str:
    """The Markdown report of benchmark and study JSONs (nothing else is read)."""
    lines = [
        "# Benchmarks",
        "",
        "Rendered by `python scripts/benchmark.py --render docs/bench_cpu.json --out docs/BENCHMARKS.md` from the JSON files "
        "below, each written by the run that measured it (its command, device and date stand beside its table). "
        "`plain` is the fp32 loop users would write (aelab's parts and loss, resident data); `plain-same-precision` that "
        "loop at aelab's settings for the device; `lightning` the least LightningModule (its `training_step` returns the "
        "loss) on the same Trainer, logger and data; `aelab` the default Trainer path; `aelab-dataloader` the same on a torch "
        "DataLoader. `plain / aelab` is aelab's speed-up over the plain fp32 loop, `aelab / plain-same-precision` what the "
        "framework costs at equal settings; `lightning / plain-same-precision` what Lightning's own loop costs and "
        "`aelab / lightning` what aelab's module and divergence guard add to it (per round the two multiply to the "
        f"first; their medians need not). A ratio whose per-round values spread by more than {100 * NOISY_SPREAD:.0f}% is marked noisy.",
        "",
    ]
    for d in docs:
        kind = d["kind"]
        if kind == "speed":
            lines += _speed_section(d)
        elif kind == "precision":
            lines += [f"## Quality at the chosen precision: {d['device']}", "", f"{d['date']} · `{d['command']}` · JSON: [{d['file']}]({d['file']}).", "",
                      "| model | precision | test MSE | test −ELBO (nats) | wall time (s) | command |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
            for r in d["rows"]:
                elbo = r["metrics"].get("test/elbo")
                lines.append(f"| {r['model']} | {r['precision']} | {r['metrics']['test/mse']:.5f} | {'—' if elbo is None else f'{elbo:.2f}'} | "
                             f"{r['wall_s']:.1f} | `{r['command']}` |")  # fmt: skip
            lines.append("")
        elif kind in ("channels_last", "compile"):
            lines += [f"## {'Channels-last conv weights' if kind == 'channels_last' else 'torch.compile'}: {d['device']}", "",
                      f"{d['date']} · `{d['command']}` · JSON: [{d['file']}]({d['file']}). The plain loop of {d['model']} at "
                      f"{d['precision']}, without and with, in interleaved rounds (round 1 warm-up; a compiled loop compiles there).", "",
                      "| | median s/epoch | epochs (s) |", "| --- | --- | --- |",
                      f"| without | {d['median_off']:.3f} | {', '.join(f'{t:.3f}' for t in d['off'])} |",
                      f"| with | {d['median_on']:.3f} | {', '.join(f'{t:.3f}' for t in d['on'])} |", "",
                      f"Without / with: {d['off_over_on']['median']:.3f}× (median of the per-round ratios "
                      f"{', '.join(f'{p:.3f}' for p in d['off_over_on']['per_round'])}).", ""]  # fmt: skip
        elif kind == "eval":
            lines += render_eval_study(d)
        elif kind == "likelihood":
            r = d["rows"]
            lines += [f"## The likelihood section's precision: {d['device']}", "",
                      f"{d['date']} · `{d['command']}` · JSON: [{d['file']}]({d['file']}). IWAE bound, k = {d['k']}, the first "
                      f"{d['images']} test images of `{d['ckpt']}`, the same importance samples in both.", "",
                      "| decoder precision | NLL (nats) | seconds |", "| --- | --- | --- |",
                      f"| fp32 | {r['32-true']['nll']:.4f} | {r['32-true']['seconds']:.1f} |",
                      f"| bf16 (log-sum-exp in float64) | {r['bf16-mixed']['nll']:.4f} | {r['bf16-mixed']['seconds']:.1f} |", "",
                      f"bf16 − fp32: {d['difference_nats']:+.4f} nats, {d['speedup']:.2f}× faster.", ""]  # fmt: skip
    return "\n".join(lines).rstrip() + "\n"


def load_docs(path: Path) -> list[dict]:
    """The JSON at ``path`` and every ``bench_*.json`` / ``study_*.json`` beside it, speed first."""
    files = sorted({path, *path.parent.glob("bench_*.json"), *path.parent.glob("study_*.json")},
                   key=lambda p: (not p.name.startswith("bench_"), p.name))  # fmt: skip
    docs = []
    for f in files:
        d = json.loads(f.read_text())
        d["file"] = f.name
        docs.append(d)
    return docs
