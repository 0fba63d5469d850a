"""TensorBoard output of real (tiny) runs, read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from aelab.train import train


def events(run_dir: Path) -> EventAccumulator:
    guidance = {"scalars": 0, "images": 0, "tensors": 0, "histograms": 0}
    ea = EventAccumulator(str(run_dir / "tensorboard"), size_guidance=guidance)
    ea.Reload()
    return ea


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fake_data_dir):
    """One tiny run per model kind: AE, DAE, and a 2-D VAE (for the scatter plot)."""
    from conftest import SMALL, compose_cfg

    out = {}
    for name, overrides in {
        "ae": ["model=ae"],
        "dae": ["model=dae"],
        "vae": ["model=vae", "model.latent_dim=2"],
    }.items():
        run_dir = tmp_path_factory.mktemp(name)
        cfg = compose_cfg("train", [*SMALL, *overrides], run_dir, fake_data_dir)
        train(cfg)
        out[name] = run_dir
    return out


def test_scalars(runs):
    for run_dir in runs.values():
        tags = set(events(run_dir).Tags()["scalars"])
        assert {"train/loss", "val/loss", "val/mse", "val/psnr", "test/mse", "test/psnr", "test/loss"} <= tags
        assert {"train/throughput", "train/epoch_time"} <= tags
    dae = set(events(runs["dae"]).Tags()["scalars"])
    assert {
        "val/noisy_psnr",
        "test/noisy_psnr",
    } <= dae  # psnr is the denoised image's, noisy_psnr its baseline
    vae = set(events(runs["vae"]).Tags()["scalars"])
    assert {"train/elbo", "val/elbo", "test/elbo", "val/kl", "test/recon"} <= vae


def test_val_loss_once_per_epoch(runs):
    assert len(events(runs["ae"]).Scalars("val/loss")) == 2  # max_epochs=2, no sanity-check entry


def test_images(runs):
    ae = events(runs["ae"])
    assert ae.Tags()["images"] == ["reconstructions"]  # denoising/samples do not apply to a plain AE
    img = ae.Images("reconstructions")
    assert len(img) == 2 and img[0].height > 8 * 28 and img[0].width > 8 * 28  # 8x8: 4 pairs of rows of 8
    dae = events(runs["dae"]).Tags()["images"]
    assert {"reconstructions", "denoising"} <= set(dae)
    assert events(runs["dae"]).Images("denoising")[0].height > 3 * 28  # clean / noisy / denoised rows
    vae = set(events(runs["vae"]).Tags()["images"])
    assert {"reconstructions", "samples", "interpolation"} <= vae


def test_latent_views(runs):
    vae = events(runs["vae"])
    assert {"latent/codes", "latent/std_per_dim"} <= set(vae.Tags()["histograms"])
    assert "latent/scatter" in vae.Tags()["images"]  # latent_dim == 2: the matplotlib figure
    assert "latent/scatter" not in events(runs["ae"]).Tags()["images"]  # 32-d: no scatter
    projector = (runs["ae"] / "tensorboard" / "projector_config.pbtxt").read_text()
    assert "metadata.tsv" in projector and "sprite.png" in projector
    meta = next((runs["ae"] / "tensorboard").glob("*/latent/metadata.tsv")).read_text().split()
    assert len(meta) == 50 and set(meta) <= {str(d) for d in range(10)}


def test_config_text(runs):
    ea = events(runs["ae"])
    assert "config/text_summary" in ea.Tags()["tensors"]
    text = ea.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "aelab.models.Autoencoder" in text and "batch_size: 50" in text


def test_hparams_entry_carries_the_test_metrics(runs):
    ea = events(runs["vae"])
    content = ea.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert {"test/mse", "test/elbo"} <= metric_tags
    assert "hp_metric" not in metric_tags and "hp_metric" not in ea.Tags()["scalars"]
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    assert start.hparams["model/latent_dim"].number_value == 2
    assert start.hparams["model/class"].string_value == "VAE"
    assert start.hparams["optimizer/lr"].number_value == pytest.approx(1e-3)
    assert start.hparams["data/batch_size"].number_value == 50
    assert start.hparams["trainer/precision"].string_value in ("bf16-mixed", "32-true")
    names = set(start.hparams)
    assert not [n for n in names if "_target_" in n or "_partial_" in n]  # only real hyperparameters
    assert not [n for n in names if "dir" in n or "path" in n]  # no paths
    assert not names & {
        "data/num_workers",
        "data/pin_memory",
        "data/download",
        "data/val_size",
        "data/split_seed",
    }


def test_hparams_leave_out_seeds_checks_and_derived_sizes(runs):
    ea = events(runs["vae"])
    content = ea.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    names = set(start.hparams)
    assert "model/latent_dim" in names and "model/kl_coeff" in names
    assert not names & {
        "model/eval_seed",
        "model/decoder/latent_dim",
        "model/nan_check_every",
        "model/compile",
    }
