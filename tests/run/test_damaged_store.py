"""A damaged store (bytes overwritten in the middle of a real one, or a file that is all garbage): `evals run`
refuses it before writing anything, every command that reads it says so in one line (exit 2), and so does
every read through the Python API; the viewer shows an error page naming it."""

from __future__ import annotations

import hashlib
import random
import sqlite3
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from evals.cli import app
from evals.errors import StorageError
from evals.run.store import Store, load_run
from evals.view.app import create_app
from tests.conftest import qa_rows
from tests.view.conftest import store_pair

GARBAGE = 64 * 1024


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    [line] = [ln for ln in result.stderr.splitlines() if ln.strip()]
    return line


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def stored(tmp_path) -> tuple[Path, str, str]:
    """A real store with two runs of 400 examples each (about 1.5 MB: many pages), closed."""
    path = tmp_path / "s.db"
    a, b = store_pair(path, [(i % 2 == 0,) for i in range(400)], [(i % 3 == 0,) for i in range(400)])
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE results SET output = output || ?", (" padding" * 200,))
    db.close()  # the last connection: the log is checkpointed into the file
    assert not path.with_name("s.db-wal").exists()
    return path, a, b


def damage_middle(path: Path) -> None:
    size = path.stat().st_size
    assert size > 4 * GARBAGE
    with path.open("r+b") as f:
        f.seek(size // 2)
        f.write(random.Random(1).randbytes(GARBAGE))


@pytest.fixture(params=["middle", "all"])
def damaged(request, stored, tmp_path) -> tuple[Path, str, str]:
    path, a, b = stored
    if request.param == "middle":
        damage_middle(path)
    else:
        path.write_bytes(random.Random(2).randbytes(GARBAGE))
    return path, a, b


def test_run_refuses_a_damaged_store_and_leaves_it_as_it_is(damaged, make_task) -> None:
    path, _, _ = damaged
    before = digest(path)
    line = one_line(invoke("run", make_task(rows=qa_rows(5)), "--store", path, "--progress", "none"))
    assert line.startswith(f"error: {path}: ") and "it was left as it is" in line
    assert ("is damaged" in line) or ("not a SQLite file" in line)
    assert digest(path) == before


@pytest.mark.parametrize("command", ["compare", "show", "runs"])
def test_commands_that_read_a_damaged_store_say_so_in_one_line(damaged, command) -> None:
    path, a, b = damaged
    args = {"compare": [a, b], "show": [a], "runs": []}[command]
    line = one_line(invoke(command, *args, "--store", path))
    assert line.startswith(f"error: {path}: ") and "run store" in line


def test_every_read_of_a_damaged_store_is_one_line_naming_it(stored) -> None:
    path, a, b = stored
    damage_middle(path)
    reads = {"results_frame": lambda s: s.results_frame(a), "result_rows": lambda s: list(s.result_rows(a)),
             "load_run": lambda s: load_run(a, s), "list_runs": lambda s: s.list_runs(),
             "outputs": lambda s: s.outputs(a, [(f"ex{i:03d}", 1) for i in range(400)])}
    for name, read in reads.items():
        store = Store(path, readonly=True)  # as the viewer and notebooks open it: no check, so the read meets it
        with pytest.raises(StorageError) as e:
            read(store)
        assert str(e.value) == f"{path}: could not read the run store: database disk image is malformed", name
        store.close()


def test_the_viewer_shows_an_error_page_for_a_damaged_store(stored) -> None:
    path, a, b = stored
    client = TestClient(create_app(path, allowed_hosts=["testserver"]))
    damage_middle(path)
    for url in ("/", f"/compare/{a}/{b}"):
        response = client.get(url)
        assert response.status_code == 500, url
        assert "<h1>Error</h1>" in response.text
        assert f"{path}: could not read the run store: database disk image is malformed" in response.text
