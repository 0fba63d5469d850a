"""The models researchers compare (VQ-VAE, sparse AE, IWAE, RAE, WAE) and the samplers: each checked against a
value computed here, not against a bound an untrained model meets."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.utils import instantiate

from aelab import samplers as S
from aelab.models import IWAE, RAE, VAE, VQVAE, WAE, SparseAutoencoder
from aelab.models.components import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, VectorQuantizer
from aelab.models.components.quantizer import perplexity
from aelab.models.distributions import gaussian_kl, log_normal, log_standard_normal
from aelab.models.wae import imq_mmd
from helpers import batch

ZOO = ["vqvae", "sparse_ae", "iwae", "rae", "wae"]


@pytest.mark.parametrize("name", ZOO)
def test_zoo_configs_build_and_learn(make_cfg, name):
    """40 steps on one batch: every model's validation loss falls below 80% of the same model's before training,
    and the VQ-VAE's and sparse AE's reconstructions beat the batch's mean image (baselines computed here)."""
    small = {"vqvae": ["model.encoder.channels=[16,32]", "model.decoder.channels=[32,16]", "model.quantizer.num_codes=64",
                       "model.optimizer.lr=3e-3"]}  # fmt: skip
    model = instantiate(make_cfg([f"model={name}", *small.get(name, [])]).model)
    optimizer = model.configure_optimizers()
    x, y = batch(32)

    def eval_loss():
        model.eval()
        with torch.no_grad():
            return model.loss_terms(*model.model_input(x, torch.Generator().manual_seed(0)), "val",
                                    torch.Generator().manual_seed(1))[0].item()  # fmt: skip

    before = eval_loss()
    model.train()
    for step in range(40):
        loss = model.training_step((x, y), step)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert eval_loss() < 0.8 * before
    if name in ("vqvae", "sparse_ae"):
        model.eval()
        with torch.no_grad():
            mse = (model.reconstruct(x) - x).pow(2).mean()
        assert mse < (x.mean(0, keepdim=True) - x).pow(2).mean()
    assert model.encode(x).shape == (32, model.latent_dim)


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


def test_vqvae_codes_indices_and_metrics(make_cfg):
    model: VQVAE = instantiate(make_cfg(["model=vqvae", "model.quantizer.num_codes=16"]).model).eval()
    x, _ = batch(8)
    codes = model.encode(x)
    idx = model.code_indices(codes)
    assert idx.shape == (8, 49) and idx.max() < 16  # a 7×7 grid of codebook indices
    assert torch.equal(model.codes_from_indices(idx), codes)
    assert torch.allclose(model.decode(codes), model.reconstruct(x), atol=1e-6)
    counts = torch.bincount(idx.flatten(), minlength=16)
    model.eval_step((x, torch.zeros(8)), 0, "test")
    m = model.metrics["test"]
    assert m["vq/perplexity"].compute() == pytest.approx(perplexity(counts).item(), rel=1e-5)
    assert m["vq/codebook_usage"].compute() == pytest.approx((counts > 0).float().mean().item())
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


@pytest.mark.parametrize("sparsity", ["topk", "l1"])
def test_sparse_codes(sparsity):
    torch.manual_seed(0)
    model = SparseAutoencoder(
        MLPEncoder(out_dim=64, hidden_dims=[]), MLPDecoder(latent_dim=64, hidden_dims=[]), latent_dim=64,
        sparsity=sparsity, k=5, l1_coeff=0.1,
    )  # fmt: skip
    x, _ = batch(16)
    z = model.encode(x)
    assert (z >= 0).all()
    if sparsity == "topk":  # exactly the 5 largest pre-activations survive (the positive ones)
        h = model.encoder(x)
        assert ((z > 0).sum(1) <= 5).all()
        top = torch.topk(h, 5, dim=1)
        assert torch.equal(z.gather(1, top.indices), torch.relu(top.values))
    loss, _, terms = model.loss_terms(x, x, "train")
    assert terms["sparsity/l0"] == pytest.approx((z != 0).sum(1).float().mean().item())
    plain = model.reconstruction_loss(model.decoder(z), x)
    extra = 0.1 * z.abs().sum(1).mean() if sparsity == "l1" else 0.0
    assert loss.item() == pytest.approx((plain + extra).item(), rel=1e-5)
    model.eval_step((x, torch.zeros(16)), 0, "test")
    dead = (z == 0).all(0).float().mean()
    assert model.metrics["test"]["sparsity/dead_fraction"].compute() == pytest.approx(dead.item())


