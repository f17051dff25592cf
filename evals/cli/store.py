"""`evals store copy`: one store's tables into another (a SQLite file and a PostgreSQL database, either way)."""

from __future__ import annotations

from typing import Annotated

import typer

from evals.cli.app import app, command_group, console

store_app = command_group(help="Whole stores: copy one into another (SQLite and PostgreSQL, either way).")
app.add_typer(store_app, name="store")


@store_app.command("copy")
def copy(
    src: Annotated[str, typer.Argument(metavar="SRC", help="The store to copy: a SQLite file or a postgresql:// URL.")],
    dst: Annotated[str, typer.Argument(metavar="DST", help="A new or empty store to copy it into.")],
) -> None:
    """Copy every table of SRC into DST (all or nothing), then check each table's count against SRC's."""
    from evals._util import redact_url
    from evals.run.store_copy import copy_store

    counts = copy_store(src, dst)
    for table, n in counts.items():
        console.print(f"{table}: {n:,} row(s)", highlight=False)
    console.print(f"copied {sum(counts.values()):,} row(s) in {len(counts)} tables to {redact_url(dst)}; "
                  "every count checked", highlight=False)
