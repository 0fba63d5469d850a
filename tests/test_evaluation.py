"""Evaluation metrics against hand-computed values, and the suite end to end on synthetic data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from aelab.codecs import classical
from aelab.codecs import codes as code_files
from aelab.codecs import pca as pca_codec
from aelab.evaluation.features import knn_accuracy, linear_probe_accuracy
from aelab.evaluation.metrics import auroc, psnr_per_image, reconstruction_metrics
from aelab.models.objectives import importance_weighted_bound


def test_psnr_of_a_known_error():
    x = torch.full((3, 1, 28, 28), 0.5)
    # MSE 0.01 → 10·log10(1/0.01) = 20 dB; MSE 0.0001 → 40 dB
    torch.testing.assert_close(psnr_per_image(x + 0.1, x), torch.full((3,), 20.0))
    torch.testing.assert_close(psnr_per_image(x - 0.01, x), torch.full((3,), 40.0), rtol=1e-4, atol=1e-3)


def test_reconstruction_metrics_by_hand():
    x = torch.full((2, 1, 28, 28), 0.5)
    m = reconstruction_metrics(x.clone(), x)
    assert m["mse"] == 0.0 and m["ssim"] == pytest.approx(1.0)
    assert m["bce"] == pytest.approx(math.log(2), rel=1e-5)  # −[½ log ½ + ½ log ½]
    m = reconstruction_metrics(x + 0.1, x)
    assert m["mse"] == pytest.approx(0.01, rel=1e-4) and m["psnr"] == pytest.approx(20.0, rel=1e-4)


def test_auroc_of_a_known_ranking():
    scores = torch.tensor([0.1, 0.4, 0.35, 0.8])
    labels = torch.tensor([0, 0, 1, 1])
    # pairs (anomaly > normal): (0.35 > 0.1), (0.8 > 0.1), (0.8 > 0.4) = 3 of 4
    assert auroc(scores, labels) == pytest.approx(0.75)
    assert auroc(torch.tensor([0.0, 1.0]), torch.tensor([0, 1])) == 1.0
    # any scale: −ELBO scores in nats (a sigmoid would squash these all to 1.0 and give 0.5)
    assert auroc(scores * 1000 + 80, labels) == pytest.approx(0.75)
    assert auroc(-scores, labels) == pytest.approx(0.25)


def test_iwae_matches_the_closed_form_marginal_of_a_linear_gaussian_model():
    """p(z) = N(0, I₂), p(x|z) = N(Wz + b, s²I₃) ⇒ p(x) = N(b, WWᵀ + s²I₃)."""
    torch.manual_seed(0)
    W = torch.tensor([[1.0, 0.5], [-0.3, 0.8], [0.2, -1.3]], dtype=torch.float64)  # WᵀW diagonal
    b = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    s = 0.7
    x = torch.tensor([[0.5, -0.4, 1.2], [-1.0, 0.3, 0.0]], dtype=torch.float64)
    cov = W @ W.T + s**2 * torch.eye(3, dtype=torch.float64)
    exact = torch.distributions.MultivariateNormal(b, cov).log_prob(x)

    def log_lik(z):  # (S, B, 2) → (S, B)
        mean = z @ W.T + b
        return (-0.5 * ((x - mean) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)).sum(-1)

    def iwae_log_likelihood(posterior, k, chunk=None, generator=None):
        mu, logvar = posterior(x)
        return importance_weighted_bound(mu, logvar, log_lik, k, chunk, generator, dtype=torch.float64)

    def prior_as_posterior(x):  # a deliberately poor q: the prior itself
        return torch.zeros(len(x), 2, dtype=torch.float64), torch.zeros(len(x), 2, dtype=torch.float64)

    gen = torch.Generator().manual_seed(0)
    est = iwae_log_likelihood(prior_as_posterior, k=200_000, chunk=50_000, generator=gen)
    torch.testing.assert_close(est, exact, atol=0.02, rtol=0)
    elbo = torch.stack(
        [iwae_log_likelihood(prior_as_posterior, k=1, generator=gen) for _ in range(2000)]
    ).mean(0)
    assert (elbo < exact - 0.1).all()  # the ELBO is a strictly looser bound here

    # with the exact posterior every importance weight equals p(x): k = 1 is already exact
    prec = torch.eye(2, dtype=torch.float64) + W.T @ W / s**2
    post_cov = torch.linalg.inv(prec)
    post_mu = (x - b) @ W @ post_cov.T / s**2

    def exact_posterior(x):
        return post_mu, torch.log(torch.diagonal(post_cov)).expand(len(x), 2)

    assert torch.allclose(post_cov, torch.diag(torch.diagonal(post_cov)), atol=1e-12)  # diagonal q is exact
    torch.testing.assert_close(iwae_log_likelihood(exact_posterior, k=1), exact)


def test_affine_quantizer_roundtrip_error_is_half_a_step():
    codes = torch.randn(1000, 8) * torch.arange(1, 9)
    q = code_files.AffineQuantizer.fit(codes)
    err = (q.dequantize(q.quantize(codes)) - codes).abs()
    assert (err <= q.scale / 2 + 1e-5).all()
    assert q.quantize(codes).dtype == torch.uint8


def test_code_file_size_is_payload_plus_small_header(tmp_path):
    codes = torch.randn(1000, 32)
    q = code_files.AffineQuantizer.fit(codes)
    for fmt, payload in (("float32", 128_000), ("float16", 64_000), ("uint8", 32_000)):
        stored = code_files.encode_codes(codes, fmt, q)
        assert code_files.bytes_per_image(32, fmt) * 1000 == payload
        size = code_files.save_codes(tmp_path / f"{fmt}.npz", stored, q if fmt == "uint8" else None)
        assert size == (tmp_path / f"{fmt}.npz").stat().st_size
        assert payload < size < payload + 1024  # .npz headers (+ 2×32 float32 quantizer params)
        back, qq, _ = code_files.load_codes(tmp_path / f"{fmt}.npz")
        assert torch.equal(back, stored)
        assert (qq is not None) == (fmt == "uint8")


def test_gzip_and_jpeg_baselines():
    zeros = torch.zeros(100, 1, 28, 28, dtype=torch.uint8)
    assert classical.gzip_bytes_per_image(zeros) < 5  # 78,400 zero bytes gzip to well under 500 bytes
    gen = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (100, 1, 28, 28), generator=gen, dtype=torch.uint8)
    assert classical.gzip_bytes_per_image(noise) > 750  # incompressible: about 784 bytes each
    flat = torch.full((4, 1, 28, 28), 128, dtype=torch.uint8)
    dec, per_image = classical.jpeg_roundtrip(flat, quality=95)
    assert torch.equal(dec, flat) and 100 < per_image < 800


@pytest.mark.parametrize("name", ["jpeg", "png", "webp", "webp_lossless", "avif", "jxl"])
@pytest.mark.parametrize("channels", [1, 3])
def test_classical_codecs_code_the_data_in_its_own_mode(name, channels):
    """Every codec round-trips grey and RGB images of the data's shape; the lossless ones exactly, the lossy
    ones better at a higher quality; JPEG's payload excludes its header (markers and tables)."""
    if classical.codec_available(name):
        pytest.skip(classical.codec_available(name))
    gen = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(
        torch.rand(3, channels, 6, 5, generator=gen), size=(24, 20), mode="bilinear"
    )
    images = (smooth * 255).round().to(torch.uint8)
    dec, sizes, payloads = classical.codec_roundtrip(
        images, name, quality=None if classical.CODECS[name].lossless else 90
    )
    assert dec.shape == images.shape and dec.dtype == torch.uint8
    if classical.CODECS[name].lossless:
        assert torch.equal(dec, images)
        return
    low, _, _ = classical.codec_roundtrip(images, name, quality=5)
    err = lambda d: (d.float() - images.float()).pow(2).mean().item()  # noqa: E731
    assert err(dec) < err(low)
    if name == "jpeg":
        assert all(0 < p < s - 100 for p, s in zip(payloads, sizes, strict=True))  # the header is > 100 bytes
    else:
        assert payloads == sizes


