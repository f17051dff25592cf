"""The compare page's examples by outcome: paged as the run page pages its examples (50 a page, `?page=N`), only
the page shown read and diffed, and the outcomes and their counts those of `evals compare`, repeats or not."""

from __future__ import annotations

import random
import re

from starlette.testclient import TestClient

from evals.analyse.decide import compare_stored
from evals.run.store import Store
from evals.view import pages, queries
from evals.view.app import create_app
from tests.view.conftest import store_pair
from tests.view.test_view_app import text_of

SHOWN = re.compile(r'class="example-a">(\w+) in A')


def test_changed_examples_are_paged_and_only_the_page_shown_is_diffed(tmp_path, monkeypatch) -> None:
    path = tmp_path / "pair.db"
    a, b = store_pair(path, [(i % 2 == 0,) for i in range(240)], [(i % 3 == 0,) for i in range(240)])
    cmp, _, _ = compare_stored(a, b, Store(path))
    changed = [d.example_id for d in (*cmp.regressed, *cmp.improved)]
    assert (len(cmp.regressed), len(cmp.improved), len(changed)) == (80, 40, 120)  # three pages of 50
    diffed: list[str] = []
    real = pages.diff_pieces
    monkeypatch.setattr(pages, "diff_pieces", lambda x, y: diffed.append(x) or real(x, y))
    client = TestClient(create_app(path, allowed_hosts=["testserver"]))
    first = client.get(f"/compare/{a}/{b}").text
    assert "regressed (A matched, B did not) (80)" in first and "improved (B matched, A did not) (40)" in first
    assert "improved and regressed (120)" in first and "both missed (80)" in first  # one SQL aggregate
    assert "120 example(s), page 1 of 3" in first
    assert 'href="?page=2" rel="next"' in first and 'href="?page=3">last' in first and 'rel="prev"' not in first
    shown = SHOWN.findall(first)
    assert len(shown) == queries.PAGE_SIZE and len(diffed) == queries.PAGE_SIZE  # not all 120
    for page in (2, 3):
        html = client.get(f"/compare/{a}/{b}?page={page}").text
        assert f"page {page} of 3" in html
        shown += SHOWN.findall(html)
    assert shown == changed and len(diffed) == len(changed)  # each page diffed only its own examples
    last = client.get(f"/compare/{a}/{b}?page=99").text  # past the end: the last page, as on the run page
    assert "page 3 of 3" in last and 'href="?page=1">first' in last and 'rel="next"' not in last
    regressed = client.get(f"/compare/{a}/{b}?outcome=regressed&page=2").text
    assert SHOWN.findall(regressed) == [d.example_id for d in cmp.regressed][50:]
    assert 'href="?outcome=regressed&amp;page=1" rel="prev"' in regressed  # the outcome kept across pages
    assert "<mark>" in regressed  # the two answers' differences


def test_outcomes_with_repeats_are_those_of_evals_compare(tmp_path) -> None:
    rng = random.Random(7)
    runs = [[tuple(rng.random() < p for _ in range(3)) for _ in range(90)] for p in (0.55, 0.7)]
    path = tmp_path / "repeats.db"
    a, b = store_pair(path, *runs)
    cmp, _, _ = compare_stored(a, b, Store(path))
    store = Store(path, readonly=True)
    counts = queries.outcome_counts(store, a, b)
    every = queries.outcomes_page(store, a, b, queries.OUTCOMES, counts, page_size=1000)
    assert counts == {"regressed": len(cmp.regressed), "improved": len(cmp.improved),
                      "both-missed": cmp.counts.both_fail, "changed": len(cmp.regressed) + len(cmp.improved)}
    for outcome, diffs in (("regressed", cmp.regressed), ("improved", cmp.improved)):
        rows = [r for r in every.rows if r.outcome == outcome]
        assert [(r.example_id, r.pass_a, r.pass_b) for r in rows] == [(d.example_id, d.pass_a, d.pass_b)
                                                                      for d in diffs]  # largest change first
    assert len([r for r in every.rows if r.outcome == "both-missed"]) == cmp.counts.both_fail > 0
    paged = [r for p in range(1, 20) for r in queries.outcomes_page(store, a, b, queries.OUTCOMES, counts, p, 7).rows
             if p <= every.total // 7 + 1]
    assert paged == every.rows
    shown = text_of(TestClient(create_app(path, allowed_hosts=["testserver"])).get(f"/compare/{a}/{b}").text)
    first = cmp.regressed[0]
    assert f"passed {round(first.pass_a * 100)}% of A's attempts, {round(first.pass_b * 100)}% of B's" in shown
    assert "(each run's first attempt)" in shown
    assert f"answer {int(first.example_id[2:])} from fake:a, attempt 1" in shown
