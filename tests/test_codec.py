"""The learned codec: its entropy model, real files whose size is the rate, exact round trips, refusals of
broken or foreign files, the rate–distortion comparison (BD-rate)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aelab.checkpoint import load_model, state_fingerprint
from aelab.codecs import bitstream
from aelab.evaluation.ratedistortion import bd_rate, rate_at
from aelab.models.components import EntropyBottleneck


def test_factorized_prior_is_a_distribution_over_the_integers():
    torch.manual_seed(0)
    prior = EntropyBottleneck(3)
    with torch.no_grad():
        for layer in prior.layers:  # a trained-looking, off-centre density
            layer.bias.add_(torch.randn_like(layer.bias))
        grid = torch.arange(-1000, 1001, dtype=torch.float32).view(1, 1, 1, -1).expand(1, 3, 1, -1)
        p = prior.likelihood(grid)[0, :, 0]  # (3, 2001)
        assert torch.allclose(p.sum(1), torch.ones(3), atol=1e-4)
        lo, pmfs = prior.coding_tables(tail=1e-9)
        for m in range(3):
            support = torch.arange(lo[m], lo[m] + len(pmfs[m]))
            inside = p[m, support + 1000].double().numpy()
            assert abs(pmfs[m].sum() - 1) < 1e-9 and np.allclose(pmfs[m][1:-1], inside[1:-1], atol=1e-6)


@pytest.fixture(scope="module")
def codec_ckpt(tmp_path_factory, fake_data_dir):
    from aelab.train import train
    from conftest import SMALL, compose_cfg

    run = tmp_path_factory.mktemp("codec")
    overrides = [*SMALL, "model=codec", "callbacks=minimal", "trainer.max_epochs=2", "model.latent_channels=8",
                 "model.hidden_channels=16"]  # fmt: skip
    train(compose_cfg("train", [o for o in overrides if not o.startswith("callbacks.")], run, fake_data_dir))
    return run / "checkpoints" / "last.ckpt"


def test_a_file_round_trips_exactly_and_its_size_is_the_models_rate(codec_ckpt, fake_data_dir):
    from aelab.data import MNISTDataModule

    model, _, _ = load_model(codec_ckpt)
    images = list(MNISTDataModule(str(fake_data_dir), val_size=100, download=False).split_tensors("test")[0])
    fp = state_fingerprint(model.state_dict())
    data, recon = bitstream.encode(model, images, fp)
    decoded = bitstream.decode(model, data, "f.aelc", fp)
    assert all(torch.equal(a, b) for a, b in zip(recon, decoded, strict=True))
    # the reconstructions are the model's own of the rounded latents
    with torch.no_grad():
        x = torch.stack(images).float() / 255
        assert torch.equal(torch.stack(recon), bitstream.to_uint8(model.reconstruct(x)))
        bits = -torch.log2(model.entropy_model.likelihood(model.latents(x))).sum().item()
    stream_bytes = len(data) - (bitstream._HEAD.size + 4 + bitstream._TAIL.size)
    assert (
        bits / 8 <= stream_bytes * 1.02 + 8 and stream_bytes <= bits / 8 * 1.05 + 8
    )  # the coder codes the density


def test_whole_images_of_several_sizes_in_one_file(codec_ckpt):
    model, _, _ = load_model(codec_ckpt)
    g = torch.Generator().manual_seed(0)
    images = [
        (torch.rand(1, h, w, generator=g) * 255).to(torch.uint8) for h, w in ((28, 28), (40, 33), (17, 50))
    ]
    fp = state_fingerprint(model.state_dict())
    data, recon = bitstream.encode(model, images, fp)
    decoded = bitstream.decode(model, data, "f", fp)
    assert [d.shape for d in decoded] == [i.shape for i in images]
    assert all(torch.equal(a, b) for a, b in zip(recon, decoded, strict=True))


@pytest.mark.parametrize("damage, message", [
    ("truncated", "truncated"), ("corrupted", "CRC-32"), ("version", "format version 9"),
    ("foreign", "another checkpoint"), ("garbage", "not an aelab codec file"),
])  # fmt: skip
def test_broken_or_foreign_files_are_refused_and_nothing_is_written(
    codec_ckpt, fake_data_dir, tmp_path, capsys, damage, message
):
    from aelab.compress import compress, decompress

    out = tmp_path / "test.aelc"
    assert compress([str(codec_ckpt), "--out", str(out)]) == 0
    data = bytearray(out.read_bytes())
    if damage == "truncated":
        data = data[:-7]
    elif damage == "corrupted":
        data[-3] ^= 0xFF
    elif damage == "version":
        data[4] = 9
    elif damage == "foreign":
        data[6:38] = bytes(32)  # another checkpoint's fingerprint
    else:
        data = bytearray(np.random.default_rng(0).bytes(500))
    out.write_bytes(bytes(data))
    png = tmp_path / "png"
    assert decompress([str(codec_ckpt), str(out), "--out-dir", str(png)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and message in err
    assert not png.exists()


def test_compress_and_decompress_a_codec_checkpoint(codec_ckpt, tmp_path, capsys):
    from PIL import Image

    from aelab.compress import compress, decompress

    out = tmp_path / "test.aelc"
    assert compress([str(codec_ckpt), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    size = out.stat().st_size
    assert f"{size} bytes, {size / 200:.2f} bytes/image" in printed  # the file is the rate, header included
    assert decompress([str(codec_ckpt), str(out), "--out-dir", str(tmp_path / "png"), "--limit", "3"]) == 0
    from aelab.data import MNISTDataModule

    model, run_cfg, _ = load_model(codec_ckpt)
    images = list(
        MNISTDataModule(run_cfg.data.data_dir, val_size=100, download=False).split_tensors("test")[0]
    )
    _, recon = bitstream.encode(model, images, state_fingerprint(model.state_dict()))
    for i in range(3):  # the PNGs are the encoder's reconstructions, bit for bit
        with Image.open(tmp_path / "png" / f"{i:05d}.png") as img:
            assert img.size == (28, 28) and img.mode == "L"
            assert torch.equal(torch.from_numpy(np.asarray(img).copy())[None], recon[i])
    assert len(list((tmp_path / "png").glob("*.png"))) == 3


def test_bd_rate_of_known_curves():
    anchor = [(r, p) for r, p in zip([10, 20, 40, 80, 160], [20, 24, 28, 32, 36], strict=True)]
    half = [(r / 2, p) for r, p in anchor]
    assert bd_rate(anchor, half) == pytest.approx(-50.0, abs=1e-6)
    assert bd_rate(anchor, anchor) == pytest.approx(0.0, abs=1e-9)
    assert bd_rate(anchor, [(r * 3, p) for r, p in anchor]) == pytest.approx(200.0, abs=1e-6)
    assert bd_rate(anchor, [(r, p + 100) for r, p in anchor]) is None  # no common PSNR range
    assert rate_at(anchor, 26) == pytest.approx(math.sqrt(20 * 40))
