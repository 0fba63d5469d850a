"""The bundled time series (read from installed wheels, no download) and the UCR collections' one-class protocol,
on :class:`~aelab.data.timeseries.TimeSeriesDataModule` and the data contract."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aelab.data.base import TensorDataModule, check_split, split_count
from aelab.data.timeseries import Series, TimeSeriesDataModule
from aelab.errors import ConfigError, DataError, MissingDataError

log = logging.getLogger("aelab")


# ---------------------------------------------------------------------------- bundled series
def package_file(package: str, relative: str, install: str) -> Path:
    """A data file an installed wheel ships (found without importing the package).

    Raises:
        MissingDataError: when the package or the file is not installed, naming ``install``.
    """
    import importlib.util

    spec = importlib.util.find_spec(package)
    for root in list(spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(root) / relative
        if path.is_file():
            return path
    raise MissingDataError(f"{package}'s {relative} is not installed: {install} (make install does)")


def read_timeeval_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A TimeEval CSV (``timestamp, value(s)..., is_anomaly``): values ``(N, C)`` and 0/1 labels ``(N,)``."""
    import pandas as pd

    frame = pd.read_csv(path)
    return frame.iloc[:, 1:-1].to_numpy(dtype=np.float64), frame.iloc[:, -1].to_numpy(dtype=np.int64)


AEON = 'pip install "aeon>=1.6,<1.7"'


class BundledSeriesDataModule(TimeSeriesDataModule):
    """A labelled series read from an installed wheel (no download): a subclass names its files
    (:meth:`bundled_series`). ``path`` may give your own copy instead (read as for :class:`TimeSeriesDataModule`)."""

    def __init__(self, path: str | None = None, **kwargs) -> None:
        kwargs.setdefault("label_column", "label")
        super().__init__(path=path, **kwargs)
        self.name = type(self).name if path is None else Path(path).stem

    def bundled_series(self) -> Series:
        raise NotImplementedError

    def load_series(self) -> list[Series]:
        if self.path is not None:
            return super().load_series()
        s = self.bundled_series()
        self.channels = (
            [f"value_{c}" for c in range(s.values.shape[1])] if s.values.shape[1] > 1 else ["value"]
        )
        if s.train is None:
            s.train = s.values[: self._train_end(s.labels, len(s.values), "the series")]
        return [s]


class InternalBleedingDataModule(BundledSeriesDataModule):
    """UCR anomaly archive no. 135, InternalBleeding16 (Wu & Keogh, "Current time series anomaly detection benchmarks
    are flawed", IEEE TKDE 2021; the KDD Cup 2021 series): a patient's heart rate, 7,501 points with one labelled
    anomaly (12 points). The first 1,200 points are the anomaly-free training part. Read from aeon's wheel through
    ``aeon.datasets.load_kdd_tsad_135``."""

    name = "internal_bleeding"

    def bundled_series(self) -> Series:
        path = package_file(
            "aeon", "datasets/data/KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TEST.csv", AEON
        )
        train_path = path.with_name(path.name.replace("_TEST", "_TRAIN"))
        values, labels = read_timeeval_csv(path)
        train, _ = read_timeeval_csv(train_path)
        return Series(self.name, values, labels, values[: len(train)])


class SktimeSeriesDataModule(BundledSeriesDataModule):
    """A labelled series of the sktime wheel's ``sktime/datasets/data/<name>/<name>.csv`` (columns ``data, label``),
    installed without its dependencies: only the file is read. The training part ends at ``train_end``."""

    file = ""

    def bundled_series(self) -> Series:
        import pandas as pd

        path = package_file("sktime", f"datasets/data/{self.file}/{self.file}.csv",
                            'pip install --no-deps "sktime==1.2.0"')  # fmt: skip
        frame = pd.read_csv(path)
        return Series(
            self.name, frame[["data"]].to_numpy(np.float64), frame["label"].to_numpy(np.int64), None
        )


class MITDBDataModule(SktimeSeriesDataModule):
    """A MIT-BIH arrhythmia database ECG record (Moody & Mark, IEEE EMB 2001; PhysioNet), 7,500 points with one
    352-point anomaly (points 6,936–7,287), as the sktime 1.2.0 wheel ships it (``mitdb.csv``)."""

    name = "mitdb"
    file = "mitdb"


class YahooDataModule(SktimeSeriesDataModule):
    """Yahoo Webscope S5 (Laptev et al., KDD 2015), the series the sktime 1.2.0 wheel ships (``yahoo.csv``): 1,000
    points with 7 one-point anomalies."""

    name = "yahoo"
    file = "yahoo"


class GutenTAGECGDataModule(BundledSeriesDataModule):
    """aeon's ``ecg-diff-count-3``: a synthetic ECG of GutenTAG (Wenig et al., TimeEval, PVLDB 2022), 10,000 test
    points with three 100-point anomalies, and a separate 10,000-point anomaly-free training recording (its
    semi-supervised split). aeon deprecates it in 1.6 and removes it in 1.7: aelab pins ``aeon>=1.6,<1.7``."""

    name = "ecg_gutentag"

    def bundled_series(self) -> Series:
        test = package_file("aeon", "datasets/data/UnitTest/ecg-diff-count-3_TEST.csv", AEON)
        values, labels = read_timeeval_csv(test)
        train, train_labels = read_timeeval_csv(test.with_name("ecg-diff-count-3_TRAIN_NA.csv"))
        if train_labels.any():
            raise DataError(f"{test.parent}: the training recording holds labelled anomalies; reinstall aeon")
        return Series(self.name, values, labels, train)


