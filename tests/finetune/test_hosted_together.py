"""`evals finetune --on together` through the real together SDK against a stand-in of Together AI's fine-tuning
endpoints (tests/standin_together.py): uploads by 302 -> PUT and by 409, a job run end to end with its cost from
its total_price, interrupted and re-attached without a second upload or job, failed and cancelled jobs; then its
model run through the together: provider."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from evals.cli import app
from evals.data.tasks import load_task
from evals.errors import EvalsError
from finetune import hosted
from finetune.hosted import run_hosted
from finetune.hosted_together import TogetherConfig
from tests.finetune.test_hosted import N_GOLDEN, answer, train_rows, write_task
from tests.standin_server import StandinServer
from tests.standin_together import NANODOLLARS_PER_TOKEN, TogetherFineTunes

FAST = TogetherConfig(poll_s=0.01, epochs=2)
KEY = "tg-test-key-0123456789abcdef"


@pytest.fixture
def server(monkeypatch, tmp_path):
    with StandinServer(answer, finetunes=TogetherFineTunes()) as s:
        monkeypatch.setenv("TOGETHER_API_KEY", KEY)
        monkeypatch.setenv("TOGETHER_BASE_URL", s.url)  # the server's root, as the together SDK takes it
        monkeypatch.chdir(tmp_path)
        yield s


@pytest.fixture
def task_dir(tmp_path) -> Path:
    return write_task(tmp_path / "qa", train_rows(), models=["openai:gpt-4o-mini", "together:ft@qa"])


def manifest() -> dict:
    return json.loads(Path("finetune/hosted/qa/manifest.json").read_text())


def config_file(tmp_path: Path, **settings) -> str:
    path = tmp_path / "together.yaml"
    path.write_text(yaml.safe_dump({"poll_s": 0.01, **settings}))
    return str(path)


def finetune(task_dir: Path, *args: str):
    return CliRunner().invoke(app, ["finetune", str(task_dir), "--on", "together", "--name", "qa", *args])


def words(path: str) -> int:
    return sum(len(m["content"].split()) for line in Path(path).read_text().splitlines()
               for m in json.loads(line)["messages"])


def test_a_together_fine_tune_runs_end_to_end_through_the_sdk(server, task_dir, tmp_path) -> None:
    result = finetune(task_dir, "--config", config_file(tmp_path), "--epochs", "2", "--progress", "plain")
    assert result.exit_code == 0, result.output
    m, ft = manifest(), server.finetunes
    # each file asked for once, sent once by PUT after the 302, and preprocessed; one job
    assert (ft.counts.upload_requests, ft.counts.puts, ft.counts.conflicts, ft.counts.jobs_created) == (2, 2, 0, 1)
    job = ft.jobs[m["job"]["id"]]
    body = job.body
    assert body["model"] == "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference" and body["n_epochs"] == 2
    assert body["training_type"]["type"] == "Lora" and body["n_evals"] == 1 and body["random_seed"] == 20261123
    sent = {role: ft.files[body[f"{role}_file"]]["content"].decode() for role in ("training", "validation")}
    assert [len(t.splitlines()) for t in sent.values()] == [27, 3]
    assert all(f"question {i}\"" not in text for text in sent.values() for i in range(N_GOLDEN))
    # the trained model and the job's own price: tokens processed x the stand-in's rate, in nanodollars
    tokens = words(m["data"]["files"]["training"]["path"]) * 2 + words(m["data"]["files"]["validation"]["path"])
    assert m["trained_tokens"] == job.token_count == tokens
    assert m["cost"]["total_price_nanodollars"] == tokens * NANODOLLARS_PER_TOKEN
    assert m["cost"]["training_cost_usd"] == pytest.approx(tokens * NANODOLLARS_PER_TOKEN / 1e9)
    assert m["fine_tuned_model"] == job.output_name and m["model_spec"] == "together:ft@qa"
    assert m["provider"] == "together" and m["server"] == server.url
    assert m["metrics"][-1]["step"] == m["metrics"][-1]["total_steps"] == 3
    for line in ("job ft-", ": queued", ": running", "fine-tuning: step 3/3 (100%)", ": completed"):
        assert line in result.stderr, line
    assert f"{tokens:,} trained tokens, training ${tokens * 5e-7:,.4f} (the job's total_price" in result.stdout
    assert "together:ft@qa" in result.stdout
    assert KEY not in json.dumps(m)  # never written
    again = finetune(task_dir, "--config", config_file(tmp_path))
    assert again.exit_code == 2 and "already holds its model" in again.stderr and ft.counts.jobs_created == 1


def _raise(job) -> None:
    raise KeyboardInterrupt


def test_ctrl_c_leaves_the_job_running_and_resume_reattaches_without_a_second_upload_or_job(
        server, task_dir, tmp_path, monkeypatch) -> None:
    task = load_task(str(task_dir))
    with pytest.raises(KeyboardInterrupt):
        run_hosted(task, FAST, "qa", on_poll=_raise, progress_mode="none")
    m, ft = manifest(), server.finetunes
    assert m["job"]["status"] == "queued" and ft.jobs[m["job"]["id"]].status == "queued"
    assert (ft.counts.puts, ft.counts.jobs_created, ft.counts.cancels) == (2, 1, 0)
    run = CliRunner().invoke(app, ["run", str(task_dir), "-m", "together:ft@qa"])
    assert run.exit_code == 2 and "--on together --name qa --resume` waits for it" in run.stderr
    original = hosted.run_hosted
    monkeypatch.setattr(hosted, "run_hosted", lambda *a, **k: original(*a, **k, on_poll=_raise))
    stopped = finetune(task_dir, "--config", config_file(tmp_path), "--resume")
    assert stopped.exit_code == 130 and "keeps running at Together AI" in stopped.stderr
    assert stopped.stderr.replace("\n", "").endswith(f"evals finetune {task_dir} --on together --resume")
    monkeypatch.setattr(hosted, "run_hosted", original)
    resumed = finetune(task_dir, "--config", config_file(tmp_path), "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert manifest()["fine_tuned_model"] == ft.jobs[m["job"]["id"]].output_name
    assert (ft.counts.upload_requests, ft.counts.puts, ft.counts.jobs_created, ft.counts.cancels) == (2, 2, 1, 0)


def test_a_job_created_just_before_a_crash_is_found_by_its_suffix(server, task_dir, monkeypatch) -> None:
    task = load_task(str(task_dir))
    with pytest.raises(KeyboardInterrupt):
        run_hosted(task, FAST, "qa", on_poll=_raise, progress_mode="none")
    path = Path("finetune/hosted/qa/manifest.json")
    m = manifest()
    job = server.finetunes.jobs[m["job"]["id"]]
    m["submission"], m["job"] = job.body["suffix"].rsplit("-", 1)[1], None  # the crash: the job never kept
    path.write_text(json.dumps(m))
    run_hosted(task, FAST, "qa", progress_mode="none")
    assert manifest()["job"]["id"] == job.id and server.finetunes.counts.jobs_created == 1


def test_the_same_data_is_never_sent_twice_the_server_answers_409_with_its_file(server, task_dir) -> None:
    task = load_task(str(task_dir))
    run_hosted(task, FAST, "qa", progress_mode="none")
    ft = server.finetunes
    run_hosted(task, FAST, "qa", force=True, progress_mode="none")  # the ids kept by content: nothing asked
    assert (ft.counts.upload_requests, ft.counts.puts, ft.counts.jobs_created) == (2, 2, 2)
    first = manifest()["data"]["files"]
    Path("finetune/hosted/qa/manifest.json").unlink()  # the manifest lost: the checksum finds the files (409)
    run_hosted(task, FAST, "qa", progress_mode="none")
    assert (ft.counts.upload_requests, ft.counts.puts, ft.counts.conflicts) == (4, 2, 2)
    assert {r: f["id"] for r, f in manifest()["data"]["files"].items()} == {r: f["id"] for r, f in first.items()}


def test_a_failed_job_and_a_cancelled_one_are_clear_errors(server, task_dir, tmp_path) -> None:
    server.finetunes.fail_running = True
    result = finetune(task_dir, "--config", config_file(tmp_path))
    assert result.exit_code == 2 and "ended in error: Training failed: CUDA out of memory" in result.stderr
    assert manifest()["job"]["status"] == "error" and manifest()["fine_tuned_model"] is None
    server.finetunes.fail_running = False
    task = load_task(str(task_dir))
    with pytest.raises(KeyboardInterrupt):
        run_hosted(task, FAST, "qa", force=True, on_poll=_raise, progress_mode="none")
    import together

    together.Together(base_url=server.url).fine_tuning.cancel(manifest()["job"]["id"])  # on the dashboard, say
    result = finetune(task_dir, "--config", config_file(tmp_path), "--resume")
    assert result.exit_code == 2 and "was cancelled" in result.stderr and "--on together --force" in result.stderr
    assert manifest()["job"]["status"] == "cancelled"


def test_a_bad_line_and_a_base_together_cannot_tune_are_refused_in_the_apis_words(server, tmp_path) -> None:
    rows = train_rows()
    rows[7]["reference"] = "   "
    task_dir = write_task(tmp_path / "bad", rows)
    result = finetune(task_dir, "--config", config_file(tmp_path))
    assert result.exit_code == 2, result.output
    line = next(i for i, (sample_id, _) in enumerate(manifest()["data"]["train_ids"], 1) if sample_id == "tr107")
    assert f"line {line} message 3 has empty content" in result.stderr
    assert f"is example 'tr107' of {task_dir}/train.jsonl:8" in result.stderr.replace("\n", "")
    refused = finetune(task_dir, "--config", config_file(tmp_path), "--base", "gpt-4o-mini", "--force")
    assert refused.exit_code == 2 and "Model gpt-4o-mini is not available for fine-tuning" in refused.stderr
    assert "Traceback" not in refused.output


def test_an_openai_fine_tune_of_the_same_name_is_not_overwritten(server, task_dir, tmp_path) -> None:
    Path("finetune/hosted/qa").mkdir(parents=True)
    Path("finetune/hosted/qa/manifest.json").write_text(json.dumps({"provider": "openai", "job": None}))
    with pytest.raises(EvalsError, match="holds a openai fine-tune, not a together one: give this one another --name"):
        run_hosted(load_task(str(task_dir)), FAST, "qa", progress_mode="none")


def test_no_key_is_one_line_and_exit_2(task_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    monkeypatch.delenv("TOGETHER_BASE_URL", raising=False)
    result = finetune(task_dir)
    assert result.exit_code == 2 and "TOGETHER_API_KEY is not set" in result.stderr
    assert "Traceback" not in result.output


def test_the_trained_model_runs_through_the_together_provider(server, task_dir) -> None:
    run_hosted(load_task(str(task_dir)), FAST, "qa", progress_mode="none")
    model = manifest()["fine_tuned_model"]
    result = CliRunner().invoke(app, ["run", str(task_dir), "-m", "together:ft@qa"])
    assert result.exit_code == 0, result.output
    chats = [r for r in server.requests if r.path == "/v1/chat/completions"]
    assert len(chats) == N_GOLDEN and {r.body["model"] for r in chats} == {model}
    assert {r.headers["authorization"] for r in chats} == {f"Bearer {KEY}"}
    assert "max_tokens" in chats[0].body  # a compatible server's parameter, not max_completion_tokens


@pytest.mark.skipif(not os.environ.get("TOGETHER_API_KEY"), reason="live: needs TOGETHER_API_KEY")
def test_live_model_limits_of_the_default_base() -> None:
    """Against Together itself: the default base is one it fine-tunes (no job is created, nothing is billed)."""
    import together

    limits = together.Together().fine_tuning.model_limits(model_name=TogetherConfig().base)
    assert limits.lora_training.max_rank >= 1


# ---- one decide over four paths: prompted API, OpenAI fine-tune, Together fine-tune, self-hosted LoRA ----------

GIVEN = {"input_per_mtok": 0.20, "output_per_mtok": 0.40}  # the user's Together rates (none is shipped)
FOUR_PATHS = {
    "models": ["openai:gpt-4o-mini", {"spec": "openai:ft@qa", "few_shot": False},
               {"spec": "together:ft@tg", "few_shot": False, "price": GIVEN}, "openai:my-vllm"],
    "decision": {"baseline": "openai:gpt-4o-mini", "candidate": ["openai:ft@qa", "together:ft@tg", "openai:my-vllm"],
                 "volume": 1000,
                 "self_hosted": {"gpu_hourly_usd": 1.0, "calls_per_hour": 100, "training_cost_usd": 12.0,
                                 "models": ["openai:my-vllm"], "trained": ["openai:my-vllm"]}},
}


@pytest.fixture
def two_vendors(monkeypatch, tmp_path):
    """OpenAI's stand-in (its fine-tuning jobs) and Together's (its own), each answering its models' calls."""
    from tests.finetune.test_hosted import FAST as OPENAI_FAST

    with StandinServer(answer) as openai_server, StandinServer(lambda body: answer({**body, "model": "ft:"}),
                                                               finetunes=TogetherFineTunes()) as together_server:
        openai_server.answer = lambda body: answer(body) if body["model"] != "my-vllm" else answer({**body, "model": "x"})
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-hosted-0123456789")
        monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
        monkeypatch.setenv("TOGETHER_API_KEY", KEY)
        monkeypatch.setenv("TOGETHER_BASE_URL", together_server.url)
        monkeypatch.chdir(tmp_path)
        yield openai_server, together_server, OPENAI_FAST


