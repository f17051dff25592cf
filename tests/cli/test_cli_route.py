"""`evals route` end to end: a cheap and a strong model behind the stand-in OpenAI server with scripted answers
and log-probabilities, through the official SDK; and the local provider's log-probabilities on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evals.cli import app
from tests.conftest import answer_for, qa_rows
from tests.standin_server import StandinServer, last_user_message

# The cost question: a fine-tune served from an OpenAI-compatible server (self-hosted, 1x L4) and a frontier
# API model, 50 examples. The fine-tune is unsure (log-probability -2) of 15 answers, 10 of them wrong, and
# wrong on 2 it is sure of; the strong model misses 3. Keeping the 35 sure answers (70%) and sending the 15
# unsure ones on to the strong model gives 47/50, as the strong model alone: 46 both, 1 each way, 2 neither.
N = 50
UNSURE = set(range(2, 45, 3))
WRONG_CHEAP = set(range(2, 30, 3)) | {46, 48}
WRONG_STRONG = {5, 40, 48}
SYSTEM = "You label questions and answer with one JSON object. " * 30  # about 300 prompt tokens a call
DECISION = {"min_gap": 0.1, "volume": 1_000_000,
            "self_hosted": {"gpu_hourly_usd": 0.8, "calls_per_hour": 20_000, "hardware": "1x L4",
                            "models": ["openai:cheap"]}}


def question(body: dict) -> int:
    return int(last_user_message(body).split()[-1])


def scripted(body: dict) -> str:
    i = question(body)
    wrong = WRONG_CHEAP if body["model"] == "cheap" else WRONG_STRONG
    return "not json" if i in wrong else answer_for(i)


def confidence(body: dict) -> float:
    return -2.0 if question(body) in UNSURE else -0.1


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def server():
    with StandinServer(scripted, token_logprob=confidence) as s:
        yield s


@pytest.fixture
def folder(make_task, server) -> Path:
    return make_task(rows=qa_rows(N), decision=DECISION, prompt={"system": SYSTEM, "user": "{{ question }}"},
                     models=[{"spec": "openai:cheap", "base_url": server.base_url, "options": {"logprobs": True}},
                             {"spec": "openai:strong", "base_url": server.base_url,
                              "price": {"input_per_mtok": 2.5, "output_per_mtok": 10.0}}])


def test_route_runs_what_the_store_lacks_and_recommends_a_threshold(folder, server, tmp_path) -> None:
    store, html, md = tmp_path / "r.db", tmp_path / "route.html", tmp_path / "route.md"
    result = invoke("route", folder, "--cheap", "openai:cheap", "--strong", "openai:strong", "--signal", "logprob",
                    "--store", store, "--json", "--html", html, "--markdown", md)
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    cheap_asked = [q.body.get("logprobs") for q in server.requests if q.body["model"] == "cheap"]
    strong_asked = [q.body.get("logprobs") for q in server.requests if q.body["model"] == "strong"]
    assert cheap_asked == [True] * N and strong_asked == [None] * N  # logprobs asked of the cheap model only
    assert [t["threshold"] for t in r["thresholds"]] == [-0.1, -2.0]
    keep_sure, keep_all = r["thresholds"]
    assert (keep_sure["kept"], keep_sure["matches"], r["strong"]["matches"], keep_all["matches"]) == (35, 47, 47, 38)
    assert keep_sure["vs_strong"]["estimate"] == 0 and keep_sure["discordance"] == pytest.approx(2 / 50)
    assert keep_sure["non_inferior"] and not keep_all["non_inferior"]
    assert r["recommended"]["threshold"] == -0.1 and r["beats_both"]
    assert "route 70% of calls to the cheap model" in r["label"]
    # no fixed costs or floors: the fine-tune on every call plus the strong model on the 30% routed to it
    assert r["recommended"]["monthly_usd"] == pytest.approx(r["cheap"]["monthly_usd"] + 0.3 * r["strong"]["monthly_usd"])
    assert r["cheap"]["monthly_usd"] == pytest.approx(1_000_000 * 0.8 / (20_000 * 0.7))  # self-hosted, given
    assert "data:image/png;base64," in html.read_text() and "Thresholds" in md.read_text()

    received = server.counts.received
    again = invoke("route", folder, "--cheap", "openai:cheap", "--strong", "openai:strong", "--signal", "logprob",
                   "--store", store)
    assert again.exit_code == 0, again.output
    assert server.counts.received == received  # both runs reused: nothing is called again
    assert "using stored run" in again.stderr and "route 70% of calls to the cheap model" in again.stdout

    decided = invoke("decide", folder, "--baseline", "openai:strong", "--candidate", "openai:cheap", "--store", store)
    assert decided.exit_code == 0, decided.output
    assert "A hybrid beats both options (`evals route --signal logprob`)" in decided.stdout
    assert server.counts.received == received


def test_bad_input_is_one_line_and_calls_nothing(folder, server, make_task, tmp_path) -> None:
    store = tmp_path / "r.db"
    peeking = invoke("route", folder, "--cheap", "openai:cheap", "--strong", "openai:strong", "--signal", "labels_f1",
                     "--store", store)
    assert peeking.exit_code == 2 and "reads the reference" in peeking.stderr and "Traceback" not in peeking.output
    unknown = invoke("route", folder, "--cheap", "openai:cheap", "--strong", "openai:strong", "--signal", "jsonvalid",
                     "--store", store)
    assert unknown.exit_code == 2 and "did you mean 'json_valid'" in unknown.stderr
    assert server.counts.received == 0

    ok = invoke("route", folder, "--cheap", "openai:cheap", "--strong", "openai:strong", "--signal", "json_valid",
                "--store", store, "--json")
    assert ok.exit_code == 0, ok.output
    runs = json.loads(ok.stdout)
    other = make_task(rows=qa_rows(N + 2), decision=DECISION,  # the task folder again, now with 2 more examples
                      models=[{"spec": "openai:strong", "base_url": server.base_url}])
    mixed = invoke("route", other, "--cheap", runs["cheap_run"], "--strong", "openai:strong", "--signal", "json_valid",
                   "--store", store)
    assert mixed.exit_code == 2 and "different golden sets" in mixed.stderr and "--force" in mixed.stderr
    forced = invoke("route", other, "--cheap", runs["cheap_run"], "--strong", "openai:strong", "--signal",
                    "json_valid", "--store", store, "--force", "--json")
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout)["n"] == N
    lacking = invoke("route", folder, "--cheap", runs["strong_run"], "--strong", runs["cheap_run"], "--signal",
                     "logprob", "--store", store)  # the strong model was not asked for log-probabilities
    assert lacking.exit_code == 2 and "has no token log-probabilities" in lacking.stderr


def test_local_log_probabilities_route_the_tiny_model(make_task, tmp_path) -> None:
    pytest.importorskip("torch")
    from tests.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    folder = make_task(rows=qa_rows(6), decision={"min_gap": 0.5},
                       models=[{"spec": f"local:{model}", "max_tokens": 8}, {"spec": "fake:strong"}])
    result = invoke("route", folder, "--cheap", f"local:{model}", "--strong", "fake:strong", "--signal", "logprob",
                    "--store", tmp_path / "t.db", "--json")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    from evals.run.store import load_run

    stored = load_run(r["cheap_run"], tmp_path / "t.db")["mean_logprob"]
    assert stored.notna().all() and (stored < 0).all()  # one real mean log-probability per answer
    assert sorted({t["threshold"] for t in r["thresholds"]}, reverse=True) == sorted(set(stored), reverse=True)


@pytest.mark.parametrize("stream", [False, True])
def test_openai_records_the_mean_log_probability_only_when_asked(server, stream) -> None:
    import asyncio

    from evals.providers import close_provider, create_provider
    from evals.types import GenerateParams, Message, ModelConfig, ModelSpec

    async def ask(options: dict) -> float | None:
        config = ModelConfig(spec=ModelSpec("openai", "cheap"), base_url=server.base_url, stream=stream,
                             options=options)
        provider = create_provider(config)
        try:
            done = await provider.generate([Message("user", "question 2")], GenerateParams(max_tokens=50))
        finally:
            await close_provider(provider)
        assert done.error is None and done.text == "not json"
        return done.mean_logprob

    assert asyncio.run(ask({"logprobs": True})) == pytest.approx(-2.0)
    assert asyncio.run(ask({})) is None and "logprobs" not in server.requests[-1].body
