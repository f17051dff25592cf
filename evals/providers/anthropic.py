"""`anthropic:` Claude through the Messages API.

Key from ANTHROPIC_API_KEY; base URL from the model's `base_url` or ANTHROPIC_BASE_URL (the SDK appends
/v1/messages itself). A custom base URL needs no key (a placeholder is sent). The SDK never retries
(`max_retries=0`): the runner does.

System messages go to the `system` parameter, the rest as `messages`; `stop` becomes `stop_sequences`.
The installed SDK's `messages.create` takes no sampling parameters (temperature, top_p) and the API has
no seed, so those are not sent; they stay in the cache key and the manifest as configured.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from evals.providers import register_provider
from evals.providers._http import SDKProvider, open_client, to_provider_error
from evals.types import Completion, GenerateParams, Message, ModelConfig


class AnthropicProvider(SDKProvider):
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
        start = time.perf_counter()
        try:
            response = await self._client.messages.create(**request)
        except self._sdk.APIError as e:  # every SDK failure; anything else is a bug and propagates
            raise to_provider_error(e, self._sdk, secret=self._key) from None
        latency = time.perf_counter() - start
        usage = response.usage
        return Completion(
            text="".join(block.text for block in response.content if block.type == "text"),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            latency_s=latency,
            cost_usd=self._price.cost(usage.input_tokens, usage.output_tokens),
            model_version=response.model,
            finish_reason=response.stop_reason,
        )


@register_provider("anthropic")
def anthropic_provider(config: ModelConfig) -> AnthropicProvider:
    sdk, client, key, _ = open_client(config, "anthropic", "AsyncAnthropic", "ANTHROPIC_API_KEY",
                                      "ANTHROPIC_BASE_URL", "Anthropic")
    return AnthropicProvider(config, client, sdk, key)
