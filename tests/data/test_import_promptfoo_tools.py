"""A promptfoo config whose provider offers tools imports as a task with `tools:`: the models are offered the
functions, and `tool-call-f1` and `is-valid-openai-tools-call` score the calls they make (real calls over the
OpenAI wire format, from the stand-in)."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from evals.cli import app
from evals.data.golden import load_samples
from evals.data.tasks import load_task
from evals.run.store import Store, load_run
from tests.standin_server import StandinServer, last_user_message

CONFIG = """
prompts: ['{{q}}']
providers:
  - id: openai:gpt-4o-mini
    config:
      tools:
        - type: function
          function:
            name: get_weather
            parameters: {type: object, properties: {city: {type: string}}, required: [city]}
        - type: function
          function:
            name: get_time
            parameters: {type: object, properties: {zone: {type: string}}, required: [zone]}
tests:
  - vars: {q: weather in Paris and the time there}
    assert:
      - {type: tool-call-f1, value: [get_weather, get_time]}
      - {type: is-valid-openai-tools-call}
  - vars: {q: just the weather in Rome}
    assert:
      - {type: tool-call-f1, value: "get_weather"}
"""


def test_tools_and_tool_assertions_import_and_score_real_calls(tmp_path: Path, monkeypatch) -> None:
    source, out = tmp_path / "promptfooconfig.yaml", tmp_path / "weather"
    source.write_text(CONFIG)
    runner = CliRunner()
    imported = runner.invoke(app, ["import", "promptfoo", str(source), "--out", str(out)])
    assert imported.exit_code == 0, imported.output
    spec = yaml.safe_load((out / "task.yaml").read_text())
    assert [t["function"]["name"] for t in spec["tools"]] == ["get_weather", "get_time"]
    task = load_task(str(out))
    assert [[c.metric.name for c in s.checks] for s in load_samples(task)] == [
        ["tool_calls_f1", "openai_tools_call"], ["tool_calls_f1"]]
    assert "`tool-call-f1` is `tool_calls_f1` by name" in (out / "README.md").read_text()

    def answer(body: dict) -> dict:
        assert [t["function"]["name"] for t in body["tools"]] == ["get_weather", "get_time"]  # offered
        made = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
        if "time" in last_user_message(body):
            made.append({"name": "get_time", "arguments": {"zone": 3}})  # breaks the schema: zone is a string
        return {"text": "", "tool_calls": made}

    store = tmp_path / "runs.db"
    with StandinServer(answer) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        ran = runner.invoke(app, ["run", str(out), "-m", "openai:gpt-4o-mini", "--store", str(store), "--no-cache",
                                  "--no-progress"])
    assert ran.exit_code == 0, ran.output
    df = load_run(Store(store).list_runs()[0].id, Store(store))
    # both functions called, as expected (F1 1), but get_time's arguments break its schema; Rome: 1 of 1
    assert df["score.check.tool-call-f1"].tolist() == [1.0, 1.0]
    assert df["score.check.is-valid-openai-tools-call"].tolist()[0] == 0.0
    assert df["passed"].tolist() == [False, True]
