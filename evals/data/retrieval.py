"""Retrieved worked examples (`few_shot: {retrieve: k}`): per example, the k training examples whose user turn
is nearest its own, by the cosine of sentence embeddings from the offline all-MiniLM-L6-v2 (the model the
embedding_similarity metric ships with). Each pool is embedded once per process; an example's own text is
never its own demo (a training example identical to the one asked is left out)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from evals.errors import EvalsError
from evals.types import FewShot, PromptSpec

# (id of the pool, its user template) -> texts, vectors, and the pool itself (kept alive while its id is a key)
_pools: dict[tuple[int, str], tuple[list[str], Any, tuple[FewShot, ...]]] = {}
_queries: dict[str, Any] = {}  # user turn -> its vector
_lock = threading.Lock()


def _encode(texts: list[str]) -> Any:
    from evals.metrics.semantic import DEFAULT_MODEL, load_model, resolve_model

    try:
        model = load_model(resolve_model(DEFAULT_MODEL))
    except (ValueError, ImportError) as e:
        raise EvalsError(f"few_shot.retrieve needs the embedding model: {e}") from None
    return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=False)


Render = Callable[[PromptSpec, dict[str, Any]], str]  # an example's user turn (evals.data.prompts.render_user)


def _pool(prompt: PromptSpec, render: Render) -> tuple[list[str], Any]:
    key = (id(prompt.pool), prompt.user)
    with _lock:
        if key not in _pools:
            texts = [render(prompt, s.fields) for s in prompt.pool]
            _pools[key] = (texts, _encode(texts), prompt.pool)
        texts, vectors, _ = _pools[key]
        return texts, vectors


def warm(prompt: PromptSpec, users: list[str], render: Render) -> None:
    """Embed these user turns (and the pool) in one batch each, ahead of rendering them one by one."""
    if not prompt.retrieve:
        return
    _pool(prompt, render)
    todo = [u for u in dict.fromkeys(users) if u not in _queries]
    if todo:
        for text, vector in zip(todo, _encode(todo), strict=True):
            _queries[text] = vector


def nearest(prompt: PromptSpec, user: str, render: Render) -> tuple[FewShot, ...]:
    """The `prompt.retrieve` pool examples nearest this user turn, nearest last (closest to the question)."""
    if not prompt.pool:
        raise EvalsError("few_shot.retrieve has no training examples to retrieve from")
    texts, vectors = _pool(prompt, render)
    if user not in _queries:
        _queries[user] = _encode([user])[0]
    similarity = vectors @ _queries[user]
    order = [i for i in similarity.argsort()[::-1] if texts[i] != user][: prompt.retrieve]
    return tuple(prompt.pool[i] for i in reversed(order))
