"""Named prompts (`prompts:` and `prompt: NAME`), retrieved demos (`few_shot: {retrieve: k}`), and writing a named
prompt into a user's task.yaml without touching anything else in it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from evals.data.prompts import render_messages
from evals.data.tasks import load_task
from evals.data.variants import write_prompt
from evals.errors import EvalsError
from evals.types import FewShot, PromptSpec
from tests.conftest import assert_refused_at_load
from tests.triage_standin import rows, write_task

USER_FILE = """\
# my task: keep this comment
name: triage   # and this one
dataset: {golden: golden.jsonl, train: train.jsonl, fields: [ticket]}
prompt:
  system: Triage it.
  user: "Ticket: {{ ticket }}"
prompts:
  terse:     # a prompt of mine
    system: One word.
    user: "Ticket: {{ ticket }}"
  optimized:
    system: old
    user: "{{ ticket }}"

  # comments about what follows stay with it
  later:
    system: Later.
    user: "{{ ticket }}"
metrics: [{name: exact_match}]
"""

PROMPT = PromptSpec("Line one.\nLine two.", "Ticket: {{ ticket }}", (FewShot({"ticket": "down"}, "outage"),))


def test_a_named_prompt_replaces_only_its_own_lines(tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_text(USER_FILE)
    write_prompt(path, "optimized", PROMPT, "written by a test")
    after = path.read_text()
    lines = USER_FILE.splitlines()
    start, end = lines.index("  optimized:"), lines.index("  # comments about what follows stay with it")
    assert after.splitlines()[:start] == lines[:start] and after.splitlines()[-(len(lines) - end):] == lines[end:]
    data = yaml.safe_load(after)
    assert data["prompts"]["optimized"] == {"system": "Line one.\nLine two.", "user": "Ticket: {{ ticket }}",
                                            "few_shot": [{"fields": {"ticket": "down"}, "answer": "outage"}]}
    assert data["prompts"]["terse"]["system"] == "One word." and data["prompts"]["later"]["system"] == "Later."
    assert "    # written by a test" in after and "    system: |-\n      Line one.\n      Line two." in after


def test_without_prompts_a_block_is_appended_and_the_file_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    original = "name: t\nprompt: {system: s, user: u}  # mine\nmetrics: [exact_match]\n"
    path.write_text(original)
    write_prompt(path, "optimized", PromptSpec("s2", "u", retrieve=3), "c")
    assert path.read_text().startswith(original)
    assert yaml.safe_load(path.read_text())["prompts"] == {"optimized": {"system": "s2", "user": "u",
                                                                         "few_shot": {"retrieve": 3}}}


def test_a_flow_style_prompts_block_is_refused_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_text("name: t\nprompts: {a: {system: s, user: u}}\n")
    with pytest.raises(EvalsError, match="block mapping"):
        write_prompt(path, "optimized", PROMPT, "c")
    assert path.read_text() == "name: t\nprompts: {a: {system: s, user: u}}\n"


def test_retrieved_demos_are_the_nearest_training_examples_and_never_the_example_itself(tmp_path: Path) -> None:
    folder = write_task(tmp_path / "t", "http://127.0.0.1:9/v1",
                        prompt={"system": "s", "user": "Ticket: {{ ticket }}", "few_shot": {"retrieve": 2}})
    task = load_task(str(folder))
    assert task.prompt.retrieve == 2 and len(task.prompt.pool) == 60
    golden = rows(12, "g")
    for row in golden:
        messages = render_messages(task.prompt, {"ticket": row["ticket"]})
        demos = [m.content for m in messages if m.role == "assistant"]
        assert demos == [row["reference"]] * 2  # the two nearest tickets share its label
    train = rows(1, "t")[0]
    shown = [m.content for m in render_messages(task.prompt, {"ticket": train["ticket"]}) if m.role == "user"][:-1]
    assert f"Ticket: {train['ticket']}" not in shown


def test_bad_named_prompts_are_refused_at_load(tmp_path: Path) -> None:
    folder = write_task(tmp_path / "a", "http://127.0.0.1:9/v1")
    spec = yaml.safe_load((folder / "task.yaml").read_text())
    spec["models"][0]["prompt"] = "optimised"
    spec["prompts"] = {"optimized": {"system": "s", "user": "{{ ticket }}"}}
    (folder / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    assert_refused_at_load(folder, "models.0.prompt", "no prompt named 'optimised' under `prompts:`; did you mean "
                                                      "'optimized'?")
    spec["models"][0].pop("prompt")
    spec["prompts"]["optimized"]["few_shot"] = {"retrieve": 0}
    (folder / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    assert_refused_at_load(folder, "prompts.optimized.few_shot.retrieve", "1 or more")
    del spec["dataset"]["train"]
    spec["prompts"]["optimized"]["few_shot"] = {"retrieve": 2}
    (folder / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    assert_refused_at_load(folder, "prompts.optimized.few_shot.retrieve", "set dataset.train")
