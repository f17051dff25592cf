"""The stand-in server's fine-tuning endpoints (see tests/standin_server.py), as OpenAI's API has them:

    POST /v1/files (multipart, purpose fine-tune)   GET /v1/files   GET /v1/files/{id}
    POST /v1/fine_tuning/jobs   GET /v1/fine_tuning/jobs   GET /v1/fine_tuning/jobs/{id}
    GET /v1/fine_tuning/jobs/{id}/events   GET /v1/fine_tuning/jobs/{id}/checkpoints
    POST /v1/fine_tuning/jobs/{id}/cancel

A job moves one stage per retrieve: validating_files (where each training line is checked as the API
checks it, and an invalid one fails the job naming the line), queued, then `polls` retrieves running,
each adding a metrics event (step, train_loss, valid_loss), then succeeded with a fine-tuned model and
`trained_tokens` = the training file's words x epochs (1 step per example per epoch). `fail_running` makes
running jobs fail instead. A base model outside FINE_TUNABLE is refused at create with the API's 400.
Counters record uploads, jobs created, retrieves and cancels, so a test can assert nothing went twice.
"""

from __future__ import annotations

import email
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

FINE_TUNABLE = ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", "gpt-4o-2024-08-06", "gpt-4.1-2025-04-14",
                "gpt-4.1-mini-2025-04-14", "gpt-4.1-nano-2025-04-14")
MIN_EXAMPLES = 10
ROLES = ("system", "user", "assistant")


@dataclass
class Job:
    id: str
    body: dict[str, Any]
    created: int
    n_train: int
    train_words: int
    status: str = "validating_files"
    polls_running: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    error: dict[str, Any] | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    finished_at: int | None = None

    @property
    def epochs(self) -> int:
        hyper = (((self.body.get("method") or {}).get("supervised") or {}).get("hyperparameters")
                 or self.body.get("hyperparameters") or {})
        n = hyper.get("n_epochs", "auto")
        return 3 if n == "auto" else int(n)

    @property
    def total_steps(self) -> int:
        return self.n_train * self.epochs


@dataclass
class FineTuneCounts:
    uploads: int = 0
    jobs_created: int = 0
    retrieves: int = 0
    cancels: int = 0


def _error(status: int, message: str, param: str | None = None, code: str | None = None) -> tuple[int, Any]:
    return status, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


def check_line(line: str) -> str | None:
    """What the API says of one training line, or None when it is a valid chat."""
    try:
        row = json.loads(line)
    except ValueError:
        return "is not valid JSON"
    messages = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(messages, list) or not messages:
        return "has no 'messages' list"
    for j, m in enumerate(messages, 1):
        if m.get("role") not in ROLES:
            return f"message {j} has an invalid role {m.get('role')!r}"
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            return f"message {j} has empty content"
    if messages[-1]["role"] != "assistant":
        return "does not end with an assistant message"
    return None


