"""aelab.module: the one LightningModule. Its seeded evaluation, its split metrics against values computed here, the
divergence refusals, the codec tables in checkpoints, and every model reloaded as a plain nn.Module from a
checkpoint aelab-train wrote."""

from __future__ import annotations

import inspect
import re
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch

import aelab
from aelab.checkpoint import load_model, net_state, read_checkpoint
from aelab.data.base import ImageDataModule, TensorDataModule
from aelab.errors import AelabError, ConfigError, DivergenceError
from aelab.models import VQVAE, Autoencoder
from aelab.models.components import MLPDecoder, MLPEncoder, VectorQuantizer
from aelab.models.components.quantizer import perplexity
from aelab.module import AutoencoderModule
from conftest import REPO, compose_cfg
from helpers import batch

EVERY_MODEL = ["ae", "dae", "conv_ae", "vae", "conv_vae", "iwae", "vqvae", "sparse_ae", "rae", "wae", "codec",
               "codec_hyperprior", "codec_scale_hyperprior"]  # fmt: skip
TINY = {
    "vqvae": [
        "model.encoder.channels=[8,16]",
        "model.decoder.channels=[16,8]",
        "model.quantizer.num_codes=16",
    ],
    "codec": ["model.hidden_channels=8", "model.latent_channels=4"],
    "codec_hyperprior": ["model.hidden_channels=8", "model.latent_channels=4", "model.hyper_channels=4"],
    "codec_scale_hyperprior": [
        "model.hidden_channels=8",
        "model.latent_channels=4",
        "model.hyper_channels=4",
    ],
}


def test_exactly_one_lightning_module_in_aelab():
    import importlib
    import pkgutil

    found = set()
    for info in pkgutil.walk_packages(aelab.__path__, "aelab."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, pl.LightningModule) and obj.__module__.startswith("aelab"):
                found.add(f"{obj.__module__}.{obj.__qualname__}")
    assert found == {"aelab.module.AutoencoderModule"}


def test_evaluation_draws_are_seeded_by_stage_rank_and_batch():
    module = AutoencoderModule(Autoencoder(MLPEncoder(out_dim=4), MLPDecoder(latent_dim=4)), eval_seed=7)
    draw = lambda stage, i: torch.rand(3, generator=module.eval_generator(stage, i, torch.device("cpu")))  # noqa: E731
    assert torch.equal(draw("val", 2), draw("val", 2))
    assert not torch.equal(draw("val", 2), draw("val", 3)) and not torch.equal(
        draw("val", 2), draw("test", 2)
    )


def _run_eval(module: AutoencoderModule, batches, stage: str = "test", datamodule=None) -> dict[str, float]:
    """The module's setup (reading ``datamodule``'s declared metrics), evaluation steps and epoch end on
    ``batches``, with ``self.log`` captured."""
    logged: dict[str, float] = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    state = dict(world_size=1, global_rank=0, sanity_checking=False, global_step=0, current_epoch=0)
    module._trainer = SimpleNamespace(**state, datamodule=datamodule)
    module.setup(stage)
    module.eval()
    with torch.no_grad():
        for i, x in enumerate(batches):
            module.test_step((x, torch.zeros(len(x))), i) if stage == "test" else module.validation_step(
                (x, None), i
            )
        module.on_test_epoch_end() if stage == "test" else module.on_validation_epoch_end()
    return logged


def test_split_metrics_are_the_whole_splits_values():
    """Over two batches of different sizes: the loss is the example-weighted mean, the PSNR the mean of per-image
    PSNRs, the codebook perplexity that of the split's index counts (all computed here)."""
    torch.manual_seed(0)
    net = VQVAE(MLPEncoder(out_dim=4 * 3, hidden_dims=[16]), MLPDecoder(latent_dim=12, hidden_dims=[16]),
                VectorQuantizer(num_codes=8, code_dim=3)).eval()  # fmt: skip
    module = AutoencoderModule(net)
    xs = [batch(6)[0], batch(2, seed=1)[0]]
    logged = _run_eval(module, xs, datamodule=ImageDataModule())
    with torch.no_grad():
        outs = [net(x) for x in xs]
        loss = sum(o.loss.item() * len(x) for o, x in zip(outs, xs, strict=True)) / 8
        x_all, x_hat = torch.cat(xs), torch.cat([o.x_hat for o in outs])
        mse_i = (x_hat - x_all).pow(2).flatten(1).mean(1)
        counts = torch.bincount(torch.cat([o.stats["vq/perplexity"] for o in outs]), minlength=8)
    assert logged["test/loss"] == pytest.approx(loss, rel=1e-5)
    assert logged["test/mse"] == pytest.approx(mse_i.mean().item(), rel=1e-5)
    assert logged["test/psnr"] == pytest.approx((-10 * torch.log10(mse_i)).mean().item(), rel=1e-5)
    assert logged["test/vq/perplexity"] == pytest.approx(perplexity(counts).item(), rel=1e-5)
    assert logged["test/commitment"] > 0
    # reset after logging: the same numbers, not twice the counts
    again = _run_eval(module, xs, datamodule=ImageDataModule())
    assert again["test/vq/perplexity"] == pytest.approx(logged["test/vq/perplexity"], rel=1e-6)


