"""`evals view` as a user starts it: a real server on a free port that answers only to the Host names it says,
and one line (exit 2) for a missing store, a store from an older version, a file that is no store, a port already
in use and a bad --allow-host."""

from __future__ import annotations

import http.client
import socket
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evals.cli import app
from evals.run.store import Store
from tests.view.conftest import PAYLOAD


def view(*args: object):
    return CliRunner().invoke(app, ["view", *(str(a) for a in args)])


def one_line_error(result, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output, result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr


def test_a_missing_store_is_one_line(tmp_path) -> None:
    one_line_error(view("--store", tmp_path / "nope.db"), "no run store at", "nope.db")


def test_a_file_that_is_no_store_is_one_line(tmp_path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite")
    one_line_error(view("--store", junk), "junk.db", "not a database")
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).execute("CREATE TABLE other (x)")
    one_line_error(view("--store", empty), "not an evals run store")


def test_a_store_from_an_older_version_is_one_line_and_left_alone(tmp_path) -> None:
    old = tmp_path / "old.db"
    Store(old).close()
    db = sqlite3.connect(old)
    db.execute("ALTER TABLE results DROP COLUMN ttft_s")
    db.execute("DROP TABLE decisions")
    db.commit()
    before = old.read_bytes()
    one_line_error(view("--store", old), "older evals version", "results.ttft_s", "decisions",
                   f"evals runs --store {old}")
    assert old.read_bytes() == before


def test_a_port_in_use_is_one_line(seed_store) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        one_line_error(view("--store", seed_store["store"], "--port", port), f"127.0.0.1:{port}", "--port")


class Viewer:
    """`python -m evals view --port 0` in a subprocess; `url` once it listens, `lines` what it printed."""

    def __init__(self, store: Path, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "evals", "view", "--store", str(store), "--port", "0",
                                      *args], stderr=subprocess.PIPE, text=True)
        self.lines = [self.proc.stderr.readline() for _ in range(3)]
        if "http://" not in self.lines[0]:
            self.proc.kill()
            raise AssertionError(self.lines)
        self.url = self.lines[0].split(" at ")[-1].strip()

    def __enter__(self) -> Viewer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def test_the_viewer_serves_its_url_and_says_it_listens_locally(seed_store) -> None:
    with Viewer(seed_store["store"]) as v:
        assert v.url.startswith("http://127.0.0.1:") and "read-only" in v.lines[0]
        assert "this machine only" in v.lines[1]
        with urllib.request.urlopen(v.url + f"runs/{seed_store['a']}/examples/ex044", timeout=30) as r:
            page = r.read().decode()
            assert r.headers["content-security-policy"].startswith("default-src 'none'")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and PAYLOAD.split("<a")[0] not in page


def status_for_host(url: str, host: str) -> int:
    """The status of GET / at `url` with this Host header (what a browser sends for the name it was given)."""
    address = url.split("//")[1].rstrip("/")
    conn = http.client.HTTPConnection(address, timeout=30)
    conn.request("GET", "/", headers={"Host": host})
    status = conn.getresponse().status
    conn.close()
    return status


def test_a_wildcard_bind_answers_only_to_this_machine_and_the_allowed_names(seed_store) -> None:
    import psutil

    own = socket.gethostname()
    interface = next(a.address for addrs in psutil.net_if_addrs().values() for a in addrs
                     if a.family == socket.AF_INET and not a.address.startswith("127."))
    with Viewer(seed_store["store"], "--host", "0.0.0.0", "--allow-host", "Box.LAN") as v:
        assert "anyone who can reach this machine" in v.lines[1]
        said = v.lines[2]
        assert said.startswith("answers to Host: 127.0.0.1, localhost, ::1, ") and own in said and "box.lan" in said
        assert "*" not in said.split("(")[0]
        port = v.url.rsplit(":", 1)[1].rstrip("/")
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"{own}:{port}", own,
                     f"{interface}:{port}", f"box.lan:{port}"):
            assert status_for_host(v.url, host) == 200, host
        for host in (f"attacker.example:{port}", "rebind.attacker.example", f"{own}.attacker.example"):
            assert status_for_host(v.url, host) == 400, host


def test_any_host_only_when_asked_for(seed_store) -> None:
    with Viewer(seed_store["store"], "--allow-host", "*") as v:
        assert "this machine only" in v.lines[1] and "answers to any Host (--allow-host '*')" in v.lines[2]
        assert status_for_host(v.url, "attacker.example") == 200


def test_the_allowed_hosts_of_each_bind() -> None:
    from evals.view.hosts import allowed_hosts

    assert allowed_hosts("127.0.0.1") == ["127.0.0.1", "localhost", "::1"]
    assert allowed_hosts("10.1.2.3", ["[FD00::7]", "*.corp.example"]) == [
        "127.0.0.1", "localhost", "::1", "10.1.2.3", "fd00::7", "*.corp.example"]
    wildcard = allowed_hosts("::")
    assert "*" not in wildcard and socket.gethostname().lower() in wildcard and socket.getfqdn().lower() in wildcard
    assert allowed_hosts("0.0.0.0", ["*"]) == ["*"]


@pytest.mark.parametrize("value", ["box.lan:8700", "http://box.lan", "box*", "a b"])
def test_a_bad_allowed_host_is_one_line(seed_store, value) -> None:
    one_line_error(view("--store", seed_store["store"], "--host", "0.0.0.0", "--allow-host", value),
                   f"'{value}' is not a host name or address", "--allow-host")
