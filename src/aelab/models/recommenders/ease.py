"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019): the closed-form item-item model."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from aelab.errors import ConfigError
from aelab.models.outputs import ModelOutput
from aelab.models.recommenders.common import (
    check_items,
    check_positive_int,
    float32_scores,
)
from aelab.utils.ranking import mask_seen, ndcg_at_k


def item_gram(x: Tensor, device: torch.device | str | None = None, chunk: int = 4096) -> Tensor:
    """``XᵀX`` ``(I, I)`` in float64 on ``device`` (``x``'s by default), summed over chunks of users so no float64
    copy of the whole ``x`` ``(N, I)`` is made."""
    device = x.device if device is None else torch.device(device)
    n_items = x.shape[1]
    gram = torch.zeros(n_items, n_items, dtype=torch.float64, device=device)
    for rows in x.split(chunk):
        r = rows.to(device=device, dtype=torch.float64)
        gram += r.T @ r
    return gram


def ease_from_gram(gram: Tensor, lam: float) -> Tensor:
    """Steck (2019), eq. 8, from the Gram matrix ``XᵀX`` ``(I, I)`` (float64): ``P = (XᵀX + λI)⁻¹``,
    ``B = I − P diagMat(1 ⊘ diag(P))``, ``diag(B) = 0``; float64."""
    g = gram.clone()
    g.diagonal().add_(float(lam))
    p = torch.cholesky_inverse(torch.linalg.cholesky(g))  # G is symmetric positive definite for λ > 0
    b = -p / p.diagonal()[None, :]
    b.diagonal().zero_()
    return b


def ease_weights(x: Tensor, lam: float) -> Tensor:
    """EASE's item-item weights ``B`` ``(I, I)`` (float32, on ``x``'s device) for users' 0/1 item vectors ``x``
    ``(N, I)`` and the L2 penalty ``λ > 0``: the closed form of Steck, "Embarrassingly Shallow Autoencoders for Sparse
    Data" (WWW 2019), eq. 8: ``G = XᵀX + λI``, ``P = G⁻¹``, ``B = I − P·diagMat(1 ⊘ diag(P))``, so ``diag(B) = 0``
    (the constraint of eq. 1). Computed in float64. A user's scores are ``x_u B``.

    Raises:
        ValueError: for ``λ <= 0`` or an ``x`` that is not 2-D.
    """
    if not float(lam) > 0:
        raise ValueError(f"EASE's λ={lam!r} must be > 0 (Steck 2019 tunes it, e.g. 500)")
    if x.ndim != 2:
        raise ValueError(f"EASE needs item vectors (N, I), got shape {tuple(x.shape)}")
    return ease_from_gram(item_gram(x), float(lam)).float()


