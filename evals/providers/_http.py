"""What the HTTP API providers share: the client, the answer as it arrives (timed), retry-after parsing
and SDK exception -> ProviderError.

Both official SDKs (openai, anthropic) are Stainless-generated and raise the same shapes:
`APIStatusError` (with `.status_code`, `.response`, `.body`) and `APIConnectionError` (of which
`APITimeoutError` is a subclass). A streamed answer can also fail after its 200: with an error event
(openai raises a bare `APIError`, anthropic an `APIStatusError` carrying the 200) or a dropped connection
(openai raises `APIConnectionError`; anthropic's stream lets the HTTP client's own error through). The
runner owns retries, so the SDK clients are built with `max_retries=0` and every failure is translated
here, once.
"""

from __future__ import annotations

import email.utils
import importlib
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from evals._util import REDACTED, is_secret, redact_url, split_query, url_secrets
from evals.errors import EvalsError, MissingCredentials, ProviderError
from evals.providers import BaseProvider
from evals.providers.prices import price_for
from evals.types import Completion, ModelConfig, ToolCall, parse_arguments

# Retried as the SDKs themselves would: request timeout, lock timeout, rate limit, any 5xx (529 overloaded).
RETRYABLE_STATUS = frozenset({408, 409, 429})
# An error event inside a streamed 200 has no status of its own: its type decides (Anthropic's types for
# 429/500/504/529, and OpenAI's server_error).
RETRYABLE_STREAM_ERRORS = frozenset({"rate_limit_error", "api_error", "timeout_error", "overloaded_error",
                                     "server_error"})
# A server asking for a longer wait (a daily quota, say) is not retried, as the SDKs decide: the run goes
# on, the example records the error, and `evals run --resume` picks it up later.
MAX_RETRY_AFTER_S = 120.0
MAX_MESSAGE = 500
# Generous SDK-level timeout: the runner's own per-attempt timeout (RunOptions.timeout_s) is the real limit.
SDK_TIMEOUT_S = 900.0
PLACEHOLDER_KEY = "not-needed"  # sent to a custom base URL when no key is set: compatible servers need none


DEFAULT_CONCURRENCY = 16


@dataclass(slots=True)
class Reply:
    """One call's answer as it arrives, timed from the request: text pieces, usage, model, finish reason."""

    streamed: bool
    start: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None  # when the first non-empty piece of text arrived
    parts: list[str] = field(default_factory=list)
    input_tokens: int = 0  # every prompt token, cached ones included
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    model: str | None = None
    finish_reason: str | None = None
    logprobs: list[float] = field(default_factory=list)  # the answer's token log-probabilities, where asked for
    calls: dict[int, list[Any]] = field(default_factory=dict)  # by the API's index: [id, name, argument pieces]

    def add(self, text: str | None) -> None:
        if text:
            if self.first_token_at is None:
                self.first_token_at = time.perf_counter()
            self.parts.append(text)

    def add_call(self, index: int, call_id: str | None = None, name: str | None = None,
                 arguments: str | None = None) -> None:
        """A function call, or a streamed piece of one (its id and name come first, its JSON arguments in pieces):
        pieces of the same index are one call. The first piece times the first token, as text would."""
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        call = self.calls.setdefault(index, [None, "", []])
        call[0] = call_id or call[0]
        if name and name != call[1]:  # once, whole (OpenAI, Anthropic); some servers repeat it on every piece
            call[1] += name
        if arguments:
            call[2].append(arguments)

    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(ToolCall(name, parse_arguments("".join(pieces)), call_id)
                     for call_id, name, pieces in (self.calls[i] for i in sorted(self.calls)))


