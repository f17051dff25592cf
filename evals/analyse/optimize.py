"""`evals optimize`: make the baseline's prompt as good as the training data allows before any verdict.

Search and select on train.jsonl only (split by evals.run.optimize.split; the golden set is not read), write
the winner into task.yaml as `prompts: {optimized: ...}`, and only then score the seed and the winner once each
on the golden set, paired: that pair is the result; the dev figures are selection figures. Every evaluation is
a stored run made through the runner; the same command resumes a killed optimisation without paying again.
Like decide.py, this sits in analyse because it runs models (run stage) and then weighs them (stats here).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from evals.analyse.rates import wilson_interval
from evals.analyse.selection import Row, choose, paired, row_for
from evals.data.golden import load_samples
from evals.data.prompts import prompt_hash
from evals.data.tasks import load_task
from evals.data.variants import write_prompt
from evals.errors import EvalsError
from evals.run.budget import Budget
from evals.run.cache import ResponseCache
from evals.run.calls import RunOptions
from evals.run.manifest import config_to_dict
from evals.run.optimize.candidates import (
    SHOTS,
    bootstrap_candidates,
    random_candidates,
    retrieval_unavailable,
    retrieve_candidates,
    seed_candidate,
)
from evals.run.optimize.ledger import Ledger
from evals.run.optimize.rewrite import proposer_unusable, rewrite_calls, run_gepa
from evals.run.optimize.search import DEV, Candidate, Labelled, Search
from evals.run.optimize.split import split_train
from evals.run.progress import RunProgress
from evals.run.runner import create_runs, execute_run, require_providers, shared_calls
from evals.run.stop import stopping
from evals.run.store import Store
from evals.types import ModelConfig, Task

VARIANT = "optimized"


@dataclasses.dataclass
class Plan:
    """What one `evals optimize` asks for."""

    task: str
    model: str
    max_calls: int | None = None
    proposer: str | None = None
    dev: int | None = None
    seed: int = 0
    shots: tuple[int, ...] = SHOTS
    limit: int | None = None  # golden examples scored at the end (the first N)
    write: bool = True


async def optimize(plan: Plan, store: Store, options: RunOptions, *, cache: ResponseCache | None = None,
                   progress: RunProgress | None = None, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Search, select, write the winner, score seed and winner on the golden set; the report as a dict."""
    started = time.perf_counter()
    task = load_task(plan.task)
    try:
        config = task.model_config(plan.model)
    except ValueError as e:
        raise EvalsError(str(e), field="--model") from None
    seed = seed_candidate(task, config)
    split = split_train(task, plan.seed, plan.dev, seed.prompt)  # refused here, before any model is called
    run_config = dataclasses.replace(config, system=None, prompt=None)  # the search sets the whole prompt
    scope = {"split": split.hash, "seed_prompt": seed.key, "model": config_to_dict(run_config),
             "metrics": [dataclasses.asdict(m) for m in task.metrics], "pass": task.pass_rule}
    settings = {"split": split.describe(), "dev": len(split.dev), "seed": plan.seed, "shots": list(plan.shots),
                "proposer": plan.proposer, "max_calls": plan.max_calls}
    ledger, resumed = Ledger.open(store, task.name, str(config.spec), scope, settings)
    if resumed:
        say(f"resuming optimisation {ledger.id}: stored evaluations are reused, not called again")
    [(_, provider)] = require_providers([run_config])
    base = dataclasses.replace(task, prompt=seed.prompt, prompts={})
    used = ledger.calls_made()
    budget = Budget(options.budget_usd, max_calls=None if plan.max_calls is None else max(0, plan.max_calls - used))
    notes: list[str] = []

    def note(text: str) -> None:
        notes.append(text)
        say(text)

    async with shared_calls(base, split.dev, [(run_config, provider)], store, options, cache, budget, say) as models:
        searcher = Search(base, run_config, provider, store, ledger, models, split, max_calls=plan.max_calls,
                          progress=progress)
        tracker = Tracker(searcher, progress, run_config)
        tracker.planned += 3 * len(plan.shots) if run_config.few_shot else 0  # corrected as the families are built
        if not await tracker.score(seed):
            raise EvalsError(_stopped("the seed could not be scored on the dev part", budget, plan))
        candidates: list[Candidate] = []
        if run_config.few_shot:
            candidates += await bootstrap_candidates(task, seed, searcher, plan.shots, note)
            candidates += random_candidates(task, seed, split.search, plan.shots, plan.seed)
            if (why := retrieval_unavailable()) is None:
                candidates += retrieve_candidates(task, seed, split.search, plan.shots)
            else:
                note(f"retrieved demos: skipped, {why}")
        else:
            note(f"few-shot demos: skipped, {config.spec} runs with few_shot: false in task.yaml")
        tracker.planned = 1 + len(candidates)
        for c in candidates:
            await tracker.score(c)
        why = proposer_unusable(plan.proposer, await models.open(plan.proposer) if plan.proposer else None)
        if why:
            note(why)
        elif not stopping() and not budget.exhausted:
            left = searcher.calls_left()
            cap = rewrite_calls(len(split.dev)) if left is None else min(rewrite_calls(len(split.dev)), left)
            loop = asyncio.get_running_loop()
            rewrites, ended = await asyncio.to_thread(run_gepa, searcher, seed, plan.proposer, loop, note, cap,
                                                      plan.seed)
            note(f"instruction rewrites: {len(rewrites)} scored on dev (gepa: {ended})")
            for c in rewrites:
                tracker.planned += 1
                await tracker.score(c)
        if stopping():
            raise EvalsError(f"interrupted: optimisation {ledger.id} is stored; run the same command to resume")
        capped = budget.max_calls is not None and budget.calls >= budget.max_calls
        if budget.exhausted and not capped:  # money ran out mid-search: nothing is chosen from half a search
            note(_stopped("the search stopped early", budget, plan))
            return {"optimization": ledger.id, "task": task.name, "model": str(config.spec), "resumed": resumed,
                    "split": split.describe(), "settings": settings, "stopped": "budget",
                    "candidates": [r.as_dict() for r in tracker.rows], "notes": notes, "golden": None,
                    "search_calls": ledger.calls_made(), "spent_usd": budget.spent_usd,
                    "search_spent_usd": budget.spent_usd, "wall_s": round(time.perf_counter() - started, 1)}
        if budget.exhausted:
            note(_stopped("the search stopped early", budget, plan))
        if (asked := searcher.stored(seed, "search")) is not None:  # its answers on the search part: bootstrap, gepa
            tracker.rows[0].calls += len(asked.rows)
            tracker.rows[0].spent_usd += sum(r["cost_usd"] or 0.0 for r in asked.rows.values() if not r["cached"])
        winner = choose(tracker.rows)
        chosen = tracker.candidates[winner.name]
        budget.max_calls = None  # the golden pair is not part of the search
        search_calls, search_spent = ledger.calls_made(), budget.spent_usd
        written = None
        if plan.write:
            written = _write_variant(task, chosen, winner, tracker.rows[0], split.describe(), ledger.id)
        golden = await _golden(task, config, seed, chosen, store, ledger, models, provider, options, plan, progress)
    result = {
        "optimization": ledger.id, "task": task.name, "model": str(config.spec), "resumed": resumed,
        "split": split.describe(), "settings": settings, "seed_prompt_hash": seed.key,
        "winner": winner.name, "winner_prompt_hash": golden.pop("winner_prompt_hash"),
        "candidates": [r.as_dict() for r in tracker.rows], "notes": notes, "golden": golden,
        "search_calls": search_calls, "spent_usd": budget.spent_usd, "search_spent_usd": search_spent,
        "wall_s": round(time.perf_counter() - started, 1), "written": written,
        "monthly_added_usd": _monthly(task, winner, tracker.rows[0]), "volume": task.decision.volume,
        "optimized_on": date.today().isoformat(),
    }
    if all(golden[role]["complete"] for role in ("seed", "winner") if role in golden):
        ledger.finish(result)
    else:
        errors = sum(golden[role].get("errors", 0) for role in ("seed", "winner") if role in golden)
        why = f"{errors} provider error(s)" if errors else _stopped("budget", budget, plan)
        note(f"the golden scoring is not complete ({why}); run the same command to finish it: the search and "
             "every stored answer are reused, only what is missing is asked")
    return result


