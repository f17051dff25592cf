"""`evals finetune TASK --curve` on the tiny random model: nested subsets, each scored on the golden set through
the run path, a fitted curve with its report, resume at the untrained size (and inside it, from its checkpoint),
sizes larger than the data refused, and `compare`/`decide` quoting the curve for a fine-tune of that base."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from evals.cli import app
from tests.conftest import QA_TASK, qa_rows

pytest.importorskip("peft")
sys.path.insert(0, str(Path(__file__).parents[1]))
from finetune.config import FinetuneConfig  # noqa: E402
from finetune.curve import nested_subsets  # noqa: E402
from tests.tiny_model import build_tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


def write_task(folder: Path, tiny_dir: Path) -> Path:
    folder.mkdir(parents=True)
    spec = {**QA_TASK, "dataset": {**QA_TASK["dataset"], "train": "train.jsonl"},
            "models": [{"spec": "fake:scripted"},  # the fine-tune's entry: its prompt settings apply to every size
                       {"spec": f"local:{tiny_dir}+lora:finetune/adapters/qa", "max_tokens": 8, "few_shot": False}],
            "decision": {"baseline": "fake:scripted", "candidate": f"local:{tiny_dir}+lora:finetune/adapters/qa",
                         "self_hosted": {"gpu_hourly_usd": 2.0}}}
    (folder / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (folder / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in qa_rows(6)))
    train = [{"id": f"tr{i:03d}", "question": f"question {i}", "reference": {"labels": [f"l{i % 3}"]}}
             for i in range(100, 130)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    return folder


def curve(task: Path, tiny_dir: Path, sizes: str, store: Path):
    return CliRunner().invoke(app, ["finetune", str(task), "--base", f"local:{tiny_dir}", "--curve", sizes,
                                    "--epochs", "1", "--batch-size", "4", "--target-modules", "q_proj,v_proj",
                                    "--dtype", "float32", "--store", str(store), "--progress", "none"])


def test_the_line_to_continue_a_curve_repeats_every_flag_given(monkeypatch) -> None:
    from evals.cli.app import same_command

    monkeypatch.setattr(sys, "argv", ["/x/evals", "finetune", "rf", "--curve", "25,50", "--epochs", "1", "--name",
                                      "my curve"])
    assert same_command("finetune", "fallback") == "evals finetune rf --curve 25,50 --epochs 1 --name 'my curve'"
    assert same_command("optimize", "fallback") == "fallback"  # another command's line is not repeated


def test_nested_subsets_share_one_order_and_one_validation_slice() -> None:
    from evals.types import Sample

    samples = [Sample(f"s{i}", {"q": i}, "r") for i in range(50)]
    order, val = nested_subsets(samples, FinetuneConfig(seed=3))
    assert len(val) == 5 and not {s.id for s in val} & {s.id for s in order}
    assert [s.id for s in order][:10] != [f"s{i}" for i in range(10)]  # shuffled, by the seed
    again, val2 = nested_subsets(samples, FinetuneConfig(seed=3))
    assert again == order and val2 == val  # so a size's first N are the same whenever it is trained


def test_curve_trains_scores_fits_and_resumes_at_the_next_size(tiny_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    task = write_task(tmp_path / "qa", tiny_dir)
    store = tmp_path / "s.db"
    assert CliRunner().invoke(app, ["run", str(task), "-m", "fake:scripted", "--store", str(store),
                                    "--no-progress"]).exit_code == 0  # the baseline the curve aims at

    too_big = curve(task, tiny_dir, "4,30", store)
    assert too_big.exit_code == 2 and "size 30 is more than the 27 training examples" in too_big.stderr

    first = curve(task, tiny_dir, "4,8", store)
    assert first.exit_code == 0, first.output
    folder = Path("finetune/curves/qa")
    record = json.loads((folder / "curve.json").read_text())
    assert [p["size"] for p in record["points"]] == [4, 8] and record["fit"] is None
    assert "needs at least 3 sizes, and 2 are measured" in first.stdout
    from evals.providers.local import load_model

    assert load_model.cache_info().currsize == 0  # each size's scored model let go before the next size trains
    stamp = (folder / "n4" / "manifest.json").stat().st_mtime

    # the third size is cut short at its first step, then the same command finishes it from its checkpoint
    import finetune.curve as curve_module

    real_train = curve_module.train
    calls = []

    def stop_once(*args, **kwargs):
        calls.append(kwargs["resume"])
        if len(calls) == 1:
            def stop(progress):
                raise KeyboardInterrupt
            kwargs["on_step"] = stop
        return real_train(*args, **kwargs)

    monkeypatch.setattr(curve_module, "train", stop_once)
    cut = curve(task, tiny_dir, "4,8,all", store)
    assert cut.exit_code == 130 and "evals finetune" in cut.stderr and "--curve 4,8,all" in cut.stderr
    finished = curve(task, tiny_dir, "4,8,all", store)
    assert finished.exit_code == 0, finished.output
    assert calls == [False, True]  # sizes 4 and 8 not trained again; 27 resumed from its checkpoint
    assert (folder / "n4" / "manifest.json").stat().st_mtime == stamp

    record = json.loads((folder / "curve.json").read_text())
    points = record["points"]
    assert [p["size"] for p in points] == [4, 8, 27]
    manifests = [json.loads((folder / f"n{n}" / "manifest.json").read_text()) for n in (4, 8, 27)]
    assert [m["data"]["train_examples"] for m in manifests] == [4, 8, 27]
    assert len({tuple(m["data"]["val_ids"]) for m in manifests}) == 1  # one validation slice for every size
    assert manifests[2]["steps"]["done"] == manifests[2]["steps"]["planned"]
    for p, m in zip(points, manifests, strict=True):
        assert p["n"] == 6 and len(p["passed"]) == 6 and sum(p["passed"]) == p["matches"]
        assert p["model_spec"] == f"local:{tiny_dir}+lora:finetune/curves/qa/n{p['size']}"
        assert p["train"]["cost_usd"] == pytest.approx(m["wall_seconds"] / 3600 * 2.0)
        assert p["train"]["tokens"] == m["tokens"] and "metrics" in p
    fitted = record["fit"]
    assert fitted["extrapolation"] and fitted["largest"] == 27 and len(fitted["bootstrap_params"]) == 1000
    assert set(fitted["targets"]) == {"baseline", "baseline + min_gap"}
    assert fitted["baseline"]["model"] == "fake:scripted"
    assert "Answer (extrapolation)" in finished.stdout and "Expected match rate at 2x the data (54 examples)" in finished.stdout
    assert (folder / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64," in (folder / "curve.html").read_text()

    # compare (and decide, which builds on it) quotes the curve for a fine-tune of the same task and base model
    base_run, cand_run = fitted["baseline"]["run_id"], points[-1]["run_id"]
    compared = CliRunner().invoke(app, ["compare", base_run, cand_run, "--store", str(store), "--json"])
    assert compared.exit_code == 0, compared.output
    reasons = json.loads(compared.stdout)["verdict"]["reasons"]
    line = next(r for r in reasons if "learning curve" in r)
    assert "extrapolated from the learning curve in finetune/curves/qa" in line
    page = tmp_path / "compare.html"
    assert CliRunner().invoke(app, ["compare", base_run, cand_run, "--store", str(store), "--html",
                                    str(page)]).exit_code == 0
    assert "Learning curve (finetune/curves/qa/curve.json)" in page.read_text()  # its figure, under the verdict


def test_a_hosted_curve_trains_each_size_through_the_api_with_its_cost(tmp_path, monkeypatch) -> None:
    """--on openai against the stand-in's fine-tuning API: a job per size on nested subsets, each model scored on
    the golden set, the cost per size from trained tokens; a second command trains nothing again."""
    import re

    from tests.finetune.test_hosted import train_rows, write_task as write_hosted_task
    from tests.standin_server import StandinServer, last_user_message
    from tests.conftest import answer_for

    def answer(body: dict) -> str:  # a fine-tune on N examples answers questions below N / 3 right (golden: 0-39)
        i = int(re.search(r"\d+", last_user_message(body)).group())
        found = re.search(r":qa-n(\d+):", body["model"])
        return answer_for(i) if found and i < int(found[1]) / 3 * 4 else '{"labels": []}'

    with StandinServer(answer) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-hosted-0123456789")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.chdir(tmp_path)
        task = write_hosted_task(tmp_path / "qa", train_rows(30))
        settings = tmp_path / "hosted.yaml"
        settings.write_text("poll_s: 0.01\nepochs: 1\n")
        args = ["finetune", str(task), "--on", "openai", "--config", str(settings), "--curve", "10,20,all",
                "--store", str(tmp_path / "s.db"), "--progress", "none"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        record = json.loads(Path("finetune/curves/qa/curve.json").read_text())
        assert record["identity"]["base"] == "openai:gpt-4o-mini-2024-07-18"
        points = record["points"]
        assert [p["size"] for p in points] == [10, 20, 27] and server.finetunes.counts.jobs_created == 3
        # by hand: the model of N examples matches golden questions 0 .. 4N/3 - 1 of 40
        assert [p["matches"] for p in points] == [14, 27, 36]
        for p in points:
            hosted = json.loads(Path(f"finetune/hosted/qa-n{p['size']}/manifest.json").read_text())
            assert hosted["data"]["train_examples"] == p["size"] and p["model_spec"] == f"openai:ft@qa-n{p['size']}"
            assert p["train"]["tokens"] == hosted["trained_tokens"]
            assert p["train"]["cost_usd"] == pytest.approx(hosted["trained_tokens"] * 3.00 / 1e6)  # gpt-4o-mini
        ids = [json.loads(Path(f"finetune/hosted/qa-n{n}/manifest.json").read_text())["data"]["train_ids"]
               for n in (10, 20, 27)]
        assert ids[0] == ids[1][:10] and ids[1] == ids[2][:20]  # nested
        assert record["fit"] is not None and "Answer (extrapolation)" in result.stdout

        again = CliRunner().invoke(app, args)
        assert again.exit_code == 0 and server.finetunes.counts.jobs_created == 3

        # a hosted fine-tune of the same task and base is quoted the curve's answer
        prompted = CliRunner().invoke(app, ["run", str(task), "-m", "openai:gpt-4o-mini", "--store",
                                            str(tmp_path / "s.db"), "--no-progress", "--json"])
        base_run = json.loads(prompted.stdout)[0]["run_id"]
        compared = CliRunner().invoke(app, ["compare", base_run, points[-1]["run_id"], "--store",
                                            str(tmp_path / "s.db"), "--json"])
        reasons = json.loads(compared.stdout)["verdict"]["reasons"]
        assert any("extrapolated from the learning curve in finetune/curves/qa" in r for r in reasons), reasons
