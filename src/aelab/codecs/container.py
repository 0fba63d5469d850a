"""The learned codecs' file formats around the byte strings a codec writes.

Everything here goes through the :class:`~aelab.models.capabilities.Compressor` protocol alone
(``image_channels``, ``training_size``, ``compress(x) → {"strings", "shape", "x_hat"}``, ``decompress(strings,
shape) → {"x_hat"}``): any codec that implements it gets both formats. Images are coded in consecutive batches of
one size, at most ``batch_size`` each, and decoded in the same batches, so both sides compute the same floats.

**One stream** (``.aelc``; a whole split, any image sizes): ``b"AELC"``, format version (u8), flags (u8: 1 = one
image size for all), the checkpoint's fingerprint (SHA-256 of the weights, 32 bytes), channels (u8), image count
(u32), batch size (u16), the image size (2 × u16) or one per image, the payload's length (u32) and CRC-32 (u32);
the payload is each image's string behind its length (LEB128).

**One file per image** (``--per-image``; header 5 bytes for an image of the codec's training size, 7 up to 255 px
a side, 8 up to 4095 px): byte 0 = ``0xB0 | channels`` (the training size: no size field) or
``0xA0 | small << 3 | channels`` (``small``: the size in 2 × u8, else 2 × 12 bits), a 2-byte model tag (the
fingerprint's first bytes), a 2-byte check (CRC-32 of the full fingerprint, the header and the payload, low 16
bits: a truncated, corrupted or foreign file fails it), the size; then the image's string.

Decoding refuses, naming the file and before writing anything: another format or version, another checkpoint's
file, another channel count, a truncated or corrupted file.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from aelab.errors import UntrustedFileError

MAGIC = b"AELC"
VERSION = 3
_HEAD = struct.Struct("<4sBB32sBIH")  # magic, version, flags, fingerprint, channels, count, batch size
_TAIL = struct.Struct("<II")  # payload bytes, crc32
PER_IMAGE_MARK = 0xA0  # high nibble of a per-image file's first byte, its size in the header
TRAINING_SIZE_MARK = 0xB0  # the same, an image of the codec's training size (no size field)
MAX_PER_IMAGE_SIDE = 4095


def to_uint8(image: Tensor) -> Tensor:
    """[0, 1] floats → uint8 0..255 (rounded), as written to PNG."""
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)


def size_groups(shapes: Sequence[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Indices of consecutive images of one size ``(H, W)``, at most ``batch_size`` per group (encoder and decoder
    use the same groups, so both compute the same floats)."""
    groups: list[list[int]] = []
    for i, s in enumerate(shapes):
        if groups and len(groups[-1]) < batch_size and tuple(shapes[groups[-1][0]]) == tuple(s):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


@torch.no_grad()
def _compress(codec, images: list[Tensor], batch_size: int, device) -> tuple[list[bytes], list[Tensor]]:
    """Each image's string and the uint8 image its decoder will rebuild."""
    strings: list[bytes | None] = [None] * len(images)
    recon: list[Tensor | None] = [None] * len(images)
    for idx in size_groups([tuple(img.shape[-2:]) for img in images], batch_size):
        x = torch.stack([images[i] for i in idx]).to(device).float().div(255.0)
        out = codec.compress(x)
        for i, s, r in zip(idx, out["strings"], out["x_hat"].cpu(), strict=True):
            strings[i], recon[i] = s, to_uint8(r)
    return strings, recon


@torch.no_grad()
def _decompress(codec, strings: list[bytes], shapes, batch_size: int) -> list[Tensor]:
    out: list[Tensor | None] = [None] * len(strings)
    for idx in size_groups(shapes, batch_size):
        x_hat = codec.decompress([strings[i] for i in idx], tuple(shapes[idx[0]]))["x_hat"].cpu()
        for i, img in zip(idx, x_hat, strict=True):
            out[i] = to_uint8(img)
    return out


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if at >= len(data):
            raise IndexError("varint past the end")
        byte = data[at]
        n |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return n, at


