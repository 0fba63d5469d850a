"""Codecs: how aelab turns images into bytes and back, and what it compares with.

- :mod:`.codes`: an autoencoder's codes as ``.npz`` files (float32 / float16 / 8-bit, VQ indices);
- :mod:`.bitstream`: the learned codec's range-coded file format (``constriction``);
- :mod:`.classical`: JPEG, PNG, WebP, AVIF, JPEG XL (Pillow) and gzip, one table with the reports' names;
- :mod:`.pca`: the linear baseline of the same code size.

:class:`Codec` is the protocol of a model that codes images to bytes itself (CompressAI's ``compress`` /
``decompress``); ``aelab-compress`` and the evaluation call it instead of asking for a class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from torch import Tensor

from aelab.codecs.classical import (
    CODECS,
    ClassicalCodec,
    codec_available,
    codec_roundtrip,
    display_name,
    gzip_bytes_per_image,
    jpeg_payload_bytes,
    jpeg_roundtrip,
    raw_bytes_per_image,
)
from aelab.codecs.codes import (
    FORMATS,
    AffineQuantizer,
    bytes_per_image,
    code_format,
    codes_fingerprint,
    decode_codes,
    encode_codes,
    index_bits,
    load_codes,
    load_indices,
    save_codes,
    save_indices,
)
from aelab.codecs.pca import fit_pca, pca_decode, pca_roundtrip


@runtime_checkable
class Codec(Protocol):
    """A model that writes images to its own bytes and reads them back exactly.

    ``compress(images, fingerprint, batch_size, device) → (bytes, reconstructions)``: uint8 images ``(C, H, W)``
    (any sizes) to one file, and the reconstructions its decoder will give (uint8); ``decompress(data, source,
    fingerprint, batch_size, device) → images``: the file back to uint8 images, refusing (naming ``source``) a
    file of another format, another checkpoint or a damaged one.
    """

    def compress(
        self, images: Sequence[Tensor], fingerprint: str, batch_size: int = 500, device="cpu"
    ) -> tuple[bytes, list[Tensor]]: ...

    def decompress(
        self, data: bytes, source: str, fingerprint: str, batch_size: int = 500, device="cpu"
    ) -> list[Tensor]: ...


__all__ = [
    "CODECS",
    "FORMATS",
    "AffineQuantizer",
    "ClassicalCodec",
    "Codec",
    "bytes_per_image",
    "code_format",
    "codec_available",
    "codec_roundtrip",
    "codes_fingerprint",
    "decode_codes",
    "display_name",
    "encode_codes",
    "fit_pca",
    "gzip_bytes_per_image",
    "index_bits",
    "jpeg_payload_bytes",
    "jpeg_roundtrip",
    "load_codes",
    "load_indices",
    "pca_decode",
    "pca_roundtrip",
    "raw_bytes_per_image",
    "save_codes",
    "save_indices",
]
