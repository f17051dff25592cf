"""The Jinja2 sandbox prompts render in, with every value a template builds held to a size cap.

Jinja's own sandbox keeps templates away from Python's internals; it does not bound what they build, so
`{{ 'x' * 3000000000 }}` spends 3 GB before anything can refuse it. Here each operation that can make its
result much larger than its inputs (`*`, `**`, `+`, `~`, `%` and `format` widths, `center`, `ljust`, `indent`,
`replace`, `join`, `wordwrap`, `expandtabs`) is checked before it runs, and every other result after: no value
grows past the cap, and `render` stops as soon as the output passes it. It bounds memory, not time: a template
that loops long without output still takes that long.
"""

from __future__ import annotations

import functools
import inspect
import operator
import re
from collections.abc import Callable
from contextvars import ContextVar
from string import Formatter
from typing import Any

import jinja2
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import SandboxedEnvironment

MAX_INT_BITS = 1 << 16  # about 20,000 digits: more than a prompt prints (Python refuses past 4,300)
_LIMIT: ContextVar[int] = ContextVar("template_limit", default=1_000_000)
_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\d+|\*)?(?:\.(\d+|\*))?")
_CONTAINERS = (list, tuple, dict, set, frozenset)
_SIZED = (str, *_CONTAINERS)


class TooLarge(Exception):
    """A template built, or was about to build, a value or an output over the cap."""

    def __init__(self, limit: int, number: bool = False):
        self.limit, self.number = limit, number
        super().__init__(f"a number over {MAX_INT_BITS:,} bits" if number else f"over {limit:,} characters")


def render(template: jinja2.Template, fields: dict[str, Any], *, limit: int, cap: int) -> str:
    """The template's text, stopped as soon as it passes `limit` characters, every value it builds held to `cap`
    (TooLarge past either). Whatever else the template raises is raised as it is."""
    token = _LIMIT.set(cap)
    try:
        parts, length = [], 0
        for part in template.root_render_func(template.new_context(fields)):
            length += len(part)
            if length > limit:
                raise TooLarge(cap)
            parts.append(part)
        return "".join(parts)
    finally:
        _LIMIT.reset(token)


def size(value: Any, limit: int) -> int:
    """About how many characters `value` prints as, references counted each time they occur (a list holding
    one string a million times is a million of them); counting stops past `limit`, so the walk is bounded."""
    if type(value) is str:
        return len(value)
    if not isinstance(value, _CONTAINERS):
        return _scalar_size(value)
    total, stack = 0, [value]
    while stack and total <= limit:
        v = stack.pop()
        if type(v) is str:
            total += len(v) + 2
        elif isinstance(v, dict):
            total += 2 + len(v)
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, _CONTAINERS):
            total += 2 + len(v)
            stack.extend(v)
        else:
            total += _scalar_size(v)
    return total


def _scalar_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    return value.bit_length() // 3 + 1 if isinstance(value, int) else 8


def _over(n: int) -> None:
    """Refuse a value of `n` characters (or bits) past the cap."""
    limit = _LIMIT.get()
    if n > limit:
        raise TooLarge(limit)


def _check(*values: Any) -> None:
    """Refuse values that together print past the cap."""
    limit = _LIMIT.get()
    total = 0
    for v in values:
        total += len(v) if type(v) is str else size(v, limit)
    if total > limit:
        raise TooLarge(limit)


def _widths(numbers: list[str], args: Any = ()) -> None:
    """A format whose widths (written, or `*` taken from the arguments) add up past the cap."""
    total = sum(int(n) for n in numbers if n.isdigit())
    if "*" in numbers:
        total += sum(a for a in (args if isinstance(args, tuple) else (args,)) if isinstance(a, int))
    _over(total)


def _format_widths(text: str, args: tuple[Any, ...], kwargs: Any) -> None:
    numbers = []
    for _, name, spec, _ in Formatter().parse(text):
        if name is not None and spec:
            numbers += re.findall(r"\d+", spec) + (["*"] if "{" in spec else [])
    _widths(numbers, (*args, *(kwargs.values() if isinstance(kwargs, dict) else ())))


def _percent_widths(text: str, args: Any) -> None:
    _widths([n for m in _PERCENT.finditer(text) for n in m.groups() if n], args)


def _replace(text: str, old: str, new: str) -> None:
    count = text.count(old) if old else len(text) + 1
    _over(len(text) + count * (len(new) - len(old)))


