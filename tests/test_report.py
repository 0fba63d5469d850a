"""The report's derived figures on small hand-made inputs: verdicts, headline rows and the codec study, each
against the value worked out here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aelab_tools.ratedistortion import bd_rate, rate_at
from aelab_tools.results import codec_study, headline_rows, verdict


def test_verdict_of_each_operator():
    """(Mutation: a flipped comparison, or ">" read as ">=", fails here.)"""
    assert verdict(1.0, "<=", 1.0) is True and verdict(1.0, "<", 1.0) is False
    assert verdict(2.0, ">=", 2.0) is True and verdict(2.0, ">", 2.0) is False
    assert verdict(0.5, "<=", 1.0) is True and verdict(1.5, "<=", 1.0) is False
    assert verdict(0.5, ">=", 1.0) is False and verdict(None, "<=", 1.0) is None
    with pytest.raises(ValueError, match="operator"):
        verdict(1.0, "=<", 1.0)


def test_headline_rows_fill_anchors_ratios_and_verdicts():
    parts = {
        "mnist/ae": {"metrics": {"test/mse": 0.004, "test/compression/pca_mse": 0.016, "test/baseline/mean_image_mse": 0.07}},
        "mnist/conv_ae": {"metrics": {"test/mse": 0.003}},
        "mnist/vqvae": {"metrics": {"test/mse": 0.002}},
    }  # fmt: skip
    headlines = {
        "mnist/ae": [
            {"label": "MSE", "metric": "test/mse", "anchor": "PCA {pca:.3g}", "values": {"pca": "test/compression/pca_mse"},
             "target": {"op": "<=", "value": 0.0038}},
            {"label": "vs PCA", "metric": "test/compression/pca_mse", "over": "test/mse", "anchor": "PCA = 1×",
             "target": {"op": ">=", "value": 3}},
            {"label": "no target", "metric": "test/baseline/mean_image_mse", "anchor": "mean image"},
        ],
        "mnist/vqvae": [{"label": "VQ MSE", "metric": "test/mse", "anchor": "ConvAE", "target": {"op": "<", "value": "vs"},
                         "vs": {"part": "mnist/conv_ae", "metric": "test/mse"}}],
        "mnist/missing": [{"label": "x", "metric": "test/mse", "anchor": "-"}],
    }  # fmt: skip
    rows = {r["label"]: r for r in headline_rows(parts, headlines)}
    assert set(rows) == {"MSE", "vs PCA", "no target", "VQ MSE"}  # a part not evaluated has no row
    assert rows["MSE"]["anchor"] == "PCA 0.016" and rows["MSE"]["met"] is False  # 0.004 > 0.0038
    assert (
        rows["vs PCA"]["value"] == pytest.approx(4.0)
        and rows["vs PCA"]["ratio"]
        and rows["vs PCA"]["met"] is True
    )
    assert rows["no target"]["met"] is None and rows["no target"]["goal"] is None
    assert rows["VQ MSE"]["goal"] == 0.003 and rows["VQ MSE"]["met"] is True  # 0.002 < ConvAE's 0.003
    assert rows["VQ MSE"]["anchor"] == "ConvAE 0.003"


def _points(name: str, curve, rate: str = "bytes_per_image") -> dict[str, float]:
    """The metrics of a classical codec's curve at the suite's qualities (:mod:`aelab_tools.schema`)."""
    from aelab_tools import schema

    return {k: v for q, (r, p) in zip(schema.qualities(), curve, strict=False) for k, v in
            ((schema.classical_key(name, q, rate), r), (schema.classical_key(name, q, "psnr"), p))}  # fmt: skip


def test_codec_study_bd_rates_rate_at_25db_and_targets():
    """A per-image hyperprior of 4 λ at exactly half WebP's bytes (BD-rate −50%) and 0.4× JPEG's (−60%), beside
    an older factorized codec measured as one stream only (better-looking, 0.3× WebP): the targets are judged on
    the per-image family, its 25 dB rate interpolates log-linearly between the two points around 25 dB, and the
    verdicts follow the targets. (Mutations: the stream-only family judged, the stream rate used for the per-image
    curve, rate_at interpolated linearly in rate, a flipped target verdict — each fails here.)"""
    psnrs = [20.0, 24.0, 28.0, 32.0]
    webp = [(100.0 * math.exp(0.1 * (p - 20)), p) for p in psnrs]
    jpeg = [(1.25 * r, p) for r, p in webp]  # the codec needs 0.4 × JPEG's bytes
    codec = [(0.5 * r, p) for r, p in webp]
    shared = {**_points("webp", webp), **_points("jpeg", jpeg), "test/compression/codecs_num_images": 2000.0}
    speed = {"test/codec/encode_images_per_s": 100.0, "test/codec/decode_images_per_s": 200.0,
             "test/codec/num_images": 2000.0}  # fmt: skip
    parts = {}
    for lmbda, (r, p) in zip((0.001, 0.003, 0.01, 0.03), codec, strict=True):
        m = {**shared, **speed, "test/codec/bytes_per_image": r, "test/codec/stream_bytes_per_image": 0.9 * r,
             "test/codec/psnr": p}  # fmt: skip
        parts[f"mnist/hyperprior_l{lmbda}"] = {"group": "codec", "metrics": m, "epochs": 12}
        old = {**shared, **speed, "test/codec/bytes_per_image": 0.3 * r / 0.5, "test/codec/psnr": p}
        parts[f"mnist/codec_l{lmbda}"] = {"group": "codec", "metrics": old}
    parts["mnist/ae"] = {"metrics": {"test/mse": 0.01}}  # not a codec: not in the study
    study = codec_study(parts)["mnist"]
    assert study["model"] == "hyperprior" and study["per_image"] is True
    assert study["models"]["codec"]["per_image"] is False
    assert study["models"]["codec"]["bd_rate"]["webp"] == pytest.approx(-70.0, abs=1e-6)
    assert study["bd_rate"]["webp"] == pytest.approx(-50.0, abs=1e-6)
    assert study["bd_rate"]["jpeg"] == pytest.approx(-60.0, abs=1e-6)
    assert study["models"]["hyperprior"]["stream_bd_rate"]["webp"] == pytest.approx(-55.0, abs=1e-6)
    assert study["lambdas"] == {f"mnist/hyperprior_l{x}": x for x in (0.001, 0.003, 0.01, 0.03)}
    assert study["images"] == 2000.0
    # 25 dB lies between the 24 and 28 dB points: log-linear, 1/4 of the way
    r24, r28 = codec[1][0], codec[2][0]
    assert study["bytes_at_25db"] == pytest.approx(float(np.exp(0.75 * np.log(r24) + 0.25 * np.log(r28))))
    targets = {t["what"].split(" (")[0]: t for t in study["targets"]}
    assert targets["BD-rate vs WebP"]["value"] == pytest.approx(-50.0, abs=1e-6)
    assert targets["BD-rate vs WebP"]["goal"] == -50.0 and targets["BD-rate vs AVIF"]["value"] is None
    assert targets["bytes/image at 25 dB"]["value"] == study["bytes_at_25db"]
    t = targets["BD-rate vs WebP"]
    assert verdict(t["value"] - 1e-9, t["op"], t["goal"]) is True
    assert verdict(t["value"] + 1e-9, t["op"], t["goal"]) is False


def test_kept_parts_and_the_baseline_table():
    """An earlier report's parts that this run did not redo stay, marked with that report's date; the baseline
    table shows model / PCA and the verdict where the data set has a target (digits: ≤ 0.9×)."""
    from aelab_tools.results.cli import kept_parts
    from aelab_tools.results.render import baseline_table

    earlier = {"date": "2026-12-01", "command": "python scripts/results.py ...", "parts": {
        "digits/ae": {"metrics": {"test/mse": 0.03, "test/compression/pca_mse": 0.02}},
        "mnist/ae": {"metrics": {"test/mse": 0.004, "test/compression/pca_mse": 0.016}}}}  # fmt: skip
    kept = kept_parts(earlier, done={"mnist/ae"})
    assert set(kept) == {"digits/ae"} and kept["digits/ae"]["kept_from"]["date"] == "2026-12-01"
    parts = {**kept, "digits/conv_ae": {"metrics": {"test/mse": 0.0138, "test/compression/pca_mse": 0.0232}}}
    rows = {line.split(" | ")[1]: line for line in baseline_table(parts) if line.startswith("| digits")}
    assert "1.500×" in rows["ae"] and "**no**" in rows["ae"] and "2026-12-01" in rows["ae"]
    assert "0.595×" in rows["conv_ae"] and "| yes |" in rows["conv_ae"] and "this run" in rows["conv_ae"]
    # photographs: the ConvAE's target is 0.9× PCA, the MLP AE's 1.0×; the PCA start is shown
    photos = {f"photo_patches/{n}": {"metrics": {"test/mse": 0.0095, "test/compression/pca_mse": 0.01}, "init": "pca"}
              for n in ("ae", "conv_ae")}  # fmt: skip
    rows = {
        line.split(" | ")[1]: line for line in baseline_table(photos) if line.startswith("| photo_patches")
    }
    assert "| PCA | 0.00950 |" in rows["ae"] and "≤ 1.0×" in rows["ae"] and "| yes |" in rows["ae"]
    assert "≤ 0.9×" in rows["conv_ae"] and "**no**" in rows["conv_ae"]


def test_an_eval_study_re_measures_one_model_and_keeps_the_others():
    from aelab_tools.eval_timing import merge_eval_studies, render_eval_study

    def study(cmd, date, models):
        return {"command": cmd, "date": date, "device": "CPU", "file": "study_eval.json", "epochs": 1,
                "limit_batches": 60, "models": {n: {"sections": {"fid": s}, "suite": "quick", "suite_s": s,
                                                    "eval_wall_s": s + 5} for n, s in models.items()}}  # fmt: skip

    merged = merge_eval_studies(
        study("all", "d1", {"ae": 10.0, "vqvae": 300.0}), study("vq", "d2", {"vqvae": 90.0})
    )
    assert merged["models"]["vqvae"]["suite_s"] == 90.0 and merged["models"]["ae"]["suite_s"] == 10.0
    assert merged["models"]["ae"]["measured_by"] == {"command": "all", "date": "d1"}
    text = "\n".join(render_eval_study(merged))
    assert "| vqvae | quick | 90.0 | 90.0 | 95.0 |" in text and "ae: measured on d1 by `all`" in text


def _cubic_curve(coeffs, psnrs):
    """(rate, psnr) points of a curve whose log-rate is exactly the cubic ``coeffs`` (highest power first)."""
    return [(float(np.exp(np.polyval(coeffs, p))), float(p)) for p in psnrs]


def test_bd_rate_of_curved_partly_overlapping_curves_is_the_hand_integral():
    """Two curves whose log-rates are exact, different cubics of PSNR, over partly overlapping PSNR ranges
    (anchor 20–36 dB, test 26–42 dB): BD-rate = exp(mean over the *shared* 26–36 dB of Δ log R) − 1, with the
    antiderivative written out here, and the reference ``bjontegaard`` package (method ``cubic``) agrees.
    (Mutations: a linear fit, integration over the anchor's range, a 2- or 3-point minimum — each fails here.)"""
    fa = [0.0008, -0.05, 1.4, -8.0]  # log R_anchor(p)
    ft = [-0.0006, 0.06, -1.6, 16.5]  # log R_test(p): another shape, not a scaled copy
    anchor = _cubic_curve(fa, np.linspace(20, 36, 6))
    test = _cubic_curve(ft, np.linspace(26, 42, 6))

    def antiderivative(c, p):  # ∫ (c0 p³ + c1 p² + c2 p + c3) dp
        return c[0] * p**4 / 4 + c[1] * p**3 / 3 + c[2] * p**2 / 2 + c[3] * p

    lo, hi = 26.0, 36.0
    mean_delta = (
        antiderivative(ft, hi) - antiderivative(ft, lo) - antiderivative(fa, hi) + antiderivative(fa, lo)
    ) / (hi - lo)
    hand = (math.exp(mean_delta) - 1) * 100
    assert abs(hand) > 5  # a real difference, not 0
    assert bd_rate(anchor, test) == pytest.approx(hand, rel=1e-6)
    bjontegaard = pytest.importorskip("bjontegaard")
    ref = bjontegaard.bd_rate(*zip(*anchor, strict=True), *zip(*test, strict=True), method="cubic",
                              min_overlap=0.0)  # fmt: skip
    assert bd_rate(anchor, test) == pytest.approx(ref, rel=1e-6)
    # a rising then flattening curve of 4 points: the least a cubic needs; 3 are refused
    assert bd_rate(anchor[:4], test[:4]) is not None
    assert bd_rate(anchor[:3], test) is None and bd_rate(anchor, test[:3]) is None
    assert bd_rate(_cubic_curve(fa, [20, 22, 24, 25]), test) is None  # no shared PSNR range


# ------------------------------------------------------------------------------------------------ sparse AE


def test_bd_rate_of_known_curves():
    anchor = [(r, p) for r, p in zip([10, 20, 40, 80, 160], [20, 24, 28, 32, 36], strict=True)]
    half = [(r / 2, p) for r, p in anchor]
    assert bd_rate(anchor, half) == pytest.approx(-50.0, abs=1e-6)
    assert bd_rate(anchor, anchor) == pytest.approx(0.0, abs=1e-9)
    assert bd_rate(anchor, [(r * 3, p) for r, p in anchor]) == pytest.approx(200.0, abs=1e-6)
    assert bd_rate(anchor, [(r, p + 100) for r, p in anchor]) is None  # no common PSNR range
    assert rate_at(anchor, 26) == pytest.approx(math.sqrt(20 * 40))


def test_psnr_overlap_is_the_shared_share_of_the_shorter_curve():
    """Curves over 20–40 dB and 36–46 dB share 36–40 dB: 4 dB of the shorter (10 dB) curve's range = 40%; disjoint
    curves share 0; a curve inside another shares all of itself. (Mutation: dividing by the longer range gives
    20%, by the union 15%: both fail.)"""
    from aelab_tools.ratedistortion import overlap

    a = [(1.0, 20.0), (2.0, 30.0), (4.0, 40.0)]
    b = [(3.0, 36.0), (5.0, 46.0)]
    assert overlap(a, b) == pytest.approx(0.4)
    assert overlap(a, [(1.0, 50.0), (2.0, 55.0)]) == 0.0
    assert overlap(a, [(1.0, 25.0), (2.0, 35.0)]) == pytest.approx(1.0)
    assert overlap(a, []) is None


def test_seeded_parts_report_the_mean_and_sample_std_of_each_metric():
    """Three seeds of an eval-less part (its training run's test metrics): the mean and the n − 1 standard deviation
    worked out here, the total training time, and a metric one seed lacks left out."""
    from aelab_tools.results.cli import seeded

    runs = {
        s: {"train_metrics": {"test/anomaly/auroc": a, "test/anomaly/iforest_auroc": 0.9, **extra},
            "t_train": 10.0, "train_cmd": f"python -m aelab.train seed={s}"}
        for s, a, extra in ((0, 0.90, {"only": 1.0}), (1, 0.94, {}), (2, 0.98, {}))
    }  # fmt: skip
    out = seeded(runs)
    assert out["metrics"]["test/anomaly/auroc"] == pytest.approx(0.94)
    assert out["metrics_std"]["test/anomaly/auroc"] == pytest.approx(0.04)  # sqrt((0.04² + 0 + 0.04²) / 2)
    assert out["metrics_std"]["test/anomaly/iforest_auroc"] == pytest.approx(0.0)
    assert "only" not in out["metrics"] and out["seeds"] == [0, 1, 2] and out["t_train"] == 30.0


def test_the_anomaly_table_names_the_baselines_the_best_model_misses():
    from aelab_tools.results.render import anomaly_table

    base = {f"test/anomaly/{b}_auroc": v for b, v in
            (("iforest", 0.95), ("lof", 0.93), ("ocsvm", 0.94), ("pca", 0.90), ("pyod_ae", 0.96))}  # fmt: skip
    parts = {
        "wine/ae": {"metrics": {"test/anomaly/auroc": 0.955, **base}, "seeds": [0, 1]},
        "wine/vae": {"metrics": {"test/anomaly/auroc": 0.97, **base}, "seeds": [0, 1]},
    }
    text = "\n".join(anomaly_table(parts))
    assert "Best aelab model: `vae`, AUROC 0.970" in text and "met: it reaches every baseline" in text
    parts["wine/vae"]["metrics"]["test/anomaly/auroc"] = 0.945
    text = "\n".join(anomaly_table(parts))
    assert "Best aelab model: `ae`, AUROC 0.955" in text and "**missed**: below PyOD AutoEncoder" in text
    assert "IsolationForest" not in text.split("**missed**")[1]  # 0.95 < 0.955: not named


def test_reproducibility_rows_read_parts_the_generation_best_and_a_codec_family(monkeypatch):
    """One row per reference: a part's metric with its verdict, epochs, time and command; the best Fréchet
    distance with the part that made it; a codec family's per-image BD-rate over its λ parts (epochs and time
    summed, the command naming each λ); a run cut short shows its epochs of those planned; a part not run has no
    value and no verdict."""
    from aelab_tools.results import analysis
    from aelab_tools.results.render import reproducibility_lines

    refs = {"reproducibility": [
        {"model": "IWAE", "part": "mnist/iwae_paper", "metric": "test/likelihood/nll_iwae", "paper": "Burda",
         "paper_value": 85.54, "op": "<=", "target": 86.0, "unit": "nats", "fmt": ".2f", "paper_budget": "3,280 passes"},
        {"model": "VAE", "part": "mnist/vae_paper", "metric": "test/likelihood/nll_iwae", "paper": "Burda",
         "paper_value": 86.76, "op": "<=", "target": 87.0, "unit": "nats", "fmt": ".2f"},
        {"model": "best FD", "source": "generation", "paper": "Ghosh", "paper_value": None, "op": "<=", "target": 10,
         "unit": "FD", "fmt": ".1f"},
        {"model": "context", "source": "codec", "data": "mnist", "family": "context", "paper": "He",
         "paper_value": None, "op": "<=", "target": -50.0, "unit": "%", "fmt": ".1f"},
    ]}  # fmt: skip
    monkeypatch.setattr(analysis, "references", lambda: refs)
    parts = {
        "mnist/iwae_paper": {"metrics": {"test/likelihood/nll_iwae": 86.5}, "epochs": 82, "max_epochs": 200, "t_train": 7200.0,
                             "train_cmd": "python -m aelab.train experiment=iwae_paper"},
        "mnist/rae": {"metrics": {}, "epochs": 20, "t_train": 60.0, "train_cmd": "python -m aelab.train experiment=rae_best",
                      "kept_from": {"date": "2026-12-01"}},
        "mnist/context_l0.001": {"epochs": 12, "t_train": 100.0, "train_cmd": "python -m aelab.train model.lmbda=0.001 x=1"},
        "mnist/context_l0.01": {"epochs": 10, "t_train": 50.0, "train_cmd": "python -m aelab.train model.lmbda=0.01 x=1"},
    }  # fmt: skip
    codec = {"mnist": {"models": {"context": {"per_image": True, "bd_rate": {"webp": -55.0},
                                              "lambdas": {"mnist/context_l0.001": 0.001, "mnist/context_l0.01": 0.01}}}}}  # fmt: skip
    generation = {"best": {"value": 12.5, "model": "rae", "sampler": "gmm"}}
    rows = {r["model"]: r for r in analysis.reproducibility_table(parts, codec, generation)}
    assert rows["IWAE"]["value"] == 86.5 and rows["IWAE"]["met"] is False and rows["IWAE"]["epochs"] == [82]
    assert rows["IWAE"]["planned_epochs"] == [200] and rows["context"]["planned_epochs"] == []
    assert rows["VAE"]["value"] is None and rows["VAE"]["met"] is None
    assert rows["best FD"]["part"] == "mnist/rae" and rows["best FD"]["met"] is False
    assert rows["best FD"]["kept_from"] == ["2026-12-01"]
    c = rows["context"]
    assert c["value"] == -55.0 and c["met"] is True and c["epochs"] == [10, 12] and c["t_train"] == 150.0
    assert c["command"] == "python -m aelab.train model.lmbda=<each of 0.001, 0.01> x=1"
    text = "\n".join(reproducibility_lines(list(rows.values())))
    assert "| 86.50 nats | ≤ 86.00 | **no** | 82 of 200 planned | 2.0 h |" in text
    assert (
        "missed at 82 of 200 planned epochs; the paper trained 3,280 passes" in text
        and "not run in this report" in text
    )


def test_a_parts_epochs_are_those_it_trained_and_those_planned(tmp_path, fake_data_dir):
    """``trained_epochs`` reads the epochs a run processed from its ``last.ckpt`` (2 for a 2-epoch run; Lightning's
    ``epoch`` index plus one would say 3 there), ``run_plan`` its ``trainer.max_epochs``; a run continued
    with a smaller ``trainer.max_epochs`` than it was planned with keeps its plan beside what it trained."""
    from aelab.train import train
    from aelab_tools.results.runner import run_plan, trained_epochs
    from conftest import SMALL, compose_cfg

    run_dir = tmp_path / "run"
    train(compose_cfg("train", [*SMALL, "model=ae", "model.latent_dim=4", "+trainer.limit_train_batches=2"],
                      run_dir, fake_data_dir))  # fmt: skip
    last = run_dir / "checkpoints" / "last.ckpt"
    assert (trained_epochs(last), run_plan(last)["max_epochs"]) == (2, 2)
    # a last.ckpt written again when the fit ends (its last validation did not improve) holds epoch = the count
    state = torch.load(last, weights_only=True)
    state["epoch"] = 2
    at_end = tmp_path / "at_end.ckpt"
    torch.save(state, at_end)
    assert trained_epochs(at_end) == 2
    best = next((run_dir / "checkpoints").glob("epoch_*.ckpt"))
    assert run_plan(best)["max_epochs"] == 2


def _fake_checkpoint(path, max_epochs: int, epoch: int, processed: int) -> None:
    """An aelab checkpoint of a run planned for ``max_epochs`` whose fit loop had processed ``processed`` epochs
    (Lightning's ``epoch`` index ``epoch``) when it was written; no weights."""
    from aelab.checkpoint import CONFIG_KEY, FORMAT, FORMAT_KEY

    config = {
        "model": {"_target_": "aelab.models.Autoencoder", "init": "random"},
        "data": {"_target_": "aelab.data.MNISTDataModule"},
        "trainer": {"max_epochs": max_epochs},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({CONFIG_KEY: config, FORMAT_KEY: FORMAT, "state_dict": {}, "epoch": epoch,
                "loops": {"fit_loop": {"epoch_progress": {"current": {"processed": processed}}}}}, path)  # fmt: skip


def test_a_run_cut_short_reports_the_epochs_it_trained_not_those_planned(tmp_path, monkeypatch):
    """A part whose run stopped after 3 of its 10 planned epochs (early stopping, or continued with a smaller
    trainer.max_epochs) is reported with epochs 3 (its last.ckpt's fit-loop count) beside max_epochs 10 (its plan),
    and its best checkpoint's epoch, and the reproducibility table says "3 of 10 planned"; read from a finished
    folder, nothing is started."""
    import json

    from aelab_tools.results.cli import Runner, collect

    train = tmp_path / "mnist" / "ae" / "train"
    _fake_checkpoint(train / "checkpoints" / "last.ckpt", max_epochs=10, epoch=2, processed=3)
    _fake_checkpoint(train / "checkpoints" / "epoch_001.ckpt", max_epochs=10, epoch=1, processed=1)
    (train / "metrics.json").write_text(json.dumps({"best_ckpt": "checkpoints/epoch_001.ckpt"}))
    (tmp_path / "timings.json").write_text(json.dumps({"mnist/ae": 12.0}))
    runner = Runner(tmp_path, [])

    def refuse(*args, **kwargs):
        raise AssertionError("a finished part started a command")

    monkeypatch.setattr(runner, "run", refuse)
    spec = {"parts": {"mnist/ae": {"train": ["model=ae", "trainer.max_epochs=10"], "eval": False}}}
    part = collect(runner, ["mnist/ae"], spec, run=False)["mnist/ae"]
    assert (part["epochs"], part["max_epochs"], part["best_epoch"]) == (3, 10, 2)
    assert part["init"] == "random" and part["t_train"] == 12.0
    from aelab_tools.results import analysis
    from aelab_tools.results.render import reproducibility_lines

    refs = {"reproducibility": [{"model": "AE", "part": "mnist/ae", "metric": "test/loss", "paper": "—",
                                 "paper_value": None, "op": "<=", "target": 1.0, "unit": "", "fmt": ".2f"}]}  # fmt: skip
    monkeypatch.setattr(analysis, "references", lambda: refs)
    (row,) = analysis.reproducibility_table({"mnist/ae": {**part, "metrics": {"test/loss": 0.5}}}, {}, {})
    assert (row["epochs"], row["planned_epochs"]) == ([3], [10])
    assert "| 3 of 10 planned |" in "\n".join(reproducibility_lines([row]))


def test_the_series_tables_average_over_the_series_and_judge_the_best_model_against_every_detector():
    from aelab_tools.results.render import series_tables

    def part(vus, detectors, seeds=(0, 1)):
        return {"metrics": {"test/anomaly/vus_pr": vus, **{f"test/anomaly/{d}_vus_pr": v for d, v in detectors.items()}},
                "seeds": list(seeds)}  # fmt: skip

    det_a = {
        "pca": 0.4,
        "kmeansad": 0.5,
        "iforest": 0.3,
        "lof": 0.6,
        "stomp": 0.9,
        "dwt_mlead": 0.2,
        "random": 0.1,
    }
    det_b = {**det_a, "stomp": 0.5}
    parts = {
        "a/ae": part(0.8, det_a),
        "b/ae": part(0.8, det_b),
        "a/usad": part(0.2, det_a),
        "b/usad": part(0.9, det_b),
    }
    text = "\n".join(series_tables(parts))
    # ae: mean 0.8; usad: 0.55; STOMP: (0.9 + 0.5) / 2 = 0.7 — the best model (ae) is above every detector's mean
    assert (
        "| ae | 2 | 0.800 | 0.800 | **0.800** |" in text and "| *STOMP* | — | 0.900 | 0.500 | 0.700 |" in text
    )
    assert "Best aelab model: `ae`, mean vus_pr 0.800" in text and ": met." in text
    parts["a/ae"]["metrics"]["test/anomaly/vus_pr"] = 0.5  # ae 0.65, usad 0.55: below STOMP's 0.7
    text = "\n".join(series_tables(parts))
    assert (
        "`ae`, mean vus_pr 0.650" in text
        and "**missed**: below STOMP" in text
        and "KMeansAD" not in text.split("**missed**")[1]
    )
    whole = {
        "ucr_one_class/X/ae": {"metrics": {"test/anomaly/auroc": 0.9, "test/anomaly/rockad_auroc": 0.95}}
    }
    assert "**missed**: below ROCKAD" in "\n".join(series_tables(whole))


def test_the_text_table_judges_the_vae_against_the_language_model_and_the_probe_against_tfidf():
    from aelab_tools.results.render import text_table

    parts = {
        "rt/lstm_lm": {"metrics": {"test/text/nll_per_token": 4.00}},
        "rt/sentence_vae": {"metrics": {"test/text/nll_per_token": 4.07, "test/text/kl": 3.5,
                                        "test/features/linear_probe_acc": 0.70, "test/features/tfidf_probe_acc": 0.75}},
        "rt/text_ae": {"metrics": {"test/text/nll_per_token": 1.0, "test/text/token_accuracy": 0.85,
                                   "test/features/linear_probe_acc": 0.76, "test/features/tfidf_probe_acc": 0.75}},
    }  # fmt: skip
    text = "\n".join(text_table(parts))
    assert "KL 3.50 nats (≥ 3) with NLL per token +1.75% of lstm_lm's (≤ +2%): met" in text
    assert "greedy token accuracy 0.850 (≥ 0.80): met" in text
    assert "best code probe `text_ae` 0.760 at or above TF-IDF 0.750: met" in text
    parts["rt/sentence_vae"]["metrics"]["test/text/nll_per_token"] = 4.09  # +2.25%
    parts["rt/text_ae"]["metrics"]["test/features/linear_probe_acc"] = 0.6
    text = "\n".join(text_table(parts))
    assert (
        "+2.25% of lstm_lm's (≤ +2%): **missed**" in text
        and "`sentence_vae` 0.700 at or above TF-IDF 0.750: **missed**" in text
    )
