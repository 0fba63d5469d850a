"""LightningModules on synthetic data: shapes, losses, learning, sampling, errors."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from aelab.models import VAE, Autoencoder, DenoisingAutoencoder
from aelab.models.components import MLPDecoder, MLPEncoder
from helpers import batch

MODELS = ["ae", "dae", "conv_ae", "vae", "conv_vae"]


@pytest.mark.parametrize("name", MODELS)
def test_shapes_and_ranges(make_cfg, name):
    model = instantiate(make_cfg([f"model={name}", "model.latent_dim=6"]).model)
    x, _ = batch(8)
    assert model.encode(x).shape == (8, 6)
    out = model.decode(torch.randn(8, 6))
    assert out.shape == (8, 1, 28, 28) and out.min() >= 0 and out.max() <= 1
    assert model(x).shape == x.shape
    assert model.latent_dim == 6


@pytest.mark.parametrize("name", MODELS)
def test_loss_is_finite_and_decreases(make_cfg, name):
    model = instantiate(make_cfg([f"model={name}", "model.latent_dim=8"]).model)
    optimizer = model.configure_optimizers()
    x, y = batch(64)
    losses = []
    model.train()
    for step in range(30):
        loss = model.training_step((x, y), step)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses


def test_vae_sample_shape_range_and_seed(make_cfg):
    model = instantiate(make_cfg(["model=vae", "model.latent_dim=4"]).model)
    s = model.sample(10, generator=torch.Generator().manual_seed(1))
    assert s.shape == (10, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    assert torch.equal(s, model.sample(10, generator=torch.Generator().manual_seed(1)))


def test_vae_elbo_terms_and_units():
    torch.manual_seed(0)
    model = VAE(
        MLPEncoder(out_dim=8, hidden_dims=[32]), MLPDecoder(latent_dim=4, hidden_dims=[32]), latent_dim=4
    )
    x, _ = batch(16)
    loss, x_hat, terms = model.loss_terms(x, x, "val")
    # recon is a per-image sum over 784 pixels, in nats: an untrained model sits near 784·log 2 ≈ 543
    assert 300 < terms["recon"].item() < 800
    assert terms["kl"].item() >= 0
    torch.testing.assert_close(terms["elbo"], terms["recon"] + terms["kl"])
    torch.testing.assert_close(loss, terms["elbo"])  # β = 1 outside training
    assert x_hat.shape == x.shape


def test_vae_kl_warmup():
    """β ramps linearly from 0 to kl_coeff over kl_warmup_steps (the middle too), and the training loss uses it."""
    from types import SimpleNamespace

    model = VAE(
        MLPEncoder(out_dim=8), MLPDecoder(latent_dim=4), latent_dim=4, kl_coeff=0.5, kl_warmup_steps=100
    )
    model.train()
    assert model.beta() == 0.0
    for step, beta in ((25, 0.125), (50, 0.25), (100, 0.5), (400, 0.5)):
        model._trainer = SimpleNamespace(global_step=step)
        assert model.beta() == pytest.approx(beta)
    x, _ = batch(8)
    loss, _, terms = model.loss_terms(x, x, "train", torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(
        (terms["recon"] + 0.5 * terms["kl"]).item(), rel=1e-6
    )  # step 400: β = 0.5
    model._trainer = SimpleNamespace(global_step=50)
    loss, _, terms = model.loss_terms(x, x, "train", torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx((terms["recon"] + 0.25 * terms["kl"]).item(), rel=1e-6)
    model._trainer = None
    model.eval()
    assert model.beta() == 0.5


def test_vae_dynamic_binarization_is_seeded_in_eval():
    model = VAE(MLPEncoder(out_dim=8), MLPDecoder(latent_dim=4), latent_dim=4, binarize=True)
    x, _ = batch(4)
    a, _ = model.model_input(x, model.eval_generator("val", 0, x.device))
    b, _ = model.model_input(x, model.eval_generator("val", 0, x.device))
    assert torch.equal(a, b) and set(a.unique().tolist()) <= {0.0, 1.0}
    c, _ = model.model_input(x, model.eval_generator("train", 0, x.device))
    d, _ = model.model_input(x, model.eval_generator("train", 0, x.device))
    assert not torch.equal(c, d)


def test_vae_gaussian_likelihood_learned_sigma():
    model = VAE(
        MLPEncoder(out_dim=8), MLPDecoder(latent_dim=4), latent_dim=4, likelihood="gaussian", sigma=None
    )
    assert model.log_sigma is not None
    x, _ = batch(4)
    loss, _, _ = model.loss_terms(x, x, "train")
    loss.backward()
    assert model.log_sigma.grad is not None


def test_vae_rejects_wrong_encoder_width():
    with pytest.raises(ValueError, match="out_dim=8"):
        VAE(MLPEncoder(out_dim=4), MLPDecoder(latent_dim=4), latent_dim=4)


def test_ae_rejects_mismatched_parts():
    with pytest.raises(ValueError, match="latent_dim"):
        Autoencoder(MLPEncoder(out_dim=4), MLPDecoder(latent_dim=5), latent_dim=4)
    with pytest.raises(ValueError, match="'bce' or 'mse'"):
        Autoencoder(MLPEncoder(out_dim=4), MLPDecoder(latent_dim=4), loss="l1")


def test_dae_corrupts_input_only_and_seeds_eval(make_cfg):
    model: DenoisingAutoencoder = instantiate(make_cfg(["model=dae"]).model)
    x, _ = batch(4)
    noisy, target = model.model_input(x, model.eval_generator("val", 3, x.device))
    assert torch.equal(target, x) and not torch.equal(noisy, x)
    again, _ = model.model_input(x, model.eval_generator("val", 3, x.device))
    assert torch.equal(noisy, again)
    t1, _ = model.model_input(x, model.eval_generator("train", 0, x.device))
    t2, _ = model.model_input(x, model.eval_generator("train", 0, x.device))
    assert not torch.equal(t1, t2)


def test_nan_loss_raises_a_clear_error():
    """The divergence guard (a callback aelab-train always adds) stops at the first NaN loss with nan_check_every=1;
    a finite loss passes."""
    from types import SimpleNamespace

    from aelab.callbacks import DivergenceGuard

    model = Autoencoder(MLPEncoder(out_dim=4), MLPDecoder(latent_dim=4), loss="mse", nan_check_every=1)
    trainer = SimpleNamespace(global_step=3, current_epoch=0, world_size=1, sanity_checking=False)
    guard = DivergenceGuard()
    guard.on_before_backward(
        trainer, model, model.training_step((torch.rand(2, 1, 28, 28), torch.zeros(2)), 0)
    )
    x = torch.full((2, 1, 28, 28), float("nan"))
    with pytest.raises(FloatingPointError, match="learning rate.*|by step 3"):
        guard.on_before_backward(trainer, model, model.training_step((x, torch.zeros(2)), 0))


def test_the_rng_state_travels_in_checkpoints():
    """RNGState (a callback aelab-train always adds) saves the global RNG into a checkpoint and restores it, so
    a resumed run draws the uninterrupted run's noise; a checkpoint without it leaves the RNG alone."""
    from types import SimpleNamespace

    from aelab.callbacks import RNGState

    module, ckpt = SimpleNamespace(device=torch.device("cpu")), {}
    RNGState().on_save_checkpoint(None, module, ckpt)
    first = torch.rand(5)
    RNGState().on_load_checkpoint(None, module, ckpt)
    assert torch.equal(torch.rand(5), first)
    RNGState().on_load_checkpoint(None, module, {})
    assert not torch.equal(torch.rand(5), first)


def test_the_regularizer_hook_adds_its_weighted_penalty_and_logs_its_value():
    """A subclass's regularizer(z, x_hat) → {name: (weight, value)}: the loss is the reconstruction loss plus
    weight · value (computed here), the term holds the value, and loss_terms unpacks like the old tuple."""

    class CodeNorm(Autoencoder):
        extra_terms = ("code_norm",)

        def regularizer(self, z, x_hat):
            return {"code_norm": (0.5, z.pow(2).mean())}

    torch.manual_seed(0)
    model = CodeNorm(
        MLPEncoder(out_dim=4, hidden_dims=[8]), MLPDecoder(latent_dim=4, hidden_dims=[8]), loss="mse"
    )
    x = torch.rand(6, 1, 28, 28)
    out = model.loss_terms(x, x, "val")
    z = model.encoder(x)
    recon = (torch.sigmoid(model.decoder(z)) - x).pow(2).mean()
    assert out.loss.item() == pytest.approx((recon + 0.5 * z.pow(2).mean()).item(), rel=1e-6)
    assert out.terms["code_norm"].item() == pytest.approx(z.pow(2).mean().item(), rel=1e-6)
    loss, x_hat, terms = out
    assert loss is out.loss and x_hat is out.reconstruction and terms is out.terms
