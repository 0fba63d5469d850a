"""Interaction logs (who clicked, rated or bought what) as users' item vectors, under the strong-generalization
protocol of Liang et al., "Variational Autoencoders for Collaborative Filtering" (WWW 2018, §4.2).

One example is a user's item vector ``(I,)`` (1: the user interacted with the item, 0: not). The users are split into
disjoint training, validation and test users (seeded). Training users are used whole; each validation and test user
is *folded in* with a random 80 % of their items and scored on the other 20 % (``heldout_fraction``), so their
batches are ``(fold-in items, held-out items)``, each ``(B, I)``. The catalogue is the items of the training users;
a held-out user's interactions with other items are dropped (counted in the log), as Liang et al. do.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aelab.data.base import TensorDataModule, check_split, split_count
from aelab.data.tables import read_table
from aelab.errors import ConfigError, DataError, MissingDataError
from aelab.utils.ranking import RankingMetric

log = logging.getLogger("aelab")


def numeric_column(frame, column: str, source: str) -> np.ndarray:
    """A column as float64, refusing a value that is not a number.

    Raises:
        DataError: naming the file, the column, the first bad value and its row.
    """
    import pandas as pd

    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{source}: column {column!r} holds {frame[column].iloc[row]!r} (row {row}), not a number: fix the "
            f"file, or name the ratings' column with data.rating_column (null: every row is an interaction)"
        )
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataError(f"{source}: column {column!r} is empty in row {row}: fill it, or drop that row")
    return values.to_numpy(dtype=np.float64)


def fold_in_split(
    items: np.ndarray, users: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per user, a random ``fraction`` of their interactions held out (at least one), the rest folded in; a user with
    fewer than 5 interactions is folded in whole (Liang et al. 2018, their ``split_train_test_proportion``).

    Args:
        items, users: one entry per interaction (int arrays of the same length), sorted by user.
        fraction: the held-out share, in (0, 1).
        rng: the seeded generator.

    Returns:
        A boolean mask over the interactions: ``True`` for held-out, ``False`` for fold-in.
    """
    held = np.zeros(len(items), dtype=bool)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    for start, end in zip(starts, ends, strict=True):
        n = end - start
        if n >= 5:
            held[start + rng.choice(n, size=max(1, int(fraction * n)), replace=False)] = True
    return held