def test_pca_roundtrip_is_exact_on_its_own_subspace():
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(3, 784, generator=g)
    x = (0.5 + 0.01 * torch.randn(200, 3, generator=g) @ basis).clamp(0, 1).view(200, 1, 28, 28)
    pca = pca_codec.fit_pca(x, 3)
    assert (pca_codec.pca_roundtrip(pca, x) - x).abs().max() < 1e-4


def test_feature_probes_on_separable_data():
    g = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 100)
    x = g.normal(size=(300, 4)) + 10 * np.eye(3, 4)[y]
    assert linear_probe_accuracy(x[::2], y[::2], x[1::2], y[1::2]) == 1.0
    assert knn_accuracy(x[::2], y[::2], x[1::2], y[1::2], k=3) == 1.0
    y_shuffled = g.permutation(y)
    assert knn_accuracy(x[::2], y_shuffled[::2], x[1::2], y_shuffled[1::2]) < 0.6


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fake_data_dir):
    """A tiny trained AE and VAE (2 epochs on synthetic data): their best checkpoints."""
    from aelab.train import train
    from conftest import SMALL, compose_cfg

    ckpts = {}
    for name in ("ae", "vae"):
        run_dir = tmp_path_factory.mktemp(name)
        train(compose_cfg("train", [*SMALL, f"model={name}", "model.latent_dim=4"], run_dir, fake_data_dir))
        ckpts[name] = next((run_dir / "checkpoints").glob("epoch_*.ckpt"))
    return ckpts


