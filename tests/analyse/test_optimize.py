"""`evals optimize` against the stand-in API, with a model whose answers depend on the prompt in known ways
(tests/triage_standin.py): right on billing tickets always, on the others only with a demo of their label or
the proposer's HINT in the system prompt."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from evals.cli import app
from evals.data.tasks import load_task
from evals.run.optimize.split import split_train
from tests.standin_server import StandinServer
from tests.triage_standin import HINT, SEED_SYSTEM, TriageModel, last_user_message, write_task

GOLDEN = 12  # 4 of each label: the seed matches the 4 billing tickets


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def triage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    folder = tmp_path / "triage"
    model = TriageModel(folder / "train.jsonl", folder / "golden.jsonl")
    with StandinServer(model) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)  # the proposer's server
        write_task(folder, server.base_url)
        yield folder, tmp_path / "s.db", server, model


def optimize(folder: Path, store: Path, *extra: object) -> dict:
    result = invoke("optimize", folder, "--store", store, "--no-progress", "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def expected_dev_rate(folder: Path, row: dict) -> float:
    """By the stand-in's rule: a dev ticket is right when its label is billing or among the demos' answers."""
    dev = split_train(load_task(str(folder)), seed=0).dev
    covered = {"billing"} | {s["answer"] for s in row["prompt"]["few_shot"]}
    return sum(s.reference in covered for s in dev) / len(dev)


def test_optimize_picks_the_cheapest_candidate_that_gets_every_label_and_scores_the_pair_once(triage) -> None:
    folder, store, server, _ = triage
    before = (folder / "task.yaml").read_text()
    out = optimize(folder, store)
    rows = {r["name"]: r for r in out["candidates"]}
    assert list(rows)[0] == "seed" and {r["family"] for r in rows.values()} == {"seed", "bootstrap", "random",
                                                                               "retrieve"}
    for row in rows.values():
        if row["family"] != "retrieve":
            assert row["rate"] == pytest.approx(expected_dev_rate(folder, row)), row["name"]
        else:  # the nearest tickets are of the same label, so every label is shown its own demos
            assert row["rate"] == 1.0, row["name"]
    assert all(s["answer"] == "billing" for r in rows.values() if r["family"] == "bootstrap"
               for s in r["prompt"]["few_shot"])  # what the seed answers right: the billing tickets
    best = [r for r in rows.values() if r["rate"] == 1.0]
    winner = rows[out["winner"]]
    assert winner["winner"] and winner["cost_per_call"] == min(r["cost_per_call"] for r in best)
    assert rows["seed"]["rate"] < 1 and not rows["seed"]["tied"]
    golden = out["golden"]
    assert golden["seed"]["matches"] == GOLDEN // 3 and golden["winner"]["matches"] == GOLDEN
    assert golden["paired"][0] == pytest.approx(8 / 12)
    assert out["monthly_added_usd"] == pytest.approx((winner["cost_per_call"] - rows["seed"]["cost_per_call"])
                                                     * 100_000)
    after = (folder / "task.yaml").read_text()
    assert after.startswith(before)  # the user's file, byte for byte, then the named prompt
    written = yaml.safe_load(after)["prompts"]["optimized"]
    assert written["system"] == SEED_SYSTEM and yaml.safe_load(after)["prompt"]["system"] == SEED_SYSTEM
    assert (written.get("few_shot") == [{"fields": s["fields"], "answer": s["answer"]}
                                         for s in winner["prompt"]["few_shot"]]
            or written.get("few_shot") == {"retrieve": winner["prompt"].get("retrieve", {}).get("k")})


def test_the_golden_set_is_read_only_after_the_search(triage, tmp_path: Path) -> None:
    folder, store, server, _ = triage
    first = optimize(folder, store, "--no-write")
    golden_tickets = {json.loads(line)["ticket"] for line in (folder / "golden.jsonl").read_text().splitlines()}
    asked = [last_user_message(r.body) for r in server.requests]
    touched = [i for i, text in enumerate(asked) if any(t in text for t in golden_tickets)]
    assert len(touched) == 2 * GOLDEN and touched[0] == len(asked) - 2 * GOLDEN  # only the final pair
    lines = [json.loads(line) for line in (folder / "golden.jsonl").read_text().splitlines()]
    (folder / "golden.jsonl").write_text("".join(json.dumps({**r, "reference": "poison"}) + "\n" for r in lines))
    second = optimize(folder, tmp_path / "other.db", "--no-write", "--no-cache")

    def decisions(out: dict) -> list:
        return [(r["name"], r["matches"], r["n"], r["tied"], r["winner"], r["prompt"]) for r in out["candidates"]]

    assert decisions(second) == decisions(first) and second["winner"] == first["winner"]
    assert second["golden"]["seed"]["matches"] == 0 != first["golden"]["seed"]["matches"]


def test_rewrites_from_the_proposer_win_when_they_carry_its_hint(triage) -> None:
    folder, store, server, model = triage
    out = optimize(folder, store, "--proposer", "openai:gpt-4o")
    rows = {r["name"]: r for r in out["candidates"]}
    assert model.proposals >= 1 and "rewrite-1" in rows
    assert HINT in rows["rewrite-1"]["prompt"]["system"] and rows["rewrite-1"]["rate"] == 1.0
    assert out["winner"] == "rewrite-1"  # as right as the demos, and the shortest prompt
    assert out["golden"]["winner"]["matches"] == GOLDEN
    assert HINT in yaml.safe_load((folder / "task.yaml").read_text())["prompts"]["optimized"]["system"]
    listed = invoke("optimizations", "--store", store, "--task", "triage")
    assert listed.exit_code == 0 and out["optimization"] in listed.stdout and "rewrite-1" in listed.stdout
    runs = json.loads(invoke("runs", "--store", store, "--task", "triage@optimize", "--json", "--limit", 100).stdout)
    assert {r["id"] for r in runs} >= {c["run_id"] for c in out["candidates"]}  # each candidate's dev run, stored


def test_without_a_usable_proposer_rewrites_are_skipped_with_one_line(triage) -> None:
    folder, store, *_ = triage
    result = invoke("optimize", folder, "--store", store, "--no-progress", "--proposer", "anthropic:claude-x",
                    "--max-calls", 40, "--limit", 2)
    assert result.exit_code == 0, result.output
    [line] = [x for x in result.stderr.splitlines() if "instruction rewrites" in x]
    assert "skipped, the proposer anthropic:claude-x cannot run here" in line


def test_max_calls_are_never_exceeded_and_a_budget_never_passed(triage, tmp_path: Path) -> None:
    folder, store, server, _ = triage
    out = optimize(folder, store, "--max-calls", 70, "--limit", 3, "--no-cache")
    assert server.counts.completed - 2 * 3 <= 70 and out["search_calls"] <= 70
    statuses = [r["status"] for r in out["candidates"]]
    assert statuses[0] == "scored" and "not scored: --max-calls reached" in statuses
    spent = lambda db: sqlite3.connect(db).execute("SELECT SUM(cost_usd) FROM results").fetchone()[0]  # noqa: E731
    full = spent(store)
    budget = full * 0.6
    result = invoke("optimize", folder, "--store", tmp_path / "b.db", "--no-progress", "--json", "--no-cache",
                    "--max-calls", 70, "--limit", 3, "--budget", budget)
    assert result.exit_code == 0, result.output
    assert spent(tmp_path / "b.db") <= budget and "budget is spent" in result.stderr
    stopped = json.loads(result.stdout)
    assert stopped["stopped"] == "budget" and stopped["golden"] is None  # nothing chosen from half a search


def test_a_stopped_optimisation_resumes_without_paying_twice(triage, tmp_path: Path) -> None:
    folder, store, server, _ = triage
    whole = optimize(folder, tmp_path / "whole.db", "--no-cache", "--no-write")
    calls_whole = server.counts.completed
    stopped = invoke("optimize", folder, "--store", store, "--no-progress", "--json", "--no-cache", "--no-write",
                     "--budget", 0.0015)
    assert stopped.exit_code == 0, stopped.output
    first = json.loads(stopped.stdout)
    assert any(r["status"] != "scored" for r in first["candidates"])
    resumed = optimize(folder, store, "--no-cache", "--no-write")
    assert resumed["resumed"] and resumed["optimization"] == first["optimization"]
    assert server.counts.completed - calls_whole == calls_whole  # both sessions together: one search's calls
    assert [r["matches"] for r in resumed["candidates"]] == [r["matches"] for r in whole["candidates"]]
    calls = server.counts.completed
    more = optimize(folder, store, "--no-cache", "--no-write", "--proposer", "openai:gpt-4o")
    assert more["optimization"] != resumed["optimization"]  # finished: a new one, reusing every evaluation
    assert [r["run_id"] for r in more["candidates"][:-1]] == [r["run_id"] for r in resumed["candidates"]]
    rewrites = sum(r["family"] == "rewrite" for r in more["candidates"])
    assert rewrites == 1 and server.counts.completed - calls == more["search_calls"] - resumed["search_calls"] \
        + 2 * GOLDEN  # only the rewrite's calls (and the proposer's) were new, then the golden pair


def test_golden_errors_leave_the_optimisation_open_and_the_rerun_asks_only_those(triage) -> None:
    folder, store, server, model = triage
    model.fail = " 500"  # the golden tickets are numbered 5000 and up
    args = ("--max-calls", 200, "--limit", 3, "--retries", 0)
    first = optimize(folder, store, *args)
    assert first["golden"]["seed"]["errors"] == 3 and not first["golden"]["seed"]["complete"]
    model.fail = ""
    before = server.counts.completed
    second = optimize(folder, store, *args)
    assert second["resumed"] and second["optimization"] == first["optimization"]
    assert second["golden"]["seed"]["matches"] == 1 and second["golden"]["winner"]["matches"] == 3
    assert server.counts.completed - before == 2 * 3  # the search was stored: only the golden pair was asked


def test_prompt_optimized_runs_the_variant_from_the_flag_and_from_a_model_entry(triage) -> None:
    folder, store, *_ = triage
    optimize(folder, store, "--max-calls", 200, "--limit", 3)
    plain = invoke("run", folder, "--store", store, "--no-progress", "--json")
    flagged = invoke("run", folder, "--store", store, "--no-progress", "--json", "--prompt", "optimized")
    assert json.loads(plain.stdout)[0]["matches"] == GOLDEN // 3
    assert json.loads(flagged.stdout)[0]["matches"] == GOLDEN
    spec = yaml.safe_load((folder / "task.yaml").read_text())
    spec["models"][0]["prompt"] = "optimized"
    (folder / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    entry = invoke("run", folder, "--store", store, "--no-progress", "--json")
    assert json.loads(entry.stdout)[0]["matches"] == GOLDEN
    unknown = invoke("run", folder, "--store", store, "--no-progress", "--prompt", "optimised")
    assert unknown.exit_code == 2 and "no prompt named 'optimised'" in unknown.stderr


@pytest.mark.parametrize("n_train, message", [(0, "has no training set"), (25, "too few for a 20-example dev part")])
def test_optimize_needs_a_training_set_and_says_so_in_one_line(triage, n_train: int, message: str) -> None:
    folder, store, server, _ = triage
    write_task(folder, server.base_url, n_train=max(n_train, 1))
    if n_train == 0:
        spec = yaml.safe_load((folder / "task.yaml").read_text())
        del spec["dataset"]["train"]
        (folder / "task.yaml").write_text(yaml.safe_dump(spec))
    else:
        write_task(folder, server.base_url, n_train=n_train)
    result = invoke("optimize", folder, "--store", store, "--no-progress")
    assert result.exit_code == 2 and message in result.stderr and "golden set" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and server.counts.completed == 0


def test_decide_says_which_prompt_each_side_ran_and_flags_a_fine_tune_against_an_unoptimised_prompt(triage) -> None:
    folder, store, server, _ = triage
    spec = yaml.safe_load((folder / "task.yaml").read_text())
    spec["models"].append({"spec": "openai:ft-triage", "base_url": server.base_url, "max_tokens": 8})
    spec["decision"] |= {"candidate": "openai:ft-triage",
                         "self_hosted": {"gpu_hourly_usd": 1.0, "models": ["openai:ft-triage"],
                                         "trained": ["openai:ft-triage"]}}
    (folder / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))

    def decide() -> dict:
        result = invoke("decide", folder, "--store", store, "--no-progress", "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["verdict"]

    before = decide()
    assert "never optimised" in before["headline"]
    assert "evals optimize triage -m openai:gpt-4o-mini" in before["headline"]
    assert "Prompts: the baseline ran with the task's prompt, never optimised" in " ".join(before["reasons"])
    out = optimize(folder, store, "--max-calls", 200, "--limit", 3)
    spec = yaml.safe_load((folder / "task.yaml").read_text())
    spec["models"][0]["prompt"] = "optimized"
    (folder / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    after = decide()
    assert "never optimised" not in after["headline"]
    line = next(r for r in after["reasons"] if r.startswith("Prompts:"))
    assert (f"the baseline ran with prompts.optimized, optimised by `evals optimize` {out['optimization']} on "
            f"{out['optimized_on']} (selected on train.jsonl: 40 search / 20 dev examples (seed 0); "
            f"{out['winner']} won)") in line
    assert "the candidate with the task's prompt, never optimised" in line
