"""LLM judges: verdict parsing (malformed output is an error with the reason, never a crash), pairwise order
swapping cancelling a position-biased judge, and judge calls going through the runner: cached, retried,
budgeted and counted in the run's summary, also through the real openai SDK against the stand-in server."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import pytest
from typer.testing import CliRunner

from evals.cli import app
from evals.data.golden import load_samples
from evals.data.tasks import load_task
from evals.errors import ProviderError
from evals.metrics import metrics, score_all
from evals.providers import create_provider
from evals.providers.fake import FakeProvider
from evals.run.budget import Budget
from evals.run.cache import ResponseCache
from evals.run.runner import ModelCalls, RunOptions, run_task
from evals.run.scoring import StoredAnswers
from evals.run.store import Store, load_run
from evals.types import Completion, GenerateParams, Message, Sample, ScoreContext
from tests.standin_server import StandinServer, last_user_message

FAST = RunOptions(backoff_s=0.001, max_backoff_s=0.01, timeout_s=5)
RUBRIC = "5: names every change in the reference; 1: names none."


def judge_calls(judge, *, cache: ResponseCache | None = None, budget: Budget | None = None) -> ModelCalls:
    """The runner's model caller with `judge` as the provider of every spec it is given."""
    return ModelCalls(None, FAST, budget or Budget(), cache, {"fake:judge": judge, "fake:other": judge})


def ctx(answer: str, models: ModelCalls | None, reference: str = "Adds dark mode; fixes login crash.",
        example: str = "x", **more: Any) -> ScoreContext:
    return ScoreContext(sample=Sample(example, {"notes": "..."}, reference), completion=Completion(text=answer),
                        models=models, **more)


def verdict(score: Any, reasoning: str = "Mentions both changes.") -> str:
    return json.dumps({"reasoning": reasoning, "score": score})


# --- rubric judge ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "value"),
    [
        (verdict(4), 0.75),
        (verdict(1), 0.0),
        (verdict(5), 1.0),
        ("```json\n" + verdict(3) + "\n```", 0.5),
        ("Here is my verdict:\n" + verdict(2) + "\nThanks!", 0.25),  # prose around one JSON object
    ],
)
async def test_rubric_judge_normalises_the_1_to_5_score_and_keeps_the_reasoning(reply, value) -> None:
    judge = FakeProvider("judge")
    judge.enqueue(reply)
    result = await metrics.create("rubric_judge", rubric=RUBRIC, judge="fake:judge")(ctx("dark mode", judge_calls(judge)))
    assert result.error is None and result.value == value
    assert result.explanation == "Mentions both changes." and result.details["reasoning"] == result.explanation
    assert result.details["score"] == value * 4 + 1
    prompt = judge.history[0][-1].content
    for part in (RUBRIC, "dark mode", "Adds dark mode; fixes login crash.", '"notes": "..."'):
        assert part in prompt  # the rubric, the answer, the reference and the input


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("I think it deserves a 4.", "no JSON object"),
        (verdict(7), "7 is greater than the maximum of 5"),
        (verdict(0), "0 is less than the minimum of 1"),
        (verdict("four"), "'four' is not of type 'integer'"),
        (json.dumps({"score": 4}), "'reasoning' is a required property"),
        ('{"reasoning": "ok", "score": 4', "no JSON object"),  # truncated
        ("", "no JSON object"),
    ],
)
async def test_malformed_verdicts_are_errors_with_the_reason(reply, reason) -> None:
    judge = FakeProvider("judge")
    judge.enqueue(reply)
    metric = metrics.create("rubric_judge", rubric=RUBRIC, judge="fake:judge")
    [result] = (await score_all({"q": metric}, ctx("dark mode", judge_calls(judge)))).values()
    assert result.value is None and "malformed verdict" in result.error and reason in result.error
    assert result.details["raw"] == reply  # kept for inspection


