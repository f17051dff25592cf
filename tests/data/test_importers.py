"""`evals import`: OpenAI Evals JSONL and promptfoo CSV/YAML become task folders that load and run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from evals.cli import app
from evals.data.golden import load_samples
from evals.data.importers import import_file, literal, write_task_folder
from evals.data.importers.promptfoo import assertion_from_string
from evals.data.prompts import render_messages
from evals.data.tasks import load_task
from evals.errors import EvalsError
from evals.types import FewShot, PromptSpec

FIXTURES = Path(__file__).parents[1] / "fixtures" / "importers"


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def source_conversations(path: Path) -> list[list[tuple[str, str]]]:
    """The conversations of an OpenAI Evals file as the model would see them."""
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        messages = json.loads(line)["input"]
        if isinstance(messages, str):
            out.append([("user", messages)])
            continue
        names = {"example_user": "user", "example_assistant": "assistant"}
        out.append([(names.get(m.get("name"), m["role"]), m["content"]) for m in messages])
    return out


# --- OpenAI Evals -----------------------------------------------------------------------------------
def test_openai_evals_chat_samples_render_back_to_the_source_conversations(tmp_path: Path) -> None:
    source = FIXTURES / "openai_evals_chat.jsonl"
    imported = import_file(source, "openai-evals", name="capitals")
    folder = write_task_folder(imported, tmp_path / "capitals")
    assert imported.system == literal("Answer with the capital city only. Write {{ nothing }} else.")
    assert imported.few_shot == [{"fields": {"input": "France"}, "answer": "Paris"}]
    rows = [json.loads(line) for line in (folder / "golden.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["capitals-001", "capitals-002", "capitals-003"]
    # One sample has two ideal answers, so every reference is a list (one JSON type per column).
    assert [r["reference"] for r in rows] == [["Tokyo"], ["Berlin", "Berlin, Germany"], ["Nairobi"]]
    written = yaml.safe_load((folder / "task.yaml").read_text())["prompt"]
    prompt = PromptSpec(written["system"], written["user"], tuple(FewShot(**s) for s in written["few_shot"]))
    for row, conversation in zip(rows, source_conversations(source)):
        rendered = [(m.role, m.content) for m in render_messages(prompt, row)]
        assert rendered == conversation  # Jinja-looking text in the source stays literal


def test_openai_evals_multi_turn_samples_keep_their_history_as_turns(tmp_path: Path) -> None:
    """A sample whose own conversation has several turns renders back to it turn by turn (its history as the
    example's `messages`), not as one transcript message."""
    from evals.data.prompts import sample_messages

    system = {"role": "system", "content": "Be brief."}
    lines = [{"input": [system, {"role": "user", "content": "2+2?"}], "ideal": "4"},
             {"input": [system, {"role": "user", "content": "Name a colour"}, {"role": "assistant", "content": "Red"},
                        {"role": "user", "content": "Another one"}], "ideal": "Blue"}]
    source = tmp_path / "chat.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    folder = write_task_folder(import_file(source, "openai-evals", name="chat"), tmp_path / "chat")
    task = load_task(str(folder))
    samples = load_samples(task)
    for sample, conversation in zip(samples, source_conversations(source)):
        assert [(m.role, m.content) for m in sample_messages(task.prompt, sample)] == conversation
    assert "chat history (`messages`)" in (folder / "README.md").read_text()


def test_openai_evals_prompt_strings_and_single_ideals(tmp_path: Path) -> None:
    imported = import_file(FIXTURES / "openai_evals_prompt.jsonl", eval_class="evals.elsuite.basic.includes:Includes")
    assert imported.system == "" and imported.few_shot == []
    assert [(r["input"], r["reference"]) for r in imported.rows] == [("Q: What is 7 * 6?\nA:", "42"),
                                                                     ("Q: What is 9 - 4?\nA:", "5")]
    assert imported.metrics == [{"name": "includes", "ignore_case": False}]
    assert imported.pass_rule == {"includes": 1.0}


def test_openai_evals_system_messages_that_differ_become_a_field(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(json.dumps({"input": [{"role": "system", "content": s}, {"role": "user", "content": u}],
                                          "ideal": "ok"}) for s, u in (("Be terse.", "a"), ("Be kind.", "b"))))
    imported = import_file(path, "openai-evals")
    assert imported.system == "{{ system }}" and imported.fields == ["system", "input"]
    assert [(r["system"], r["input"]) for r in imported.rows] == [("Be terse.", "a"), ("Be kind.", "b")]


@pytest.mark.parametrize("line, field, message", [
    ('{"input": "hi"}', "ideal", "missing"),
    ('{"input": [{"role": "robot", "content": "x"}], "ideal": "y"}', "input[0].role", "role must be one of"),
    ('{"input": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "ideal": "y"}',
     "input[1].role", "must end with a user message"),
    ('{"input": "hi", "ideal": []}', "ideal", "non-empty list"),
    ('{"input": "hi", "ideal": "ok", broken', None, "malformed JSON"),
])
def test_openai_evals_errors_name_file_line_and_field(tmp_path: Path, line: str, field: str | None, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"input": "fine", "ideal": "ok"}\n' + line + "\n")
    with pytest.raises(EvalsError) as e:
        import_file(path, "openai-evals")
    assert (e.value.file, e.value.line, e.value.field) == (str(path), 2, field)
    assert message in e.value.message
    result = invoke("import", "openai-evals", path, "--out", tmp_path / "out")
    assert result.exit_code == 2 and f"{path}:2" in result.output and message in result.output
    assert not (tmp_path / "out").exists()


def test_unknown_eval_class_is_refused() -> None:
    with pytest.raises(EvalsError, match="unsupported eval class 'ModelBasedClassify'.*match"):
        import_file(FIXTURES / "openai_evals_prompt.jsonl", eval_class="ModelBasedClassify")


# --- promptfoo ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("Paris", ("equals", "Paris", None)),
    ("equals: 4", ("equals", "4", None)),
    ("contains: Hello", ("contains", "Hello", None)),
    ("icontains-any: four, 4", ("icontains-any", ["four", "4"], None)),
    ("similar: Bonjour", ("similar", "Bonjour", 0.8)),
    ("similar(0.9): Bonjour", ("similar", "Bonjour", 0.9)),
    ("grade: Is polite", ("llm-rubric", "Is polite", None)),
    ("not-contains: error", ("not-contains", "error", None)),
    ("javascript: output.length < 10", ("javascript", "output.length < 10", None)),
    ("is-json", ("is-json", None, None)),
    ("regex: ^\\d+$", ("regex", "^\\d+$", None)),
])
def test_csv_assertion_strings_parse_as_promptfoo_does(text: str, expected: tuple) -> None:
    a = assertion_from_string(text)
    assert (a.type, a.value, a.threshold) == expected


