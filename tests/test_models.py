"""aelab.models: plain nn.Modules. Shapes, each objective against a value computed here (a hand calculation or
torch.distributions), and every model trained in a plain PyTorch loop with no Lightning."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

import aelab.models
from aelab.models import (
    IWAE,
    RAE,
    VAE,
    VQVAE,
    WAE,
    Autoencoder,
    DenoisingAutoencoder,
    ModelOutput,
    SparseAutoencoder,
)
from aelab.models.capabilities import Denoising
from aelab.models.components import (
    ConvDecoder,
    ConvEncoder,
    GaussianNoise,
    Masking,
    MLPDecoder,
    MLPEncoder,
    VectorQuantizer,
)
from aelab.models.components.quantizer import perplexity
from aelab.models.objectives import (
    gaussian_kl,
    importance_weighted_bound,
    imq_mmd,
    kl_weight,
    log_normal,
    log_standard_normal,
)
from conftest import REPO
from helpers import batch

IMAGE_MODELS = ["ae", "dae", "conv_ae", "vae", "conv_vae"]
EVERY_MODEL = [*IMAGE_MODELS, "iwae", "vqvae", "sparse_ae", "rae", "wae", "codec", "codec_hyperprior"]
SMALL = {
    "vqvae": [
        "model.encoder.channels=[16,32]",
        "model.decoder.channels=[32,16]",
        "model.quantizer.num_codes=64",
    ],
    "codec": ["model.hidden_channels=16", "model.latent_channels=8"],
    "codec_hyperprior": ["model.hidden_channels=16", "model.latent_channels=8", "model.hyper_channels=8"],
}


def _model(make_cfg, name: str, *overrides: str):
    return instantiate(make_cfg([f"model={name}", *SMALL.get(name, []), *overrides]).model)


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_shapes_and_ranges(make_cfg, name):
    model = _model(make_cfg, name, "model.latent_dim=6")
    x, _ = batch(8)
    assert model.encode(x).shape == (8, 6)
    out = model.decode(torch.randn(8, 6))
    assert out.shape == (8, 1, 28, 28) and out.min() >= 0 and out.max() <= 1
    assert model.reconstruct(x).shape == x.shape and model.latent_dim == 6
    result = model(x)
    assert isinstance(result, ModelOutput) and result.loss.ndim == 0


@pytest.mark.parametrize("name", EVERY_MODEL)
def test_every_model_trains_in_a_plain_pytorch_loop(make_cfg, name):
    """Ten lines of plain PyTorch, no Lightning: the model's own loss on a fixed batch, evaluated in eval mode with
    a fixed generator, falls below 80% of the same model's before training (a baseline computed here)."""
    model = _model(make_cfg, name)
    x, _ = batch(32)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            return model(x, generator=torch.Generator().manual_seed(1)).loss.item()

    before = eval_loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(40):
        loss = model(x, step=step).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss)
    assert eval_loss() < 0.8 * before


def test_the_models_import_no_lightning():
    """``import aelab.models, aelab.codecs`` pulls in neither pytorch_lightning nor lightning_fabric."""
    code = "import sys, aelab.models, aelab.codecs; print(sorted(m for m in sys.modules if 'lightning' in m and 'utilities' not in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stdout


# ------------------------------------------------------------------------------------------------ AE, DAE, hooks
def test_ae_rejects_mismatched_parts_and_bad_settings():
    with pytest.raises(ValueError, match="latent_dim"):
        Autoencoder(MLPEncoder(out_dim=4), MLPDecoder(latent_dim=5), latent_dim=4)
    with pytest.raises(ValueError, match="model.loss"):
        Autoencoder(MLPEncoder(out_dim=4), MLPDecoder(latent_dim=4), loss="l1")
    with pytest.raises(ValueError, match="output=sigmoid"):
        Autoencoder(MLPEncoder(out_dim=4), MLPDecoder(latent_dim=4), loss="bce", output="identity")


def test_the_output_activation_follows_the_data():
    """``output=identity`` (unbounded values, standardized tables): the reconstruction is the decoder's output
    itself and the MSE is taken on it (a sigmoid would cap the values at 1)."""
    torch.manual_seed(0)
    model = Autoencoder(MLPEncoder(out_dim=3, in_shape=(5,)), MLPDecoder(latent_dim=3, out_shape=(5,)), loss="mse",
                        output="identity")  # fmt: skip
    x = torch.randn(7, 5) * 3
    out = model(x)
    torch.testing.assert_close(out.x_hat, model.decoder(model.encoder(x)))
    assert out.loss.item() == pytest.approx((out.x_hat - x).pow(2).mean().item(), rel=1e-6)


def test_dae_corrupts_input_only_and_reports_the_noisy_psnr(make_cfg):
    model: DenoisingAutoencoder = _model(make_cfg, "dae").eval()
    x, _ = batch(4)
    noisy, target = model.inputs(x, torch.Generator().manual_seed(3))
    assert torch.equal(target, x) and not torch.equal(noisy, x)
    assert torch.equal(noisy, model.inputs(x, torch.Generator().manual_seed(3))[0])
    out = model(x, generator=torch.Generator().manual_seed(3))
    mse = (noisy - x).pow(2).flatten(1).mean(1)
    assert out.terms["noisy_psnr"].item() == pytest.approx((-10 * torch.log10(mse)).mean().item(), rel=1e-5)
    assert "noisy_psnr" not in model.train()(x).terms  # training: the loss alone


