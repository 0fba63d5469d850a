"""aelab.samplers: each sampler draws what it was fitted to (moments and frequencies computed here)."""

from __future__ import annotations

import math

import pytest
import torch

from aelab import samplers as S
from aelab.models import VAE, VQVAE
from aelab.models.components import MLPDecoder, MLPEncoder, VectorQuantizer


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


@pytest.mark.slow
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


def test_gmm_sampler_draws_the_mixtures_mean_and_covariance():
    """A 2-component mixture with weights 0.8 / 0.2 and correlated covariances: the sampler's draws have the
    mixture's mean Σ w_k μ_k and covariance Σ w_k (Σ_k + μ_k μ_kᵀ) − μ μᵀ (both computed here), whether its
    parameters are set or fitted. (Mutations: weights ignored, the Cholesky factor transposed — each fails.)"""
    w = torch.tensor([0.8, 0.2], dtype=torch.float64)
    mu = torch.tensor([[0.0, 0.0], [4.0, 1.0]], dtype=torch.float64)
    cov = torch.tensor([[[1.0, 0.8], [0.8, 1.0]], [[0.5, -0.3], [-0.3, 2.0]]], dtype=torch.float64)
    mean = (w[:, None] * mu).sum(0)
    second = (w[:, None, None] * (cov + mu[:, :, None] * mu[:, None, :])).sum(0)
    mix_cov = second - torch.outer(mean, mean)

    sampler = S.GMMSampler(n_components=2)
    sampler.latent_dim, sampler.weights, sampler.means = 2, w, mu
    sampler.chols = torch.linalg.cholesky(cov)
    draws = sampler.sample(200_000, torch.Generator().manual_seed(0)).double()
    torch.testing.assert_close(draws.mean(0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(draws.T), mix_cov, atol=0.03, rtol=0)

    fitted = S.GMMSampler(n_components=2, max_codes=20_000).fit(None, draws[:20_000].float())
    redrawn = fitted.sample(100_000, torch.Generator().manual_seed(1)).double()
    torch.testing.assert_close(redrawn.mean(0), mean, atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(redrawn.T), mix_cov, atol=0.08, rtol=0)


# ------------------------------------------------------------------------------------------------ BD-rate


def test_gmm_over_a_pca_of_wide_codes_keeps_their_mean_and_covariance():
    """Codes of 12 dims that live on a 2-d plane (offset from 0): fitted on 2 principal components
    (max_dims=2, test/generation/gmm_dims), the draws have the codes' mean and covariance.
    (Mutation: the PCA mean not added back fails here.)"""
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(12, 2, generator=g, dtype=torch.float64))[0].T  # (2, 12)
    latent = torch.randn(5000, 2, generator=g, dtype=torch.float64) * torch.tensor(
        [2.0, 0.5], dtype=torch.float64
    )
    codes = (latent @ basis + 3.0).float()
    sampler = S.GMMSampler(n_components=1, max_dims=2).fit(None, codes)
    assert sampler.fit_dims == 2 and sampler.latent_dim == 12
    draws = sampler.sample(20000, torch.Generator().manual_seed(1)).double()
    torch.testing.assert_close(draws.mean(0), codes.double().mean(0), atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(draws.T), torch.cov(codes.double().T), atol=0.08, rtol=0)
