"""Closed forms for one run's numbers, in the standard library alone (a run's summary imports no numpy):
Wilson intervals for rates, means, and their text (percentiles: evals._util)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

normal_ppf = NormalDist().inv_cdf  # the standard normal's quantile function (Wichura's AS241)


def wilson(successes, n, alpha: float):
    """Wilson (1927) score interval, elementwise for numpy arrays as for numbers: (low, high)."""
    z = normal_ppf(1 - alpha / 2)
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5 / denom
    return center - half, center + half


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial rate (good at small n and near 0 or 1)."""
    if n == 0:
        return (0.0, 1.0)
    low, high = wilson(successes, n, 1 - confidence)
    return max(0.0, float(low)), min(1.0, float(high))


def format_rate(successes: int, n: int, confidence: float = 0.95) -> str:
    """'44/50 (88%, 95% CI 76-94%)'."""
    if n == 0:
        return "0/0"
    low, high = wilson_interval(successes, n, confidence)
    return f"{successes}/{n} ({successes / n:.0%}, {confidence:.0%} CI {low * 100:.0f}-{high * 100:.0f}%)"


def format_points(x: float | None) -> str:
    """A difference in rates as signed percentage points: 0.062 -> '+6.2'; None -> 'n/a'."""
    return "n/a" if x is None else f"{x * 100:+.1f}"


def mean(values: Sequence[float | None]) -> float | None:
    """Mean of the values that exist, NaN and None left out (None for none)."""
    present = [float(v) for v in values if v is not None and v == v]
    return math.fsum(present) / len(present) if present else None


def z_scores(power: float, alpha: float) -> tuple[float, float]:
    """The normal quantiles of a two-sided test at `alpha` and of `power`."""
    return normal_ppf(1 - alpha / 2), normal_ppf(power)