SUITE = [
    "suite.sections.likelihood.k=20",
    "suite.sections.likelihood.chunk=10",
    "suite.batch_size=64",
    "suite.sections.denoising.pca_components=[2,4]",
    "suite.sections.classical_codecs=null",
    "suite.sections.fid.num_samples=150",
    "suite.sections.fid.classifier_steps=150",
    "suite.sections.fid.min_classifier_acc=0",
    "ood.val_size=100",
]


@pytest.mark.slow
def test_eval_suite_end_to_end(tmp_path, trained, fake_data_dir):
    from aelab.eval import evaluate
    from conftest import compose_cfg

    for name, ckpt in trained.items():
        out = tmp_path / name
        cfg = compose_cfg(
            "eval", [f"ckpt_path={ckpt}", "trainer.accelerator=cpu", *SUITE], out, fake_data_dir
        )
        metrics, _ = evaluate(cfg)
        on_disk = __import__("json").loads((out / "metrics.json").read_text())
        assert on_disk.keys() == metrics.keys()
        for key in (
            "test/mse",
            "test/psnr",
            "test/ssim",
            "test/bce",
            "test/compression/ae_uint8_bytes_per_image",
            "test/compression/pca_float32_psnr",
            "test/compression/jpeg_q50_psnr",
            "test/features/linear_probe_acc",
            "test/features/pca_knn_acc",
            "test/anomaly/ood_auroc",
            "test/compression/raw_bytes_per_image",
            "test/compression/png_bytes_per_image",
            "test/denoise/sigma0.5_noisy_psnr",
            "test/timing/encode_images_per_s",
        ):
            assert key in metrics, key
        # 4-d codes at 8 bits: 4 bytes of payload per image; the .npz header is shared by 200 images
        assert 4 < metrics["test/compression/ae_uint8_bytes_per_image"] < 4 + 1024 / 200
        assert metrics["test/compression/raw_bytes_per_image"] == 784
        assert metrics["test/compression/gzip_ratio_vs_raw"] == pytest.approx(
            784 / metrics["test/compression/gzip_bytes_per_image"]
        )
        assert 5.0 < metrics["test/denoise/sigma0.5_noisy_psnr"] < 7.0
        # the out-of-distribution set differs from the training data: a trained model tells them apart, and
        # the reported AUROC is the one of the saved per-image scores (in = 0, out = 1)
        assert metrics["test/anomaly/ood_auroc"] > 0.95
        with np.load(out / "anomaly_scores.npz") as saved:
            labels = torch.cat([torch.zeros(len(saved["recon_in"])), torch.ones(len(saved["recon_ood"]))])
            scores = torch.from_numpy(np.concatenate([saved["recon_in"], saved["recon_ood"]]))
            assert auroc(scores, labels) == metrics["test/anomaly/ood_auroc"]
            assert str(saved["ood_name"]) == "FashionMNIST"
        assert not any("fashion" in k for k in metrics)
        if name == "vae":
            assert metrics["test/likelihood/k"] == 20 and metrics["test/timing/likelihood_s"] > 0
            assert metrics["test/likelihood/nll_iwae"] <= metrics["test/likelihood/nelbo"] + 1.0
            assert metrics["test/anomaly/ood_auroc_elbo"] > 0.95
            assert (out / "samples.png").is_file() and (out / "interpolation.png").is_file()
        else:
            assert (
                "test/likelihood/nll_iwae" not in metrics
                and "test/timing/likelihood_s" not in metrics
                and not (out / "samples.png").exists()
            )


