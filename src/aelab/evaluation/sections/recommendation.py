"""Top-N recommendation of held-out users (interaction data): the model against popularity, ItemKNN and EASE."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor

from aelab.evaluation.context import EvalContext, requires
from aelab.evaluation.recommend import (
    choose_on_validation,
    item_cosine,
    keep_top_k,
    popularity_bins,
    popularity_scores,
    ranking_report,
)
from aelab.utils.ranking import mask_seen, top_k

log = logging.getLogger("aelab")

#: the baselines, in the order of their keys and bars
BASELINES = ("popularity", "itemknn", "ease")


@requires(kinds=("interactions",))
def recommend(
    ctx: EvalContext,
    ks_recall=(20, 50),
    k_ndcg: int = 100,
    knn_ks=(10, 20, 50, 100, 200, 500),
    ease_lambdas=(10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0),
    users_shown: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Recall@k and NDCG@k of the test users' held-out items under the strong-generalization protocol (Liang et
    al., "Variational Autoencoders for Collaborative Filtering", WWW 2018, §4.2), the model beside three baselines
    fitted on the training users only and scored on exactly the same test users and held-out items.

    The model's scores of the fold-in vectors ``(N, I)`` are ``model.reconstruct(x)`` (else ``model(x).x_hat``); the
    fold-in items are masked. Baselines (:mod:`aelab.evaluation.recommend`): popularity (training counts), ItemKNN
    (cosine, each item's ``k`` neighbours; Sarwar et al. 2001) with ``k`` from ``knn_ks`` and EASE (Steck 2019)
    with ``λ`` from ``ease_lambdas``, each chosen by the validation users' mean NDCG@``k_ndcg``.

    Keys (``test/recommend/``): ``recall@<k>`` for ``k`` in ``ks_recall``, ``ndcg@<k_ndcg>``, ``coverage@<ks[0]>``
    (the fraction of items in at least one test user's top ``ks_recall[0]``); the same with a ``<baseline>_``
    prefix for ``popularity``, ``itemknn`` and ``ease``; ``itemknn_k`` and ``ease_lambda`` (the chosen values);
    ``test_users`` (the test users with a held-out item, those the means are over).

    Figures (PNG beside ``metrics.json`` and the loggers; one that cannot be drawn is skipped with a warning):
    ``recommend_hits_by_popularity.png`` (the test hits@``ks_recall[0]`` of each method over 5 quantile bins of the
    items' training popularity) and ``recommend_users.txt`` (``users_shown`` seeded test users: their held-out items
    beside the model's top 10, hits marked ✓).
    """
    dm, device, bs = ctx.datamodule, ctx.device, ctx.batch_size
    ks = tuple(int(k) for k in ks_recall)
    k_ndcg = int(k_ndcg)
    x_train = ctx.train_u8.float()  # (N_train, I); the second tensor of train is the users' row indices
    test_fold, test_held = ctx.test_u8.float(), ctx.test_y.float()  # (N, I) each
    if not int(test_held.gt(0).any(1).sum()):
        return ctx.skip("recommend", f"no test user of {getattr(dm, 'name', 'the data')} has a held-out item")

    model_scores = ctx.map(_score_fn(ctx.model), test_fold)  # (N, I), on the CPU
    reports = {"model": ranking_report(model_scores, test_fold, test_held, ks, k_ndcg, bs, device)}

    # popularity: the training users' counts, the same row for every user
    pop = popularity_scores(x_train).to(device)
    reports["popularity"] = ranking_report(
        lambda f: pop.expand(len(f), -1), test_fold, test_held, ks, k_ndcg, bs, device
    )

    val = dm.split_tensors("val")
    test = (test_fold, test_held)
    reports["itemknn"], best_k = _itemknn(x_train, val, test, knn_ks, ks, k_ndcg, bs, device)
    reports["ease"], best_lam = _ease(x_train, val, test, ease_lambdas, ks, k_ndcg, bs, device)
    chosen = {"itemknn_k": float(best_k), "ease_lambda": float(best_lam)}

    out: dict[str, float] = {}
    for name, report in reports.items():
        prefix = "test/recommend/" if name == "model" else f"test/recommend/{name}_"
        for key in (*(f"recall@{k}" for k in ks), f"ndcg@{k_ndcg}", f"coverage@{ks[0]}"):
            out[prefix + key] = float(report[key])
    out |= {f"test/recommend/{key}": value for key, value in chosen.items()}
    out["test/recommend/test_users"] = float(reports["model"]["users"])
    log.info(
        "recommendation, %d test users: NDCG@%d model %.4f, %s (ItemKNN k=%d, EASE λ=%g)",
        reports["model"]["users"], k_ndcg, out[f"test/recommend/ndcg@{k_ndcg}"],
        ", ".join(f"{b} {out[f'test/recommend/{b}_ndcg@{k_ndcg}']:.4f}" for b in BASELINES), best_k, best_lam,
    )  # fmt: skip

    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    hits = {name: report[f"item_hits@{ks[0]}"] for name, report in reports.items()}
    _figure(ctx, "hits by item popularity", _hits_by_popularity, pop.cpu().numpy(), hits, ks[0])
    _figure(ctx, "recommendations of test users", _users_table, model_scores, test_fold, test_held,
            int(users_shown), int(seed))  # fmt: skip
    return out


def _itemknn(x_train: Tensor, val, test, knn_ks, ks, k_ndcg: int, bs: int, device):
    """ItemKNN's test report and ``k``: one cosine matrix of the training users, pruned to each ``k`` of
    ``knn_ks``, the best on the validation users ``(fold-in, held-out)`` scored on the test users."""
    cosine = item_cosine(x_train, device, bs)

    def knn(k):
        sim = keep_top_k(cosine, int(k))
        return lambda f: f @ sim

    best, _ = choose_on_validation(list(knn_ks), knn, val[0].float(), val[1].float(), k_ndcg, bs, device)
    return ranking_report(knn(best), *test, ks, k_ndcg, bs, device), best


