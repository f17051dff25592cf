"""Instruction rewrites by reflective mutation: gepa drives the search (which candidate to mutate, on which
search-part minibatch, whether a child is kept, the Pareto front on the dev part) and a proposer model writes
each new system prompt from the failures it is shown. gepa's evaluations go through `EvalsAdapter`, whose
evaluate() is Search.score, so every model call is evals' own (cache, concurrency, budget, retries, progress,
stored); the proposer's calls go through the same ModelCalls and its answers are kept in the ledger, so a
resumed search replays gepa's decisions without paying for any of them again.

gepa is synchronous: it runs in a worker thread, and each evaluation or proposal is handed to the event loop
the search runs on and waited for.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from evals.data.prompts import answer_text, render_user
from evals.run.optimize.search import DEV, SEARCH, Candidate, Scored, Search
from evals.run.stop import stopping
from evals.types import Message, Sample

COMPONENT = "system"  # the one text gepa evolves: the system prompt


class StopSearch(Exception):
    """The search's calls, its budget or a signal ended the rewrites; what is stored is kept."""


class EvalsAdapter:
    """gepa's GEPAAdapter over evals: a candidate {"system": text} is the seed prompt with that system text."""

    propose_new_texts = None  # gepa's own reflective proposer, with our proposer model as its reflection LM

    def __init__(self, searcher: Search, seed: Candidate, loop: asyncio.AbstractEventLoop):
        self.searcher, self.seed, self.loop = searcher, seed, loop
        self.dev_ids = {s.id for s in searcher.split.dev}
        self.found: dict[str, Candidate] = {seed.prompt.system: seed}  # system text -> candidate, in order

    def candidate(self, system: str) -> Candidate:
        if system not in self.found:
            n = sum(c.family == "rewrite" for c in self.found.values()) + 1
            self.found[system] = Candidate(f"rewrite-{n}", "rewrite",
                                           dataclasses.replace(self.seed.prompt, system=system),
                                           "system prompt rewritten by the proposer (gepa)")
        return self.found[system]

    def _wait(self, work: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()

    def evaluate(self, batch: list[Sample], candidate: dict[str, str], capture_traces: bool = False) -> Any:
        from gepa import EvaluationBatch

        if stopping():
            raise StopSearch("stopped by a signal")
        chosen = self.candidate(candidate[COMPONENT])
        part = DEV if all(s.id in self.dev_ids for s in batch) else SEARCH
        scored: Scored | None = self._wait(self.searcher.score(chosen, part, batch))
        if scored is None or not scored.complete or self.searcher.models.budget.exhausted:
            raise StopSearch("the search's calls or budget ran out")
        outputs = self.searcher.outputs(scored) if capture_traces else {}
        scores = [1.0 if scored.passed.get(s.id) else 0.0 for s in batch]
        traces = [self._trace(s, outputs.get(s.id, {}), scores[i]) for i, s in enumerate(batch)] \
            if capture_traces else None
        return EvaluationBatch(outputs=[scored.passed.get(s.id) for s in batch], scores=scores, trajectories=traces)

    def _trace(self, sample: Sample, result: Mapping[str, Any], score: float) -> dict[str, Any]:
        explained = "; ".join(f"{m} {(v or {}).get('value')}" + (f" ({v['explanation']})" if v.get("explanation")
                                                                  else "")
                              for m, v in (result.get("explained") or {}).items() if isinstance(v, dict))
        verdict = "Right." if score else f"Wrong. The expected answer: {answer_text(sample.reference)}"
        return {"Inputs": render_user(self.seed.prompt, sample.fields),
                "Generated Outputs": result.get("output") or f"(no answer: {result.get('error')})",
                "Feedback": f"{verdict} Scores: {explained or '-'}"}

    def make_reflective_dataset(self, candidate: dict[str, str], eval_batch: Any,
                                components_to_update: list[str]) -> dict[str, list[dict[str, Any]]]:
        return {c: list(eval_batch.trajectories or []) for c in components_to_update}


class Proposer:
    """The reflection LM gepa calls: the proposer model through evals' calls, each answer kept in the ledger."""

    def __init__(self, searcher: Search, spec: str, loop: asyncio.AbstractEventLoop, say: Callable[[str], None]):
        self.searcher, self.spec, self.loop, self.say = searcher, spec, loop, say

    def __call__(self, prompt: str | list[dict[str, Any]]) -> str:
        text = prompt if isinstance(prompt, str) else "\n\n".join(str(m.get("content", "")) for m in prompt)
        request = f"{self.spec}\n{text}"  # a proposer's answers are its own
        stored = self.searcher.ledger.proposal(request)
        if stored is not None:
            return stored
        left = self.searcher.calls_left()
        if stopping() or (left is not None and left < 1):
            raise StopSearch("the search's calls ran out")
        completion = asyncio.run_coroutine_threadsafe(
            self.searcher.models.generate(self.spec, [Message("user", text)]), self.loop).result()
        if completion.error:
            raise StopSearch(f"the proposer {self.spec} failed: {completion.error}")
        self.searcher.ledger.add_proposal(request, completion.text)
        self.say(f"proposer {self.spec}: a rewrite proposed")
        return completion.text


class _Quiet:
    """gepa's log lines, kept off stdout (the command's output); the progress shows the search instead."""

    def log(self, message: str) -> None:
        pass


def rewrite_calls(n_dev: int) -> int:
    """gepa's metric calls by default: about five rewrites accepted onto the dev part, with their minibatches."""
    return 5 * n_dev + 40


def run_gepa(searcher: Search, seed: Candidate, proposer: str, loop: asyncio.AbstractEventLoop,
             say: Callable[[str], None], max_metric_calls: int, seed_value: int) -> tuple[list[Candidate], str]:
    """gepa's search (in this thread); the rewrites it scored on the whole dev part, and how it ended."""
    import gepa

    adapter = EvalsAdapter(searcher, seed, loop)
    ended = "done"
    try:
        gepa.optimize(seed_candidate={COMPONENT: seed.prompt.system}, trainset=list(searcher.split.search),
                      valset=list(searcher.split.dev), adapter=adapter,
                      reflection_lm=Proposer(searcher, proposer, loop, say), max_metric_calls=max_metric_calls,
                      logger=_Quiet(), seed=seed_value, raise_on_exception=True, display_progress_bar=False,
                      stop_callbacks=[lambda state: stopping() or searcher.models.budget.exhausted])
    except StopSearch as e:
        ended = str(e)
    scored = [c for c in adapter.found.values() if c.family == "rewrite"
              and (s := searcher.stored(c, DEV)) is not None and s.complete]
    return scored, ended


def proposer_unusable(spec: str | None, open_result: Any) -> str | None:
    """Why rewrites are skipped (no --proposer, or it cannot run here), else None."""
    if spec is None:
        return "instruction rewrites: skipped, no --proposer SPEC (a model that writes prompts, e.g. openai:gpt-4o)"
    if isinstance(open_result, str):
        return f"instruction rewrites: skipped, the proposer {spec} {open_result}"
    return None