def test_compress_and_decompress_files(tmp_path, trained, fake_data_dir, capsys):
    from PIL import Image

    from aelab.compress import compress, decompress

    codes = tmp_path / "codes.npz"
    assert (
        compress(
            [str(trained["ae"]), "--split", "test", "--out", str(codes), "--data-dir", str(fake_data_dir)]
        )
        == 0
    )
    printed = capsys.readouterr().out
    size = codes.stat().st_size
    assert f"{size} bytes" in printed and f"{784 / (size / 200):.1f}x vs raw" in printed
    assert (
        decompress([str(trained["ae"]), str(codes), "--out-dir", str(tmp_path / "png"), "--limit", "5"]) == 0
    )
    pngs = sorted((tmp_path / "png").glob("*.png"))
    assert len(pngs) == 5 and Image.open(pngs[0]).size == (28, 28)


def test_one_class_scores_are_the_suites(trained, fake_data_dir):
    """The one-class protocol and the suite's anomaly section score images with one function: a binarized VAE
    is scored on binarized inputs in both (they used to disagree)."""
    from aelab.checkpoint import load_model
    from aelab.evaluation.metrics import map_batches, mse_per_image, to_float
    from aelab.evaluation.scores import anomaly_scores, elbo_scores

    model, run_cfg, _ = load_model(trained["vae"])
    model.binarize = True
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    dm = instantiate(OmegaConf.merge(run_cfg.data, {"data_dir": str(fake_data_dir)}))
    images, _ = dm.split_tensors("test")
    scores = anomaly_scores(model, images, 64, torch.device("cpu"), seed=0)
    x = to_float(images)
    assert torch.equal(scores["recon"], mse_per_image(map_batches(model.reconstruct, images, 64, "cpu"), x))
    assert torch.equal(scores["elbo"], elbo_scores(model, x, 64, torch.device("cpu"), seed=0))
    model.binarize = False
    unbinarized = anomaly_scores(model, images, 64, torch.device("cpu"), seed=0)["elbo"]
    assert not torch.allclose(scores["elbo"], unbinarized)  # binarization changes the score


def test_interpolation_lies_between_the_two_images(trained):
    from aelab.checkpoint import load_model

    model, _, _ = load_model(trained["ae"])
    a, b = torch.rand(2, 1, 28, 28)
    path = model.interpolate(a, b, steps=5)
    assert path.shape == (5, 1, 28, 28)
    z = model.encode(torch.stack([a, b]))
    ends = model.decode(z)
    assert torch.allclose(path[0], ends[0], atol=1e-5) and torch.allclose(path[-1], ends[1], atol=1e-5)
    # the middle too: point i decodes (1 − t) z_a + t z_b with t = i / 4
    for i, t in ((1, 0.25), (2, 0.5), (3, 0.75)):
        assert torch.allclose(path[i], model.decode(((1 - t) * z[0] + t * z[1])[None])[0], atol=1e-5)


def test_pca_decode_and_roundtrip_agree():
    images = torch.rand(200, 3, 8, 6)
    pca = pca_codec.fit_pca(images, 8)
    codes = torch.from_numpy(pca.transform(images.flatten(1).numpy()))
    assert torch.allclose(pca_codec.pca_decode(pca, codes, (3, 8, 6)), pca_codec.pca_roundtrip(pca, images))
    assert pca_codec.fit_pca(images, 500).n_components_ == 144  # at most the pixels there are (3·8·6)


def test_vq_indices_are_packed_at_log2_k_bits(tmp_path):
    idx = torch.randint(0, 300, (50, 49), generator=torch.Generator().manual_seed(0))
    size = code_files.save_indices(tmp_path / "i.npz", idx, 300)  # 9 bits each
    assert torch.equal(code_files.load_indices(tmp_path / "i.npz"), idx)
    payload = 50 * 49 * 9 / 8
    assert payload <= size < payload + 800  # .npz headers only


