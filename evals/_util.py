"""Small helpers the whole package shares; imports nothing else in evals."""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib
import math
import re
import sqlite3
import sys
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def suggest(name: str, known: Iterable[str], *, style: str = "; did you mean '{}'?") -> str:
    """The "did you mean" hint for a misspelt name ('' when nothing is close), in the caller's style."""
    close = difflib.get_close_matches(str(name), sorted(known), n=1)
    return style.format(close[0]) if close else ""


def imported(name: str) -> ModuleType | None:
    """Module `name` if this process has imported it (never imported here just to look), else None. One that
    another thread is still importing is waited for under the import system's lock, never read half-made
    (`sys.modules` holds a module from the moment its import starts)."""
    if name not in sys.modules:
        return None
    try:
        return importlib.import_module(name)  # blocks on the module's lock while another thread runs its import
    except Exception:  # that import failed: as if it had never been made
        return None


def glibc_call(name: str, *args: int) -> int | None:
    """Call glibc's `name` (mallopt, malloc_trim) with integer arguments; None off Linux or without glibc (musl)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import ctypes.util

    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)(*args)
    except (OSError, AttributeError):
        return None


def decode_rate(output_tokens: float, latency_s: float, ttft_s: float | None) -> float | None:
    """Output tokens per second: after the first token when it was timed (streaming), else over the whole call."""
    if ttft_s is not None and output_tokens > 1 and latency_s > ttft_s:
        return (output_tokens - 1) / (latency_s - ttft_s)
    return output_tokens / latency_s if latency_s > 0 and output_tokens > 0 else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile, interpolated linearly between the closest ranks (numpy's default
    method); None for no values."""
    if not len(values):
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


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


def write_atomic(path: str | Path, text: str) -> None:
    """Write a file whole or not at all: a temporary file beside it, renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


LOCK_TIMEOUT_S = 30.0  # how long a write waits for another process's lock before it fails


SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file


class Database:
    """What a store reads and writes through, whatever holds it: a SQLite file (SQLiteDatabase) or a PostgreSQL
    server (evals.run.postgres). Callers write SQLite's dialect (? and :name parameters, INSERT OR REPLACE,
    json_extract, rowid); a backend that speaks another translates it. Failures are StorageErrors naming it
    (`path`: where it is, as it may be shown; a server's URL without its password)."""

    dialect = "sqlite"
    errors: tuple[type[Exception], ...] = (sqlite3.DatabaseError,)  # what a failure of the backend raises
    path: Path | str
    what: str
    readonly: bool

    def execute(self, sql: str, args: Any = ()) -> Any:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Iterable[Any]) -> None:
        raise NotImplementedError

    def executescript(self, sql: str) -> None:
        raise NotImplementedError

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """The writes inside happen all together or not at all."""
        raise NotImplementedError

    def insert(self, sql: str, args: Any = ()) -> int:
        """An INSERT into a table keyed by an `id` it numbers: the new row's id."""
        raise NotImplementedError

    def tables(self) -> set[str]:
        raise NotImplementedError

    def columns(self, table: str) -> list[str]:
        """The table's columns in their order ([] when it does not exist)."""
        raise NotImplementedError

    def schema_version(self) -> int:
        """The store layout's version as the newest evals that opened it wrote it (0 before versions)."""
        raise NotImplementedError

    def set_schema_version(self, version: int) -> None:
        raise NotImplementedError

    def continue_ids(self, table: str) -> None:
        """After rows were written with their ids given (a copy), new rows are numbered after them (SQLite's
        AUTOINCREMENT does so by itself)."""

    def upgrading(self) -> contextlib.AbstractContextManager[None]:
        """Held while the tables are brought up to date, so that two processes opening a new store do not both
        create them (SQLite: nothing; each step there tolerates another process's)."""
        return contextlib.nullcontext()

    def close(self) -> None:
        raise NotImplementedError

    def failure(self, doing: str, e: Exception) -> Exception:
        from evals.errors import StorageError

        reason = e.strerror if isinstance(e, OSError) and e.strerror else (str(e).strip().splitlines() or [""])[0]
        return StorageError(f"could not {doing} the {self.what}: {reason}", file=self.path)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """A database error inside (a damaged page met while rows are read, by a cursor or by pandas, which wraps
        it) becomes a StorageError naming the database."""
        try:
            yield
        except Exception as e:
            cause = e if isinstance(e, self.errors) else e.__cause__
            if isinstance(cause, self.errors):
                raise self.failure("read", cause) from None
            raise

    def rows(self, sql: str, args: Any = ()) -> list[Any]:
        """Every row a query returns, read whole."""
        with self.reading():
            return self.execute(sql, args).fetchall()


