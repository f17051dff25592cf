"""`anthropic:` Claude through the Messages API.

Key from ANTHROPIC_API_KEY; base URL from the model's `base_url` or ANTHROPIC_BASE_URL (the SDK appends
/v1/messages itself). A custom base URL needs no key (a placeholder is sent). The SDK never retries
(`max_retries=0`): the runner does.

System messages go to the `system` parameter, the rest as `messages`; `stop` becomes `stop_sequences`.
The installed SDK's `messages.create` takes no sampling parameters (temperature, top_p) and the API has
no seed, so those are not sent; they stay in the cache key and the manifest as configured.

Streamed (`stream`): `messages.create(stream=True)`, read event by event; the first text delta times
`ttft_s`, usage comes from `message_start` and the running totals of `message_delta`. The API's
`input_tokens` excludes prompt-cache reads and writes; Completion.input_tokens adds them back.
`options: {cache_prompt: true}` marks the shared prefix for the prompt cache (see `request`).

Tools (task.yaml `tools:`, OpenAI's format) are sent as `{name, description, input_schema}`; tool_choice
auto/required/none/NAME becomes `{type: auto | any | none | tool}`, and `parallel_tool_calls: false`
`disable_parallel_tool_use`. The answer's `tool_use` blocks become the completion's `tool_calls` (a streamed
block's `input_json_delta` pieces joined); a history's assistant calls go as `tool_use` blocks and its tool
turns as `tool_result` blocks of the next user turn.

Batch (`batch: true`, evals.providers.batch): the same bodies through Message Batches.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from evals.errors import ProviderError
from evals.providers import HttpOptions, register_provider
from evals.providers._http import Reply, SDKProvider, item_error, open_client, to_provider_error
from evals.providers.batch import BatchStatus, Outcome
from evals.types import Completion, GenerateParams, Message, ModelConfig

EPHEMERAL = {"type": "ephemeral"}  # Anthropic's prompt cache (5 minutes, refreshed by each read)


class AnthropicOptions(HttpOptions):
    cache_prompt: bool = Field(False, description="Mark the prefix every example shares (system prompt and "
                                                  "few-shot turns) for Anthropic's prompt cache (cache_control).")


@register_provider("anthropic")
class AnthropicProvider(SDKProvider):
    options = AnthropicOptions
    base_url_env = "ANTHROPIC_BASE_URL"
    batch = True

    @classmethod
    def from_config(cls, config: ModelConfig) -> AnthropicProvider:
        sdk, client, secrets, _ = open_client(config, "anthropic", "AsyncAnthropic", "ANTHROPIC_API_KEY",
                                              cls.base_url_env, "Anthropic")
        return cls(config, client, sdk, secrets)

    def __init__(self, config: ModelConfig, client: Any, sdk: Any, secrets: Sequence[str]):
        super().__init__(config, client, sdk, secrets)
        http = importlib.import_module("httpx2" if importlib.util.find_spec("httpx2") else "httpx")
        self._failures = (sdk.APIError, http.RequestError)  # the SDK's HTTP client: its stream lets these through
        self._cache_prompt = bool(config.options.get("cache_prompt"))

    def request(self, messages: Sequence[Message], params: GenerateParams) -> dict[str, Any]:
        """The Messages API body, as `generate` and a batch send it. With `cache_prompt`, one cache_control
        breakpoint ends the prefix every example shares: the last few-shot turn (which caches the system
        prompt with it), else the system prompt; the example's own message is never marked."""
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        turns = _turns([m for m in messages if m.role != "system"])
        request: dict[str, Any] = {"model": self._config.spec.model, "max_tokens": params.max_tokens,
                                   "messages": turns}
        if system:
            request["system"] = system
        if self._cache_prompt:
            if len(turns) > 1:
                shared = turns[-2]
                content = shared["content"]
                blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
                turns[-2] = {**shared, "content": [*blocks[:-1], {**blocks[-1], "cache_control": EPHEMERAL}]}
            elif system:
                request["system"] = [{"type": "text", "text": system, "cache_control": EPHEMERAL}]
        if params.stop:
            request["stop_sequences"] = list(params.stop)
        if params.tools:
            request["tools"] = [t.as_anthropic() for t in params.tools]
            choice = _tool_choice(params.tool_choice, params.parallel_tool_calls)
            if choice is not None:
                request["tool_choice"] = choice
        return request

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion:
        request = self.request(messages, params)
        reply = Reply(self.stream)
        try:
            if reply.streamed:
                async with await self._client.messages.create(**request, stream=True) as stream:
                    async for event in stream:
                        kind = event.type
                        if kind == "content_block_delta":
                            if event.delta.type == "text_delta":
                                reply.add(event.delta.text)
                            elif event.delta.type == "input_json_delta":
                                reply.add_call(event.index, arguments=event.delta.partial_json)
                        elif kind == "content_block_start" and event.content_block.type == "tool_use":
                            block = event.content_block
                            reply.add_call(event.index, block.id, block.name)
                        elif kind == "message_start":
                            reply.model = event.message.model
                            _count(reply, event.message.usage)
                        elif kind == "message_delta":
                            reply.finish_reason = event.delta.stop_reason
                            _count(reply, event.usage)
            else:
                _read(reply, await self._client.messages.create(**request))
        except self._failures as e:  # every SDK failure, mid-stream too; anything else is a bug
            raise to_provider_error(e, self._sdk, secrets=self._secrets) from None
        return self._completion(reply)

    def batch_api(self) -> AnthropicBatches:
        return AnthropicBatches(self)


