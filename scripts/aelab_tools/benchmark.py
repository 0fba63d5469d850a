"""``make bench``: seconds per training epoch, a plain PyTorch loop against aelab's Trainer, and the side studies
that chose the defaults — each written to a JSON by the run that measured it, the Markdown rendered from them.

Speed (``--study speed``, the default) times, for each model at one batch size:

``plain``: the fp32 eager loop users would write — the same model (a plain ``nn.Module``) and its loss, the same
    optimizer, the data as a uint8 tensor resident on the device, a fresh permutation per epoch. The reference;
    unchanged whatever aelab's defaults are.
``plain-same-precision``: the same loop at aelab's chosen settings for this device (bf16 autocast where
    ``trainer.precision`` resolves to ``bf16-mixed``, channels-last conv weights where the ``channels_last``
    callback is on and the model has convolutions).
``lightning``: the least a LightningModule does — ``training_step`` returns the model's loss (no metrics, no
    logging), without aelab's divergence guard and RNG-state callbacks — under the same Trainer settings, speed
    callbacks (channels-last, compile), logger and data as ``aelab``: what Lightning's own loop costs, apart from
    aelab's module.
``aelab``: aelab's default path: LightningModule + Trainer on the resident data, default precision and memory
    format, the default logger (TensorBoard) and logging interval.
``aelab-dataloader``: the same on ``data.resident=false`` (a torch DataLoader).
``*-compile`` (``--compile``): the plain and aelab paths with ``torch.compile``.

The variants run in **interleaved rounds**: one epoch of each per round, in an order that rotates every round, so
a noisy minute lands on all of them; round 1 is warm-up. Each variant's figure is the median of its epochs in
rounds 2..R, each ratio the median of the per-round ratios; a run whose per-round ratios spread by more than 20%
is marked noisy. Validation and checkpointing are off in every variant; a device synchronization ends each epoch.

Side studies (``--study``): ``precision`` (each model's default config trained 3 epochs in fp32 and at the default
precision: test metrics and wall times), ``channels_last`` and ``compile`` (the plain loop with and without, in
interleaved rounds), ``likelihood`` (the IWAE bound of a checkpoint in fp32 and at the run's precision).

::

    python scripts/benchmark.py --models ae conv_ae vae --rounds 6 --json docs/bench_cpu.json
    python scripts/benchmark.py --study precision --json docs/study_precision.json
    python scripts/benchmark.py --render docs/bench_cpu.json --out docs/BENCHMARKS.md

``--render`` writes the report from the given JSON and every ``bench_*.json`` / ``study_*.json`` beside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from aelab.callbacks import ChannelsLast, Compile, DivergenceGuard, RNGState
from aelab.callbacks.performance import has_convolutions
from aelab.checkpoint import load_model
from aelab.evaluation import sections
from aelab.evaluation.context import EvalContext
from aelab.utils.config import CONF_DIR, compose_config
from aelab.utils.device import device_name
from aelab_tools.bench_report import NOISY_SPREAD, load_docs, render
from aelab_tools.eval_timing import eval_study, merge_eval_studies

REPO = CONF_DIR.parent  # the checkout holding conf/
VARIANTS = ("plain", "plain-same-precision", "lightning", "aelab", "aelab-dataloader")


def compose_cfg(
    model: str, batch_size: int, resident: bool, accelerator: str, data_dir: str, extra: list[str]
):
    return compose_config(
        "train",
        [f"model={model}", f"data.batch_size={batch_size}", f"data.resident={str(resident).lower()}",
         f"paths.data_dir={data_dir}", f"trainer.accelerator={accelerator}", *extra],
    )  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def channels_last_default(cfg) -> bool:
    """Whether aelab's default callbacks keep this model's weights channels-last (the callback is on and the model
    has convolutions)."""
    from hydra.utils import instantiate

    return cfg.callbacks.get("channels_last") is not None and has_convolutions(instantiate(cfg.model))


class PlainLoop:
    """The loop without a framework: aelab's model (a plain ``nn.Module``) and its loss, the optimizer, resident uint8
    data; ``precision="bf16-mixed"`` runs forward and loss under bf16 autocast, as Lightning's mixed precision does."""

    def __init__(self, cfg, device: torch.device, precision: str = "32-true", channels_last: bool = False,
                 compile: bool = False, limit_batches: int | None = None) -> None:  # fmt: skip
        from hydra.utils import instantiate

        dm = instantiate(cfg.data)
        self.images = dm.split_tensors("train")[0].to(device)
        self.model = instantiate(cfg.model).to(device)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        if compile:
            for child in self.model.children():
                child.compile()
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
        self.optimizer = instantiate(cfg.optimizer)(params=self.model.parameters())
        self.bs, self.device, self.limit = int(cfg.data.batch_size), device, limit_batches
        self.gen = torch.Generator().manual_seed(0)
        self.model.train()

    def epoch(self) -> float:
        _sync(self.device)
        t0 = time.perf_counter()
        perm = torch.randperm(len(self.images), generator=self.gen).to(self.device)
        for b, i in enumerate(range(0, len(self.images), self.bs)):
            if self.limit is not None and b >= self.limit:
                break
            x = self.images[perm[i : i + self.bs]].float().div_(255.0)
            with self.autocast:
                loss = self.model(x).loss
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        _sync(self.device)
        return time.perf_counter() - t0


