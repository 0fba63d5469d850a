"""Time series: the window bookkeeping, the splits and scaling, the refusals, the figures against aeon's own values,
USAD's objective and score, the sequence parts, the section and aelab-score."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from aelab.data.timeseries import (
    TimeSeriesDataModule,
    label_ranges,
    make_windows,
    window_starts,
    windows_to_points,
)
from aelab.errors import ConfigError, DataError
from helpers import run_inprocess


def _series(
    n: int = 400, anomaly: tuple[int, int] = (300, 310), channels: int = 1, seed: int = 0
) -> pd.DataFrame:
    """A noisy sine (period 20) with one labelled burst."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    frame = pd.DataFrame({"time": t})
    for c in range(channels):
        x = np.sin(2 * np.pi * t / 20 + c) + 0.05 * rng.standard_normal(n)
        x[anomaly[0] : anomaly[1]] += 3.0
        frame[f"ch{c}"] = x
    frame["label"] = 0
    frame.loc[anomaly[0] : anomaly[1] - 1, "label"] = 1
    return frame


def _dm(path, **kw) -> TimeSeriesDataModule:
    kw = {
        "label_column": "label",
        "time_column": "time",
        "window": 20,
        "train_end": 200,
        "batch_size": 16,
    } | kw
    return TimeSeriesDataModule(path=str(path), **kw)


# ---------------------------------------------------------------------------------------------- window bookkeeping
def test_windows_cover_every_point_and_points_average_their_windows_by_hand():
    assert window_starts(10, 4, 3).tolist() == [0, 3, 6]  # the last window ends at the last point
    assert window_starts(11, 4, 3).tolist() == [0, 3, 6, 7]
    with pytest.raises(ValueError, match="shorter than the window"):
        window_starts(3, 4, 1)
    values = np.arange(10, dtype=float)[:, None]
    w = make_windows(values, np.array([0, 3, 6]), 4)
    assert w.shape == (3, 4, 1) and w[1, :, 0].tolist() == [3, 4, 5, 6]
    # window scores (W, T): point 3 is in windows 0 (offset 3) and 1 (offset 0): mean of 1.0 and 10.0
    scores = np.array([[0.0, 0.0, 0.0, 1.0], [10.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 7.0]])
    points = windows_to_points(scores, np.array([0, 3, 6]), 10)
    assert (
        points[3] == pytest.approx(5.5)
        and points[6] == pytest.approx(0.0)
        and points[9] == pytest.approx(7.0)
    )
    assert points[1] == 0.0
    # a point no window covers is nan, never a made-up score
    assert np.isnan(windows_to_points(np.ones((1, 2)), np.array([0]), 3)[2])
    assert label_ranges(np.array([0, 1, 1, 0, 1])) == [(1, 3), (4, 5)]


def test_splits_are_time_ordered_and_scaling_is_fitted_on_the_training_part_only(tmp_path):
    frame = _series()
    frame.to_csv(tmp_path / "s.csv", index=False)
    dm = _dm(tmp_path / "s.csv")
    train, _ = dm.split_tensors("train")
    val, _ = dm.split_tensors("val")
    test, _ = dm.split_tensors("test")
    assert dm.sample_kind == "series" and dm.shape == (20, 1)
    # the training part is the first 200 points: 160 fit (141 windows), 40 validate (21 windows)
    assert len(train) == 141 and len(val) == 21 and len(test) == 400 - 20 + 1
    x = frame["ch0"].to_numpy()
    mean, std = x[:200].mean(), x[:200].std()  # the labelled burst (300..309) never enters the scaling
    assert dm.scaler["offset"][0] == pytest.approx(mean) and dm.scaler["scale"][0] == pytest.approx(std)
    assert val[0, :, 0].numpy() == pytest.approx(((x[160:180] - mean) / std).astype(np.float32), abs=1e-6)
    assert test[-1, -1, 0].item() == pytest.approx((x[-1] - mean) / std, abs=1e-5)
    # shuffled rows are put back in time order by the time column
    frame.sample(frac=1, random_state=0).to_csv(tmp_path / "shuffled.csv", index=False)
    assert torch.equal(_dm(tmp_path / "shuffled.csv").split_tensors("test")[0], test)
    state = dm.state_dict()
    assert state["kind"] == "series" and state["window"] == 20 and state["channels"] == ["ch0"]
    assert all(
        isinstance(v, float) for v in state["scaler"]["offset"]
    )  # plain data: weights_only checkpoints