class Tracker:
    """The candidates scored so far on dev, in order, with the progress line after each."""

    def __init__(self, searcher: Search, progress: RunProgress | None, config: ModelConfig):
        self.searcher, self.progress, self.config = searcher, progress, config
        self.rows: list[Row] = []
        self.candidates: dict[str, Candidate] = {}
        self.planned = 1

    async def score(self, candidate: Candidate) -> bool:
        scored = await self.searcher.score(candidate, DEV)
        status = "scored" if scored is not None and scored.complete else (
            "not scored: --max-calls reached" if scored is None else "not scored: stopped (budget or signal)")
        row = row_for(candidate, scored, self.config, status)
        self.rows.append(row)
        self.candidates[candidate.name] = candidate
        if self.progress is not None:
            done = [r for r in self.rows if r.rate is not None]
            best = max(done, key=lambda r: r.rate, default=None)
            left = self.searcher.calls_left()
            self.progress.note(
                f"candidates {len(self.rows)}/{self.planned}: {row.name} dev "
                + (f"{row.matches}/{row.n}" if row.rate is not None else row.status)
                + (f"; best so far {best.name} {best.matches}/{best.n}" if best else "")
                + f"; spent ${self.searcher.models.budget.spent_usd:.4f}"
                + (f", {left} search calls left" if left is not None else ""))
        return scored is not None and scored.complete


