"""A base URL with a query (`?api-version=...&apikey=...`), a key in its path or a user:password: the query reaches
the server on every request (the SDKs append their paths, so it cannot stay in the base URL), and the secrets are
never stored or shown: not in the store, the cache, the manifest `evals show` prints, the viewer's run page, the
command's output, or an error message of a server that echoes the URL it was asked for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from evals._util import redact_secrets, redact_url
from evals.cli import app
from evals.run.store import Store
from evals.view.app import create_app
from tests.conftest import qa_rows
from tests.providers.test_providers_api import MODELS, qa_answer
from tests.standin_server import StandinServer

SECRET = "open-sesame-7f3a"  # not key-shaped: only its parameter's name says it is a secret
PATH_KEY = "sk-proj-4b1f0c9e8d7a6b5c"
PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}


@pytest.fixture
def server():
    with StandinServer(qa_answer) as s:
        yield s


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def files(*paths: Path) -> bytes:
    """The SQLite files with their WAL and shared-memory companions: everything that could hold a row."""
    return b"".join(f.read_bytes() for p in paths for f in p.parent.glob(p.name + "*"))


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_base_url_query_reaches_the_server_and_its_secret_is_never_stored_or_shown(make_task, tmp_path, server,
                                                                                     provider) -> None:
    base_url = f"{server.base_url_for(provider)}?apiKey={SECRET}&api-version=2024-06-01"
    folder = make_task(rows=qa_rows(4), models=[{"spec": f"{provider}:{MODELS[provider]}", "base_url": base_url}])
    store, cache = tmp_path / "s.db", tmp_path / "c.db"
    result = invoke("run", folder, "--store", store, "--cache-path", cache, "--progress", "plain", "--json")
    assert result.exit_code == 0, result.output
    assert [(r.path, r.query) for r in server.requests] == [
        (PATHS[provider], {"apiKey": SECRET, "api-version": "2024-06-01"})] * 4  # the path first, then the query
    [run] = json.loads(result.stdout)
    assert run["done"] == 4 and run["errors"] == 0 and run["matches"] == 4
    shown = invoke("show", run["run_id"], "--store", store, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["manifest"]["model"]["base_url"] == (
        f"{server.base_url_for(provider)}?apiKey=***&api-version=2024-06-01")
    page = TestClient(create_app(store, allowed_hosts=["testserver"])).get(f"/runs/{run['run_id']}").text
    assert "apiKey=***&amp;api-version=2024-06-01" in page
    for where, text in (("store and cache", files(store, cache)), ("run output", result.output.encode()),
                        ("show", shown.output.encode()), ("run page", page.encode())):
        assert SECRET.encode() not in text, where


def test_a_server_that_echoes_the_url_never_gets_its_secrets_stored(make_task, tmp_path, server) -> None:
    base_url = f"http://127.0.0.1:{server.port}/key/{PATH_KEY}/v1?pwd=abc12&code={SECRET}&x=1"
    folder = make_task(rows=qa_rows(2), models=[{"spec": "openai:gpt-4o-mini", "base_url": base_url}])
    store = tmp_path / "s.db"
    result = invoke("run", folder, "--store", store, "--no-cache", "--progress", "none", "--json", "--retries", "0")
    assert result.exit_code == 0, result.output
    [run] = json.loads(result.stdout)
    errors = Store(store).results_frame(run["run_id"])["error"].tolist()
    assert errors == ["HTTP 404 NotFoundError: no route POST /key/***/v1/chat/completions?pwd=***&code=***&x=1"] * 2
    record = Store(store).get_run(run["run_id"])
    assert record.manifest["model"]["base_url"] == f"http://127.0.0.1:{server.port}/key/***/v1?pwd=***&code=***&x=1"
    for secret in (SECRET, PATH_KEY, "abc12"):
        assert secret.encode() not in files(store) and secret not in result.output, secret


@pytest.mark.parametrize(("url", "said"), [
    ("{base}?key={secret}&key=2", "names the query parameter key more than once"),
    ("http://me:{secret}@127.0.0.1:{port}/v1", "holds a user:password, which cannot be sent beside the API key's"),
])
def test_a_base_url_the_sdks_cannot_send_is_one_line(make_task, tmp_path, server, url, said) -> None:
    url = url.format(base=server.base_url, secret=SECRET, port=server.port)
    folder = make_task(models=[{"spec": "openai:gpt-4o-mini", "base_url": url}])
    result = invoke("run", folder, "--store", tmp_path / "s.db", "--progress", "none")
    assert result.exit_code == 2 and "Traceback" not in result.output
    [line] = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert "task.yaml:" in line and "field 'models.0.base_url'" in line and said in line and SECRET not in line
    assert server.counts.received == 0


@pytest.mark.parametrize("name", ["apikey", "apiKey", "APIKEY", "api_key", "api-key", "X-Api-Key", "key", "code",
                                  "pwd", "password", "passwd", "sig", "token", "access_token", "accessToken",
                                  "client_secret", "auth", "Authorization", "session_id"])
def test_secret_query_parameters_are_redacted_by_name_whatever_the_case(name) -> None:
    assert redact_url(f"https://h/v1?{name}=abc&api-version=2") == f"https://h/v1?{name}=***&api-version=2"
    assert redact_secrets({"options": {name: "abc"}}) == {"options": {name: "***"}}


def test_urls_keep_what_is_not_a_secret() -> None:
    kept = ["https://h:8443/openai/deployments/gpt-4o-mini-2024-07-18?api-version=2024-06-01&max_tokens=5",
            "http://[::1]:8000/v1", "http://127.0.0.1:8000/v1/models/llama-3.1-8b-instruct"]
    for url in kept:
        assert redact_url(url) == url
    assert redact_url(f"https://h/v1/{PATH_KEY}/chat") == "https://h/v1/***/chat"  # key-shaped
    assert redact_url("https://h/token/abc/v1") == "https://h/token/***/v1"  # after a secret-named segment
    assert redact_url(f"https://u:{SECRET}@h/v1?sig=x") == "https://h/v1?sig=***"


async def test_a_base_url_from_the_environment_sends_its_query_too(server, monkeypatch) -> None:
    from evals.providers import with_server
    from evals.providers.openai import OpenAIProvider
    from evals.types import GenerateParams, Message, ModelConfig, ModelSpec

    monkeypatch.setenv("OPENAI_BASE_URL", f"{server.base_url}?api-key={SECRET}")
    config = with_server(ModelConfig(spec=ModelSpec("openai", "gpt-4o-mini")))
    provider = OpenAIProvider.from_config(config)
    assert (await provider.generate([Message("user", "question 3")], GenerateParams())).text == '{"labels": ["l0"]}'
    await provider.aclose()
    assert [(r.path, r.query) for r in server.requests] == [("/v1/chat/completions", {"api-key": SECRET})]


def test_a_secret_an_older_version_stored_is_not_shown(tmp_path) -> None:
    store = tmp_path / "old.db"
    db = Store(store)
    model = {"spec": "openai:m", "base_url": f"http://h/v1?apikey={SECRET}", "options": {"headers": {"x-api-key": SECRET}}}
    run_id = db.create_run("qa", "openai:m", 0, {"model": model})  # as an older version wrote it, in clear
    db.close()
    shown = invoke("show", run_id, "--store", store, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["manifest"]["model"] == {"spec": "openai:m", "base_url": "http://h/v1?apikey=***",
                                                             "options": {"headers": {"x-api-key": "***"}}}
    page = TestClient(create_app(store, allowed_hosts=["testserver"])).get(f"/runs/{run_id}").text
    assert "apikey=***" in page and SECRET not in page
