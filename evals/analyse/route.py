"""Should part of the traffic go to the cheap model? Hybrid quality, cost and latency, from two stored runs.

The cheap model answers every call (the routing signal is read from its answer); a call whose signal is
below the threshold goes on to the strong model, whose answer is then the one used. Over the examples
both runs answered, the blended answer of each example is the cheap run's or the strong run's, so the
blended match rate pairs exactly with "everything on the strong model": the paired CI of their
difference is Tango's (stats.py), and a threshold is non-inferior when its lower bound lies above
-min_gap. Costs come from the cost model of `evals decide` (economics.py): per month, the cheap model at
the whole volume plus the strong model at the share routed to it. Latency per call is the cheap
model's, plus the strong model's for a routed call, example by example, as measured in the runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from evals._util import percentile
from evals.analyse.compare import TANGO, Comparison, Estimate, compare_runs, json_types
from evals.analyse.decide import latency_profile
from evals.analyse.economics import CostModel, Latency, cost_model, profile_latency, run_latency
from evals.analyse.rates import format_points
from evals.analyse.repeats import attempts
from evals.analyse.signals import parse_signal, signal_values
from evals.analyse.stats import mcnemar_sample_size, paired_diff_ci
from evals.analyse.verdict import pairing_notes
from evals.data.golden import load_samples
from evals.errors import EvalsError
from evals.run.manifest import recorded_metrics
from evals.run.store import Store, load_run
from evals.types import Decision, Task

NO_SAFE = "no routing threshold is safe with these examples"
ROUTE = "route {share:.0%} of calls to the cheap model ({signal} at least {threshold:g})"


@dataclass(frozen=True)
class Option:
    """One way to serve the traffic: everything on one model, or a routing threshold."""

    label: str
    threshold: float | None  # keep the cheap answer when the signal is at least this; None for a single model
    kept: int  # examples answered by the cheap model (its answer used)
    share_cheap: float  # kept / examples
    matches: int
    match_rate: float
    vs_strong: Estimate  # blended match rate - the strong model's, paired, with its CI
    non_inferior: bool  # the CI's lower bound lies above -min_gap
    discordance: float  # share of examples where the blended and the strong outcome differ
    cost_per_call_usd: float | None  # variable cost of one call: the cheap call, plus the strong one if routed
    monthly_usd: float | None  # at decision.volume, fixed costs and floors included
    latency_p50_s: float | None
    latency_p95_s: float | None


@dataclass(frozen=True)
class Routing:
    signal: str
    signal_description: str
    cheap_model: str
    strong_model: str
    cheap_run: str
    strong_run: str
    n: int  # examples both runs hold
    unscored: int  # answered by the cheap model but without a signal value: routed to the strong model
    min_gap: float
    confidence: float
    volume: float | None
    strong: Option  # everything on the strong model
    cheap: Option  # everything on the cheap model, no routing
    thresholds: tuple[Option, ...]  # the highest threshold first (fewest calls kept on the cheap model)
    recommended: Option | None
    more_examples: int | None  # when none is safe: paired examples that would settle the closest one
    label: str
    headline: str
    reasons: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)

    @property
    def beats_both(self) -> bool:
        """A threshold is safe and cheaper than the strong model, while the cheap model alone is not safe."""
        r = self.recommended
        return (r is not None and not self.cheap.non_inferior and _cost(r) is not None
                and _cost(self.strong) is not None and _cost(r) < _cost(self.strong))

    def as_dict(self) -> dict[str, Any]:
        return json_types({**asdict(self), "beats_both": self.beats_both})


def _cost(option: Option) -> float | None:
    return option.monthly_usd if option.monthly_usd is not None else option.cost_per_call_usd


MAX_THRESHOLDS = 200  # a signal with more distinct values (a log-probability per example) is cut at quantiles


def thresholds(values: np.ndarray) -> list[float]:
    """The signal's distinct values, highest first; past MAX_THRESHOLDS of them, that many spread evenly by rank
    (each one still a value some example has, so every cut is one a team could set)."""
    distinct = np.unique(values[~np.isnan(values)])[::-1]
    if len(distinct) > MAX_THRESHOLDS:
        distinct = distinct[np.unique(np.linspace(0, len(distinct) - 1, MAX_THRESHOLDS).round().astype(int))]
    return [float(v) for v in distinct]


def route(cmp: Comparison, strong: pd.DataFrame, cheap: pd.DataFrame, signal: Mapping[str, float | None], *,
          signal_name: str, signal_description: str, decision: Decision, latency: Mapping[str, Latency],
          fallback_at: float | None = None) -> Routing:
    """Every threshold of `signal` (example id -> value from the cheap answer) over the runs of `cmp`
    (A = the strong run, B = the cheap run, from compare_runs), with the recommendation."""
    for df in (strong, cheap):
        if attempts(df) > 1:
            raise EvalsError(f"run {df.attrs.get('run', {}).get('id', '?')} asked each example {attempts(df)} times; "
                             "routing pairs one answer per example, so route between runs made without repeats")
    in_cheap = set(cheap["example_id"].astype(str))
    ids = [i for i in strong["example_id"].astype(str) if i in in_cheap]
    s, c = _by_id(strong).loc[ids], _by_id(cheap).loc[ids]
    pass_s, pass_c = s["passed"].to_numpy(bool), c["passed"].to_numpy(bool)
    lat_s, lat_c = s["latency_s"].to_numpy(float), c["latency_s"].to_numpy(float)
    values = np.array([np.nan if signal.get(i) is None else float(signal[i]) for i in ids])
    answered = c["error"].isna().to_numpy()
    models, cost_notes = {}, []
    for role, side in (("strong", cmp.a), ("cheap", cmp.b)):
        models[role], why = cost_model(side, decision, latency[role])
        cost_notes += [why] if why else []
    d, n = decision, len(ids)

    def option(label: str, keep: np.ndarray, threshold: float | None, calls_cheap: bool) -> Option:
        blended = np.where(keep, pass_c, pass_s)
        n11, n10 = int(np.sum(pass_s & blended)), int(np.sum(pass_s & ~blended))
        n01, n00 = int(np.sum(~pass_s & blended)), int(np.sum(~pass_s & ~blended))
        low, high = paired_diff_ci(n11, n10, n01, n00, cmp.confidence)
        diff = Estimate((n01 - n10) / n, low, high, n, TANGO)
        routed = float(np.mean(~keep))
        latencies = np.where(keep, lat_c, (lat_c if calls_cheap else 0.0) + lat_s)
        per_call, monthly = _costs(models, routed, calls_cheap, d.volume)
        return Option(label, threshold, int(keep.sum()), float(keep.mean()), int(blended.sum()),
                      float(blended.mean()), diff, low > -d.min_gap, (n10 + n01) / n, per_call, monthly,
                      percentile(latencies.tolist(), 50), percentile(latencies.tolist(), 95))

    everything_strong = replace(option(f"everything on {cmp.a.summary.model}", np.zeros(n, bool), None, False),
                                non_inferior=True, vs_strong=Estimate(0.0, 0.0, 0.0, n, "the reference itself"))
    everything_cheap = option(f"everything on {cmp.b.summary.model}", np.ones(n, bool), None, True)
    cuts = [fallback_at] if fallback_at is not None else thresholds(values)
    options = []
    for t in cuts:
        keep = answered & (np.nan_to_num(values, nan=-np.inf) >= t)
        share = float(keep.mean())
        options.append(option(ROUTE.format(share=share, signal=signal_name, threshold=t), keep, float(t), True))
    safe = [o for o in options if o.kept and o.non_inferior]
    recommended = min(safe, key=lambda o: (_cost(o) if _cost(o) is not None else -o.share_cheap, -o.share_cheap),
                      default=None)
    label, headline, more, reasons = _recommend(recommended, options, everything_strong, d, cmp.confidence, n)
    reasons += cost_notes
    unscored = int(np.sum(answered & np.isnan(values)))
    if unscored:
        reasons.append(f"{unscored} cheap answer(s) have no signal value (the metric could not score them); they "
                       "go to the strong model at every threshold.")
    errors = int(np.sum(~answered))
    if errors:
        reasons.append(f"The cheap model failed on {errors} example(s); production would send those to the strong "
                       "model, and so does every threshold here.")
    if cmp.a.summary.errors:
        reasons.append(f"The strong model failed on {cmp.a.summary.errors} example(s); they count as misses.")
    reasons += pairing_notes(cmp)
    return Routing(signal_name, signal_description, cmp.b.summary.model, cmp.a.summary.model, cmp.b.summary.run_id,
                   cmp.a.summary.run_id, n, unscored, d.min_gap, cmp.confidence, d.volume, everything_strong,
                   everything_cheap, tuple(options), recommended, more, label, headline, reasons,
                   _assumptions(models, d, cmp.confidence))


def route_stored(task: Task, cheap_run: str, strong_run: str, store: Store, signal_name: str, *,
                 force: bool = False, known: Mapping[str, float | None] | None = None) -> Routing:
    """Route between two stored runs of `task` on the signal named `signal_name` (see signals.py). Refuses
    runs of different golden sets unless `force`, and a signal the cheap run lacks or that reads the reference.
    `known`: the signal's values on the cheap run already computed (signal_values), not scored again."""
    strong, cheap = load_run(strong_run, store), load_run(cheap_run, store)
    d = task.decision
    cmp = compare_runs(strong, cheap, force=force, min_gap=d.min_gap)
    signal = parse_signal(signal_name, task, recorded_metrics(cheap.attrs.get("manifest") or {}, task, cheap_run))
    values = signal_values(signal, task, {s.id: s for s in load_samples(task)}, cheap, known)
    latency = {}
    for role, df, side in (("strong", strong, cmp.a), ("cheap", cheap, cmp.b)):
        profile = latency_profile(store, df)
        latency[role] = run_latency(side) if profile is None else profile_latency(profile, d)[0]
    return route(cmp, strong, cheap, values, signal_name=signal.name, signal_description=signal.description,
                 decision=d, latency=latency, fallback_at=signal.fallback_at)


