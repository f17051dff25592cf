"""The openai and anthropic providers through the real SDKs, over loopback HTTP to a stand-in server.

Covers what a user relies on: answers with tokens, cost and the model version; retries of 429/5xx/529
and dropped connections by the runner with every example completed exactly once; non-retryable errors
recorded on the example; missing keys skipped with one clear line; the cache; and no key on disk.
Streamed answers: time to first token and decode rate as the server paced them, the same answer as
unstreamed, faults (mid-stream too) retried; prompt-cache tokens recorded and priced at their rates.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evals.cli import app
from evals.data.golden import load_samples
from evals.data.tasks import load_task
from evals.errors import MissingCredentials, ProviderError
from evals.providers._http import retry_after_s
from evals.providers.anthropic import AnthropicProvider
from evals.providers.openai import OpenAIProvider, _token_param
from evals.run.cache import ResponseCache
from evals.run.runner import RunOptions, run_task
from evals.run.store import Store, load_run
from evals._util import decode_rate
from evals.types import GenerateParams, Message, ModelConfig, ModelSpec, Price
from tests.conftest import answer_for, qa_rows
from tests.standin_server import (
    ANTHROPIC_MODEL,
    OPENAI_MODEL,
    Fault,
    StandinProcess,
    StandinServer,
    fixed,
    last_user_message,
)

openai_provider, anthropic_provider = OpenAIProvider.from_config, AnthropicProvider.from_config
FAST = RunOptions(backoff_s=0.001, max_backoff_s=0.01, timeout_s=5)
FACTORIES = {"openai": openai_provider, "anthropic": anthropic_provider}
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}
CHAT = [Message("system", "Answer with JSON."), Message("user", "question 7 please")]
SECRET = "sk-test-DO-NOT-STORE-5f3a9c0e2b7d4e61"


def qa_answer(body: dict[str, Any]) -> str:
    """The right answer to the conftest QA task's "question <i>", so every example passes."""
    prompt = last_user_message(body)
    match = re.fullmatch(r"question (\d+)", prompt)
    return answer_for(int(match.group(1))) if match else prompt


@pytest.fixture
def server():
    with StandinServer(qa_answer) as s:
        yield s


def config_for(provider: str, server: StandinServer, **kw: Any) -> ModelConfig:
    spec = ModelSpec(provider, MODELS[provider])
    return ModelConfig(spec=spec, base_url=server.base_url_for(provider), **kw)


def setup_run(make_task, server: StandinServer, provider: str, n: int, **model_options: Any):
    """A QA task whose only model is `provider` at the stand-in server, its samples, config and provider."""
    model = {"spec": f"{provider}:{MODELS[provider]}", "base_url": server.base_url_for(provider), **model_options}
    task = load_task(str(make_task(rows=qa_rows(n), models=[model])))
    config = task.models[0]
    return task, load_samples(task), config, FACTORIES[provider](config)


def expected_prompts(n: int) -> dict[str, int]:
    return {f"question {i}": 1 for i in range(n)}


# ---- (a) one call: text, tokens, cost, model version, latency, the request on the wire ----------


async def test_openai_answer_tokens_cost_and_model_version(server) -> None:
    server.latency = 0.05
    provider = openai_provider(config_for("openai", server))
    assert provider.id == "openai:gpt-4o-mini" and provider.max_concurrency == 16
    c = await provider.generate(CHAT, GenerateParams(max_tokens=64))
    await provider.aclose()
    assert c.text == "question 7 please" and c.error is None
    assert (c.input_tokens, c.output_tokens) == (6, 3)  # the server's usage, not a local guess
    assert c.cost_usd == pytest.approx(Price(0.15, 0.60).cost(6, 3)) and c.cost_usd > 0
    assert c.model_version == OPENAI_MODEL and c.finish_reason == "stop"
    assert 0.05 <= c.latency_s < 2
    [req] = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.body == {"model": "gpt-4o-mini", "temperature": 0.0, "max_tokens": 64,
                        "messages": [{"role": "system", "content": "Answer with JSON."},
                                     {"role": "user", "content": "question 7 please"}]}
    assert req.headers["authorization"] == "Bearer not-needed"  # custom base_url: no key needed


