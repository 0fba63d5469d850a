"""The figures of ``make results``: drawn from the results folder's runs into ``docs/figures/``.

:func:`make_figures` takes what :mod:`scripts.results` ran (per model: the training and evaluation folders,
commands, wall times, metrics) and writes the PNGs whose inputs exist, each captioned with the device,
epochs, wall time and command; it returns ``{file name: caption}`` for the report.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aelab.experiments import figures as FIG

log = logging.getLogger("aelab")

LABELS = {"ae": "MLP AE", "conv_ae": "ConvAE", "dae": "DAE", "vae": "MLP VAE", "conv_vae": "conv VAE"}


def make_figures(results: dict[str, dict[str, Any]], one_class: dict | None, out_dir: Path, device: str,
                 date: str, rel, extras: dict[str, Any] | None = None) -> dict[str, str]:  # fmt: skip
    """Write every figure whose inputs exist; ``rel`` turns a command list into the text a user would type;
    ``extras`` may hold ``latent2d`` (a 2-D model's checkpoint) and ``seeds`` (runs of several seeds)."""
    extras = extras or {}
    out_dir.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}

    runs = {  # each model's epochs and wall times
        m: f"{LABELS.get(m, m)}: epochs {r['epochs']}, train {r['t_train']:.0f} s, eval {r['t_eval']:.0f} s"
        for m, r in results.items()
    }

    def caption(models: list[str]) -> str:
        return f"{device}, {date}. " + "; ".join(runs[m] for m in models) + ". Commands: docs/RESULTS.md."

    compressed = [m for m in results if "test/compression/ae_float32_psnr" in results[m]["metrics"]]
    if compressed:
        made["rate_distortion.png"] = caption(compressed)
        FIG.rate_distortion(
            {LABELS.get(m, m): results[m]["metrics"] for m in compressed},
            out_dir / "rate_distortion.png",
            made["rate_distortion.png"],
        )

    scores = {}
    for m, r in results.items():
        npz = Path(r["eval_dir"]) / "anomaly_scores.npz"
        if npz.is_file():
            with np.load(npz, allow_pickle=False) as d:
                scores[f"{LABELS.get(m, m)} recon. error"] = (d["recon_in"], d["recon_ood"])
                if "elbo_in" in d:
                    scores[f"{LABELS.get(m, m)} −ELBO"] = (d["elbo_in"], d["elbo_ood"])
    all_models = caption(list(results))
    if scores:
        FIG.roc_curves(scores, out_dir / "roc_fashion.png", all_models)
        made["roc_fashion.png"] = all_models

    FIG.validation_curves(
        {LABELS.get(m, m): r["train_dir"] for m, r in results.items()},
        out_dir / "validation_curves.png",
        all_models,
    )
    made["validation_curves.png"] = all_models

    if one_class:
        text = f"{device}, {date}. One-class sweep: {one_class['t']:.0f} s; `{rel(one_class['cmd'])}`."
        FIG.one_class_bars(
            {int(d): r["auroc"] for d, r in one_class["digits"].items()}, out_dir / "one_class.png", text
        )
        made["one_class.png"] = text

    from aelab.checkpoint import load_model
    from aelab.data import MNISTDataModule

    for m in [m for m in ("conv_vae", "vae") if m in results][:1]:
        model, cfg, _ = load_model(results[m]["ckpt"])
        dm = MNISTDataModule(cfg.data.data_dir, download=False)
        x, _ = dm.sample_images(10, "test")
        gen = torch.Generator().manual_seed(0)
        rows = [("prior samples", model.sample(10, generator=gen)), ("test images", x)]
        rows += [(f"interpolation {i + 1}", model.interpolate(x[2 * i], x[2 * i + 1], 10)) for i in range(2)]
        FIG.image_rows(
            rows,
            out_dir / "vae_samples.png",
            f"{LABELS[m]}: prior samples and latent interpolations",
            caption([m]),
        )
        made["vae_samples.png"] = caption([m])

    if "dae" in results:
        from aelab.evaluation import compression as C
        from aelab.evaluation.metrics import psnr_per_image

        model, cfg, _ = load_model(results["dae"]["ckpt"])
        dm = MNISTDataModule(cfg.data.data_dir, download=False)
        x, _ = dm.sample_images(10, "test")
        sigma = float(cfg.model.corruption.get("sigma", 0.5))
        noisy = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            denoised = model.reconstruct(noisy)
        train = dm.sample_images(len(dm.split_tensors("train")[0]), "train")[0]
        pca = C.fit_pca(train, 32)
        rows = [
            ("clean", x),
            (f"noisy σ={sigma:g}", noisy.clamp(0, 1)),
            ("DAE", denoised),
            ("PCA-32", C.pca_roundtrip(pca, noisy)),
        ]
        # PSNR of what the DAE was given (the unclipped noisy input, as test/noisy_psnr), of its output and of
        # PCA's projection clipped to [0, 1]; the noisy row is only clipped for display
        scored = {rows[1][0]: noisy, "DAE": denoised, "PCA-32": rows[3][1].clamp(0, 1)}
        psnr = {label: psnr_per_image(img, x).mean().item() for label, img in scored.items()}
        title = "Denoising: " + ", ".join(f"{k} {v:.1f} dB" for k, v in psnr.items()) + " (these 10 images)"
        FIG.image_rows(rows, out_dir / "denoising.png", title, caption(["dae"]))
        made["denoising.png"] = caption(["dae"])
    if "latent2d" in extras:
        from aelab.evaluation.metrics import map_batches

        e = extras["latent2d"]
        model, cfg, _ = load_model(e["ckpt"])
        dm = MNISTDataModule(cfg.data.data_dir, download=False)
        images, labels = dm.split_tensors("test")
        codes = map_batches(model.encode, images, 1000, "cpu")
        text = f"{device}, {date}. 2-D code, {cfg.trainer.max_epochs} epochs, train {e['t']:.0f} s; `{rel(e['cmd'])}`."
        FIG.latent_map(codes, labels, out_dir / "latent_map.png", text)
        made["latent_map.png"] = text
    if extras.get("seeds"):
        from aelab.experiments.aggregate import summarize

        runs = extras["seeds"]
        seeds = [r["seed"] for r in runs]
        text = (
            f"{device}, {date}. experiment=ae_best, {runs[0]['epochs']} epochs, seeds {seeds}, "
            f"{sum(r['t'] for r in runs):.0f} s in all; `{rel(runs[0]['cmd'])}` (and seed=…)."
        )
        summary = summarize([r["metrics"] for r in runs])
        keys = ["test/mse", "test/psnr"]
        per_seed = {k: [r["metrics"][k] for r in runs if k in r["metrics"]] for k in keys}
        FIG.seed_stability(summary, keys, out_dir / "seed_stability.png", text, per_seed)
        made["seed_stability.png"] = text
    log.info("figures written to %s: %s", out_dir, ", ".join(made))
    return made