def test_promptfoo_csv_maps_expected_values_and_reports_the_rest() -> None:
    imported = import_file(FIXTURES / "promptfoo_tests.csv", name="qa")
    assert imported.source_format == "promptfoo tests CSV"
    assert [r["reference"] for r in imported.rows] == ["4", "Paris", "hi"]
    assert [r["description"] for r in imported.rows] == ["sum", "capital", "greeting"]
    assert imported.metrics == [{"name": "exact_match", "id": "equals", "ignore_case": False}]
    assert imported.pass_rule == {"equals": 1.0}
    assert imported.user == "question: {{ question }}\ncontext: {{ context }}"
    assert imported.fields == ["question"]  # `context` is empty on one row, so it is not required
    # assertions not in every test are checks on their own examples, javascript ones included
    assert [r["assert"] for r in imported.rows] == [
        [{"type": "icontains-any", "value": ["four"]}], [{"type": "icontains-any", "value": ["paris", "île"]}],
        [{"type": "javascript", "value": "output.length < 10"}]]
    assert imported.checks_field == "assert"
    assert imported.unsupported == []


def test_promptfoo_config_uses_first_prompt_default_test_and_expands_list_vars() -> None:
    imported = import_file(FIXTURES / "promptfooconfig.yaml", name="translate")
    assert imported.user == "Translate the text into {{ language }}.\nText: {{text}}"
    assert imported.description == "Translate short phrases"
    assert [(r["language"], r["reference"]) for r in imported.rows] == [
        ("French", "Bonjour le monde"), ("German", "German: good morning"), ("Dutch", "Dutch: good morning")]
    by_id = {m["id"]: m for m in imported.metrics}
    assert by_id["llm_rubric"] == {"name": "rubric_judge", "id": "llm_rubric", "scale": "pass_fail",
                                   "rubric": "The answer is only a translation, without commentary."}
    assert by_id["similar"]["name"] == "embedding_similarity"
    assert imported.pass_rule == {"llm_rubric": 1.0, "similar": 0.85}  # the strictest of 0.85 and the 0.75 default
    assert [r["assert"] for r in imported.rows] == [[{"type": "icontains", "value": "bonjour"}],
                                                    [{"type": "not-contains", "value": "Hello"}],
                                                    [{"type": "not-contains", "value": "Hello"}]]
    assert imported.unsupported == []
    assert any("compares 2 prompts" in n for n in imported.notes)