def test_several_series_in_one_file_are_windowed_apart(tmp_path):
    a, b = _series(300, (250, 255)), _series(300, (260, 270), seed=1)
    frame = pd.concat([a.assign(unit="a"), b.assign(unit="b")])
    frame.to_csv(tmp_path / "two.csv", index=False)
    dm = _dm(tmp_path / "two.csv", series_column="unit", train_end=0.5)
    parts = dm.test_windows()
    assert [p[0].name for p in parts] == ["unit=a", "unit=b"]
    assert parts[1][1] == slice(281, 562)  # no window crosses from one series into the next
    assert len(dm.point_labels()) == 2


@pytest.mark.parametrize("damage, kw, error, message", [
    ("gap", {}, DataError, r"channel 'ch0' has no value at point 5 .*data\.impute"),
    ("text", {}, DataError, r"channel 'ch0' holds 'broken' \(row 7\), not a number"),
    ("labels", {}, DataError, r"label column 'label' holds '2' at point 3 .*0 \(normal\) or 1"),
    (None, {"window": 500}, ConfigError, r"400 points, shorter than data\.window=500: lower data\.window"),
    (None, {"train_end": 350}, DataError, r"training part .* holds a labelled anomaly at point 300: set "
                                          r"data\.train_end=300"),
    (None, {"value_columns": ["nope"]}, ConfigError, r"data\.value_columns names 'nope'"),
])  # fmt: skip
def test_bad_series_are_refused_naming_the_file_the_column_and_the_fix(tmp_path, damage, kw, error, message):
    frame = _series()
    if damage == "gap":
        frame.loc[5, "ch0"] = np.nan
    elif damage == "text":
        frame["ch0"] = frame["ch0"].astype(object)
        frame.loc[7, "ch0"] = "broken"
    elif damage == "labels":
        frame.loc[3, "label"] = 2
    frame.to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(error, match=message) as info:
        _dm(tmp_path / "s.csv", **kw).setup()
    assert "\n" not in str(info.value) and ("s.csv" in str(info.value) or "data." in str(info.value))


def test_a_gap_is_imputed_when_asked(tmp_path):
    frame = _series()
    frame.loc[5, "ch0"] = np.nan
    frame.to_csv(tmp_path / "s.csv", index=False)
    dm = _dm(tmp_path / "s.csv", impute="interpolate")
    x = frame["ch0"].to_numpy()
    raw = dm.load_series()[0].values[5, 0]
    assert raw == pytest.approx((x[4] + x[6]) / 2)


# ---------------------------------------------------------------------------------------------- the figures
def test_vus_pr_of_a_perfect_and_a_random_score_are_aeons_own_values():
    from aeon.benchmarking.metrics.anomaly_detection import range_pr_vus_score, range_roc_vus_score

    from aelab.evaluation.series import series_figures

    y = np.zeros(300, dtype=int)
    y[100:110] = 1
    perfect = series_figures(y, y.astype(float), max_buffer=20)
    assert perfect["vus_pr"] == pytest.approx(range_pr_vus_score(y.astype(bool), y.astype(float), 20))
    assert perfect["auroc"] == pytest.approx(1.0)
    random = np.random.default_rng(0).random(300)
    figures = series_figures(y, random, max_buffer=20)
    assert figures["vus_pr"] == pytest.approx(range_pr_vus_score(y.astype(bool), random, 20))
    assert figures["vus_roc"] == pytest.approx(range_roc_vus_score(y.astype(bool), random, 20))
    from aeon.benchmarking.metrics.anomaly_detection import range_pr_auc_score, roc_auc_score

    assert figures["range_auc_pr"] == pytest.approx(range_pr_auc_score(y.astype(bool), random, 20))
    assert figures["auroc"] == pytest.approx(roc_auc_score(y.astype(bool), random))
    assert figures["vus_pr"] < 0.3 < perfect["vus_pr"]
    with pytest.raises(ValueError, match="both normal points and anomalies"):
        series_figures(np.zeros(10), random[:10], 2)


def test_point_adjusted_f1_by_hand_and_range_f1_of_no_flag():
    from aelab.evaluation.series import point_adjusted_f1, range_f1

    y = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0, 0])
    flags = np.array([0, 0, 1, 0, 0, 1, 0, 0, 0, 0])
    # one flag inside the first range marks all 3 of its points found; the second range is missed: tp 3, fp 1, fn 2
    assert point_adjusted_f1(y, flags) == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    assert range_f1(y, np.zeros(10)) == 0.0
    assert range_f1(y, y) == pytest.approx(1.0)


