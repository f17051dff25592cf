"""`openai:` OpenAI chat completions, and every OpenAI-compatible server (vLLM, Ollama, TGI, llama.cpp).

Key from OPENAI_API_KEY; base URL from the model's `base_url` or OPENAI_BASE_URL. A custom base URL
needs no key (a placeholder is sent). The SDK never retries (`max_retries=0`): the runner does.

The request goes through the SDK's documented low-level `client.post("/chat/completions", ...)` with the
typed `ChatCompletion` response, not `chat.completions.create`: `create` first walks the request through
its TypedDict transform (for plain-text chat messages an identity), which measured ~0.5-1 ms of CPU per
call, the largest single cost of the harness (bench/api_throughput.py). Auth, base URL, headers, error
classes and response parsing are the SDK's either way; tests/providers/test_providers_api.py checks that the body
on the wire equals what `create` sends.

Streamed (`stream`): the same post with `stream: true, stream_options: {include_usage: true}`, read as the
SDK's `AsyncStream[ChatCompletionChunk]`; the first content delta times `ttft_s`, the last chunk carries
the usage. Prompt-cache reads come from `usage.prompt_tokens_details.cached_tokens` (included in
`prompt_tokens`).

Output length: api.openai.com gets `max_completion_tokens` (`max_tokens` is deprecated there and
rejected by reasoning models); a custom base URL gets `max_tokens`, which every compatible server
understands. `options: {max_tokens_param: max_tokens | max_completion_tokens}` overrides the choice.

`options: {logprobs: true}` asks for the answer's token log-probabilities; their mean is recorded as the
completion's `mean_logprob` (`evals route --signal logprob` sets it itself).
Batch (`batch: true`, evals.providers.batch): the same bodies as JSONL lines through the Files and Batches
APIs; the API caches long shared prompt prefixes by itself, and `cached_tokens` is priced as above.

Tools (task.yaml `tools:`): sent as `tools`, with `tool_choice` (auto, none, required, or `{type: function,
function: {name}}` for a named function) and `parallel_tool_calls`; the answer's `message.tool_calls` (their
`arguments` JSON text parsed) become the completion's `tool_calls`, and a streamed answer's
`delta.tool_calls` pieces are joined by their `index` (id and name first, arguments in pieces). A chat
history's assistant calls and tool turns are sent in the same form.

`openai:ft@NAME` calls the hosted fine-tune NAME's model (finetune/hosted/NAME/manifest.json, written by
`evals finetune TASK --on openai`), at that model's own prices; until it exists the model is skipped.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field

from evals.errors import EvalsError, ProviderError
from evals.providers import HttpOptions, register_provider
from evals.providers._http import Reply, SDKProvider, item_error, open_client, to_provider_error
from evals.providers.batch import BatchStatus, Outcome
from evals.providers.finetuned import resolved_model
from evals.providers.prices import price_for
from evals.types import TOOL_CHOICES, Completion, GenerateParams, Message, ModelConfig

TOKEN_PARAMS = ("max_tokens", "max_completion_tokens")
UNFINISHED = ("batch_expired", "batch_cancelled")  # a batch item's error codes for requests never processed
TOKEN_KEY = "evals_submission"  # the batch's metadata key for the token it was submitted under


class OpenAIOptions(HttpOptions):
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] | None = Field(
        None, description="The request's output-length parameter; default: max_completion_tokens for "
                          "api.openai.com, max_tokens for a custom base_url.")
    logprobs: bool = Field(False, description="Ask for the answer's token log-probabilities (recorded as its "
                                              "mean_logprob, the confidence signal of `evals route`).")


@register_provider("openai")
class OpenAIProvider(SDKProvider):
    options = OpenAIOptions
    base_url_env = "OPENAI_BASE_URL"
    logprobs = True  # when asked for: see with_logprobs
    batch = True

    @classmethod
    def from_config(cls, config: ModelConfig) -> OpenAIProvider:
        model = resolved_model(config.spec)  # before the client: a fine-tune not trained yet is skipped
        sdk, client, secrets, base_url = open_client(config, "openai", "AsyncOpenAI", "OPENAI_API_KEY",
                                                     cls.base_url_env, "OpenAI")
        return cls(config, client, sdk, secrets, _token_param(config, base_url), model)

    @classmethod
    def with_logprobs(cls, config: ModelConfig) -> ModelConfig:
        if config.options.get("logprobs"):
            return config
        return dataclasses.replace(config, options={**config.options, "logprobs": True})

    def __init__(self, config: ModelConfig, client: Any, sdk: Any, secrets: Sequence[str], token_param: str,
                 model: str):
        super().__init__(config, client, sdk, secrets)
        self._model = model  # the name sent: a hosted fine-tune's own for `ft@NAME`
        if model != config.spec.model:
            self.id, self._price = f"{config.spec.provider}:{model}", price_for(config, model)
        self._token_param = token_param
        self._response_type = sdk.types.chat.ChatCompletion
        self._stream_type = sdk.AsyncStream[sdk.types.chat.ChatCompletionChunk]

    def request(self, messages: Sequence[Message], params: GenerateParams) -> dict[str, Any]:
        """The chat-completions body (without streaming), as `generate` and a batch send it."""
        request: dict[str, Any] = {
            "model": self._model,
            "messages": [openai_message(m) for m in messages],
            "temperature": params.temperature,
            self._token_param: params.max_tokens,
        }
        if params.tools:
            request["tools"] = [t.as_openai() for t in params.tools]
            if params.tool_choice is not None:
                request["tool_choice"] = params.tool_choice if params.tool_choice in TOOL_CHOICES else {
                    "type": "function", "function": {"name": params.tool_choice}}
            if params.parallel_tool_calls is not None:
                request["parallel_tool_calls"] = params.parallel_tool_calls
        if params.top_p is not None:
            request["top_p"] = params.top_p
        if params.stop:
            request["stop"] = list(params.stop)
        if params.seed is not None:
            request["seed"] = params.seed
        if self._config.options.get("logprobs"):
            request["logprobs"] = True
        return request

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion:
        request = self.request(messages, params)
        reply = Reply(self.stream)
        if reply.streamed:
            request["stream"], request["stream_options"] = True, {"include_usage": True}
        try:
            response = await self._client.post(  # unstreamed: plain JSON (the SDK's models cost a fifth of a call)
                "/chat/completions", body=request, cast_to=self._response_type if reply.streamed else object,
                options={"security": {"bearer_auth": True}},  # the auth `create` asks for
                stream=reply.streamed, stream_cls=self._stream_type,
            )
            if reply.streamed:
                async with response:
                    async for chunk in response:
                        if chunk.choices:
                            choice = chunk.choices[0]
                            reply.add(choice.delta.content)
                            for call in choice.delta.tool_calls or ():
                                function = call.function
                                reply.add_call(call.index, call.id, function.name if function else None,
                                               function.arguments if function else None)
                            _logprobs(reply, choice)
                            reply.finish_reason = choice.finish_reason or reply.finish_reason
                        if chunk.usage is not None:  # the last chunk's
                            _count(reply, chunk.usage)
                        reply.model = chunk.model
            else:
                _read(reply, response)
        except self._sdk.APIError as e:  # every SDK failure, mid-stream too; anything else is a bug
            raise to_provider_error(e, self._sdk, secrets=self._secrets) from None
        return self._completion(reply)

    def batch_api(self) -> OpenAIBatches:
        return OpenAIBatches(self)


class OpenAIBatches:
    """OpenAI's Batch API: the requests as a JSONL file (Files API, purpose batch), one batch of
    /v1/chat/completions over it (24 h window), its output and error files read back by custom_id."""

    max_items = 50_000
    max_bytes = 190 * 2**20  # the API takes input files up to 200 MB

    def __init__(self, provider: OpenAIProvider):
        self._p = provider
        self._client, self._sdk = provider._client, provider._sdk

    def request(self, messages: Sequence[Message], params: GenerateParams) -> dict[str, Any]:
        return self._p.request(messages, params)

    def line(self, custom_id: str, request: dict[str, Any]) -> dict[str, Any]:
        return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": request}

    async def probe(self) -> None:
        await self._p.probe_batches(lambda: self._client.batches.list(limit=1), "/batches")

    async def submit(self, lines: list[dict[str, Any]], token: str) -> str:
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        try:
            file = await self._client.files.create(file=("evals-batch.jsonl", data, "application/jsonl"),
                                                   purpose="batch")
            batch = await self._client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions",
                                                      completion_window="24h", metadata={TOKEN_KEY: token})
        except self._sdk.APIError as e:
            raise to_provider_error(e, self._sdk, secrets=self._p._secrets) from None
        return batch.id

    async def find(self, token: str) -> str | None:
        """The batch created under this submission token, among the newest 100."""
        try:
            page = await self._client.batches.list(limit=100)
        except self._sdk.APIError as e:
            raise to_provider_error(e, self._sdk, secrets=self._p._secrets) from None
        return next((b.id for b in page.data if (b.metadata or {}).get(TOKEN_KEY) == token), None)

    async def poll(self, batch_id: str) -> BatchStatus:
        try:
            b = await self._client.batches.retrieve(batch_id)
        except self._sdk.NotFoundError:  # deleted, or another key's: what it held goes again
            return BatchStatus("lost", 0, detail="unknown to the provider")
        except self._sdk.APIError as e:
            raise to_provider_error(e, self._sdk, secrets=self._p._secrets) from None
        counts = b.request_counts
        state = {"completed": "ended", "expired": "lost", "cancelled": "lost", "failed": "failed"}.get(b.status,
                                                                                                       "running")
        detail = b.status
        if b.status == "failed" and b.errors and b.errors.data:
            detail = "; ".join(f"{e.code}: {e.message}" for e in b.errors.data)[:500]
        return BatchStatus(state, counts.total if counts else 0, counts.completed if counts else 0,
                           counts.failed if counts else 0, detail, float(b.created_at), b)

    async def results(self, status: BatchStatus) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        if status.raw is None:  # a batch the provider does not know
            return outcomes
        for file_id in (status.raw.output_file_id, status.raw.error_file_id):
            if not file_id:
                continue
            try:
                content = await self._client.files.content(file_id)
            except self._sdk.APIError as e:
                raise to_provider_error(e, self._sdk, secrets=self._p._secrets) from None
            for text in content.text.splitlines():
                if text.strip():
                    row = json.loads(text)
                    outcomes[row["custom_id"]] = self._outcome(row)
        return outcomes

    def _outcome(self, row: dict[str, Any]) -> Outcome:
        response = row.get("response") or {}
        status = response.get("status_code")
        if status == 200 and not row.get("error"):
            reply = Reply(False)
            _read(reply, response["body"])
            return self._p._completion(reply, batch=True)
        error = row.get("error") or (response.get("body") or {}).get("error") or {}
        if error.get("code") in UNFINISHED:  # not processed before the batch ended: it goes again
            return ProviderError(f"{error['code']}: {error.get('message') or 'not processed'}", retryable=True)
        return item_error(status, error, self._p._secrets)


def _read(reply: Reply, response: Any) -> None:
    """An unstreamed chat completion (a call's or a batch item's), as the JSON the API sent; a malformed one is
    not retried."""
    try:
        if response.get("choices"):
            choice = response["choices"][0]
            message = choice.get("message") or {}
            reply.add(message.get("content"))
            for i, call in enumerate(message.get("tool_calls") or ()):
                function = call.get("function") or {}
                reply.add_call(i, call.get("id"), function.get("name"), function.get("arguments"))
            reply.logprobs.extend(t["logprob"] for t in ((choice.get("logprobs") or {}).get("content") or ()))
            reply.finish_reason = choice.get("finish_reason")
        usage = response.get("usage") or {}
        reply.input_tokens, reply.output_tokens = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
        reply.cached_input_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        reply.model = response.get("model")
    except (AttributeError, KeyError, TypeError, IndexError) as e:
        raise ProviderError(f"APIResponseValidationError: not a chat completion ({type(e).__name__}: {e})",
                            retryable=False) from None


def openai_message(m: Message) -> dict[str, Any]:
    """A chat turn in the API's form (requests, batches, fine-tuning files): an assistant turn's calls with their
    arguments as JSON text, a tool turn with the id of the call it answers."""
    if m.tool_calls:
        return {"role": m.role, "content": m.content or None, "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": _arguments(c.arguments)}}
            for c in m.tool_calls]}
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}
    return {"role": m.role, "content": m.content}


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _count(reply: Reply, usage: Any) -> None:
    """OpenAI's usage: `prompt_tokens` includes the cached ones."""
    reply.input_tokens = usage.prompt_tokens or 0
    reply.output_tokens = usage.completion_tokens or 0
    details = usage.prompt_tokens_details
    reply.cached_input_tokens = (details.cached_tokens or 0) if details is not None else 0


def _logprobs(reply: Reply, choice: Any) -> None:
    """The answer's token log-probabilities, where asked for (`options: {logprobs: true}`)."""
    content = choice.logprobs.content if choice.logprobs is not None else None
    reply.logprobs.extend(t.logprob for t in content or ())


def _token_param(config: ModelConfig, base_url: str | None) -> str:
    chosen = config.options.get("max_tokens_param")
    if chosen is not None:
        if chosen not in TOKEN_PARAMS:
            raise EvalsError(f"model {config.spec}: options.max_tokens_param must be one of "
                             f"{', '.join(TOKEN_PARAMS)}, got {chosen!r}")
        return chosen
    official = base_url is None or urlsplit(base_url).hostname == "api.openai.com"
    return "max_completion_tokens" if official else "max_tokens"
