"""The sections of the evaluation suite: each a function ``section(ctx, **params) -> {metric: value}``.

``conf/eval.yaml: suite.sections`` chooses them by ``_target_`` (``_partial_: true``): a new measurement is a
new function here (or anywhere importable) plus a config entry. Each section applies only where it makes sense
(likelihood to :class:`~aelab.models.capabilities.Probabilistic` models, the probe and the Fréchet distance to
labelled data, ...) and otherwise returns ``{}``, saying once why. All figures are on the test split; baselines
are fitted on the training split. Shapes, byte counts and class counts come from the data
(:class:`aelab.data.ImageData`), never from MNIST.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import save_image

from aelab import visuals
from aelab.evaluation import compression as C
from aelab.evaluation.context import EvalContext
from aelab.evaluation.features import knn_accuracy, linear_probe_accuracy
from aelab.evaluation.likelihood import iwae_log_likelihood, vae_log_likelihood_fn
from aelab.evaluation.metrics import (
    auroc,
    mse_per_image,
    psnr_per_image,
    reconstruction_metrics,
    ssim_window,
    to_float,
)
from aelab.evaluation.scores import anomaly_scores, elbo_scores, is_probabilistic, likelihood_inputs
from aelab.media import Media
from aelab.models.capabilities import Generative, Quantized
from aelab.samplers import generate, make_sampler

log = logging.getLogger("aelab")


def reconstruction(ctx: EvalContext) -> dict[str, float]:
    """``test/bce`` and ``test/ssim`` (``test/mse`` and ``test/psnr`` come from the DDP-correct test loop), and the
    baseline a model must beat to have learned anything image-specific: the MSE and PSNR of the training images'
    mean image as every reconstruction (``test/baseline/mean_image_mse``, ``..._psnr``)."""
    rec = reconstruction_metrics(ctx.recon, ctx.x_test)
    mean = to_float(ctx.train_u8).mean(0, keepdim=True).expand_as(ctx.x_test)
    return {
        "test/bce": rec["bce"],
        "test/ssim": rec["ssim"],
        "test/baseline/mean_image_mse": mse_per_image(mean, ctx.x_test).mean().item(),
        "test/baseline/mean_image_psnr": psnr_per_image(mean, ctx.x_test).mean().item(),
    }


def _code_methods(ctx: EvalContext) -> dict:
    """``{name: (training codes, test codes, decode)}``: the model's codes and PCA's of the same size."""
    pca_train, pca_test = ctx.pca_codes
    return {
        "ae": (ctx.codes_train, ctx.codes_test, lambda z: ctx.map(ctx.model.decode, z)),
        "pca": (pca_train, pca_test, ctx.pca_decode),
    }


def compression(ctx: EvalContext, jpeg_qualities=(5, 10, 20, 50, 90)) -> dict[str, float]:
    """Codes written to real files — at float32 / float16 / 8 bits, or as codebook indices for a vector-quantized
    model — beside PCA of the same size, JPEG (with and without its header), PNG and gzip; bytes per image and
    ratios against the raw ``C·H·W``-byte image (``test/compression/raw_bytes_per_image``)."""
    out: dict[str, float] = {"test/compression/raw_bytes_per_image": float(ctx.raw_bytes)}
    n = len(ctx.codes_test)
    gz = C.gzip_bytes_per_image(ctx.test_u8)
    out["test/compression/gzip_bytes_per_image"] = gz
    out["test/compression/gzip_ratio_vs_raw"] = ctx.raw_bytes / gz
    _, png_sizes, _ = C.codec_roundtrip(ctx.test_u8, "png")
    out["test/compression/png_bytes_per_image"] = sum(png_sizes) / n

    def record(name: str, per_image: float, rec: torch.Tensor) -> None:
        out[f"test/compression/{name}_bytes_per_image"] = per_image
        out[f"test/compression/{name}_ratio_vs_raw"] = ctx.raw_bytes / per_image
        out[f"test/compression/{name}_ratio_vs_gzip"] = gz / per_image
        out[f"test/compression/{name}_psnr"] = psnr_per_image(rec, ctx.x_test).mean().item()

    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(ctx.model, Quantized):  # codebook indices, packed at ceil(log2 K) bits each
            indices = ctx.model.code_indices(ctx.codes_test)
            size = C.save_indices(Path(tmp) / "vq.npz", indices, ctx.model.codebook_size)
            rec = ctx.map(
                ctx.model.decode, ctx.model.codes_from_indices(C.load_indices(Path(tmp) / "vq.npz"))
            )
            record("vq_indices", size / n, rec)
            out["test/compression/vq_indices_bits_per_image"] = 8 * size / n
        for name, (train_codes, codes, decode) in _code_methods(ctx).items():
            if name == "ae" and isinstance(ctx.model, Quantized):
                continue  # its codes are the indices above
            quantizer = C.AffineQuantizer.fit(train_codes)  # fitted on the training codes
            for fmt in C.FORMATS:
                stored = C.encode_codes(codes, fmt, quantizer)
                size = C.save_codes(
                    Path(tmp) / f"{name}_{fmt}.npz", stored, quantizer if fmt == "uint8" else None
                )
                rec = decode(C.decode_codes(stored, quantizer))
                record(f"{name}_{fmt}", size / n, rec)
                if fmt == "float32":
                    out[f"test/compression/{name}_mse"] = mse_per_image(rec, ctx.x_test).mean().item()
    for q in jpeg_qualities:
        dec, sizes, payloads = C.codec_roundtrip(ctx.test_u8, "jpeg", int(q))
        out[f"test/compression/jpeg_q{q}_bytes_per_image"] = sum(sizes) / n
        out[f"test/compression/jpeg_q{q}_payload_bytes_per_image"] = sum(payloads) / n
        out[f"test/compression/jpeg_q{q}_ratio_vs_raw"] = ctx.raw_bytes / (sum(sizes) / n)
        out[f"test/compression/jpeg_q{q}_psnr"] = psnr_per_image(to_float(dec), ctx.x_test).mean().item()
    return out


def features(
    ctx: EvalContext, knn_k: int = 5, max_train: int | None = None, seed: int = 0
) -> dict[str, float]:
    """Linear-probe and k-NN accuracy of the codes, and of the PCA codes of the same size (labelled data only),
    fitted on the training codes — at most ``max_train`` of them, a seeded subset shared by both
    (``test/features/num_train`` says how many)."""
    if not ctx.labelled:
        return ctx.skip("features", f"{ctx.datamodule.name} has no labels to probe the codes with")
    pca_train, pca_test = ctx.pca_codes
    codes_train, train_y = ctx.codes_train, ctx.train_y
    if max_train is not None and len(train_y) > int(max_train):
        pick = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(int(seed)))[
            : int(max_train)
        ]
        codes_train, pca_train, train_y = codes_train[pick], pca_train[pick], train_y[pick]
    k = int(knn_k)
    return {
        "test/features/linear_probe_acc": linear_probe_accuracy(
            codes_train, train_y, ctx.codes_test, ctx.test_y
        ),
        "test/features/knn_acc": knn_accuracy(codes_train, train_y, ctx.codes_test, ctx.test_y, k),
        "test/features/pca_linear_probe_acc": linear_probe_accuracy(pca_train, train_y, pca_test, ctx.test_y),
        "test/features/pca_knn_acc": knn_accuracy(pca_train, train_y, pca_test, ctx.test_y, k),
        "test/features/num_train": float(len(train_y)),
    }


def anomaly(ctx: EvalContext, ood_data=None, ood_required: bool = False) -> dict[str, float]:
    """AUROC of the anomaly scores (reconstruction error; −ELBO for a VAE): one-class when the run kept only some
    classes (``data.train_classes``: ``test/anomaly/oneclass_auroc``), and the test split against the test split of
    ``ood_data`` (any datamodule of the same image shape: ``test/anomaly/ood_auroc``, ``ood_auroc_elbo``).
    Per-image scores go to ``anomaly_scores.npz`` (ROC curves). A set that cannot be read is skipped with a
    warning when it is the default one, and stops the evaluation when it was chosen (``ood_required``).

    Raises:
        MissingDataError: when a chosen set's files cannot be read.
        ConfigError: when the set's images are not of the model's shape.
    """
    out: dict[str, float] = {}
    model, bs, device = ctx.model, ctx.batch_size, ctx.device
    score_in = mse_per_image(ctx.recon, ctx.x_test)
    probabilistic = is_probabilistic(model)
    if probabilistic:
        elbo_in = elbo_scores(model, ctx.x_test, bs, device, seed=0)
    classes = ctx.datamodule.train_classes
    if classes:
        is_anom = ~torch.isin(ctx.test_y, torch.tensor(list(classes)))
        out["test/anomaly/oneclass_auroc"] = auroc(score_in, is_anom)
        if probabilistic:
            out["test/anomaly/oneclass_auroc_elbo"] = auroc(elbo_in, is_anom)
    if ood_data is None:
        return out
    try:  # through the data contract; nothing is downloaded
        ood_u8, _ = ood_data.split_tensors("test")
    except (FileNotFoundError, RuntimeError) as err:
        if ood_required:
            from aelab.errors import MissingDataError

            raise MissingDataError(
                f"the chosen out-of-distribution set {getattr(ood_data, 'name', type(ood_data).__name__)} cannot be "
                f"read: {str(err).splitlines()[0]}; fix its files, or choose another with data@ood=<data config>"
            ) from None
        log.warning(
            "anomaly detection vs %s skipped: %s (`make data` unpacks Fashion-MNIST from ../shared/data)",
            getattr(ood_data, "name", type(ood_data).__name__),
            str(err).splitlines()[0],
        )
        return out
    if tuple(ood_u8.shape[1:]) != ctx.image_shape:
        from aelab.errors import ConfigError

        raise ConfigError(
            f"the out-of-distribution set {ood_data.name} has images {list(ood_u8.shape[1:])}, the model's are "
            f"{list(ctx.image_shape)} (C, H, W): give it the same shape (e.g. ood.image_size="
            f"{list(ctx.image_shape[1:])} ood.channels={ctx.image_shape[0]} for an image folder), or "
            "suite.sections.anomaly.ood_data=null"
        )
    ood = anomaly_scores(model, ood_u8, bs, device, seed=1)
    labels = torch.cat([torch.zeros(len(score_in)), torch.ones(len(ood["recon"]))])
    out["test/anomaly/ood_auroc"] = auroc(torch.cat([score_in, ood["recon"]]), labels)
    saved = {
        "recon_in": score_in.numpy(),
        "recon_ood": ood["recon"].numpy(),
        "ood_name": np.array(ood_data.name),
    }
    if probabilistic:
        out["test/anomaly/ood_auroc_elbo"] = auroc(torch.cat([elbo_in, ood["elbo"]]), labels)
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
    precision: str = "auto",
) -> dict[str, float]:
    """Test NLL (nats) by importance sampling, the IWAE bound with ``k`` samples (Burda et al. 2016, eq. 8),
    beside the one-sample −ELBO; probabilistic models only.

    ``precision``: ``auto`` runs the decoder at the evaluation's precision (``bf16-mixed`` where the device has
    native bf16) with the log-likelihoods, log-weights and log-sum-exp in float64; ``32-true`` runs everything in
    fp32 (the reference).
    """
    model, device, x_test = ctx.model, ctx.device, ctx.x_test
    if not is_probabilistic(model):
        return {}
    n = len(x_test) if num_images is None else min(int(num_images), len(x_test))
    gen = torch.Generator(device=device).manual_seed(int(seed))
    use = ctx.precision if precision == "auto" else precision
    fn = vae_log_likelihood_fn(model, bf16=use == "bf16-mixed")
    iwae, elbo = [], []
    with torch.no_grad():
        for i, x in enumerate(x_test[:n].split(int(batch_size))):
            x = likelihood_inputs(model, x.to(device), int(seed) + i)
            iwae.append(iwae_log_likelihood(x, model.posterior, fn, int(k), int(chunk), gen).cpu())
            elbo.append(iwae_log_likelihood(x, model.posterior, fn, 1, 1, gen).cpu())
    return {
        "test/likelihood/nll_iwae": -torch.cat(iwae).double().mean().item(),
        "test/likelihood/nelbo": -torch.cat(elbo).double().mean().item(),
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
    limit = min(math.prod(ctx.image_shape), len(ctx.train_u8))
    comps = sorted({min(int(c), limit) for c in pca_components})
    pca = C.fit_pca(to_float(ctx.train_u8), max(comps))
    mean = torch.from_numpy(pca.mean_).float()
    basis = torch.from_numpy(pca.components_).float()  # (max, C·H·W), ordered by variance
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


def default_sampler(model) -> str:
    """The sampler a model's ``test/generation/fid`` uses: its prior when it has one, the codebook's categorical
    for a vector-quantized model, else a Gaussian fitted to the training codes."""
    if isinstance(model, Generative):
        return "prior"
    return "categorical" if isinstance(model, Quantized) else "gaussian"


def fid(
    ctx: EvalContext,
    num_samples: int = 10000,
    classifier_epochs: int = 2,
    seed: int = 0,
    samplers=("prior", "gaussian", "gmm", "categorical"),
    gmm_components: int = 10,
    grid_samples: int = 64,
    gmm_max_dims: int | None = 64,
) -> dict[str, float]:
    """Fréchet distance of generated images to the test images on the features of a classifier trained on the data
        (:mod:`aelab.evaluation.fid`), one per sampler that applies to the model (``test/generation/fid_<sampler>``;
        ``test/generation/fid`` is the model's default sampler's), with the train-vs-test distance as the floor and the
        classifier's accuracy. Each sampler's first ``grid_samples`` images go to ``samples_<sampler>.png`` and to
        the loggers (``samples/<sampler>``). ``test/generation/num_samples`` is the number of images compared, and
    ``test/generation/gmm_dims`` the dimensions the mixture was fitted in (a PCA of wider codes to ``gmm_max_dims``,
    full covariances there). Labelled data only."""
    from aelab.evaluation import fid as FID

    if not ctx.labelled:
        return ctx.skip("fid", f"{ctx.datamodule.name} has no labels to train the feature classifier on")
    net, acc = FID.classifier(
        (ctx.train_u8, ctx.train_y),
        (ctx.test_u8, ctx.test_y),
        ctx.datamodule.cache_dir,
        ctx.device,
        epochs=int(classifier_epochs),
        seed=int(seed),
        num_classes=ctx.datamodule.num_classes,
    )
    n = min(int(num_samples), len(ctx.test_u8))
    real = ctx.test_u8[:n]
    floor_idx = torch.randperm(len(ctx.train_u8), generator=torch.Generator().manual_seed(int(seed)))[:n]
    out = {
        "test/generation/fid_train_vs_test": FID.frechet_distance(
            net, real, ctx.train_u8[floor_idx], ctx.batch_size, ctx.device
        ),
        "test/generation/fid_classifier_test_acc": acc,
        "test/generation/num_samples": float(n),
    }
    media = Media(ctx.loggers)
    default = default_sampler(ctx.model)
    for spec in samplers:
        params = {"n_components": int(gmm_components), "max_dims": gmm_max_dims} if spec == "gmm" else {}
        sampler = make_sampler(spec, seed=int(seed), **params)
        name = sampler.name
        if not sampler.applies(ctx.model):
            continue
        sampler.fit(ctx.model, ctx.codes_train)
        if name == "gmm":
            out["test/generation/gmm_dims"] = float(sampler.fit_dims)
        fake = generate(ctx.model, sampler, n, seed=int(seed), batch_size=ctx.batch_size, device=ctx.device)
        value = FID.frechet_distance(net, real, fake, ctx.batch_size, ctx.device)
        out[f"test/generation/fid_{name}"] = value
        if name == default:
            out["test/generation/fid"] = value
        picture = visuals.grid(fake[: int(grid_samples)])
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        save_image(picture, ctx.output_dir / f"samples_{name}.png")
        media.image(f"samples/{name}", picture, ctx.step)
    return out


def generation(
    ctx: EvalContext, num_samples: int = 64, interpolation_steps: int = 10, seed: int = 0
) -> dict[str, float]:
    """``samples.png`` (prior samples) and ``interpolation.png`` (two test images and the path between their
    codes) beside ``metrics.json`` and in the loggers; generative models only. No figures."""
    model, x_test = ctx.model, ctx.x_test
    if not isinstance(model, Generative):
        return {}
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    media = Media(ctx.loggers)
    samples = visuals.grid(visuals.prior_samples(model, int(num_samples), int(seed)))
    path = visuals.rows(
        visuals.interpolation(
            model, x_test[0].to(ctx.device), x_test[1].to(ctx.device), int(interpolation_steps)
        )
    )
    for name, picture in (("samples", samples), ("interpolation", path)):
        save_image(picture, ctx.output_dir / f"{name}.png")
        media.image(name, picture, ctx.step)
    log.info("samples.png and interpolation.png written to %s", ctx.output_dir)
    return {}


def _image_quality(decoded: list[torch.Tensor], originals: list[torch.Tensor]) -> dict[str, float]:
    """Mean per-image PSNR (dB) and SSIM of uint8 images (any sizes), and MS-SSIM where every image is large
    enough for its five scales (at least 161 px a side).

    An image decoded exactly has an infinite PSNR, which would make the mean infinite (and the point vanish from
    the report): it counts as the highest PSNR a uint8 image that is not exact can have, one pixel one level
    off, ``10 log10(255² · C·H·W)`` (77.1 dB for 28×28), and ``exact_fraction`` says how many were exact."""
    from torchmetrics.functional.image import (
        multiscale_structural_similarity_index_measure as ms_ssim,
    )
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    psnr, ss, ms, exact = [], [], [], 0
    for d, o in zip(decoded, originals, strict=True):
        a, b = to_float(d)[None], to_float(o)[None]
        value = psnr_per_image(a, b).item()
        exact += not np.isfinite(value)
        psnr.append(value if np.isfinite(value) else 10 * np.log10(255.0**2 * o.numel()))
        ss.append(ssim(a, b, data_range=1.0, kernel_size=ssim_window(b)).item())
        if min(o.shape[-2:]) >= 161:
            ms.append(ms_ssim(a, b, data_range=1.0).item())
    out = {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ss)), "exact_fraction": exact / len(decoded)}
    if len(ms) == len(decoded):
        out["ms_ssim"] = float(np.mean(ms))
    return out


def _test_sets(ctx: EvalContext, num_images: int | None) -> dict[str, list[torch.Tensor]]:
    """The image sets a codec is measured on: the test split (its first ``num_images``) and, when the data has
    them (``data=photo_patches``), the held-out photographs whole (``photos``)."""
    images = ctx.test_u8 if num_images is None else ctx.test_u8[: int(num_images)]
    sets = {"": list(images)}
    photos = getattr(ctx.datamodule, "test_photos", None)
    if callable(photos):
        sets["photos/"] = photos()
    return sets


def classical_codecs(
    ctx: EvalContext,
    codecs=("jpeg", "webp", "avif", "jxl"),
    qualities=(5, 10, 20, 30, 50, 70, 90),
    lossless=("png", "webp_lossless"),
    num_images: int | None = 2000,
) -> dict[str, float]:
    """The classical codecs' rate–distortion curves on the test images (each image coded alone, headers counted;
    JPEG also without its header) and, for photograph data, on the held-out photographs whole:
    ``test/compression/[photos/]<codec>_q<q>_{bytes_per_image,bits_per_pixel,psnr,ssim}``, and the lossless
    codecs' ``..._bytes_per_image``. They depend on the data alone: cached in the data's cache folder (keyed by
    the test images), so each data set pays for them once. A codec Pillow cannot write here is said and skipped."""
    import hashlib
    import json

    sets = _test_sets(ctx, num_images)
    key = hashlib.sha256(
        json.dumps(
            [2, list(codecs), list(qualities), list(lossless)]
        ).encode()  # 2: exact images' PSNR capped
        + b"".join(img.numpy().tobytes() for imgs in sets.values() for img in imgs)
    ).hexdigest()[:20]
    cache = ctx.datamodule.cache_dir / f"codecs_{key}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    out: dict[str, float] = {}
    for name in [*codecs, *lossless]:
        why = C.codec_available(name)
        if why:
            log.warning("classical codec %s skipped: %s", name, why)
            continue
        for prefix, images in sets.items():
            pixels = sum(img.shape[-1] * img.shape[-2] for img in images) / len(images)
            points = [None] if C.CODECS[name].lossless else list(qualities)
            for q in points:
                decoded, sizes, payloads = zip(
                    *(C.codec_roundtrip(img[None], name, q) for img in images), strict=True
                )
                base = f"test/compression/{prefix}{name}" + ("" if q is None else f"_q{q}")
                per_image = sum(s[0] for s in sizes) / len(images)
                out[f"{base}_bytes_per_image"] = per_image
                out[f"{base}_bits_per_pixel"] = 8 * per_image / pixels
                if name == "jpeg":
                    out[f"{base}_payload_bytes_per_image"] = sum(p[0] for p in payloads) / len(images)
                if q is not None:
                    quality = _image_quality([d[0] for d in decoded], images)
                    out |= {f"{base}_{k}": v for k, v in quality.items()}
    out["test/compression/codecs_num_images"] = float(len(sets[""]))
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out, indent=1))
    return out


def codec(ctx: EvalContext, batch_size: int = 500, num_images: int | None = None) -> dict[str, float]:
    """A learned codec's real files (:mod:`aelab.bitstream`): the test split coded into one file (and, for
    photograph data, the held-out photographs whole into another), its bytes per image and bits per pixel
    (headers included), PSNR / SSIM (MS-SSIM for large images) of the decoded images, encode and decode
    throughput (images/s), and a check that decoding reproduces the encoder's reconstruction exactly
    (``test/codec/roundtrip_exact`` = 1), on the first ``num_images`` test images (null: all; the suite gives it
    the classical codecs' count, so every codec is measured on the same images: ``test/codec/num_images``).
    Learned codecs only."""
    import time

    from aelab import bitstream
    from aelab.checkpoint import state_fingerprint
    from aelab.models.codec import LearnedCodec

    model = ctx.model
    if not isinstance(model, LearnedCodec):
        return {}
    fingerprint = state_fingerprint(model.state_dict())
    out: dict[str, float] = {}
    out["test/codec/num_images"] = float(
        len(ctx.test_u8) if num_images is None else min(len(ctx.test_u8), int(num_images))
    )
    for prefix, images in _test_sets(ctx, num_images).items():
        t0 = time.perf_counter()
        data, recon = bitstream.encode(model, images, fingerprint, batch_size, ctx.device)
        t_enc = time.perf_counter() - t0
        t0 = time.perf_counter()
        decoded = bitstream.decode(model, data, "the evaluation's file", fingerprint, batch_size, ctx.device)
        t_dec = time.perf_counter() - t0
        pixels = sum(img.shape[-1] * img.shape[-2] for img in images) / len(images)
        key = f"test/codec/{prefix}"
        out[f"{key}bytes_per_image"] = len(data) / len(images)
        out[f"{key}bits_per_pixel"] = 8 * len(data) / len(images) / pixels
        out |= {f"{key}{k}": v for k, v in _image_quality(decoded, images).items()}
        out[f"{key}encode_images_per_s"] = len(images) / t_enc
        out[f"{key}decode_images_per_s"] = len(images) / t_dec
        out[f"{key}roundtrip_exact"] = float(
            all(torch.equal(a, b) for a, b in zip(recon, decoded, strict=True))
        )
    return out
