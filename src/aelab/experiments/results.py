"""``make results``: train and evaluate the parts of ``conf/results/parts.yaml`` (those of ``--data``), write
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
import operator
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from aelab import CONF_DIR
from aelab.evaluation.ratedistortion import bd_rate, common_range, rate_at
from aelab.rundir import RunDir
from aelab.utils.config import repo_root
from aelab.utils.device import device_name

REPO = Path(repo_root())  # the checkout (editable install) or the working directory
PARTS_FILE = CONF_DIR / "results" / "parts.yaml"
HEADLINES_FILE = CONF_DIR / "results" / "headlines.yaml"
SCHEMA = 2

#: published anchors of the report's tables (the papers they come from are named beside them)
NLL_ANCHORS = [
    ("VAE, 1 stochastic layer, k = 1 (Burda et al. 2016, Table 1)", 86.76),
    ("IWAE, 1 stochastic layer, k = 5 (Burda et al. 2016)", 85.54),
    ("IWAE, 1 stochastic layer, k = 50 (Burda et al. 2016)", 84.78),
    ("IWAE, 2 stochastic layers, k = 50 (Burda et al. 2016)", 82.90),
    ("VAE (pythae benchmark, binarized MNIST)", 89.78),
    ("IWAE (pythae benchmark)", 86.82),
]
ONE_CLASS = {"target": 0.90, "anchor": "Deep SVDD 94.8, CAE ≈ 89.7 (Ruff et al. 2018)"}
CODEC_TARGETS = {"mnist_bd_vs_best": -50.0, "mnist_bytes_at_25db": 12.0, "photos_bd_vs_jpeg": -20.0}


# ---------------------------------------------------------------------------------------------- running
def load_parts(path: Path = PARTS_FILE) -> dict[str, Any]:
    """``{eval_overrides: [...], parts: {name: {train: [...], eval?: bool, group?: str}}}``."""
    return yaml.safe_load(Path(path).read_text())


def load_headlines(path: Path = HEADLINES_FILE) -> dict[str, list[dict[str, Any]]]:
    """``{part: [{label, metric, over?, anchor, values?, vs?, target?}]}`` from ``conf/results/headlines.yaml``."""
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
        return {
            "train_cmd": shown(cmd).replace(str(self.root), "<results dir>"),
            "t_train": self.timings[name],
            "resumed": bool(self.timings.get(f"{name}:resumed")),
            "epochs": trained_epochs(best),
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
        cmd = [sys.executable, "-m", "aelab.experiments.one_class", "--sweep-dir", str(out), *overrides]
        self.timings = self._read()
        if not ((out / "one_class.json").is_file() and "one_class:cmd" in self.timings):
            t = self.run(cmd, self.root / "mnist" / "one_class.log")
            self._record(
                one_class=t, **{"one_class:cmd": shown(cmd).replace(str(self.root), "<results dir>")}
            )
        return {"cmd": self.timings["one_class:cmd"], "t": self.timings["one_class"],
                **json.loads((out / "one_class.json").read_text())}  # fmt: skip


def trained_epochs(ckpt: Path) -> int:
    """``trainer.max_epochs`` of the run that wrote ``ckpt``, from the config stored in the checkpoint."""
    from aelab.checkpoint import load_run_config

    return int(load_run_config(ckpt).trainer.max_epochs)


def best_epoch(ckpt: Path) -> int | None:
    """The epoch (1-based) of a kept ``epoch_NNN.ckpt``; ``None`` for another name."""
    stem = Path(ckpt).stem
    return int(stem[6:]) + 1 if stem.startswith("epoch_") and stem[6:].isdigit() else None


# ---------------------------------------------------------------------------------------------- derived figures
def codec_study(parts: dict[str, dict]) -> dict[str, Any]:
    """The learned codec's λ sweep per data set beside the classical codecs: rate–distortion points, BD-rates
    (``test/codec`` rates are the real files'), the rate at 25 dB, and the targets met or not."""
    out: dict[str, Any] = {}
    for data in sorted(
        {n.split("/")[0] for n, p in parts.items() if p.get("group") == "codec" and "metrics" in p}
    ):
        runs = {
            n: p
            for n, p in parts.items()
            if n.startswith(data + "/") and p.get("group") == "codec" and "metrics" in p
        }
        photos = data == "photo_patches"
        prefix, rate = ("photos/", "bits_per_pixel") if photos else ("", "bytes_per_image")
        codec = sorted(
            (p["metrics"][f"test/codec/{prefix}{rate}"], p["metrics"][f"test/codec/{prefix}psnr"])
            for p in runs.values()
        )
        any_m = next(iter(runs.values()))["metrics"]
        baselines = {}
        for name in ("jpeg", "webp", "avif", "jxl"):
            pts = sorted(
                (v, any_m[k[: -len(rate)] + "psnr"])
                for k, v in any_m.items()
                if k.startswith(f"test/compression/{prefix}{name}_q")
                and k.endswith("_" + rate)
                and k.count("/") == (3 if photos else 2)
                and k[: -len(rate)] + "psnr"
                in any_m  # a point without its PSNR (an old report's) is left out
            )
            if pts:
                baselines[name] = pts
        if not photos:  # JPEG without its header: the entropy-coded payload alone
            baselines["jpeg_payload"] = sorted(
                (v, any_m[k.replace("_payload_bytes_per_image", "_psnr")])
                for k, v in any_m.items()
                if k.startswith("test/compression/jpeg_q") and k.endswith("_payload_bytes_per_image")
            )
        bd = {name: bd_rate(pts, codec) for name, pts in baselines.items()}
        entry = {
            "rate": rate,
            "codec": codec,
            "lambdas": {n: float(n.split("_l")[-1]) for n in runs},
            "baselines": baselines,
            "bd_rate": bd,
            "common_range": common_range(codec, *baselines.values()) if baselines else None,
            "speed": {
                n: {
                    k: runs[n]["metrics"][f"test/codec/{prefix}{k}_images_per_s"]
                    for k in ("encode", "decode")
                }
                for n in runs
            },
        }
        if photos:
            entry["target"] = {"what": "BD-rate vs JPEG (held-out photos)", "value": bd.get("jpeg"), "op": "<=",
                               "goal": CODEC_TARGETS["photos_bd_vs_jpeg"]}  # fmt: skip
        else:
            classical = {
                k: v for k, v in bd.items() if k in ("jpeg", "webp", "avif", "jxl") and v is not None
            }
            best = (
                max(classical, key=classical.get) if classical else None
            )  # the best classical: the smallest saving
            entry["best_classical"] = best
            entry["bytes_at_25db"] = rate_at(codec, 25.0)
            entry["target"] = {"what": f"BD-rate vs the best classical codec ({CLASSICAL_NAMES.get(best, best)})",
                               "value": classical.get(best), "op": "<=", "goal": CODEC_TARGETS["mnist_bd_vs_best"]}  # fmt: skip
            entry["target_25db"] = {"what": "bytes/image at 25 dB (headers counted)", "value": entry["bytes_at_25db"],
                                    "op": "<=", "goal": CODEC_TARGETS["mnist_bytes_at_25db"]}  # fmt: skip
        out[data] = entry
    return out


CLASSICAL_NAMES = {
    "jpeg": "JPEG",
    "webp": "WebP",
    "avif": "AVIF",
    "jxl": "JPEG XL",
    "jpeg_payload": "JPEG without header",
}


def generation_table(parts: dict[str, dict]) -> dict[str, Any]:
    """Fréchet distance per MNIST model and sampler, with the floor; the best of all and which."""
    rows, floor = {}, None
    for name, p in parts.items():
        m = p.get("metrics") or {}
        if not name.startswith("mnist/") or p.get("group") == "codec":
            continue
        fids = {k.rsplit("fid_", 1)[1]: v for k, v in m.items() if k.startswith("test/generation/fid_") and
                k.rsplit("fid_", 1)[1] in ("prior", "gaussian", "gmm", "categorical")}  # fmt: skip
        if fids:
            rows[name.split("/", 1)[1]] = fids
            floor = m.get("test/generation/fid_train_vs_test", floor)
    best = min(((v, model, s) for model, f in rows.items() for s, v in f.items()), default=None)
    return {
        "rows": rows,
        "floor": floor,
        "best": None if best is None else {"value": best[0], "model": best[1], "sampler": best[2]},
    }


_OPS = {"<": operator.lt, "<=": operator.le, ">=": operator.ge, ">": operator.gt}


def verdict(value: float | None, op: str, goal: float) -> bool | None:
    """Whether ``value op goal`` holds (``None`` when there is no value).

    Raises:
        ValueError: for an operator other than ``<``, ``<=``, ``>=``, ``>``.
    """
    if op not in _OPS:
        raise ValueError(f"unknown target operator {op!r}; use one of {sorted(_OPS)}")
    return None if value is None else bool(_OPS[op](value, goal))


def headline_rows(parts: dict[str, dict], headlines: dict[str, list]) -> list[dict[str, Any]]:
    """The headline table's rows: value, anchor and verdict of every entry whose part was evaluated."""
    rows = []
    for part, entries in headlines.items():
        m = (parts.get(part) or {}).get("metrics")
        if m is None:
            continue
        for e in entries:
            v = m.get(e["metric"])
            if v is not None and "over" in e:
                d = m.get(e["over"])
                v = v / d if d else None
            values = {k: m.get(key) for k, key in (e.get("values") or {}).items()}
            anchor = (
                e["anchor"].format(**values)
                if all(isinstance(x, int | float) for x in values.values())
                else e["anchor"]
            )
            t = e.get("target")
            goal = None
            if t is not None:
                goal = t["value"]
                if goal == "vs":
                    goal = ((parts.get(e["vs"]["part"]) or {}).get("metrics") or {}).get(e["vs"]["metric"])
                    anchor += f" {goal:.4g}" if goal is not None else " (not run)"
            rows.append({
                "part": part, "label": e["label"], "value": v, "ratio": "over" in e, "anchor": anchor,
                "op": None if t is None else t["op"], "goal": goal,
                "met": None if t is None or goal is None else verdict(v, t["op"], goal),
            })  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------------------- figures
def make_figures(results: dict[str, Any], out_dir: Path, root: Path) -> dict[str, str]:
    """Every figure whose inputs exist, into ``out_dir``; returns ``{file name: caption}``."""
    import numpy as np
    import torch

    from aelab.experiments import figures as FIG

    parts = results["parts"]
    device, date = results["device"], results["date"]
    out_dir.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}

    def caption(names: list[str]) -> str:
        runs = "; ".join(
            f"{n}: {parts[n]['epochs']} epochs, train {parts[n]['t_train']:.0f} s"
            + (f", eval {parts[n]['t_eval']:.0f} s" if "t_eval" in parts[n] else "")
            for n in names
        )
        return f"{device}, {date}. {runs}. Commands: docs/RESULTS.md."

    evaluated = {n: p for n, p in parts.items() if "metrics" in p}
    mnist = [n for n in evaluated if n.startswith("mnist/") and parts[n].get("group") != "codec"]
    codecs = results.get("codec", {})
    rd = [n for n in mnist if n.split("/")[1] in ("ae", "conv_ae", "vqvae")]
    if rd:
        cap = caption(rd + [n for n in parts if n.startswith("mnist/codec")])
        FIG.rate_distortion({n.split("/")[1]: parts[n]["metrics"] for n in rd}, out_dir / "rate_distortion.png", cap,
                            codec=codecs.get("mnist", {}).get("codec", ()), title="Rate–distortion on the MNIST test set")  # fmt: skip
        made["rate_distortion.png"] = cap
    if "photo_patches" in codecs:
        c = codecs["photo_patches"]
        curves = {
            "aelab learned codec": c["codec"],
            **{CLASSICAL_NAMES[k]: v for k, v in c["baselines"].items()},
        }
        names = [n for n in parts if n.startswith("photo_patches/codec")]
        FIG.codec_curves(curves, out_dir / "codec_photos.png", "The learned codec on the held-out photographs, whole",
                         caption(names))  # fmt: skip
        made["codec_photos.png"] = caption(names)
    scores = {}
    for n in mnist:
        npz = Path(parts[n]["eval_dir"]) / "anomaly_scores.npz"
        if npz.is_file():
            with np.load(npz, allow_pickle=False) as d:
                scores[f"{n.split('/')[1]} recon. error"] = (d["recon_in"], d["recon_ood"])
                if "elbo_in" in d:
                    scores[f"{n.split('/')[1]} −ELBO"] = (d["elbo_in"], d["elbo_ood"])
    if scores:
        FIG.roc_curves(
            scores, out_dir / "roc_ood.png", caption(mnist), title="Anomaly detection: MNIST vs Fashion-MNIST"
        )
        made["roc_ood.png"] = caption(mnist)
    trained = [n for n in parts if parts[n].get("group") != "codec" and "train_dir" in parts[n]]
    if trained:
        FIG.validation_curves(
            {n: parts[n]["train_dir"] for n in trained}, out_dir / "validation_curves.png", caption(trained)
        )
        made["validation_curves.png"] = caption(trained)
    grids = {}
    table = results.get("generation", {}).get("rows", {})
    for model, fids in table.items():
        for sampler, v in sorted(fids.items(), key=lambda kv: kv[1]):
            png = Path(parts[f"mnist/{model}"]["eval_dir"]) / f"samples_{sampler}.png"
            if png.is_file():
                grids[f"{model}, {sampler}: FID {v:.1f}"] = png
    if grids:
        best = dict(sorted(grids.items(), key=lambda kv: float(kv[0].rsplit(" ", 1)[1]))[:12])
        FIG.sample_grids(
            best,
            out_dir / "samples.png",
            "Samples by model and sampler, lowest Fréchet distance first",
            caption(mnist),
        )
        made["samples.png"] = caption(mnist)
    from hydra.utils import instantiate

    from aelab import visuals
    from aelab.checkpoint import load_model

    def model_and_data(n):
        model, cfg, _ = load_model(parts[n]["ckpt"])
        return model, instantiate(cfg.data)

    if "mnist/dae" in evaluated:
        model, dm = model_and_data("mnist/dae")
        x, _ = dm.sample_images(10, "test")
        clean, noisy, den = visuals.denoising_strip(model, x)
        FIG.image_rows([("clean", clean), ("noisy σ=0.5", noisy.clamp(0, 1)), ("DAE", den)], out_dir / "denoising.png",
                       "Denoising (the DAE's own corruption, seeded)", caption(["mnist/dae"]))  # fmt: skip
        made["denoising.png"] = caption(["mnist/dae"])
    for n in [n for n in ("mnist/conv_vae", "mnist/vae") if n in evaluated][:1]:
        model, dm = model_and_data(n)
        x, _ = dm.sample_images(6, "test")
        rows = [("prior samples", visuals.prior_samples(model, 12)),
                *[(f"interpolation {i + 1}", visuals.interpolation(model, x[2 * i], x[2 * i + 1], 10)) for i in range(3)]]  # fmt: skip
        FIG.image_rows(
            rows,
            out_dir / "vae_samples.png",
            f"{n.split('/')[1]}: prior samples and latent interpolations",
            caption([n]),
        )
        made["vae_samples.png"] = caption([n])
    for n in ("digits/conv_ae", "photo_patches/conv_ae"):
        if n in evaluated:
            model, dm = model_and_data(n)
            x, _ = dm.sample_images(12, "test")
            with torch.no_grad():
                rows = [("test images", x), ("ConvAE", model.reconstruct(x))]
            name = f"reconstructions_{n.split('/')[0]}.png"
            FIG.image_rows(
                rows,
                out_dir / name,
                f"{n.split('/')[0]}: test images and their reconstructions",
                caption([n]),
            )
            made[name] = caption([n])
    if "mnist/latent2d" in parts:
        from aelab.evaluation.metrics import map_batches

        model, dm = model_and_data("mnist/latent2d")
        images, labels = dm.split_tensors("test")
        codes = map_batches(model.encode, images, 1000, "cpu")
        FIG.latent_map(codes, labels, out_dir / "latent_map.png", caption(["mnist/latent2d"]), dm.class_names)
        made["latent_map.png"] = caption(["mnist/latent2d"])
    oc = results.get("one_class")
    if oc:
        text = f"{device}, {date}. One-class sweep: {oc['t']:.0f} s; `{oc['cmd']}`."
        FIG.one_class_bars(
            {int(c): r["auroc"] for c, r in oc["classes"].items()}, out_dir / "one_class.png", text
        )
        made["one_class.png"] = text
    return made