def test_the_regularizer_hook_adds_its_weighted_penalty_and_logs_its_value():
    """A subclass's regularizer(z, logits, generator) → {name: (weight, value)}: the loss is the reconstruction loss
    plus weight · value (computed here), and the term holds the value."""

    class CodeNorm(Autoencoder):
        def regularizer(self, z, logits, generator=None):
            return {"code_norm": (0.5, z.pow(2).mean())}

    torch.manual_seed(0)
    model = CodeNorm(
        MLPEncoder(out_dim=4, hidden_dims=[8]), MLPDecoder(latent_dim=4, hidden_dims=[8]), loss="mse"
    )
    x = torch.rand(6, 1, 28, 28)
    out = model(x)
    z = model.encoder(x)
    recon = (torch.sigmoid(model.decoder(z)) - x).pow(2).mean()
    assert out.loss.item() == pytest.approx((recon + 0.5 * z.pow(2).mean()).item(), rel=1e-6)
    assert out.terms["code_norm"].item() == pytest.approx(z.pow(2).mean().item(), rel=1e-6)


# ------------------------------------------------------------------------------------------------ the forward template
# A forward of each model config, recorded before the models filled one template: (loss in evaluation with a generator
# seeded 1, loss in training with a generator seeded 2 and step 30, Σ out.z and Σ of the terms in evaluation; the
# DAE's noisy_psnr diagnostic left out), on batch(8) with torch.manual_seed(0) before building the model. Regenerate
# only for a deliberate change of a model's objective or defaults.
GOLDEN = {
    "ae": (0.6926925778388977, 0.6926925778388977, 1.3986365215387195, 0.0),
    "dae": (0.6927194595336914, 0.6927403211593628, 0.39632065687328577, 0.0),
    "vae": (544.5485229492188, 544.51318359375, 0.3660452961921692, 1089.0970187969506),
    "iwae": (544.234375, 544.3245239257812, 0.5614712936803699, 1633.7565838769078),
    "vqvae": (0.2312919944524765, 0.2700321078300476, 430.03886295610573, 0.00460750050842762),
    "sparse_ae": (0.18060068786144257, 0.18060068786144257, 74.13247664272785, 41.266560554504395),
    "rae": (0.18066558241844177, 0.18066558241844177, -0.8681663111783564, 523.9899493139237),
    "wae": (0.6484754085540771, 0.6671907305717468, 0.1307707317173481, 1.8344874382019043),
    "conv_ae": (0.7940115928649902, 0.9828246235847473, -0.0792524958960712, 0.0),
    "conv_vae": (580.3639526367188, 595.8153686523438, 0.22444234939757735, 1160.7278749644756),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_every_models_forward_is_the_recorded_one(make_cfg, name):
    """Each model's loss (evaluation and training, seeded generators), code and terms are the values recorded before
    the models filled one forward template: the refactor changed no objective and no order of random draws (rel 1e-5:
    above float32 reordering across CPUs, far below a dropped term, a corruption skipped or a draw moved)."""
    cfg = make_cfg([f"model={name}", *SMALL.get(name, [])])
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    x, _ = batch(8)
    with torch.no_grad():
        out = model.eval()(x, generator=torch.Generator().manual_seed(1))
    train = model.train()(x, generator=torch.Generator().manual_seed(2), step=30)
    terms = sum(value.item() for key, value in out.terms.items() if key != "noisy_psnr")
    got = (out.loss.item(), train.loss.item(), out.z.double().sum().item(), float(terms))
    assert got == pytest.approx(GOLDEN[name], rel=1e-5, abs=1e-6)


def test_no_autoencoder_overrides_the_forward_template():
    """Every Autoencoder exported by aelab.models fills the base class's forward through its hooks."""
    exported = [getattr(aelab.models, name) for name in aelab.models.__all__]
    classes = [c for c in exported if isinstance(c, type) and issubclass(c, Autoencoder)]
    assert {c.__name__ for c in classes} >= {"Autoencoder", "DenoisingAutoencoder", "VAE", "IWAE", "VQVAE",
                                             "SparseAutoencoder", "RAE", "WAE"}  # fmt: skip
    for cls in classes:
        assert cls.forward is Autoencoder.forward, f"{cls.__name__} overrides forward"


def test_only_a_model_given_a_corruption_is_denoising():
    """The Denoising capability (the denoising dashboard) needs a corruption: not an AE without one; the DAE
    requires one."""
    enc, dec = MLPEncoder(out_dim=4), MLPDecoder(latent_dim=4)
    assert not isinstance(Autoencoder(enc, dec), Denoising)
    assert isinstance(Autoencoder(enc, dec, corruption=Masking(0.5)), Denoising)
    assert not isinstance(_sparse(), Denoising) and not isinstance(_vqvae(), Denoising)
    with pytest.raises(ValueError, match="needs a corruption"):
        DenoisingAutoencoder(enc, dec, corruption=None)


@pytest.mark.parametrize("name", ["sparse_ae", "vqvae"])
def test_any_model_config_takes_a_corruption(make_cfg, name):
    noise = [
        "+model.corruption._target_=aelab.models.components.GaussianNoise",
        "+model.corruption.sigma=0.3",
    ]
    model = _model(make_cfg, name, *noise)
    assert isinstance(model, Denoising) and model.corruption.sigma == 0.3


def test_a_sparse_ae_given_a_corruption_encodes_the_noisy_input_and_reconstructs_the_clean_one():
    """Evaluation with a seeded generator: the code is the encoding of x + σ·ε (ε drawn here from the same seed),
    the loss the MSE of its decode against the clean x; training with AuxK: the loss adds α·L_aux of the noisy
    input's pre-activations against the clean x. (Mutations: the corruption ignored, the noisy input as the target,
    the AuxK loss against the noisy input — each fails here.)"""
    model = _sparse(aux_k=2, aux_coeff=0.5, dead_steps=0, corruption=GaussianNoise(0.3)).eval()
    x, _ = batch(8)
    noisy = x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = model(x, generator=torch.Generator().manual_seed(4))
        z = model.encode(noisy)
        x_hat = torch.sigmoid(model.decoder(z))
    torch.testing.assert_close(out.z, z, rtol=0, atol=0)
    assert not torch.equal(z, model.encode(x))
    assert out.loss.item() == pytest.approx((x_hat - x).pow(2).mean().item(), rel=1e-6)
    assert abs((x_hat - x).pow(2).mean() - (x_hat - noisy).pow(2).mean()) > 1e-3  # the clean target matters
    out = model.train()(x, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        h, logits = model.encoder(noisy), model.decoder(z)
        aux = model.aux_loss(h, logits, x, model.steps_since_fired > 0)  # dead_steps=0: silent once = dead
        assert abs(aux - model.aux_loss(h, logits, noisy, model.steps_since_fired > 0)) > 1e-4
    assert out.terms["sparsity/aux"].item() == pytest.approx(aux.item(), rel=1e-6)
    assert out.loss.item() == pytest.approx((x_hat - x).pow(2).mean().item() + 0.5 * aux.item(), rel=1e-6)


def test_a_vqvae_given_a_corruption_quantizes_the_noisy_input_and_reconstructs_the_clean_one():
    """Evaluation with a seeded generator: the codes are the nearest entries (found here by brute force) of the
    encoding of x + σ·ε, the loss the MSE of their decode against the clean x plus β·commitment of the noisy
    encoding. (Mutations: the corruption ignored, the noisy input as the target — each fails here.)"""
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=8, code_dim=3, commitment=0.25)
    model = VQVAE(MLPEncoder(out_dim=4 * 3, hidden_dims=[16]), MLPDecoder(latent_dim=12, hidden_dims=[16]), vq,
                  corruption=GaussianNoise(0.5)).eval()  # fmt: skip
    x, _ = batch(6)
    noisy = x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = model(x, generator=torch.Generator().manual_seed(2))
        ze = model.encoder(noisy).reshape(-1, 3)
        codes = model.quantizer.embedding
        idx = torch.tensor([min(range(8), key=lambda k: float(((v - codes[k]) ** 2).sum())) for v in ze])
        e = codes[idx]
        x_hat = torch.sigmoid(model.decoder(e.reshape(6, 12)))
    assert torch.equal(out.stats["vq/codebook_usage"], idx)
    torch.testing.assert_close(out.z, e.reshape(6, 12))
    commitment = 0.25 * (ze - e).pow(2).mean().item()
    assert out.terms["commitment"].item() == pytest.approx(commitment, rel=1e-5)
    with torch.no_grad():  # the clean input's commitment differs: the corruption matters
        clean = model.quantizer(model.encoder(x).reshape(-1, 3))[2]["commitment"].item()
    assert abs(clean - commitment) > 1e-3 * commitment
    assert out.loss.item() == pytest.approx((x_hat - x).pow(2).mean().item() + commitment, rel=1e-5)
    assert abs((x_hat - x).pow(2).mean() - (x_hat - noisy).pow(2).mean()) > 1e-3


# ------------------------------------------------------------------------------------------------ VAE, IWAE
def _vae(**kw) -> VAE:
    torch.manual_seed(0)
    return VAE(
        MLPEncoder(out_dim=8, hidden_dims=[32]),
        MLPDecoder(latent_dim=4, hidden_dims=[32]),
        latent_dim=4,
        **kw,
    )


def test_vae_kl_term_is_the_closed_form_and_enters_the_loss():
    """The KL is KL(q(z|x) ‖ N(0, I)) of the posterior (torch.distributions), the β-weighted loss adds it, and the
    ELBO term is recon + KL. (Mutations: the KL dropped, β ignored — each fails here.)"""
    model = _vae(kl_coeff=0.5)
    x, _ = batch(16)
    mu, logvar = model.posterior(x)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    exact = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), exact)
    out = model.train()(x, generator=torch.Generator().manual_seed(3))
    terms = out.terms
    assert terms["kl"].item() == pytest.approx(exact.mean().item(), rel=1e-5) and terms["kl"] > 0.01
    assert out.loss.item() == pytest.approx((terms["recon"] + 0.5 * terms["kl"]).item(), rel=1e-5)
    torch.testing.assert_close(terms["elbo"], terms["recon"] + terms["kl"])
    # recon is a per-image sum over 784 pixels, in nats: an untrained model sits near 784·log 2 ≈ 543
    assert 300 < terms["recon"].item() < 800


