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
    allow_host: Annotated[list[str] | None, typer.Option(
        "--allow-host", metavar="NAME", help="Another name the viewer answers to in the Host header (repeatable; "
        "*.domain for a domain's names, '*' for any)."),
    ] = None,
) -> None:
    """Browse runs, examples, comparisons and checks in a local web viewer, and label answers right or wrong."""
    from evals._util import redact_url
    from evals.run.store import store_location
    from evals.view.app import bind, create_app, serve, url_of
    from evals.view.hosts import LOOPBACK, WILDCARDS, allowed_hosts

    path = store_location(store)
    allowed = allowed_hosts(host, allow_host or ())
    web = create_app(path, allowed_hosts=allowed)  # a missing or old store is one line, before binding
    sock = bind(host, port)
    url = url_of(sock, "127.0.0.1" if host in WILDCARDS else host)
    say(f"evals view: {redact_url(str(path))} (results read-only) at {url}")
    if host in LOOPBACK:
        say("listening on this machine only (--host to open it to others); Ctrl-C stops")
    else:
        err_console.print(f"[yellow]warning:[/] listening on {host}: anyone who can reach this machine can read the "
                          "store's inputs and outputs; Ctrl-C stops", highlight=False)
    say("answers to any Host (--allow-host '*')" if allowed == ["*"] else
        f"answers to Host: {', '.join(allowed)} (--allow-host NAME adds one)")
    serve(web, sock)


def say(text: str) -> None:
    err_console.print(text, markup=False, highlight=False)