def _ease(x_train: Tensor, val, test, lambdas, ks, k_ndcg: int, bs: int, device):
    """EASE's test report and ``λ``: the closed form (:func:`aelab.models.recommenders.ease_from_gram`, Steck 2019
    eq. 8) of the training users' Gram matrix, computed once, for each ``λ`` of ``lambdas``; the best on the
    validation users scored on the test users."""
    from aelab.models.recommenders import ease_from_gram, item_gram

    gram = item_gram(x_train, device)  # float64 (I, I), shared by every λ

    def ease(lam):
        weights = ease_from_gram(gram, float(lam)).to(device, torch.float32)
        return lambda f: f @ weights

    best, _ = choose_on_validation(list(lambdas), ease, val[0].float(), val[1].float(), k_ndcg, bs, device)
    return ranking_report(ease(best), *test, ks, k_ndcg, bs, device), best


def _score_fn(model):
    """The model's scores of fold-in vectors ``(B, I)``: ``reconstruct`` where it has one, else ``forward``'s
    ``x_hat``."""
    if callable(getattr(model, "reconstruct", None)):
        return model.reconstruct
    return lambda x: model(x).x_hat


def _figure(ctx: EvalContext, what: str, draw, *args) -> None:
    """``draw(ctx, *args)``; a figure that cannot be drawn is skipped with a warning naming it."""
    try:
        draw(ctx, *args)
    except Exception as err:  # noqa: BLE001 - a figure never stops the evaluation
        log.warning("recommendation figure %r skipped: %s: %s", what, type(err).__name__, err)


def _hits_by_popularity(
    ctx: EvalContext, popularity: np.ndarray, hits: dict[str, np.ndarray], k: int
) -> None:
    """Bars: the test hits@k of each method in 5 quantile bins of the items' training popularity (equal item
    counts, least popular first); ``recommend_hits_by_popularity.png`` and the loggers (``recommend/hits_by_
    popularity``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aelab.media import Media

    bins = popularity_bins(popularity, 5)
    labels = [f"{int(popularity[b].min())}–{int(popularity[b].max())}" for b in bins]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    width = 0.8 / max(1, len(hits))
    for j, (name, item_hits) in enumerate(hits.items()):
        counts = [int(item_hits[b].sum()) for b in bins]
        ax.bar(np.arange(len(bins)) + (j - (len(hits) - 1) / 2) * width, counts, width, label=name)
    ax.set_xticks(np.arange(len(bins)), labels)
    ax.set_xlabel("item popularity bin (training users with the item; 5 quantile bins of the items)")
    ax.set_ylabel(f"test hits@{k}")
    ax.set_title(f"held-out items in the top {k}, by item popularity ({getattr(ctx.datamodule, 'name', '')})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(ctx.output_dir / "recommend_hits_by_popularity.png")
    if ctx.loggers:
        Media(ctx.loggers).figure("recommend/hits_by_popularity", fig, ctx.step)  # closes it
    else:
        plt.close(fig)


def _users_table(
    ctx: EvalContext, scores: Tensor, fold_in: Tensor, heldout: Tensor, n: int, seed: int, top: int = 10
) -> None:
    """A text table of ``n`` seeded test users (with a held-out item): their held-out items beside the model's
    top ``top`` (fold-in items masked), hits marked ✓; ``recommend_users.txt`` and the loggers
    (``recommend/users``)."""
    from aelab.media import Media

    if n < 1:
        return
    dm = ctx.datamodule
    item_ids = list(getattr(dm, "item_ids", None) or range(fold_in.shape[1]))
    user_ids = dm.user_ids("test") if callable(getattr(dm, "user_ids", None)) else list(range(len(fold_in)))
    candidates = torch.nonzero(heldout.gt(0).any(1)).flatten()
    gen = torch.Generator().manual_seed(int(seed))
    picked = candidates[torch.randperm(len(candidates), generator=gen)[:n]].sort().values
    ranked = top_k(mask_seen(scores[picked], fold_in[picked]), top)
    width = max(12, *(len(str(item_ids[int(i)])) + 2 for i in ranked.flatten()))
    blocks = []
    for row, u in zip(ranked.tolist(), picked.tolist(), strict=True):
        held = torch.nonzero(heldout[u] > 0).flatten().tolist()
        hits = sum(heldout[u, i] > 0 for i in row)
        lines = [
            f"user {user_ids[u]}: {int(fold_in[u].gt(0).sum())} fold-in items, {len(held)} held out, "
            f"{int(hits)} in the top {top}",
            f"  {'rank':<5}{'recommended':<{width + 2}}held out",
        ]
        shown_held = [str(item_ids[i]) for i in held[:top]]
        if len(held) > top:
            shown_held[-1] = f"… {len(held) - top + 1} more"
        for r in range(max(len(row), len(shown_held))):
            rec = ""
            if r < len(row):
                rec = f"{item_ids[row[r]]}" + (" ✓" if heldout[u, row[r]] > 0 else "")
            lines.append(f"  {r + 1 if r < len(row) else '':<5}{rec:<{width + 2}}"
                         f"{shown_held[r] if r < len(shown_held) else ''}")  # fmt: skip
        blocks.append("\n".join(lines))
    text = "\n\n".join(blocks)
    (ctx.output_dir / "recommend_users.txt").write_text(text + "\n", encoding="utf-8")
    if ctx.loggers:
        Media(ctx.loggers).text("recommend/users", text, ctx.step)
