"""Memory of a fine-tune: micro-batches and gradient checkpointing give the step's loss and gradients, the
choice of settings fits the memory, and an estimate past the free memory stops before anything is lost."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evals.cli import app
from evals.errors import EvalsError

pytest.importorskip("peft")
sys.path.insert(0, str(Path(__file__).parents[1]))
from finetune.data import Example  # noqa: E402
from finetune.loss import accumulate_gradients, batch_loss, enable_checkpointing  # noqa: E402
from finetune.memory import GB, MemoryProfile, Rows, candidates, estimate_peak, plan_memory  # noqa: E402
from tests.finetune.test_finetune import task_dir, tiny_dir  # noqa: E402, F401  (module fixtures)

SHARED = tuple(range(5, 25))
BATCH = [Example("a", SHARED + (30, 31), (40, 41, 42)), Example("b", SHARED + (33,), (44, 45)),
         Example("c", SHARED + (34, 35, 36), (49,)), Example("d", SHARED + (37, 38), (50, 51, 52, 53))]


def lora_model(tiny_dir: Path):
    import torch
    from peft import LoraConfig, get_peft_model

    from evals.providers.local import load_base_model, resolve_source

    torch.manual_seed(0)
    model = get_peft_model(load_base_model(resolve_source(str(tiny_dir)), torch.float32),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False))
    model.train()
    return model


def gradients(model) -> list:
    return [p.grad.clone() for p in model.parameters() if p.requires_grad]


@pytest.mark.parametrize("micro_batch", [1, 3])
def test_checkpointed_micro_batched_step_gives_the_plain_steps_loss_and_gradients(tiny_dir, micro_batch) -> None:
    plain = lora_model(tiny_dir)
    whole = batch_loss(plain, BATCH, pad_id=0)
    (whole.total / 10).backward()

    lean = lora_model(tiny_dir)
    enable_checkpointing(lean)
    attention = lean.get_base_model().model.layers[0].self_attn
    calls = []
    attention.register_forward_hook(lambda *_: calls.append(1))
    r = accumulate_gradients(lean, BATCH, pad_id=0, micro_batch=micro_batch, divisor=10)

    micro_batches = -(-len(BATCH) // micro_batch)
    assert len(calls) == 2 * (1 + micro_batches)  # the prefix and each micro-batch ran, and were recomputed
    assert (r.answer_tokens, r.tokens) == (whole.answer_tokens, whole.tokens) == (10, sum(len(e) for e in BATCH))
    assert r.total == pytest.approx(whole.total.item(), rel=1e-5)
    for a, b in zip(gradients(lean), gradients(plain), strict=True):
        assert b.abs().max() > 0
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()


PROFILE = MemoryProfile(resident=1_000_000_000, trainable=20_000_000, per_token=1_000_000, per_key=100_000,
                        per_layer_input=35_000, layers=30, per_answer_token=700_000)
ROWS = Rows(longest=800, prefix=270, answer=120)


# What the whole default bf16 fine-tune of resume-feedback planned from (its manifest, 2026-12-08) and its peak RSS
WHOLE_RUN_PROFILE = MemoryProfile(resident=1_093_152_768, trainable=19_537_920, per_token=1_025_896, per_key=95_040,
                                  per_layer_input=34_560, layers=30, per_answer_token=688_128)
WHOLE_RUN_ROWS = Rows(longest=1555, prefix=1048, answer=123)
WHOLE_RUN_PEAK = 4_012_941_312  # micro-batches of 2, checkpointing off


def test_the_estimate_covers_the_measured_peak_of_a_whole_fine_tune_and_the_plan_stays_under_4_gb() -> None:
    estimate = estimate_peak(WHOLE_RUN_PROFILE, WHOLE_RUN_ROWS, 2, False)
    assert WHOLE_RUN_PEAK <= estimate <= 1.10 * WHOLE_RUN_PEAK
    plan = plan_memory(WHOLE_RUN_PROFILE, WHOLE_RUN_ROWS, batch_size=8, limit=int(4 * GB), free=int(20 * GB))
    assert plan.estimate <= 4 * GB and (plan.micro_batch, plan.checkpointing) == (1, False)


def test_candidates_run_from_fastest_to_leanest_and_keep_what_the_user_set() -> None:
    assert candidates(8, None, None) == [(8, False), (4, False), (2, False), (1, False),
                                         (8, True), (4, True), (2, True), (1, True)]
    assert candidates(6, None, True) == [(6, True), (3, True), (2, True), (1, True)]
    assert candidates(8, 3, None) == [(3, False), (3, True)]


def test_the_plan_is_the_fastest_setting_under_the_limit() -> None:
    def plan(limit: float, free: float = 100 * GB, **fixed):
        return plan_memory(PROFILE, ROWS, batch_size=8, limit=int(limit), free=int(free), **fixed)

    peaks = {o: estimate_peak(PROFILE, ROWS, *o) for o in candidates(8, None, None)}
    assert peaks[(8, False)] > peaks[(4, False)] > peaks[(1, False)] > peaks[(1, True)]  # each step down is leaner
    assert peaks[(1, True)] < peaks[(2, True)] < peaks[(8, True)]
    roomy = plan(100 * GB)
    assert (roomy.micro_batch, roomy.checkpointing, roomy.fits()) == (8, False, True)
    squeezed = plan(peaks[(2, False)])
    assert (squeezed.micro_batch, squeezed.checkpointing) == (2, False) and squeezed.estimate == peaks[(2, False)]
    tight = plan(peaks[(1, False)] - 1)  # no micro-batch fits without checkpointing
    assert tight.checkpointing and tight.estimate < peaks[(1, False)]
    assert tight.micro_batch == max(m for m, c in peaks if c and peaks[(m, c)] < peaks[(1, False)])
    hopeless = plan(0.5 * GB)
    assert (hopeless.micro_batch, hopeless.checkpointing, hopeless.fits()) == (1, True, False)
    # less free than the limit: the free memory is the limit
    short = plan(100 * GB, free=peaks[(4, False)] - PROFILE.resident)
    assert (short.micro_batch, short.limit) == (4, peaks[(4, False)])
    fixed = plan(100 * GB, micro_batch=2, checkpointing=True)
    assert (fixed.micro_batch, fixed.checkpointing, fixed.chosen) == (2, True, False)
    assert "micro-batches of 2 row(s), gradient checkpointing on" in fixed.describe()


def test_on_a_gpu_the_plan_is_made_against_its_memory_not_host_ram(tiny_dir, monkeypatch) -> None:
    import psutil
    import torch

    from finetune.config import FinetuneConfig
    from finetune.memory import resident_bytes
    from finetune.trainer import plan_memory_use

    asked = []

    def mem_get_info(device):
        asked.append(device)
        return free, 80 * GB

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: 2 * GB + cached)  # held by torch, unused
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: 2 * GB)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: pytest.fail("host RAM consulted for a GPU"))
    assert resident_bytes("cuda:1") == 2 * GB
    model, config = lora_model(tiny_dir), FinetuneConfig(batch_size=4)

    free, cached = 30 * GB, 1 * GB
    plan = plan_memory_use(model, BATCH, config, device="cuda:1", force=False)
    assert asked == ["cuda:1"] and plan.free == 31 * GB and plan.where == "GPU 1"
    assert plan.limit > 31 * GB  # auto: all the GPU's free memory, not the 4 GB of host RAM
    assert (plan.micro_batch, plan.checkpointing) == (4, False) and "31.0 GB free (GPU 1)" in plan.describe()

    free, cached = 0, 0
    with pytest.raises(EvalsError, match=r"does not fit in GPU 1: .* \+ 0.0 GB free"):
        plan_memory_use(model, BATCH, config, device="cuda:1", force=False)


def test_longer_rows_need_more_memory() -> None:
    longer = Rows(longest=1400, prefix=270, answer=200)
    for option in candidates(8, None, None):
        assert estimate_peak(PROFILE, longer, *option) > estimate_peak(PROFILE, ROWS, *option)


def cli_args(task_dir: Path, tiny_dir: Path, *extra: str) -> list[str]:
    return ["finetune", str(task_dir), "--base", f"local:{tiny_dir}", "--epochs", "1", "--batch-size", "4",
            "--target-modules", "q_proj,v_proj", *extra]


def test_an_estimate_past_the_free_memory_stops_before_training_unless_forced(tiny_dir, task_dir, tmp_path,
                                                                             monkeypatch) -> None:
    import finetune.memory

    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(app, cli_args(task_dir, tiny_dir)).exit_code == 0
    adapter = Path("finetune/adapters/qa")
    before = (adapter / "adapter_model.safetensors").read_bytes()
    monkeypatch.setattr(finetune.memory, "free_bytes", lambda device: 1000)
    result = CliRunner().invoke(app, cli_args(task_dir, tiny_dir, "--force"))
    assert result.exit_code == 0, result.output  # --force trains anyway
    result = CliRunner().invoke(app, cli_args(task_dir, tiny_dir, "--name", "other"))
    assert result.exit_code == 2
    assert "estimated peak memory" in result.output and "does not fit in host RAM: " in result.output
    assert "0.0 GB free" in result.output
    assert "--max-length" in result.output and "--force" in result.output and "Traceback" not in result.output
    assert not Path("finetune/adapters/other").exists()
    assert (adapter / "adapter_model.safetensors").read_bytes() != before  # the forced run replaced it


def test_memory_settings_from_flags_are_printed_and_recorded(tiny_dir, task_dir, tmp_path, monkeypatch) -> None:
    from rich.console import Console

    from evals.run.hardware import cpu_name
    from finetune.cli import _print_summary

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, cli_args(task_dir, tiny_dir, "--micro-batch", "1", "--gradient-checkpointing"))
    assert result.exit_code == 0, result.output
    assert "memory: micro-batches of 1 row(s), gradient checkpointing on (set; limit 4.0 GB)" in result.output
    assert "GB free (host RAM)" in result.output
    assert "peak memory " in result.output and cpu_name() in result.output
    manifest = json.loads(Path("finetune/adapters/qa/manifest.json").read_text())
    memory = manifest["memory"]
    assert (memory["micro_batch"], memory["checkpointing"], memory["chosen"]) == (1, True, False)
    assert memory["peak_rss_bytes"] > 100e6 and memory["estimate"] > 0
    assert manifest["hardware"]["cpu"] == cpu_name() and isinstance(manifest["hardware"]["cpu_bf16"], bool)
    assert memory["where"] == "host RAM"
    on_gpu = {**manifest, "hardware": {**manifest["hardware"], "device": "cuda"},
              "parallel": {**manifest["parallel"], "gpu_peak_memory_bytes": 2_345_000_000}}
    console = Console(record=True, width=300)
    _print_summary(on_gpu, console)  # on a GPU the summary sets the estimate beside the GPU's peak, not host RAM's
    assert "peak GPU memory 2.3 GB allocated (estimated" in console.export_text()
    bad = CliRunner().invoke(app, cli_args(task_dir, tiny_dir, "--micro-batch", "5"))
    assert bad.exit_code == 2 and "field 'micro_batch': must be at most batch_size (4), got 5" in bad.output


FRAGMENTS = """
import sys
import psutil
from finetune.memory import return_freed_memory
if sys.argv[1] == "fixed":
    assert return_freed_memory()
