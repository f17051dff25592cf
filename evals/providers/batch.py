"""Batch API calls behind the ordinary `generate` (STYLE 11): the runner, the response cache, the budget
and the metrics see one call per example, whether its answer came from a batch or not.

A BatchingProvider gathers the requests that arrive together (until none came for GATHER_S, or a batch
is full) into one batch of its provider's Batch API (`BatchAPI`: OpenAI Files + Batches, Anthropic
Message Batches), polls it every `poll_s`, and answers each caller once its result is in, priced at the
batch rate. A call's latency is its batch's turnaround: created to results fetched.

Crash safety, through the run store (`BatchLedger`): a batch's items (custom_id, run, example, request
key) are written under a submission token before the create call (OpenAI's batch carries the token in
its metadata, so a run killed mid-call finds it again), its id the moment it is created, before its
first poll, and its results the moment they are fetched. A run killed meanwhile is resumed with `evals run --resume`: each
example's request finds its item (same run, same request) and waits for that batch, or takes its stored
result, so nothing submitted is submitted (or paid for) again. Items a batch left unfinished (expired,
cancelled) or failed with a retryable error go again in the next batch, up to RESUBMITS times. Polls that
fail are tried again, bounded as a live call's retries are (the run's max_retries and retry_for_s); past
that the run stops (BatchUnreachable), interrupted, and its resume polls the same batch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from evals.errors import BatchUnreachable, ProviderError, RunHalted
from evals.providers import BaseProvider, Provider, as_provider, close_provider
from evals.types import CALL_FOR, CallFor, Completion, GenerateParams, Message

GATHER_S = 0.5  # a batch is submitted once no new request arrived for this long
POLL_S = 30.0  # default seconds between polls of a batch (task.yaml `options: {batch_poll_s: ...}`)
NOTE_EVERY_S = 30.0  # a batch's progress is said when its counts change, at most this often
RESUBMITS = 3  # times an unfinished or retryably failed item goes again, in a later batch
SUBMITTING = "evals-submission-"  # a batch's id in the store until the API has answered its create call
CUSTOM_ID = re.compile(r"[^A-Za-z0-9_-]")  # what Anthropic allows in a custom_id (OpenAI allows more)

Outcome = Completion | ProviderError  # one item's result: an answer, or why there is none


@dataclass(frozen=True)
class BatchStatus:
    """One poll of a batch. `state`: running; ended; lost (expired or cancelled: its unfinished items go
    again); failed (the batch as a whole was refused: nothing in it will be processed)."""

    state: str
    total: int
    done: int = 0  # answered
    failed: int = 0  # errored
    detail: str = ""  # the API's own status, or why the batch failed
    created_at: float | None = None  # epoch seconds, as the API reports it
    raw: Any = None  # the API's batch object (where its results are)


class BatchAPI(Protocol):
    """One provider's batch endpoints, through its official SDK."""

    max_items: int  # requests one batch may hold
    max_bytes: int  # bytes one batch's requests may take

    def request(self, messages: Sequence[Message], params: GenerateParams) -> dict[str, Any]: ...
    def line(self, custom_id: str, request: dict[str, Any]) -> dict[str, Any]: ...
    async def probe(self) -> None: ...  # raises EvalsError when the server has no batch endpoints
    async def submit(self, lines: list[dict[str, Any]], token: str) -> str: ...  # the batch id
    async def find(self, token: str) -> str | None: ...  # the id of the batch submitted under token, if known
    async def poll(self, batch_id: str) -> BatchStatus: ...
    async def results(self, status: BatchStatus) -> dict[str, Outcome]: ...  # custom_id -> outcome


@dataclass(frozen=True)
class BatchItem:
    """One request of a batch as the run store keeps it."""

    batch_id: str
    custom_id: str
    run_id: str
    example_id: str
    request_key: str
    result: str | None = None  # the Completion as JSON, once fetched


class BatchLedger(Protocol):
    """What a BatchingProvider keeps in the run store (evals.run.store.Store implements it)."""

    def add_batch(self, batch_id: str, provider: str, items: Sequence[BatchItem], status: str = ...) -> None: ...
    def batch_created(self, token: str, batch_id: str) -> None: ...
    def end_batch(self, batch_id: str, status: str, results: Mapping[str, tuple[str | None, str | None]]) -> None: ...
    def open_batch_items(self, provider: str, run_id: str) -> list[BatchItem]: ...


