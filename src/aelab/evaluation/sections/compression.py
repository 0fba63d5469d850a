"""Compression: the codes in real files beside PCA and the classical codecs; the learned codec's files."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import PIL
import torch

from aelab.checkpoint import state_fingerprint
from aelab.codecs import classical, codes, container
from aelab.evaluation.cache import cached_figures
from aelab.evaluation.context import EvalContext, requires
from aelab.evaluation.metrics import (
    mse_per_image,
    psnr_per_image,
    ssim_window,
    to_float,
)
from aelab.models.capabilities import Autoencoding, Compressor, Quantized

log = logging.getLogger("aelab")


def _code_methods(ctx: EvalContext) -> dict:
    """``{name: (training codes, test codes, decode)}``: the model's codes and PCA's of the same size."""
    pca_train, pca_test = ctx.pca_codes
    return {
        "ae": (ctx.codes_train, ctx.codes_test, lambda z: ctx.map(ctx.model.decode, z)),
        "pca": (pca_train, pca_test, ctx.pca_decode),
    }


@requires(Autoencoding, images=True)
def compression(ctx: EvalContext, jpeg_qualities=(5, 10, 20, 50, 90)) -> dict[str, float]:
    """Codes written to real files — at float32 / float16 / 8 bits, or as codebook indices for a vector-quantized
    model — beside PCA of the same size, JPEG (with and without its header), PNG and gzip; bytes per image and
    ratios against the raw ``C·H·W``-byte image (``test/compression/raw_bytes_per_image``)."""
    out: dict[str, float] = {"test/compression/raw_bytes_per_image": float(ctx.raw_bytes)}
    n = len(ctx.codes_test)
    # the classical codecs' figures depend on the test images alone: cached with the data
    out |= cached_figures(ctx.datamodule.cache_dir, "classical_codecs",
                          ("compression", ctx.test_u8, tuple(jpeg_qualities), PIL.__version__),
                          lambda: _classical(ctx, jpeg_qualities))  # fmt: skip
    gz = out["test/compression/gzip_bytes_per_image"]

    def record(name: str, per_image: float, rec: torch.Tensor) -> None:
        out[f"test/compression/{name}_bytes_per_image"] = per_image
        out[f"test/compression/{name}_ratio_vs_raw"] = ctx.raw_bytes / per_image
        out[f"test/compression/{name}_ratio_vs_gzip"] = gz / per_image
        out[f"test/compression/{name}_psnr"] = psnr_per_image(rec, ctx.x_test).mean().item()

    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(ctx.model, Quantized):  # codebook indices, packed at ceil(log2 K) bits each
            indices = ctx.model.code_indices(ctx.codes_test)
            size = codes.save_indices(Path(tmp) / "vq.npz", indices, ctx.model.codebook_size)
            rec = ctx.map(
                ctx.model.decode, ctx.model.codes_from_indices(codes.load_indices(Path(tmp) / "vq.npz"))
            )
            record("vq_indices", size / n, rec)
            out["test/compression/vq_indices_bits_per_image"] = 8 * size / n
        for name, (train_codes, test_codes, decode) in _code_methods(ctx).items():
            if name == "ae" and isinstance(ctx.model, Quantized):
                continue  # its codes are the indices above
            quantizer = codes.AffineQuantizer.fit(train_codes)  # fitted on the training codes
            for fmt in codes.FORMATS:
                stored = codes.encode_codes(test_codes, fmt, quantizer)
                size = codes.save_codes(
                    Path(tmp) / f"{name}_{fmt}.npz", stored, quantizer if fmt == "uint8" else None
                )
                rec = decode(codes.decode_codes(stored, quantizer))
                record(f"{name}_{fmt}", size / n, rec)
                if fmt == "float32":
                    out[f"test/compression/{name}_mse"] = mse_per_image(rec, ctx.x_test).mean().item()
    return out


def _classical(ctx: EvalContext, jpeg_qualities) -> dict[str, float]:
    """gzip, PNG and JPEG (each quality) on the test images: bytes per image, ratios, JPEG's PSNR."""
    n = len(ctx.test_u8)
    gz = classical.gzip_bytes_per_image(ctx.test_u8)
    out = {
        "test/compression/gzip_bytes_per_image": gz,
        "test/compression/gzip_ratio_vs_raw": ctx.raw_bytes / gz,
    }
    _, png_sizes, _ = classical.codec_roundtrip(ctx.test_u8, "png")
    out["test/compression/png_bytes_per_image"] = sum(png_sizes) / n
    for q in jpeg_qualities:
        dec, sizes, payloads = classical.codec_roundtrip(ctx.test_u8, "jpeg", int(q))
        out[f"test/compression/jpeg_q{q}_bytes_per_image"] = sum(sizes) / n
        out[f"test/compression/jpeg_q{q}_payload_bytes_per_image"] = sum(payloads) / n
        out[f"test/compression/jpeg_q{q}_ratio_vs_raw"] = ctx.raw_bytes / (sum(sizes) / n)
        out[f"test/compression/jpeg_q{q}_psnr"] = psnr_per_image(to_float(dec), ctx.x_test).mean().item()
    return out


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


