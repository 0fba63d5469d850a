"""Tables: a CSV or Parquet file (or a pandas frame), scaled on its training split, under the one-class protocol of
anomaly detection — train on normal records, flag the ones the model reconstructs badly.

:class:`TableTransform` turns a frame into model input (numeric columns scaled, categorical columns one-hot coded,
missing values imputed or refused) and keeps what it fitted as plain tensors and lists (checkpoints stay
``weights_only``); :class:`TabularDataModule` splits the records and serves them; :class:`BreastCancerDataModule`
and :class:`WineDataModule` are two real sets bundled with scikit-learn under the ODDS benchmark's protocols.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aelab.data.base import TensorDataModule, split_count
from aelab.errors import ConfigError, DataError, MissingDataError

SCALINGS = ("standard", "minmax", "quantile")
IMPUTATIONS = (None, "mean", "median", "zero")


def read_table(path: str | Path):
    """A CSV (``.csv``, ``.tsv``, ``.txt``) or Parquet (``.parquet``, ``.pq``) file as a pandas frame.

    Raises:
        MissingDataError: when the file does not exist.
        DataError: when it cannot be read (naming the file and the reader's reason).
    """
    import pandas as pd

    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingDataError(
            f"data.path={path}: no such file; give a CSV or Parquet file (data.path=/path/to/x.csv)"
        )
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except Exception as err:  # pandas and pyarrow raise many kinds for a broken file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: cannot be read as a table ({first}); give a CSV or Parquet file") from None


class TableTransform:
    """Frame → float32 features ``(N, F)``: the numeric columns scaled, each categorical column one-hot coded
    (scikit-learn's ``OneHotEncoder``; an unseen category codes as all zeros), fitted on the training records only.

    Args:
        columns: the numeric feature columns, in order.
        categorical: the categorical columns, in order (one-hot coded after the numeric ones).
        scaling: ``standard`` (zero mean, unit variance), ``minmax`` (the training range to [0, 1]) or ``quantile``
            (each column through its training quantiles to a standard normal).
        impute: ``None`` (a missing value is refused), ``mean``, ``median`` (of the training column) or ``zero``.
        source: the file's name, for the refusals.

    Raises:
        ConfigError: for an unknown scaling or imputation.
    """

    def __init__(
        self,
        columns: Sequence[str],
        categorical: Sequence[str] = (),
        scaling: str = "standard",
        impute: str | None = None,
        source: str = "the table",
    ) -> None:
        if scaling not in SCALINGS:
            raise ConfigError(f"data.scaling={scaling!r} must be one of {SCALINGS}")
        if impute not in IMPUTATIONS:
            raise ConfigError(f"data.impute={impute!r} must be one of {IMPUTATIONS}")
        self.columns, self.categorical = [str(c) for c in columns], [str(c) for c in categorical]
        self.scaling, self.impute, self.source = scaling, impute, source
        self.state: dict[str, Any] = {}

    # ------------------------------------------------------------------ fit and apply
    def _numeric(self, frame) -> np.ndarray:
        x = (
            frame[self.columns].to_numpy(dtype=np.float64, na_value=np.nan)
            if self.columns
            else np.zeros((len(frame), 0))
        )
        missing = np.isnan(x)
        if missing.any():
            if self.impute is None:
                col = self.columns[int(np.argmax(missing.any(0)))]
                rows = int(missing.any(1).sum())
                raise DataError(
                    f"{self.source}: column {col!r} has missing values ({rows} records with one): fill them, drop those "
                    "records, or set data.impute=median (mean, zero)"
                )
            fill = self.state.get("fill")
            if fill is None:  # fitting: the training column's statistic
                fill = self._fill_values(x)
            x = np.where(missing, np.asarray(fill)[None, :], x)
        return x

    def _fill_values(self, x: np.ndarray) -> np.ndarray:
        if self.impute == "zero":
            return np.zeros(x.shape[1])
        stat = np.nanmedian if self.impute == "median" else np.nanmean
        with np.errstate(all="ignore"):
            return np.nan_to_num(stat(x, axis=0))

    def fit(self, frame) -> TableTransform:
        """Fit the scaling, the imputation and the categories on ``frame`` (the training records)."""
        from sklearn.preprocessing import OneHotEncoder

        x = (
            frame[self.columns].to_numpy(dtype=np.float64, na_value=np.nan)
            if self.columns
            else np.zeros((len(frame), 0))
        )
        self.state = {"fill": self._fill_values(x).tolist()} if self.impute else {}
        x = self._numeric(frame)
        if self.scaling == "standard":
            scale = x.std(0)
            self.state |= {"mean": x.mean(0).tolist(), "scale": np.where(scale > 0, scale, 1.0).tolist()}
        elif self.scaling == "minmax":
            lo, hi = x.min(0), x.max(0)
            self.state |= {"min": lo.tolist(), "range": np.where(hi > lo, hi - lo, 1.0).tolist()}
        else:
            n = max(2, min(1000, len(x)))
            self.state |= {"quantiles": np.quantile(x, np.linspace(0, 1, n), axis=0).T.tolist()}
        if self.categorical:
            cats = frame[self.categorical].astype(str)
            encoder = OneHotEncoder(handle_unknown="ignore").fit(cats)
            self.state["categories"] = [[str(c) for c in column] for column in encoder.categories_]
        return self

    def transform(self, frame) -> Tensor:
        """float32 features ``(N, F)`` of a frame with the fitted columns (numeric first, then one-hot)."""
        if not self.state:
            raise RuntimeError("TableTransform.transform before fit (or load_state_dict)")
        x = self._numeric(frame)
        if self.scaling == "standard":
            x = (x - np.asarray(self.state["mean"])) / np.asarray(self.state["scale"])
        elif self.scaling == "minmax":
            x = (x - np.asarray(self.state["min"])) / np.asarray(self.state["range"])
        elif x.shape[1]:
            from scipy.special import ndtri

            q = np.asarray(self.state["quantiles"])  # (F, n)
            ref = np.linspace(0, 1, q.shape[1])
            u = np.stack([np.interp(x[:, j], q[j], ref) for j in range(x.shape[1])], 1)
            x = ndtri(np.clip(u, 1e-7, 1 - 1e-7))
        parts = [x]
        for col, cats in zip(self.categorical, self.state.get("categories", []), strict=True):
            values = frame[col].astype(str).to_numpy()
            parts.append((values[:, None] == np.asarray(cats, dtype=object)[None, :]).astype(np.float64))
        return torch.from_numpy(np.concatenate(parts, 1)).float()

    @property
    def feature_names(self) -> list[str]:
        """The names of the model's inputs: the numeric columns, then ``column=category`` per one-hot input."""
        names = list(self.columns)
        for col, cats in zip(self.categorical, self.state.get("categories", []), strict=True):
            names += [f"{col}={c}" for c in cats]
        return names

    # ------------------------------------------------------------------ plain data, for checkpoints
    def state_dict(self) -> dict[str, Any]:
        """What was fitted, as plain lists and strings (a checkpoint loads it with ``weights_only=True``)."""
        return {
            "columns": list(self.columns), "categorical": list(self.categorical), "scaling": self.scaling,
            "impute": self.impute, **{k: v for k, v in self.state.items()},
        }  # fmt: skip

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], source: str = "the table") -> TableTransform:
        """The transform a checkpoint saved (:meth:`state_dict`), ready to apply."""
        state = dict(state)
        transform = cls(
            state.pop("columns"), state.pop("categorical"), state.pop("scaling"), state.pop("impute"), source
        )
        transform.state = state
        return transform


