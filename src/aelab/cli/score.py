"""``aelab-score``: an anomaly detector trained on a table or a time series, applied to new records or points.

::

    aelab-score logs/train/runs/<id>/checkpoints/last.ckpt --input new.csv --out scores.csv

Each record of ``--input`` (CSV or Parquet, the training file's columns) is scaled with the checkpoint's own fitted
transform (saved in the checkpoint as plain data), scored by the model — its reconstruction error (standardised per
feature with ``data.standardize_errors``, :func:`aelab.evaluation.scores.record_scores`), or its −ELBO for a VAE,
the score the training run's test figures used — and flagged when its score is above the threshold of the
training run: the ``1 − contamination`` quantile of the validation records' scores, recomputed here from the
training data (refused when that data no longer gives the checkpoint's fitted transform: another file's records
would give another threshold). ``--out`` gets one row per record: its id (the training run's
``data.id_column``, else the row number), ``score`` and ``flag`` (1: anomalous). A file whose columns do not match,
a text value in a numeric column, or a missing value the run did not impute is refused with one line naming it, and
nothing is written.

A checkpoint trained on a time series (``data=timeseries``, ``internal_bleeding``, ...) scores each time point of
``--input`` (its training file's channels; rows in time order, or ordered by the run's ``data.time_column``): the
series is scaled with the checkpoint's saved scaling, cut into the run's windows one point apart, and each point gets
the mean of its scores over the windows that cover it; it is flagged above the run's ``data.threshold_percentile`` of
its validation points' scores. ``--out`` gets ``index`` (or the time column), ``score`` and ``flag`` per point. A file
without the checkpoint's channels, a non-numeric channel, a missing value the run did not impute, or a series
shorter than the window is refused in one line, and nothing is written.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from aelab.checkpoint import load_model
from aelab.cli import checkpoint_parser, returns_code
from aelab.data.tables import TableTransform, read_table
from aelab.errors import ConfigError, DataError
from aelab.evaluation.scores import record_scorer
from aelab.trust import trusted_prefixes


def _transform_state(ckpt: dict) -> dict:
    for value in ckpt.values():
        if isinstance(value, dict) and isinstance(value.get("transform"), dict):
            return value
    raise ConfigError(
        "the checkpoint holds no table transform or series scaling: aelab-score scores models trained on "
        "data=tabular or data=timeseries"
    )


def _series_state(ckpt: dict) -> dict | None:
    for value in ckpt.values():
        if (
            isinstance(value, dict)
            and value.get("kind") == "series"
            and isinstance(value.get("scaler"), dict)
        ):
            return value
    return None


def _write_atomic(out: Path, header: list[str], rows) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    with os.fdopen(fd, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, out)


def score_series(args, model, run_cfg, ckpt_path: str, saved: dict, device) -> int:
    """The per-point scores and flags of a series file with a series checkpoint (see the module docstring)."""
    import numpy as np

    from aelab.data.timeseries import TimeSeriesDataModule
    from aelab.evaluation.series import series_point_scores

    channels, window = list(saved["channels"]), int(saved["window"])
    frame = read_table(args.input)
    frame.columns = [str(c) for c in frame.columns]
    missing = [c for c in channels if c not in frame.columns]
    if missing:
        raise DataError(
            f"{args.input}: refused: channels {missing} are missing; the model reads {channels} (the training file's "
            "channels). Nothing was written"
        )
    time_column, series_column = saved.get("time_column"), saved.get("series_column")
    time_column = time_column if time_column in frame.columns else None
    series_column = series_column if series_column in frame.columns else None
    reader = TimeSeriesDataModule(path=args.input, value_columns=channels, impute=saved.get("impute"))
    reader.value_columns_of(frame)  # a non-numeric channel: one line naming it
    groups = [(None, frame)] if series_column is None else list(frame.groupby(series_column, sort=True))
    parts = []
    for key, part in groups:
        if time_column is not None:
            part = part.sort_values(time_column, kind="stable")
        what = "the series" if key is None else f"series {series_column}={key}"
        values = reader._values(part, channels, what)
        if len(values) < window:
            raise DataError(
                f"{args.input}: refused: {what} has {len(values)} points, shorter than the model's window of {window}: "
                f"give at least {window} points. Nothing was written"
            )
        parts.append((key, part, values))
    offset, scale = np.asarray(saved["scaler"]["offset"]), np.asarray(saved["scaler"]["scale"])

    data_cfg = OmegaConf.merge(run_cfg.data, {"data_dir": args.data_dir} if args.data_dir else {})
    dm = instantiate(data_cfg)
    dm.setup()
    if dm.scaler != saved["scaler"] or (
        saved.get("fingerprint") and dm.fingerprint() != saved["fingerprint"]
    ):
        raise DataError(
            f"{ckpt_path}: refused: the training data ({dm.source}) no longer gives this checkpoint's training parts (the "
            "file changed, or --data-dir points elsewhere), so its validation points would not give the run's "
            "threshold; score with the training data the run read. Nothing was written"
        )
    stride, reduction = int(saved.get("test_stride", 1)), str(saved.get("point_score", "window"))
    val = np.concatenate([
        series_point_scores(model, train[start:], window, stride, args.batch_size, device, reduction)
        for train, start in dm.validation_points()
    ])  # fmt: skip
    threshold = float(np.nanpercentile(val, dm.threshold_percentile))
    rows, flagged, points = [], 0, 0
    for key, part, values in parts:
        scaled = ((values - offset) / scale).astype(np.float32)
        scores = series_point_scores(model, scaled, window, stride, args.batch_size, device, reduction)
        ids = part[time_column].astype(str).tolist() if time_column else list(map(str, part.index))
        for i, v in zip(ids, scores.tolist(), strict=True):
            rows.append(([] if key is None else [str(key)]) + [i, f"{v:.6g}", int(v > threshold)])
        flagged, points = flagged + int((scores > threshold).sum()), points + len(scores)
    header = ([series_column] if series_column else []) + [time_column or "index", "score", "flag"]
    out = Path(args.out)
    _write_atomic(out, header, rows)
    print(f"{points} points of {len(parts)} series scored → {out}: {flagged} flagged above the threshold "
          f"{threshold:.6g} (the validation points' {dm.threshold_percentile:g}th percentile)")  # fmt: skip
    return 0


@returns_code("aelab-score")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="aelab-score", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[checkpoint_parser()],
    )  # fmt: skip
    p.add_argument(
        "ckpt",
        help="checkpoint written by aelab-train on a table (data=tabular, breast_cancer, wine) or a series "
        "(data=timeseries, internal_bleeding, mitdb, yahoo, ecg_gutentag)",
    )
    p.add_argument("--input", required=True, help="the records to score (CSV or Parquet)")
    p.add_argument("--out", required=True, help="the scores (CSV: id, score, flag)")
    p.add_argument("--data-dir", default=None, help="data root (default: the one the run used)")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    model, run_cfg, ckpt = load_model(args.ckpt, device, trusted_prefixes(args.trust))
    series = _series_state(ckpt)
    if series is not None:
        return score_series(args, model, run_cfg, args.ckpt, series, device)
    saved = _transform_state(ckpt)
    transform = TableTransform.from_state_dict(saved["transform"], source=args.input)
    frame = read_table(args.input)
    frame.columns = [str(c) for c in frame.columns]
    needed = [*transform.columns, *transform.categorical]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(
            f"{args.input}: refused: columns {missing} are missing; the model reads {needed} (the training file's "
            "columns). Nothing was written"
        )
    for col in transform.columns:
        if frame[col].dtype.kind not in "biuf":
            raise DataError(
                f"{args.input}: refused: column {col!r} is not numeric ({frame[col].dtype}). Nothing was written"
            )
    x = transform.transform(frame)

    data_cfg = OmegaConf.merge(run_cfg.data, {"data_dir": args.data_dir} if args.data_dir else {})
    dm = instantiate(data_cfg)
    val = dm.split_tensors("val")[0]
    # the threshold comes from the run's own validation records
    if dm.transform.state_dict() != saved["transform"]:
        raise DataError(
            f"{args.ckpt}: refused: the training data ({dm.source}) no longer gives this checkpoint's fitted transform "
            "(the file changed, or --data-dir points elsewhere), so its validation records would not give the run's "
            "threshold; score with the training file the run read. Nothing was written"
        )
    with torch.no_grad():
        score = record_scorer(model, dm, args.batch_size, device)  # the run's test figures score with it too
        threshold = float(torch.quantile(score(val).double(), dm.threshold_percentile / 100))
        scores = score(x)
    id_column = saved.get("id_column")
    if id_column not in frame.columns:  # the records' row numbers, under their own header
        id_column = None
    ids = frame[id_column].astype(str).tolist() if id_column else list(map(str, range(len(frame))))
    out = Path(args.out)
    _write_atomic(out, [id_column or "index", "score", "flag"],
                  ([i, f"{v:.6g}", int(v > threshold)] for i, v in zip(ids, scores.tolist(), strict=True)))  # fmt: skip
    flagged = int((scores > threshold).sum())
    print(f"{len(ids)} records scored → {out}: {flagged} flagged above the threshold {threshold:.6g} "
          f"(the validation records' {dm.threshold_percentile:g}th percentile)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
