"""Statistics with the example as the unit: coverage of the clustered intervals under within-example
correlation, what the naive treatment of attempts as independent would give, and power with repeats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evals.analyse.rates import z_scores
from evals.analyse.repeats import (
    by_example,
    clustered_rate_ci,
    paired_fraction_diff,
    repeat_power,
    within_variance,
)

K = 3
REPS = 2000


def population(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Examples of differing difficulty, as golden sets have them: most are right nearly every time or wrong
    nearly every time (A's per-example rate from the U-shaped Beta(0.4, 0.25)), a few are coin flips; B's rate is
    A's shifted up in logit space by 0.5 plus wide per-example noise (the two models fail different examples
    consistently, so the difference varies between examples much more than between attempts)."""
    pa = np.clip(rng.beta(0.4, 0.25, n), 1e-6, 1 - 1e-6)
    logit = np.log(pa / (1 - pa)) + 0.5 + rng.normal(0, 3.0, n)
    return pa, 1 / (1 + np.exp(-logit))


TRUE_DIFF = float(np.mean(np.subtract(*population(np.random.default_rng(99), 4_000_000)[::-1])))
TRUE_RATE = 0.4 / 0.65  # the mean of Beta(0.4, 0.25)


def coverage(n: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    z = z_scores(0.5, 0.05)[0]
    hits = {"clustered": 0, "naive": 0, "rate": 0}
    for _ in range(REPS):
        pa, pb = population(rng, n)
        xa = rng.random((n, K)) < pa[:, None]  # K attempts of each example, independent given its rate
        xb = rng.random((n, K)) < pb[:, None]
        fa, fb = xa.mean(1), xb.mean(1)
        _, low, high = paired_fraction_diff(fa, fb)
        hits["clustered"] += low <= TRUE_DIFF <= high
        d = (xb.astype(float) - xa).ravel()  # naive: 3n attempt pairs as if independent
        half = z * d.std(ddof=1) / np.sqrt(len(d))
        hits["naive"] += d.mean() - half <= TRUE_DIFF <= d.mean() + half
        low, high = clustered_rate_ci(fa, K)
        hits["rate"] += low <= TRUE_RATE <= high
    return {k: v / REPS for k, v in hits.items()}


@pytest.mark.parametrize("n", [50, 500])
def test_the_clustered_paired_interval_covers_and_the_naive_one_does_not(n: int) -> None:
    got = coverage(n, seed=n)
    print(f"n={n}: coverage {got}")  # shown with -s: clustered about 0.95, naive well below
    assert abs(got["clustered"] - 0.95) <= 0.02
    assert abs(got["rate"] - 0.95) <= 0.02
    assert got["naive"] < 0.90  # treating 3n correlated attempts as independent under-covers


def test_one_attempt_uses_the_interval_and_test_of_an_unrepeated_run(tmp_path) -> None:
    frame = pd.DataFrame({"example_id": ["a", "b"], "passed": [True, False], "attempt": [1, 1]})
    frame.attrs["manifest"] = {"repeats": 1}
    assert by_example(frame) is frame  # K = 1: the frame as it is, so every number is today's


def test_by_example_means_attempts_and_counts_missing_ones_as_failed() -> None:
    frame = pd.DataFrame({"example_id": ["a", "b", "a", "b", "a"], "attempt": [1, 1, 2, 2, 3],
                          "passed": [True, True, False, True, True], "error": [None, None, None, None, None],
                          "output": ["a1", "b1", "a2", "b2", "a3"], "score.m": [1.0, 0.5, 0.0, 1.0, 1.0]})
    frame.attrs["manifest"] = {"repeats": 3}
    out = by_example(frame).set_index("example_id")
    assert out["passed"].to_dict() == {"a": pytest.approx(2 / 3), "b": pytest.approx(2 / 3)}  # b's 3rd not made
    assert out["attempts"].to_dict() == {"a": 3, "b": 2}
    assert out["score.m"].to_dict() == {"a": pytest.approx(2 / 3), "b": pytest.approx(0.75)}
    assert out["output"].to_dict() == {"a": "a1", "b": "b1"}


def test_power_with_repeats_separates_noise_within_examples_from_the_spread_between_them() -> None:
    rng = np.random.default_rng(7)
    pa, pb = population(rng, 20_000)
    xa, xb = rng.random((20_000, K)) < pa[:, None], rng.random((20_000, K)) < pb[:, None]
    fa, fb = xa.mean(1), xb.mean(1)
    # the within-example variance E[pi(1 - pi)] is estimated without bias from 3 attempts
    assert within_variance(fa, K) == pytest.approx(np.mean(pa * (1 - pa)), rel=0.03)
    plan = repeat_power(fa, fb, K, K, gap=0.05)
    between = np.var(pb - pa)
    za, zb = z_scores(0.8, 0.05)
    assert plan.n_unlimited == pytest.approx((za + zb) ** 2 * between / 0.05**2, rel=0.05)
    assert plan.n_unlimited < plan.n_needed < plan.n_one_attempt  # more attempts help, down to a floor
    one = repeat_power(xa[:, 0].astype(float), xb[:, 0].astype(float), 1, 1, gap=0.05)
    assert plan.n_one_attempt == pytest.approx(one.n_needed, rel=0.05)  # the K = 1 projection is what K = 1 needs
    assert 0 < plan.within_share < 1


def test_the_public_api_offers_by_example() -> None:
    import evals

    assert evals.by_example is by_example


def test_past_5000_values_the_mean_interval_is_the_t_interval_and_agrees_with_the_bootstrap() -> None:
    from scipy.stats import bootstrap

    from evals.analyse.stats import BOOTSTRAP_MAX_N, bootstrap_mean_ci, mean_ci_method

    x = np.random.default_rng(3).beta(2, 5, BOOTSTRAP_MAX_N + 1000)  # skewed, as metric values often are
    m, low, high = bootstrap_mean_ci(x)
    bca = bootstrap((x,), np.mean, n_resamples=10_000, method="percentile", rng=np.random.default_rng(0)).confidence_interval
    assert m == pytest.approx(x.mean())
    assert low == pytest.approx(bca.low, abs=0.03 * (high - low)) and high == pytest.approx(bca.high, abs=0.03 * (high - low))
    assert mean_ci_method(len(x)) == "t interval (n > 5,000)" and mean_ci_method(50) == "BCa bootstrap"
