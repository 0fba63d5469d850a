"""Anomalies in time series, per point: the model's scores beside aeon's detectors on the same series."""

from __future__ import annotations

import logging

import numpy as np

from aelab.data.timeseries import label_ranges
from aelab.errors import ConfigError
from aelab.evaluation.context import EvalContext, requires
from aelab.evaluation.series import (
    DETECTORS,
    UNIVARIATE_ONLY,
    cached_detector_scores,
    cached_series_figures,
    point_adjusted_f1,
    range_f1,
    series_figures,
    series_point_scores,
)
from aelab.models.capabilities import Autoencoding

log = logging.getLogger("aelab")
#: a series this long or longer runs its detectors in parallel (shorter ones finish before workers would start)
PARALLEL_POINTS = 2000


def _points(ctx: EvalContext, values: np.ndarray, stride: int, window: int) -> np.ndarray:
    """The model's per-point scores of a scaled series ``(N, C)`` from its windows ``stride`` apart."""
    reduction = getattr(ctx.datamodule, "point_score", "window")
    return series_point_scores(ctx.model, values, window, stride, ctx.batch_size, ctx.device, reduction)


@requires(Autoencoding, kinds=("series",))
def series_anomaly(
    ctx: EvalContext,
    detectors=DETECTORS,
    max_buffer: int | None = None,
    seed: int = 0,
    figure: bool = True,
    n_jobs: int = -1,
) -> dict[str, float]:
    """Per-point anomaly detection on labelled series (data with ``point_labels``, :mod:`aelab.data.timeseries`).

    Each point's score is the mean over the test windows that cover it of their scores (``data.point_score``: a
    window's mean of the model's per-point scores, :meth:`point_scores` — the squared reconstruction error, USAD's
    α/β score — or each point's own). A point is flagged above the
    ``threshold_percentile`` of the validation points' scores (the held-out end of the training part).

    Keys (the mean over the scored series): ``test/anomaly/vus_pr`` (primary), ``vus_roc``, ``range_auc_pr``,
    ``auroc`` and ``range_f1`` (at the validation threshold); ``test/anomaly/pa_f1`` beside
    ``test/anomaly/random_pa_f1`` only (point adjustment flatters any score, Kim et al., AAAI 2022); each of
    ``detectors`` (:data:`aelab.evaluation.series.DETECTORS`, fitted on the same training parts) as
    ``test/anomaly/<name>_vus_pr``, ``_vus_roc``, ``_range_auc_pr``, ``_auroc``. ``max_buffer``: the VUS buffers'
    largest size (``None``: the data's window, TSB-AD's choice). A figure of each series with the model's score and
    the labelled ranges goes to the loggers and ``series_scores.png``; the scores to ``series_scores.npz``.
    ``n_jobs``: processes the detectors not cached yet run in (joblib; −1: one per core, 1: in this process; 0 is
    refused).
    """
    dm = ctx.datamodule
    labels_of = getattr(dm, "point_labels", None)
    labels = labels_of() if callable(labels_of) else None
    if labels is None:
        return ctx.skip("series_anomaly", f"{dm.name} has no per-point labels (data.label_column)")
    window = int(dm.window)
    buffer = window if max_buffer is None else int(max_buffer)
    # the threshold: the validation points' scores (windows of the held-out end of each training part)
    val_scores = []
    for train, start in dm.validation_points():
        val = train[start:]
        val_scores.append(_points(ctx, val, dm.test_stride, window))
    threshold = float(np.nanpercentile(np.concatenate(val_scores), dm.threshold_percentile))
    training = dm.training_points()
    per_series: list[dict[str, float]] = []
    saved: dict[str, np.ndarray] = {}
    drawn = []
    for i, (series, _rows, _starts) in enumerate(dm.test_windows()):
        y = labels[i]
        if not y.any() or y.all():
            log.warning(
                "series %s has %s: not scored",
                series.name,
                "no anomaly" if not y.any() else "no normal point",
            )
            continue
        values = dm.scale(series.values)
        model = _points(ctx, values, dm.test_stride, window)
        flags = model > threshold
        rng = np.random.default_rng(seed)
        figures = {f"{k}": v for k, v in series_figures(y, model, buffer).items()}
        figures["range_f1"] = range_f1(y, flags)
        figures["pa_f1"] = point_adjusted_f1(y, flags)
        random_val = rng.random(len(values))
        random_flags = random_val > np.percentile(rng.random(len(values)), dm.threshold_percentile)
        figures["random_pa_f1"] = point_adjusted_f1(y, random_flags)
        saved[f"{i}_model"], saved[f"{i}_labels"] = model, y
        runnable = []
        for name in detectors:
            if name in UNIVARIATE_ONLY and values.shape[1] > 1:
                ctx.skip(
                    f"series_anomaly.{name}", f"{name} takes one channel; {dm.name} has {values.shape[1]}"
                )
                continue
            runnable.append(name)
        for name, (scores, found) in zip(runnable, _run_detectors(
            runnable, dm.cache_dir, training[i], values, window, seed, y, buffer, int(n_jobs)
        ), strict=True):  # fmt: skip
            saved[f"{i}_{name}"] = scores
            figures |= {f"{name}_{k}": v for k, v in found.items()}
        per_series.append(figures)
        drawn.append((series.name, values, model, y))
    if not per_series:
        return ctx.skip("series_anomaly", f"no series of {dm.name} has both anomalies and normal points")
    out = {f"test/anomaly/{k}": float(np.mean([f[k] for f in per_series if k in f])) for k in per_series[0]}
    out |= {"test/anomaly/threshold": threshold, "test/anomaly/num_series": float(len(per_series)),
            "test/anomaly/num_points": float(sum(len(d[3]) for d in drawn)),
            "test/anomaly/vus_max_buffer": float(buffer)}  # fmt: skip
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    np.savez(ctx.output_dir / "series_scores.npz", **saved)
    if figure:
        _draw(ctx, drawn, threshold)
    return out