async def test_pass_fail_scale() -> None:
    judge = FakeProvider("judge")
    judge.enqueue(verdict("pass"), verdict("fail"), verdict(5))
    metric = metrics.create("rubric_judge", rubric=RUBRIC, judge="fake:judge", scale="pass_fail")
    calls = judge_calls(judge)
    assert (await metric(ctx("a", calls))).value == 1.0
    assert (await metric(ctx("b", calls))).value == 0.0
    wrong = await metric(ctx("c", calls))
    assert wrong.value is None and "is not one of ['pass', 'fail']" in wrong.error
    assert '"score": "pass" or "fail"' in judge.history[0][-1].content


async def test_judge_calls_are_retried_cached_and_their_usage_recorded(tmp_path) -> None:
    judge = FakeProvider("judge")
    judge.enqueue(ProviderError("503 overloaded", retryable=True), verdict(4))
    calls = judge_calls(judge, cache=ResponseCache(tmp_path / "c.db"))
    metric = metrics.create("rubric_judge", rubric=RUBRIC, judge="fake:judge")
    [first] = (await score_all({"q": metric}, ctx("dark mode", calls))).values()
    assert first.value == 0.75 and len(judge.history) == 2  # one failure, one retry
    assert first.usage.calls == 1 and first.usage.input_tokens > 0 and first.usage.output_tokens > 0
    [again] = (await score_all({"q": metric}, ctx("dark mode", calls))).values()
    assert again.value == 0.75 and len(judge.history) == 2  # served from the cache
    assert again.usage.spent_usd == 0.0


async def test_a_failed_or_unavailable_judge_is_an_error_not_a_crash() -> None:
    judge = FakeProvider("judge")
    judge.enqueue(ProviderError("HTTP 400 bad request", retryable=False))
    metric = metrics.create("rubric_judge", rubric=RUBRIC, judge="fake:judge")
    failed = await metric(ctx("a", judge_calls(judge)))
    assert failed.value is None and "HTTP 400 bad request" in failed.error

    calls = ModelCalls(None, FAST, Budget())  # no OPENAI_API_KEY in tests
    default = metrics.create("rubric_judge", rubric=RUBRIC)
    unavailable = await default(ctx("a", calls))
    assert unavailable.value is None and "openai:gpt-4o-mini" in unavailable.error
    assert "OPENAI_API_KEY is not set" in unavailable.error
    [problem] = await calls.unavailable({"quality": default})
    assert problem.startswith("metric 'quality' needs openai:gpt-4o-mini")

    assert "model caller" in (await default(ctx("a", None))).error


async def test_judge_calls_stop_at_the_run_budget() -> None:
    judge = FakeProvider("judge")
    budget = Budget(limit_usd=0.0)
    calls = ModelCalls(None, FAST, budget, None, {"openai:gpt-4o-mini": judge})  # priced like gpt-4o-mini
    result = await metrics.create("rubric_judge", rubric=RUBRIC)(ctx("a", calls))
    assert "budget" in result.error and judge.history == [] and budget.exhausted


def test_bad_judge_configuration_fails_when_the_metric_is_built() -> None:
    from evals.errors import EvalsError

    with pytest.raises(EvalsError, match="scale"):
        metrics.create("rubric_judge", rubric=RUBRIC, scale="1-5 stars")
    with pytest.raises(EvalsError, match="provider:model"):
        metrics.create("rubric_judge", rubric=RUBRIC, judge="gpt-4o-mini")
    with pytest.raises(EvalsError, match="empty"):
        metrics.create("rubric_judge", rubric="  ")
    with pytest.raises(EvalsError, match="against"):
        metrics.create("pairwise_judge", against="baseline")


# --- pairwise judge ----------------------------------------------------------------------------


class ScriptedJudge:
    """A judge model whose verdict is a function of the prompt (a real Provider: id, concurrency, generate)."""

    id = "fake:judge"
    max_concurrency = 4

    def __init__(self, decide):
        self.decide = decide
        self.prompts: list[str] = []

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion:
        prompt = messages[-1].content
        self.prompts.append(prompt)
        one = re.search(r"<answer_1>\n(.*?)\n</answer_1>", prompt, re.DOTALL)[1]
        two = re.search(r"<answer_2>\n(.*?)\n</answer_2>", prompt, re.DOTALL)[1]
        return Completion(text=json.dumps({"reasoning": "r", "winner": self.decide(one, two)}), input_tokens=10,
                          output_tokens=5)