# ---------------------------------------------------------------------------- whole series, one class
UCR_ONE_CLASS = ("GunPoint", "ArrowHead", "ItalyPowerDemand", "OSULeaf", "BasicMotions")


class UCROneClassDataModule(TensorDataModule):
    """Whole series, one class normal: a UCR/UEA classification set that aeon's wheel ships (``GunPoint``,
    ``ArrowHead``, ``ItalyPowerDemand``, ``OSULeaf``, ``BasicMotions``), as in ROCKAD (Theissen et al., 2023).

    One example is a whole series ``(T, C)``, scaled per channel on the training series. ``train`` and ``val`` hold
    the normal class's series of the official training split (``val_size`` of them, seeded, for validation); ``test``
    holds every series of the official test split, those of the other classes being the anomalies
    (:meth:`anomaly_labels`).

    Args:
        dataset: one of the bundled sets (:data:`UCR_ONE_CLASS`).
        normal_class: the class that is normal (its label as text; ``None``: the first in sorted order).
        **kwargs: as for :class:`~aelab.data.TensorDataModule`.

    Raises:
        ConfigError: for a set or class aeon does not ship.
    """

    sample_kind = "series"
    train_sections = ("anomaly",)

    def __init__(
        self,
        dataset: str = "GunPoint",
        normal_class: str | None = None,
        threshold_percentile: float = 95.0,
        bounded: bool = False,
        val_size: int | float = 0.2,
        **kwargs,
    ) -> None:
        super().__init__(bounded=bounded, val_size=val_size, **kwargs)
        if dataset not in UCR_ONE_CLASS:
            raise ConfigError(
                f"data.dataset={dataset!r} must be one of {list(UCR_ONE_CLASS)} (aeon's bundled sets)"
            )
        self.dataset, self.name = dataset, dataset
        self.normal_class = None if normal_class is None else str(normal_class)
        self.threshold_percentile = float(threshold_percentile)
        self._anomaly: dict[str, Tensor] = {}
        self.scaler: dict[str, list[float]] = {}

    def _load(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        package_file("aeon", f"datasets/data/{self.dataset}/{self.dataset}_TRAIN.ts", AEON)
        from aeon.datasets import load_classification

        x, y = load_classification(self.dataset, split=split)
        return np.asarray(x, dtype=np.float64).transpose(0, 2, 1), np.asarray(y).astype(str)  # (N, T, C)

    def setup(self, stage: str | None = None) -> None:
        if "train" in self._splits:
            return
        x_train, y_train = self._load("train")
        x_test, y_test = self._load("test")
        classes = sorted(set(y_train.tolist()))
        normal = self.normal_class if self.normal_class is not None else classes[0]
        if normal not in classes:
            raise ConfigError(
                f"data.normal_class={normal!r} is not a class of {self.dataset}; its classes: {classes}"
            )
        self.normal_class = normal
        normal_x = x_train[y_train == normal]
        perm = torch.randperm(len(normal_x), generator=torch.Generator().manual_seed(self.split_seed)).numpy()
        n_val = split_count(self.val_size, len(normal_x), "data.val_size")
        fit = normal_x[perm[n_val:]]
        offset, scale = fit.mean((0, 1)), fit.std((0, 1))
        scale = np.where(scale > 1e-12, scale, 1.0)
        self.scaler = {"offset": offset.tolist(), "scale": scale.tolist()}

        def scaled(a):
            return torch.from_numpy(((a - offset) / scale).astype(np.float32))

        self._splits["train"] = self._checked((scaled(fit), None), "the training series")
        self._splits["val"] = self._checked((scaled(normal_x[perm[:n_val]]), None), "the validation series")
        self._splits["test"] = self._checked((scaled(x_test), None), "the test series")
        self._anomaly = {
            "train": torch.zeros(len(fit), dtype=torch.long),
            "val": torch.zeros(n_val, dtype=torch.long),
            "test": torch.from_numpy((y_test != normal).astype(np.int64)),
        }
        log.info("%s: class %s normal; %d training, %d validation series; %d test series, %d anomalies",
                 self.dataset, normal, len(fit), n_val, len(x_test), int(self._anomaly["test"].sum()))  # fmt: skip

    def split_tensors(self, split: str) -> tuple[Tensor, Tensor | None]:
        """The series ``(N, T, C)`` of a split (float32, scaled), no labels (see :meth:`anomaly_labels`)."""
        check_split(split)
        self.setup()
        return self._splits[split]

    def anomaly_labels(self, split: str) -> Tensor:
        """Per series of ``split``, 1 for another class than the normal one (an anomaly), else 0."""
        self.setup()
        return self._anomaly[split]

    def state_dict(self) -> dict[str, Any]:
        self.setup()
        return {"kind": "series_collection", "dataset": self.dataset, "normal_class": self.normal_class,
                "scaler": dict(self.scaler)}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore: the splits are rebuilt from aeon's files (deterministically)."""


__all__ = [
    "GutenTAGECGDataModule",
    "InternalBleedingDataModule",
    "MITDBDataModule",
    "UCROneClassDataModule",
    "YahooDataModule",
    "package_file",
]