def bare_module(cfg):
    """The least LightningModule: the config's model and optimizer, ``training_step`` returning the loss."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    class Bare(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = instantiate(cfg.model)

        def training_step(self, batch, batch_idx):
            return self.net(batch[0]).loss

        def configure_optimizers(self):
            return instantiate(cfg.optimizer)(params=self.parameters())

    return Bare()


class AelabLoop:
    """aelab's module and datamodule under Lightning's Trainer (validation and checkpointing off), one epoch per
    :meth:`epoch` call (``fit`` continues with one more epoch each time); ``bare=True``: :func:`bare_module` in place
    of aelab's module, without aelab's divergence guard and RNG-state callbacks."""

    def __init__(
        self, cfg, log_dir: str, compile: bool = False, limit_batches: int | None = None, bare: bool = False
    ) -> None:
        import pytorch_lightning as pl
        from hydra.utils import instantiate

        from aelab.pipeline import build_module

        self.dm, self.model = instantiate(cfg.data), (bare_module(cfg) if bare else build_module(cfg))
        guards = [] if bare else [DivergenceGuard(), RNGState()]
        speed = [ChannelsLast()] if cfg.callbacks.get("channels_last") is not None else []
        speed += [Compile()] if compile else []
        self.times: list[float] = []
        loop = self

        class EpochTimer(pl.Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                _sync(pl_module.device)
                self.t0 = time.perf_counter()

            def on_train_epoch_end(self, trainer, pl_module):
                _sync(pl_module.device)
                loop.times.append(time.perf_counter() - self.t0)

        logger = pl.loggers.TensorBoardLogger(log_dir, name="", version="", default_hp_metric=False)
        self.trainer = instantiate(
            cfg.trainer, max_epochs=0, min_epochs=0, limit_val_batches=0, num_sanity_val_steps=0,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            default_root_dir=log_dir, logger=logger, callbacks=[*guards, *speed, EpochTimer()],
            **({"limit_train_batches": limit_batches} if limit_batches else {}),
        )  # fmt: skip

    def epoch(self) -> float:
        import warnings

        self.trainer.fit_loop.max_epochs = len(self.times) + 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.trainer.fit(self.model, datamodule=self.dm)
        return self.times[-1]


def make_loop(variant: str, cfg, device: torch.device, log_dir: str, limit_batches: int | None = None):
    """``(settings, loop)`` of one variant (the module docstring's list; ``cfg`` composed for it): ``plain*`` a
    :class:`PlainLoop`, ``lightning`` a bare :class:`AelabLoop`, ``aelab*`` aelab's; ``*-compile`` compiled."""
    same = {"precision": str(cfg.trainer.precision), "channels_last": channels_last_default(cfg)}
    settings = {"precision": "32-true", "channels_last": False} if variant == "plain" else same
    settings["compile"] = compile = variant.endswith("-compile")
    if variant.startswith("plain"):
        loop = PlainLoop(cfg, device, limit_batches=limit_batches, compile=compile,
                         precision=settings["precision"], channels_last=settings["channels_last"])  # fmt: skip
    else:
        loop = AelabLoop(
            cfg, log_dir, compile=compile, limit_batches=limit_batches, bare=variant == "lightning"
        )
    return settings, loop


def speed(args, device: torch.device) -> dict:
    """The interleaved-rounds speed benchmark (see the module docstring)."""
    import pytorch_lightning as pl

    accelerator = "gpu" if device.type == "cuda" else "cpu"
    variants = list(args.variants) + (
        [f"{v}-compile" for v in ("plain-same-precision", "aelab")] if args.compile else []
    )
    out: dict = {"models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            base = [
                *args.extra,
                f"data.num_workers={args.num_workers}",
                f"data.pin_memory={str(device.type == 'cuda').lower()}",
            ]
            loops, settings = {}, {}
            for v in variants:
                cfg = compose_cfg(
                    model,
                    args.batch_size,
                    not v.startswith("aelab-dataloader"),
                    accelerator,
                    args.data_dir,
                    base,
                )
                pl.seed_everything(0, verbose=False)
                settings[v], loops[v] = make_loop(v, cfg, device, f"{tmp}/{model}-{v}", args.limit_batches)
            times = {v: [] for v in variants}
            for r in range(args.rounds):
                order = variants[r % len(variants) :] + variants[: r % len(variants)]
                for v in order:
                    times[v].append(loops[v].epoch())
                print(
                    f"{model} round {r + 1}: " + ", ".join(f"{v} {times[v][-1]:.3f} s" for v in variants),
                    flush=True,
                )
            timed = {v: t[1:] for v, t in times.items()}  # round 1 is warm-up
            rows = {
                v: {
                    "epoch_times": [round(x, 4) for x in times[v]],
                    "median_s": statistics.median(timed[v]),
                    **settings[v],
                }
                for v in variants
            }
            ratios = {}
            for name, (num, den) in RATIOS.items():
                if num in timed and den in timed:
                    per = [a / b for a, b in zip(timed[num], timed[den], strict=True)]
                    med = statistics.median(per)
                    spread = (max(per) - min(per)) / med
                    ratios[name] = {
                        "per_round": [round(p, 4) for p in per],
                        "median": med,
                        "spread": spread,
                        "noisy": spread > NOISY_SPREAD,
                    }
            out["models"][model] = {"variants": rows, "ratios": ratios}
    return out


RATIOS = {
    "plain / aelab": ("plain", "aelab"),
    "aelab / plain-same-precision": ("aelab", "plain-same-precision"),
    "lightning / plain-same-precision": ("lightning", "plain-same-precision"),
    "aelab / lightning": ("aelab", "lightning"),
    "aelab-dataloader / aelab": ("aelab-dataloader", "aelab"),
    "plain-same-precision / plain-same-precision-compile": (
        "plain-same-precision",
        "plain-same-precision-compile",
    ),
    "aelab / aelab-compile": ("aelab", "aelab-compile"),
}


def layout_study(args, device: torch.device, what: str) -> dict:
    """``channels_last`` or ``compile``: the plain loop at the device's precision with and without, in
    interleaved rounds (a compiled loop's first epoch holds its compilation)."""
    import pytorch_lightning as pl

    accelerator = "gpu" if device.type == "cuda" else "cpu"
    model = args.models[0]
    cfg = compose_cfg(model, args.batch_size, True, accelerator, args.data_dir, list(args.extra))
    precision = str(cfg.trainer.precision)
    loops = {}
    for on in (False, True):
        pl.seed_everything(0, verbose=False)
        kw = (
            {"channels_last": on}
            if what == "channels_last"
            else {"compile": on, "channels_last": channels_last_default(cfg)}
        )
        loops[on] = PlainLoop(cfg, device, precision=precision, limit_batches=args.limit_batches, **kw)
    times = {False: [], True: []}
    for r in range(args.rounds):
        for on in (False, True) if r % 2 == 0 else (True, False):
            times[on].append(loops[on].epoch())
    per = [a / b for a, b in zip(times[False][1:], times[True][1:], strict=True)]
    return {"model": model, "precision": precision, "off": times[False], "on": times[True],
            "median_off": statistics.median(times[False][1:]), "median_on": statistics.median(times[True][1:]),
            "off_over_on": {"per_round": per, "median": statistics.median(per)}}  # fmt: skip


def precision_study(args, device: torch.device) -> dict:
    """Each model's default config, 3 epochs on the data, in fp32 and at the device's default precision."""
    rows = []
    for model in args.models:
        for precision in ("32-true", None):
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, "-m", "aelab.train", f"model={model}", f"trainer.max_epochs={args.epochs}", "callbacks=minimal",
                       "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp}", f"paths.data_dir={args.data_dir}",
                       *(["trainer.precision=32-true"] if precision else []), *args.extra]  # fmt: skip
                t0 = time.perf_counter()
                subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
                metrics = json.loads((Path(tmp) / "metrics.json").read_text())
                rows.append({"model": model, "precision": precision or "default", "wall_s": time.perf_counter() - t0, "metrics": metrics,
                             "command": "python -m aelab.train " + " ".join(c for c in cmd[3:] if not c.startswith(("hydra.run", "paths.")))})  # fmt: skip
                print(rows[-1]["model"], rows[-1]["precision"], f"{rows[-1]['wall_s']:.1f} s", flush=True)
    return {"rows": rows}


