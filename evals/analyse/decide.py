"""From stored runs to a verdict: compare two runs under their task's `decision:` settings, and decide a
task by reusing the newest matching run of its baseline and candidate, running only what the store lacks.

A stored run is reused for a model when it completed, ran the same golden set (by content hash) and
was shaped the same way as a new run would be: model settings, prompt, generation params, metrics
and pass rule. Anything else would compare a different experiment.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from evals.analyse.compare import Comparison, compare_runs, run_side
from evals.analyse.provenance import prompt_notes
from evals.analyse.verdict import Verdict, decide
from evals.data.golden import human_labels, load_samples, samples_hash
from evals.data.tasks import load_task
from evals.errors import EvalsError
from evals.run.budget import Budget
from evals.run.cache import ResponseCache
from evals.run.calls import RunOptions
from evals.run.latency import profile_identity
from evals.run.manifest import build_manifest, changed_settings, config_from_dict
from evals.run.progress import RunProgress
from evals.run.resume import resume_run
from evals.run.api import Progress, execute, quiet_progress, run_sync
from evals.run.runner import require_providers
from evals.run.store import LatencyProfile, Store, load_run
from evals.settings import validated
from evals.types import Decision, ModelConfig, ModelSpec, Sample, Task

# Manifest entries that must agree for a stored run to stand in for a new one.
SAME_EXPERIMENT = ("model", "finetuned", "prompt", "params", "metrics", "pass")


def decision_for_run(df: pd.DataFrame) -> tuple[Decision, str]:
    """The decision settings recorded in a run's manifest when it was created, else defaults; and where they
    came from. No task.yaml is read: a stored run's task is never loaded, so nothing of it is imported."""
    manifest = df.attrs.get("manifest") or {}
    run_id = (df.attrs.get("run") or {}).get("id", "?")
    if "decision" not in manifest:
        return Decision(), (f"decision settings: defaults (run {run_id}'s manifest records none: an older evals "
                            "stored it; `evals decide TASK` reads them from task.yaml)")
    try:
        decision = validated(Decision, manifest["decision"], "decision")
    except EvalsError as e:
        return Decision(), f"decision settings: defaults (run {run_id}'s manifest records invalid ones: {e})"
    path = (manifest.get("task") or {}).get("path") or "task.yaml"
    return decision, f"decision settings: {path} (as recorded in run {run_id}'s manifest)"


def compare_stored(run_a: str, run_b: str, store: Store, *, force: bool = False,
                   decision: Decision | None = None) -> tuple[Comparison, Verdict, str]:
    """Baseline run A against candidate run B: the Comparison, the Verdict and where the settings came from."""
    [compared] = compare_with_baseline(run_a, [(run_b, decision)], store, force=force)
    return compared


OUTPUTS = ("output",)  # the only text a comparison shows (the examples that changed)


def compare_with_baseline(run_a: str, candidates: Sequence[tuple[str, Decision | None]], store: Store, *,
                          force: bool = False) -> list[tuple[Comparison, Verdict, str]]:
    """Baseline run A against each candidate run, under its decision settings (None: those recorded in A's
    manifest): each Comparison, Verdict and where its settings came from. A is loaded and summarised once, and its
    latency profile, decision settings and judge warnings are looked up once, however many candidates there are;
    people's labels are read once per file the runs' manifests name."""
    a = load_run(run_a, store, texts=OUTPUTS)
    labels = functools.cache(human_labels)
    a_side, a_profile, a_warnings = run_side(a), latency_profile(store, a), judge_warnings(a, labels)
    recorded = decision_for_run(a)
    out = []
    for run_b, decision in candidates:
        b = load_run(run_b, store, texts=OUTPUTS)
        source = ""
        if decision is None:
            decision, source = recorded
        cmp = compare_runs(a, b, force=force, min_gap=decision.min_gap, a_side=a_side)
        verdict = decide(cmp, decision, profiles={"baseline": a_profile, "candidate": latency_profile(store, b)})
        warnings = [*a_warnings, *judge_warnings(b, labels)]
        if warnings:
            verdict = dataclasses.replace(verdict, reasons=[*verdict.reasons, *(
                f"Warning: {w}, and it decides matches: read its verdicts with care (`evals judge-agreement`)."
                for w in warnings)])
        lines, headline = prompt_notes(store, a, b, decision)
        verdict = dataclasses.replace(verdict, reasons=[*verdict.reasons, *lines], headline=verdict.headline + headline)
        hybrid = next((r for r in store.routes(a.attrs["run"]["id"], b.attrs["run"]["id"]) if r.get("beats_both")),
                      None)
        if hybrid is not None:
            verdict = dataclasses.replace(verdict, reasons=[*verdict.reasons, hybrid_line(hybrid)])
        curve = curve_line(b, cmp.a.summary.match_rate + decision.min_gap)
        if curve is not None:
            verdict = dataclasses.replace(verdict, reasons=[*verdict.reasons, curve[0]], curve=curve[1])
        out.append((cmp, verdict, source))
    return out


