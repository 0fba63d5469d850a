#!/usr/bin/env python
"""``make gpu-check``: the GPU figures of the report in one prepared command (at most 8 minutes on one GPU).

1. The speed benchmark's GPU rows (``aelab_tools.benchmark``): MLP AE, ConvAE and VAE at batch 256,
   plain / plain-same-precision / lightning / aelab / aelab-dataloader and torch.compile on and off, interleaved rounds.
2. A conv VAE (``experiment=conv_vae_best``) trained a fixed number of epochs, then its test NLL by the IWAE bound
   at k = 5000 on the first 1000 test images (the likelihood section, bf16 decoder).
3. A one-GPU FSDP run (``trainer=fsdp trainer.devices=1``, one epoch): the strategy this CPU cannot run.

Results go to ``<out-dir>/bench_gpu.json`` (default ``docs/``), rendered into ``BENCHMARKS.md`` beside it. The
GPU machine has no Hydra/OmegaConf/antlr: they are installed from ``.whl/`` or ``../shared/wheels`` into
``/tmp/site`` first. ``--device cpu --smoke`` runs the same steps tiny, end to end, on the CPU (under 3 minutes)::

    make gpu-check                                  # on the GPU machine
    make gpu-check ARGS="--device cpu --smoke --out-dir /tmp/gc"   # rehearsal here
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def ensure_hydra() -> None:
    """Hydra and OmegaConf, from local wheels when they are not installed (re-executes this script once)."""
    try:
        import hydra  # noqa: F401
        import omegaconf  # noqa: F401
    except ImportError:
        if os.environ.get("AELAB_GPU_CHECK_SITE"):
            raise
        wheels = next(
            (d for d in (REPO / ".whl", REPO.parent / "shared" / "wheels") if list(d.glob("*.whl"))), None
        )
        if wheels is None:
            raise SystemExit(
                "gpu-check: Hydra is missing and no wheels in .whl/ or ../shared/wheels"
            ) from None
        site = "/tmp/site"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", site,
                        *map(str, wheels.glob("*.whl"))], check=True)  # fmt: skip
        env = {**os.environ, "AELAB_GPU_CHECK_SITE": site,
               "PYTHONPATH": os.pathsep.join([site, str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def run(cmd: list[str]) -> float:
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(
        cmd,
        cwd=REPO,
        check=True,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        },
    )
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--smoke", action="store_true", help="every step, tiny (a rehearsal of the command)")
    p.add_argument("--out-dir", default=str(REPO / "docs"), help="where bench_gpu.json and BENCHMARKS.md go")
    p.add_argument("--epochs", type=int, default=8, help="training epochs of the conv VAE")
    args = p.parse_args(argv)
    ensure_hydra()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    trainer = "trainer=gpu" if args.device == "cuda" else "trainer=cpu"
    # the smoke runs on whatever MNIST-format data DATA_DIR holds (a synthetic one in the tests): a fractional split
    tiny = (
        ["+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "data.val_size=0.1"]
        if args.smoke
        else []
    )
    bench_json = out / "bench_gpu_speed.json"
    models = ["ae"] if args.smoke else ["ae", "conv_ae", "vae"]
    bench = [py, "scripts/benchmark.py", "--device", args.device, "--models", *models, "--batch-size", "256",
             "--compile", "--json", str(bench_json)] + (["--rounds", "2", "--limit-batches", "2", "--extra", "data.val_size=0.1"] if args.smoke else ["--rounds", "5"])  # fmt: skip
    t_bench = run(bench)
    run_dir = out / "gpu_check_conv_vae"
    epochs = 1 if args.smoke else args.epochs
    train = [py, "-m", "aelab.train", "experiment=conv_vae_best", trainer, f"trainer.max_epochs={epochs}", "callbacks=minimal",
             "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}", *tiny]  # fmt: skip
    t_train = run(train)
    k, n = (10, 20) if args.smoke else (5000, 1000)
    ev = [py, "-m", "aelab.eval", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", trainer, f"hydra.run.dir={run_dir / 'eval'}",
          "trainer.enable_progress_bar=false", *[f"suite.sections.{s}=null" for s in ("compression", "classical_codecs", "codec", "features",
          "anomaly", "denoising", "fid", "generation")], f"suite.sections.likelihood.k={k}", f"suite.sections.likelihood.num_images={n}",
          *(["+trainer.limit_test_batches=1"] if args.smoke else [])]  # fmt: skip
    t_eval = run(ev)
    fsdp = [py, "-m", "aelab.train", "trainer=fsdp", "trainer.devices=1", "trainer.max_epochs=1", "callbacks=minimal",
            "trainer.enable_progress_bar=false", f"hydra.run.dir={out / 'gpu_check_fsdp'}", *tiny]  # fmt: skip
    fsdp_result = "skipped: Lightning runs FSDP on CUDA only"
    if args.device == "cuda":
        run(fsdp)
        fsdp_result = json.loads((out / "gpu_check_fsdp" / "metrics.json").read_text())
    speed = json.loads(bench_json.read_text())
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    result = {
        **speed, "kind": "speed", "file": "bench_gpu.json", "date": dt.date.today().isoformat(),
        "command": "make gpu-check" + (" ARGS='" + " ".join(argv or sys.argv[1:]) + "'" if (argv or sys.argv[1:]) else ""),
        "gpu_check": {"bench_s": t_bench, "train_s": t_train, "eval_s": t_eval, "conv_vae_epochs": epochs,
                      "nll_iwae": metrics["test/likelihood/nll_iwae"], "k": k, "images": n, "fsdp": fsdp_result},
    }  # fmt: skip
    bench_json.unlink()
    (out / "bench_gpu.json").write_text(json.dumps(result, indent=1) + "\n")
    from aelab_tools.bench_report import load_docs, render

    (out / "BENCHMARKS.md").write_text(render(load_docs(out / "bench_gpu.json")))
    print(f"wrote {out / 'bench_gpu.json'} and {out / 'BENCHMARKS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
