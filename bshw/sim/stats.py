"""Binomial acceptance bounds for the statistics benches (false-alarm rate stated up front).

A bench checks ``m`` points; each count must lie inside the two-sided binomial acceptance region
of level ``alpha / m`` (Bonferroni), so the chance that a correct design fails the whole bench is
below ``alpha`` (default 1e-5). The exact binomial tail is used when scipy is there, else the
normal approximation with the matching z (about 5.2 sigma for 41 points at 1e-5).
"""

from __future__ import annotations

import math


def z_for(alpha: float) -> float:
    """Two-sided standard-normal quantile: ``P(|Z| > z) = alpha`` (bisection on erfc)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    lo, hi = 0.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if math.erfc(mid / math.sqrt(2)) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def binom_check(count: int, n: int, p: float, alpha: float) -> tuple:
    """``(ok, detail)``: is ``count`` of ``n`` Bernoulli(p) trials inside the two-sided region of
    level ``alpha``? ``detail`` names the observed rate, p and the tail probability or z."""
    rate = count / n if n else float("nan")
    if p <= 0.0 or p >= 1.0:
        ok = count == (0 if p <= 0.0 else n)
        return ok, f"rate {rate:.6f} vs p {p:.6f} (degenerate: must be exact)"
    try:
        from scipy.stats import binom
    except ImportError:
        binom = None
    if binom is not None:
        lower = float(binom.cdf(count, n, p))  # P(X <= count)
        upper = float(binom.sf(count - 1, n, p))  # P(X >= count)
        tail = min(lower, upper)
        return tail > alpha / 2, f"rate {rate:.6f} vs p {p:.6f}, tail probability {tail:.2e} (limit {alpha / 2:.2e})"
    sd = math.sqrt(n * p * (1 - p))
    z = abs(count - n * p) / sd
    zmax = z_for(alpha)
    return z <= zmax, f"rate {rate:.6f} vs p {p:.6f}, {z:.2f} sigma (limit {zmax:.2f})"
