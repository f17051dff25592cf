"""A run whose answers are calls for some examples and words for others stores and reads back both."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml
from typer.testing import CliRunner

from evals.cli import app
from evals.run.store import Store, load_run


def test_calls_and_words_in_one_run_read_back(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    call = json.dumps({"tool_calls": [{"name": "ping", "arguments": {}}]})
    spec = {"name": "mixed", "dataset": {"golden": "golden.jsonl"}, "prompt": {"system": "S"},
            "tools": [{"name": "ping", "parameters": {"type": "object", "properties": {}}}],
            "models": [{"spec": "fake:x", "options": {"responses": [call, "no call needed"]}, "concurrency": 1}],
            "metrics": ["tool_calls_f1", "no_tool"], "pass": {"tool_calls_f1": 1}}
    (folder / "task.yaml").write_text(yaml.safe_dump(spec))
    rows = [{"id": "a", "messages": [{"role": "user", "content": "ping"}], "reference": {"name": "ping",
                                                                                       "arguments": {}}},
            {"id": "b", "messages": [{"role": "user", "content": "hi"}], "reference": "hello"}]
    (folder / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert CliRunner().invoke(app, ["run", str(folder), "--no-cache"]).exit_code == 0
    store = Store(os.environ["EVALS_STORE"])
    df = load_run(store.list_runs()[0].id, store)
    assert df["tool_calls"].tolist() == [[{"name": "ping", "arguments": {}}], []]
    assert df["output"].tolist() == ["", "no call needed"] and df["passed"].all()
    assert df["score.no_tool"].tolist()[1] == 1.0 and df["score.no_tool"].isna().tolist()[0]
    assert "tool_calls" not in load_run(store.list_runs()[0].id, store, texts=False)


def test_distill_keeps_a_teachers_calls_as_the_reference(tmp_path: Path) -> None:
    """A tool task's inputs are conversations; the teacher's valid calls become the references (by the
    reference-free filter openai_tools_call: calls of declared functions, arguments to their schema)."""
    folder = tmp_path / "support"
    folder.mkdir()
    good = json.dumps({"tool_calls": [{"name": "refund", "arguments": {"order_id": "A1"}}]})
    bad = json.dumps({"tool_calls": [{"name": "refund", "arguments": {"order_id": 7}}]})
    spec = {"name": "support", "dataset": {"golden": "golden.jsonl"}, "prompt": {"system": "S"},
            "tools": [{"name": "refund", "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                                                         "required": ["order_id"]}}],
            "models": [{"spec": "fake:teacher", "options": {"responses": [good, bad]}, "concurrency": 1}],
            "metrics": ["tool_calls_f1"]}
    (folder / "task.yaml").write_text(yaml.safe_dump(spec))
    golden = {"id": "g", "messages": [{"role": "user", "content": "refund G1"}],
              "reference": {"name": "refund", "arguments": {"order_id": "G1"}}}
    (folder / "golden.jsonl").write_text(json.dumps(golden) + "\n")
    inputs = [{"id": f"i{n}", "messages": [{"role": "user", "content": f"refund order {n}"}]} for n in range(2)]
    (folder / "inputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in inputs))
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["distill", str(folder), "--teacher", "fake:teacher", "--inputs",
                                      str(folder / "inputs.jsonl"), "--filter", "openai_tools_call", "--out", str(out),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    [kept] = [json.loads(line) for line in out.read_text().splitlines()]
    assert kept["id"] == "i0" and kept["reference"] == {"name": "refund", "arguments": {"order_id": "A1"}}
    assert kept["messages"] == inputs[0]["messages"]