def test_vae_kl_term_is_the_closed_form_and_enters_the_loss():
    """The KL of the loss is KL(q(z|x) ‖ N(0, I)) of the posterior itself (checked against torch.distributions),
    and the β-weighted loss adds it: dropping it, or ignoring β, changes these numbers."""
    torch.manual_seed(0)
    model = VAE(MLPEncoder(out_dim=8, hidden_dims=[32]), MLPDecoder(latent_dim=4, hidden_dims=[32]), latent_dim=4,
                kl_coeff=0.5, kl_warmup_steps=0)  # fmt: skip
    x, _ = batch(16)
    mu, logvar = model.posterior(x)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    exact = torch.distributions.kl_divergence(q, p).sum(1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), exact)
    gen = torch.Generator().manual_seed(3)
    model.train()
    loss, _, terms = model.loss_terms(x, x, "train", gen)
    assert terms["kl"].item() == pytest.approx(exact.mean().item(), rel=1e-5) and terms["kl"] > 0.01
    assert loss.item() == pytest.approx((terms["recon"] + 0.5 * terms["kl"]).item(), rel=1e-5)


def test_iwae_bound_is_tighter_than_the_elbo_and_equals_it_at_k1():
    torch.manual_seed(0)
    model = IWAE(
        MLPEncoder(out_dim=8, hidden_dims=[32]), MLPDecoder(latent_dim=4, hidden_dims=[32]), latent_dim=4, k=5
    )
    x, _ = batch(32)
    with torch.no_grad():
        l1 = torch.stack(
            [model.iwae_bound(x, x, 1, torch.Generator().manual_seed(s)) for s in range(200)]
        ).mean(0)
        l50 = torch.stack(
            [model.iwae_bound(x, x, 50, torch.Generator().manual_seed(s)) for s in range(10)]
        ).mean(0)
        mu, logvar = model.posterior(x)
        gen = torch.Generator().manual_seed(0)
        eps = torch.randn(mu.shape, generator=gen)
        z = mu + torch.exp(0.5 * logvar) * eps
        one = model.log_likelihood(model.decoder(z), x) + log_standard_normal(z) - log_normal(z, mu, logvar)
        assert torch.allclose(model.iwae_bound(x, x, 1, torch.Generator().manual_seed(0)), one, atol=1e-4)
    assert (l50 > l1).all()  # Burda et al. 2016, Theorem 1: L_k grows with k
    loss, _, terms = model.loss_terms(x, x, "val", torch.Generator().manual_seed(0))
    assert loss == terms["iwae"] and "elbo" in terms
    assert model.hparams.k == 5


def test_rae_penalties():
    torch.manual_seed(0)
    enc, dec = MLPEncoder(out_dim=4, hidden_dims=[16]), MLPDecoder(latent_dim=4, hidden_dims=[16])
    x, _ = batch(8)
    for reg in ("l2", "gp", "none"):
        model = RAE(enc, dec, latent_dim=4, code_coeff=0.3, reg_coeff=0.2, regularization=reg, loss="mse")
        loss, _, terms = model.loss_terms(x, x, "train")
        z = enc(x)
        assert terms["code_penalty"].item() == pytest.approx(0.5 * z.pow(2).sum(1).mean().item(), rel=1e-5)
        expected = {"l2": sum(p.pow(2).sum() for p in dec.parameters()).item(), "none": 0.0}
        if reg == "gp":
            zz = z.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(dec(zz).sum(), zz)
            expected["gp"] = g.pow(2).sum(1).mean().item()
        assert terms["decoder_penalty"].item() == pytest.approx(expected[reg], rel=1e-4)
        rec = model.reconstruction_loss(dec(z), x).item()
        assert loss.item() == pytest.approx(
            rec + 0.3 * terms["code_penalty"].item() + 0.2 * expected[reg], rel=1e-4
        )


def test_mmd_separates_distributions_and_wae_samples_from_the_prior():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g)
    same, shifted = imq_mmd(a, b), imq_mmd(a + 1.0, b)
    assert abs(same) < 0.05 and shifted > 10 * abs(same)
    wae = WAE(
        ConvEncoder(out_dim=8, channels=[8, 16]), ConvDecoder(latent_dim=8, channels=[16, 8]), latent_dim=8
    )
    s = wae.sample(4, generator=torch.Generator().manual_seed(1))
    z = torch.randn((4, 8), generator=torch.Generator().manual_seed(1))
    assert torch.equal(s, wae.decode(z))


