"""A series' window bookkeeping: where windows start, the windows themselves, and per-point scores mapped back from
the windows that cover each point (:mod:`aelab.data.timeseries` and the series evaluation use them)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from aelab.errors import DataError

log = logging.getLogger("aelab")


@dataclass
class Series:
    """One series to score: its points ``values (N, C)`` (float64, unscaled), 0/1 ``labels (N,)`` or ``None``, and
    its training part: ``train`` ``(n, C)`` (a prefix of ``values``, or a separate normal recording)."""

    name: str
    values: np.ndarray
    labels: np.ndarray | None
    train: np.ndarray


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
    """The start of each window of ``window`` points, ``stride`` apart, over a series of ``length`` points; the last
    window always ends at the last point (so every point is covered when ``stride <= window``).

    Raises:
        ValueError: when the series is shorter than the window.
    """
    if length < window:
        raise ValueError(f"a series of {length} points is shorter than the window of {window}")
    starts = np.arange(0, length - window + 1, stride)
    if starts[-1] != length - window:
        starts = np.r_[starts, length - window]
    return starts.astype(np.int64)


def make_windows(values: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """The windows ``(len(starts), window, C)`` of a series ``(N, C)`` at ``starts``."""
    index = starts[:, None] + np.arange(window)[None, :]
    return values[index]


def windows_to_points(scores: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Per-point scores of a series of ``length`` points from scores of its windows: each point gets the mean of
    its scores over the windows that cover it.

    Args:
        scores: ``(W, T)``, a score per point of each window (repeat a per-window score over its ``T`` points).
        starts: ``(W,)`` each window's first point.
        length: the series' points.

    Returns:
        ``(length,)`` float64; ``nan`` at a point no window covers.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(
            f"window scores must be (W, T), got shape {scores.shape}; repeat a window score over T"
        )
    window = scores.shape[1]
    total = np.zeros(length, dtype=np.float64)
    count = np.zeros(length, dtype=np.float64)
    for offset in range(window):  # one vectorised add per position inside the window
        np.add.at(total, starts + offset, scores[:, offset])
        np.add.at(count, starts + offset, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def label_ranges(labels: np.ndarray) -> list[tuple[int, int]]:
    """The labelled anomalies of 0/1 ``labels`` as ``[(first, end), ...]`` (end exclusive)."""
    d = np.diff(np.r_[0, np.asarray(labels, dtype=np.int64), 0])
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def read_channels(frame, columns: list[str], impute: str | None, source: str, what: str) -> np.ndarray:
    """The channels of one series as float64 ``(N, C)``, missing values refused or imputed."""
    import pandas as pd

    x = np.array(frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64))
    missing = ~np.isfinite(x)
    if not missing.any():
        return x
    if impute is None:
        row, col = np.argwhere(missing)[0]
        raise DataError(
            f"{source}: channel {columns[col]!r} has no value at point {row} of {what}: fill it, or set "
            "data.impute=ffill|interpolate|zero"
        )
    for c in range(x.shape[1]):
        gap = missing[:, c]
        if gap.all():
            raise DataError(f"{source}: channel {columns[c]!r} of {what} has no value at all: drop it")
        if impute == "zero":
            x[gap, c] = 0.0
        elif impute == "interpolate":
            idx = np.arange(len(x))
            x[gap, c] = np.interp(idx[gap], idx[~gap], x[~gap, c])
        else:  # ffill, a leading gap taking the first value
            col = pd.Series(x[:, c]).ffill().bfill()
            x[:, c] = col.to_numpy()
    log.info("%s: %d missing values of %s imputed (%s)", source, int(missing.sum()), what, impute)
    return x


__all__ = ["Series", "read_channels", "label_ranges", "make_windows", "window_starts", "windows_to_points"]