def test_detectors_fit_on_the_training_part_and_their_scores_are_cached(tmp_path, monkeypatch):
    from aelab.evaluation import series as series_eval

    rng = np.random.default_rng(0)
    train, test = rng.standard_normal((200, 1)), rng.standard_normal((150, 1))
    test[100:105] += 6
    with pytest.raises(ValueError, match="stomp takes one channel"):
        series_eval.detector_scores("stomp", np.zeros((50, 2)), np.zeros((50, 2)), 5)
    first = series_eval.cached_detector_scores(tmp_path, "iforest", train, test, 10, seed=0)
    assert first.shape == (150,) and first[100:105].mean() > np.median(first)
    # the learning detectors fit on the training part and score the series; the others see the series only
    seen = {}

    class Spy:
        def fit(self, x, axis=1):
            seen["fit"] = x

        def predict(self, x, axis=1):
            seen["predict"] = x
            return np.zeros(len(x))

        def fit_predict(self, x, axis=1):
            seen["fit_predict"] = x
            return np.zeros(len(x))

    monkeypatch.setattr(series_eval, "_detector", lambda *a: Spy())
    series_eval.detector_scores("kmeansad", train, test, 10)
    assert np.array_equal(seen["fit"], train[:, 0]) and np.array_equal(seen["predict"], test[:, 0])
    series_eval.detector_scores("stomp", train, test, 10)
    assert np.array_equal(seen["fit_predict"], test[:, 0])
    monkeypatch.undo()
    calls = []
    monkeypatch.setattr(series_eval, "detector_scores", lambda *a, **k: calls.append(a) or np.zeros(150))
    again = series_eval.cached_detector_scores(tmp_path, "iforest", train, test, 10, seed=0)
    assert not calls and np.array_equal(again, first)
    series_eval.cached_detector_scores(
        tmp_path, "iforest", train + 1, test, 10, seed=0
    )  # other training data
    assert len(calls) == 1


# ---------------------------------------------------------------------------------------------- models
@pytest.mark.parametrize("kind", ["conv1d", "lstm", "transformer"])
def test_sequence_parts_map_windows_to_codes_and_back(kind):
    from aelab.models import Autoencoder
    from aelab.models.components import sequence as seq

    enc = {"conv1d": seq.Conv1dEncoder, "lstm": seq.LSTMEncoder, "transformer": seq.TransformerSeriesEncoder}[
        kind
    ]
    dec = {"conv1d": seq.Conv1dDecoder, "lstm": seq.LSTMDecoder, "transformer": seq.TransformerSeriesDecoder}[
        kind
    ]
    model = Autoencoder(enc(6, in_shape=(25, 3)), dec(6, out_shape=(25, 3)), 6, loss="mse", output="identity")
    x = torch.randn(4, 25, 3)
    out = model(x)
    assert model.encode(x).shape == (4, 6) and out.logits.shape == (4, 25, 3)
    assert model.point_scores(x).shape == (4, 25)
    out.loss.backward()
    with pytest.raises(ValueError, match=r"take windows of a series \(T, C\)"):
        enc(6, in_shape=(1, 28, 28))


def test_the_lstm_decoder_reconstructs_in_reverse_time_order():
    from aelab.models.components.sequence import LSTMDecoder

    torch.manual_seed(0)
    forward = LSTMDecoder(4, out_shape=(7, 2), reverse=False)
    backward = LSTMDecoder(4, out_shape=(7, 2), reverse=True)
    backward.load_state_dict(forward.state_dict())
    z = torch.randn(3, 4)
    assert torch.allclose(backward(z), forward(z).flip(1))


def test_a_denoising_lstm_autoencoder_reconstructs_from_a_corrupted_window():
    from aelab.models import Autoencoder
    from aelab.models.capabilities import Denoising
    from aelab.models.components import GaussianNoise
    from aelab.models.components.sequence import LSTMDecoder, LSTMEncoder

    model = Autoencoder(LSTMEncoder(4, (10, 1)), LSTMDecoder(4, (10, 1)), 4, loss="mse", output="identity",
                        corruption=GaussianNoise(0.5))  # fmt: skip
    assert isinstance(model, Denoising)
    x = torch.zeros(2, 10, 1)
    x_in, target = model.inputs(x, torch.Generator().manual_seed(0))
    assert torch.equal(target, x) and x_in.abs().sum() > 0


