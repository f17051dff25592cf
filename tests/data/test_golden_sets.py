"""The generated golden sets: reproducible byte for byte, decontaminated, and their task.yaml consistent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2] / "golden_sets"
GENERATED = {"invoice-extraction": "document", "release-notes": "commits"}  # task -> its input field


def rows(task: str, split: str) -> list[dict]:
    return [json.loads(line) for line in (ROOT / task / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


@pytest.mark.parametrize("task", sorted(GENERATED))
def test_generator_reproduces_the_committed_files(task: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / task / "generate.py"), "--out", str(tmp_path)],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for name in ("golden.jsonl", "train.jsonl"):
        assert (tmp_path / name).read_bytes() == (ROOT / task / name).read_bytes(), f"{task}/{name} differs"


@pytest.mark.parametrize("task", sorted(GENERATED))
def test_sizes_ids_and_no_golden_input_in_train(task: str) -> None:
    field = GENERATED[task]
    golden, train = rows(task, "golden"), rows(task, "train")
    assert 40 <= len(golden) <= 60 and len(train) >= 300
    for split in ("golden", "train"):
        assert (ROOT / task / f"{split}.jsonl").stat().st_size < 1_000_000
    ids = [r["id"] for r in golden + train]
    assert len(set(ids)) == len(ids)
    assert not {r[field] for r in golden} & {r[field] for r in train}
    assert not {normalise(r[field]) for r in golden} & {normalise(r[field]) for r in train}


@pytest.mark.parametrize("task", sorted(GENERATED))
def test_task_yaml_few_shots_come_from_train_and_pass_names_metrics(task: str) -> None:
    spec = yaml.safe_load((ROOT / task / "task.yaml").read_text(encoding="utf-8"))
    field = GENERATED[task]
    assert spec["dataset"]["fields"] == [field]
    train = {r[field]: r for r in rows(task, "train")}
    golden_inputs = {r[field] for r in rows(task, "golden")}
    assert len(spec["prompt"]["few_shot"]) == 2
    for shot in spec["prompt"]["few_shot"]:
        text = shot["fields"][field].rstrip("\n")
        assert text in train and text not in golden_inputs
        reference = train[text]["reference"]
        assert (json.loads(shot["answer"]) if isinstance(reference, dict) else shot["answer"].rstrip("\n")) == reference
    ids = [m.get("id", m["name"]) for m in spec["metrics"]]
    assert set(spec["pass"]) <= set(ids)
    assert [m["spec"] for m in spec["models"]] == ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "local:smollm2"]
    assert spec["decision"]["candidate"] == f"local:smollm2+lora:finetune/adapters/{task}"


def test_invoice_references_follow_the_answer_schema() -> None:
    schema = json.loads((ROOT / "invoice-extraction" / "schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for row in rows("invoice-extraction", "golden") + rows("invoice-extraction", "train"):
        validator.validate(row["reference"])
        ref = row["reference"]
        assert ref["total"] >= ref["subtotal"] - 1e-9 or "Discount" in row["document"] or "Promo" in row["document"]


def test_release_notes_references_leave_out_reverted_and_internal_changes() -> None:
    for row in rows("release-notes", "golden"):
        notes, commits = row["reference"], row["commits"]
        assert notes.startswith(f"## {row['project']} {row['version']}\n")
        assert notes.count("\n- ") == row["n_changes"]
        for bump in ("Bump ", "bump ", ".gitignore", "(#", "feat(", "[bug]"):
            assert bump not in notes
        assert f"Release: {row['version']} " in commits


@pytest.mark.parametrize("task", sorted(GENERATED))
def test_task_loads_with_its_samples(task: str) -> None:
    from evals.data.golden import load_samples
    from evals.data.tasks import load_task

    loaded = load_task(str(ROOT / task))
    assert len(load_samples(loaded)) == len(rows(task, "golden"))
    assert len(load_samples(loaded, "train")) == len(rows(task, "train"))
