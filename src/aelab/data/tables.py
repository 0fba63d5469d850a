"""Tables as model input: :func:`read_table` (CSV or Parquet) and :class:`TableTransform` (numeric columns scaled,
categorical columns one-hot coded, missing values imputed or refused), which keeps what it fitted as plain tensors
and lists so checkpoints stay ``weights_only``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

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
                j = int(np.argmax(missing.any(0)))
                raise DataError(
                    f"{self.source}: column {self.columns[j]!r} has missing values ({int(missing[:, j].sum())} "
                    "records): fill them, drop those records, or set data.impute=median (mean, zero)"
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
            mean, scale = x.mean(0), x.std(0)
            self.state |= {"mean": mean.tolist(), "scale": _nonzero(scale, mean).tolist()}
        elif self.scaling == "minmax":
            lo, hi = x.min(0), x.max(0)
            self.state |= {"min": lo.tolist(), "range": _nonzero(hi - lo, lo).tolist()}
        else:
            n = max(2, min(1000, len(x)))
            self.state |= {"quantiles": np.quantile(x, np.linspace(0, 1, n), axis=0).T.tolist()}
        if self.categorical:
            cats = self._categories(frame)
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
            # a value shared by several quantiles (a discrete or constant column) takes the middle of their levels:
            # the mean of interpolating up and down (scikit-learn's QuantileTransformer does the same)
            u = np.stack([0.5 * (np.interp(x[:, j], q[j], ref) - np.interp(-x[:, j], -q[j][::-1], -ref[::-1]))
                          for j in range(x.shape[1])], 1)  # fmt: skip
            x = ndtri(np.clip(u, 1e-7, 1 - 1e-7))
        parts = [x]
        if self.categorical:
            values = self._categories(frame)
            for col, cats in zip(self.categorical, self.state.get("categories", []), strict=True):
                seen = values[col].to_numpy()
                parts.append((seen[:, None] == np.asarray(cats, dtype=object)[None, :]).astype(np.float64))
        return torch.from_numpy(np.concatenate(parts, 1)).float()

    def _categories(self, frame):
        """The categorical columns as text: a whole number the same whether pandas read it as int or float (``1``,
        not ``1.0``, when a missing cell made the column float); a missing value refused (or, with ``data.impute``,
        its own category ``missing``)."""
        import pandas as pd

        out = {}
        for col in self.categorical:
            values = frame[col]
            if values.isna().any() and self.impute is None:
                raise DataError(
                    f"{self.source}: categorical column {col!r} has missing values ({int(values.isna().sum())} "
                    "records): fill them, drop those records, or set data.impute=median (a missing category "
                    "then becomes its own value, 'missing')"
                )
            out[col] = ["missing" if pd.isna(v) else as_text(v) for v in values.tolist()]
        return pd.DataFrame(out, index=frame.index)

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


def _nonzero(scale: np.ndarray, level: np.ndarray) -> np.ndarray:
    """``scale`` with the values that are zero up to rounding (a constant column: its std is ~1e-17, not 0) set to
    1, so that column scales to 0 rather than to ±1 or 1e15 (scikit-learn's ``_handle_zeros_in_scale``)."""
    eps = 10 * np.finfo(np.float64).eps * np.maximum(np.abs(level), 1.0)
    return np.where(scale > eps, scale, 1.0)


def as_text(value: Any) -> str:
    """A cell as the text categories and labels are compared by: a whole number the same whether pandas read its
    column as int or float (``1``, not ``1.0``), a bool as ``True``/``False``, anything else ``str``."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)
