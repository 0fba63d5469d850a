"""The evaluation suite run by ``aelab-eval``: every measurement that applies to a model.

All figures are computed on the official test split (10k images for MNIST); baselines are fitted on the
training split. Keys are ``test/<section>/<name>``, plus ``test/bce`` and ``test/ssim`` beside the test loop's
``test/mse`` and ``test/psnr``.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import Tensor
from torchvision.utils import save_image

from aelab.evaluation import compression as C
from aelab.evaluation.features import knn_accuracy, linear_probe_accuracy
from aelab.evaluation.likelihood import iwae_log_likelihood, vae_log_likelihood_fn
from aelab.evaluation.metrics import (
    auroc,
    map_batches,
    mse_per_image,
    psnr_per_image,
    reconstruction_metrics,
    to_float,
)
from aelab.models.capabilities import Generative, Probabilistic

log = logging.getLogger("aelab")


def is_vae(model) -> bool:
    """A model with a posterior and an ELBO (:class:`aelab.models.capabilities.Probabilistic`)."""
    return isinstance(model, Probabilistic)


def negative_elbo_per_image(model, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """−ELBO (nats) of each image with one posterior sample (:meth:`aelab.models.VAE.elbo_terms`)."""
    recon, kl, _ = model.elbo_terms(x, x, generator)
    return recon + kl


def _vae_inputs(model, x: Tensor, seed: int) -> Tensor:
    """Dynamically binarized test images (seeded) when the model was trained that way, else ``x``."""
    if model.hparams.get("binarize"):
        return torch.bernoulli(x, generator=torch.Generator(device=x.device).manual_seed(seed))
    return x


def elbo_scores(model, x: Tensor, batch_size: int, device, seed: int) -> Tensor:
    """−ELBO (nats) of each float image ``(N, 1, 28, 28)``, one seeded posterior sample, inputs binarized
    (seeded) when the model was trained binarized — the VAE's anomaly score."""
    gen = torch.Generator(device=device).manual_seed(seed)
    return map_batches(
        lambda b: negative_elbo_per_image(model, _vae_inputs(model, b, seed), gen), x, batch_size, device
    )


def anomaly_scores(model, images: Tensor, batch_size: int, device, seed: int = 0) -> dict[str, Tensor]:
    """Per-image anomaly scores of uint8 or float images: ``recon`` (reconstruction MSE) and, for a VAE,
    ``elbo`` (:func:`elbo_scores`). Used by the suite's anomaly section and the one-class protocol."""
    x = to_float(images)
    scores = {"recon": mse_per_image(map_batches(model.reconstruct, images, batch_size, device), x)}
    if is_vae(model):
        scores["elbo"] = elbo_scores(model, x, batch_size, device, seed)
    return scores