@pytest.mark.slow
def test_frechet_distance_and_its_classifier(tmp_path, fake_data_dir):
    from aelab.data import MNISTDataModule
    from aelab.evaluation import fid as FID

    dm = MNISTDataModule(str(fake_data_dir), val_size=100, download=False)
    train, test = dm.split_tensors("train"), dm.split_tensors("test")
    net, acc, source = FID.classifier(train, test, tmp_path, steps=100)
    assert acc >= 0.85 and source == "trained"  # the synthetic digits are easy (200 test images)
    cached = list(tmp_path.glob("features_*.pt"))
    assert len(cached) == 1
    again, acc2, source = FID.classifier(train, test, tmp_path, steps=100)  # loaded, not retrained
    assert (
        acc2 == acc
        and source == "cached"
        and all(
            torch.equal(a, b)
            for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True)
        )
    )
    same = FID.frechet_distance(net, test[0], test[0], 64, "cpu")
    noise = FID.frechet_distance(net, test[0], torch.rand(len(test[0]), 1, 28, 28), 64, "cpu")
    floor = FID.frechet_distance(net, test[0], train[0][:200], 64, "cpu")
    assert abs(same) < 1e-2 and noise > 10 * max(floor, 1e-3) and floor < noise
    # another data shape and class count: the classifier takes both from the data
    rgb = (torch.rand(64, 3, 8, 8) * 255).to(torch.uint8), torch.arange(64) % 3
    net3, _, _ = FID.classifier(rgb, rgb, tmp_path, steps=5)
    assert net3.logits(torch.rand(2, 3, 8, 8)).shape == (2, 3)


def test_shipped_classifier_weights_are_found_by_the_splits_fingerprint_and_never_trained(tmp_path):
    """A classifier file in the shipped folder whose name holds the training split's fingerprint is loaded (no
    training: a million steps would not end), reported as shipped; the same weights for another split are not."""
    from aelab.evaluation import fid as FID

    g = torch.Generator().manual_seed(0)
    train = (torch.randint(0, 256, (40, 1, 8, 8), generator=g, dtype=torch.uint8), torch.arange(40) % 4)
    shipped = tmp_path / "weights"
    shipped.mkdir()
    net = FID.FeatureClassifier((1, 8, 8), 4)
    name = FID.classifier_file(*train, num_classes=4, steps=10**6, seed=0)
    torch.save({"state_dict": net.state_dict(), "test_acc": 0.99}, shipped / name)
    got, acc, source = FID.classifier(train, train, tmp_path / "cache", steps=10**6, shipped_dir=shipped)
    assert (source, acc) == ("shipped", 0.99)
    assert all(
        torch.equal(a, b) for a, b in zip(net.state_dict().values(), got.state_dict().values(), strict=True)
    )
    other = (
        train[0].flip(0),
        train[1],
    )  # the same images in another order: another split, another fingerprint
    assert FID.classifier_file(*other, num_classes=4, steps=10**6, seed=0) != name
    assert FID.classifier(other, other, tmp_path / "cache", steps=3, shipped_dir=shipped)[2] == "trained"


def test_the_bundled_sets_default_splits_have_shipped_classifiers(tmp_path):
    """Each labelled bundled set's default split (its config as a user composes it) finds its classifier among the
    shipped weights, so a default evaluation trains none (scripts/train_feature_classifiers.py writes them)."""
    import json

    from hydra.utils import instantiate

    from aelab.evaluation import fid as FID
    from conftest import compose_cfg

    REPO = Path(__file__).resolve().parents[1]  # the real data, unpacked by `make data`
    index = json.loads((FID.SHIPPED_DIR / "classifiers.json").read_text())
    steps = 3000  # suite.sections.fid.classifier_steps' default
    for name in ("mnist", "fashion_mnist", "digits"):
        cfg = compose_cfg("train", [f"data={name}"], tmp_path / name, REPO / "data")
        dm = instantiate(cfg.data)
        try:
            train = dm.split_tensors("train")
        except (FileNotFoundError, RuntimeError) as err:  # `make data` unpacks MNIST and Fashion-MNIST
            pytest.skip(f"{name} is not unpacked here: {err}")
        file = FID.classifier_file(*train, num_classes=dm.num_classes, steps=steps, seed=0)
        assert (FID.SHIPPED_DIR / file).is_file() and index[file]["data"] == name
        # Fashion-MNIST's stays under the Fréchet gate (min_classifier_acc 0.98): shipped, the section skips at once
        assert index[file]["test_acc"] >= (0.9 if name == "fashion_mnist" else 0.98)