@requires(Compressor, images=True)
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
        why = classical.codec_available(name)
        if why:
            log.warning("classical codec %s skipped: %s", name, why)
            continue
        for prefix, images in sets.items():
            pixels = sum(img.shape[-1] * img.shape[-2] for img in images) / len(images)
            points = [None] if classical.CODECS[name].lossless else list(qualities)
            for q in points:
                decoded, sizes, payloads = zip(
                    *(classical.codec_roundtrip(img[None], name, q) for img in images), strict=True
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


@requires(Compressor, images=True)
def codec(ctx: EvalContext, batch_size: int = 500, num_images: int | None = None) -> dict[str, float]:
    """A learned codec's real files (:mod:`aelab.codecs.container`, through the
    :class:`~aelab.models.capabilities.Compressor` protocol), on the first ``num_images`` test images (null: all;
    the suite gives it the classical codecs' count, so every codec is measured on the same images:
    ``test/codec/num_images``) and, for photograph data, on the held-out photographs whole (``test/codec/photos/...``):

    - one file per image, as the classical codecs are measured (headers counted): ``bytes_per_image``,
      ``bits_per_pixel`` and ``header_bytes`` (per file);
    - one stream for the whole set: ``stream_bytes_per_image``, ``stream_bits_per_pixel``;
    - PSNR (dB) / SSIM (MS-SSIM for large images) of the decoded images; encode and decode throughput of the
      per-image files (images/s); ``roundtrip_exact`` = 1 when both formats decode to the encoder's
      reconstructions bit for bit; ``estimated_bytes_per_image``: the model's rate estimate of the same images
      (what training minimized), for the coder's overhead."""
    import time

    model = ctx.model
    model.update()  # the checkpoint's tables are its weights'; rebuilt here for a model updated by hand
    fingerprint = state_fingerprint(model.state_dict())
    out: dict[str, float] = {}
    out["test/codec/num_images"] = float(
        len(ctx.test_u8) if num_images is None else min(len(ctx.test_u8), int(num_images))
    )
    for prefix, images in _test_sets(ctx, num_images).items():
        key = f"test/codec/{prefix}"
        pixels = sum(img.shape[-1] * img.shape[-2] for img in images) / len(images)
        t0 = time.perf_counter()
        files, recon = container.encode_each(model, images, fingerprint, batch_size, ctx.device)
        t_enc = time.perf_counter() - t0
        t0 = time.perf_counter()
        decoded = container.decode_each(
            model, [(f, f"image {i}") for i, f in enumerate(files)], fingerprint, batch_size
        )
        t_dec = time.perf_counter() - t0
        per_image = sum(len(f) for f in files) / len(images)
        out[f"{key}bytes_per_image"] = per_image
        out[f"{key}bits_per_pixel"] = 8 * per_image / pixels
        out[f"{key}header_bytes"] = float(np.mean([container.per_image_header_size(f) for f in files]))
        out |= {f"{key}{k}": v for k, v in _image_quality(decoded, images).items()}
        out[f"{key}encode_images_per_s"] = len(images) / t_enc
        out[f"{key}decode_images_per_s"] = len(images) / t_dec
        data, stream_recon = container.encode(model, images, fingerprint, batch_size, ctx.device)
        stream_decoded = container.decode(model, data, "the evaluation's stream", fingerprint)
        out[f"{key}stream_bytes_per_image"] = len(data) / len(images)
        out[f"{key}stream_bits_per_pixel"] = 8 * len(data) / len(images) / pixels
        exact = all(torch.equal(a, b) for a, b in zip(recon, decoded, strict=True)) and all(
            torch.equal(a, b) for a, b in zip(stream_recon, stream_decoded, strict=True)
        )
        out[f"{key}roundtrip_exact"] = float(exact)
        bits = 0.0
        with torch.no_grad():  # in batches of one image size (the held-out photos differ)
            for idx in container.size_groups([tuple(img.shape[-2:]) for img in images], batch_size):
                x = torch.stack([images[i] for i in idx]).to(ctx.device).float() / 255
                bits += model.rate_bits(x).sum().item()
        out[f"{key}estimated_bytes_per_image"] = bits / 8 / len(images)
    return out
