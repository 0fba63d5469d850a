"""The report's figures, drawn from the results (and the runs' files where a figure needs a model or scores)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from aelab import visuals
from aelab.checkpoint import load_model
from aelab.evaluation.metrics import map_batches
from aelab_tools import figures as plots
from aelab_tools.results.analysis import CLASSICAL_NAMES
from aelab_tools.results.runner import references


# ---------------------------------------------------------------------------------------------- figures
def make_figures(results: dict[str, Any], out_dir: Path, root: Path) -> dict[str, str]:
    """Every figure whose inputs exist, into ``out_dir``; returns ``{file name: caption}``."""

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
        plots.rate_distortion({n.split("/")[1]: parts[n]["metrics"] for n in rd}, out_dir / "rate_distortion.png", cap,
                            codec=codecs.get("mnist", {}).get("codec", ()), title="Rate–distortion on the MNIST test set")  # fmt: skip
        made["rate_distortion.png"] = cap
    if "photo_patches" in codecs:
        c = codecs["photo_patches"]
        curves = {
            "aelab learned codec": c["codec"],
            **{CLASSICAL_NAMES[k]: v for k, v in c["baselines"].items()},
        }
        names = [n for n in parts if n.startswith("photo_patches/codec")]
        plots.codec_curves(curves, out_dir / "codec_photos.png", "The learned codec on the held-out photographs, whole",
                         caption(names))  # fmt: skip
        made["codec_photos.png"] = caption(names)
    scores = {}
    for n in mnist:
        npz = Path(parts[n].get("eval_dir", "")) / "anomaly_scores.npz"
        if "eval_dir" in parts[n] and npz.is_file():
            with np.load(npz, allow_pickle=False) as d:
                if "recon_in" not in d:  # a one-class table's scores: not the MNIST vs Fashion-MNIST figure
                    continue
                scores[f"{n.split('/')[1]} recon. error"] = (d["recon_in"], d["recon_ood"])
                if "elbo_in" in d:
                    scores[f"{n.split('/')[1]} −ELBO"] = (d["elbo_in"], d["elbo_ood"])
    if scores:
        plots.roc_curves(
            scores, out_dir / "roc_ood.png", caption(mnist), title="Anomaly detection: MNIST vs Fashion-MNIST"
        )
        made["roc_ood.png"] = caption(mnist)
    trained = [
        n for n in parts if parts[n].get("group") != "codec" and Path(parts[n].get("train_dir", "")).is_dir()
    ]
    if trained:
        plots.validation_curves(
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
        plots.sample_grids(
            best,
            out_dir / "samples.png",
            "Samples by model and sampler, lowest Fréchet distance first",
            caption(mnist),
        )
        made["samples.png"] = caption(mnist)
    from hydra.utils import instantiate

    def model_and_data(n):
        model, cfg, _ = load_model(parts[n]["ckpt"])
        return model, instantiate(cfg.data)

    # a figure that loads a model is drawn from the parts whose checkpoints are here (not those kept from an
    # earlier report)
    evaluated = {
        n: p for n, p in evaluated.items() if "kept_from" not in p or Path(p.get("ckpt", "")).is_file()
    }

    if "mnist/dae" in evaluated:
        model, dm = model_and_data("mnist/dae")
        x, _ = dm.sample_images(10, "test")
        clean, noisy, den = visuals.denoising_strip(model, x)
        plots.image_rows([("clean", clean), ("noisy σ=0.5", noisy.clamp(0, 1)), ("DAE", den)], out_dir / "denoising.png",
                       "Denoising (the DAE's own corruption, seeded)", caption(["mnist/dae"]))  # fmt: skip
        made["denoising.png"] = caption(["mnist/dae"])
    for n in [n for n in ("mnist/conv_vae", "mnist/vae") if n in evaluated][:1]:
        model, dm = model_and_data(n)
        x, _ = dm.sample_images(6, "test")
        rows = [("prior samples", visuals.prior_samples(model, 12)),
                *[(f"interpolation {i + 1}", visuals.interpolation(model, x[2 * i], x[2 * i + 1], 10)) for i in range(3)]]  # fmt: skip
        plots.image_rows(
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
            plots.image_rows(
                rows,
                out_dir / name,
                f"{n.split('/')[0]}: test images and their reconstructions",
                caption([n]),
            )
            made[name] = caption([n])
    if "mnist/latent2d" in parts and Path(parts["mnist/latent2d"].get("ckpt", "")).is_file():
        model, dm = model_and_data("mnist/latent2d")
        images, labels = dm.split_tensors("test")
        codes = map_batches(model.encode, images, 1000, "cpu")
        plots.latent_map(
            codes, labels, out_dir / "latent_map.png", caption(["mnist/latent2d"]), dm.class_names
        )
        made["latent_map.png"] = caption(["mnist/latent2d"])
    oc = results.get("one_class")
    if oc:
        text = f"{device}, {date}. One-class sweep: {oc['t']:.0f} s; `{oc['cmd']}`."
        plots.one_class_bars(
            {int(c): r["auroc"] for c, r in oc["classes"].items()},
            out_dir / "one_class.png",
            text,
            reference=references()["one_class"]["deep_svdd"],
        )
        made["one_class.png"] = text
    return made
