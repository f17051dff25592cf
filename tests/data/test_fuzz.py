"""Fuzzing the two files a user hands evals: hypothesis writes golden.jsonl lines and task.yaml files that are
wrong in every way it can think of (bytes that are not UTF-8, wrong types, missing fields, deep nesting, NaN,
huge numbers, bad templates, unknown metric names, ...) and `evals run` must answer each one the same way:
exit 2, one line naming the file and line, no traceback, no run stored."""

from __future__ import annotations

import json
import re
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import jinja2
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from evals.cli import app

TASK: dict[str, Any] = {
    "name": "fuzz",
    "dataset": {"golden": "golden.jsonl", "fields": ["question"], "checks": "assert"},
    "prompt": {"system": "Answer in one word.", "user": "Question: {{ question }}"},
    "models": [{"spec": "fake:echo", "max_tokens": 50}],
    "metrics": [{"name": "exact_match"}],
    "pass": {"exact_match": 1},
}
ROWS = [{"id": f"ex{i}", "question": f"question {i}", "reference": f"Question: question {i}"} for i in range(3)]
FUZZ = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOT_UTF8 = [b"\xff", b"\xfe", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"]
NOT_A_NUMBER = ["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "1E+309"]
unknown_name = st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True).map(lambda s: f"no_such_{s}")


def lines(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def refused(task: bytes, golden: bytes) -> str:
    """`evals run` on this task folder: exit 2, one line naming a file and line, no traceback, no run."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "task.yaml").write_bytes(task)
        (folder / "golden.jsonl").write_bytes(golden)
        store = folder / "evals.db"
        result = CliRunner().invoke(app, ["run", str(folder), "--store", str(store), "--no-progress"])
        assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
        assert "Traceback" not in result.output
        [line] = result.stderr.strip().splitlines()
        if store.exists():
            db = sqlite3.connect(store)
            assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
            db.close()
        return line.replace(str(folder) + "/", "")


def test_the_unbroken_task_runs() -> None:
    """What the fuzzing breaks works as it is: every failure below is the mutation's."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "task.yaml").write_text(yaml.safe_dump(TASK))
        (folder / "golden.jsonl").write_bytes(lines(ROWS))
        result = CliRunner().invoke(app, ["run", str(folder), "--store", str(folder / "s.db"), "--no-progress",
                                          "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)[0]["matches"] == 3


# --- golden lines ----------------------------------------------------------------------------------------
record = st.fixed_dictionaries({"id": st.text(min_size=1, max_size=8).map(lambda s: f"new-{s}"),
                                "question": st.text(min_size=1, max_size=20).filter(str.strip),
                                "reference": st.text(max_size=20)})


def _is_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


def _with(token: str, where: str) -> Any:
    """A record with `token` (raw JSON text) at `where`."""
    def put(r: dict[str, Any]) -> bytes:
        r = {**r, where: {"deep": [1, "__X__"]}} if where == "reference" else {**r, where: "__X__"}
        return json.dumps(r).encode().replace(b'"__X__"', token.encode())
    return put


bad_golden_line = st.one_of(
    st.tuples(record, st.sampled_from(NOT_UTF8)).map(  # bytes that are not UTF-8, inside a string
        lambda t: json.dumps({**t[0], "question": "Q"}).encode().replace(b'"Q"', b'"Q' + t[1] + b'"')),
    st.text(min_size=1, max_size=40).filter(lambda t: "\n" not in t and t.strip(" \t\r\n") and not _is_object(t))
    .map(str.encode),  # not JSON, or JSON that is not an object
    st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.none(), st.booleans(), st.text(max_size=5))
    .map(lambda v: json.dumps(v).encode()),
    st.tuples(record, st.sampled_from(["id", "question", "reference"])).map(  # a field missing
        lambda t: json.dumps({k: v for k, v in t[0].items() if k != t[1]}).encode()),
    st.tuples(record, st.sampled_from(["id", "question", "reference"]), st.sampled_from(["", None])).map(
        lambda t: json.dumps({**t[0], t[1]: t[2]}).encode()),  # ... or empty
    record.map(lambda r: json.dumps({**r, "id": "ex0"}).encode()),  # an id the first line has
    st.tuples(record, st.sampled_from([[1], {"a": 1}, True])).map(lambda t: json.dumps({**t[0], "id": t[1]}).encode()),
    st.tuples(record, st.one_of(st.integers(101, 2000), st.just(100_000)), st.sampled_from(["[", '{"a": '])).map(
        lambda t: _with(t[2] * t[1] + "1" + ("]" if t[2] == "[" else "}") * t[1], "question")(t[0])),  # too deep
    st.tuples(record, st.sampled_from(NOT_A_NUMBER), st.sampled_from(["question", "reference"])).map(
        lambda t: _with(t[1], t[2])(t[0])),
    st.tuples(record, st.integers(4301, 20_000)).map(lambda t: _with("9" * t[1], "reference")(t[0])),
    st.tuples(record, st.one_of(
        st.sampled_from(["x", 5, {"type": "contains", "value": "a"}, [5], [{"type": "contains"}],
                         [{"type": "regex", "value": "("}], [{"type": "contains", "value": "a", "weight": "x"}],
                         [{"type": "contains", "value": "a", "threshold": "high"}], [{"metric": ["x"]}]]),
        unknown_name.map(lambda n: [{"metric": n}]),
        unknown_name.map(lambda n: [{"type": n, "value": "a"}]))).map(
        lambda t: json.dumps({**t[0], "assert": t[1]}).encode()),  # checks that are not checks
)


@FUZZ
@given(before=st.integers(1, 3), bad=bad_golden_line, after=st.integers(0, 2))
def test_every_malformed_golden_line_is_one_line_naming_it(before: int, bad: bytes, after: int) -> None:
    rows = [*ROWS, *({"id": f"more{i}", "question": "q", "reference": "r"} for i in range(3))]
    golden = lines(rows[:before]) + bad + b"\n" + lines(rows[3:3 + after])
    line = refused(yaml.safe_dump(TASK).encode(), golden)
    assert f"golden.jsonl:{before + 1}" in line, line


# --- task.yaml -----------------------------------------------------------------------------------------
def _compiles(source: str) -> bool:
    try:
        jinja2.Environment().parse(source)
        jinja2.Environment().from_string(source)
        return True
    except (jinja2.TemplateError, RecursionError):
        return False


RUNTIME_FAILURES = ["{{ question.__class__ }}", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "{{ 1 / 0 }}",
                    "{{ question }} {{ nope }}", "{{ question * 3000000000 }}", "{{ 'x' * 10 ** 9 }}",
                    "{{ question|center(10 ** 9) }}", "{{ range(10 ** 9)|list }}", "{{ question[10 ** 9] }}"]
template = st.one_of(
    st.sampled_from(RUNTIME_FAILURES),
    st.lists(st.sampled_from([*"{}%#|()[]'\". -+*~", "if", "for", "endif", "question", "nofilter", "x"]),
             min_size=2, max_size=12).map("".join).filter(lambda t: t.strip() and not _compiles(t)),
)
number_out_of_range = st.one_of(st.integers(max_value=0), st.integers(min_value=1001, max_value=10**30))
SETTINGS: list[tuple[tuple[str | int, ...], Any]] = [  # a setting, and what it must not be
    (("models",), st.one_of(st.integers(), st.text(max_size=5).filter(lambda s: ":" not in s), st.just({"a": 1}),
                            st.just([5]))),
    (("models", 0, "spec"), st.one_of(st.integers(), st.just(""), unknown_name.map(lambda n: f"{n}:model"))),
    (("models", 0, "temperature"), st.sampled_from(["hot", float("nan"), float("inf"), [1]])),
    (("models", 0, "max_tokens"), st.one_of(st.integers(max_value=0), st.just("many"), st.just(1.5))),
    (("models", 0, "price"), st.sampled_from([5, {"input_per_mtok": "x", "output_per_mtok": 1},
                                              {"input_per_mtok": -1, "output_per_mtok": 1},
                                              {"input_per_mtok": float("nan"), "output_per_mtok": 1}, {"bogus": 1}])),
    (("models", 0, "options"), st.sampled_from([5, "x", [1]])),
    (("metrics",), st.one_of(st.integers(), st.just({"a": 1}), st.just([5]), st.just([{"name": ""}]))),
    (("metrics", 0, "name"), st.one_of(unknown_name, st.just(["x"]), st.just(5))),
    (("metrics", 0, "bogus_argument"), st.integers()),
    (("prompt",), st.one_of(st.integers(), st.text(max_size=5), st.just([1]))),
    (("prompt", "user"), st.one_of(template, st.just(""), st.just(5), st.just([1]), st.just({"a": 1}))),
    (("prompt", "system"), st.one_of(template, st.just([1]), st.just({"a": 1}))),
    (("prompt", "few_shot"), st.sampled_from([5, "x", [5], [{"fields": 5, "answer": "a"}], [{"answer": "a"}]])),
    (("prompt", "max_chars"), st.one_of(st.integers(max_value=0), st.just("x"), st.just(1.5), st.just(True))),
    (("dataset",), st.one_of(st.integers(), st.just([1]), st.just("golden.jsonl"))),
    (("dataset", "golden"), st.one_of(st.integers(), st.just(""), st.just("missing.jsonl"), st.just("golden.txt"))),
    (("dataset", "fields"), st.one_of(st.just("question"), st.just([1]), st.just(["nope"]))),
    (("dataset", "checks"), st.one_of(st.integers(), st.just(""))),
    (("pass",), st.one_of(st.just([1]), st.just("all"), unknown_name.map(lambda n: {n: 1}))),
    (("pass", "exact_match"), st.sampled_from(["high", float("nan"), float("inf"), [1]])),
    (("repeats",), st.one_of(number_out_of_range, st.just("x"), st.just(True), st.just(2.5))),
    (("judge_repeats",), number_out_of_range),
    (("decision",), st.one_of(st.integers(), st.just([1]), unknown_name.map(lambda n: {n: 1}))),
    (("check",), st.one_of(st.integers(), unknown_name.map(lambda n: {"floors": {n: 0.5}}))),
    (("name",), st.sampled_from([[1], {"a": 1}])),
    (("description",), st.sampled_from([[1], {"a": 1}])),
]
REQUIRED = [("prompt",), ("dataset",), ("dataset", "golden"), ("prompt", "user")]


def _set(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    task = json.loads(json.dumps(TASK))
    node = task
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return task


def _without(path: tuple[str, ...]) -> dict[str, Any]:
    task = json.loads(json.dumps(TASK))
    node = task
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return task


def _alias_bomb(key: str) -> bytes:
    bomb = [f"{key}:", "  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    bomb += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    task = {k: v for k, v in TASK.items() if k != key}
    return (yaml.safe_dump(task) + "\n".join(bomb) + "\n").encode()


task_key = st.sampled_from(["name", "description", "metrics", "models", "decision", "prompt", "x"])
BROKEN_YAML = ["foo: [1, 2\n", "\tbad: tab\n", "key: 'unterminated\n", "- a list item\n", "a: b: c\n", "name: again\n",
               "description: !!python/object/apply:os.system ['true']\n", "x: *undefined\n", "? [a]\n: b\n: c\n"]
bad_task_yaml = st.one_of(
    st.sampled_from(SETTINGS).flatmap(lambda s: s[1].map(lambda v: yaml.safe_dump(_set(s[0], v)).encode())),
    st.sampled_from(REQUIRED).map(lambda p: yaml.safe_dump(_without(p)).encode()),
    st.tuples(st.sampled_from([(), ("dataset",), ("prompt",), ("models", 0)]), unknown_name).map(
        lambda t: yaml.safe_dump(_set((*t[0], t[1]), 1)).encode()),  # a key evals does not know
    st.sampled_from(NOT_UTF8).map(lambda b: yaml.safe_dump(TASK).encode().replace(b"one word", b"one " + b + b"word")),
    st.sampled_from(BROKEN_YAML).map(lambda s: (yaml.safe_dump(TASK) + s).encode()),
    st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.just("text")).map(
        lambda v: yaml.safe_dump(v).encode()),  # a file that is not a mapping
    task_key.map(_alias_bomb),
    st.tuples(task_key, st.integers(1000, 5000)).map(
        lambda t: (yaml.safe_dump({k: v for k, v in TASK.items() if k != t[0]}) + f"{t[0]}: "
                   + "[" * t[1] + "]" * t[1] + "\n").encode()),
    st.integers(4301, 20_000).map(lambda n: (yaml.safe_dump(TASK) + "repeats: " + "9" * n + "\n").encode()),
)


@FUZZ
@given(task=bad_task_yaml)
def test_every_malformed_task_yaml_is_one_line_naming_the_file_and_line(task: bytes) -> None:
    line = refused(task, lines(ROWS))
    assert re.search(r"(task\.yaml|golden\.jsonl):\d+", line), line