def _before_method(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """The str methods whose result can be far larger than the string and their arguments."""
    owner, name = getattr(target, "__self__", None), getattr(target, "__name__", "")
    if not isinstance(owner, str) or not (args or kwargs):
        return
    first = args[0] if args else None
    if name in ("center", "ljust", "rjust", "zfill") and isinstance(first, int):
        _over(first)
    elif name == "expandtabs" and isinstance(first, int):
        _over(len(owner) + owner.count("\t") * first)
    elif name == "replace" and len(args) >= 2 and isinstance(first, str) and isinstance(args[1], str):
        _replace(owner, first, args[1])
    elif name == "join" and hasattr(first, "__len__"):
        _over(size(first, _LIMIT.get()) + len(owner) * len(first))
    elif name == "format":
        _format_widths(owner, args, kwargs)
    elif name == "format_map":
        _format_widths(owner, (), first)


def _filter_before(name: str, arguments: dict[str, Any]) -> None:
    """The filters whose result can be far larger than their arguments, by Jinja's names for those."""
    value = arguments.get("s", arguments.get("value"))
    if name == "center" and isinstance(arguments.get("width"), int):
        _over(arguments["width"])
    elif name == "indent" and isinstance(value, str):
        width = arguments.get("width", 4)
        pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        _over(len(value) + pad * (value.count("\n") + 1))
    elif name == "replace" and isinstance(value, str):
        _replace(value, str(arguments.get("old")), str(arguments.get("new")))
    elif name == "join" and hasattr(value, "__len__"):
        _over(size(value, _LIMIT.get()) + len(str(arguments.get("d", ""))) * len(value))
    elif name == "wordwrap" and isinstance(value, str):
        width = arguments.get("width", 79)
        breaks = len(value) // max(1, width if isinstance(width, int) else 1) + value.count("\n") + 1
        _over(len(value) + breaks * len(str(arguments.get("wrapstring") or "\n")))
    elif name == "format" and isinstance(value, str):
        _percent_widths(value, tuple(arguments.get("args", ())))


WATCHED = ("center", "indent", "replace", "join", "wordwrap", "format")


def _bounded_filter(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    """`f` with its arguments and result held to the cap, and, for the WATCHED filters, what it would build."""
    named = [p.name for p in inspect.signature(f).parameters.values()
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)] if name in WATCHED else None

    @functools.wraps(f)
    def run(*args: Any, **kwargs: Any) -> Any:
        _check(*args, *kwargs.values())
        if named is not None:
            _filter_before(name, {**dict(zip(named, args)), "args": args[len(named):], **kwargs})
        result = f(*args, **kwargs)
        _check(result)
        return result

    return run


def _over_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise TooLarge(_LIMIT.get(), number=True)


BINOPS = {"*": operator.mul, "**": operator.pow, "+": operator.add, "%": operator.mod}


class _Codegen(CodeGenerator):
    """`a ~ b` joined through the environment, so the joined length is checked first."""

    def visit_Concat(self, node: Any, frame: Any) -> None:
        self.write("environment.bounded_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox, with what templates build held to the cap of the render in progress."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _Codegen

    def __init__(self, **options: Any):
        super().__init__(finalize=self._output, **options)
        self.globals.pop("lipsum", None)  # lorem ipsum of any length: no prompt needs it
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    @staticmethod
    def _output(value: Any) -> Any:
        if type(value) is not str:
            _check(value)
        return value  # a string is held to the cap where it is built

    def bounded_join(self, parts: tuple[Any, ...]) -> str:
        _check(*parts)
        return "".join(map(str, parts))

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "*":
            if isinstance(left, int) and isinstance(right, int) and left and right:
                _over_bits(left.bit_length() + right.bit_length())
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and n > 0:
                    _over(size(seq, _LIMIT.get() // n + 1) * n)
        elif op == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
            _over_bits(right * left.bit_length())
        elif op == "+" and isinstance(left, _SIZED) and isinstance(right, _SIZED):
            _check(left, right)
        elif op == "%" and isinstance(left, str):
            _percent_widths(left, right)
        result = BINOPS[op](left, right)
        _check(result)
        return result

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's names)
        _check(*args, *kwargs.values())
        _before_method(getattr(__obj, "__wrapped__", __obj), args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        _check(result)
        return result


environment = BoundedSandbox(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)
