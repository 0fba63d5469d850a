"""The range coder under every learned codec: integers with frozen integer tables to bytes and back.

An encoder (:func:`new_encoder`) takes integers under a table's model (:func:`categorical`: exact dyadic
frequencies, :data:`PRECISION` bits) through :func:`encode_values`; :func:`to_bytes` gives its words as one byte
string, and :func:`new_decoder` reads such a string back (:func:`decode_values`). Several entropy models may share
one encoder, each in turn (a hyperprior's string holds ``ẑ``, then ``ŷ``): that is why the stream is public here
and not hidden in one entropy model. A value outside a table's support is coded as the table's overflow symbol
followed by its exact value (sign, bit count and bits, each uniform): nothing is clamped, every integer round-trips.

The coder is ``constriction``'s queue range coder (32-bit words, little endian on the wire).
"""

from __future__ import annotations

import constriction
import numpy as np

#: bits of the integer frequencies (constriction's range coder precision): every table sums to ``2**PRECISION``
PRECISION = 24

_UNIFORM_BITS = constriction.stream.model.Uniform(64)
_UNIFORM_SIGN = constriction.stream.model.Uniform(2)
_CHUNK = 16
_UNIFORM_CHUNK = constriction.stream.model.Uniform(2**_CHUNK)


def new_encoder():
    """An empty range encoder (its ``encode(symbols, model)`` takes what :func:`encode_values` hands it)."""
    return constriction.stream.queue.RangeEncoder()


def to_bytes(encoder) -> bytes:
    """The encoder's words as bytes, trailing zero bytes dropped (:func:`new_decoder` reads missing words as
    zeros)."""
    return encoder.get_compressed().astype("<u4").tobytes().rstrip(b"\0")


def new_decoder(string: bytes):
    """A range decoder of a string of :func:`to_bytes`."""
    padded = string + b"\0" * (-len(string) % 4)
    return constriction.stream.queue.RangeDecoder(np.frombuffer(padded, dtype="<u4").astype(np.uint32))


def categorical(cdf: np.ndarray):
    """The coder's model of an integer CDF ``(L + 1,)`` from 0 to ``2**PRECISION`` (its frequencies as exact dyadic
    probabilities)."""
    return constriction.stream.model.Categorical(
        np.diff(cdf.astype(np.int64)) / float(1 << PRECISION), perfect=False
    )


def encode_values(encoder, values: np.ndarray, model, offset: int, length: int) -> None:
    """Integers ``values`` ``(N,)`` with a table over ``offset .. offset + length − 1``; the rest as escapes."""
    symbols = np.asarray(values, dtype=np.int64) - int(offset)
    outside = (symbols < 0) | (symbols >= length)
    encoder.encode(np.where(outside, length, symbols).astype(np.int32), model)
    for v in symbols[outside].tolist():
        _encode_escape(encoder, v, length)


def decode_values(decoder, n: int, model, offset: int, length: int) -> np.ndarray:
    """The inverse of :func:`encode_values`: ``(n,)`` int64."""
    symbols = np.asarray(decoder.decode(model, int(n)), dtype=np.int64)
    for i in np.flatnonzero(symbols == length).tolist():
        symbols[i] = _decode_escape(decoder, length)
    return symbols + int(offset)


def _encode_escape(encoder, v: int, length: int) -> None:
    sign, e = (0, v - length) if v >= length else (1, -1 - v)
    encoder.encode(np.array([sign], dtype=np.int32), _UNIFORM_SIGN)
    bits = int(e).bit_length()
    encoder.encode(np.array([bits], dtype=np.int32), _UNIFORM_BITS)
    chunks = [(e >> s) & ((1 << _CHUNK) - 1) for s in range(0, bits, _CHUNK)]
    if chunks:
        encoder.encode(np.array(chunks, dtype=np.int32), _UNIFORM_CHUNK)


def _decode_escape(decoder, length: int) -> int:
    sign = int(decoder.decode(_UNIFORM_SIGN, 1)[0])
    bits = int(decoder.decode(_UNIFORM_BITS, 1)[0])
    e = 0
    if bits:
        for i, chunk in enumerate(decoder.decode(_UNIFORM_CHUNK, -(-bits // _CHUNK)).tolist()):
            e |= int(chunk) << (_CHUNK * i)
    return e + length if sign == 0 else -1 - e


__all__ = [
    "PRECISION",
    "categorical",
    "decode_values",
    "encode_values",
    "new_decoder",
    "new_encoder",
    "to_bytes",
]