def test_vae_kl_warmup_follows_the_step():
    """β ramps linearly from 0 to kl_coeff over kl_warmup_steps; evaluation uses kl_coeff itself."""
    assert [kl_weight(0.5, 100, s) for s in (0, 25, 50, 100, 400)] == [0.0, 0.125, 0.25, 0.5, 0.5]
    assert kl_weight(0.5, 100, None) == 0.5 and kl_weight(0.5, 0, 10) == 0.5
    model = _vae(kl_coeff=0.5, kl_warmup_steps=100).train()
    x, _ = batch(8)
    for step, beta in ((50, 0.25), (400, 0.5)):
        out = model(x, generator=torch.Generator().manual_seed(0), step=step)
        assert out.loss.item() == pytest.approx(
            (out.terms["recon"] + beta * out.terms["kl"]).item(), rel=1e-6
        )
    out = model.eval()(x, generator=torch.Generator().manual_seed(0), step=0)
    assert out.loss.item() == pytest.approx((out.terms["recon"] + 0.5 * out.terms["kl"]).item(), rel=1e-6)


def test_vae_dynamic_binarization_is_seeded():
    model = _vae(binarize=True)
    x, _ = batch(4)
    a = model.likelihood_input(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, model.likelihood_input(x, torch.Generator().manual_seed(0)))
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(model.likelihood_input(x), model.likelihood_input(x))


