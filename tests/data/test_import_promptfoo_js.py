"""promptfoo configs with JavaScript assertions, transforms and the other carried types import whole and run
against the stand-in: each test passes or fails as promptfoo's documented semantics say (worked out by hand)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from evals.cli import app
from evals.data.golden import load_samples
from evals.data.importers import import_file
from evals.data.tasks import load_task
from evals.run.store import Store, load_run
from tests.standin_server import StandinServer, last_user_message

FIXTURES = Path(__file__).parents[1] / "fixtures" / "importers" / "promptfoo_js"


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], terminal_width=200)


def run_against_standin(tmp_path: Path, folder: Path, answers: dict[str, str], monkeypatch, name: str):
    """One run of the task with the stand-in answering by the var found in the prompt; the stored rows."""
    def answer(body: dict) -> str:
        return next(text for key, text in answers.items() if key in last_user_message(body))

    store = tmp_path / f"{name}.db"
    with StandinServer(answer) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        ran = invoke("run", folder, "-m", "openai:gpt-4o-mini", "--store", store, "--no-cache", "--no-progress")
    assert ran.exit_code == 0, ran.output
    run_id = Store(store).list_runs()[0].id
    return load_run(run_id, Store(store)), run_id, store


def test_the_json_output_example_imports_every_assertion_and_runs_it(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "countries"
    imported = invoke("import", "promptfoo", FIXTURES / "json_output.yaml", "--out", out)
    assert imported.exit_code == 0, imported.output
    assert "not carried over" not in imported.output
    checks = [[c.metric.name for c in s.checks] for s in load_samples(load_task(str(out)))]
    assert checks == [["json_valid", "javascript", "includes"], ["javascript", "javascript"]]
    rows = [json.loads(line) for line in (out / "golden.jsonl").read_text().splitlines()]
    # the test-level transform comes first, then the assertion's own
    assert rows[0]["assert"][2]["transform"] == ["JSON.parse(output)", "output.countries"]
    good, _, _ = run_against_standin(tmp_path, out, {
        "Benelux": '{"countries": ["Belgium", "Netherlands", "Luxembourg"], "count": 3}',
        "Iberia": '{"countries": ["Spain", "Portugal"], "count": 2}'}, monkeypatch, "good")
    assert good["passed"].tolist() == [True, True]  # 2/2 = 1 >= 0.9; the vars check sees region Iberia
    bad, run_id, store = run_against_standin(tmp_path, out, {
        "Benelux": '{"countries": ["France"], "count": 2}',
        "Iberia": '{"countries": [], "count": 0}'}, monkeypatch, "bad")
    assert bad["passed"].tolist() == [False, False]
    # Benelux: still JSON to the schema; 1 country is not the count of 2; the countries name neither
    assert [bad["scores"][0][f"check.{t}"]["value"] for t in ("is-json", "javascript", "contains-any")] == [1, 0, 0]
    assert bad["scores"][1]["check.javascript"]["explanation"].endswith("no countries")  # the returned reason
    shown = invoke("show", run_id, "--store", store)
    assert bad["scores"][1]["checks"]["explanation"].endswith("(threshold 0.9): no countries")
    assert "(threshold 0.9): no" in shown.output  # the reason, in `show` (wrapped by the table)


def test_a_score_below_the_threshold_fails_with_the_number(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "countries"
    assert invoke("import", FIXTURES / "json_output.yaml", "--out", out).exit_code == 0
    runs, _, _ = run_against_standin(tmp_path, out, {"Benelux": "{}", "Iberia": '{"countries": ["Spain"], "count": 1}'},
                                     monkeypatch, "half")
    explanation = runs["scores"][1]["check.javascript"]["explanation"]
    assert runs["passed"].tolist() == [False, False] and "returned 0.5, not at least 0.9" in explanation


def test_the_other_carried_types_pass_and_fail_as_promptfoo_says(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "others"
    imported = invoke("import", FIXTURES / "other_types.yaml", "--out", out)
    assert imported.exit_code == 0, imported.output
    assert "not carried over" not in imported.output
    tool = ('[{"type": "function", "function": {"name": "%s", "arguments": "{\\"city\\": \\"Paris\\"}"}}]')
    good, _, _ = run_against_standin(tmp_path, out, {
        "spell": "color", "summary": "the cat sat on the mat", "embed": 'Here it is: {"id": 3}. Done.',
        "tool": tool % "get_weather", "budget": "ok", "tight": "ok", "set": "alpha only"}, monkeypatch, "good")
    # tight: a real call costs more than $1e-9 and takes more than a microsecond; set: 1 of 2 parts >= 0.5
    assert good["passed"].tolist() == [True, True, True, True, True, False, True]
    bad, _, _ = run_against_standin(tmp_path, out, {
        "spell": "colouring", "summary": "dogs run fast", "embed": "no json here",
        "tool": tool % "delete_everything", "budget": "ok", "tight": "ok", "set": "gamma"}, monkeypatch, "bad")
    # colouring is 3 edits from colour; no word shared; no JSON; a function not offered; 0 of 2 parts
    assert bad["passed"].tolist() == [False, False, False, False, True, False, False]
    assert "not one of the tools: get_weather" in bad["scores"][3]["check.is-valid-openai-tools-call"]["explanation"]


def test_defaults_apply_to_a_csv_of_tests(tmp_path: Path, monkeypatch) -> None:
    imported = import_file(FIXTURES / "csv_tests.yaml")
    assert [r["assert"] for r in imported.rows] == [
        [{"type": "contains", "value": "hello", "transform": ["output.toLowerCase()"]}],
        [{"type": "javascript", "value": "output === output.toLowerCase() && context.vars.lang === 'en'",
          "transform": ["output.toLowerCase()"]}]]
    out = tmp_path / "csv"
    assert invoke("import", FIXTURES / "csv_tests.yaml", "--out", out).exit_code == 0
    runs, _, _ = run_against_standin(tmp_path, out, {"one": "HELLO there", "two": "MIXED Case"}, monkeypatch, "csv")
    assert runs["passed"].tolist() == [True, True]  # both see the lowercased answer; lang comes from defaultTest
    runs, _, _ = run_against_standin(tmp_path, out, {"one": "Bye", "two": "x"}, monkeypatch, "csv2")
    assert runs["passed"].tolist() == [False, True]
