"""Anomaly detection in time series, per point: the figures (aeon's implementations of VUS-PR, VUS-ROC, range-AUC-PR,
AUROC and range-F1), point-adjusted F1 (shown only beside a random score's), and aeon's detectors fitted on the
same training parts, each scoring the same series (TSB-AD's protocol: Liu & Paparrizos, NeurIPS 2024).
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger("aelab")

#: aeon's detectors run beside every model (and a seeded random score, the floor of every figure)
DETECTORS = ("pca", "kmeansad", "iforest", "lof", "stomp", "dwt_mlead", "random")
#: detectors that fit on the training part; the others (``fit_is_empty`` in aeon) score the series alone
SEMI_SUPERVISED = ("pca", "kmeansad", "iforest", "lof")
#: detectors of one channel only (aeon's ``capability:multivariate`` false)
UNIVARIATE_ONLY = ("stomp", "dwt_mlead")


def point_adjusted_f1(labels: np.ndarray, flags: np.ndarray) -> float:
    """Point-adjusted F1 (Xu et al., WWW 2018, §4.2): every point of a labelled range counts as found when any point
    of it is flagged. Kim et al. (AAAI 2022) show that it lets a random score look state of the art: aelab reports
    it only beside a random score's.

    Args:
        labels: 0/1 per point; flags: 0/1 per point.
    """
    from aelab.data.timeseries import label_ranges

    labels = np.asarray(labels, dtype=bool)
    adjusted = np.asarray(flags, dtype=bool).copy()
    for first, end in label_ranges(labels):
        if adjusted[first:end].any():
            adjusted[first:end] = True
    tp = float((adjusted & labels).sum())
    fp, fn = float((adjusted & ~labels).sum()), float((~adjusted & labels).sum())
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def series_figures(labels: np.ndarray, scores: np.ndarray, max_buffer: int) -> dict[str, float]:
    """The threshold-free figures of per-point ``scores`` (higher = more anomalous) against 0/1 ``labels``, from
    ``aeon.benchmarking.metrics.anomaly_detection``: ``vus_pr`` and ``vus_roc`` (the volume under the range-based
    PR / ROC surface over buffers 0..``max_buffer``, Paparrizos et al., PVLDB 2022), ``range_auc_pr`` (at buffer
    ``max_buffer``) and the point-wise ``auroc``. The values are aeon's ``range_pr_vus_score``,
    ``range_roc_vus_score``, ``range_pr_auc_score`` and ``roc_auc_score``; the PR and ROC areas of each buffer come
    from one call of aeon's ``range_pr_roc_auc_support`` (each VUS function would compute both again).

    Raises:
        ValueError: when the labels hold no anomaly or no normal point.
    """
    from aeon.benchmarking.metrics.anomaly_detection import range_pr_roc_auc_support, roc_auc_score
    from aeon.benchmarking.metrics.anomaly_detection._util import check_y

    y = np.asarray(labels, dtype=bool)
    if y.all() or not y.any():
        raise ValueError("the labels need both normal points and anomalies")
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=np.nanmin(scores))
    if np.unique(s).shape[0] == 1:  # aeon's value for a constant score
        return {"vus_pr": 0.0, "vus_roc": 0.0, "range_auc_pr": 0.0, "auroc": 0.5}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y_true, _ = check_y(y, s, force_y_pred_continuous=True)
        areas = np.array([range_pr_roc_auc_support(y_true, s, buffer_size=int(b), skip_check=True)
                          for b in range(int(max_buffer) + 1)])  # fmt: skip
        return {
            "vus_pr": float(areas[:, 0].mean()),
            "vus_roc": float(areas[:, 1].mean()),
            "range_auc_pr": float(areas[-1, 0]),
            "auroc": float(roc_auc_score(y, s)),
        }


def cached_series_figures(
    cache_dir: Path, labels: np.ndarray, scores: np.ndarray, max_buffer: int
) -> dict[str, float]:
    """:func:`series_figures`, kept in ``cache_dir/series_detectors/`` under a fingerprint of the labels, the scores,
    the buffer and aeon's version (a detector's figures on a series repeat exactly;
    :func:`aelab.evaluation.cache.cached_figures`)."""
    import aeon

    from aelab.evaluation.cache import cached_figures

    key = (
        max_buffer,
        aeon.__version__,
        np.asarray(labels, dtype=np.int8),
        np.asarray(scores, dtype=np.float64),
    )
    return cached_figures(
        cache_dir, "series_detectors", key, lambda: series_figures(labels, scores, max_buffer)
    )


def range_f1(labels: np.ndarray, flags: np.ndarray) -> float:
    """Range-based F1 of 0/1 point flags (Tatbul et al., NeurIPS 2018; aeon's ``range_f_score``: flat bias,
    reciprocal cardinality, recall's existence reward α = 0.5); 0 when nothing is flagged."""
    from aeon.benchmarking.metrics.anomaly_detection import range_f_score

    flags = np.asarray(flags, dtype=bool)
    if not flags.any():
        return 0.0
    if (
        flags.all()
    ):  # aeon returns 0 for a constant prediction; every point flagged: recall 1, precision the share
        share = float(np.asarray(labels, dtype=bool).mean())
        return 2 * share / (1 + share)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(range_f_score(np.asarray(labels, dtype=bool), flags))


def _detector(name: str, window: int, seed: int):
    """aeon's detector ``name`` with the data's window (TSB-AD runs each with the series' period)."""
    if name == "pca":
        from aeon.anomaly_detection.series import PyODAdapter
        from pyod.models.pca import PCA

        return PyODAdapter(PCA(random_state=seed), window_size=window)
    if name == "kmeansad":
        from aeon.anomaly_detection.series.distance_based import KMeansAD

        return KMeansAD(window_size=window, random_state=seed)
    if name == "iforest":
        from aeon.anomaly_detection.series.outlier_detection import IsolationForest

        return IsolationForest(window_size=window, random_state=seed)
    if name == "lof":
        from aeon.anomaly_detection.series.distance_based import LOF

        return LOF(window_size=window)
    if name == "stomp":
        from aeon.anomaly_detection.series.distance_based import STOMP

        return STOMP(window_size=window)
    if name == "dwt_mlead":
        from aeon.anomaly_detection.series.distribution_based import DWT_MLEAD

        return DWT_MLEAD()
    raise ValueError(f"unknown detector {name!r}; the detectors are {DETECTORS}")


def detector_scores(
    name: str, train: np.ndarray, series: np.ndarray, window: int, seed: int = 0
) -> np.ndarray:
    """Per-point scores ``(N,)`` of detector ``name`` (:data:`DETECTORS`) on a scaled ``series`` ``(N, C)``: fitted
    on the scaled training part ``train`` ``(n, C)`` when it learns (:data:`SEMI_SUPERVISED`), else run on the series
    alone; ``random`` is a seeded uniform score.

    Raises:
        ValueError: for an unknown name, or a one-channel detector given several channels.
    """
    if name == "random":
        return np.random.default_rng(seed).random(len(series))
    if name in UNIVARIATE_ONLY and series.shape[1] > 1:
        raise ValueError(f"{name} takes one channel; the series has {series.shape[1]}")
    det = _detector(name, window, seed)
    series, train = np.asarray(series, dtype=np.float64), np.asarray(train, dtype=np.float64)
    x = series[:, 0] if series.shape[1] == 1 else series
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # aeon reads (channels, timepoints) unless told axis=0: our series are (timepoints, channels)
        if name in SEMI_SUPERVISED:
            det.fit(train[:, 0] if train.shape[1] == 1 else train, axis=0)
            return np.asarray(det.predict(x, axis=0), dtype=np.float64)
        return np.asarray(det.fit_predict(x, axis=0), dtype=np.float64)


def cached_detector_scores(
    cache_dir: Path,
    name: str,
    train: np.ndarray,
    series: np.ndarray,
    window: int,
    seed: int = 0,
    compute: bool = True,
) -> np.ndarray | None:
    """:func:`detector_scores`, kept in ``cache_dir/series_detectors/`` under a fingerprint of the inputs, the
    detector, the window, the seed and aeon's version (a detector's scores depend on nothing else); ``None`` when
    they are not cached and ``compute`` is false."""
    import aeon

    key = hashlib.sha256()
    for part in (name, str(window), str(seed), aeon.__version__):
        key.update(part.encode())
    for a in (train, series):
        key.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
    path = Path(cache_dir) / "series_detectors" / f"{name}-{key.hexdigest()[:20]}.npy"
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (len(series),):
                return cached
        except (OSError, ValueError):
            pass
    if not compute:
        return None
    scores = detector_scores(name, train, series, window, seed)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, scores, allow_pickle=False)
        tmp.replace(path)
    except OSError as err:
        log.warning("detector scores not cached (%s)", err)
    return scores


