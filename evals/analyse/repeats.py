"""Repeated attempts (K per example): pass fractions, pass@k, pass^k, flaky examples, and statistics that
take the example, not the attempt, as the unit.

Attempts of one example are correlated (a hard example is hard every time), so treating the nK attempts
as independent draws makes intervals too narrow. Everything here works on each example's mean over its
attempts (clustered standard errors; Miller 2024, "Adding Error Bars to Evals", arXiv 2411.00640). With
K = 1 nothing here is used, and every number is the one an unrepeated run gives.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evals.analyse.rates import wilson_interval, z_scores

CLUSTERED = "t interval on per-example pass fractions (clustered by example)"
PAIRED_T = "paired t-test on per-example pass fractions"


def attempts(df: pd.DataFrame) -> int:
    """The attempts per example a run asked for: its manifest's `repeats` (1 for runs before repeats)."""
    k = (df.attrs.get("manifest") or {}).get("repeats")
    if k:
        return int(k)
    return int(df["attempt"].max()) if "attempt" in df.columns and len(df) else 1


def by_example(df: pd.DataFrame) -> pd.DataFrame:
    """One row per example: `passed` the share of the run's K attempts that passed (an attempt not made
    counts as failed), `attempts` those made, `score.*` means over answered attempts, and the first
    attempt's output and scores; `error` only when no attempt was answered. K = 1: the frame as it is."""
    if attempts(df) == 1 or not len(df):
        return df
    k = attempts(df)
    ordered = df.sort_values(["attempt"], kind="stable")
    groups = ordered.groupby("example_id", sort=False)
    out = ordered.drop_duplicates("example_id").set_index("example_id")
    out["passed"] = groups["passed"].sum() / k
    out["attempts"] = groups.size()
    answered = ordered[ordered["error"].isna()]
    out["error"] = out["error"].where(~out.index.isin(answered["example_id"]), None)
    for col in [c for c in df.columns if c.startswith("score.")]:
        out[col] = pd.to_numeric(answered[col], errors="coerce").groupby(answered["example_id"]).mean()
    out = out.reset_index()
    out.attrs = df.attrs
    return out


@dataclass(frozen=True)
class RepeatStats:
    """A repeated run over its n examples: attempts made and passed, pass@k, pass^k and the flaky ones."""

    k: int
    attempts: int  # made (not errored or errored)
    passes: int  # attempts that passed
    pass_at_k: int  # examples where at least one of the K attempts passed
    pass_all_k: int  # pass^k: examples where every one of the K attempts passed
    flaky: tuple[str, ...]  # passed some attempts and failed others
    fractions: tuple[float, ...]  # each example's share of passing attempts (0 for examples never asked)


def repeat_stats(df: pd.DataFrame, n: int) -> RepeatStats:
    passes = df.groupby("example_id", sort=False)["passed"].sum() if len(df) else pd.Series(dtype=float)
    return stats_of_passes(dict(passes.items()), attempts(df), n, len(df))


def stats_of_passes(passes: Mapping[str, int], k: int, n: int, made: int) -> RepeatStats:
    """RepeatStats of a run of n examples asked k times, from each stored example's passing attempts (in the
    run's order) and the number of attempts made."""
    fractions = [float(v) / k for v in passes.values()] + [0.0] * max(0, n - len(passes))
    return RepeatStats(
        k=k, attempts=made, passes=int(sum(passes.values())), pass_at_k=sum(1 for v in passes.values() if v > 0),
        pass_all_k=sum(1 for v in passes.values() if v == k),
        flaky=tuple(str(i) for i, v in passes.items() if 0 < v < k), fractions=tuple(fractions),
    )


def clustered_rate_ci(fractions: np.ndarray | tuple[float, ...], k: int,
                      confidence: float = 0.95) -> tuple[float, float]:
    """The mean pass fraction's interval: Wilson's at the effective number of attempts, p(1-p) / var(mean),
    which is n·K when the attempts of an example vary as independent draws would and about n when they all
    agree (Kish's design effect); so it never credits repeats with more information than they hold."""
    f = np.asarray(fractions, float)
    n = len(f)
    if n == 0:
        return (0.0, 1.0)
    p = float(f.mean())
    var_mean = float(f.var(ddof=1)) / n if n > 1 else 0.0
    n_eff = n * k if var_mean <= 0 or p in (0.0, 1.0) else min(n * k, max(1.0, p * (1 - p) / var_mean))
    return wilson_interval(p * n_eff, n_eff, confidence)