async def test_openai_sends_optional_params_only_when_set_and_the_real_key(server, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    provider = openai_provider(config_for("openai", server, concurrency=4,
                                          options={"max_tokens_param": "max_completion_tokens"}))
    assert provider.max_concurrency == 4
    params = GenerateParams(temperature=0.5, max_tokens=10, top_p=0.9, stop=("\n",), seed=3)
    await provider.generate(CHAT, params)
    await provider.aclose()
    [req] = server.requests
    assert {k: v for k, v in req.body.items() if k != "messages"} == {
        "model": "gpt-4o-mini", "temperature": 0.5, "max_completion_tokens": 10, "top_p": 0.9, "stop": ["\n"],
        "seed": 3}
    assert req.headers["authorization"] == f"Bearer {SECRET}"


async def test_openai_request_is_what_the_sdk_create_method_sends(server, monkeypatch) -> None:
    """The provider posts through the SDK's low-level `post` (for speed); the wire request must equal the
    one `chat.completions.create` builds for the same call."""
    import openai

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    params = GenerateParams(temperature=0.2, max_tokens=32, top_p=0.5, stop=("END",), seed=1)
    provider = openai_provider(config_for("openai", server))
    c = await provider.generate(CHAT, params)
    await provider.aclose()
    async with openai.AsyncOpenAI(base_url=server.base_url, max_retries=0) as client:
        response = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": m.role, "content": m.content} for m in CHAT],
            temperature=0.2, max_tokens=32, top_p=0.5, stop=["END"], seed=1)
    ours, sdk = server.requests
    assert ours.body == sdk.body
    same = ("authorization", "content-type", "accept", "user-agent", "openai-organization", "openai-project")
    assert {h: ours.headers.get(h) for h in same} == {h: sdk.headers.get(h) for h in same}
    assert (c.text, c.model_version, c.finish_reason) == (response.choices[0].message.content, response.model,
                                                          response.choices[0].finish_reason)


def test_max_tokens_parameter_follows_the_server() -> None:
    def spec(**kw: Any) -> ModelConfig:
        return ModelConfig(spec=ModelSpec("openai", "gpt-5-mini"), **kw)

    assert _token_param(spec(), None) == "max_completion_tokens"  # api.openai.com: max_tokens is deprecated
    assert _token_param(spec(), "https://api.openai.com/v1") == "max_completion_tokens"
    assert _token_param(spec(), "http://localhost:11434/v1") == "max_tokens"  # vLLM, Ollama, TGI, llama.cpp
    assert _token_param(spec(options={"max_tokens_param": "max_tokens"}), None) == "max_tokens"
    with pytest.raises(Exception, match="max_tokens_param must be one of"):
        _token_param(spec(options={"max_tokens_param": "tokens"}), None)


async def test_anthropic_system_prompt_goes_to_system(server) -> None:
    server.latency = 0.05
    provider = anthropic_provider(config_for("anthropic", server))
    assert provider.id == "anthropic:claude-haiku-4-5"
    c = await provider.generate(CHAT, GenerateParams(max_tokens=64, stop=("END",)))
    await provider.aclose()
    assert c.text == "question 7 please" and (c.input_tokens, c.output_tokens) == (6, 3)
    assert c.cost_usd == pytest.approx(Price(1.00, 5.00).cost(6, 3)) and c.cost_usd > 0
    assert c.model_version == ANTHROPIC_MODEL and c.finish_reason == "end_turn"
    assert 0.05 <= c.latency_s < 2
    [req] = server.requests
    assert req.path == "/v1/messages"
    assert req.body["system"] == "Answer with JSON."
    assert req.body["messages"] == [{"role": "user", "content": "question 7 please"}]
    assert req.body["max_tokens"] == 64 and req.body["stop_sequences"] == ["END"]
    # SDK 2.x sends the key as a bearer token; older ones used x-api-key
    bearer = req.headers.get("authorization", "").removeprefix("Bearer ")
    assert "not-needed" in (req.headers.get("x-api-key"), bearer)
    assert "anthropic-version" in req.headers


