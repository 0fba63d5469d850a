"""The ``recommend`` evaluation section and its baselines (:mod:`aelab.evaluation.recommend`): ItemKNN against a
hand-computed toy, popularity's ranking, the choice on validation users, the section's figures against the ranking
metrics computed here, baselines fitted on the training users only, and the suite's kinds and skip reasons."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from aelab.evaluation.recommend import (
    choose_on_validation,
    item_cosine,
    itemknn_scores,
    keep_top_k,
    popularity_bins,
    popularity_scores,
    ranking_report,
)
from aelab.utils.ranking import mask_seen, ndcg_at_k, recall_at_k, top_k

R6 = math.sqrt(6.0)


def _ease_weights():
    """EASE's closed form from aelab (Steck 2019, eq. 8); while that module is being written, a reference here."""
    try:
        from aelab.models.recommenders import ease_weights
    except ImportError:  # pragma: no cover - only while aelab.models.recommenders is missing

        def ease_weights(x, lam):
            g = x.double().T @ x.double() + float(lam) * torch.eye(x.shape[1], dtype=torch.float64)
            p = torch.linalg.inv(g)
            b = -p / p.diagonal()[None, :]
            b.diagonal().zero_()
            return b.float()

    return ease_weights


@pytest.fixture
def ease(monkeypatch):
    fn = _ease_weights()
    try:
        import aelab.models.recommenders  # noqa: F401
    except ImportError:  # pragma: no cover
        import sys
        import types

        monkeypatch.setitem(sys.modules, "aelab.models.recommenders", types.SimpleNamespace(ease_weights=fn))
    return fn


# 4 training users × 4 items; item 3 has no training user
TOY = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.float32)


def test_itemknn_is_the_cosine_of_item_columns_pruned_to_each_items_k_neighbours():
    """Counts 3, 3, 2, 0; co-occurrences (0,1) = 2, (0,2) = 1, (1,2) = 2: cosines 2/3, 1/√6, 2/√6; the diagonal and
    the unseen item 3 are 0 (not NaN). k = 1 keeps in each column j its single most similar item: column 0 keeps item 1
    (2/3 > 1/√6), columns 1 and 2 keep each other (2/√6); a user's score of item j sums the similarities of their
    items among j's neighbours."""
    full = torch.tensor(
        [[0, 2 / 3, 1 / R6, 0], [2 / 3, 0, 2 / R6, 0], [1 / R6, 2 / R6, 0, 0], [0, 0, 0, 0]],
        dtype=torch.float32,
    )
    assert torch.allclose(item_cosine(TOY), full, atol=1e-6)
    k1 = torch.tensor(
        [[0, 0, 0, 0], [2 / 3, 0, 2 / R6, 0], [0, 2 / R6, 0, 0], [0, 0, 0, 0]], dtype=torch.float32
    )
    assert torch.allclose(keep_top_k(item_cosine(TOY), 1), k1, atol=1e-6)
    assert torch.allclose(keep_top_k(item_cosine(TOY), 2), full, atol=1e-6)  # every nonzero similarity kept
    users = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 1, 0]], dtype=torch.float32)
    want_k1 = torch.tensor([[0, 0, 0, 0], [2 / 3, 0, 2 / R6, 0], [0, 2 / R6, 0, 0]], dtype=torch.float32)
    assert torch.allclose(itemknn_scores(TOY, users, 1), want_k1, atol=1e-6)
    want_k2 = torch.tensor(
        [[0, 2 / 3, 1 / R6, 0], [2 / 3, 0, 2 / R6, 0], [1 / R6, 2 / 3 + 2 / R6, 1 / R6, 0]],
        dtype=torch.float32,
    )
    assert torch.allclose(itemknn_scores(TOY, users, 2), want_k2, atol=1e-6)
    with pytest.raises(ValueError, match="k ≥ 1"):
        keep_top_k(full, 0)


