"""Runs that multiply: one job = one run folder across ranks, nodes, sweeps and launchers; resume by folder;
SIGTERM mid-epoch; DDP evaluation that counts every image once. Tiny data, a few seconds each, loopback only."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO
from helpers import console_script, read_metrics, run_subprocess, wait_for

# 500 training images / 50 = 10 steps an epoch; no dashboards (speed); fp32, so that "equal to one process"
# is checked to 1e-5 whatever the CPU's native precision
BASE = [
    "trainer.precision=32-true",
    "data.val_size=100",
    "data.batch_size=50",
    "data.download=false",
    "trainer=cpu",
    "trainer.max_epochs=1",
    "callbacks=minimal",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.num_sanity_val_steps=0",
]
TRAIN = [sys.executable, "-m", "aelab.train"]


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC_"))}
    for k in (
        "RANK",
        "LOCAL_RANK",
        "WORLD_SIZE",
        "MASTER_ADDR",
        "MASTER_PORT",
        "NODE_RANK",
        "AELAB_JOB_CONFIG",
    ):
        env.pop(k, None)
    return {**env, "DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir()) if path.exists() else []


def _steps(run_dir: Path) -> int:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)[
        "global_step"
    ]


def _wait(procs: list[subprocess.Popen], timeout: float = 300) -> list[str]:
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=timeout)
        outs.append(out)
        assert p.returncode == 0, out[-4000:]
    return outs


@pytest.fixture(scope="module")
def single(tmp_path_factory, fake_data_dir):
    """The reference: one process, the same global batch."""
    logs = tmp_path_factory.mktemp("single")
    run_subprocess([*TRAIN, *BASE, f"paths.log_dir={logs}", "run_id=one"], fake_data_dir)
    run_dir = logs / "train" / "runs" / "one"
    return read_metrics(run_dir), _steps(run_dir)


@pytest.mark.slow
def test_two_runs_started_together_get_two_folders(tmp_path, fake_data_dir):
    procs = [
        subprocess.Popen(
            [*TRAIN, *BASE, f"paths.log_dir={tmp_path}", f"seed={s}"],
            cwd=REPO,
            env=_env(fake_data_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for s in (1, 2)
    ]
    _wait(procs)
    runs = _dirs(tmp_path / "train" / "runs")
    assert len(runs) == 2
    seeds = sorted(
        int(line.split(":")[1]) for r in runs for line in (r / ".hydra" / "config.yaml").read_text().splitlines()
        if line.startswith("seed:")
    )  # fmt: skip
    assert seeds == [1, 2]
    for r in runs:
        assert (r / "metrics.json").is_file() and [p.name for p in (r / "checkpoints").iterdir()].count(
            "last.ckpt"
        )
        assert not list((r / "checkpoints").glob("last-v*.ckpt"))


@pytest.mark.slow
def test_two_torchrun_nodes_make_one_run_equal_to_one_process(tmp_path, fake_data_dir, single):
    port = _free_port()
    args = [*BASE, f"paths.log_dir={tmp_path}", "trainer.strategy=ddp", "trainer.num_nodes=2"]
    torchrun = [console_script("torchrun"), "--nnodes=2", "--nproc-per-node=1", "--master-addr=127.0.0.1"]
    procs = []
    for node in (0, 1):
        cmd = [*torchrun, f"--master-port={port}", f"--node-rank={node}", "-m", "aelab.train", *args]
        procs.append(
            subprocess.Popen(
                cmd,
                cwd=REPO,
                env=_env(fake_data_dir),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
        if (
            node == 0
        ):  # node 1 starts late, once node 0's agent serves its store: it must still find node 0's folder
            wait_for(lambda: _listening(port), what="node 0's torchrun store")
    _wait(procs)
    runs = _dirs(tmp_path / "train" / "runs")
    assert len(runs) == 1, runs
    metrics, steps = single
    assert _steps(runs[0]) == steps
    assert read_metrics(runs[0]) == pytest.approx(metrics, abs=1e-5)


@pytest.mark.slow
def test_simulated_slurm_job_makes_one_run_equal_to_one_process(tmp_path, fake_data_dir, single):
    port = str(_free_port())
    args = [*BASE, f"paths.log_dir={tmp_path}", "trainer.strategy=ddp", "trainer.devices=2"]
    procs = []
    for rank in (1, 0):
        slurm = {
            "SLURM_NTASKS": "2",
            "SLURM_NTASKS_PER_NODE": "2",
            "SLURM_PROCID": str(rank),
            "SLURM_LOCALID": str(rank),
            "SLURM_NODEID": "0",
            "SLURM_JOB_ID": "4242",
            "SLURM_STEP_ID": "0",
            "SLURM_JOB_NAME": "aelab",
            "SLURM_NODELIST": "127.0.0.1",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
        }
        procs.append(
            subprocess.Popen(
                [*TRAIN, *args],
                cwd=REPO,
                env=_env(fake_data_dir, **slurm),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    _wait(procs)
    runs = _dirs(tmp_path / "train" / "runs")
    assert [r.name for r in runs] == ["slurm-4242.0"]
    metrics, steps = single
    assert _steps(runs[0]) == steps
    assert read_metrics(runs[0]) == pytest.approx(metrics, abs=1e-5)


@pytest.mark.slow
def test_multirun_with_ddp_jobs_runs_each_job_once(tmp_path, fake_data_dir):
    proc = run_subprocess(
        [*TRAIN, "-m", *BASE, f"paths.log_dir={tmp_path}", "trainer=cpu,ddp_sim", "seed=1",
         "+callbacks.ranks._target_=helpers.RecordRanks", "+callbacks.ranks.dir=${paths.output_dir}/ranks"],
        fake_data_dir,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert out.count("Launching 2 jobs locally") == 1
    sweeps = _dirs(tmp_path / "train" / "multiruns")
    assert len(sweeps) == 1 and not (tmp_path / "train" / "runs").exists()
    jobs = _dirs(sweeps[0])
    assert [j.name for j in jobs] == ["0", "1"]
    cpu, ddp = (read_metrics(j) for j in jobs)
    assert ddp == pytest.approx(cpu, abs=1e-5)  # DDP over 2 ranks = one process with the same global batch
    assert sorted(f.name for f in (jobs[0] / "ranks").iterdir()) == ["rank0"]
    ranks = {f.name: f.read_text() for f in (jobs[1] / "ranks").iterdir()}
    assert ranks == {"rank0": "2", "rank1": "2"}  # the second job really ran on 2 ranks
    assert (jobs[1] / "checkpoints" / "last.ckpt").is_file()  # written once, by rank 0, into the job's folder
    assert list((jobs[1] / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "submitit_local"])
def test_a_sweep_of_ddp_jobs_runs_every_job(tmp_path, fake_data_dir, launcher):
    """A seed sweep where every job is DDP (2 CPU ranks): each job starts its own ranks and writes a complete run
    folder (the second job used to talk to the first job's dead ranks)."""
    seeds = "1,2,3" if launcher == "basic" else "1,2"
    extra = [] if launcher == "basic" else ["hydra/launcher=submitit_local"]
    run_subprocess(
        [*TRAIN, "-m", *BASE, f"paths.log_dir={tmp_path}", "trainer=ddp_sim", f"seed={seeds}", *extra,
         "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=1"],
        fake_data_dir, timeout=600,
    )  # fmt: skip
    (sweep,) = _dirs(tmp_path / "train" / "multiruns")
    jobs = [j for j in _dirs(sweep) if not j.name.startswith(".")]
    assert [j.name for j in jobs] == [str(i) for i in range(len(seeds.split(",")))]
    results = [read_metrics(j) for j in jobs]
    assert all("test/mse" in r for r in results) and len({r["test/mse"] for r in results}) == len(jobs)
    assert all((j / "checkpoints" / "last.ckpt").is_file() and not (j / "FAILED").exists() for j in jobs)
    assert all((j / ".hydra" / "config.yaml").is_file() and (j / "train.log").is_file() for j in jobs)


def test_resume_by_run_folder(tmp_path, fake_data_dir):
    run_subprocess([*TRAIN, *BASE, f"paths.log_dir={tmp_path}", "run_id=r"], fake_data_dir)
    run_dir = tmp_path / "train" / "runs" / "r"
    overrides = (run_dir / ".hydra" / "overrides.yaml").read_text()
    start = tmp_path / "start"
    run_subprocess(
        [console_script("aelab-train"), f"resume={run_dir}", "trainer.max_epochs=2",
         "+callbacks.start._target_=helpers.RecordStart", f"+callbacks.start.path={start}"],
        fake_data_dir,
    )  # fmt: skip
    assert start.read_text() == "10"  # it continued from its checkpoint's step, not from 0
    assert _dirs(tmp_path / "train" / "runs") == [run_dir]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    # written when the fit ended, whichever epoch was best: epoch = the epochs trained
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == 20
    assert (run_dir / ".hydra" / "overrides.yaml").read_text() == overrides
    assert "trainer.max_epochs=2" in (run_dir / ".hydra" / "resume_overrides.yaml").read_text()
    assert [p.name for p in _dirs(run_dir / "tensorboard")] == []  # no version_1: one TensorBoard run
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run_dir / "tensorboard"))
    ea.Reload()
    assert [e.step for e in ea.Scalars("val/loss")] == [9, 19]  # both epochs in one run, steps continuing


