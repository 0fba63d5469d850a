"""Codes as a compressed file format, and the classical codecs they are judged against.

An autoencoder compresses an image to its code. Stored at float32 a ``d``-dim code takes ``4d`` bytes, at
float16 ``2d``, and at 8 bits ``d`` bytes with a per-dimension affine quantizer fitted on the training
codes (``q = round((z - lo) / scale)``, ``scale = (hi - lo) / 255``). The raw image takes ``C·H·W`` bytes
(784 for MNIST). The classical codecs (:data:`CODECS`: JPEG, PNG, WebP, AVIF, JPEG XL through Pillow, gzip)
code each image in the data's own mode (grey ``L`` or ``RGB``), headers included.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zipfile
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
    from aelab.checkpoint import UntrustedFileError

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


def raw_bytes_per_image(image_shape) -> int:
    """Bytes of one raw uint8 image of shape ``(C, H, W)``: ``C·H·W``."""
    return int(np.prod(image_shape))


def gzip_bytes_per_image(images: Tensor, level: int = 9) -> float:
    """Bytes per image of the raw uint8 images ``(N, C, H, W)`` compressed together with gzip."""
    return len(gzip.compress(images.to(torch.uint8).cpu().numpy().tobytes(), compresslevel=level)) / len(
        images
    )


@dataclass(frozen=True)
class Codec:
    """A classical image codec through Pillow: its format name, whether it is lossless, and its options
    (``quality`` is filled in per rate–distortion point for the lossy ones)."""

    format: str
    lossless: bool = False
    options: tuple[tuple[str, object], ...] = ()
    plugin: str | None = None  # the module that registers the format with Pillow, when it is a plugin


#: the classical codecs aelab compares with (``suite.sections.compression.codecs`` names them)
CODECS: dict[str, Codec] = {
    "jpeg": Codec("JPEG", options=(("optimize", True),)),
    "png": Codec("PNG", lossless=True, options=(("optimize", True), ("compress_level", 9))),
    "webp": Codec("WEBP", options=(("method", 6),)),
    "webp_lossless": Codec(
        "WEBP", lossless=True, options=(("lossless", True), ("quality", 100), ("method", 6))
    ),
    "avif": Codec("AVIF", options=(("speed", 6),)),
    "jxl": Codec("JXL", options=(("effort", 7),), plugin="pillow_jxl"),
}


def codec_available(name: str) -> str | None:
    """``None`` when Pillow can write ``name`` here, else the reason (and the install command)."""
    codec = CODECS[name]
    if codec.plugin is not None:
        try:
            __import__(codec.plugin)
        except ImportError:
            return f"{name} needs the {codec.plugin.replace('_', '-')}-plugin package: pip install -e '.[codecs]'"
    from PIL import features

    if codec.format in ("WEBP", "AVIF") and not features.check(codec.format.lower()):
        return f"this Pillow was built without {codec.format}"
    return None


def jpeg_payload_bytes(data: bytes) -> int:
    """The entropy-coded bytes of a baseline JPEG: what follows the start-of-scan header up to the end marker
    (the file minus its markers, quantization and Huffman tables: "JPEG without its header")."""
    i = 2  # after SOI
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError("not a JPEG stream")
        marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xDA:  # SOS: the scan follows its header
            end = len(data) - 2 if data[-2:] == b"\xff\xd9" else len(data)
            return end - (i + 2 + length)
        i += 2 + length
    raise ValueError("no start-of-scan marker in the JPEG stream")


def codec_roundtrip(
    images: Tensor, name: str, quality: int | None = None
) -> tuple[Tensor, list[int], list[int]]:
    """Code each uint8 image ``(N, C, H, W)`` (C = 1 or 3) alone with a classical codec and decode it again.

    Returns:
        ``(decoded uint8 images (N, C, H, W), file bytes per image, payload bytes per image)``; the payload is
        the file without its header for JPEG (:func:`jpeg_payload_bytes`), the whole file for the others.
    """

    codec = CODECS[name]
    if codec.plugin is not None:
        __import__(codec.plugin)
    options = dict(codec.options)
    if quality is not None and not codec.lossless:
        options["quality"] = int(quality)
    mode = "L" if images.shape[1] == 1 else "RGB"
    out, sizes, payloads = [], [], []
    for img in images.cpu().numpy():
        pil = Image.fromarray(img[0] if mode == "L" else img.transpose(1, 2, 0), mode=mode)
        buf = io.BytesIO()
        pil.save(buf, format=codec.format, **options)
        data = buf.getvalue()
        sizes.append(len(data))
        payloads.append(jpeg_payload_bytes(data) if codec.format == "JPEG" else len(data))
        with Image.open(io.BytesIO(data)) as back:
            arr = np.asarray(back.convert(mode), dtype=np.uint8)
        out.append(arr[None] if mode == "L" else arr.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out)), sizes, payloads


def jpeg_roundtrip(images: Tensor, quality: int) -> tuple[Tensor, float]:
    """JPEG each uint8 image ``(N, C, H, W)`` in its own mode: ``(decoded uint8 images, mean bytes/image)``."""
    dec, sizes, _ = codec_roundtrip(images, "jpeg", quality)
    return dec, sum(sizes) / len(sizes)


def fit_pca(train_images: Tensor, n_components: int, seed: int = 0):
    """scikit-learn PCA fitted on flattened float training images ``(N, C·H·W)`` in [0, 1]; at most as many
    components as the images have pixels (or images)."""
    from sklearn.decomposition import PCA

    x = train_images.float().flatten(1).numpy()
    k = min(int(n_components), x.shape[1], x.shape[0])
    return PCA(n_components=k, svd_solver="randomized", random_state=seed).fit(x)


def pca_decode(pca, codes: Tensor, shape: tuple[int, ...]) -> Tensor:
    """PCA codes ``(N, k)`` back to images ``(N, *shape)`` (``shape`` = ``(C, H, W)``), clamped to [0, 1]."""
    rec = pca.inverse_transform(codes.float().cpu().numpy())
    return torch.from_numpy(rec).float().clamp(0, 1).view(-1, *shape)


def pca_roundtrip(pca, images: Tensor) -> Tensor:
    """Project float images ``(N, C, H, W)`` onto the PCA subspace and back, clamped to [0, 1]."""
    codes = torch.from_numpy(pca.transform(images.float().flatten(1).numpy()))
    return pca_decode(pca, codes, tuple(images.shape[1:]))
