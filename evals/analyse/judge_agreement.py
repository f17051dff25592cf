"""Judges checked against people and against themselves.

People's labels come from the golden set (task.yaml `dataset.human` names the field: a score on the
judge's scale, pass/fail, or a mapping of judge metric id to either). Per judge metric of a run: how
often judge and people agree (with a Wilson interval), Cohen's kappa (quadratic-weighted on a 1-5 style
scale) with its asymptotic 95% interval (stats.cohen_kappa), the confusion matrix, the examples where they
disagree most, and, when the judge was asked several times (`repeats`), its self-consistency as
Krippendorff's alpha over the repeats (interval distances on a numeric scale, nominal for pass/fail).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from evals.analyse.rates import wilson_interval
from evals.analyse.stats import cohen_kappa
from evals.errors import EvalsError
from evals.types import Sample

JUDGE_METRICS = ("rubric_judge", "answer_judge")  # metrics whose value is a judge's verdict on a scale
LOW_KAPPA = 0.6  # below: at best "moderate" agreement (Landis and Koch 1977)
LOW_ALPHA = 0.667  # below: too inconsistent to draw even tentative conclusions (Krippendorff 2004)
PASS, FAIL = "pass", "fail"
PASS_WORDS = {True: PASS, False: FAIL, "pass": PASS, "fail": FAIL, "right": PASS, "wrong": FAIL}  # 1/0 == True/False


@dataclass(frozen=True)
class JudgeAgreement:
    metric: str
    scale: str  # "1-5" style or "pass_fail"
    n: int  # examples with both a label from people and a score from the judge
    agree: int
    agree_ci: tuple[float, float]
    kappa: float | None  # None when people or the judge used only one value
    kappa_ci: tuple[float, float] | None
    weighted: bool  # quadratic weights (numeric scales)
    labels: list[Any]  # the scale's values: rows (people) and columns (the judge) of `confusion`
    confusion: list[list[int]]
    disagreements: list[dict[str, Any]] = field(default_factory=list)  # largest first: id, human, judge, reasoning
    repeats: int = 1
    self_consistency: float | None = None  # Krippendorff's alpha over the judge's repeats

    @property
    def warnings(self) -> list[str]:
        out = []
        if self.kappa is not None and self.kappa < LOW_KAPPA:
            out.append(f"judge metric '{self.metric}' agrees with people only at kappa {self.kappa:.2f} "
                       f"({self.agree}/{self.n} the same)")
        if self.self_consistency is not None and self.self_consistency < LOW_ALPHA:
            out.append(f"judge metric '{self.metric}' disagrees with itself across its {self.repeats} repeats "
                       f"(Krippendorff's alpha {self.self_consistency:.2f})")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "warnings": self.warnings}


def judge_metrics(manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The run's judge metrics with their full configuration (scale, repeats, judge), by metric id."""
    return {m["id"]: m.get("config") or m.get("args") or {} for m in manifest.get("metrics") or []
            if m.get("name") in JUDGE_METRICS}


def judge_scale(config: Mapping[str, Any]) -> tuple[int, int] | None:
    """A judge metric's scale from its configuration: (low, high), or None for pass_fail."""
    scale = str(config.get("scale", "1-5"))
    if scale == "pass_fail":
        return None
    low, _, high = scale.partition("-")
    return int(low), int(high)


def human_label(value: Any, metric: str, scale: tuple[int, int] | None) -> Any:
    """A person's label for this judge metric, on its scale; raises ValueError saying what the scale takes."""
    if isinstance(value, Mapping):
        value = value.get(metric)
    if value is None:
        return None
    if scale is None:
        key = value.lower() if isinstance(value, str) else value
        if key not in PASS_WORDS or isinstance(key, float):
            raise ValueError(f"'{metric}' judges pass_fail: a label is pass or fail (true/false, right/wrong), "
                             f"not {value!r}")
        return PASS_WORDS[key]
    low, high = scale
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or not low <= value <= high:
        raise ValueError(f"'{metric}' judges on {low}-{high}: a label is a whole number from {low} to {high}, "
                         f"not {value!r}")
    return int(value)


