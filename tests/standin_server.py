"""A stand-in for the OpenAI and Anthropic HTTP APIs on 127.0.0.1, for tests and benchmarks.

Speaks just enough HTTP/1.1 (keep-alive, Content-Length request bodies, chunked streamed replies) on
asyncio to serve hundreds of concurrent connections from one thread at little CPU cost:

    POST /v1/chat/completions   OpenAI chat completions
    POST /v1/messages           Anthropic messages
    /v1/files, /v1/batches      OpenAI's Batch API, and /v1/messages/batches Anthropic's (tests/standin_batches.py:
                                a delay before a batch ends, items that fail once, batches that expire, polls
                                that fail)
    /v1/files, /v1/fine_tuning  OpenAI's fine-tuning jobs (tests/standin_finetunes.py: `server.finetunes`, a
                                job that succeeds after a few polls, or fails); or, with
                                `finetunes=TogetherFineTunes()`, Together AI's (tests/standin_together.py)
    GET  /v1/models             the models served, when `served` names them (as vLLM lists its LoRA modules)
    GET  /_stats                counters as JSON (for a server in another process)
    POST /_faults               a JSON list of faults to inject (for a server in another process)

Answers come from `answer(body) -> text` (default: echo the last user message) after `latency`
seconds; an answer may also be function calls (`answer=calls({"name": ..., "arguments": {...}}, ...)`), sent in
each API's form, streamed and not. A request with `"stream": true` is answered as server-sent events in that
API's format (OpenAI `chat.completion.chunk`s ending in `[DONE]`, with a usage chunk when
`stream_options.include_usage`; Anthropic `message_start` ... `message_stop`), one word (with its
following whitespace) per event: the first after `first_token_delay`, each next one `token_delay` later
(`latency` does not apply). Usage counts words; `cached_prompt_tokens` (and, for Anthropic,
`cache_write_tokens`) of the prompt are reported as prompt-cache reads (and writes), each API its own
way: OpenAI's `prompt_tokens` includes `prompt_tokens_details.cached_tokens`, Anthropic's
`input_tokens` excludes `cache_read_input_tokens` and `cache_creation_input_tokens`. An OpenAI request with
`"logprobs": true` gets `logprobs.content`, one entry per word, each with `token_logprob(body)` (default -0.25).
An Anthropic request with `cache_control` on a block is cached as the API does it: the prefix up to that
block (in words) is written to the cache the first time it is seen and read from it after that.

`served={"NAME": ADAPTER_PATH or None, ...}` makes it answer like vLLM started with `--enable-lora
--lora-modules NAME=PATH`: only those model names are served (a LoRA module by its NAME, the base model by
its id), a request for any other gets vLLM's 404 "The model `X` does not exist.", and a reply names the
model as requested.

Faults queued with `inject()` are served in order, one per API request: an HTTP error (429 with
retry-after, 500, 503, 529, 401 echoing the key as some servers do, 400) or a dropped connection (the
socket closed without a response). A `mid_stream` fault hits a streamed request after its first word:
an error event in the API's format, or (status None) the connection dropped. Every request is recorded
and counted, in total and per prompt (the last user message), so a test can assert each example
completed exactly once.

    with StandinServer(latency=0.01) as server:   # a thread of this process
        ModelConfig(spec=..., base_url=server.base_url)          # openai: http://127.0.0.1:PORT/v1
        ModelConfig(spec=..., base_url=server.anthropic_base_url)  # anthropic: http://127.0.0.1:PORT

    with StandinProcess(latency=0.2) as server:   # another process, so its CPU is not yours
        server.stats()
"""

from __future__ import annotations

import asyncio
import itertools
import json
import multiprocessing
import random
import re
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Any, Self

from tests.standin_batches import Batches
from tests.standin_finetunes import FineTunes

