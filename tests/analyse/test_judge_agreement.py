"""`evals judge-agreement`: a rubric judge against people's labels (kappa, confusion, disagreements) and against
itself across repeats, through `evals run` with the judge behind the stand-in HTTP API."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from evals.analyse.judge_agreement import krippendorff_alpha
from evals.cli import app
from tests.standin_server import StandinServer, last_user_message

PEOPLE = [5, 4, 2, 1, 3, 5, 2, 4]
JUDGE = [5, 4, 3, 1, 3, 4, 1, 4]  # its first verdict on each example
AGAIN = [5, 4, 2, 1, 3, 5, 1, 4]  # its second (seed 1): examples 2 and 5 change by one point


def judge(body: dict) -> str:
    i = int(re.search(r"<answer>\nquestion (\d+)\n</answer>", last_user_message(body))[1])
    score = (JUDGE if body.get("seed") is None else AGAIN)[i]
    return json.dumps({"reasoning": f"graded {i}", "score": score})


def task_folder(tmp_path: Path, people: list) -> Path:
    folder = tmp_path / "judged"
    folder.mkdir(exist_ok=True)
    (folder / "task.yaml").write_text(yaml.safe_dump({
        "name": "judged", "dataset": {"golden": "golden.jsonl", "fields": ["q"], "human": "people"},
        "prompt": {"user": "{{ q }}"}, "models": ["fake:echo"], "judge_repeats": 2,
        "metrics": [{"name": "rubric_judge", "id": "quality", "rubric": "Be good.", "judge": "openai:gpt-4o-mini"}],
    }))
    (folder / "golden.jsonl").write_text("".join(
        json.dumps({"id": f"e{i}", "q": f"question {i}", "reference": "x", "people": p}) + "\n"
        for i, p in enumerate(people)))
    return folder


def quadratic_kappa(confusion: np.ndarray) -> float:
    """Cohen's weighted kappa by its definition: 1 - sum(w * observed) / sum(w * expected), w = (i - j)^2."""
    k = len(confusion)
    w = np.array([[(i - j) ** 2 for j in range(k)] for i in range(k)], float)
    observed = confusion / confusion.sum()
    expected = np.outer(observed.sum(1), observed.sum(0))
    return 1 - (w * observed).sum() / (w * expected).sum()


def test_judge_agreement_with_people_and_with_itself(tmp_path: Path, monkeypatch) -> None:
    folder, store = task_folder(tmp_path, PEOPLE), tmp_path / "runs.db"
    with StandinServer(judge) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        ran = CliRunner().invoke(app, ["run", str(folder), "--store", str(store), "--no-progress", "--no-cache"])
        assert ran.exit_code == 0, ran.output
        assert server.counts.received == 16  # two verdicts per example
    out = CliRunner().invoke(app, ["judge-agreement", str(folder), "--store", str(store), "--json"])
    assert out.exit_code == 0, out.output
    [r] = json.loads(out.stdout)["judges"]
    # the judge's label is its two verdicts averaged, rounded: e2 (3, 2) -> 3 and e5 (4, 5) -> 5
    assert (r["metric"], r["n"], r["agree"], r["weighted"]) == ("quality", 8, 6, True)
    confusion = [[1, 0, 0, 0, 0], [1, 0, 1, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 2, 0], [0, 0, 0, 0, 2]]
    assert r["labels"] == [1, 2, 3, 4, 5] and r["confusion"] == confusion
    assert r["kappa"] == pytest.approx(quadratic_kappa(np.array(confusion)))
    assert r["kappa_ci"][0] < r["kappa"] < r["kappa_ci"][1]
    assert [(d["example_id"], d["human"], d["judge"]) for d in r["disagreements"]] == [("e2", 2, 3), ("e6", 2, 1)]
    units = [[a, b] for a, b in zip(JUDGE, AGAIN)]
    assert r["self_consistency"] == pytest.approx(krippendorff_alpha(units, numeric=True)) and r["repeats"] == 2
    table = CliRunner().invoke(app, ["judge-agreement", str(folder), "--store", str(store)], terminal_width=200)
    assert "6/8 (75%" in table.output and "alpha" in table.output and "where they disagree most" in table.output


def test_krippendorff_alpha_by_hand() -> None:
    # values 1, 2, 3, 3: observed (1-2)^2 * 2 / 4 = 0.5; expected 22 / 12 (every ordered pair of the four)
    assert krippendorff_alpha([[1, 2], [3, 3]], numeric=True) == pytest.approx(1 - 0.5 / (22 / 12))
    assert krippendorff_alpha([[1, 1], [2, 2]], numeric=True) == 1.0
    # nominal: units (pass, fail), (pass, pass): observed 2/4, expected 2*3/(4*3) = 0.5 -> alpha 0
    assert krippendorff_alpha([["pass", "fail"], ["pass", "pass"]], numeric=False) == pytest.approx(1 - 0.5 / 0.5)


def test_labels_outside_the_judges_scale_name_file_line_and_field(tmp_path: Path, monkeypatch) -> None:
    folder, store = task_folder(tmp_path, [5, 7, 2]), tmp_path / "runs.db"
    with StandinServer(judge) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        assert CliRunner().invoke(app, ["run", str(folder), "--store", str(store), "--no-cache"]).exit_code == 0
    out = CliRunner().invoke(app, ["judge-agreement", str(folder), "--store", str(store)])
    assert out.exit_code == 2
    assert "golden.jsonl:2 field 'people'" in out.output and "whole number from 1 to 5, not 7" in out.output
    (folder / "task.yaml").write_text((folder / "task.yaml").read_text().replace("  human: people\n", ""))
    missing = CliRunner().invoke(app, ["judge-agreement", str(folder), "--store", str(store)])
    assert missing.exit_code == 2 and "dataset.human" in missing.output


