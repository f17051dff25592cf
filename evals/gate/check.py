"""`evals check`: run a task's model again and judge the new run against the accepted baseline.

Gates, each one a JUnit test case:

- match rate: fail when it dropped by more than `check.margin` AND McNemar's exact paired test finds
  the drop (two-sided p < 1 - confidence); warn when it dropped past the margin without significance,
  with the paired examples that would settle it (Connor's formula at the observed discordance);
- floors: fail when a metric's mean (or the match rate) is below its `check.floors` value;
- provider model version: warn (or fail, or ignore: `check.drift`) when the model version the API
  reported differs from the baseline's;
- provider errors: an error, not a verdict, when more than `check.max_error_rate` of the examples
  failed after retries (the provider is down); fewer count as misses.

Status: error > fail > warn > pass; exit codes 2, 1, 0, 0.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from evals.analyse.compare import Comparison, Estimate, ExampleDiff, compare_runs, json_types
from evals.analyse.rates import format_points, z_scores
from evals.analyse.repeats import attempts, by_example, repeat_stats, within_variance
from evals.analyse.stats import mcnemar_sample_size
from evals.data.golden import load_samples
from evals.data.tasks import load_task
from evals.gate.baseline import ResolvedBaseline, paired_samples, resolve_baseline
from evals.run.cache import ResponseCache
from evals.run.calls import RunOptions
from evals.run.api import Progress, execute, quiet_progress
from evals.run.runner import require_providers
from evals.run.store import Store, load_run
from evals.types import MATCH_RATE, CheckSettings, ModelConfig, Sample, Task, answer_shown

EXIT_CODES = {"pass": 0, "warn": 0, "fail": 1, "error": 2}
SEVERITY = ("pass", "warn", "fail", "error")
# Manifest entries whose change since the baseline is worth naming (the usual reasons quality moves).
WATCHED = {"prompt": "prompt", "params": "generation params", "metrics": "metrics", "pass": "pass rule",
           "model": "model settings", "provider_id": "provider"}


@dataclass(frozen=True)
class Gate:
    name: str
    status: str  # pass, warn, fail, error
    message: str
    value: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class ExampleOutcome:
    """One example of the checked run, beside the baseline's verdict on it."""

    example_id: str
    status: str  # pass, improved, regressed, flaky (changed, but flaky in the baseline), known-miss, error, new
    passed: bool
    baseline_passed: bool | None
    output: str | None
    error: str | None
    latency_s: float | None
    scores: dict[str, float | None]


@dataclass(frozen=True)
class Drift:
    baseline: tuple[str, ...]  # model versions the API reported for the baseline run
    current: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.baseline) and bool(self.current) and set(self.baseline) != set(self.current)


@dataclass
class CheckOutcome:
    task: str
    model: str
    run_id: str
    baseline_run_id: str
    baseline_source: str
    settings: CheckSettings
    status: str
    gates: list[Gate]
    current: Estimate  # match rate with its Wilson CI
    baseline: Estimate
    metrics: dict[str, Estimate]  # the checked run's metric means with bootstrap CIs
    baseline_metrics: dict[str, Estimate]
    match_diff: Estimate  # current - baseline, Tango CI
    mcnemar_p: float
    regressed: tuple[ExampleDiff, ...]  # matched in the baseline, not now (flaky baseline examples apart)
    improved: tuple[ExampleDiff, ...]
    examples: list[ExampleOutcome]
    drift: Drift
    changes: list[str]  # what shaped the run differently from the baseline
    n_to_settle: int | None = None  # paired examples to settle a non-significant drop
    check_id: int | None = None
    notes: list[str] = field(default_factory=list)
    flaky: tuple[ExampleDiff, ...] = ()  # would be regressions, but passed only some attempts in the baseline
    noise_floor: float | None = None  # the match rate's run-to-run spread (95%), from a repeated baseline

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def headline(self) -> str:
        bad = [g for g in self.gates if g.status == self.status]
        if self.status == "pass":
            return "no regression against the baseline"
        return "; ".join(f"{g.name}: {g.message.split(':', 1)[0] if ':' in g.message else g.message}" for g in bad)

    def as_dict(self) -> dict[str, Any]:
        d = json_types(asdict(self))
        d["exit_code"] = self.exit_code
        d["drift"]["changed"] = self.drift.changed
        d["examples"] = [{"example_id": e.example_id, "status": e.status} for e in self.examples]
        return d