def test_a_binarizing_vae_given_a_corruption_corrupts_the_binarized_input_and_targets_it():
    """inputs(): ``b = Bernoulli(x)`` then ``masked(b)``, in that order from one generator (the draws made here);
    the target is ``b``. The forward's code is the posterior mean of the masked input and its ``recon`` the
    Bernoulli NLL of ``b`` at the next draw ``z = μ + σ ε``. (Mutations: the corruption before the binarization,
    the clean ``x`` or the masked input as the target — each fails here.)"""
    model = _vae(binarize=True, corruption=Masking(0.5)).eval()
    x, _ = batch(6)
    g = torch.Generator().manual_seed(7)
    b = torch.bernoulli(x, generator=g)
    masked = b * (torch.rand(b.shape, generator=g) >= 0.5)
    x_in, target = model.inputs(x, torch.Generator().manual_seed(7))
    assert torch.equal(target, b) and torch.equal(x_in, masked) and not torch.equal(masked, b)
    with torch.no_grad():
        out = model(x, generator=torch.Generator().manual_seed(7))
        mu, logvar = model.posterior(masked)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g)
        recon = -model.log_likelihood(model.decoder(z), b).mean()
    torch.testing.assert_close(out.z, mu)
    assert out.terms["recon"].item() == pytest.approx(recon.item(), rel=1e-6)
    torch.testing.assert_close(out.x_hat, model.decode(mu))


def test_vae_gaussian_likelihood_learned_sigma_and_refusals():
    model = VAE(
        MLPEncoder(out_dim=8), MLPDecoder(latent_dim=4), latent_dim=4, likelihood="gaussian", sigma=None
    )
    x, _ = batch(4)
    model(x).loss.backward()
    assert model.log_sigma.grad is not None
    with pytest.raises(ValueError, match="out_dim=8"):
        VAE(MLPEncoder(out_dim=4), MLPDecoder(latent_dim=4), latent_dim=4)
    with pytest.raises(ValueError, match="likelihood"):
        VAE(MLPEncoder(out_dim=8), MLPDecoder(latent_dim=4), latent_dim=4, likelihood="laplace")


def test_iwae_bound_at_k2_is_the_hand_log_mean_exp_and_model_k_is_the_loss_k():
    """L_2 = log ½ (w_1 + w_2), w_i = p(x|z_i) p(z_i) / q(z_i|x), every density from torch.distributions and the
    log-mean-exp in float64 numpy; the IWAE's training loss uses ``model.k`` samples, the same bound the
    evaluation's likelihood computes. (Mutations: without − log k, or the loss at k = 1 — each fails here.)"""
    torch.manual_seed(0)
    model = IWAE(MLPEncoder(out_dim=8, hidden_dims=[32]), MLPDecoder(latent_dim=4, hidden_dims=[32]), latent_dim=4,
                 k=2)  # fmt: skip
    x, _ = batch(6)
    with torch.no_grad():
        mu, logvar = model.posterior(x)
        got = importance_weighted_bound(
            mu, logvar, lambda z: model.log_px(x, z), 2, None, torch.Generator().manual_seed(5)
        )
        eps = torch.randn((2, *mu.shape), generator=torch.Generator().manual_seed(5))
        q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
        prior = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
        log_w = []
        for i in range(2):
            z = mu + torch.exp(0.5 * logvar) * eps[i]
            px = (
                torch.distributions.Bernoulli(logits=model.decoder(z), validate_args=False)
                .log_prob(x)
                .flatten(1)
                .sum(1)
            )
            log_w.append((px + prior.log_prob(z).sum(1) - q.log_prob(z).sum(1)).double().numpy())
        a, b = log_w
        hand = np.log((np.exp(a - np.maximum(a, b)) + np.exp(b - np.maximum(a, b))) / 2) + np.maximum(a, b)
        np.testing.assert_allclose(got.double().numpy(), hand, rtol=1e-5)
        model.train()
        loss = model(x, generator=torch.Generator().manual_seed(5)).loss
        # the model's posterior draws first, then its bound: same generator state as above
        assert loss.item() == pytest.approx(-float(hand.mean()), rel=1e-5)
        k1 = importance_weighted_bound(
            mu, logvar, lambda z: model.log_px(x, z), 1, None, torch.Generator().manual_seed(5)
        )
        assert abs(loss.item() + k1.mean().item()) > 1e-3


