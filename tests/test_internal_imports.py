"""Every name imported from our own packages exists, including the imports inside functions, which only run when
their command does: a name renamed or removed in one module fails here, not in front of a user (a lazy import of
a removed helper once broke `evals finetune --curve` while every module still imported)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = ("evals", "finetune")
SEARCHED = ("evals", "finetune", "tests", "bench", "scripts")


def our_imports() -> dict[tuple[str, str], str]:
    """(module, name) -> the first file:line importing that name from one of our packages."""
    found: dict[tuple[str, str], str] = {}
    for folder in SEARCHED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, ast.ImportFrom) and not node.level and node.module \
                        and node.module.split(".")[0] in OURS:
                    for alias in node.names:
                        found.setdefault((node.module, alias.name), f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_name_imported_from_our_packages_exists() -> None:
    missing = []
    for (module_name, name), where in our_imports().items():
        module = importlib.import_module(module_name)
        if name == "*" or hasattr(module, name):
            continue
        try:
            importlib.import_module(f"{module_name}.{name}")  # a submodule
        except ModuleNotFoundError:
            missing.append(f"{where}: from {module_name} import {name}")
    assert not missing, "imports of names that do not exist:\n" + "\n".join(missing)