freed = bytearray(4 << 20)  # a step's large tensor, freed: glibc's default raises its mmap threshold past 4 MB
del freed
blocks = [bytearray(3 << 20) for _ in range(100)]  # the next step's 300 MB of activations, of another size
before = psutil.Process().memory_info().rss
kept = blocks[-1]  # one still alive at the top of the heap (as an optimiser's state is)
del blocks
print((before - psutil.Process().memory_info().rss) / 1e6)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
@pytest.mark.parametrize(("mode", "returned"), [("default", lambda mb: mb < 50), ("fixed", lambda mb: mb > 250)])
def test_training_gives_freed_activations_back_to_the_system(mode, returned) -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-c", FRAGMENTS, mode], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    assert returned(float(done.stdout)), done.stdout  # MB of 300 the system got back once they were freed


def test_training_sets_up_the_allocator_before_loading_the_model(monkeypatch) -> None:
    from finetune import memory, trainer
    from finetune.config import FinetuneConfig
    from finetune.distributed import World

    called = []
    monkeypatch.setattr(memory, "return_freed_memory", lambda: called.append(True) or True)
    trainer._set_up_torch(FinetuneConfig(), World())
    assert called == [True]


KERNEL_CACHES = """
import sys
import psutil
import torch
if sys.argv[1] == "fixed":
    from finetune.config import FinetuneConfig
    from finetune.distributed import World
    from finetune.trainer import _set_up_torch
    _set_up_torch(FinetuneConfig(), World())
torch.set_num_threads(1)
weights = [torch.randn(576, n, dtype=torch.bfloat16, requires_grad=True) for n in (576, 1536)]
rss = []
for length in range(200, 200 + 9 * 60, 9):  # 60 row lengths, each compiling its own kernels
    x = torch.randn(1, length, 576, dtype=torch.bfloat16, requires_grad=True)
    sum((x @ w).sum() for w in weights).backward()
    rss.append(psutil.Process().memory_info().rss)
print((rss[-1] - rss[30]) / 1e6)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="oneDNN's CPU kernels, resident set from /proc")
def test_new_row_lengths_stop_adding_memory_once_the_kernel_caches_are_full() -> None:
    import subprocess

    def growth(mode: str) -> float:
        done = subprocess.run([sys.executable, "-c", KERNEL_CACHES, mode], capture_output=True, text=True,
                              timeout=120, cwd=Path(__file__).parents[2])
        assert done.returncode == 0, done.stderr
        return float(done.stdout)  # MB the resident set grew over the last 30 lengths

    unbounded, bounded = growth("default"), growth("fixed")
    assert bounded < unbounded / 2, (bounded, unbounded)


def test_kernel_cache_bounds_are_set_unless_the_user_set_them(monkeypatch) -> None:
    from finetune.memory import KERNEL_CACHE_CAPACITY, bound_kernel_caches

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "7")
    bound_kernel_caches()
    import os

    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == KERNEL_CACHE_CAPACITY
    assert os.environ["LRU_CACHE_CAPACITY"] == "7"


def test_the_peak_can_start_again_so_each_curve_size_reports_its_own() -> None:
    from finetune.memory import peak_rss_bytes, reset_peak_rss

    block = b"x" * 400_000_000  # written, so every page is resident
    high = peak_rss_bytes()
    del block
    if not reset_peak_rss():
        pytest.skip("this kernel keeps the peak resident memory (no /proc/self/clear_refs)")
    assert peak_rss_bytes() < high - 300_000_000