def four_paths(tmp_path: Path, fast, **decision) -> tuple[Path, float]:
    spec = {**FOUR_PATHS, "decision": {**FOUR_PATHS["decision"], **decision}}
    task_dir = write_task(tmp_path / "qa", train_rows(), **spec)
    task = load_task(str(task_dir))
    run_hosted(task, fast, "qa", progress_mode="none")
    run_hosted(task, FAST, "tg", progress_mode="none")
    tg = json.loads(Path("finetune/hosted/tg/manifest.json").read_text())
    return task_dir, tg["cost"]["training_cost_usd"]


def decide(task_dir: Path) -> dict:
    result = CliRunner().invoke(app, ["decide", str(task_dir), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_one_decide_weighs_api_an_openai_and_a_together_fine_tune_and_self_hosting(two_vendors, tmp_path) -> None:
    _, together_server, openai_fast = two_vendors
    task_dir, training = four_paths(tmp_path, openai_fast)
    report = decide(task_dir)
    rows = {r["model"]: r for r in report["choice"]["rows"]}
    assert {m: r["hosting"] for m, r in rows.items()} == {
        "openai:gpt-4o-mini": "api", "openai:ft@qa": "api", "together:ft@tg": "managed (serverless)",
        "openai:my-vllm": "self-hosted"}
    # serverless: every call's 5 prompt and 2 answer tokens at the given rates, plus the job's price over 12 months
    per_call = (5 * 0.20 + 2 * 0.40) / 1e6
    assert rows["together:ft@tg"]["per_call_usd"] == pytest.approx(per_call)
    assert rows["together:ft@tg"]["training_monthly_usd"] == pytest.approx(training / 12)
    assert rows["together:ft@tg"]["monthly_usd"] == pytest.approx(1000 * per_call + training / 12)
    assert rows["together:ft@tg"]["matches"].startswith("40/40")
    tg_model = json.loads(Path("finetune/hosted/tg/manifest.json").read_text())["fine_tuned_model"]
    assert {r.body["model"] for r in together_server.requests if r.path == "/v1/chat/completions"} == {tg_model}
    pair = next(c for c in report["comparisons"] if c["b"]["summary"]["model"] == "together:ft@tg")
    basis = " ".join(pair["verdict"]["assumptions"])
    assert "managed (serverless): 5 input" in basis and "$0.2 input, $0.4 output per million tokens" in basis
    assert f"training ${training:,.2f} once (the job's own total_price" in basis


def test_a_together_fine_tune_on_a_dedicated_endpoint_is_paid_by_the_hour(two_vendors, tmp_path) -> None:
    _, _, openai_fast = two_vendors
    task_dir, training = four_paths(tmp_path, openai_fast, managed={
        "dedicated": ["together:ft@tg"], "endpoint_hourly_usd": 2.0, "calls_per_hour": 1000, "hardware": "1x H100"})
    report = decide(task_dir)
    row = next(r for r in report["choice"]["rows"] if r["model"] == "together:ft@tg")
    assert row["hosting"] == "managed (dedicated)"
    assert row["per_call_usd"] == pytest.approx(2.0 / (1000 * 0.7))
    assert row["gpu_minimum_monthly_usd"] == pytest.approx(2.0 * 730)  # up all month (the default)
    assert row["monthly_usd"] == pytest.approx(2.0 * 730 + training / 12)
    pair = next(c for c in report["comparisons"] if c["b"]["summary"]["model"] == "together:ft@tg")
    reasons = " ".join(pair["verdict"]["reasons"])
    assert "The baseline is cheaper at every volume (no break-even; baseline api, candidate managed (dedicated))" in reasons
    basis = " ".join(pair["verdict"]["assumptions"])
    assert "1,000 calls/hour given (decision.managed.calls_per_hour, on 1x H100)" in basis
    assert "endpoint_hourly_usd 2.0 (given)" in basis and "min_hours_per_month 730 (default)" in basis


def test_in_house_only_excludes_a_managed_side(two_vendors, tmp_path) -> None:
    _, _, openai_fast = two_vendors
    task_dir, _ = four_paths(tmp_path, openai_fast, in_house_only=True)
    rows = {r["model"]: r for r in decide(task_dir)["choice"]["rows"]}
    assert "is served by a managed host" in rows["together:ft@tg"]["excluded"]
