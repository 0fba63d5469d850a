"""``aelab-recommend``: a recommender trained on an interaction log, applied to users' histories.

::

    aelab-recommend logs/train/runs/<id>/checkpoints/last.ckpt --input history.csv --k 20 --out recs.csv

``--input`` (CSV or Parquet) holds one row per interaction, with the training log's user and item columns (and its
rating column, when the run had one: the same ``rating_threshold`` keeps the positives). Every user is folded in from
their history, as the held-out users of the strong-generalization protocol were (a model with user nodes, CDAE,
uses a training user's own node); the ``k`` best-scored items the user has not interacted with are written to
``--out`` as ``user, rank, item, score`` rows (rank 1 first; the model's score, higher is better). Items the model
never saw are counted and reported (and ignored for scoring), never silently dropped; a user none of whose items the
model knows is reported and gets no row. A file without the columns, a rating that is not a number, or one whose
items are all unknown is refused with one line, and nothing is written.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from aelab.checkpoint import load_model
from aelab.cli import checkpoint_parser, returns_code
from aelab.data.interactions import numeric_column
from aelab.data.tables import read_table
from aelab.errors import ConfigError, DataError
from aelab.trust import trusted_prefixes
from aelab.utils.ranking import mask_seen, top_k


def _interaction_state(ckpt: dict) -> dict:
    for value in ckpt.values():
        if (
            isinstance(value, dict)
            and value.get("kind") == "interactions"
            and isinstance(value.get("items"), list)
        ):
            return value
    raise ConfigError(
        "the checkpoint holds no item map: aelab-recommend serves models trained on interactions "
        "(data=interactions, data=movielens_100k)"
    )


def user_scores(model, x: torch.Tensor, users: torch.Tensor | None, batch_size: int, device) -> torch.Tensor:
    """The model's item scores ``(N, I)`` for fold-in vectors ``x (N, I)`` (``users``: training users' rows for a
    model with user nodes, else ``None``), in batches on ``device``, on the CPU."""
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            kwargs = {} if users is None else {"users": users[start : start + batch_size].to(device)}
            batch = x[start : start + batch_size].to(device)
            out.append(model(batch, **kwargs).x_hat.float().cpu())
    return torch.cat(out) if out else torch.empty(0, x.shape[1])


@returns_code("aelab-recommend")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="aelab-recommend", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[checkpoint_parser()],
    )  # fmt: skip
    p.add_argument(
        "ckpt", help="checkpoint written by aelab-train on interactions (data=movielens_100k, ...)"
    )
    p.add_argument(
        "--input", required=True, help="the users' histories (CSV or Parquet: user, item[, rating])"
    )
    p.add_argument("--out", required=True, help="the recommendations (CSV: user, rank, item, score)")
    p.add_argument("--k", type=int, default=20, help="items recommended per user")
    p.add_argument("--user-column", default=None, help="the user column (default: the training log's)")
    p.add_argument("--item-column", default=None, help="the item column (default: the training log's)")
    args = p.parse_args(argv)
    if args.k < 1:
        raise ConfigError(f"--k {args.k}: recommend at least one item (--k 20)")

    device = torch.device(args.device)
    model, _, ckpt = load_model(args.ckpt, device, trusted_prefixes(args.trust))
    saved = _interaction_state(ckpt)
    items: list[str] = saved["items"]
    user_col = args.user_column or saved["user_column"]
    item_col = args.item_column or saved["item_column"]
    frame = read_table(args.input)
    frame.columns = [str(c) for c in frame.columns]
    for flag, col in (("--user-column", user_col), ("--item-column", item_col)):
        if col not in frame.columns:
            raise DataError(
                f"{args.input}: refused: no column {col!r} (the training log's); its columns: {list(frame.columns)}: "
                f"rename it or pass {flag}. Nothing was written"
            )
    keep = np.ones(len(frame), dtype=bool)
    rating_col = saved.get("rating_column")
    if rating_col and rating_col in frame.columns:
        keep = numeric_column(frame, rating_col, args.input) >= float(saved["rating_threshold"])
    users = frame[user_col].astype(str).to_numpy()[keep]
    hist_items = frame[item_col].astype(str).to_numpy()[keep]
    index = {item: i for i, item in enumerate(items)}
    known = np.array([item in index for item in hist_items], dtype=bool)
    if len(hist_items) and not known.any():
        raise DataError(
            f"{args.input}: refused: none of its {len(set(hist_items))} items is one the model was trained on (e.g. "
            f"{sorted(set(hist_items))[:3]}; the model's are e.g. {items[:3]}): check --item-column and the ids. "
            "Nothing was written"
        )
    if not len(hist_items):
        raise DataError(
            f"{args.input}: refused: no interaction to fold in (after the rating threshold). Nothing was written"
        )
    ids = sorted(set(users.tolist()))
    served = sorted(set(users[known].tolist()))
    row = {u: r for r, u in enumerate(served)}
    x = torch.zeros(len(served), len(items))
    x[[row[u] for u in users[known]], [index[i] for i in hist_items[known]]] = 1.0

    # a model with user nodes (CDAE) uses a training user's own node; every other user is folded in
    trained = {u: r for r, u in enumerate(saved.get("train_users") or [])}
    scores = torch.empty(len(served), len(items))
    with_node = [r for r, u in enumerate(served) if u in trained] if hasattr(model, "batch_kwargs") else []
    rest = sorted(set(range(len(served))) - set(with_node))
    if with_node:
        nodes = torch.tensor([trained[served[r]] for r in with_node])
        scores[with_node] = user_scores(model, x[with_node], nodes, args.batch_size, device)
    if rest:
        scores[rest] = user_scores(model, x[rest], None, args.batch_size, device)
    masked = mask_seen(scores, x)
    best = top_k(
        masked, args.k
    )  # seen items rank last (−∞): with k beyond the unseen items they are left out below

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    with os.fdopen(fd, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["user", "rank", "item", "score"])
        for r, user in enumerate(served):
            unseen = [i for i in best[r].tolist() if masked[r, i] != float("-inf")]
            for rank, i in enumerate(unseen, start=1):
                writer.writerow([user, rank, items[i], f"{float(scores[r, i]):.6g}"])
    os.replace(tmp, out)
    unknown = sorted(set(hist_items[~known].tolist()))
    print(f"{len(served)} users → {out}: top {args.k} unseen items each")
    if unknown:
        print(
            f"{int((~known).sum())} interactions with {len(unknown)} items the model never saw were not used "
            f"(e.g. {unknown[:5]})"
        )
    if len(served) < len(ids):
        skipped = sorted(set(ids) - set(served))
        print(f"{len(skipped)} users have only unknown items and got no recommendation: {skipped[:10]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
