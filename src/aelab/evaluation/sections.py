"""The sections of the evaluation suite: each a function ``section(ctx, **params) -> {metric: value}``.

``conf/eval.yaml: suite.sections`` chooses them by ``_target_`` (``_partial_: true``): a new measurement is a
new function here (or anywhere importable) plus a config entry. Each section applies only where it makes sense
(likelihood and generation to :class:`~aelab.models.capabilities.Probabilistic` /
:class:`~aelab.models.capabilities.Generative` models) and returns ``{}`` elsewhere. All figures are on the
official test split; baselines are fitted on the training split.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import save_image

from aelab.evaluation import compression as C
from aelab.evaluation.context import EvalContext
from aelab.evaluation.features import knn_accuracy, linear_probe_accuracy
from aelab.evaluation.likelihood import iwae_log_likelihood, vae_log_likelihood_fn
from aelab.evaluation.metrics import auroc, mse_per_image, psnr_per_image, reconstruction_metrics, to_float
from aelab.evaluation.suite import _vae_inputs, anomaly_scores, elbo_scores, is_vae
from aelab.models.capabilities import Generative

log = logging.getLogger("aelab")


def reconstruction(ctx: EvalContext) -> dict[str, float]:
    """``test/bce`` and ``test/ssim`` (``test/mse`` and ``test/psnr`` come from the DDP-correct test loop)."""
    rec = reconstruction_metrics(ctx.recon, ctx.x_test)
    return {"test/bce": rec["bce"], "test/ssim": rec["ssim"]}


def compression(ctx: EvalContext, jpeg_qualities=(5, 10, 20, 50, 90)) -> dict[str, float]:
    """Codes at float32 / float16 / 8 bits, written to real files; PCA of the same size; JPEG; gzip."""
    out: dict[str, float] = {}
    n = len(ctx.codes_test)
    gz = C.gzip_bytes_per_image(ctx.test_u8)
    out["test/compression/gzip_bytes_per_image"] = gz
    out["test/compression/gzip_ratio_vs_raw"] = C.RAW_BYTES / gz
    pca_train, pca_test = ctx.pca_codes
    methods = {
        "ae": (ctx.codes_train, ctx.codes_test, lambda z: ctx.map(ctx.model.decode, z)),
        "pca": (pca_train, pca_test, lambda z: C.pca_decode(ctx.pca, z)),
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
                out[f"test/compression/{name}_{fmt}_psnr"] = psnr_per_image(rec, ctx.x_test).mean().item()
                if fmt == "float32":
                    out[f"test/compression/{name}_mse"] = mse_per_image(rec, ctx.x_test).mean().item()
    for q in jpeg_qualities:
        dec, per_image = C.jpeg_roundtrip(ctx.test_u8, int(q))
        out[f"test/compression/jpeg_q{q}_bytes_per_image"] = per_image
        out[f"test/compression/jpeg_q{q}_ratio_vs_raw"] = C.RAW_BYTES / per_image
        out[f"test/compression/jpeg_q{q}_psnr"] = psnr_per_image(to_float(dec), ctx.x_test).mean().item()
    return out


def features(ctx: EvalContext, knn_k: int = 5) -> dict[str, float]:
    """Linear-probe and k-NN accuracy of the codes, and of the PCA codes of the same size."""
    pca_train, pca_test = ctx.pca_codes
    k = int(knn_k)
    return {
        "test/features/linear_probe_acc": linear_probe_accuracy(
            ctx.codes_train, ctx.train_y, ctx.codes_test, ctx.test_y
        ),
        "test/features/knn_acc": knn_accuracy(ctx.codes_train, ctx.train_y, ctx.codes_test, ctx.test_y, k),
        "test/features/pca_linear_probe_acc": linear_probe_accuracy(
            pca_train, ctx.train_y, pca_test, ctx.test_y
        ),
        "test/features/pca_knn_acc": knn_accuracy(pca_train, ctx.train_y, pca_test, ctx.test_y, k),
    }


def anomaly(ctx: EvalContext, ood_data=None) -> dict[str, float]:
    """AUROC of the anomaly scores (reconstruction error; −ELBO for a VAE): one-class when the run kept only some
    digits (``data.train_classes``), and the test split against the test split of ``ood_data`` (a datamodule,
    Fashion-MNIST in ``conf/eval.yaml``). Per-image scores go to ``anomaly_scores.npz`` (ROC curves)."""
    out: dict[str, float] = {}
    model, bs, device = ctx.model, ctx.batch_size, ctx.device
    score_in = mse_per_image(ctx.recon, ctx.x_test)
    vae = is_vae(model)
    if vae:
        elbo_in = elbo_scores(model, ctx.x_test, bs, device, seed=0)
    classes = getattr(ctx.datamodule, "train_classes", None)
    if classes:
        is_anom = ~torch.isin(ctx.test_y, torch.tensor(list(classes)))
        out["test/anomaly/oneclass_auroc"] = auroc(score_in, is_anom)
        if vae:
            out["test/anomaly/oneclass_auroc_elbo"] = auroc(elbo_in, is_anom)
    if ood_data is None:
        return out
    try:
        ood_data.prepare_data()
        ood_u8, _ = ood_data.split_tensors("test")
    except (FileNotFoundError, RuntimeError) as err:
        log.warning(
            "anomaly detection vs %s skipped: %s. Get it with `make data` (unpacks ../shared/data into %s), "
            "or place its four IDX files there",
            ood_data.name,
            str(err).splitlines()[0],
            ood_data.raw_dir,
        )
        return out
    ood = anomaly_scores(model, ood_u8, bs, device, seed=1)
    labels = torch.cat([torch.zeros(len(score_in)), torch.ones(len(ood["recon"]))])
    out["test/anomaly/fashion_auroc"] = auroc(torch.cat([score_in, ood["recon"]]), labels)
    saved = {"recon_in": score_in.numpy(), "recon_ood": ood["recon"].numpy()}
    if vae:
        out["test/anomaly/fashion_auroc_elbo"] = auroc(torch.cat([elbo_in, ood["elbo"]]), labels)
        saved |= {"elbo_in": elbo_in.numpy(), "elbo_ood": ood["elbo"].numpy()}
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    np.savez(ctx.output_dir / "anomaly_scores.npz", **saved)
    return out


def likelihood(
    ctx: EvalContext,
    k: int = 5000,
    chunk: int = 500,
    batch_size: int = 100,
    num_images: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Test NLL (nats) by importance sampling, the IWAE bound with ``k`` samples (Burda et al. 2016, eq. 8),
    beside the one-sample −ELBO; VAEs only."""
    model, device, x_test = ctx.model, ctx.device, ctx.x_test
    if not is_vae(model):
        return {}
    n = len(x_test) if num_images is None else min(int(num_images), len(x_test))
    gen = torch.Generator(device=device).manual_seed(int(seed))
    fn = vae_log_likelihood_fn(model)
    iwae, elbo = [], []
    with torch.no_grad():
        for i, x in enumerate(x_test[:n].split(int(batch_size))):
            x = _vae_inputs(model, x.to(device), int(seed) + i)
            iwae.append(iwae_log_likelihood(x, model.posterior, fn, int(k), int(chunk), gen).cpu())
            elbo.append(iwae_log_likelihood(x, model.posterior, fn, 1, 1, gen).cpu())
    return {
        "test/likelihood/nll_iwae": -torch.cat(iwae).mean().item(),
        "test/likelihood/nelbo": -torch.cat(elbo).mean().item(),
        "test/likelihood/k": float(k),
        "test/likelihood/num_images": float(n),
    }


