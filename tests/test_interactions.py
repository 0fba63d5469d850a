"""aelab.data.interactions and aelab.utils.ranking: the strong-generalization split (no held-out interaction is
seen at fold-in; disjoint users; seeded), the k-core and rating filters, duplicates merged, the refusals of a bad
log (one line, nothing written), the bundled MovieLens 100K, and Recall@k / NDCG@k against hand computations."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import torch

from aelab.data import InteractionDataModule, MovieLensDataModule
from aelab.errors import ConfigError, DataError
from aelab.utils.ranking import RankingMetric, coverage_at_k, mask_seen, ndcg_at_k, recall_at_k
from helpers import run_inprocess


def _log(users: int = 60, items: int = 40, seed: int = 0) -> pd.DataFrame:
    """A log of ``users`` users with 6–15 rated items each (ratings 1–5) and a timestamp."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        for i in rng.choice(items, size=int(rng.integers(6, 16)), replace=False):
            rows.append((f"u{u}", f"i{i}", int(rng.integers(1, 6)), int(rng.integers(0, 10**9))))
    return pd.DataFrame(rows, columns=["user", "item", "stars", "ts"])


def _dm(path, **kw) -> InteractionDataModule:
    kw = {"user_column": "user", "item_column": "item", "val_size": 8, "test_size": 8, "batch_size": 16, **kw}
    return InteractionDataModule(path=str(path), **kw)


def test_the_fold_in_split_never_shows_a_held_out_interaction_and_users_are_disjoint(tmp_path):
    frame = _log()
    frame.to_csv(tmp_path / "log.csv", index=False)
    dm = _dm(tmp_path / "log.csv")
    x_train, rows = dm.split_tensors("train")
    assert dm.sample_kind == "interactions" and dm.shape == (x_train.shape[1],)
    assert torch.equal(rows, torch.arange(len(x_train))) and dm.derived_config() == {
        "num_users": len(x_train)
    }
    ids = {s: set(dm.user_ids(s)) for s in ("train", "val", "test")}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    assert sum(map(len, ids.values())) == 60 and len(ids["val"]) == len(ids["test"]) == 8
    item_index = {item: i for i, item in enumerate(dm.item_ids)}
    for split in ("val", "test"):
        fold, held = dm.split_tensors(split)
        assert not (fold * held).any()  # no held-out interaction is seen at fold-in
        for r, user in enumerate(dm.user_ids(split)):
            mine = frame[(frame.user == user) & frame.item.isin(item_index)]
            want = torch.zeros(len(dm.item_ids))
            want[[item_index[i] for i in mine.item]] = 1
            assert torch.equal(fold[r] + held[r], want)  # together: the user's interactions with known items
            n = int(want.sum())
            assert int(held[r].sum()) == (max(1, int(0.2 * n)) if n >= 5 else 0)
    again = _dm(tmp_path / "log.csv")
    assert all(
        torch.equal(a, b) for a, b in zip(again.split_tensors("test"), dm.split_tensors("test"), strict=True)
    )
    other = _dm(tmp_path / "log.csv", split_seed=7)
    assert set(other.user_ids("test")) != ids["test"]


def test_rating_threshold_k_core_and_duplicates(tmp_path):
    rows = [("a", f"i{i}", 5) for i in range(6)] + [("a", "i0", 5)]  # a duplicate, merged
    rows += [("b", f"i{i}", 4) for i in range(4)] + [("b", "i9", 3)]  # 4 positives: dropped by the 5-core
    rows += [(f"c{u}", f"i{i}", 4) for u in range(6) for i in range(u, u + 5)]
    pd.DataFrame(rows, columns=["user", "item", "stars"]).to_csv(tmp_path / "log.csv", index=False)
    dm = _dm(tmp_path / "log.csv", rating_column="stars", val_size=1, test_size=1)
    users = {u for s in ("train", "val", "test") for u in dm.user_ids(s)}
    assert "b" not in users and "a" in users and len(users) == 7
    if "a" in dm.user_ids("train"):
        assert (
            dm.split_tensors("train")[0][dm.user_ids("train").index("a")].sum() == 6
        )  # the duplicate merged
    assert "i9" not in dm.item_ids  # a rating under the threshold is no interaction
    looser = _dm(
        tmp_path / "log.csv", rating_column="stars", val_size=1, test_size=1, min_user_interactions=4
    )
    assert "b" in {u for s in ("train", "val", "test") for u in looser.user_ids(s)}


