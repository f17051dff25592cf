"""Every third-party package the evals and finetune packages import, at the top of a module or inside a function,
is declared in pyproject.toml (a core dependency or an extra), so nothing works only because another package
happened to bring it; and nothing the code no longer imports is a core dependency."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("evals", "finetune")
# Core dependencies the code reaches without an import statement naming them: the two SDKs, imported by name when
# a provider opens its client (evals/providers/_http.py:open_client), and Starlette's form parser.
USED_WITHOUT_IMPORT = {"openai", "anthropic", "python-multipart"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalise(re.match(r"[A-Za-z0-9._-]+", requirement).group(0))


def declared() -> tuple[set[str], set[str]]:
    """(core dependencies, every dependency of an extra), by normalised name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {requirement_name(r) for r in project["dependencies"]}
    extras = {requirement_name(r) for group in project["optional-dependencies"].values() for r in group}
    return core, extras


def imported_modules() -> dict[str, str]:
    """Top-level module name -> the first file:line importing it, over every module of the packages."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def third_party(modules: dict[str, str]) -> dict[str, str]:
    """Distribution (normalised) -> where it is imported, for every import that is not ours or the stdlib."""
    owners = packages_distributions()
    out: dict[str, str] = {}
    for module, where in modules.items():
        if module in PACKAGES or module in sys.stdlib_module_names or module == "__future__":
            continue
        assert module in owners, f"{where}: imports {module}, which no installed distribution provides"
        for dist in owners[module]:
            out.setdefault(normalise(dist), where)
    return out


def test_every_imported_package_is_declared() -> None:
    core, extras = declared()
    missing = {dist: where for dist, where in third_party(imported_modules()).items() if dist not in core | extras}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_every_core_dependency_is_imported_by_the_code() -> None:
    core, _ = declared()
    used = set(third_party(imported_modules())) | USED_WITHOUT_IMPORT
    assert not core - used, f"core dependencies the code never imports (move them to an extra): {core - used}"
