"""The javascript check: promptfoo's semantics in a sandboxed V8, where hostile code ends in one line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from evals.data.tasks import load_task
from evals.metrics import javascript as js
from evals.metrics.checks import CheckScorer, parse_checks
from evals.types import Completion, Sample, ScoreContext

TASK = Path(__file__).parent / "_javascript_task"


def context(answer: str, **fields) -> ScoreContext:
    return ScoreContext(sample=Sample(id="e1", fields=fields, reference=None), completion=Completion(text=answer))


async def check(answer: str, item: dict, **fields):
    """One javascript check on one answer, parsed and scored as a golden line's check is."""
    task = load_task(str(TASK))
    [parsed] = parse_checks([item], task, file="golden.jsonl", line=1)
    scores = await CheckScorer(task).score([parsed], context(answer, **fields))
    return scores[parsed.id]


@pytest.mark.parametrize(("item", "answer", "passed"), [
    ({"value": "output.includes('Hello, World!')"}, "Hello, World!", True),
    ({"value": "output.includes('Hello, World!')"}, "Goodbye", False),
    ({"value": "output.length"}, "abc", True),  # a number passes above 0 without a threshold
    ({"value": "output.length - 3"}, "abc", False),  # 0 is not above 0
    ({"value": "Math.log(output.length) * 10", "threshold": 20}, "a" * 7, False),  # 19.46 < 20
    ({"value": "Math.log(output.length) * 10", "threshold": 20}, "a" * 8, True),  # 20.79 >= 20
    ({"value": "const s = JSON.parse(output).score; s > 0.5"}, '{"score": 0.7}', True),
    ({"value": "if (output.startsWith('{')) {\n  return {pass: true, score: 0.2, reason: 'an object'};\n}\n"
               "return {pass: false, score: 0, reason: 'not an object'};"}, "{}", True),  # its own pass decides
    ({"value": "context.vars.city === 'Paris'"}, "x", True),
    ({"value": "output.city === 'Paris'", "transform": ["JSON.parse(output)"]}, '{"city": "Paris"}', True),
    ({"type": "not-javascript", "value": "output.includes('sorry')"}, "Sure thing", True),
    ({"type": "not-javascript", "value": "output.includes('sorry')"}, "I am sorry", False),
    ({"type": "not-javascript", "value": "\nthrow new Error('boom')"}, "x", False),  # an error fails, negated too
    ({"value": "(async () => output === 'ok')()"}, "ok", True),  # a promise is awaited
])
async def test_promptfoo_semantics(item: dict, answer: str, passed: bool) -> None:
    score = await check(answer, {"type": "javascript", **item}, city="Paris")
    assert score.value == float(passed), score.explanation


async def test_a_returned_reason_is_the_explanation() -> None:
    score = await check("x", {"type": "javascript", "value": "\nreturn {pass: false, score: 0, reason: 'too short'};"})
    assert score.value == 0.0 and score.explanation.endswith("failed: too short")


@pytest.mark.parametrize(("code", "says"), [
    ("while (true) {}\nreturn true;", "stopped: ran past its 1 s limit"),
    ("\nreturn new Promise(() => {});", "stopped: ran past its 1 s limit"),
    ("const a = [];\nwhile (true) a.push(new Array(1e5).fill('x' + a.length));", "stopped: used more than its 64 MB"),
    ("const m = [];\nfor (;;) m.push(new Float64Array(1e7).fill(1));", "stopped: used more than its 64 MB"),
    ("require('fs').readFileSync('/etc/passwd', 'utf8')", "ReferenceError: require is not defined"),
    ("process.mainModule.require('child_process').execSync('id')", "TypeError: Cannot read properties of undefined"),
    ("fetch('http://127.0.0.1:9/')", "ReferenceError: fetch is not defined"),
    ("\nreturn import('fs').then(fs => fs.readFileSync('/etc/passwd'));", "Not supported"),
    ("new XMLHttpRequest()", "ReferenceError: XMLHttpRequest is not defined"),
    ("WebAssembly.Memory", "ReferenceError: WebAssembly is not defined"),
])
async def test_hostile_code_ends_in_one_line(code: str, says: str, monkeypatch) -> None:
    if "MB" in says:  # the memory cap, not the clock, stops these, however slow a loaded machine fills memory
        monkeypatch.setattr(js, "TIME_LIMIT_S", 30.0)
    started = time.perf_counter()
    score = await check("x", {"type": "javascript", "value": code})
    assert time.perf_counter() - started < js.TIME_LIMIT_S + 10  # a limit holds: it would never end otherwise
    assert score.value == 0.0 and says in score.explanation and "\n" not in score.explanation
    after = await check("x", {"type": "javascript", "value": "output === 'x'"})  # the next check runs as usual
    assert after.value == 1.0