def likelihood_study(args, device: torch.device) -> dict:
    """The IWAE bound (k = ``--k``) of the first ``--images`` test images of a checkpoint, in fp32 and in bf16
    (the decoder at bf16, the log-sum-exp in float64), on the same samples."""
    from hydra.utils import instantiate

    model, cfg, _ = load_model(args.ckpt, device)
    if channels_last_default(cfg):
        model.to(memory_format=torch.channels_last)
    dm = instantiate(cfg.data)
    out = {
        "ckpt": str(args.ckpt).replace(str(REPO) + "/", ""),
        "k": args.k,
        "images": args.images,
        "rows": {},
    }
    for precision in ("32-true", "bf16-mixed"):
        ctx = EvalContext(model, dm, tempfile.mkdtemp(), device, 1000, precision=precision)
        t0 = time.perf_counter()
        r = sections.likelihood(ctx, k=args.k, num_images=args.images, precision="auto")
        out["rows"][precision] = {"nll": r["test/likelihood/nll_iwae"], "seconds": time.perf_counter() - t0}
        print(precision, out["rows"][precision], flush=True)
    out["difference_nats"] = out["rows"]["bf16-mixed"]["nll"] - out["rows"]["32-true"]["nll"]
    out["speedup"] = out["rows"]["32-true"]["seconds"] / out["rows"]["bf16-mixed"]["seconds"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--study",
        choices=["speed", "precision", "channels_last", "compile", "likelihood", "eval"],
        default="speed",
    )
    p.add_argument("--models", nargs="+", default=["ae", "conv_ae", "vae"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--rounds", type=int, default=6, help="interleaved rounds (round 1 is warm-up)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per run of the precision and eval studies")
    p.add_argument("--limit-batches", type=int, default=None, help="batches per timed epoch (default: all)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers of aelab-dataloader")
    p.add_argument("--data-dir", default=os.environ.get("DATA_DIR", str(REPO / "data")))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--compile", action="store_true", help="also time the compiled plain and aelab paths")
    p.add_argument("--ckpt", default=None, help="the checkpoint of --study likelihood")
    p.add_argument("--k", type=int, default=1000, help="importance samples of --study likelihood")
    p.add_argument("--images", type=int, default=500, help="test images of --study likelihood")
    p.add_argument("--extra", nargs="*", default=[], help="Hydra overrides for every run")
    p.add_argument("--json", default=None, help="write the measurement here")
    p.add_argument(
        "--update",
        action="store_true",
        help="--study eval: re-measure --models into the existing --json, keep the rest",
    )
    p.add_argument("--out", default=None, help="render the report here (with --json or --render)")
    p.add_argument(
        "--render", default=None, help="render this JSON (and those beside it) to --out, nothing else"
    )
    args = p.parse_args(argv)

    if args.render:
        text = render(load_docs(Path(args.render)))
        Path(args.out or REPO / "docs" / "BENCHMARKS.md").write_text(text)
        return 0
    if args.rounds < 2:
        p.error("--rounds must be >= 2 (round 1 is warm-up)")
    device = torch.device(
        args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    torch.set_float32_matmul_precision("high")
    import pytorch_lightning as pl

    import aelab

    study = {
        "speed": speed,
        "precision": precision_study,
        "likelihood": likelihood_study,
        "eval": eval_study,
    }.get(args.study)
    result = study(args, device) if study else layout_study(args, device, args.study)
    raw = " ".join(argv if argv is not None else sys.argv[1:]).replace(args.data_dir, "<data dir>")
    result |= {
        "kind": args.study, "device": device_name(device), "date": dt.date.today().isoformat(),
        "command": f"python scripts/benchmark.py {raw}".strip(), "batch_size": args.batch_size, "rounds": args.rounds,
        "versions": {"aelab": aelab.__version__, "torch": torch.__version__, "lightning": pl.__version__},
    }  # fmt: skip
    if args.json and args.update and args.study == "eval" and Path(args.json).is_file():
        result = merge_eval_studies(json.loads(Path(args.json).read_text()), result)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
        if args.out:
            Path(args.out).write_text(render(load_docs(Path(args.json))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