def test_iwae_bound_is_tighter_than_the_elbo_and_equals_it_at_k1():
    model = _vae()
    x, _ = batch(32)
    with torch.no_grad():
        mu, logvar = model.posterior(x)

        def bound(k, seed):
            return importance_weighted_bound(mu, logvar, lambda z: model.log_px(x, z), k, None,
                                             torch.Generator().manual_seed(seed))  # fmt: skip

        l1 = torch.stack([bound(1, s) for s in range(200)]).mean(0)
        l50 = torch.stack([bound(50, s) for s in range(10)]).mean(0)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
        one = model.log_likelihood(model.decoder(z), x) + log_standard_normal(z) - log_normal(z, mu, logvar)
        torch.testing.assert_close(bound(1, 0), one, atol=1e-4, rtol=0)
    assert (l50 > l1).all()  # Burda et al. 2016, Theorem 1: L_k grows with k


def test_iwae_reports_the_vae_terms_in_evaluation():
    model = IWAE(MLPEncoder(out_dim=8), MLPDecoder(latent_dim=4), latent_dim=4, k=5)
    x, _ = batch(8)
    out = model.eval()(x, generator=torch.Generator().manual_seed(0))
    assert out.loss == out.terms["iwae"] and {"elbo", "recon", "kl"} <= set(out.terms)
    assert set(model.train()(x).terms) == {"iwae"}
    with pytest.raises(ValueError, match="k=0"):
        IWAE(MLPEncoder(out_dim=8), MLPDecoder(latent_dim=4), latent_dim=4, k=0)


# ------------------------------------------------------------------------------------------------ VQ-VAE
def _quantizer(**kw) -> VectorQuantizer:
    vq = VectorQuantizer(num_codes=4, code_dim=2, decay=0.5, **kw)
    vq.embedding.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0], [-5.0, 5.0], [100.0, 100.0]]))
    vq.ema_sum.copy_(vq.embedding)
    return vq


Z = torch.tensor([[0.1, -0.1], [9.9, 10.2], [-5.2, 4.9], [0.2, 0.1]])


def test_vector_quantizer_nearest_and_ema():
    vq = _quantizer(restart_threshold=0.0)
    assert vq.nearest(Z).tolist() == [0, 1, 2, 0]  # squared Euclidean
    q, idx, losses = vq.eval()(Z)
    assert torch.equal(q, vq.lookup(idx))
    assert losses["commitment"].item() == pytest.approx(0.25 * (q - Z).pow(2).mean().item())
    vq.train()
    for _ in range(12):  # EMA (γ = ½): each code moves to the mean of the vectors assigned to it
        vq(Z)
    assert torch.allclose(vq.embedding[0], Z[[0, 3]].mean(0), atol=0.01)
    assert torch.allclose(vq.embedding[1], Z[1], atol=0.01)
    assert (vq.embedding[3] > 50).all()  # unused, and never restarted at threshold 0


def test_vector_quantizer_restarts_dead_codes():
    vq = _quantizer(restart_threshold=0.5)
    vq.ema_count[3] = 0.1  # code 3 is dead (below the threshold)
    torch.manual_seed(0)
    vq.train()(Z)
    assert any(torch.equal(vq.embedding[3], v) for v in Z)  # restarted at an encoder output
    assert vq.ema_count[3] == 0.5 and torch.equal(vq.ema_sum[3], vq.embedding[3] * 0.5)


def test_vq_gradient_is_straight_through():
    vq = VectorQuantizer(num_codes=8, code_dim=3).eval()
    z = torch.randn(5, 3, requires_grad=True)
    q, _, _ = vq(z)
    (q * torch.arange(3.0)).sum().backward()
    assert torch.equal(z.grad, torch.arange(3.0).expand(5, 3))  # the decoder's gradient, copied to z_e


def _vqvae() -> VQVAE:
    torch.manual_seed(0)
    return VQVAE(MLPEncoder(out_dim=4 * 3, hidden_dims=[16]), MLPDecoder(latent_dim=12, hidden_dims=[16]),
                 VectorQuantizer(num_codes=8, code_dim=3, commitment=0.25))  # fmt: skip


