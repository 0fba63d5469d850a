"""Tables: a CSV or Parquet file (or a pandas frame), scaled on its training split, under the one-class protocol of
anomaly detection — train on normal records, flag the ones the model reconstructs badly.

:class:`~aelab.data.tables.TableTransform` turns a frame into model input (:mod:`aelab.data.tables`);
:class:`TabularDataModule` splits the records and serves them; :class:`BreastCancerDataModule`
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
from aelab.data.tables import TableTransform, as_text, read_table
from aelab.errors import ConfigError, DataError


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
        contamination: PyOD's setting of that name: the flag threshold is the ``1 − contamination`` quantile of the
            validation records' scores (``f1_at_val_p<percentile>``); those are normal records, so it is the share
            of normal records flagged (the false-positive rate aimed at), set to the expected anomaly share.
        standardize_errors: score a record by its standardised reconstruction error, each feature's squared error
            divided by that feature's mean over the training records (shrunk halfway to the mean over features)
            (:func:`aelab.evaluation.scores.record_scores`), rather than the plain MSE (a VAE scores by −ELBO
            either way). ``data=tabular``'s config turns it on (measured in ``scripts/bench_first_try.py``); off here,
            so a checkpoint written before it existed keeps scoring by the MSE it was tested with.
        data_dir, batch_size, split_seed, shuffle_seed, resident, num_workers, pin_memory, shape, binary, bounded:
            as for :class:`~aelab.data.base.TensorDataModule` (``bounded`` false: scaled values are unbounded).

    Raises:
        ConfigError: for a label column that is absent, a non-numeric column that is not categorical, an unknown
            column, no feature columns; DataError: for a file that cannot be read, missing values without
            ``impute``, no inliers.
    """

    name = "table"
    train_sections = ("anomaly",)

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
        standardize_errors: bool = False,
        bounded: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(val_size=val_size, test_size=test_size, bounded=bounded, **kwargs)
        self.path = None if path is None else str(path)
        self.label_column = None if label_column is None else str(label_column)
        self.anomaly_values = [as_text(v) for v in (anomaly_values or ())]
        self.feature_columns = None if feature_columns is None else [str(c) for c in feature_columns]
        self.categorical_columns = [str(c) for c in categorical_columns or ()]
        self.id_column = None if id_column is None else str(id_column)
        self.scaling, self.impute = scaling, impute
        if not 0 < float(contamination) < 0.5:
            raise ConfigError(
                f"data.contamination={contamination} must be in (0, 0.5): the expected anomaly fraction"
            )
        self.contamination = float(contamination)
        self.standardize_errors = bool(standardize_errors)
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
        for key, cols in (("data.feature_columns", self.feature_columns or []),
                          ("data.categorical_columns", self.categorical_columns)):  # fmt: skip
            for col in cols:
                if col is not None and col in (self.label_column, self.id_column):
                    raise ConfigError(
                        f"{self.source}: {key} lists {col!r}, the label or id column: the model would read the "
                        f"answer (or a record's name); leave it out of {key}"
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
        labels = frame[self.label_column]
        if labels.isna().any():
            raise DataError(
                f"{self.source}: the label column {self.label_column!r} is empty in {int(labels.isna().sum())} "
                "records: label them, or drop them"
            )
        return np.array([as_text(v) in self.anomaly_values for v in labels.tolist()], dtype=bool)

    # ------------------------------------------------------------------ splits
    def setup(self, stage: str | None = None) -> None:
        self.check_global_batch()
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
        if self.label_column is not None and not anomalous.any():
            seen = sorted({as_text(v) for v in frame[self.label_column].tolist()})[:10]
            raise DataError(
                f"{self.source}: no record's {self.label_column!r} is one of data.anomaly_values={self.anomaly_values} "
                f"(its values: {seen}): name the anomalies' value, e.g. 'data.anomaly_values=[{seen[-1]}]'"
            )
        gen = torch.Generator().manual_seed(self.split_seed)
        perm = inliers[torch.randperm(len(inliers), generator=gen).numpy()]
        n_test = split_count(self.test_size, len(perm), "data.test_size") if self.label_column else 0
        if self.label_column is not None and n_test == 0:
            raise ConfigError(
                f"data.test_size={self.test_size} keeps no normal record for the test: raise it"
            )
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
    if not 0 < keep <= len(anomalies):
        raise ConfigError(
            f"data.anomalies={keep} must be between 1 and the {len(anomalies)} {anomaly_value} records"
        )
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
