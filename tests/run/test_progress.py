"""Progress a person can follow when output is not a terminal (CI logs, pipes, nohup): plain, timestamped
lines that arrive while the work runs, with counts, rate and ETA, and no terminal control characters."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (?P<label>\S+): (?P<done>\d+)/(?P<total>\d+) ")


def write_task(folder: Path, n: int = 120, latency: float = 0.05) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "task.yaml").write_text(yaml.safe_dump({
        "name": "slow", "dataset": {"golden": "golden.jsonl", "fields": ["q"]}, "prompt": {"user": "{{ q }}"},
        "models": [{"spec": "fake:slow", "concurrency": 4, "options": {"responses": ["x"], "latency_s": latency}}],
        "metrics": [{"name": "exact_match"}], "pass": {"exact_match": 1}}))
    (folder / "golden.jsonl").write_text("".join(json.dumps({"id": f"e{i}", "q": f"q{i}", "reference": "x"}) + "\n"
                                                 for i in range(n)))
    return folder


def stream(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, list[tuple[float, str]], float]:
    """Run `python -m evals ARGS` with stderr a pipe; (exit code, (arrival time, line) of stderr, exit time)."""
    proc = subprocess.Popen([sys.executable, "-m", "evals", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend((time.monotonic(), raw) for raw in proc.stderr))
    reader.start()
    proc.stdout.read()
    code = proc.wait(timeout=600)
    ended = time.monotonic()
    reader.join(10)
    return code, lines, ended


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "EVALS_PROGRESS"}
    return {**env, "EVALS_STORE": str(tmp_path / "s.db"), "EVALS_CACHE_DIR": str(tmp_path / "cache"), **extra}


def test_a_run_in_a_pipe_prints_plain_progress_lines_while_it_runs(tmp_path) -> None:
    task = write_task(tmp_path / "task")
    code, lines, ended = stream(["run", str(task)], tmp_path, env_for(tmp_path))
    assert code == 0, lines
    progress = [(at, text) for at, text in lines if LINE.match(text)]
    counts = [int(LINE.match(text)["done"]) for _, text in progress]
    assert counts[0] == 0 and counts[-1] == 120 and counts == sorted(counts) and len(counts) >= 8
    assert ended - progress[1][0] > 0.5  # the early lines came while the run went on, not all at the end
    assert all(" errors 0 cost $" in text for _, text in progress)
    assert all("/s eta " in text for _, text in progress[1:])
    assert not any("\x1b" in text or "\r" in text for _, text in lines)  # no control characters at all


def test_progress_none_and_the_environment_variable(tmp_path) -> None:
    task = write_task(tmp_path / "task", n=20, latency=0.0)
    code, lines, _ = stream(["run", str(task), "--progress", "none"], tmp_path, env_for(tmp_path))
    assert code == 0 and not any(LINE.match(t) for _, t in lines)
    code, lines, _ = stream(["run", str(task)], tmp_path, env_for(tmp_path, EVALS_PROGRESS="none"))
    assert code == 0 and not any(LINE.match(t) for _, t in lines)
    code, lines, _ = stream(["run", str(task), "--progress", "sometimes"], tmp_path, env_for(tmp_path))
    assert code == 2 and any("--progress must be one of bar, plain, none" in t for _, t in lines)


def test_a_plain_line_comes_every_interval_even_when_nothing_advances(monkeypatch) -> None:
    """A local batch answers all at once after minutes: the log still shows the run is alive meanwhile."""
    import io

    from rich.console import Console

    from evals.run import progress as progress_module

    monkeypatch.setattr(progress_module, "EVERY_S", 0.2)
    out = io.StringIO()
    with progress_module.RunProgress(Console(file=out, width=200), mode="plain") as bars:
        bars.add("local:smollm2", total=50)
        time.sleep(0.9)
    lines = [ln for ln in out.getvalue().splitlines() if LINE.match(ln)]
    assert lines[0].endswith("(started)") and len(lines) >= 3
    assert all(" 0/50 (0%) " in ln for ln in lines)
