"""Running, scoring and summarising a task with a light metric family imports none of the heavy libraries
(sklearn, statsmodels, scipy, datasets, nltk, rouge_score, pandas): each family runs `evals run` in a fresh process and
reads that process's sys.modules afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

HEAVY = ("sklearn", "statsmodels", "scipy", "datasets", "nltk", "rouge_score", "pandas")
ANSWER = json.dumps({"answer": "the cat sat", "n": 3, "labels": ["a"]})
REFERENCE = {"answer": "the cat sat", "n": 3, "labels": ["a"]}

FAMILIES = {  # metric entries of task.yaml, one task per family
    "exact": [{"name": "exact_match", "field": "answer"}, {"name": "includes", "text": "cat"}],
    "label": [{"name": "label", "field": "answer", "labels": ["the cat sat", "no"]}],
    "sets": [{"name": "set_f1", "field": "labels"}],
    "overlap": [{"name": "rouge_l", "field": "answer", "use_stemmer": False}, {"name": "rouge_n", "n": 2}],
    "overlap_stemmed": [{"name": "rouge_l", "field": "answer"}],  # the default: Porter stemming, without nltk
    "regex_json": [{"name": "regex", "pattern": "cat"}, {"name": "json_valid"}, {"name": "json_fields"},
                   {"name": "contains_json"}],
    "numeric": [{"name": "numeric_within", "field": "n", "tolerance": 0.5}],
    "edit": [{"name": "levenshtein", "max_distance": 3}],
    "checks": [{"name": "exact_match", "field": "answer"}],  # with golden-line checks below
}

SCRIPT = """
import sys
from evals.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit as e:
    if e.code:
        raise
print("HEAVY=" + ",".join(sorted({m.split(".")[0] for m in sys.modules} & set(%r))))
""" % (HEAVY,)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_light_metric_family_runs_without_heavy_imports(family, tmp_path: Path):
    folder = tmp_path / "task"
    folder.mkdir()
    task = {"name": f"light-{family}", "dataset": {"golden": "golden.jsonl", "fields": ["question"]},
            "prompt": {"user": "{{ question }}"}, "metrics": FAMILIES[family],
            "models": [{"spec": "fake:scripted", "options": {"responses": [ANSWER]}}]}
    (folder / "task.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    rows = [{"id": f"ex{i}", "question": f"q{i}", "reference": REFERENCE} for i in range(4)]
    if family == "checks":
        rows = [{**r, "checks": [{"type": "icontains", "value": "CAT"}, {"type": "is-json"}]} for r in rows]
    (folder / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {"EVALS_STORE": str(tmp_path / "evals.db"), "EVALS_CACHE_DIR": str(tmp_path / "cache"), "PATH": ""}
    done = subprocess.run([sys.executable, "-c", SCRIPT, "run", str(folder), "--no-progress"],
                          capture_output=True, text=True, env={**_base_env(), **env}, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "4/4 (100%" in done.stdout, done.stdout  # every example passed: each metric scored the answer right
    assert done.stdout.strip().splitlines()[-1] == "HEAVY=", done.stdout[-500:]


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "HOME", "LANG", "SYSTEMROOT")}
