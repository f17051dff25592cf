"""The flags every command that calls models shares (evals.cli.app.calls_models) are the same options, with the
same help, on each, with --cache's default per command; the command gets them as one CallFlags."""

from __future__ import annotations

import typer

from evals.cli import app
from evals.cli.app import CALL_FLAGS, CallFlags, calls_models

CALLERS = {"run": True, "check": False, "decide": True, "route": True, "distill": True, "optimize": True}


def options(command: str) -> dict[str, object]:
    click_app = typer.main.get_command(app)
    return {p.name: p for p in click_app.commands[command].params}


def test_every_command_that_calls_models_has_the_shared_flags() -> None:
    reference = options("run")
    for command, cache in CALLERS.items():
        params = options(command)
        assert set(CALL_FLAGS) <= set(params), (command, set(CALL_FLAGS) - set(params))
        for name in CALL_FLAGS:
            assert params[name].opts == reference[name].opts and params[name].help == reference[name].help, name
        assert params["cache"].default is cache, command
        assert "calls" not in params


def test_the_command_receives_the_flags_as_one_value_and_keeps_its_own() -> None:
    seen = []

    @calls_models(cache=False, budget=False)
    def command(task: str, budget: float | None = None, calls: CallFlags = CallFlags(), as_json: bool = False):
        seen.append((task, budget, calls, as_json))

    command(task="t", budget=2.5, as_json=True, **{n: CallFlags.__dataclass_fields__[n].default
                                                  for n in CALL_FLAGS if n != "budget"} | {"timeout": 9.0, "cache": False})
    [(task, budget, calls, as_json)] = seen
    assert (task, budget, as_json) == ("t", 2.5, True)
    assert calls == CallFlags(timeout=9.0, cache=False)  # budget is the command's own
    options_, cache = calls.setup()
    assert (options_.timeout_s, options_.budget_usd, cache) == (9.0, None, None)
