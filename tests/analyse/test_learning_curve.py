"""The learning curve's fit: it recovers known parameters from synthetic points, its bootstrap interval covers
the true value at about the nominal rate in a small simulation, and its answers past the data say so."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evals.analyse.learning_curve import Params, answer, examples_text, fit, more_examples_line

TRUE = Params(0.8, 2.0, 0.5)
SIZES = [50, 100, 200, 400]


def test_the_fit_recovers_known_parameters() -> None:
    exact = fit(SIZES, [TRUE.rate(n) for n in SIZES])
    assert (exact.a, exact.b, exact.c) == pytest.approx((0.8, 2.0, 0.5), rel=1e-4)
    # measured on 4,000 golden examples a size: the rates carry binomial noise of about 0.8 points
    rng = np.random.default_rng(7)
    noisy = fit([25, 50, 100, 200, 400, 800], [rng.binomial(4000, TRUE.rate(n)) / 4000 for n in
                                                [25, 50, 100, 200, 400, 800]])
    assert noisy.a == pytest.approx(0.8, abs=0.03) and noisy.c == pytest.approx(0.5, abs=0.15)
    assert noisy.rate(1600) == pytest.approx(TRUE.rate(1600), abs=0.02)


def test_a_curve_that_falls_or_passes_one_is_held_to_a_saturating_one() -> None:
    falling = fit(SIZES, [0.5, 0.45, 0.4, 0.35])
    assert falling.b == 0 and falling.a == pytest.approx(0.425)  # flat at the mean: more data does not help
    steep = fit(SIZES, [0.6, 0.9, 1.0, 1.0])
    assert steep.a <= 1.0 and steep.rate(800) <= 1.0


@pytest.mark.parametrize("paired", [True, False])
def test_the_interval_covers_the_true_values_at_about_the_nominal_rate(paired) -> None:
    """100 golden sets of 100 examples, each measured at four sizes; 95% intervals of the rate at 2x the data and
    of the examples that reach 70% (true: 400). Paired: an example that passes at one size passes at every larger
    one (one latent difficulty), as with a real fine-tune; unpaired: independent examples at each size."""
    rng = np.random.default_rng(1)
    covered = {"at_2x": 0, "examples": 0}
    reps = 100
    for rep in range(reps):
        if paired:
            u = rng.random(100)
            passed = np.array([u < TRUE.rate(n) for n in SIZES], float)
        else:
            passed = np.array([rng.random(100) < TRUE.rate(n) for n in SIZES], float)
        got = answer(SIZES, passed, {"seventy": 0.7}, draws=300, seed=rep)
        covered["at_2x"] += got.at_2x.low <= TRUE.rate(800) <= got.at_2x.high
        e = got.targets["seventy"]["examples"]
        covered["examples"] += e["low"] <= TRUE.examples_for(0.7) <= (math.inf if e["high"] is None else e["high"])
    for name, hits in covered.items():
        assert 0.85 <= hits / reps <= 0.99, (name, hits)


def test_answers_say_how_many_examples_or_that_the_curve_is_flat() -> None:
    assert TRUE.examples_for(0.7) == pytest.approx(400)
    assert TRUE.examples_for(0.85) == math.inf and Params(0.6, 0.0, 1.0).examples_for(0.5) == 0.0
    flat = np.array([[1] * 30 + [0] * 70] * 4, float)  # 30% at every size
    got = answer(SIZES, flat, {"baseline": 0.8}, draws=200)
    assert got.targets["baseline"]["examples"]["value"] is None  # never, as far as the curve knows
    assert got.targets["baseline"]["text"].startswith("not within 10x the largest size (400 examples")
    stored = {"fit": {"params": vars(got.params), "largest": 400,
                      "bootstrap_params": [[q.a, q.b, q.c] for q in got.bootstrap]}}
    line = more_examples_line(stored, 0.8, "finetune/curves/qa")
    assert line.startswith("The learning curve is flat: more data is unlikely to help reach 80%")
    assert examples_text(got.at_2x.__class__(620, 410, 1900), 400) == "about 620 examples (95% CI 410 to 1,900)"
    assert examples_text(got.at_2x.__class__(math.inf, 5000, math.inf), 400) == (
        "not within 10x the largest size (400 examples; 95% CI entirely beyond 10x)")
    rising = {"fit": {"params": vars(TRUE), "largest": 200, "bootstrap_params": [[0.8, 2.0, 0.5]] * 10}}
    assert more_examples_line(rising, 0.7, "c").startswith(  # 400 needed (TRUE), 200 measured
        "About 200 more training examples (beyond the 200 of its largest size) are expected to close the gap to 70%")