def test_resume_errors_are_clear(tmp_path, fake_data_dir, monkeypatch):
    """Each refusal of resume= says what is wrong (in-process: that a refusal prints one line is
    test_cli.test_a_refusal_is_one_line's)."""
    from aelab.errors import AelabError
    from aelab.train import main as train_main
    from aelab.train import resume
    from helpers import run_inprocess

    monkeypatch.setenv("DATA_DIR", str(fake_data_dir))
    with pytest.raises(AelabError, match="not an aelab run folder"):
        resume(str(tmp_path), [])
    run_dir = tmp_path / "r"
    run_inprocess(train_main, [*BASE, f"hydra.run.dir={run_dir}"], monkeypatch, fake_data_dir)
    with pytest.raises(AelabError, match="change the model's shape"):
        resume(str(run_dir), ["model.latent_dim=7"])
    (run_dir / "checkpoints" / "last.ckpt").unlink()
    with pytest.raises(AelabError, match="has no checkpoint yet"):
        resume(str(run_dir), [])


def _signal_at_step(cmd: list[str], env: dict, marker: Path, signum: int) -> str:
    """Run ``cmd`` (with the helpers.PauseAtStep callback writing ``marker``), send ``signum`` once the run has
    paused at its step, and return its output."""
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    wait_for(marker.exists, what="the run to reach its step")
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out[-3000:]
    return out