def prefers(word: str):
    return lambda one, two: "1" if word in one and word not in two else "2" if word in two and word not in one else "tie"


@pytest.mark.parametrize(
    ("decide", "answer", "value", "outcome", "consistent"),
    [
        (lambda one, two: "1", "anything", 0.5, "tie", False),  # always picks the first: bias cancelled
        (lambda one, two: "2", "anything", 0.5, "tie", False),  # always picks the second: same
        (prefers("crash"), "dark mode, login crash fixed", 1.0, "win", True),
        (prefers("added"), "dark mode", 0.0, "loss", True),  # B is "dark mode added"
        (lambda one, two: "tie", "dark mode", 0.5, "tie", True),
        (lambda one, two: 1.0 if "crash" in one else 2.0, "login crash fixed", 1.0, "win", True),  # numbers
    ],
)
async def test_pairwise_runs_both_orders(decide, answer, value, outcome, consistent) -> None:
    judge = ScriptedJudge(decide)
    metric = metrics.create("pairwise_judge", judge="fake:judge", against="fake:other")
    calls = judge_calls(judge)
    other = FakeProvider("other")
    other.enqueue("dark mode added")  # B: the other model's answer, generated through the runner
    calls._providers["fake:other"] = other
    result = await metric(ctx(answer, calls))
    assert (result.value, result.details["outcome"], result.details["consistent"]) == (value, outcome, consistent)
    first, second = judge.prompts
    assert f"<answer_1>\n{answer}\n" in first and f"<answer_2>\n{answer}\n" in second  # positions swapped
    assert "<answer_2>\ndark mode added\n" in first and "<reference_answer>" in first


async def test_pairwise_against_the_reference_or_a_stored_run(make_task, tmp_path, monkeypatch) -> None:
    judge = ScriptedJudge(prefers("crash"))
    metric = metrics.create("pairwise_judge", judge="fake:judge")
    result = await metric(ctx("dark mode", judge_calls(judge)))
    assert result.value == 0.0 and "<reference_answer>" not in judge.prompts[0]  # B is the reference

    monkeypatch.setenv("EVALS_STORE", str(tmp_path / "runs.db"))  # where `run:` looks by default
    task = load_task(str(make_task(models=[{"spec": "fake:scripted", "options": {"responses": ["crash fixed"]}}],
                                   metrics=[{"name": "exact_match"}], **{"pass": {}})))
    providers = [(task.models[0], create_provider(task.models[0]))]
    [run] = await run_task(task, load_samples(task), providers, Store(), FAST)
    stored = metrics.create("pairwise_judge", judge="fake:judge", against=f"run:{run.run_id}")
    answers = StoredAnswers()  # what the runner passes in the context
    beaten = await stored(ctx("dark mode", judge_calls(ScriptedJudge(prefers("crash"))), example="ex001",
                              stored_answers=answers))
    assert beaten.value == 0.0 and beaten.details["against"] == f"run:{run.run_id}"
    absent = await stored(ctx("dark mode", judge_calls(judge), example="nope", stored_answers=answers))
    assert "has no answer for this example" in absent.error


