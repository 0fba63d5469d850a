"""Top-N recommendation under the strong-generalization protocol: the non-neural baselines and the ranking report
of the ``recommend`` evaluation section (:func:`aelab.evaluation.sections.recommend`).

Protocol (Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW 2018, §4.2): the baselines are
fitted on the training users' item vectors ``X_train`` ``(N_train, I)`` (0/1); held-out users are folded in with
some of their items (``fold_in`` ``(N, I)``, 0/1) and scored on the rest (``heldout`` ``(N, I)``, 0/1). Every
scorer maps fold-in vectors ``(B, I)`` to scores ``(B, I)`` (higher ranks first); the fold-in items are masked
(:func:`aelab.utils.ranking.mask_seen`) before ranking. The metrics are those of :mod:`aelab.utils.ranking`.

Baselines:

- popularity: each item's count of training users (the same ranking for everyone);
- ItemKNN: cosine similarity of the item columns of ``X_train``, each item keeping its ``k`` most similar items
  (Sarwar et al., "Item-based collaborative filtering recommendation algorithms", WWW 2001, §3.1.1 and §3.2.1;
  RecBole's ``ItemKNN``, ``shrink = 0``);
- EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019): the closed form
  :func:`aelab.models.recommenders.ease_weights`.

Hyperparameters (ItemKNN's ``k``, EASE's ``λ``) are chosen on the validation users by mean NDCG@100
(:func:`choose_on_validation`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from aelab.models.recommenders import item_gram as gram64
from aelab.utils.ranking import coverage_at_k, mask_seen, ndcg_at_k, recall_at_k, top_k

log = logging.getLogger("aelab")

#: fold-in vectors ``(B, I)`` (on the scorer's device) → scores ``(B, I)``, higher ranks first
Scorer = Callable[[Tensor], Tensor]


def popularity_scores(X_train: Tensor) -> Tensor:
    """Item popularity ``(I,)`` float: the number of training users with each item (``X_train`` ``(N, I)``, nonzero
    = an interaction). Every user gets this same row (``scores.expand(B, -1)``), fold-in items masked."""
    return X_train.gt(0).sum(0).float()


def item_gram(X_train: Tensor, device: torch.device | str | None = None, batch_size: int = 4096) -> Tensor:
    """``X_trainᵀ X_train`` ``(I, I)`` float32 on ``device`` (default: ``X_train``'s): EASE's Gram matrix
    (:func:`aelab.models.recommenders.item_gram`, summed in float64 over batches of ``batch_size`` users) as float32.
    For 0/1 data entry ``(i, j)`` counts the users with both items (exact in float32 up to 2²⁴ users)."""
    return gram64(X_train, device, int(batch_size)).float()


def item_cosine(X_train: Tensor, device: torch.device | str | None = None, batch_size: int = 4096) -> Tensor:
    """Cosine similarity ``(I, I)`` in [0, 1] (0/1 data) of the item columns of ``X_train`` ``(N, I)``:
    ``S_ij = x_iᵀ x_j / (‖x_i‖ ‖x_j‖)`` (Sarwar et al. 2001, §3.1.1), the diagonal set to 0 (an item is not its own
    neighbour, as in RecBole), and 0 for an item no training user has (zero norm)."""
    gram = item_gram(X_train, device, batch_size)
    norm = gram.diagonal().clamp(min=0).sqrt()
    denom = norm[:, None] * norm[None, :]
    sim = torch.where(denom > 0, gram / denom.clamp(min=torch.finfo(gram.dtype).tiny), torch.zeros_like(gram))
    sim.fill_diagonal_(0.0)
    return sim


def keep_top_k(sim: Tensor, k: int, batch_size: int = 1024) -> Tensor:
    """``sim`` ``(I, I)`` (symmetric) with each column ``j`` keeping only its ``k`` largest entries ``sim[i, j]``,
    the ``k`` nearest neighbours of item ``j``; the rest 0 (Sarwar et al. 2001, §3.2.1: the prediction for item
    ``j`` sums over the user's items among ``j``'s neighbours; RecBole's ``ComputeSimilarity``). Ties: the lower
    item index first (a stable sort). ``k ≥ I`` keeps everything."""
    k = int(k)
    if k < 1:
        raise ValueError(f"ItemKNN needs k ≥ 1 neighbours, got {k}")
    if k >= sim.shape[0]:
        return sim.clone()
    kept = torch.zeros_like(sim)
    for start in range(0, sim.shape[1], int(batch_size)):
        block = sim[:, start : start + int(batch_size)]
        idx = torch.sort(block, dim=0, descending=True, stable=True).indices[:k]  # (k, B)
        kept[:, start : start + int(batch_size)] = torch.zeros_like(block).scatter_(
            0, idx, block.gather(0, idx)
        )
    return kept


def itemknn_scores(X_train: Tensor, fold_in: Tensor, k: int) -> Tensor:
    """ItemKNN scores ``(N, I)`` of the fold-in vectors ``(N, I)``: ``fold_in @ S_k``, where ``S_k`` is the cosine
    similarity of the item columns of ``X_train`` ``(N_train, I)`` (:func:`item_cosine`) with each item keeping its
    ``k`` most similar items (:func:`keep_top_k`): the score of item ``j`` is the summed similarity of the user's
    items among ``j``'s ``k`` neighbours (Sarwar et al. 2001, §3.2.1, the weighted sum without its normalisation,
    which does not change a ranking of binary data by much and is what RecBole's ``ItemKNN`` computes). On
    ``fold_in``'s device."""
    sim = keep_top_k(item_cosine(X_train, fold_in.device), k)
    return fold_in.float() @ sim


def _chunks(scores: Tensor | Scorer, fold_in: Tensor, heldout: Tensor | None, batch_size: int, device):
    """``(scores, fold-in, held-out)`` batches on ``device``: rows of a score tensor ``(N, I)``, or a scorer's
    output for each batch of fold-in vectors."""
    for start in range(0, len(fold_in), int(batch_size)):
        sl = slice(start, start + int(batch_size))
        fold = fold_in[sl].to(device, torch.float32)
        got = scores[sl].to(device) if isinstance(scores, Tensor) else scores(fold)
        yield got.float(), fold, None if heldout is None else heldout[sl].to(device, torch.float32)


@torch.no_grad()
def ranking_report(
    scores: Tensor | Scorer,
    fold_in: Tensor,
    heldout: Tensor,
    ks: Sequence[int] = (20, 50),
    k_ndcg: int = 100,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
) -> dict:
    """The ranking figures of ``scores`` for held-out users (Liang et al. 2018, §4.2), fold-in items masked.

    Args:
        scores: scores ``(N, I)`` (any real numbers, higher first), or a :data:`Scorer` run on each batch.
        fold_in: the users' fold-in items ``(N, I)`` (0/1; never recommended).
        heldout: their held-out items ``(N, I)`` (0/1; what is scored).
        ks: the Recall@k cut-offs; the first is also the coverage's and the item hits'.
        k_ndcg: the NDCG cut-off.
        batch_size: users ranked at once (the sort of ``(B, I)`` scores is the memory).
        device: where they are ranked.

    Returns:
        ``{"recall@k": mean over users with a held-out item, ..., "ndcg@<k_ndcg>": mean, "coverage@<ks[0]>": the
        fraction of the ``I`` items in at least one user's top ``ks[0]`` (all users), "users": users with a held-out
        item, "per_user": {"recall@k": (N,), "ndcg@..": (N,)} float64 arrays (NaN without a held-out item),
        "item_hits@<ks[0]>": (I,) int64, how often each item is a held-out item in a top ``ks[0]``}``.
    """
    ks = tuple(int(k) for k in ks)
    k_cov = ks[0]
    per_user: dict[str, list[Tensor]] = {f"recall@{k}": [] for k in ks} | {f"ndcg@{int(k_ndcg)}": []}
    covered = torch.zeros(fold_in.shape[1], dtype=torch.bool, device=device)
    item_hits = torch.zeros(fold_in.shape[1], dtype=torch.int64, device=device)
    for got, fold, held in _chunks(scores, fold_in, heldout, batch_size, device):
        masked = mask_seen(got, fold)
        for k in ks:
            per_user[f"recall@{k}"].append(recall_at_k(masked, held, k).cpu())
        per_user[f"ndcg@{int(k_ndcg)}"].append(ndcg_at_k(masked, held, int(k_ndcg)).cpu())
        covered |= coverage_at_k(masked, k_cov)
        top = top_k(masked, k_cov)
        hit = held.gather(1, top).gt(0)
        item_hits += torch.bincount(top[hit], minlength=fold_in.shape[1])
    arrays = {key: torch.cat(parts).double().numpy() for key, parts in per_user.items()}
    report: dict = {key: _nanmean(values) for key, values in arrays.items()}
    report[f"coverage@{k_cov}"] = float(covered.float().mean()) if covered.numel() else float("nan")
    report["users"] = int(heldout.gt(0).any(1).sum())
    report["per_user"] = arrays
    report[f"item_hits@{k_cov}"] = item_hits.cpu().numpy()
    return report


def _nanmean(values: np.ndarray) -> float:
    ok = ~np.isnan(values)
    return float(values[ok].mean()) if ok.any() else float("nan")


@torch.no_grad()
def mean_ndcg(
    scores: Tensor | Scorer,
    fold_in: Tensor,
    heldout: Tensor,
    k: int = 100,
    batch_size: int = 1024,
    device="cpu",
) -> float:
    """Mean NDCG@k over the users with a held-out item (fold-in items masked); NaN when none has one."""
    values = [
        ndcg_at_k(mask_seen(got, fold), held, int(k)).cpu()
        for got, fold, held in _chunks(scores, fold_in, heldout, batch_size, device)
    ]
    return _nanmean(torch.cat(values).double().numpy()) if values else float("nan")


def choose_on_validation(
    candidates: Sequence,
    make_scores: Callable[[object], Tensor | Scorer],
    val_fold: Tensor,
    val_held: Tensor,
    k: int = 100,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
) -> tuple[object, dict]:
    """The candidate hyperparameter whose scores have the best mean validation NDCG@k: the held-out validation
    users pick every method's hyperparameters (Liang et al. 2018's protocol, §4.2), never the test users.

    Args:
        candidates: the values tried, in order (ties: the first).
        make_scores: a candidate → scores ``(N_val, I)`` or a :data:`Scorer` of fold-in batches.
        val_fold, val_held: the validation users' fold-in and held-out items ``(N_val, I)`` (0/1).
        k: the NDCG cut-off.

    Returns:
        ``(best candidate, {candidate: mean validation NDCG@k})``; the first candidate (with a warning) when no
        validation user has a held-out item.

    Raises:
        ValueError: for no candidates.
    """
    if len(candidates) == 0:
        raise ValueError("choose_on_validation needs at least one candidate")
    found = {c: mean_ndcg(make_scores(c), val_fold, val_held, k, batch_size, device) for c in candidates}
    scored = [(v, -i, c) for i, (c, v) in enumerate(found.items()) if not math.isnan(v)]
    if not scored:
        log.warning("no validation user has a held-out item: the first candidate %r is kept", candidates[0])
        return candidates[0], found
    return max(scored, key=lambda t: (t[0], t[1]))[2], found


def popularity_bins(popularity: np.ndarray, n_bins: int = 5) -> list[np.ndarray]:
    """The items split into ``n_bins`` quantile bins of training popularity ``(I,)``: items sorted by popularity
    (ties by index) and cut into bins of equal item counts, least popular first; a list of index arrays."""
    order = np.argsort(np.asarray(popularity), kind="stable")
    return [b for b in np.array_split(order, max(1, min(int(n_bins), len(order)))) if len(b)]


__all__ = [
    "Scorer",
    "choose_on_validation",
    "item_cosine",
    "item_gram",
    "itemknn_scores",
    "keep_top_k",
    "mean_ndcg",
    "popularity_bins",
    "popularity_scores",
    "ranking_report",
]