@pytest.mark.slow
def test_suite_writes_a_frechet_distance_per_sampler(tmp_path, trained, fake_data_dir):
    """Each sampler that applies gives its distance and its grid; the trained models' samples are closer to the
    test images than noise is (a baseline computed here), and ``fid`` is the model's default sampler's."""
    from aelab.eval import evaluate
    from aelab.evaluation import fid as FID
    from conftest import compose_cfg

    for name, ckpt in trained.items():
        cfg = compose_cfg(
            "eval",
            [f"ckpt_path={ckpt}", "trainer.accelerator=cpu", *SUITE, "suite.sections.compression=null",
             "suite.sections.features.enabled=false", "suite.sections.likelihood.enabled=false",
             "suite.sections.denoising.enabled=false", "suite.sections.anomaly.enabled=false"],
            tmp_path / name,
            fake_data_dir,
        )  # fmt: skip
        metrics, objects = evaluate(cfg)
        samplers = {"prior", "gaussian", "gmm"} if name == "vae" else {"gaussian", "gmm"}
        assert {k.rsplit("_", 1)[1] for k in metrics if k.startswith("test/generation/fid_") and "train" not in k
                and "acc" not in k} == samplers  # fmt: skip
        assert (
            metrics["test/generation/fid"]
            == metrics[f"test/generation/fid_{'prior' if name == 'vae' else 'gaussian'}"]
        )
        assert all((tmp_path / name / f"samples_{s}.png").is_file() for s in samplers)
        dm = objects["datamodule"]
        net, acc, _ = FID.classifier(
            dm.split_tensors("train"), dm.split_tensors("test"), dm.cache_dir, steps=150
        )
        assert acc == metrics["test/generation/fid_classifier_test_acc"]
        noise = FID.frechet_distance(
            net, dm.split_tensors("test")[0][:150], torch.rand(150, 1, 28, 28), 64, "cpu"
        )
        assert max(metrics[f"test/generation/fid_{s}"] for s in samplers) < noise


def test_an_exact_image_keeps_the_codec_psnr_finite():
    """An image a codec reproduces exactly counts as one pixel one level off (the uint8 ceiling), so a
    rate–distortion point keeps a finite mean PSNR (AVIF's points vanished from the report as infinite)."""
    import math

    from aelab.evaluation.sections.compression import _image_quality

    exact = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    off = exact.clone()
    off[0, 0, 0] = off[0, 0, 0] ^ 1  # one pixel one level off
    q = _image_quality([exact, off], [exact, exact])
    ceiling = 10 * math.log10(255**2 * 28 * 28)
    assert q["psnr"] == pytest.approx(ceiling) and q["exact_fraction"] == 0.5


def test_a_chosen_ood_set_that_cannot_be_used_stops_the_evaluation(
    tmp_path, trained, fake_data_dir, monkeypatch, capsys
):
    """An out-of-distribution set chosen on the command line (data@ood=...) whose files cannot be read stops the
    evaluation with one line naming it (the default one is skipped with a warning), and so does choosing the
    model's own dataset."""
    from aelab.eval import main as eval_main
    from helpers import run_inprocess

    only_anomaly = [f"ckpt_path={trained['ae']}", "trainer.accelerator=cpu", "suite.batch_size=64",
                    *[f"suite.sections.{s}=null" for s in ("reconstruction", "compression", "classical_codecs", "codec",
                      "features", "likelihood", "denoising", "fid", "generation")]]  # fmt: skip
    empty = tmp_path / "empty"
    empty.mkdir()
    for name, extra, said in (
        ("chosen", ["data@ood=fashion_mnist", f"ood.data_dir={empty}"], "chosen out-of-distribution set"),
        ("same", ["data@ood=mnist"], "own dataset"),
    ):
        argv = [*only_anomaly, *extra, f"hydra.run.dir={tmp_path / name}"]
        with pytest.raises(SystemExit) as stop:
            run_inprocess(eval_main, argv, monkeypatch, fake_data_dir)
        assert stop.value.code != 0 and said in capsys.readouterr().err
        assert not (tmp_path / name / "metrics.json").exists()