# ---------------------------------------------------------------------------------------------- one stream
def encode(
    codec, images: Sequence[Tensor] | Tensor, fingerprint: str, batch_size: int = 500, device="cpu"
) -> tuple[bytes, list[Tensor]]:
    """One file's bytes for uint8 images ``(C, H, W)`` (a batch ``(N, C, H, W)`` or a list of any sizes), and the
    reconstructions (uint8) the decoder will produce from it.

    Raises:
        ValueError: for no images.
    """
    images = list(images)
    if not images:
        raise ValueError("no images to code")
    batch_size = max(1, min(int(batch_size), 65535))
    strings, recon = _compress(codec, images, batch_size, device)
    payload = b"".join(_varint(len(s)) + s for s in strings)
    shapes = [tuple(img.shape[-2:]) for img in images]
    same = len(set(shapes)) == 1
    head = _HEAD.pack(
        MAGIC,
        VERSION,
        1 if same else 0,
        bytes.fromhex(fingerprint),
        int(images[0].shape[0]),
        len(images),
        batch_size,
    )
    dims = struct.pack("<HH", *shapes[0]) if same else b"".join(struct.pack("<HH", *s) for s in shapes)
    return head + dims + _TAIL.pack(len(payload), zlib.crc32(payload)) + payload, recon


def _refusal(source: str):
    def refuse(why: str) -> UntrustedFileError:
        return UntrustedFileError(f"{source}: refused: {why}; nothing was written")

    return refuse


def read_header(
    data: bytes, source: str, fingerprint: str
) -> tuple[int, list[tuple[int, int]], int, list[bytes]]:
    """Check a stream file against the checkpoint; returns ``(channels, image sizes, batch size, strings)``.

    Raises:
        UntrustedFileError: naming ``source``: not an aelab codec file, an unknown version, another checkpoint's
            file, a truncated or corrupted stream.
    """
    refuse = _refusal(source)
    if len(data) < _HEAD.size or data[:4] != MAGIC:
        raise refuse(
            "not an aelab codec file (no AELC header); write one with aelab-compress on a codec checkpoint"
        )
    _, version, flags, fp, channels, count, batch_size = _HEAD.unpack_from(data)
    if version != VERSION:
        raise refuse(
            f"format version {version}, this aelab reads version {VERSION} (compress the images again)"
        )
    if fp.hex() != fingerprint:
        raise refuse(
            f"written with another checkpoint (its weights' fingerprint {fp.hex()[:16]}…, this checkpoint's "
            f"{fingerprint[:16]}…); decode it with the checkpoint that wrote it"
        )
    at = _HEAD.size
    n_dims = 1 if flags & 1 else count
    if len(data) < at + 4 * n_dims + _TAIL.size:
        raise refuse("truncated inside its header")
    dims = [struct.unpack_from("<HH", data, at + 4 * i) for i in range(n_dims)]
    shapes = dims * count if flags & 1 else dims
    at += 4 * n_dims
    size, crc = _TAIL.unpack_from(data, at)
    payload = data[at + _TAIL.size :]
    if len(payload) != size:
        raise refuse(f"truncated: the payload has {len(payload)} of its {size} bytes")
    if zlib.crc32(payload) != crc:
        raise refuse("corrupted: the payload's CRC-32 does not match")
    strings, at = [], 0
    try:
        for _ in range(count):
            n, at = _read_varint(payload, at)
            strings.append(payload[at : at + n])
            at += n
    except IndexError:
        raise refuse("corrupted: its image strings overrun the payload") from None
    if at != len(payload):
        raise refuse("corrupted: its image strings do not fill the payload")
    return int(channels), [tuple(s) for s in shapes], max(1, int(batch_size)), strings


def _check_channels(codec, channels: int, source: str) -> None:
    if channels != codec.image_channels:
        raise UntrustedFileError(
            f"{source}: refused: {channels}-channel images, the codec codes {codec.image_channels}-channel ones; "
            "nothing was written"
        )


def decode(codec, data: bytes, source: str, fingerprint: str) -> list[Tensor]:
    """The uint8 images ``(C, H, W)`` of a stream file (see :func:`read_header` for what is refused), decoded in the
    file's own batches."""
    channels, shapes, batch_size, strings = read_header(data, source, fingerprint)
    _check_channels(codec, channels, source)
    return _decompress(codec, strings, shapes, batch_size)


# ---------------------------------------------------------------------------------------------- one file per image
def _per_image_header(fp: bytes, channels: int, size: tuple[int, int], training_size) -> tuple[bytes, bytes]:
    h, w = size
    if not 1 <= channels <= 7:
        raise ValueError(f"a per-image file holds 1 to 7 channels, not {channels}")
    if tuple(size) == tuple(training_size):
        return bytes([TRAINING_SIZE_MARK | channels]) + fp[:2], b""
    if max(h, w) > MAX_PER_IMAGE_SIDE:
        raise ValueError(
            f"a per-image file holds images up to {MAX_PER_IMAGE_SIDE} px a side, not {h}×{w}: code it into one "
            "stream (aelab-compress without --per-image)"
        )
    small = h <= 255 and w <= 255
    dims = bytes([h, w]) if small else bytes([h >> 4, ((h & 15) << 4) | (w >> 8), w & 255])
    return bytes([PER_IMAGE_MARK | (small << 3) | channels]) + fp[:2], dims


