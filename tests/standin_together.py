"""Together AI's fine-tuning endpoints, as the stand-in server serves them in place of OpenAI's
(`StandinServer(finetunes=TogetherFineTunes())`; its /v1/chat/completions answers the trained model):

    POST /v1/files                  form (purpose, file_name, file_type, checksum): a 302 to PUT the bytes
                                    (Location, X-Together-File-Id), or a 409 with the file_id that checksum made
    PUT  /_upload/{id}              the file's bytes         POST /v1/files/{id}/preprocess   GET /v1/files[/{id}]
    GET  /v1/fine-tunes/models/limits   POST /v1/fine-tunes/estimate-price
    POST /v1/fine-tunes   GET /v1/fine-tunes   GET /v1/fine-tunes/{id}   GET /v1/fine-tunes/{id}/events
    POST /v1/fine-tunes/{id}/cancel

A job moves one stage per retrieve: pending (where each training line is checked, and an invalid one ends the
job in error naming the line), queued, then `polls` retrieves running (each a step event: step, total_steps),
compressing, uploading, completed with `model_output_name` and `total_price` in nanodollars = tokens processed
(training words x epochs + validation words x n_evals) x NANODOLLARS_PER_TOKEN, a stand-in rate, not Together's.
`fail_running` ends running jobs in error; a cancel goes cancel_requested, then cancelled. A base outside
FINE_TUNABLE is refused with a 400. Counters record upload requests, PUTs, jobs created, retrieves and cancels.
"""

from __future__ import annotations

import itertools
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.standin_finetunes import _form, check_line

FINE_TUNABLE = ("meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", "Qwen/Qwen3-8B")
NANODOLLARS_PER_TOKEN = 500  # $0.50 per million tokens processed: the stand-in's rate
USER = "standin-user"


def _words(content: bytes) -> int:
    return sum(len(m["content"].split()) for line in content.decode().splitlines() if line.strip()
               for m in json.loads(line)["messages"])


@dataclass
class Job:
    id: str
    body: dict[str, Any]
    created: datetime
    status: str = "pending"
    polls_running: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    token_count: int | None = None
    total_price: int | None = None
    output_name: str | None = None


@dataclass
class TogetherCounts:
    upload_requests: int = 0  # POST /v1/files
    puts: int = 0  # bytes sent
    conflicts: int = 0  # 409: the checksum already made a file
    jobs_created: int = 0
    retrieves: int = 0
    cancels: int = 0


def _error(status: int, message: str) -> tuple[int, Any]:
    return status, {"error": {"message": message, "type": "invalid_request_error"}}


