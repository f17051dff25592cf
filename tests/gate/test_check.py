"""`evals baseline`, `evals check` and `evals history` end to end, over the fake provider and the stand-in server."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
import yaml
from junitparser import Error, Failure, JUnitXml

from evals.analyse.stats import mcnemar_sample_size
from evals.data.tasks import load_task
from evals.run.schema import SCHEMA
from evals.run.store import Store
from tests.cli.test_cli_compare import invoke
from tests.conftest import answer_for, assert_refused_at_load, qa_rows
from tests.standin_server import Fault, StandinServer, last_user_message

HOSTILE = "<script>alert(1)</script>\x00\x1b[31m & ]]>"


def scripted(passes: list[bool], hostile_at: int | None = None) -> list[str]:
    """Answers for `fake:` with concurrency 1: example i gets answer i, right exactly where passes[i]."""
    return [answer_for(i) if ok else (HOSTILE if i == hostile_at else "not json") for i, ok in enumerate(passes)]


def model(name: str, passes: list[bool], **kw) -> dict:
    return {"spec": f"fake:{name}", "concurrency": 1, "options": {"responses": scripted(passes, **kw)}}


@pytest.fixture
def nightly(make_task, store_location):
    """A 50-example task whose `fake:nightly` answers as `passes` says; write(passes) re-scripts it. Its store is
    a SQLite file, then a PostgreSQL database."""
    store = store_location

    def write(passes: list[bool], check: dict | None = None, **kw) -> Path:
        return make_task(rows=qa_rows(len(passes)), models=[model("nightly", passes, **kw)],
                         check=check or {"margin": 0.05, "floors": {"json_valid": 0.5}})

    def accept(passes: list[bool], **kw) -> str:
        folder = write(passes, **kw)
        run = invoke("run", folder, "--store", store, "--no-progress", "--json")
        assert run.exit_code == 0, run.output
        run_id = json.loads(run.stdout)[0]["run_id"]
        marked = invoke("baseline", "set", folder, run_id, "--store", store, "--note", "accepted")
        assert marked.exit_code == 0, marked.output
        return run_id

    return write, accept, store


def check(folder: Path, store: Path, *args):
    return invoke("check", folder, "--store", store, "--no-progress", *args)


def test_a_real_drop_fails_and_names_the_regressed_examples(nightly, tmp_path) -> None:
    write, accept, store = nightly
    accept([True] * 48 + [False] * 2)
    folder = write([False] * 10 + [True] * 38 + [False] * 2)  # ex000-ex009 regressed
    result = check(folder, store, "--examples", "20")
    assert result.exit_code == 1, result.output
    assert "Result: FAIL" in result.stdout and "past the 5-point margin and significant" in result.stdout
    assert "48/50 -> 38/50 matched" in result.stdout and "McNemar exact p = 0.00195" in result.stdout
    assert "Regressed: matched in the baseline, not now (10)" in result.stdout
    listed = re.findall(r"│ (ex\d{3})\s+│", result.stdout)
    assert listed == [f"ex{i:03d}" for i in range(10)]
    assert "check FAIL (exit 1)" in result.stderr

    data = json.loads(check(folder, store, "--json").stdout)
    assert data["status"] == "fail" and data["exit_code"] == 1
    assert [d["example_id"] for d in data["regressed"]] == [f"ex{i:03d}" for i in range(10)]
    assert {g["name"]: g["status"] for g in data["gates"]}["match rate"] == "fail"


def test_a_drop_within_noise_warns_and_says_how_many_examples_settle_it(nightly) -> None:
    write, accept, store = nightly
    accept([True] * 47 + [False] * 3)  # 47/50
    # 44/50: ex043-ex046 regressed, ex047 improved; a 6-point drop past the 5-point margin, McNemar p = 0.375
    folder = write([True] * 43 + [False] * 4 + [True] + [False] * 2)
    result = check(folder, store, "--json")
    data = json.loads(result.stdout)
    assert result.exit_code == 0, result.output
    gate = {g["name"]: g for g in data["gates"]}["match rate"]
    assert data["status"] == "warn" and gate["status"] == "warn"
    assert "not significant" in gate["message"]
    needed = mcnemar_sample_size(0.06, 5 / 50, 0.8, 0.05)
    assert data["n_to_settle"] == needed and f"about {needed:,} paired examples would settle" in gate["message"]
    assert [d["example_id"] for d in data["regressed"]] == ["ex043", "ex044", "ex045", "ex046"]
    assert [d["example_id"] for d in data["improved"]] == ["ex047"]
    text = check(folder, store)
    assert text.exit_code == 0 and "Result: WARN" in text.stdout and "check WARN (exit 0)" in text.stderr


def test_no_baseline_is_an_error_with_the_way_out(nightly) -> None:
    write, _, store = nightly
    folder = write([True] * 6)
    result = check(folder, store)
    assert result.exit_code == 2
    assert "no baseline for task 'qa'" in result.stderr
    assert "evals baseline set qa RUN_ID" in result.stderr and "--baseline latest" in result.stderr
    assert "Traceback" not in result.output
    named = check(folder, store, "--model", "fake:nightly")
    assert named.exit_code == 2 and "no baseline for task 'qa' and model fake:nightly" in named.stderr
    assert "recent runs of fake:nightly: none" in named.stderr
    assert Store(store).list_runs() == []  # nothing ran


def test_junit_file_reads_as_junit(nightly, tmp_path) -> None:
    write, accept, store = nightly
    accept([True] * 40 + [False] * 10)
    passes = [False] * 5 + [True] * 35 + [True] * 2 + [False] * 8  # 5 regressed, 2 improved, 8 missed in both
    folder = write(passes, hostile_at=3)
    target = tmp_path / "ci" / "junit.xml"
    result = check(folder, store, "--junit", target)
    assert result.exit_code == 0, result.output  # a 6-point drop, not significant: a warning
    assert f"wrote {target}" in result.stderr

    xml = JUnitXml.fromfile(str(target))
    suites = {s.name: s for s in xml}
    assert set(suites) == {"evals.gate.check.qa.gates", "evals.gate.check.qa.examples"}
    gates = {c.name: c for c in suites["evals.gate.check.qa.gates"]}
    assert set(gates) == {"provider errors", "match rate", "floor json_valid", "provider model version"}
    assert gates["match rate"].is_passed and gates["match rate"].system_out.startswith("WARN: a 6.0-point drop")
    assert gates["provider errors"].is_passed
    examples = {c.name: c for c in suites["evals.gate.check.qa.examples"]}
    assert len(examples) == 50
    failed = sorted(n for n, c in examples.items() if c.result and isinstance(c.result[0], Failure))
    skipped = sorted(n for n, c in examples.items() if c.is_skipped)
    assert failed == [f"ex{i:03d}" for i in range(5)]
    assert skipped == [f"ex{i:03d}" for i in range(42, 50)]
    assert examples["ex040"].is_passed and "improved" in examples["ex040"].system_out
    # the hostile answer survives as text: escaped, control characters replaced, still well-formed XML
    assert "<script>alert(1)</script>" in examples["ex003"].result[0].text
    # the totals in the file are what a JUnit reader counts itself
    stated = (xml.tests, xml.failures, xml.errors, xml.skipped)
    xml.update_statistics()
    assert stated == (xml.tests, xml.failures, xml.errors, xml.skipped) == (54, 5, 0, 8)


def test_history_accumulates_and_the_html_draws_the_trend(nightly, tmp_path) -> None:
    write, accept, store = nightly
    first = accept([True] * 48 + [False] * 2)
    for passes, code in (([True] * 48 + [False] * 2, 0), ([True] * 45 + [False] * 5, 0),
                         ([False] * 12 + [True] * 36 + [False] * 2, 1)):
        assert check(write(passes), store).exit_code == code
    accept([True] * 50)  # a new baseline is accepted
    assert check(write([True] * 50), store).exit_code == 0

    data = json.loads(invoke("history", write([True] * 50), "--store", store, "--json").stdout)
    assert [d["status"] for d in data] == ["pass", "warn", "fail", "pass"]
    assert [round(d["current"]["estimate"], 2) for d in data] == [0.96, 0.9, 0.72, 1.0]
    assert [d["baseline_run_id"] for d in data][:3] == [first] * 3 and data[3]["baseline_run_id"] != first
    assert all(d["current"]["low"] < d["current"]["estimate"] or d["current"]["estimate"] == 1 for d in data)
    assert set(data[0]["metrics"]) == {"json_valid", "labels_f1"}

    target = tmp_path / "history.html"
    text = invoke("history", "qa", "--store", store, "--html", target)  # by task name, as CI calls it
    assert text.exit_code == 0, text.output
    assert "72%, 95% CI" in text.stdout and text.stdout.count("FAIL") == 1
    page = target.read_text()
    assert len(re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"', page)) == 1
    assert "baseline" in page and "<script" not in page.lower()


def test_check_html_report_has_gates_examples_and_trend(nightly, tmp_path) -> None:
    write, accept, store = nightly
    accept([True] * 10)
    target = tmp_path / "check.html"
    result = check(write([True] * 9 + [False], hostile_at=9), store, "--html", target)
    assert result.exit_code == 0, result.output
    page = target.read_text()
    for expected in ("<h2>Gates</h2>", "Regressed: matched in the baseline, not now (1)", "<h2>History</h2>",
                     "&lt;script&gt;alert(1)&lt;/script&gt;"):
        assert expected in page, expected
    assert "<script>" not in page and len(re.findall(r"<img\b", page)) == 1


def test_drift_is_reported_when_the_provider_model_changes(make_task, tmp_path) -> None:
    def answer(body: dict) -> str:
        return answer_for(int(last_user_message(body).split()[-1]))

    store = tmp_path / "s.db"
    with StandinServer(answer, openai_model="gpt-4o-mini-2024-07-18") as server:
        folder = make_task(models=[{"spec": "openai:gpt-4o-mini", "base_url": server.base_url}],
                           check={"model": "openai:gpt-4o-mini"})
        assert invoke("run", folder, "--store", store, "--no-progress").exit_code == 0
        assert invoke("baseline", "set", folder, "latest", "--store", store).exit_code == 0
        same = check(folder, store, "--json")
        assert same.exit_code == 0 and json.loads(same.stdout)["status"] == "pass"
        assert server.counts.completed == 12  # the check asked the provider again: no cache

        server.openai_model = "gpt-4o-mini-2025-03-01"
        result = check(folder, store)
        assert result.exit_code == 0, result.output
        assert "Result: WARN" in result.stdout
        assert ("the provider's model changed since the baseline: it answered as gpt-4o-mini-2024-07-18 then, "
                "as gpt-4o-mini-2025-03-01 now") in " ".join(result.stdout.split())

        spec = yaml.safe_load((folder / "task.yaml").read_text())
        spec["check"]["drift"] = "fail"
        (folder / "task.yaml").write_text(yaml.safe_dump(spec))
        strict = check(folder, store, "--json")
        assert strict.exit_code == 1 and json.loads(strict.stdout)["drift"]["changed"] is True
    history = json.loads(invoke("history", folder, "--store", store, "--json").stdout)
    assert [d["model_versions"] for d in history] == [["gpt-4o-mini-2024-07-18"], ["gpt-4o-mini-2025-03-01"],
                                                       ["gpt-4o-mini-2025-03-01"]]
    assert [d["drift"] for d in history] == [False, True, True]


def test_provider_down_after_retries_is_an_error_not_a_verdict(make_task, tmp_path) -> None:
    store = tmp_path / "s.db"
    with StandinServer(lambda body: answer_for(int(last_user_message(body).split()[-1]))) as server:
        folder = make_task(models=[{"spec": "openai:gpt-4o-mini", "base_url": server.base_url}])
        assert invoke("run", folder, "--store", store, "--no-progress").exit_code == 0
        assert invoke("baseline", "set", folder, "latest", "--store", store).exit_code == 0
        server.inject(*[Fault(503)] * 12)
        junit = tmp_path / "junit.xml"
        result = check(folder, store, "--retries", "1", "--junit", junit)
    assert result.exit_code == 2, result.output
    assert "Result: ERROR" in result.stdout and "6/6 examples failed after retries" in result.stdout
    assert "HTTP 503" in result.stdout
    xml = JUnitXml.fromfile(str(junit))
    errors = [c.name for s in xml for c in s if c.result and isinstance(c.result[0], Error)]
    assert "provider errors" in errors and len(errors) == 7
    assert [d["status"] for d in json.loads(invoke("history", folder, "--store", store, "--json").stdout)] == ["error"]


def test_a_broken_floor_fails_without_a_significant_drop(nightly) -> None:
    write, accept, store = nightly
    accept([True] * 6)
    result = check(write([True] * 5 + [False], check={"floors": {"json_valid": 0.95, "match_rate": 0.5}}), store,
                   "--json")
    data = json.loads(result.stdout)
    assert result.exit_code == 1
    gates = {g["name"]: g["status"] for g in data["gates"]}
    assert gates == {"provider errors": "pass", "match rate": "warn", "floor json_valid": "fail",
                     "floor match_rate": "pass", "provider model version": "pass"}


def test_changed_golden_set_is_refused_before_any_call(nightly) -> None:
    write, accept, store = nightly
    accept([True] * 6)
    folder = write([True] * 6)
    rows = qa_rows(6)
    rows[2]["question"] = "question 2, reworded"
    (folder / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = check(folder, store)
    assert result.exit_code == 2 and "golden set changed since baseline run" in result.stderr
    assert len(Store(store).list_runs()) == 1
    # examples added after the baseline: the check pairs the baseline's examples and says so
    grown = check(write([True] * 8), store, "--json")
    assert grown.exit_code == 0, grown.output
    data = json.loads(grown.stdout)
    assert len(data["examples"]) == 6 and any("first 6 of 8" in n for n in data["notes"])


def test_baseline_commands(nightly, make_task, tmp_path) -> None:
    write, accept, store = nightly
    first = accept([True] * 6)
    second = accept([True] * 5 + [False])
    listed = json.loads(invoke("baseline", "list", "--store", store, "--json").stdout)
    assert [(b["task"], b["model"], b["run_id"], b["note"]) for b in listed] == [("qa", "fake:nightly", second,
                                                                                   "accepted")]
    shown = invoke("baseline", "show", "qa", "--store", store, "--json")
    data = json.loads(shown.stdout)
    assert data["current"][0]["summary"]["matches_text"].startswith("5/6")
    assert [b["run_id"] for b in data["history"]] == [second, first]
    # a check against an explicit earlier run instead of the current baseline
    assert json.loads(check(write([True] * 6), store, "--baseline", first, "--json").stdout)["baseline_run_id"] == first

    other = tmp_path / "other"
    other.mkdir()
    (other / "task.yaml").write_text((tmp_path / "task" / "task.yaml").read_text().replace("name: qa", "name: qa2"))
    (other / "golden.jsonl").write_text((tmp_path / "task" / "golden.jsonl").read_text())
    wrong = invoke("baseline", "set", other, first, "--store", store)
    assert wrong.exit_code == 2 and "a run of task 'qa', not 'qa2'" in wrong.stderr
    db = Store(store)
    db.set_status(first, "interrupted")
    refused = invoke("baseline", "set", "qa", first, "--store", store)
    assert refused.exit_code == 2 and "only a completed run can be a baseline" in refused.stderr
    missing = invoke("baseline", "show", "nope", "--store", store)
    assert missing.exit_code == 2 and "no baseline for task 'nope'" in missing.stderr


@pytest.mark.parametrize("check_block, field, message", [
    ({"margn": 0.05}, "check.margn", "did you mean 'margin'"),
    ({"margin": 1.5}, "check.margin", "expected a number in [0, 1)"),
    ({"confidence": 95}, "check.confidence", "expected a number in (0, 1)"),
    ({"floors": {"json_vald": 0.9}}, "check.floors.json_vald", "did you mean 'json_valid'"),
    ({"floors": {"json_valid": "high"}}, "check.floors.json_valid", "a floor must be a number"),
    ({"drift": "panic"}, "check.drift", "expected one of warn, fail, ignore"),
    ({"model": "gpt-4o"}, "check.model", "provider:model"),
])
def test_check_settings_are_validated_with_file_line_and_field(make_task, check_block, field, message) -> None:
    assert_refused_at_load(make_task(check=check_block), field, message, command="check")


def test_shipped_task_has_check_settings() -> None:
    settings = load_task("resume-feedback").check
    assert settings.model == "openai:gpt-4o-mini" and 0 < settings.margin < 0.2
    assert settings.floors.get("json_valid", 0) >= 0.9


def test_an_older_store_gains_the_new_tables(tmp_path) -> None:
    path = tmp_path / "old.db"
    old_schema = SCHEMA.split("-- Added with")[0]
    with sqlite3.connect(path) as db:
        db.executescript(old_schema)
        db.execute("INSERT INTO runs VALUES ('r1', 'qa', 'fake:x', 'completed', 1, '2026-01-01', NULL, '{}')")
    store = Store(path)
    assert store.get_run("r1").status == "completed"
    store.set_baseline("qa", "fake:x", "r1")
    assert store.baselines("qa")[0].run_id == "r1" and store.checks("qa") == []


def test_a_significant_drop_within_the_margin_passes_and_a_prompt_change_is_named(nightly) -> None:
    write, accept, store = nightly
    accept([True] * 50)
    folder = write([False] * 10 + [True] * 40, check={"margin": 0.25})
    spec = yaml.safe_load((folder / "task.yaml").read_text())
    spec["prompt"]["system"] = "Answer with JSON only."
    (folder / "task.yaml").write_text(yaml.safe_dump(spec))
    result = check(folder, store, "--json")
    data = json.loads(result.stdout)
    assert result.exit_code == 0 and data["status"] == "pass"
    gate = {g["name"]: g for g in data["gates"]}["match rate"]
    assert gate["message"].startswith("a 20.0-point drop, significant but within the 25-point margin")
    assert "prompt changed since the baseline" in data["changes"]
    assert "model settings changed since the baseline" in data["changes"]  # the scripted answers changed


def test_check_says_when_the_tasks_decision_is_due_for_revisit(nightly) -> None:
    write, accept, store = nightly
    accept([True] * 50)
    folder = write([True] * 50)
    task_name = load_task(str(folder)).name
    assert "revisit" not in check(folder, store).stderr  # never decided: nothing to say
    Store(store).add_decision(task_name, "a", "b", "fine-tuning is justified", "2025-01-01", "2025-07-02", {})
    result = check(folder, store)
    assert result.exit_code == 0, result.output
    assert ("Decision of 2025-01-01 ('fine-tuning is justified') was due for revisit on 2025-07-02: run "
            f"`evals decide {task_name}` again") in result.stderr
    assert "was due for revisit" in json.loads(check(folder, store, "--json").stdout)["decision_revisit"]