class EASE(nn.Module):
    """EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019): scores ``x B`` with the
    item-item weights ``B`` ``(I, I)`` of :func:`ease_weights` (eq. 8), fitted once on the training users'
    vectors by :meth:`fit_start` (aelab's LightningModule calls it when a run starts). No parameter is trained: the
    module runs the epochs with no optimizer.

    ``λ``: ``lam`` when given, else the value of ``lambdas`` with the best mean NDCG@100 of the validation users'
    held-out items given their fold-in items (Steck tunes λ on held-out users). ``B`` and the chosen λ are buffers in
    the state dict (``lam_chosen`` NaN before the fit).

    Args:
        num_items: I, the item count (``${data.shape.0}``).
        lambdas: the grid λ is chosen from (positive).
        lam: a fixed λ (> 0); ``None`` chooses from ``lambdas``.

    The loss is ``mean_u Σ_i (x_ui − (x_u B)_i)²``, the training objective of eq. 1 per user (no gradient); no terms.
    ``reconstruction`` and ``logits`` are the scores ``x B`` ``(B, I)``; ``z`` is ``None`` (EASE has no code).

    Raises:
        ValueError: for a non-positive ``num_items``, an empty grid or a non-positive λ; in :meth:`fit_start`, training
            data whose item count differs from ``num_items`` or (choosing λ) no validation users with held-out items.
    """

    #: the data this model takes (the data contract's sample kinds): users' item vectors
    sample_kinds = ("interactions",)
    #: why this model runs in one process only (torch's DDP refuses a module with no parameter to train)
    single_process = "EASE is fitted in closed form, with nothing to train across processes"

    NDCG_K = 100

    def __init__(
        self,
        num_items: int,
        lambdas: Sequence[float] = (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0),
        lam: float | None = None,
    ) -> None:
        super().__init__()
        self.num_items = check_positive_int(num_items, "num_items", "leave it to ${data.shape.0}")
        grid = [float(v) for v in lambdas]
        if not grid or min(grid) <= 0:
            raise ValueError(
                f"model.lambdas={list(lambdas)!r} must be positive values: e.g. model.lambdas=[100,500]"
            )
        if lam is not None and not float(lam) > 0:
            raise ValueError(f"model.lam={lam!r} must be > 0, or null to choose it from model.lambdas")
        self.lambdas, self.lam = tuple(grid), None if lam is None else float(lam)
        self.register_buffer("B", torch.zeros(self.num_items, self.num_items))
        self.register_buffer("lam_chosen", torch.tensor(float("nan")))

    def scores(self, x: Tensor) -> Tensor:
        """Item scores ``x B`` ``(B, I)`` of item vectors ``(B, I)`` (higher ranks first)."""
        return x.to(self.B.dtype) @ self.B

    def reconstruct(self, x: Tensor) -> Tensor:
        """The scores the rankings use, ``x B`` ``(B, I)``."""
        return self.scores(x)

    @float32_scores
    def forward(
        self, x: Tensor, generator: torch.Generator | None = None, step: int | None = None
    ) -> ModelOutput:
        """Scores and squared error of item vectors ``x`` ``(B, I)`` (``generator`` and ``step`` are unused)."""
        check_items(x, self.num_items, "EASE")
        scores = self.scores(x)
        loss = (x.float() - scores.float()).pow(2).sum(1).mean()
        return ModelOutput(loss, scores, None, {}, reconstruction=scores, output="identity")

    @torch.no_grad()
    def validation_ndcg(self, b: Tensor, fold_in: Tensor, heldout: Tensor, chunk: int = 4096) -> float:
        """Mean NDCG@100 over the users ``(N, I)`` with a held-out item, of the scores ``fold_in B`` with the fold-in
        items masked (:func:`aelab.utils.ranking.ndcg_at_k`); NaN without such a user."""
        total, count = 0.0, 0
        for rows, held in zip(fold_in.split(chunk), heldout.split(chunk), strict=True):
            rows, held = rows.to(b.device), held.to(b.device)
            values = ndcg_at_k(mask_seen(rows.to(b.dtype) @ b, rows), held, self.NDCG_K)
            ok = ~torch.isnan(values)
            total += float(values[ok].double().sum())
            count += int(ok.sum())
        return total / count if count else float("nan")

    @torch.no_grad()
    def fit_start(self, datamodule) -> str:
        """Fit ``B`` on the training users (``datamodule.split_tensors("train")[0]``), choosing λ on the validation
        users (``split_tensors("val")``: fold-in and held-out items) unless ``lam`` is fixed; returns a line for the
        log."""
        start = time.perf_counter()
        x = datamodule.split_tensors("train")[0]
        if x.ndim != 2 or x.shape[1] != self.num_items:
            raise ConfigError(
                f"EASE was built for {self.num_items} items (model.num_items) but the training split holds "
                f"{tuple(x.shape)}: leave model.num_items to ${{data.shape.0}}"
            )
        device = self.B.device
        gram = item_gram(x, device)
        if self.lam is not None:
            lam, chose = self.lam, f"λ={self.lam:g} (model.lam)"
        else:
            fold_in, heldout = datamodule.split_tensors("val")
            if heldout is None or fold_in.shape[0] == 0:
                raise ConfigError(
                    "EASE chooses λ on the validation users' held-out items but the validation split has none: "
                    "fix λ with model.lam=500"
                )
            ndcg = {
                lam: self.validation_ndcg(ease_from_gram(gram, lam).float(), fold_in, heldout)
                for lam in self.lambdas
            }
            if all(math.isnan(v) for v in ndcg.values()):
                raise ConfigError(
                    "EASE chooses λ on the validation users' held-out items but none has a held-out item: "
                    "fix λ with model.lam=500"
                )
            lam = max(
                self.lambdas, key=lambda v: -math.inf if math.isnan(ndcg[v]) else ndcg[v]
            )  # ties: the first
            chose = f"λ={lam:g} chosen on {fold_in.shape[0]} validation users (NDCG@{self.NDCG_K} {ndcg[lam]:.3f})"
        self.B.copy_(ease_from_gram(gram, lam).to(self.B.dtype))
        self.lam_chosen.fill_(lam)
        seconds = time.perf_counter() - start
        return f"EASE: {chose}; fitted on {x.shape[0]} users × {x.shape[1]} items in {seconds:.1f} s"

    def fit_start_tensors(self) -> list[Tensor]:
        """What :meth:`fit_start` sets, which every DDP rank receives from rank 0: ``[B, lam_chosen]``."""
        return [self.B, self.lam_chosen]