def test_promptfoo_yaml_errors_point_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "promptfooconfig.yaml"
    path.write_text("prompts: ['{{q}}']\ntests:\n  - vars: {q: hi}\n    assert:\n      - value: hi\n")
    with pytest.raises(EvalsError) as e:
        import_file(path)
    assert (e.value.line, e.value.field) == (5, "tests.0.assert.0") and "needs a 'type'" in e.value.message


def test_promptfoo_prompt_with_an_undefined_variable_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "promptfooconfig.yaml"
    path.write_text("prompts: ['{{question}} {{tone}}']\ntests:\n  - vars: {question: hi}\n    assert:\n"
                    "      - type: equals\n        value: hello\n")
    with pytest.raises(EvalsError, match="uses tone, which no test defines"):
        import_file(path)


# --- Writing and running ----------------------------------------------------------------------------------
def test_an_existing_folder_is_not_replaced_without_force(tmp_path: Path) -> None:
    out = tmp_path / "t"
    first = invoke("import", FIXTURES / "promptfoo_json_tests.yaml", "--name", "orders", "--out", out)
    assert first.exit_code == 0, first.output
    (out / "golden.jsonl").write_text("edited\n")
    again = invoke("import", FIXTURES / "promptfoo_json_tests.yaml", "--out", out)
    assert again.exit_code == 2 and "--force" in again.output
    assert (out / "golden.jsonl").read_text() == "edited\n"
    forced = invoke("import", FIXTURES / "promptfoo_json_tests.yaml", "--out", out, "--force")
    assert forced.exit_code == 0 and (out / "golden.jsonl").read_text() != "edited\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]  # no staging folder left behind


def test_imported_promptfoo_task_loads_and_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "orders"
    result = invoke("import", "promptfoo", FIXTURES / "promptfoo_json_tests.yaml", "--out", out)
    assert result.exit_code == 0, result.output
    task = load_task(str(out))
    assert [m.name for m in task.metrics] == ["json_valid"] and task.pass_rule == {"is_json": 1.0}
    assert len(load_samples(task)) == 3
    # fake:echo answers with the rendered user message: the payload, which is JSON in tests 1 and 3.
    run = invoke("run", out, "--model", "fake:echo", "--json", "--no-progress")
    assert run.exit_code == 0, run.output
    summary = json.loads(run.stdout)[0]
    assert (summary["n"], summary["matches"], summary["metrics"]["is_json"]) == (3, 2, pytest.approx(2 / 3))
    readme = (out / "README.md").read_text()
    assert "promptfoo_json_tests.yaml" in readme


def test_imported_openai_evals_task_loads_and_runs_end_to_end(tmp_path: Path) -> None:
    source = tmp_path / "echo.jsonl"
    # fake:echo answers with the user message, which is the ideal answer in samples 1 and 2.
    source.write_text('{"input": [{"role": "system", "content": "Repeat."}, {"role": "user", "content": "Tokyo"}], '
                      '"ideal": "Tokyo"}\n{"input": "Berlin", "ideal": ["Berlin"]}\n{"input": "Lima", "ideal": "Quito"}\n')
    out = tmp_path / "echo"
    assert invoke("import", "openai-evals", source, "--name", "echo", "--out", out).exit_code == 0
    task = load_task(str(out))
    assert [(m.name, m.args) for m in task.metrics] == [("exact_match", {"ignore_case": False})]
    run = invoke("run", out, "--model", "fake:echo", "--json", "--no-progress")
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)[0]["matches"] == 2


