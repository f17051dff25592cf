"""Per-example checks: golden lines carrying their own assertions, scored beside the task's metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from evals.analyse.summary import summarize
from evals.cli import app
from evals.data.golden import load_samples
from evals.data.tasks import load_task
from evals.errors import EvalsError
from evals.providers.fake import FakeProvider
from evals.run.runner import RunOptions, run_task
from evals.run.store import Store, load_run

FAST = RunOptions(backoff_s=0.001, max_backoff_s=0.01, timeout_s=5)
CHECKED = {
    "name": "checked",
    "dataset": {"golden": "golden.jsonl", "fields": ["q"], "checks": "assert"},
    "prompt": {"user": "{{ q }}"},
    "models": [{"spec": "fake:scripted"}],
}


def folder_with(tmp_path: Path, rows: list[dict], **task) -> Path:
    import yaml

    folder = tmp_path / "task"
    folder.mkdir(exist_ok=True)
    (folder / "task.yaml").write_text(yaml.safe_dump({**CHECKED, **task}, sort_keys=False))
    (folder / "golden.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return folder


def row(i: int, *checks: dict, **extra) -> dict:
    return {"id": f"e{i}", "q": f"question {i}", "reference": "-", "assert": list(checks), **extra}


async def run_answers(folder: Path, answers: list[str], tmp_path: Path):
    task = load_task(str(folder))
    samples = load_samples(task)
    fake = FakeProvider(max_concurrency=1)
    fake.enqueue(*answers)
    [outcome] = await run_task(task, samples, [(task.models[0], fake)], Store(tmp_path / "s.db"), FAST)
    return load_run(outcome.run_id, Store(tmp_path / "s.db"))


async def test_each_example_is_held_to_its_own_checks(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, [
        row(1, {"type": "contains", "value": "Bonjour le monde"}),
        row(2, {"type": "icontains", "value": "Dónde está la biblioteca"}, {"type": "not-contains", "value": "Acme"}),
        row(3, {"type": "not-contains", "value": "Acme"}),
    ])
    df = await run_answers(folder, ["Bonjour le monde!", "¿dónde está la BIBLIOTECA?", "Buy Acme"], tmp_path)
    assert df["passed"].tolist() == [True, True, False]
    assert df["score.check.icontains"].tolist()[1] == 1.0
    assert df["score.check.not-contains"].tolist()[1:] == [1.0, 0.0] and pd.isna(df["score.check.not-contains"][0])
    missed = df["scores"][2]
    assert missed["checks"]["value"] == 0.0
    assert "not-contains 'Acme'" in missed["checks"]["explanation"]
    assert missed["check.not-contains"]["details"] == {"metric": "includes", "value": 1.0, "threshold": 1.0,
                                                      "negated": True, "weight": 1.0}
    assert summarize(df).matches == 2


async def test_a_wrong_answer_misses_with_the_failing_check_named(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, [row(1, {"type": "icontains", "value": "Dónde está la biblioteca"})])
    df = await run_answers(folder, ["Where is the library"], tmp_path)
    assert not df["passed"][0]
    assert df["scores"][0]["checks"]["explanation"] == \
        "0/1 checks passed; failed: icontains 'Dónde está la biblioteca'"
    assert df["scores"][0]["check.icontains"]["explanation"].startswith("icontains 'Dónde está la biblioteca' failed")


async def test_task_metrics_and_checks_both_decide_the_match(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, [row(1, {"type": "regex", "value": "^[A-Z]"}), row(2)],
                         metrics=[{"name": "includes", "text": "ok"}], **{"pass": {"includes": 1}})
    df = await run_answers(folder, ["lower ok", "fine ok"], tmp_path)
    # e1: includes passes, its regex check fails; e2 has no checks, so only the task's metric decides
    assert df["passed"].tolist() == [False, True]
    assert "checks" not in df["scores"][1]


async def test_weights_and_a_lower_checks_threshold_in_the_pass_rule(tmp_path: Path) -> None:
    checks = ({"type": "contains", "value": "a", "weight": 3}, {"type": "contains", "value": "b", "weight": 1})
    folder = folder_with(tmp_path, [row(1, *checks), row(2, *checks)], **{"pass": {"checks": 0.75}})
    df = await run_answers(folder, ["a only", "b only"], tmp_path)
    assert df["score.checks"].tolist() == [0.75, 0.25]
    assert df["passed"].tolist() == [True, False]
    assert sorted(k for k in df["scores"][0] if k.startswith("check.")) == ["check.contains", "check.contains#2"]


async def test_metric_form_checks_take_arguments_and_negation(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, [
        row(1, {"metric": "json_schema", "schema": {"type": "object", "required": ["name"]}}),
        row(2, {"metric": "exact_match", "reference": "Paris", "not": True}),
        row(3, {"metric": "regex", "pattern": "^.{0,5}$", "id": "brief"}),
    ])
    df = await run_answers(folder, ['{"name": "x"}', "paris", "far too long"], tmp_path)
    assert df["score.check.json_schema"][0] == 1.0
    assert df["score.check.exact_match"][1] == 0.0  # "paris" equals "Paris" (case ignored), so the negation fails
    assert df["score.check.brief"][2] == 0.0
    assert df["passed"].tolist() == [True, False, False]


async def test_similar_uses_its_threshold_both_ways(tmp_path: Path, monkeypatch) -> None:
    from evals.metrics import semantic

    async def fake_score(self, ctx):  # cosine from a lookup, so the threshold logic is what is tested
        from evals.types import Score

        return Score({"close": 0.8, "far": 0.5}[ctx.completion.text])

    monkeypatch.setattr(semantic.EmbeddingSimilarity, "__call__", fake_score)
    folder = folder_with(tmp_path, [row(i, {"type": kind, "value": "x", "threshold": 0.7})
                                    for i, kind in enumerate(["similar", "similar", "not-similar", "not-similar"])])
    df = await run_answers(folder, ["close", "far", "close", "far"], tmp_path)
    assert df["passed"].tolist() == [True, False, False, True]


async def test_an_unsupported_assertion_never_passes_and_says_why(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, [row(1, {"type": "contains", "value": "a"},
                                        {"type": "unsupported", "was": "javascript", "value": "output.length < 9"})])
    df = await run_answers(folder, ["a"], tmp_path)
    assert not df["passed"][0]
    score = df["scores"][0]["check.javascript"]
    assert score["value"] is None and "javascript 'output.length < 9' (not carried over" in score["error"]


@pytest.mark.parametrize(("check", "field", "message"), [
    ("contains", "assert", "expected a list of checks"),
    (["contains"], "assert.0", "expected a mapping"),
    ([{"value": "x"}], "assert.0", "needs either 'type'"),
    ([{"type": "contians", "value": "x"}], "assert.0.type", "did you mean 'contains'"),
    ([{"type": "contains"}], "assert.0.value", "needs a value"),
    ([{"type": "contains", "value": "x", "treshold": 1}], "assert.0.treshold", "did you mean 'threshold'"),
    ([{"type": "contains", "value": "x", "weight": 0}], "assert.0.weight", "above 0"),
    ([{"type": "contains-any", "value": 3}], "assert.0.value", "list of strings"),
    ([{"type": "regex", "value": "("}], "assert.0.value", "regex"),
    ([{"metric": "json_schma", "schema": {}}], "assert.0.metric", "json_schema"),
    ([{"metric": "regex", "patern": "x"}], "assert.0.patern", "did you mean 'pattern'"),
    ([{"type": "contains", "value": "a"}, {"type": "is-json", "value": "{not json"}], "assert.1.value", "not JSON"),
])
def test_bad_checks_name_file_line_and_field(tmp_path: Path, check, field: str, message: str) -> None:
    folder = folder_with(tmp_path, [row(1, {"type": "contains", "value": "fine"}), {**row(2), "assert": check}])
    with pytest.raises(EvalsError) as e:
        load_samples(load_task(str(folder)))
    assert (e.value.file, e.value.line, e.value.field) == (str(folder / "golden.jsonl"), 2, field)
    assert message.lower() in e.value.message.lower()
    result = CliRunner().invoke(app, ["run", str(folder), "--no-cache"])
    assert result.exit_code == 2 and f"golden.jsonl:2 field '{field}'" in result.output


def test_a_checks_only_task_needs_checks_on_every_line(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, [row(1, {"type": "contains", "value": "a"}), row(2)])
    with pytest.raises(EvalsError, match="nothing would score this example") as e:
        load_samples(load_task(str(folder)))
    assert e.value.line == 2


def test_checks_are_part_of_the_golden_hash(tmp_path: Path) -> None:
    from evals.data.golden import samples_hash

    first = samples_hash(load_samples(load_task(str(folder_with(tmp_path, [row(1, {"type": "contains", "value": "a"})])))))
    second = samples_hash(load_samples(load_task(str(folder_with(tmp_path, [row(1, {"type": "contains", "value": "b"})])))))
    assert first != second


def test_checks_stay_out_of_the_prompt_fields_and_a_checks_metric_id_is_refused(tmp_path: Path) -> None:
    from tests.conftest import assert_refused_at_load

    sample = load_samples(load_task(str(folder_with(tmp_path, [row(1, {"type": "contains", "value": "a"})]))))[0]
    assert "assert" not in sample.fields and sample.checks[0].id == "check.contains"
    folder = folder_with(tmp_path, [row(1)], metrics=[{"name": "includes", "id": "checks", "text": "x"}])
    assert_refused_at_load(folder, "metrics.0.id", "is the score of an example's own checks")


def test_show_names_the_failed_check(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, [row(1, {"type": "icontains", "value": "Dónde está"})],
                         models=[{"spec": "fake:scripted", "options": {"responses": ["Where is it"]}}])
    store = tmp_path / "cli.db"
    assert CliRunner().invoke(app, ["run", str(folder), "--store", str(store), "--no-cache"]).exit_code == 0
    run_id = Store(store).list_runs()[0].id
    shown = CliRunner().invoke(app, ["show", run_id, "--store", str(store)], terminal_width=200)
    assert "failed: icontains 'Dónde está'" in shown.output
    header = next(line for line in shown.output.splitlines() if "matches" in line)
    assert "checks" in header and "check.icontains" not in header  # one column for the checks in the summary
    assert "check.icontains=0.00" in shown.output  # each check in the example's scores


async def test_a_field_check_looks_at_that_field_and_fails_when_it_is_missing(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, [
        row(1, {"type": "equals", "value": "shipped", "field": "order.status"}),
        row(2, {"type": "not-contains", "value": "lost", "field": "order.status"}),
        row(3, {"type": "not-contains", "value": "lost", "field": "order.status"}),
        row(4, {"type": "is-json", "field": "order"}),
    ])
    df = await run_answers(folder, ['{"order": {"status": "shipped"}}', '{"order": {"status": "lost"}}',
                                    "not json", '{"order": {"status": "x"}}'], tmp_path)
    assert df["passed"].tolist() == [True, False, False, True]
    assert "not JSON" in df["scores"][2]["check.not-contains"]["explanation"]  # a negation does not pass on no answer


def test_the_docs_example_line_loads(tmp_path: Path) -> None:
    page = (Path(__file__).parents[2] / "docs" / "reference" / "tasks.md").read_text()
    section = page[page.index("## Per-example checks"):]
    line = json.loads(section[section.index("```json") + 7:section.index("```", section.index("```json") + 7)])
    folder = folder_with(tmp_path, [line], **{"dataset": {**CHECKED["dataset"], "fields": ["text"]},
                                               "prompt": {"user": "{{ text }}"}})
    [sample] = load_samples(load_task(str(folder)))
    assert [c.id for c in sample.checks] == ["check.icontains", "check.not-contains", "check.similar",
                                             "check.contains-any", "check.json_schema", "check.no_refund"]


CODE = "import pathlib\npathlib.Path({marker!r}).write_text('ran')\ndef run(ctx, **kw):\n    return 1.0\n"


@pytest.mark.parametrize("check", [
    {"metric": "os:system", "command": "touch {marker}"},
    {"metric": "evil.py:run"},  # a file shipped beside the golden set
    {"metric": "evil:run"},
    {"type": "contains", "value": "x", "metric": "os:system"},
])
def test_a_golden_line_that_names_code_is_refused_and_nothing_runs(tmp_path: Path, check: dict) -> None:
    marker = tmp_path / "MARKER"
    check = {k: v.format(marker=marker) for k, v in check.items()}
    folder = folder_with(tmp_path, [row(1, {"type": "contains", "value": "fine"}), row(2, check)])
    (folder / "evil.py").write_text(CODE.format(marker=str(marker)))
    with pytest.raises(EvalsError) as e:
        load_samples(load_task(str(folder)))
    assert (e.value.line, e.value.field) == (2, "assert.0" if "type" in check else "assert.0.metric")
    result = CliRunner().invoke(app, ["run", str(folder), "--no-cache", "--store", str(tmp_path / "s.db")])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert f"golden.jsonl:2 field '{e.value.field}'" in result.stderr
    assert not marker.exists()
    assert not Store(tmp_path / "s.db").list_runs(None, None)