def evaluate(baseline_df: pd.DataFrame, current_df: pd.DataFrame, settings: CheckSettings, *,
             baseline_source: str = "") -> CheckOutcome:
    """The check's outcome from the baseline run and the new run (frames from `load_run`)."""
    cmp = compare_runs(baseline_df, current_df, min_gap=max(settings.margin, 0.01), confidence=settings.confidence,
                       power=settings.power)
    run, base_run = current_df.attrs["run"], baseline_df.attrs["run"]
    n = cmp.counts.n
    flaky_ids = set(cmp.a.summary.flaky)
    noise = noise_floor(baseline_df, attempts(current_df), settings.confidence)
    gates = [_error_gate(current_df, run, settings)]
    match_gate, n_to_settle = _match_gate(cmp, settings, noise, sum(d.example_id in flaky_ids for d in cmp.regressed))
    gates.append(match_gate)
    gates += _floor_gates(cmp, settings)
    drift = Drift(_versions(baseline_df), _versions(current_df))
    gates.append(_drift_gate(drift, settings))
    status = max((g.status for g in gates), key=SEVERITY.index)
    b, c = cmp.a.summary, cmp.b.summary
    return CheckOutcome(
        task=str(run.get("task")), model=str(run["model"]), run_id=str(run["id"]),
        baseline_run_id=str(base_run["id"]), baseline_source=baseline_source, settings=settings, status=status,
        gates=gates,
        current=Estimate(c.match_rate, *c.match_ci, c.n, "Wilson"),
        baseline=Estimate(b.match_rate, *b.match_ci, b.n, "Wilson"),
        metrics=cmp.b.metrics, baseline_metrics=cmp.a.metrics,
        match_diff=cmp.match_diff, mcnemar_p=cmp.mcnemar_p,
        regressed=tuple(d for d in cmp.regressed if d.example_id not in flaky_ids), improved=cmp.improved,
        flaky=tuple(d for d in cmp.regressed if d.example_id in flaky_ids), noise_floor=noise,
        examples=_examples(by_example(baseline_df), by_example(current_df), flaky_ids),
        drift=drift, changes=_changes(baseline_df.attrs.get("manifest") or {}, current_df.attrs.get("manifest") or {}),
        n_to_settle=n_to_settle,
        notes=([f"The baseline ran {b.model}; this check ran {c.model}."] if b.model != c.model else [])
        + ([f"{n} examples paired."] if n != c.n else []),
    )



def noise_floor(baseline_df: pd.DataFrame, current_attempts: int, confidence: float) -> float | None:
    """How far two runs of the baseline's model differ in match rate by chance alone (the half-width of their
    difference's interval): from its attempt-to-attempt variance, so only a repeated baseline has one."""
    k = attempts(baseline_df)
    if k < 2:
        return None
    fractions = repeat_stats(baseline_df, int(baseline_df.attrs["run"]["n_samples"])).fractions
    z = z_scores(0.5, 1 - confidence)[0]
    return z * math.sqrt(within_variance(fractions, k) / len(fractions) * (1 / k + 1 / current_attempts))


def _match_gate(cmp: Comparison, s: CheckSettings, noise: float | None = None,
                flaky: int = 0) -> tuple[Gate, int | None]:
    c, d = cmp.counts, cmp.match_diff
    drop = -(d.estimate or 0.0)
    significant = drop > 0 and cmp.mcnemar_p < s.alpha
    facts = (f"{c.both_pass + c.a_only}/{c.n} -> {c.both_pass + c.b_only}/{c.n} matched "
             f"({format_points(d.estimate)} points, {s.confidence:.0%} CI {format_points(d.low)} to {format_points(d.high)}); "
             f"{c.a_only - flaky} regressed" + (f" (and {flaky} flaky in the baseline)" if flaky else "")
             + f", {c.b_only} improved; {cmp.test} p = {cmp.mcnemar_p:.3g}")
    if noise is not None:
        facts += f"; the baseline's run-to-run noise floor is {noise * 100:.1f} points"
    margin = f"{s.margin * 100:g}"
    if drop > s.margin and significant:
        return Gate("match rate", "fail", f"a {drop * 100:.1f}-point drop, past the {margin}-point margin and "
                    f"significant (p < {s.alpha:g}): {facts}", drop, s.margin), None
    if drop > s.margin:
        p = cmp.power
        needed = mcnemar_sample_size(drop, p.discordance, s.power, s.alpha)
        settle = (f"about {needed:,} paired examples would settle whether a drop this size is real "
                  f"({s.power:.0%} power at the observed {p.discordance:.0%} discordance; there are {c.n})"
                  if needed > c.n else
                  f"{c.n} examples usually detect a drop this size ({s.power:.0%} power), but this time the test "
                  "fell short: run the check again to settle it")
        return Gate("match rate", "warn", f"a {drop * 100:.1f}-point drop, past the {margin}-point margin but not "
                    f"significant (p >= {s.alpha:g}); {settle}: {facts}", drop, s.margin), needed
    if drop > 0:
        word = "significant but " if significant else ""
        return Gate("match rate", "pass", f"a {drop * 100:.1f}-point drop, {word}within the {margin}-point margin: "
                    f"{facts}", drop, s.margin), None
    return Gate("match rate", "pass", f"no drop: {facts}", drop, s.margin), None


