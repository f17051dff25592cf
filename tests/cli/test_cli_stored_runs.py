"""Reading a store imports nothing: a store from a CI artifact whose manifests point at a task folder shipped
beside it (a metrics plugin that writes a marker when imported) is read by `compare`, `show`, `history`,
`baseline list`, the viewer's pages and `route`/`decide` on its run ids without that folder's code running."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from starlette.testclient import TestClient
from typer.testing import CliRunner

from evals.cli import app
from evals.view.app import create_app
from tests.conftest import QA_TASK

MODELS = [{"spec": "fake:base", "options": {"responses": ['{"labels": ["l0"]}']}},
          {"spec": "fake:cand", "options": {"responses": ['{"labels": ["l1"]}']}}]
DECISION = {"baseline": "fake:base", "candidate": "fake:cand", "min_gap": 0.2}


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], terminal_width=200)


def shipped_task(folder: Path, marker: Path) -> Path:
    """A task folder as a hostile artifact would ship it: task.yaml names a metric file that runs on import."""
    folder.mkdir(parents=True)
    (folder / "evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
                                    "def score(ctx):\n    return 1.0\n")
    (folder / "task.yaml").write_text(yaml.safe_dump({**QA_TASK, "models": MODELS, "decision": {"min_gap": 0.3},
                                                      "metrics": [*QA_TASK["metrics"], {"name": "evil.py:score"}]}))
    (folder / "golden.jsonl").write_text("")
    return folder / "task.yaml"


def point_manifests_at(store: Path, task_file: Path, *, drop: tuple[str, ...] = ()) -> None:
    """Every stored run's manifest names `task_file` (and lacks `drop`, as an older evals wrote it)."""
    db = sqlite3.connect(store)
    with db:
        for run_id, text in db.execute("SELECT id, manifest FROM runs").fetchall():
            manifest = {k: v for k, v in json.loads(text).items() if k not in drop}
            manifest["task"]["path"] = str(task_file)
            db.execute("UPDATE runs SET manifest = ? WHERE id = ?", (json.dumps(manifest), run_id))
    db.close()


@pytest.fixture(params=["new", "older"])
def hostile(request, make_task, tmp_path: Path) -> dict:
    """Two runs of a plain task, their manifests then pointed at a shipped folder (an older store: without the
    settings newer manifests record)."""
    folder, store, marker = make_task(models=MODELS, decision=DECISION), tmp_path / "s.db", tmp_path / "MARKER"
    ran = invoke("run", folder, "--store", store, "--no-cache", "--no-progress", "--json")
    assert ran.exit_code == 0, ran.output
    a, b = (r["run_id"] for r in json.loads(ran.stdout))
    shipped = shipped_task(tmp_path / "artifact" / "task", marker)
    point_manifests_at(store, shipped, drop=("decision", "labels") if request.param == "older" else ())
    return {"folder": folder, "store": store, "marker": marker, "a": a, "b": b, "shipped": shipped.parent,
            "older": request.param == "older"}


def test_compare_reads_its_settings_from_the_manifest_and_imports_nothing(hostile) -> None:
    result = invoke("compare", hostile["a"], hostile["b"], "--store", hostile["store"])
    assert result.exit_code == 0, result.output
    assert not hostile["marker"].exists()
    if hostile["older"]:  # said plainly, and the defaults used
        assert f"decision settings: defaults (run {hostile['a']}'s manifest records none" in result.stderr
        assert "min_gap (0.05)" in result.stdout
    else:  # the settings task.yaml had when the run was made, not the shipped folder's
        assert f"(as recorded in run {hostile['a']}'s manifest)" in result.stderr
        assert "min_gap (0.2)" in result.stdout


@pytest.mark.parametrize("command", [["show", "{a}"], ["history", "{shipped}"], ["baseline", "list", "--task",
                                                                                 "{shipped}"], ["runs"]])
def test_commands_that_read_the_store_import_nothing(hostile, command: list[str]) -> None:
    result = invoke(*(c.format(**hostile) for c in command), "--store", hostile["store"])
    assert result.exit_code == 0, result.output
    assert not hostile["marker"].exists()


def test_the_viewers_pages_import_nothing(hostile) -> None:
    a, b = hostile["a"], hostile["b"]
    client = TestClient(create_app(hostile["store"], allowed_hosts=["testserver"]))
    for url in (f"/compare/{a}/{b}", f"/runs/{a}", f"/runs/{a}/examples/ex000", "/", "/checks/qa"):
        assert client.get(url).status_code == 200, url
    assert not hostile["marker"].exists()


def test_decide_resumes_a_stored_run_with_the_task_it_was_given(hostile) -> None:
    db = sqlite3.connect(hostile["store"])
    with db:  # an example of the baseline's run failed: decide retries it before deciding
        db.execute("UPDATE results SET error = 'boom' WHERE run_id = ? AND example_id = 'ex001'", (hostile["a"],))
    db.close()
    result = invoke("decide", hostile["folder"], "--store", hostile["store"], "--no-progress", "--no-cache")
    assert result.exit_code == 0, result.output
    assert f"decision settings: {hostile['folder'] / 'task.yaml'}" in result.stderr
    assert not hostile["marker"].exists()


def edit_manifest(store: Path, run_id: str, **changes) -> None:
    db = sqlite3.connect(store)
    with db:
        manifest = json.loads(db.execute("SELECT manifest FROM runs WHERE id = ?", (run_id,)).fetchone()[0])
        db.execute("UPDATE runs SET manifest = ? WHERE id = ?", (json.dumps({**manifest, **changes}), run_id))
    db.close()


def record_code_metric(hostile: dict, run_id: str) -> None:
    """The run's manifest records one more metric, naming code (and a plain task.yaml names none)."""
    manifest = json.loads(sqlite3.connect(hostile["store"]).execute("SELECT manifest FROM runs WHERE id = ?",
                                                                    (run_id,)).fetchone()[0])
    code = {"id": "sig", "name": "os:system", "args": {"command": f"touch {hostile['marker']}"}}
    edit_manifest(hostile["store"], run_id, metrics=[*manifest["metrics"], code])


def test_a_manifest_with_bad_settings_is_compared_under_the_defaults_saying_why(hostile) -> None:
    edit_manifest(hostile["store"], hostile["a"], decision={"min_gap": "lots"}, labels=["/etc/hostname"])
    result = invoke("compare", hostile["a"], hostile["b"], "--store", hostile["store"])
    assert result.exit_code == 0, result.output
    assert f"decision settings: defaults (run {hostile['a']}'s manifest records invalid ones: field " \
           "'decision.min_gap'" in result.stderr


def test_resume_refuses_a_manifest_that_names_code(hostile) -> None:
    # `run --resume` runs the task its manifest names (the user's own here); the metric it recorded is the store's
    point_manifests_at(hostile["store"], hostile["folder"].resolve() / "task.yaml")
    record_code_metric(hostile, hostile["a"])
    result = invoke("run", "--resume", hostile["a"], "--store", hostile["store"], "--no-progress")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    assert f"run {hostile['a']}: its manifest names code as metric 'sig' (os:system)" in result.stderr
    assert not hostile["marker"].exists()


def test_route_refuses_a_stored_run_whose_manifest_names_code(hostile) -> None:
    cheap, marker = hostile["b"], hostile["marker"]
    record_code_metric(hostile, cheap)
    result = invoke("route", hostile["folder"], "--cheap", cheap, "--strong", hostile["a"], "--signal", "sig",
                    "--store", hostile["store"], "--no-progress")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    assert f"run {cheap}: its manifest names code as metric 'sig' (os:system)" in result.stderr
    assert not marker.exists()