def rockad_scorer(seed: int = 0) -> Callable:
    """aeon's ROCKAD (Theissen et al., 2023: ROCKET features, a bagged k-NN) as ``fit(train (N, T, C)) → score(x)``
    on whole series (higher = more anomalous)."""
    from aeon.anomaly_detection.collection import ROCKAD

    def fit(train: np.ndarray):
        model = ROCKAD(n_estimators=10, n_kernels=100, n_neighbors=min(5, len(train) - 1), random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(np.ascontiguousarray(train.transpose(0, 2, 1)))

        def score(x: np.ndarray) -> np.ndarray:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return np.asarray(model.predict(np.ascontiguousarray(x.transpose(0, 2, 1))), dtype=np.float64)

        return score

    return fit


#: how a window's per-point scores become the scores its points receive (:func:`series_point_scores`)
POINT_SCORES = ("window", "point")


def series_point_scores(
    model, values: np.ndarray, window: int, stride: int, batch_size: int, device, reduction: str = "window"
) -> np.ndarray:
    """A model's per-point anomaly scores ``(N,)`` of a scaled series ``values`` ``(N, C)``: its windows ``stride``
    apart scored per point (the model's ``point_scores``, ``(B, T, C) → (B, T)``); with ``reduction="window"`` each
    window's score is the mean over its points (its reconstruction error), given to each of them, as TSB-AD maps
    every windowed detector's scores (and aeon's detectors do); with ``"point"`` each point keeps its own error.
    Either way a point's score is the mean over the windows that cover it
    (:func:`aelab.data.timeseries.windows_to_points`).

    Raises:
        ValueError: when the series is shorter than the window, or for an unknown ``reduction``.
    """
    import torch

    if reduction not in POINT_SCORES:
        raise ValueError(f"data.point_score={reduction!r} must be one of {POINT_SCORES}")
    from aelab.data.timeseries import make_windows, window_starts, windows_to_points
    from aelab.evaluation.metrics import map_batches

    starts = window_starts(len(values), window, stride)
    windows = torch.from_numpy(np.ascontiguousarray(make_windows(values, starts, window), dtype=np.float32))
    with torch.no_grad():
        scores = map_batches(model.point_scores, windows, batch_size, device).double().numpy()
    if reduction == "window":
        scores = np.repeat(scores.mean(1, keepdims=True), scores.shape[1], axis=1)
    return windows_to_points(scores, starts, len(values))