def _detector(name: str, cache_dir, train, values, window: int, seed: int, labels, buffer: int):
    """One detector's per-point scores and their figures (each cached: :mod:`aelab.evaluation.series`)."""
    scores = cached_detector_scores(cache_dir, name, train, values, window, seed)
    return scores, cached_series_figures(cache_dir, labels, scores, buffer)


def _run_detectors(names, cache_dir, train, values, window, seed, labels, buffer, n_jobs: int) -> list:
    """:func:`_detector` of each name. What the cache holds is read here; the rest runs in ``n_jobs`` processes
    (joblib, scikit-learn's) when there are several and the series is long (``PARALLEL_POINTS``; a worker's start-up
    and imports cost seconds): the detectors and their VUS figures are independent, and most of a cold evaluation.

    Raises:
        ConfigError: for ``n_jobs=0``.
    """
    if int(n_jobs) == 0:
        raise ConfigError(
            "suite.sections.series_anomaly.n_jobs=0 runs nothing: use -1 (one process per core) or a positive count"
        )
    done = {}
    for n in names:
        scores = cached_detector_scores(cache_dir, n, train, values, window, seed, compute=False)
        if scores is not None:
            done[n] = (scores, cached_series_figures(cache_dir, labels, scores, buffer))
    todo = [n for n in names if n not in done]
    if n_jobs == 1 or len(todo) < 2 or len(values) < PARALLEL_POINTS:
        done |= {n: _detector(n, cache_dir, train, values, window, seed, labels, buffer) for n in todo}
    else:
        from joblib import Parallel, delayed

        jobs = (delayed(_detector)(n, cache_dir, train, values, window, seed, labels, buffer) for n in todo)
        done |= dict(zip(todo, Parallel(n_jobs=n_jobs)(jobs), strict=True))
    return [done[n] for n in names]


def _draw(ctx: EvalContext, drawn: list, threshold: float) -> None:
    """Each series (its first channel, scaled), the model's per-point score and the labelled ranges: to the loggers
    and ``series_scores.png``; a figure that cannot be drawn is skipped with a warning."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = min(len(drawn), 4)
        fig, axes = plt.subplots(2 * rows, 1, figsize=(12, 3.2 * rows), dpi=100, sharex=False, squeeze=False)
        for r, (name, values, score, y) in enumerate(drawn[:rows]):
            ax, bx = axes[2 * r, 0], axes[2 * r + 1, 0]
            ax.plot(values[:, 0], lw=0.6, color="0.2")
            bx.plot(score, lw=0.7, color="tab:blue", label="model score")
            bx.axhline(threshold, color="tab:red", lw=0.8, ls="--", label="threshold (validation)")
            for first, end in label_ranges(y):
                for a in (ax, bx):
                    a.axvspan(first, max(end, first + 1), color="tab:red", alpha=0.25, lw=0)
            ax.set_title(f"{name}: the series (scaled) and its labelled anomalies", fontsize=9)
            bx.set_title("the model's per-point score", fontsize=9)
            bx.legend(loc="upper left", fontsize=7)
        fig.tight_layout()
        fig.savefig(ctx.output_dir / "series_scores.png")
        if ctx.loggers:
            from aelab.media import Media

            Media(ctx.loggers).figure("anomaly/series_scores", fig, ctx.step)
        plt.close(fig)
    except Exception as err:  # a figure never stops an evaluation
        log.warning("the series figure was skipped: %s", err)
