"""A throwaway PostgreSQL cluster for tests and benchmarks: initdb in a temporary folder, pg_ctl start on a free
127.0.0.1 port (password authentication over TCP), pg_ctl stop and the folder removed at the end.

PostgreSQL refuses to run as root: as root, the cluster belongs to `nobody` (runuser), in a folder it owns.
Without the server binaries (or psycopg) `find_missing()` says what to install; where the tests must run against
it (CI, or EVALS_REQUIRE_POSTGRES=1) a missing server is a failure, not a skip."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

INSTALL = ("PostgreSQL server binaries not found (initdb, pg_ctl): apt-get install postgresql psycopg "
           "(or pip install 'evals[postgres]'), or put their bin/ on PATH")
USER = "evals"


def required() -> bool:
    """Whether the PostgreSQL tests must run here (CI sets CI; .ci/run exports EVALS_REQUIRE_POSTGRES=1)."""
    return os.environ.get("EVALS_REQUIRE_POSTGRES") == "1" or bool(os.environ.get("CI"))


def bindir() -> Path | None:
    """Where initdb and pg_ctl are: pg_config --bindir, Debian's /usr/lib/postgresql/N/bin (newest), or PATH."""
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    if found := shutil.which("initdb"):
        candidates.append(str(Path(found).parent))
    for folder in candidates:
        if folder and (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def find_missing() -> str | None:
    """Why no cluster can be started here, or None."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed: pip install 'evals[postgres]'"
    return None if bindir() else INSTALL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A running cluster: `url(db)` connects to database `db` as the superuser `evals` with its password."""

    def __init__(self) -> None:
        self.bin = bindir()
        assert self.bin, INSTALL
        self.root = Path(tempfile.mkdtemp(prefix="evals-pg-"))
        self.data, self.port, self.password = self.root / "data", _free_port(), secrets.token_hex(12)
        self._as = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self._as:
            shutil.chown(self.root, "nobody")
            shutil.chown(pwfile, "nobody")
        self._run("initdb", "-D", str(self.data), "-U", USER, "--pwfile", str(pwfile), "--auth-local=trust",
                  "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
        self.start()

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=300 -c shared_buffers=32MB")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", "-t", "60",
                  "start")

    def halt(self) -> None:
        """Stop the server at once, as a crash would (its data kept: `start` brings it back)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run([*self._as, str(self.bin / tool), *args], capture_output=True, text=True, check=False,
                              cwd=self.root)
        if done.returncode:
            log = (self.root / "log").read_text() if (self.root / "log").is_file() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip()} {log[-2000:]}")

    def url(self, db: str = "postgres", password: str | None = None) -> str:
        return f"postgresql://{USER}:{password or self.password}@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        """A fresh, empty database's URL."""
        import psycopg

        name = "t_" + secrets.token_hex(6)
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self.halt()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
