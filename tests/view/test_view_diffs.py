"""The compare page's diffs are bounded: word by word up to a size, then line by line, then none (the page says
which), memoised per pair of answers, and built off the event loop, so a long one never holds up another page."""

from __future__ import annotations

import difflib
import re
import threading

import pytest
from starlette.testclient import TestClient

from evals.view import pages, present
from evals.view.app import create_app
from tests.view.conftest import store_pair

WORDS = 16_000
WORD_CAP, LINE_CAP = 1_000, 2_000  # the most items a side that a word (line) diff is given


def answers(i: int, model: str, attempt: int, ok: bool) -> str:
    """ex000: one sentence (one word differs); ex001: 16,000 words in 800 lines (the candidate changes one line);
    ex002: 16,000 words in 8,000 lines (one word differs)."""
    side = "A" if model == "fake:a" else "B"
    if i == 0:
        return f"the capital of France is {'Paris' if side == 'A' else 'Lyon'} and nothing else"
    per_line = 20 if i == 1 else 2
    lines = [" ".join(f"w{(n * per_line + k) % 997}" for k in range(per_line)) for n in range(WORDS // per_line)]
    lines[7] = f"changed line in {side} " + lines[7]
    return "\n".join(lines)


class Recorder(difflib.SequenceMatcher):
    """SequenceMatcher that refuses sequences past the caps (before any work: today's uncapped diff of two
    16,000-word answers takes minutes) and records the sizes it was given."""

    sizes: list[tuple[int, int, bool]] = []

    def __init__(self, isjunk=None, a="", b="", autojunk=True):
        most = LINE_CAP if autojunk else WORD_CAP
        assert len(a) <= most and len(b) <= most, f"diffed {len(a)} x {len(b)} items (autojunk={autojunk})"
        self.sizes.append((len(a), len(b), autojunk))
        super().__init__(isjunk, a, b, autojunk)


@pytest.fixture
def long_pair(tmp_path, monkeypatch):
    path = tmp_path / "long.db"
    a, b = store_pair(path, [(True,)] * 3, [(False,)] * 3, answer=answers)  # all three regressed
    Recorder.sizes = []
    monkeypatch.setattr(present.difflib, "SequenceMatcher", Recorder)
    return path, a, b


ROW = re.compile(r'<tr class="pair.*?</tr>', flags=re.S)


def rows(html: str) -> dict[str, str]:
    """The compare page's rows by example id."""
    return {re.search(r'class="example-a">(ex\d+) in A', row)[1]: row for row in ROW.findall(html)}


def test_long_answers_are_compared_line_by_line_or_shown_whole_never_past_the_caps(long_pair) -> None:
    path, a, b = long_pair
    html = TestClient(create_app(path, allowed_hosts=["testserver"])).get(f"/compare/{a}/{b}").text
    shown = rows(html)
    assert set(shown) == {"ex000", "ex001", "ex002"}
    assert "<mark>Paris </mark>" in shown["ex000"] and "<mark>Lyon </mark>" in shown["ex000"]  # word by word
    assert "compared line by line" not in shown["ex000"] and "too long" not in shown["ex000"]
    assert "compared line by line (over 1,000 words)" in shown["ex001"]
    assert shown["ex001"].count("<mark>") == 2  # the one changed line on each side, marked whole
    assert "<mark>changed line in A w140" in shown["ex001"] and "<mark>changed line in B w140" in shown["ex001"]
    assert "too long to compare (over 2,000 lines): shown whole" in shown["ex002"] and "<mark>" not in shown["ex002"]
    assert shown["ex002"].count("changed line in") == 2  # both answers, whole
    assert sorted(Recorder.sizes) == [(9, 9, False), (800, 800, True)]  # one word diff, one line diff: no more
    assert (present.WORD_DIFF_MAX, present.LINE_DIFF_MAX) == (WORD_CAP, LINE_CAP)
    assert "line by line where an answer has over 1,000 words, and not at all past 2,000 lines" in html


def test_a_diff_is_memoised_per_pair_of_answers(long_pair) -> None:
    path, a, b = long_pair
    client = TestClient(create_app(path, allowed_hosts=["testserver"]))
    first = client.get(f"/compare/{a}/{b}").text
    diffed = len(Recorder.sizes)
    assert diffed == 2 and client.get(f"/compare/{a}/{b}").text == first
    assert client.get(f"/compare/{a}/{b}?outcome=regressed").status_code == 200
    assert len(Recorder.sizes) == diffed  # reloads and the same pairs under another outcome: none diffed again
    memo = present.Memo(2)
    assert [memo.get(k, lambda k=k: k * 10) for k in (1, 2, 1, 3, 2)] == [10, 20, 10, 30, 20]
    assert list(memo._items) == [3, 2]  # the least recently used went first


def test_another_page_is_answered_while_a_diff_runs(long_pair, monkeypatch) -> None:
    path, a, b = long_pair
    started, release, order = threading.Event(), threading.Event(), []
    real = pages.diff_pieces

    def slow_diff(x, y):  # holds its pair until the other page has been answered (30 s at most: today's code)
        started.set()
        release.wait(30)
        order.append("diff")
        return real(x, y)

    monkeypatch.setattr(pages, "diff_pieces", slow_diff)
    with TestClient(create_app(path, allowed_hosts=["testserver"])) as client:  # one event loop for both
        compared = []
        worker = threading.Thread(target=lambda: compared.append(client.get(f"/compare/{a}/{b}")))
        worker.start()
        assert started.wait(30)
        index = client.get("/")
        order.append("index")
        release.set()
        worker.join(60)
    assert order[:2] == ["index", "diff"]  # the runs list was served while the diff was under way
    assert index.status_code == 200 and compared[0].status_code == 200
