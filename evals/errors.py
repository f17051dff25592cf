"""Errors a user can fix (bad input) versus errors a provider reports (retried by the runner)."""

from __future__ import annotations

from pathlib import Path


class EvalsError(Exception):
    """A user mistake: printed as one clear message by the CLI, exit code 2, no traceback."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ):
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or ""
        if self.line:
            where += f":{self.line}"
        if self.field:
            where += f" field '{self.field}'" if where else f"field '{self.field}'"
        return f"{where}: {self.message}" if where else self.message


def read_utf8(path: Path) -> str:
    """A file's text; bytes that are not UTF-8 are an EvalsError naming the line and the byte."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise not_utf8(e, path, raw.count(b"\n", 0, e.start) + 1) from None


def not_utf8(e: UnicodeDecodeError, file: str | Path, line: int) -> EvalsError:
    """The one-line error for text that is not UTF-8: where, and the first byte that is not."""
    start = e.object.rfind(b"\n", 0, e.start) + 1
    return EvalsError(f"not UTF-8 text: byte 0x{e.object[e.start]:02x} at column {e.start - start + 1}", file=file,
                      line=line)


class RunHalted(EvalsError):
    """A failure that stops a run and loses nothing: no new call starts, the calls in flight are kept, the run
    is marked interrupted and `evals run --resume RUN_ID` finishes it (`resume` says how, for the message)."""

    resume = "once it is fixed, resume with `evals run --resume {run_id}`"


class StorageError(RunHalted):
    """The run store or the response cache could not be read or written: disk full, read-only, locked."""


class BatchUnreachable(RunHalted):
    """A batch's polls kept failing past the run's retry bounds; the batch goes on at the provider."""

    resume = "`evals run --resume {run_id}` polls the same batch (nothing is submitted or paid for again)"


class MissingCredentials(EvalsError):
    """A provider cannot run here (no API key, optional package or LoRA adapter missing); the run skips it."""


class ProviderError(Exception):
    """A failed model call. `retryable` tells the runner whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