OPENAI_MODEL = "gpt-4o-mini-2024-07-18"
ANTHROPIC_MODEL = "claude-haiku-4-5-20251001"
Answer = Callable[[dict[str, Any]], Any]  # the text, or {"text": ..., "tool_calls": [{name, arguments}, ...]}


def steady_logprob(body: dict[str, Any]) -> float:
    return -0.25


@dataclass(frozen=True)
class Fault:
    """One injected failure. `status=None` drops the connection without a response.

    `mid_stream`: a streamed request gets its first word, then an error event for `status` (or, for None,
    the connection dropped); a request that is not streamed gets the plain fault."""

    status: int | None
    retry_after: str | None = None  # header value: seconds ("0.05") or an HTTP date
    retry_after_ms: str | None = None
    echo_key: bool = False  # put the caller's API key in the error message, as some servers do
    message: str = "injected fault"
    mid_stream: bool = False

    @classmethod
    def drop(cls) -> Fault:
        return cls(None)

    @classmethod
    def rate_limit(cls, retry_after: str | None = "0.01", retry_after_ms: str | None = None) -> Fault:
        return cls(429, retry_after, retry_after_ms, message="rate limit reached")


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    query: dict[str, str] = field(default_factory=dict)  # the request's query parameters


@dataclass
class Counts:
    received: int = 0  # API requests, including failed ones
    completed: int = 0  # successful answers sent
    received_by_prompt: Counter[str] = field(default_factory=Counter)
    completed_by_prompt: Counter[str] = field(default_factory=Counter)


def _text(content: Any) -> str:
    """A message's content: a string, or a list of parts with text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def last_user_message(body: dict[str, Any]) -> str:
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "user":
            return _text(m.get("content"))
    return ""


def echo(body: dict[str, Any]) -> str:
    return last_user_message(body)


@dataclass(frozen=True)
class fixed:  # lowercase: reads as a function
    """`answer=fixed('{"labels": []}')`: always this text (a class, so StandinProcess can pickle it)."""

    text: str

    def __call__(self, body: dict[str, Any]) -> str:
        return self.text


@dataclass(frozen=True)
class calls:  # lowercase: reads as a function
    """`answer=calls({"name": "refund", "arguments": {"order_id": "A1"}}, ...)`: always these function calls (after
    `text`, if any), answered as each API does: OpenAI's `message.tool_calls` (arguments as JSON text; streamed as
    `delta.tool_calls` pieces by index), Anthropic's `tool_use` blocks (streamed as `input_json_delta` pieces)."""

    made: tuple[dict[str, Any], ...]
    text: str = ""

    def __init__(self, *made: dict[str, Any], text: str = ""):
        object.__setattr__(self, "made", tuple(made))
        object.__setattr__(self, "text", text)

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"text": self.text, "tool_calls": list(self.made)}


def _answered(answer: Any) -> tuple[str, list[dict[str, Any]]]:
    """An answer's text and function calls."""
    if isinstance(answer, dict):
        return str(answer.get("text") or ""), list(answer.get("tool_calls") or ())
    return answer, []


def _spoken(text: str, made: list[dict[str, Any]]) -> str:
    """What an answer's output tokens are counted from: its text and its calls' names and arguments."""
    return " ".join([text, *(f"{c['name']} {json.dumps(c.get('arguments', {}))}" for c in made)])