def test_the_data_declares_what_scores_the_reconstruction():
    """The data, not the model's output kind, says which metrics score a reconstruction: table rows get the squared
    error alone (even from a model whose values are in [0, 1]), images the squared error and PSNR; a datamodule that
    declares none (a user's own) gets the squared error. The module never reads ``ModelOutput.output``."""
    for output in ("identity", "sigmoid"):
        net = Autoencoder(MLPEncoder(out_dim=2, in_shape=(5,)), MLPDecoder(latent_dim=2, out_shape=(5,)),
                          loss="mse", output=output)  # fmt: skip
        table = _run_eval(AutoencoderModule(net), [torch.rand(4, 5)], datamodule=TensorDataModule())
        assert "test/mse" in table and "test/psnr" not in table
    own = _run_eval(AutoencoderModule(net), [torch.rand(4, 5)], datamodule=pl.LightningDataModule())
    assert {"test/loss", "test/mse"} <= own.keys() and "test/psnr" not in own
    source = inspect.getsource(aelab.module)
    assert not re.search(r"\.output\b|sigmoid|clamp|identity", source)


def test_the_data_metrics_follow_the_data_the_module_is_set_up_with():
    """A module set up with image data scores PSNR; set up again with table data it drops it (one set of data
    metrics at a time, a clone per split)."""
    module = AutoencoderModule(Autoencoder(MLPEncoder(out_dim=4), MLPDecoder(latent_dim=4), loss="mse"))
    x = batch(4)[0]
    assert "test/psnr" in _run_eval(module, [x], datamodule=ImageDataModule())
    assert module.metrics["val"]["psnr"] is not module.metrics["test"]["psnr"]
    logged = _run_eval(module, [x], datamodule=TensorDataModule())
    assert "test/mse" in logged and "test/psnr" not in logged and "psnr" not in module.metrics["val"]


def test_the_pca_starts_clamped_pixels_get_psnr():
    """A model built with init=pca outputs pixels clamped to [0, 1]: on images its PSNR is logged like any model's,
    and listed among its metric names (the photo patches' report rows read it)."""
    net = Autoencoder(MLPEncoder(out_dim=4), MLPDecoder(latent_dim=4), loss="mse", init="pca").eval()
    module = AutoencoderModule(net)
    x = batch(6)[0]
    logged = _run_eval(module, [x], datamodule=ImageDataModule())
    with torch.no_grad():
        mse_i = (net(x).x_hat - x).pow(2).flatten(1).mean(1)
    assert logged["test/psnr"] == pytest.approx((-10 * torch.log10(mse_i)).mean().item(), rel=1e-5)
    assert "psnr" in module.metric_names()


def test_metric_names_come_from_the_data_and_the_model():
    """The ``val/...`` names a search may ask for: ``loss``, the data's declared metrics, the model's whole-split
    metrics and its terms; a model that declares ``term_names()`` is never run on random data."""
    from aelab.data.interactions import InteractionDataModule

    vq = VQVAE(MLPEncoder(out_dim=4 * 3, hidden_dims=[16]), MLPDecoder(latent_dim=12, hidden_dims=[16]),
               VectorQuantizer(num_codes=8, code_dim=3))  # fmt: skip
    module = AutoencoderModule(vq)
    assert module.metric_names() == sorted({"loss", "mse", *vq.split_metrics()})
    images = module.metric_names((1, 28, 28), datamodule=ImageDataModule())
    assert {"loss", "mse", "psnr", "vq/perplexity", "commitment"} <= set(images)
    assert "psnr" not in module.metric_names(datamodule=TensorDataModule())
    ranking = module.metric_names(datamodule=InteractionDataModule())
    assert "recommend/ndcg@100" in ranking and "mse" not in ranking

    class Declared(Autoencoder):
        def term_names(self):
            return ["recon"]

        def forward(self, *args, **kwargs):
            raise AssertionError("metric_names ran a forward pass")

    declared = AutoencoderModule(Declared(MLPEncoder(out_dim=4), MLPDecoder(latent_dim=4), loss="mse"))
    names = declared.metric_names((1, 28, 28), datamodule=ImageDataModule())
    assert names == ["loss", "mse", "psnr", "recon"]