def per_image_header_size(data: bytes) -> int:
    """The header bytes of a per-image file: 5 (the codec's training size), 7 (sides up to 255 px) or 8."""
    if data[0] & 0xF0 == TRAINING_SIZE_MARK:
        return 5
    return 7 if data[0] & 8 else 8


def _check16(fp: bytes, head: bytes, dims: bytes, payload: bytes) -> bytes:
    return struct.pack("<H", zlib.crc32(fp + head + dims + payload) & 0xFFFF)


def encode_each(
    codec, images: Sequence[Tensor] | Tensor, fingerprint: str, batch_size: int = 500, device="cpu"
) -> tuple[list[bytes], list[Tensor]]:
    """One file's bytes per uint8 image ``(C, H, W)`` (the format above), and the reconstructions (uint8) the
    decoder gives (when it decodes the files in the same order, in batches of ``batch_size``).

    Raises:
        ValueError: an image over 4095 px a side, or with more than 7 channels.
    """
    images = list(images)
    fp = bytes.fromhex(fingerprint)
    strings, recon = _compress(codec, images, max(1, int(batch_size)), device)
    files = []
    for image, payload in zip(images, strings, strict=True):
        head, dims = _per_image_header(fp, int(image.shape[0]), tuple(image.shape[-2:]), codec.training_size)
        files.append(head + _check16(fp, head, dims, payload) + dims + payload)
    return files, recon


def read_per_image(
    data: bytes, source: str, fingerprint: str, channels: int | None = None, training_size=None
) -> tuple[int, tuple[int, int], bytes]:
    """Check a per-image file against the checkpoint (and the codec's ``channels``); returns ``(channels, (H, W),
    payload)`` (``training_size``: the size of a file without a size field).

    Raises:
        UntrustedFileError: naming ``source``: not a per-image aelab file, another checkpoint's file, another
            channel count, a truncated or corrupted one.
    """
    refuse = _refusal(source)
    mark = data[0] & 0xF0 if data else 0
    if len(data) < 5 or mark not in (PER_IMAGE_MARK, TRAINING_SIZE_MARK) or not data[0] & 7:
        if data[:4] == MAGIC:
            raise refuse("a whole-split stream, not a per-image file: decompress it as a file, not a folder")
        raise refuse("not an aelab per-image codec file; write them with aelab-compress --per-image")
    fp = bytes.fromhex(fingerprint)
    if data[1:3] != fp[:2]:
        raise refuse(
            f"written with another checkpoint (its model tag {data[1:3].hex()}, this checkpoint's {fp[:2].hex()}); "
            "decode it with the checkpoint that wrote it"
        )
    file_channels = data[0] & 7
    if channels is not None and file_channels != channels:
        raise refuse(f"{file_channels}-channel image, the codec codes {channels}-channel ones")
    size = None
    if mark == TRAINING_SIZE_MARK:
        n = 0
        size = tuple(training_size) if training_size is not None else None
    else:
        n = 2 if data[0] & 8 else 3
        if len(data) < 5 + n:
            raise refuse("truncated inside its header")
    dims = data[5 : 5 + n]
    if n == 2:
        size = (dims[0], dims[1])
    elif n == 3:
        size = ((dims[0] << 4) | (dims[1] >> 4), ((dims[1] & 15) << 8) | dims[2])
    payload = data[5 + n :]
    if _check16(fp, data[:3], dims, payload) != data[3:5]:
        raise refuse("truncated or corrupted, or written with another checkpoint: its check does not match")
    if size is None:
        raise refuse("an image of the codec's training size, and no training size was given")
    return file_channels, size, payload


def decode_each(
    codec, files: Sequence[tuple[bytes, str]], fingerprint: str, batch_size: int = 500
) -> list[Tensor]:
    """The uint8 image ``(C, H, W)`` of each per-image file ``(bytes, source name)``; every file is checked
    (:func:`read_per_image`) before any is decoded."""
    headers = [
        read_per_image(data, source, fingerprint, codec.image_channels, codec.training_size)
        for data, source in files
    ]
    return _decompress(codec, [h[2] for h in headers], [h[1] for h in headers], max(1, int(batch_size)))


def write(path: str | Path, data: bytes) -> int:
    """Write a file's bytes; returns its size."""
    Path(path).write_bytes(data)
    return len(data)
