"""Small helpers the whole package shares; imports nothing else in evals."""

from __future__ import annotations

import difflib
import hashlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def suggest(name: str, known: Iterable[str], *, style: str = "; did you mean '{}'?") -> str:
    """The "did you mean" hint for a misspelt name ('' when nothing is close), in the caller's style."""
    close = difflib.get_close_matches(str(name), sorted(known), n=1)
    return style.format(close[0]) if close else ""


def dir_hash(path: str | Path) -> str | None:
    """Content hash of every file under a directory (an adapter), or None when it does not exist."""
    root = Path(path)
    if not root.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def public_url(url: str | None) -> str | None:
    """A base URL without any user:password part."""
    if not url:
        return url
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def write_atomic(path: str | Path, text: str) -> None:
    """Write a file whole or not at all: a temporary file beside it, renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def connect(path: Path) -> sqlite3.Connection:
    """A SQLite database shared by concurrent writers: autocommit, WAL, one connection across threads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db
