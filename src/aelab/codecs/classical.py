"""The classical codecs the learned ones are judged against (:data:`CODECS`: JPEG, PNG, WebP, AVIF, JPEG XL through
Pillow; gzip), each image coded alone in the data's own mode (grey ``L`` or ``RGB``), headers included, and the raw
``C·H·W``-byte image.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def raw_bytes_per_image(image_shape) -> int:
    """Bytes of one raw uint8 image of shape ``(C, H, W)``: ``C·H·W``."""
    return int(np.prod(image_shape))


def gzip_bytes_per_image(images: Tensor, level: int = 9) -> float:
    """Bytes per image of the raw uint8 images ``(N, C, H, W)`` compressed together with gzip."""
    return len(gzip.compress(images.to(torch.uint8).cpu().numpy().tobytes(), compresslevel=level)) / len(
        images
    )


@dataclass(frozen=True)
class ClassicalCodec:
    """A classical image codec through Pillow: its format name, whether it is lossless, and its options
    (``quality`` is filled in per rate–distortion point for the lossy ones)."""

    format: str
    lossless: bool = False
    options: tuple[tuple[str, object], ...] = ()
    plugin: str | None = None  # the module that registers the format with Pillow, when it is a plugin
    display: str = ""  # the name the reports show


#: the classical codecs aelab compares with (``suite.sections.compression.codecs`` names them)
CODECS: dict[str, ClassicalCodec] = {
    "jpeg": ClassicalCodec("JPEG", options=(("optimize", True),), display="JPEG"),
    "png": ClassicalCodec(
        "PNG", lossless=True, options=(("optimize", True), ("compress_level", 9)), display="PNG"
    ),
    "webp": ClassicalCodec("WEBP", options=(("method", 6),), display="WebP"),
    "webp_lossless": ClassicalCodec(
        "WEBP", lossless=True, options=(("lossless", True), ("quality", 100), ("method", 6))
    ),
    "avif": ClassicalCodec("AVIF", options=(("speed", 6),), display="AVIF"),
    "jxl": ClassicalCodec("JXL", options=(("effort", 7),), plugin="pillow_jxl", display="JPEG XL"),
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


def display_name(name: str) -> str:
    """The name reports show for a codec of :data:`CODECS` (``webp`` → ``WebP``; ``jpeg_payload``: JPEG without
    its header), or ``name`` itself."""
    if name == "jpeg_payload":
        return "JPEG without header"
    codec = CODECS.get(name)
    return codec.display or codec.format if codec else name
