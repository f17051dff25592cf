"""The viewer's pages over a real store, through HTTP (Starlette's test client): the numbers of `evals show` and
`evals compare`, filters and paging, model output as text everywhere, labels behind the session token, and a
store that is only read."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from evals.analyse.decide import compare_stored
from evals.analyse.summary import summarize
from evals.report.sections import summary_section
from evals.run.store import Store, load_run
from evals.view import queries
from evals.view.app import create_app
from tests.view.conftest import PAYLOAD

TOKEN = "session-token"


@pytest.fixture
def client(seed_store) -> TestClient:
    return TestClient(create_app(seed_store["store"], allowed_hosts=["testserver"], token=TOKEN))


def text_of(page: str) -> str:
    """What a browser shows: tags dropped, entities decoded."""
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", page))


def pages(seed_store) -> list[str]:
    a, b = seed_store["a"], seed_store["b"]
    return ["/", f"/runs/{a}", f"/runs/{a}?failures=1", f"/runs/{a}?q=alert", f"/runs/{a}/examples/ex044",
            f"/runs/{b}/examples/ex043", f"/compare/{a}/{b}", f"/compare/{a}/{b}?outcome=regressed",
            f"/compare/{a}/{b}?outcome=both-missed", "/checks", "/checks/qa"]


def copy_store(source: Path | str, target: Path) -> Path:
    """A consistent copy into a SQLite file (SQLite's backup: the WAL's pages included; a PostgreSQL store's tables
    by `evals store copy`)."""
    if "://" in str(source):
        from evals.run.store_copy import copy_store as copy_tables

        copy_tables(source, target)
        return target
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    src.backup(dst)
    src.close()
    dst.close()
    return target


def results_digest(store: Path | str) -> str:
    db = Store(store, readonly=True)
    columns = ", ".join(db.database.columns("results"))
    rows = [list(r) for r in db.database.rows(f"SELECT {columns} FROM results ORDER BY run_id, example_id")]
    db.close()
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def test_runs_list_shows_the_numbers_of_evals_show(client, seed_store) -> None:
    page = client.get("/").text
    store = Store(seed_store["store"])
    for run_id in (seed_store["a"], seed_store["b"]):
        s = summarize(load_run(run_id, store))
        assert f'href="/runs/{run_id}"' in page and s.matches_text in page
        assert f"${s.cost_usd:.4f}" in page
    assert "44/50 (88%, 95% CI 76-94%)" in page and "47/50 (94%, 95% CI 84-98%)" in page
    only_b = client.get("/?model=fake:cand").text
    assert seed_store["b"] in only_b and f'href="/runs/{seed_store["a"]}"' not in only_b
    by_matches = client.get("/?sort=matches&order=asc").text
    assert by_matches.index(seed_store["a"]) < by_matches.index(seed_store["b"])
    by_matches = client.get("/?sort=matches&order=desc").text
    assert by_matches.index(seed_store["b"]) < by_matches.index(seed_store["a"])


def test_run_page_summary_filters_and_example_links(client, seed_store) -> None:
    a = seed_store["a"]
    page = client.get(f"/runs/{a}").text
    expected = summary_section([summarize(load_run(a, Store(seed_store["store"])))])
    for cell in expected.rows[0]:
        assert cell.split("\n")[0] in text_of(page), cell
    assert "50 example(s)" in page and '"golden"' in text_of(page)  # the manifest
    failures = client.get(f"/runs/{a}?failures=1").text
    assert "6 example(s)" in failures and len(re.findall(r'class="example fail"', failures)) == 6
    assert 'href="/runs/%s/examples/ex044"' % a in failures and "ex000" not in failures
    assert "0 example(s)" in client.get(f"/runs/{a}?errors=1").text
    assert "6 example(s)" in client.get(f"/runs/{a}?metric=labels_f1&below=1").text
    assert "50 example(s)" in client.get(f"/runs/{a}?metric=labels_f1&below=1.01").text
    searched = client.get(f"/runs/{a}?q=question+7").text  # in the input
    assert "1 example(s)" in searched and "ex007" in searched
    assert "1 example(s)" in client.get(f"/runs/{a}?q=onerror").text  # in the output
    assert client.get(f"/runs/{a}?below=abc&metric=labels_f1").status_code == 400


def test_examples_are_paged_in_order(seed_store) -> None:
    store = Store(seed_store["store"], readonly=True)
    everything = queries.examples_page(store, seed_store["a"], queries.ExampleFilter(), 1, page_size=100)
    pages = [queries.examples_page(store, seed_store["a"], queries.ExampleFilter(), p, page_size=7) for p in (1, 2, 8)]
    assert [p.pages for p in pages] == [8, 8, 8] and everything.total == 50
    assert [r.example_id for p in pages for r in p.rows] == [f"ex{i:03d}" for i in [*range(14), 49]]
    assert queries.examples_page(store, seed_store["a"], queries.ExampleFilter(), 99, page_size=7).page == 8


def test_example_page_shows_prompt_output_reference_scores(client, seed_store) -> None:
    page = client.get(f"/runs/{seed_store['a']}/examples/ex000").text
    shown = text_of(page)
    assert "Answer with JSON." in shown and "question 0" in shown  # the prompt, rebuilt from the manifest
    assert '{\n  "labels": [\n    "l0"\n  ]\n}' in shown  # JSON output pretty-printed
    for metric in ("json_valid", "labels_f1"):
        assert f'<td>{metric}</td>' in page
    assert "tokens in / out" in shown and "$0.000" in shown
    assert 'rel="next" ' in page or 'rel="next">' in page
    assert client.get(f"/runs/{seed_store['a']}/examples/nope").status_code == 404
    assert client.get("/runs/ffffffff").status_code == 404


def test_compare_page_has_the_verdict_figures_and_outcomes(client, seed_store) -> None:
    a, b = seed_store["a"], seed_store["b"]
    assert client.get(f"/compare?a={a}&b={b}", follow_redirects=False).headers["location"] == f"/compare/{a}/{b}"
    page = client.get(f"/compare/{a}/{b}").text
    cmp, verdict, _ = compare_stored(a, b, Store(seed_store["store"]))
    shown = text_of(page)
    for expected in (verdict.label, "McNemar exact p = 0.375", "44/50 (88%, 95% CI 76-94%)", "Break-even"):
        assert expected in shown, expected
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 4
    assert "regressed (A matched, B did not) (1)" in shown and "improved (B matched, A did not) (4)" in shown
    assert "both missed (2)" in shown
    regressed = client.get(f"/compare/{a}/{b}?outcome=regressed").text
    assert len(re.findall(r'<tr class="pair', regressed)) == 1 and f"/runs/{b}/examples/ex043" in regressed
    assert "<mark>" in regressed  # the two answers' differences
    missed = client.get(f"/compare/{a}/{b}?outcome=both-missed").text
    assert re.findall(r'class="example-a">(\w+) in A', missed) == ["ex048", "ex049"] == [
        f"ex{i:03d}" for i in range(50) if i >= 48]
    assert cmp.counts.both_fail == 2


def test_checks_page_has_history_trend_baselines_and_gates(client, seed_store) -> None:
    assert 'href="/checks/qa"' in client.get("/checks").text
    page = client.get("/checks/qa").text
    shown = text_of(page)
    assert "Check history: qa" in shown and f"Check {seed_store['check']}:" in shown
    assert "match rate" in shown and "provider model version" in shown  # gates
    assert "accepted" in shown and "current" in shown  # the baseline and its note
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 1  # the trend
    empty = client.get("/checks/nothing")  # a task without checks says how to start
    assert empty.status_code == 200 and "evals baseline set nothing RUN_ID" in text_of(empty.text)


def test_model_output_is_text_on_every_page(client, seed_store) -> None:
    for url in pages(seed_store):
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.text
        assert "<script" not in page.lower(), url
        assert not re.search(r"<[^>]*\son[a-z]+\s*=", page, flags=re.IGNORECASE), url  # no event handler
        assert "javascript:" not in re.sub(r"&lt;.*?&gt;", "", page.replace("&#34;javascript:", "")), url
        assert not re.search(r"""href=["']?javascript:""", page, flags=re.IGNORECASE), url
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert "script-src" not in response.headers["content-security-policy"]  # none allowed: default-src 'none'
        assert response.headers["server-timing"].startswith("app;dur=")
    for url in (f"/runs/{seed_store['a']}/examples/ex044", f"/runs/{seed_store['b']}/examples/ex043"):
        assert PAYLOAD in text_of(client.get(url).text)  # shown, literally