# ---------------------------------------------------------------------------------------------- the report
def _num(v: float | None, fmt: str = ".4g") -> str:
    return "n/a" if v is None else format(v, fmt)


def render(results: dict[str, Any]) -> str:
    """The Markdown report of a results JSON (nothing else is read; figures are linked at ``figures_link``)."""
    figures_link = results.get("figures_link", "figures")
    parts = results["parts"]
    lines = [
        "# Results",
        "",
        f"Rendered by `python scripts/results.py --render docs/results.json --out docs/RESULTS.md` from the JSON that "
        f"`make results` (`scripts/results.py`) wrote on {results['date']}; device: {results['device']}; "
        f"torch {results['versions']['torch']}, pytorch-lightning {results['versions']['lightning']}, Python "
        f"{results['versions']['python']}. Every number below is read from that JSON: the `metrics.json` of the runs "
        "listed under *Runs*, with their commands and wall times.",
        "",
    ]
    for note in results.get("notes", []):
        lines += [f"> {note}", ""]
    rows = results["headline"]
    met = [r for r in rows if r["met"] is True]
    missed = [r for r in rows if r["met"] is False]
    lines += ["## What was met and what was not", ""]
    for r in missed:
        lines.append(
            f"- **Missed:** {r['label']}: {_num(r['value'])} against the target {r['op']} {_num(r['goal'])}."
        )
    for key in ("codec",):
        for data, c in results.get(key, {}).items():
            for t in (c.get("target"), c.get("target_25db")):
                if t is None:
                    continue
                ok = verdict(t["value"], t["op"], t["goal"])
                word = "Met" if ok else ("**Missed**" if ok is False else "Not measured")
                unit = "%" if "BD" in t["what"] else ""
                if t["value"] is None and "BD" in t["what"] and c.get("codec"):
                    lines.append(
                        f"- **Missed** ({data}): {t['what']}: none — the learned codec's curve and the anchor's share "
                        f"no PSNR range (or have under 4 points), target {t['op']} {t['goal']}{unit}."
                    )
                    continue
                lines.append(
                    f"- {word} ({data}): {t['what']} = {_num(t['value'], '.3g')}{unit}, target {t['op']} {t['goal']}{unit}."
                )
    g = results.get("generation", {})
    if g.get("best"):
        b = g["best"]
        ok = b["value"] <= 10
        lines.append(f"- {'Met' if ok else '**Missed**'}: the best Fréchet distance of any model and sampler is "
                     f"{b['value']:.3g} ({b['model']}, {b['sampler']}), target ≤ 10; the floor (training vs test images) is {_num(g['floor'], '.3g')}.")  # fmt: skip
    lines.append(f"- Met: {len(met)} of the {len(met) + len(missed)} headline targets below.")
    lines += [
        "",
        "## Headline",
        "",
        "| part | figure | value | anchor | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        value = "n/a" if r["value"] is None else (f"{r['value']:.4g}×" if r["ratio"] else f"{r['value']:.4g}")
        target = "" if r["op"] is None else f"{r['op']} {_num(r['goal'])}"
        ok = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        lines.append(f"| {r['part']} | {r['label']} | {value} | {r['anchor']} | {target} | {ok} |")
    oc = results.get("one_class")
    if oc:
        mean = oc["mean"]["auroc"]
        lines.append(f"| mnist/one_class | one-class mean AUROC ({len(oc['classes'])} digits) | {100 * mean:.1f} | {ONE_CLASS['anchor']} | "
                     f">= {100 * ONE_CLASS['target']:.0f} | {'yes' if mean >= ONE_CLASS['target'] else '**no**'} |")  # fmt: skip
    lines += [
        "",
        "## Runs: epochs, wall times, commands",
        "",
        "| part | epochs (best) | train | eval |",
        "| --- | --- | --- | --- |",
    ]
    for n, p in parts.items():
        if "t_train" not in p:
            continue
        best = "" if p.get("best_epoch") is None else f" ({p['best_epoch']})"
        resumed = " (finishing attempt of a resumed run)" if p.get("resumed") else ""
        ev = f"{p['t_eval']:.0f} s" if "t_eval" in p else "—"
        lines.append(f"| {n} | {p['epochs']}{best} | {p['t_train']:.0f} s{resumed} | {ev} |")
    lines.append("")
    for n, p in parts.items():
        if "train_cmd" in p:
            lines.append(f"- {n}: `{p['train_cmd']}`" + (f"; `{p['eval_cmd']}`" if "eval_cmd" in p else ""))
    if oc:
        lines.append(f"- mnist/one_class ({oc['t']:.0f} s): `{oc['cmd']}`")
    if g.get("rows"):
        samplers = ["prior", "gaussian", "gmm", "categorical"]
        lines += ["", "## Generation: Fréchet distance by model and sampler (MNIST test set)", "",
                  f"On the 128-d features of aelab's MNIST classifier (Heusel et al. 2017, eq. 6); 10,000 generated images "
                  f"against the test images. Floor (training vs test images): {_num(g['floor'], '.3g')}. Lower is better.",
                  "", "| model | " + " | ".join(samplers) + " |", "| --- |" + " --- |" * len(samplers)]  # fmt: skip
        for model, f in g["rows"].items():
            lines.append(
                f"| {model} | "
                + " | ".join(_num(f.get(s), ".1f") if s in f else "—" for s in samplers)
                + " |"
            )
    nll = {n.split("/")[1]: p["metrics"]["test/likelihood/nll_iwae"] for n, p in parts.items()
           if n.startswith("mnist/") and "test/likelihood/nll_iwae" in p.get("metrics", {})}  # fmt: skip
    if nll:
        lines += [
            "",
            "## Test NLL (nats, binarized MNIST, IWAE bound)",
            "",
            "| model | NLL | −ELBO | k | images | time (s) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for model, v in nll.items():
            m = parts[f"mnist/{model}"]["metrics"]
            took = _num(m.get("test/timing/likelihood_s"), ".0f")
            lines.append(
                f"| aelab {model} | {v:.2f} | {m['test/likelihood/nelbo']:.2f} | {m['test/likelihood/k']:.0f} | {m['test/likelihood/num_images']:.0f} | {took} |"
            )
        lines += [f"| {label} | {value} | | | | |" for label, value in NLL_ANCHORS]
    for data, c in results.get("codec", {}).items():
        unit = "bits/pixel" if c["rate"] == "bits_per_pixel" else "bytes/image"
        where = (
            "the three held-out photographs, whole"
            if data == "photo_patches"
            else "the first 2,000 test images for the classical codecs, all 10,000 for the learned codec"
        )
        lines += ["", f"## The learned codec on {data}", "",
                  f"Real files ({unit}, headers counted) against PSNR; {where}. BD-rate (Bjøntegaard 2001) of the learned codec "
                  "against each classical codec over their common PSNR range: negative = fewer bits at equal PSNR.", "",
                  f"| λ | {unit} | PSNR (dB) | encode images/s | decode images/s |", "| --- | --- | --- | --- | --- |"]  # fmt: skip
        for n, lam in sorted(c["lambdas"].items(), key=lambda kv: kv[1]):
            m = parts[n]["metrics"]
            pre = "photos/" if data == "photo_patches" else ""
            rate_key, psnr_key = f"test/codec/{pre}{c['rate']}", f"test/codec/{pre}psnr"
            lines.append(f"| {lam:g} | {m[rate_key]:.4g} | {m[psnr_key]:.2f} | "
                         f"{c['speed'][n]['encode']:.0f} | {c['speed'][n]['decode']:.0f} |")  # fmt: skip
        lines += ["", "| against | BD-rate |", "| --- | --- |"]
        lines += [f"| {CLASSICAL_NAMES.get(k, k)} | {_num(v, '.1f')}% |" for k, v in c["bd_rate"].items()]
        if c.get("bytes_at_25db") is not None:
            lines += [
                "",
                f"At 25 dB the learned codec needs {c['bytes_at_25db']:.2f} bytes per image (interpolated between its λ points).",
            ]
    others = [
        n
        for n, p in parts.items()
        if "metrics" in p and not n.startswith("mnist/") and p.get("group") != "codec"
    ]
    if others:
        lines += ["", "## Other data: 8×8 digits and photo patches", "",
                  "| part | test MSE | PSNR (dB) | mean image MSE | PCA (same size) MSE | JPEG q50 B/image, PSNR | WebP q50 B/image, PSNR | 8-bit code B/image, PSNR |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for n in others:
            m = parts[n]["metrics"]

            def pair(prefix, m=m):
                b, p = (
                    m.get(f"test/compression/{prefix}_bytes_per_image"),
                    m.get(f"test/compression/{prefix}_psnr"),
                )
                return "—" if b is None else f"{b:.1f}, {p:.2f}"

            lines.append(f"| {n} | {m['test/mse']:.5f} | {m['test/psnr']:.2f} | {_num(m.get('test/baseline/mean_image_mse'), '.5f')} | "
                         f"{_num(m.get('test/compression/pca_mse'), '.5f')} | {pair('jpeg_q50')} | {pair('webp_q50')} | {pair('ae_uint8')} |")  # fmt: skip
    figures = results.get("figures", {})
    if figures:
        lines += ["", "## Figures", ""]
        for name, text in figures.items():
            lines += [f"![{name}]({figures_link}/{name})", "", f"*{text}*", ""]
    if oc:
        lines += ["## One-class AUROC per digit", "", "| digit | AUROC (%) |", "| --- | --- |"]
        lines += [f"| {c} | {100 * r['auroc']:.1f} |" for c, r in oc["classes"].items()]
        lines.append("")
    lines += ["## Every figure", ""]
    for n, p in parts.items():
        m = p.get("metrics") or p.get("train_metrics") or {}
        lines += [
            f"<details><summary>{n} ({len(m)} figures)</summary>",
            "",
            "| key | value |",
            "| --- | --- |",
        ]
        lines += [f"| `{k}` | {v:.6g} |" for k, v in sorted(m.items()) if isinstance(v, int | float)]
        lines += ["", "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"


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


def collect(runner: Runner, names: list[str], spec: dict[str, Any], run: bool) -> dict[str, dict]:
    """Train and evaluate the named parts (``run``), or read what an earlier invocation left in the folder."""
    parts: dict[str, dict] = {}
    for i, name in enumerate(names, 1):
        p = spec["parts"][name]
        print(f"[{i}/{len(names)}] {name}", flush=True)
        if not run and not runner.finished(name, evaluated=p.get("eval", True)):
            continue  # read only what an earlier invocation finished; never start anything here
        entry = {"group": p.get("group"), **runner.train(name, list(p["train"]))}
        if p.get("eval", True):
            entry |= runner.evaluate(name, entry["ckpt"], list(p.get("eval_overrides", [])))
        parts[name] = entry
    return parts


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
        "--parts-file", default=str(PARTS_FILE), help="the parts to run (default: conf/results/parts.yaml)"
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
    if args.figures_dir:
        results["figures"] = make_figures(results, Path(args.figures_dir), root)
        results["figures_link"] = os.path.relpath(args.figures_dir, Path(args.out or args.json).parent)
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
