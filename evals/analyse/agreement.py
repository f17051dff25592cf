"""How often the automatic verdicts agree with people: human labels (right / wrong, from `evals view`) against
the run's match verdict and each metric of the pass rule (a judge's included), with Cohen's kappa."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evals.analyse.stats import format_rate

MATCH = "match"


@dataclass(frozen=True)
class Agreement:
    verdict: str  # "match" (the run's pass rule) or a metric id, at its pass threshold
    n: int  # labelled answers with this verdict
    agree: int
    kappa: float | None  # Cohen's kappa; None when either side is all one value

    @property
    def agree_text(self) -> str:
        return format_rate(self.agree, self.n)


def agreement(rows: Sequence[Mapping[str, Any]], pass_rule: Mapping[str, float]) -> list[Agreement]:
    """`rows`: each labelled answer's `label` ('right' or 'wrong'), `passed` and `scores` ({metric id: value}).
    One line for the match verdict, one per pass-rule metric."""
    from sklearn.metrics import cohen_kappa_score

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
        people, machine = [p for p, _ in pairs], [m for _, m in pairs]
        both_vary = len(set(people)) > 1 and len(set(machine)) > 1
        kappa = float(cohen_kappa_score(people, machine)) if both_vary else None
        out.append(Agreement(name, len(pairs), sum(p == m for p, m in pairs), kappa))
    return out
