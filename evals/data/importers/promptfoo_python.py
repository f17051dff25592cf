"""promptfoo `python` assertions -> promptfoo_python.py beside task.yaml, only with `evals import --allow-code`.

An imported config is data, so its Python never runs unless the user asks: with --allow-code each python
assertion becomes one function of a generated file (an inline expression or function body as written, a
`file://` file inside the config's folder copied in whole), keyed by example id and its index among the
example's python assertions. task.yaml's `metrics:` names the file's entry point (id `python`); golden lines
point at it only by that id and the index (evals.metrics.python_assert). Nothing is run here: the code is
only compiled, so a syntax error is reported now, with its test.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from evals.data.importers.promptfoo_mapping import PYTHON_ID, Assertion, Case
from evals.errors import EvalsError

FILE = "promptfoo_python.py"
ENTRY = "assertion"
METRIC = {"name": f"{FILE}:{ENTRY}", "id": PYTHON_ID}


@dataclass
class PythonAssertions:
    """The python assertions met while mapping: add() gives each its index on its example."""

    cases: list[Case]
    folder: Path  # the config's folder: a file:// assertion must be inside it
    found: list[tuple[int, int, Assertion]] = field(default_factory=list)  # (case, index, assertion)
    files: dict[Path, str] = field(default_factory=dict)  # file:// source -> its module's name in the file

    def add(self, case: int, a: Assertion) -> int:
        index = sum(1 for c, _, _ in self.found if c == case)
        where = self.cases[case].where
        if not isinstance(a.value, str) or not a.value.strip():
            raise EvalsError(f"{where}: a python assertion needs its code (or a file://...py) as its value")
        if a.value.startswith("file://"):
            self._file(a.value, where)
        else:
            _compile(_function("_check", a.value), where)
        self.found.append((case, index, a))
        return index

    def _file(self, ref: str, where: str) -> tuple[str, str]:
        """(the module name in the generated file, the function) of a `file://path.py[:function]`."""
        name, _, fn = ref.removeprefix("file://").partition(":")
        folder = self.folder.resolve()
        target = (self.folder / name).resolve()
        if not target.is_relative_to(folder):
            raise EvalsError(f"{where}: {ref} is outside the config's folder ({folder}); only files inside it "
                             "are read")
        if target.suffix != ".py" or not target.is_file():
            raise EvalsError(f"{where}: {ref}: no such Python file in {folder}")
        fn = fn or "get_assert"
        tree = _compile(target.read_text(encoding="utf-8"), f"{where} ({ref})")
        if not any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == fn for n in tree.body):
            raise EvalsError(f"{where}: {ref} defines no function {fn}(output, context)")
        module = self.files.setdefault(target, f"_file_{len(self.files) + 1}")
        return module, fn

    def source(self, ids: list[str], config: str) -> str:
        """The generated file, for these example ids (one per case)."""
        lines = [f'"""promptfoo\'s python assertions from {config}, written by `evals import promptfoo --allow-code`.',
                 "",
                 f"This is code, and it runs: task.yaml's metrics: names `{FILE}:{ENTRY}` (id `{PYTHON_ID}`); golden.jsonl",
                 f'points at an assertion only as {{"metric": "{PYTHON_ID}", "index": N}}. Read it before `evals run`.',
                 '"""', "", "import json", "import math", "",
                 "from evals.metrics.python_assert import assertions_metric, load_source", ""]
        for target, module in self.files.items():
            lines += [f"{module} = load_source({target.name!r}, {target.read_text(encoding='utf-8')!r})"]
        table = []
        for case, index, a in sorted(self.found, key=lambda x: x[:2]):
            key = (ids[case], index)
            if a.value.startswith("file://"):
                module, fn = self._file(a.value, self.cases[case].where)
                code = f"{module}.{fn}"
            else:
                code = re.sub(r"\W", "_", f"_{key[0]}_{index}")
                lines += ["", "", f"# {key[0]}: its python check {index} (the test at {self.cases[case].where})",
                          _function(code, a.value)]
            table.append(f"    {key!r}: ({code}, {a.threshold!r}),")
        lines += ["", "", "ASSERTIONS = {", *table, "}", f"{ENTRY} = assertions_metric(ASSERTIONS)", ""]
        return "\n".join(lines)


def _function(name: str, code: str) -> str:
    """promptfoo's reading of inline python: one line is an expression returned, several a function body."""
    code = code.strip("\n")
    body = textwrap.indent(textwrap.dedent(code), "    ") if "\n" in code else f"    return {code.strip()}"
    return f"def {name}(output, context):\n{body}"


def _compile(source: str, where: str) -> ast.Module:
    try:
        return ast.parse(source)
    except SyntaxError as e:
        raise EvalsError(f"{where}: the python assertion is not valid Python ({e.msg}, line {e.lineno})") from None
