"""Bad input is refused before any model call, with the file, line and field named."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from evals.cli import app
from evals.data.golden import load_samples, samples_hash
from evals.data.prompts import render_messages
from evals.data.tasks import load_task
from evals.errors import EvalsError
from tests.conftest import qa_rows


def test_loads_the_shipped_resume_task() -> None:
    task = load_task("resume-feedback")
    assert task.name == "resume-feedback"
    assert [m.id for m in task.metrics] == ["json_valid", "issue_f1", "score_within_1"]
    assert str(task.models[0].spec) == "openai:gpt-4o-mini"
    assert task.pass_rule == {"json_valid": 1.0, "issue_f1": 0.75, "score_within_1": 1.0}


def test_task_renders_chat_messages(make_task) -> None:
    task = load_task(str(make_task()))
    sample = load_samples(task)[0]
    messages = render_messages(task.prompt, sample.fields)
    assert [(m.role, m.content) for m in messages] == [("system", "Answer with JSON."), ("user", "question 0")]
    assert render_messages(task.prompt, sample.fields, task.model_config("fake:x"))[0].content == "Answer with JSON."


def test_a_system_prompt_with_or_without_fields_renders_per_example(make_task) -> None:
    fixed = load_task(str(make_task(prompt={"system": "{{ 'Answer' ~ ' with JSON.' }}  \n", "user": "{{ question }}"})))
    per_example = load_task(str(make_task(prompt={"system": "Topic: {{ question }}", "user": "{{ question }}"})))
    first, second = load_samples(fixed)[:2]
    assert [render_messages(fixed.prompt, s.fields)[0].content for s in (first, second)] == ["Answer with JSON."] * 2
    assert [render_messages(per_example.prompt, s.fields)[0].content for s in (first, second)] == [
        "Topic: question 0", "Topic: question 1"]


def test_per_model_system_prompt_and_few_shot_setting(make_task) -> None:
    shots = [{"fields": {"question": "question 9"}, "answer": '{"labels": ["l0"]}'}]
    task = load_task(str(make_task(
        prompt={"system": "Answer with JSON.", "user": "{{ question }}", "few_shot": shots},
        models=[{"spec": "fake:a"}, {"spec": "fake:b", "system": "Be terse.", "few_shot": False}])))
    sample = load_samples(task)[0]
    with_shots = render_messages(task.prompt, sample.fields, task.model_config("fake:a"))
    assert [m.role for m in with_shots] == ["system", "user", "assistant", "user"]
    bare = render_messages(task.prompt, sample.fields, task.model_config("fake:b"))
    assert [(m.role, m.content) for m in bare] == [("system", "Be terse."), ("user", "question 0")]
    with pytest.raises(EvalsError, match="field 'models.0.few_shot': expected true or false"):
        load_task(str(make_task(models=[{"spec": "fake:a", "few_shot": "no"}])))


def test_malformed_jsonl_line_is_named(make_task) -> None:
    good = json.dumps(qa_rows(1)[0])
    folder = make_task(golden_text=f"{good}\n\n{{\"id\": \"x\", broken\n")
    with pytest.raises(EvalsError) as e:
        load_samples(load_task(str(folder)))
    assert e.value.line == 3 and e.value.file.endswith("golden.jsonl")
    assert "malformed JSON" in str(e.value)


def test_missing_field_is_named_with_its_line(make_task) -> None:
    rows = qa_rows(3)
    del rows[2]["question"]
    with pytest.raises(EvalsError) as e:
        load_samples(load_task(str(make_task(rows=rows))))
    assert (e.value.line, e.value.field) == (3, "question")


def test_duplicate_ids_are_refused(make_task) -> None:
    rows = qa_rows(3)
    rows[2]["id"] = rows[0]["id"]
    with pytest.raises(EvalsError, match="duplicate id 'ex000' \\(first on line 1\\)"):
        load_samples(load_task(str(make_task(rows=rows))))


def test_unknown_metric_suggests_the_close_name(make_task) -> None:
    folder = make_task(metrics=[{"name": "json_valid"}, {"name": "set_f2", "field": "labels"}],
                       **{"pass": {"json_valid": 1}})
    with pytest.raises(EvalsError) as e:
        load_task(str(folder))
    assert "unknown metric 'set_f2'" in str(e.value) and "Did you mean 'set_f1'" in str(e.value)
    text = (folder / "task.yaml").read_text().splitlines()
    assert "set_f2" in text[e.value.line - 1]  # the line number points at the bad entry


def test_bad_metric_argument_fails_at_load_time(make_task) -> None:
    folder = make_task(metrics=[{"name": "set_f1", "fieldd": "labels"}], **{"pass": {}})
    with pytest.raises(EvalsError, match="bad arguments for metric 'set_f1'.*fieldd"):
        load_task(str(folder))


def test_pass_rule_must_name_a_metric(make_task) -> None:
    with pytest.raises(EvalsError, match="'label_f1' is not a metric id.*did you mean 'labels_f1'"):
        load_task(str(make_task(**{"pass": {"label_f1": 1}})))


def test_unknown_model_setting_is_named(make_task) -> None:
    with pytest.raises(EvalsError) as e:
        load_task(str(make_task(models=[{"spec": "fake:x", "temprature": 0}])))
    assert e.value.field == "models.0.temprature" and "did you mean 'temperature'" in str(e.value)


def test_template_syntax_error_is_caught_at_load(make_task) -> None:
    with pytest.raises(EvalsError, match="template syntax error"):
        load_task(str(make_task(prompt={"system": "", "user": "{{ question "})))


def test_unknown_task_name_lists_known_tasks() -> None:
    with pytest.raises(EvalsError, match="Did you mean 'resume-feedback'"):
        load_task("resume-feedbak")


def test_golden_hash_ignores_format_and_order(tmp_path, make_task) -> None:
    task = load_task(str(make_task()))
    samples = load_samples(task)
    assert samples_hash(samples) == samples_hash(list(reversed(samples)))
    changed = load_samples(load_task(str(make_task(rows=qa_rows(5)))))
    assert samples_hash(changed) != samples_hash(samples)


def test_csv_golden_set_loads_through_datasets(tmp_path, make_task) -> None:
    folder = make_task(dataset={"golden": "golden.csv", "fields": ["question"]})
    (folder / "golden.csv").write_text("id,question,reference\na,What is 2+2?,4\nb,,5\n")
    with pytest.raises(EvalsError) as e:
        load_samples(load_task(str(folder)))
    assert (e.value.line, e.value.field) == (3, "question")  # header is line 1


def test_parquet_golden_set_has_the_same_content_hash_as_jsonl(tmp_path, make_task) -> None:
    import pandas as pd

    jsonl = load_samples(load_task(str(make_task())))
    folder = make_task(dataset={"golden": "golden.parquet", "fields": ["question"]})
    rows = [{"id": s.id, "question": s.fields["question"], "reference": s.reference} for s in jsonl]
    pd.DataFrame(rows).to_parquet(folder / "golden.parquet")
    parquet = load_samples(load_task(str(folder)))
    assert [s.id for s in parquet] == [s.id for s in jsonl]
    assert samples_hash(parquet) == samples_hash(jsonl)


def test_cli_reports_bad_input_with_exit_2_and_no_traceback(make_task) -> None:
    folder = make_task(golden_text='{"id": "a", "question": "q", "reference": {}}\nnot json\n')
    result = CliRunner().invoke(app, ["run", str(folder), "--no-progress"])
    assert result.exit_code == 2
    assert "golden.jsonl:2" in result.output and "malformed JSON" in result.output
    assert "Traceback" not in result.output


def test_yaml_syntax_error_names_the_line(tmp_path) -> None:
    (tmp_path / "task.yaml").write_text("name: x\nprompt:\n  user: [unclosed\n")
    with pytest.raises(EvalsError) as e:
        load_task(str(tmp_path))
    assert e.value.line is not None and "invalid YAML" in str(e.value)
    assert yaml  # imported for the fixture's writer


def test_jsonl_values_load_exactly_as_written(make_task) -> None:
    """Date-like strings stay strings (Arrow's JSON reader would make them timestamps)."""
    rows = [{"id": "a", "question": "q1", "reference": {"date": "2025-03-14", "due": None}},
            {"id": "b", "question": "q2", "reference": {"date": "2024-12-01", "due": "2025-01-01"}}]
    samples = load_samples(load_task(str(make_task(rows=rows, metrics=[{"name": "json_valid"}], **{"pass": {}}))))
    assert [s.reference for s in samples] == [r["reference"] for r in rows]


@pytest.mark.parametrize(("model", "field", "message"), [
    ({"spec": "openai:gpt-4o-mini", "options": {"max_token_param": "max_tokens"}}, "models.0.options.max_token_param",
     "did you mean 'max_tokens_param'"),
    ({"spec": "openai:gpt-4o-mini", "options": {"max_tokens_param": "tokens"}}, "models.0.options.max_tokens_param",
     "'max_tokens' or 'max_completion_tokens'"),
    ({"spec": "anthropic:claude-haiku-4-5", "options": {"headers": {"x-team": 7}}},
     "models.0.options.headers.x-team", "valid string"),
    ({"spec": "fake:x", "options": {"respones": ["{}"]}}, "models.0.options.respones", "did you mean 'responses'"),
    ({"spec": "openal:gpt-4o-mini"}, "models.0.spec", "Did you mean 'openai'"),
])
def test_provider_options_are_validated_at_load(make_task, model, field, message) -> None:
    from tests.conftest import assert_refused_at_load

    assert_refused_at_load(make_task(models=[model]), field, message)


def test_local_dtype_option_is_checked(make_task) -> None:
    from tests.conftest import assert_refused_at_load

    assert load_task(str(make_task(models=[{"spec": "local:smollm2", "options": {"dtype": "bfloat16"}}])))
    assert_refused_at_load(make_task(models=[{"spec": "local:smollm2", "options": {"dtype": "fp8"}}]),
                           "models.0.options.dtype", "'auto', 'float32', 'bfloat16' or 'float16'")
