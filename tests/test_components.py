"""Encoders, decoders, corruptions and the KL formula."""

from __future__ import annotations

import math

import pytest
import torch

from aelab.models.components import (
    ConvDecoder,
    ConvEncoder,
    GaussianNoise,
    Masking,
    MLPDecoder,
    MLPEncoder,
    SaltAndPepper,
)
from aelab.models.objectives import gaussian_kl


@pytest.mark.parametrize(
    ("enc", "dec"),
    [
        (MLPEncoder(out_dim=8, hidden_dims=[64]), MLPDecoder(latent_dim=8, hidden_dims=[64])),
        (MLPEncoder(out_dim=8, hidden_dims=[]), MLPDecoder(latent_dim=8, hidden_dims=[])),
        (ConvEncoder(out_dim=8, channels=[8, 16]), ConvDecoder(latent_dim=8, channels=[16, 8])),
    ],
)
def test_encoder_decoder_shapes(enc, dec):
    x = torch.rand(5, 1, 28, 28)
    z = enc(x)
    assert z.shape == (5, 8) and enc.out_dim == 8
    assert dec(z).shape == (5, 1, 28, 28) and dec.latent_dim == 8


def test_conv_encoder_reaches_7x7():
    enc = ConvEncoder(out_dim=4, channels=[8, 16])
    assert enc.features(torch.rand(2, 1, 28, 28)).shape == (2, 16, 7, 7)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 30, 17), (1, 8, 8), (3, 5, 9)])
def test_conv_parts_pad_and_crop_any_size(shape):
    """Sizes that are not a multiple of 2**stages are zero-padded on the way in and cropped on the way out."""
    from aelab.models.components.conv import grid_padding

    enc = ConvEncoder(out_dim=6, channels=[8, 16, 32], in_shape=shape)
    dec = ConvDecoder(latent_dim=6, channels=[32, 16, 8], out_shape=shape)
    x = torch.rand(2, *shape)
    assert enc(x).shape == (2, 6) and dec(enc(x)).shape == (2, *shape)
    left, right, top, bottom = grid_padding(shape[1], shape[2], 8)
    assert (shape[1] + top + bottom) % 8 == 0 and (shape[2] + left + right) % 8 == 0
    assert abs(top - bottom) <= 1 and abs(left - right) <= 1
    # the padding is zeros around the image: the first stage sees exactly the padded image
    padded = torch.nn.functional.pad(x, (left, right, top, bottom))
    assert torch.equal(enc.features[0](padded), enc.features[0](torch.nn.functional.pad(x, enc.padding)))


def test_conv_parts_leave_a_multiple_of_the_grid_alone():
    enc = ConvEncoder(channels=[8, 16], in_shape=(1, 28, 28))
    dec = ConvDecoder(channels=[16, 8], out_shape=(1, 28, 28))
    assert enc.padding == (0, 0, 0, 0) and dec._crop is None


def test_unknown_activation_lists_choices():
    with pytest.raises(ValueError, match="relu"):
        MLPEncoder(activation="swishy")


def test_mlp_encoder_out_activation():
    enc = MLPEncoder(out_dim=16, hidden_dims=[], out_activation="relu")
    assert (enc(torch.rand(4, 1, 28, 28) - 0.5) >= 0).all()


def test_masking_drops_the_requested_fraction():
    x = torch.ones(64, 1, 28, 28)
    out = Masking(p=0.3)(x, torch.Generator().manual_seed(0))
    assert abs((out == 0).float().mean().item() - 0.3) < 0.01


def test_salt_and_pepper_statistics():
    x = torch.full((64, 1, 28, 28), 0.5)
    out = SaltAndPepper(p=0.2)(x, torch.Generator().manual_seed(0))
    assert abs((out != 0.5).float().mean().item() - 0.2) < 0.01
    assert abs((out == 1).float().mean().item() - 0.1) < 0.01
    assert abs((out == 0).float().mean().item() - 0.1) < 0.01