def _stopped(what: str, budget: Budget, plan: Plan) -> str:
    if budget.max_calls is not None and budget.calls >= budget.max_calls:
        return f"{what}: --max-calls {plan.max_calls} reached; candidates not scored are listed as such"
    if budget.exhausted:
        return (f"{what}: the budget is spent (${budget.spent_usd:.6f} of ${budget.limit_usd:g}), so nothing is "
                "chosen or written yet; run the same command with a larger --budget to resume (nothing stored is "
                "paid again)")
    return f"{what}: --max-calls {plan.max_calls} leaves too few calls to score it on every dev example"


def _monthly(task: Task, winner: Row, seed: Row) -> float | None:
    """What the winner adds (or saves) per month over the seed at decision.volume, at the task's prices."""
    volume = task.decision.volume
    return None if volume is None else (winner.cost_per_call - seed.cost_per_call) * volume


def _write_variant(task: Task, chosen: Candidate, winner: Row, seed: Row, split: str, optimization: str) -> str:
    kept = "the seed prompt won (nothing beat it beyond the noise)" if chosen.family == "seed" else chosen.note
    comment = (f"evals optimize {optimization}, {date.today().isoformat()}: {winner.name} ({kept}); selected on "
               f"{split}: dev {winner.matches}/{winner.n} vs seed {seed.matches}/{seed.n}. Rewritten by the next "
               "`evals optimize`.")
    write_prompt(task.path, VARIANT, chosen.prompt, comment)
    return f"{task.path}: prompts.{VARIANT}"


async def _golden(task: Task, config: ModelConfig, seed: Candidate, chosen: Candidate, store: Store, ledger: Ledger,
                  models: Any, provider: Any, options: RunOptions, plan: Plan,
                  progress: RunProgress | None) -> dict[str, Any]:
    """The seed and the winner each scored once on the golden set (read only now), paired: the result."""
    now = load_task(str(task.path)) if plan.write else task
    golden = load_samples(now)[: plan.limit]
    plain = dataclasses.replace(config, system=None, prompt=None)
    sides: list[tuple[str, Task, ModelConfig]] = [("seed", dataclasses.replace(now, prompt=seed.prompt, prompts={}),
                                                   plain)]
    if chosen.family != "seed":
        side = (now, dataclasses.replace(plain, prompt=VARIANT)) if plan.write else (
            dataclasses.replace(now, prompt=chosen.prompt, prompts={}), plain)
        sides.append(("winner", *side))
    runs = {}
    for role, side_task, side_config in sides:
        key = prompt_hash(side_task.prompt_for(side_config))
        run_id = ledger.run_for(key, "golden")
        if run_id is None:
            [job] = create_runs(side_task, golden, [(side_config, provider)], store, dataclasses.replace(options,
                                                                                                        repeats=1))
            run_id = job.run_id
            ledger.add_run(key, "golden", run_id)
        runs[role] = (run_id, side_task, side_config, key)
    await asyncio.gather(*(execute_run(task=t, samples=golden, config=c, provider=provider, store=store, run_id=r,
                                       models=models, progress=Labelled(progress, f"{role} on golden")
                                       if progress is not None else None)
                           for role, (r, t, c, _) in runs.items()))
    out: dict[str, Any] = {"n": len(golden), "winner_prompt_hash": runs.get("winner", runs["seed"])[3]}
    passed = {}
    for role, (run_id, *_rest) in runs.items():
        rows = {r["example_id"]: r for r in store.result_rows(run_id)}
        passed[role] = {e: bool(r["passed"]) and not r["error"] for e, r in rows.items()}
        m, n = sum(passed[role].values()), len(passed[role])
        errors = sum(bool(r["error"]) for r in rows.values())
        low, high = wilson_interval(m, n) if n else (None, None)
        out[role] = {"run": run_id, "matches": m, "n": n, "rate": m / n if n else None, "low": low, "high": high,
                     "errors": errors, "complete": n == len(golden) and not errors}  # errors are asked again
    if "winner" in passed:
        out["paired"] = paired(passed["seed"], passed["winner"])
    return out
