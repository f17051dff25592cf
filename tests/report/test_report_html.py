"""The self-contained HTML report: every section, figures, no script, model output escaped (also in a browser)."""

from __future__ import annotations

import dataclasses
import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from evals.analyse.decide import compare_stored
from evals.report.html import comparison_html, render_html
from evals.report.sections import Section, comparison_sections
from evals.run.store import Store
from tests.cli.test_cli_compare import DECIDE_MODELS, SEED_DECISION, invoke, store_run
from tests.conftest import qa_rows

PAYLOAD = "<script>alert(1)</script> <img src=x onerror=alert(1)>\nline two & \"quotes\""
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt;"


@pytest.fixture
def seed_report(make_task, tmp_path, monkeypatch) -> tuple[Path, Path, str, str]:
    """The seed story (44/50 vs 47/50), the baseline's answer to ex044 being PAYLOAD; the HTML written by the CLI."""
    monkeypatch.setattr("tests.cli.test_cli_compare.HOSTILE", PAYLOAD)
    folder = make_task(rows=qa_rows(50), decision=SEED_DECISION)
    store = tmp_path / "s.db"
    a = [True] * 43 + [True] + [False] * 4 + [False] * 2
    b = [True] * 43 + [False] + [True] * 4 + [False] * 2
    run_a, run_b = store_run(folder, store, "base", a, hostile_at=44), store_run(folder, store, "cand", b)
    target = tmp_path / "reports" / "cmp.html"
    result = invoke("compare", run_a, run_b, "--store", store, "--html", target)
    assert result.exit_code == 0, result.output
    assert f"wrote {target}" in result.stderr
    return target, store, run_a, run_b


def test_html_has_every_section_and_figure_and_no_script(seed_report) -> None:
    target, store, run_a, run_b = seed_report
    page = target.read_text(encoding="utf-8")
    cmp, verdict, _ = compare_stored(run_a, run_b, Store(store))
    for section in comparison_sections(cmp, verdict):
        assert f"<h2>{html.escape(section.title)}</h2>" in page, section.title
        for heading in section.bullets:
            assert f"<h3>{html.escape(heading)}</h3>" in page
    for expected in ("44/50 (88%, 95% CI 76-94%)", "47/50 (94%, 95% CI 84-98%)", "McNemar exact p = 0.375",
                     "inconclusive: about 262 more golden examples needed", "Break-even", "100,000"):
        assert expected in page, expected
    figures = re.findall(r"<img src=\"data:image/png;base64,[A-Za-z0-9+/=]+\"", page)
    assert len(figures) == 4  # match rates, metric distributions, paired outcomes, cost vs volume
    assert len(re.findall(r"<img\b", page)) == 4 and "<svg" not in page
    assert "<script" not in page.lower()
    assert not re.search(r"https?://", page, flags=re.IGNORECASE)
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", page, flags=re.IGNORECASE)  # no event-handler attribute
    assert not list(target.parent.glob("*.part"))


def test_model_output_is_escaped(seed_report) -> None:
    page = seed_report[0].read_text(encoding="utf-8")
    assert ESCAPED in page
    assert "line two &amp; &#34;quotes&#34;" in page
    assert "<script>alert(1)</script>" not in page and "<img src=x" not in page


def test_markup_in_any_field_is_escaped() -> None:
    hostile = Section("<b>t</b>", lines=["<i>l</i>"], headers=["<u>h</u>"], rows=[["<a href=x>c</a>"]],
                      bullets={"<s>k</s>": ["<em>v</em>"]})
    page = render_html([hostile], "<title>")
    for tag in ("b", "i", "u", "a", "s", "em"):
        assert f"<{tag}>" not in page and f"<{tag} " not in page
    assert "&lt;title&gt;" in page and "&lt;a href=x&gt;c&lt;/a&gt;" in page


def test_no_cost_projection_is_noted(make_task, tmp_path) -> None:
    folder = make_task(rows=qa_rows(6))
    store = tmp_path / "s.db"
    a, b = store_run(folder, store, "base", [True] * 6), store_run(folder, store, "cand", [False] * 6)
    cmp, verdict, _ = compare_stored(a, b, Store(store))
    page = comparison_html(cmp, dataclasses.replace(verdict, costs=None))
    assert "Not drawn: the verdict has no cost projection" in page
    assert len(re.findall(r"<img\b", page)) == 3


CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="no `chromium` on PATH (install it with `apt-get install -y chromium`)")
def test_headless_chromium_renders_payload_as_text(seed_report, tmp_path) -> None:
    target = seed_report[0]
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr", "--v=0", "--dump-dom", target.resolve().as_uri()]
    proc = subprocess.run(args, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert "</html>" in dom and "<h1>" in dom
    # console errors (script errors, CSP violations, failed loads) are logged as CONSOLE lines
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    assert "<script" not in dom.lower()
    assert len(re.findall(r"<img\b", dom)) == 4  # the figures only; the payload's <img> is no element
    assert ESCAPED in dom  # serialized as text
    body = re.search(r"<body[^>]*>(.*)</body>", dom, flags=re.DOTALL).group(1)
    text = html.unescape(re.sub(r"<[^>]+>", "", body))  # what the page shows
    assert "inconclusive: about 262 more golden examples needed" in text
    assert "<script>alert(1)</script> <img src=x onerror=alert(1)>" in text


def test_cost_figure_marks_the_break_even() -> None:
    from evals.analyse.economics import CostModel, CostProjection, CostRow, break_even_volume
    from evals.analyse.verdict import Verdict
    from evals.report.html import _cost_vs_volume

    api = CostModel("openai:gpt-4o-mini", "api", per_call_usd=0.0002)
    tuned = CostModel("local:smollm2+lora:x", "self-hosted", per_call_usd=0.00003, fixed_monthly_usd=4.0)
    be = break_even_volume(api, tuned)
    costs = CostProjection(api, tuned, (CostRow(100_000, api.monthly_usd(1e5), tuned.monthly_usd(1e5)),), be, None)
    fig = _cost_vs_volume(Verdict("x", [], [], costs=costs))
    assert be and fig.png_base64 and f"break-even at about {be:,.0f} calls/month" in fig.alt


def test_decide_writes_html(make_task, tmp_path) -> None:
    folder = make_task(models=DECIDE_MODELS, decision={"baseline": "fake:base", "candidate": "fake:cand"})
    target = tmp_path / "decide.html"
    result = invoke("decide", folder, "--store", tmp_path / "s.db", "--no-progress", "--html", target)
    assert result.exit_code == 0, result.output
    page = target.read_text(encoding="utf-8")
    assert "Verdict: " in page and "<script" not in page.lower() and f"wrote {target}" in result.stderr


def test_one_emitter_prints_a_report_or_its_json_and_writes_its_files(tmp_path, capsys) -> None:
    """`compare`, `decide` and `route` report through print_report: tables or JSON on stdout, Markdown and HTML
    files (figures drawn only for HTML, the JSON payload built only for --json), then the note and the files
    written on stderr."""
    import json

    from evals.cli.app import print_report
    from evals.report.html import Figure

    sections = [Section("Verdict: ship it", lines=[PAYLOAD]), Section("Costs", headers=["model"], rows=[["m"]])]
    drawn: list[int] = []

    def figures() -> list[Figure]:
        drawn.append(1)
        return [Figure("Cost at volume", "Costs", note="Not drawn: a test.")]

    built: list[int] = []

    def payload() -> dict[str, int]:
        built.append(1)
        return {"n": 1}

    print_report(sections, "A <title>", payload, as_json=True, markdown=None, html=None, figures=figures)
    assert json.loads(capsys.readouterr().out) == {"n": 1} and drawn == [] and built == [1]
    md, page = tmp_path / "r.md", tmp_path / "r.html"
    print_report(sections, "A <title>", payload, as_json=False, markdown=md, html=page, figures=figures,
                 note="decision settings: task.yaml")
    out, err = capsys.readouterr()
    assert "Verdict: ship it" in out and "Costs" in out and '"n"' not in out
    assert err.splitlines() == ["decision settings: task.yaml", f"wrote {md}", f"wrote {page}"]
    assert md.read_text().startswith("# A &lt;title&gt;\n\n## Verdict: ship it") and "| m |" in md.read_text()
    assert drawn == [1] and ESCAPED in page.read_text() and "Not drawn: a test." in page.read_text()
    assert built == [1]  # the JSON payload is built only for --json
