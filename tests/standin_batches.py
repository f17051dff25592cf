"""The stand-in server's batch endpoints (see tests/standin_server.py), each API's own way:

    OpenAI      POST /v1/files (multipart, purpose batch)   GET /v1/files/{id}/content
                POST /v1/batches   GET /v1/batches/{id}   GET /v1/batches   POST /v1/batches/{id}/cancel
    Anthropic   POST /v1/messages/batches   GET /v1/messages/batches/{id}   GET /v1/messages/batches
                GET /v1/messages/batches/{id}/results   POST /v1/messages/batches/{id}/cancel

A batch is in progress for `delay` seconds after it is created, then ends: each item is answered as the
plain endpoint would answer it (same answer function, same usage), except that a prompt in `fail_once`
errors (a retryable server error) the first time a batch carries it, and that each of the next
`expire` batches expires with only its first half processed (the rest expired, as the APIs report it), and
that the next `fail_polls` polls of any batch answer 503 (the batch goes on meanwhile).
Counters record every batch created, every item submitted and answered (per prompt), and every poll.
"""

from __future__ import annotations

import email
import itertools
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Reply = Callable[[str, dict[str, Any]], dict[str, Any]]  # (api, request body) -> the plain endpoint's reply


@dataclass
class Batch:
    id: str
    api: str  # openai or anthropic
    created: float  # time.time()
    items: list[tuple[str, dict[str, Any]]]  # (custom_id, request body)
    expires: bool = False
    cancelled: bool = False
    metadata: dict[str, str] | None = None  # OpenAI's
    results: list[dict[str, Any]] | None = None  # once ended: one line per item, the API's format
    output_file: str | None = None
    error_file: str | None = None


@dataclass
class BatchCounts:
    created: int = 0
    polls: int = 0
    submitted_by_prompt: Counter[str] = field(default_factory=Counter)
    completed_by_prompt: Counter[str] = field(default_factory=Counter)


