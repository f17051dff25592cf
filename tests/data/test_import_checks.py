"""promptfoo suites whose tests assert different things import as per-example checks, and run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evals.cli import app
from evals.data.golden import load_samples
from evals.data.importers import import_file
from evals.data.importers.promptfoo_mapping import json_field
from evals.data.tasks import load_task
from evals.run.store import Store
from tests.standin_server import StandinServer, last_user_message

FIXTURES = Path(__file__).parents[1] / "fixtures" / "importers"


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], terminal_width=200)


def test_promptfoo_getting_started_runs_each_example_against_its_own_check(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "translate"
    imported = invoke("import", "promptfoo", FIXTURES / "promptfoo_getting_started.yaml", "--out", out)
    assert imported.exit_code == 0, imported.output
    task = load_task(str(out))
    samples = load_samples(task)
    assert [[c.label for c in s.checks] for s in samples] == [["contains 'Bonjour le monde'"],
                                                             ["icontains 'Dónde está la biblioteca'"]]
    # a scripted stand-in model: right in French, wrong (no accents) in Spanish
    answers = {"French": "Bonjour le monde", "Spanish": "Donde esta la biblioteca?"}

    def answer(body: dict) -> str:
        return next(text for language, text in answers.items() if language in last_user_message(body))

    store = tmp_path / "runs.db"
    with StandinServer(answer) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        run = invoke("run", out, "-m", "openai:gpt-4o-mini", "--store", store, "--no-cache", "--json",
                     "--no-progress")
    assert run.exit_code == 0, run.output
    [summary] = json.loads(run.stdout)
    assert (summary["n"], summary["matches"]) == (2, 1)
    run_id = Store(store).list_runs()[0].id
    shown = invoke("show", run_id, "--store", store)
    assert "failed: icontains 'Dónde está la biblioteca'" in shown.output


def test_a_mixed_suite_carries_every_check_its_javascript_included(tmp_path: Path) -> None:
    imported = import_file(FIXTURES / "promptfoo_mixed.yaml", name="support")
    # defaultTest's regex is in every test with one value: a task metric; its negation cannot be, so it is a check
    assert imported.metrics == [{"name": "regex", "id": "regex", "pattern": r"\S"}]
    assert [r["assert"] for r in imported.rows] == [
        [{"type": "icontains", "value": "refund"}, {"type": "not-icontains", "value": "competitor", "weight": 2.0},
         {"type": "not-contains", "value": "As an AI"}],
        [{"type": "is-json", "value": {"type": "object", "required": ["order_id", "status"]}},
         {"type": "contains-any", "value": ["shipped", "delivered", "pending"], "field": "status"},
         {"type": "not-contains", "value": "As an AI"}],
        [{"type": "similar", "value": "Hello! How can I help you today?", "threshold": 0.6},
         {"type": "javascript", "value": "output.length < 200"},
         {"type": "not-contains", "value": "As an AI"}],
    ]
    assert imported.unsupported == []
    out = tmp_path / "support"
    assert invoke("import", FIXTURES / "promptfoo_mixed.yaml", "--out", out).exit_code == 0
    samples = load_samples(load_task(str(out)))  # every check validates, schema and transform included
    assert [c.id for c in samples[1].checks] == ["check.is-json", "check.contains-any", "check.not-contains"]
    assert samples[1].checks[1].field == "status" and samples[1].checks[1].reference == ["shipped", "delivered", "pending"]
    assert samples[2].checks[1].metric.name == "javascript" and samples[2].checks[1].metric.args == \
        {"code": "output.length < 200"}


async def test_the_mixed_suite_scores_right_and_wrong_answers(tmp_path: Path, monkeypatch) -> None:
    from evals.metrics import semantic
    from evals.providers.fake import FakeProvider
    from evals.run.runner import RunOptions, run_task
    from evals.run.store import load_run
    from evals.types import Score

    async def similarity(self, ctx):  # the embedding model is not what this test is about
        return Score(0.9 if "help" in ctx.completion.text else 0.1)

    monkeypatch.setattr(semantic.EmbeddingSimilarity, "__call__", similarity)
    out = tmp_path / "support"
    assert invoke("import", FIXTURES / "promptfoo_mixed.yaml", "--out", out).exit_code == 0
    task = load_task(str(out))
    samples = load_samples(task)
    fake = FakeProvider(max_concurrency=1)
    fake.enqueue("Sure, your refund is on its way.", '{"order_id": 17, "status": "shipped"}', "Hello! Happy to help.",
                 "As an AI, I cannot refund; try a competitor.", '{"order_id": 17, "status": "lost"}', "Go away.")
    store = Store(tmp_path / "s.db")
    runs = [await run_task(task, samples, [(task.models[0], fake)], store, RunOptions(timeout_s=5)) for _ in (1, 2)]
    good, bad = (load_run(r[0].run_id, store) for r in runs)
    # the greeting's javascript check runs: a short answer passes it
    assert good["passed"].tolist() == [True, True, True]
    assert good["score.checks"].tolist() == [1.0, 1.0, 1.0]
    assert bad["passed"].tolist() == [False, False, False]
    assert bad["score.checks"].tolist() == [pytest.approx(1 / 4), pytest.approx(2 / 3), pytest.approx(2 / 3)]
    refund = bad["scores"][0]["checks"]["explanation"]
    assert refund == ("1/3 checks passed; failed: not-icontains 'competitor'; not-contains 'As an AI'")


@pytest.mark.parametrize(("transform", "field"), [
    ("JSON.parse(output).status", "status"),
    ("JSON.parse(output)['order'].status", "order.status"),
    ('return JSON.parse(output)["a"]["b"];', "a.b"),
    ("JSON.parse(output)", ""),
    ("output.trim()", None),
    ("JSON.parse(output).items.map(i => i.name)", None),
])
def test_only_simple_transforms_become_fields(transform: str, field: str | None) -> None:
    assert json_field(transform) == field


def test_a_transform_that_is_not_a_field_runs_as_javascript(tmp_path: Path) -> None:
    path = tmp_path / "promptfooconfig.yaml"
    path.write_text("prompts: ['{{q}}']\ntests:\n"
                    "  - vars: {q: a}\n    options: {transform: 'output.toUpperCase()'}\n"
                    "    assert: [{type: contains, value: A}]\n"
                    "  - vars: {q: b}\n    threshold: 0.5\n"
                    "    assert: [{type: contains, value: b, weight: 3}, {type: contains, value: c}]\n")
    imported = import_file(path)
    assert imported.rows[0]["assert"] == [{"type": "contains", "value": "A", "transform": ["output.toUpperCase()"]}]
    assert imported.rows[1]["assert"] == [{"type": "contains", "value": "b", "weight": 3.0},
                                          {"type": "contains", "value": "c"}]
    assert imported.pass_rule == {"checks": 0.5}  # the test-level threshold: a weighted share of the checks


def test_an_imported_suite_never_names_code_to_run(tmp_path: Path) -> None:
    """promptfoo's code assertions import as data: python as an unsupported check, javascript as source for the
    sandbox (where require does not exist), a `metric:` name that looks like code as an id. Importing, loading
    and running the task imports and runs nothing of the source's outside the sandbox."""
    marker = tmp_path / "MARKER"
    source = tmp_path / "source"
    source.mkdir()
    (source / "evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
                                    "def get_assert(output, context):\n    return True\n")
    (source / "promptfooconfig.yaml").write_text(f"""
prompts: ["{{{{q}}}}"]
tests:
  - vars: {{q: one}}
    assert:
      - {{type: python, value: "file://evil.py"}}
      - {{type: javascript, value: "require('child_process').execSync('touch {marker}')"}}
      - {{type: contains, value: one, metric: "os:system"}}
  - vars: {{q: two}}
    assert:
      - {{type: contains, value: two}}
""")
    out = tmp_path / "task"
    assert invoke("import", "promptfoo", source / "promptfooconfig.yaml", "--out", out).exit_code == 0
    samples = load_samples(load_task(str(out)))
    assert [c.metric.name for c in samples[0].checks] == ["unsupported", "javascript", "includes"]
    assert samples[0].checks[2].id == "check.os_system"
    ran = invoke("run", out, "-m", "fake:echo", "--store", tmp_path / "s.db", "--no-cache", "--no-progress")
    assert ran.exit_code == 0, ran.output
    assert not marker.exists()