def test_labels_need_the_token_and_never_change_results(client, seed_store) -> None:
    a, store = seed_store["a"], seed_store["store"]
    before = results_digest(store)
    form = {"run": a, "example": "ex044", "label": "wrong", "comment": "not JSON <b>at all</b>"}
    refused = client.post("/label", data=form, headers={"origin": "http://evil.example"})
    assert refused.status_code == 403 and "another site" in refused.text
    assert client.post("/label", data=form).status_code == 403  # same site, but no token
    assert client.post("/label", data={**form, "token": TOKEN}, headers={"origin": "null"}).status_code == 403
    assert client.post("/label", data={**form, "token": "guess"}).status_code == 403
    assert not Store(store, readonly=True).labels(a)
    saved = client.post("/label", data={**form, "token": TOKEN}, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == f"/runs/{a}/examples/ex044#attempt-1"
    example = client.get(f"/runs/{a}/examples/ex044").text
    assert "Marked <b>wrong</b>" in example and "not JSON &lt;b&gt;at all&lt;/b&gt;" in example
    client.post("/label", data={**form, "example": "ex000", "label": "right", "token": TOKEN})
    run = text_of(client.get(f"/runs/{a}").text)
    assert "2 answer(s) labelled" in run and "2/2 (100%" in run  # the match verdict agrees with both
    exported = [json.loads(line) for line in client.get(f"/labels.jsonl?run={a}").text.splitlines()]
    assert [(e["example_id"], e["label"], e["model"]) for e in exported] == [("ex044", "wrong", "fake:base"),
                                                                             ("ex000", "right", "fake:base")]
    assert client.post("/label", data={**form, "label": "maybe", "token": TOKEN}).status_code == 400
    assert results_digest(store) == before


def test_the_store_is_only_read(seed_store, tmp_path) -> None:
    copy = copy_store(seed_store["store"], tmp_path / "copy.db")
    writer = Store(copy)  # an `evals run` writing while the viewer reads
    sqlite3.connect(copy).execute("DROP TABLE human_labels")  # as in a store from before the viewer
    schema = sqlite3.connect(copy).execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    client = TestClient(create_app(copy, allowed_hosts=["testserver"], token=TOKEN))
    digest = results_digest(copy)
    for url in pages(seed_store):
        assert client.get(url).status_code == 200, url
        writer.set_status(seed_store["b"], "completed")
    assert results_digest(copy) == digest
    assert sqlite3.connect(copy).execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema


def test_a_host_it_does_not_serve_is_refused(seed_store) -> None:
    client = TestClient(create_app(seed_store["store"], token=TOKEN), base_url="http://attacker.example")
    assert client.get("/").status_code == 400


def test_attempts_are_shown_when_results_have_them(seed_store, tmp_path) -> None:
    copy = copy_store(seed_store["store"], tmp_path / "attempts.db")
    db = sqlite3.connect(copy)
    db.execute("UPDATE runs SET manifest = json_set(manifest, '$.repeats', 3) WHERE id = ?", (seed_store["a"],))
    db.execute("UPDATE results SET attempt = 3")
    db.commit()
    client = TestClient(create_app(copy, allowed_hosts=["testserver"], token=TOKEN))
    assert "<th>attempt</th>" in client.get(f"/runs/{seed_store['a']}").text
    assert client.get(f"/runs/{seed_store['a']}/examples/ex001").status_code == 200
