"""The scripts in scripts/: the aggregator on known numbers, the one-class tool, results and benchmark reports
rendered from their JSON byte for byte, and the GPU check rehearsed on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO
from helpers import run_subprocess


def test_aggregate_mean_and_std(tmp_path, capsys):
    from aelab_tools import aggregate as agg

    for i, v in enumerate([1.0, 2.0, 3.0, 4.0, 5.0]):
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / "metrics.json").write_text(json.dumps({"test/mse": v, "test/psnr": 20.0}))
    (tmp_path / "pruned").mkdir()
    (tmp_path / "pruned" / "metrics.json").write_text(json.dumps({"test/mse": 100.0}))
    (tmp_path / "pruned" / "PRUNED").write_text("pruned\n")  # skipped like FAILED and INTERRUPTED
    assert agg.main([str(tmp_path), "--json", str(tmp_path / "s.json")]) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["test/mse"] == {"mean": 3.0, "std": pytest.approx(1.5811388, rel=1e-6), "n": 5}
    assert summary["test/psnr"]["std"] == 0.0
    out = capsys.readouterr().out
    assert "5 runs" in out and "marked PRUNED" in out


@pytest.mark.slow
def test_one_class_sweep_on_two_digits(tmp_path, fake_data_dir, monkeypatch, capsys):
    monkeypatch.setenv("DATA_DIR", str(fake_data_dir))
    from aelab_tools import one_class

    argv = ["one_class.py", "--classes", "0", "1", "--sweep-dir", str(tmp_path), "--device", "cpu",
            "data.val_size=100", "data.batch_size=10", "trainer.max_epochs=2", "callbacks=minimal",
            "trainer.enable_progress_bar=false", "data.download=false"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    assert one_class.main() == 0
    summary = json.loads((tmp_path / "one_class.json").read_text())
    assert set(summary["classes"]) == {"0", "1"} and summary["class_names"] == {"0": "0", "1": "1"}
    # trained on one synthetic digit, the others' bars sit elsewhere: they reconstruct worse (AUROC well above 0.5)
    for row in summary["classes"].values():
        assert row["auroc"] > 0.9
    assert summary["mean"]["auroc"] == pytest.approx(sum(r["auroc"] for r in summary["classes"].values()) / 2)
    assert " mean " in capsys.readouterr().out


@pytest.mark.parametrize("report", ["results", "benchmarks", "kinds", "first_try"])
def test_committed_reports_render_from_their_json_byte_for_byte(tmp_path, report):
    out = tmp_path / "R.md"
    if report == "results":
        cmd = [sys.executable, "scripts/results.py", "--render", "docs/results.json", "--out", str(out)]
        committed = REPO / "docs" / "RESULTS.md"
    elif report == "kinds":
        cmd = [
            sys.executable,
            "scripts/bench_kinds.py",
            "--render",
            "docs/kinds_speed.json",
            "--out",
            str(out),
        ]
        committed = REPO / "docs" / "BENCHMARKS_KINDS.md"
    elif report == "first_try":
        cmd = [sys.executable, "scripts/bench_first_try.py", "--render", "docs/first_try.json", "--out", str(out)]
        committed = REPO / "docs" / "FIRST_TRY.md"
    else:
        cmd = [sys.executable, "scripts/benchmark.py", "--render", "docs/bench_cpu.json", "--out", str(out)]
        committed = REPO / "docs" / "BENCHMARKS.md"
    subprocess.run(cmd, cwd=REPO, check=True, timeout=120)
    assert out.read_text() == committed.read_text()


@pytest.mark.slow
def test_results_run_continue_and_render(tmp_path, fake_data_dir):
    """make results on a parts file of two tiny parts: trained, evaluated, kept when run again, and the report
    rendered from the JSON equals the one written by the run."""
    parts = tmp_path / "parts.yaml"
    small = ["data.val_size=100", "data.batch_size=50", "data.download=false", "trainer.max_epochs=1", "callbacks=minimal",
             "trainer.enable_progress_bar=false"]  # fmt: skip
    parts.write_text(json.dumps({
        "eval_overrides": ["suite.enabled=false", "trainer.enable_progress_bar=false"],
        "parts": {"mnist/ae": {"train": ["model=ae", *small]}, "mnist/latent2d": {"train": ["model=ae", "model.latent_dim=2", *small], "eval": False},
                  "mnist/seeded": {"train": ["model=ae", *small], "seeds": [0, 1], "eval": False}},
    }))  # fmt: skip
    cmd = [sys.executable, "scripts/results.py", "--parts-file", str(parts), "--dir", str(tmp_path / "r"), "--json",
           str(tmp_path / "results.json"), "--out", str(tmp_path / "R.md"), "--figures-dir", str(tmp_path / "figures")]  # fmt: skip
    first = run_subprocess(cmd, fake_data_dir, timeout=400)
    assert "mnist/ae train" not in first.stdout or "done earlier" not in first.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert (
        results["parts"]["mnist/ae"]["metrics"]["test/mse"] > 0
        and "metrics" not in results["parts"]["mnist/latent2d"]
    )
    assert (tmp_path / "figures" / "latent_map.png").is_file() and (
        tmp_path / "figures" / "validation_curves.png"
    ).is_file()
    # two seeds of an eval-less part: their training runs' test metrics
    seeded = results["parts"]["mnist/seeded"]
    assert seeded["seeds"] == [0, 1] and "test/mse" in seeded["metrics_std"]
    runs = [
        json.loads((tmp_path / "r" / "mnist" / "seeded" / f"seed{s}" / "train" / "metrics.json").read_text())
        for s in (0, 1)
    ]
    assert seeded["metrics"]["test/mse"] == pytest.approx((runs[0]["test/mse"] + runs[1]["test/mse"]) / 2)
    # a run that finished while its runner was stopped (no recorded time) is adopted with its folder's wall time
    timings = json.loads((tmp_path / "r" / "timings.json").read_text())
    del timings["mnist/ae"]
    (tmp_path / "r" / "timings.json").write_text(json.dumps(timings))
    again = run_subprocess(cmd, fake_data_dir, timeout=400)
    assert (
        "mnist/ae train: adopted the finished run" in again.stdout
        and "mnist/ae train: done earlier" in again.stdout
    )
    assert "mnist/ae eval: done earlier" in again.stdout and "continuing" not in again.stdout
    train_dir = tmp_path / "r" / "mnist" / "ae" / "train"
    wall = (train_dir / "metrics.json").stat().st_mtime - (
        train_dir / ".hydra" / "config.yaml"
    ).stat().st_mtime
    assert json.loads((tmp_path / "r" / "timings.json").read_text())["mnist/ae"] == pytest.approx(wall)
    render = [
        sys.executable,
        "scripts/results.py",
        "--render",
        str(tmp_path / "results.json"),
        "--out",
        str(tmp_path / "again.md"),
    ]
    subprocess.run(render, cwd=REPO, check=True, timeout=120)
    assert (tmp_path / "again.md").read_text() == (tmp_path / "R.md").read_text()


def test_results_for_a_dataset_without_parts(tmp_path):
    """--data NAME: a data config the parts file has no parts for gets the five core models on it, with the given
    data overrides, remembered in the results folder; a dataset with parts keeps its own."""
    from aelab_tools.results.cli import CORE_MODELS, derived_parts
    from aelab_tools.results.runner import load_parts

    known = load_parts()["parts"]
    got = derived_parts(tmp_path, ["digits", "image_folder", "mnist"], known, ["data.root=/imgs"])
    assert sorted(got) == sorted(f"image_folder/{m}" for m in CORE_MODELS)
    assert got["image_folder/conv_vae"]["train"] == [
        "experiment=conv_vae_best", "data=image_folder", "data.root=/imgs", "model.binarize=false",
    ]  # fmt: skip
    assert derived_parts(tmp_path, [], known, []) == got  # a later invocation keeps them in the report


def test_headlines_and_parts_are_consistent():
    from aelab_tools.results import load_headlines, load_parts

    headlines, parts = load_headlines(), load_parts()["parts"]
    assert set(headlines) <= set(parts)
    for entries in headlines.values():
        for e in entries:
            assert {"label", "metric", "anchor"} <= e.keys()
            assert e["anchor"].format(**{k: 1.0 for k in e.get("values", {})})
            if "target" in e:
                assert e["target"]["op"] in ("<=", ">=", "<")
                assert e["target"]["value"] != "vs" or e["vs"]["part"] in parts


def test_the_benchmarks_lightning_variant_is_the_least_module_on_aelabs_trainer(make_cfg, tmp_path):
    """``lightning`` splits what the framework costs: the variant builds a module that only returns aelab's training
    loss (same weights, same batch) and runs on the same Trainer settings, speed callbacks, logger and data as
    ``aelab``, without aelab's divergence guard and RNG-state callbacks."""
    import torch

    from aelab.callbacks import DivergenceGuard, RNGState
    from aelab.module import AutoencoderModule
    from aelab_tools.benchmark import make_loop

    cfg = make_cfg(["model=conv_ae"])  # a conv model: the channels-last speed callback is on
    cpu = torch.device("cpu")
    (_, aelab), (_, bare) = (
        make_loop(v, cfg, cpu, str(tmp_path / v), limit_batches=3) for v in ("aelab", "lightning")
    )
    assert isinstance(aelab.model, AutoencoderModule) and not isinstance(bare.model, AutoencoderModule)
    assert list(bare.model.children()) == [bare.model.net]
    names = lambda loop: sorted(type(c).__name__ for c in loop.trainer.callbacks)  # noqa: E731
    assert "ChannelsLast" in names(bare)
    assert names(aelab) == sorted([*names(bare), DivergenceGuard.__name__, RNGState.__name__])
    assert type(bare.trainer.logger) is type(aelab.trainer.logger)
    assert bare.trainer.precision == aelab.trainer.precision
    assert bare.trainer.limit_train_batches == aelab.trainer.limit_train_batches == 3
    assert type(bare.dm) is type(aelab.dm)
    bare.model.net.load_state_dict(aelab.model.net.state_dict())
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(bare.model.training_step((x, None), 0), aelab.model.training_step((x, None), 0))