@pytest.mark.parametrize("damage, error, message", [
    ("no_user", ConfigError, r"data.user_column='user' is not a column of the log; its columns: .*set data.user_column"),
    ("text_rating", DataError, r"column 'stars' holds 'five' \(row 3\), not a number"),
    ("k_core", DataError, r"no user has 50 or more ratings ≥ 4 interactions: lower data.min_user_interactions"),
    ("few_users", ConfigError, r"60 users left after the filter cannot hold out data.val_size=40 and data.test_size=30"),
])  # fmt: skip
def test_a_bad_log_is_refused_naming_the_column_and_the_fix(tmp_path, damage, error, message):
    frame = _log()
    kw = {"rating_column": "stars", "rating_threshold": 1}
    if damage == "no_user":
        frame = frame.rename(columns={"user": "who"})
    elif damage == "text_rating":
        frame["stars"] = frame["stars"].astype(object)
        frame.loc[3, "stars"] = "five"
    elif damage == "k_core":
        kw = {"rating_column": "stars", "rating_threshold": 4, "min_user_interactions": 50}
    elif damage == "few_users":
        kw |= {"val_size": 40, "test_size": 30}
    frame.to_csv(tmp_path / "log.csv", index=False)
    with pytest.raises(error, match=message):
        _dm(tmp_path / "log.csv", **kw).setup()


def test_a_bad_log_stops_the_run_in_one_line_before_anything_is_written(
    tmp_path, fake_data_dir, monkeypatch, capsys
):
    from aelab.cli.train import main

    frame = _log()
    frame.to_csv(tmp_path / "log.csv", index=False)
    run = tmp_path / "run"
    argv = ["data=interactions", f"data.path={tmp_path / 'log.csv'}", "data.user_column=customer",
            "data.item_column=item", "model=mult_dae", f"hydra.run.dir={run}", "trainer.max_epochs=1"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        run_inprocess(main, argv, monkeypatch, fake_data_dir)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and err[0].startswith("aelab-train: error:")
    assert re.search("data.user_column='customer' is not a column", err[0]), err[0]
    assert not (run / "checkpoints").exists() and not (run / "metrics.json").exists()


def test_movielens_100k_is_read_from_the_recbole_wheel_under_liangs_protocol():
    pytest.importorskip("pandas")
    from aelab.data.interactions import read_movielens, recbole_file

    try:
        path = recbole_file("ml-100k/ml-100k.inter")
    except Exception as err:  # make install installs it; a bare checkout may not have it
        pytest.skip(str(err))
    frame = read_movielens(path)
    assert len(frame) == 100_000 and frame.user_id.nunique() == 943 and frame.item_id.nunique() == 1682
    dm = MovieLensDataModule(val_size=100, test_size=100)
    positives = frame[frame.rating >= 4]
    counts = positives.groupby("user_id").size()
    kept = set(counts[counts >= 5].index.astype(str))
    split_users = [set(dm.user_ids(s)) for s in ("train", "val", "test")]
    assert set().union(*split_users) == kept and [len(u) for u in split_users[1:]] == [100, 100]
    train_items = set(positives[positives.user_id.astype(str).isin(split_users[0])].item_id.astype(str))
    assert set(dm.item_ids) == train_items and dm.shape == (len(train_items),)
    assert dm.monitor == "val/recommend/ndcg@100" and dm.monitor_mode == "max"


# ---------------------------------------------------------------------------------------------- ranking
def test_recall_and_ndcg_against_hand_computations():
    # one user, items 0..5; scores rank items 5, 4, 3, 2, 1, 0; item 5 was folded in (masked); held out: 3 and 0
    scores = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])
    seen = torch.tensor([[0, 0, 0, 0, 0, 1.0]])
    held = torch.tensor([[1.0, 0, 0, 1.0, 0, 0]])
    masked = mask_seen(scores, seen)  # the ranking: 4, 3, 2, 1, 0
    assert recall_at_k(masked, held, 2).item() == pytest.approx(1 / 2)  # one hit (3) over min(2, 2)
    assert recall_at_k(masked, held, 1).item() == pytest.approx(0.0)  # item 4 first: no hit over min(1, 2)
    assert recall_at_k(masked, held, 5).item() == pytest.approx(1.0)  # both, over min(5, 2) = 2
    dcg = 1 / math.log2(3) + 1 / math.log2(6)  # hits at ranks 2 and 5
    ideal = 1 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(masked, held, 5).item() == pytest.approx(dcg / ideal)
    assert ndcg_at_k(masked, held, 2).item() == pytest.approx((1 / math.log2(3)) / ideal)
    assert torch.isnan(ndcg_at_k(masked, torch.zeros_like(held), 5)).all()  # no held-out item: undefined
    assert coverage_at_k(masked, 2).nonzero().flatten().tolist() == [3, 4]


