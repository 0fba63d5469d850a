#!/usr/bin/env python
"""Seconds per training epoch: a plain PyTorch loop vs aelab's Trainer, in one process on one device.

For each model (AE, ConvAE, VAE by default) at one batch size:

``plain``: the fp32 eager loop users would write — the same encoder/decoder modules (built from aelab's
    configs), the same optimizer, the data as a uint8 tensor resident on the device, a fresh permutation per
    epoch. The reference; unchanged whatever aelab's defaults are.
``plain-same-precision``: the same loop at aelab's chosen settings for this device (bf16 autocast when
    ``trainer.precision`` resolves to ``bf16-mixed``, channels-last conv weights when ``model.channels_last``).
``aelab``: aelab's default path: LightningModule + Trainer on the resident data, default precision and
    memory format, the default logger (TensorBoard) and logging interval.
``aelab-dataloader``: the same on ``data.resident=false`` (torch DataLoader with workers).

Only training epochs are timed (validation and checkpointing are off in every variant) with a device
synchronization at each epoch's end; the figure is the median of epochs 2..N (epoch 1 holds warm-up).
Peak memory is the GPU's peak allocation on CUDA, the process's peak RSS on the CPU (cumulative).

Usage::

    python scripts/benchmark.py                      # CPU, or GPU when present; writes docs/BENCHMARKS.md
    python scripts/benchmark.py --epochs 6 --models ae conv_ae --device cuda --json bench.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

import aelab
from aelab import CONF_DIR
from aelab.models.vae import gaussian_kl

REPO = CONF_DIR.parent  # the checkout holding conf/


def compose_cfg(
    model: str, batch_size: int, resident: bool, accelerator: str, data_dir: str, extra: list[str]
):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                f"model={model}",
                f"data.batch_size={batch_size}",
                f"data.resident={str(resident).lower()}",
                f"paths.data_dir={data_dir}",
                f"trainer.accelerator={accelerator}",
                *extra,
            ],
        )
    return cfg


class EpochTimer(pl.Callback):
    """Wall time of every training epoch, with a device sync at its end."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._t0 = 0.0

    def _sync(self, pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._sync(pl_module)
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._sync(pl_module)
        self.times.append(time.perf_counter() - self._t0)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def plain_loop(
    cfg, device: torch.device, epochs: int, precision: str = "32-true", channels_last: bool = False
) -> list[float]:
    """The loop without a framework: same parts, optimizer, loss and resident uint8 data; ``precision``
    ``bf16-mixed`` runs forward and loss under bf16 autocast (as Lightning's mixed precision does)."""
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    images, _ = dm.split_tensors("train")
    images = images.to(device).unsqueeze(1)
    model = instantiate(cfg.model).to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    encoder, decoder = model.encoder, model.decoder
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
    is_vae = cfg.model._target_.endswith("VAE")
    optimizer = model.configure_optimizers()
    if isinstance(optimizer, dict):
        optimizer = optimizer["optimizer"]
    bs = cfg.data.batch_size
    gen = torch.Generator().manual_seed(0)
    times = []
    model.train()
    for _ in range(epochs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        perm = torch.randperm(len(images), generator=gen).to(device)
        for i in range(0, len(images), bs):
            x = images[perm[i : i + bs]].float().div_(255.0)
            with autocast:
                if is_vae:
                    mu, logvar = encoder(x).chunk(2, dim=1)
                    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
                    logits = decoder(z)
                    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
                    loss = (recon + gaussian_kl(mu, logvar)).mean()
                else:
                    loss = F.binary_cross_entropy_with_logits(decoder(encoder(x)), x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return times


def aelab_trainer(cfg, epochs: int, log_dir: str) -> list[float]:
    """(b)/(c): aelab's module and datamodule under Lightning, validation and checkpointing off."""
    dm = instantiate(cfg.data)
    model = instantiate(cfg.model)
    timer = EpochTimer()
    logger = pl.loggers.TensorBoardLogger(log_dir, name="", version="", default_hp_metric=False)
    trainer = instantiate(
        cfg.trainer,
        max_epochs=epochs,
        min_epochs=epochs,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=log_dir,
        logger=logger,
        callbacks=[timer],
    )
    trainer.fit(model, datamodule=dm)
    return timer.times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["ae", "conv_ae", "vae"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=4, help="epochs per variant; the median is over 2..N")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument(
        "--num-workers", type=int, default=None, help="DataLoader workers (default: CPU count, max 8)"
    )
    p.add_argument(
        "--data-dir",
        default=os.environ.get("DATA_DIR", str(REPO / "data")),
        help="data root (default: $DATA_DIR or ./data)",
    )
    p.add_argument("--out", default=str(REPO / "docs" / "BENCHMARKS.md"), help="Markdown report ('' to skip)")
    p.add_argument("--extra", nargs="*", default=[], help="extra Hydra overrides for every variant")
    p.add_argument("--json", default=None, help="also write the rows and ratios as JSON to this path")
    p.add_argument(
        "--variants",
        nargs="+",
        default=list(VARIANTS),
        choices=list(VARIANTS),
        help="variants to time (plain is the reference of the ratios)",
    )
    args = p.parse_args()

    if args.epochs < 2:
        p.error("--epochs must be >= 2 (epoch 1 is warm-up)")
    device_type = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device_type)
    accelerator = "gpu" if device_type == "cuda" else "cpu"
    workers = args.num_workers if args.num_workers is not None else min(8, torch.get_num_threads())
    torch.set_float32_matmul_precision("high")
    device_name = (
        torch.cuda.get_device_name(device)
        if device_type == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )

    rows: list[dict] = []
    ratios: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            base = [
                *args.extra,
                f"data.num_workers={workers}",
                f"data.pin_memory={str(device_type == 'cuda').lower()}",
            ]
            results = {}
            for variant in args.variants:
                cfg = compose_cfg(
                    model, args.batch_size, variant != "aelab-dataloader", accelerator, args.data_dir, base
                )
                settings = {
                    "precision": str(cfg.trainer.precision),
                    "channels_last": bool(cfg.model.channels_last),
                }
                if variant == "plain":
                    settings = {"precision": "32-true", "channels_last": False}
                pl.seed_everything(0, verbose=False)
                reset_peak(device)
                if variant.startswith("plain"):
                    times = plain_loop(cfg, device, args.epochs, **settings)
                else:
                    times = aelab_trainer(cfg, args.epochs, f"{tmp}/{model}-{variant}")
                median = statistics.median(times[1:])
                results[variant] = {
                    "model": model,
                    "variant": variant,
                    "s_per_epoch": median,
                    "peak_mb": peak_memory_mb(device),
                    **settings,
                    "epoch_times": [round(t, 4) for t in times],
                }
                print(
                    f"{model:9s} {variant:21s} {median:8.3f} s/epoch  {settings}  epochs: {[round(t, 3) for t in times]}",
                    flush=True,
                )
            ref = results.get("plain", {}).get("s_per_epoch")
            for row in results.values():
                row["x_plain"] = row["s_per_epoch"] / ref if ref else None
                rows.append(row)
            ratios[model] = model_ratios(results)

    table = markdown_table(rows, ratios)
    print("\n" + table)
    cmd = "python scripts/benchmark.py " + " ".join(sys.argv[1:])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps(
                {
                    "device": device_name,
                    "date": dt.date.today().isoformat(),
                    "command": cmd.strip(),
                    "batch_size": args.batch_size,
                    "epochs": args.epochs,
                    "versions": {
                        "aelab": aelab.__version__,
                        "torch": torch.__version__,
                        "lightning": pl.__version__,
                    },
                    "rows": rows,
                    "ratios": ratios,
                },
                indent=2,
            )
            + "\n"
        )
        print(f"wrote {args.json}")
    if args.out:
        write_report(Path(args.out), table, rows, device_name, cmd, args, workers)
    return 0


VARIANTS = ("plain", "plain-same-precision", "aelab", "aelab-dataloader")


def model_ratios(results: dict[str, dict]) -> dict[str, float]:
    """``plain / aelab`` (aelab's speed-up over the plain fp32 loop), ``aelab / plain-same-precision``
    (aelab's overhead at equal settings) and ``aelab-dataloader / aelab``, where both sides were timed."""
    t = {v: r["s_per_epoch"] for v, r in results.items()}
    out = {}
    for name, (num, den) in {
        "plain / aelab": ("plain", "aelab"),
        "aelab / plain-same-precision": ("aelab", "plain-same-precision"),
        "aelab-dataloader / aelab": ("aelab-dataloader", "aelab"),
    }.items():
        if num in t and den in t:
            out[name] = t[num] / t[den]
    return out


def markdown_table(rows: list[dict], ratios: dict[str, dict[str, float]]) -> str:
    head = (
        "| model | variant | precision | channels-last | s/epoch (median of 2..N) | × plain | peak memory (MB) |\n"
        "| --- | --- | --- | --- | --- | --- | --- |"
    )
    lines = [head] + [
        f"| {r['model']} | {r['variant']} | {r['precision']} | {'yes' if r['channels_last'] else 'no'} | "
        f"{r['s_per_epoch']:.3f} | {r['x_plain']:.2f} | {r['peak_mb']:.0f} |"
        for r in rows
    ]
    names = sorted({k for v in ratios.values() for k in v})
    lines += ["", "| model | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    lines += [
        f"| {m} | " + " | ".join(f"{r[k]:.2f}" if k in r else "—" for k in names) + " |"
        for m, r in ratios.items()
    ]
    return "\n".join(lines)


def write_report(path: Path, table: str, rows, device_name: str, cmd: str, args, workers: int) -> None:
    """Insert (or replace) this device's section in docs/BENCHMARKS.md, keeping other devices' sections."""
    key = "cuda" if "CPU" not in device_name else "cpu"
    section = f"""<!-- bench:{key}:start -->
## {device_name}

Date: {dt.date.today().isoformat()} · command: `{cmd.strip()}` · batch {args.batch_size} · {args.epochs} epochs
per variant · DataLoader workers {workers} · aelab {aelab.__version__}, torch {torch.__version__},
pytorch-lightning {pl.__version__}, Python {platform.python_version()}.

{table}

Per-epoch times (s): {"; ".join(f"{r['model']}/{r['variant']}: {[round(t, 2) for t in r['epoch_times']]}" for r in rows)}
<!-- bench:{key}:end -->
"""
    intro = """# Benchmarks

Written by `make bench` (`scripts/benchmark.py`): seconds per training epoch of MNIST's 55k training
images for (a) a plain PyTorch loop over a device-resident tensor, (b) aelab's Trainer on the resident data
path, (c) aelab's Trainer on the DataLoader path; `× plain` is each time over (a). Validation and
checkpointing are off in all three; (b) and (c) log to TensorBoard as a normal run does. Peak memory: GPU
peak allocation on CUDA; process peak RSS on the CPU (cumulative over the run, so only the first row of a
CPU table isolates one variant).

"""
    text = path.read_text() if path.exists() else intro
    start, end = f"<!-- bench:{key}:start -->", f"<!-- bench:{key}:end -->"
    if start in text and end in text:
        text = text[: text.index(start)] + section.rstrip("\n") + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
