"""The report's figures, drawn from the results (and the runs' files where a figure needs a model or scores)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aelab import visuals
from aelab.checkpoint import load_model
from aelab.evaluation.metrics import map_batches
from aelab_tools import figures as plots
from aelab_tools.results.analysis import CLASSICAL_NAMES
from aelab_tools.results.render import is_recommend_part, is_series_part, is_text_part
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

    def ran_here(names: list[str]) -> bool:
        """Whether a figure of these parts has a run of this report: one whose parts were all kept from an earlier
        report is not drawn again (the earlier figure stays, with its own device and date in its caption)."""
        return any(not parts[n].get("kept_from") for n in names)

    evaluated = {n: p for n, p in parts.items() if "metrics" in p}
    mnist = [n for n in evaluated if n.startswith("mnist/") and parts[n].get("group") != "codec"]
    codecs = results.get("codec", {})
    rd = [n for n in mnist if n.split("/")[1] in ("ae", "conv_ae", "vqvae")]
    if rd and ran_here(rd):
        families = {f: e for f, e in codecs.get("mnist", {}).get("models", {}).items() if e["per_image"]}
        cap = caption(rd + [n for f in families.values() for n in f["lambdas"]])
        narrow = sorted({f"{CLASSICAL_NAMES.get(k, k)} ({family}: {100 * o:.0f}%)" for family, e in families.items()
                         for k, o in (e.get("overlap") or {}).items() if o is not None and o < 0.75})  # fmt: skip
        if narrow:
            cap += (" PSNR overlap under 75% of the shorter curve, so the BD-rate extrapolates: "
                    + ", ".join(narrow) + ".")  # fmt: skip
        plots.rate_distortion({n.split("/")[1]: parts[n]["metrics"] for n in rd}, out_dir / "rate_distortion.png", cap,
                            codecs={f"{f} codec": e["codec"] for f, e in families.items()},
                            title="Rate–distortion on the MNIST test set")  # fmt: skip
        made["rate_distortion.png"] = cap
    if "photo_patches" in codecs:
        c = codecs["photo_patches"]
        curves = {
            f"aelab {c['model']} codec": c["codec"],
            **{CLASSICAL_NAMES[k]: v for k, v in c["baselines"].items()},
        }
        names = list(c["lambdas"])  # the parts of the family drawn (codec_study's best)
    if "photo_patches" in codecs and ran_here(names):
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
    trained = [  # recommenders pick their epoch by validation NDCG, not by the val/loss these curves show
        n
        for n in parts
        if parts[n].get("group") != "codec"
        and not is_recommend_part(parts[n])
        and not is_series_part(parts[n])  # the series and text parts have tables of their own
        and not is_text_part(parts[n])
        and Path(parts[n].get("train_dir", "")).is_dir()
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

    def varied(dm, n: int) -> torch.Tensor:
        """``n`` test images at evenly spaced quantiles of their standard deviation (flat to busy), from the first
        4,096 of the split: what the data holds, not its first (often flat) patches."""
        from aelab.data.resident import as_float

        x = as_float(dm.split_tensors("test")[0][:4096])
        order = x.flatten(1).std(dim=1).argsort()
        return x[order[torch.linspace(0.1 * (len(x) - 1), len(x) - 1, n).long()]]

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
    for data in ("digits", "photo_patches"):
        models = [n for n in (f"{data}/ae", f"{data}/conv_ae") if n in evaluated]
        if not models:
            continue
        _, dm = model_and_data(models[0])
        x = varied(dm, 12)
        rows, size = [("test images", x)], 0
        for n in models:
            model, _ = model_and_data(n)
            size = size or int(getattr(model, "latent_dim", 0) or 0)
            with torch.no_grad():
                rows.append(
                    (f"{n.split('/')[1]} (MSE {parts[n]['metrics']['test/mse']:.4f})", model.reconstruct(x))
                )
        pca_mse = parts[models[0]]["metrics"].get("test/compression/pca_mse")
        if size and pca_mse:
            from aelab.codecs.pca import fit_pca, pca_roundtrip
            from aelab.data.resident import as_float

            pca = fit_pca(as_float(dm.split_tensors("train")[0]), size)
            rows.append((f"PCA-{size} (MSE {pca_mse:.4f})", pca_roundtrip(pca, x).clamp(0, 1)))
        name = f"reconstructions_{data}.png"
        text = (f"{caption(models)} Test images chosen across the range of their contrast (per-image standard "
                "deviation quantiles), not the first of the split; test MSE over the whole test split in each label.")  # fmt: skip
        plots.image_rows(
            rows, out_dir / name, f"{data}: test images, each model's and PCA's reconstructions", text
        )
        made[name] = text
    photo_codecs = [n for n in evaluated if n.startswith("photo_patches/") and parts[n].get("group") == "codec"
                    and "test/codec/photos/bits_per_pixel" in parts[n]["metrics"]]  # fmt: skip
    if photo_codecs:
        # the λ nearest 0.5 bits/pixel on the held-out photographs: where JPEG and WebP are in their usual range
        n = min(
            photo_codecs, key=lambda k: abs(parts[k]["metrics"]["test/codec/photos/bits_per_pixel"] - 0.5)
        )
        text = photo_codec_figure(n, model_and_data, out_dir / "codec_photos_crops.png", caption([n]))
        made["codec_photos_crops.png"] = text
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
    recommenders = [n for n, p in parts.items() if is_recommend_part(p) and p.get("train_dir")]
    if recommenders:  # the recommend section drew it in the run's folder (the part's first seed)
        best = max(recommenders, key=lambda n: parts[n]["metrics"]["test/recommend/ndcg@100"])
        drawn = Path(parts[best]["train_dir"]) / "recommend_hits_by_popularity.png"
        if drawn.is_file():
            shutil.copyfile(drawn, out_dir / "recommend_hits_by_popularity.png")
            made["recommend_hits_by_popularity.png"] = (
                f"Test hits@20 by item popularity (training-user counts, in quantile bins): {best} beside "
                f"popularity, ItemKNN and EASE on the split of its first seed. {caption([best])}"
            )
    series = [
        n
        for n, p in parts.items()
        if "test/anomaly/vus_pr" in (p.get("metrics") or {}) and p.get("train_dir")
    ]
    if series:  # the series section drew it in the run's folder (the part's first seed)
        best = max(series, key=lambda n: parts[n]["metrics"]["test/anomaly/vus_pr"])
        drawn = Path(parts[best]["train_dir"]) / "series_scores.png"
        if drawn.is_file():
            shutil.copyfile(drawn, out_dir / "series_scores.png")
            made["series_scores.png"] = (
                f"The series, the per-point score of {best} (its first seed), the validation threshold and the "
                f"labelled anomalies. {caption([best])}"
            )
    return made


def photo_codec_figure(part: str, model_and_data, path: Path, caption: str, crop: int = 192) -> str:
    """Two held-out photographs coded whole by the learned codec of ``part`` (one file each) and by JPEG and WebP
    at the quality whose file is nearest in size; a ``crop``-pixel centre crop of each at 100%, with bytes and
    PSNR in each panel's title. Returns the caption (``caption`` and each file's size and PSNR)."""
    from aelab.checkpoint import state_fingerprint
    from aelab.codecs import container
    from aelab.codecs.classical import codec_roundtrip

    model, dm = model_and_data(part)
    model.update()
    fingerprint = state_fingerprint(model.state_dict())

    def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(10 * torch.log10(255.0**2 / (a.float() - b.float()).pow(2).mean()))

    def nearest(img: torch.Tensor, name: str, target: int) -> tuple[int, torch.Tensor, int]:
        best = None
        for q in range(5, 96, 5):
            dec, sizes, _ = codec_roundtrip(img[None], name, q)
            if best is None or abs(sizes[0] - target) < abs(best[0] - target):
                best = (sizes[0], dec[0], q)
        return best

    panels, lines = [], []
    for i, img in enumerate(dm.test_photos()[:2]):
        files, recon = container.encode_each(model, [img], fingerprint, 1, "cpu")
        size = len(files[0])
        h, w = img.shape[-2:]
        top, left = (h - min(crop, h)) // 2, (w - min(crop, w)) // 2

        def cut(x, top=top, left=left):
            return x[:, top : top + crop, left : left + crop]

        row = [
            ("original", cut(img)),
            (f"aelab codec: {size:,} B, {psnr(recon[0], img):.2f} dB", cut(recon[0])),
        ]
        line = f"photo {i + 1} ({w}×{h}): aelab codec {size:,} B at {psnr(recon[0], img):.2f} dB"
        for name, label in (("jpeg", "JPEG"), ("webp", "WebP")):
            b, dec, q = nearest(img, name, size)
            row.append((f"{label} q{q}: {b:,} B, {psnr(dec, img):.2f} dB", cut(dec)))
            line += f"; {label} q{q} {b:,} B at {psnr(dec, img):.2f} dB"
        panels.append(row)
        lines.append(line)
    text = (
        f"{caption} Whole photographs coded (one file each, headers counted); {crop}-px centre crops at 100%. "
        + "; ".join(lines)
        + "."
    )
    plots.photo_comparison(
        panels,
        path,
        f"Held-out photographs: the learned codec ({part.split('/')[1]}) beside JPEG and WebP at about the same bytes",
        text,
    )
    return text
