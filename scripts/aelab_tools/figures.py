"""The report's figures (matplotlib, PNG at page width): one message each, labelled axes with units, and a
caption line with the device, epochs, wall time and command that produced the numbers.

Every function takes numbers or images already computed (``metrics.json`` contents, saved scores, run
folders) and writes one PNG; ``make results`` (:mod:`scripts.results`) calls them into ``docs/figures/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from aelab.codecs.classical import display_name  # noqa: E402
from aelab_tools import schema  # noqa: E402

WIDTH = 7.0  # inches: a page width at 100 dpi is about 700 px


def _save(fig, path: str | Path, caption: str = "") -> Path:
    if caption:
        fig.text(0.01, 0.005, caption, fontsize=6.5, color="0.35", ha="left", va="bottom", wrap=True)
    # room for the caption: its wrapped lines (about 19 characters per inch at 6.5 pt) of 0.11 inch each
    lines = -(-len(caption) // int(18.5 * fig.get_figwidth())) if caption else 0
    fig.tight_layout(rect=(0, min(0.3, (0.11 * lines + 0.05) / fig.get_figheight()) if caption else 0, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _curve(m: Mapping[str, float], codec: str, rate: str, photos: bool = False) -> list[tuple[float, float]]:
    """``[(rate, PSNR)]`` of a classical codec in one metrics dict, finite points only (:mod:`aelab_tools.schema`)."""
    return [(r, q) for r, q in schema.classical_curve(m, codec, rate, photos) if np.isfinite(q)]


#: the classical codecs drawn, with their names from aelab.codecs' table and a marker each
CLASSICAL = {
    name: (display_name(name), marker)
    for name, marker in (("jpeg", "^:"), ("webp", "v:"), ("avif", "<:"), ("jxl", ">:"))
}


def rate_distortion(
    metrics: Mapping[str, Mapping[str, float]],
    path: str | Path,
    caption: str = "",
    codecs: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    title: str = "Rate–distortion on the test set",
) -> Path:
    """PSNR (dB) against bytes per image (log scale): each model's codes at float32/float16/8 bits (or its codebook
    indices), PCA of the same size, the classical codecs over their quality range (headers counted), the learned
    codecs' λ sweeps (``codecs``: ``{label: [(bytes/image, PSNR)]}``), and gzip / PNG (lossless) as vertical lines.
    The PSNR axis spans the codecs' range (learned and classical); points beyond it (PCA with as many components
    as pixels reaches 50+ dB) are named in a note at the top instead of squashing the curves.

    Args:
        metrics: ``{model label: metrics.json of its aelab-eval}`` (keys ``test/compression/...``).
    """
    fig, ax = plt.subplots(figsize=(WIDTH, 4.8))
    formats = ("uint8", "float16", "float32")
    first = next(iter(metrics.values()))
    pca_curves: dict[tuple, list[str]] = {}  # one PCA curve per code size, named after the models it matches
    for label, m in metrics.items():
        pts = [
            (m.get(f"test/compression/ae_{f}_bytes_per_image"), m.get(f"test/compression/ae_{f}_psnr"))
            for f in formats
        ]
        pts = [(b, p) for b, p in pts if b is not None and p is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), "o-", label=f"{label} codes (8/16/32 bit)")
        if "test/compression/vq_indices_bytes_per_image" in m:
            ax.plot(m["test/compression/vq_indices_bytes_per_image"], m["test/compression/vq_indices_psnr"], "D",
                    ms=7, label=f"{label} codebook indices")  # fmt: skip
        pca = [
            (m.get(f"test/compression/pca_{f}_bytes_per_image"), m.get(f"test/compression/pca_{f}_psnr"))
            for f in formats
        ]
        pca = [(b, p) for b, p in pca if b is not None and p is not None]
        if pca:
            pca_curves.setdefault(tuple((round(b, 3), round(p, 3)) for b, p in pca), []).append(label)
    for pca, labels in pca_curves.items():
        size = round(max(b for b, _ in pca) / 4)  # float32 bytes / 4 = components
        ax.plot(*zip(*pca, strict=True), "s--", alpha=0.6, label=f"PCA-{size} (size of {', '.join(labels)})")
    for name, (label, style) in CLASSICAL.items():
        pts = _curve(first, name, "bytes_per_image")
        if pts:
            ax.plot(*zip(*pts, strict=True), style, color="0.45", alpha=0.8, label=f"{label} (quality range)")
    span = [p for name in CLASSICAL for _, p in _curve(first, name, "bytes_per_image")]
    for i, (label, pts) in enumerate((codecs or {}).items()):
        if pts:
            ax.plot(*zip(*sorted(pts), strict=True), "*-", color=f"C{3 + i}", ms=9, lw=2,
                    label=f"aelab {label} (λ sweep, per-image files)")  # fmt: skip
            span += [p for _, p in pts]
    if span:  # the axis over the codecs' range; what lies beyond it is named, not drawn off-scale
        lo, hi = min(span) - 1.5, max(span) + 1.5
        beyond = sorted({
            line.get_label().split(" (")[0]
            for line in ax.get_lines()
            if any(not lo <= y <= hi for y in line.get_ydata())
        })  # fmt: skip
        ax.set_ylim(lo, hi)
        if beyond:
            ax.text(0.01, 0.98, f"beyond the PSNR axis (the codecs' range): {', '.join(beyond)}",
                    transform=ax.transAxes, va="top", fontsize=7, color="0.35")  # fmt: skip
    raw = first.get("test/compression/raw_bytes_per_image")
    for key, text in (("gzip_bytes_per_image", "gzip"), ("png_bytes_per_image", "PNG")):
        v = first.get(f"test/compression/{key}")
        if v:
            ax.axvline(v, color="0.6", ls="--", lw=1)
            ax.text(
                v, ax.get_ylim()[0], f" {text}, lossless", rotation=90, va="bottom", fontsize=7, color="0.4"
            )
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(
        f"bytes per image (log scale; raw image {raw:.0f} B)" if raw else "bytes per image (log scale)"
    )
    ax.set_ylabel("PSNR after decoding (dB)")
    ax.set_title(f"{title}: higher and further left is better")
    ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)
    ax.grid(alpha=0.3)
    return _save(fig, path, caption)


def codec_curves(
    curves: Mapping[str, Sequence[tuple[float, float]]], path: str | Path, title: str, caption: str = "",
    xlabel: str = "bits per pixel (log scale)",
) -> Path:  # fmt: skip
    """Rate–distortion curves ``{label: [(rate, PSNR)]}`` (the learned codec drawn first, bold)."""
    fig, ax = plt.subplots(figsize=(WIDTH, 4.0))
    for i, (label, pts) in enumerate(curves.items()):
        pts = sorted(pts)
        if pts:
            style = dict(lw=2.2, marker="*", ms=9, color="C3") if i == 0 else dict(lw=1, marker="o", ms=3)
            ax.plot(*zip(*pts, strict=True), label=label, **style)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path, caption)


def sample_grids(
    grids: Mapping[str, str | Path], path: str | Path, title: str, caption: str = "", cols: int = 4
) -> Path:
    """A page of saved sample grids (PNG files), each titled with its label (model, sampler, Fréchet distance)."""
    from PIL import Image

    n = len(grids)
    cols = min(cols, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH, WIDTH / cols * rows + 0.5), squeeze=False)
    for ax, (label, png) in zip(axes.flat, grids.items(), strict=False):
        with Image.open(png) as img:
            ax.imshow(np.asarray(img.convert("RGB")), interpolation="nearest")
        ax.set_title(label, fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path, caption)


def roc_curves(
    scores: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path, caption: str = "",
    title: str = "Anomaly detection: test set vs out-of-distribution set",
) -> Path:  # fmt: skip
    """ROC curves of the test split (negatives) vs an out-of-distribution set (positives), one per model/score.

    Args:
        scores: ``{label: (in-distribution scores, out-of-distribution scores)}``; higher = more anomalous.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(WIDTH * 0.8, 4.4))
    lowest, bottom = 1.0, 1.0
    for label, (s_in, s_ood) in scores.items():
        y = np.r_[np.zeros(len(s_in)), np.ones(len(s_ood))]
        s = np.r_[s_in, s_ood]
        fpr, tpr, _ = roc_curve(y, s)
        lowest = min(lowest, 1.0 / len(s_in))
        bottom = min(bottom, float(tpr[fpr <= 1.0 / len(s_in)].max()))  # detection rate at one false alarm
        ax.plot(np.maximum(fpr, 1.0 / len(s_in)), tpr, label=f"{label} (AUROC {roc_auc_score(y, s):.4f})")
    chance = np.logspace(np.log10(lowest), 0, 50)
    ax.plot(chance, chance, color="0.7", ls=":", lw=1, label="chance (the diagonal)")
    # near-perfect detectors differ only at small false positive rates: a log axis shows where
    ax.set_xscale("log")
    ax.set_xlim(lowest, 1.0)
    ax.set_ylim(max(0.0, np.floor(bottom * 20) / 20 - 0.05), 1.005)  # zoomed to where the curves are
    ax.set_xlabel("false positive rate (test images flagged, log scale)")
    ax.set_ylabel("true positive rate (out-of-distribution images flagged)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path, caption)


def one_class_bars(
    aurocs: Mapping[int, float], path: str | Path, caption: str = "", reference: Sequence[float] | None = None
) -> Path:
    """One-class AUROC (%) per MNIST digit beside Deep SVDD's published numbers.

    Args:
        aurocs: ``{digit: AUROC in [0, 1]}``.
        reference: Deep SVDD's AUROC (%) per digit 0–9 (``scripts/aelab_tools/results/references.yaml: one_class.deep_svdd``,
            Ruff et al. 2018, Table 1); ``None``: no reference bars.
    """
    digits = sorted(aurocs)
    x = np.arange(len(digits))
    fig, ax = plt.subplots(figsize=(WIDTH, 3.6))
    ours = [100 * aurocs[d] for d in digits]
    ax.bar(x - 0.2, ours, 0.4, label=f"aelab (mean {np.mean(ours):.1f})")
    ref = [] if reference is None else [reference[d] for d in digits]
    if ref:
        ax.bar(x + 0.2, ref, 0.4, color="0.7", label=f"Deep SVDD, Ruff et al. 2018 (mean {np.mean(ref):.1f})")
    ax.set_xticks(x, [str(d) for d in digits])
    ax.set_xlabel("normal digit (trained on this digit only)")
    ax.set_ylabel("AUROC (%)")
    ax.set_ylim(min(80, *ours, *ref) - 2, 100)
    ax.set_title("One-class anomaly detection per digit")
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path, caption)


