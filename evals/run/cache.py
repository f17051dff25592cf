"""Response cache (SQLite) keyed by provider, model, messages and params. Holds no credentials."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from evals._util import SQLiteDatabase, dir_hash, redact_url
from evals.types import Completion, GenerateParams, Message, ModelConfig


def default_cache_path() -> Path:
    root = os.environ.get("EVALS_CACHE_DIR") or Path.home() / ".cache" / "evals"
    return Path(root) / "responses.db"


def model_identity(provider_id: str, config: ModelConfig) -> str:
    """What decides a model's answers besides messages and params: the provider id, the server it is
    reached at (without credentials), provider options, and the adapter's content (not just its path)."""
    adapter = config.adapter_dir
    parts = [provider_id, redact_url(config.base_url), config.options, dir_hash(adapter) if adapter else None]
    return json.dumps(parts, sort_keys=True, default=str)


def cache_key(model: str, messages: Sequence[Message], params: GenerateParams, attempt: int = 1) -> str:
    """`model` is `model_identity(...)` (or any string naming the model exactly). Each repeated attempt
    of an example has its own entry; the first keeps the key of an unrepeated call."""
    payload: dict[str, object] = {
        "provider": model,
        "messages": [[m.role, m.content] if not (m.tool_calls or m.tool_call_id) else m.as_dict() for m in messages],
        "params": params.as_dict(),
    }
    if attempt > 1:
        payload["attempt"] = attempt
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class ResponseCache:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_cache_path()
        self._db = SQLiteDatabase(self.path,
                                  "response cache (choose another with --cache-path, or run with --no-cache)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, provider TEXT NOT NULL,"
            " completion TEXT NOT NULL, created_at TEXT DEFAULT CURRENT_TIMESTAMP)"
        )

    def get(self, key: str) -> Completion | None:
        row = self._db.execute("SELECT completion FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        # keep the original cost and latency: they describe the model; `cached` says nothing was spent now
        return dataclasses.replace(Completion(**json.loads(row[0])), cached=True)

    def put(self, key: str, provider_id: str, completion: Completion) -> None:
        """Store a successful completion (failures are never cached)."""
        if completion.error is not None:
            return
        data = json.dumps(dataclasses.asdict(completion))
        self._db.execute("INSERT OR REPLACE INTO responses (key, provider, completion) VALUES (?, ?, ?)",
                         (key, provider_id, data))

    def close(self) -> None:
        self._db.close()
