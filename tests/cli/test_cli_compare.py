"""`evals compare`, `evals power` and `evals decide` end to end, over runs stored by the real runner."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from evals.analyse.stats import mcnemar_sample_size, sample_size_for_rate
from evals.cli import app
from evals.data.golden import load_samples
from evals.data.tasks import load_task
from evals.providers.fake import FakeProvider
from evals.run.runner import RunOptions, run_task
from evals.run.store import Store
from evals.types import ModelConfig, ModelSpec, Price
from tests.conftest import answer_for, qa_rows

HOSTILE = "<script>alert(1)</script> a|b\n[red]x[/red]"
SEED_DECISION = {"min_gap": 0.05, "volume": 100_000}
PRICE = Price(0.15, 0.6)


class ByQuestion(FakeProvider):
    """Answers example i ("question i") with answers[i], whatever order the runner calls in."""

    def __init__(self, answers: list[str], **kw):
        super().__init__(**kw)
        self.answers = answers

    async def generate(self, messages, params):
        self.enqueue(self.answers[int(messages[-1].content.split()[-1])])
        return await super().generate(messages, params)


def store_run(folder: Path, store: Path, model: str, passes: list[bool], hostile_at: int | None = None) -> str:
    """Run the task at `folder` with a fake model that matches exactly where `passes` says; the run id."""
    task = load_task(str(folder))
    samples = load_samples(task)
    answers = [answer_for(i) if ok else ("not json" if i != hostile_at else HOSTILE) for i, ok in enumerate(passes)]
    config = ModelConfig(spec=ModelSpec("fake", model), price=PRICE)
    provider = ByQuestion(answers, model=model, config=config)
    [outcome] = asyncio.run(run_task(task, samples, [(config, provider)], Store(store), RunOptions()))
    return outcome.run_id


@pytest.fixture
def seed_runs(make_task, tmp_path) -> tuple[str, str, Path]:
    """The seed story: baseline 44/50, candidate 47/50; 43 both, 1 baseline-only, 4 candidate-only, 2 neither."""
    folder = make_task(rows=qa_rows(50), decision=SEED_DECISION)
    store = tmp_path / "s.db"
    a = [True] * 43 + [True] + [False] * 4 + [False] * 2
    b = [True] * 43 + [False] + [True] * 4 + [False] * 2
    return store_run(folder, store, "base", a, hostile_at=44), store_run(folder, store, "cand", b), store


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_compare_prints_the_seed_story(seed_runs) -> None:
    a, b, store = seed_runs
    result = invoke("compare", a, b, "--store", store)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in ("44/50 (88%, 95% CI 76-94%)", "47/50 (94%, 95% CI 84-98%)",
                     "McNemar exact p = 0.375", "Match-rate difference B - A: +6.0 points",
                     "Tango score interval", "labels_f1 mean difference B - A",
                     "Improved: B matched, A did not (4)", "Regressed: A matched, B did not (1)",
                     "Verdict: inconclusive: about 262 more golden examples needed",
                     "Why:", "Rules:", "Assumptions:", "312 paired examples", "Break-even", "100,000"):
        assert expected in out, expected
    assert re.search(r"43\s*│\s*1\s*│\s*4\s*│\s*2", out)  # both / A only / B only / neither
    # model output is data: printed literally, rich markup in it is not interpreted
    assert "[red]x[/red]" in out and "<script>alert(1)</script> a|b" in out
    assert f"decision settings: {store.parent / 'task' / 'task.yaml'}" in result.stderr
    # the answer first: the verdict and its one-line reason, then cost and latency, then the evidence
    order = [out.index(s) for s in ("Verdict: inconclusive", "straddles the 5-point minimum", "marginal cost / call",
                                    "time to first token p50 / p95", "Runs", "Paired outcomes", "Why:")]
    assert order == sorted(order)


def test_compare_json_has_the_numbers(seed_runs) -> None:
    a, b, store = seed_runs
    result = invoke("compare", a, b, "--store", store, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["counts"] == {"both_pass": 43, "a_only": 1, "b_only": 4, "both_fail": 2, "n": 50, "discordant": 5}
    assert data["mcnemar_p"] == pytest.approx(0.375)
    assert data["a"]["summary"]["matches_text"] == "44/50 (88%, 95% CI 76-94%)"
    assert data["match_diff"]["estimate"] == pytest.approx(0.06)
    assert data["power"]["n_needed"] == 312
    assert data["verdict"]["label"] == "inconclusive: about 262 more golden examples needed"
    assert data["verdict"]["costs"]["rows"][0]["volume"] == 100_000
    assert [d["example_id"] for d in data["improved"]] == ["ex044", "ex045", "ex046", "ex047"]
    assert data["improved"][0]["output_a"] == HOSTILE


def test_markdown_report_escapes_model_output(seed_runs, tmp_path) -> None:
    a, b, store = seed_runs
    target = tmp_path / "reports" / "cmp.md"
    result = invoke("compare", a, b, "--store", store, "--markdown", target)
    assert result.exit_code == 0, result.output
    md = target.read_text()
    assert "44/50 (88%, 95% CI 76-94%)" in md and "McNemar exact p = 0.375" in md
    assert "inconclusive: about 262 more golden examples needed" in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt; a\\|b<br>\\[red\\]x\\[/red\\]" in md
    assert "<script>" not in md and "a|b" not in md
    # only what Markdown acts on is escaped: the file reads as plain text too
    assert "Tango's score interval" in md and "&#x27;" not in md and "&quot;" not in md
    for table in re.findall(r"(?:^\|.*\|$\n?)+", md, flags=re.MULTILINE):  # every row as many cells as the header
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in table.strip().splitlines()}
        assert len(widths) == 1, table
    assert not list(target.parent.glob("*.part"))


def test_different_golden_sets_are_refused_unless_forced(make_task, tmp_path) -> None:
    store = tmp_path / "s.db"
    a = store_run(make_task(rows=qa_rows(6)), store, "base", [True] * 6)
    b = store_run(make_task(rows=qa_rows(5)), store, "cand", [True] * 5)  # the golden set lost ex005
    refused = invoke("compare", a, b, "--store", store)
    assert refused.exit_code == 2
    assert "different golden sets" in refused.stderr and "--force" in refused.stderr
    assert "1 example(s) only in the first" in refused.stderr and "Traceback" not in refused.output
    forced = invoke("compare", a, b, "--store", store, "--force")
    assert forced.exit_code == 0, forced.output
    assert "1 example(s) only in run A (missing from B): ex005" in forced.stdout
    assert "Forced" in forced.stdout


def test_compare_without_its_task_uses_the_settings_its_manifest_recorded(make_task, tmp_path) -> None:
    folder = make_task(rows=qa_rows(6), decision={"min_gap": 0.1})
    store = tmp_path / "s.db"
    a, b = store_run(folder, store, "base", [True] * 6), store_run(folder, store, "cand", [True] * 6)
    (folder / "task.yaml").unlink()
    result = invoke("compare", a, b, "--store", store)
    assert result.exit_code == 0, result.output
    assert f"decision settings: {folder.resolve() / 'task.yaml'} (as recorded in run {a}'s manifest)" in result.stderr
    assert "min_gap (0.1)" in result.stdout


@pytest.mark.parametrize("args, expected", [
    (["--discordance", "0.1"], mcnemar_sample_size(0.05, 0.1)),
    (["--discordance", "0.1", "--power", "0.9", "--confidence", "0.99"], mcnemar_sample_size(0.05, 0.1, 0.9, 0.01)),
    ([], sample_size_for_rate(0.88, 0.05)),
])
def test_power_matches_stats(args, expected) -> None:
    result = invoke("power", "--rate", "0.88", "--gap", "0.05", *args)
    assert result.exit_code == 0, result.output
    assert f"About {expected:,} paired golden examples" in result.stdout
    assert "Assumptions:" in result.stdout and "Connor" in result.stdout
    assert ("upper bound" in result.stdout) == (not args)
    data = json.loads(invoke("power", "--rate", "0.88", "--gap", "0.05", "--json", *args).stdout)
    assert data["n_pairs"] == expected


def test_power_numbers_for_the_seed_story() -> None:
    assert mcnemar_sample_size(0.05, 0.1) == 312
    result = invoke("power", "--rate", "0.98", "--gap", "0.05")
    assert result.exit_code == 2 and "above 1" in result.stderr


DECIDE_MODELS = [
    {"spec": "fake:base", "concurrency": 1, "options": {"responses": ["not json"]}},
    {"spec": "fake:cand", "concurrency": 1, "options": {"responses": [answer_for(i) for i in range(3)]}},
    {"spec": "fake:other", "concurrency": 1, "options": {"responses": ["{}"]}},
]


def test_decide_runs_only_what_the_store_lacks(make_task, tmp_path) -> None:
    folder = make_task(models=DECIDE_MODELS, decision={"baseline": "fake:base", "candidate": "fake:cand"})
    store = tmp_path / "s.db"

    def runs() -> list[str]:
        return [r.model for r in Store(store).list_runs()]

    first = invoke("decide", folder, "--store", store, "--no-progress")
    assert first.exit_code == 0, first.output
    assert sorted(runs()) == ["fake:base", "fake:cand"]
    assert "0/6 (0%" in first.stdout and "6/6 (100%" in first.stdout and "Verdict:" in first.stdout

    second = invoke("decide", folder, "--store", store, "--no-progress", "--json")
    assert second.exit_code == 0, second.output
    assert len(runs()) == 2  # nothing ran again
    assert second.stderr.count("reusing stored run") == 2
    assert json.loads(second.stdout)["counts"]["b_only"] == 6

    third = invoke("decide", folder, "--store", store, "--no-progress", "--candidate", "fake:other")
    assert third.exit_code == 0, third.output
    assert sorted(runs()) == ["fake:base", "fake:cand", "fake:other"]  # only the new candidate ran
    assert third.stderr.count("reusing stored run") == 1

    # a changed prompt is a different experiment: both models run again
    spec = yaml.safe_load((folder / "task.yaml").read_text())
    spec["prompt"]["system"] = "Answer with JSON only."
    (folder / "task.yaml").write_text(yaml.safe_dump(spec))
    assert invoke("decide", folder, "--store", store, "--no-progress").exit_code == 0
    assert len(runs()) == 5


def test_decide_names_the_missing_decision_field(make_task, tmp_path) -> None:
    folder = make_task(models=DECIDE_MODELS, decision={"baseline": "fake:base"})
    result = invoke("decide", folder, "--store", tmp_path / "s.db", "--no-progress")
    assert result.exit_code == 2
    assert "task.yaml" in result.stderr and "decision.candidate" in result.stderr and "--candidate" in result.stderr
    assert Store(tmp_path / "s.db").list_runs() == []  # nothing ran
    bad = make_task(models=DECIDE_MODELS, decision={"baseline": "fake:base", "candidate": "fake:cand", "min_gapp": 1})
    result = invoke("decide", bad, "--store", tmp_path / "s.db")
    assert result.exit_code == 2 and "task.yaml" in result.stderr and "did you mean 'min_gap'" in result.stderr


def test_decide_leaves_out_a_hosted_fine_tune_not_trained_yet_and_weighs_the_rest(make_task, tmp_path,
                                                                                 monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # finetune/hosted/ is looked up here: nothing trained
    folder = make_task(models=DECIDE_MODELS, decision={"baseline": "fake:base",
                                                       "candidate": ["openai:ft@never-trained", "fake:cand"]})
    result = invoke("decide", folder, "--store", tmp_path / "s.db", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "left out candidate 1 openai:ft@never-trained: no hosted fine-tune 'never-trained'" in result.stderr
    assert "Verdict:" in result.stdout and [r.model for r in Store(tmp_path / "s.db").list_runs()].count("fake:cand") == 1


def test_decide_with_several_candidates_loads_and_summarises_the_baseline_once(make_task, tmp_path,
                                                                               monkeypatch) -> None:
    from evals.analyse import compare, decide

    folder = make_task(models=DECIDE_MODELS,
                       decision={"baseline": "fake:base", "candidate": ["fake:cand", "fake:other"]})
    store = tmp_path / "s.db"
    first = invoke("decide", folder, "--store", store, "--no-progress", "--json")
    assert first.exit_code == 0, first.output
    loaded, summarised = [], []
    load_run, summarize = decide.load_run, compare.summarize
    monkeypatch.setattr(decide, "load_run", lambda run_id, *a, **k: loaded.append(run_id) or load_run(run_id, *a, **k))
    monkeypatch.setattr(compare, "summarize", lambda df: summarised.append(df.attrs["run"]["model"]) or summarize(df))
    again = invoke("decide", folder, "--store", store, "--no-progress", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == json.loads(first.stdout)
    runs = {r.model: r.id for r in Store(store).list_runs()}
    assert sorted(loaded) == sorted(runs.values()) and sorted(summarised) == ["fake:base", "fake:cand", "fake:other"]