def test_gaussian_noise_std_and_clip():
    x = torch.full((64, 1, 28, 28), 0.5)
    out = GaussianNoise(sigma=0.2)(x, torch.Generator().manual_seed(0))
    assert abs((out - x).std().item() - 0.2) < 0.005
    clipped = GaussianNoise(sigma=1.0, clip=True)(x, torch.Generator().manual_seed(0))
    assert clipped.min() >= 0 and clipped.max() <= 1
    unclipped = GaussianNoise(sigma=1.0)(x, torch.Generator().manual_seed(0))
    assert unclipped.min() < 0 and unclipped.max() > 1


def test_seeded_corruption_is_reproducible():
    x = torch.rand(4, 1, 28, 28)
    c = GaussianNoise(0.5)
    assert torch.equal(c(x, torch.Generator().manual_seed(3)), c(x, torch.Generator().manual_seed(3)))
    assert not torch.equal(c(x), c(x))


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_probabilities_are_checked(bad):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Masking(p=bad)


def test_kl_closed_form_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(3, 4, generator=g, dtype=torch.float64)
    logvar = torch.randn(3, 4, generator=g, dtype=torch.float64) * 0.5
    n = 400_000
    std = (0.5 * logvar).exp()
    z = mu + std * torch.randn(n, 3, 4, generator=g, dtype=torch.float64)
    log_q = (-0.5 * ((z - mu) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    log_p = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(-1)
    mc = (log_q - log_p).mean(0)
    torch.testing.assert_close(gaussian_kl(mu, logvar), mc, atol=0.02, rtol=0.01)
    assert gaussian_kl(torch.zeros(1, 5), torch.zeros(1, 5)).item() == 0.0


@pytest.mark.parametrize(
    "shape, grid, stages",
    [((1, 8, 8), (4, 4), 1), ((1, 28, 28), (7, 7), 2), ((3, 32, 32), (8, 8), 2), ((1, 6, 40), (3, 20), 1)],
)
def test_conv_parts_take_the_stages_the_image_size_allows(shape, grid, stages):
    """min_grid=4: stages are dropped while the latent map would be under 4 px a side (at least one stays); the
    decoder drops the same number from its low-resolution end and still returns the image size."""
    enc = ConvEncoder(out_dim=8, channels=[16, 32], in_shape=shape, min_grid=4)
    dec = ConvDecoder(latent_dim=8, channels=[32, 16], out_shape=shape, min_grid=4)
    convs = [m for m in enc.features if isinstance(m, torch.nn.Conv2d)]
    deconvs = [m for m in dec.features if isinstance(m, torch.nn.ConvTranspose2d)]
    assert enc.grid == grid and len(convs) == len(deconvs) == stages
    assert convs[-1].out_channels == deconvs[0].in_channels  # mirrors
    x = torch.rand(2, *shape)
    assert dec(enc(x)).shape == x.shape
    assert (
        len(
            [
                m
                for m in ConvEncoder(in_shape=(1, 8, 8), channels=[16, 32]).features
                if isinstance(m, torch.nn.Conv2d)
            ]
        )
        == 2
    )


def test_the_loss_follows_the_data(make_cfg):
    """BCE / a Bernoulli likelihood for binary data (MNIST), MSE / a Gaussian one otherwise, unless asked."""
    for data, loss, likelihood in (("mnist", "bce", "bernoulli"), ("digits", "mse", "gaussian"),
                                   ("photo_patches", "mse", "gaussian"), ("fashion_mnist", "mse", "gaussian")):  # fmt: skip
        assert make_cfg([f"data={data}", "model=conv_ae"], small=False).model.loss == loss
        assert make_cfg([f"data={data}", "model=vae"], small=False).model.likelihood == likelihood
    assert make_cfg(["data=digits", "model=ae", "model.loss=bce"], small=False).model.loss == "bce"
    cfg = make_cfg(["data=digits", "model=conv_ae"], small=False)
    assert cfg.model.encoder.min_grid == cfg.model.decoder.min_grid == 4
