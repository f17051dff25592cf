"""`evals view`: browse the run store in a local web viewer."""

from __future__ import annotations

from typing import Annotated

import typer

from evals.cli.app import StoreOpt, app, err_console


@app.command()
def view(
    store: StoreOpt = None,
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free one).", min=0, max=65535)] = 8700,
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback lets other machines in.")]
    = "127.0.0.1",
) -> None:
    """Browse runs, examples, comparisons and checks in a local web viewer, and label answers right or wrong."""
    from evals.run.store import default_store_path
    from evals.view.app import LOOPBACK, bind, create_app, serve, url_of

    path = store or default_store_path()
    loopback = host in LOOPBACK
    allowed = LOOPBACK if loopback else ("*",) if host in ("0.0.0.0", "::") else (host, *LOOPBACK)
    web = create_app(path, allowed_hosts=allowed)  # a missing or old store is one line, before binding
    sock = bind(host, port)
    url = url_of(sock, "127.0.0.1" if host in ("0.0.0.0", "::") else host)
    err_console.print(f"evals view: {path} (results read-only) at {url}", markup=False, highlight=False)
    if loopback:
        err_console.print("listening on this machine only (--host to open it to others); Ctrl-C stops",
                          markup=False, highlight=False)
    else:
        err_console.print(f"[yellow]warning:[/] listening on {host}: anyone who can reach this machine can read the "
                          "store's inputs and outputs; Ctrl-C stops", highlight=False)
    serve(web, sock)
