"""Statistics across runs: paired comparisons, agreement, resampled intervals, power and sample size (one
run's own rates and percentiles are in rates.py). Closed forms need only numpy and the standard library;
scipy is imported by the functions that resample or solve."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from evals.analyse.rates import normal_ppf, wilson, z_scores


def cohen_kappa(table: ArrayLike, weighted: bool = False,
                confidence: float = 0.95) -> tuple[float, tuple[float, float]] | None:
    """Cohen's kappa of a square table of two raters' labels (rows one, columns the other), quadratic-weighted
    when `weighted` (an ordered scale), with its asymptotic CI (statsmodels' variance); None when either rater
    used one label only (kappa is undefined then)."""
    from statsmodels.stats.inter_rater import cohens_kappa

    table = np.asarray(table, float)
    if np.count_nonzero(table.sum(axis=1)) < 2 or np.count_nonzero(table.sum(axis=0)) < 2:
        return None
    result = cohens_kappa(table, wt="quadratic" if weighted else None)
    half = normal_ppf(1 - (1 - confidence) / 2) * float(result["std_kappa"])
    return float(result["kappa"]), (float(result["kappa"]) - half, float(result["kappa"]) + half)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p: binomial test of b vs c discordant pairs at 1/2 (McNemar 1947).

    b = baseline-only passes, c = candidate-only passes; concordant pairs carry no information.
    """
    n = b + c
    if n == 0:
        return 1.0
    if n <= 1000:  # exact integers: P(X <= min) x 2^n, X ~ Binomial(n, 1/2)
        return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n)
    from scipy.stats import binom  # the same tail in floating point: the big integers grow as 2^n

    return min(1.0, 2 * float(binom.cdf(min(b, c), n, 0.5)))


