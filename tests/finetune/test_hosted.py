"""`evals finetune --on openai` through the official SDK against the stand-in's files and fine-tuning-jobs
endpoints: a job run end to end, interrupted and re-attached without a second upload or job, every way it
can be refused; then its model evaluated and decided on with hand-computed training and per-token costs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from evals.cli import app
from evals.data.tasks import load_task
from evals.errors import EvalsError
from finetune import hosted
from finetune.hosted import HostedConfig, check_base, run_hosted
from tests.conftest import QA_TASK, answer_for, qa_rows
from tests.standin_server import StandinServer, last_user_message

N_GOLDEN, N_TRAIN = 40, 30


def answer(body: dict) -> str:
    """The fine-tune (ft:...) answers every question right; the prompted base only the even ones."""
    i = int(re.search(r"\d+", last_user_message(body)).group())
    right = body["model"].startswith("ft:") or i % 2 == 0
    return answer_for(i) if right else '{"labels": []}'


def train_rows(n: int = N_TRAIN) -> list[dict]:
    return [{"id": f"tr{i:03d}", "question": f"question {i}", "reference": {"labels": [f"l{i % 3}"]}}
            for i in range(100, 100 + n)]


def write_task(folder: Path, train: list[dict], **overrides) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = {**QA_TASK, "dataset": {**QA_TASK["dataset"], "train": "train.jsonl"},
            "models": ["openai:gpt-4o-mini", {"spec": "openai:ft@qa", "few_shot": False}], **overrides}
    (folder / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (folder / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in qa_rows(N_GOLDEN)))
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    return folder


@pytest.fixture
def server(monkeypatch, tmp_path):
    with StandinServer(answer) as s:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-hosted-0123456789")
        monkeypatch.setenv("OPENAI_BASE_URL", s.base_url)
        monkeypatch.chdir(tmp_path)  # finetune/hosted/ lands here
        yield s


@pytest.fixture
def task_dir(tmp_path) -> Path:
    return write_task(tmp_path / "qa", train_rows())


FAST = HostedConfig(poll_s=0.01, epochs=2)


def config_file(tmp_path: Path, **settings) -> str:
    path = tmp_path / "hosted.yaml"
    path.write_text(yaml.safe_dump({"poll_s": 0.01, **settings}))
    return str(path)


def manifest() -> dict:
    return json.loads(Path("finetune/hosted/qa/manifest.json").read_text())


def finetune(task_dir: Path, *args: str):
    return CliRunner().invoke(app, ["finetune", str(task_dir), "--on", "openai", *args])


def test_a_hosted_fine_tune_runs_end_to_end_through_the_sdk(server, task_dir, tmp_path) -> None:
    result = finetune(task_dir, "--config", config_file(tmp_path), "--epochs", "2", "--progress", "plain")
    assert result.exit_code == 0, result.output
    m = manifest()
    ft = server.finetunes
    assert (ft.counts.uploads, ft.counts.jobs_created) == (2, 1)
    job = ft.jobs[m["job"]["id"]]
    assert m["fine_tuned_model"] == job.fine_tuned_model and m["fine_tuned_model"].startswith(
        "ft:gpt-4o-mini-2024-07-18:standin-org:qa:")
    assert job.body["method"]["supervised"]["hyperparameters"] == {"n_epochs": 2}
    # the same chats and validation slice as the local fine-tune; the golden set never sent
    sent = {role: ft.files[job.body[f"{role}_file"]][1].decode() for role in ("training", "validation")}
    assert [len(t.splitlines()) for t in sent.values()] == [27, 3] == [m["data"]["train_examples"],
                                                                    m["data"]["val_examples"]]
    assert all(f"question {i}\"" not in text for text in sent.values() for i in range(N_GOLDEN))
    first = json.loads(sent["training"].splitlines()[0])["messages"]
    assert [x["role"] for x in first] == ["system", "user", "assistant"]
    # 27 chats of 7 words, 2 epochs: 378 trained tokens at $3.00 per million
    assert m["trained_tokens"] == 27 * 7 * 2 == 378
    assert m["cost"]["training_cost_usd"] == pytest.approx(378 * 3.00 / 1e6)
    assert m["metrics"][-1]["step"] == m["metrics"][-1]["total_steps"] == 54
    assert m["checkpoints"] and m["checkpoints"][0]["metrics"]["full_valid_loss"] > 0
    # progress: the job's status changes, its messages and its steps with losses
    for line in ("job ftjob-", ": queued", ": running", "fine-tuning: step 54/54 (100%) loss", "succeeded"):
        assert line in result.stderr, line
    assert "378 trained tokens, training $0.0011" in result.stdout and "openai:ft@qa" in result.stdout
    # a second start of the same fine-tune is refused, not a second job
    again = finetune(task_dir, "--config", config_file(tmp_path))
    assert again.exit_code == 2 and "already holds its model" in again.stderr and ft.counts.jobs_created == 1


def test_ctrl_c_leaves_the_job_running_and_resume_reattaches_without_a_second_upload_or_job(
        server, task_dir, tmp_path, monkeypatch) -> None:
    task = load_task(str(task_dir))

    def interrupt(job) -> None:
        if job.status == "queued":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_hosted(task, FAST, "qa", on_poll=interrupt, progress_mode="none")
    m = manifest()
    ft = server.finetunes
    assert m["job"]["status"] == "queued" and ft.jobs[m["job"]["id"]].status == "queued"  # still going
    assert m["fine_tuned_model"] is None and (ft.counts.uploads, ft.counts.jobs_created, ft.counts.cancels) == (2, 1, 0)
    # the model cannot be used yet: it is skipped with the way to finish it
    run = CliRunner().invoke(app, ["run", str(task_dir), "-m", "openai:ft@qa"])
    assert run.exit_code == 2 and "--resume` waits for it" in run.stderr
    # the CLI says how to re-attach (exit 130); the job is left running
    original = hosted.run_hosted
    monkeypatch.setattr(hosted, "run_hosted", lambda *a, **k: original(*a, **k, on_poll=_raise))
    stopped = finetune(task_dir, "--config", config_file(tmp_path), "--resume")
    assert stopped.exit_code == 130 and "evals finetune " in stopped.stderr and "--on openai --resume" in stopped.stderr
    monkeypatch.setattr(hosted, "run_hosted", original)
    resumed = finetune(task_dir, "--config", config_file(tmp_path), "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert manifest()["fine_tuned_model"] == ft.jobs[m["job"]["id"]].fine_tuned_model
    assert (ft.counts.uploads, ft.counts.jobs_created, ft.counts.cancels) == (2, 1, 0)


def _raise(job) -> None:
    raise KeyboardInterrupt


def test_the_same_data_is_never_uploaded_twice(server, task_dir) -> None:
    task = load_task(str(task_dir))
    run_hosted(task, FAST, "qa", progress_mode="none")
    ft = server.finetunes
    run_hosted(task, FAST, "qa", force=True, progress_mode="none")  # a new job on the same data
    assert (ft.counts.uploads, ft.counts.jobs_created) == (2, 2)
    Path("finetune/hosted/qa/manifest.json").unlink()  # uploaded, then the manifest lost: found by name
    run_hosted(task, FAST, "qa", progress_mode="none")
    assert (ft.counts.uploads, ft.counts.jobs_created) == (2, 3)
    run_hosted(task, FAST.replace(seed=7), "qa", force=True, progress_mode="none")  # another split: new files
    assert ft.counts.uploads == 4


def test_force_cancels_a_running_job_before_starting_another(server, task_dir) -> None:
    task = load_task(str(task_dir))
    with pytest.raises(KeyboardInterrupt):
        run_hosted(task, FAST, "qa", on_poll=_raise, progress_mode="none")
    first = manifest()["job"]["id"]
    with pytest.raises(EvalsError, match="--resume` re-attaches"):
        run_hosted(task, FAST, "qa", progress_mode="none")
    run_hosted(task, FAST, "qa", force=True, progress_mode="none")
    ft = server.finetunes
    assert ft.jobs[first].status == "cancelled" and manifest()["job"]["id"] != first and ft.counts.jobs_created == 2


def test_no_key_is_one_line_and_exit_2(task_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = finetune(task_dir)
    assert result.exit_code == 2 and "OPENAI_API_KEY is not set" in result.stderr
    assert "Traceback" not in result.output and not Path("finetune/hosted").exists()


def test_a_base_openai_cannot_fine_tune_is_refused(server, task_dir, tmp_path) -> None:
    with pytest.raises(EvalsError, match="OpenAI cannot fine-tune 'gpt-5-mini'.*gpt-4o-mini-2024-07-18"):
        check_base("gpt-5-mini", None)  # api.openai.com: known before any call
    check_base("gpt-4o-mini", None)  # the family names its snapshot
    # another server decides for itself: the API's 400, shown as it says it
    result = finetune(task_dir, "--config", config_file(tmp_path), "--base", "gpt-5-mini")
    assert result.exit_code == 2 and "gpt-5-mini is not available for fine-tuning" in result.stderr
    assert manifest()["job"] is None and server.finetunes.counts.jobs_created == 0
    assert "--rank: LoRA setting(s)" in finetune(task_dir, "--rank", "4").stderr
    for flag in (["--micro-batch", "2"], ["--no-gradient-checkpointing"], ["--memory-limit", "8"]):
        assert f"{flag[0].replace('--no-', '--')}: LoRA setting(s)" in finetune(task_dir, *flag).stderr


def test_a_training_file_the_api_rejects_names_the_line_and_the_example(server, tmp_path) -> None:
    rows = train_rows()
    rows[7]["reference"] = "   "  # an empty assistant answer: the API refuses the line
    task_dir = write_task(tmp_path / "bad", rows)
    result = finetune(task_dir, "--config", config_file(tmp_path), "--name", "qa")
    assert result.exit_code == 2
    m = manifest()
    line = next(i for i, (sample_id, _) in enumerate(m["data"]["train_ids"], 1) if sample_id == "tr107")
    assert f"Line {line}: message 3 has empty content" in result.stderr and "(invalid_training_file, training_file)" \
        in result.stderr
    assert f"is example 'tr107' of {task_dir}/train.jsonl:8" in result.stderr.replace("\n", "")
    assert m["job"]["status"] == "failed" and m["fine_tuned_model"] is None


def test_a_failed_or_cancelled_job_is_a_clear_error(server, task_dir, tmp_path) -> None:
    server.finetunes.fail_running = True
    result = finetune(task_dir, "--config", config_file(tmp_path))
    assert result.exit_code == 2 and "failed: The job failed due to an internal error." in result.stderr
    assert manifest()["job"]["status"] == "failed"
    server.finetunes.fail_running = False
    task = load_task(str(task_dir))
    with pytest.raises(KeyboardInterrupt):
        run_hosted(task, FAST, "qa", force=True, on_poll=_raise, progress_mode="none")
    import openai

    openai.OpenAI().fine_tuning.jobs.cancel(manifest()["job"]["id"])  # on the dashboard, say
    result = finetune(task_dir, "--config", config_file(tmp_path), "--resume")
    assert result.exit_code == 2 and "was cancelled" in result.stderr and "--force" in result.stderr


# ---- the fine-tune's model, evaluated and decided on beside the other two paths ---------------------

THREE_PATHS = {
    "models": ["openai:gpt-4o-mini", {"spec": "openai:ft@qa", "few_shot": False}, "openai:my-vllm"],
    "decision": {"baseline": "openai:gpt-4o-mini", "candidate": ["openai:ft@qa", "openai:my-vllm"], "volume": 1000,
                 "self_hosted": {"gpu_hourly_usd": 1.0, "calls_per_hour": 100, "training_cost_usd": 12.0,
                                 "models": ["openai:my-vllm"], "trained": ["openai:my-vllm"]}},
}


def decide(task_dir: Path) -> dict:
    result = CliRunner().invoke(app, ["decide", str(task_dir), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_hosted_model_is_evaluated_and_decided_on_with_its_training_and_token_costs(server, tmp_path) -> None:
    server.answer = lambda body: answer(body) if body["model"] != "my-vllm" else answer({**body, "model": "ft:"})
    task_dir = write_task(tmp_path / "qa", train_rows(), **THREE_PATHS)
    run_hosted(load_task(str(task_dir)), FAST, "qa", progress_mode="none")
    model = manifest()["fine_tuned_model"]
    report = decide(task_dir)
    sent = {r.body["model"] for r in server.requests if r.path == "/v1/chat/completions"}
    assert sent == {"gpt-4o-mini", model, "my-vllm"}  # ft@qa resolved to the job's model
    choice = report["choice"]
    assert choice["label"] == "openai:ft@qa is the cheapest option that clears the gap"
    rows = {r["model"]: r for r in choice["rows"]}
    # every call: 5 prompt tokens (system 3 words, question 2) and 2 answer tokens, as the stand-in counts
    assert rows["openai:gpt-4o-mini"]["per_call_usd"] == pytest.approx((5 * 0.15 + 2 * 0.60) / 1e6)
    assert rows["openai:ft@qa"]["per_call_usd"] == pytest.approx((5 * 0.30 + 2 * 1.20) / 1e6)  # fine-tuned rates
    training = 378 * 3.00 / 1e6 / 12  # trained tokens x training price, over the default 12 months
    assert rows["openai:ft@qa"]["training_monthly_usd"] == pytest.approx(training)
    assert rows["openai:ft@qa"]["monthly_usd"] == pytest.approx(1000 * 3.9e-6 + training)
    assert rows["openai:my-vllm"]["monthly_usd"] == pytest.approx(1000 * 1.0 / (100 * 0.7) + 12.0 / 12)
    assert rows["openai:gpt-4o-mini"]["matches"].startswith("20/40") and rows["openai:ft@qa"]["matches"].startswith("40/40")
    hosted_pair = next(c for c in report["comparisons"] if c["b"]["summary"]["model"] == "openai:ft@qa")
    basis = " ".join(hosted_pair["verdict"]["assumptions"])
    assert f"({model}, fine-tuned by job {manifest()['job']['id']})" in basis
    assert "training $0.00 once (378 trained tokens x $3 per million" in basis and "amortised over 12 months (default)" in basis
    # decided again: every run reused, nothing asked twice
    before = len(server.requests)
    assert decide(task_dir)["choice"]["label"] == choice["label"] and len(server.requests) == before


def test_when_no_candidate_clears_the_gap_the_prompted_model_ships(server, tmp_path) -> None:
    server.answer = lambda body: answer(body) if body["model"] == "gpt-4o-mini" else '{"labels": []}'
    task_dir = write_task(tmp_path / "qa", train_rows(), **THREE_PATHS)
    run_hosted(load_task(str(task_dir)), FAST, "qa", progress_mode="none")
    result = CliRunner().invoke(app, ["decide", str(task_dir), "--markdown", str(tmp_path / "paths.md")])
    assert result.exit_code == 0, result.output
    assert "Verdict: prompted openai:gpt-4o-mini: ship it" in result.stdout
    markdown = (tmp_path / "paths.md").read_text()
    assert "## Paths side by side" in markdown and "## candidate 1 openai:ft@qa: Verdict: no real quality gap" in markdown


def test_a_hand_edited_manifest_on_resume_is_one_line_naming_the_setting(server, task_dir, tmp_path) -> None:
    task = load_task(str(task_dir))
    with pytest.raises(KeyboardInterrupt):
        run_hosted(task, FAST, "qa", on_poll=_raise, progress_mode="none")
    path = Path("finetune/hosted/qa/manifest.json")
    m = json.loads(path.read_text())
    m["config"]["epochs"] = "three"
    path.write_text(json.dumps(m))
    result = finetune(task_dir, "--config", config_file(tmp_path), "--resume")
    assert result.exit_code == 2 and "manifest.json field 'config.epochs'" in result.stderr
    assert "Traceback" not in result.output