async def test_close_closes_the_sdk_client(server) -> None:
    for name, factory in FACTORIES.items():
        provider = factory(config_for(name, server))
        await provider.aclose()
        assert provider._client.is_closed()


# ---- retry-after parsing and error mapping ------------------------------------------------------


def test_retry_after_header_forms() -> None:
    assert retry_after_s({"retry-after": "2"}) == 2.0
    assert retry_after_s({"retry-after": "0.5"}) == 0.5
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25  # the precise one wins
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= retry_after_s({"retry-after": soon}) <= 30
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert retry_after_s({"retry-after": past}) == 0.0
    assert retry_after_s({"retry-after": "soon"}) is None and retry_after_s({}) is None


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize(("fault", "retryable", "retry_after", "text"), [
    (Fault.rate_limit("1.5"), True, 1.5, "HTTP 429 RateLimitError: rate limit reached"),
    (Fault.rate_limit(None, "40"), True, 0.04, "HTTP 429"),
    (Fault(500), True, None, "HTTP 500"),
    (Fault(503), True, None, "HTTP 503"),
    (Fault(529), True, None, "HTTP 529"),
    (Fault.drop(), True, None, "APIConnectionError"),
    (Fault.rate_limit("3600"), False, None, "the server asks to wait 3600s; not retried"),
    (Fault(401), False, None, "HTTP 401 AuthenticationError"),
    (Fault(400), False, None, "HTTP 400 BadRequestError: injected fault"),
    (Fault(404), False, None, "HTTP 404"),
])
async def test_sdk_errors_become_provider_errors(server, provider, fault, retryable, retry_after,
                                                 text) -> None:
    p = FACTORIES[provider](config_for(provider, server))
    server.inject(fault)
    with pytest.raises(ProviderError) as caught:
        await p.generate(CHAT, GenerateParams())
    await p.aclose()
    assert caught.value.retryable is retryable and text in str(caught.value)
    if retry_after is None:
        assert caught.value.retry_after is None
    else:
        assert caught.value.retry_after == pytest.approx(retry_after)
    assert server.counts.received == 1  # the SDK itself never retried


# ---- (b) the runner under injected faults -------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_runner_completes_every_example_once_through_faults(make_task, tmp_path, server,
                                                                   provider, stream) -> None:
    n = 20
    task, samples, config, p = setup_run(make_task, server, provider, n, stream=stream)
    assert config.stream == p.stream == stream
    faults = [Fault.rate_limit("0.02"), Fault(500), Fault(503), Fault.drop(), Fault.rate_limit(None, "10"),
              Fault(529), Fault.drop(), Fault(500)]
    if stream:  # also failures after the 200, inside the stream: an error event, a dropped connection
        faults += [Fault(529, mid_stream=True), Fault(None, mid_stream=True), Fault(503, mid_stream=True)]
    server.inject(*faults)
    store = Store(tmp_path / "s.db")
    [outcome] = await run_task(task, samples, [(config, p)], store, FAST)
    df = load_run(outcome.run_id, store)
    assert server.pending_faults == 0 and server.counts.received == n + len(faults)
    assert server.counts.completed_by_prompt == expected_prompts(n)  # each answered exactly once
    assert len(df) == n and df["error"].isna().all() and df["passed"].all()
    assert outcome.status == "completed" and store.get_run(outcome.run_id).status == "completed"
    model = OPENAI_MODEL if provider == "openai" else ANTHROPIC_MODEL
    assert (df["model_version"] == model).all() and (df["cost_usd"] > 0).all()
    assert all(r.body.get("stream", False) is stream for r in server.requests)
    assert df["ttft_s"].notna().all() if stream else df["ttft_s"].isna().all()
    if provider == "anthropic":
        assert {r.body["system"] for r in server.requests} == {"Answer with JSON."}


