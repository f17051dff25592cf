"""`evals distill` against the stand-in teacher and judge: filters and the reasons for each rejection,
decontamination, the provenance manifest, label quality against the inputs' references (counted by hand),
the budget, and a stopped distill continued by the same command without asking twice."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from evals.cli import app
from tests.conftest import QA_TASK, qa_rows
from tests.standin_server import StandinServer, last_user_message

# What the teacher answers for each input (its question "train question N"), and which inputs the judge marks 2/5.
ANSWERS = {0: '{"labels": ["a"]}', 1: '{"labels": ["a"]}', 2: "sorry, I cannot", 3: '{"labels": ["b"]}',
           4: '{"labels": ["a"]}', 5: '{"labels": ["a"]}', 6: '{"labels": ["b"]}', 7: '{"labels": ["a"]}',
           8: '{"labels": ["a"]}', 9: '{"labels": ["b"]}'}
POOR = {4, 6}


def answer(body: dict) -> str:
    text = last_user_message(body)
    if body["model"] == "gpt-4o":  # the judge: its prompt holds the input
        number = int(text.split("train question ")[1].split()[0])
        return json.dumps({"reasoning": "looked at it", "score": 2 if number in POOR else 5})
    return ANSWERS[int(text.removeprefix("train question "))]


def input_rows() -> list[dict]:
    rows = [{"id": f"t{i}", "question": f"train question {i}", "reference": {"labels": ["a"]}} for i in range(10)]
    rows[7]["assert"] = [{"type": "contains", "value": "zzz"}]  # its own check, which the answer fails
    rows.insert(3, {"id": "leak", "question": "  QUESTION   3 ", "reference": {"labels": ["l0"]}})  # a golden input
    return rows


@pytest.fixture
def setup(tmp_path: Path):
    with StandinServer(answer) as server:
        folder = tmp_path / "task"
        folder.mkdir()
        models = [{"spec": "openai:gpt-4o-mini", "base_url": server.base_url, "max_tokens": 20, "concurrency": 4},
                  {"spec": "openai:gpt-4o", "base_url": server.base_url, "max_tokens": 40}]
        spec = {**QA_TASK, "dataset": {**QA_TASK["dataset"], "checks": "assert"}, "models": models}
        (folder / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        (folder / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in qa_rows(6)))
        (folder / "inputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in input_rows()))
        yield folder, server, tmp_path


def distill(folder: Path, tmp_path: Path, *extra: str):
    args = ["distill", str(folder), "--teacher", "openai:gpt-4o-mini", "--inputs", str(folder / "inputs.jsonl"),
            "--filter", "json_valid", "--judge", "openai:gpt-4o", "--min-score", "4", "--out",
            str(tmp_path / "out.jsonl"), "--store", str(tmp_path / "s.db"), "--no-progress", *extra]
    return CliRunner().invoke(app, args)


def test_filters_decontamination_provenance_and_label_quality(setup) -> None:
    folder, server, tmp_path = setup
    result = distill(folder, tmp_path)
    assert result.exit_code == 0, result.output
    kept = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in kept] == ["t0", "t1", "t3", "t5", "t8", "t9"]
    assert kept[2] == {"id": "t3", "question": "train question 3", "reference": {"labels": ["b"]}}  # parsed JSON
    assert server.counts.completed_by_prompt["  QUESTION   3 "] == 0  # the golden input was never sent

    m = json.loads((tmp_path / "out.manifest.json").read_text())
    by_id = {r["id"]: r for r in m["rejections"]}
    assert by_id["leak"] == {"id": "leak", "line": 4, "reason": "overlaps the golden set",
                             "detail": "golden ex003 (same after normalising whitespace and case)"}
    assert by_id["t2"]["reason"] == "filter.json_valid failed" and "JSON" in by_id["t2"]["detail"]
    assert by_id["t4"]["reason"] == by_id["t6"]["reason"] == "filter.judge failed"
    assert by_id["t7"]["reason"] == "checks failed"
    assert m["counts"] == {"inputs": 11, "overlap_dropped": 1, "to_label": 10, "labelled": 10, "pending": 0,
                           "kept": 6, "rejected": 5, "rejected_by_reason": {
                               "filter.judge failed": 2, "overlaps the golden set": 1, "filter.json_valid failed": 1,
                               "checks failed": 1}}
    assert m["teacher"]["spec"] == "openai:gpt-4o-mini" and m["teacher"]["model_versions"] == ["gpt-4o-mini-2024-07-18"]
    prompt = {"system": "Answer with JSON.", "user": "{{ question }}", "few_shot": [], "max_chars": 1_000_000}
    assert m["teacher"]["prompt_sha256"] == hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()
    assert [f["id"] for f in m["filters"]] == ["filter.json_valid", "filter.judge", "checks"]
    assert m["filters"][1]["threshold"] == 0.75  # 4 on 1-5
    usage = m["usage"]
    assert usage["teacher"]["calls"] == 10 and usage["judge"]["calls"] == 10
    # the stand-in counts words as tokens; gpt-4o-mini bills $0.15 / $0.60 per million
    assert usage["teacher"]["output_tokens"] == sum(len(a.split()) for a in ANSWERS.values())
    teacher_cost = (usage["teacher"]["input_tokens"] * 0.15 + usage["teacher"]["output_tokens"] * 0.60) / 1e6
    assert usage["teacher"]["cost_usd"] == pytest.approx(teacher_cost)
    assert usage["total_cost_usd"] == pytest.approx(teacher_cost + usage["judge"]["cost_usd"]) and usage["judge"]["cost_usd"] > 0

    # By hand: the labels match the references ({"labels": ["a"]}) for t0 t1 t4 t5 t7 t8; t2 is not JSON.
    quality = m["label_quality"]
    assert (quality["labelled"]["matches"], quality["labelled"]["n"]) == (6, 10)
    assert (quality["kept"]["matches"], quality["kept"]["n"]) == (4, 6)  # t0 t1 t5 t8 of the kept six
    z, p, n = 1.959964, 0.6, 10
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert quality["labelled"]["ci95"] == pytest.approx([centre - half, centre + half], abs=1e-4)
    assert "all labelled 6/10 (60%, 95% CI 31-83%); kept 4/6" in result.stdout


def test_a_budget_stops_it_and_the_same_command_continues_without_asking_twice(setup) -> None:
    folder, server, tmp_path = setup
    stopped = distill(folder, tmp_path, "--budget", "0.008", "--concurrency", "1")
    assert stopped.exit_code == 0, stopped.output
    m = json.loads((tmp_path / "out.manifest.json").read_text())
    assert m["run"]["status"] == "budget-stopped" and 0 < m["counts"]["pending"] < 10
    assert m["usage"]["total_cost_usd"] <= 0.008
    assert f"input(s) not labelled yet" in stopped.stderr and "with a larger --budget" in stopped.stderr
    run_id = m["run"]["id"]

    finished = distill(folder, tmp_path)  # the answer whose judge the budget refused comes from the cache
    assert finished.exit_code == 0, finished.output
    assert f"continuing run {run_id} (budget-stopped)" in finished.stderr
    m = json.loads((tmp_path / "out.manifest.json").read_text())
    assert m["run"] == {"id": run_id, "status": "completed"} and m["counts"]["kept"] == 6
    teacher = [p for p in server.counts.completed_by_prompt if p.startswith("train question")]
    assert len(teacher) == 10 and all(server.counts.completed_by_prompt[p] == 1 for p in teacher)

    before = server.counts.completed
    again = distill(folder, tmp_path, "--no-cache")  # a finished distill: rewritten from the store, no call
    assert again.exit_code == 0 and server.counts.completed == before


def test_bad_inputs_and_reference_filters_are_refused_before_any_call(setup) -> None:
    folder, server, tmp_path = setup
    lines = (folder / "inputs.jsonl").read_text().splitlines()
    lines[2] = json.dumps({"id": "t9x", "reference": {"labels": ["a"]}})
    (folder / "inputs.jsonl").write_text("\n".join(lines) + "\n")
    result = distill(folder, tmp_path)
    assert result.exit_code == 2 and f"inputs.jsonl:3 field 'question': missing or empty" in result.stderr
    assert "Traceback" not in result.output and server.counts.received == 0

    (folder / "inputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in input_rows()))
    refused = CliRunner().invoke(app, ["distill", str(folder), "--teacher", "openai:gpt-4o-mini", "--inputs",
                                       str(folder / "inputs.jsonl"), "--filter", "labels_f1"])
    assert refused.exit_code == 2 and "compares the answer with a reference" in refused.stderr
    unknown = CliRunner().invoke(app, ["distill", str(folder), "--teacher", "openai:gpt-4o-mini", "--inputs",
                                       str(folder / "inputs.jsonl"), "--filter", "json_vald"])
    assert unknown.exit_code == 2 and "did you mean 'json_valid'" in unknown.stderr.lower()
    assert server.counts.received == 0


def test_the_teacher_is_asked_with_the_prompt_of_the_entry_named(setup) -> None:
    folder, server, tmp_path = setup
    spec = yaml.safe_load((folder / "task.yaml").read_text())
    spec["models"].append({"spec": "fake:student", "system": "Reply with labels only.", "few_shot": False})
    (folder / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = distill(folder, tmp_path, "--prompt-of", "fake:student", "--n", "2")
    assert result.exit_code == 0, result.output
    asked = [r.body for r in server.requests if r.body.get("model") == "gpt-4o-mini"]
    assert len(asked) == 2 and all(b["messages"][0] == {"role": "system", "content": "Reply with labels only."}
                                   for b in asked)
    m = json.loads((tmp_path / "out.manifest.json").read_text())
    prompt = {"system": "Reply with labels only.", "user": "{{ question }}", "few_shot": [], "max_chars": 1_000_000}
    assert m["teacher"]["prompt_sha256"] == hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()
    assert m["counts"]["to_label"] == 2
