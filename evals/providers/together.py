"""`together:` Together AI's models, serverless or on a dedicated endpoint, through its OpenAI-compatible chat
endpoint with the openai SDK (the OpenAI provider, pointed at Together).

Key from TOGETHER_API_KEY; the server from the model's `base_url` or TOGETHER_BASE_URL, given as the together SDK
takes it (its root, https://api.together.ai by default): chat calls go to its /v1, so one variable points the
fine-tuning SDK and the model's calls at the same server. A custom server needs no key.

`together:ft@NAME` calls the fine-tune that `evals finetune TASK --on together --name NAME` trained (its job's
`model_output_name`, from finetune/hosted/NAME/manifest.json); until it exists the model is skipped.

A managed host's models (`managed`): `decide` prices them per token at their `price:` (serverless), or per hour
when decision.managed names a dedicated endpoint. prices.yaml ships no Together rate: give it with `price:`.
"""

from __future__ import annotations

import dataclasses
import os

from evals.errors import MissingCredentials
from evals.providers import register_provider
from evals.providers._http import open_client
from evals.providers.finetuned import resolved_model
from evals.providers.openai import OpenAIProvider, _token_param
from evals.types import ModelConfig

SERVER = "https://api.together.ai"
KEY_ENV = "TOGETHER_API_KEY"


def chat_url(root: str) -> str:
    """The OpenAI-compatible endpoint under a Together server's root."""
    root = root.rstrip("/")
    return root if root.endswith("/v1") else root + "/v1"


@register_provider("together")
class TogetherProvider(OpenAIProvider):
    base_url_env = "TOGETHER_BASE_URL"
    managed = True
    logprobs = False  # Together asks for them its own way (an integer), not wired here
    batch = False  # Together's Batch API is its own, not wired here

    @classmethod
    def from_config(cls, config: ModelConfig) -> TogetherProvider:
        model = resolved_model(config.spec)  # before the client: a fine-tune not trained yet is skipped
        root = config.base_url or os.environ.get(cls.base_url_env) or SERVER
        if not os.environ.get(KEY_ENV) and root == SERVER:
            raise MissingCredentials(f"{KEY_ENV} is not set (or set base_url for another Together-compatible server)")
        chat = dataclasses.replace(config, base_url=chat_url(root))
        sdk, client, secrets, base_url = open_client(chat, "openai", "AsyncOpenAI", KEY_ENV, cls.base_url_env,
                                                     "Together AI")
        return cls(config, client, sdk, secrets, _token_param(chat, base_url), model)