class InteractionDataModule(TensorDataModule):
    """A user–item interaction log (CSV or Parquet) as users' item vectors ``(I,)``, split by user (strong
    generalization, Liang et al. 2018 §4.2).

    Splits: ``train`` holds the training users' vectors ``(N, I)`` and their row indices ``(N,)`` (a user node's
    index, CDAE's); ``val`` and ``test`` hold held-out users as ``(fold-in (N, I), held-out (N, I))``. The validation
    and test metrics are Recall@20, Recall@50 and NDCG@100 of the held-out items (:mod:`aelab.utils.ranking`);
    validation NDCG@100 picks the best checkpoint. The item and user id maps are saved in every checkpoint as plain
    data (``aelab-recommend`` reads them).

    Args:
        path: the log (CSV, TSV or Parquet).
        user_column, item_column: the columns naming the user and the item of each interaction.
        rating_column: an explicit rating per interaction (``None``: every row is an interaction).
        rating_threshold: with a rating, the interactions kept as positive: rating ≥ this (4: MovieLens' 4 and 5
            stars; Liang et al. keep ratings > 3.5, the same on whole stars).
        timestamp_column: when each interaction happened (read and checked; the protocol splits by user, not time).
        min_user_interactions: users with fewer positive interactions are dropped (the k-core filter; 5 as Liang et
            al.).
        val_size, test_size: held-out validation and test users (a count, or a fraction of the users).
        heldout_fraction: the share of each held-out user's items scored (the rest is folded in): 0.2.
        num_users: filled from the data (the training users: ``model.num_users`` of a CDAE reads it).
        **kwargs: as for :class:`~aelab.data.TensorDataModule` (``batch_size``, ``split_seed``, ...).

    Raises:
        ConfigError: for a column the log does not have, a threshold or fraction out of range, too few users for
            the held-out sets; DataError: for a rating that is not a number, no user left after the filter, a file
            that cannot be read.
    """

    name = "interactions"
    sample_kind = "interactions"
    monitor = "val/recommend/ndcg@100"
    monitor_mode = "max"
    train_sections = ("recommend",)

    def __init__(
        self,
        path: str | None = None,
        user_column: str = "user_id",
        item_column: str = "item_id",
        rating_column: str | None = None,
        rating_threshold: float = 4.0,
        timestamp_column: str | None = None,
        min_user_interactions: int = 5,
        val_size: int | float = 100,
        test_size: int | float = 100,
        heldout_fraction: float = 0.2,
        num_users: int | None = None,
        bounded: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(val_size=val_size, test_size=test_size, bounded=bounded, **kwargs)
        self.path = None if path is None else str(path)
        self.user_column, self.item_column = str(user_column), str(item_column)
        self.rating_column = None if rating_column is None else str(rating_column)
        self.timestamp_column = None if timestamp_column is None else str(timestamp_column)
        self.rating_threshold = float(rating_threshold)
        if int(min_user_interactions) < 1:
            raise ConfigError(
                f"data.min_user_interactions={min_user_interactions} must be at least 1 (5: Liang et al.)"
            )
        self.min_user_interactions = int(min_user_interactions)
        if not 0 < float(heldout_fraction) < 1:
            raise ConfigError(
                f"data.heldout_fraction={heldout_fraction} must be in (0, 1) (0.2: Liang et al.)"
            )
        self.heldout_fraction = float(heldout_fraction)
        if self.path is not None:
            self.name = Path(self.path).stem
        self.item_ids: list[str] = []
        self._user_ids: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ the log
    @property
    def source(self) -> str:
        return self.path or self.name

    def load_frame(self):
        """The log as a pandas frame (here: :attr:`path` read by :func:`~aelab.data.tables.read_table`)."""
        if self.path is None:
            raise ConfigError("data=interactions needs a file: data.path=/path/to/log.csv (CSV or Parquet)")
        return read_table(self.path)

    def interactions(self) -> tuple[np.ndarray, np.ndarray]:
        """``(user ids, item ids)`` of the positive interactions as text, duplicates merged, checked.

        Raises:
            ConfigError, DataError: see the class.
        """
        frame = self.load_frame()
        names = [str(c) for c in frame.columns]
        frame.columns = names
        for key, col in (("data.user_column", self.user_column), ("data.item_column", self.item_column),
                         ("data.rating_column", self.rating_column),
                         ("data.timestamp_column", self.timestamp_column)):  # fmt: skip
            if col is not None and col not in names:
                raise ConfigError(
                    f"{self.source}: {key}={col!r} is not a column of the log; its columns: {names}: set {key}"
                )
        if len(frame) == 0:
            raise DataError(f"{self.source}: the log has no rows: give a log of interactions")
        for col in (self.user_column, self.item_column):
            if frame[col].isna().any():
                row = int(np.flatnonzero(frame[col].isna().to_numpy())[0])
                raise DataError(
                    f"{self.source}: column {col!r} is empty in row {row}: fill it, or drop that row"
                )
        keep = np.ones(len(frame), dtype=bool)
        if self.rating_column is not None:
            keep = numeric_column(frame, self.rating_column, self.source) >= self.rating_threshold
        if self.timestamp_column is not None:
            numeric_column(frame, self.timestamp_column, self.source)
        pairs = frame.loc[keep, [self.user_column, self.item_column]].astype(str)
        merged = pairs.drop_duplicates()
        if len(merged) < len(pairs):
            log.info("%s: %d duplicate (user, item) rows merged", self.source, len(pairs) - len(merged))
        return merged[self.user_column].to_numpy(), merged[self.item_column].to_numpy()

    # ------------------------------------------------------------------ splits
    def setup(self, stage: str | None = None) -> None:
        self.check_global_batch()
        if "train" in self._splits:
            return
        users, items = self.interactions()
        names, counts = np.unique(users, return_counts=True)
        kept = names[counts >= self.min_user_interactions]
        if len(kept) == 0:
            what = f"ratings ≥ {self.rating_threshold:g} " if self.rating_column else ""
            raise DataError(
                f"{self.source}: no user has {self.min_user_interactions} or more {what}interactions: lower "
                "data.min_user_interactions" + (" or data.rating_threshold" if self.rating_column else "")
            )
        n = len(kept)
        n_test = split_count(self.test_size, n, "data.test_size") if n > 2 else 0
        n_val = split_count(self.val_size, n, "data.val_size") if n > 2 else 0
        if n_test + n_val >= n or n_test == 0:
            raise ConfigError(
                f"{self.source}: {n} users left after the filter cannot hold out data.val_size={self.val_size} and "
                f"data.test_size={self.test_size} users and keep training users: lower them (counts or fractions)"
            )
        order = kept[torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed)).numpy()]
        groups = {
            "test": order[:n_test],
            "val": order[n_test : n_test + n_val],
            "train": order[n_test + n_val :],
        }
        mask = np.isin(users, kept)
        users, items = users[mask], items[mask]
        train_rows = np.isin(users, groups["train"])
        self.item_ids = sorted(np.unique(items[train_rows]).tolist())
        item_index = {item: i for i, item in enumerate(self.item_ids)}
        rng = np.random.default_rng(self.split_seed)
        dropped = 0
        for split in ("train", "val", "test"):
            ids = sorted(groups[split].tolist())
            self._user_ids[split] = ids
            rows = np.isin(users, groups[split])
            known = np.array([item in item_index for item in items[rows]], dtype=bool)
            dropped += int((~known).sum())
            u = np.searchsorted(ids, users[rows][known])
            i = np.array([item_index[item] for item in items[rows][known]], dtype=np.int64)
            order_u = np.argsort(u, kind="stable")
            u, i = u[order_u], i[order_u]
            x = torch.zeros(len(ids), len(self.item_ids), dtype=torch.float32)
            if split == "train":
                x[u, i] = 1.0
                self._splits[split] = (x, torch.arange(len(ids)))
                continue
            held = fold_in_split(i, u, self.heldout_fraction, rng)
            y = torch.zeros_like(x)
            x[u[~held], i[~held]] = 1.0
            y[u[held], i[held]] = 1.0
            self._splits[split] = (x, y)
        if dropped:
            log.info(
                "%s: %d interactions of held-out users with items no training user has were dropped (Liang et al.)",
                self.source, dropped,
            )  # fmt: skip
        x = self._splits["train"][0]
        log.info(
            "%s: %d training, %d validation, %d test users; %d items; %.2f%% of the training matrix filled",
            self.source, len(x), len(self._user_ids["val"]), len(self._user_ids["test"]), x.shape[1],
            100.0 * float(x.mean()),
        )  # fmt: skip
        want = self.configured_shape
        if want is not None and tuple(want) != (len(self.item_ids),):
            raise ConfigError(
                f"data.shape={list(want)} but {self.source} has {len(self.item_ids)} items: leave data.shape to "
                "its default (null: read from the data)"
            )

    def split_tensors(self, split: str) -> tuple[Tensor, Tensor | None]:
        """``train``: the users' item vectors ``(N, I)`` (0/1) and row indices ``(N,)``; ``val``/``test``: the held-out
        users' fold-in and held-out item vectors, each ``(N, I)``."""
        check_split(split)
        self.setup()
        return self._splits[split]

    def user_ids(self, split: str) -> list[str]:
        """The original user id of each row of ``split``."""
        self.setup()
        return list(self._user_ids[split])

    @property
    def shape(self) -> tuple[int]:
        """``(I,)``: the items of the training users."""
        if self.configured_shape is not None:
            return self.configured_shape
        self.setup()
        return (len(self.item_ids),)

    def derived_config(self) -> dict[str, Any]:
        """``num_users``: the training users (the user nodes of a CDAE)."""
        return {"num_users": len(self.split_tensors("train")[0])}

    def eval_metrics(self) -> dict:
        """Recall@20, Recall@50 (over min(k, held-out count)) and NDCG@100 of the held-out items, fold-in items
        masked (Liang et al. 2018 §4.2)."""
        return {
            "recommend/recall@20": RankingMetric("recall", 20),
            "recommend/recall@50": RankingMetric("recall", 50),
            "recommend/ndcg@100": RankingMetric("ndcg", 100),
        }

    def sample_images(self, n: int, split: str = "val") -> tuple[Tensor, Tensor | None]:
        """The first ``n`` item vectors of a split (fold-in vectors of held-out users) and their targets."""
        x, y = self.split_tensors(split)
        return x[:n], None if y is None else y[:n]

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The id maps and the protocol as plain data (into every checkpoint: ``aelab-recommend`` reads them)."""
        self.setup()
        return {
            "kind": "interactions",
            "items": list(self.item_ids),
            "item_popularity": self._splits["train"][0].sum(0).long().tolist(),
            "train_users": list(self._user_ids["train"]),
            "user_column": self.user_column,
            "item_column": self.item_column,
            "rating_column": self.rating_column,
            "rating_threshold": self.rating_threshold,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore: the splits are rebuilt from the log (deterministically)."""