def _floor_gates(cmp: Comparison, s: CheckSettings) -> list[Gate]:
    gates = []
    for metric, floor in s.floors.items():
        if metric == MATCH_RATE:
            r = cmp.b.summary
            value, shown = r.match_rate, r.matches_text
        else:
            est = cmp.b.metrics.get(metric)
            value = est.estimate if est else None
            shown = "no scores" if value is None else (
                f"{value:.3f} ({cmp.confidence:.0%} CI {est.low:.3f} to {est.high:.3f}, n={est.n})"
                if est.low is not None and est.high is not None else f"{value:.3f} (n={est.n})")
        ok = value is not None and value >= floor
        gates.append(Gate(f"floor {metric}", "pass" if ok else "fail",
                          f"{'at or above' if ok else 'below'} its floor {floor:g}: {shown}", value, floor))
    return gates


def _drift_gate(drift: Drift, s: CheckSettings) -> Gate:
    then, now = ", ".join(drift.baseline) or "none recorded", ", ".join(drift.current) or "none recorded"
    if drift.changed:
        status = {"warn": "warn", "fail": "fail", "ignore": "pass"}[s.drift]
        return Gate("provider model version", status,
                    f"the provider's model changed since the baseline: it answered as {then} then, as {now} now")
    if not drift.baseline or not drift.current:
        return Gate("provider model version", "pass", f"cannot tell: baseline {then}; now {now}")
    return Gate("provider model version", "pass", f"unchanged: {now}")


def _error_gate(df: pd.DataFrame, run: dict[str, Any], s: CheckSettings) -> Gate:
    n = int(run["n_samples"])
    errors = df["error"].dropna()
    missing = n - len(df)
    rate = (len(errors) + missing) / n if n else 0.0
    first = f"; first error: {str(errors.iloc[0])[:300]}" if len(errors) else ""
    if run.get("status") != "completed" or rate > s.max_error_rate:
        why = (f"the run stopped {run.get('status')} with {len(df)}/{n} examples" if run.get("status") != "completed"
               else f"{len(errors) + missing}/{n} examples failed after retries, more than max_error_rate "
                    f"{s.max_error_rate:g}")
        return Gate("provider errors", "error", f"no verdict: {why}{first}", rate, s.max_error_rate)
    if len(errors):
        return Gate("provider errors", "pass", f"{len(errors)}/{n} examples failed after retries; they count as "
                    f"misses{first}", rate, s.max_error_rate)
    return Gate("provider errors", "pass", f"none of {n} examples failed", 0.0, s.max_error_rate)


def _versions(df: pd.DataFrame) -> tuple[str, ...]:
    if "model_version" not in df or not len(df):
        return ()
    return tuple(sorted({str(v) for v in df["model_version"].dropna()}))


def _changes(base: dict[str, Any], now: dict[str, Any]) -> list[str]:
    def same(key: str) -> bool:
        return json.dumps(base.get(key), sort_keys=True, default=str) == json.dumps(now.get(key), sort_keys=True,
                                                                                       default=str)

    out = [f"{label} changed since the baseline" for key, label in WATCHED.items() if not same(key)]
    commit_then, commit_now = ((m.get("git") or {}).get("commit") for m in (base, now))
    if commit_then and commit_now and commit_then != commit_now:
        out.append(f"git commit {commit_then[:10]} -> {commit_now[:10]}")
    for pkg in ("openai", "anthropic", "transformers", "evals"):
        v_then, v_now = ((m.get("versions") or {}).get(pkg) for m in (base, now))
        if v_then != v_now and (v_then or v_now):
            out.append(f"{pkg} package {v_then or '-'} -> {v_now or '-'}")
    return out