class Batches:
    def __init__(self, reply: Reply, prompt_of: Callable[[dict[str, Any]], str], *, delay: float = 0.0,
                 fail_once: frozenset[str] = frozenset(), expire: int = 0, fail_polls: int = 0,
                 enabled: bool = True):
        self.reply, self.prompt_of = reply, prompt_of
        self.delay, self.fail_once, self.expire, self.enabled = delay, set(fail_once), expire, enabled
        self.fail_polls = fail_polls  # the next polls that fail (set it to 0 to let them through again)
        self.counts = BatchCounts()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, Batch] = {}
        self._ids = itertools.count(1)

    def stats(self) -> dict[str, Any]:
        c = self.counts
        return {"created": c.created, "polls": c.polls, "submitted_by_prompt": dict(c.submitted_by_prompt),
                "completed_by_prompt": dict(c.completed_by_prompt)}

    def route(self, method: str, path: str, headers: dict[str, str], raw: bytes,
              base: str) -> tuple[int, Any] | None:
        """(status, JSON payload or raw bytes) for a batch endpoint; None when `path` is not one."""
        parts = path.strip("/").split("/")
        if parts[:2] == ["v1", "files"]:
            api = "openai-files"
        elif parts[:2] == ["v1", "batches"]:
            api = "openai"
        elif parts[:3] == ["v1", "messages", "batches"]:
            api, parts = "anthropic", parts[1:]
        else:
            return None
        if not self.enabled:
            return 404, {"error": {"message": f"no route {method} {path}", "type": "not_found_error"}}
        rest = parts[2:]
        if api == "openai-files":
            if method == "POST" and not rest:
                return 200, self._upload(headers.get("content-type", ""), raw)
            if method == "GET" and len(rest) == 2 and rest[1] == "content" and rest[0] in self.files:
                return 200, self.files[rest[0]]
            return 404, {"error": {"message": f"no file {path}"}}
        if method == "POST" and not rest:
            body = json.loads(raw or b"{}")
            if api == "openai":
                lines = [json.loads(t) for t in self.files[body["input_file_id"]].decode().splitlines() if t.strip()]
                items = [(line["custom_id"], line["body"]) for line in lines]
            else:
                items = [(r["custom_id"], r["params"]) for r in body["requests"]]
            batch = self._create(api, items)
            batch.metadata = body.get("metadata")
            return 200, self._view(batch, base)
        if method == "GET" and not rest:
            return 200, {"object": "list", "data": [self._view(b, base) for b in self.batches.values() if b.api == api],
                         "has_more": False, "first_id": None, "last_id": None}
        batch = self.batches.get(rest[0]) if rest else None
        if batch is None or batch.api != api:
            return 404, {"error": {"message": f"no batch {path}", "type": "not_found_error"}}
        if method == "POST" and rest[1:] == ["cancel"]:
            batch.cancelled = True
            return 200, self._view(batch, base)
        if method == "GET" and len(rest) == 1:
            self.counts.polls += 1
            if self.fail_polls > 0:
                self.fail_polls -= 1
                error = {"message": "injected poll failure", "type": "api_error"}
                return 503, {"type": "error", "error": error} if api == "anthropic" else {"error": error}
            return 200, self._view(batch, base)
        if method == "GET" and rest[1:] == ["results"] and batch.results is not None:
            return 200, "".join(json.dumps(r) + "\n" for r in batch.results).encode()
        return 404, {"error": {"message": f"no route {method} {path}", "type": "not_found_error"}}

    # ---- the batches' life ----------------------------------------------------------------------

    def _upload(self, content_type: str, raw: bytes) -> dict[str, Any]:
        message = email.message_from_bytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
        data = next(p.get_payload(decode=True) for p in message.get_payload()
                    if p.get_param("name", header="content-disposition") == "file")
        file_id = f"file-{next(self._ids)}"
        self.files[file_id] = data
        return {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": "batch.jsonl", "purpose": "batch", "status": "processed"}

    def _create(self, api: str, items: list[tuple[str, dict[str, Any]]]) -> Batch:
        prefix = "batch_" if api == "openai" else "msgbatch_"
        batch = Batch(prefix + secrets.token_hex(8), api, time.time(), items, expires=self.expire > 0)
        self.expire -= batch.expires
        self.batches[batch.id] = batch
        self.counts.created += 1
        for _, body in items:
            self.counts.submitted_by_prompt[self.prompt_of(body)] += 1
        return batch

    def _end(self, batch: Batch) -> None:
        """Answer every item (as the plain endpoint would), once the batch's time is up."""
        if batch.results is not None or (time.time() < batch.created + self.delay and not batch.cancelled):
            return
        unprocessed = len(batch.items) // 2 if batch.expires else 0 if not batch.cancelled else len(batch.items)
        results = []
        for n, (custom_id, body) in enumerate(batch.items):
            prompt = self.prompt_of(body)
            if n >= len(batch.items) - unprocessed:
                results.append(self._line(batch, custom_id, "expired" if batch.expires else "canceled"))
            elif prompt in self.fail_once:
                self.fail_once.discard(prompt)
                results.append(self._line(batch, custom_id, "errored"))
            else:
                self.counts.completed_by_prompt[prompt] += 1
                results.append(self._line(batch, custom_id, "succeeded", self.reply(batch.api, body)))
        batch.results = results
        if batch.api == "openai":
            ok = [r for r in results if r["error"] is None and r["response"]["status_code"] == 200]
            failed = [r for r in results if r not in ok]
            for rows, attr in ((ok, "output_file"), (failed, "error_file")):
                if rows:
                    file_id = f"file-{next(self._ids)}"
                    self.files[file_id] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                    setattr(batch, attr, file_id)

    def _line(self, batch: Batch, custom_id: str, outcome: str, reply: dict[str, Any] | None = None) -> dict[str, Any]:
        if batch.api == "anthropic":
            if outcome == "succeeded":
                return {"custom_id": custom_id, "result": {"type": "succeeded", "message": reply}}
            if outcome == "errored":
                error = {"type": "error", "error": {"type": "api_error", "message": "injected item failure"}}
                return {"custom_id": custom_id, "result": {"type": "errored", "error": error}}
            return {"custom_id": custom_id, "result": {"type": outcome}}
        row: dict[str, Any] = {"id": f"batch_req_{next(self._ids)}", "custom_id": custom_id, "response": None,
                               "error": None}
        if outcome == "succeeded":
            row["response"] = {"status_code": 200, "request_id": "req", "body": reply}
        elif outcome == "errored":
            row["response"] = {"status_code": 500, "request_id": "req", "body": {
                "error": {"message": "injected item failure", "type": "server_error"}}}
        else:
            code = "batch_expired" if outcome == "expired" else "batch_cancelled"
            row["error"] = {"code": code, "message": f"This request could not be executed before the batch {outcome}."}
        return row

    def _view(self, batch: Batch, base: str) -> dict[str, Any]:
        """The batch as its API describes it."""
        self._end(batch)
        ended, n = batch.results is not None, len(batch.items)
        kinds = Counter(_kind(batch.api, r) for r in batch.results or [])
        if batch.api == "anthropic":
            counts = {"processing": 0 if ended else n, "succeeded": kinds["succeeded"], "errored": kinds["errored"],
                      "canceled": kinds["canceled"], "expired": kinds["expired"]}
            stamp = _iso(batch.created)
            return {"id": batch.id, "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
                    "request_counts": counts, "created_at": stamp, "expires_at": _iso(batch.created + 86400),
                    "ended_at": _iso(time.time()) if ended else None, "archived_at": None,
                    "cancel_initiated_at": stamp if batch.cancelled else None,
                    "results_url": f"{base}/v1/messages/batches/{batch.id}/results" if ended else None}
        status = ("in_progress" if not ended else "expired" if batch.expires else
                  "cancelled" if batch.cancelled else "completed")
        return {"id": batch.id, "object": "batch", "endpoint": "/v1/chat/completions", "completion_window": "24h",
                "input_file_id": "file-input", "status": status, "created_at": int(batch.created),
                "metadata": batch.metadata,
                "output_file_id": batch.output_file, "error_file_id": batch.error_file, "errors": None,
                "request_counts": {"total": n, "completed": kinds["succeeded"],
                                   "failed": n - kinds["succeeded"] if ended else 0}}


def _kind(api: str, row: dict[str, Any]) -> str:
    if api == "anthropic":
        return row["result"]["type"]
    if row["error"] is not None:
        return "expired"
    return "succeeded" if row["response"]["status_code"] == 200 else "errored"


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
