"""Codes as a compressed file format (``.npz``): an autoencoder's codes at float32 / float16 / 8 bits, or a VQ-VAE's
codebook indices packed at ``ceil(log2 K)`` bits.

Stored at float32 a ``d``-dim code takes ``4d`` bytes, at float16 ``2d``, and at 8 bits ``d`` bytes with a
per-dimension affine quantizer fitted on the training codes (``q = round((z - lo) / scale)``,
``scale = (hi - lo) / 255``). A code file names the checkpoint it belongs to (its fingerprint) and is refused by
another one.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from aelab.errors import UntrustedFileError

FORMATS = ("float32", "float16", "uint8")


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
    path: str | Path,
    stored: Tensor,
    quantizer: AffineQuantizer | None = None,
    labels: Tensor | None = None,
    fingerprint: str | None = None,
) -> int:
    """Write codes to an uncompressed ``.npz``; returns the file size in bytes.

    Arrays: ``codes`` ``(N, d)`` (its dtype is the format: float32 | float16 | uint8), ``lo``/``scale`` of
    the quantizer (uint8 only), optional ``labels`` ``(N,)``, and optional ``fingerprint`` (ASCII bytes):
    the SHA-256 of the weights the codes were written with plus the latent size, format and quantizer
    (see :func:`codes_fingerprint`).
    """
    path = Path(path)
    arrays = {"codes": stored.cpu().numpy()}
    if quantizer is not None:
        arrays |= {"lo": quantizer.lo.cpu().numpy(), "scale": quantizer.scale.cpu().numpy()}
    if labels is not None:
        arrays["labels"] = labels.cpu().numpy().astype(np.uint8)
    if fingerprint is not None:
        fp = codes_fingerprint(fingerprint, stored.shape[1], code_format(stored), quantizer)
        arrays["fingerprint"] = np.array(fp.encode("ascii"))
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path.stat().st_size


def code_format(stored: Tensor) -> str:
    """The format name of stored codes, from their dtype."""
    return {torch.float32: "float32", torch.float16: "float16", torch.uint8: "uint8"}[stored.dtype]


def codes_fingerprint(weights: str, latent_dim: int, fmt: str, quantizer: AffineQuantizer | None) -> str:
    """``<weights sha256>:<latent_dim>:<format>:<quantizer sha256 prefix>`` — what a codes file must match
    to be decoded by a checkpoint."""
    q = "none"
    if quantizer is not None:
        q = hashlib.sha256(
            quantizer.lo.float().cpu().numpy().tobytes() + quantizer.scale.float().cpu().numpy().tobytes()
        ).hexdigest()[:16]
    return f"{weights}:{latent_dim}:{fmt}:{q}"


def load_codes(path: str | Path) -> tuple[Tensor, AffineQuantizer | None, str | None]:
    """Read a file written by :func:`save_codes`: ``(stored codes, quantizer or None, fingerprint or None)``.

    The file is untrusted: it is read with ``allow_pickle=False`` and checked for the expected arrays.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        UntrustedFileError: "not an aelab codes file: <path> (<what is wrong>)".
    """

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"codes file {path.resolve()} does not exist")

    def refuse(why: str) -> UntrustedFileError:
        return UntrustedFileError(f"not an aelab codes file: {path} ({why}); write one with aelab-compress")

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise refuse(f"unreadable .npz: {type(err).__name__}") from None
    codes = arrays.get("codes")
    if codes is None or codes.ndim != 2 or codes.dtype not in (np.float32, np.float16, np.uint8):
        raise refuse("no 2-D float32/float16/uint8 'codes' array")
    quantizer = None
    if codes.dtype == np.uint8:
        lo, scale = arrays.get("lo"), arrays.get("scale")
        if lo is None or scale is None or lo.shape != (codes.shape[1],) or scale.shape != lo.shape:
            raise refuse("uint8 codes without a matching 'lo'/'scale' quantizer")
        quantizer = AffineQuantizer(
            torch.from_numpy(lo.astype(np.float32)), torch.from_numpy(scale.astype(np.float32))
        )
    fp = arrays.get("fingerprint")
    fingerprint = None
    if fp is not None and fp.dtype.kind == "S" and fp.ndim == 0:
        fingerprint = bytes(fp.item()).decode("ascii", errors="replace")
    return torch.from_numpy(codes.copy()), quantizer, fingerprint


def index_bits(codebook_size: int) -> int:
    """Bits of one codebook index: ``ceil(log2 K)``."""
    return max(1, int(np.ceil(np.log2(int(codebook_size)))))


def save_indices(path: str | Path, indices: Tensor, codebook_size: int) -> int:
    """Write codebook indices ``(N, P)`` bit-packed at :func:`index_bits` bits each to an uncompressed ``.npz``
    (``bits``: the packed bytes, ``shape``, ``codebook_size``); returns the file size in bytes."""
    b = index_bits(codebook_size)
    idx = indices.long().cpu().numpy().astype(np.uint32)
    bits = ((idx[..., None] >> np.arange(b - 1, -1, -1, dtype=np.uint32)) & 1).astype(np.uint8)
    with open(path, "wb") as f:
        np.savez(
            f,
            bits=np.packbits(bits.reshape(-1)),
            shape=np.array(idx.shape),
            codebook_size=np.array(codebook_size),
        )
    return Path(path).stat().st_size


def load_indices(path: str | Path) -> Tensor:
    """Codebook indices ``(N, P)`` from a file of :func:`save_indices`."""
    with np.load(path, allow_pickle=False) as data:
        shape, k = tuple(int(s) for s in data["shape"]), int(data["codebook_size"])
        b = index_bits(k)
        bits = np.unpackbits(data["bits"])[: int(np.prod(shape)) * b].reshape(*shape, b)
    weights = (1 << np.arange(b - 1, -1, -1)).astype(np.int64)
    return torch.from_numpy((bits.astype(np.int64) * weights).sum(-1))