def labels_for(samples: Sequence[Sample], metric: str, scale: tuple[int, int] | None, *, where: str,
               field_name: str) -> dict[str, Any]:
    """Example id -> label, each checked against the judge's scale (a bad one names file, line and field)."""
    out = {}
    for s in samples:
        try:
            label = human_label(s.human, metric, scale)
        except ValueError as e:
            sub = f".{metric}" if isinstance(s.human, Mapping) else ""
            raise EvalsError(str(e), file=where, line=s.line, field=field_name + sub) from None
        if label is not None:
            out[s.id] = label
    return out


def _judge_label(value: float, scale: tuple[int, int] | None) -> Any:
    """The judge's score (its repeats averaged) back on its scale: rounded, or pass from a majority."""
    if scale is None:
        return PASS if value >= 0.5 else FAIL
    low, high = scale
    return int(np.clip(np.floor(low + value * (high - low) + 0.5), low, high))


def krippendorff_alpha(units: Sequence[Sequence[Any]], numeric: bool) -> float | None:
    """Krippendorff's alpha over units each rated several times (here: an example's judge repeats), with
    squared (interval) or 0/1 (nominal) distances; units with fewer than two ratings do not count."""
    units = [list(u) for u in units if len(u) >= 2]
    values = [v for u in units for v in u]
    n = len(values)
    if n < 2:
        return None

    def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a - b) ** 2 if numeric else (a != b).astype(float)

    encode = {v: i for i, v in enumerate(sorted(set(values), key=str))}
    as_array = (lambda u: np.asarray(u, float)) if numeric else (lambda u: np.asarray([encode[v] for v in u]))
    observed = sum(distance(*np.meshgrid(as_array(u), as_array(u))).sum() / (len(u) - 1) for u in units) / n
    everything = as_array(values)
    expected = distance(*np.meshgrid(everything, everything)).sum() / (n * (n - 1))
    return 1.0 if expected == 0 else float(1 - observed / expected)


def agreement(df: pd.DataFrame, labels: Mapping[str, Any], metric: str, config: Mapping[str, Any],
              worst: int = 5, *, require_labels: bool = True) -> JudgeAgreement:
    """Judge metric `metric` of a run (a frame from `load_run`; each example's first attempt) against people;
    without `require_labels`, no labelled example leaves only the judge's self-consistency."""
    scale = judge_scale(config)
    first = df.sort_values("attempt", kind="stable").drop_duplicates("example_id") if "attempt" in df else df
    pairs, repeats = [], []
    for row in first.itertuples():
        score = (row.scores or {}).get(metric) or {}
        if score.get("value") is None:
            continue
        if len(raws := (score.get("details") or {}).get("scores") or []) > 1:
            repeats.append(raws)
        if (human := labels.get(str(row.example_id))) is not None:
            pairs.append((str(row.example_id), human, _judge_label(score["value"], scale),
                          score.get("explanation") or ""))
    if not pairs and require_labels:
        raise EvalsError(f"no example has both a label from people and a score from judge metric '{metric}'")
    values = [PASS, FAIL] if scale is None else list(range(scale[0], scale[1] + 1))
    index = {v: i for i, v in enumerate(values)}
    table = np.zeros((len(values), len(values)), int)
    for _, human, judged, _ in pairs:
        table[index[human], index[judged]] += 1
    weighted = scale is not None
    kappa, ci = cohen_kappa(table, weighted) or (None, None)
    agree = sum(h == j for _, h, j, _ in pairs)
    gap = (lambda h, j: abs(h - j)) if weighted else (lambda h, j: float(h != j))
    off = sorted((p for p in pairs if p[1] != p[2]), key=lambda p: -gap(p[1], p[2]))[:worst]
    return JudgeAgreement(
        metric=metric, scale=str(config.get("scale", "1-5")), n=len(pairs), agree=agree,
        agree_ci=wilson_interval(agree, len(pairs)), kappa=kappa, kappa_ci=ci, weighted=weighted,
        labels=values, confusion=table.tolist(),
        disagreements=[{"example_id": i, "human": h, "judge": j, "reasoning": r} for i, h, j, r in off],
        repeats=int(config.get("repeats") or 1),
        self_consistency=krippendorff_alpha(repeats, numeric=weighted) if repeats else None,
    )
