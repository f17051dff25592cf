"""`evals finetune` on a tiny random model: the loss falls, resume keeps the step count, the
decontamination check fires, the adapter changes what the local provider answers, the manifest is
complete."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from evals.cli import app
from evals.data.tasks import load_task
from evals.errors import EvalsError
from evals.providers import create_provider
from evals.types import GenerateParams, Message, ModelConfig, ModelSpec
from tests.conftest import QA_TASK, qa_rows

pytest.importorskip("peft")
sys.path.insert(0, str(Path(__file__).parents[1]))
from finetune.checkpoint import Progress  # noqa: E402
from finetune.config import FinetuneConfig, load_config  # noqa: E402
from finetune.data import Example, length_grouped_batches  # noqa: E402
from finetune.loss import batch_loss, shared_prefix_len  # noqa: E402
from finetune.trainer import TrainingInterrupted, adapter_dir, train, validation_steps  # noqa: E402
from tests.tiny_model import build_tiny_model  # noqa: E402


def train_rows(n: int, start: int = 100) -> list[dict]:
    return [{"id": f"tr{i:03d}", "question": f"question {i}", "reference": {"labels": [f"l{i % 3}"]}}
            for i in range(start, start + n)]


def write_task(folder: Path, train: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = {**QA_TASK, "dataset": {**QA_TASK["dataset"], "train": "train.jsonl"}}
    (folder / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (folder / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in qa_rows(6)))
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    return folder


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory) -> Path:
    return write_task(tmp_path_factory.mktemp("ft") / "qa", train_rows(30))


def settings(tiny_dir: Path, **kw) -> FinetuneConfig:
    base = dict(base=f"local:{tiny_dir}", rank=8, alpha=16, dropout=0.0, learning_rate=3e-2, epochs=3,
                batch_size=4, grad_accum=2, val_fraction=0.2, evals_per_epoch=1, patience=3, dtype="float32",
                target_modules=["q_proj", "v_proj", "up_proj"])
    return FinetuneConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(tiny_dir, task_dir, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("adapters") / "qa"
    manifest = train(load_task(str(task_dir)), settings(tiny_dir), out, console=None)
    return out, manifest


def test_training_lowers_the_validation_loss(trained) -> None:
    _, manifest = trained
    losses = [v["val_loss"] for v in manifest["validations"]]
    assert manifest["validations"][0]["step"] == 0  # the untrained model's loss comes first
    assert len(losses) == 1 + 3  # before training, then once per epoch
    assert manifest["best"]["val_loss"] == min(losses) < 0.6 * losses[0]
    assert manifest["epochs"][-1]["train_loss"] < manifest["epochs"][0]["train_loss"]


def test_manifest_names_everything_that_shaped_the_adapter(trained, tiny_dir) -> None:
    out, manifest = trained
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["base"]["spec"] == f"local:{tiny_dir}" and len(manifest["base"]["sha256"]) == 64
    assert len(manifest["data"]["train_hash"]) == 64
    assert (manifest["data"]["train_examples"], manifest["data"]["val_examples"]) == (24, 6)
    assert manifest["config"]["rank"] == 8 and manifest["config"]["target_modules"] == ["q_proj", "v_proj", "up_proj"]
    assert manifest["packages"]["peft"] and manifest["packages"]["torch"] and "commit" in manifest["git"]
    assert [e["epoch"] for e in manifest["epochs"]] == [1, 2, 3]
    assert manifest["steps"] == {"done": 9, "planned": 9}  # 24 examples / (4 x 2) per step x 3 epochs
    # 24 examples a pass: every prompt and answer token counted, padding not
    assert manifest["tokens"] % 3 == 0 and manifest["tokens"] > 24 * 3 * 10
    assert manifest["wall_seconds"] > 0 and manifest["tokens_per_s"] > 0
    assert manifest["model_spec"] == f"local:{tiny_dir}+lora:{out}"
    assert not (out / "checkpoint").exists() and (out / "adapter_config.json").is_file()


async def test_adapter_loads_through_the_local_provider_and_changes_its_output(trained, tiny_dir) -> None:
    out, manifest = trained
    chat = [Message("system", "Answer with JSON."), Message("user", "question 7")]
    params = GenerateParams(max_tokens=12)
    base = await create_provider(ModelConfig(spec=ModelSpec("local", str(tiny_dir)))).generate(chat, params)
    tuned = await create_provider(ModelConfig(spec=ModelSpec.parse(manifest["model_spec"]))).generate(chat, params)
    assert tuned.text != base.text


def test_interrupted_training_resumes_with_the_same_steps_and_weights(tiny_dir, task_dir, trained, tmp_path) -> None:
    import torch
    from safetensors.torch import load_file

    _, full = trained
    out = tmp_path / "qa"

    def stop_at_5(progress: Progress) -> None:
        if progress.step == 5:
            raise KeyboardInterrupt

    task = load_task(str(task_dir))
    with pytest.raises(TrainingInterrupted, match="step 5/9"):
        train(task, settings(tiny_dir), out, on_step=stop_at_5)
    assert (out / "checkpoint" / "state.pt").is_file()
    with pytest.raises(EvalsError, match="--resume"):  # not silently restarted
        train(task, settings(tiny_dir), out)
    with pytest.raises(EvalsError, match="different config"):
        train(task, settings(tiny_dir, learning_rate=5e-3), out, resume=True)
    # memory settings shape no weights: a machine with less memory resumes with leaner ones
    resumed = train(task, settings(tiny_dir, micro_batch=1, gradient_checkpointing=True), out, resume=True)
    assert resumed["steps"] == full["steps"]
    assert resumed["tokens"] == full["tokens"]
    assert [v["step"] for v in resumed["validations"]] == [v["step"] for v in full["validations"]]
    a = load_file(trained[0] / "adapter_model.safetensors")
    b = load_file(out / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_golden_inputs_in_the_training_data_stop_training(tiny_dir, tmp_path, monkeypatch) -> None:
    leaked = train_rows(10) + [{"id": "tr-leak", "question": "  QUESTION   3 ", "reference": {"labels": ["l0"]}},
                               {"id": "tr-copy", "question": "question 4", "reference": {"labels": ["l1"]}}]
    task_dir = write_task(tmp_path / "leaky", leaked)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["finetune", str(task_dir), "--base", f"local:{tiny_dir}", "--epochs", "1"])
    assert result.exit_code == 2
    assert "ex003 = train tr-leak (same after normalising whitespace and case)" in result.output
    assert "ex004 = train tr-copy (exact)" in result.output and "--allow-overlap" in result.output
    assert not (tmp_path / "finetune" / "adapters" / "leaky" / "adapter_config.json").exists()

    manifest = train(load_task(str(task_dir)), settings(tiny_dir, epochs=1), tmp_path / "out", allow_overlap=True)
    assert {o["golden"] for o in manifest["data"]["golden_overlap_allowed"]} == {"ex003", "ex004"}


def test_cli_trains_into_finetune_adapters_and_refuses_to_overwrite(tiny_dir, task_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["finetune", str(task_dir), "--base", f"local:{tiny_dir}", "--epochs", "1", "--batch-size", "8",
            "--target-modules", "q_proj,v_proj"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = Path("finetune/adapters/qa")
    assert f"local:{tiny_dir}+lora:finetune/adapters/qa" in result.output
    assert json.loads((out / "manifest.json").read_text())["config"]["target_modules"] == ["q_proj", "v_proj"]
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--force" in again.output
    assert CliRunner().invoke(app, [*args, "--force"]).exit_code == 0


def test_export_openai_writes_the_chats_the_task_sends(task_dir, tmp_path) -> None:
    path = tmp_path / "ft.jsonl"
    result = CliRunner().invoke(app, ["finetune", str(task_dir), "--export-openai", str(path)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 30
    first = lines[0]["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant"]
    assert first[1]["content"] == "question 100" and json.loads(first[2]["content"]) == {"labels": ["l1"]}


def test_bad_settings_name_the_file_line_and_field(tmp_path, task_dir) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("rank: 8\nlearning_rte: 0.001\n")
    with pytest.raises(EvalsError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}:2 field 'learning_rte'") and "did you mean 'learning_rate'" in str(e.value)
    path.write_text("rank: 0\n")
    with pytest.raises(EvalsError, match="field 'rank': must be at least 1"):
        load_config(path)
    result = CliRunner().invoke(app, ["finetune", str(task_dir), "--lr", "-1"])
    assert result.exit_code == 2 and "learning_rate" in result.output


def test_shared_prefix_loss_and_gradients_equal_full_rows(tiny_dir) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    from evals.providers.local import load_base_model, resolve_source

    model = get_peft_model(load_base_model(resolve_source(str(tiny_dir)), torch.float32),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    shared = list(range(5, 25))
    batch = [Example("a", tuple(shared + [30, 31]), (40, 41, 42)), Example("b", tuple(shared + [33]), (44, 45)),
             Example("c", tuple(shared + [34, 35, 36]), (49,))]
    assert shared_prefix_len(batch) == len(shared)
    fast = batch_loss(model, batch, pad_id=0)
    fast.total.backward()
    grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    model.zero_grad()
    slow = 0
    for e in batch:
        ids = torch.tensor([e.prompt + e.answer], device=model.device)
        logits = model(input_ids=ids).logits[0, len(e.prompt) - 1:-1]
        slow = slow + torch.nn.functional.cross_entropy(logits, torch.tensor(e.answer, device=model.device),
                                                        reduction="sum")
    slow.backward()
    assert fast.answer_tokens == 6 and fast.tokens == sum(len(e) for e in batch)
    assert torch.allclose(fast.total, slow, rtol=1e-5)
    for g, p in zip(grads, (p for p in model.parameters() if p.requires_grad)):
        assert (g - p.grad).abs().max() <= 1e-4 * p.grad.abs().max()


def test_length_grouped_batches_cover_every_example_once_with_little_padding() -> None:
    examples = [Example(str(i), tuple(range(1 + (i * 37) % 200)), (1,)) for i in range(400)]
    batches = length_grouped_batches(examples, 8, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(400))
    padded = sum(len(b) * max(len(examples[i]) for i in b) for b in batches)
    real = sum(len(e) for e in examples)
    assert padded / real < 1.1  # random batches of 8 would pad about 1.6x
    assert batches != length_grouped_batches(examples, 8, seed=2)


def test_shipped_recipes_load() -> None:
    recipes = sorted((Path(__file__).parents[2] / "finetune").glob("*.yaml"))
    assert recipes
    for path in recipes:
        assert load_config(path) != FinetuneConfig(), path  # each changes something


def test_validations_are_spread_over_each_epoch() -> None:
    assert validation_steps(51, 2) == {26, 51}
    assert validation_steps(51, 4) == {13, 26, 39, 51}
    assert validation_steps(3, 5) == {1, 2, 3}


def test_early_stopping_keeps_the_best_adapter(tiny_dir, task_dir, tmp_path) -> None:
    # a learning rate far too high, from the first step, makes the validation loss climb after the first steps
    manifest = train(load_task(str(task_dir)), settings(tiny_dir, learning_rate=1.0, warmup_ratio=0.0, epochs=6,
                                                        patience=2, evals_per_epoch=3), tmp_path / "qa")
    losses = [v["val_loss"] for v in manifest["validations"]]
    assert manifest["stopped_early"] and manifest["steps"]["done"] < manifest["steps"]["planned"]
    best = losses.index(min(losses))
    assert len(losses) == best + 1 + 2  # stopped after `patience` validations without a new best
    assert manifest["best"] == {"step": manifest["validations"][best]["step"], "val_loss": min(losses)}


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../x", "", "-x"])
def test_adapter_names_stay_inside_finetune_adapters(name) -> None:
    with pytest.raises(EvalsError, match="plain folder name"):
        adapter_dir(name)
    assert adapter_dir("resume-feedback_v2.1") == Path("finetune/adapters/resume-feedback_v2.1")


def test_overlap_is_found_from_the_prompt_even_without_declared_fields(tiny_dir, tmp_path) -> None:
    from evals.data.golden import load_samples
    from finetune.data import find_overlap, load_train

    task_dir = write_task(tmp_path / "nofields", train_rows(5) + [{"id": "tr-x", "question": "question 2",
                                                                   "reference": {"labels": ["l2"]}}])
    spec = yaml.safe_load((task_dir / "task.yaml").read_text())
    del spec["dataset"]["fields"]
    (task_dir / "task.yaml").write_text(yaml.safe_dump(spec))
    task = load_task(str(task_dir))
    found = find_overlap(task, load_train(task), load_samples(task))
    assert [(o.golden_id, o.train_id) for o in found] == [("ex002", "tr-x")]


def test_a_failed_retrain_leaves_the_existing_adapter(trained, tiny_dir, tmp_path, monkeypatch) -> None:
    import shutil

    out = tmp_path / "qa"
    shutil.copytree(trained[0], out)
    task_dir = write_task(tmp_path / "leaky2", train_rows(5) + [{"id": "tr-l", "question": "question 1",
                                                                 "reference": {"labels": ["l1"]}}])
    with pytest.raises(EvalsError, match="also appear"):
        train(load_task(str(task_dir)), settings(tiny_dir), out, force=True)
    assert (out / "adapter_model.safetensors").is_file() and (out / "manifest.json").is_file()


def test_resume_without_a_checkpoint_and_a_non_local_base_are_user_errors(task_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["finetune", str(task_dir), "--resume"])
    assert result.exit_code == 2 and "nothing to resume" in result.output
    result = CliRunner().invoke(app, ["finetune", str(task_dir), "--base", "openai:gpt-4o-mini"])
    assert result.exit_code == 2 and "must be a local model" in result.output


def test_finetune_in_a_pipe_prints_plain_progress_lines_while_it_trains(tiny_dir, task_dir, tmp_path) -> None:
    from tests.run.test_progress import env_for, stream

    args = ["finetune", str(task_dir), "--base", f"local:{tiny_dir}", "--epochs", "3", "--batch-size", "2",
            "--target-modules", "q_proj,v_proj", "--name", "piped"]
    code, lines, ended = stream(args, tmp_path, env_for(tmp_path))
    assert code == 0, "".join(t for _, t in lines)
    steps = [(at, t) for at, t in lines if re.search(r"Z training: step \d+/\d+ ", t)]
    assert len(steps) >= 5, "".join(t for _, t in lines)
    done = [int(re.search(r"step (\d+)/", t)[1]) for _, t in steps]
    assert done == sorted(done) and done[-1] == int(re.search(r"step \d+/(\d+)", steps[-1][1])[1])
    assert ended - steps[0][0] > 0.3  # the first lines came while training went on
    assert any(" tok/s eta " in t for _, t in steps) and any(" validated eta " in t for _, t in steps)
    assert all(re.search(r"epoch \d/3 loss (\S+) val ", t) for _, t in steps)
    assert not any("\x1b" in t or "\r" in t for _, t in lines)


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch) -> None:
    import torch

    from evals.errors import StorageError
    from finetune.checkpoint import save_atomically

    path = tmp_path / "state.pt"
    save_atomically({"step": 1}, path)

    def full(obj, f):
        open(f, "wb").write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(StorageError, match="the previous checkpoint is intact") as e:
        save_atomically({"step": 2}, path)
    assert "No space left on device" in str(e.value) and "--resume" in str(e.value)
    monkeypatch.undo()
    assert torch.load(path) == {"step": 1} and not (tmp_path / "state.pt.part").exists()