def _examples(baseline_df: pd.DataFrame, current_df: pd.DataFrame, flaky: set[str]) -> list[ExampleOutcome]:
    """Per example (one row each; with repeats, a pass means most attempts passed)."""
    base = {str(r.example_id): bool(r.passed >= 0.5) for r in baseline_df.itertuples()}
    score_cols = [c for c in current_df.columns if c.startswith("score.")]
    out = []
    for _, row in current_df.iterrows():
        eid, passed = str(row["example_id"]), bool(row["passed"] >= 0.5)
        before = base.get(eid)
        error = row["error"] if isinstance(row["error"], str) else None
        if error:
            status = "error"
        elif before is None:
            status = "new"
        elif eid in flaky and before != passed:
            status = "flaky"
        else:
            status = {(True, True): "pass", (True, False): "regressed", (False, True): "improved",
                      (False, False): "known-miss"}[(before, passed)]
        latency = row.get("latency_s")
        out.append(ExampleOutcome(
            eid, status, passed, before, _answer(row), error,
            None if latency is None or pd.isna(latency) else float(latency),
            {c.removeprefix("score."): (None if pd.isna(row[c]) else float(row[c])) for c in score_cols}))
    return out


def _answer(row: pd.Series) -> str | None:
    """The answer as the check's report shows it: its text, then its function calls."""
    text = row["output"] if isinstance(row["output"], str) else None
    calls = row.get("tool_calls")
    return answer_shown(text, calls if isinstance(calls, list) else None)


def history_point(outcome: CheckOutcome) -> dict[str, Any]:
    """What history plots: the match rate and metric means with CIs, the baseline's rate, versions, status."""
    return json_types({"status": outcome.status, "run_id": outcome.run_id, "baseline_run_id": outcome.baseline_run_id,
                       "current": asdict(outcome.current), "baseline": asdict(outcome.baseline),
                       "metrics": {k: asdict(v) for k, v in outcome.metrics.items()},
                       "model_versions": list(outcome.drift.current), "drift": outcome.drift.changed})


# ---- planning and running a check ----------------------------------------------------------------


@dataclass(frozen=True)
class CheckPlan:
    task: Task
    config: ModelConfig
    samples: list[Sample]
    baseline: ResolvedBaseline
    notes: tuple[str, ...] = ()


def plan_check(task_name: str, store: Store, *, model: str | None = None, baseline: str | None = None) -> CheckPlan:
    """Load and validate everything a check needs before any model call: task, baseline, samples, model."""
    task = load_task(task_name)
    all_samples = load_samples(task)
    resolved = resolve_baseline(store, task, all_samples, model=model, baseline=baseline)
    samples = paired_samples(all_samples, resolved.run)
    notes = () if len(samples) == len(all_samples) else ((
        f"The golden set now has {len(all_samples)} examples; the baseline ran the first {len(samples)} of "
        f"{len(all_samples)}, and so does this check: accept a full run as the new baseline to check them all."),)
    return CheckPlan(task, task.model_config(resolved.model), samples, resolved, notes)


def run_check(plan: CheckPlan, store: Store, options: RunOptions, *, cache: ResponseCache | None = None,
              progress: Progress = quiet_progress, workers: int = 1) -> CheckOutcome:
    """Run the model on the baseline's examples (over `workers` processes), judge the run, and record the check
    in the store's history."""
    [ran] = execute(plan.task, plan.samples, require_providers([plan.config]), store, options, cache=cache,
                    workers=workers, progress=progress)
    outcome = evaluate(load_run(plan.baseline.run.id, store), load_run(ran.run_id, store), plan.task.check,
                       baseline_source=plan.baseline.source)
    outcome.notes += plan.notes
    outcome.check_id = store.add_check(outcome.task, outcome.model, outcome.run_id, outcome.baseline_run_id,
                                       outcome.status, {**outcome.as_dict(), "point": history_point(outcome)})
    return outcome
