"""promptfoo's JavaScript, run for real in an embedded V8 (mini-racer) that can reach nothing outside it.

`javascript` is a metric (and so a check type) whose argument is JavaScript source, scored with promptfoo's
documented semantics: the code sees `output` (the answer, or what its transforms made of it: an object once a
transform parsed it) and `context.vars`; a single line is an expression (`output.length < 200`, or
declarations then one: `const s = JSON.parse(output).score; s > 0.5`), several lines are a function body
that returns. It returns a boolean, a number (passing above 0, or from `threshold` up) or
`{pass, score, reason}`. `transform` (a list of expressions or bodies, applied in order: a test's, then the
assertion's own) turns the answer into what the code sees; `transformed` does the same for any other check.

The code is data from an imported config, so it runs in a V8 context with no `require`, `process`, `fetch`,
file system, network or timers of the host; it runs one at a time, for at most `TIME_LIMIT_S` seconds,
within `MEMORY_MB` of JavaScript heap (the engine's hard limit) and of the process's resident memory (a
watchdog, for typed arrays and other memory outside the heap). Anything past a limit, or any error in the
code, ends that check with one line; nothing else of the run is touched.

Checks share one context per event loop (a fresh one costs 10-16 ms, a check in a kept one under 1 ms), and
nothing of one check reaches the next: the context's built-ins are frozen when it is made (`_SETUP`), and
after each check its globals are put back as they were (what it added removed, what it replaced restored);
a check that leaves something that cannot be put back (a global made non-configurable, say), or that was
stopped at a limit, costs the context, and the next check gets a fresh one.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import math
import re
import weakref
from collections.abc import Sequence
from typing import Any

from evals.metrics import Metric, register_metric
from evals.types import Score, ScoreContext

TIME_LIMIT_S = 1.0  # wall time for one check's transforms and code together
MEMORY_MB = 64  # V8 heap, and growth of the process's resident memory while the code runs
_POLL_S = 0.005
_PAGE = 4096
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
_racers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()

# Runs once in each new context: WebAssembly goes, every built-in reachable from the global object (and the
# intrinsics only instances reach: iterator, generator and async-function prototypes) is frozen, and
# `__evalsReset()` is defined, which puts the global object back as it was then and says whether it could.
_SETUP = """
(() => {
  delete globalThis.WebAssembly;
  const {getOwnPropertyDescriptor, defineProperty, freeze, getPrototypeOf, setPrototypeOf} = Object;
  const ownKeys = Reflect.ownKeys, remove = Reflect.deleteProperty;
  const seen = new Set([globalThis]);
  const deepFreeze = (o) => {
    if ((typeof o !== 'object' && typeof o !== 'function') || o === null || seen.has(o)) return;
    seen.add(o);
    freeze(o);
    for (const key of ownKeys(o)) {
      const d = getOwnPropertyDescriptor(o, key);
      if ('value' in d) deepFreeze(d.value); else { deepFreeze(d.get); deepFreeze(d.set); }
    }
    deepFreeze(getPrototypeOf(o));
  };
  const reached = [async function () {}, function* () {}, async function* () {}, (function* () {})(),
                   (async function* () {})(), [][Symbol.iterator](), new Map().entries(), new Set().values(),
                   ''[Symbol.iterator](), 'x'.matchAll(/x/g), Promise.resolve()];
  for (const key of ownKeys(globalThis)) {
    const d = getOwnPropertyDescriptor(globalThis, key);
    if ('value' in d) deepFreeze(d.value); else { deepFreeze(d.get); deepFreeze(d.set); }
  }
  for (const o of reached) deepFreeze(getPrototypeOf(o));
  const proto = getPrototypeOf(globalThis);
  const original = new Map(ownKeys(globalThis).map((key) => [key, getOwnPropertyDescriptor(globalThis, key)]));
  const same = (a, b) => a && b && a.value === b.value && a.get === b.get && a.set === b.set &&
    a.writable === b.writable && a.enumerable === b.enumerable && a.configurable === b.configurable;
  const reset = () => {
    try {
      for (const key of ownKeys(globalThis)) {
        if (key !== '__evalsReset' && !original.has(key) && !remove(globalThis, key)) return false;
      }
      for (const [key, d] of original) {
        if (!same(getOwnPropertyDescriptor(globalThis, key), d)) defineProperty(globalThis, key, d);
      }
      if (getPrototypeOf(globalThis) !== proto) setPrototypeOf(globalThis, proto);
      return getPrototypeOf(globalThis) === proto;
    } catch (e) {
      return false;
    }
  };
  defineProperty(globalThis, '__evalsReset', {value: reset, writable: false, enumerable: false, configurable: false});
  return true;
})()
"""

# Runs inside V8. IN is one JSON string literal (output, vars, transforms, code): nothing of the config is
# spliced into the program text. Each piece of code is compiled by `new Function`, as promptfoo does, with
# `process` bound to undefined (promptfoo passes a shim there).
_PROGRAM = """
(() => {
  const {parse, stringify} = JSON, Fn = Function, Str = String;  // before the code can replace the globals
  const input = parse(IN);
  const context = {vars: input.vars, prompt: input.prompt};
  const compile = (body) => new Fn('output', 'context', 'process', body);
  const message = (e) => (e && e.name ? e.name + ': ' + e.message : Str(e));
  const thenable = (v) => v !== null && (typeof v === 'object' || typeof v === 'function') &&
    typeof v.then === 'function';
  // Runs one piece of code on `output`, then `onValue` or `onError`: at once, unless the code returned a promise.
  const call = (body, output, onValue, onError) => {
    let value;
    try {
      value = compile(body)(output, context, undefined);
    } catch (e) {
      return onError(e);
    }
    return thenable(value) ? Promise.resolve(value).then(onValue, onError) : onValue(value);
  };
  const finish = (output) => {
    const text = typeof output === 'string' ? output : stringify(output);
    if (input.code === null) return stringify({output: output, text: text});
    return call(input.code, output,
      (result) => stringify({kind: result === null ? 'null' : typeof result,
                             result: result === undefined ? null : result}),
      (e) => stringify({error: 'threw ' + message(e)}));
  };
  const transform = (i, output) => i === input.transforms.length ? finish(output) : call(input.transforms[i], output,
    (next) => next === null || next === undefined
      ? stringify({error: 'transform ' + (i + 1) + ' returned no value'}) : transform(i + 1, next),
    (e) => stringify({error: 'transform ' + (i + 1) + ' failed: ' + message(e)}));
  return transform(0, input.output);
})()
"""


class JSError(Exception):
    """The JavaScript failed, threw or ran past a limit; the message is one line."""


def function_body(code: str) -> str:
    """promptfoo's reading of an inline snippet: several lines are a function body as written; one line is
    an expression to return, or declarations followed by the expression (`const a = ...; a > 1`)."""
    code = code.rstrip()
    if "\n" in code:
        return code
    code = re.sub(r";+\s*$", "", code.strip())
    if re.match(r"(const|let|var)\s", code):
        cut = _last_statement_end(code)
        if cut is not None and code[cut + 1:].strip():
            return f"{code[:cut + 1]} return {code[cut + 1:].strip()}"
        return code
    return f"return {code}"


def _last_statement_end(code: str) -> int | None:
    """The index of the last `;` outside strings, template literals and brackets."""
    depth, quote, last, i = 0, None, None, 0
    while i < len(code):
        c = code[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == ";" and depth == 0:
            last = i
        i += 1
    return last


def _one_line(text: str) -> str:
    first = str(text).strip().splitlines()[0] if str(text).strip() else "failed"
    return first if len(first) <= 300 else first[:297] + "..."


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


@atexit.register
def _close_racers() -> None:
    """Close the kept contexts while their engine's thread still runs: one left open hangs the exit."""
    for racer in list(_racers.values()):
        racer.close()
    _racers.clear()