def denoising(
    ctx: EvalContext, sigmas=(0.1, 0.3, 0.5, 0.7), pca_components=(8, 16, 32, 64, 128), seed: int = 0
) -> dict[str, float]:
    """Gaussian noise at each σ: PSNR of the model's output, of the noisy input, and of the best PCA
    projection (the number of components chosen by the best test PSNR: an optimistic baseline)."""
    out: dict[str, float] = {}
    x_test = ctx.x_test
    comps = sorted(int(c) for c in pca_components)
    pca = C.fit_pca(to_float(ctx.train_u8), max(comps))
    mean = torch.from_numpy(pca.mean_).float()
    basis = torch.from_numpy(pca.components_).float()  # (max, 784), ordered by variance
    for sigma in sigmas:
        gen = torch.Generator().manual_seed(int(seed))
        noisy = x_test + float(sigma) * torch.randn(x_test.shape, generator=gen)
        den = ctx.map(ctx.model.reconstruct, noisy)
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


def fid(
    ctx: EvalContext, num_samples: int = 10000, classifier_epochs: int = 2, seed: int = 0
) -> dict[str, float]:
    """Fréchet distance of generated images to the test images on an in-aelab MNIST classifier's features
    (:mod:`aelab.evaluation.fid`), with the train-vs-test distance as the floor and the classifier's accuracy."""
    from aelab.evaluation import fid as FID

    net, acc = FID.classifier(
        (ctx.train_u8, ctx.train_y),
        (ctx.test_u8, ctx.test_y),
        Path(ctx.datamodule.data_dir) / "aelab-cache",
        ctx.device,
        epochs=int(classifier_epochs),
        seed=int(seed),
    )
    n = min(int(num_samples), len(ctx.test_u8))
    codes = None if isinstance(ctx.model, Generative) else ctx.codes_train
    fake = FID.generate(ctx.model, n, codes, int(seed), ctx.batch_size, ctx.device)
    floor_idx = torch.randperm(len(ctx.train_u8), generator=torch.Generator().manual_seed(int(seed)))[:n]
    real = ctx.test_u8[:n]
    return {
        "test/generation/fid": FID.frechet_distance(net, real, fake, ctx.batch_size, ctx.device),
        "test/generation/fid_train_vs_test": FID.frechet_distance(
            net, real, ctx.train_u8[floor_idx], ctx.batch_size, ctx.device
        ),
        "test/generation/fid_classifier_test_acc": acc,
    }


def generation(
    ctx: EvalContext, num_samples: int = 64, interpolation_steps: int = 10, seed: int = 0
) -> dict[str, float]:
    """``samples.png`` (prior samples) and ``interpolation.png`` (two test digits and the path between their
    codes) beside ``metrics.json``; generative models only. No figures."""
    model, x_test = ctx.model, ctx.x_test
    if not isinstance(model, Generative):
        return {}
    gen = torch.Generator(device=ctx.device).manual_seed(int(seed))
    n = int(num_samples)
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    save_image(
        model.sample(n, generator=gen).cpu(),
        ctx.output_dir / "samples.png",
        nrow=round(math.sqrt(n)),
        pad_value=1.0,
    )
    path = model.interpolate(x_test[0], x_test[1], int(interpolation_steps)).cpu()
    save_image(
        torch.cat([x_test[:1], path, x_test[1:2]]),
        ctx.output_dir / "interpolation.png",
        nrow=len(path) + 2,
        pad_value=1.0,
    )
    log.info("samples.png and interpolation.png written to %s", ctx.output_dir)
    return {}
