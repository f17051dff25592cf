"""notebooks/compare.ipynb runs top to bottom on two stored runs and reproduces the headline numbers; its last cell\nruns a task with evals.run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_cli_compare import seed_runs  # noqa: F401  (the seed-story fixture: 44/50 vs 47/50)

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "compare.ipynb"


def test_compare_notebook_reproduces_the_headline_numbers(seed_runs, monkeypatch) -> None:  # noqa: F811
    run_a, run_b, store = seed_runs
    monkeypatch.setenv("EVALS_STORE", str(store))
    monkeypatch.setenv("RUN_A", run_a)
    monkeypatch.setenv("RUN_B", run_b)
    monkeypatch.setenv("EVALS_TASK", str(NOTEBOOK.parents[1] / "golden_sets" / "resume-feedback"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    printed = "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)
    assert "44/50 (88%, 95% CI 76-94%)" in printed and "47/50 (94%, 95% CI 84-98%)" in printed
    assert "both 43, A only 1, B only 4, neither 2" in printed
    assert "McNemar exact p = 0.375" in printed
    assert "evals.analyse.compare agrees" in printed
    assert "of fake:echo with 5 examples, 0 matched" in printed  # evals.run, the last cell