@pytest.mark.parametrize("leaves", [
    "globalThis.leak = 1;",
    "leak = 1;",  # a sloppy-mode implicit global
    "JSON.parse = () => ({leak: 1});",
    "globalThis.JSON = {parse: () => ({leak: 1})};",
    "delete globalThis.Math;",
    "Object.defineProperty(globalThis, 'leak', {value: 1});",  # cannot be deleted: the context is replaced
    "Object.setPrototypeOf(globalThis, {leak: 1});",
    "try { Array.prototype.leak = 1; } catch (e) {}",  # frozen: it never lands
    "try { Object.getPrototypeOf(async function () {}).leak = 1; } catch (e) {}",
])
async def test_nothing_of_one_check_reaches_the_next(leaves: str) -> None:
    assert (await check("x", {"type": "javascript", "value": f"\n{leaves}\nreturn true;"})).value == 1.0
    after = "typeof leak === 'undefined' && [].leak === undefined && (async () => 1).leak === undefined && " \
            "JSON.parse('{\"a\": 2}').a === 2 && Math.max(1, 3) === 3"
    assert (await check("x", {"type": "javascript", "value": after})).value == 1.0


async def test_checks_share_one_context_until_one_cannot_be_put_back(monkeypatch) -> None:
    made = []
    fresh = js._fresh_racer
    monkeypatch.setattr(js, "_fresh_racer", lambda: made.append(1) or fresh())
    js._racers.clear()
    for _ in range(5):
        assert (await check("x", {"type": "javascript", "value": "\nglobalThis.n = (globalThis.n || 0) + 1;\n"
                                                                "return n === 1;"})).value == 1.0
    assert len(made) == 1  # one context made, reused, and put back after each check
    await check("x", {"type": "javascript", "value": "\nObject.defineProperty(globalThis, 'stuck', {value: 1});"
                                                    "\nreturn true;"})
    await check("x", {"type": "javascript", "value": "typeof stuck === 'undefined'"})
    assert len(made) == 2
    await check("x", {"type": "javascript", "value": "while (true) {}\nreturn true;"})  # stopped at its limit
    assert (await check("x", {"type": "javascript", "value": "output === 'x'"})).value == 1.0 and len(made) == 3


@pytest.mark.parametrize(("code", "body"), [
    ("output === 'a'", "return output === 'a'"),
    ("const s = 'a;b'; s === output;", "const s = 'a;b'; return s === output"),
    ("if (x) {\n  return 1;\n}", "if (x) {\n  return 1;\n}"),
])
def test_a_snippet_becomes_a_function_body_as_promptfoo_reads_it(code: str, body: str) -> None:
    assert js.function_body(code) == body


def test_a_process_with_a_kept_context_exits() -> None:
    """The context kept for the next check is closed at exit (a mini-racer context left open at interpreter exit
    can hang it, intermittently)."""
    import subprocess
    import sys

    script = ("import asyncio\nfrom evals.metrics import javascript as js\nloop = asyncio.new_event_loop()\n"
              "print(loop.run_until_complete(js.evaluate(\"output === 'x'\", 'x'))['result'])\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "True")
