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