def image_rows(rows: Sequence[tuple[str, Tensor]], path: str | Path, title: str, caption: str = "") -> Path:
    """Labelled rows of images ``(n, C, H, W)`` in [0, 1], grey or RGB (samples, interpolations, denoising)."""
    n = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(
        len(rows), 1, figsize=(WIDTH, 0.75 * len(rows) * max(1, 10 / n) + 0.6), squeeze=False
    )
    for ax, (label, images) in zip(axes[:, 0], rows, strict=True):
        strip = torch.cat([img.float().clamp(0, 1) for img in images], dim=2).cpu().numpy()  # (C, H, n·W)
        strip = strip[0] if strip.shape[0] == 1 else strip.transpose(1, 2, 0)
        ax.imshow(strip, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_yticks([])
        ax.set_xticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path, caption)


def latent_map(
    codes: Tensor, labels: Tensor | None, path: str | Path, caption: str = "", class_names: Sequence[str] | None = None
) -> Path:  # fmt: skip
    """The 2-D codes ``(N, 2)`` of test images, coloured by class (:func:`aelab.visuals.latent_scatter`)."""
    if codes.shape[1] != 2:
        raise ValueError(
            f"latent_map needs 2-D codes, got {codes.shape[1]}-D (use experiment=seed_deep_3's 2-D form)"
        )
    from aelab import visuals

    fig, ax = plt.subplots(figsize=(WIDTH * 0.75, WIDTH * 0.65))
    points = visuals.latent_scatter(ax, codes, labels, class_names, s=3)
    visuals.class_colorbar(fig, points, ax, class_names)
    ax.set_title("Latent space: test images' codes, coloured by class")
    return _save(fig, path, caption)