def judge_warnings(df: pd.DataFrame, read_labels: Callable[[Path, str, str], list[Sample]] = human_labels) -> list[str]:
    """Judge metrics in the run's pass rule that agree poorly with people (the labels its manifest says where to
    find, read by `read_labels`) or with themselves."""
    from evals.analyse.judge_agreement import agreement, judge_metrics, judge_scale, labels_for

    manifest = df.attrs.get("manifest") or {}
    judged = {m: c for m, c in judge_metrics(manifest).items() if m in (manifest.get("pass") or {})}
    if not judged:
        return []
    where = manifest.get("labels") if isinstance(manifest.get("labels"), dict) else {}  # its task is never loaded
    try:
        samples = read_labels(Path(where["file"]), str(where["id"]), str(where["field"])) if where else []
    except (EvalsError, KeyError, TypeError):
        samples = []
    out = []
    for metric, config in judged.items():
        try:
            labels = labels_for(samples, metric, judge_scale(config), where=str(where.get("file")),
                                field_name=str(where.get("field"))) if samples else {}
        except EvalsError:  # labels off the judge's scale: `evals judge-agreement` says where
            labels = {}
        found = agreement(df, labels, metric, config, require_labels=False)
        out += [f"{w} in run {df.attrs['run']['id']}" for w in found.warnings]
    return out


def curve_line(df: pd.DataFrame, target: float) -> tuple[str, str] | None:
    """What a learning curve of the candidate's task and base model (`evals finetune --curve`, local or
    `--on openai`) says about reaching `target` (the baseline's rate plus min_gap) with more training data, and
    the curve's file; None when the candidate is no fine-tune or there is no such curve."""
    from evals.analyse.learning_curve import find_curve, more_examples_line

    manifest = df.attrs.get("manifest") or {}
    try:
        spec = ModelSpec.parse(str((manifest.get("model") or {}).get("spec")))
    except ValueError:
        return None
    hosted = manifest.get("finetuned") if isinstance(manifest.get("finetuned"), dict) else None
    if (spec.adapter is None and hosted is None) or target > 1:
        return None
    base = f"{spec.provider}:{hosted.get('base') if hosted else spec.model}"  # a hosted fine-tune's base model
    found = find_curve(str((manifest.get("task") or {}).get("name")), base)
    return None if found is None else (more_examples_line(found[1], target, str(found[0].parent)), str(found[0]))


def hybrid_line(routing: dict[str, Any]) -> str:
    """The verdict's line on a stored `evals route` result that beats both single-model options."""
    return (f"A hybrid beats both options (`evals route --signal {routing['signal']}`): {routing['headline']} "
            "The cheap model alone is not non-inferior; the strong model alone costs more.")


def latency_profile(store: Store, df: pd.DataFrame) -> LatencyProfile | None:
    """The newest `evals latency` profile of this run's task and model, measured the same way."""
    manifest = df.attrs.get("manifest") or {}
    try:
        config = config_from_dict(manifest["model"])
    except (KeyError, TypeError, ValueError):
        return None
    return store.latency_profile((manifest.get("task") or {}).get("name", ""), str(config.spec),
                                 profile_identity(config))


def revisit_note(store: Store, task: str, today: date | None = None) -> str | None:
    """When the task's newest `evals decide` verdict is due to be revisited, in words; None if never decided."""
    found = store.latest_decision(task)
    if found is None:
        return None
    today = today or date.today()
    due = date.fromisoformat(found.revisit_on)
    when = (f"is due for revisit by {found.revisit_on} ({(due - today).days} days)" if due > today else
            f"was due for revisit on {found.revisit_on}: run `evals decide {task}` again (prices and models move)")
    return f"decision of {found.decided_on} ('{found.label}') {when}"


def record_decision(store: Store, task: Task, plan_runs: dict[str, str], verdict: Verdict) -> None:
    store.add_decision(task.name, plan_runs["baseline"], plan_runs["candidate"], verdict.label, verdict.decided_on,
                       verdict.revisit_on, verdict.as_dict())


def record_choice(store: Store, plan: DecisionPlan, choice: Any, pairs: Sequence[tuple[str, Any, Verdict]]) -> None:
    """Several candidates decided at once: one record, its candidate runs joined by commas."""
    store.add_decision(plan.task.name, plan.runs["baseline"], ",".join(plan.runs[r] for r in plan.candidates),
                       choice.label, choice.decided_on, choice.revisit_on,
                       {"choice": choice.as_dict(), "verdicts": {role: v.as_dict() for role, _, v in pairs}})


@dataclass
class DecisionPlan:
    """What `evals decide` will compare: each role's model (the baseline, then one or more candidates), and the
    stored run reused for it (if any)."""

    task: Task
    decision: Decision
    samples: list[Sample]
    golden_hash: str
    configs: dict[str, ModelConfig]  # role -> model: "baseline", then "candidate" (or "candidate 1", "candidate 2")
    runs: dict[str, str] = field(default_factory=dict)  # role -> run id, reused or (after running) new
    left_out: dict[str, str] = field(default_factory=dict)  # "candidate 1 openai:ft@x" -> why it cannot run here

    @property
    def missing(self) -> list[str]:
        return [role for role in self.configs if role not in self.runs]

    @property
    def candidates(self) -> list[str]:
        return [role for role in self.configs if role != "baseline"]

    def decision_for(self, role: str) -> Decision:
        """The task's decision settings with this candidate as the one decided on."""
        return self.decision.model_copy(update={"candidate": str(self.configs[role].spec)})


