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
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from typing import Any

from evals.providers import HttpOptions, register_provider
from evals.providers._http import Reply, SDKProvider, open_client, to_provider_error
from evals.types import Completion, GenerateParams, Message, ModelConfig


class AnthropicProvider(SDKProvider):
    def __init__(self, config: ModelConfig, client: Any, sdk: Any, key: str | None):
        super().__init__(config, client, sdk, key)
        http = importlib.import_module("httpx2" if importlib.util.find_spec("httpx2") else "httpx")
        self._failures = (sdk.APIError, http.RequestError)  # the SDK's HTTP client: its stream lets these through

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion:
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        request: dict[str, Any] = {
            "model": self._config.spec.model,
            "max_tokens": params.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in messages if m.role != "system"],
        }
        if system:
            request["system"] = system
        if params.stop:
            request["stop_sequences"] = list(params.stop)
        reply = Reply(self.stream)
        try:
            if reply.streamed:
                async with await self._client.messages.create(**request, stream=True) as stream:
                    async for event in stream:
                        kind = event.type
                        if kind == "content_block_delta":
                            if event.delta.type == "text_delta":
                                reply.add(event.delta.text)
                        elif kind == "message_start":
                            reply.model = event.message.model
                            _count(reply, event.message.usage)
                        elif kind == "message_delta":
                            reply.finish_reason = event.delta.stop_reason
                            _count(reply, event.usage)
            else:
                response = await self._client.messages.create(**request)
                for block in response.content:
                    if block.type == "text":
                        reply.add(block.text)
                reply.model, reply.finish_reason = response.model, response.stop_reason
                _count(reply, response.usage)
        except self._failures as e:  # every SDK failure, mid-stream too; anything else is a bug
            raise to_provider_error(e, self._sdk, secret=self._key) from None
        return self._completion(reply)


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


@register_provider("anthropic", options=HttpOptions)
def anthropic_provider(config: ModelConfig) -> AnthropicProvider:
    sdk, client, key, _ = open_client(config, "anthropic", "AsyncAnthropic", "ANTHROPIC_API_KEY",
                                      "ANTHROPIC_BASE_URL", "Anthropic")
    return AnthropicProvider(config, client, sdk, key)
