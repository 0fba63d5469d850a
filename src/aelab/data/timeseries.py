"""Time series as windows ``(T, C)``: sensor channels or ECG leads, scored for anomalies per time point (TSB-AD's
protocol, Liu & Paparrizos, NeurIPS 2024). Each series has a normal *training part*: ``train`` holds its windows but
its last ``val_size`` share, ``val`` that share (time-ordered), ``test`` every window of the whole series one point
apart; a point's score is the mean over the windows that cover it (:func:`~aelab.data.windows.windows_to_points`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aelab.data.base import TensorDataModule, check_split
from aelab.data.tables import read_table
from aelab.data.windows import (
    Series,
    label_ranges,
    make_windows,
    read_channels,
    window_starts,
    windows_to_points,
)
from aelab.errors import ConfigError, DataError

log = logging.getLogger("aelab")

SERIES_SCALINGS = ("standard", "minmax", "none")
SERIES_IMPUTATIONS = (None, "ffill", "interpolate", "zero")


class TimeSeriesDataModule(TensorDataModule):
    """One or more time series (CSV or Parquet) as windows ``(T, C)`` on the data contract (kind ``series``),
    scored for anomalies per time point (see the module docstring for the splits).

    Args:
        path: the file (one row per time point; several series stacked, told apart by ``series_column``).
        value_columns: the channels (``None``: every column but the time, series and label columns).
        time_column: orders the points of each series (``None``: the file's order).
        series_column: names the series a row belongs to (``None``: one series).
        label_column: 0/1 per point, 1 inside a labelled anomaly (``None``: no labels, no detection figures).
        window: points per window ``T``.
        stride: points between training (and validation) windows.
        test_stride: points between scored windows (1: every point is in ``window`` windows).
        train_end: where each series' training part ends: a point count, or a fraction in (0, 1) of its points
            (``None``: just before its first labelled anomaly; needs labels).
        val_size: the last share of each training part held out for validation (a fraction in (0, 1)).
        scaling: ``standard`` (zero mean, unit variance per channel), ``minmax`` (the training range to [0, 1]) or
            ``none``, fitted on the training parts only and saved in the checkpoint as plain data.
        impute: ``None`` (a missing value is refused), ``ffill`` (the last value seen; a leading gap takes the
            first), ``interpolate`` (linear in the point index) or ``zero``.
        threshold_percentile: the percentile of the validation points' scores above which a point is flagged.
        point_score: ``window`` (each window's mean error given to its points, TSB-AD's mapping of windowed
            detectors) or ``point`` (each point's own error); either way averaged over the covering windows.
        **kwargs: as for :class:`~aelab.data.TensorDataModule` (``batch_size``, ``split_seed``, ...).

    Raises:
        ConfigError: for a column the file lacks, a window longer than a series, an impossible split;
        DataError: for a missing or non-numeric value, labels other than 0/1, a training part that holds a
            labelled anomaly — each naming the file, the column and the fix.
    """

    name = "series"
    sample_kind = "series"
    train_sections = ("series_anomaly",)

    def __init__(
        self,
        path: str | None = None,
        value_columns: Sequence[str] | None = None,
        time_column: str | None = None,
        series_column: str | None = None,
        label_column: str | None = None,
        window: int = 100,
        stride: int = 1,
        test_stride: int = 1,
        train_end: int | float | None = None,
        val_size: float = 0.2,
        scaling: str = "standard",
        impute: str | None = None,
        threshold_percentile: float = 99.0,
        point_score: str = "window",
        bounded: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(val_size=val_size, bounded=bounded, **kwargs)
        if point_score not in ("window", "point"):
            raise ConfigError(f"data.point_score={point_score!r} must be window or point")
        self.point_score = str(point_score)
        self.path = None if path is None else str(path)
        if self.path is not None:
            self.name = Path(self.path).stem
        self.value_columns = None if value_columns is None else [str(c) for c in value_columns]
        self.time_column = None if time_column is None else str(time_column)
        self.series_column = None if series_column is None else str(series_column)
        self.label_column = None if label_column is None else str(label_column)
        for key, value in (
            ("data.window", window),
            ("data.stride", stride),
            ("data.test_stride", test_stride),
        ):
            if int(value) < 1:
                raise ConfigError(f"{key}={value} must be a positive number of points")
        self.window, self.stride, self.test_stride = int(window), int(stride), int(test_stride)
        if self.test_stride > self.window:
            raise ConfigError(
                f"data.test_stride={test_stride} > data.window={window} leaves points unscored: lower it (1 scores "
                "every point in every window)"
            )
        if not 0 < float(val_size) < 1:
            raise ConfigError(f"data.val_size={val_size} must be a fraction in (0, 1) of each training part")
        self.train_end = train_end
        if scaling not in SERIES_SCALINGS:
            raise ConfigError(f"data.scaling={scaling!r} must be one of {SERIES_SCALINGS}")
        if impute not in SERIES_IMPUTATIONS:
            raise ConfigError(f"data.impute={impute!r} must be one of {SERIES_IMPUTATIONS}")
        self.scaling, self.impute = scaling, impute
        if not 0 < float(threshold_percentile) < 100:
            raise ConfigError(f"data.threshold_percentile={threshold_percentile} must be in (0, 100)")
        self.threshold_percentile = float(threshold_percentile)
        self.channels: list[str] = []
        self.scaler: dict[str, list[float]] = {}
        self.series: list[Series] = []
        self._test_index: list[tuple[int, np.ndarray]] = []

    # ------------------------------------------------------------------ reading
    @property
    def source(self) -> str:
        return self.path or self.name

    def load_frame(self):
        """The file as a pandas frame (:func:`~aelab.data.tables.read_table`)."""
        if self.path is None:
            raise ConfigError("data=timeseries needs a file: data.path=/path/to/series.csv (CSV or Parquet)")
        return read_table(self.path)

    def value_columns_of(self, frame) -> list[str]:
        """The channels of a frame, checked: present and numeric.

        Raises:
            ConfigError: for a named column the file lacks; DataError: for a non-numeric channel.
        """
        import pandas as pd

        names = [str(c) for c in frame.columns]
        frame.columns = names
        for key, col in (("data.time_column", self.time_column), ("data.series_column", self.series_column),
                         ("data.label_column", self.label_column)):  # fmt: skip
            if col is not None and col not in names:
                raise ConfigError(
                    f"{self.source}: {key}={col!r} is not a column; its columns: {names}: set {key}"
                )
        for col in self.value_columns or []:
            if col not in names:
                raise ConfigError(
                    f"{self.source}: data.value_columns names {col!r}, which is not a column; its columns: {names}"
                )
        skip = {self.time_column, self.series_column, self.label_column}
        chosen = self.value_columns or [c for c in names if c not in skip]
        if not chosen:
            raise ConfigError(f"{self.source}: no channel; name them with data.value_columns=[...]")
        for col in chosen:
            values = pd.to_numeric(frame[col], errors="coerce")
            bad = values.isna() & frame[col].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(
                    f"{self.source}: channel {col!r} holds {frame[col].iloc[row]!r} (row {row}), not a number: fix "
                    "the file, or list the numeric channels with data.value_columns=[...]"
                )
        return chosen

    def _values(self, frame, columns: list[str], what: str) -> np.ndarray:
        """The channels of one series as float64 ``(N, C)`` (:func:`~aelab.data.windows.read_channels`)."""
        return read_channels(frame, columns, self.impute, self.source, what)

    def _labels(self, frame, what: str) -> np.ndarray | None:
        if self.label_column is None:
            return None
        import pandas as pd

        raw = frame[self.label_column]
        labels = pd.to_numeric(raw, errors="coerce")
        bad = ~labels.isin([0, 1])
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{self.source}: label column {self.label_column!r} holds {str(raw.iloc[row])!r} at point {row} of {what}; "
                "labels must be 0 (normal) or 1 (anomaly): fix the column, or set data.label_column=null"
            )
        return labels.to_numpy(dtype=np.int64)

    def _train_end(self, labels: np.ndarray | None, n: int, what: str) -> int:
        end = self.train_end
        if end is None:
            if labels is None or not labels.any():
                raise ConfigError(
                    f"{self.source}: {what} needs data.train_end (a point count, or a fraction of the series) to say "
                    "where its normal training part ends"
                )
            return int(np.flatnonzero(labels)[0])
        if isinstance(end, float) and 0 < end < 1:
            return int(round(end * n))
        if isinstance(end, bool) or not isinstance(end, int | float) or not 0 < end <= n:
            raise ConfigError(
                f"data.train_end={end!r} must be a point count in (0, {n}] or a fraction in (0, 1) of {what}"
            )
        return int(end)

    def load_series(self) -> list[Series]:
        """The series to score, each with its training part (here: read from :attr:`path`, split at ``train_end``).

        Raises:
            ConfigError, DataError: see the class.
        """
        frame = self.load_frame()
        if len(frame) == 0:
            raise DataError(f"{self.source}: the file has no rows: give one row per time point")
        self.channels = self.value_columns_of(frame)
        groups = [(self.name, frame)] if self.series_column is None else [
            (f"{self.series_column}={key}", part) for key, part in frame.groupby(self.series_column, sort=True)
        ]  # fmt: skip
        out = []
        for name, part in groups:
            if self.time_column is not None:
                part = part.sort_values(self.time_column, kind="stable")
            what = f"series {name}" if self.series_column else "the series"
            values = self._values(part, self.channels, what)
            labels = self._labels(part, what)
            end = self._train_end(labels, len(values), what)
            out.append(Series(name, values, labels, values[:end]))
        return out

    # ------------------------------------------------------------------ splits
    def _fit_scaler(self, train: np.ndarray) -> None:
        if self.scaling == "standard":
            mean, scale = train.mean(0), train.std(0)
        elif self.scaling == "minmax":
            mean, scale = train.min(0), train.max(0) - train.min(0)
        else:
            mean, scale = np.zeros(train.shape[1]), np.ones(train.shape[1])
        scale = np.where(scale > 1e-12, scale, 1.0)  # a constant channel is only centred
        self.scaler = {"offset": mean.tolist(), "scale": scale.tolist()}

    def scale(self, values: np.ndarray) -> np.ndarray:
        """Points ``(N, C)`` in the training parts' scaling (float32)."""
        offset, scale = np.asarray(self.scaler["offset"]), np.asarray(self.scaler["scale"])
        return ((values - offset) / scale).astype(np.float32)

    def setup(self, stage: str | None = None) -> None:
        self.check_global_batch()
        if "train" in self._splits:
            return
        series = self.load_series()
        for s in series:
            if s.labels is not None and len(s.labels) != len(s.values):
                raise DataError(
                    f"{self.source}: {s.name} has {len(s.values)} points but {len(s.labels)} labels"
                )
            train_labels = s.labels[: len(s.train)] if s.labels is not None and s.train is not None else None
            if train_labels is not None and np.shares_memory(s.train, s.values) and train_labels.any():
                first = int(np.flatnonzero(train_labels)[0])
                raise DataError(
                    f"{self.source}: the training part of {s.name} (its first {len(s.train)} points) holds a labelled "
                    f"anomaly at point {first}: set data.train_end={first} or less, so the model learns normal points only"
                )
            if len(s.values) < self.window:
                raise ConfigError(
                    f"{self.source}: {s.name} has {len(s.values)} points, shorter than data.window={self.window}: "
                    f"lower data.window to at most {len(s.values)}"
                )
            n_val = int(round(self.val_size * len(s.train)))
            if len(s.train) - n_val < self.window or n_val < self.window:
                raise ConfigError(
                    f"{self.source}: the training part of {s.name} has {len(s.train)} points, too few for windows of "
                    f"{self.window} in both training ({len(s.train) - n_val}) and validation ({n_val}, data.val_size="
                    f"{self.val_size}): lower data.window or raise data.train_end"
                )
        self.series = series
        self._fit_scaler(np.concatenate([s.train for s in series]))
        parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
        self._test_index = []
        for i, s in enumerate(series):
            train = self.scale(s.train)
            n_fit = len(train) - int(round(self.val_size * len(train)))
            fit, val = train[:n_fit], train[n_fit:]
            parts["train"].append(
                make_windows(fit, window_starts(len(fit), self.window, self.stride), self.window)
            )
            parts["val"].append(
                make_windows(val, window_starts(len(val), self.window, self.stride), self.window)
            )
            starts = window_starts(len(s.values), self.window, self.test_stride)
            parts["test"].append(make_windows(self.scale(s.values), starts, self.window))
            self._test_index.append((i, starts))
        for split, chunks in parts.items():
            self._splits[split] = self._checked(
                (torch.from_numpy(np.concatenate(chunks)), None), f"the {split} windows"
            )
        log.info(
            "%s: %d series, %d channels; %d training, %d validation, %d scored windows of %d points",
            self.source, len(series), len(self.channels), len(self._splits["train"][0]),
            len(self._splits["val"][0]), len(self._splits["test"][0]), self.window,
        )  # fmt: skip

    # ------------------------------------------------------------------ the contract
    @property
    def shape(self) -> tuple[int, int]:
        """``(T, C)``: points per window and channels."""
        if self.configured_shape is not None:
            return self.configured_shape
        return tuple(self.split_tensors("train")[0].shape[1:])

    def split_tensors(self, split: str) -> tuple[Tensor, Tensor | None]:
        """The windows ``(N, T, C)`` of ``train``, ``val`` or ``test`` (float32, scaled) and no labels."""
        check_split(split)
        self.setup()
        return self._splits[split]

    def test_windows(self) -> list[tuple[Series, slice, np.ndarray]]:
        """Per scored series: the series, the rows of its windows in the ``test`` split, and their starts."""
        self.setup()
        out, row = [], 0
        for i, starts in self._test_index:
            out.append((self.series[i], slice(row, row + len(starts)), starts))
            row += len(starts)
        return out

    def point_labels(self) -> list[np.ndarray] | None:
        """The 0/1 labels of each scored series (``None`` when the data has no labels)."""
        self.setup()
        if any(s.labels is None for s in self.series):
            return None
        return [s.labels for s in self.series]

    def training_points(self) -> list[np.ndarray]:
        """The scaled training part of each series ``(n, C)`` (validation share included): what the detectors fit."""
        self.setup()
        return [self.scale(s.train) for s in self.series]

    def validation_points(self) -> list[tuple[np.ndarray, int]]:
        """Per series, the scaled training part ``(n, C)`` and where its validation share starts."""
        self.setup()
        out = []
        for s in self.series:
            train = self.scale(s.train)
            out.append((train, len(train) - int(round(self.val_size * len(train)))))
        return out

    # ------------------------------------------------------------------ checkpoints
    def fingerprint(self) -> str:
        """A SHA-256 of the scaled training parts and where their validation shares start: what the flag threshold
        of ``aelab-score`` is computed from (a changed training file gives another)."""
        import hashlib

        digest = hashlib.sha256()
        for train, start in self.validation_points():
            digest.update(np.ascontiguousarray(train, dtype=np.float32).tobytes())
            digest.update(str(start).encode())
        return digest.hexdigest()

    def state_dict(self) -> dict[str, Any]:
        """The scaling and the windowing as plain data (into every checkpoint: ``aelab-score`` applies them)."""
        self.setup()
        return {
            "kind": "series",
            "channels": list(self.channels),
            "scaler": {k: list(v) for k, v in self.scaler.items()},
            "scaling": self.scaling,
            "window": self.window,
            "test_stride": self.test_stride,
            "point_score": self.point_score,
            "time_column": self.time_column,
            "series_column": self.series_column,
            "fingerprint": self.fingerprint(),
            "impute": self.impute,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore: the splits and the scaling are refitted from the file (deterministically)."""


__all__ = [
    "Series",
    "TimeSeriesDataModule",
    "label_ranges",
    "make_windows",
    "window_starts",
    "windows_to_points",
]
