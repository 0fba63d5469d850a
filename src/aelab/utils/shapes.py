"""Image shapes from the data config: ``data.image_size`` and ``data.channels`` to ``(C, H, W)``."""

from __future__ import annotations

from collections.abc import Sequence

from aelab.errors import ConfigError


def image_size_hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    """``(H, W)`` of an ``image_size`` given as one int (square) or ``[H, W]``.

    Raises:
        ConfigError: for anything else, or sizes < 1.
    """
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        hw = (image_size, image_size)
    elif isinstance(image_size, Sequence) and not isinstance(image_size, str) and len(image_size) == 2:
        hw = (int(image_size[0]), int(image_size[1]))
    else:
        raise ConfigError(
            f"data.image_size={image_size!r} must be an int or [H, W]: set e.g. data.image_size=32"
        )
    if min(hw) < 1:
        raise ConfigError(f"data.image_size={image_size!r} must be positive: set e.g. data.image_size=32")
    return hw


def shape_of(channels: int, image_size: int | Sequence[int]) -> list[int]:
    """``[C, H, W]`` from ``data.channels`` and ``data.image_size`` (the ``aelab.image_shape`` resolver)."""
    if channels not in (1, 3):
        raise ConfigError(f"data.channels={channels!r} must be 1 (grey) or 3 (RGB)")
    return [int(channels), *image_size_hw(image_size)]


def grid_padding(h: int, w: int, factor: int) -> tuple[int, int, int, int]:
    """``(left, right, top, bottom)`` padding that makes ``h × w`` a multiple of ``factor`` in both sides
    (centred: the odd pixel goes right and bottom)."""
    ph, pw = -h % factor, -w % factor
    return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2