def test_gaussian_and_gmm_samplers_fit_what_they_are_given():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-6.0, 0.0], [6.0, 0.0]])
    codes = torch.cat([c + 0.3 * torch.randn(2000, 2, generator=g) for c in centres])
    gauss = S.GaussianSampler().fit(None, codes)
    draws = gauss.sample(20000, torch.Generator().manual_seed(1))
    assert torch.allclose(draws.mean(0), codes.mean(0), atol=0.1)
    assert torch.allclose(torch.cov(draws.T), torch.cov(codes.T), rtol=0.05, atol=0.05)
    gmm = S.GMMSampler(n_components=2).fit(None, codes)
    d = gmm.sample(4000, torch.Generator().manual_seed(1))
    near = torch.cdist(d, centres).min(1).values
    assert (near < 1.5).float().mean() > 0.99  # mixture draws stay at the modes; one Gaussian's fill the gap
    assert (torch.cdist(draws, centres).min(1).values < 1.5).float().mean() < 0.5
    with pytest.raises(ValueError, match="unknown sampler"):
        S.make_sampler("nope")


def test_categorical_sampler_draws_the_training_index_frequencies():
    enc = MLPEncoder(out_dim=2 * 3, hidden_dims=[8])
    model = VQVAE(
        enc, MLPDecoder(latent_dim=6, hidden_dims=[8]), VectorQuantizer(num_codes=4, code_dim=3)
    ).eval()
    idx = torch.tensor([[0, 3]] * 90 + [[1, 3]] * 10)
    codes = model.codes_from_indices(idx)
    sampler = S.CategoricalSampler().fit(model, codes)
    assert sampler.applies(model) and not S.GaussianSampler().applies(model)
    drawn = model.code_indices(sampler.sample(5000, torch.Generator().manual_seed(0)))
    freq0 = (drawn[:, 0] == 0).float().mean()
    assert freq0 == pytest.approx(91 / 104, abs=0.03)  # (90 + 1) / (100 + 4): add-one smoothing
    assert (drawn[:, 1] == 3).float().mean() > 0.9


def test_prior_sampler_matches_the_vae_own_samples():
    model = VAE(
        MLPEncoder(out_dim=8, hidden_dims=[16]), MLPDecoder(latent_dim=4, hidden_dims=[16]), latent_dim=4
    )
    sampler = S.PriorSampler().fit(model, None)
    images = S.generate(model, sampler, 10, seed=5, batch_size=4, device="cpu")
    gen = torch.Generator().manual_seed(5)
    own = torch.cat([model.sample(k, generator=gen) for k in (4, 4, 2)])
    assert torch.equal(images, own)
    assert math.isclose(images.min().item(), max(0.0, images.min().item()))


def test_a_sampler_from_a_users_package_by_target():
    """``suite.sections.fid.samplers`` takes a ``_target_`` config: the class is built with the seed and named."""
    sampler = S.make_sampler({"_target_": "aelab.samplers.GaussianSampler", "name": "mine"}, seed=3)
    assert isinstance(sampler, S.GaussianSampler) and sampler.name == "mine" and sampler.seed == 3
    assert S.GaussianSampler.name == "gaussian"  # the class keeps its own
    with pytest.raises(ValueError, match="not an aelab.samplers.Sampler"):
        S.make_sampler({"_target_": "collections.OrderedDict"})


def test_autoregressive_sampler_learns_what_the_categorical_cannot():
    """Training grids whose second position copies the first (4 codes, uniform): the categorical sampler draws
    them independently (agreement ≈ 1/4, computed here from its draws), the PixelCNN prior reproduces the copy."""
    enc = MLPEncoder(out_dim=2 * 3, hidden_dims=[8])
    model = VQVAE(
        enc, MLPDecoder(latent_dim=6, hidden_dims=[8]), VectorQuantizer(num_codes=4, code_dim=3)
    ).eval()
    with torch.no_grad():
        model.quantizer.embedding.copy_(torch.eye(4, 3) * 5)  # four distinct codes
    first = torch.randint(0, 4, (2000,), generator=torch.Generator().manual_seed(0))
    codes = model.codes_from_indices(torch.stack([first, first], 1))
    cat = S.CategoricalSampler().fit(model, codes)
    ar = S.AutoregressiveSampler(epochs=40, channels=16, layers=1).fit(model, codes)
    assert ar.applies(model) and ar.grid == (1, 2)

    def agreement(sampler):
        idx = model.code_indices(sampler.sample(1000, torch.Generator().manual_seed(1)))
        return (idx[:, 0] == idx[:, 1]).float().mean().item()

    independent = agreement(cat)
    assert independent < 0.4  # the factorized baseline
    assert agreement(ar) > 0.9 > independent + 0.4
    # and the first position keeps the training marginal (uniform over 4 codes): nothing leaks from a position
    # into its own prediction
    first_drawn = model.code_indices(ar.sample(1000, torch.Generator().manual_seed(2)))[:, 0]
    freq = torch.bincount(first_drawn, minlength=4).float() / 1000
    assert ((freq > 0.15) & (freq < 0.35)).all(), freq