def test_imported_openai_evals_task_runs_and_any_ideal_answer_counts(tmp_path: Path) -> None:
    source = tmp_path / "echo.jsonl"
    # fake:echo answers with the user message; sample 2 lists it as its second ideal answer.
    source.write_text('{"input": "Tokyo", "ideal": "Tokyo"}\n{"input": "Berlin", "ideal": ["Bonn", "Berlin"]}\n'
                      '{"input": "Lima", "ideal": "Quito"}\n')
    out = tmp_path / "echo"
    assert invoke("import", source, "--out", out).exit_code == 0
    run = invoke("run", out, "--model", "fake:echo", "--json", "--no-progress")
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)[0]["matches"] == 2


def test_literal_text_renders_unchanged() -> None:
    from evals.data.prompts import render_template

    for text in ("plain", "{{ x }} and {% if %}", "tricky {% endraw %} inside {{ y }}"):
        assert render_template(literal(text), {}, limit=1000) == text


@pytest.mark.parametrize("payload", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('touch PWNED').read() }}",
    "{{ answer.__class__.__mro__ }}",
])
def test_promptfoo_assertion_values_render_sandboxed_and_a_hostile_one_is_refused(tmp_path: Path, monkeypatch,
                                                                                  payload: str) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "promptfooconfig.yaml"
    path.write_text(yaml.safe_dump({"prompts": ["{{question}}"], "tests": [
        {"vars": {"question": "hi", "answer": "hello"}, "assert": [{"type": "equals", "value": "{{ answer }}"}]},
        {"description": "hostile", "vars": {"question": "yo", "answer": "hey"},
         "assert": [{"type": "equals", "value": payload}]},
    ]}))
    with pytest.raises(EvalsError) as e:
        import_file(path)
    message = str(e.value)
    assert "promptfooconfig.yaml:" in message and "hostile" in message and "unsafe" in message
    assert "<class" not in message  # nothing was rendered
    cli = invoke("import", path, "--out", tmp_path / "out")
    assert cli.exit_code == 2 and "Traceback" not in cli.output and "unsafe" in cli.output
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "out").exists()


def test_promptfoo_assertion_values_still_render_the_test_vars(tmp_path: Path) -> None:
    path = tmp_path / "promptfooconfig.yaml"
    path.write_text(yaml.safe_dump({"prompts": ["{{question}}"], "tests": [
        {"vars": {"question": "hi", "answer": "hello"}, "assert": [{"type": "equals", "value": "{{ answer|upper }}"}]},
        {"vars": {"question": "yo", "answer": "hey"}, "assert": [{"type": "equals", "value": "{{ answer }}!"}]},
    ]}))
    assert [r["reference"] for r in import_file(path).rows] == ["HELLO", "hey!"]


SPELLINGS = ["{%endraw%}{{ 7*7 }}{%raw%}", "{%- endraw %}{{ 7*7 }}{%- raw %}", "{% endraw -%}{{ 7*7 }}{%+ raw +%}",
             "{%  endraw  %}{{7*7}}", "{#- not a comment -#}{{ 7*7 }}", "{{{ 7*7 }}}", "}}{{ 7*7 }}{{",
             "{\r{{ 7*7 }}\r\n"]


@pytest.mark.parametrize("trap", SPELLINGS)
def test_openai_evals_literal_text_stays_literal_whatever_it_holds(tmp_path: Path, trap: str) -> None:
    system = f"You are terse. {trap} Answer in one word."
    source = tmp_path / "samples.jsonl"
    source.write_text("".join(json.dumps({"input": [{"role": "system", "content": system},
                                                    {"role": "user", "content": q}], "ideal": "x"}) + "\n"
                              for q in ("one", "two")))
    out = tmp_path / "task"
    assert invoke("import", source, "--out", out).exit_code == 0
    task = load_task(str(out))
    [sample, _] = load_samples(task)
    shown = render_messages(task.prompt, sample.fields)[0].content
    assert shown == system.strip() and "49" not in shown


def test_literal_renders_any_text_unchanged() -> None:
    import jinja2
    from hypothesis import given, settings
    from hypothesis import strategies as st

    env = jinja2.Environment(keep_trailing_newline=True)
    tag_characters = st.sampled_from(["{", "}", "%", "#", "-", "+", " ", "\r", "\n", "raw", "endraw", "'"])

    @settings(max_examples=500, deadline=None)
    @given(st.lists(tag_characters | st.text(max_size=3), max_size=30).map("".join))
    def renders_as_written(text: str) -> None:
        assert env.from_string(literal(text)).render() == text

    renders_as_written()


