"""codec2: the hyperprior codec (Gaussian conditional by hand, its files equal its rate, clamping), one file per
image (header 5–8 bytes, refusals naming the file), aelab-compress --per-image / aelab-decompress of a folder,
and the default evaluation of a codec checkpoint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aelab.checkpoint import load_model, state_fingerprint
from aelab.codecs import bitstream
from aelab.models.components import GaussianConditional


def test_gaussian_conditional_likelihood_is_the_hand_value():
    """p(ŷ) = Φ((ŷ − μ + ½)/σ) − Φ((ŷ − μ − ½)/σ), by math.erf; scales below the bound count as the bound."""
    gc = GaussianConditional(scale_bound=0.11)

    def phi(t: float) -> float:
        return 0.5 * (1 + math.erf(t / math.sqrt(2)))

    y = torch.tensor([0.0, 2.0, -3.0, 1.0]).view(1, 4, 1, 1)
    mu = torch.tensor([0.3, 0.0, -1.0, 1.0]).view(1, 4, 1, 1)
    sigma = torch.tensor([1.0, 0.5, 2.0, 0.01]).view(1, 4, 1, 1)
    p = gc.likelihood(y, sigma, mu).flatten().tolist()
    for i in range(4):
        s = max(sigma.flatten()[i].item(), 0.11)
        d = y.flatten()[i].item() - mu.flatten()[i].item()
        assert p[i] == pytest.approx(phi((d + 0.5) / s) - phi((d - 0.5) / s), rel=1e-5)
    # the table: the first entry at least as large as each scale
    idx = gc.indexes(torch.tensor([0.05, 0.11, 0.12, 1.0, 300.0]))
    table = gc.table.tolist()
    assert idx[0] == 0 and idx[1] == 0 and table[idx[2]] >= 0.12 > table[idx[2] - 1]
    assert table[idx[3]] >= 1.0 > table[idx[3] - 1] and idx[4] == len(table) - 1


def _tiny_hyperprior(mean: bool = True, max_symbol: int = 1023):
    from hydra.utils import instantiate

    from aelab.utils.config import compose_config

    cfg = compose_config(
        "train",
        ["model=codec_hyperprior", f"model.mean={str(mean).lower()}", "model.latent_channels=8",
         "model.hidden_channels=16", "model.hyper_channels=4", f"model.gaussian_conditional.max_symbol={max_symbol}"],
    )  # fmt: skip
    torch.manual_seed(0)
    return instantiate(cfg.model).eval()


def _images(n: int, seed: int = 0, size=(28, 28)):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(1, *size, generator=g) * 255).to(torch.uint8) for _ in range(n)]


@pytest.mark.parametrize("mean", [True, False])
def test_both_formats_round_trip_exactly(mean):
    model = _tiny_hyperprior(mean)
    images = _images(9) + _images(2, 1, (40, 33))
    fp = state_fingerprint(model.state_dict())
    data, recon = bitstream.encode(model, images, fp, batch_size=4)
    assert all(torch.equal(a, b) for a, b in zip(recon, bitstream.decode(model, data, "f", fp), strict=True))
    files, recon_each = bitstream.encode_each(model, images, fp, batch_size=4)
    decoded = bitstream.decode_each(model, [(f, str(i)) for i, f in enumerate(files)], fp, batch_size=4)
    assert all(torch.equal(a, b) for a, b in zip(recon_each, decoded, strict=True))
    # one image decoded alone (a user's one file) gives the same image
    assert torch.equal(bitstream.decode_each(model, [(files[3], "3")], fp)[0], decoded[3])
    with torch.no_grad():  # the reconstructions are the model's own of its quantized latents
        x = torch.stack(images[:9]).float() / 255
        assert torch.equal(torch.stack(recon[:9]), bitstream.to_uint8(model.reconstruct(x)))


def test_a_per_image_header_is_at_most_8_bytes():
    model = _tiny_hyperprior()
    fp = state_fingerprint(model.state_dict())
    (train,), _ = bitstream.encode_each(model, _images(1), fp)
    (small,), _ = bitstream.encode_each(model, _images(1, 1, (30, 20)), fp)
    (large,), _ = bitstream.encode_each(model, _images(1, 2, (300, 260)), fp)
    assert [bitstream.per_image_header_size(d) for d in (train, small, large)] == [5, 7, 8]
    for data, size in ((train, (28, 28)), (small, (30, 20)), (large, (300, 260))):
        assert bitstream.read_per_image(data, "f", fp, training_size=(28, 28))[1] == size
    with pytest.raises(ValueError, match="4095 px"):
        bitstream.encode_each(model, [torch.zeros(1, 4100, 8, dtype=torch.uint8)], fp)


def test_a_latent_outside_the_coded_range_is_clamped_and_decoded_as_the_encoder_reconstructed_it():
    model = _tiny_hyperprior(max_symbol=1)
    with torch.no_grad():  # a large analysis gain: |y − μ| ≫ 1
        model.encoder.net[-1].weight.mul_(40)
    images = _images(4)
    fp = state_fingerprint(model.state_dict())
    files, recon = bitstream.encode_each(model, images, fp)
    decoded = bitstream.decode_each(model, [(f, "f") for f in files], fp)
    assert all(torch.equal(a, b) for a, b in zip(recon, decoded, strict=True))
    with torch.no_grad():
        x = torch.stack(images).float() / 255
        unclamped = bitstream.to_uint8(model.reconstruct(x))
    assert not torch.equal(torch.stack(recon), unclamped)  # clamping happened, and the decoder followed it


@pytest.fixture(scope="module")
def hyperprior_ckpt(tmp_path_factory, fake_data_dir):
    from aelab.train import train
    from conftest import SMALL, compose_cfg

    run = tmp_path_factory.mktemp("hyperprior")
    overrides = [*SMALL, "model=codec_hyperprior", "callbacks=minimal", "trainer.max_epochs=3",
                 "model.latent_channels=8", "model.hidden_channels=16", "model.hyper_channels=4",
                 "model.lmbda=0.003"]  # fmt: skip
    train(compose_cfg("train", [o for o in overrides if not o.startswith("callbacks.")], run, fake_data_dir))
    return run / "checkpoints" / "last.ckpt"


def _test_images(ckpt):
    from aelab.data import MNISTDataModule

    _, run_cfg, _ = load_model(ckpt)
    return list(MNISTDataModule(run_cfg.data.data_dir, val_size=100, download=False).split_tensors("test")[0])


def test_a_trained_hyperprior_file_is_its_rate_estimate_within_1_percent(hyperprior_ckpt):
    model, _, _ = load_model(hyperprior_ckpt)
    images = _test_images(hyperprior_ckpt)
    fp = state_fingerprint(model.state_dict())
    data, _ = bitstream.encode(model, images, fp)
    with torch.no_grad():
        bits = model.rate_bits(torch.stack(images).float() / 255).sum().item()
    header = bitstream._HEAD.size + 4 + bitstream._TAIL.size
    assert abs((len(data) - header) - bits / 8) <= 0.01 * bits / 8 + 4


@pytest.mark.parametrize("damage, message", [
    ("truncated", "truncated or corrupted"), ("corrupted", "truncated or corrupted"),
    ("channels", "3-channel image, the codec codes 1-channel"), ("foreign", "another checkpoint"),
    ("garbage", "not an aelab per-image codec file"),
])  # fmt: skip
def test_per_image_files_compress_decompress_and_refuse_broken_or_foreign_ones(
    hyperprior_ckpt, tmp_path, capsys, damage, message
):
    from PIL import Image

    from aelab.compress import compress, decompress

    out = tmp_path / "files"
    assert compress([str(hyperprior_ckpt), "--per-image", "--out", str(out)]) == 0
    files = sorted(out.glob("*.aelc"))
    images = _test_images(hyperprior_ckpt)
    assert len(files) == len(images) and files[0].name == "00000.aelc"
    size = sum(f.stat().st_size for f in files)
    assert f"{size} bytes, {size / len(files):.2f} bytes/image" in capsys.readouterr().out
    png = tmp_path / "png"
    assert decompress([str(hyperprior_ckpt), str(out), "--out-dir", str(png)]) == 0
    model, _, _ = load_model(hyperprior_ckpt)
    _, recon = bitstream.encode_each(model, images, state_fingerprint(model.state_dict()))
    for i in (0, 7, len(files) - 1):  # the PNGs are the encoder's reconstructions, bit for bit
        with Image.open(png / f"{i:05d}.png") as img:
            assert torch.equal(torch.from_numpy(np.asarray(img).copy())[None], recon[i])
    # a damaged or foreign file among them: refused naming it, nothing written
    victim = files[5]
    data = bytearray(victim.read_bytes())
    if damage == "truncated":
        data = data[:-2]
    elif damage == "corrupted":
        data[-1] ^= 0x10
    elif damage == "channels":
        data[0] = (data[0] & 0xF8) | 3
    elif damage == "foreign":
        data[1] ^= 0xFF  # another checkpoint's model tag
    else:
        data = bytearray(b"\x00" + np.random.default_rng(0).bytes(30))
    victim.write_bytes(bytes(data))
    png2 = tmp_path / "png2"
    assert decompress([str(hyperprior_ckpt), str(out), "--out-dir", str(png2)]) == 2
    err = capsys.readouterr().err
    assert str(victim) in err and message in err
    assert not png2.exists()


def test_the_default_eval_of_a_codec_runs_the_codec_sections_only(hyperprior_ckpt, tmp_path, fake_data_dir):
    from aelab.eval import evaluate
    from conftest import compose_cfg

    model, _, _ = load_model(hyperprior_ckpt)
    cfg = compose_cfg(
        "eval",
        [f"ckpt_path={hyperprior_ckpt}", "trainer.accelerator=cpu", "suite.codec_images=60"],
        tmp_path,
        fake_data_dir,
    )
    metrics, _ = evaluate(cfg)
    assert metrics["test/codec/roundtrip_exact"] == 1.0 and metrics["test/codec/num_images"] == 60
    files, _ = bitstream.encode_each(
        model, _test_images(hyperprior_ckpt)[:60], state_fingerprint(model.state_dict())
    )
    assert metrics["test/codec/bytes_per_image"] == pytest.approx(sum(len(f) for f in files) / 60)
    assert metrics["test/codec/header_bytes"] == 5  # the training size: no size field
    assert metrics["test/compression/codecs_num_images"] == 60  # the classical codecs on the same images
    sections = {k.split("/")[1] for k in metrics if k.startswith("test/")}
    assert not sections & {"generation", "probe", "anomaly", "denoising", "likelihood", "latent"}


def test_photo_crops_are_fresh_every_epoch_seeded_and_flipped(tmp_path):
    from aelab.data import PhotoCropsDataModule
    from aelab.data.bundled import random_crops
    from aelab.errors import ConfigError

    pytest.importorskip("skimage")
    dm = PhotoCropsDataModule(str(tmp_path), crop_size=128, crops_per_epoch=16, val_crops=4, batch_size=8)
    loader = dm.train_dataloader()
    assert len(loader) == 2
    first = torch.cat([x for x, _ in loader])
    again = torch.cat([x for x, _ in loader])
    loader.sampler.set_epoch(1)
    second = torch.cat([x for x, _ in loader])
    assert first.shape == (16, 3, 128, 128) and torch.equal(first, again) and not torch.equal(first, second)
    assert dm.split_tensors("val")[0].shape == (4, 3, 128, 128)
    # every crop is a window of a photo, flipped or not: photos of distinct pixel values (0..239) locate it
    photos = [
        torch.arange(120, dtype=torch.uint8).view(1, 10, 12),
        120 + torch.arange(120, dtype=torch.uint8).view(1, 12, 10),
    ]
    flipped = 0
    for crop in random_crops(photos, 40, 4, torch.Generator().manual_seed(0)):
        plain, mirrored = crop[0, 0, 0], crop[0, 0, -1]
        hits = []
        for start, c in ((plain, crop), (mirrored, crop.flip(-1))):
            photo = photos[int(start) // 120]
            r, col = divmod(int(start) % 120, photo.shape[2])
            window = photo[:, r : r + 4, col : col + 4]
            hits.append(window.shape == c.shape and torch.equal(window, c))
        assert any(hits)
        flipped += not hits[0]
    assert 5 < flipped < 35  # about half flipped
    with pytest.raises(ConfigError, match="crop_size"):
        PhotoCropsDataModule(str(tmp_path), crop_size=400).setup()


def test_whole_images_are_reflect_padded_to_the_grid():
    import torch.nn.functional as F

    from aelab.models.components import AnalysisTransform
    from aelab.models.components.transforms import pad_to_grid

    x = torch.rand(1, 3, 30, 21)
    padded = pad_to_grid(x, 16)
    assert padded.shape[-2:] == (32, 32)
    assert torch.equal(padded, F.pad(x, (5, 6, 1, 1), mode="reflect"))
    g_a = AnalysisTransform((3, 32, 32), 8, 4, stages=4)
    assert torch.equal(g_a(x), g_a.net(padded))
    tiny = pad_to_grid(torch.rand(1, 1, 3, 3), 16)  # too small to reflect: replicated
    assert tiny.shape[-2:] == (16, 16) and torch.isfinite(tiny).all()