def _usad():
    from aelab.models import USAD
    from aelab.models.components import MLPDecoder, MLPEncoder

    torch.manual_seed(0)
    return USAD(MLPEncoder(3, [8], (6, 1)), MLPDecoder(3, [8], (6, 1)), 3, alpha=0.3, beta=0.7)


def test_usad_score_and_both_players_losses_against_the_papers_formulas():
    model = _usad().eval()
    model.scaling.lo.fill_(-2.0)
    model.scaling.hi.fill_(3.0)
    w = torch.randn(5, 6, 1)
    e, d1, d2 = model.encoder, model.decoder, model.decoder2
    unit = (w + 2.0) / 5.0  # the encoder reads [0, 1]; the decoders end in a sigmoid mapped back to [-2, 3]
    assert torch.allclose(e(w), e.inner(unit))
    assert torch.allclose(d1(e(w)), -2.0 + 5.0 * torch.sigmoid(d1.inner(e(w))))
    ae1 = d1(e(w))
    ae2ae1 = d2(e(ae1))
    want = (0.3 * (w - ae1).pow(2) + 0.7 * (w - ae2ae1).pow(2)).mean(-1)  # eq. 9, per point
    assert torch.allclose(model.point_scores(w), want, atol=1e-6)
    model.train()
    model.train_epoch_start(2)  # epoch n = 3
    n = 3.0
    l1 = (w - ae1).pow(2).mean() / n + (1 - 1 / n) * (w - ae2ae1).pow(2).mean()  # eq. 7
    l2 = (w - d2(e(w))).pow(2).mean() / n - (1 - 1 / n) * (w - ae2ae1).pow(2).mean()  # eq. 8
    assert model(w, step=10).loss.item() == pytest.approx(l1.item(), rel=1e-5)  # even steps: the first player
    assert model(w, step=11).loss.item() == pytest.approx(l2.item(), rel=1e-5)  # odd steps: the second


def test_usad_gives_each_decoder_only_its_own_players_loss():
    model = _usad().train()
    model.train_epoch_start(4)
    w = torch.randn(5, 6, 1)
    n = 5.0
    e, d1, d2 = model.encoder, model.decoder, model.decoder2
    for step, own, other in ((0, d1, d2), (1, d2, d1)):
        model.zero_grad(set_to_none=True)
        model(w, step=step).loss.backward()
        assert all(
            p.grad is None for p in other.inner.parameters()
        )  # the other player's decoder is untouched
        assert all(p.grad is not None for p in e.inner.parameters())  # the encoder plays for both
        got = [p.grad.clone() for p in own.inner.parameters()]
        model.zero_grad(set_to_none=True)
        ae1 = d1(e(w))
        if step == 0:
            loss = (w - ae1).pow(2).mean() / n + (1 - 1 / n) * (w - d2(e(ae1))).pow(2).mean()
        else:
            loss = (w - d2(e(w))).pow(2).mean() / n - (1 - 1 / n) * (w - d2(e(ae1))).pow(2).mean()
        want = torch.autograd.grad(loss, list(own.inner.parameters()))
        assert all(torch.allclose(g, h, atol=1e-6) for g, h in zip(got, want, strict=True))


def test_usad_takes_the_training_range_at_the_fit_start():
    class Data:
        def split_tensors(self, split):
            return torch.tensor([[[-1.0], [4.0]], [[0.0], [2.0]]]), None

    model = _usad()
    model.fit_start(Data())
    assert model.scaling.lo.tolist() == [-1.0] and model.scaling.hi.tolist() == [4.0]
    assert [t.data_ptr() for t in model.fit_start_tensors()] == [
        model.scaling.lo.data_ptr(),
        model.scaling.hi.data_ptr(),
    ]


# ---------------------------------------------------------------------------------------------- runs
@pytest.fixture(scope="module")
def trained_series(tmp_path_factory, fake_data_dir):
    """An MLP AE trained 3 epochs on a toy labelled series (checkpoint path, the frame, the run folder)."""
    from aelab.cli.train import main
    from conftest import MNIST_SMALL, SMALL

    root = tmp_path_factory.mktemp("series")
    frame = _series()
    frame.to_csv(root / "s.csv", index=False)
    argv = [o for o in SMALL if o not in MNIST_SMALL] + [
        "data=timeseries", f"data.path={root / 's.csv'}", "data.label_column=label", "data.time_column=time",
        "data.window=20", "data.train_end=200", "data.batch_size=16", "model=ae", "model.encoder.hidden_dims=[16]",
        "model.decoder.hidden_dims=[16]", "model.latent_dim=4", "trainer.max_epochs=3", f"hydra.run.dir={root / 'run'}",
    ]  # fmt: skip
    mp = pytest.MonkeyPatch()
    try:
        run_inprocess(main, argv, mp, fake_data_dir)
    finally:
        mp.undo()
    return root / "run" / "checkpoints" / "last.ckpt", frame, root / "run"


