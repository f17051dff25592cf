"""The documentation site (mkdocs.yml, docs/): it builds with `mkdocs build --strict` (a broken link, a missing
anchor or page fails), its reference holds every command, option, task.yaml key, metric and setting the code
has, and the commands of Getting started run as written against the stand-in server."""

from __future__ import annotations

import html
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.standin_server import StandinServer, last_user_message

ROOT = Path(__file__).resolve().parents[1]
MKDOCS = Path(sys.executable).with_name("mkdocs")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run([str(MKDOCS), "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                           capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})
    assert built.returncode == 0, built.stderr[-3000:]
    return out


def page_text(site: Path, page: str) -> str:
    """A built page's text, tags dropped and entities decoded."""
    raw = (site / page / "index.html").read_text(encoding="utf-8")
    return plain(html.unescape(re.sub(r"<[^>]+>", "", re.sub(r"</t[dh]>", " | ", raw))))


def plain(text: str) -> str:
    """Text to compare, Markdown source or a built page's: code marks gone, whitespace collapsed."""
    return " ".join(text.replace("`", "").split())


def test_the_site_builds_strict_and_every_page_of_docs_is_in_it(site: Path) -> None:
    pages = {p.relative_to(ROOT / "docs").with_suffix("").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    for page in pages:
        assert (site / ("" if page == "index" else page) / "index.html").exists(), page


def test_the_commands_reference_has_every_command_and_option(site: Path) -> None:
    import typer

    from evals.cli import app

    text = page_text(site, "reference/commands")
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="evals")

    def walk(group, prefix):
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if hasattr(command, "list_commands"):
                yield from walk(command, f"{prefix} {name}")
            else:
                yield f"{prefix} {name}", command

    commands = list(walk(root, "evals"))
    assert len(commands) > 20 and any(path == "evals finetune" for path, _ in commands)  # the plugin's too
    for path, command in commands:
        section = text.split(f" {path.removeprefix('evals ')}¶ ", 1)
        assert len(section) == 2, f"no section for {path}"
        body = section[1].split("¶", 1)[0]
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help":
                assert param.opts[0] in body, f"{path}: {param.opts[0]}"
        if command.help:
            assert plain(command.help)[:60] in " ".join(body.split()), path


def test_the_task_reference_has_every_key_and_the_settings_page_every_setting(site: Path) -> None:
    from evals.data.tasks import DATASET_KEYS, MODEL_KEYS, PROMPT_KEYS, TOP_KEYS
    from evals.settings import settings_table
    from evals.types import CheckSettings, Decision

    tasks = page_text(site, "reference/tasks")
    for prefix, keys in (("", TOP_KEYS), ("dataset.", DATASET_KEYS), ("prompt.", PROMPT_KEYS),
                         ("models[].", MODEL_KEYS)):
        for key, description in keys.items():
            assert f"{prefix}{key} | {plain(description)[:40]}" in tasks, key
    settings = page_text(site, "reference/settings")
    for name, default, description in [*settings_table(Decision, "decision"), *settings_table(CheckSettings, "check")]:
        assert name in settings and plain(description)[:50] in settings, name


def test_the_metrics_reference_has_every_registered_metric(site: Path) -> None:
    from evals.metrics import describe_metrics

    text = page_text(site, "reference/metrics")
    described = describe_metrics()
    assert len(described) >= 15
    for metric in described:
        assert metric["name"] in text and plain(metric["description"])[:40] in text, metric["name"]


def test_the_python_api_page_is_made_from_the_docstrings(site: Path) -> None:
    from evals.run.api import run

    text = page_text(site, "python-api")
    assert plain(run.__doc__.strip().splitlines()[0])[:50] in text and "load_run" in text


def getting_started_commands() -> list[str]:
    """The `evals` command lines of Getting started's "The first decision" section, as a user would paste them."""
    page = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    section = page.split("## The first decision", 1)[1].split("\n## ", 1)[0]
    lines = [line for block in re.findall(r"```bash\n(.*?)```", section, re.S) for line in block.splitlines()]
    return [line for line in lines if line.startswith("evals ")]


def test_the_first_decision_of_getting_started_runs_as_written(tmp_path, monkeypatch) -> None:
    from evals.cli import app

    golden = [json.loads(line) for line in (ROOT / "golden_sets/resume-feedback/golden.jsonl").open()]

    def answer(body: dict) -> str:  # gpt-4o answers every resume as the golden set does, gpt-4o-mini 40 of 50
        asked = last_user_message(body)
        i = next(i for i, row in enumerate(golden) if row["resume"] in asked)
        right = body["model"] == "gpt-4o" or i % 5
        return json.dumps(golden[i]["reference"]) if right else '{"score": 1, "issues": [], "feedback": "ok"}'

    commands = getting_started_commands()
    assert commands and commands[0].startswith("evals decide resume-feedback")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "golden_sets").symlink_to(ROOT / "golden_sets")
    monkeypatch.setenv("EVALS_STORE", str(tmp_path / "s.db"))
    def slower(body: dict) -> float:  # gpt-4o answers 0.3 s later: slower for sure, never a tie left to timing noise
        return 0.3 if body["model"] == "gpt-4o" else 0.0

    with StandinServer(answer, latency=slower) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-docs-0123456789")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        for command in commands:
            result = CliRunner().invoke(app, [*shlex.split(command)[1:], "--no-progress"])
            assert result.exit_code == 0, result.output
    report = (tmp_path / "reports" / "first-decision.md").read_text()
    assert "40/50" in report and "50/50" in report  # the two runs, paired
    assert "## Verdict: the candidate is better but neither cheaper nor faster" in report  # gpt-4o costs more