def paired_fraction_diff(fa: np.ndarray, fb: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of B - A over examples with its t interval (the examples are the independent units)."""
    from scipy.stats import t

    d = np.asarray(fb, float) - np.asarray(fa, float)
    est = float(d.mean())
    if len(d) < 2:
        return est, float("nan"), float("nan")
    half = float(t.ppf(0.5 + confidence / 2, len(d) - 1)) * float(d.std(ddof=1)) / math.sqrt(len(d))
    return est, max(-1.0, est - half), min(1.0, est + half)


def paired_t_p(fa: np.ndarray, fb: np.ndarray) -> float:
    """Two-sided p of the paired t-test on per-example pass fractions (1 when no example differs)."""
    from scipy.stats import ttest_rel

    d = np.asarray(fb, float) - np.asarray(fa, float)
    if len(d) < 2 or not np.any(d):
        return 1.0
    if np.all(d == d[0]):  # every example moved the same way by the same amount
        return 0.0
    return float(ttest_rel(fb, fa).pvalue)


def within_variance(fractions: np.ndarray, k: int) -> float:
    """The average variance of one attempt's outcome around its example's own rate, E[pi(1-pi)], estimated
    without bias from K attempts (0 when K = 1, where it cannot be told from the between-example spread)."""
    if k < 2:
        return 0.0
    f = np.asarray(fractions, float)
    return float(np.mean(f * (1 - f)) * k / (k - 1))


@dataclass(frozen=True)
class RepeatPower:
    """Examples needed for a gap when each is asked K times: the noise within an example shrinks as 1/K,
    the spread between examples does not, so more attempts help only down to `n_unlimited`."""

    k: int
    n_needed: int  # examples, at this K
    n_one_attempt: int  # examples at K = 1
    n_unlimited: int  # examples however many attempts each gets
    within_share: float  # share of the per-example variance of B - A that is attempt-to-attempt noise
    min_detectable_gap: float | None  # with the current examples at this K


def repeat_power(fa: np.ndarray, fb: np.ndarray, ka: int, kb: int, gap: float, power: float = 0.8,
                 alpha: float = 0.05) -> RepeatPower:
    za, zb = z_scores(power, alpha)
    d = np.asarray(fb, float) - np.asarray(fa, float)
    n = len(d)
    total = float(d.var(ddof=1)) if n > 1 else 0.25
    wa, wb = within_variance(fa, ka), within_variance(fb, kb)
    between = max(0.0, total - wa / ka - wb / kb)
    k = max(ka, kb)

    def needed(var: float) -> int:
        return max(1, math.ceil((za + zb) ** 2 * max(var, 1e-12) / gap**2 - 1e-9))

    return RepeatPower(
        k=k, n_needed=needed(between + wa / ka + wb / kb), n_one_attempt=needed(between + wa + wb),
        n_unlimited=needed(between),
        within_share=(wa / ka + wb / kb) / (between + wa / ka + wb / kb) if between + wa + wb > 0 else 0.0,
        min_detectable_gap=(za + zb) * math.sqrt(total / n) if n > 1 and total > 0 else None,
    )


def repeats_text(stats: RepeatStats, n: int, confidence: float = 0.95) -> str:
    """'131/150 attempts (87%, 95% CI 80-93% by example); pass@3 48/50, pass^3 41/50, 7 flaky'."""
    if n == 0:
        return "0/0"
    low, high = clustered_rate_ci(stats.fractions, stats.k, confidence)
    rate = float(np.mean(stats.fractions))
    return (f"{stats.passes}/{n * stats.k} attempts ({rate:.0%}, {confidence:.0%} CI {low * 100:.0f}-{high * 100:.0f}%"
            f" by example); pass@{stats.k} {stats.pass_at_k}/{n}, pass^{stats.k} {stats.pass_all_k}/{n}, "
            f"{len(stats.flaky)} flaky")