def test_a_training_run_reports_the_series_figures_beside_aeons_detectors(trained_series):
    import json

    _, _, run = trained_series
    metrics = json.loads((run / "metrics.json").read_text())
    metrics = metrics.get("metrics", metrics)
    for key in ("vus_pr", "vus_roc", "range_auc_pr", "auroc", "range_f1", "pa_f1", "random_pa_f1",
                "pca_vus_pr", "kmeansad_vus_pr", "stomp_vus_pr", "random_vus_pr"):  # fmt: skip
        assert f"test/anomaly/{key}" in metrics, key
    assert metrics["test/anomaly/vus_max_buffer"] == 20
    # the burst is 3σ off the sine: a reconstruction model finds it far better than chance
    assert metrics["test/anomaly/auroc"] > metrics["test/anomaly/random_auroc"] + 0.2
    assert (run / "series_scores.png").is_file() and (run / "series_scores.npz").is_file()


def test_aelab_score_flags_points_above_the_validation_percentile(trained_series, tmp_path):
    from aelab.checkpoint import load_model
    from aelab.cli.score import main
    from aelab.data.timeseries import TimeSeriesDataModule
    from aelab.evaluation.series import series_point_scores

    ckpt, frame, _ = trained_series
    frame.to_csv(tmp_path / "new.csv", index=False)
    assert main([str(ckpt), "--input", str(tmp_path / "new.csv"), "--out", str(tmp_path / "scores.csv")]) == 0
    out = pd.read_csv(tmp_path / "scores.csv")
    assert list(out.columns) == ["time", "score", "flag"] and len(out) == len(frame)
    # the threshold, recomputed here: the 99th percentile of the validation points' scores (points 160..199)
    model, cfg, _ = load_model(str(ckpt), torch.device("cpu"))
    dm = TimeSeriesDataModule(
        path=cfg.data.path, label_column="label", time_column="time", window=20, train_end=200
    )
    train, start = dm.validation_points()[0]
    val = series_point_scores(model, train[start:], 20, 1, 64, torch.device("cpu"))
    threshold = np.percentile(val, 99.0)
    # the flags are the scores above that threshold (a 50th percentile would flag others)
    assert (out["flag"] == (out["score"] > threshold * (1 + 1e-6)).astype(int)).mean() > 0.99
    assert not np.isclose(threshold, np.percentile(val, 50.0))