def promptfoo_config(folder: Path, **config) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "promptfooconfig.yaml"
    test = {"vars": {"question": "hi"}, "assert": [{"type": "contains", "value": "h"}]}
    path.write_text(yaml.safe_dump({"prompts": ["{{ question }}"], "tests": [test], **config}, sort_keys=False))
    return path


@pytest.mark.parametrize(("config", "field"), [
    ({"prompts": ["file:///etc/hostname"]}, "prompts.0"),
    ({"prompts": ["file://../secret.txt"]}, "prompts.0"),
    ({"tests": ["file://../outside.csv"]}, "tests.0"),
    ({"tests": ["file://link.csv"]}, "tests.0"),  # a link inside the folder that leads out of it
])
def test_promptfoo_file_references_stay_inside_the_config_folder(tmp_path: Path, config: dict, field: str) -> None:
    (tmp_path / "secret.txt").write_text("SECRET {{ question }}")
    (tmp_path / "outside.csv").write_text("question,__expected\nSECRET,contains:S\n")
    path = promptfoo_config(tmp_path / "config", **config)
    (tmp_path / "config" / "link.csv").symlink_to(tmp_path / "outside.csv")
    result = invoke("import", path, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "Traceback" not in result.output
    [line] = result.stderr.strip().splitlines()
    assert "promptfooconfig.yaml:" in line and f"field '{field}'" in line and "--allow-outside-files" in line
    assert not (tmp_path / "out").exists()
    if "hostname" not in str(config):
        allowed = invoke("import", path, "--out", tmp_path / "out", "--allow-outside-files")
        assert allowed.exit_code == 0, allowed.output
        written = (tmp_path / "out" / "golden.jsonl").read_text() + (tmp_path / "out" / "task.yaml").read_text()
        assert "SECRET" in written


def test_promptfoo_files_inside_the_folder_still_import(tmp_path: Path) -> None:
    folder = tmp_path / "config"
    (folder / "prompts").mkdir(parents=True)
    (folder / "prompts" / "ask.txt").write_text("Please answer: {{ question }}")
    (folder / "cases.csv").write_text("question,__expected\nhello,contains:h\n")
    path = promptfoo_config(folder, prompts=["file://prompts/ask.txt"], tests=["file://./cases.csv"])
    assert invoke("import", path, "--out", tmp_path / "out").exit_code == 0
    assert load_task(str(tmp_path / "out")).prompt.user == "Please answer: {{ question }}"


@pytest.mark.parametrize(("name", "content", "where"), [
    ("chat.json", '[{"role": "user",\n "content": "{{ question }}"', "chat.json:2"),
    ("chat.json", b'[{"role": "user", "content": "caf\xe9"}]', "chat.json:1"),
    ("ask.txt", b"line one\ncaf\xe9 {{ question }}", "ask.txt:2"),
])
def test_a_bad_promptfoo_prompt_file_is_one_line(tmp_path: Path, name: str, content, where: str) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    result = invoke("import", promptfoo_config(folder, prompts=[f"file://{name}"]), "--out", tmp_path / "out")
    assert result.exit_code == 2 and "Traceback" not in result.output
    [line] = result.stderr.strip().splitlines()
    assert where in line


def test_a_promptfoo_tests_csv_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "tests.csv"
    path.write_bytes(b"question,__expected\nhello,contains:h\ncaf\xe9,contains:c\n")
    result = invoke("import", path, "--prompt", "{{ question }}", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "tests.csv:3" in result.stderr and "not UTF-8" in result.stderr


def test_a_promptfoo_assertion_value_past_the_cap_is_refused(tmp_path: Path) -> None:
    bomb = {"type": "contains", "value": "{{ question * 3000000000 }}"}
    path = promptfoo_config(tmp_path, tests=[{"vars": {"question": "hi"}, "assert": [bomb]}])
    result = invoke("import", path, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "over 1,000,000 characters" in result.stderr and "Traceback" not in result.output


def test_a_promptfoo_alias_bomb_is_refused(tmp_path: Path) -> None:
    from tests.data.test_bad_input import alias_bomb

    path = promptfoo_config(tmp_path)
    path.write_text(path.read_text() + alias_bomb("x-vars"))
    result = invoke("import", path, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "field 'x-vars'" in result.stderr and "aliases" in result.stderr