class TabularDataModule(TensorDataModule):
    """A table of records under the one-class protocol: ``train`` and ``val`` hold normal records (inliers) only;
    ``test`` holds held-out inliers and every anomaly. Batches are float32 rows ``(B, F)``.

    Args:
        path: the CSV or Parquet file (``data.path``).
        label_column: the column that marks anomalies (optional: without it every record is an inlier and there is
            no test of detection).
        anomaly_values: the label values that mark an anomaly (``[1]``, ``["fraud"]``); compared as strings.
        feature_columns: the numeric columns the models read (default: every numeric column but the label and the
            id).
        categorical_columns: columns one-hot coded (scikit-learn); any other non-numeric column is refused.
        id_column: a column that names each record (kept out of the features; ``aelab-score`` writes it).
        scaling: ``standard``, ``minmax`` or ``quantile`` (:class:`TableTransform`), fitted on ``train`` only.
        impute: ``null`` (a missing value is refused), ``mean``, ``median`` or ``zero``.
        test_size: the inliers held out for ``test`` (a count or a fraction of the inliers).
        val_size: the inliers of ``val`` (a count or a fraction of the rest).
        contamination: the expected fraction of anomalies: the detection threshold is the ``1 − contamination``
            quantile of the validation inliers' scores (``f1_at_val_p<percentile>``).
        data_dir, batch_size, split_seed, shuffle_seed, resident, num_workers, pin_memory, shape, binary, bounded:
            as for :class:`~aelab.data.base.TensorDataModule` (``bounded`` false: scaled values are unbounded).

    Raises:
        ConfigError: for a label column that is absent, a non-numeric column that is not categorical, an unknown
            column, no feature columns; DataError: for a file that cannot be read, missing values without
            ``impute``, no inliers.
    """

    name = "table"

    def __init__(
        self,
        path: str | None = None,
        label_column: str | None = None,
        anomaly_values: Sequence[Any] = (1,),
        feature_columns: Sequence[str] | None = None,
        categorical_columns: Sequence[str] = (),
        id_column: str | None = None,
        scaling: str = "standard",
        impute: str | None = None,
        test_size: int | float = 0.3,
        val_size: int | float = 0.1,
        contamination: float = 0.05,
        bounded: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(val_size=val_size, test_size=test_size, bounded=bounded, **kwargs)
        self.path = None if path is None else str(path)
        self.label_column = None if label_column is None else str(label_column)
        self.anomaly_values = [str(v) for v in (anomaly_values or ())]
        self.feature_columns = None if feature_columns is None else [str(c) for c in feature_columns]
        self.categorical_columns = [str(c) for c in categorical_columns or ()]
        self.id_column = None if id_column is None else str(id_column)
        self.scaling, self.impute = scaling, impute
        if not 0 < float(contamination) < 0.5:
            raise ConfigError(
                f"data.contamination={contamination} must be in (0, 0.5): the expected anomaly fraction"
            )
        self.contamination = float(contamination)
        if self.path is not None:
            self.name = Path(self.path).stem
        self.transform: TableTransform | None = None
        self._anomaly: dict[str, Tensor] = {}
        TableTransform([], scaling=scaling, impute=impute)  # the settings are checked now, not after reading

    # ------------------------------------------------------------------ the records
    @property
    def source(self) -> str:
        return self.path or self.name

    def load_frame(self):
        """The records as a pandas frame (here: :attr:`path` read by :func:`read_table`)."""
        if self.path is None:
            raise ConfigError("data=tabular needs a file: data.path=/path/to/records.csv (CSV or Parquet)")
        return read_table(self.path)

    def columns_of(self, frame) -> tuple[list[str], list[str]]:
        """``(numeric feature columns, categorical columns)`` of a frame, checked.

        Raises:
            ConfigError: naming the column and the fix.
        """
        import pandas as pd

        names = [str(c) for c in frame.columns]
        frame.columns = names
        for key, cols in (("data.label_column", [self.label_column]), ("data.id_column", [self.id_column]),
                          ("data.categorical_columns", self.categorical_columns),
                          ("data.feature_columns", self.feature_columns or [])):  # fmt: skip
            for col in cols:
                if col is not None and col not in names:
                    raise ConfigError(
                        f"{self.source}: {key} names column {col!r}, which is not in the file; its columns: {names}"
                    )
        skip = {self.label_column, self.id_column, *self.categorical_columns}
        chosen = (
            self.feature_columns if self.feature_columns is not None else [c for c in names if c not in skip]
        )
        numeric = []
        for col in chosen:
            if pd.api.types.is_numeric_dtype(frame[col]) and not pd.api.types.is_bool_dtype(frame[col]):
                numeric.append(col)
            elif pd.api.types.is_bool_dtype(frame[col]):
                frame[col] = frame[col].astype(float)
                numeric.append(col)
            else:
                raise ConfigError(
                    f"{self.source}: column {col!r} is not numeric ({frame[col].dtype}): list it in "
                    f"data.categorical_columns=[{col}] to one-hot code it, or leave it out with data.feature_columns"
                )
        if not numeric and not self.categorical_columns:
            raise ConfigError(f"{self.source}: no feature columns; name them with data.feature_columns=[...]")
        return numeric, list(self.categorical_columns)

    def is_anomaly(self, frame) -> np.ndarray:
        """Per record, whether its label marks an anomaly (all false without a label column)."""
        if self.label_column is None:
            return np.zeros(len(frame), dtype=bool)
        return frame[self.label_column].astype(str).isin(self.anomaly_values).to_numpy()

    # ------------------------------------------------------------------ splits
    def setup(self, stage: str | None = None) -> None:
        world = self.trainer.world_size if self.trainer is not None else 1
        if self.batch_size % world:
            raise ConfigError(
                f"data.batch_size={self.batch_size} is the global batch and must divide by the world size {world}"
            )
        if "train" in self._splits:
            return
        frame = self.load_frame()
        numeric, categorical = self.columns_of(frame)
        anomalous = self.is_anomaly(frame)
        inliers = np.flatnonzero(~anomalous)
        if len(inliers) < 3:
            raise DataError(
                f"{self.source}: {len(inliers)} normal records (data.label_column={self.label_column}, "
                f"data.anomaly_values={self.anomaly_values}): the models train on normal records; check the label values"
            )
        gen = torch.Generator().manual_seed(self.split_seed)
        perm = inliers[torch.randperm(len(inliers), generator=gen).numpy()]
        n_test = split_count(self.test_size, len(perm), "data.test_size") if self.label_column else 0
        test_in, rest = perm[:n_test], perm[n_test:]
        n_val = split_count(self.val_size, len(rest), "data.val_size")
        idx = {
            "val": rest[:n_val],
            "train": rest[n_val:],
            "test": np.concatenate([test_in, np.flatnonzero(anomalous)]),
        }
        self.transform = TableTransform(numeric, categorical, self.scaling, self.impute, self.source)
        self.transform.fit(frame.iloc[idx["train"]])
        for split, rows in idx.items():
            part = frame.iloc[rows]
            x = self.transform.transform(part)
            self._splits[split] = self._checked((x, None), f"the {split} records")
            self._anomaly[split] = torch.from_numpy(anomalous[rows].astype(np.int64))
            if split == "test":
                self.test_ids = (
                    part[self.id_column].astype(str).tolist()
                    if self.id_column
                    else [str(i) for i in part.index]
                )

    def anomaly_labels(self, split: str) -> Tensor | None:
        """Per record of ``split``, 1 for an anomaly and 0 for a normal record (``None`` without a label column)."""
        if self.label_column is None:
            return None
        self.split_tensors(split)
        return self._anomaly[split]

    @property
    def threshold_percentile(self) -> float:
        """The percentile of the validation inliers' scores that flags a record: ``100 · (1 − contamination)``."""
        return 100.0 * (1.0 - self.contamination)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The fitted transform as plain data (into every checkpoint: ``aelab-score`` applies it to new records)."""
        if self.transform is None:
            self.setup()
        return {"transform": self.transform.state_dict(), "id_column": self.id_column,
                "label_column": self.label_column, "anomaly_values": list(self.anomaly_values)}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore: the split and the transform are refitted from the file (deterministically)."""


def _downsampled(frame, label: str, anomaly_value, keep: int, seed: int):
    """``frame`` with the records labelled ``anomaly_value`` down-sampled to ``keep``, seeded (the ODDS protocols)."""
    rng = np.random.default_rng(seed)
    anomalies = np.flatnonzero(frame[label].to_numpy() == anomaly_value)
    drop = np.setdiff1d(anomalies, rng.choice(anomalies, size=keep, replace=False))
    return frame.drop(index=frame.index[drop]).reset_index(drop=True)


class BreastCancerDataModule(TabularDataModule):
    """scikit-learn's Wisconsin diagnostic breast cancer set (WDBC: 569 records, 30 features) under ODDS' "wbc"
    protocol (Rayana 2016, ODDS Library, http://odds.cs.stonybrook.edu): the 357 benign records are normal, the
    malignant ones are down-sampled to 21 anomalies with a fixed seed (``anomaly_seed``): 378 records, 5.6 %.

    Args:
        anomalies: malignant records kept (ODDS: 21).
        anomaly_seed: the seed of that down-sampling (fixed across runs: one protocol).
        Other arguments: as for :class:`TabularDataModule` (the label column is ``diagnosis``).
    """

    name = "breast_cancer"

    def __init__(self, anomalies: int = 21, anomaly_seed: int = 0, **kwargs) -> None:
        kwargs.setdefault("label_column", "diagnosis")
        kwargs.setdefault("anomaly_values", ["malignant"])
        super().__init__(**kwargs)
        self.anomalies, self.anomaly_seed = int(anomalies), int(anomaly_seed)
        self.name = "breast_cancer"

    def load_frame(self):
        from sklearn.datasets import load_breast_cancer

        bunch = load_breast_cancer(as_frame=True)
        frame = bunch.frame.rename(columns={"target": "diagnosis"})
        frame["diagnosis"] = np.where(bunch.target.to_numpy() == 0, "malignant", "benign")
        return _downsampled(frame, "diagnosis", "malignant", self.anomalies, self.anomaly_seed)


class WineDataModule(TabularDataModule):
    """scikit-learn's wine recognition set (178 records, 13 features) under ODDS' "wine" protocol (Rayana 2016):
    cultivars 2 and 3 are normal (119 records), cultivar 1 is down-sampled to 10 anomalies with a fixed seed:
    129 records, 7.7 %.

    Args:
        anomalies: records of cultivar 1 kept (ODDS: 10).
        anomaly_seed: the seed of that down-sampling.
        Other arguments: as for :class:`TabularDataModule` (the label column is ``cultivar``).
    """

    name = "wine"

    def __init__(self, anomalies: int = 10, anomaly_seed: int = 0, **kwargs) -> None:
        kwargs.setdefault("label_column", "cultivar")
        kwargs.setdefault("anomaly_values", [1])
        super().__init__(**kwargs)
        self.anomalies, self.anomaly_seed = int(anomalies), int(anomaly_seed)
        self.name = "wine"

    def load_frame(self):
        from sklearn.datasets import load_wine

        bunch = load_wine(as_frame=True)
        frame = bunch.frame.rename(columns={"target": "cultivar"})
        frame["cultivar"] = bunch.target.to_numpy() + 1  # cultivars 1, 2, 3 as the UCI set numbers them
        return _downsampled(frame, "cultivar", 1, self.anomalies, self.anomaly_seed)


__all__ = ["BreastCancerDataModule", "TableTransform", "TabularDataModule", "WineDataModule", "read_table"]
