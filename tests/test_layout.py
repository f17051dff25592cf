"""The package's shape: dependencies that run one way (no import cycle, and no import from a lower stage to
a higher one, lazy imports included), a kernel that imports nothing else of evals, provider names compared only
inside evals/providers/, and files short enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("evals", "finetune")
KERNEL = {"evals.types", "evals.managed", "evals.errors", "evals.registry", "evals._util", "evals.settings",
          "evals.chat"}
# The stage order, lowest first (ARCHITECTURE.md): cli -> view/report -> gate -> analyse -> run -> data ->
# metrics/providers -> kernel. Rooms on one floor may use each other; above them all, the package's public API
# (evals/__init__.py, `python -m evals`) and finetune, a package on top that registers its own command.
FLOORS = {"metrics": 1, "providers": 1, "data": 2, "run": 3, "analyse": 4, "gate": 5, "report": 6, "view": 6,
          "cli": 7}
TOP = 8


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imports(source: str, known: set[str]) -> set[str]:
    """Every module of ours that `source` imports, anywhere in it (function bodies and TYPE_CHECKING too)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: {d for d in imports(p.read_text(), known) if d != m and not m.startswith(d + ".")}
            for m, p in mods.items()}


def test_no_import_cycle() -> None:
    g = graph()
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(g.get(m, ())):
            if state.get(d) == 1:
                cycle = path[path.index(d):] + [d] if d in path else [m, d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])


def test_the_kernel_imports_nothing_else_of_evals() -> None:
    g = graph()
    for m in KERNEL:
        assert g[m] <= KERNEL, f"{m} imports {sorted(g[m] - KERNEL)}"


def test_no_file_over_500_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in modules().values()
            if (n := len(p.read_text().splitlines())) > 500}
    assert not long, long


def floor(module: str) -> int:
    if module in KERNEL:
        return 0
    parts = module.split(".")
    if parts[0] != "evals" or len(parts) == 1 or module == "evals.__main__":
        return TOP
    return FLOORS[parts[1]]  # a module outside every stage fails here: give it a floor


def upward_imports(g: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} (floor {floor(m)}) imports {d} (floor {floor(d)})"
                  for m, deps in g.items() for d in deps if floor(d) > floor(m))


def test_no_import_runs_from_a_lower_stage_to_a_higher_one() -> None:
    assert upward_imports(graph()) == []


def test_the_stage_check_sees_an_import_inside_a_function() -> None:
    """A lazy import up the stages (a judge loading the store when it scores) counts as one at the top would."""
    found = imports("def score(ctx):\n    from evals.run.store import Store\n    return Store\n", set(modules()))
    assert found == {"evals.run.store"}
    assert upward_imports({"evals.metrics.judges": found}) == [
        "evals.metrics.judges (floor 1) imports evals.run.store (floor 3)"]


# ---- provider names -----------------------------------------------------------------------------------------


def provider_names() -> set[str]:
    from evals.providers import providers

    return set(providers.names())


def _names_a_provider(node: ast.AST) -> bool:
    """The expression reads a provider's name: `spec.provider`, a variable called provider or provider_name."""
    return any((isinstance(n, ast.Attribute) and n.attr == "provider")
               or (isinstance(n, ast.Name) and n.id.lower() in ("provider", "provider_name"))
               for n in ast.walk(node))


def _strings(node: ast.AST) -> set[str]:
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return {i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)}


def provider_name_tests(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, what) for each place a provider name is tested as a string: compared with one (==, !=, in), a
    `match` on one, or a table keyed by provider names (looked up by a spec's provider)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            named = set().union(*map(_strings, operands)) & names
            if named and any(_names_a_provider(o) for o in operands):
                found.append((node.lineno, f"compares a provider with {sorted(named)}"))
        elif isinstance(node, ast.Match) and _names_a_provider(node.subject):
            named = {c.pattern.value.value for c in node.cases if isinstance(c.pattern, ast.MatchValue)
                     and isinstance(c.pattern.value, ast.Constant)} & names
            if named:
                found.append((node.lineno, f"matches a provider against {sorted(named)}"))
        elif isinstance(node, ast.Dict):
            named = {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)} & names
            if named:
                found.append((node.lineno, f"a table keyed by provider names {sorted(named)}"))
    return found


def test_no_provider_name_is_tested_as_a_string_outside_the_providers() -> None:
    """Callers ask a provider's class what it can do (evals.providers.provider_class): a new backend, a plugin
    among them, then works everywhere without an edit outside its own module. (finetune's `--on local|openai`
    names where training runs, not a provider, and is compared as such.)"""
    names = provider_names()
    found = [f"{path.relative_to(ROOT)}:{line}: {what}" for module, path in sorted(modules().items())
             if not module.startswith("evals.providers")
             for line, what in provider_name_tests(path.read_text(), names)]
    assert found == []


@pytest.mark.parametrize("source", [
    'if config.spec.provider == "local": pass',
    'x = spec.provider in ("openai", "anthropic")',
    'ok = "fake" != provider_name',
    'match spec.provider:\n    case "openai": pass',
    'BASE_URL_ENV = {"openai": "OPENAI_BASE_URL"}',
])
def test_the_provider_name_scan_finds_each_form(source: str) -> None:
    assert len(provider_name_tests(source, provider_names())) == 1