def run_suite(
    model, datamodule, cfg: DictConfig, output_dir: str | Path, device: torch.device
) -> dict[str, float]:
    """Run the enabled sections of ``cfg`` (``conf/eval.yaml: suite``); returns ``{key: value}``."""
    output_dir = Path(output_dir)
    model = model.to(device).eval()
    bs = int(cfg.batch_size)
    out: dict[str, float] = {}
    train_u8, train_y = datamodule.split_tensors("train")
    test_u8, test_y = datamodule.split_tensors("test")
    x_test = to_float(test_u8)
    d = model.latent_dim

    t0 = time.perf_counter()
    codes_test = map_batches(model.encode, test_u8, bs, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    out["test/timing/encode_images_per_s"] = len(test_u8) / (time.perf_counter() - t0)
    recon = map_batches(model.reconstruct, test_u8, bs, device)

    if cfg.reconstruction:  # test/mse and test/psnr come from the test loop (DDP-correct torchmetrics)
        rec = reconstruction_metrics(recon, x_test)
        out |= {"test/bce": rec["bce"], "test/ssim": rec["ssim"]}

    need_train = cfg.compression.enabled or cfg.features.enabled
    codes_train = map_batches(model.encode, train_u8, bs, device) if need_train else None
    pca = C.fit_pca(to_float(train_u8), d) if need_train else None
    if need_train:  # PCA codes of the same size: the baseline for compression and features
        pca_train = torch.from_numpy(pca.transform(to_float(train_u8).flatten(1).numpy())).float()
        pca_test = torch.from_numpy(pca.transform(x_test.flatten(1).numpy())).float()

    if cfg.compression.enabled:
        pca_codes = (pca_train, pca_test, pca)
        out |= _compression(
            model, codes_train, codes_test, test_u8, x_test, pca_codes, cfg.compression, bs, device
        )

    if cfg.features.enabled:
        k = int(cfg.features.knn_k)
        out["test/features/linear_probe_acc"] = linear_probe_accuracy(
            codes_train, train_y, codes_test, test_y
        )
        out["test/features/knn_acc"] = knn_accuracy(codes_train, train_y, codes_test, test_y, k)
        out["test/features/pca_linear_probe_acc"] = linear_probe_accuracy(
            pca_train, train_y, pca_test, test_y
        )
        out["test/features/pca_knn_acc"] = knn_accuracy(pca_train, train_y, pca_test, test_y, k)

    if cfg.anomaly.enabled:
        out |= _anomaly(model, datamodule, recon, x_test, test_y, cfg.anomaly, bs, device, output_dir)

    if cfg.likelihood.enabled and is_vae(model):
        out |= _likelihood(model, x_test, cfg.likelihood, device)

    if cfg.denoising.enabled:
        out |= _denoising(model, x_test, train_u8, cfg.denoising, bs, device)

    if cfg.get("fid", {}).get("enabled"):
        out |= _fid(model, datamodule, train_u8, test_u8, codes_train, cfg.fid, bs, device)

    if cfg.generation.enabled and isinstance(model, Generative):
        gen = torch.Generator(device=device).manual_seed(int(cfg.generation.seed))
        n = int(cfg.generation.num_samples)
        save_image(
            model.sample(n, generator=gen).cpu(),
            output_dir / "samples.png",
            nrow=round(math.sqrt(n)),
            pad_value=1.0,
        )
        path = model.interpolate(x_test[0], x_test[1], int(cfg.generation.interpolation_steps)).cpu()
        save_image(
            torch.cat([x_test[:1], path, x_test[1:2]]),
            output_dir / "interpolation.png",
            nrow=len(path) + 2,
            pad_value=1.0,
        )
        log.info("samples.png and interpolation.png written to %s", output_dir)
    return out


def _compression(
    model, codes_train, codes_test, test_u8, x_test, pca_codes, cfg, bs, device
) -> dict[str, float]:
    """Codes at float32 / float16 / 8 bits, written to real files; PCA of the same size; JPEG; gzip."""
    out: dict[str, float] = {}
    n = len(codes_test)
    gz = C.gzip_bytes_per_image(test_u8)
    out["test/compression/gzip_bytes_per_image"] = gz
    out["test/compression/gzip_ratio_vs_raw"] = C.RAW_BYTES / gz
    pca_train, pca_test, pca = pca_codes
    methods = {
        "ae": (codes_train, codes_test, lambda z: map_batches(model.decode, z, bs, device)),
        "pca": (pca_train, pca_test, lambda z: C.pca_decode(pca, z)),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, (train_codes, codes, decode) in methods.items():
            quantizer = C.AffineQuantizer.fit(train_codes)  # fitted on the training codes
            for fmt in C.FORMATS:
                stored = C.encode_codes(codes, fmt, quantizer)
                size = C.save_codes(
                    Path(tmp) / f"{name}_{fmt}.npz", stored, quantizer if fmt == "uint8" else None
                )
                per_image = size / n
                rec = decode(C.decode_codes(stored, quantizer))
                out[f"test/compression/{name}_{fmt}_bytes_per_image"] = per_image
                out[f"test/compression/{name}_{fmt}_ratio_vs_raw"] = C.RAW_BYTES / per_image
                out[f"test/compression/{name}_{fmt}_ratio_vs_gzip"] = gz / per_image
                out[f"test/compression/{name}_{fmt}_psnr"] = psnr_per_image(rec, x_test).mean().item()
                if fmt == "float32":
                    out[f"test/compression/{name}_mse"] = mse_per_image(rec, x_test).mean().item()
    for q in cfg.jpeg_qualities:
        dec, per_image = C.jpeg_roundtrip(test_u8, int(q))
        out[f"test/compression/jpeg_q{q}_bytes_per_image"] = per_image
        out[f"test/compression/jpeg_q{q}_ratio_vs_raw"] = C.RAW_BYTES / per_image
        out[f"test/compression/jpeg_q{q}_psnr"] = psnr_per_image(to_float(dec), x_test).mean().item()
    return out


def _anomaly(model, datamodule, recon, x_test, test_y, cfg, bs, device, output_dir: Path) -> dict[str, float]:
    """AUROCs of the anomaly scores (one-class when ``train_classes`` is set; MNIST vs Fashion-MNIST); the
    per-image scores go to ``anomaly_scores.npz`` beside ``metrics.json`` (for ROC curves)."""
    out: dict[str, float] = {}
    score_in = mse_per_image(recon, x_test)
    vae = is_vae(model)
    if vae:
        elbo_in = elbo_scores(model, x_test, bs, device, seed=0)
    classes = getattr(datamodule, "train_classes", None)
    if classes:
        is_anom = ~torch.isin(test_y, torch.tensor(list(classes)))
        out["test/anomaly/oneclass_auroc"] = auroc(score_in, is_anom)
        if vae:
            out["test/anomaly/oneclass_auroc_elbo"] = auroc(elbo_in, is_anom)
    from aelab.data import FashionMNISTDataModule

    ood = FashionMNISTDataModule(data_dir=str(datamodule.data_dir), download=False)
    try:
        ood.prepare_data()
        ood_u8, _ = ood._load(train=False)
    except (FileNotFoundError, RuntimeError) as err:
        log.warning(
            "anomaly detection vs Fashion-MNIST skipped: %s. Get it with `make data` (unpacks "
            "../shared/data/fashion-mnist into %s), or place the four Fashion-MNIST IDX files there",
            str(err).splitlines()[0],
            ood.raw_dir,
        )
        return out
    ood = anomaly_scores(model, ood_u8, bs, device, seed=1)
    labels = torch.cat([torch.zeros(len(score_in)), torch.ones(len(ood["recon"]))])
    out["test/anomaly/fashion_auroc"] = auroc(torch.cat([score_in, ood["recon"]]), labels)
    saved = {"recon_in": score_in.numpy(), "recon_ood": ood["recon"].numpy()}
    if vae:
        out["test/anomaly/fashion_auroc_elbo"] = auroc(torch.cat([elbo_in, ood["elbo"]]), labels)
        saved |= {"elbo_in": elbo_in.numpy(), "elbo_ood": ood["elbo"].numpy()}
    output_dir.mkdir(parents=True, exist_ok=True)
    np.savez(output_dir / "anomaly_scores.npz", **saved)
    return out


def _fid(model, datamodule, train_u8, test_u8, codes_train, cfg, bs, device) -> dict[str, float]:
    """Fréchet distance of generated images to the test images on an in-aelab MNIST classifier's features
    (:mod:`aelab.evaluation.fid`), with the train-vs-test distance as the floor and the classifier's accuracy."""
    from aelab.evaluation import fid as FID

    cache = Path(datamodule.data_dir) / "aelab-cache"
    net, acc = FID.classifier(
        datamodule.split_tensors("train"),
        datamodule.split_tensors("test"),
        cache,
        device,
        epochs=int(cfg.classifier_epochs),
        seed=int(cfg.seed),
    )
    n = min(int(cfg.num_samples), len(test_u8))
    if codes_train is None and not isinstance(model, Generative):
        codes_train = map_batches(model.encode, train_u8, bs, device)
    fake = FID.generate(model, n, codes_train, int(cfg.seed), bs, device)
    floor_idx = torch.randperm(len(train_u8), generator=torch.Generator().manual_seed(int(cfg.seed)))[:n]
    return {
        "test/generation/fid": FID.frechet_distance(net, test_u8[:n], fake, bs, device),
        "test/generation/fid_train_vs_test": FID.frechet_distance(
            net, test_u8[:n], train_u8[floor_idx], bs, device
        ),
        "test/generation/fid_classifier_test_acc": acc,
    }


def _likelihood(model, x_test, cfg, device) -> dict[str, float]:
    n = len(x_test) if cfg.num_images is None else min(int(cfg.num_images), len(x_test))
    gen = torch.Generator(device=device).manual_seed(int(cfg.seed))
    fn = vae_log_likelihood_fn(model)
    iwae, elbo = [], []
    with torch.no_grad():
        for i, x in enumerate(x_test[:n].split(int(cfg.batch_size))):
            x = _vae_inputs(model, x.to(device), int(cfg.seed) + i)
            iwae.append(iwae_log_likelihood(x, model.posterior, fn, int(cfg.k), int(cfg.chunk), gen).cpu())
            elbo.append(iwae_log_likelihood(x, model.posterior, fn, 1, 1, gen).cpu())
    return {
        "test/likelihood/nll_iwae": -torch.cat(iwae).mean().item(),
        "test/likelihood/nelbo": -torch.cat(elbo).mean().item(),
        "test/likelihood/k": float(cfg.k),
        "test/likelihood/num_images": float(n),
    }


def _denoising(model, x_test, train_u8, cfg, bs, device) -> dict[str, float]:
    """Gaussian noise at each σ: PSNR of the model's output, of the noisy input, and of the best PCA
    projection (the number of components chosen by the best test PSNR: an optimistic baseline)."""
    out: dict[str, float] = {}
    comps = sorted(int(c) for c in cfg.pca_components)
    pca = C.fit_pca(to_float(train_u8), max(comps))
    mean = torch.from_numpy(pca.mean_).float()
    basis = torch.from_numpy(pca.components_).float()  # (max, 784), ordered by variance
    for sigma in cfg.sigmas:
        gen = torch.Generator().manual_seed(int(cfg.seed))
        noisy = x_test + float(sigma) * torch.randn(x_test.shape, generator=gen)
        den = map_batches(model.reconstruct, noisy, bs, device)
        scores = (noisy.flatten(1) - mean) @ basis.T  # (N, max components)
        best = -math.inf
        for c in comps:
            rec = (mean + scores[:, :c] @ basis[:c]).clamp(0, 1).view_as(x_test)
            best = max(best, psnr_per_image(rec, x_test).mean().item())
        key = f"test/denoise/sigma{sigma}"
        out[f"{key}_model_psnr"] = psnr_per_image(den, x_test).mean().item()
        out[f"{key}_noisy_psnr"] = psnr_per_image(noisy, x_test).mean().item()
        out[f"{key}_pca_psnr"] = best
    return out