def test_vqvae_loss_is_reconstruction_plus_beta_commitment():
    """loss = MSE(x̂, x) + β·‖z_e − e_nearest‖² / (N·D) (van den Oord et al. 2017, eq. 3 with an EMA codebook),
    the nearest code found here by brute force. (Mutation: the commitment term dropped, or β ignored, fails.)"""
    model = _vqvae().eval()
    x, _ = batch(5)
    with torch.no_grad():
        out = model(x)
        ze = model.encoder(x).reshape(-1, 3)
        codes = model.quantizer.embedding
        nearest = torch.stack(
            [codes[min(range(8), key=lambda k: float(((v - codes[k]) ** 2).sum()))] for v in ze]
        )
        commitment = ((ze - nearest) ** 2).mean().item()
        x_hat = torch.sigmoid(model.decoder(nearest.reshape(5, 12)))
    assert commitment > 1e-3
    assert out.terms["commitment"].item() == pytest.approx(0.25 * commitment, rel=1e-5)
    assert out.loss.item() == pytest.approx((x_hat - x).pow(2).mean().item() + 0.25 * commitment, rel=1e-5)
    torch.testing.assert_close(out.x_hat, x_hat)


def test_vq_codebook_moves_in_training_and_stays_frozen_in_eval():
    """The EMA codebook is a buffer updated by the forward pass in train mode only. (Mutation: the update without
    ``self.training`` fails here.)"""
    model = _vqvae()
    x, _ = batch(5)
    before = model.quantizer.embedding.clone()
    with torch.no_grad():
        model.eval()(x)
    assert torch.equal(model.quantizer.embedding, before) and torch.equal(
        model.quantizer.ema_count, torch.ones(8)
    )
    model.train()(x)
    assert not torch.equal(model.quantizer.embedding, before)


def test_vqvae_codes_indices_and_split_statistics(make_cfg):
    model: VQVAE = _model(make_cfg, "vqvae", "model.quantizer.num_codes=16").eval()
    x, _ = batch(8)
    codes = model.encode(x)
    idx = model.code_indices(codes)
    assert idx.shape == (8, 49) and idx.max() < 16  # a 7×7 grid of codebook indices
    assert torch.equal(model.codes_from_indices(idx), codes)
    assert torch.allclose(model.decode(codes), model.reconstruct(x), atol=1e-6)
    stats = model(x).stats
    torch.testing.assert_close(stats["vq/perplexity"].view(8, -1), idx)
    metric = model.split_metrics()["vq/perplexity"]
    metric.update(stats["vq/perplexity"])
    assert metric.compute() == pytest.approx(
        perplexity(torch.bincount(idx.flatten(), minlength=16)).item(), rel=1e-5
    )
    assert (
        perplexity(torch.ones(16)).item() == pytest.approx(16.0)
        and perplexity(torch.tensor([5.0, 0, 0])) == 1
    )


def test_vqvae_with_mlp_parts():
    enc, dec = MLPEncoder(out_dim=6 * 4, hidden_dims=[32]), MLPDecoder(latent_dim=6 * 4, hidden_dims=[32])
    model = VQVAE(enc, dec, VectorQuantizer(num_codes=8, code_dim=4)).eval()
    x, _ = batch(3)
    assert model.positions == 6 and model.code_indices(model.encode(x)).shape == (3, 6)
    with pytest.raises(ValueError, match="code_dim"):
        VQVAE(MLPEncoder(out_dim=7), MLPDecoder(latent_dim=7), VectorQuantizer(num_codes=8, code_dim=4))


# ------------------------------------------------------------------------------------------------ sparse AE
def _sparse(**kw) -> SparseAutoencoder:
    torch.manual_seed(0)
    return SparseAutoencoder(MLPEncoder(out_dim=16, hidden_dims=[]), MLPDecoder(latent_dim=16, hidden_dims=[]),
                             latent_dim=16, k=3, loss="mse", **kw)  # fmt: skip


@pytest.mark.parametrize("sparsity", ["topk", "l1"])
def test_sparse_codes_and_loss(sparsity):
    torch.manual_seed(0)
    model = SparseAutoencoder(MLPEncoder(out_dim=64, hidden_dims=[]), MLPDecoder(latent_dim=64, hidden_dims=[]),
                              latent_dim=64, sparsity=sparsity, k=5, l1_coeff=0.1)  # fmt: skip
    x, _ = batch(16)
    z = model.encode(x)
    assert (z >= 0).all()
    if sparsity == "topk":  # exactly the 5 largest pre-activations survive (the positive ones)
        top = torch.topk(model.encoder(x), 5, dim=1)
        assert ((z > 0).sum(1) <= 5).all() and torch.equal(z.gather(1, top.indices), torch.relu(top.values))
    out = model.eval()(x)
    assert out.terms["sparsity/l0"] == pytest.approx((z != 0).sum(1).float().mean().item())
    extra = 0.1 * z.abs().sum(1).mean() if sparsity == "l1" else 0.0
    assert out.loss.item() == pytest.approx(
        (model.reconstruction_loss(model.decoder(z), x) + extra).item(), rel=1e-5
    )
    dead = model.split_metrics()["sparsity/dead_fraction"]
    dead.update(out.stats["sparsity/dead_fraction"])
    assert dead.compute() == pytest.approx((z == 0).all(0).float().mean().item())


