"""The learned codecs' file formats: images → range-coded symbols → the same reconstructions.

A model coded here (``aelab.models.LearnedCodec`` and its hyperprior) turns a batch of images into
:class:`SymbolGroup` s in coding order (``encode_symbols``) and rebuilds its quantized latents from them
(``decode_symbols``, which asks for each group in the same order, so a later group's model may depend on an
earlier group's values — the hyperprior's ``ŷ`` given ``ẑ``). Values outside a group's coded range are clamped by
the model, and its reconstruction is of the clamped latents too. This module only range-codes the groups
(``constriction``'s ``RangeEncoder``, 32-bit words) and writes the two formats:

**One stream** (``.aelc``; a whole split, any image sizes): ``b"AELC"``, format version (u8), flags (u8: 1 = one
image size for all), the checkpoint's fingerprint (SHA-256 of the weights, 32 bytes), channels (u8), image
count (u32), batch size (u16: the images are coded in consecutive batches of one size, and decoded in the same
ones), the image size (2 × u16) or one per image, the stream's length in 32-bit words (u32) and its CRC-32.

**One file per image** (``--per-image``; header 5 bytes for an image of the codec's training size, 7 up to 255 px
a side, 8 up to 4095 px): byte 0 = ``0xB0 | channels`` (the training size: no size field) or
``0xA0 | small << 3 | channels`` (``small``: the size in 2 × u8, else 2 × 12 bits), a 2-byte model tag (the
fingerprint's first bytes), a 2-byte check (CRC-32 of the full fingerprint, the header and the payload, low 16
bits: a truncated, corrupted or foreign file fails it), the size; then the range coder's words with their
trailing zero bytes dropped (the decoder reads missing words as zeros, so they cost nothing).

Decoding refuses, naming the file and before writing anything: another format or version, another
checkpoint's file, another channel count, a truncated or corrupted file.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from aelab.errors import UntrustedFileError

MAGIC = b"AELC"
VERSION = 2
_HEAD = struct.Struct("<4sBB32sBIH")  # magic, version, flags, fingerprint, channels, count, batch size
_TAIL = struct.Struct("<II")  # stream words, crc32
PER_IMAGE_MARK = 0xA0  # high nibble of a per-image file's first byte (format 1), its size in the header
TRAINING_SIZE_MARK = 0xB0  # the same, an image of the codec's training size (no size field)
MAX_PER_IMAGE_SIDE = 4095


@dataclass
class SymbolGroup:
    """Integers of a batch coded with one constriction model.

    ``family`` is a fully specified model (``params`` empty) or a model family whose per-symbol parameters are
    ``params`` (arrays ``(B, count)``, float64); ``symbols`` ``(B, count)`` int32 when encoding, None when a decoder
    asks for the group."""

    family: object
    count: int
    symbols: np.ndarray | None = None
    params: tuple[np.ndarray, ...] = ()


Reader = Callable[[SymbolGroup], np.ndarray]  # a group (without symbols) → its symbols (B, count)


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
def _encode_batches(model, images, batch_size, device, context):
    """Yield ``(indices, groups, reconstructions (uint8, per image))`` per batch of the images."""
    for idx in size_groups([tuple(img.shape[-2:]) for img in images], batch_size):
        x = torch.stack([images[i] for i in idx]).to(device).float().div(255.0)
        groups, y_hat = model.encode_symbols(x, context)
        recon = model.synthesize(y_hat, tuple(x.shape[-2:])).cpu()
        yield idx, groups, [to_uint8(r) for r in recon]


@torch.no_grad()
def _decode_batch(model, read: Reader, count: int, size, device, context) -> list[Tensor]:
    y_hat = model.decode_symbols(read, count, tuple(size), context, device)
    return [to_uint8(r) for r in model.synthesize(y_hat, tuple(size)).cpu()]


def _write_group(encoder, group: SymbolGroup, rows=slice(None)) -> None:
    symbols = np.ascontiguousarray(group.symbols[rows].reshape(-1), dtype=np.int32)
    if group.params:
        encoder.encode(
            symbols, group.family, *(np.ascontiguousarray(p[rows].reshape(-1)) for p in group.params)
        )
    else:
        encoder.encode(symbols, group.family)


def _read_group(decoder, group: SymbolGroup, n: int, row: int | None = None) -> np.ndarray:
    if group.params:
        params = [
            np.ascontiguousarray((p if row is None else p[row : row + 1]).reshape(-1)) for p in group.params
        ]
        out = decoder.decode(group.family, *params)
    else:
        out = decoder.decode(group.family, n * group.count)
    return np.asarray(out, dtype=np.int64).reshape(n, group.count)


# ---------------------------------------------------------------------------------------------- one stream
def encode(
    model, images: Sequence[Tensor] | Tensor, fingerprint: str, batch_size: int = 500, device="cpu"
) -> tuple[bytes, list[Tensor]]:
    """One file's bytes for uint8 images ``(C, H, W)`` (a batch ``(N, C, H, W)`` or a list of any sizes), and the
    reconstructions (uint8) the decoder will produce from it."""
    import constriction

    images = list(images)
    if not images:
        raise ValueError("no images to code")
    batch_size = max(1, min(int(batch_size), 65535))
    context = model.coding_context()
    encoder = constriction.stream.queue.RangeEncoder()
    recon: list[Tensor | None] = [None] * len(images)
    for idx, groups, rec in _encode_batches(model, images, batch_size, device, context):
        for group in groups:
            _write_group(encoder, group)
        for i, r in zip(idx, rec, strict=True):
            recon[i] = r
    stream = encoder.get_compressed().astype("<u4").tobytes()
    shapes = [tuple(img.shape[-2:]) for img in images]
    same = len(set(shapes)) == 1
    channels = int(images[0].shape[0])
    head = _HEAD.pack(
        MAGIC, VERSION, 1 if same else 0, bytes.fromhex(fingerprint), channels, len(images), batch_size
    )
    dims = struct.pack("<HH", *shapes[0]) if same else b"".join(struct.pack("<HH", *s) for s in shapes)
    return head + dims + _TAIL.pack(len(stream) // 4, zlib.crc32(stream)) + stream, recon


def read_header(data: bytes, source: str, fingerprint: str) -> tuple[int, list[tuple[int, int]], int, bytes]:
    """Check a stream file's header against the checkpoint; returns ``(channels, image sizes, batch size,
    stream bytes)``.

    Raises:
        UntrustedFileError: naming ``source``: not an aelab codec file, an unknown version, another checkpoint's
            file, a truncated or corrupted stream.
    """

    def refuse(why: str) -> UntrustedFileError:
        return UntrustedFileError(f"{source}: refused: {why}; nothing was written")

    if len(data) < _HEAD.size or data[:4] != MAGIC:
        raise refuse(
            "not an aelab codec file (no AELC header); write one with aelab-compress on a codec checkpoint"
        )
    magic, version, flags, fp, channels, count, batch_size = _HEAD.unpack_from(data)
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
    words, crc = _TAIL.unpack_from(data, at)
    stream = data[at + _TAIL.size :]
    if len(stream) != 4 * words:
        raise refuse(f"truncated: the stream has {len(stream)} of its {4 * words} bytes")
    if zlib.crc32(stream) != crc:
        raise refuse("corrupted: the stream's CRC-32 does not match")
    return int(channels), [tuple(s) for s in shapes], max(1, int(batch_size)), stream


def _check_channels(model, channels: int, source: str) -> None:
    if channels != model.image_channels:
        raise UntrustedFileError(
            f"{source}: refused: {channels}-channel images, the codec codes {model.image_channels}-channel ones; "
            "nothing was written"
        )


def decode(
    model, data: bytes, source: str, fingerprint: str, batch_size: int | None = None, device="cpu"
) -> list[Tensor]:
    """The uint8 images ``(C, H, W)`` of a stream file (see :func:`read_header` for what is refused; the file's
    own batch size is used, ``batch_size`` is ignored)."""
    import constriction

    channels, shapes, file_batch, stream = read_header(data, source, fingerprint)
    _check_channels(model, channels, source)
    context = model.coding_context()
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(stream, dtype="<u4").astype(np.uint32))
    out: list[Tensor | None] = [None] * len(shapes)
    for idx in size_groups(shapes, file_batch):
        n = len(idx)

        def read(group: SymbolGroup, n: int = n) -> np.ndarray:
            return _read_group(decoder, group, n)

        images = _decode_batch(model, read, n, shapes[idx[0]], device, context)
        for i, img in zip(idx, images, strict=True):
            out[i] = img
    return out


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
    model, images: Sequence[Tensor] | Tensor, fingerprint: str, batch_size: int = 500, device="cpu"
) -> tuple[list[bytes], list[Tensor]]:
    """One file's bytes per uint8 image ``(C, H, W)`` (the format above), and the reconstructions (uint8) the
    decoder gives (when it decodes the files in the same order, in batches of ``batch_size``).

    Raises:
        ValueError: an image over 4095 px a side, or with more than 7 channels.
    """
    import constriction

    images = list(images)
    fp = bytes.fromhex(fingerprint)
    context = model.coding_context()
    files: list[bytes | None] = [None] * len(images)
    recon: list[Tensor | None] = [None] * len(images)
    for idx, groups, rec in _encode_batches(model, images, batch_size, device, context):
        for row, i in enumerate(idx):
            encoder = constriction.stream.queue.RangeEncoder()
            for group in groups:
                _write_group(encoder, group, slice(row, row + 1))
            payload = encoder.get_compressed().astype("<u4").tobytes().rstrip(b"\0")
            head, dims = _per_image_header(
                fp, int(images[i].shape[0]), tuple(images[i].shape[-2:]), model.training_size
            )
            files[i] = head + _check16(fp, head, dims, payload) + dims + payload
            recon[i] = rec[row]
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

    def refuse(why: str) -> UntrustedFileError:
        return UntrustedFileError(f"{source}: refused: {why}; nothing was written")

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
    if mark == TRAINING_SIZE_MARK:
        n, size = 0, tuple(training_size) if training_size is not None else None
    else:
        small = bool(data[0] & 8)
        n = 2 if small else 3
        if len(data) < 5 + n:
            raise refuse("truncated inside its header")
    dims = data[5 : 5 + n]
    if n == 2:
        size = (dims[0], dims[1])
    elif n == 3:
        size = ((dims[0] << 4) | (dims[1] >> 4), ((dims[1] & 15) << 8) | dims[2])
    payload = data[5 + n :]
    if _check16(fp, data[:3], dims, payload) != data[3:5]:
        raise refuse("truncated or corrupted: its check does not match its contents")
    if size is None:
        raise refuse("an image of the codec's training size, and no training size was given")
    return file_channels, size, payload


def decode_each(
    model, files: Sequence[tuple[bytes, str]], fingerprint: str, batch_size: int = 500, device="cpu"
) -> list[Tensor]:
    """The uint8 image ``(C, H, W)`` of each per-image file ``(bytes, source name)``; every file is checked
    (:func:`read_per_image`) before any is decoded."""
    import constriction

    headers = [
        read_per_image(data, source, fingerprint, model.image_channels, model.training_size)
        for data, source in files
    ]
    context = model.coding_context()
    out: list[Tensor | None] = [None] * len(files)
    for idx in size_groups([h[1] for h in headers], batch_size):
        decoders = []
        for i in idx:
            payload = headers[i][2]
            payload += b"\0" * (-len(payload) % 4)
            decoders.append(
                constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
            )

        def read(group: SymbolGroup, decoders=decoders) -> np.ndarray:
            return np.concatenate([_read_group(d, group, 1, row) for row, d in enumerate(decoders)])

        for i, img in zip(
            idx, _decode_batch(model, read, len(idx), headers[idx[0]][1], device, context), strict=True
        ):
            out[i] = img
    return out


def write(path: str | Path, data: bytes) -> int:
    """Write a file's bytes; returns its size."""
    Path(path).write_bytes(data)
    return len(data)