class SDKProvider(BaseProvider):
    """What the API providers hold: id, connections in flight, price, the SDK client, and the secrets to redact
    from error messages (the key, the base URL's credentials: see open_client).
    `stream` (from the config; a caller such as `evals latency` may set it) streams answers to time the
    first token."""

    streaming = True
    tools = True

    def __init__(self, config: ModelConfig, client: Any, sdk: Any, secrets: Sequence[str]):
        self.id = f"{config.spec.provider}:{config.spec.model}"
        self.max_concurrency = config.concurrency or DEFAULT_CONCURRENCY
        self.stream = config.stream
        url = urlsplit(str(client.base_url))
        self.hardware = f"remote: {url.hostname}" + (f":{url.port}" if url.port else "")  # its servers, unseen
        self._config = config
        self._price = price_for(config)
        self._client = client
        self._sdk = sdk
        self._secrets = secrets

    def _completion(self, reply: Reply, *, batch: bool = False) -> Completion:
        """The finished reply, its latency up to now, priced at batch rates for a batch's result; a streamed
        one with no text has its first token last."""
        end = time.perf_counter()
        ttft = None
        if reply.streamed:
            ttft = (end if reply.first_token_at is None else reply.first_token_at) - reply.start
        return Completion(
            text="".join(reply.parts),
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            latency_s=end - reply.start,
            cost_usd=self._price.cost(reply.input_tokens, reply.output_tokens, reply.cached_input_tokens,
                                      reply.cache_write_tokens, batch=batch),
            model_version=reply.model,
            finish_reason=reply.finish_reason,
            ttft_s=ttft,
            cached_input_tokens=reply.cached_input_tokens,
            cache_write_tokens=reply.cache_write_tokens,
            mean_logprob=sum(reply.logprobs) / len(reply.logprobs) if reply.logprobs else None,
            tool_calls=reply.tool_calls(),
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def probe_batches(self, call: Any, path: str) -> None:
        """Refuse, before any call, a server that has no Batch API (a compatible server without the endpoints)."""
        try:
            await call()
        except self._sdk.APIStatusError as e:
            if e.status_code in (404, 405):
                raise EvalsError(f"{self.id} at {redact_url(str(self._client.base_url))} has no Batch API (it answered "
                                 f"HTTP {e.status_code} to GET {path}); run it without --batch / batch: true") from None
        except self._sdk.APIError:
            pass  # anything else (a key refused, say) shows on the calls themselves


def item_error(status: int | None, error: Any, secrets: Sequence[str]) -> ProviderError:
    """A batch item's own failure (the status its request would have had, and the API's error object)."""
    error = _error(error)
    kind, message = error.get("type") or error.get("code"), error.get("message") or "no message"
    retryable = (status in RETRYABLE_STATUS or status >= 500) if status else kind in RETRYABLE_STREAM_ERRORS
    text = f"batch item failed: {f'HTTP {status} ' if status else ''}{kind or 'error'}: {message}"[:MAX_MESSAGE]
    return ProviderError(redact(text, secrets), retryable=retryable)


def open_client(config: ModelConfig, sdk_name: str, client_class: str, key_env: str, url_env: str,
                server: str, *, aiohttp: bool = True) -> tuple[ModuleType, Any, tuple[str, ...], str | None]:
    """(SDK module, async client, the secrets its errors must not show, base URL or None) for an official SDK,
    imported only now; on the SDK's aiohttp transport unless `aiohttp` is False (a few calls, not a run's). A base URL's query parameters (`?api-version=...&key=...`) go on every request as the
    SDK's default query: the SDKs append their paths to the base URL, which would put them after the query.
    Raises MissingCredentials when neither a key nor a custom base URL is set, or the SDK is missing."""
    base_url = config.base_url or os.environ.get(url_env) or None
    key = os.environ.get(key_env) or None
    if key is None and base_url is None:
        raise MissingCredentials(f"{key_env} is not set (or set base_url for an {server}-compatible server)")
    try:
        sdk = importlib.import_module(sdk_name)
    except ImportError:
        raise MissingCredentials(f"the {sdk_name} package is not installed: pip install {sdk_name}") from None
    url, query = split_query(base_url)
    client = getattr(sdk, client_class)(api_key=key or PLACEHOLDER_KEY, base_url=url, default_query=query or None,
                                        max_retries=0, timeout=SDK_TIMEOUT_S,
                                        default_headers=config.options.get("headers"),
                                        http_client=sdk.DefaultAioHttpClient(timeout=SDK_TIMEOUT_S) if aiohttp
                                        else None)
    secrets = tuple(s for s in (key, *url_secrets(base_url or "")) if s)
    return sdk, client, secrets, base_url


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` as seconds or an HTTP date; None if absent."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error(body: Any) -> dict[str, Any]:
    """The API's error object: `{"error": {...}}` (anthropic keeps the envelope, openai unwraps it)."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    return body if isinstance(body, dict) else {}


def _detail(body: Any, fallback: str) -> str:
    """The API's own error message, else the SDK's summary."""
    message = _error(body).get("message")
    return message if isinstance(message, str) and message else fallback


QUERY_PAIR = re.compile(r"([?&;])([^=&;#?\s\"']+)=([^&;#\s\"']*)")  # name=value in a URL a message names


def redact(text: str, secrets: Sequence[str]) -> str:
    """Never let a key or a URL's credentials echoed by a server reach a stored error message: each secret (of 8
    characters or more) as '***', and the value of every secret-named or key-shaped query parameter."""
    for secret in secrets:
        if len(secret) >= 8:
            text = text.replace(secret, REDACTED)
    return QUERY_PAIR.sub(lambda m: f"{m[1]}{m[2]}={REDACTED}" if is_secret(m[2], m[3]) else m[0], text)


def to_provider_error(e: Exception, sdk: ModuleType, *, secrets: Sequence[str]) -> ProviderError:
    """Map one of the SDK's `APIError`s (or the HTTP client's error from inside a stream) to a
    ProviderError: retryable or not, with any retry-after."""
    if not isinstance(e, sdk.APIError):  # the connection failed while anthropic's stream was read
        return ProviderError(f"APIConnectionError: connection lost mid-stream ({type(e).__name__})", retryable=True)
    if isinstance(e, sdk.APIConnectionError):  # includes APITimeoutError and dropped connections
        root = e
        while root.__cause__ or root.__context__:
            root = root.__cause__ or root.__context__
        if isinstance(e, sdk.APITimeoutError) and not isinstance(root, TimeoutError):
            # the aiohttp transport reports every failed connection (a server that hung up, say) as a timeout
            message = f"APIConnectionError: connection failed ({type(root).__name__}: {root})"
        else:
            message = f"{type(e).__name__}: {e.message}" + (f" ({type(e.__cause__).__name__})" if e.__cause__ else "")
        return ProviderError(redact(message[:MAX_MESSAGE], secrets), retryable=True)
    if isinstance(e, sdk.APIStatusError) and not 200 <= e.status_code < 300:
        status = e.status_code
        headers = e.response.headers
        verdict = headers.get("x-should-retry")  # the server's own say, as the SDKs honour it
        retryable = verdict == "true" if verdict in ("true", "false") else (
            status in RETRYABLE_STATUS or status >= 500)
        message = f"HTTP {status} {type(e).__name__}: {_detail(e.body, e.message)}"[:MAX_MESSAGE]
        wait = retry_after_s(headers) if retryable else None
        if wait is not None and wait > MAX_RETRY_AFTER_S:
            retryable, wait = False, None
            message += f" (the server asks to wait {retry_after_s(headers):.0f}s; not retried)"
        return ProviderError(redact(message, secrets), retryable=retryable, retry_after=wait)
    kind = None if isinstance(e, sdk.APIResponseValidationError) else _error(e.body).get("type")
    if isinstance(kind, str):  # an error event in a streamed 200: no status of its own, so its type decides
        message = f"{type(e).__name__} mid-stream ({kind}): {_detail(e.body, e.message)}"[:MAX_MESSAGE]
        return ProviderError(redact(message, secrets), retryable=kind in RETRYABLE_STREAM_ERRORS)
    # any other APIError, e.g. a response that does not match the API's schema: trying again will not help
    message = f"{type(e).__name__}: {getattr(e, 'message', e)}"[:MAX_MESSAGE]
    return ProviderError(redact(message, secrets), retryable=False)
