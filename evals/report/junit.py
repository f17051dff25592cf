"""A check as JUnit XML, the format CI systems read natively: one test case per gate, one per example.

Gates: FAIL is a <failure>, ERROR an <error>, WARN passes with the warning in <system-out>.
Examples: one that matched in the baseline but not now is a <failure>; one the provider failed on is
an <error>; one missed in both runs is <skipped> (a known miss, like pytest's xfail); the rest pass.
Model output is data: escaped by the XML writer, with characters XML 1.0 cannot hold removed.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from evals._util import write_atomic

if TYPE_CHECKING:
    from evals.gate.check import CheckOutcome

OUTPUT_CHARS = 2000
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: object) -> str:
    return _NOT_XML.sub("\ufffd", str(text))


def _suite(parent: ET.Element, name: str, timestamp: str) -> ET.Element:
    return ET.SubElement(parent, "testsuite", name=name, timestamp=timestamp, hostname=socket.gethostname())


def _finish(suite: ET.Element) -> tuple[int, int, int, int, float]:
    cases = suite.findall("testcase")
    counts = (len(cases), sum(c.find("failure") is not None for c in cases),
              sum(c.find("error") is not None for c in cases), sum(c.find("skipped") is not None for c in cases))
    elapsed = sum(float(c.get("time", "0")) for c in cases)
    for key, value in zip(("tests", "failures", "errors", "skipped"), counts, strict=True):
        suite.set(key, str(value))
    suite.set("time", f"{elapsed:.3f}")
    return (*counts, elapsed)


def _case(suite: ET.Element, classname: str, name: str, seconds: float = 0.0) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=classname, name=_clean(name), time=f"{seconds:.3f}")


def _child(case: ET.Element, tag: str, message: str, kind: str, text: str = "") -> None:
    el = ET.SubElement(case, tag, message=_clean(message)[:500], type=kind)
    el.text = _clean(text or message)


def _scores(scores: dict[str, float | None]) -> str:
    return ", ".join(f"{m}={'-' if v is None else f'{v:.3f}'}" for m, v in scores.items())


def check_junit(outcome: CheckOutcome) -> str:
    o = outcome
    timestamp = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    root = ET.Element("testsuites", name=_clean(f"evals check {o.task} ({o.model})"))
    gates = _suite(root, f"evals.gate.check.{o.task}.gates", timestamp)
    props = ET.SubElement(gates, "properties")
    for name, value in (("task", o.task), ("model", o.model), ("run", o.run_id), ("baseline", o.baseline_run_id),
                        ("status", o.status), ("exit_code", o.exit_code)):
        ET.SubElement(props, "property", name=name, value=_clean(value))
    classname = f"evals.gate.check.{o.task}.gates"
    for g in o.gates:
        case = _case(gates, classname, g.name)
        if g.status == "fail":
            _child(case, "failure", g.message, "regression")
        elif g.status == "error":
            _child(case, "error", g.message, "provider-error")
        else:
            ET.SubElement(case, "system-out").text = _clean(f"{g.status.upper()}: {g.message}")
    examples = _suite(root, f"evals.gate.check.{o.task}.examples", timestamp)
    classname = f"evals.gate.check.{o.task}.examples"
    for e in o.examples:
        case = _case(examples, classname, e.example_id, e.latency_s or 0.0)
        answer = (e.output or "")[:OUTPUT_CHARS]
        if e.status == "regressed":
            _child(case, "failure", f"regressed: matched in baseline {o.baseline_run_id}, not in run {o.run_id}",
                   "regressed", f"scores: {_scores(e.scores)}\noutput:\n{answer}")
        elif e.status == "error":
            _child(case, "error", f"the provider failed after retries: {e.error}", "provider-error")
        elif e.status == "known-miss" or (e.status == "new" and not e.passed):
            ET.SubElement(case, "skipped", message="known miss: did not match in the baseline either"
                          if e.status == "known-miss" else "not matched; not in the baseline")
        else:
            ET.SubElement(case, "system-out").text = _clean(
                f"{'improved: did not match in the baseline' if e.status == 'improved' else e.status}; "
                f"scores: {_scores(e.scores)}")
    totals = [_finish(gates), _finish(examples)]
    for i, key in enumerate(("tests", "failures", "errors", "skipped")):
        root.set(key, str(sum(t[i] for t in totals)))
    root.set("time", f"{sum(t[4] for t in totals):.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path: str | Path, outcome: CheckOutcome) -> None:
    write_atomic(path, check_junit(outcome))
