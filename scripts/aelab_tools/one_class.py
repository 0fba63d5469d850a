#!/usr/bin/env python
"""One-class anomaly detection (the protocol of Ruff et al., "Deep One-Class Classification", ICML 2018): for
each class c of the data, train only on the training images of c (``data.train_classes=[c]``), score every
test image by its reconstruction error (−ELBO too for a VAE), and report the AUROC of "not c".

The trainings run as one Hydra multirun over the data's classes (MNIST's ten digits by default, any labelled
data config with ``data=...``); the table printed at the end has one row per class and the mean. Anchors from
that paper (MNIST, mean AUROC over the ten digits): Deep SVDD 94.8, its conv AE baseline about 89.7 (their
preprocessing: global contrast normalization; aelab uses raw [0, 1] pixels).

::

    python scripts/one_class.py model=conv_ae trainer.max_epochs=10
    python scripts/one_class.py --classes 0 1 2 model=ae trainer=gpu
    python scripts/one_class.py data=digits model=conv_ae trainer.max_epochs=30
    python scripts/one_class.py --trust mypkg model._target_=mypkg.MyAE     # a model of your own package
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

from aelab.checkpoint import load_model
from aelab.errors import ConfigError
from aelab.evaluation.metrics import auroc
from aelab.evaluation.scores import anomaly_scores
from aelab.rundir import RunDir
from aelab.trust import trusted_prefixes
from aelab.utils.config import compose_config, repo_root

REPO = Path(repo_root())  # the checkout (editable install) or the working directory


def score_run(job_dir: Path, device: torch.device, trust: tuple[str, ...] = ()) -> dict[str, float]:
    """AUROC of the best checkpoint of one job: reconstruction error (and −ELBO for a VAE)."""

    run = RunDir(job_dir)
    ckpt = run.best_ckpt or run.last_ckpt
    model, run_cfg, _ = load_model(ckpt, device, trust)
    dm = instantiate(run_cfg.data)
    images, labels = dm.split_tensors("test")
    is_anomaly = ~torch.isin(labels, torch.tensor(list(run_cfg.data.train_classes)))
    scores = anomaly_scores(model, images, 1000, device, seed=0)  # the suite's scores, binarization included
    row = {"auroc": auroc(scores["recon"], is_anomaly)}
    if "elbo" in scores:
        row["auroc_elbo"] = auroc(scores["elbo"], is_anomaly)
    return row


def data_classes(overrides: list[str]) -> list[str]:
    """The class names of the data the overrides train on (composed from ``conf/`` like a training run)."""
    from omegaconf import OmegaConf

    cfg = compose_config("train", [o for o in overrides if o.startswith(("data", "paths"))])

    OmegaConf.update(cfg, "paths.output_dir", ".", force_add=True)
    names = instantiate(cfg.data).class_names
    if names is None:
        raise ConfigError("the one-class protocol needs labelled data: the data config has no classes")
    return names


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--classes", "--digits", nargs="+", type=int, default=None, help="class indices (default: all)"
    )
    p.add_argument("--sweep-dir", default=None, help="Hydra sweep folder (default: logs/one_class/<time>)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--trust", action="append", default=[], help="trust this module prefix's classes (repeatable)"
    )
    p.add_argument("overrides", nargs="*", help="Hydra overrides for every training run")
    args = p.parse_args()

    trust = trusted_prefixes(args.trust)
    names = data_classes(args.overrides)
    classes = args.classes if args.classes is not None else list(range(len(names)))
    sweep_dir = Path(args.sweep_dir or REPO / "logs" / "one_class" / time.strftime("%Y-%m-%d_%H-%M-%S"))
    trust_override = [f"trust=[{','.join(p.rstrip('.') for p in trust)}]"] if trust else []
    cmd = [
        sys.executable, "-m", "aelab.train", "-m",
        f"data.train_classes={','.join(f'[{c}]' for c in classes)}", f"hydra.sweep.dir={sweep_dir}",
        "task_name=one_class", *trust_override, *args.overrides,
    ]  # fmt: skip
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)

    rows = {}
    for job in sorted(p for p in sweep_dir.iterdir() if RunDir(p).finished):
        cfg_text = (job / ".hydra" / "overrides.yaml").read_text()
        c = next(c for c in classes if f"data.train_classes=[{c}]" in cfg_text)
        rows[c] = score_run(job, torch.device(args.device), trust)
    keys = sorted({k for r in rows.values() for k in r})
    print("\nclass  " + "  ".join(f"{k:>10}" for k in keys))
    for c, r in sorted(rows.items()):
        print(f"{c:>5}  " + "  ".join(f"{100 * r[k]:10.1f}" for k in keys) + f"  {names[c]}")
    means = {k: sum(r[k] for r in rows.values()) / len(rows) for k in keys}
    print(" mean  " + "  ".join(f"{100 * means[k]:10.1f}" for k in keys))
    summary = {
        "classes": {str(c): r for c, r in rows.items()},
        "class_names": {str(c): names[c] for c in rows},
        "mean": means,
        "command": " ".join(cmd),
    }
    (sweep_dir / "one_class.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nwritten to {sweep_dir / 'one_class.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