def recbole_file(name: str) -> Path:
    """A data file the ``recbole`` wheel ships under ``recbole/dataset_example/`` (found without importing recbole,
    whose imports break on numpy 2).

    Raises:
        MissingDataError: when recbole is not installed, naming the install command.
    """
    import importlib.util

    spec = importlib.util.find_spec("recbole")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        path = Path(root) / "dataset_example" / name
        if path.is_file():
            return path
    raise MissingDataError(
        f"recbole's {name} is not installed: pip install --no-deps recbole==1.2.1 (make install does), or give "
        "your own copy with data.path=/path/to/ratings"
    )


def read_movielens(path: str | Path):
    """A MovieLens ratings file of any release as a frame ``user_id, item_id, rating, timestamp``: RecBole's atomic
    ``.inter`` file, ml-100k's ``u.data`` (tab-separated), ml-1m/10m's ``ratings.dat`` (``::``-separated) or
    ml-20m/latest's ``ratings.csv`` (``userId,movieId,rating,timestamp``).

    Raises:
        MissingDataError: when the file does not exist; DataError: when it cannot be read as one of these.
    """
    import pandas as pd

    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingDataError(f"data.path={path}: no such file; give a MovieLens ratings file")
    names = ["user_id", "item_id", "rating", "timestamp"]
    try:
        if path.suffix == ".inter":  # RecBole's atomic file: a header of name:type
            frame = pd.read_csv(path, sep="\t")
            frame.columns = [str(c).split(":")[0] for c in frame.columns]
        elif path.suffix == ".dat":
            frame = pd.read_csv(path, sep="::", engine="python", header=None, names=names)
        elif path.suffix == ".csv":
            frame = pd.read_csv(path)
            frame = frame.rename(columns={"userId": "user_id", "movieId": "item_id"})
        else:  # u.data and other whitespace-separated files
            frame = pd.read_csv(path, sep=r"\s+", header=None, names=names)
    except Exception as err:  # pandas raises many kinds for a broken file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: cannot be read as a MovieLens ratings file ({first})") from None
    return frame


class MovieLensDataModule(InteractionDataModule):
    """MovieLens ratings (GroupLens; Harper & Konstan 2015) under Liang et al.'s protocol: by default the 100,000
    ratings of ml-100k (943 users, 1,682 items) that the ``recbole`` 1.2.1 wheel ships as
    ``recbole/dataset_example/ml-100k/ml-100k.inter`` (read as a file: no download, recbole is never imported);
    ``path`` reads a copy of any MovieLens release (:func:`read_movielens`).

    Args:
        path: a MovieLens ratings file (``None``: the bundled ml-100k).
        **kwargs: as for :class:`InteractionDataModule` (the columns are MovieLens').
    """

    name = "movielens_100k"

    def __init__(self, path: str | None = None, **kwargs) -> None:
        kwargs.setdefault("rating_column", "rating")
        kwargs.setdefault("timestamp_column", "timestamp")
        super().__init__(path=path, **kwargs)

    def load_frame(self):
        return read_movielens(self.path if self.path is not None else recbole_file("ml-100k/ml-100k.inter"))