async def test_runner_waits_for_retry_after(make_task, tmp_path, server) -> None:
    task, samples, config, p = setup_run(make_task, server, "openai", 1)
    server.inject(Fault.rate_limit("0.4"))
    start = time.perf_counter()
    [outcome] = await run_task(task, samples, [(config, p)], Store(tmp_path / "s.db"), FAST)
    assert time.perf_counter() - start >= 0.4  # FAST backoff alone would be ~1 ms
    assert (outcome.done, outcome.errors) == (1, 0) and server.counts.received == 2


# ---- (c) non-retryable errors are data, not exceptions, and are not retried ---------------------


@pytest.mark.parametrize(("provider", "fault", "code"), [("openai", Fault(401), "401"),
                                                        ("anthropic", Fault(400), "400")])
async def test_non_retryable_error_is_recorded_once(make_task, tmp_path, server, provider, fault,
                                                    code) -> None:
    n = 6
    task, samples, config, p = setup_run(make_task, server, provider, n)
    server.inject(fault)
    store = Store(tmp_path / "s.db")
    [outcome] = await run_task(task, samples, [(config, p)], store, FAST)
    df = load_run(outcome.run_id, store)
    assert server.counts.received == n  # the failed example was not retried
    [error] = df["error"].dropna().tolist()
    assert error.startswith(f"HTTP {code} ")
    assert sum(server.counts.completed_by_prompt.values()) == n - 1 and df["passed"].sum() == n - 1
    assert outcome.status == "completed"


# ---- (d) missing credentials --------------------------------------------------------------------


def test_missing_key_raises_missing_credentials() -> None:
    with pytest.raises(MissingCredentials, match="OPENAI_API_KEY is not set"):
        openai_provider(ModelConfig(spec=ModelSpec("openai", "gpt-4o-mini")))
    with pytest.raises(MissingCredentials, match="ANTHROPIC_API_KEY is not set"):
        anthropic_provider(ModelConfig(spec=ModelSpec("anthropic", "claude-haiku-4-5")))


