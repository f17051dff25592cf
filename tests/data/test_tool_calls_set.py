"""The shipped tool-calls golden set: reproducible byte for byte, conversations decontaminated, every reference
a valid call of the declared functions (checked by the loader), multi-turn histories and text answers present."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

from evals.data.contamination import find_overlap, input_text
from evals.data.golden import load_samples
from evals.data.tasks import load_task
from evals.data.tools import expected_calls

FOLDER = Path(__file__).resolve().parents[2] / "golden_sets" / "tool-calls"


def test_generator_reproduces_the_committed_files(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(FOLDER / "generate.py"), "--out", str(tmp_path)], check=False,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for name in ("golden.jsonl", "train.jsonl"):
        assert (tmp_path / name).read_bytes() == (FOLDER / name).read_bytes(), f"{name} differs"


def test_the_task_loads_every_reference_as_a_valid_call_and_nothing_golden_is_in_train() -> None:
    task = load_task(str(FOLDER))
    golden, train = load_samples(task), load_samples(task, "train")
    assert (len(golden), len(train)) == (50, 400)
    assert [t.name for t in task.tools] == ["lookup_order", "refund_order", "cancel_order", "change_address",
                                            "escalate_to_human"]
    called = Counter(c.name for s in golden for c in expected_calls(s.reference) or ())
    assert set(called) == {t.name for t in task.tools}  # every function is expected somewhere in the golden set
    assert sum(expected_calls(s.reference) is None for s in golden) >= 5  # answers in words
    assert sum(len(expected_calls(s.reference) or ()) > 1 for s in golden) >= 5  # parallel calls
    assert sum(len(s.messages) > 1 for s in golden) >= 10  # multi-turn, tool results among them
    assert any(m.role == "tool" for s in golden for m in s.messages)
    assert find_overlap(task, train, golden) == []
    assert len({input_text(task, s) for s in golden + train}) == 450


def test_task_yaml_lists_the_three_models_and_the_decision() -> None:
    spec = yaml.safe_load((FOLDER / "task.yaml").read_text(encoding="utf-8"))
    assert [m["spec"] for m in spec["models"]] == ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "local:smollm2"]
    assert spec["decision"]["candidate"] == "local:smollm2+lora:finetune/adapters/tool-calls"
    assert "user" not in spec["prompt"]  # the conversations are the input
    assert json.loads((FOLDER / "tools.json").read_text())[0]["type"] == "function"


def test_decontamination_compares_whole_conversations() -> None:
    """Two chats ending on the same turn are different examples; the same chat in other case is not."""
    from evals.types import Message, Sample

    task = load_task(str(FOLDER))
    golden = [next(s for s in load_samples(task) if len(s.messages) == 3 and s.messages[-1].role == "user")]
    history = golden[0].messages
    same_end = Sample("t1", {}, "x", messages=(Message("user", "a different first message"), *history[1:]))
    shouted = Sample("t2", {}, "x", messages=tuple(Message(m.role, m.content.upper(), m.tool_calls, m.tool_call_id)
                                                   for m in history))
    found = find_overlap(task, [same_end, shouted], golden)
    assert [(o.train_id, o.exact) for o in found] == [("t2", False)]