def _pause(step: int, marker: Path) -> list[str]:
    return [
        "+callbacks.pause._target_=helpers.PauseAtStep",
        f"+callbacks.pause.step={step}",
        f"+callbacks.pause.marker={marker}",
    ]


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path, fake_data_dir, single):
    """SIGTERM at step 5 of 10 (mid-epoch, at a step the test chose): last.ckpt holds step 5, and the resumed run
    ends with the uninterrupted run's steps and metrics."""
    args = [*BASE, f"paths.log_dir={tmp_path}", "run_id=cut", *_pause(5, tmp_path / "paused")]
    out = _signal_at_step([*TRAIN, *args], _env(fake_data_dir), tmp_path / "paused", signal.SIGTERM)
    run_dir = tmp_path / "train" / "runs" / "cut"
    assert "Continue this run with: aelab-train resume=" in out
    assert _steps(run_dir) == 5  # saved mid-epoch, at the step where the signal arrived
    assert "stopped by SIGTERM" in (run_dir / "INTERRUPTED").read_text()
    run_subprocess([*TRAIN, f"resume={run_dir}"], fake_data_dir)
    assert not (run_dir / "INTERRUPTED").exists()
    metrics, steps = single
    assert _steps(run_dir) == steps == 10
    assert read_metrics(run_dir) == pytest.approx(metrics, abs=1e-6)