def _by_id(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out.index = out["example_id"].astype(str)
    return out


def _costs(models: Mapping[str, CostModel | None], routed: float, calls_cheap: bool,
           volume: float | None) -> tuple[float | None, float | None]:
    """(variable cost per call, monthly cost at the volume) of a routing: the cheap model on every call (if it
    is called at all), the strong model on the routed share. None when a model's cost is unknown."""
    cheap, strong = models["cheap"], models["strong"]
    parts = [(cheap, 1.0)] if calls_cheap else []
    parts += [(strong, routed)] if routed > 0 else []
    if any(m is None for m, _ in parts):
        return None, None
    per_call = sum(m.per_call_usd * share for m, share in parts)
    monthly = sum(m.monthly_usd(share * volume) for m, share in parts) if volume else None
    return per_call, monthly


def _recommend(best: Option | None, options: list[Option], strong: Option, d: Decision, confidence: float,
               n: int) -> tuple[str, str, int | None, list[str]]:
    """(label, headline, more examples needed, reasons)."""
    rule = (f"Non-inferior means the {confidence:.0%} CI of (blended - strong) match rate lies above "
            f"-{d.min_gap * 100:g} points (decision.min_gap)")
    reasons = [f"Everything on the strong model: {strong.matches}/{n} matches ({strong.match_rate:.0%}).", rule + "."]
    if best is not None:
        diff = best.vs_strong
        cheaper = (f", {_money(best.monthly_usd)}/month against {_money(strong.monthly_usd)}"
                   if best.monthly_usd is not None and strong.monthly_usd is not None else
                   f", ${best.cost_per_call_usd:.6f} per call against ${strong.cost_per_call_usd:.6f}"
                   if best.cost_per_call_usd is not None and strong.cost_per_call_usd is not None else
                   " (costs unknown: the threshold keeping the most calls on the cheap model is chosen)")
        headline = (f"Keeping {best.kept}/{n} calls on the cheap model gives {best.matches}/{n} matches against "
                    f"{strong.matches}/{n} on the strong model alone: {format_points(diff.estimate)} points "
                    f"({confidence:.0%} CI {format_points(diff.low)} to {format_points(diff.high)}){cheaper}.")
        reasons.append(f"Of the {sum(o.non_inferior and o.kept > 0 for o in options)} non-inferior threshold(s), "
                       "this one costs least.")
        if best.monthly_usd is not None and strong.monthly_usd is not None and best.monthly_usd >= strong.monthly_usd:
            reasons.append("But it costs no less than the strong model alone: the cheap model's calls, made on "
                           "every request, cost more than the strong calls they save.")
        return best.label, headline, None, reasons
    close = [o for o in options if o.kept and o.vs_strong.estimate > -d.min_gap]
    if not close:
        headline = (f"No threshold's observed match rate is within {d.min_gap * 100:g} points of the strong model's, "
                    "so more examples would not make routing safe.")
        return NO_SAFE, headline, None, reasons
    target = min(close, key=lambda o: (_cost(o) if _cost(o) is not None else -o.share_cheap, -o.share_cheap))
    distance = target.vs_strong.estimate + d.min_gap
    needed = mcnemar_sample_size(max(distance, 0.005), target.discordance, 0.8, 1 - confidence)
    more = max(needed, n + 1) - n
    headline = (f"The closest, {target.label} ({format_points(target.vs_strong.estimate)} points, {confidence:.0%} CI "
                f"{format_points(target.vs_strong.low)} to {format_points(target.vs_strong.high)}), is not shown "
                f"non-inferior; about {more:,} more paired examples would settle it.")
    reasons.append(f"The observed difference lies {distance * 100:.1f} points above the margin; telling them apart with "
                   f"80% power takes about {max(needed, n + 1):,} paired examples (Connor 1987, discordance "
                   f"{target.discordance:.0%}); there are {n}.")
    return NO_SAFE, headline, more, reasons


def _assumptions(models: Mapping[str, CostModel | None], d: Decision, confidence: float) -> list[str]:
    out = ["The cheap model answers every call (the signal is read from its answer); a routed call is then "
           "answered by the strong model too, so its cost and latency are both models' together.",
           f"Match-rate CIs: Tango's score interval for paired data at {confidence:.0%}; the blended answer of "
           "each example is one of the two runs' answers, so the pairing with the strong model is exact.",
           "Routed calls are priced at each model's mean cost per call; latency per call is measured, example "
           "by example, in the two runs (a routed call waits for both answers in turn)."]
    out += [m.basis + "." for m in models.values() if m is not None]
    if not d.volume:
        out.append("No decision.volume is set: costs are per call, without fixed monthly costs.")
    return out


def _money(x: float | None) -> str:
    return "-" if x is None else f"${x:,.2f}"