def test_a_nan_loss_ends_with_a_one_line_refusal():
    """A NaN validation loss, and a NaN training loss seen by the divergence guard, raise DivergenceError: an aelab
    refusal (one line on the command line) naming the step and the fixes."""
    from aelab.callbacks import DivergenceGuard

    module = AutoencoderModule(Autoencoder(MLPEncoder(out_dim=4), MLPDecoder(latent_dim=4), loss="mse"))
    with pytest.raises(DivergenceError, match="training diverged.*learning rate") as err:
        _run_eval(module, [torch.full((2, 1, 28, 28), float("nan"))], stage="val")
    assert isinstance(err.value, AelabError)
    trainer = SimpleNamespace(global_step=3, current_epoch=0, world_size=1)
    guard = DivergenceGuard(check_every=1)
    guard.on_before_backward(trainer, module, module.net(torch.rand(2, 1, 28, 28)).loss)
    with pytest.raises(DivergenceError, match="by step 3"):
        guard.on_before_backward(trainer, module, module.net(torch.full((2, 1, 28, 28), float("nan"))).loss)


def test_the_rng_state_travels_in_checkpoints():
    """RNGState (a callback aelab-train always adds) saves the global RNG into a checkpoint and restores it, so a
    resumed run draws the uninterrupted run's noise; a checkpoint without it leaves the RNG alone."""
    from aelab.callbacks import RNGState

    module, ckpt = SimpleNamespace(device=torch.device("cpu")), {}
    RNGState().on_save_checkpoint(None, module, ckpt)
    first = torch.rand(5)
    RNGState().on_load_checkpoint(None, module, ckpt)
    assert torch.equal(torch.rand(5), first)
    RNGState().on_load_checkpoint(None, module, {})
    assert not torch.equal(torch.rand(5), first)


def test_an_optimizer_is_required_and_one_cycle_takes_the_runs_length():
    import functools

    net = Autoencoder(MLPEncoder(out_dim=4), MLPDecoder(latent_dim=4))
    with pytest.raises(ConfigError, match="optimizer=adam"):
        AutoencoderModule(net).configure_optimizers()
    module = AutoencoderModule(
        net, functools.partial(torch.optim.Adam, lr=1e-3),
        functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=1e-3, total_steps=None), "step",
    )  # fmt: skip
    module._trainer = SimpleNamespace(estimated_stepping_batches=123)
    config = module.configure_optimizers()
    assert (
        config["lr_scheduler"]["scheduler"].total_steps == 123
        and config["lr_scheduler"]["interval"] == "step"
    )


@pytest.mark.parametrize("name", EVERY_MODEL)
def test_every_model_reloads_as_a_plain_module_from_an_aelab_train_checkpoint(tmp_path, fake_data_dir, name):
    """aelab-train (in process) writes a checkpoint; ``load_model`` rebuilds the plain nn.Module, whose outputs are
    the LightningModule's, and the state under ``net.`` loads into a freshly built model with strict keys."""
    from hydra.utils import instantiate

    from aelab.train import train
    from conftest import SMALL

    overrides = [*SMALL, f"model={name}", *TINY.get(name, []), "callbacks=minimal", "trainer.max_epochs=1",
                 "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "test=false", "logger=none"]  # fmt: skip
    cfg = compose_cfg(
        "train", [o for o in overrides if not o.startswith("callbacks.")], tmp_path, fake_data_dir
    )
    _, objects = train(cfg)
    ckpt_path = tmp_path / "checkpoints" / "last.ckpt"
    model, run_cfg, ckpt = load_model(ckpt_path)
    assert not isinstance(model, pl.LightningModule) and isinstance(model, torch.nn.Module)
    fresh = instantiate(run_cfg.model)
    fresh.load_state_dict(net_state(read_checkpoint(ckpt_path)))
    x, _ = batch(4)
    trained = objects["module"].net.eval()
    with torch.no_grad():
        gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
        want = trained(x, generator=gen()).loss
        assert model(x, generator=gen()).loss.item() == pytest.approx(want.item(), rel=1e-5)
        assert fresh.eval()(x, generator=gen()).loss.item() == pytest.approx(want.item(), rel=1e-5)


def test_a_checkpoint_of_the_old_format_is_refused_with_what_to_do(tmp_path):
    from aelab.checkpoint import CONFIG_KEY

    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": {"encoder.net.0.weight": torch.zeros(1)}, CONFIG_KEY: {"model": {}}}, path)
    from aelab.errors import UntrustedFileError

    with pytest.raises(UntrustedFileError, match="older aelab.*format 1.*retrain it"):
        read_checkpoint(path)
    assert REPO.exists()