def _fresh_racer() -> Any:
    """A new V8 context with its heap limit, its built-ins frozen and `__evalsReset` defined."""
    from py_mini_racer import MiniRacer

    racer = MiniRacer()
    racer.set_hard_memory_limit(MEMORY_MB * 2**20)
    racer.eval(_SETUP)
    return racer


def _reset(racer: Any) -> bool:
    """Put the context's globals back after a check; False when it cannot be kept for the next one."""
    from py_mini_racer._exc import MiniRacerBaseException

    if racer.was_hard_memory_limit_reached():
        return False
    try:
        return racer.eval("__evalsReset()") is True
    except MiniRacerBaseException:
        return False


async def evaluate(code: str | None, output: Any, vars_: dict[str, Any] | None = None,
                   transforms: Sequence[str] = (), prompt: str | None = None) -> dict[str, Any]:
    """Run the transforms, then `code` (None: none), on `output` in the sandboxed V8 context.
    Returns {"kind", "result"} for code, else {"output", "text"}; raises JSError with one line."""
    from py_mini_racer._exc import JSOOMException, MiniRacerBaseException

    payload = {"output": output, "vars": vars_ or {}, "prompt": prompt,
               "transforms": [function_body(t) for t in transforms],
               "code": None if code is None else function_body(code)}
    program = _PROGRAM.replace("IN", json.dumps(json.dumps(payload, ensure_ascii=False, default=str)), 1)
    loop = asyncio.get_running_loop()
    lock = _locks.setdefault(loop, asyncio.Lock())
    async with lock:  # one at a time, so the memory watchdog measures this code alone
        racer = _racers.pop(loop, None) or _fresh_racer()
        kept = False
        try:
            start_rss = _resident_bytes()
            task = asyncio.ensure_future(racer.eval_cancelable(program))
            deadline = loop.time() + TIME_LIMIT_S
            stopped = None
            while not task.done():
                await asyncio.wait({task}, timeout=_POLL_S)
                if task.done():
                    break
                if _resident_bytes() - start_rss > MEMORY_MB * 2**20:
                    stopped = f"used more than its {MEMORY_MB} MB of memory"
                elif loop.time() > deadline:
                    stopped = f"ran past its {TIME_LIMIT_S:g} s limit"
                if stopped:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    raise JSError(f"stopped: {stopped}")
            try:
                value = task.result()
                if hasattr(value, "__await__"):  # the code returned a promise: wait for it, within the limit
                    value = await asyncio.wait_for(value, timeout=max(deadline - loop.time(), _POLL_S))
            except asyncio.TimeoutError:
                raise JSError(f"stopped: ran past its {TIME_LIMIT_S:g} s limit") from None
            except JSOOMException:
                raise JSError(f"stopped: used more than its {MEMORY_MB} MB of memory") from None
            except MiniRacerBaseException as e:
                if racer.was_hard_memory_limit_reached():
                    raise JSError(f"stopped: used more than its {MEMORY_MB} MB of memory") from None
                kept = _reset(racer)
                raise JSError(_one_line(str(e).replace("<anonymous>:", ""))) from None
            kept = _reset(racer)
        finally:
            if kept:
                _racers[loop] = racer
            else:
                racer.close()
    if not isinstance(value, str):
        raise JSError("returned nothing readable")
    result = json.loads(value)
    if "error" in result:
        raise JSError(_one_line(result["error"]))
    return result