def test_ndcg_equals_torchmetrics_retrieval_ndcg_on_random_users():
    from torchmetrics.functional.retrieval import retrieval_normalized_dcg

    g = torch.Generator().manual_seed(0)
    scores, held = torch.rand(20, 50, generator=g), (torch.rand(20, 50, generator=g) < 0.1).float()
    held[:, 0] = 1  # every user has a held-out item
    ours = ndcg_at_k(scores, held, 10)
    ref = torch.stack([retrieval_normalized_dcg(scores[u], held[u].long(), top_k=10) for u in range(20)])
    assert torch.allclose(ours, ref, atol=1e-6)


def test_the_ranking_metric_masks_fold_in_items_and_skips_users_without_held_out_items():
    metric = RankingMetric("recall", 1)
    scores = torch.tensor([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    fold = torch.tensor([[1.0, 0, 0], [0, 0, 0], [0, 0, 0]])
    held = torch.tensor([[0, 1.0, 0], [0, 1.0, 0], [0, 0, 0]])  # the third user has none
    metric.update(scores, (fold, held))
    assert metric.compute().item() == pytest.approx(0.5)  # user 1: item 0 masked → item 1 hit; user 2: miss
    with pytest.raises(ValueError, match="kind must be recall or ndcg"):
        RankingMetric("precision", 5)


# ---------------------------------------------------------------------------------------------- aelab-recommend
@pytest.fixture(scope="module")
def trained_recommender(tmp_path_factory, fake_data_dir):
    """A Mult-DAE trained one epoch on a toy log (checkpoint path, the log)."""
    from aelab.cli.train import main
    from conftest import MNIST_SMALL, SMALL

    root = tmp_path_factory.mktemp("recommender")
    frame = _log(users=40, items=30)
    frame.to_csv(root / "log.csv", index=False)
    argv = [o for o in SMALL if o not in MNIST_SMALL] + [
        "data=interactions", f"data.path={root / 'log.csv'}", "data.user_column=user", "data.item_column=item",
        "data.rating_column=stars", "data.rating_threshold=1", "data.val_size=5", "data.test_size=5",
        "data.batch_size=10", "model=mult_dae", "model.hidden_dims=[16]", "model.latent_dim=8",
        "trainer.max_epochs=1", f"hydra.run.dir={root / 'run'}",
    ]  # fmt: skip
    mp = pytest.MonkeyPatch()
    try:
        run_inprocess(main, argv, mp, fake_data_dir)
    finally:
        mp.undo()
    return root / "run" / "checkpoints" / "last.ckpt", frame


def test_aelab_recommend_writes_the_top_k_unseen_items_and_counts_unknown_ones(
    trained_recommender, tmp_path, capsys
):
    from aelab.cli.recommend import main

    ckpt, frame = trained_recommender
    history = pd.DataFrame(
        [("new_user", "i1", 5), ("new_user", "i2", 4), ("new_user", "never_seen", 5), ("u0", "i3", 5)],
        columns=["user", "item", "stars"],
    )
    history.to_csv(tmp_path / "history.csv", index=False)
    assert (
        main(
            [
                str(ckpt),
                "--input",
                str(tmp_path / "history.csv"),
                "--k",
                "5",
                "--out",
                str(tmp_path / "recs.csv"),
            ]
        )
        == 0
    )
    recs = pd.read_csv(tmp_path / "recs.csv", dtype={"user": str, "item": str})
    assert sorted(recs.user.unique()) == ["new_user", "u0"] and (recs.groupby("user").size() == 5).all()
    assert recs.groupby("user")["rank"].apply(list).tolist() == [[1, 2, 3, 4, 5]] * 2
    seen = {("new_user", "i1"), ("new_user", "i2"), ("u0", "i3")}
    assert not seen & set(zip(recs.user, recs.item, strict=True))  # never an item the user has
    scores = recs[recs.user == "new_user"].score.tolist()
    assert scores == sorted(scores, reverse=True)
    out = capsys.readouterr().out
    assert "1 interactions with 1 items the model never saw were not used" in out and "never_seen" in out
    # k beyond the unseen items: every unseen item once, never a seen one
    assert (
        main(
            [
                str(ckpt),
                "--input",
                str(tmp_path / "history.csv"),
                "--k",
                "5000",
                "--out",
                str(tmp_path / "all.csv"),
            ]
        )
        == 0
    )
    every = pd.read_csv(tmp_path / "all.csv", dtype={"user": str, "item": str})
    saved = torch.load(ckpt, weights_only=True).values()  # the item map the run saved as plain data
    items = next(len(v["items"]) for v in saved if isinstance(v, dict) and v.get("kind") == "interactions")
    assert every.groupby("user").size().to_dict() == {"new_user": items - 2, "u0": items - 1}
    assert not seen & set(zip(every.user, every.item, strict=True))


@pytest.mark.parametrize("damage, message", [
    ("no_item_column", r"refused: no column 'item' \(the training log's\); its columns: .*--item-column"),
    ("all_unknown", r"refused: none of its 2 items is one the model was trained on"),
])  # fmt: skip
def test_aelab_recommend_refuses_a_bad_history_in_one_line_and_writes_nothing(
    trained_recommender, tmp_path, capsys, damage, message
):
    from aelab.cli.recommend import main

    ckpt, _ = trained_recommender
    history = pd.DataFrame([("a", "zz1", 5), ("a", "zz2", 5)], columns=["user", "item", "stars"])
    if damage == "no_item_column":
        history = history.rename(columns={"item": "movie"})
    history.to_csv(tmp_path / "history.csv", index=False)
    out = tmp_path / "recs.csv"
    assert main([str(ckpt), "--input", str(tmp_path / "history.csv"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("aelab-recommend") and re.search(message, err[0]), err
    assert not out.exists()


def test_a_single_process_model_under_ddp_is_refused_in_one_line(
    tmp_path, fake_data_dir, monkeypatch, capsys
):
    from aelab.cli.train import main
    from conftest import MNIST_SMALL, SMALL

    _log().to_csv(tmp_path / "log.csv", index=False)
    run = tmp_path / "run"
    argv = [o for o in SMALL if o not in MNIST_SMALL] + [
        "data=interactions", f"data.path={tmp_path / 'log.csv'}", "data.user_column=user", "data.item_column=item",
        "data.val_size=5", "data.test_size=5", "data.batch_size=10", "model=ease", "trainer=ddp_sim",
        f"hydra.run.dir={run}",
    ]  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        run_inprocess(main, argv, monkeypatch, fake_data_dir)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1, err
    assert (
        "EASE runs in one process (EASE is fitted in closed form" in err[0]
        and "use trainer=default" in err[0]
    )
    assert not (run / "checkpoints").exists()
