"""Real OpenAI and Anthropic calls with a tiny prompt (a few hundred tokens, well under a cent).

Marked `live`; each is skipped when its key is not set. Run with:
    OPENAI_API_KEY=... ANTHROPIC_API_KEY=... .venv/bin/python -m pytest -m live -q
"""

from __future__ import annotations

import os

import pytest

from evals.errors import ProviderError
from evals.providers.anthropic import AnthropicProvider
from evals.providers.openai import OpenAIProvider
from evals.types import GenerateParams, Message, ModelConfig, ModelSpec

openai_provider, anthropic_provider = OpenAIProvider.from_config, AnthropicProvider.from_config

pytestmark = pytest.mark.live

CHAT = [Message("system", "You answer with one lowercase word and nothing else."),
        Message("user", "What is the opposite of 'ping'?")]
LIVE = {
    "openai": (openai_provider, "gpt-4o-mini", "OPENAI_API_KEY"),
    "anthropic": (anthropic_provider, "claude-haiku-4-5", "ANTHROPIC_API_KEY"),
}


@pytest.fixture(params=sorted(LIVE))
def live(request):
    factory, model, key = LIVE[request.param]
    if not os.environ.get(key):
        pytest.skip(f"{key} is not set")
    return request.param, factory, model


async def test_live_call_returns_an_answer_with_usage_and_cost(live) -> None:
    name, factory, model = live
    provider = factory(ModelConfig(spec=ModelSpec(name, model), max_tokens=16))
    try:
        c = await provider.generate(CHAT, GenerateParams(max_tokens=16))
    finally:
        await provider.aclose()
    assert "pong" in c.text.lower()
    assert c.input_tokens > 10 and 0 < c.output_tokens <= 16
    assert c.cost_usd > 0 and c.latency_s > 0
    assert c.model_version and c.model_version.startswith(model)  # a dated snapshot of the family
    assert c.finish_reason in ("stop", "end_turn")


async def test_live_unknown_model_is_a_clear_non_retryable_error(live) -> None:
    name, factory, _ = live
    provider = factory(ModelConfig(spec=ModelSpec(name, "no-such-model-evals-test")))
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.generate(CHAT, GenerateParams(max_tokens=4))
    finally:
        await provider.aclose()
    assert not caught.value.retryable and "HTTP 4" in str(caught.value)
    assert os.environ[LIVE[name][2]] not in str(caught.value)