def _read(reply: Reply, message: Any) -> None:
    """A whole Message into the reply."""
    for i, block in enumerate(message.content):
        if block.type == "text":
            reply.add(block.text)
        elif block.type == "tool_use":
            reply.add_call(i, block.id, block.name, json.dumps(block.input))
    reply.model, reply.finish_reason = message.model, message.stop_reason
    _count(reply, message.usage)


def _turns(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Chat turns as Messages API turns: an assistant's calls as `tool_use` blocks after its text, tool turns as
    `tool_result` blocks of one user turn (consecutive ones together, as the API wants every result of a turn's
    calls in the next user turn)."""
    turns: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            result = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
            last = turns[-1] if turns else None
            if last is not None and last["role"] == "user" and isinstance(last["content"], list) and all(
                    b.get("type") == "tool_result" for b in last["content"]):
                last["content"].append(result)
            else:
                turns.append({"role": "user", "content": [result]})
        elif m.tool_calls:
            blocks: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name,
                        "input": c.arguments if isinstance(c.arguments, dict) else {}} for c in m.tool_calls]
            turns.append({"role": "assistant", "content": blocks})
        else:
            turns.append({"role": m.role, "content": m.content})
    return turns


def _tool_choice(choice: str | None, parallel: bool | None) -> dict[str, Any] | None:
    """tool_choice in the Messages API's form: auto, any (OpenAI's required), none, or one tool by name; with
    `parallel_tool_calls: false`, `disable_parallel_tool_use` (which `none` does not take)."""
    if choice is None and parallel is not False:
        return None
    kind = {None: "auto", "auto": "auto", "required": "any", "none": "none"}.get(choice, "tool")
    out: dict[str, Any] = {"type": kind, **({"name": choice} if kind == "tool" else {})}
    if parallel is False and kind != "none":
        out["disable_parallel_tool_use"] = True
    return out


class AnthropicBatches:
    """Anthropic's Message Batches: each request as `{custom_id, params}`, polled until processing has
    ended, its results read back (JSONL) by custom_id."""

    max_items = 100_000
    max_bytes = 240 * 2**20  # the API takes batches up to 256 MB

    def __init__(self, provider: AnthropicProvider):
        self._p = provider
        self._batches, self._sdk = provider._client.messages.batches, provider._sdk

    def request(self, messages: Sequence[Message], params: GenerateParams) -> dict[str, Any]:
        return self._p.request(messages, params)

    def line(self, custom_id: str, request: dict[str, Any]) -> dict[str, Any]:
        return {"custom_id": custom_id, "params": request}

    async def probe(self) -> None:
        await self._p.probe_batches(lambda: self._batches.list(limit=1), "/v1/messages/batches")

    async def submit(self, lines: list[dict[str, Any]], token: str) -> str:
        try:
            return (await self._batches.create(requests=lines)).id
        except self._sdk.APIError as e:
            raise to_provider_error(e, self._sdk, secrets=self._p._secrets) from None

    async def find(self, token: str) -> str | None:
        """Message Batches carry no metadata: a batch whose create call a kill interrupted is not found."""
        return None

    async def poll(self, batch_id: str) -> BatchStatus:
        try:
            b = await self._batches.retrieve(batch_id)
        except self._sdk.NotFoundError:  # deleted, or another key's: what it held goes again
            return BatchStatus("lost", 0, detail="unknown to the provider")
        except self._sdk.APIError as e:
            raise to_provider_error(e, self._sdk, secrets=self._p._secrets) from None
        c = b.request_counts
        total = c.processing + c.succeeded + c.errored + c.canceled + c.expired
        unfinished = ", ".join(f"{n} {what}" for n, what in ((c.expired, "expired"), (c.canceled, "cancelled")) if n)
        return BatchStatus("running" if b.processing_status != "ended" else "lost" if unfinished else "ended",
                           total, c.succeeded, c.errored, unfinished or b.processing_status,
                           b.created_at.timestamp(), b)

    async def results(self, status: BatchStatus) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        if status.raw is None:  # a batch the provider does not know
            return outcomes
        try:
            async for row in await self._batches.results(status.raw.id):
                result = row.result
                if result.type == "succeeded":
                    reply = Reply(False)
                    _read(reply, result.message)
                    outcomes[row.custom_id] = self._p._completion(reply, batch=True)
                elif result.type == "errored":
                    outcomes[row.custom_id] = item_error(None, result.error.error.model_dump(), self._p._secrets)
                else:  # expired or canceled: not processed, so it goes again
                    outcomes[row.custom_id] = ProviderError(
                        f"batch {status.raw.id}: {result.type} before this request was processed", retryable=True)
        except self._sdk.APIError as e:
            raise to_provider_error(e, self._sdk, secrets=self._p._secrets) from None
        return outcomes


def _count(reply: Reply, usage: Any) -> None:
    """A whole message's usage, or a stream's running totals (where a field may be None: unchanged).
    The API's `input_tokens` excludes the cache reads and writes; the reply's includes them."""
    fresh = reply.input_tokens - reply.cached_input_tokens - reply.cache_write_tokens
    if usage.input_tokens is not None:
        fresh = usage.input_tokens
    if usage.cache_read_input_tokens is not None:
        reply.cached_input_tokens = usage.cache_read_input_tokens
    if usage.cache_creation_input_tokens is not None:
        reply.cache_write_tokens = usage.cache_creation_input_tokens
    reply.input_tokens = fresh + reply.cached_input_tokens + reply.cache_write_tokens
    reply.output_tokens = usage.output_tokens
