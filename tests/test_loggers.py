"""MLflow and W&B beside TensorBoard: the same metrics, images and config reach each logger in its own way, read
back with that logger's own client; a missing extra or an unreachable server stops the run before training."""

from __future__ import annotations

import json
import socket
import warnings
from pathlib import Path

import pytest

from aelab.errors import ConfigError
from aelab.train import train
from helpers import read_metrics

FEW = ["callbacks.latent_histogram=null", "callbacks.projector=null", "callbacks.latent_scatter=null",
       "callbacks.reconstructions.num_images=8", "trainer.max_epochs=1"]  # fmt: skip


def test_mlflow_run_reads_back_with_mlflows_client(make_cfg, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from PIL import Image

    cfg = make_cfg(["logger=mlflow", "model=vae", *FEW])  # the tests' paths.log_dir is the run folder
    train(cfg)
    uri = f"sqlite:///{tmp_path / 'run' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "aelab-train"]
    (run,) = client.search_runs([experiment.experiment_id])
    metrics = read_metrics(tmp_path / "run")
    assert run.data.metrics["test/mse"] == pytest.approx(metrics["test/mse"])
    assert run.data.params["model/class"] == "VAE"  # the hparams
    names = [a.path for a in client.list_artifacts(run.info.run_id, "reconstructions")]
    assert names, "no reconstruction images"
    png = Path(client.download_artifacts(run.info.run_id, names[0], str(tmp_path / "dl")))
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size[0] > 4 * 28
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "config.yaml",
        "samples",
        "interpolation",
    }


def test_wandb_offline_run_has_metrics_and_images(make_cfg, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = make_cfg(["logger=wandb", *FEW])
    train(cfg)
    (run_dir,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    # the run's record (what `wandb sync` uploads) holds the final test metrics with the values metrics.json has
    (record,) = run_dir.glob("run-*.wandb")
    metrics = read_metrics(tmp_path / "run")
    data = _wandb_record(record, [k for k in metrics if k != "best_ckpt"])
    assert metrics.pop("best_ckpt").startswith(
        "checkpoints/epoch_"
    )  # a path beside the metrics, not one of them
    for key, value in metrics.items():
        assert key.encode() in data and json.dumps(value).encode() in data, key
    assert list((run_dir / "files" / "media" / "images").glob("reconstructions_*.png"))


def _wandb_record(record: Path, keys: list[str], timeout_s: float = 60.0) -> bytes:
    """The bytes of a W&B run's record once its writer has flushed: W&B's service process writes the record
    after ``finish()`` returns (a CI run read only the 7-byte header), so stop the service and wait, bounded."""
    import time

    import wandb

    wandb.teardown()  # ends the service process, which flushes and closes the record
    deadline = time.monotonic() + timeout_s
    while True:
        data = record.read_bytes()
        if all(k.encode() in data for k in keys) or time.monotonic() > deadline:
            return data
        time.sleep(0.5)


def test_a_logger_that_cannot_show_images_says_so_once(make_cfg, recwarn):
    from aelab import media

    media._SAID.clear()
    train(make_cfg(["logger=csv", *FEW, "trainer.max_epochs=2"]))
    said = [str(w.message) for w in recwarn if "csv logger cannot show images" in str(w.message)]
    assert len(said) == 1  # two epochs of reconstructions, said once


def test_a_missing_extra_stops_before_training(make_cfg, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"needs the mlflow extra: pip install -e '\.\[mlflow\]'"):
        train(make_cfg(["logger=mlflow"]))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_an_unreachable_tracking_server_stops_before_training(make_cfg, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ConfigError, match=f"tracking_uri=http://127.0.0.1:{port} does not answer"):
            train(make_cfg(["logger=mlflow", f"logger.mlflow.tracking_uri=http://127.0.0.1:{port}"]))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_logger_of_your_own_shows_media_through_its_hook():
    """A logger that defines ``log_aelab_<item>`` gets every item, with no edit inside aelab."""
    import torch
    from pytorch_lightning.loggers import CSVLogger

    from aelab.media import Media

    class Mine(CSVLogger):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.got = []

        def log_aelab_image(self, tag, image, step):
            self.got.append(("image", tag, tuple(image.shape), step))

        def log_aelab_text(self, tag, text, step):
            self.got.append(("text", tag, text, step))

    import tempfile

    mine = Mine(tempfile.mkdtemp())
    media = Media([mine])
    media.image("recon", torch.rand(3, 8, 8), 5)
    media.text("config", "a: 1", 0)
    assert mine.got == [("image", "recon", (3, 8, 8), 5), ("text", "config", "a: 1", 0)]
