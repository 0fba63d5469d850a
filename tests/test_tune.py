"""Hyperparameter search: an Optuna (>= 4) study through aelab-train -m hparams_search=..., continued, pruned,
shared by two workers, and bad input refused before the first trial trains."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from aelab.train import main as train_main
from conftest import REPO
from helpers import run_inprocess, run_subprocess

BASE = [
    "data.val_size=100",
    "data.batch_size=50",
    "data.download=false",
    "trainer=cpu",
    "callbacks=minimal",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.num_sanity_val_steps=0",
    "trainer.max_epochs=2",
]
SEARCH = [sys.executable, "-m", "aelab.train", "-m", "hparams_search=ae", *BASE]


def _study(db: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}")


def _sweeps(logs: Path) -> list[Path]:
    return sorted((logs / "train" / "multiruns").iterdir())


@pytest.mark.slow
def test_study_runs_continues_and_records_every_epoch(tmp_path, fake_data_dir):
    db = tmp_path / "s.db"
    common = [
        f"paths.log_dir={tmp_path}",
        f"hydra.sweeper.storage=sqlite:///{db}",
        "hydra.sweeper.study_name=x",
    ]
    run_subprocess([*SEARCH, *common, "hydra.sweeper.n_trials=3"], fake_data_dir)
    first = _sweeps(tmp_path)[0]
    results = yaml.safe_load((first / "optimization_results.yaml").read_text())
    assert results["n_trials"] == 3 and results["study_name"] == "x" and results["storage"].endswith("s.db")
    assert set(results["best_params"]) == {
        "optimizer.lr",
        "optimizer.weight_decay",
        "model.latent_dim",
        "model.encoder.hidden_dims",
    }
    best = yaml.safe_load((first / "best_experiment.yaml").read_text())
    assert best["optimizer"]["lr"] == results["best_params"]["optimizer.lr"]
    assert isinstance(best["model"]["encoder"]["hidden_dims"], list)
    for trial in (0, 1, 2):  # every trial is a normal run folder
        assert (first / str(trial) / "metrics.json").is_file() and (
            first / str(trial) / "tensorboard"
        ).is_dir()

    run_subprocess([*SEARCH, *common, "hydra.sweeper.n_trials=2"], fake_data_dir)
    study = _study(db, "x")
    assert len(study.trials) == 5
    assert sorted(p.name for p in _sweeps(tmp_path)[1].iterdir() if p.is_dir()) == ["3", "4"]
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.COMPLETE
        assert sorted(t.intermediate_values) == [0, 1]  # one validation value per epoch
        assert t.value == pytest.approx(min(t.intermediate_values.values()))  # the objective: best val/loss


@pytest.mark.slow
def test_a_pruned_trial_stops_training_also_under_ddp(tmp_path, fake_data_dir):
    db = tmp_path / "p.db"
    run_subprocess(
        [
            *SEARCH,
            f"paths.log_dir={tmp_path}",
            f"hydra.sweeper.storage=sqlite:///{db}",
            "hydra.sweeper.study_name=p",
            "hydra.sweeper.n_trials=1",
            "trainer=ddp_sim",
            "trainer.max_epochs=4",
            "~hydra.sweeper.pruner",
            "+hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,upper:0.0,n_warmup_steps:1}",
        ],
        fake_data_dir,
        timeout=400,
    )
    (trial,) = _study(db, "p").trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert sorted(trial.intermediate_values) == [0, 1]  # reported epochs 0 and 1, pruned after epoch 1
    folder = _sweeps(tmp_path)[0] / "0"
    assert "TrialPruned" in (folder / "PRUNED").read_text()
    import torch

    last = torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 2  # written when training stopped: epochs 0 and 1 ran, 2 and 3 never did
    assert not (folder / "metrics.json").exists()


@pytest.mark.slow
def test_two_workers_share_one_study_without_duplicates(tmp_path, fake_data_dir):
    db = tmp_path / "shared.db"
    env = {**__import__("os").environ, "DATA_DIR": str(fake_data_dir)}
    procs = [
        subprocess.Popen(
            [
                *SEARCH,
                f"paths.log_dir={tmp_path / f'w{w}'}",
                f"hydra.sweeper.storage=sqlite:///{db}",
                "hydra.sweeper.study_name=shared",
                "hydra.sweeper.n_trials=2",
                f"hydra.sweeper.sampler.seed={w}",
                "hydra.sweeper.pruner=null",  # which trials may be pruned depends on timing; this test is about numbering
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for w in (1, 2)
    ]
    for p in procs:
        out, _ = p.communicate(timeout=400)
        assert p.returncode == 0, out[-3000:]
    study = _study(db, "shared")
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    folders = [p.name for w in (1, 2) for p in _sweeps(tmp_path / f"w{w}")[0].iterdir() if p.is_dir()]
    assert sorted(folders) == ["0", "1", "2", "3"]  # each trial ran once, in one worker


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "+hydra.sweeper.params.model.nonsense={type:float,low:0,high:1}",
            "'model.nonsense' is not in the run config",
        ),
        ("hydra.sweeper.params.optimizer.lr.low=0.1", "empty range"),
        ("hydra.sweeper.metric=val/accuracy", "'val/accuracy' is never logged"),
        ("hydra.sweeper.metric=test/mse", "never logged"),
        ("hydra.sweeper.storage=sqlite:///{file}/x.db", "cannot be opened"),
    ],
)
def test_bad_search_input_fails_before_the_first_trial(
    tmp_path, monkeypatch, fake_data_dir, capsys, override, message
):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    argv = [
        "-m",
        "hparams_search=ae",
        *BASE,
        f"paths.log_dir={tmp_path / 'logs'}",
        override.replace("{file}", str(a_file)),
    ]
    with pytest.raises(SystemExit) as exit_info:
        run_inprocess(train_main, argv, monkeypatch, fake_data_dir)
    assert exit_info.value.code != 0
    assert message in capsys.readouterr().err
    sweeps = (
        list((tmp_path / "logs" / "train" / "multiruns").glob("*/*")) if (tmp_path / "logs").exists() else []
    )
    assert not [p for p in sweeps if p.is_dir()]  # no trial folder: nothing trained


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "submitit_local"])
def test_a_search_with_ddp_trials_finishes_every_trial(tmp_path, fake_data_dir, launcher):
    """Every trial a DDP job (2 CPU ranks): each starts its own ranks and completes, in one process (basic) or one
    process per trial (submitit_local); the journal storage on a file holds the study."""
    journal = tmp_path / "study.log"
    extra = [] if launcher == "basic" else ["hydra/launcher=submitit_local"]
    run_subprocess(
        [*SEARCH, f"paths.log_dir={tmp_path}", f"hydra.sweeper.storage=journal:{journal}", "hydra.sweeper.study_name=d",
         "hydra.sweeper.n_trials=2", "hydra.sweeper.pruner=null", "trainer=ddp_sim", "trainer.max_epochs=1",
         "+trainer.limit_train_batches=3", *extra],
        fake_data_dir, timeout=600,
    )  # fmt: skip
    from aelab.callbacks.optuna import open_storage

    study = optuna.load_study(study_name="d", storage=open_storage(f"journal:{journal}"))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for t in study.trials:
        assert t.value == min(t.intermediate_values.values())  # the objective: the best validation value
    sweep = _sweeps(tmp_path)[0]
    assert all((sweep / str(n) / "metrics.json").is_file() for n in (0, 1))


def test_training_needs_neither_optuna_nor_submitit_nor_fcntl(tmp_path, fake_data_dir):
    """A plain run imports no search or launcher package (the GPU machine has none), and aelab imports on a
    system without fcntl (Windows)."""
    code = (
        "import sys; sys.modules['fcntl'] = None; sys.modules['optuna'] = None; sys.modules['submitit'] = None\n"
        "sys.argv = ['aelab-train', 'debug=fdr', 'data.val_size=100', 'data.download=false', 'data.batch_size=50',"
        f" 'trainer=cpu', 'callbacks=minimal', 'hydra.run.dir={tmp_path / 'run'}']\n"
        "import aelab.train; aelab.train.main()\n"
    )
    run_subprocess([sys.executable, "-c", code], fake_data_dir)
    assert (tmp_path / "run" / "metrics.json").is_file()