@pytest.mark.parametrize("shipped", [False, True])
def test_the_verdict_warns_when_a_judge_that_decides_matches_disagrees_with_people(tmp_path: Path, monkeypatch,
                                                                                   shipped: bool) -> None:
    """Also when the runs' manifests point at a task folder shipped with the store (its golden set has no labels,
    its metric file writes a marker on import): the labels are those the manifest names, and nothing is imported."""
    from evals.run.store import Store
    from tests.cli.test_cli_stored_runs import point_manifests_at, shipped_task

    # people say the opposite of the judge's first verdict on every example
    folder, store, marker = task_folder(tmp_path, [6 - j for j in JUDGE]), tmp_path / "runs.db", tmp_path / "MARKER"
    (folder / "task.yaml").write_text((folder / "task.yaml").read_text() + "pass: {quality: 0.5}\n")
    with StandinServer(judge) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        for _ in range(2):
            assert CliRunner().invoke(app, ["run", str(folder), "--store", str(store), "--no-progress"]).exit_code == 0
    a, b = (r.id for r in reversed(Store(store).list_runs()))
    if shipped:
        point_manifests_at(store, shipped_task(tmp_path / "artifact", marker))
    out = CliRunner().invoke(app, ["compare", a, b, "--store", str(store), "--json"])
    assert out.exit_code == 0, out.output
    reasons = " ".join(json.loads(out.stdout)["verdict"]["reasons"])
    assert "Warning: judge metric 'quality' agrees with people only at kappa" in reasons
    assert f"in run {a}" in reasons and "it decides matches" in reasons
    assert not marker.exists()


def test_a_baseline_against_several_candidates_reads_the_labels_file_once(tmp_path: Path, monkeypatch) -> None:
    """Each verdict carries the judge's warning, from the labels its run's manifest names: one file, read once."""
    import evals.analyse.decide as decide
    from evals.analyse.decide import compare_with_baseline
    from evals.run.store import Store

    folder, store = task_folder(tmp_path, [6 - j for j in JUDGE]), tmp_path / "runs.db"
    (folder / "task.yaml").write_text((folder / "task.yaml").read_text() + "pass: {quality: 0.5}\n")
    with StandinServer(judge) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        for _ in range(3):
            assert CliRunner().invoke(app, ["run", str(folder), "--store", str(store), "--no-progress"]).exit_code == 0
    a, b, c = (r.id for r in reversed(Store(store).list_runs()))
    reads: list[Path] = []

    def counted(path: Path, id_field: str, field: str) -> list:
        reads.append(path)
        return human_labels(path, id_field, field)

    human_labels = decide.human_labels
    monkeypatch.setattr(decide, "human_labels", counted)
    compared = compare_with_baseline(a, [(b, None), (c, None)], Store(store))
    for (_, verdict, source), run in zip(compared, (b, c), strict=True):
        reasons = " ".join(verdict.reasons)
        assert "agrees with people only at kappa" in reasons and f"in run {a}" in reasons and f"in run {run}" in reasons
        assert "as recorded in run" in source
    assert reads == [folder / "golden.jsonl"]


def test_no_run_with_a_judge_is_a_one_line_error(tmp_path: Path) -> None:
    folder = task_folder(tmp_path, PEOPLE)
    out = CliRunner().invoke(app, ["judge-agreement", str(folder), "--store", str(tmp_path / "empty.db")])
    assert out.exit_code == 2 and "no completed run of task 'judged'" in out.output and "Traceback" not in out.output


def test_the_viewers_labels_and_judge_agreement_share_one_kappa_and_wilson_interval() -> None:
    """People say right on 5 of 10 answers; the verdict passes 4 of those and 2 of the other 5: 7/10 agree,
    chance agreement (5 x 6 + 5 x 4) / 100 = 0.5, so kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4."""
    import pandas as pd
    from statsmodels.stats.inter_rater import cohens_kappa

    from evals.analyse.agreement import agreement as viewer_agreement
    from evals.analyse.judge_agreement import agreement as judge_agreement
    from evals.analyse.rates import format_rate, wilson_interval

    people = [True] * 5 + [False] * 5
    verdict = [True, True, True, True, False, True, True, False, False, False]
    ids = [f"ex{i}" for i in range(10)]
    rows = [{"label": "right" if p else "wrong", "passed": v, "scores": {"j": float(v)}}
            for p, v in zip(people, verdict, strict=True)]
    viewer = {a.verdict: a for a in viewer_agreement(rows, {"j": 1.0})}
    frame = pd.DataFrame({"example_id": ids, "scores": [{"j": {"value": float(v)}} for v in verdict]})
    judged = judge_agreement(frame, dict(zip(ids, ("pass" if p else "fail" for p in people), strict=True)), "j",
                             {"scale": "pass_fail"})
    oracle = cohens_kappa(np.array([[4, 1], [2, 3]]))
    for found in (viewer["match"], viewer["j"]):
        assert found.kappa == pytest.approx(0.4) and found.agree_text == format_rate(7, 10)
        assert found.kappa_ci == pytest.approx((oracle.kappa_low, oracle.kappa_upp))
        assert (found.kappa, found.kappa_ci) == (judged.kappa, judged.kappa_ci)
    assert judged.agree == 7 and judged.agree_ci == wilson_interval(7, 10)