def _pieces(arguments: Any) -> list[str]:
    """A call's arguments as JSON text, in three pieces (as the APIs stream them: not at token boundaries)."""
    text = json.dumps(arguments)
    third = max(1, len(text) // 3)
    return [text[:third], text[third:2 * third], text[2 * third:]]


def _words(body: dict[str, Any]) -> int:
    texts = [_text(m.get("content")) for m in body.get("messages") or []] + [_text(body.get("system"))]
    return sum(len(t.split()) for t in texts)


def _cache_prefix(body: dict[str, Any]) -> str | None:
    """The text an Anthropic request marks for the prompt cache: everything up to its last cache_control."""
    blocks = body.get("system") if isinstance(body.get("system"), list) else [{"text": body.get("system") or ""}]
    for m in body.get("messages") or []:
        content = m.get("content")
        blocks = [*blocks, *(content if isinstance(content, list) else [{"text": content or ""}])]
    marked = [i for i, b in enumerate(blocks) if isinstance(b, dict) and b.get("cache_control")]
    return " ".join(str(b.get("text", "")) for b in blocks[: marked[-1] + 1]) if marked else None


def _tokens(text: str) -> list[str]:
    """The streamed pieces: each word with its following whitespace (leading whitespace joins the first)."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def _error_type(status: int) -> str:
    return {429: "rate_limit_error", 529: "overloaded_error", 401: "authentication_error"}.get(
        status, "api_error" if status >= 500 else "invalid_request_error")


def _chunk(data: str) -> bytes:
    """One chunk of a chunked HTTP/1.1 body."""
    raw = data.encode()
    return b"%x\r\n%s\r\n" % (len(raw), raw)


def _sse(data: Any, event: str | None = None) -> str:
    line = f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"
    return f"event: {event}\n{line}" if event else line


STREAM_HEAD = ("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
               "transfer-encoding: chunked\r\n\r\n").encode("latin-1")


class _Addresses:
    """Where the SDKs should point: each appends its own path to its base URL."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """For `openai:` (the SDK appends /chat/completions)."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """For `anthropic:` (the SDK appends /v1/messages)."""
        return self.url

    def base_url_for(self, provider: str) -> str:
        return self.anthropic_base_url if provider == "anthropic" else self.base_url


class StandinServer(_Addresses):
    def __init__(
        self,
        answer: Answer = echo,
        *,
        latency: float | Callable[[dict[str, Any]], float] = 0.0,
        first_token_delay: float = 0.0,
        token_delay: float = 0.0,
        cached_prompt_tokens: int = 0,
        cache_write_tokens: int = 0,
        openai_model: str = OPENAI_MODEL,
        anthropic_model: str = ANTHROPIC_MODEL,
        record: bool = True,
        token_logprob: Callable[[dict[str, Any]], float] = steady_logprob,
        batch_delay: float = 0.0,
        batch_fail_once: frozenset[str] = frozenset(),
        batch_expire: int = 0,
        batch_fail_polls: int = 0,
        batches: bool = True,
        served: dict[str, str | None] | None = None,
        finetunes: Any = None,
    ):
        self.answer = answer
        self.token_logprob = token_logprob  # each answer token's log-probability, for requests asking for them
        self.latency = latency  # before a reply that is not streamed (or a function of the request's body)
        self.first_token_delay = first_token_delay  # streamed: before the first word
        self.token_delay = token_delay  # streamed: between words
        self.cached_prompt_tokens = cached_prompt_tokens  # prompt-cache reads reported (capped at the prompt)
        self.cache_write_tokens = cache_write_tokens  # prompt-cache writes reported (Anthropic only)
        self.openai_model = openai_model
        self.served = served  # model name -> the LoRA path it was started with (None: the base model); None: any
        self.anthropic_model = anthropic_model
        self.record = record
        self.fault_rate = 0.0  # share of API requests answered by a random fault (`flaky()`)
        self._random = random.Random(0)
        self.down_until = 0.0  # time.monotonic() before which every API request gets a 503 (`outage()`)
        self.counts = Counts()
        self.batches = Batches(self._batch_reply, last_user_message, delay=batch_delay, fail_once=batch_fail_once,
                               expire=batch_expire, fail_polls=batch_fail_polls, enabled=batches)
        self._cached_prefixes: set[str] = set()
        self.finetunes = finetunes or FineTunes()  # OpenAI's; tests/standin_together.py serves Together's
        self.requests: list[Recorded] = []
        self._faults: deque[Fault] = deque()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    # ---- the test-facing surface -------------------------------------------------------------

    def flaky(self, rate: float, seed: int = 0) -> None:
        """From now on, answer this share of API requests with a random fault: 429, 500, 503 or a drop."""
        self.fault_rate, self._random = rate, random.Random(seed)

    def outage(self, seconds: float) -> None:
        """Fail every API request with a 503 for the next `seconds`, then recover."""
        self.down_until = time.monotonic() + seconds

    def inject(self, *faults: Fault) -> None:
        """Serve these faults, in order, to the next API requests."""
        self._faults.extend(faults)

    @property
    def pending_faults(self) -> int:
        return len(self._faults)

    def stats(self) -> dict[str, Any]:
        c = self.counts
        return {"received": c.received, "completed": c.completed, "pending_faults": len(self._faults),
                "cpu_s": time.process_time(),  # the serving process's CPU (all of it, in thread mode)
                "received_by_prompt": dict(c.received_by_prompt),
                "completed_by_prompt": dict(c.completed_by_prompt), "batches": self.batches.stats()}

    # ---- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Serve from a daemon thread with its own event loop; returns once the port is bound."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._bind())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._shutdown())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="standin-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("stand-in server did not start")

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    async def serve_forever(self) -> None:
        """Serve on the current event loop (for a dedicated process)."""
        await self._bind()
        assert self._server is not None
        await self._server.serve_forever()

    async def _bind(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    # ---- HTTP --------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = {}
                for line in lines:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                keep_open = await self._respond(method, path, headers, raw, writer)
                if not keep_open or headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # a client gone, or the server stopping: either way this connection is done
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _respond(self, method: str, path: str, headers: dict[str, str], raw: bytes,
                       writer: asyncio.StreamWriter) -> bool:
        """Write one response; False when the connection must be closed (a dropped-connection fault)."""
        target = path  # as a real server names it in an error: path and query
        path, _, query = path.partition("?")
        if method == "GET" and path == "/_stats":
            return await self._send(writer, 200, self.stats())
        if method == "POST" and path == "/_faults":
            self.inject(*(Fault(**f) for f in json.loads(raw or b"[]")))
            return await self._send(writer, 200, {"pending_faults": len(self._faults)})
        if method == "GET" and path == "/v1/models" and self.served is not None:
            return await self._send(writer, 200, {"object": "list", "data": [
                {"id": name, "object": "model", "owned_by": "vllm", "root": root or name,
                 "parent": None if root is None else next((n for n, r in self.served.items() if r is None), None)}
                for name, root in self.served.items()]})
        # fine-tuning first: it claims only its own uploads (purpose fine-tune) and file ids; the rest is batches'
        routed = self.finetunes.route(method, path, headers, raw) or self.batches.route(method, path, headers, raw,
                                                                                         self.url)
        if routed is not None:
            return await self._send(writer, *routed)
        kind = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic"}.get(path)
        if method != "POST" or kind is None:
            return await self._send(writer, 404, {"error": {"message": f"no route {method} {target}"}})
        body = json.loads(raw or b"{}")
        prompt = last_user_message(body)
        counts = self.counts
        counts.received += 1
        counts.received_by_prompt[prompt] += 1
        if self.record:
            self.requests.append(Recorded(path, headers, body, dict(urllib.parse.parse_qsl(query))))
        fault = self._faults.popleft() if self._faults else None
        if fault is None and time.monotonic() < self.down_until:
            fault = Fault(503, message="outage")
        elif fault is None and self.fault_rate and self._random.random() < self.fault_rate:
            fault = self._random.choice((Fault.rate_limit("0.01"), Fault(500), Fault(503), Fault.drop()))
        streamed = body.get("stream") is True
        if fault is None and kind == "openai" and self.served is not None and body.get("model") not in self.served:
            return await self._send(writer, 404, {"error": {"message": f"The model `{body.get('model')}` does not "
                                                            "exist.", "type": "NotFoundError", "param": None,
                                                            "code": 404}})
        if fault is not None and not (fault.mid_stream and streamed):
            return await self._fault(fault, kind, headers, writer)
        def completed() -> None:  # counted before the answer's last bytes go out: a client may read the
            counts.completed += 1  # counts as soon as it has its answer, before this task runs again
            counts.completed_by_prompt[prompt] += 1

        if streamed:
            if not await self._stream(writer, kind, body, *_answered(self.answer(body)), fault, completed):
                return fault is not None and fault.status is not None  # open after an error event, not a drop
            return True
        if delay := self.latency(body) if callable(self.latency) else self.latency:
            await asyncio.sleep(delay)
        text, made = _answered(self.answer(body))
        reply = self._openai_reply(body, text, made) if kind == "openai" else self._anthropic_reply(body, text, made)
        completed()
        return await self._send(writer, 200, reply)

    async def _fault(self, fault: Fault, kind: str, headers: dict[str, str],
                     writer: asyncio.StreamWriter) -> bool:
        if fault.status is None:
            return False  # the caller closes the socket: no status line, no body
        message = fault.message
        if fault.echo_key:
            key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
            message = f"Incorrect API key provided: {key}"
        extra = {}
        if fault.retry_after is not None:
            extra["retry-after"] = fault.retry_after
        if fault.retry_after_ms is not None:
            extra["retry-after-ms"] = fault.retry_after_ms
        payload: dict[str, Any] = {"error": {"message": message, "type": _error_type(fault.status)}}
        if kind == "anthropic":
            payload = {"type": "error", **payload}
        return await self._send(writer, fault.status, payload, extra)

    def _openai_usage(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        prompt_tokens, completion_tokens = _words(body), max(1, len(text.split()))
        return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": min(self.cached_prompt_tokens, prompt_tokens)}}

    def _batch_reply(self, api: str, body: dict[str, Any]) -> dict[str, Any]:
        text, made = _answered(self.answer(body))
        return self._openai_reply(body, text, made) if api == "openai" else self._anthropic_reply(body, text, made)

    def _anthropic_usage(self, body: dict[str, Any]) -> dict[str, int]:
        total = _words(body)
        read = min(self.cached_prompt_tokens, total)
        write = min(self.cache_write_tokens, total - read)
        if (prefix := _cache_prefix(body)) is not None:
            cached = len(prefix.split())
            read, write = (cached, 0) if prefix in self._cached_prefixes else (0, cached)
            self._cached_prefixes.add(prefix)
        return {"input_tokens": total - read - write, "cache_creation_input_tokens": write,
                "cache_read_input_tokens": read}

    def _openai_reply(self, body: dict[str, Any], text: str, made: list[dict[str, Any]] = ()) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": text or (None if made else "")}
        if made:
            message["tool_calls"] = [{"id": f"call_{next(self._ids)}", "type": "function", "function": {
                "name": c["name"], "arguments": json.dumps(c.get("arguments", {}))}} for c in made]
        return {
            "id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion", "created": int(time.time()),
            "model": self._model_named(body),
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if made else "stop", "logprobs": self._logprobs(body, text)}],
            "usage": self._openai_usage(body, _spoken(text, made)),
        }

    def _model_named(self, body: dict[str, Any]) -> str:
        """What a reply says it came from: the name asked for, on a server that serves named models (vLLM)."""
        return str(body.get("model")) if self.served is not None else self.openai_model

    def _logprobs(self, body: dict[str, Any], text: str) -> dict[str, Any] | None:
        if body.get("logprobs") is not True:
            return None
        value = self.token_logprob(body)
        return {"content": [{"token": t, "logprob": value, "bytes": None, "top_logprobs": []} for t in _tokens(text)]}

    def _anthropic_reply(self, body: dict[str, Any], text: str, made: list[dict[str, Any]] = ()) -> dict[str, Any]:
        content = [{"type": "text", "text": text}] if text or not made else []
        content += [{"type": "tool_use", "id": f"toolu_{next(self._ids)}", "name": c["name"],
                     "input": c.get("arguments", {})} for c in made]
        return {
            "id": f"msg_{next(self._ids)}", "type": "message", "role": "assistant",
            "model": self.anthropic_model,
            "content": content, "stop_reason": "tool_use" if made else "end_turn", "stop_sequence": None,
            "usage": {**self._anthropic_usage(body), "output_tokens": max(1, len(_spoken(text, made).split()))},
        }

    # ---- streamed replies: (head events, one event per word, tail events) --------------------

    def _openai_events(self, body: dict[str, Any], text: str,
                       made: list[dict[str, Any]]) -> tuple[list[str], Iterator[str], list[str]]:
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": self._model_named(body)}
        if with_usage:
            base["usage"] = None  # as the API does: null on every chunk but the last

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            piece = {"index": 0, "delta": delta, "finish_reason": finish}
            if delta.get("content"):
                piece["logprobs"] = self._logprobs(body, delta["content"])
            return _sse({**base, "choices": [piece]})

        def call_pieces() -> Iterator[str]:
            for i, c in enumerate(made):
                first, *rest = _pieces(c.get("arguments", {}))
                yield chunk({"tool_calls": [{"index": i, "id": f"call_{next(self._ids)}", "type": "function",
                                             "function": {"name": c["name"], "arguments": first}}]})
                for piece in rest:
                    yield chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})

        tail = [chunk({}, "tool_calls" if made else "stop")]
        if with_usage:
            tail.append(_sse({**base, "choices": [], "usage": self._openai_usage(body, _spoken(text, made))}))
        tail.append(_sse("[DONE]"))
        words = itertools.chain((chunk({"content": t}) for t in _tokens(text)), call_pieces())
        return [chunk({"role": "assistant", "content": ""})], words, tail

    def _anthropic_events(self, body: dict[str, Any], text: str,
                          made: list[dict[str, Any]]) -> tuple[list[str], Iterator[str], list[str]]:
        message = {"id": f"msg_{next(self._ids)}", "type": "message", "role": "assistant",
                   "model": self.anthropic_model, "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {**self._anthropic_usage(body), "output_tokens": 1}}
        head = [_sse({"type": "message_start", "message": message}, "message_start"),
                _sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                     "content_block_start"),
                _sse({"type": "ping"}, "ping")]

        def blocks() -> Iterator[str]:
            yield from (_sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}},
                             "content_block_delta") for t in _tokens(text))
            for i, c in enumerate(made, start=1):
                if i == 1:
                    yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
                yield _sse({"type": "content_block_start", "index": i, "content_block": {
                    "type": "tool_use", "id": f"toolu_{next(self._ids)}", "name": c["name"], "input": {}}},
                    "content_block_start")
                for piece in _pieces(c.get("arguments", {})):
                    yield _sse({"type": "content_block_delta", "index": i, "delta": {
                        "type": "input_json_delta", "partial_json": piece}}, "content_block_delta")
                yield _sse({"type": "content_block_stop", "index": i}, "content_block_stop")

        tail = [] if made else [_sse({"type": "content_block_stop", "index": 0}, "content_block_stop")]
        tail += [_sse({"type": "message_delta", "delta": {"stop_reason": "tool_use" if made else "end_turn",
                                                          "stop_sequence": None},
                       "usage": {"output_tokens": max(1, len(_spoken(text, made).split()))}}, "message_delta"),
                 _sse({"type": "message_stop"}, "message_stop")]
        return head, blocks(), tail

    async def _stream(self, writer: asyncio.StreamWriter, kind: str, body: dict[str, Any], text: str,
                      made: list[dict[str, Any]], fault: Fault | None, completed: Callable[[], None]) -> bool:
        """Stream one answer (chunked, so the connection stays open); False when a mid-stream `fault` cut
        it short, after the first word (or the head, for an empty answer)."""
        head, words, tail = (self._openai_events if kind == "openai" else self._anthropic_events)(body, text, made)
        writer.write(STREAM_HEAD + b"".join(_chunk(e) for e in head))
        delay = self.first_token_delay
        for event in words:
            if delay:
                await writer.drain()
                await asyncio.sleep(delay)
            writer.write(_chunk(event))
            delay = self.token_delay
            if fault is not None:
                break
        if fault is not None:
            if fault.status is not None:  # an error event ends the body; a drop leaves it unfinished
                error = {"message": fault.message, "type": _error_type(fault.status)}
                writer.write(_chunk(_sse({"error": error}) if kind == "openai" else
                                    _sse({"type": "error", "error": error}, "error")) + b"0\r\n\r\n")
            await writer.drain()
            return False
        completed()
        writer.write(b"".join(_chunk(e) for e in tail) + b"0\r\n\r\n")
        await writer.drain()
        return True

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, payload: Any,
                    extra: dict[str, str] | None = None) -> bool:
        raw = isinstance(payload, bytes)  # a file's content (a batch's results)
        data = payload if raw else json.dumps(payload).encode()
        head = [f"HTTP/1.1 {status} {_reason(status)}", f"content-type: application/{'octet-stream' if raw else 'json'}",
                f"content-length: {len(data)}"]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        await writer.drain()
        return True


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Overloaded" if status == 529 else "Error"


# ---- the same server in another process --------------------------------------------------------


def _serve_in_child(conn: Any, answer: Answer, options: dict[str, Any]) -> None:
    async def main() -> None:
        server = StandinServer(answer, **options)
        serving = asyncio.ensure_future(server.serve_forever())
        while not server.port:
            await asyncio.sleep(0.001)
        conn.send(server.port)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # any message (or EOF): stop
        serving.cancel()
        await server._shutdown()

    try:
        asyncio.run(main())
    except (asyncio.CancelledError, EOFError):
        pass


class StandinProcess(_Addresses):
    """A StandinServer in a child process (spawned), controlled over HTTP: its CPU is not the caller's."""

    def __init__(self, answer: Answer = echo, *, latency: float = 0.0, first_token_delay: float = 0.0,
                 token_delay: float = 0.0, cached_prompt_tokens: int = 0, cache_write_tokens: int = 0,
                 record: bool = False, batch_delay: float = 0.0, batch_fail_once: frozenset[str] = frozenset(),
                 batch_expire: int = 0):
        self._args = (answer, {"latency": latency, "first_token_delay": first_token_delay,
                               "token_delay": token_delay, "cached_prompt_tokens": cached_prompt_tokens,
                               "cache_write_tokens": cache_write_tokens, "record": record,
                               "batch_delay": batch_delay, "batch_fail_once": batch_fail_once,
                               "batch_expire": batch_expire})
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._conn: Any = None
        self.port = 0

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/_stats", timeout=10) as r:
            return json.loads(r.read())

    def flaky(self, rate: float, seed: int = 0) -> None:
        """From now on, answer this share of API requests with a random fault: 429, 500, 503 or a drop."""
        self.fault_rate, self._random = rate, random.Random(seed)

    def outage(self, seconds: float) -> None:
        """Fail every API request with a 503 for the next `seconds`, then recover."""
        self.down_until = time.monotonic() + seconds

    def inject(self, *faults: Fault) -> None:
        data = json.dumps([asdict(f) for f in faults]).encode()
        request = urllib.request.Request(self.url + "/_faults", data=data, method="POST")
        with urllib.request.urlopen(request, timeout=10) as r:
            r.read()

    def __enter__(self) -> Self:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve_in_child, args=(child, *self._args), daemon=True)
        self._proc.start()
        deadline = time.monotonic() + 30
        while not self._conn.poll(0.05):
            if not self._proc.is_alive() or time.monotonic() > deadline:
                self._proc.terminate()
                raise RuntimeError(f"stand-in server process did not start (exit code {self._proc.exitcode})")
        self.port = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._conn.send("stop")
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.terminate()
            self._proc = None