def grade(kind: str, result: Any, threshold: float | None) -> tuple[bool, float, str]:
    """promptfoo's verdict on what the code returned: (pass, score, reason)."""
    if kind == "boolean":
        return result, float(result), "returned true" if result else "returned false"
    if kind == "number" and result is not None and math.isfinite(result):
        ok = result > 0 if threshold is None else result >= threshold
        rule = "above 0" if threshold is None else f"at least {threshold:g}"
        return ok, float(result), f"returned {result:g}" + ("" if ok else f", not {rule}")
    if kind == "object" and isinstance(result, dict) and isinstance(result.get("pass"), bool):
        score = result.get("score", float(result["pass"]))
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise JSError(f"returned a score that is not a finite number: {score!r}")
        return result["pass"], float(score), _one_line(str(result.get("reason") or
                                                            ("passed" if result["pass"] else "failed")))
    raise JSError(f"must return a boolean, a finite number or {{pass, score, reason}}; returned {kind}")


def _vars(ctx: ScoreContext) -> dict[str, Any]:
    return dict(ctx.sample.fields)


@register_metric("javascript")
def javascript(code: str, threshold: float | None = None, transform: list[str] | None = None) -> Metric:
    """1 if promptfoo-style JavaScript `code` passes on the answer (sandboxed V8: no files, network or process).
    It sees `output` (after `transform`, a list of JS transforms applied in order) and `context.vars`, and
    returns a boolean, a number (passing above 0, or from `threshold` up) or {pass, score, reason}."""
    if not isinstance(code, str) or not code.strip():
        raise ValueError("code must be JavaScript source")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
        raise ValueError(f"threshold must be a number, got {threshold!r}")
    transforms = _transforms(transform)

    async def score(ctx: ScoreContext) -> Score:
        try:
            out = await evaluate(code, ctx.completion.text, _vars(ctx), transforms)
            ok, value, reason = grade(out["kind"], out["result"], threshold)
        except JSError as e:
            return Score(0.0, explanation=f"javascript {e}", details={"error": str(e)})
        return Score(float(ok), explanation="" if ok else reason, details={"score": value, "reason": reason})

    return score


def _transforms(transform: Any) -> list[str]:
    transforms = [transform] if isinstance(transform, str) else list(transform or [])
    if not all(isinstance(t, str) and t.strip() for t in transforms):
        raise ValueError("transform must be JavaScript source, or a list of it")
    return transforms


async def transformed(transforms: Sequence[str], ctx: ScoreContext) -> str:
    """The answer after promptfoo transforms, as the text other checks see (JSON for anything not a string)."""
    out = await evaluate(None, ctx.completion.text, _vars(ctx), transforms)
    return out["text"]