class FineTunes:
    def __init__(self, *, polls: int = 3, fail_running: bool = False):
        self.polls, self.fail_running = polls, fail_running
        self.counts = FineTuneCounts()
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}  # id -> (file object, content)
        self.jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)

    def route(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any] | None:
        """(status, JSON payload) for a files or fine-tuning endpoint; None when `path` is not one (a batch's
        file upload, say, is left to the batch endpoints)."""
        parts = path.strip("/").split("/")
        if parts[:2] == ["v1", "files"]:
            return self._files(method, parts[2:], headers, raw)
        if parts[:3] == ["v1", "fine_tuning", "jobs"]:
            return self._jobs(method, parts[3:], raw)
        return None

    # ---- files -----------------------------------------------------------------------------------

    def _files(self, method: str, rest: list[str], headers: dict[str, str], raw: bytes) -> tuple[int, Any] | None:
        if method == "POST" and not rest:
            form = _form(headers.get("content-type", ""), raw)
            if form.get("purpose") != b"fine-tune":
                return None
            return 200, self._upload(form)
        if method == "GET" and not rest:
            data = [f for f, _ in reversed(self.files.values())]
            return 200, {"object": "list", "data": data, "has_more": False}
        if method == "GET" and len(rest) == 1 and rest[0] in self.files:
            return 200, self.files[rest[0]][0]
        return None

    def _upload(self, form: dict[str, Any]) -> dict[str, Any]:
        self.counts.uploads += 1
        content = form["file"]
        file_id = f"file-{secrets.token_hex(12)}"
        obj = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
               "filename": form.get("filename") or "upload.jsonl", "purpose": "fine-tune", "status": "processed"}
        self.files[file_id] = (obj, content)
        return obj

    # ---- jobs ------------------------------------------------------------------------------------

    def _jobs(self, method: str, rest: list[str], raw: bytes) -> tuple[int, Any]:
        if method == "POST" and not rest:
            return self._create(json.loads(raw or b"{}"))
        if method == "GET" and not rest:
            data = [self._view(j) for j in reversed(self.jobs.values())]
            return 200, {"object": "list", "data": data, "has_more": False}
        job = self.jobs.get(rest[0]) if rest else None
        if job is None:
            return 404, {"error": {"message": f"Could not find fine-tune: {rest[0] if rest else ''}",
                                   "type": "invalid_request_error", "param": "fine_tune_id", "code": None}}
        if method == "GET" and len(rest) == 1:
            self.counts.retrieves += 1
            self._advance(job)
            return 200, self._view(job)
        if method == "GET" and rest[1:] == ["events"]:
            events = list(reversed(job.events))  # newest first, as the API lists them
            return 200, {"object": "list", "data": events, "has_more": False}
        if method == "GET" and rest[1:] == ["checkpoints"]:
            return 200, {"object": "list", "data": self._checkpoints(job), "has_more": False}
        if method == "POST" and rest[1:] == ["cancel"]:
            self.counts.cancels += 1
            if job.status in ("succeeded", "failed", "cancelled"):
                return _error(400, f"Job {job.id} has already {job.status}.", code="invalid_state")
            job.status, job.finished_at = "cancelled", int(time.time())
            self._event(job, "The job was cancelled")
            return 200, self._view(job)
        return 404, {"error": {"message": f"no route {method} {'/'.join(rest)}"}}

    def _create(self, body: dict[str, Any]) -> tuple[int, Any]:
        model = body.get("model")
        if model not in FINE_TUNABLE:
            return _error(400, f"Model {model} is not available for fine-tuning or does not exist.", "model",
                          "model_not_available")
        for key in ("training_file", "validation_file"):
            if body.get(key) is not None and body[key] not in self.files:
                return _error(400, f"invalid {key}: {body[key]}", key)
        if not body.get("training_file"):
            return _error(400, "Missing required parameter: 'training_file'.", "training_file")
        content = self.files[body["training_file"]][1].decode()
        lines = [t for t in content.splitlines() if t.strip()]
        self.counts.jobs_created += 1
        job = Job(f"ftjob-{secrets.token_hex(12)}", body, int(time.time()), len(lines),
                  sum(len(t.split()) for t in _texts(lines)))
        self.jobs[job.id] = job
        self._event(job, f"Validating training file: {body['training_file']}")
        return 200, self._view(job)

    def _advance(self, job: Job) -> None:
        """One stage a retrieve: validating -> queued -> running (polls times) -> succeeded (or failed)."""
        if job.status == "validating_files":
            problem = self._validate(job)
            if problem:
                self._fail(job, "invalid_training_file", problem, "training_file")
            else:
                job.status = "queued"
                self._event(job, "Files validated, moving job to queued state")
        elif job.status == "queued":
            job.status = "running"
            self._event(job, "Fine-tuning job started")
        elif job.status == "running":
            if self.fail_running:
                self._fail(job, "internal_error", "The job failed due to an internal error.", None)
                return
            job.polls_running += 1
            step = min(job.total_steps, round(job.total_steps * job.polls_running / self.polls))
            loss = 2.0 / (1 + job.polls_running)
            self._event(job, f"Step {step}/{job.total_steps}: training loss={loss:.4f}, validation loss="
                             f"{loss * 1.1:.4f}", kind="metrics",
                        data={"step": step, "train_loss": loss, "valid_loss": loss * 1.1,
                              "total_steps": job.total_steps, "train_mean_token_accuracy": 1 - loss / 4})
            if job.polls_running >= self.polls:
                suffix = job.body.get("suffix") or ""
                job.status, job.finished_at = "succeeded", int(time.time())
                job.fine_tuned_model = f"ft:{job.body['model']}:standin-org:{suffix}:{secrets.token_hex(4)}"
                job.trained_tokens = job.train_words * job.epochs
                self._event(job, f"New fine-tuned model created: {job.fine_tuned_model}")
                self._event(job, "The job has successfully completed")

    def _validate(self, job: Job) -> str | None:
        content = self.files[job.body["training_file"]][1].decode()
        lines = content.splitlines()
        for i, line in enumerate(lines, 1):
            if line.strip() and (problem := check_line(line)):
                return f"The job failed due to an invalid training file. Invalid file format. Line {i}: {problem}."
        if job.n_train < MIN_EXAMPLES:
            return (f"The job failed due to an invalid training file. Training file has {job.n_train} example(s), "
                    f"but must have at least {MIN_EXAMPLES} examples")
        return None

    def _fail(self, job: Job, code: str, message: str, param: str | None) -> None:
        job.status, job.finished_at = "failed", int(time.time())
        job.error = {"code": code, "message": message, "param": param}
        self._event(job, message, level="error")

    def _event(self, job: Job, message: str, *, kind: str = "message", level: str = "info",
               data: dict[str, Any] | None = None) -> None:
        job.events.append({"id": f"ftevent-{next(self._ids)}", "object": "fine_tuning.job.event",
                           "created_at": int(time.time()), "level": level, "message": message, "type": kind,
                           "data": data or {}})

    def _checkpoints(self, job: Job) -> list[dict[str, Any]]:
        if job.fine_tuned_model is None:
            return []
        last = next(e["data"] for e in reversed(job.events) if e["type"] == "metrics")
        return [{"id": f"ftckpt-{job.id[-6:]}", "object": "fine_tuning.job.checkpoint", "created_at": job.finished_at,
                 "fine_tuned_model_checkpoint": f"{job.fine_tuned_model}:ckpt-step-{last['step']}",
                 "fine_tuning_job_id": job.id, "step_number": last["step"],
                 "metrics": {"step": last["step"], "train_loss": last["train_loss"], "valid_loss": last["valid_loss"],
                             "full_valid_loss": last["valid_loss"]}}]

    def _view(self, job: Job) -> dict[str, Any]:
        b = job.body
        hyper = ((b.get("method") or {}).get("supervised") or {}).get("hyperparameters") or b.get("hyperparameters") or {}
        return {"id": job.id, "object": "fine_tuning.job", "created_at": job.created, "model": b["model"],
                "organization_id": "org-standin", "status": job.status, "error": job.error,
                "fine_tuned_model": job.fine_tuned_model, "finished_at": job.finished_at,
                "hyperparameters": {"n_epochs": job.epochs, "batch_size": hyper.get("batch_size", 1),
                                    "learning_rate_multiplier": hyper.get("learning_rate_multiplier", 1.8)},
                "result_files": [], "seed": b.get("seed") or 42, "trained_tokens": job.trained_tokens,
                "training_file": b["training_file"], "validation_file": b.get("validation_file"),
                "metadata": b.get("metadata"), "method": b.get("method") or {"type": "supervised"},
                "estimated_finish": None}


def _texts(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        try:
            out += [m.get("content") or "" for m in json.loads(line).get("messages") or []]
        except (ValueError, AttributeError):
            out.append(line)
    return out


def _form(content_type: str, raw: bytes) -> dict[str, Any]:
    """A multipart/form-data body: each field's bytes, and the uploaded file's name."""
    message = email.message_from_bytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    form: dict[str, Any] = {}
    for part in message.get_payload() if message.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        form[name] = part.get_payload(decode=True)
        if name == "file":
            form["filename"] = part.get_filename()
    return form