async def test_base_url_from_the_environment_needs_no_key(server, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
    for name, factory in FACTORIES.items():
        p = factory(ModelConfig(spec=ModelSpec(name, MODELS[name])))
        assert (await p.generate(CHAT, GenerateParams())).text == "question 7 please"
        await p.aclose()
    assert server.counts.completed == 2


def _cli_run(make_task, tmp_path, models: list[str]):
    folder = make_task(models=models)
    db = tmp_path / "cli.db"
    result = CliRunner().invoke(app, ["run", str(folder), "--store", str(db), "--no-progress", "--no-cache"])
    return result, Store(db)


def test_cli_skips_models_without_keys_and_runs_the_rest(make_task, tmp_path) -> None:
    result, store = _cli_run(make_task, tmp_path, ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5",
                                                   "fake:scripted"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and result.exception is None
    assert result.stderr.count("skipped openai:gpt-4o-mini: OPENAI_API_KEY is not set") == 1
    assert result.stderr.count("skipped anthropic:claude-haiku-4-5: ANTHROPIC_API_KEY is not set") == 1
    [run] = store.list_runs()
    assert (run.model, run.status, run.n_done) == ("fake:scripted", "completed", 6)


def test_cli_falls_back_to_the_default_model_when_no_model_can_run(make_task, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("evals.run.runner.DEFAULT_MODEL", "fake:echo")  # stands in for the embedded local model
    result, store = _cli_run(make_task, tmp_path, ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert [line.split(":")[0] for line in result.stderr.splitlines() if line.startswith("skipped")] == [
        "skipped openai", "skipped anthropic"]
    assert "running the embedded default fake:echo" in result.stderr
    [run] = store.list_runs()
    assert (run.model, run.status, run.n_done) == ("fake:echo", "completed", 6)


# ---- (e) the response cache ---------------------------------------------------------------------


async def test_second_identical_run_makes_no_http_calls(make_task, tmp_path, server) -> None:
    n = 6
    task, samples, config, p = setup_run(make_task, server, "openai", n)
    cache, store = ResponseCache(tmp_path / "cache.db"), Store(tmp_path / "s.db")
    [first] = await run_task(task, samples, [(config, p)], store, FAST, cache=cache)
    assert server.counts.received == n
    [second] = await run_task(task, samples, [(config, openai_provider(config))], store, FAST, cache=cache)
    assert server.counts.received == n  # nothing new reached the server
    df = load_run(second.run_id, store)
    assert df["cached"].all() and df["passed"].all()
    assert df["output"].tolist() == load_run(first.run_id, store)["output"].tolist()


# ---- (f) no secret on disk ----------------------------------------------------------------------


def _db_bytes(path: Path) -> bytes:
    """A SQLite file with its WAL and shared-memory companions: everything that could hold a row."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


async def test_api_key_is_never_written_to_store_or_cache(make_task, tmp_path, server, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    n = 6
    task, samples, config, p = setup_run(make_task, server, "openai", n)
    server.inject(Fault(401, echo_key=True))  # a server that echoes the key back in its error message
    store_path, cache_path = tmp_path / "store" / "s.db", tmp_path / "cache" / "c.db"
    store, cache = Store(store_path), ResponseCache(cache_path)
    [outcome] = await run_task(task, samples, [(config, p)], store, FAST, cache=cache)
    # the key was really in play
    assert all(r.headers["authorization"] == f"Bearer {SECRET}" for r in server.requests)
    [error] = load_run(outcome.run_id, store)["error"].dropna().tolist()
    assert "Incorrect API key provided: ***" in error
    assert len(load_run(outcome.run_id, store)) == n
    for path in (store_path, cache_path):
        data = _db_bytes(path)
        assert len(data) > 0 and SECRET.encode() not in data and SECRET[8:].encode() not in data


# ---- (g) streaming: time to first token, decode rate, the same answer ---------------------------

TEN_WORDS = '{"labels": ["l1"], "why": "the question names label one and only"}'  # 10 words: 10 tokens
FIRST_TOKEN_DELAY, TOKEN_DELAY = 0.15, 0.03


@pytest.fixture
def paced():
    """A server that streams ten words: the first after 150 ms, then one every 30 ms."""
    with StandinServer(fixed(TEN_WORDS), first_token_delay=FIRST_TOKEN_DELAY, token_delay=TOKEN_DELAY) as s:
        yield s


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_streamed_ttft_and_decode_rate_match_the_server(paced, provider) -> None:
    p = FACTORIES[provider](config_for(provider, paced, stream=True))
    assert p.stream is True
    await p.generate(CHAT, GenerateParams())  # opens the connection, so its setup is not timed below
    c = await p.generate(CHAT, GenerateParams())
    await p.aclose()
    assert c.error is None and c.output_tokens == 10 and c.ttft_s is not None
    assert c.ttft_s == pytest.approx(FIRST_TOKEN_DELAY, rel=0.2)
    assert decode_rate(c.output_tokens, c.latency_s, c.ttft_s) == pytest.approx(1 / TOKEN_DELAY, rel=0.2)
    assert c.latency_s == pytest.approx(FIRST_TOKEN_DELAY + 9 * TOKEN_DELAY, rel=0.2)
    assert all(r.body["stream"] is True for r in paced.requests)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_streamed_answer_equals_the_unstreamed_one(paced, provider) -> None:
    p = FACTORIES[provider](config_for(provider, paced))
    assert p.stream is False
    plain = await p.generate(CHAT, GenerateParams(max_tokens=64))
    p.stream = True  # as `evals latency` does
    streamed = await p.generate(CHAT, GenerateParams(max_tokens=64))
    await p.aclose()
    fields = ("text", "input_tokens", "output_tokens", "cost_usd", "model_version", "finish_reason", "error")
    assert {f: getattr(streamed, f) for f in fields} == {f: getattr(plain, f) for f in fields}
    assert plain.text == TEN_WORDS and plain.output_tokens == 10 and plain.input_tokens == 6
    assert plain.ttft_s is None and streamed.ttft_s is not None and 0 < streamed.ttft_s < streamed.latency_s
    first, second = paced.requests
    assert "stream" not in first.body
    extra = {"stream": True, "stream_options": {"include_usage": True}} if provider == "openai" else {
        "stream": True}
    assert second.body == {**first.body, **extra}


async def test_openai_streamed_request_is_what_the_sdk_create_method_sends(server) -> None:
    import openai

    params = GenerateParams(temperature=0.2, max_tokens=32, stop=("END",))
    provider = openai_provider(config_for("openai", server, stream=True))
    c = await provider.generate(CHAT, params)
    await provider.aclose()
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key="not-needed", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": m.role, "content": m.content} for m in CHAT],
            temperature=0.2, max_tokens=32, stop=["END"], stream=True, stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    ours, sdk = server.requests
    assert ours.body == sdk.body
    same = ("authorization", "content-type", "accept", "user-agent")
    assert {h: ours.headers.get(h) for h in same} == {h: sdk.headers.get(h) for h in same}
    assert c.text == "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert (c.input_tokens, c.output_tokens) == (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize(("fault", "retryable", "text"), [
    (Fault(529, mid_stream=True), True, "mid-stream (overloaded_error): injected fault"),
    (Fault(500, mid_stream=True), True, "mid-stream (api_error)"),
    (Fault(None, mid_stream=True), True, "APIConnectionError"),
    (Fault(400, mid_stream=True), False, "mid-stream (invalid_request_error)"),
    (Fault.rate_limit("0.5"), True, "HTTP 429"),  # before the stream began: as unstreamed
])
async def test_stream_errors_become_provider_errors(server, provider, fault, retryable, text) -> None:
    p = FACTORIES[provider](config_for(provider, server, stream=True))
    server.inject(fault)
    with pytest.raises(ProviderError) as caught:
        await p.generate(CHAT, GenerateParams())
    assert caught.value.retryable is retryable and text in str(caught.value)
    assert (await p.generate(CHAT, GenerateParams())).text == "question 7 please"  # the connection pool is fine
    await p.aclose()
    assert server.counts.received == 2 and server.counts.completed == 1


# ---- (h) prompt caching: tokens recorded, priced at the cached rates ------------------------------

RATES = Price(input_per_mtok=1.00, output_per_mtok=2.00, cached_input_per_mtok=0.10, cache_write_per_mtok=1.25)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("provider", "cached", "written", "usd"), [
    # CHAT: 6 prompt words; the answer echoes 3. OpenAI: 3 read from the cache, 3 fresh (no writes billed)
    ("openai", 3, 0, (3 * 1.00 + 3 * 0.10 + 3 * 2.00) / 1e6),
    # Anthropic: 3 read, 2 written, 1 fresh
    ("anthropic", 3, 2, (1 * 1.00 + 3 * 0.10 + 2 * 1.25 + 3 * 2.00) / 1e6),
])
async def test_prompt_cache_tokens_are_recorded_and_priced(provider, cached, written, usd, stream) -> None:
    with StandinServer(cached_prompt_tokens=3, cache_write_tokens=2) as s:
        p = FACTORIES[provider](config_for(provider, s, price=RATES, stream=stream))
        c = await p.generate(CHAT, GenerateParams())
        await p.aclose()
    assert (c.input_tokens, c.cached_input_tokens, c.cache_write_tokens, c.output_tokens) == (6, cached, written, 3)
    assert c.cost_usd == pytest.approx(usd)
    assert c.cost_usd == pytest.approx(RATES.cost(6, 3, cached, written))


async def test_standin_reports_prompt_cache_usage_as_each_api_does() -> None:
    """OpenAI's prompt_tokens includes the cached ones; Anthropic's input_tokens excludes reads and writes.
    Both are capped at the prompt."""
    import anthropic
    import openai

    messages = [{"role": "user", "content": "one two three four five six"}]
    with StandinServer(cached_prompt_tokens=4, cache_write_tokens=5) as s:
        async with openai.AsyncOpenAI(base_url=s.base_url, api_key="x", max_retries=0) as client:
            o = (await client.chat.completions.create(model="m", messages=messages)).usage
        async with anthropic.AsyncAnthropic(base_url=s.anthropic_base_url, api_key="x", max_retries=0) as client:
            a = (await client.messages.create(model="m", max_tokens=8, messages=messages)).usage
    assert (o.prompt_tokens, o.prompt_tokens_details.cached_tokens) == (6, 4)
    assert (a.input_tokens, a.cache_read_input_tokens, a.cache_creation_input_tokens) == (0, 4, 2)


# ---- the stand-in itself ------------------------------------------------------------------------


async def test_standin_serves_many_concurrent_connections(server) -> None:
    """50 requests in flight at once finish in about one latency, not fifty."""
    server.latency = 0.2
    p = openai_provider(config_for("openai", server, concurrency=50))
    start = time.perf_counter()
    results = await asyncio.gather(*(p.generate([Message("user", f"question {i}")], GenerateParams())
                                     for i in range(50)))
    elapsed = time.perf_counter() - start
    await p.aclose()
    assert [json.loads(c.text) for c in results] == [json.loads(answer_for(i)) for i in range(50)]
    assert elapsed < 1.0 and server.counts.completed == 50


async def test_standin_in_another_process_is_driven_over_http() -> None:
    """The benchmark's setup: faults and counters cross the process boundary."""
    with StandinProcess(fixed("pong")) as remote:
        p = openai_provider(ModelConfig(spec=ModelSpec("openai", "gpt-4o-mini"), base_url=remote.base_url))
        remote.inject(Fault(503))
        with pytest.raises(ProviderError, match="HTTP 503"):
            await p.generate(CHAT, GenerateParams())
        assert (await p.generate(CHAT, GenerateParams())).text == "pong"
        await p.aclose()
        stats = remote.stats()
    assert (stats["received"], stats["completed"], stats["pending_faults"]) == (2, 1, 0)
    assert stats["completed_by_prompt"] == {"question 7 please": 1}


async def test_standin_process_streams_and_reports_cache_usage() -> None:
    """The streaming and prompt-cache options reach the server in the child process; faults mid-stream too."""
    with StandinProcess(fixed("a b c"), first_token_delay=0.1, cached_prompt_tokens=2) as remote:
        p = openai_provider(ModelConfig(spec=ModelSpec("openai", "gpt-4o-mini"), base_url=remote.base_url,
                                        stream=True))
        remote.inject(Fault(None, mid_stream=True))
        with pytest.raises(ProviderError, match="APIConnectionError"):
            await p.generate(CHAT, GenerateParams())
        c = await p.generate(CHAT, GenerateParams())
        await p.aclose()
        stats = remote.stats()
    assert c.text == "a b c" and c.ttft_s is not None and c.ttft_s >= 0.1 and c.cached_input_tokens == 2
    assert (stats["received"], stats["completed"], stats["pending_faults"]) == (2, 1, 0)