@pytest.mark.slow
def test_gpu_check_rehearses_on_the_cpu(tmp_path, fake_data_dir):
    """make gpu-check ARGS="--device cpu --smoke": the GPU command end to end, tiny, on this CPU."""
    run_subprocess([sys.executable, "scripts/gpu_check.py", "--device", "cpu", "--smoke", "--out-dir", str(tmp_path)],
                   fake_data_dir, timeout=300)  # fmt: skip
    result = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert set(result["models"]["ae"]["variants"]) >= {"plain", "lightning", "aelab", "aelab-compile"}
    assert {"lightning / plain-same-precision", "aelab / lightning"} <= set(result["models"]["ae"]["ratios"])
    assert result["gpu_check"]["k"] == 10 and result["gpu_check"]["nll_iwae"] > 0
    assert "Speed:" in (tmp_path / "BENCHMARKS.md").read_text()


@pytest.mark.parametrize(
    "parts_file", ["parts.yaml", pytest.param("parts_quick.yaml", marks=pytest.mark.slow)]
)
def test_every_part_of_the_parts_files_composes(make_cfg, parts_file):
    """Each part's training overrides compose as Hydra would run them (a misspelt override fails here, not an
    hour into make results); the quick file has the same parts as the full one."""
    from aelab_tools.results.runner import PARTS_FILE, load_parts

    spec = load_parts(PARTS_FILE.parent / parts_file)
    assert set(spec["parts"]) == set(load_parts()["parts"])
    for name, part in spec["parts"].items():
        cfg = make_cfg(part["train"], small=False)
        epochs = [o.split("=", 1)[1] for o in part["train"] if o.startswith("trainer.max_epochs=")]
        assert not epochs or cfg.trainer.max_epochs == int(epochs[-1]), name


def test_parts_not_chosen_are_only_read(tmp_path, monkeypatch):
    """results --parts A: another part an earlier invocation trained but did not evaluate stays out of the
    report, and nothing is started for it (an evaluation started there once ran beside the one in progress)."""
    from aelab_tools.results.cli import Runner, collect

    train = tmp_path / "mnist" / "ae" / "train"
    (train / "checkpoints").mkdir(parents=True)
    (train / "checkpoints" / "epoch_000.ckpt").write_bytes(b"")
    (train / "metrics.json").write_text("{}")
    (tmp_path / "timings.json").write_text(json.dumps({"mnist/ae": 1.0}))
    runner = Runner(tmp_path, [])

    def refuse(*args, **kwargs):
        raise AssertionError("collect(run=False) started a command")

    monkeypatch.setattr(runner, "run", refuse)
    spec = {
        "parts": {"mnist/ae": {"train": ["model=ae"]}, "mnist/l2": {"train": ["model=ae"], "eval": False}}
    }
    assert collect(runner, ["mnist/ae", "mnist/l2"], spec, run=False) == {}
    assert not runner.finished("mnist/ae") and runner.finished("mnist/ae", evaluated=False)
