"""Import every promptfoo config under a folder and say, per config, how much of it evals carries.

    .venv/bin/python bench/promptfoo_import.py bench/promptfoo_configs

Prints one row per config (YAML or tests CSV): imported or why not, the assertions carried (task metrics count
once per example), those not carried, and the not-carried ones by type. Nothing is written.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.data.importers import import_file  # noqa: E402
from evals.errors import EvalsError  # noqa: E402

_UNSUPPORTED = re.compile(r"^`([^`]+)` in test ")


def _carried(checks: list[dict]) -> int:
    return sum(_carried(c["value"]) if c["type"] == "assert-set" else c["type"] != "unsupported" for c in checks)


def survey(path: Path) -> dict:
    try:
        task = import_file(path)
    except EvalsError as e:
        return {"config": path.name, "imported": f"no: {e.message}", "carried": 0, "not_carried": Counter()}
    checks = sum(_carried(r.get(task.checks_field) or []) for r in task.rows) if task.checks_field else 0
    missing = Counter(m.group(1) for u in task.unsupported if (m := _UNSUPPORTED.match(u)))
    return {"config": path.name, "imported": "yes", "carried": checks + len(task.metrics) * len(task.rows),
            "not_carried": missing}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    configs = sorted(p for p in args.folder.rglob("*") if p.suffix in (".yaml", ".yml") or
                     (p.suffix == ".csv" and not any(p.parent.glob("*.y*ml"))))
    rows = [survey(p) for p in configs]
    print("| config | imported | assertions carried | not carried | not carried, by type |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        by_type = ", ".join(f"`{t}` x{n}" if n > 1 else f"`{t}`" for t, n in sorted(r["not_carried"].items())) or "-"
        print(f"| {r['config']} | {r['imported']} | {r['carried']} | {sum(r['not_carried'].values())} | {by_type} |")
    carried, missing = sum(r["carried"] for r in rows), sum(sum(r["not_carried"].values()) for r in rows)
    print(f"\n{len(rows)} configs, {sum(r['imported'] == 'yes' for r in rows)} imported; "
          f"{carried} assertions carried, {missing} not ({carried / max(carried + missing, 1):.0%} carried)")


if __name__ == "__main__":
    main()
