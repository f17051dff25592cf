"""A learning curve's statistics: a saturating power law fitted to the match rate at each training-set size,
its uncertainty by bootstrap over the golden examples, and what it says past the data (labelled extrapolation):
the rate at 2x and 4x the largest size, and the examples needed to reach a target rate.

    rate(n) = a - b * n^(-c),   a <= 1 (the rate more data approaches), b >= 0, c in [C_MIN, C_MAX]

For a fixed c the model is linear in (a, b), so the fit is least squares in closed form on a log grid of c
(vectorised over bootstrap draws), the best c refined with scipy's bounded scalar minimiser for the point fit.
The bootstrap resamples golden examples (the same draw at every size, so the sizes stay paired); it measures the
noise of a finite golden set, not the run-to-run noise of training (seeds), which would widen the intervals.
`evals finetune TASK --curve` (finetune/curve.py) measures the points; `evals decide` reads the stored curve.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CURVES_ROOT = Path("finetune/curves")  # where `evals finetune --curve` keeps each curve: NAME/curve.json
C_MIN, C_MAX = 0.02, 3.0
GRID = np.geomspace(C_MIN, C_MAX, 600)
MIN_SIZES = 3  # three parameters
REACH = 10  # "not within 10x": targets the curve reaches only past this many times the largest size
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Params:
    a: float
    b: float
    c: float

    def rate(self, n: float) -> float:
        return self.a - self.b * n ** -self.c

    def examples_for(self, target: float) -> float:
        """The training-set size at which the curve reaches `target` (inf: never; 0: at any size)."""
        if self.b <= 0 or self.a <= target:
            return 0.0 if self.b <= 0 and self.a >= target else math.inf
        return (self.b / (self.a - target)) ** (1 / self.c)


def _fit_grid(x: np.ndarray, y: np.ndarray, grid: np.ndarray = GRID) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                               np.ndarray]:
    """Least-squares (a, b) for every c of `grid` and every row of `y` (draws x sizes): a, b, sse, each
    (draws x grid), under a <= 1 and b >= 0."""
    z = x[None, :] ** -grid[:, None]  # grid x sizes
    zbar, ybar = z.mean(1), y.mean(1)  # (grid,), (draws,)
    zc = z - zbar[:, None]
    var = (zc ** 2).sum(1)  # (grid,)
    cov = (y - ybar[:, None]) @ zc.T  # draws x grid
    b = np.where(var > 0, -cov / np.where(var > 0, var, 1), 0.0)
    a = ybar[:, None] + b * zbar[None, :]
    flat = b < 0  # a falling curve: the best saturating one is flat at the mean
    a, b = np.where(flat, ybar[:, None], a), np.where(flat, 0.0, b)
    over = a > 1  # the asymptote held at 1: b by least squares with a = 1
    b_at_1 = np.clip(((1 - y) @ z.T) / (z ** 2).sum(1)[None, :], 0, None)
    a, b = np.where(over, 1.0, a), np.where(over, b_at_1, b)
    resid = y[:, None, :] - (a[:, :, None] - b[:, :, None] * z[None, :, :])
    return a, b, (resid ** 2).sum(2), z


def fit(sizes: Sequence[float], rates: Sequence[float]) -> Params:
    """The least-squares saturating power law through (size, rate) points (at least MIN_SIZES distinct sizes)."""
    from scipy.optimize import minimize_scalar

    x, y = np.asarray(sizes, float), np.asarray(rates, float)[None, :]
    a, b, sse, _ = _fit_grid(x, y)
    i = int(np.argmin(sse[0]))
    lo, hi = GRID[max(i - 1, 0)], GRID[min(i + 1, len(GRID) - 1)]

    def loss(c: float) -> float:
        return float(_fit_grid(x, y, np.array([c]))[2][0, 0])

    if lo < hi:
        best = minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
        if best.success and best.fun <= sse[0, i]:
            a1, b1, _, _ = _fit_grid(x, y, np.array([best.x]))
            return Params(float(a1[0, 0]), float(b1[0, 0]), float(best.x))
    return Params(float(a[0, i]), float(b[0, i]), float(GRID[i]))


def bootstrap(sizes: Sequence[float], passed: np.ndarray, draws: int = 1000, seed: int = 0) -> list[Params]:
    """The curve refitted to `draws` resamples of the golden examples: `passed` is sizes x examples (0/1, the
    same examples in every row), and each draw takes the same examples at every size."""
    x = np.asarray(sizes, float)
    p = np.asarray(passed, float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, p.shape[1], size=(draws, p.shape[1]))
    y = p[:, idx].mean(2).T  # draws x sizes
    out = []
    for start in range(0, draws, 200):  # memory: draws x grid x sizes at a time
        a, b, sse, _ = _fit_grid(x, y[start:start + 200])
        i = sse.argmin(1)
        rows = np.arange(len(i))
        out += [Params(float(aa), float(bb), float(cc)) for aa, bb, cc in zip(a[rows, i], b[rows, i], GRID[i])]
    return out


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float | None]:
        return {k: (None if math.isinf(v) else v) for k, v in asdict(self).items()}


def _interval(values: Sequence[float], point: float, confidence: float = CONFIDENCE) -> Estimate:
    """Percentile interval of bootstrap values (inf allowed: an actual draw, never interpolated)."""
    v = np.sort(np.asarray(values, float))
    alpha = (1 - confidence) / 2
    low = float(np.quantile(v, alpha, method="inverted_cdf"))
    high = float(np.quantile(v, 1 - alpha, method="inverted_cdf"))
    return Estimate(point, low, high)


@dataclass(frozen=True)
class Answer:
    """What the curve says past the data. Every figure here is extrapolation from the fitted curve."""

    params: Params
    largest: int  # the largest training-set size measured
    at_2x: Estimate
    at_4x: Estimate
    asymptote: Estimate
    targets: dict[str, dict[str, Any]]  # name -> {rate, examples (Estimate of the size), text}
    bootstrap: list[Params] = field(default_factory=list, repr=False)  # the refitted curves

    def as_dict(self) -> dict[str, Any]:
        return {"params": asdict(self.params), "largest": self.largest, "at_2x": self.at_2x.as_dict(),
                "at_4x": self.at_4x.as_dict(), "asymptote": self.asymptote.as_dict(), "targets": self.targets,
                "extrapolation": True}


def examples_text(needed: Estimate, largest: int) -> str:
    """'about 620 examples (95% CI 410 to 1,900)', 'not within 10x (...)', or 'already reached'."""
    def num(v: float) -> str:
        return f"more than {REACH * largest:,}" if v > REACH * largest else f"{v:,.0f}"

    ci = (f"{CONFIDENCE:.0%} CI {num(needed.low)} to {num(needed.high)}" if needed.low <= REACH * largest
          else f"{CONFIDENCE:.0%} CI entirely beyond {REACH}x")
    if needed.value <= largest:
        return f"already reached at {largest:,} examples or fewer ({ci})"
    if needed.value > REACH * largest:
        return f"not within {REACH}x the largest size ({largest:,} examples; {ci})"
    return f"about {needed.value:,.0f} examples ({ci})"


def answer(sizes: Sequence[int], passed: np.ndarray, targets: dict[str, float] | None = None, *,
           draws: int = 1000, seed: int = 0) -> Answer:
    """The fitted curve and its extrapolations, each with a bootstrap percentile interval over golden examples.
    `targets`: name -> the match rate to reach (say the baseline's, and the baseline's plus min_gap)."""
    p = np.asarray(passed, float)
    params = fit(sizes, p.mean(1))
    boot = bootstrap(sizes, p, draws, seed)
    largest = int(max(sizes))
    at = {k: _interval([q.rate(k * largest) for q in boot], params.rate(k * largest)) for k in (2, 4)}
    out = {name: target_answer(params, boot, rate, largest) for name, rate in (targets or {}).items()}
    return Answer(params, largest, at[2], at[4], _interval([q.a for q in boot], params.a), out, boot)


def target_answer(params: Params, boot: Sequence[Params], target: float, largest: int) -> dict[str, Any]:
    """The examples needed to reach `target`, with its bootstrap interval and in words."""
    needed = _interval([q.examples_for(target) for q in boot], params.examples_for(target))
    return {"rate": target, "examples": needed.as_dict(), "text": examples_text(needed, largest)}


def find_curve(task: str, base: str, root: Path = CURVES_ROOT) -> tuple[Path, dict[str, Any]] | None:
    """The newest fitted curve of this task and base model (a file is data: anything malformed is passed over)."""
    found = []
    for path in root.glob("*/curve.json") if root.is_dir() else ():
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            ident, fitted = record["identity"], record["fit"]
            if ident["task"] == task and ident["base"] == base and isinstance(fitted, dict):
                curve_params(record)  # the parameters must be numbers
                found.append((path.stat().st_mtime, path, record))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return max(found, key=lambda f: f[0])[1:] if found else None


def curve_params(record: dict[str, Any]) -> tuple[Params, list[Params], int]:
    """A stored curve's fit: its parameters, the bootstrap's, and the largest size (ValueError if malformed)."""
    fitted = record["fit"]
    p = fitted["params"]
    params = Params(float(p["a"]), float(p["b"]), float(p["c"]))
    boot = [Params(float(a), float(b), float(c)) for a, b, c in fitted["bootstrap_params"]]
    if not boot:
        raise ValueError("no bootstrap draws")
    return params, boot, int(fitted["largest"])


def more_examples_line(record: dict[str, Any], target: float, curve_of: str) -> str:
    """`decide`'s line from a stored curve: how many more training examples are expected to bring the candidate
    to `target` (the baseline's rate plus min_gap), or that the curve is flat. Labelled extrapolation."""
    params, boot, largest = curve_params(record)
    found = target_answer(params, boot, target, largest)
    value = math.inf if found["examples"]["value"] is None else found["examples"]["value"]
    where = f"(extrapolated from the learning curve in {curve_of}: {found['text']})"
    if value <= largest:
        return f"The learning curve already reaches {target:.0%} at its largest size {where}."
    if value > REACH * largest:
        return f"The learning curve is flat: more data is unlikely to help reach {target:.0%} {where}."
    return (f"About {value - largest:,.0f} more training examples (beyond the {largest:,} of its largest size) are "
            f"expected to close the gap to {target:.0%} {where}.")
