"""Right by reference: each layer, loss and formula from a paper pinned against a value computed here
independently (a hand calculation on a toy input, the paper's formula written out, or the reference package).

Each test names the mutation it was checked against in its docstring."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from aelab import samplers as S
from aelab.evaluation.ratedistortion import bd_rate
from aelab.models import IWAE, VQVAE, WAE
from aelab.models.components import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, VectorQuantizer
from aelab.models.components.gdn import GDN
from aelab.models.wae import imq_mmd
from helpers import batch


# ------------------------------------------------------------------------------------------------ GDN
def _cross_channel_fit(gdn: GDN, steps: int = 30) -> None:
    """A toy loss that needs cross-channel normalization: channel 1 divided by channel 0's energy."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, gdn.beta.numel(), 4, 4, generator=g)
    target = x.clone()
    target[:, 1] = x[:, 1] / torch.sqrt(1.0 + x[:, 0] ** 2)
    opt = torch.optim.Adam(gdn.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        (gdn(x) - target).pow(2).mean().backward()
        opt.step()


def _dependence(gdn: GDN, i: int, j: int) -> float:
    """|∂ y_i / ∂ x_j| summed over a random input: 0 when output channel i ignores input channel j."""
    x = torch.randn(8, gdn.beta.numel(), 3, 3, generator=torch.Generator().manual_seed(1), requires_grad=True)
    (grad,) = torch.autograd.grad(gdn(x)[:, i].sum(), x)
    return grad[:, j].abs().sum().item()


def test_gdn_is_the_papers_formula_with_compressais_parametrization():
    """y_i = x_i / sqrt(β_i + Σ_j γ_ij x_j²), by hand on a 2-channel pixel; β and γ read back as set, γ_ij = 0 at
    init off the diagonal. (Mutation: IGDN dividing, or γ transposed, fails here.)"""
    gdn, igdn = GDN(2), GDN(2, inverse=True)
    beta, gamma = torch.tensor([1.0, 0.5]), torch.tensor([[0.1, 0.3], [0.2, 0.4]])
    for layer in (gdn, igdn):
        with torch.no_grad():
            layer.beta.copy_(layer.beta_reparam.init(beta))
            layer.gamma.copy_(layer.gamma_reparam.init(gamma))
        b, gm = layer.effective()
        torch.testing.assert_close(b, beta, atol=1e-6, rtol=0)
        torch.testing.assert_close(gm, gamma, atol=1e-6, rtol=0)
    x = torch.tensor([2.0, -1.0]).view(1, 2, 1, 1)
    d0 = math.sqrt(1.0 + 0.1 * 4 + 0.3 * 1)  # β_0 + γ_00 x_0² + γ_01 x_1²
    d1 = math.sqrt(0.5 + 0.2 * 4 + 0.4 * 1)
    torch.testing.assert_close(gdn(x).flatten(), torch.tensor([2.0 / d0, -1.0 / d1]))
    torch.testing.assert_close(igdn(x).flatten(), torch.tensor([2.0 * d0, -1.0 * d1]))
    _, g0 = GDN(3).effective()
    assert torch.equal(g0 - torch.diag(torch.diag(g0)), torch.zeros(3, 3))


def test_gdn_learns_cross_channel_normalization():
    """After a few optimizer steps on a toy loss, output channel 1 depends on input channel 0 (γ_10 > 0).
    (Mutation: γ stored as √γ and squared, as before — the off-diagonal gradient is exactly 0 — fails here.)"""
    gdn = GDN(2)
    assert _dependence(gdn, 1, 0) == 0.0  # γ = 0.1·I at init
    _cross_channel_fit(gdn)
    assert gdn.effective()[1][1, 0] > 1e-3
    assert _dependence(gdn, 1, 0) > 1e-3


def test_the_codecs_gdn_learns_across_channels(make_cfg):
    """The codec's own GDN (from its config) after a few steps: output channel 1 depends on input channel 0."""
    codec = instantiate(make_cfg(["model=codec"]).model)
    gdn = next(m for m in codec.encoder.modules() if isinstance(m, GDN))
    igdn = next(m for m in codec.decoder.modules() if isinstance(m, GDN))
    assert igdn.inverse and not gdn.inverse
    _cross_channel_fit(gdn)
    assert _dependence(gdn, 1, 0) > 1e-3


def test_gdn_and_entropy_model_run_in_float32_under_autocast(make_cfg):
    """Under bf16 autocast the GDN output and the latents' likelihood equal their float32 values.
    (Mutation: the autocast guard removed — bf16 matmul and conv — fails here.)"""
    codec = instantiate(make_cfg(["model=codec"]).model).eval()
    gdn = GDN(8)
    with torch.no_grad():
        gdn.gamma.add_(0.05 * torch.rand(8, 8, generator=torch.Generator().manual_seed(0)))
    x = torch.randn(2, 8, 5, 5, generator=torch.Generator().manual_seed(1)) * 3
    y = 4 * torch.randn(2, codec.entropy_model.channels, 3, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref_gdn, ref_p = gdn(x), codec.entropy_model.likelihood(y.round())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got_gdn, got_p = gdn(x), codec.entropy_model.likelihood(y.round().bfloat16())
    assert got_gdn.dtype == torch.float32 and got_p.dtype == torch.float32
    torch.testing.assert_close(got_gdn, ref_gdn, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_p, ref_p, rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------------------------------------------ codec loss
def test_codec_loss_is_rate_plus_lambda_255sq_mse_with_noise_in_training_and_rounding_in_eval(make_cfg):
    """loss = bpp + λ·255²·MSE on a known batch: bpp = −Σ log2 p(ŷ) / (B·H·W) with p the density's mass on
    [ŷ − ½, ŷ + ½] (from its cumulative, here), ŷ = y + U(−½, ½) in training and round(y) in eval.
    (Mutations: rounding in training, noise in eval, the 255² dropped, bits over C·H·W — each fails here.)"""
    codec = instantiate(make_cfg(["model=codec", "model.lmbda=0.02"]).model)
    x, _ = batch(4)
    em = codec.entropy_model

    def expected(y_hat: torch.Tensor) -> float:
        m = y_hat.shape[1]
        v = y_hat.permute(1, 0, 2, 3).reshape(m, -1)
        p = torch.sigmoid(em.logits_cdf(v + 0.5)) - torch.sigmoid(em.logits_cdf(v - 0.5))
        bits = -torch.log2(p.clamp_min(em.likelihood_bound)).sum()
        bpp = bits / (x.shape[0] * x.shape[-2] * x.shape[-1])
        x_hat = torch.sigmoid(codec.decoder(y_hat, tuple(x.shape[-2:])))
        return (bpp + 0.02 * 255**2 * (x_hat - x).pow(2).mean()).item()

    with torch.no_grad():
        y = codec.encoder(x)
        loss, x_hat, terms = codec.loss_terms(x, x, "val")
        assert loss.item() == pytest.approx(expected(torch.round(y)), rel=1e-5)
        assert terms["distortion"].item() == pytest.approx((x_hat - x).pow(2).mean().item(), rel=1e-5)
        noise = torch.rand(y.shape, generator=torch.Generator().manual_seed(7)) - 0.5
        train_loss, _, _ = codec.loss_terms(x, x, "train", torch.Generator().manual_seed(7))
        assert train_loss.item() == pytest.approx(expected(y + noise), rel=1e-5)
        assert train_loss.item() != pytest.approx(expected(torch.round(y)), rel=1e-3)


# ------------------------------------------------------------------------------------------------ WAE
def test_imq_mmd_of_two_point_sets_is_the_hand_value():
    """Unbiased MMD² with k(x, y) = C / (C + ‖x − y‖²), C = 2·d·s, on z = {(0,0), (1,0)}, p = {(0,1), (2,0)}.
    By hand with one scale s = 1 (C = 4): k_zz = 4/5, k_pp = 4/9, k_zp ∈ {4/5, 1/2, 2/3, 4/5};
    MMD² = 4/5 + 4/9 − 2 · (4/5 + 1/2 + 2/3 + 4/5) / 4 = −5/36. (Mutations: the diagonal kept, the biased
    estimator, C without the 2·d, the cross term without its factor 2 — each fails here.)"""
    z = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    p = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    assert imq_mmd(z, p, scales=(1.0,)).item() == pytest.approx(-5 / 36, abs=1e-6)

    # every scale of the default set, with the kernel sums written out pair by pair
    def k(a, b, c):
        return c / (c + sum((ai - bi) ** 2 for ai, bi in zip(a, b, strict=True)))

    zs, ps = z.tolist(), p.tolist()
    total = 0.0
    for s in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0):
        c = 2 * 2 * s
        total += k(zs[0], zs[1], c) + k(ps[0], ps[1], c)  # (2 + 2 off-diagonal pairs) / (n(n−1) = 2)
        total -= 2 * sum(k(a, b, c) for a in zs for b in ps) / 4
    assert imq_mmd(z, p).item() == pytest.approx(total, rel=1e-6)


def test_wae_loss_weighs_the_mmd_on_the_papers_scale():
    """loss = MSE + λ/(0.05·C·H·W)·MMD² (Tolstikhin et al.: 0.05·Σ‖x − x̂‖² + λ·MMD², divided by 0.05·C·H·W):
    λ = 10 on 1×28×28 applies 0.2551 to the MMD. (Mutation: λ applied as is — 39× too strong — fails here.)"""
    torch.manual_seed(0)
    wae = WAE(ConvEncoder(out_dim=8, channels=[8, 16]), ConvDecoder(latent_dim=8, channels=[16, 8]),
              latent_dim=8, loss="mse", mmd_coeff=10.0, cost_coeff=0.05)  # fmt: skip
    assert wae.mmd_weight(784) == pytest.approx(10 / 39.2)
    old = WAE(ConvEncoder(out_dim=8, channels=[8, 16]), ConvDecoder(latent_dim=8, channels=[16, 8]), latent_dim=8,
              mmd_coeff=10.0)  # fmt: skip
    assert old.mmd_weight(784) == 10.0  # a config from before the conversion keeps the loss it trained on
    x, _ = batch(16)
    with torch.no_grad():
        loss, x_hat, terms = wae.loss_terms(x, x, "val", torch.Generator().manual_seed(3))
        z = wae.encoder(x)
        prior = torch.randn(z.shape, generator=torch.Generator().manual_seed(3))
        mse = (x_hat - x).pow(2).mean().item()
        mmd = imq_mmd(z, prior).item()
    assert terms["mmd"].item() == pytest.approx(mmd, rel=1e-5) and abs(mmd) > 1e-3
    assert loss.item() == pytest.approx(mse + 10 / (0.05 * 784) * mmd, rel=1e-5)


# ------------------------------------------------------------------------------------------------ IWAE
def test_iwae_bound_at_k2_is_the_hand_log_mean_exp_and_model_k_is_the_loss_k():
    """L_2 = log ½ (w_1 + w_2), w_i = p(x|z_i) p(z_i) / q(z_i|x), with every density from torch.distributions
    and the log-mean-exp in float64 numpy; the training loss uses ``model.k`` samples.
    (Mutations: without − log k, or the loss at k = 1 — each fails here.)"""
    torch.manual_seed(0)
    model = IWAE(MLPEncoder(out_dim=8, hidden_dims=[32]), MLPDecoder(latent_dim=4, hidden_dims=[32]), latent_dim=4,
                 k=2)  # fmt: skip
    assert model.k == 2
    x, _ = batch(6)
    with torch.no_grad():
        got = model.iwae_bound(x, x, 2, torch.Generator().manual_seed(5))
        mu, logvar = model.posterior(x)
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
        loss, _, _ = model.loss_terms(x, x, "train", torch.Generator().manual_seed(5))
        assert loss.item() == pytest.approx(-float(hand.mean()), rel=1e-5)
        k1 = model.iwae_bound(x, x, 1, torch.Generator().manual_seed(5)).mean().item()
        assert abs(loss.item() + k1) > 1e-3


# ------------------------------------------------------------------------------------------------ VQ-VAE
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
        loss, x_hat, terms = model.loss_terms(x, x, "val")
        ze = model.encoder(x).reshape(-1, 3)
        codes = model.quantizer.embedding
        nearest = torch.stack(
            [codes[min(range(8), key=lambda k: float(((v - codes[k]) ** 2).sum()))] for v in ze]
        )
        commitment = ((ze - nearest) ** 2).mean().item()
        recon = (torch.sigmoid(model.decoder(nearest.reshape(5, 12))) - x).pow(2).mean().item()
    assert commitment > 1e-3
    assert terms["commitment"].item() == pytest.approx(0.25 * commitment, rel=1e-5)
    assert loss.item() == pytest.approx(recon + 0.25 * commitment, rel=1e-5)
    torch.testing.assert_close(x_hat, torch.sigmoid(model.decoder(nearest.reshape(5, 12))))


def test_vq_codebook_moves_in_training_and_stays_frozen_in_eval():
    """The EMA codebook is a buffer updated by the forward pass: in train mode it moves, in eval mode it does not.
    (Mutation: the update without ``self.training`` fails here.)"""
    model = _vqvae()
    x, _ = batch(5)
    before = model.quantizer.embedding.clone()
    model.eval()
    with torch.no_grad():
        model.loss_terms(x, x, "val")
        model.loss_terms(x, x, "train")
    assert torch.equal(model.quantizer.embedding, before)
    assert torch.equal(model.quantizer.ema_count, torch.ones(8))
    model.train()
    model.loss_terms(x, x, "train")
    assert not torch.equal(model.quantizer.embedding, before)


# ------------------------------------------------------------------------------------------------ samplers
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
def _cubic_curve(coeffs, psnrs):
    """(rate, psnr) points of a curve whose log-rate is exactly the cubic ``coeffs`` (highest power first)."""
    return [(float(np.exp(np.polyval(coeffs, p))), float(p)) for p in psnrs]


def test_bd_rate_of_curved_partly_overlapping_curves_is_the_hand_integral():
    """Two curves whose log-rates are exact, different cubics of PSNR, over partly overlapping PSNR ranges
    (anchor 20–36 dB, test 26–42 dB): BD-rate = exp(mean over the *shared* 26–36 dB of Δ log R) − 1, with the
    antiderivative written out here, and the reference ``bjontegaard`` package (method ``cubic``) agrees.
    (Mutations: a linear fit, integration over the anchor's range, a 2- or 3-point minimum — each fails here.)"""
    fa = [0.0008, -0.05, 1.4, -8.0]  # log R_anchor(p)
    ft = [-0.0006, 0.06, -1.6, 16.5]  # log R_test(p): another shape, not a scaled copy
    anchor = _cubic_curve(fa, np.linspace(20, 36, 6))
    test = _cubic_curve(ft, np.linspace(26, 42, 6))

    def antiderivative(c, p):  # ∫ (c0 p³ + c1 p² + c2 p + c3) dp
        return c[0] * p**4 / 4 + c[1] * p**3 / 3 + c[2] * p**2 / 2 + c[3] * p

    lo, hi = 26.0, 36.0
    mean_delta = (
        antiderivative(ft, hi) - antiderivative(ft, lo) - antiderivative(fa, hi) + antiderivative(fa, lo)
    ) / (hi - lo)
    hand = (math.exp(mean_delta) - 1) * 100
    assert abs(hand) > 5  # a real difference, not 0
    assert bd_rate(anchor, test) == pytest.approx(hand, rel=1e-6)
    bjontegaard = pytest.importorskip("bjontegaard")
    ref = bjontegaard.bd_rate(*zip(*anchor, strict=True), *zip(*test, strict=True), method="cubic",
                              min_overlap=0.0)  # fmt: skip
    assert bd_rate(anchor, test) == pytest.approx(ref, rel=1e-6)
    # a rising then flattening curve of 4 points: the least a cubic needs; 3 are refused
    assert bd_rate(anchor[:4], test[:4]) is not None
    assert bd_rate(anchor[:3], test) is None and bd_rate(anchor, test[:3]) is None
    assert bd_rate(_cubic_curve(fa, [20, 22, 24, 25]), test) is None  # no shared PSNR range


# ------------------------------------------------------------------------------------------------ sparse AE
def _sparse(**kw):
    from aelab.models import SparseAutoencoder

    torch.manual_seed(0)
    return SparseAutoencoder(MLPEncoder(out_dim=16, hidden_dims=[]), MLPDecoder(latent_dim=16, hidden_dims=[]),
                             latent_dim=16, k=3, loss="mse", **kw)  # fmt: skip


def test_sparse_ae_tied_init_and_unit_norm_decoder_columns():
    """Gao et al. 2024, App. A: the encoder starts as W_decᵀ; the decoder's column per latent stays at unit norm
    through a step (the gradient along each column is removed, then the columns renormalized).
    (Mutations: no renormalization after the step, no gradient projection — each fails here.)"""
    model = _sparse(tied_init=True, unit_norm_decoder=True)
    w = model.decoder_weight()
    assert torch.equal(model.encoder_weight(), w.T)
    torch.testing.assert_close(w.norm(dim=0), torch.ones(16))
    x, y = batch(8)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = model.training_step((x, y), 0)
    loss.backward()
    model.on_after_backward()
    g = w.grad.clone()
    torch.testing.assert_close((g * w).sum(0), torch.zeros(16), atol=1e-6, rtol=0)  # no radial component left
    opt.step()
    model.on_train_batch_end(None, (x, y), 0)
    torch.testing.assert_close(w.norm(dim=0), torch.ones(16), atol=1e-6, rtol=0)


def test_sparse_ae_auxk_loss_is_the_hand_value_over_dead_latents():
    """L_aux = MSE(sigmoid(s + W_dec z_aux), x), z_aux the aux_k largest pre-activations among the dead latents
    (ReLU), found here image by image with sorted(); a latent is dead after dead_steps silent steps, and the
    training loss adds aux_coeff · L_aux. (Mutations: z_aux over all latents, the loss without α — each fails.)"""
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
            order = sorted((j for j in range(16) if dead[j]), key=lambda j: -float(h[i, j]))[:2]
            za = torch.zeros(16)
            for j in order:
                za[j] = max(float(h[i, j]), 0.0)
            rows.append(za)
        e_hat = (torch.stack(rows) @ w.T).view_as(logits)
        hand = (torch.sigmoid(logits + e_hat) - x).pow(2).mean().item()
        assert model.aux_loss(h, logits, x, dead).item() == pytest.approx(hand, rel=1e-5)
        assert dead.any() and hand != pytest.approx(
            (torch.sigmoid(logits) - x).pow(2).mean().item(), rel=1e-4
        )
    model.train()
    loss, _, terms = model.loss_terms(x, x, "train")
    main = (torch.sigmoid(logits) - x).pow(2).mean().item()
    assert terms["sparsity/aux"].item() == pytest.approx(hand, rel=1e-5)  # dead_steps=0: silent once = dead
    assert loss.item() == pytest.approx(main + 0.5 * hand, rel=1e-5)
    assert torch.equal(model.steps_since_fired == 0, live)


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


def test_each_model_runs_the_sections_it_declares():
    """enabled: auto runs a section where the model lists it (eval_sections), true always, false never: no
    likelihood for a plain AE, no denoising for a VQ-VAE, only reconstruction, its files and the classical codecs
    for a codec. (Mutation: auto treated as true fails here.)"""
    from aelab.errors import ConfigError
    from aelab.evaluation.suite import applies
    from aelab.models import VAE, Autoencoder, LearnedCodec

    auto, on, off = {"enabled": "auto"}, {"enabled": True}, {"enabled": False}
    assert applies("likelihood", auto, VAE) and not applies("likelihood", auto, Autoencoder)
    assert applies("denoising", auto, Autoencoder) and not applies("denoising", auto, VQVAE)
    assert applies("denoising", on, VQVAE) and not applies("denoising", off, Autoencoder)
    assert {s for s in ("reconstruction", "compression", "classical_codecs", "codec", "features", "anomaly",
                        "likelihood", "denoising", "fid", "generation") if applies(s, auto, LearnedCodec)} == {
        "reconstruction", "codec", "classical_codecs"}  # fmt: skip
    assert not applies("anything", None, Autoencoder)
    with pytest.raises(ConfigError, match="auto, true or false"):
        applies("fid", {"enabled": "yes"}, Autoencoder)


def test_sparse_ae_refuses_a_decoder_that_is_not_one_linear_layer():
    from aelab.models import SparseAutoencoder

    with pytest.raises(ValueError, match="one Linear layer"):
        SparseAutoencoder(MLPEncoder(out_dim=16, hidden_dims=[]), MLPDecoder(latent_dim=16, hidden_dims=[32]),
                          latent_dim=16, k=3, aux_k=4)  # fmt: skip