async def test_in_a_run_judges_see_the_rendered_prompt_and_an_unknown_stored_run_is_said_before_any_call(
        make_task, tmp_path) -> None:
    """The run gives judges the task's prompt rendered (the input they show, the prompt another model is asked)
    and stored runs' answers through ScoreContext; a run B cannot be read from is said once, before any call."""
    task = load_task(str(make_task(
        prompt={"system": "Answer with JSON.", "user": "Q: {{ question }}"},
        models=[{"spec": "fake:scripted", "options": {"responses": ["mine"]}},
                {"spec": "fake:other", "system": "Be brief."}],
        metrics=[{"name": "rubric_judge", "id": "quality", "rubric": RUBRIC, "judge": "fake:judge"},
                 {"name": "pairwise_judge", "id": "versus", "judge": "fake:judge", "against": "fake:other"},
                 {"name": "pairwise_judge", "id": "stored", "judge": "fake:judge", "against": "run:nosuchrun",
                  "store": str(tmp_path / "s.db")}], **{"pass": {}})))
    samples = load_samples(task)[:2]
    judge, other = FakeProvider("judge"), FakeProvider("other")
    other.enqueue("theirs", "theirs")
    warned: list[str] = []
    calls = ModelCalls(task, FAST, Budget(), None, {"fake:judge": judge, "fake:other": other}, warned.append)
    assert await calls.unavailable() == [f"metric 'stored' compares against run nosuchrun: no run 'nosuchrun' in "
                                         f"{tmp_path / 's.db'} (see `evals runs`)"]
    assert judge.history == [] and other.history == []
    scores = await calls.score(samples[0], Completion(text="mine"))
    assert "<input>\nQ: question 0\n</input>" in judge.history[0][-1].content  # the task's user message
    assert [(m.role, m.content) for m in other.history[0]] == [("system", "Be brief."), ("user", "Q: question 0")]
    assert "no run 'nosuchrun'" in scores["stored"].error
    assert any("<answer_2>\ntheirs\n</answer_2>" in h[-1].content for h in judge.history)  # B, judged


# --- through `evals run`, the real openai SDK and the stand-in server --------------------------


def standin_judge(body: dict[str, Any]) -> str:
    """A judge behind the HTTP API: 5 when the graded answer mentions 'l1', 2 otherwise; garbage for 'l2'."""
    prompt = last_user_message(body)
    answer = re.search(r"<answer>\n(.*?)\n</answer>", prompt, re.DOTALL)[1]
    if '"l2"' in answer:
        return "Sorry, I cannot grade this."
    return verdict(5 if '"l1"' in answer else 2, reasoning=f"graded {answer}")


def test_cli_judge_override_runs_through_the_sdk_cached_and_counted(make_task, tmp_path, monkeypatch) -> None:
    folder = make_task(metrics=[{"name": "set_f1", "id": "labels_f1", "field": "labels"},
                                {"name": "rubric_judge", "id": "quality", "rubric": RUBRIC}],
                       models=[{"spec": "fake:scripted", "options": {"responses": [
                           '{"labels": ["l0"]}', '{"labels": ["l1"]}', '{"labels": ["l2"]}']}}],
                       **{"pass": {"labels_f1": 1.0}})
    store = tmp_path / "runs.db"
    with StandinServer(standin_judge) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        args = ["run", str(folder), "--store", str(store), "--no-progress", "--judge", "openai:gpt-4o-mini",
                "--cache-path", str(tmp_path / "cache.db"), "--json"]
        first = CliRunner().invoke(app, args)
        assert first.exit_code == 0, first.output
        assert server.counts.received == 6
        second = CliRunner().invoke(app, args)
        assert server.counts.received == 6  # the judge's answers came from the cache
    [summary] = json.loads(first.stdout)
    assert summary["judge_calls"] == 6 and summary["judge_input_tokens"] > 0
    assert summary["judge_cost_usd"] == pytest.approx(summary["judge_spent_usd"]) and summary["judge_cost_usd"] > 0
    assert summary["metric_errors"] == {"quality": 2}  # the two 'l2' answers got no verdict
    assert summary["metrics"]["quality"] == pytest.approx((1.0 + 0.25) / 2)  # l1 scored 5, l0 scored 2
    [again] = json.loads(second.stdout)
    assert again["judge_spent_usd"] == 0.0 and again["judge_cost_usd"] == pytest.approx(summary["judge_cost_usd"])

    df = load_run(summary["run_id"], store)
    quality = df["scores"].map(lambda s: s["quality"])
    garbage = [q for q in quality if q["error"]]
    assert all("malformed verdict: no JSON object" in q["error"] for q in garbage)
    assert {q["explanation"] for q in quality if not q["error"]} == {'graded {"labels": ["l0"]}',
                                                                    'graded {"labels": ["l1"]}'}
    [quality_spec] = [m for m in df.attrs["manifest"]["metrics"] if m["id"] == "quality"]
    assert quality_spec["args"]["judge"] == "openai:gpt-4o-mini"  # the override is recorded
    assert quality_spec["config"] == {"rubric": RUBRIC, "judge": "openai:gpt-4o-mini", "scale": "1-5",
                                      "max_tokens": 512, "repeats": 1}


