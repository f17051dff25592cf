"""How often the automatic verdicts agree with people: human labels (right / wrong, from `evals view`) against
the run's match verdict and each metric of the pass rule (a judge's included): the share that agree with its
Wilson interval, and Cohen's kappa with its CI (both from stats.py, as for `evals judge-agreement`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evals.analyse.rates import format_rate
from evals.analyse.stats import cohen_kappa

MATCH = "match"


@dataclass(frozen=True)
class Agreement:
    verdict: str  # "match" (the run's pass rule) or a metric id, at its pass threshold
    n: int  # labelled answers with this verdict
    agree: int
    kappa: float | None  # Cohen's kappa; None when either side is all one value
    kappa_ci: tuple[float, float] | None = None  # its asymptotic 95% interval

    @property
    def agree_text(self) -> str:
        return format_rate(self.agree, self.n)


def agreement(rows: Sequence[Mapping[str, Any]], pass_rule: Mapping[str, float]) -> list[Agreement]:
    """`rows`: each labelled answer's `label` ('right' or 'wrong'), `passed` and `scores` ({metric id: value}).
    One line for the match verdict, one per pass-rule metric."""
    verdicts: dict[str, list[tuple[bool, bool]]] = {MATCH: []}
    for row in rows:
        right = row["label"] == "right"
        verdicts[MATCH].append((right, bool(row["passed"])))
        for metric, threshold in pass_rule.items():
            value = (row.get("scores") or {}).get(metric)
            if value is not None:
                verdicts.setdefault(metric, []).append((right, value >= threshold))
    out = []
    for name, pairs in verdicts.items():
        if not pairs:
            continue
        table = np.zeros((2, 2), int)  # rows people, columns the verdict: right/pass first
        for person, machine in pairs:
            table[int(not person), int(not machine)] += 1
        kappa, ci = cohen_kappa(table) or (None, None)
        out.append(Agreement(name, len(pairs), sum(p == m for p, m in pairs), kappa, ci))
    return out
