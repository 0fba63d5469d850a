"""Codes as a compressed file format, and the baselines they are judged against.

An autoencoder compresses an image to its code. Stored at float32 a ``d``-dim code takes ``4d`` bytes, at
float16 ``2d``, and at 8 bits ``d`` bytes with a per-dimension affine quantizer fitted on the training
codes (``q = round((z - lo) / scale)``, ``scale = (hi - lo) / 255``). The raw image takes 784 bytes.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

FORMATS = ("float32", "float16", "uint8")
RAW_BYTES = 28 * 28  # one uint8 MNIST image


@dataclass
class AffineQuantizer:
    """Per-dimension 8-bit affine quantizer: ``z ≈ lo + scale · q`` with ``q ∈ {0..255}``."""

    lo: Tensor  # (d,)
    scale: Tensor  # (d,)

    @classmethod
    def fit(cls, codes: Tensor) -> AffineQuantizer:
        """Fit on codes ``(N, d)``: ``lo`` = per-dim minimum, ``scale`` = range / 255 (1 where constant)."""
        lo, hi = codes.min(0).values, codes.max(0).values
        scale = (hi - lo) / 255.0
        return cls(lo.float(), torch.where(scale > 0, scale, torch.ones_like(scale)).float())

    def quantize(self, codes: Tensor) -> Tensor:
        """``(N, d)`` float → ``(N, d)`` uint8 (values outside the fitted range are clamped)."""
        return ((codes - self.lo) / self.scale).round().clamp(0, 255).to(torch.uint8)

    def dequantize(self, q: Tensor) -> Tensor:
        return self.lo + self.scale * q.float()


def encode_codes(codes: Tensor, fmt: str, quantizer: AffineQuantizer | None = None) -> Tensor:
    """Codes stored in ``fmt`` (``float32``, ``float16``, ``uint8``; the latter needs ``quantizer``)."""
    if fmt == "float32":
        return codes.float()
    if fmt == "float16":
        return codes.half()
    if fmt == "uint8":
        if quantizer is None:
            raise ValueError("uint8 codes need a quantizer fitted on the training codes")
        return quantizer.quantize(codes)
    raise ValueError(f"unknown code format {fmt!r}; choose one of {FORMATS}")


def decode_codes(stored: Tensor, quantizer: AffineQuantizer | None = None) -> Tensor:
    """Stored codes back to float32 ``(N, d)``."""
    if stored.dtype == torch.uint8:
        if quantizer is None:
            raise ValueError("uint8 codes need their quantizer to be decoded")
        return quantizer.dequantize(stored)
    return stored.float()


def bytes_per_image(latent_dim: int, fmt: str) -> int:
    """Payload bytes of one code: 4, 2 or 1 byte per dimension."""
    return latent_dim * {"float32": 4, "float16": 2, "uint8": 1}[fmt]


def save_codes(
    path: str | Path, stored: Tensor, quantizer: AffineQuantizer | None = None, labels: Tensor | None = None
) -> int:
    """Write codes to an uncompressed ``.npz`` (codes, quantizer, optional labels); returns the file size."""
    path = Path(path)
    arrays = {"codes": stored.cpu().numpy()}
    if quantizer is not None:
        arrays |= {"lo": quantizer.lo.cpu().numpy(), "scale": quantizer.scale.cpu().numpy()}
    if labels is not None:
        arrays["labels"] = labels.cpu().numpy().astype(np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path.stat().st_size


def load_codes(path: str | Path) -> tuple[Tensor, AffineQuantizer | None]:
    """Read a file written by :func:`save_codes`: ``(stored codes, quantizer or None)``."""
    with np.load(path) as data:
        stored = torch.from_numpy(data["codes"].copy())
        quantizer = None
        if "lo" in data:
            quantizer = AffineQuantizer(
                torch.from_numpy(data["lo"].copy()), torch.from_numpy(data["scale"].copy())
            )
    return stored, quantizer


def gzip_bytes_per_image(images: Tensor, level: int = 9) -> float:
    """Bytes per image of the raw uint8 images ``(N, 28, 28)`` compressed together with gzip."""
    return len(gzip.compress(images.to(torch.uint8).cpu().numpy().tobytes(), compresslevel=level)) / len(
        images
    )


def jpeg_roundtrip(images: Tensor, quality: int) -> tuple[Tensor, float]:
    """JPEG (Pillow, grayscale) each uint8 image ``(N, 28, 28)``: ``(decoded uint8 images, mean bytes/image)``."""
    out, total = [], 0
    for img in images.cpu().numpy():
        buf = io.BytesIO()
        Image.fromarray(img, mode="L").save(buf, format="JPEG", quality=int(quality))
        total += buf.tell()
        buf.seek(0)
        out.append(np.array(Image.open(buf)))
    return torch.from_numpy(np.stack(out)), total / len(images)


def fit_pca(train_images: Tensor, n_components: int, seed: int = 0):
    """scikit-learn PCA fitted on flattened float training images ``(N, 784)`` in [0, 1]."""
    from sklearn.decomposition import PCA

    x = train_images.float().flatten(1).numpy()
    return PCA(n_components=n_components, svd_solver="randomized", random_state=seed).fit(x)


def pca_roundtrip(pca, images: Tensor) -> Tensor:
    """Project float images ``(N, 1, 28, 28)`` onto the PCA subspace and back, clamped to [0, 1]."""
    x = images.float().flatten(1).numpy()
    rec = pca.inverse_transform(pca.transform(x))
    return torch.from_numpy(rec).float().clamp(0, 1).view_as(images)
