"""Review labels belong to the attempt they judge: with repeats, a label on attempt 2 shows on attempt 2 only,
counts against attempt 2's verdict and is exported with it; a store's older labels (no attempt) are attempt 1,
read as they are and upgraded when the store is opened for writing."""

from __future__ import annotations

import json
import re
import sqlite3

from starlette.testclient import TestClient

from evals.run.store import Store
from evals.view.app import create_app
from tests.view.conftest import store_pair
from tests.view.test_view_app import text_of

TOKEN = "session-token"
OLD_LABELS = """
DROP TABLE human_labels;
CREATE TABLE human_labels (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL REFERENCES runs(id),
    example_id TEXT NOT NULL, attempt INTEGER, label TEXT NOT NULL CHECK (label IN ('right', 'wrong')),
    comment TEXT, labelled_at TEXT NOT NULL);
CREATE INDEX labels_by_example ON human_labels (run_id, example_id, id);
"""


def row_labels(page: str) -> dict[tuple[str, int], str]:
    """(example id, attempt) -> the label column of the run page's examples table (attempt 1 without repeats)."""
    rows = re.findall(r'<tr class="example \w+">(.*?)</tr>', page, flags=re.DOTALL)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.DOTALL) for row in rows]
    repeated = "<th>attempt</th>" in page
    return {(text_of(c[0]), int(c[1]) if repeated else 1): c[-1] for c in cells}


def test_a_label_belongs_to_the_attempt_it_judges(tmp_path) -> None:
    path = tmp_path / "repeats.db"
    a, _ = store_pair(path, [(True, False)] * 3, [(True, True)] * 3)  # ex001: attempt 1 matched, attempt 2 did not
    client = TestClient(create_app(path, allowed_hosts=["testserver"], token=TOKEN))
    form = {"token": TOKEN, "run": a, "example": "ex001", "attempt": "2", "label": "wrong", "comment": "2 is off"}
    saved = client.post("/label", data=form, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == f"/runs/{a}/examples/ex001#attempt-2"
    example = client.get(f"/runs/{a}/examples/ex001").text
    assert 'id="label-attempt-2">Marked <b>wrong</b>' in example and 'id="label-attempt-1"' not in example
    attempt_1 = example[example.index('id="attempt-1"'):example.index('id="attempt-2"')]
    assert "Marked" not in attempt_1
    run = client.get(f"/runs/{a}").text
    labels = row_labels(run)
    assert labels[("ex001", 2)] == "wrong" and labels[("ex001", 1)] == "" and labels[("ex000", 2)] == ""
    assert "1 answer(s) labelled" in text_of(run) and "1/1 (100%" in text_of(run)  # attempt 2 did not match
    [exported] = [json.loads(line) for line in client.get(f"/labels.jsonl?run={a}").text.splitlines()]
    assert (exported["example_id"], exported["attempt"], exported["label"]) == ("ex001", 2, "wrong")
    assert client.post("/label", data={**form, "attempt": "1", "label": "right"}).status_code == 200
    assert {(lab.attempt, lab.label) for lab in Store(path, readonly=True).labels(a)} == {(1, "right"),
                                                                                          (2, "wrong")}
    missing = client.post("/label", data={**form, "attempt": "3"})
    assert missing.status_code == 404 and "no attempt 3 of example 'ex001'" in text_of(missing.text)
    assert client.post("/label", data={**form, "attempt": "two"}).status_code == 400


def test_labels_from_an_older_store_are_attempt_1(tmp_path) -> None:
    path = tmp_path / "old.db"
    a, _ = store_pair(path, [(True,)] * 3, [(False,)] * 3)
    Store(path).close()
    db = sqlite3.connect(path)
    db.executescript(OLD_LABELS)
    db.execute("INSERT INTO human_labels (run_id, example_id, attempt, label, comment, labelled_at) VALUES"
               " (?, 'ex002', NULL, 'wrong', 'from before', '2026-01-01T00:00:00+00:00')", (a,))
    db.commit()
    db.close()
    client = TestClient(create_app(path, allowed_hosts=["testserver"], token=TOKEN))  # read-only: not upgraded
    run = client.get(f"/runs/{a}").text
    assert row_labels(run)[("ex002", 1)] == "wrong" and row_labels(run)[("ex001", 1)] == ""
    assert "1 answer(s) labelled" in text_of(run) and "0/1 (0%" in text_of(run)  # it matched; people said wrong
    assert 'id="label-attempt-1">Marked <b>wrong</b>' in client.get(f"/runs/{a}/examples/ex002").text
    assert json.loads(client.get("/labels.jsonl").text)["attempt"] == 1
    assert sqlite3.connect(path).execute("SELECT attempt FROM human_labels").fetchall() == [(None,)]
    store = Store(path)  # opened for writing: upgraded once, in place
    info = {row[1]: row for row in store.connection.execute("PRAGMA table_info(human_labels)")}
    assert info["attempt"][3] == 1  # NOT NULL
    assert store.connection.execute("SELECT attempt, comment FROM human_labels").fetchall() == [(1, "from before")]
    index = [r[2] for r in store.connection.execute("PRAGMA index_info(labels_by_example)")]
    assert index == ["run_id", "example_id", "attempt", "id"]
    store.add_label(a, "ex002", "right")  # the same answer judged again: the new label replaces the old
    assert [(lab.attempt, lab.label) for lab in Store(path).labels(a)] == [(1, "right")]
