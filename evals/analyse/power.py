"""Planning a golden set: how many paired examples detect a gap in match rate, with the assumptions in words."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from evals.analyse.stats import independent_discordance, mcnemar_sample_size
from evals.errors import EvalsError


@dataclass(frozen=True)
class PowerPlan:
    rate: float  # the baseline's match rate
    gap: float  # the candidate's advantage to detect
    discordance: float  # share of examples where exactly one model matches, as used
    power: float
    confidence: float
    n_pairs: int
    assumptions: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_power(rate: float, gap: float, discordance: float | None = None, power: float = 0.8,
               confidence: float = 0.95) -> PowerPlan:
    """Paired examples for McNemar's test to detect `gap` over `rate` (Connor 1987; see evals.analyse.stats)."""
    for name, value, ok in (("--rate", rate, 0 <= rate <= 1), ("--gap", gap, 0 < gap < 1),
                            ("--power", power, 0 < power < 1), ("--confidence", confidence, 0 < confidence < 1),
                            ("--discordance", discordance, discordance is None or 0 <= discordance <= 1)):
        if not ok:
            raise EvalsError(f"{name} {value} is out of range")
    if rate + gap > 1:
        raise EvalsError(f"--rate {rate} plus --gap {gap} is above 1: no candidate can match that often")
    alpha = 1 - confidence
    assumptions = [
        (f"Paired design: both models answer the same examples; McNemar's test, two-sided alpha {alpha:g} "
         f"({confidence:.0%} confidence), {power:.0%} power; sample size by Connor's (1987) formula."),
        f"Baseline match rate {rate:.0%}, candidate {rate + gap:.0%} (a gap of {gap * 100:g} points).",
    ]
    if discordance is None:
        used = independent_discordance(rate, gap)
        assumptions.append(
            f"Discordance (share of examples where exactly one model matches) {used:.1%}, as if the two models "
            "failed independently. Real models usually fail on the same hard examples, so the observed "
            "discordance is lower and fewer examples are needed: this is an upper bound. Pass --discordance "
            "from a paired run (see `evals compare`) for a sharper number.")
    else:
        used = max(discordance, gap)
        assumptions.append(f"Discordance {discordance:.1%}, as given" + (
            f"; raised to the gap ({gap:.1%}), the least any pair of runs with that gap can have." if used > discordance
            else "."))
    n = mcnemar_sample_size(gap, used, power, alpha)
    return PowerPlan(rate, gap, used, power, confidence, n, assumptions)