def test_each_section_applies_to_what_the_model_can_do(make_cfg):
    """enabled: auto runs a section where the model implements the protocols the section function declares (and,
    for a section about images, the data are images); true always, false never: no likelihood for a plain AE, only
    reconstruction, its files and the classical codecs for a codec, no image section for a table.
    (Mutation: auto treated as true fails here.)"""
    from types import SimpleNamespace

    from hydra.utils import instantiate

    from aelab.errors import ConfigError
    from aelab.evaluation.suite import applies

    sections = make_cfg([], config_name="eval").suite.sections
    models = {
        name: instantiate(make_cfg([f"model={name}"]).model) for name in ("ae", "vae", "vqvae", "codec")
    }
    images, table = SimpleNamespace(image_shape=(1, 28, 28)), SimpleNamespace(image_shape=None)

    def chosen(model, data=images):
        return {name for name, section in sections.items() if applies(name, section, models[model], data)}

    assert chosen("ae") == {"reconstruction", "compression", "features", "anomaly", "denoising", "fid"}
    assert chosen("vae") == chosen("ae") | {"likelihood", "generation"}
    assert chosen("codec") == {"reconstruction", "codec", "classical_codecs"}
    assert chosen("vae", table) == {"features", "anomaly", "likelihood"}
    assert applies("denoising", {**sections.denoising, "enabled": True}, models["codec"], images)
    assert not applies("denoising", {**sections.denoising, "enabled": False}, models["ae"], images)
    assert not applies("anything", None, models["ae"])
    with pytest.raises(ConfigError, match="auto, true or false"):
        applies("fid", {**sections.fid, "enabled": "yes"}, models["ae"])


def test_a_set_whose_feature_classifier_is_weak_gets_no_frechet_distance(tmp_path, fake_data_dir):
    """Under ``min_classifier_acc`` the section reports the classifier's accuracy and no distance (a weak feature
    network's distance measures little); at 0 the distance is there."""
    from aelab.data import MNISTDataModule
    from aelab.evaluation.context import EvalContext
    from aelab.evaluation.sections import fid
    from aelab.models import Autoencoder
    from aelab.models.components import MLPDecoder, MLPEncoder

    dm = MNISTDataModule(str(fake_data_dir), val_size=100, download=False)
    ctx = EvalContext(Autoencoder(MLPEncoder(4), MLPDecoder(4)), dm, tmp_path, torch.device("cpu"), 200)
    weak = fid(ctx, num_samples=50, classifier_steps=1, min_classifier_acc=0.99, samplers=("gaussian",))
    assert (
        set(weak) == {"test/generation/fid_classifier_test_acc"}
        and weak["test/generation/fid_classifier_test_acc"] < 0.99
    )
    kept = fid(ctx, num_samples=50, classifier_steps=1, min_classifier_acc=0.0, samplers=("gaussian",))
    assert "test/generation/fid" in kept


def test_a_feature_classifier_exactly_at_min_classifier_acc_gets_its_frechet_distance(
    tmp_path, fake_data_dir, monkeypatch
):
    """The gate keeps a classifier at ``min_classifier_acc`` and refuses one just under it (``stays under`` is a
    strict ``<``); the classifier is a stub of a set accuracy, so nothing is trained."""
    from aelab.data import MNISTDataModule
    from aelab.evaluation import fid as frechet
    from aelab.evaluation.context import EvalContext
    from aelab.evaluation.sections import fid
    from aelab.models import Autoencoder
    from aelab.models.components import MLPDecoder, MLPEncoder

    torch.manual_seed(0)
    net = frechet.FeatureClassifier((1, 28, 28), 10).eval()
    accuracy = {"value": 0.75}
    monkeypatch.setattr(frechet, "classifier", lambda *args, **kwargs: (net, accuracy["value"], "trained"))
    dm = MNISTDataModule(str(fake_data_dir), val_size=100, download=False)
    ctx = EvalContext(Autoencoder(MLPEncoder(4), MLPDecoder(4)), dm, tmp_path, torch.device("cpu"), 200)
    at = fid(ctx, num_samples=50, min_classifier_acc=0.75, samplers=("gaussian",))
    assert at["test/generation/fid_classifier_test_acc"] == 0.75 and "fid" not in ctx.skipped
    assert (
        math.isfinite(at["test/generation/fid"])
        and at["test/generation/fid"] == at["test/generation/fid_gaussian"]
    )
    assert math.isfinite(at["test/generation/fid_train_vs_test"])

    accuracy["value"] = float(np.nextafter(0.75, 0.0))  # just under
    under = fid(ctx, num_samples=50, min_classifier_acc=0.75, samplers=("gaussian",))
    assert under == {"test/generation/fid_classifier_test_acc": accuracy["value"]}
    assert "fid" in ctx.skipped  # the reason is logged


