"""Every figure a verdict shows for a side comes from one computation: the terminal, Markdown, HTML and JSON
reports of `evals decide` agree on both sides' throughput (and where it came from), marginal, fixed, GPU-minimum
and monthly costs. The case: a fine-tune served on the team's own GPU (an OpenAI-compatible server, the stand-in
here) with its throughput given, against a prompted API model."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evals.cli import app
from tests.conftest import qa_rows
from tests.standin_server import StandinServer, fixed

SELF_HOSTED = {"gpu_hourly_usd": 1.2, "calls_per_hour": 3000, "hardware": "1x L4 24GB", "utilisation": 0.5,
               "min_gpu_hours_per_month": 200, "ops_monthly_usd": 300, "training_cost_usd": 600,
               "retrain_every_months": 3, "models": ["openai:my-ft"], "trained": ["openai:my-ft"]}
COLUMNS = ("hosting", "marginal cost / call", "fixed / month", "GPU minimum / month", "monthly at 100,000 calls",
           "all told / call at 100,000 calls", "calls/hour", "calls/hour from")
GIVEN = "given (decision.self_hosted.calls_per_hour, on 1x L4 24GB); not the "


@pytest.fixture
def reports(make_task, tmp_path, monkeypatch) -> dict[str, dict[str, dict[str, str]]]:
    """`evals decide` once, its report read back from each medium: medium -> role -> column -> cell."""
    from evals.cli.app import console

    with StandinServer(fixed('{"labels": ["Tango\'s"]}')) as server:
        folder = make_task(rows=qa_rows(20), models=[
            {"spec": "openai:gpt-4o-mini", "base_url": server.base_url},
            {"spec": "openai:my-ft", "base_url": server.base_url, "price": {"input_per_mtok": 0, "output_per_mtok": 0}}],
            decision={"baseline": "openai:gpt-4o-mini", "candidate": "openai:my-ft", "volume": 100_000,
                      "self_hosted": SELF_HOSTED})
        md, page = tmp_path / "d.md", tmp_path / "d.html"
        args = ["decide", str(folder), "--store", str(tmp_path / "s.db"), "--no-progress"]
        monkeypatch.setattr(console, "width", 1000)  # a terminal wide enough that no cell wraps
        shown = CliRunner().invoke(app, [*args, "--markdown", str(md), "--html", str(page)])
        as_json = CliRunner().invoke(app, [*args, "--json"])
    assert shown.exit_code == 0 and as_json.exit_code == 0, shown.output + as_json.output
    return {"terminal": _rows(shown.stdout.splitlines(), "[│┃]"),
            "markdown": _rows(md.read_text().splitlines(), r"(?<!\\)\|", unescape=lambda c: re.sub(r"\\(.)", r"\1", c)),
            "html": _html_rows(page.read_text()),
            "json": _json_rows(json.loads(as_json.stdout)["verdict"]["sides"])}


def _rows(lines: list[str], bar: str, unescape=lambda c: c) -> dict[str, dict[str, str]]:
    """The Cost table's rows by role, from text whose cells are split by the regular expression `bar`."""
    start = next(i for i, line in enumerate(lines) if "marginal cost / call" in line)
    split = (lambda line: [unescape(c.strip()) for c in re.split(bar, line)[1:-1]])
    headers = split(lines[start])
    rows = {}
    for line in lines[start + 1:]:
        cells = split(line)
        if len(cells) == len(headers) and cells[0] in ("baseline (A)", "candidate (B)"):
            rows[cells[0].split()[0]] = dict(zip(headers, cells))
        elif rows and not line.strip():
            break
    return rows


def _html_rows(page: str) -> dict[str, dict[str, str]]:
    table = page[page.index("<h2>Cost</h2>"):]
    table = table[:table.index("</table>")]
    headers = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", table)]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table)[1:]:
        cells = [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)]
        rows[cells[0].split()[0]] = dict(zip(headers, cells))
    return rows


def _json_rows(sides: dict) -> dict[str, dict[str, str]]:
    """The JSON figures written as the tables write them."""
    def usd(x, six=False):
        return "-" if x is None else f"${x:.6f}" if six else f"${x:,.4f}" if 0 < x < 1 else f"${x:,.2f}"

    return {role: dict(zip(COLUMNS, (f["hosting"], usd(f["marginal_per_call_usd"], True), usd(f["fixed_monthly_usd"]),
                                     usd(f["gpu_minimum_monthly_usd"]), usd(f["monthly_usd"]),
                                     usd(f["per_call_at_volume_usd"], True), f"{f['calls_per_hour']:,.0f}",
                                     f["calls_per_hour_from"])))
            for role, f in sides.items()}


def test_every_report_shows_the_figures_the_costs_were_computed_from(reports) -> None:
    candidate = reports["json"]["candidate"]
    # by hand: $1.20 / (3,000 calls/hour x 50%) = $0.0008 a call; 100,000 calls need 66.7 GPU hours, under the
    # 200 paid at least ($240); operations $300 + training $600 every 3 months = $500; $740 a month in all
    assert {k: candidate[k] for k in COLUMNS[:7]} == {
        "hosting": "self-hosted", "marginal cost / call": "$0.000800", "fixed / month": "$500.00",
        "GPU minimum / month": "$240.00", "monthly at 100,000 calls": "$740.00",
        "all told / call at 100,000 calls": "$0.007400", "calls/hour": "3,000"}
    assert candidate["calls/hour from"].startswith(GIVEN)  # the run's own figure only labelled as the run's
    assert reports["json"]["baseline"]["hosting"] == "api"
    assert reports["json"]["baseline"]["calls/hour from"].startswith("measured at concurrency ")
    for medium in ("terminal", "markdown", "html"):
        for role in ("baseline", "candidate"):
            shown = {k: reports[medium][role][k] for k in COLUMNS}
            assert shown == reports["json"][role], (medium, role)


def test_the_markdown_report_reads_as_plain_text(reports, tmp_path) -> None:
    text = Path(tmp_path / "d.md").read_text()
    assert "Tango's score interval" in text and "&#x27;" not in text
