"""Statistics: published values, hand computations, and simulations of coverage and false verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep

from evals.analyse.rates import wilson_interval
from evals.analyse.stats import (
    bootstrap_mean_ci,
    independent_discordance,
    mcnemar_exact,
    mcnemar_sample_size,
    min_detectable_gap,
    paired_bootstrap_ci,
    paired_diff_ci,
    sample_size_for_rate,
)
from evals.analyse.verdict import quality_call

# Cavo et al. (2012) as tabulated in Fagerland, Lydersen & Laake (2017), Statistical Analysis of
# Contingency Tables, ch. 8: group 1 = B here, so n11=59, n10=16 (A only), n01=6 (B only), n00=80.
CAVO = (59, 16, 6, 80)


def test_seed_story_rates_and_mcnemar() -> None:
    assert wilson_interval(44, 50) == pytest.approx((0.762, 0.944), abs=5e-4)
    assert wilson_interval(47, 50) == pytest.approx((0.838, 0.979), abs=5e-4)
    assert mcnemar_exact(1, 4) == pytest.approx(0.375)  # 2 * P(X <= 1 | 5, 1/2) = 2 * 6/32


def test_mcnemar_exact_published_and_degenerate() -> None:
    assert mcnemar_exact(16, 6) == pytest.approx(0.052479, abs=1e-6)
    assert mcnemar_exact(6, 16) == mcnemar_exact(16, 6)
    assert mcnemar_exact(0, 0) == 1.0


def test_paired_diff_ci_matches_published_values() -> None:
    assert paired_diff_ci(*CAVO) == pytest.approx((-0.1240, -0.0054), abs=5e-5)  # Tango
    assert paired_diff_ci(*CAVO, method="newcombe") == pytest.approx((-0.1186, -0.0046), abs=5e-5)


def test_newcombe_without_correlation_is_the_unpaired_hybrid_score() -> None:
    # n11*n00 - n10*n01 = 0 gives phi = 0: the paired interval reduces to Newcombe's unpaired one
    low, high = paired_diff_ci(10, 10, 10, 10, method="newcombe")
    assert (low, high) == pytest.approx(confint_proportions_2indep(20, 40, 20, 40, method="newcomb"))


def test_paired_diff_ci_edges_and_arrays() -> None:
    low, high = paired_diff_ci(50, 0, 0, 0)  # no discordant pair: a symmetric interval around 0
    assert low == pytest.approx(-high) and 0.05 < high < 0.1
    assert paired_diff_ci(0, 0, 50, 0)[1] == 1.0 and paired_diff_ci(0, 50, 0, 0)[0] == -1.0
    lows, highs = paired_diff_ci(np.array([43, 59]), np.array([1, 16]), np.array([4, 6]), np.array([2, 80]))
    assert (lows[1], highs[1]) == pytest.approx(paired_diff_ci(*CAVO))
    with pytest.raises(ValueError):
        paired_diff_ci(0, 0, 0, 0)


# Paired outcomes with p_A = 0.85, p_B = 0.88 and positively correlated errors (phi ~ 0.62): cells
# (both pass, A only, B only, both fail). Realistic for two models where hard examples are hard for both.
REALISTIC = [0.82, 0.03, 0.06, 0.09]


@pytest.mark.parametrize("n", [50, 500])
def test_paired_diff_ci_coverage_is_near_95(n: int) -> None:
    counts = np.random.default_rng(2024 + n).multinomial(n, REALISTIC, size=20_000)
    low, high = paired_diff_ci(*counts.T)
    truth = REALISTIC[2] - REALISTIC[1]
    coverage = np.mean((low <= truth + 1e-12) & (truth - 1e-12 <= high))
    # Monte Carlo standard error ~0.0015; measured 0.967 (n=50) and 0.949 (n=500)
    assert abs(coverage - 0.95) < 0.02, coverage


@pytest.mark.parametrize("cells", [
    [0.80, 0.02, 0.07, 0.11],  # true gap = min_gap = 0.05, the boundary of the null
    [0.82, 0.045, 0.045, 0.09],  # true gap 0
])
@pytest.mark.parametrize("n", [50, 500])
def test_justified_is_rare_when_the_true_gap_is_at_most_min_gap(cells: list[float], n: int) -> None:
    counts = np.random.default_rng(7 + n).multinomial(n, cells, size=10_000)
    low, high = paired_diff_ci(*counts.T)
    calls = [quality_call(lo, hi, 0.05) for lo, hi in zip(low, high)]
    assert calls.count("above") / len(calls) < 0.05


def test_bootstrap_is_reproducible_with_a_seed() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.uniform(size=80), rng.uniform(size=80) + 0.1
    first = paired_bootstrap_ci(a, b, seed=3)
    assert paired_bootstrap_ci(a, b, seed=3) == first
    assert paired_bootstrap_ci(a, b, seed=4) != first
    assert first[0] == pytest.approx(np.mean(b - a))


def test_bootstrap_matches_known_cases() -> None:
    assert paired_bootstrap_ci([0.2, 0.5, 0.9], [0.7, 1.0, 1.4]) == pytest.approx((0.5, 0.5, 0.5))  # constant
    # For a smooth mean of many values the bootstrap agrees with the normal interval mean +- 1.96 s / sqrt(n)
    d = np.random.default_rng(5).normal(0.1, 0.2, size=400)
    est, low, high = paired_bootstrap_ci(np.zeros(400), d)
    half = 1.96 * d.std(ddof=1) / np.sqrt(400)
    assert (low, high) == pytest.approx((est - half, est + half), abs=0.003)
    assert bootstrap_mean_ci([1.0])[0] == 1.0 and np.isnan(bootstrap_mean_ci([1.0])[1])
    assert bootstrap_mean_ci([1.0, np.nan, 3.0], n_resamples=200)[0] == 2.0


def test_sample_size_by_hand() -> None:
    # Connor: n = (1.959964 * sqrt(0.10) + 0.841621 * sqrt(0.10 - 0.05^2))^2 / 0.05^2
    #           = (0.619795 + 0.262796)^2 / 0.0025 = 0.778967 / 0.0025 = 311.6 -> 312
    assert mcnemar_sample_size(0.05, 0.10) == 312
    # (1.959964 * sqrt(0.3) + 0.841621 * sqrt(0.29))^2 / 0.01 = (1.073516 + 0.453228)^2 / 0.01 = 233.1 -> 234
    assert mcnemar_sample_size(0.10, 0.30) == 234
    assert mcnemar_sample_size(0.05, 0.0) == mcnemar_sample_size(0.05, 0.05)  # a gap needs its discordance
    with pytest.raises(ValueError):
        mcnemar_sample_size(0.0, 0.1)


def test_min_detectable_gap_inverts_the_sample_size() -> None:
    assert min_detectable_gap(312, 0.10) == pytest.approx(0.05, abs=5e-4)
    assert min_detectable_gap(50, 0.10) == pytest.approx(0.1497, abs=1e-3)  # carries the discordance along
    assert min_detectable_gap(3, 0.10) is None


def test_independent_discordance_is_an_upper_bound_assumption() -> None:
    psi = independent_discordance(0.85, 0.03)  # 0.85 * 0.12 + 0.88 * 0.15
    assert psi == pytest.approx(0.234) and psi == pytest.approx(0.03 + 2 * 0.85 * 0.12)
    assert sample_size_for_rate(0.85, 0.03) == mcnemar_sample_size(0.03, 0.234)
    assert sample_size_for_rate(0.85, 0.03) > mcnemar_sample_size(0.03, 0.09)  # correlated models need fewer


def test_closed_forms_equal_the_libraries_they_replace() -> None:
    """Wilson intervals and exact McNemar p are computed without statsmodels (a fast start); they must agree."""
    from statsmodels.stats.contingency_tables import mcnemar
    from statsmodels.stats.proportion import proportion_confint

    from evals.analyse.rates import wilson_interval
    from evals.analyse.stats import mcnemar_exact

    for n in (1, 7, 50, 400):
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            for confidence in (0.9, 0.95, 0.99):
                expected = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
                assert wilson_interval(k, n, confidence) == pytest.approx(expected, abs=1e-12)
    for b, c in ((0, 1), (1, 4), (3, 3), (10, 30), (120, 95)):
        assert mcnemar_exact(b, c) == pytest.approx(mcnemar([[0, b], [c, 0]], exact=True).pvalue, rel=1e-12)