def test_popularity_ranks_items_by_training_count_and_masks_the_fold_in_items():
    x = torch.tensor(
        [[1, 0, 1, 0, 1], [1, 0, 1, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 0, 0]], dtype=torch.float32
    )
    pop = popularity_scores(x)
    assert pop.tolist() == [3, 1, 3, 0, 1]
    fold = torch.tensor([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.float32)
    ranked = top_k(mask_seen(pop.expand(2, -1), fold), 4)
    assert ranked.tolist() == [[2, 1, 4, 3], [0, 2, 1, 4]]  # ties: the lower index first
    assert [len(b) for b in popularity_bins(pop.numpy(), 2)] == [3, 2]
    assert popularity_bins(pop.numpy(), 2)[0].tolist() == [3, 1, 4]  # least popular first


def test_ranking_report_means_and_coverage_match_the_ranking_metrics():
    """Means over users with a held-out item (a user without one is left out), coverage over all users, item hits
    of the top k; a scorer function gives the same as its score tensor."""
    gen = torch.Generator().manual_seed(0)
    fold = (torch.rand(7, 30, generator=gen) < 0.2).float()
    held = (torch.rand(7, 30, generator=gen) < 0.2).float() * (1 - fold)
    held[3] = 0  # no held-out item
    scores = torch.randn(7, 30, generator=gen)
    got = ranking_report(scores, fold, held, ks=(5, 10), k_ndcg=8, batch_size=3)
    masked = mask_seen(scores, fold)
    for key, values in (("recall@5", recall_at_k(masked, held, 5)), ("recall@10", recall_at_k(masked, held, 10)),
                        ("ndcg@8", ndcg_at_k(masked, held, 8))):  # fmt: skip
        assert got[key] == pytest.approx(float(values[~values.isnan()].double().mean()))
        assert np.isnan(got["per_user"][key][3])
    top = top_k(masked, 5)
    assert got["coverage@5"] == pytest.approx(len(set(top.flatten().tolist())) / 30)
    hits = np.zeros(30, dtype=np.int64)
    for u in range(7):
        for i in top[u].tolist():
            hits[i] += int(held[u, i] > 0)
    assert got["item_hits@5"].tolist() == hits.tolist() and got["users"] == 6
    seen_first = ranking_report(
        scores + 100 * fold, fold, held, ks=(5,), k_ndcg=8
    )  # masked: the same figures
    assert seen_first["coverage@5"] == got["coverage@5"] and seen_first["ndcg@8"] == got["ndcg@8"]
    w = torch.randn(30, 30, generator=gen)
    as_tensor = ranking_report(fold @ w, fold, held, (5,), 8, batch_size=4)
    as_scorer = ranking_report(lambda f: f @ w, fold, held, (5,), 8, batch_size=4)
    assert as_scorer["ndcg@8"] == pytest.approx(as_tensor["ndcg@8"]) and as_tensor["ndcg@8"] != got["ndcg@8"]


def test_choose_on_validation_picks_the_best_mean_ndcg_and_the_first_of_a_tie():
    held = torch.tensor([[0, 1, 0, 1], [1, 0, 0, 0]], dtype=torch.float32)
    fold = torch.tensor([[0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float32)
    made = {
        "worst": 1 - held,
        "perfect": held.clone(),
        "also_perfect": 2 * held,
        "by_index": torch.zeros(2, 4),
    }
    best, found = choose_on_validation(list(made), made.__getitem__, fold, held, k=3)
    assert (
        best == "perfect"
        and found["perfect"] == pytest.approx(1.0)
        and found["also_perfect"] == found["perfect"]
    )
    assert found["worst"] < found["by_index"] < 1.0
    with pytest.raises(ValueError, match="at least one"):
        choose_on_validation([], made.__getitem__, fold, held)


# ---------------------------------------------------------------------------------------------- the section
class FakeInteractions:
    """A tiny interaction set: 16 training users, 6 validation and 6 test users, 12 items. Items 0–2 are what the
    training users have most, items 9–11 what the held-out users have most (so popularity fitted on the test users
    would rank them differently)."""

    name = "fake"
    sample_kind = "interactions"
    image_shape = None
    train_classes = None

    def __init__(self, root: Path, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        n_items = 12
        self.item_ids = [f"item{i:02d}" for i in range(n_items)]
        self.cache_dir = root
        train_p = torch.linspace(0.8, 0.1, n_items)  # popular: low indices
        held_p = torch.linspace(0.1, 0.8, n_items)  # held-out users: high indices

        def draw(n, p):
            return (torch.rand(n, n_items, generator=gen) < p).float()

        x_train = draw(16, train_p)
        self._splits = {"train": (x_train, torch.arange(16))}
        for split in ("val", "test"):
            items = draw(6, held_p)
            items[:, 0] = 1.0  # everyone has one item to fold in
            items[:, 11] = 1.0  # and one to hold out
            held = (torch.rand(6, n_items, generator=gen) < 0.5).float() * items
            held[:, 0], held[:, 11] = 0.0, 1.0
            self._splits[split] = (items - held, held)
        self._users = {s: [f"u{s}{i}" for i in range(len(self._splits[s][0]))] for s in self._splits}

    @property
    def shape(self):
        return (len(self.item_ids),)

    def split_tensors(self, split):
        return self._splits[split]

    def user_ids(self, split):
        return list(self._users[split])


class FixedScores(nn.Module):
    """Scores ``x W`` with a fixed seeded ``W`` ``(I, I)`` (any model with ``reconstruct`` is scored the same way)."""

    def __init__(self, n_items: int, seed: int = 0) -> None:
        super().__init__()
        self.register_buffer(
            "w", torch.randn(n_items, n_items, generator=torch.Generator().manual_seed(seed))
        )

    def reconstruct(self, x):
        return x @ self.w


class Recorder:
    """A logger that shows aelab's figures and texts its own way (Media's ``log_aelab_<item>`` hooks)."""

    def __init__(self) -> None:
        self.figures, self.texts = [], []

    def log_aelab_figure(self, tag, fig, step):
        self.figures.append(tag)

    def log_aelab_text(self, tag, text, step):
        self.texts.append((tag, text))


def _mean(values: torch.Tensor) -> float:
    return float(values[~values.isnan()].double().mean())


def test_the_section_reports_the_model_and_baselines_fitted_on_training_users(tmp_path, ease):
    from aelab.evaluation.context import EvalContext
    from aelab.evaluation.sections import recommend

    dm = FakeInteractions(tmp_path)
    model, logger = FixedScores(12), Recorder()
    ctx = EvalContext(model, dm, tmp_path / "out", torch.device("cpu"), 4, loggers=[logger])
    knn_ks, lambdas = (1, 3, 11), (100.0, 1.0, 10.0)  # on these data the validation users pick neither first
    out = recommend(ctx, ks_recall=(2, 5), k_ndcg=10, knn_ks=knn_ks, ease_lambdas=lambdas, users_shown=3)
    x_train = dm.split_tensors("train")[0]
    fold, held = dm.split_tensors("test")
    val_fold, val_held = dm.split_tensors("val")
    p = "test/recommend/"
    names = ["recall@2", "recall@5", "ndcg@10", "coverage@2"]
    assert set(out) == {p + n for n in names} | {f"{p}{b}_{n}" for b in ("popularity", "itemknn", "ease")
                                                 for n in names} | {p + "itemknn_k", p + "ease_lambda", p + "test_users"}  # fmt: skip
    assert out[p + "test_users"] == 6

    # the model: its scores of the fold-in vectors, fold-in items masked
    masked = mask_seen(fold @ model.w, fold)
    assert out[p + "ndcg@10"] == pytest.approx(_mean(ndcg_at_k(masked, held, 10)))
    assert out[p + "recall@5"] == pytest.approx(_mean(recall_at_k(masked, held, 5)))
    assert out[p + "coverage@2"] == pytest.approx(len(set(top_k(masked, 2).flatten().tolist())) / 12)

    # popularity fitted on the training users; fitting it on the test users would give another figure
    def pop_ndcg(counts):
        return _mean(ndcg_at_k(mask_seen(counts.expand(len(fold), -1), fold), held, 10))

    assert out[p + "popularity_ndcg@10"] == pytest.approx(pop_ndcg(x_train.sum(0)))
    assert pop_ndcg((fold + held).sum(0)) != pytest.approx(out[p + "popularity_ndcg@10"])

    # ItemKNN and EASE: the value the validation users pick, fitted on the training users, scored on the test users
    def val_ndcg(scores):
        return _mean(ndcg_at_k(mask_seen(scores, val_fold), val_held, 10))

    k = max(knn_ks, key=lambda k: (val_ndcg(itemknn_scores(x_train, val_fold, k)), -knn_ks.index(k)))
    assert out[p + "itemknn_k"] == k != knn_ks[0]
    knn = itemknn_scores(x_train, fold, k)
    assert out[p + "itemknn_ndcg@10"] == pytest.approx(_mean(ndcg_at_k(mask_seen(knn, fold), held, 10)))
    lam = max(lambdas, key=lambda lam: (val_ndcg(val_fold @ ease(x_train, lam)), -lambdas.index(lam)))
    assert out[p + "ease_lambda"] == lam != lambdas[0]
    scores = fold @ ease(x_train, lam)
    assert out[p + "ease_ndcg@10"] == pytest.approx(_mean(ndcg_at_k(mask_seen(scores, fold), held, 10)))
    assert out[p + "ease_recall@2"] == pytest.approx(_mean(recall_at_k(mask_seen(scores, fold), held, 2)))

    # the figures: a PNG and a text table beside metrics.json, and both in the logger
    assert (tmp_path / "out" / "recommend_hits_by_popularity.png").stat().st_size > 0
    table = (tmp_path / "out" / "recommend_users.txt").read_text(encoding="utf-8")
    assert (
        table.count("user utest") == 3 and "item11" in table and "✓" in table
    )  # item 11: everyone's held-out item
    assert logger.figures == ["recommend/hits_by_popularity"] and logger.texts[0][0] == "recommend/users"


def test_a_figure_that_cannot_be_drawn_is_skipped_with_a_warning(tmp_path, ease, caplog):
    from aelab.evaluation.context import EvalContext
    from aelab.evaluation.sections import recommend

    dm = FakeInteractions(tmp_path)

    def broken(split):
        raise RuntimeError("no user ids here")

    dm.user_ids = broken
    ctx = EvalContext(FixedScores(12), dm, tmp_path, torch.device("cpu"), 8)
    with caplog.at_level("WARNING", logger="aelab"):
        out = recommend(ctx, ks_recall=(2,), k_ndcg=10, knn_ks=(3,), ease_lambdas=(10.0,))
    assert "test/recommend/ndcg@10" in out and "test/recommend/ease_ndcg@10" in out
    assert "recommendations of test users" in caplog.text and "no user ids here" in caplog.text
    assert (tmp_path / "recommend_hits_by_popularity.png").exists() and not (
        tmp_path / "recommend_users.txt"
    ).exists()


def test_sections_declare_kinds_and_the_suite_writes_why_it_skipped_them(tmp_path, ease):
    """An image section (``kinds=("image",)``) does not run on interaction data, nor the anomaly section (image and
    table kinds); the suite writes why to ``suite_skipped.json`` and runs the recommendation section."""
    from aelab.evaluation.context import requires
    from aelab.evaluation.sections import anomaly, likelihood, recommend, reconstruction
    from aelab.evaluation.suite import applies, run_suite, skip_reason

    assert requires(kinds=("image",))(lambda ctx: {}).kinds == ("image",)
    assert requires(images=True)(lambda ctx: {}).kinds == ("image",)
    assert requires()(lambda ctx: {}).kinds is None
    with pytest.raises(ValueError, match="unknown sample kinds"):
        requires(kinds=("pictures",))
    assert reconstruction.kinds == ("image",) and recommend.kinds == ("interactions",)
    assert likelihood.kinds == ("image", "table") and anomaly.kinds == ("image", "table", "series")

    dm, model = FakeInteractions(tmp_path), FixedScores(12)
    section = {"_target_": "aelab.evaluation.sections.reconstruction", "_partial_": True, "enabled": "auto"}
    assert not applies(
        "reconstruction", section, model, dm
    )  # FixedScores reconstructs: only the kind stops it
    assert "image" in skip_reason("reconstruction", section, model, dm)
    cfg = OmegaConf.create({
        "name": "custom", "batch_size": 5,
        "sections": {
            "reconstruction": section,
            "off": {**section, "enabled": False},
            "gone": None,
            "recommend": {"_target_": "aelab.evaluation.sections.recommend", "_partial_": True, "enabled": "auto",
                          "ks_recall": [2, 5], "k_ndcg": 10, "knn_ks": [3], "ease_lambdas": [10.0],
                          "users_shown": 0},
        },
    })  # fmt: skip
    out = run_suite(model, dm, cfg, tmp_path / "eval", torch.device("cpu"))
    assert "test/recommend/ndcg@10" in out and "test/timing/recommend_s" in out
    assert not any(key.startswith("test/reconstruction") for key in out)
    skipped = json.loads((tmp_path / "eval" / "suite_skipped.json").read_text(encoding="utf-8"))
    assert set(skipped) == {"reconstruction", "off", "gone"}
    assert "image" in skipped["reconstruction"] and "interactions" in skipped["reconstruction"]
    assert "enabled is false" in skipped["off"] and "null" in skipped["gone"]
