"""Golden lines and task.yaml files that are not what they should be end in one line naming the file, line and
field (exit 2, no run stored); a golden set is read no further than the examples a run uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from evals.cli import app
from tests.conftest import QA_TASK, assert_refused


def run(folder: Path, *args: str):
    return CliRunner().invoke(app, ["run", str(folder), "--model", "fake:echo", "--no-progress", *args])


GOOD = '{"id": "a", "question": "q", "reference": {"labels": []}}\n'


@pytest.mark.parametrize(("line", "where", "says"), [
    (b'{"id": "b", "question": "caf\xe9", "reference": {}}\n', "golden.jsonl:2",
     "not UTF-8 text: byte 0xe9 at column 29"),
    (b'{"id": "b", "question": NaN, "reference": {}}\n', "golden.jsonl:2 field 'question'", "NaN is not a number"),
    (b'{"id": "b", "question": "q", "reference": {"x": [1, -Infinity]}}\n', "golden.jsonl:2 field 'reference.x.1'",
     "-Infinity is not a number"),
    (b'{"id": "b", "question": "q", "reference": {"x": 1e999}}\n', "golden.jsonl:2 field 'reference.x'",
     "1e999 is not a number"),
    (b'{"id": "b", "question": "q", "reference": ' + b"9" * 5000 + b'}\n', "golden.jsonl:2 field 'reference'",
     "(5000 digits) is not a number"),
    (b'{"id": "b", "question": ' + b"[" * 100_000 + b"]" * 100_000 + b', "reference": {}}\n', "golden.jsonl:2",
     "nested more than 100 deep"),
    (b'{"id": "b", "question": ' + b"[" * 500 + b"]" * 500 + b', "reference": {}}\n', "golden.jsonl:2",
     "nested more than 100 deep"),
    (b'{"id": "b", "question": "q", "reference": {}\n', "golden.jsonl:2", "malformed JSON"),
])
def test_a_bad_golden_line_is_one_line_naming_it(make_task, line: bytes, where: str, says: str) -> None:
    folder = make_task(golden_text="")
    (folder / "golden.jsonl").write_bytes(GOOD.encode() + line)
    assert says in assert_refused(run(folder), where)


def test_a_byte_order_mark_is_not_an_error(make_task) -> None:
    folder = make_task(golden_text="")
    (folder / "golden.jsonl").write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert run(folder).exit_code == 0


def test_task_yaml_that_is_not_utf8_names_its_line(make_task) -> None:
    folder = make_task()
    text = (folder / "task.yaml").read_bytes()
    (folder / "task.yaml").write_bytes(text.replace(b"Answer with JSON.", b"R\xe9pondez en JSON."))
    line = 1 + text[:text.index(b"Answer with JSON.")].count(b"\n")
    assert "not UTF-8 text: byte 0xe9" in assert_refused(run(folder), f"task.yaml:{line}")


def alias_bomb(key: str, depth: int = 9) -> str:
    """A mapping under `key` whose last entry stands for 9**depth strings, in a few hundred bytes."""
    lines = [f"{key}:", "  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, depth)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("key", ["description", "name", "metrics"])
def test_a_yaml_alias_bomb_is_refused_before_it_is_expanded(make_task, key: str) -> None:
    folder = make_task()
    spec = {k: v for k, v in yaml.safe_load((folder / "task.yaml").read_text()).items() if k != key}
    text = yaml.safe_dump(spec, sort_keys=False) + alias_bomb(key)
    (folder / "task.yaml").write_text(text)
    line = text.splitlines().index(f"{key}:") + 1
    assert "aliases" in assert_refused(run(folder), f"task.yaml:{line} field '{key}'")


def test_aliases_that_repeat_little_are_fine(make_task) -> None:
    folder = make_task()
    text = yaml.safe_dump({k: v for k, v in QA_TASK.items() if k != "name"}, sort_keys=False)
    (folder / "task.yaml").write_text("description: &same shared words\nname: *same\n" + text)
    result = CliRunner().invoke(app, ["run", str(folder), "--model", "fake:echo", "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    from evals.data.tasks import load_task

    assert load_task(str(folder)).name == "shared words"


@pytest.mark.parametrize(("key", "value", "says"), [
    ("description", ["a", "list"], "expected text, got a list"),
    ("name", {"a": 1}, "expected text, got a dict"),
])
def test_text_settings_must_be_text(make_task, key, value, says) -> None:
    assert says in assert_refused(run(make_task(**{key: value})), f"field '{key}'")


def test_limit_reads_no_further_than_the_examples_it_uses(make_task, tmp_path: Path) -> None:
    """A 20 MB golden set with --limit 10: the run's peak of Python memory is a small fraction of the file, and a
    bad line past the examples used is never reached."""
    rows = [{"id": f"ex{i:06d}", "question": f"question {i} " + "lorem ipsum dolor sit amet " * 8,
             "reference": {"labels": [f"l{i % 3}"]}} for i in range(80_000)]
    folder = make_task(rows=rows)
    with (folder / "golden.jsonl").open("a") as f:
        f.write("not json\n")
    size = (folder / "golden.jsonl").stat().st_size
    assert size > 20e6
    script = (  # the package imported first: what is measured is the run, not the imports
        "import sys, tracemalloc\n"
        "import evals.cli, evals.run.runner, evals.run.store, evals.analyse.summary, evals.report.terminal\n"
        "import evals.providers.fake, evals.metrics.structure, evals.metrics.sets\n"
        "tracemalloc.start()\n"
        "try:\n"
        "    evals.cli.app([sys.argv[1], sys.argv[2], '--limit', '10', '-m', 'fake:echo', '--no-progress'])\n"
        "except SystemExit as e:\n"
        "    print('exit', e.code, 'peak', tracemalloc.get_traced_memory()[1])\n")
    out = subprocess.run([sys.executable, "-c", script, "run", str(folder)], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "EVALS_STORE": str(tmp_path / "big.db")})
    words = out.stdout.split()
    assert words[words.index("exit") + 1] == "0", out.stdout + out.stderr
    assert int(words[words.index("peak") + 1]) < size / 4, out.stdout  # was 10 times the file, read whole
    assert run(folder).exit_code == 2  # without --limit the whole file is read, and its last line refused
    assert json.loads((folder / "golden.jsonl").open().readline())["id"] == "ex000000"
