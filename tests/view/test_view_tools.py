"""Tool-call runs as people read them: `evals show` lists an answer's calls, the viewer shows the example's chat
history as turns (calls and results included) and the answer's calls, a comparison shows both sides' calls."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import yaml
from starlette.testclient import TestClient
from typer.testing import CliRunner

from evals.cli import app
from evals.run.store import Store
from evals.view.app import create_app

REFUND = {"type": "function", "function": {"name": "refund", "description": "Refund an order.", "parameters": {
    "type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}
HISTORY = [{"role": "user", "content": "Was A1 delivered?"},
           {"role": "assistant", "content": None, "tool_calls": [
               {"id": "c1", "type": "function",
                "function": {"name": "refund", "arguments": "{\"order_id\": \"A0\"}"}}]},
           {"role": "tool", "tool_call_id": "c1", "content": "refunded A0"},
           {"role": "user", "content": "Wrong order! Refund A1."}]


def tool_task(tmp_path: Path) -> Path:
    folder = tmp_path / "support"
    folder.mkdir()
    answers = [json.dumps({"tool_calls": [{"name": "refund", "arguments": {"order_id": "A1"}}]}),
               json.dumps({"tool_calls": [{"name": "refund", "arguments": {"order_id": "A9"}}]})]
    spec = {"name": "support", "dataset": {"golden": "golden.jsonl"}, "prompt": {"system": "Help."},
            "tools": [REFUND], "metrics": ["tool_calls_f1"], "pass": {"tool_calls_f1": 1},
            "models": [{"spec": "fake:good", "options": {"responses": answers[:1]}},
                       {"spec": "fake:bad", "options": {"responses": answers[1:]}}]}
    (folder / "task.yaml").write_text(yaml.safe_dump(spec))
    row = {"id": "ex0", "messages": HISTORY, "reference": {"name": "refund", "arguments": {"order_id": "A1"}}}
    (folder / "golden.jsonl").write_text(json.dumps(row) + "\n")
    return folder


def text_of(page: str) -> str:
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_show_view_and_compare_carry_the_calls(tmp_path: Path) -> None:
    folder = tool_task(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["run", str(folder)]).exit_code == 0
    store = Store(os.environ["EVALS_STORE"])
    runs = {r.model: r.id for r in store.list_runs()}
    shown = runner.invoke(app, ["show", runs["fake:bad"]], terminal_width=200).stdout
    assert '-> refund({"order_id": "A9"})' in shown
    as_json = json.loads(runner.invoke(app, ["show", runs["fake:bad"], "--json"]).stdout)
    assert as_json["examples"][0]["tool_calls"] == [{"name": "refund", "arguments": {"order_id": "A9"}}]

    client = TestClient(create_app(os.environ["EVALS_STORE"], allowed_hosts=["testserver"], token="t"))
    page = client.get(f"/runs/{runs['fake:bad']}/examples/ex0").text
    assert page.count('class="message ') == 5  # the system prompt and the four turns of the history
    assert 'class="message tool"' in page and "result of c1" in text_of(page)
    assert '→ refund({"order_id": "A0"}) [c1]' in text_of(page)  # the history's call
    assert 'id="tool-calls"' in page and '→ refund({"order_id": "A9"})' in text_of(page)  # the answer's

    compared = runner.invoke(app, ["compare", runs["fake:good"], runs["fake:bad"], "--json"])
    [regressed] = json.loads(compared.stdout)["regressed"]
    assert (regressed["output_a"], regressed["output_b"]) == ('-> refund({"order_id": "A1"})',
                                                              '-> refund({"order_id": "A9"})')
    report = tmp_path / "cmp.md"
    written = runner.invoke(app, ["compare", runs["fake:good"], runs["fake:bad"], "--markdown", str(report)])
    assert written.exit_code == 0
    assert '-&gt; refund({"order\\_id": "A9"})' in report.read_text()  # escaped as Markdown escapes model output