@pytest.mark.parametrize(
    ("model_data", "kept"), [("mnist", True), ("photo_patches", False), ("fashion_mnist", False)]
)
def test_the_default_ood_set_is_dropped_where_it_does_not_fit_the_data(make_cfg, model_data, kept):
    """eval.yaml's default out-of-distribution set (Fashion-MNIST, (1, 28, 28)) is kept for MNIST, and dropped for
    32×32 RGB photo patches (another shape) and for Fashion-MNIST itself (the model's own set), with the shapes read
    from the real data configs' ``shape`` field. (Mutation: reading a key the configs do not have keeps it for all.)"""
    from aelab.pipeline import default_ood_for

    cfg = make_cfg([], config_name="eval")
    data_cfg = make_cfg([f"data={model_data}"], small=False).data
    out = default_ood_for(cfg, data_cfg)
    assert (out.suite.sections.anomaly.ood_data is not None) is kept


def test_the_denoising_sections_noisy_psnr_follows_each_sigma():
    """The denoising section adds N(0, σ²) noise per σ, unclipped: the noisy input's PSNR is −10·log10(σ²) dB
    (pixels in [0, 1]; per image, up to the noise's sampling error). (Mutation: one σ used for all fails here.)"""
    from types import SimpleNamespace

    from aelab.evaluation.sections.reconstruction import denoising

    g = torch.Generator().manual_seed(0)
    train_u8 = torch.randint(0, 256, (40, 1, 16, 16), dtype=torch.uint8, generator=g)
    x_test = torch.full((8, 1, 16, 16), 0.5)
    ctx = SimpleNamespace(x_test=x_test, image_shape=(1, 16, 16), train_u8=train_u8,
                          model=SimpleNamespace(reconstruct=lambda x: x.clamp(0, 1)), map=lambda fn, x: fn(x))  # fmt: skip
    out = denoising(ctx, sigmas=(0.05, 0.2, 0.6), pca_components=(4,))
    for sigma in (0.05, 0.2, 0.6):
        want = -10 * math.log10(sigma**2)
        assert out[f"test/denoise/sigma{sigma}_noisy_psnr"] == pytest.approx(want, abs=0.5)


def test_cached_figures_are_read_back_recomputed_when_corrupt_and_keyed_by_their_inputs(tmp_path):
    """Data-only figures (classical codecs, the Fréchet floor, a detector's VUS) are computed once per key: read
    back on the second call, computed again for another key or when the file does not read back as figures."""
    from aelab.evaluation.cache import cached_figures

    calls = []

    def compute(value):
        calls.append(value)
        return {"test/x": value}

    images = torch.arange(12, dtype=torch.uint8).view(3, 4)
    assert cached_figures(tmp_path, "f", ("a", images), lambda: compute(1.0)) == {"test/x": 1.0}
    assert cached_figures(tmp_path, "f", ("a", images), lambda: compute(2.0)) == {"test/x": 1.0}
    assert calls == [1.0]
    other = images.clone()
    other[0, 0] = 99  # one pixel differs: another key
    assert cached_figures(tmp_path, "f", ("a", other), lambda: compute(3.0)) == {"test/x": 3.0}
    for f in (tmp_path / "f").glob("figures-*.json"):
        f.write_text('{"test/x": "not a number"}')
    assert cached_figures(tmp_path, "f", ("a", images), lambda: compute(4.0)) == {"test/x": 4.0}
    assert calls == [1.0, 3.0, 4.0]
