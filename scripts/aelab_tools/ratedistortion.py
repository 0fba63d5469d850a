"""Comparing rate–distortion curves: the Bjøntegaard delta rate.

Bjøntegaard, "Calculation of average PSNR differences between RD-curves" (VCEG-M33, 2001): fit log-rate as a
cubic polynomial of PSNR for each curve, integrate both over the PSNR interval they share, and report the
average rate difference, ``BD-rate = exp(mean Δ log R) − 1``: −50% means the test codec needs half the bits
of the anchor at equal PSNR, on average over the common range.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bd_rate(anchor: Sequence[tuple[float, float]], test: Sequence[tuple[float, float]]) -> float | None:
    """BD-rate (percent) of ``test`` against ``anchor``, each a curve of ``(rate, psnr)`` points (rate > 0, any
    unit, the same for both; at least 4 points each, as the cubic fit needs).

    Returns:
        the percentage, or ``None`` when the curves share no PSNR range or have too few points.
    """
    a = np.array(sorted((p, r) for r, p in anchor if r > 0 and np.isfinite(p)), dtype=np.float64)
    t = np.array(sorted((p, r) for r, p in test if r > 0 and np.isfinite(p)), dtype=np.float64)
    if len(a) < 4 or len(t) < 4:
        return None
    lo, hi = max(a[:, 0].min(), t[:, 0].min()), min(a[:, 0].max(), t[:, 0].max())
    if not hi > lo:
        return None
    fa = np.polyfit(a[:, 0], np.log(a[:, 1]), 3)
    ft = np.polyfit(t[:, 0], np.log(t[:, 1]), 3)
    ia, it = np.polyint(fa), np.polyint(ft)
    mean_a = (np.polyval(ia, hi) - np.polyval(ia, lo)) / (hi - lo)
    mean_t = (np.polyval(it, hi) - np.polyval(it, lo)) / (hi - lo)
    return float((np.exp(mean_t - mean_a) - 1) * 100)


def common_range(*curves: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """The PSNR interval every (non-empty) curve covers, or ``None``."""
    curves = [c for c in curves if len(c)]
    if not curves:
        return None
    lo = max(min(p for _, p in c) for c in curves)
    hi = min(max(p for _, p in c) for c in curves)
    return (lo, hi) if hi > lo else None


def overlap(anchor: Sequence[tuple[float, float]], test: Sequence[tuple[float, float]]) -> float | None:
    """The share (0–1) of the shorter curve's PSNR range that both curves cover: the range a BD-rate integrates
    over, relative to what it could have been. Under 0.75 the BD-rate rests on a narrow overlap (the case the
    ``bjontegaard`` package warns about); ``None`` when either curve is empty or flat."""
    spans = [(min(p for _, p in c), max(p for _, p in c)) for c in (anchor, test) if len(c)]
    both = common_range(anchor, test)
    if len(spans) < 2 or min(hi - lo for lo, hi in spans) <= 0:
        return None
    return 0.0 if both is None else (both[1] - both[0]) / min(hi - lo for lo, hi in spans)


def rate_at(curve: Sequence[tuple[float, float]], psnr: float) -> float | None:
    """The rate of a curve at ``psnr``, interpolated linearly in log-rate between its points (``None`` outside)."""
    pts = sorted((p, r) for r, p in curve)
    for (p0, r0), (p1, r1) in zip(pts, pts[1:], strict=False):
        if p0 <= psnr <= p1 and p1 > p0:
            w = (psnr - p0) / (p1 - p0)
            return float(np.exp((1 - w) * np.log(r0) + w * np.log(r1)))
    return None