def test_sparse_ae_tied_init_and_unit_norm_decoder_columns():
    """Gao et al. 2024, App. A: the encoder starts as W_decᵀ; the decoder's column per latent stays at unit norm
    through optimizer steps, and the gradient reaching the stored weight has no component along its column.
    (Mutations: the normalization dropped, the gradient's radial part kept — each fails here.)"""
    model = _sparse(tied_init=True, unit_norm_decoder=True)
    w = model.decoder_weight()
    assert torch.allclose(model.encoder.net[0].weight, w.T)
    torch.testing.assert_close(w.norm(dim=0), torch.ones(16))
    x, _ = batch(8)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model(x).loss.backward()
    stored = model._decoder_linear().parametrizations.weight.original
    torch.testing.assert_close((stored.grad * stored).sum(0), torch.zeros(16), atol=1e-6, rtol=0)
    opt.step()
    torch.testing.assert_close(model.decoder_weight().norm(dim=0), torch.ones(16), atol=1e-6, rtol=0)
    assert not torch.allclose(model.decoder_weight(), w)


def test_sparse_ae_auxk_loss_is_the_hand_value_over_dead_latents():
    """L_aux = MSE(sigmoid(s + W_dec z_aux), x), z_aux the aux_k largest pre-activations among the dead latents
    (ReLU), found here image by image with sorted(); a latent is dead after dead_steps silent steps, and the training
    loss adds aux_coeff · L_aux. (Mutations: z_aux over all latents, the loss without α — each fails.)"""
    model = _sparse(aux_k=2, aux_coeff=0.5, dead_steps=0)
    x, _ = batch(4)
    with torch.no_grad():
        h = model.encoder(x)
        z = model.sparsify(h)
        logits = model.decoder(z)
        live = (z != 0).any(0)
        dead = ~live
        w = model.decoder_weight()
        rows = []
        for i in range(len(x)):
            za = torch.zeros(16)
            for j in sorted((j for j in range(16) if dead[j]), key=lambda j: -float(h[i, j]))[:2]:
                za[j] = max(float(h[i, j]), 0.0)
            rows.append(za)
        hand = (torch.sigmoid(logits + (torch.stack(rows) @ w.T).view_as(logits)) - x).pow(2).mean().item()
        assert model.aux_loss(h, logits, x, dead).item() == pytest.approx(hand, rel=1e-5)
        main = (torch.sigmoid(logits) - x).pow(2).mean().item()
        assert dead.any() and hand != pytest.approx(main, rel=1e-4)
    out = model.train()(x)
    assert out.terms["sparsity/aux"].item() == pytest.approx(
        hand, rel=1e-5
    )  # dead_steps=0: silent once = dead
    assert out.loss.item() == pytest.approx(main + 0.5 * hand, rel=1e-5)
    assert torch.equal(model.steps_since_fired == 0, live)


def test_sparse_ae_refuses_a_decoder_that_is_not_one_linear_layer():
    with pytest.raises(ValueError, match="one Linear layer"):
        SparseAutoencoder(MLPEncoder(out_dim=16, hidden_dims=[]), MLPDecoder(latent_dim=16, hidden_dims=[32]),
                          latent_dim=16, k=3, aux_k=4)  # fmt: skip


# ------------------------------------------------------------------------------------------------ RAE, WAE
def test_rae_penalties():
    torch.manual_seed(0)
    enc, dec = MLPEncoder(out_dim=4, hidden_dims=[16]), MLPDecoder(latent_dim=4, hidden_dims=[16])
    x, _ = batch(8)
    for reg in ("l2", "gp", "none"):
        model = RAE(
            enc, dec, latent_dim=4, code_coeff=0.3, reg_coeff=0.2, regularization=reg, loss="mse"
        ).train()
        out = model(x)
        z = enc(x)
        assert out.terms["code_penalty"].item() == pytest.approx(
            0.5 * z.pow(2).sum(1).mean().item(), rel=1e-5
        )
        expected = {"l2": sum(p.pow(2).sum() for p in dec.parameters()).item(), "none": 0.0}
        if reg == "gp":
            zz = z.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(dec(zz).sum(), zz)
            expected["gp"] = g.pow(2).sum(1).mean().item()
        assert out.terms["decoder_penalty"].item() == pytest.approx(expected[reg], rel=1e-4)
        rec = model.reconstruction_loss(dec(z), x).item()
        assert out.loss.item() == pytest.approx(rec + 0.3 * out.terms["code_penalty"].item() + 0.2 * expected[reg],
                                                rel=1e-4)  # fmt: skip


