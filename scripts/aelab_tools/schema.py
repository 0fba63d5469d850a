"""The one place the report tooling knows how aelab names its metrics: ``test/<section>/<name>`` keys built from what
the evaluation suite's config (``conf/suite/full.yaml``) says it measures — the classical codecs and their qualities,
the samplers, the sections — and read back by these functions. Nothing else in ``aelab_tools`` parses a metric name.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from omegaconf import OmegaConf

from aelab import CONF_DIR


@cache
def suite() -> dict[str, Any]:
    """The full evaluation suite's sections (``conf/suite/full.yaml``), resolved where they can be."""
    cfg = OmegaConf.load(CONF_DIR / "suite" / "full.yaml")
    return OmegaConf.to_container(cfg.sections, resolve=False)


def classical_codecs() -> list[str]:
    """The lossy classical codecs the suite measures (``jpeg``, ``webp``, ``avif``, ``jxl``)."""
    return list(suite()["classical_codecs"]["codecs"])


def qualities() -> list[int]:
    """Their quality settings, one rate–distortion point each."""
    return [int(q) for q in suite()["classical_codecs"]["qualities"]]


def jpeg_qualities() -> list[int]:
    """The JPEG qualities of the compression section (header counted and not)."""
    return [int(q) for q in suite()["compression"]["jpeg_qualities"]]


def samplers() -> list[str]:
    """The samplers the Fréchet-distance section runs (by name)."""
    return [s for s in suite()["fid"]["samplers"] if isinstance(s, str)]


def sections() -> list[str]:
    """The suite's sections, in order (their wall times are ``test/timing/<section>_s``)."""
    return list(suite())


def classical_key(codec: str, quality: int | None, field: str, photos: bool = False) -> str:
    """``test/compression/[photos/]<codec>[_q<q>]_<field>``."""
    return f"test/compression/{'photos/' if photos else ''}{codec}{'' if quality is None else f'_q{quality}'}_{field}"


def classical_curve(
    m: dict[str, float], codec: str, rate: str, photos: bool = False
) -> list[tuple[float, float]]:
    """A classical codec's ``(rate, PSNR)`` points in a metrics dict, by quality (``rate``: ``bytes_per_image`` or
    ``bits_per_pixel``); qualities without both values are left out."""
    out = []
    for q in qualities():
        r, p = classical_key(codec, q, rate, photos), classical_key(codec, q, "psnr", photos)
        if r in m and p in m:
            out.append((m[r], m[p]))
    return sorted(out)


def jpeg_payload_curve(m: dict[str, float]) -> list[tuple[float, float]]:
    """JPEG's ``(entropy-coded payload bytes, PSNR)`` points of the compression section (no header)."""
    out = []
    for q in jpeg_qualities():
        r, p = f"test/compression/jpeg_q{q}_payload_bytes_per_image", f"test/compression/jpeg_q{q}_psnr"
        if r in m and p in m:
            out.append((m[r], m[p]))
    return sorted(out)


def codec_key(field: str, photos: bool = False) -> str:
    """``test/codec/[photos/]<field>`` of the learned codec section."""
    return f"test/codec/{'photos/' if photos else ''}{field}"


def fids(m: dict[str, float]) -> dict[str, float]:
    """``{sampler: Fréchet distance}`` of the samplers a metrics dict has."""
    return {s: m[f"test/generation/fid_{s}"] for s in samplers() if f"test/generation/fid_{s}" in m}


def section_times(m: dict[str, float]) -> dict[str, float]:
    """``{section: seconds}`` of the sections a metrics dict timed."""
    return {s: m[f"test/timing/{s}_s"] for s in sections() if f"test/timing/{s}_s" in m}