class TogetherFineTunes:
    def __init__(self, polls: int = 3):
        self.polls = polls
        self.fail_running = False
        self.files: dict[str, dict[str, Any]] = {}  # id -> the file's record (its bytes under "content")
        self.by_checksum: dict[str, str] = {}
        self.jobs: dict[str, Job] = {}
        self.counts = TogetherCounts()
        self._clock = itertools.count()

    def _now(self) -> datetime:  # strictly increasing, so events sort as they happened
        return datetime(2026, 12, 7, tzinfo=UTC) + timedelta(seconds=next(self._clock))

    def route(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple | None:
        parts = path.strip("/").split("/")
        if parts[0] == "_upload" and method == "PUT" and len(parts) == 2 and parts[1] in self.files:
            self.counts.puts += 1
            self.files[parts[1]]["content"] = raw
            return 200, {}
        if parts[:2] == ["v1", "files"]:
            return self._files(method, parts[2:], headers, raw)
        if parts[:2] == ["v1", "fine-tunes"]:
            return self._fine_tunes(method, parts[2:], raw)
        return None

    # ---- files -----------------------------------------------------------------------------------

    def _files(self, method: str, rest: list[str], headers: dict[str, str], raw: bytes) -> tuple | None:
        if method == "POST" and not rest:
            self.counts.upload_requests += 1
            form = {k: v.decode() for k, v in _form(headers.get("content-type", ""), raw).items() if v is not None}
            if form.get("checksum") in self.by_checksum:
                self.counts.conflicts += 1
                return 409, {"file_id": self.by_checksum[form["checksum"]], "message": "file already exists"}
            file_id = f"file-{secrets.token_hex(8)}"
            self.files[file_id] = {"id": file_id, "object": "file", "bytes": 0, "created_at": 1765065600,
                                   "filename": form.get("file_name", "upload.jsonl"), "FileType": "jsonl",
                                   "purpose": form.get("purpose", "fine-tune"), "processing_status": "PENDING",
                                   "checksum": form.get("checksum"), "content": None}
            location = f"http://{headers['host']}/_upload/{file_id}"
            return 302, {}, {"location": location, "x-together-file-id": file_id}
        if method == "POST" and len(rest) == 2 and rest[1] == "preprocess" and rest[0] in self.files:
            record = self.files[rest[0]]
            record.update(bytes=len(record["content"] or b""), processing_status="COMPLETED")
            self.by_checksum[record["checksum"]] = record["id"]
            return 200, self._file(record)
        if method == "GET" and len(rest) == 1 and rest[0] in self.files:
            return 200, self._file(self.files[rest[0]])
        if method == "GET" and not rest:
            return 200, {"data": [self._file(r) for r in self.files.values()]}
        return None

    @staticmethod
    def _file(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k not in ("content", "checksum")}

    # ---- jobs ------------------------------------------------------------------------------------

    def _fine_tunes(self, method: str, rest: list[str], raw: bytes) -> tuple | None:
        if rest == ["models", "limits"] and method == "GET":
            return 200, {"model_name": FINE_TUNABLE[0], "default_gradient_accumulation_steps": 1,
                         "lora_training": {"default_rank": 8, "max_batch_size": 32, "max_batch_size_dpo": 16,
                                           "max_rank": 64, "min_batch_size": 8, "target_modules": ["all-linear"]},
                         "max_learning_rate": 1.0, "max_num_checkpoints": 10, "max_num_epochs": 20,
                         "max_num_evals": 10, "max_seq_length_dpo": 8192, "max_seq_length_sft": 8192,
                         "merge_output_lora": False, "min_learning_rate": 1e-8, "min_max_seq_length": 512,
                         "supports_full_training": False, "supports_reasoning": False, "supports_tools": False,
                         "supports_vision": False}
        if rest == ["estimate-price"] and method == "POST":
            return 200, {"estimation_available": True, "allowed_to_proceed": True, "estimated_total_price": 0.01}
        if method == "POST" and not rest:
            return self._create(json.loads(raw or b"{}"))
        if method == "GET" and not rest:
            return 200, {"data": [self._view(j) for j in self.jobs.values()]}
        if not rest or rest[0] not in self.jobs:
            return _error(404, f"fine-tune {rest[0] if rest else ''} not found")
        job = self.jobs[rest[0]]
        if method == "GET" and len(rest) == 1:
            self.counts.retrieves += 1
            self._advance(job)
            return 200, self._view(job)
        if method == "GET" and rest[1:] == ["events"]:
            return 200, {"data": job.events}
        if method == "POST" and rest[1:] == ["cancel"]:
            self.counts.cancels += 1
            if job.status not in ("completed", "error", "cancelled"):
                job.status = "cancel_requested"
                self._event(job, "cancel_requested", "Cancel requested")
            return 200, self._view(job)
        return None

    def _create(self, body: dict[str, Any]) -> tuple[int, Any]:
        if body.get("model") not in FINE_TUNABLE:
            return _error(400, f"Model {body.get('model')} is not available for fine-tuning")
        if body.get("training_file") not in self.files:
            return _error(400, f"training file {body.get('training_file')} not found")
        self.counts.jobs_created += 1
        job = Job(f"ft-{secrets.token_hex(6)}", body, self._now())
        self.jobs[job.id] = job
        self._event(job, "job_pending", "Fine-tune request created")
        return 200, self._view(job)

    def _event(self, job: Job, kind: str, message: str, **extra: Any) -> None:
        job.events.append({"object": "fine-tune-event", "created_at": self._now().isoformat(), "type": kind,
                           "message": message, "level": "error" if kind == "job_error" else "info", **extra})

    def _advance(self, job: Job) -> None:
        """One stage further, as a retrieve finds the job."""
        train = self.files[job.body["training_file"]]["content"] or b""
        if job.status == "pending":
            for i, line in enumerate(train.decode().splitlines(), 1):
                if (why := check_line(line)) is not None:
                    job.status = "error"
                    self._event(job, "job_error", f"Invalid training file: line {i} {why}")
                    return
            job.status = "queued"
            self._event(job, "job_start", "Job queued")
        elif job.status == "queued":
            job.status = "running"
            self._event(job, "training_start", "Training started")
        elif job.status == "running":
            if self.fail_running:
                job.status = "error"
                self._event(job, "job_error", "Training failed: CUDA out of memory on the worker")
                return
            job.polls_running += 1
            self._event(job, "checkpoint_save", f"Step {job.polls_running} of {self.polls}", step=job.polls_running,
                        total_steps=self.polls)
            if job.polls_running >= self.polls:
                job.status = "compressing"
        elif job.status == "compressing":
            job.status = "uploading"
        elif job.status == "uploading":
            validation = job.body.get("validation_file")
            val_words = _words(self.files[validation]["content"]) if validation else 0
            job.token_count = _words(train) * int(job.body.get("n_epochs") or 1) + val_words * int(
                job.body.get("n_evals") or 0)
            job.total_price = job.token_count * NANODOLLARS_PER_TOKEN
            job.output_name = f"{USER}/{job.body['model'].split('/')[-1]}-{job.body['suffix']}"
            job.status = "completed"
            self._event(job, "job_complete", "Fine-tuning completed")
        elif job.status == "cancel_requested":
            job.status = "cancelled"

    def _view(self, job: Job) -> dict[str, Any]:
        b = job.body
        return {"id": job.id, "status": job.status, "user_id": USER, "created_at": job.created.isoformat(),
                "updated_at": self._now().isoformat(), "model": b.get("model"), "suffix": b.get("suffix"),
                "training_file": b.get("training_file"), "validation_file": b.get("validation_file") or None,
                "n_epochs": b.get("n_epochs"), "n_evals": b.get("n_evals"), "token_count": job.token_count,
                "total_price": job.total_price, "model_output_name": job.output_name,
                "random_seed": b.get("random_seed")}