def paired_diff_ci(n11: ArrayLike, n10: ArrayLike, n01: ArrayLike, n00: ArrayLike,
                   confidence: float = 0.95, method: str = "tango"):
    """(low, high) CI for p_B - p_A, the difference in match rates of paired binary outcomes.

    A = baseline, B = candidate; n11 both pass, n10 A pass B fail, n01 A fail B pass, n00 both fail.
    Counts may be numpy arrays (the result then is a pair of arrays).

    method="tango" (default): Tango's asymptotic score interval, inverting
    (n01 - n10 - n d) / sqrt(n (2 q(d) + d (1 - d))) = -+z with q(d) the restricted ML estimate of
    P(A pass, B fail). Tango T (1998), Stat Med 17:891-908; Fagerland, Lydersen & Laake (2014),
    Stat Med 33:2850-2875. Chosen over Newcombe because at n = 50 with ~10% discordant pairs its
    coverage is close to 95% where Newcombe's is ~98% (simulated in tests/analyse/test_stats.py).

    method="newcombe": Newcombe's method 10, the hybrid score (square-and-add of the two Wilson
    intervals) with the phi correction (numerator n11 n00 - n10 n01 shrunk by n/2 towards 0 when
    positive; phi = 0 if a margin is empty). Newcombe RG (1998), Stat Med 17:2635-2650.
    """
    n11, n10, n01, n00 = (np.asarray(x, dtype=float) for x in (n11, n10, n01, n00))
    n = n11 + n10 + n01 + n00
    if np.any(n <= 0):
        raise ValueError("paired_diff_ci needs at least one pair")
    if method == "tango":
        low, high = _tango(n10, n01, n, confidence)
    elif method == "newcombe":
        low, high = _newcombe(n11, n10, n01, n00, n, confidence)
    else:
        raise ValueError(f"unknown method {method!r}; use 'tango' or 'newcombe'")
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def _tango(n10, n01, n, confidence):
    z = normal_ppf(1 - (1 - confidence) / 2)

    def score(d):  # decreasing in d; Tango's n12 is n01 here (B is his group 1), his n21 is n10
        a, b, c = 2 * n, -n01 - n10 + (2 * n - n01 + n10) * d, -n10 * d * (1 - d)
        q = (np.sqrt(np.maximum(b * b - 4 * a * c, 0.0)) - b) / (2 * a)
        num = n01 - n10 - n * d
        den = np.sqrt(np.maximum(n * (2 * q + d * (1 - d)), 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(num == 0, 0.0, num / den)

    def solve(target):  # vectorised bisection on [-1, 1]
        lo, hi = np.full(n.shape, -1.0), np.full(n.shape, 1.0)
        for _ in range(60):
            mid = (lo + hi) / 2
            above = score(mid) > target
            lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
        return (lo + hi) / 2

    return solve(z), solve(-z)


def _newcombe(n11, n10, n01, n00, n, confidence):
    alpha = 1 - confidence
    pass_b, pass_a = n11 + n01, n11 + n10  # Newcombe's group 1 is B here, so theta = p_B - p_A
    p1, p2 = pass_b / n, pass_a / n
    l1, u1 = wilson(pass_b, n, alpha)
    l2, u2 = wilson(pass_a, n, alpha)
    margins = pass_b * (n - pass_b) * pass_a * (n - pass_a)
    cross = n11 * n00 - n10 * n01
    cross = np.where(cross > 0, np.maximum(cross - n / 2, 0.0), cross)
    phi = np.where(margins > 0, cross / np.sqrt(np.where(margins > 0, margins, 1.0)), 0.0)
    theta = p1 - p2
    low = theta - np.sqrt(np.maximum((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0))
    high = theta + np.sqrt(np.maximum((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2, 0))
    return np.maximum(low, -1.0), np.minimum(high, 1.0)


BOOTSTRAP_MAX_N = 5_000  # above: the t interval (BCa's jackknife is O(n^2), and at this n the two agree)


def mean_ci_method(n: int) -> str:
    """How `bootstrap_mean_ci` made the interval of n values."""
    return "BCa bootstrap" if n <= BOOTSTRAP_MAX_N else f"t interval (n > {BOOTSTRAP_MAX_N:,})"


def bootstrap_mean_ci(values: Sequence[float], n_resamples: int = 10_000, confidence: float = 0.95,
                      seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): BCa bootstrap CI of a mean (Efron 1987; scipy.stats.bootstrap), seeded.

    NaNs are dropped. Constant values give a zero-width interval; fewer than two values give NaN
    bounds. If BCa is undefined (very discrete data), falls back to the percentile interval. Past
    BOOTSTRAP_MAX_N values, the t interval: the mean is then normal to well within the bootstrap's own
    Monte Carlo error, and resampling would cost seconds per metric.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return (float("nan"),) * 3
    m = float(np.mean(x))
    if len(x) < 2:
        return m, float("nan"), float("nan")
    if np.ptp(x) <= 1e-12 * max(1.0, abs(m)):  # constant (up to rounding): nothing to resample
        return m, m, m
    from scipy.stats import bootstrap, t

    if len(x) > BOOTSTRAP_MAX_N:
        half = float(t.ppf(0.5 + confidence / 2, len(x) - 1)) * float(np.std(x, ddof=1)) / np.sqrt(len(x))
        return m, m - half, m + half

    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = bootstrap((x,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                            method=method, batch=1000, rng=np.random.default_rng(seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if not (np.isnan(low) or np.isnan(high)):
            break
    return m, low, high


def paired_bootstrap_ci(a: Sequence[float], b: Sequence[float], n_resamples: int = 10_000,
                        confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean of b - a, low, high): paired BCa bootstrap, resampling examples (both values together).

    Resampling pairs and taking mean(b) - mean(a) is the same as resampling the differences, which
    is what this does (Efron & Tibshirani 1993, ch. 14). Pairs with a NaN on either side are dropped.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    return bootstrap_mean_ci(b - a, n_resamples, confidence, seed)


# --- power and sample size (paired binary outcomes) --------------------------------------------


def _discordance(gap: float, discordance: float) -> float:
    if not (0 < gap <= 1 and 0 <= discordance <= 1):
        raise ValueError(f"need 0 < gap <= 1 and 0 <= discordance <= 1, got gap={gap}, discordance={discordance}")
    return max(discordance, gap)  # a gap needs at least that share of discordant pairs


def mcnemar_sample_size(gap: float, discordance: float, power: float = 0.8, alpha: float = 0.05) -> int:
    """Pairs needed for McNemar's test to detect a match-rate difference `gap` (Connor 1987).

    n = (z_{1-alpha/2} sqrt(psi) + z_{power} sqrt(psi - gap^2))^2 / gap^2, rounded up, where psi is
    the proportion of discordant pairs (p10 + p01) and gap = |p01 - p10|; two-sided alpha. A psi
    below the gap is raised to the gap (no table has fewer discordant pairs than its gap).
    Connor RJ (1987), Sample size for testing differences in proportions for the paired-sample
    design, Biometrics 43:207-211.
    """
    psi = _discordance(gap, discordance)
    za, zb = z_scores(power, alpha)
    n = (za * np.sqrt(psi) + zb * np.sqrt(psi - gap**2)) ** 2 / gap**2
    return int(np.ceil(n - 1e-9))


def min_detectable_gap(n: int, discordance: float, power: float = 0.8, alpha: float = 0.05) -> float | None:
    """Smallest gap n pairs detect with this power: Connor's formula solved for the gap.

    The discordance is held fixed, except that a gap larger than it carries it along (psi = max(psi,
    gap)). None when no gap up to 1 is detectable (n < z_{1-alpha/2}^2, about 4 pairs).
    """
    if n <= 0:
        return None
    za, zb = z_scores(power, alpha)

    def shortfall(gap: float) -> float:
        psi = max(discordance, gap)
        return np.sqrt(n) * gap - za * np.sqrt(psi) - zb * np.sqrt(max(psi - gap**2, 0.0))

    from scipy.optimize import brentq

    grid = np.linspace(1e-9, 1.0, 201)  # shortfall < 0 near 0: bracket the first crossing, then refine
    first = next((i for i, g in enumerate(grid) if shortfall(g) > 0), None)
    if first is None:
        return None
    return float(brentq(shortfall, grid[first - 1], grid[first], xtol=1e-10))


def independent_discordance(rate: float, gap: float) -> float:
    """Discordance psi = p_A(1 - p_B) + p_B(1 - p_A) with p_B = rate + gap, if outcomes were independent.

    For planning before any paired run. Two models' failures are usually positively correlated
    (hard examples are hard for both), which lowers psi, and a lower psi needs fewer pairs, so this
    bounds the pairs needed from above unless the models' outcomes are negatively correlated. It
    equals gap + 2 p_A (1 - p_B), so it is never below the gap.
    """
    p_b = rate + gap
    if not (0 <= rate <= 1 and 0 <= p_b <= 1):
        raise ValueError(f"rate {rate} plus gap {gap} must stay within [0, 1]")
    return rate * (1 - p_b) + p_b * (1 - rate)


def sample_size_for_rate(rate: float, gap: float, power: float = 0.8, alpha: float = 0.05) -> int:
    """Pairs needed to detect `gap` over a baseline match `rate` with no paired data yet.

    Connor's formula at the independence discordance (see `independent_discordance`): an upper bound.
    """
    return mcnemar_sample_size(gap, independent_discordance(rate, gap), power, alpha)