@pytest.mark.slow
def test_sigusr1_under_slurm_saves_requeues_and_the_requeued_job_continues(tmp_path, fake_data_dir, single):
    """SLURM's time-limit warning (SIGUSR1) behaves like SIGTERM: a mid-epoch last.ckpt, INTERRUPTED, the requeue
    asked of scontrol (absent here: said so); the same job started again in the same folder continues by itself
    and ends like an uninterrupted run. Lightning's own hpc_ckpt files are not written."""
    slurm = {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
             "SLURM_NODEID": "0", "SLURM_JOB_ID": "777", "SLURM_STEP_ID": "0", "SLURM_JOB_NAME": "aelab",
             "SLURM_NODELIST": "127.0.0.1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}  # fmt: skip
    cmd = [*TRAIN, *BASE, f"paths.log_dir={tmp_path}", *_pause(5, tmp_path / "paused")]
    env = {**_env(fake_data_dir, **slurm), "PATH": "/usr/bin:/bin"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    out = _signal_at_step(cmd, env, tmp_path / "paused", signal.SIGUSR1)
    run_dir = tmp_path / "train" / "runs" / "slurm-777.0"
    assert "scontrol is not on PATH: SLURM job 777 was not requeued" in out
    assert _steps(run_dir) == 5 and "stopped by SIGUSR1" in (run_dir / "INTERRUPTED").read_text()
    requeued = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert requeued.returncode == 0, requeued.stderr[-3000:]
    assert "continuing the interrupted run" in requeued.stdout + requeued.stderr
    metrics, steps = single
    assert _steps(run_dir) == steps and read_metrics(run_dir) == pytest.approx(metrics, abs=1e-6)
    assert not list(run_dir.rglob("hpc_ckpt_*.ckpt"))


@pytest.mark.slow
def test_ddp_evaluation_counts_every_image_once(tmp_path, fake_data_dir):
    # 200 test and 100 validation images do not divide by 3 ranks
    run_subprocess(
        [*TRAIN, *BASE, "data.batch_size=48", f"paths.log_dir={tmp_path}", "run_id=r"], fake_data_dir
    )
    ckpt = tmp_path / "train" / "runs" / "r" / "checkpoints" / "last.ckpt"
    results = {}
    for name, trainer in (("one", ["trainer=cpu"]), ("three", ["trainer=ddp_sim", "trainer.devices=3"])):
        out = tmp_path / name
        run_subprocess(
            [
                sys.executable, "-m", "aelab.eval", f"ckpt_path={ckpt}", *trainer, "suite.enabled=false",
                f"hydra.run.dir={out}", "trainer.enable_progress_bar=false",
            ],
            fake_data_dir,
        )  # fmt: skip
        results[name] = json.loads((out / "metrics.json").read_text())
    assert results["three"] == pytest.approx(results["one"], rel=1e-6)  # summation order only


def test_evaluation_shards_have_no_padding(fake_data_dir):
    """The evaluation loaders (Lightning's UnrepeatedDistributedSampler) give every image once across 3 ranks."""
    from types import SimpleNamespace

    from aelab.data import MNISTDataModule

    seen = []
    for rank in range(3):
        dm = MNISTDataModule(str(fake_data_dir), val_size=100, batch_size=48, download=False)
        dm.trainer = SimpleNamespace(
            global_rank=rank, world_size=3, strategy=SimpleNamespace(root_device=torch.device("cpu"))
        )
        dm.setup()
        seen.append(torch.cat([y for _, y in dm.val_dataloader()]))
    assert [len(s) for s in seen] == [34, 33, 33] and sum(len(s) for s in seen) == 100
    assert torch.equal(torch.cat(seen).sort().values, dm.split_tensors("val")[1].sort().values)
