"""The learned codec's file format: images → one file of range-coded latents → the same reconstructions.

A file is a header and one range-coded stream (``constriction``'s ``RangeEncoder``, 32-bit words) of the
rounded latents ``ŷ`` of every image, channel by channel, each channel coded with the categorical
distribution the checkpoint's learned density gives its integer values (the model's ``coding_tables()``;
values outside the support are clamped — the encoder's reconstruction is of the clamped latents too). The
file's size is the rate: header included.

Header (little-endian): ``b"AELC"``, format version (u8), flags (u8: 1 = one image size for all), the
checkpoint's fingerprint (SHA-256 of the weights, 32 bytes), channels (u8), image count (u32), the image size
(2 × u16) or one per image, the stream's length in 32-bit words (u32) and the CRC-32 of the stream (u32).

Decoding refuses, naming the file and before writing anything: another format or version, another
checkpoint's file, a truncated or corrupted stream.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from aelab.errors import UntrustedFileError

# What a model coded here provides (``aelab.models.LearnedCodec``): ``latents(x) → ŷ (B, M, h, w)``,
# ``synthesize(ŷ, (H, W)) → images``, ``coding_tables() → (lo (M,), [pmf per channel])``, ``image_channels`` and
# ``grid_factor`` (pixels per latent position along a side); the format knows nothing else of the model.

MAGIC = b"AELC"
VERSION = 1
_HEAD = struct.Struct("<4sBB32sBI")  # magic, version, flags, fingerprint, channels, count
_TAIL = struct.Struct("<II")  # stream words, crc32


def _coding_models(model):
    import constriction

    lo, pmfs = model.coding_tables()
    family = [constriction.stream.model.Categorical(p.astype(np.float64), perfect=False) for p in pmfs]
    return lo, [len(p) for p in pmfs], family


@torch.no_grad()
def latents_of(model, images: Sequence[Tensor] | Tensor, batch_size: int = 500, device="cpu") -> list[Tensor]:
    """The rounded latents ``ŷ`` (int64, ``(M, h, w)`` each) of uint8 images, in batches of equal sizes."""
    out: list[Tensor] = []
    for group in _batches(images, batch_size):
        x = torch.stack([g for g in group]).to(device).float().div(255.0)
        out += list(model.latents(x).long().cpu())
    return out


@torch.no_grad()
def reconstruct(
    model, latents: Sequence[Tensor], sizes: Sequence[tuple[int, int]], batch_size: int = 500, device="cpu"
) -> list[Tensor]:
    """Images in [0, 1] ``(C, H, W)`` from rounded latents, synthesized in batches of equal image sizes (the same
    batching in the encoder's check and the decoder, so both give the same floats)."""
    out: list[Tensor | None] = [None] * len(latents)
    order = sorted(range(len(latents)), key=lambda i: tuple(sizes[i]))
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and j - i < batch_size and tuple(sizes[order[j]]) == tuple(sizes[order[i]]):
            j += 1
        idx = order[i:j]
        y = torch.stack([latents[k] for k in idx]).float().to(device)
        for k, img in zip(idx, model.synthesize(y, tuple(sizes[idx[0]])).cpu(), strict=True):
            out[k] = img
        i = j
    return out


def _batches(images, batch_size: int):
    """Consecutive groups of images of one size, at most ``batch_size`` long."""
    group: list[Tensor] = []
    for img in images:
        if group and (len(group) == batch_size or group[0].shape != img.shape):
            yield group
            group = []
        group.append(img)
    if group:
        yield group


def encode(
    model, images: Sequence[Tensor] | Tensor, fingerprint: str, batch_size: int = 500, device="cpu"
) -> tuple[bytes, list[Tensor]]:
    """A file's bytes for uint8 images ``(C, H, W)`` (a batch ``(N, C, H, W)`` or a list of any sizes), and the
    reconstructions (uint8) the decoder will produce from it."""
    import constriction

    images = list(images)
    latents = latents_of(model, images, batch_size, device)
    lo, sizes, family = _coding_models(model)
    hi = lo + np.asarray(sizes) - 1
    clamped = [torch.from_numpy(np.clip(y.numpy(), lo[:, None, None], hi[:, None, None])) for y in latents]
    encoder = constriction.stream.queue.RangeEncoder()
    for m, cat in enumerate(family):
        symbols = np.concatenate([y[m].reshape(-1).numpy() for y in clamped]) - lo[m]
        encoder.encode(symbols.astype(np.int32), cat)
    stream = encoder.get_compressed().astype("<u4").tobytes()
    shapes = [tuple(img.shape[-2:]) for img in images]
    same = len(set(shapes)) == 1
    channels = int(images[0].shape[0])
    head = _HEAD.pack(MAGIC, VERSION, 1 if same else 0, bytes.fromhex(fingerprint), channels, len(images))
    dims = struct.pack("<HH", *shapes[0]) if same else b"".join(struct.pack("<HH", *s) for s in shapes)
    data = head + dims + _TAIL.pack(len(stream) // 4, zlib.crc32(stream)) + stream
    recon = reconstruct(model, clamped, shapes, batch_size, device)
    return data, [to_uint8(r) for r in recon]


def to_uint8(image: Tensor) -> Tensor:
    """[0, 1] floats → uint8 0..255 (rounded), as written to PNG."""
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)


def read_header(data: bytes, source: str, fingerprint: str) -> tuple[int, list[tuple[int, int]], bytes]:
    """Check a file's header against the checkpoint; returns ``(channels, image sizes, stream bytes)``.

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
    magic, version, flags, fp, channels, count = _HEAD.unpack_from(data)
    if version != VERSION:
        raise refuse(f"format version {version}, this aelab reads version {VERSION}")
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
    return int(channels), [tuple(s) for s in shapes], stream


def decode(
    model, data: bytes, source: str, fingerprint: str, batch_size: int = 500, device="cpu"
) -> list[Tensor]:
    """The uint8 images ``(C, H, W)`` of a file (see :func:`read_header` for what is refused)."""
    import constriction

    channels, shapes, stream = read_header(data, source, fingerprint)
    if channels != model.image_channels:
        raise UntrustedFileError(
            f"{source}: refused: {channels}-channel images, the codec codes {model.image_channels}"
        )
    lo, sizes, family = _coding_models(model)
    f = model.grid_factor
    grids = [(-(-h // f), -(-w // f)) for h, w in shapes]
    counts = [gh * gw for gh, gw in grids]
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(stream, dtype="<u4").astype(np.uint32))
    per_channel = [decoder.decode(cat, sum(counts)).astype(np.int64) + lo[m] for m, cat in enumerate(family)]
    latents, start = [], 0
    for (gh, gw), n in zip(grids, counts, strict=True):
        latents.append(
            torch.from_numpy(np.stack([c[start : start + n].reshape(gh, gw) for c in per_channel]))
        )
        start += n
    recon = reconstruct(model, latents, shapes, batch_size, device)
    return [to_uint8(r) for r in recon]


def write(path: str | Path, data: bytes) -> int:
    """Write a file's bytes; returns its size."""
    Path(path).write_bytes(data)
    return len(data)