def request_key(request: dict[str, Any]) -> str:
    """The identity of a request body (model, messages, params as sent)."""
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


def to_json(completion: Completion) -> str:
    return json.dumps(dataclasses.asdict(completion))


def from_json(text: str) -> Completion:
    return Completion(**json.loads(text))


@dataclass
class _Pending:
    call: CallFor
    request: dict[str, Any]
    key: str
    future: asyncio.Future[Outcome]


@dataclass
class _Watch:
    """A batch this process waits for: its callers, and once it has ended, every item's outcome."""

    waiting: dict[str, asyncio.Future[Outcome]] = field(default_factory=dict)
    outcomes: dict[str, Outcome] | None = None
    status: BatchStatus | None = None
    halted: RunHalted | None = None  # its polls kept failing: the run stops, the batch is left to the resume


class BatchingProvider(BaseProvider):
    """`inner`'s calls through its Batch API; `generate` answers when the call's batch has ended."""

    def __init__(self, inner: Provider, api: BatchAPI, *, poll_s: float | None = None, gather_s: float = GATHER_S):
        self.id = inner.id
        self.max_concurrency = api.max_items  # every request of a run may wait in one batch
        self.hardware = as_provider(inner).hardware
        self.poll_s = poll_s if poll_s is not None else POLL_S
        self.gather_s = gather_s
        self.inner, self._api = inner, api
        self._ledger: BatchLedger | None = None
        self._notice: Callable[[str], None] | None = None
        self.max_retries, self.retry_for_s = 16, 600.0  # failing polls of a batch: the run's bounds (prepare)
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._watches: dict[str, _Watch] = {}
        self._pollers: dict[str, asyncio.Task[None]] = {}
        self._stored: dict[str, dict[str, list[BatchItem]]] = {}  # run id -> request key -> unclaimed items
        self._started = time.monotonic()
        self._last_note = 0.0
        self.spent_usd = 0.0  # what the results fetched so far cost, at batch prices

    def call_timeout_s(self, run_timeout_s: float) -> float | None:
        return None  # an answer may take the batch window (24 h): no per-call timeout

    async def prepare(self, ledger: BatchLedger | None, notice: Callable[[str], None] | None = None, *,
                      max_retries: int = 16, retry_for_s: float = 600.0) -> None:
        """Before the first call: keep batches in `ledger` (the run store), bound failing polls as the run bounds
        a call's retries (count and time), and check the server has a Batch API."""
        self._ledger, self._notice = ledger, notice
        self.max_retries, self.retry_for_s = max_retries, retry_for_s
        await self._api.probe()

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion:
        call = CALL_FOR.get() or CallFor("", "request")
        request = self._api.request(messages, params)
        key = request_key(request)
        outcome = await self._from_store(call, key)
        sent = 0
        while not isinstance(outcome, Completion):
            if outcome is not None and (not outcome.retryable or sent > RESUBMITS):
                raise ProviderError(f"{outcome}" + (f" (in {sent} batches)" if sent > 1 else ""), retryable=False)
            outcome = await self._send(_Pending(call, request, key, asyncio.get_running_loop().create_future()))
            sent += 1
        return outcome

    # ---- what an earlier process of the run submitted ------------------------------------------

    async def _from_store(self, call: CallFor, key: str) -> Outcome | None:
        """The stored answer to this request of this run, or its batch's outcome; None when none was sent."""
        if self._ledger is None or not call.run_id:
            return None
        if call.run_id not in self._stored:
            by_key: dict[str, list[BatchItem]] = {}
            for item in self._ledger.open_batch_items(self.id, call.run_id):
                by_key.setdefault(item.request_key, []).append(item)
            self._stored[call.run_id] = by_key
        candidates = self._stored[call.run_id].get(key)
        if not candidates:
            return None
        item = next((i for i in candidates if i.example_id == call.example_id), candidates[0])
        candidates.remove(item)
        if item.result is not None:
            return from_json(item.result)
        return await self._outcome(item.batch_id, item.custom_id)

    # ---- gathering, submitting, polling ---------------------------------------------------------

    async def _send(self, pending: _Pending) -> Outcome:
        self._pending.append(pending)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await pending.future

    async def _flush(self) -> None:
        """Submit what is pending once no new request arrived for gather_s (or a batch is full)."""
        while self._pending:
            seen = -1
            while len(self._pending) != seen and len(self._pending) < self._api.max_items:
                seen = len(self._pending)
                await asyncio.sleep(self.gather_s)
            group, self._pending = self._take([p for p in self._pending if not p.future.done()])
            if group:
                await self._submit(group)

    def _take(self, pending: list[_Pending]) -> tuple[list[_Pending], list[_Pending]]:
        """As many pending requests as one batch holds (count and bytes), and the rest."""
        size = 0
        for n, p in enumerate(pending):
            size += len(json.dumps(p.request)) + 200
            if n >= self._api.max_items or (n and size > self._api.max_bytes):
                return pending[:n], pending[n:]
        return pending, []

    async def _submit(self, group: list[_Pending]) -> None:
        used: set[str] = set()
        items, lines = [], []
        for p in group:
            custom_id = base = CUSTOM_ID.sub("_", p.call.example_id)[:56] + f"-{p.call.attempt}"
            n = 1
            while custom_id in used:
                n += 1
                custom_id = f"{base}-{n}"
            used.add(custom_id)
            items.append(BatchItem("", custom_id, p.call.run_id, p.call.example_id, p.key))
            lines.append(self._api.line(custom_id, p.request))
        token = SUBMITTING + secrets.token_hex(8)
        try:
            if self._ledger is not None:  # before the create call: a kill from now on finds the batch again
                self._ledger.add_batch(token, self.id, [dataclasses.replace(i, batch_id=token) for i in items],
                                       status="submitting")
            try:
                batch_id = await self._api.submit(lines, token)
            except Exception:  # refused: not created, its items go again. A cancellation (Ctrl-C, SIGTERM)
                if self._ledger is not None:  # may come after the API created it: left `submitting`, resolved
                    self._ledger.end_batch(token, "failed", {})  # on resume by find(token), like a kill
                raise
            if self._ledger is not None:
                self._ledger.batch_created(token, batch_id)
        except Exception as e:  # refused, or the store failed: these callers fail (the runner retries them)
            for p in group:
                if not p.future.done():
                    p.future.set_exception(e)
            return
        watch = self._watches.setdefault(batch_id, _Watch())
        for item, p in zip(items, group, strict=True):
            watch.waiting[item.custom_id] = p.future
        self._say(f"{self.id}: batch {batch_id} submitted with {len(group)} request(s)", force=True)
        self._poll_later(batch_id)

    async def _outcome(self, batch_id: str, custom_id: str) -> Outcome:
        """The outcome of one item of a batch submitted earlier (polling the batch if nobody does yet)."""
        watch = self._watches.setdefault(batch_id, _Watch())
        if watch.halted is not None:
            raise watch.halted
        if watch.outcomes is not None:
            return watch.outcomes.get(custom_id) or _unfinished(batch_id, watch.status)
        future = watch.waiting.setdefault(custom_id, asyncio.get_running_loop().create_future())
        self._poll_later(batch_id)
        return await future

    def _poll_later(self, batch_id: str) -> None:
        if batch_id not in self._pollers:
            self._pollers[batch_id] = asyncio.create_task(self._poll(batch_id))

    async def _poll(self, batch_id: str) -> None:
        watch = self._watches.setdefault(batch_id, _Watch())
        try:
            if batch_id.startswith(SUBMITTING):  # the run was killed while submitting it: was it created?
                found = await self._api.find(batch_id)
                if found is not None and self._ledger is not None:
                    self._ledger.batch_created(batch_id, found)
                batch_id = found or batch_id
            failed, failing_since = 0, 0.0  # polls failed in a row, and since when
            for polls in itertools.count():
                if batch_id.startswith(SUBMITTING):
                    status = BatchStatus("lost", 0, detail="never created: the run was killed submitting it")
                    break
                await asyncio.sleep(min(self.poll_s, 2.0**polls))  # 1 s, 2 s, 4 s ... then every poll_s
                try:
                    status = await self._api.poll(batch_id)
                except ProviderError as e:
                    if not e.retryable:
                        raise
                    if not failed:
                        failing_since = time.monotonic()
                    failed += 1
                    self._check_polls(batch_id, failed, time.monotonic() - failing_since, e)
                    continue  # a poll that failed is tried again at the next one
                failed = 0
                watch.status = status
                if status.state != "running":
                    break
                self._say(self._progress())
            outcomes = await self._api.results(status) if status.state != "failed" else {}
        except BatchUnreachable as e:  # the run stops; the batch, its id stored, is the resume's to poll
            watch.halted = e
            for future in watch.waiting.values():
                if not future.done():
                    future.set_exception(e)
            return
        except Exception as e:  # the batch cannot be followed: its callers fail with why, now and later
            watch.outcomes, watch.status = {}, BatchStatus("failed", 0, detail=f"could not be followed: {e}")
            for future in watch.waiting.values():
                if not future.done():
                    future.set_exception(e)
            return
        fetched = time.time()
        took = fetched - status.created_at if status.created_at else time.monotonic() - self._started
        outcomes = {cid: dataclasses.replace(o, latency_s=max(0.0, took)) if isinstance(o, Completion) else o
                    for cid, o in outcomes.items()}
        self.spent_usd += sum(o.cost_usd for o in outcomes.values() if isinstance(o, Completion))
        if self._ledger is not None:  # stored before any caller goes on: a kill now loses nothing fetched
            self._ledger.end_batch(batch_id, status.state, {
                cid: (to_json(o), None) if isinstance(o, Completion) else (None, str(o)) for cid, o in outcomes.items()})
        watch.outcomes = outcomes
        self._say(self._progress(), force=True)
        for custom_id, future in watch.waiting.items():
            if not future.done():
                future.set_result(outcomes.get(custom_id) or _unfinished(batch_id, status))

    def _check_polls(self, batch_id: str, failed: int, failing_s: float, error: ProviderError) -> None:
        """After a failed poll: say so, or give up (BatchUnreachable) once polls have failed more times in a row
        than the run retries a call (max_retries), or for as long as it retries one (retry_for_s)."""
        if failed <= self.max_retries and failing_s < self.retry_for_s:
            self._say(f"{self.id}: polling batch {batch_id} failed ({error}); trying again ({failed} in a row; the "
                      f"run stops after {self.max_retries + 1} in a row, or {self.retry_for_s:g}s of them)",
                      force=failed == 1)
            return
        raise BatchUnreachable(f"{self.id}: polling batch {batch_id} failed {failed} time(s) in a row over "
                               f"{failing_s:.0f}s (last: {error}); its id is stored and it goes on at the provider")

    # ---- progress ---------------------------------------------------------------------------

    def _progress(self) -> str:
        """Every batch of this provider: requests submitted, in progress, done and failed; elapsed; spent."""
        statuses = [w.status for w in self._watches.values() if w.status is not None]
        total = sum(len(w.waiting) if w.status is None else w.status.total for w in self._watches.values())
        done = sum(s.done for s in statuses)
        failed = sum(s.failed for s in statuses)
        live = sum(1 for w in self._watches.values() if w.outcomes is None)
        return (f"{self.id}: {len(self._watches)} batch(es), {live} running; {total} request(s) submitted, "
                f"{total - done - failed} in progress, {done} done, {failed} failed; "
                f"{_clock(time.monotonic() - self._started)} elapsed; ${self.spent_usd:.4f} at batch prices")

    def _say(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if self._notice is not None and (force or now - self._last_note >= NOTE_EVERY_S):
            self._last_note = now
            self._notice(text)

    async def aclose(self) -> None:
        tasks = [*self._pollers.values(), *([self._flusher] if self._flusher else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close_provider(self.inner)


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _unfinished(batch_id: str, status: BatchStatus | None) -> ProviderError:
    """An item a batch ended without processing: it goes again, in a later batch (or fails if the batch did)."""
    if status is not None and status.state == "failed":
        return ProviderError(f"batch {batch_id} failed: {status.detail}", retryable=False)
    why = status.detail if status is not None else "ended"
    return ProviderError(f"batch {batch_id} ended ({why}) before this request was processed", retryable=True)