def validation_curves(run_dirs: Mapping[str, str | Path], path: str | Path, caption: str = "") -> Path:
    """``val/loss`` per epoch of each run (read from its TensorBoard events), one panel per model (their
    losses have different units: BCE per pixel for the AEs, nats per image for the VAEs)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    n = len(run_dirs)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH, 2.3 * rows), squeeze=False)
    for ax, (label, run_dir) in zip(axes.flat, run_dirs.items(), strict=False):  # spare panels stay empty
        ea = EventAccumulator(str(Path(run_dir) / "tensorboard"), size_guidance={"scalars": 0})
        ea.Reload()
        values = [e.value for e in ea.Scalars("val/loss")] if "val/loss" in ea.Tags()["scalars"] else []
        ax.plot(range(1, len(values) + 1), values, "-")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("val/loss")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Validation loss during training", fontsize=10)
    return _save(fig, path, caption)


def seed_stability(
    summary: Mapping[str, Mapping[str, float]],
    keys: Sequence[str],
    path: str | Path,
    caption: str = "",
    per_seed: Mapping[str, Sequence[float]] | None = None,
) -> Path:
    """Mean ± std over seeds of a few metrics (``summary`` as written by ``scripts/aggregate.py``), with each
    seed's value beside it when ``per_seed`` (``{key: [value per seed]}``) is given."""
    keys = [k for k in keys if k in summary]
    fig, axes = plt.subplots(1, len(keys), figsize=(WIDTH, 2.6), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        s = summary[key]
        ax.errorbar([0], [s["mean"]], yerr=[s["std"]], fmt="o", capsize=6, label="mean ± std")
        values = (per_seed or {}).get(key) or []
        if values:
            ax.plot([0.3] * len(values), values, "o", color="0.5", ms=4, label="each seed")
            ax.set_xlim(-0.5, 0.8)
            ax.legend(fontsize=7, loc="best")
        ax.set_xticks([])
        ax.set_title(f"{key}\n{s['mean']:.4g} ± {s['std']:.2g} (n={int(s['n'])})", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Stability across seeds (mean ± sample std)", fontsize=10)
    return _save(fig, path, caption)


def photo_comparison(
    panels: Sequence[Sequence[tuple[str, Tensor]]], path: str | Path, title: str, caption: str = ""
) -> Path:
    """Rows of labelled uint8 crops ``(C, H, W)`` shown at 100% (one screen pixel per image pixel where the page
    allows): per photograph, the original and each codec's decoding, each panel titled with its bytes and PSNR."""
    rows, cols = len(panels), max(len(r) for r in panels)
    side = max(max(img.shape[-1] for _, img in r) for r in panels)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * side / 100 + 0.4, rows * (side / 100 + 0.45) + 0.4),
                             squeeze=False, dpi=100)  # fmt: skip
    for ax_row, row in zip(axes, panels, strict=True):
        for ax, (label, img) in zip(ax_row, row, strict=False):
            arr = img.cpu().numpy()
            ax.imshow(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0), cmap="gray", vmin=0, vmax=255,
                      interpolation="nearest")  # fmt: skip
            ax.set_title(label, fontsize=7)
        for ax in ax_row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    return _save(fig, path, caption)
