"""What a run is tied to: the server it reached (base_url or the SDK's environment variable), the task file
it came from, and a manifest that names everything but never a secret."""

from __future__ import annotations

import json
import sqlite3

from typer.testing import CliRunner

from evals._util import redact_secrets
from evals.cli import app
from tests.conftest import answer_for, qa_rows
from tests.standin_server import StandinServer, last_user_message

SECRET = "sk-test-NEVER-STORE-0f9e8d7c6b5a4"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def qa_answer(body) -> str:
    return answer_for(int(last_user_message(body).split()[-1]))


def test_the_server_from_the_environment_separates_cache_manifest_and_reuse(make_task, tmp_path, monkeypatch) -> None:
    folder = make_task(rows=qa_rows(6), models=["openai:gpt-4o-mini"],
                       decision={"baseline": "openai:gpt-4o-mini", "candidate": "fake:scripted"})
    store = tmp_path / "s.db"
    with StandinServer(qa_answer) as a, StandinServer(qa_answer) as b:
        monkeypatch.setenv("OPENAI_BASE_URL", a.base_url)
        first = invoke("run", folder, "--store", store, "--no-progress", "--json")
        assert first.exit_code == 0, first.output
        monkeypatch.setenv("OPENAI_BASE_URL", b.base_url)
        second = invoke("run", folder, "--store", store, "--no-progress", "--json")  # response cache on
        assert second.exit_code == 0, second.output
        assert a.counts.completed == 6 and b.counts.completed == 6  # B's answers were not A's, from the cache
        decided = invoke("decide", folder, "--store", store, "--no-progress", "--json")
        assert decided.exit_code == 0, decided.output
    runs = {r: json.loads(m) for r, m in sqlite3.connect(store).execute("SELECT id, manifest FROM runs")}
    first_id, second_id = (json.loads(x.stdout)[0]["run_id"] for x in (first, second))
    assert runs[first_id]["model"]["base_url"] == a.base_url and runs[second_id]["model"]["base_url"] == b.base_url
    assert json.loads(decided.stdout)["a"]["summary"]["run_id"] == second_id  # the run against today's server
    assert f"reusing stored run {second_id}" in decided.stderr


def test_decide_names_the_task_file_it_read(make_task, tmp_path) -> None:
    folder = make_task(models=[{"spec": "fake:base"}, {"spec": "fake:cand"}],
                       decision={"baseline": "fake:base", "candidate": "fake:cand"})
    other = folder / "other.yaml"
    (folder / "task.yaml").rename(other)
    result = invoke("decide", other, "--store", tmp_path / "s.db", "--no-progress")
    assert result.exit_code == 0, result.output
    assert f"decision settings: {other.resolve()}" in result.stderr


def test_manifests_hold_no_secret_and_resume_takes_them_from_the_task(make_task, tmp_path) -> None:
    store = tmp_path / "s.db"
    with StandinServer(qa_answer) as server:
        model = {"spec": "openai:gpt-4o-mini", "base_url": server.base_url,
                 "options": {"headers": {"x-api-key": SECRET, "x-team": "evals"}}}
        folder = make_task(rows=qa_rows(4), models=[model])
        ran = invoke("run", folder, "--store", store, "--no-progress", "--json")
        assert ran.exit_code == 0, ran.output
        assert {r.headers.get("x-api-key") for r in server.requests} == {SECRET}  # the option is sent
        run_id = json.loads(ran.stdout)[0]["run_id"]
        assert SECRET not in store.read_bytes().decode("latin-1")
        shown = invoke("show", run_id, "--store", store, "--json")
        assert json.loads(shown.stdout)["manifest"]["model"]["options"] == {
            "headers": {"x-api-key": "***", "x-team": "evals"}}
        resumed = invoke("run", "--resume", run_id, "--store", store, "--no-progress")  # the key, from the task
        assert resumed.exit_code == 0, resumed.output
        make_task(rows=qa_rows(4), models=[{**model, "options": {"headers": {"x-team": "other"}}}])
        refused = invoke("run", "--resume", run_id, "--store", store, "--no-progress")
        assert refused.exit_code == 2 and "changed since run" in refused.stderr and "options" in refused.stderr


def test_redaction_keeps_what_is_not_a_secret() -> None:
    assert redact_secrets({"max_tokens_param": "max_tokens", "dtype": "float32", "token": "t0k",
                           "url": "https://u:pw@host:8443/v1?api-key=abc&deployment=x"}) == {
        "max_tokens_param": "max_tokens", "dtype": "float32", "token": "***",
        "url": "https://host:8443/v1?api-key=***&deployment=x"}


def test_runs_recorded_before_a_setting_existed_still_resume_and_are_reused() -> None:
    from evals.run.manifest import changed_settings

    old = {"spec": "openai:gpt-4o-mini", "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6},
           "options": {"headers": {"x-api-key": SECRET}}, "max_tokens": 512}
    now = {"spec": "openai:gpt-4o-mini", "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6,
                                                   "cached_input_per_mtok": None, "batch_discount": 0.5},
           "options": {"headers": {"x-api-key": "***"}}, "max_tokens": 512, "stream": False}
    assert changed_settings(old, now) == []  # new fields and a secret recorded before redaction are no change
    assert changed_settings({**old, "max_tokens": 100}, now) == ["max_tokens"]


def test_small_mistakes_and_a_plugin_provider_without_an_options_model(make_task, tmp_path) -> None:
    from evals.data.tasks import load_task
    from evals.providers import providers, register_provider

    assert load_task(str(make_task(models=[{"spec": "fake:x", "options": None}]))).models[0].options == {}
    bad = invoke("run", make_task(), "-m", "gpt-4o", "--store", tmp_path / "s.db")
    assert bad.exit_code == 2 and "field '--model'" in bad.stderr and "Traceback" not in bad.output

    @register_provider("plugin-test")
    def plugin(config):  # a third-party provider that declares no options model: its options go unchecked
        raise AssertionError("not built")

    try:
        loaded = load_task(str(make_task(models=[{"spec": "plugin-test:m", "options": {"endpoint": "x"}}])))
        assert loaded.models[0].options == {"endpoint": "x"}
    finally:
        providers._factories.pop("plugin-test", None)
