"""Top-k ranking metrics of recommendation under the strong-generalization protocol (Liang et al., "Variational
Autoencoders for Collaborative Filtering", WWW 2018, §4.2): each held-out user is folded in with some of their items
and scored on the rest.

Shapes: ``scores`` ``(B, I)`` (any real scores, higher ranks first), ``seen`` and ``heldout`` ``(B, I)`` 0/1 item
vectors. The items a user was folded in with (``seen``) are never recommended: their scores are set to −∞ first
(:func:`mask_seen`). A user with no held-out item has no defined value and is left out of the means.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


def mask_seen(scores: Tensor, seen: Tensor) -> Tensor:
    """``scores`` with the items of ``seen`` (``(B, I)``, nonzero = seen) set to −∞, so they rank last."""
    return scores.float().masked_fill(seen > 0, float("-inf"))


def top_k(scores: Tensor, k: int) -> Tensor:
    """Indices ``(B, min(k, I))`` of each row's ``k`` highest scores, best first (ties: the lower index first)."""
    k = min(int(k), scores.shape[-1])
    # a stable sort makes ties deterministic across devices and torch versions
    return torch.sort(scores, dim=-1, descending=True, stable=True).indices[:, :k]


def recall_at_k(scores: Tensor, heldout: Tensor, k: int) -> Tensor:
    """Recall@k per user ``(B,)``: held-out items among the top ``k``, over ``min(k, |held-out|)`` (Liang et al. 2018,
    eq. 6: normalised so that a perfect ranking scores 1 whatever the held-out count); NaN for a user with none."""
    hits = heldout.gather(1, top_k(scores, k)).gt(0).sum(1).float()
    n = heldout.gt(0).sum(1).float()
    return hits / n.clamp(max=k).masked_fill(n == 0, float("nan"))


def ndcg_at_k(scores: Tensor, heldout: Tensor, k: int) -> Tensor:
    """NDCG@k per user ``(B,)`` with binary relevance: DCG@k = Σ_{r=1..k} rel_r / log2(r + 1), over the ideal DCG of
    ``min(k, |held-out|)`` hits (Liang et al. 2018, §4.2; Järvelin & Kekäläinen 2002); NaN for a user with none."""
    idx = top_k(scores, k)
    discount = 1.0 / torch.log2(torch.arange(2, idx.shape[1] + 2, device=scores.device, dtype=torch.float))
    dcg = (heldout.gather(1, idx).gt(0).float() * discount).sum(1)
    n = heldout.gt(0).sum(1).clamp(max=idx.shape[1])
    ideal = torch.cat([torch.zeros(1, device=scores.device), discount.cumsum(0)])[n]
    return dcg / ideal.masked_fill(n == 0, float("nan"))


def coverage_at_k(scores: Tensor, k: int) -> Tensor:
    """Items ``(I,)`` 0/1: those that appear in at least one row's top ``k`` (catalogue coverage's numerator)."""
    hit = torch.zeros(scores.shape[1], dtype=torch.bool, device=scores.device)
    hit[top_k(scores, k).flatten()] = True
    return hit


class RankingMetric(Metric):
    """The mean over users of Recall@k or NDCG@k (``kind``), for held-out users' batches ``(fold-in, held-out)``:
    :meth:`update` takes the model's scores ``(B, I)`` and the batch; the fold-in items are masked. Users without a
    held-out item are left out. Reduced across DDP ranks (sum and count).

    Args:
        kind: ``recall`` or ``ndcg``.
        k: the cut-off.

    Raises:
        ValueError: for another ``kind`` or ``k < 1``.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, kind: str, k: int) -> None:
        super().__init__()
        if kind not in ("recall", "ndcg"):
            raise ValueError(f"kind must be recall or ndcg, got {kind!r}")
        if int(k) < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.kind, self.k = kind, int(k)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, scores: Tensor, batch) -> None:  # type: ignore[override]
        seen, heldout = batch[0], batch[1]
        fn = recall_at_k if self.kind == "recall" else ndcg_at_k
        values = fn(mask_seen(scores, seen), heldout, self.k)
        ok = ~torch.isnan(values)
        self.total += values[ok].double().sum()
        self.count += ok.sum()

    def compute(self) -> Tensor:
        return (self.total / self.count.clamp(min=1)).float()


__all__ = ["RankingMetric", "coverage_at_k", "mask_seen", "ndcg_at_k", "recall_at_k", "top_k"]