def test_cli_warns_once_when_the_judge_cannot_run_and_records_errors(make_task, tmp_path) -> None:
    folder = make_task(metrics=[{"name": "json_valid"}, {"name": "rubric_judge", "id": "quality", "rubric": RUBRIC}],
                       **{"pass": {"json_valid": 1}})
    result = CliRunner().invoke(app, ["run", str(folder), "--store", str(tmp_path / "s.db"), "--no-progress"])
    assert result.exit_code == 0 and result.exception is None, result.output
    assert result.stderr.count("metric 'quality' needs openai:gpt-4o-mini") == 1
    assert "OPENAI_API_KEY is not set" in result.stderr and "--judge" in result.stderr
    [run] = Store(tmp_path / "s.db").list_runs()
    df = load_run(run.id, tmp_path / "s.db")
    errors = df["scores"].map(lambda s: s["quality"]["error"])
    assert errors.str.contains("OPENAI_API_KEY is not set").all()
    assert df["scores"].map(lambda s: s["json_valid"]["value"]).eq(1.0).all()


async def test_a_resumed_run_keeps_the_judge_it_started_with(make_task, tmp_path) -> None:
    from evals.metrics import with_judge
    from evals.run.resume import resume_run

    folder = make_task(metrics=[{"name": "rubric_judge", "id": "quality", "rubric": RUBRIC}], **{"pass": {}})
    task = with_judge(load_task(str(folder)), "fake:verdicts")  # default fake answers "{}": no verdict
    store = Store(tmp_path / "s.db")
    [run] = await run_task(task, load_samples(task), [(task.models[0], create_provider(task.models[0]))], store, FAST)
    store._db.execute("DELETE FROM results WHERE run_id = ? AND example_id = 'ex002'", (run.run_id,))
    store.set_status(run.run_id, "interrupted")
    resumed = await resume_run(run.run_id, store, FAST)  # task.yaml still names the default judge
    assert resumed.done == 1
    redone = load_run(run.run_id, store).set_index("example_id").loc["ex002", "scores"]
    assert redone["quality"]["error"].startswith("judge fake:verdicts: malformed verdict")


# --- rubric files --------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["rubric_judge", "pairwise_judge"])
def test_a_misspelt_rubric_file_is_refused_at_load_naming_it_and_the_closest_file(make_task, tmp_path,
                                                                                  metric) -> None:
    from tests.conftest import assert_refused_at_load

    folder = make_task(metrics=[{"name": metric, "id": "quality", "rubric": "rubrik.md"}], **{"pass": {}})
    (folder / "rubric.md").write_text(RUBRIC + "\n")
    assert_refused_at_load(folder, "metrics.0.name", "rubric file 'rubrik.md' not found")
    with pytest.raises(Exception) as e:
        load_task(str(folder))
    assert "did you mean 'rubric.md'?" in str(e.value)

    (folder / "task.yaml").write_text((folder / "task.yaml").read_text().replace("rubrik.md", "rubric.md"))
    from evals.metrics import build_metrics

    built = build_metrics(load_task(str(folder)))["quality"]  # the right name reads the file
    assert (built.rubric if metric == "rubric_judge" else built.criteria) == RUBRIC


@pytest.mark.parametrize("rubric", ["rubrics/quality.txt", "quality.yaml", "criteria.json", "/no/such/rubric.md"])
def test_a_rubric_that_names_a_missing_file_is_an_error_not_the_rubric_text(rubric) -> None:
    from evals.errors import EvalsError

    with pytest.raises(EvalsError, match="rubric file .* not found"):
        metrics.create("rubric_judge", rubric=rubric)


@pytest.mark.parametrize("rubric", [RUBRIC, "correctness", "Pass if polite.", "5 = right/complete, 1 = wrong",
                                    "Line one.\nrubric.md is not a file name here."])
def test_inline_rubric_text_stays_text(rubric) -> None:
    assert metrics.create("rubric_judge", rubric=rubric).rubric == rubric.strip()
