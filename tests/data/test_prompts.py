"""Prompt templates render in a bounded sandbox: a template that fails, or a prompt past the cap, is refused in
one line naming the example's file, line and the template, before any run is stored; nothing a template builds
grows past the cap, so the memory is never spent."""

from __future__ import annotations

import json
import tracemalloc

import jinja2
import pytest
from typer.testing import CliRunner

from evals.cli import app
from evals.data.prompts import render_messages
from evals.errors import EvalsError
from evals.types import PromptSpec
from tests.conftest import assert_refused, stored_runs


def run(folder, *args: str):
    return CliRunner().invoke(app, ["run", str(folder), "--model", "fake:echo", "--no-progress", *args])


def prompt(user: str, system: str = "", **extra) -> dict:
    return {"prompt": {"system": system, "user": user, **extra}}


@pytest.mark.parametrize("user", [
    "{{ ''.__class__ }} {{ question }}",  # the sandbox forbids it
    "{{ question.__class__.__mro__ }}",
    "{{ 1 / 0 }} {{ question }}",
    "{{ question }} {{ nope }}",  # a field no example has
])
def test_a_template_that_fails_is_one_line_naming_the_example_and_no_run_is_left(make_task, user) -> None:
    folder = make_task(**prompt(user))
    line = assert_refused(run(folder), "golden.jsonl:1 field 'prompt.user'")
    assert "example 'ex000'" in line


def test_a_template_that_fails_on_a_later_example_leaves_no_run_either(make_task) -> None:
    rows = [{"id": f"e{i}", "question": "q", "n": 1 if i != 3 else 0, "reference": "r"} for i in range(6)]
    folder = make_task(rows=rows, **prompt("{{ question }} {{ 10 // n }}"))
    assert "ZeroDivisionError" in assert_refused(run(folder), "golden.jsonl:4 field 'prompt.user'")


def test_a_template_reading_no_field_is_refused_at_load_naming_task_yaml(make_task) -> None:
    folder = make_task(**prompt("{{ question }}", system="{{ ''.__class__.__mro__ }}"))
    assert "sandbox forbids" in assert_refused(run(folder), "task.yaml:")
    assert "field 'prompt.system'" in CliRunner().invoke(app, ["run", str(folder)]).stderr


@pytest.mark.parametrize("user", [
    "{{ 'x' * 3000000000 }}{{ question }}",
    "{{ question * 100000000 }}",
    "{{ '%3000000000s' % question }}",
    "{{ '{:>3000000000}'.format(question) }}",
    "{{ question|center(3000000000) }}",
    "{{ question.ljust(3000000000) }}",
    "{{ question|indent(3000000000) }}",
    "{{ (question * 1000)|replace('', question * 1000) }}",
    "{{ ','.join([question * 1000] * 100000) }}",
    "{{ range(100000)|join(question * 1000) }}",
    "{{ (question * 1000)|wordwrap(1, wrapstring=question * 1000) }}",
    "{% set ns = namespace(x=question) %}{% for i in range(64) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x }}",
    "{% set ns = namespace(x=question) %}{% for i in range(64) %}{% set ns.x = ns.x + ns.x %}{% endfor %}{{ ns.x }}",
    "{% set ns = namespace(x=[question]) %}{% for i in range(64) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}"
    "{{ ns.x|tojson }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{{ question }}{% endfor %}{% endfor %}",
])
def test_a_prompt_past_the_cap_is_refused_before_its_memory_is_spent(make_task, user) -> None:
    folder = make_task(**prompt(user))
    tracemalloc.start()
    try:
        result = run(folder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    line = assert_refused(result, "golden.jsonl:1 field 'prompt.user'")
    assert "over 1,000,000 characters" in line and "prompt.max_chars" in line
    assert peak < 100e6  # the run's imports and a cap's worth of text, not the gigabytes asked for


def test_numbers_are_bounded_too(make_task) -> None:
    grow = "{% set ns = namespace(x=3) %}{% for i in range(64) %}{% set ns.x = ns.x * ns.x %}{% endfor %}"
    folder = make_task(**prompt(grow + "{{ ns.x }}{{ question }}"))
    assert "a number over 65,536 bits" in assert_refused(run(folder), "golden.jsonl:1 field 'prompt.user'")


def test_the_cap_counts_every_message_and_task_yaml_raises_it(make_task) -> None:
    rows = [{"id": "a", "question": "ab", "reference": "r"}, {"id": "b", "question": "abc", "reference": "r"}]
    folder = make_task(rows=rows, **prompt("{{ question * 100 }}", system="s" * 50, max_chars=349))
    # example b: 50 + 300 characters, one past the cap
    assert "over 349 characters" in assert_refused(run(folder), "golden.jsonl:2 field 'prompt.user'")
    folder = make_task(rows=rows, **prompt("{{ question * 100 }}", system="s" * 50, max_chars=350))
    result = run(folder, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["n"] == 2 and stored_runs() == 1


def test_the_default_cap_is_a_million_characters() -> None:
    spec = PromptSpec(system="", user="{{ q * n }}")
    assert len(render_messages(spec, {"q": "ab", "n": 500_000})[0].content) == 1_000_000
    with pytest.raises(EvalsError, match="over 1,000,000 characters"):
        render_messages(spec, {"q": "ab", "n": 500_001})


@pytest.mark.parametrize("bad", [0, -1, "many", 1.5, True])
def test_max_chars_must_be_a_positive_whole_number(make_task, bad) -> None:
    line = assert_refused(run(make_task(**prompt("{{ question }}", max_chars=bad))), "field 'prompt.max_chars'")
    assert "task.yaml:" in line and "a whole number" in line


@pytest.mark.parametrize("template", [
    "{{ q }} {{ q * 3 }} {{ q ~ q }} {{ '%5s|%-4s' % (q, q) }} {{ '{:>6}'.format(q) }} {{ q|center(9) }}",
    "{% for w in q.split() %}{{ loop.index }}. {{ w|upper }}{{ ', ' if not loop.last }}{% endfor %}",
    "{{ items|join(', ') }} {{ items|tojson }} {{ items * 2 }} {{ (items + ['z'])|length }} {{ 2 ** 64 }}",
    "{{ q|replace('a', 'AA')|indent(2) }} {{ q.replace('b', '-').zfill(8) }} {{ '{x}-{y}'.format(x=1, y=q) }}",
])
def test_ordinary_templates_render_as_jinja_renders_them(template) -> None:
    from evals.data.prompts import render_template

    fields = {"q": "ab ba", "items": ["x", "y"]}
    plain = jinja2.Environment(keep_trailing_newline=False).from_string(template).render(**fields)
    assert render_template(template, fields, limit=10_000) == plain


def test_the_prompt_stops_rendering_as_soon_as_it_passes_the_cap() -> None:
    from evals.data.prompts import render_template

    tracemalloc.start()
    try:
        with pytest.raises(EvalsError, match="over 1,000 characters"):
            render_template("{% for i in range(100000) %}{{ q }}{% endfor %}", {"q": "x" * 100}, limit=1_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1e6  # 10,000,000 characters asked for; a few parts rendered
