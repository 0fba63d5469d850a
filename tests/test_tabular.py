"""aelab.data.tabular (and what serves it: the detection figures, aelab-score): the transform against values
computed here, the one-class split, the ODDS protocols of the bundled sets, the refusals of a bad table (one line,
nothing written), and a user's CSV trained, evaluated against the baselines and scored end to end."""

from __future__ import annotations

import csv
import math
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from aelab.data.tabular import BreastCancerDataModule, TableTransform, TabularDataModule, WineDataModule
from aelab.errors import DataError
from aelab.evaluation.detection import detection_figures
from helpers import run_inprocess


def _records(n: int = 400, anomalies: int = 20, seed: int = 0) -> pd.DataFrame:
    """Normal records on a 2-d plane in 6 columns (plus a category), anomalies off it; an id and a text label."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 2))
    x = latent @ rng.normal(size=(2, 6)) + 0.05 * rng.normal(size=(n, 6))
    x[-anomalies:] += rng.normal(0, 3, size=(anomalies, 6))
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(6)])
    frame["site"] = rng.choice(["north", "south"], size=n)
    frame["id"] = [f"r{i:04d}" for i in range(n)]
    frame["label"] = ["ok"] * (n - anomalies) + ["fraud"] * anomalies
    return frame


def test_the_transform_is_the_hand_scaling_and_survives_a_checkpoint(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 6.0], "b": [0.0, 0.0, 4.0, 4.0], "c": ["x", "y", "x", "z"]})
    for scaling, first in (("standard", [(1 - 3) / math.sqrt(3.5), (0 - 2) / 2]), ("minmax", [0.0, 0.0])):
        t = TableTransform(["a", "b"], ["c"], scaling).fit(frame)
        x = t.transform(frame)
        assert x.shape == (4, 2 + 3) and x[0, :2].tolist() == pytest.approx(first, rel=1e-6)
        assert x[:, 2:].tolist() == [[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]]  # one-hot, fitted categories
        assert t.feature_names == ["a", "b", "c=x", "c=y", "c=z"]
        torch.save({"t": t.state_dict()}, tmp_path / "s.pt")
        back = TableTransform.from_state_dict(torch.load(tmp_path / "s.pt", weights_only=True)["t"])
        assert torch.equal(back.transform(frame), x)
    unseen = pd.DataFrame({"a": [2.0], "b": [1.0], "c": ["never"]})
    assert t.transform(unseen)[0, 2:].tolist() == [0, 0, 0]  # an unseen category: all zeros
    q = TableTransform(["a"], scaling="quantile").fit(frame)
    assert q.transform(pd.DataFrame({"a": [2.5]}))[0, 0].item() == pytest.approx(
        0.0, abs=1e-6
    )  # the median → 0


def test_missing_values_are_refused_or_imputed_with_the_training_statistic():
    frame = pd.DataFrame({"a": [1.0, np.nan, 5.0], "b": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError, match="column 'a' has missing values.*data.impute=median"):
        TableTransform(["a", "b"], source="t.csv").fit(frame)
    t = TableTransform(["a", "b"], scaling="minmax", impute="median").fit(frame)
    assert t.transform(frame)[1, 0].item() == pytest.approx(0.5)  # median 3 of [1, 5] → halfway


def _csv(tmp_path, frame, name="records.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _dm(path, **kw):
    kw = {
        "label_column": "label",
        "anomaly_values": ["fraud"],
        "categorical_columns": ["site"],
        "id_column": "id",
        **kw,
    }
    return TabularDataModule(path=str(path), batch_size=32, **kw)


def test_the_one_class_split_is_seeded_and_keeps_anomalies_out_of_training(tmp_path):
    path = _csv(tmp_path, _records())
    dm = _dm(path)
    sizes = {s: len(dm.split_tensors(s)[0]) for s in ("train", "val", "test")}
    # 380 inliers: round(0.3·380) = 114 held out for test, round(0.1·266) = 27 for validation, 239 for training
    assert sizes == {"train": 239, "val": 27, "test": 114 + 20}
    assert int(dm.anomaly_labels("train").sum()) == 0 and int(dm.anomaly_labels("val").sum()) == 0
    assert int(dm.anomaly_labels("test").sum()) == 20
    assert dm.shape == (6 + 2,) and dm.image_shape is None and dm.split_tensors("train")[1] is None
    x = dm.split_tensors("train")[0]
    assert x.dtype == torch.float32 and x[:, :6].mean(0).abs().max() < 1e-5  # scaled on the training split
    again, other = _dm(path), _dm(path, split_seed=7)
    assert torch.equal(again.split_tensors("test")[0], dm.split_tensors("test")[0])
    assert not torch.equal(other.split_tensors("train")[0], dm.split_tensors("train")[0])


def test_the_bundled_sets_follow_the_odds_protocols():
    bc, wine = BreastCancerDataModule(), WineDataModule()
    for dm, n, anomalies, features in ((bc, 378, 21, 30), (wine, 129, 10, 13)):
        total = sum(len(dm.split_tensors(s)[0]) for s in ("train", "val", "test"))
        assert total == n and int(dm.anomaly_labels("test").sum()) == anomalies and dm.shape == (features,)
    assert torch.equal(
        BreastCancerDataModule().split_tensors("test")[0], bc.split_tensors("test")[0]
    )  # fixed


@pytest.mark.parametrize("damage, message", [
    ("text", "column 'f2' is not numeric.*data.categorical_columns=\\[f2\\]"),
    ("nan", "column 'f1' has missing values"),
    ("label", "data.label_column names column 'label'"),
    ("inliers", "0 normal records"),
    ("garbage", "cannot be read as a table"),
])  # fmt: skip
def test_a_bad_table_is_refused_in_one_line_and_nothing_is_written(
    tmp_path, fake_data_dir, monkeypatch, capsys, damage, message
):
    from aelab.cli.train import main

    frame = _records(60, 5)
    if damage == "text":
        frame["f2"] = frame["f2"].astype(str).str.slice(0, 4) + "x"
    elif damage == "nan":
        frame.loc[3, "f1"] = np.nan
    elif damage == "label":
        frame = frame.drop(columns=["label"])
    elif damage == "inliers":
        frame["label"] = "fraud"
    path = _csv(tmp_path, frame)
    if damage == "garbage":
        path = tmp_path / "records.parquet"
        path.write_bytes(b"PAR1 not really a parquet file")
    run = tmp_path / "run"
    argv = ["data=tabular", f"data.path={path}", "data.label_column=label", "data.anomaly_values=[fraud]",
            "data.categorical_columns=[site]", "data.id_column=id", f"hydra.run.dir={run}", "trainer.max_epochs=1"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        run_inprocess(main, argv, monkeypatch, fake_data_dir)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and err[0].startswith("aelab-train: error:")
    import re

    assert re.search(message, err[0]), err[0]
    assert not (run / "checkpoints").exists() and not (run / "metrics.json").exists()


def test_conv_parts_on_a_table_are_refused_before_training(tmp_path, fake_data_dir, monkeypatch, capsys):
    from aelab.cli.train import main

    run = tmp_path / "run"
    with pytest.raises(SystemExit):
        run_inprocess(
            main, ["data=wine", "model=conv_ae", f"hydra.run.dir={run}"], monkeypatch, fake_data_dir
        )
    assert (
        "conv parts take images (C, H, W)" in capsys.readouterr().err and not (run / "checkpoints").exists()
    )


def test_detection_figures_are_the_hand_values():
    """Scores 1..6 of records [0, 0, 1, 0, 1, 1]: AUROC 8/9 (8 of the 9 anomaly–normal pairs ordered), AP (1 + 1 +
    3/4... by hand: precision at each anomaly's rank from the top: 6→1/1, 5→2/2, 3→3/4) = (1 + 1 + 0.75) / 3; the
    threshold is the 80th percentile of the validation scores [1, 2, 3, 4, 5] (4.2), so records 5 and 6 are flagged:
    precision 1, recall 2/3, F1 0.8."""
    got = detection_figures([1, 2, 3, 4, 5, 6], [0, 0, 1, 0, 1, 1], [1, 2, 3, 4, 5], 80)
    assert got["auroc"] == pytest.approx(8 / 9) and got["average_precision"] == pytest.approx(2.75 / 3)
    assert got["threshold"] == pytest.approx(4.2) and got["f1"] == pytest.approx(0.8)


class _LinearCode(torch.nn.Module):
    """An untrained linear autoencoder of table rows (the section's own score is not what is pinned here)."""

    latent_dim = 2

    def __init__(self, features: int) -> None:
        super().__init__()
        self.enc, self.dec = torch.nn.Linear(features, 2), torch.nn.Linear(2, features)

    def encode(self, x):
        return self.enc(x.flatten(1))

    def decode(self, z):
        return self.dec(z)

    def reconstruct(self, x):
        return self.decode(self.encode(x))


def test_the_anomaly_baselines_are_fitted_on_the_training_records(tmp_path):
    """Each baseline of the one-class figures is fitted on the training split (the inliers the model learned
    from), never on the test records it is measured on: its test scores, AUROC and average precision are those
    of the same scikit-learn detector fitted here on the training records with the section's seed."""
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.svm import OneClassSVM

    from aelab.evaluation.context import EvalContext
    from aelab.evaluation.sections import anomaly

    dm = _dm(_csv(tmp_path, _records(200, 20)))
    torch.manual_seed(0)
    ctx = EvalContext(_LinearCode(dm.shape[0]), dm, tmp_path / "eval", torch.device("cpu"), 64)
    got = anomaly(ctx, baselines=("iforest", "lof", "ocsvm", "pca"), seed=0)
    train, test = dm.split_tensors("train")[0].numpy(), dm.split_tensors("test")[0].numpy()
    flags = dm.anomaly_labels("test").numpy()
    pca = PCA(2, random_state=0).fit(train)
    fitted = {
        "iforest": -IsolationForest(random_state=0).fit(train).score_samples(test),
        "lof": -LocalOutlierFactor(n_neighbors=20, novelty=True).fit(train).score_samples(test),
        "ocsvm": -OneClassSVM(gamma="scale").fit(train).score_samples(test),
        "pca": ((pca.inverse_transform(pca.transform(test)) - test) ** 2).mean(1),
    }
    with np.load(tmp_path / "eval" / "anomaly_scores.npz") as saved:
        for name, scores in fitted.items():
            np.testing.assert_allclose(saved[f"{name}_test"], scores, rtol=1e-6, err_msg=name)
            assert got[f"test/anomaly/{name}_auroc"] == pytest.approx(roc_auc_score(flags, scores), abs=1e-9)
            assert got[f"test/anomaly/{name}_average_precision"] == pytest.approx(
                average_precision_score(flags, scores), abs=1e-9
            )


def test_a_users_csv_trains_evaluates_against_the_baselines_and_scores_new_records(
    tmp_path, fake_data_dir, monkeypatch, capsys
):
    from aelab.cli.score import main as score
    from aelab.cli.train import main
    from helpers import read_metrics

    train_csv = _csv(tmp_path, _records())
    run = tmp_path / "run"
    argv = ["data=tabular", f"data.path={train_csv}", "data.label_column=label", "data.anomaly_values=[fraud]",
            "data.categorical_columns=[site]", "data.id_column=id", "model=ae", "model.latent_dim=2",
            "trainer.max_epochs=30", "trainer.accelerator=cpu", f"hydra.run.dir={run}", "callbacks=minimal",
            "logger=csv"]  # fmt: skip
    run_inprocess(main, argv, monkeypatch, fake_data_dir)
    metrics = read_metrics(run)
    for name in ("", "iforest_", "lof_", "ocsvm_", "pca_"):
        assert 0.0 <= metrics[f"test/anomaly/{name}auroc"] <= 1.0
    assert metrics["test/anomaly/auroc"] > 0.9  # off-plane anomalies: an AE of the plane's size finds them
    new = _records(30, 5, seed=1).drop(columns=["label"])
    new_csv = _csv(tmp_path, new, "new.csv")
    out = tmp_path / "scores.csv"
    assert score([str(run / "checkpoints" / "last.ckpt"), "--input", str(new_csv), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == new["id"].tolist() and all(r["flag"] in ("0", "1") for r in rows)
    flagged = [r["id"] for r in rows if r["flag"] == "1"]
    assert set(new["id"].tolist()[-5:]) <= set(flagged)  # the five off-plane records
    bad = new.drop(columns=["f3"])
    assert score([str(run / "checkpoints" / "last.ckpt"), "--input", str(_csv(tmp_path, bad, "bad.csv")), "--out",
                  str(tmp_path / "no.csv")]) == 2  # fmt: skip
    assert "columns ['f3'] are missing" in capsys.readouterr().err and not (tmp_path / "no.csv").exists()
    assert sys.modules.get("aelab.cli.score") is not None


def test_aelab_score_flags_exactly_the_records_above_the_validation_percentile(
    tmp_path, fake_data_dir, monkeypatch
):
    """aelab-score's flag threshold is the ``1 − contamination`` quantile (here 0.8) of the validation records'
    scores, computed here from the run's own validation split and model: exactly the records whose score lies above
    it are flagged, and some records lie between the validation median and that threshold (a median threshold
    would flag them too). The scores are the standardised errors, computed here by hand from the training
    records' per-feature errors (shrunk halfway to their mean)."""
    from hydra.utils import instantiate

    from aelab.checkpoint import load_model
    from aelab.cli.score import main as score
    from aelab.cli.train import main

    train_csv = _csv(tmp_path, _records(200, 10))
    run = tmp_path / "run"
    argv = ["data=tabular", f"data.path={train_csv}", "data.label_column=label", "data.anomaly_values=[fraud]",
            "data.categorical_columns=[site]", "data.id_column=id", "data.contamination=0.2", "model=ae",
            "model.latent_dim=2", "trainer.max_epochs=1", "trainer.accelerator=cpu", "test=false",
            f"hydra.run.dir={run}", "callbacks=minimal", "logger=csv"]  # fmt: skip
    run_inprocess(main, argv, monkeypatch, fake_data_dir)
    ckpt = run / "checkpoints" / "last.ckpt"
    new = _records(60, 10, seed=1).drop(columns=["label"])
    out = tmp_path / "scores.csv"
    assert score([str(ckpt), "--input", str(_csv(tmp_path, new, "new.csv")), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))

    model, run_cfg, _ = load_model(ckpt)
    model.eval()
    dm = instantiate(run_cfg.data)
    assert dm.standardize_errors  # the tables' default: standardised errors, by hand below
    train, val = dm.split_tensors("train")[0], dm.split_tensors("val")[0]
    x = dm.transform.transform(new)
    with torch.no_grad():
        per_feature = ((model.reconstruct(train) - train) ** 2).mean(0)  # each feature's training error ...
        scale = (per_feature + per_feature.mean()) / 2  # ... shrunk halfway to the mean over features
        val_scores = (((model.reconstruct(val) - val) ** 2) / scale).mean(1).double().numpy()
        scores = (((model.reconstruct(x) - x) ** 2) / scale).mean(1).double().numpy()
    threshold = np.quantile(val_scores, 1 - 0.2)
    assert [r["id"] for r in rows] == new["id"].tolist()
    np.testing.assert_allclose([float(r["score"]) for r in rows], scores, rtol=1e-5)
    assert [int(r["flag"]) for r in rows] == (scores > threshold).astype(int).tolist()
    assert ((scores > np.median(val_scores)) & (scores <= threshold)).any()


def test_constant_and_discrete_columns_scale_as_scikit_learn_does():
    """A constant column (std ~1e-17 in floating point) scales to 0, not ±1; a 0/1 column under quantile scaling
    takes the middle of each value's quantile levels (70% zeros: 0 → Φ⁻¹(0.35), 1 → Φ⁻¹(0.85)), as scikit-learn's
    QuantileTransformer gives."""
    from scipy.special import ndtri
    from sklearn.preprocessing import StandardScaler

    frame = pd.DataFrame({"c": [0.1] * 1000, "b": [0.0] * 700 + [1.0] * 300})
    x = TableTransform(["c", "b"], scaling="standard").fit(frame).transform(frame).numpy()
    np.testing.assert_allclose(x, StandardScaler().fit_transform(frame.to_numpy()), atol=1e-6)
    q = TableTransform(["c", "b"], scaling="quantile").fit(frame).transform(frame).numpy()
    assert np.unique(q[:, 0]).tolist() == [0.0]
    np.testing.assert_allclose(np.unique(q[:, 1]), ndtri([0.35, 0.85]), atol=2e-3)


def test_labels_and_categories_compare_as_values_and_bad_labels_are_refused(tmp_path):
    """A label column pandas reads as float (one empty cell elsewhere made it 1.0) still matches
    anomaly_values=[1]; a categorical 1.0 is the category 1; a missing label or category, no matching anomaly, or the
    label among the features is refused in one line naming the fix."""
    from aelab.errors import ConfigError

    frame = _records(100, 10)
    frame["label"] = [0.0] * 90 + [1.0] * 10
    dm = _dm(_csv(tmp_path, frame), label_column="label", anomaly_values=[1])
    assert dm.anomaly_labels("test").sum().item() == 10
    with pytest.raises(
        DataError, match=r"no record's 'label' is one of data.anomaly_values=\['fraud'\].*\['0', '1'\]"
    ):
        _dm(_csv(tmp_path, frame, "b.csv"), label_column="label", anomaly_values=["fraud"]).setup()
    frame.loc[3, "label"] = np.nan
    with pytest.raises(DataError, match="label column 'label' is empty in 1 records"):
        _dm(_csv(tmp_path, frame, "c.csv"), label_column="label", anomaly_values=[1]).setup()
    with pytest.raises(ConfigError, match="data.feature_columns lists 'label', the label or id column"):
        _dm(_csv(tmp_path, _records(), "d.csv"), feature_columns=["f0", "label"]).setup()
    t = TableTransform([], ["k"]).fit(pd.DataFrame({"k": [1, 2, 1]}))
    assert t.transform(pd.DataFrame({"k": [1.0, 2.0]})).tolist() == [[1, 0], [0, 1]]
    with pytest.raises(DataError, match="categorical column 'k' has missing values"):
        t.transform(pd.DataFrame({"k": [1.0, np.nan]}))


def test_standardised_record_scores_are_the_hand_values():
    """record_scores with error_scale: each feature's squared error divided by its training error shrunk halfway
    to the mean over features, averaged over the features — by hand on a model that reconstructs every record
    as zeros (so the errors are the values squared)."""
    from aelab.evaluation.scores import error_scale, record_scores

    class Zeros(torch.nn.Module):
        def reconstruct(self, x):
            return torch.zeros_like(x)

    train = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])  # errors² per feature: mean [5, 0, 2]
    scale = error_scale(Zeros(), train, 8, torch.device("cpu"))
    # ē = 7/3; (e + ē) / 2 = [11/3, 7/6, 13/6]
    torch.testing.assert_close(scale, torch.tensor([11 / 3, 7 / 6, 13 / 6]))
    x = torch.tensor([[1.0, 1.0, 1.0], [0.0, 2.0, 0.0]])
    want = torch.tensor([(3 / 11 + 6 / 7 + 6 / 13) / 3, (4 * 6 / 7) / 3])
    torch.testing.assert_close(record_scores(Zeros(), x, 8, torch.device("cpu"), scale), want)
    torch.testing.assert_close(record_scores(Zeros(), x, 8, torch.device("cpu")), torch.tensor([1.0, 4 / 3]))


def test_a_table_config_without_standardize_errors_scores_by_the_mse(tmp_path):
    """A checkpoint written before data.standardize_errors existed stores a data config without it: its datamodule
    scores by the plain MSE it was tested with (the constructor's default), only data=tabular's config turns the
    standardised errors on."""
    from aelab.evaluation.scores import record_scorer

    path = tmp_path / "t.csv"
    _records(120, 6).to_csv(path, index=False)
    kw = dict(path=str(path), label_column="label", anomaly_values=["fraud"], categorical_columns=["site"],
              id_column="id")  # fmt: skip
    old = TabularDataModule(**kw)
    assert not old.standardize_errors

    class Halves(torch.nn.Module):
        def reconstruct(self, x):
            return x / 2  # errors x² / 4, whose per-feature means differ

    x = old.split_tensors("test")[0]
    plain = record_scorer(Halves(), old, 64, torch.device("cpu"))(x)
    torch.testing.assert_close(plain, (x / 2).pow(2).mean(1))
    new = TabularDataModule(**kw, standardize_errors=True)
    assert not torch.allclose(record_scorer(Halves(), new, 64, torch.device("cpu"))(x), plain)