def plan_decision(task_name: str, store: Store, baseline: str | None = None,
                  candidate: str | Sequence[str] | None = None) -> DecisionPlan:
    """Resolve the task's baseline and candidate(s) (flags win over task.yaml) and find reusable runs."""
    task = load_task(task_name)
    decision = task.decision
    named = [candidate] if isinstance(candidate, str) else list(candidate or ()) or list(decision.candidates)
    for role, given in (("baseline", baseline or decision.baseline), ("candidate", named)):
        if not given:
            raise EvalsError(f"no {role} model to decide on: set decision.{role} (a model spec such as "
                             f"openai:gpt-4o-mini) or pass --{role}", file=task.path, field=f"decision.{role}")
    try:
        base = task.model_config(baseline or decision.baseline)
        candidates = [task.model_config(spec) for spec in named]
    except ValueError as e:
        raise EvalsError(str(e)) from None
    left_out = {}
    if len(candidates) > 1:  # one not made yet (a hosted fine-tune to train) is left out; the others are weighed
        unmade = [(i, c, not_made_yet(c)) for i, c in enumerate(candidates, 1)]
        left_out = {f"candidate {i} {c.spec}": why for i, c, why in unmade if why}
        candidates = [c for _, c, why in unmade if not why]
        if not candidates:
            raise EvalsError("no candidate can run here: " + "; ".join(f"{k}: {v}" for k, v in left_out.items()))
    roles = ["candidate"] if len(candidates) == 1 else [f"candidate {i}" for i in range(1, len(candidates) + 1)]
    configs = {"baseline": base, **dict(zip(roles, candidates, strict=True))}
    seen: dict[Any, str] = {}
    for role, config in configs.items():
        if config.spec in seen:
            raise EvalsError(f"{seen[config.spec]} and {role} are the same model ({config.spec})",
                             file=task.path, field="decision")
        seen[config.spec] = role
    samples = load_samples(task)
    golden_hash = samples_hash(samples)
    plan = DecisionPlan(task, decision, samples, golden_hash, configs, left_out=left_out)
    for role, config in configs.items():
        found = newest_matching_run(store, task, config, samples, golden_hash)
        if found:
            plan.runs[role] = found
    return plan


def not_made_yet(config: ModelConfig) -> str | None:
    """Why a candidate that is made, not chosen (a hosted fine-tune not trained yet), cannot run; else None."""
    from evals.errors import MissingCredentials
    from evals.providers.finetuned import hosted_name, load_hosted

    if not hosted_name(config.spec):
        return None
    try:
        load_hosted(config.spec)
    except MissingCredentials as e:
        return e.message
    return None


def newest_matching_run(store: Store, task: Task, config: ModelConfig, samples: Sequence[Sample],
                        golden_hash: str) -> str | None:
    """The newest completed run of `config` on this golden set that a new run would reproduce."""
    wanted = _experiment(build_manifest(task, config, "", golden_hash, len(samples)))
    for record in store.list_runs(task.name, None, model=str(config.spec), completed=True):
        m = record.manifest
        if (m.get("golden") or {}).get("hash") == golden_hash and not changed_settings(_experiment(m), wanted):
            return record.id
    return None


def _experiment(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: manifest.get(k) for k in SAME_EXPERIMENT}


def with_errors(plan: DecisionPlan, store: Store) -> list[str]:
    """The reused runs (role order) that hold provider errors: `decide` retries those examples first."""
    return [run_id for role, run_id in plan.runs.items() if store.get_run(run_id).n_errors]


def run_missing(plan: DecisionPlan, store: Store, options: RunOptions, *, cache: ResponseCache | None = None,
                progress: Progress = quiet_progress, workers: int = 1) -> dict[str, str]:
    """Retry the errored examples of reused runs, then run the roles the store lacks (in parallel, over
    `workers` processes); every role's run id after."""
    budget = Budget(options.budget_usd)  # one --budget for the retries and the new runs together
    retry = with_errors(plan, store)
    if retry:
        async def retry_all(bars: RunProgress) -> None:
            for run_id in retry:  # with the task the user named, never the one a manifest names
                await resume_run(run_id, store, options, cache=cache, progress=bars, budget=budget, task=plan.task)

        with progress() as bars:  # closed before any fork
            run_sync(retry_all(bars))
    roles = plan.missing
    if roles:
        providers = require_providers([plan.configs[r] for r in roles])
        outcomes = execute(plan.task, plan.samples, providers, store, options, cache=cache, workers=workers,
                           budget=budget, progress=progress)
        for role, outcome in zip(roles, outcomes, strict=True):
            if outcome.status != "completed":
                raise EvalsError(f"the {role} run {outcome.run_id} stopped early ({outcome.status}); finish it "
                                 f"with `evals run --resume {outcome.run_id}` and decide again")
            plan.runs[role] = outcome.run_id
    return dict(plan.runs)