def test_imq_mmd_of_two_point_sets_is_the_hand_value():
    """Unbiased MMD² with k(x, y) = C / (C + ‖x − y‖²), C = 2·d·s, on z = {(0,0), (1,0)}, p = {(0,1), (2,0)}.
    By hand with one scale s = 1 (C = 4): k_zz = 4/5, k_pp = 4/9, k_zp ∈ {4/5, 1/2, 2/3, 4/5};
    MMD² = 4/5 + 4/9 − 2 · (4/5 + 1/2 + 2/3 + 4/5) / 4 = −5/36. (Mutations: the diagonal kept, the biased
    estimator, C without the 2·d, the cross term without its factor 2 — each fails here.)"""
    z = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    p = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    assert imq_mmd(z, p, scales=(1.0,)).item() == pytest.approx(-5 / 36, abs=1e-6)

    def k(a, b, c):
        return c / (c + sum((ai - bi) ** 2 for ai, bi in zip(a, b, strict=True)))

    zs, ps = z.tolist(), p.tolist()
    total = 0.0
    for s in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0):
        c = 2 * 2 * s
        total += k(zs[0], zs[1], c) + k(ps[0], ps[1], c)
        total -= 2 * sum(k(a, b, c) for a in zs for b in ps) / 4
    assert imq_mmd(z, p).item() == pytest.approx(total, rel=1e-6)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g)
    assert abs(imq_mmd(a, b)) < 0.05 and imq_mmd(a + 1.0, b) > 10 * abs(imq_mmd(a, b))


def test_wae_loss_weighs_the_mmd_on_the_papers_scale_and_samples_from_the_prior():
    """loss = MSE + λ/(0.05·C·H·W)·MMD² (Tolstikhin et al.: 0.05·Σ‖x − x̂‖² + λ·MMD², divided by 0.05·C·H·W):
    λ = 10 on 1×28×28 applies 0.2551 to the MMD. (Mutation: λ applied as is — 39× too strong — fails here.)"""
    torch.manual_seed(0)
    wae = WAE(ConvEncoder(out_dim=8, channels=[8, 16]), ConvDecoder(latent_dim=8, channels=[16, 8]),
              latent_dim=8, loss="mse", mmd_coeff=10.0, cost_coeff=0.05).eval()  # fmt: skip
    assert wae.mmd_weight(784) == pytest.approx(10 / 39.2)
    x, _ = batch(16)
    with torch.no_grad():
        out = wae(x, generator=torch.Generator().manual_seed(3))
        z = wae.encoder(x)
        mmd = imq_mmd(z, torch.randn(z.shape, generator=torch.Generator().manual_seed(3))).item()
    assert out.terms["mmd"].item() == pytest.approx(mmd, rel=1e-5) and abs(mmd) > 1e-3
    assert out.loss.item() == pytest.approx((out.x_hat - x).pow(2).mean().item() + 10 / 39.2 * mmd, rel=1e-5)
    s = wae.sample(4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(s, wae.decode(torch.randn((4, 8), generator=torch.Generator().manual_seed(1))))
    with pytest.raises(ValueError, match="cost_coeff"):
        WAE(MLPEncoder(out_dim=4), MLPDecoder(latent_dim=4), cost_coeff=0)


def test_the_objectives_are_written_once():
    """Each formula lives in aelab.models.objectives and nowhere else in the library: no model or section defines
    its own KL, log-normal, MMD or importance-weighted bound."""
    import re
    from pathlib import Path

    src = Path(REPO) / "src" / "aelab"
    for path in src.rglob("*.py"):
        if path.name == "objectives.py":
            continue
        text = path.read_text()
        for name in ("gaussian_kl", "log_normal", "imq_mmd", "importance_weighted_bound", "kl_weight"):
            assert not re.search(rf"def {name}\(", text), f"{path} defines {name} again"
    assert math.isfinite(kl_weight(1.0, 10, 5))


@pytest.mark.parametrize("name", ["ae", "conv_ae", "dae", "vae"])
def test_the_pca_start_begins_at_pcas_reconstruction(make_cfg, name):
    """With init=pca the model's reconstruction after fit_pca is PCA's of the code size (scikit-learn, fitted here on
    the same examples), clamped to [0, 1]; and the linear paths are their own optimizer group at the scaled rate.
    (Mutations: a residual path not starting at zero, the decoder's mean left out — each fails here.)"""
    from sklearn.decomposition import PCA

    extra = ["model.likelihood=gaussian"] if name == "vae" else ["model.loss=mse"]
    model = _model(make_cfg, name, "model.init=pca", "model.latent_dim=6", *extra)
    # a clear 6-d principal subspace (randomized and full PCA agree on it)
    g = torch.Generator().manual_seed(0)
    noise = 0.05 * torch.rand(300, 784, generator=g)
    x = torch.rand(300, 6, generator=g) @ torch.rand(6, 784, generator=g) / 6 + noise
    x = x.clamp(0, 1).view(300, 1, 28, 28)
    model.fit_pca(x)
    model.eval()
    flat = x.flatten(1).double().numpy()
    pca = PCA(6, svd_solver="full").fit(flat)
    want = torch.from_numpy(pca.inverse_transform(pca.transform(flat))).float().clamp(0, 1).view_as(x)
    with torch.no_grad():
        got = model.reconstruct(x)
    torch.testing.assert_close(got, want, atol=2e-4, rtol=0)
    groups = model.param_groups()
    assert groups[1]["lr_scale"] == model.pca_lr_scale and len(groups[1]["params"]) == 2
    with pytest.raises(ValueError, match="model.loss=mse"):
        Autoencoder(MLPEncoder(out_dim=4), MLPDecoder(latent_dim=4), loss="bce", init="pca")
