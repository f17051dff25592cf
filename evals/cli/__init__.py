"""The `evals` command line: one module per command group, each parsing, calling the package, printing.

Commands of other packages join through the `evals.commands` entry-point group: each names a function
`register_commands(app, console, err_console)` (finetune's is one), so the core never imports them.
"""

from __future__ import annotations

import atexit
import gc
import importlib
from importlib.metadata import entry_points

from evals._util import close_databases
from evals.cli.app import app, console, err_console

COMMANDS_GROUP = "evals.commands"

for _module in ("runs", "decide", "optimize", "route", "judges", "importing", "check", "distill", "view", "store"):  # each registers its commands; this order is --help's
    importlib.import_module(f"evals.cli.{_module}")
for _entry in entry_points(group=COMMANDS_GROUP):
    _entry.load()(app, console, err_console)



def main() -> None:
    """The `evals` command. At exit its databases are closed, then the collector's last pass skips what
    start-up imported (the SDKs, pandas: a third of a second of walking objects that die with the process)."""
    atexit.register(exit_quickly)
    app(prog_name="evals")


def exit_quickly() -> None:
    close_databases()
    gc.freeze()


__all__ = ["app", "main"]