class SQLiteDatabase(Database):
    """A SQLite database shared by concurrent writers (autocommit, WAL, one connection across threads)
    whose failures (disk full, read-only, locked past LOCK_TIMEOUT_S, unopenable, damaged) are StorageErrors
    naming it. Opened for writing, a damaged file is refused before anything is written to it (`_check`).

    `readonly` opens an existing file for reading only: it never writes, never changes the journal mode
    and takes no lock a writer waits for (a file in a folder it cannot write is read as immutable)."""

    def __init__(self, path: Path, what: str, *, readonly: bool = False):
        self.path, self.what, self.readonly = path, what, readonly
        try:
            if readonly:
                self._db = self._open_readonly(path)
                OPEN_DATABASES.add(self)
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_file():
                self._check()
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=LOCK_TIMEOUT_S)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        except (OSError, sqlite3.Error) as e:
            raise self.failure("open", e) from None
        OPEN_DATABASES.add(self)

    @staticmethod
    def _open_readonly(path: Path) -> sqlite3.Connection:
        from urllib.parse import quote

        if not path.is_file():
            raise FileNotFoundError(2, "no such file", str(path))
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=LOCK_TIMEOUT_S)
        try:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:  # a WAL file whose folder cannot be written: no one else writes it either
            db.close()
            db = sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None, check_same_thread=False)
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return db

    def _check(self) -> None:
        """Refuse a damaged file with one line, before anything is written to it (a read-only connection: not even a
        checkpoint): its header, then SQLite's quick_check (every page's b-tree and record structure, without
        matching indexes to their tables: about 0.1 s per 200 MB), its first problem only."""
        from evals.errors import StorageError

        with open(self.path, "rb") as f:
            header = f.read(len(SQLITE_HEADER))
        if header and header != SQLITE_HEADER:
            raise StorageError(f"not a SQLite file (its first bytes are not SQLite's header), so not a {self.what};"
                               " it was left as it is", file=self.path)
        try:
            db = self._open_readonly(self.path)
            try:
                found = [str(r[0]) for r in db.execute("PRAGMA quick_check(1)").fetchall()]
            finally:
                db.close()
        except sqlite3.OperationalError:
            raise  # locked, unreadable: not a sign of damage (the caller says it could not open it)
        except sqlite3.DatabaseError as e:  # a page even quick_check could not read
            found = [str(e)]
        if found != ["ok"]:
            problem = "; ".join(ln for f in found for ln in f.splitlines() if ln and not ln.startswith("***"))
            raise StorageError(f"the {self.what} is damaged ({problem}); it was left as it is: restore it from a copy,"
                               f" or recover what it holds with `sqlite3 {self.path} .recover | sqlite3 recovered.db`",
                               file=self.path)

    def execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.OperationalError as e:
            if "duplicate column" in str(e):  # a schema change another process made first: not a fault
                raise
            raise self.failure("write" if sql.lstrip()[:6].upper() in WRITES else "read", e) from None
        except sqlite3.DatabaseError as e:
            raise self.failure("read", e) from None

    def executemany(self, sql: str, rows: Iterable[Any]) -> None:
        try:
            self._db.executemany(sql, rows)
        except sqlite3.Error as e:
            raise self.failure("write", e) from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.rollback()
            raise
        self.execute("COMMIT")

    def executescript(self, sql: str) -> None:
        try:
            self._db.executescript(sql)
        except sqlite3.Error as e:
            raise self.failure("write", e) from None

    def insert(self, sql: str, args: Any = ()) -> int:
        return int(self.execute(sql, args).lastrowid)

    def tables(self) -> set[str]:
        return {r[0] for r in self.rows("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def columns(self, table: str) -> list[str]:
        return [row[1] for row in self.rows(f"PRAGMA table_info({table})")]

    def schema_version(self) -> int:
        return int(self.rows("PRAGMA user_version")[0][0])

    def set_schema_version(self, version: int) -> None:
        self.execute(f"PRAGMA user_version = {int(version)}")

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection, for readers such as pandas."""
        return self._db

    def close(self) -> None:
        self._db.close()
        OPEN_DATABASES.discard(self)

    def __del__(self) -> None:  # sqlite3's statement cache keeps a connection in a cycle: close it with its owner
        with contextlib.suppress(Exception):
            self._db.close()


OPEN_DATABASES: weakref.WeakSet[Database] = weakref.WeakSet()  # until closed


def close_databases() -> None:
    """Close every database still open: the last connection to close checkpoints the write-ahead log and
    removes it, as the collector would have at exit."""
    for db in sorted(OPEN_DATABASES, key=lambda db: not db.readonly):  # a reader cannot remove the log: last, a writer
        db.close()


WRITES = {"INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "REPLAC", "BEGIN ", "COMMIT"}


# What names a credential, in a setting, header or query parameter, split into lowercase words (apiKey: api, key).
SECRET_WORDS = {"pwd", "auth", "authorization", "oauth", "signature", "cookie", "jwt", "bearer"}
SECRET_ENDINGS = ("key", "token")  # api_key, X-Api-Key, apikey, accessToken, authtoken
SECRET_PARTS = ("secret", "passw", "passphrase", "credential")  # client_secret, password, passwd, credentials
SECRET_NAMES = {"code", "sig", "pass", "session", "session_id", "sessionid"}  # whole names (Azure's ?code=, ?sig=)
SECRET_VALUE = re.compile(r"^(sk-|sk_|pk-|Bearer |Basic |ghp_|github_pat_|xox[bap]-|AKIA|AIza)|^[A-Za-z0-9_\-]{32,}$")
REDACTED = "***"


def secret_name(name: str) -> bool:
    """Whether a setting, header or query parameter of this name holds a credential, whatever its case and
    separators: api_key, apiKey, X-Api-Key, access_token, client_secret, password, pwd, code, sig, cookie..."""
    words = [w for w in re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()) if w]
    return "_".join(words) in SECRET_NAMES or any(
        w in SECRET_WORDS or w.endswith(SECRET_ENDINGS) or any(p in w for p in SECRET_PARTS) for w in words)


def is_secret(name: str, value: str) -> bool:
    """Whether a named value (a query parameter, a path segment after its name) is a credential."""
    return secret_name(name) or bool(SECRET_VALUE.search(value))


def url_secrets(url: str) -> list[str]:
    """The credentials in a URL: its user and password, the values of its secret-named or key-shaped query
    parameters, its key-shaped path segments and those after a secret-named one (/key/VALUE)."""
    parts = urlsplit(url)
    segments = parts.path.split("/")
    return ([p for p in (parts.username, parts.password) if p]
            + [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if v and is_secret(k, v)]
            + [s for before, s in zip(["", *segments], segments) if s and is_secret(before, s)])


def redact_url(url: str | None) -> str | None:
    """A URL as it may be stored or shown: without user:password, and its other credentials (url_secrets)
    as '***'; as it is when it holds none."""
    if not url or not url_secrets(url):
        return url
    parts = urlsplit(url)
    segments = parts.path.split("/")
    path = "/".join(REDACTED if s and is_secret(before, s) else s for before, s in zip(["", *segments], segments))
    query = [(k, REDACTED if is_secret(k, v) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2], path=path,
                                     query=urlencode(query, safe="*")))


def split_query(base_url: str | None) -> tuple[str | None, dict[str, str]]:
    """A base URL without its query (and fragment), and the query's parameters. Refused with one line: a
    parameter named twice (the SDKs take one value a name), and a user:password (the HTTP client will not send
    it beside the SDK's key header)."""
    from evals.errors import EvalsError

    if not base_url:
        return base_url, {}
    parts = urlsplit(base_url)
    if "@" in parts.netloc:
        raise EvalsError("the base URL holds a user:password, which cannot be sent beside the API key's header; "
                         "send it as a header instead (options: {headers: {Authorization: ...}})", field="base_url")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = dict(pairs)
    if len(query) < len(pairs):
        twice = sorted(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        raise EvalsError(f"the base URL names the query parameter{'s' * (len(twice) > 1)} {', '.join(twice)} more "
                         "than once; give each one value", field="base_url")
    return urlunsplit(parts._replace(query="", fragment="")), query


def redact_secrets(value: Any, name: str = "") -> Any:
    """`value` with anything that looks like a credential replaced by '***': values under names such as
    api_key or token (secret_name), key-shaped strings (sk-..., Bearer ..., 32+ random characters), and a
    URL's credentials (redact_url). For manifests and logs; never changes a value in use."""
    if isinstance(value, dict):
        return {k: redact_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_secrets(v, name) for v in value)
    if not isinstance(value, str):
        return value
    if name and secret_name(name) or SECRET_VALUE.search(value):
        return REDACTED
    return redact_url(value) if "://" in value else value
