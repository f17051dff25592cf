"""promptfoo `python` assertions run only when the user passes --allow-code to the import: then they are the user's
code, in promptfoo_python.py beside task.yaml, which task.yaml's metrics name; a golden line only points at them by
the metric's id. Each test passes or fails as promptfoo's documented semantics say (worked out by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from evals.data.golden import load_samples
from evals.data.tasks import load_task
from evals.errors import EvalsError
from tests.data.test_import_promptfoo_js import invoke, run_against_standin

FIXTURES = Path(__file__).parents[1] / "fixtures" / "importers" / "promptfoo_python"


def sentinel_config(folder: Path) -> tuple[Path, Path]:
    """A config whose one python assertion writes a file when it runs: (the config, that file)."""
    folder.mkdir(parents=True, exist_ok=True)
    ran = folder / "ran"
    config = {"prompts": ["Say {{word}}"], "tests": [{"vars": {"word": "hi"}, "assert": [
        {"type": "python", "value": f"__import__('pathlib').Path({str(ran)!r}).write_text('ran') > 0"}]}]}
    (folder / "promptfooconfig.yaml").write_text(yaml.safe_dump(config))
    return folder / "promptfooconfig.yaml", ran


def test_without_allow_code_python_stays_unsupported_and_nothing_runs(tmp_path: Path, monkeypatch) -> None:
    config, ran = sentinel_config(tmp_path / "src")
    out = tmp_path / "task"
    imported = invoke("import", config, "--out", out)
    assert imported.exit_code == 0, imported.output
    assert "`python` in test promptfooconfig.yaml:4: evals cannot run it (pass --allow-code" in imported.output
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "golden.jsonl", "task.yaml"]
    assert json.loads((out / "golden.jsonl").read_text())["assert"][0]["type"] == "unsupported"
    runs, _, _ = run_against_standin(tmp_path, out, {"hi": "hi"}, monkeypatch, "off")
    assert runs["passed"].tolist() == [False] and not ran.exists()
    # the same config with the flag: the code is written beside task.yaml and runs
    assert invoke("import", config, "--out", tmp_path / "on", "--allow-code").exit_code == 0
    runs, _, _ = run_against_standin(tmp_path, tmp_path / "on", {"hi": "hi"}, monkeypatch, "on")
    assert runs["passed"].tolist() == [True] and ran.read_text() == "ran"


def test_with_allow_code_each_test_passes_or_fails_as_promptfoo_says(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "python"
    imported = invoke("import", FIXTURES / "python.yaml", "--out", out, "--allow-code")
    assert imported.exit_code == 0, imported.output
    assert "not carried over" not in imported.output
    task = yaml.safe_load((out / "task.yaml").read_text())
    assert task["metrics"] == [{"name": "promptfoo_python.py:assertion", "id": "python"}]
    rows = [json.loads(line) for line in (out / "golden.jsonl").read_text().splitlines()]
    assert rows[1]["assert"][1] == {"metric": "python", "index": 1, "transform": ["JSON.parse(output)"]}
    assert not any(":" in str(c.get("metric", "")) for r in rows for c in r["assert"])  # no code reference
    good, _, _ = run_against_standin(tmp_path, out, {
        "greeting": "Hello there, friend!", "inventory": '{"count": 2, "items": ["a", "b"]}',
        "shouting": "the shouting is quiet"}, monkeypatch, "good")
    # 'hello' in it, 20/20 >= 0.5; the count is the items' (the transform parsed it), a list of items; not
    # upper case (not-python passes), and the topic var is in the answer
    assert good["passed"].tolist() == [True, True, True]
    bad, _, _ = run_against_standin(tmp_path, out, {
        "greeting": "Hi", "inventory": '{"count": 3, "items": ["a"]}', "shouting": "LOUD"}, monkeypatch, "bad")
    assert bad["passed"].tolist() == [False, False, False]
    scores = bad["scores"].tolist()
    # no 'hello'; 2/20 = 0.1 is below the threshold 0.5
    assert [scores[0][k]["value"] for k in ("check.python", "check.python#2")] == [0, 0]
    assert "returned 0.1, not at least 0.5" in scores[0]["checks"]["explanation"]
    # 3 counted but 1 item (the code's reason); the file's get_assert still finds a list of items
    assert [scores[1][k]["value"] for k in ("check.python", "check.python#2")] == [0, 1]
    assert "count 3 but 1 items" in scores[1]["checks"]["explanation"]
    # LOUD is upper case, so not-python fails; "shouting" is not in "LOUD"
    assert [scores[2][k]["value"] for k in ("check.python", "check.python#2")] == [0, 0]


def test_a_file_outside_the_configs_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "evil.py").write_text("def get_assert(output, context):\n    return True\n")
    (tmp_path / "src").mkdir()
    config = tmp_path / "src" / "promptfooconfig.yaml"
    config.write_text(yaml.safe_dump({"prompts": ["{{q}}"], "tests": [
        {"vars": {"q": "x"}, "assert": [{"type": "python", "value": "file://../evil.py"}]}]}))
    result = invoke("import", config, "--out", tmp_path / "task", "--allow-code")
    assert result.exit_code == 2
    assert "file://../evil.py is outside the config's folder" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "task").exists()


def test_a_golden_line_alone_cannot_reach_the_generated_code(tmp_path: Path) -> None:
    config, ran = sentinel_config(tmp_path / "src")
    out = tmp_path / "task"
    assert invoke("import", config, "--out", out, "--allow-code").exit_code == 0
    golden = out / "golden.jsonl"
    row = json.loads(golden.read_text())
    assert row["assert"] == [{"metric": "python", "index": 0}]
    # task.yaml no longer lists the generated metric: the golden line's pointer leads nowhere
    task_yaml = yaml.safe_load((out / "task.yaml").read_text())
    (out / "task.yaml").write_text(yaml.safe_dump({**task_yaml, "metrics": []}))
    with pytest.raises(EvalsError, match="python"):
        load_samples(load_task(str(out)))
    # nor can the line name the file itself, or carry python of its own
    for check in ({"metric": "promptfoo_python.py:assertion", "index": 0}, {"metric": "promptfoo_python:assertion"},
                  {"type": "python", "value": f"open({str(ran)!r}, 'w')"}):
        golden.write_text(json.dumps({**row, "assert": [check]}) + "\n")
        with pytest.raises(EvalsError):
            load_samples(load_task(str(out)))
    assert not ran.exists()