@pytest.mark.parametrize("damage, message", [
    ("channels", r"refused: channels \['ch0'\] are missing"),
    ("short", r"refused: the series has 5 points, shorter than the model's window of 20"),
    ("text", r"channel 'ch0' holds 'x'"),
])  # fmt: skip
def test_aelab_score_refuses_a_bad_series_in_one_line_and_writes_nothing(
    trained_series, tmp_path, capsys, damage, message
):
    from aelab.cli.score import main

    ckpt, frame, _ = trained_series
    if damage == "channels":
        frame = frame.rename(columns={"ch0": "other"})
    elif damage == "short":
        frame = frame.head(5)
    else:
        frame = frame.astype({"ch0": object})
        frame.loc[3, "ch0"] = "x"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    out = tmp_path / "scores.csv"
    assert main([str(ckpt), "--input", str(tmp_path / "bad.csv"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err
    assert not out.exists()


def test_the_section_skips_series_without_labels_with_its_reason(trained_series, tmp_path):
    from aelab.checkpoint import load_model
    from aelab.evaluation.context import EvalContext
    from aelab.evaluation.sections import series_anomaly

    ckpt, frame, _ = trained_series
    frame.drop(columns="label").to_csv(tmp_path / "plain.csv", index=False)
    model, _, _ = load_model(str(ckpt), torch.device("cpu"))
    dm = TimeSeriesDataModule(path=str(tmp_path / "plain.csv"), time_column="time", window=20, train_end=200)
    ctx = EvalContext(model, dm, tmp_path, torch.device("cpu"), 64)
    assert series_anomaly(ctx) == {}
    assert "no per-point labels" in ctx.skipped["series_anomaly"]


def test_ucr_one_class_keeps_the_normal_class_for_training_and_marks_the_others():
    from aeon.datasets import load_classification

    from aelab.data import UCROneClassDataModule

    dm = UCROneClassDataModule(dataset="GunPoint", val_size=5)
    x, _ = dm.split_tensors("train")
    assert dm.sample_kind == "series" and dm.shape == (150, 1) and dm.normal_class == "1"
    _, y_train = load_classification("GunPoint", split="train")
    _, y_test = load_classification("GunPoint", split="test")
    assert len(x) + len(dm.split_tensors("val")[0]) == int((y_train == "1").sum())
    assert dm.anomaly_labels("test").tolist() == (y_test != "1").astype(int).tolist()
    with pytest.raises(ConfigError, match="data.normal_class='9' is not a class of GunPoint"):
        UCROneClassDataModule(dataset="GunPoint", normal_class="9").setup()


def test_a_windows_mean_score_is_given_to_its_points_before_points_average_their_windows():
    from aelab.evaluation.series import series_point_scores

    class Fixed(torch.nn.Module):  # per-point score = the value itself
        def point_scores(self, x):
            return x[..., 0]

    values = np.array([0, 0, 0, 6, 0, 0], dtype=np.float32)[:, None]
    # windows of 3 at 0..3: means 0, 2, 2, 2; point 3 is in windows 1, 2, 3 → 2; point 0 only in window 0 → 0
    window = series_point_scores(Fixed(), values, 3, 1, 8, torch.device("cpu"), "window")
    assert window.tolist() == pytest.approx([0, 1, 4 / 3, 2, 2, 2])
    point = series_point_scores(Fixed(), values, 3, 1, 8, torch.device("cpu"), "point")
    assert point.tolist() == pytest.approx([0, 0, 0, 6, 0, 0])
    with pytest.raises(ValueError, match="data.point_score='max'"):
        series_point_scores(Fixed(), values, 3, 1, 8, torch.device("cpu"), "max")


@pytest.mark.parametrize("overrides", [
    ["model=vae", "model/encoder=conv1d", "model/decoder=conv1d"],
    ["model=dae", "model/encoder=transformer", "model/decoder=transformer"],
    ["model=vae", "model/encoder=lstm", "model/decoder=lstm", "model.init=random"],
    ["model=ae", "model/encoder=gru", "model/decoder=lstm"],
])  # fmt: skip
def test_the_real_configs_build_the_ae_dae_and_vae_with_sequence_parts_on_windows(make_cfg, overrides):
    from hydra.utils import instantiate

    cfg = make_cfg([*overrides, "data.shape=[24,3]", "data.bounded=false", "data.binary=false"])
    model = instantiate(cfg.model).train()
    x = torch.randn(5, 24, 3)
    out = model(x)
    assert torch.isfinite(out.loss) and model.encode(x).shape == (5, model.latent_dim)
    assert model.reconstruct(x).shape == x.shape


def test_aeons_detectors_read_several_channels_as_time_by_channel():
    from aelab.evaluation.series import detector_scores

    rng = np.random.default_rng(0)
    train, test = rng.standard_normal((300, 2)), rng.standard_normal((200, 2))
    test[120:126, 1] += 8
    for name in ("pca", "kmeansad", "iforest", "lof"):
        scores = detector_scores(name, train, test, 10)
        assert scores.shape == (200,) and scores[118:128].mean() > np.median(scores), name


def test_aelab_score_refuses_when_the_training_file_changed(trained_series, tmp_path, capsys):
    import shutil

    from aelab.checkpoint import load_model
    from aelab.cli.score import main

    ckpt, frame, _ = trained_series
    _, cfg, _ = load_model(str(ckpt), torch.device("cpu"))
    path = cfg.data.path
    backup = tmp_path / "backup.csv"
    shutil.copyfile(path, backup)
    try:
        changed = pd.read_csv(path)
        changed.loc[170, "ch0"] += 0.5  # a validation point: the threshold would move
        changed.to_csv(path, index=False)
        frame.to_csv(tmp_path / "new.csv", index=False)
        out = tmp_path / "scores.csv"
        assert main([str(ckpt), "--input", str(tmp_path / "new.csv"), "--out", str(out)]) == 2
        assert (
            "no longer gives this checkpoint's training parts" in capsys.readouterr().err and not out.exists()
        )
    finally:
        shutil.copyfile(backup, path)
