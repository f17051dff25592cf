"""`evals view`: the ASGI app (Starlette) over a run store, and the server (uvicorn) that serves it.

Pages are rendered on the server from Jinja2 templates with autoescape; nothing from the data is marked
safe. The pages carry no script at all and load only the viewer's own stylesheet and icon; every
response has a Content-Security-Policy that forbids scripts, frames and any other origin. The one
write, a reviewer's label, needs the per-session token that is in every page's form (a cross-site page
cannot read it), and a request whose Origin is another site is refused; so is a Host this server does
not answer to (DNS rebinding; evals.view.hosts says which it answers to). Results are read through a
read-only connection, and pages are built in worker threads, so a slow one never holds up the others.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from jinja2 import ChoiceLoader, Environment, PackageLoader
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from evals.errors import EvalsError, StorageError
from evals.run.store import store_location
from evals.view import pages
from evals.view.hosts import LOOPBACK, header_forms

CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY"),
                    (b"cache-control", b"no-store")]


def environment() -> Environment:
    env = Environment(loader=ChoiceLoader([PackageLoader("evals.view", "templates"),
                                           PackageLoader("evals.report", "templates")]),
                      autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(path=path, query=query)
    env.filters["num"] = lambda x, fmt=".2f": "-" if x is None else format(x, fmt)
    return env


def path(*parts: Any) -> str:
    """An app path from its parts, each quoted whole ('/runs/ab12/examples/a%2Fb')."""
    return "/" + "/".join(quote(str(p), safe="") for p in parts)


def query(params: dict[str, Any], **changes: Any) -> str:
    """'?...' of these parameters with some changed (None or '' drops one)."""
    merged = {k: v for k, v in {**params, **changes}.items() if v not in (None, "")}
    return "?" + urlencode(merged) if merged else ""


class SecurityHeaders:
    """Pure ASGI middleware: the security headers on every response, and Server-Timing (the app's time)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()

        async def wrapped(message: Any) -> None:
            if message["type"] == "http.response.start":
                took = (time.perf_counter() - start) * 1000
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *SECURITY_HEADERS,
                                      (b"server-timing", f"app;dur={took:.1f}".encode())]
            await send(message)

        await self.app(scope, receive, wrapped)


def create_app(store: str | Path, *, allowed_hosts: Sequence[str] = LOOPBACK, token: str | None = None) -> Starlette:
    """The viewer over the store at `store` (read-only; refused with one line if missing or too old), answering
    only to a Host header that names one of `allowed_hosts` (see evals.view.hosts; '*': any)."""
    viewer = pages.Viewer(store_location(store), token or secrets.token_urlsafe(24))
    env = environment()

    def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
        html = env.get_template(template).render(**context, token=viewer.token, store_path=str(viewer.store.path),
                                                 request_path=request.url.path)
        return HTMLResponse(html, status_code=status)

    async def page(request: Request, template: str, build: Callable[..., dict[str, Any]], *args: Any) -> Response:
        """The page `build(viewer, *args)` gathers, gathered and rendered in a worker thread: a long comparison or
        diff never holds up another request."""
        return await run_in_threadpool(lambda: render(request, template, build(viewer, *args)))

    async def runs(request: Request) -> Response:
        return await page(request, "runs.html.j2", pages.runs_page, dict(request.query_params))

    async def run(request: Request) -> Response:
        return await page(request, "run.html.j2", pages.run_page, request.path_params["run_id"],
                          dict(request.query_params))

    async def example(request: Request) -> Response:
        p = request.path_params
        return await page(request, "example.html.j2", pages.example_page, p["run_id"], p["example_id"])

    async def compare_form(request: Request) -> Response:
        a, b = request.query_params.get("a"), request.query_params.get("b")
        if not a or not b:
            raise EvalsError("choose a baseline (A) and a candidate (B) run to compare")
        return RedirectResponse(path("compare", a, b), status_code=303)

    async def compare(request: Request) -> Response:
        p = request.path_params
        return await page(request, "compare.html.j2", pages.compare_page, p["a"], p["b"], dict(request.query_params))

    async def checks_index(request: Request) -> Response:
        return await page(request, "checks_index.html.j2", pages.checks_index)

    async def checks(request: Request) -> Response:
        return await page(request, "checks.html.j2", pages.checks_page, request.path_params["task"])

    async def curves(request: Request) -> Response:
        return await page(request, "curves.html.j2", pages.curves_page)

    async def labels_export(request: Request) -> Response:
        text = await run_in_threadpool(pages.labels_jsonl, viewer, request.query_params.get("run"))
        return PlainTextResponse(text, media_type="application/jsonl; charset=utf-8",
                                 headers={"content-disposition": 'attachment; filename="labels.jsonl"'})

    async def label(request: Request) -> Response:
        form = await request.form()
        refuse_cross_site(request, str(form.get("token", "")), viewer.token)
        record = viewer.run(str(form.get("run", "")))
        example_id = str(form.get("example", ""))
        attempt = str(form.get("attempt", "")).strip() or "1"
        if not attempt.isdigit():
            raise EvalsError(f"attempt is a number, not '{attempt}'", field="attempt")
        if not viewer.store.database.execute("SELECT 1 FROM results WHERE run_id = ? AND example_id = ? AND"
                                               " attempt = ?", (record.id, example_id, int(attempt))).fetchone():
            raise pages.NotFound(f"run {record.id} has no attempt {attempt} of example '{example_id}'")
        viewer.writer().add_label(record.id, example_id, str(form.get("label", "")),
                                  str(form.get("comment", "")).strip() or None, int(attempt))
        return RedirectResponse(path("runs", record.id, "examples", example_id) + f"#attempt-{attempt}",
                                status_code=303)

    async def user_error(request: Request, exc: Exception) -> Response:
        status = 404 if isinstance(exc, pages.NotFound) else 500 if isinstance(exc, StorageError) else 400
        return render(request, "error.html.j2", {"title": "Not found" if status == 404 else "Error",
                                                 "message": str(exc)}, status)

    async def database_error(request: Request, exc: Exception) -> Response:  # a damaged store, read by a page
        return await user_error(request, viewer.store.read_failure(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return render(request, "error.html.j2", {"title": f"Error {exc.status_code}", "message": str(exc.detail)},
                      exc.status_code)

    routes = [
        Route("/", runs),
        Route("/runs/{run_id}", run),
        Route("/runs/{run_id}/examples/{example_id:path}", example),
        Route("/label", label, methods=["POST"]),
        Route("/compare", compare_form),
        Route("/compare/{a}/{b}", compare),
        Route("/checks", checks_index),
        Route("/checks/{task:path}", checks),
        Route("/curves", curves),
        Route("/labels.jsonl", labels_export),
        Mount("/static", StaticFiles(packages=[("evals.view", "static")]), name="static"),
    ]
    hosts = header_forms(allowed_hosts)
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders),
                                                Middleware(TrustedHostMiddleware, allowed_hosts=hosts)],
                     exception_handlers={EvalsError: user_error, HTTPException: http_error,
                                         **dict.fromkeys(viewer.store.database.errors, database_error)})


def refuse_cross_site(request: Request, token: str, expected: str) -> None:
    """A write from another site (its Origin is not this server) or without this session's token: 403."""
    origin = request.headers.get("origin")  # browsers send it with every POST ('null' from sandboxes, files)
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(403, f"refused: a write from another site ({origin})")
    if not secrets.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(403, "refused: this form has no valid session token (reload the page and try again)")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or one line saying why not (a port in use, an unknown host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise EvalsError(f"cannot listen on {host}: {e.strerror}", field="--host") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise EvalsError(f"cannot listen on {host}:{port}: {e.strerror}; is another viewer running? "
                         "Choose another with --port", field="--port") from None
    sock.listen(128)
    return sock


def url_of(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(app: Starlette, sock: socket.socket) -> None:
    """Serve until Ctrl-C (uvicorn), on a socket already bound."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off")).run(sockets=[sock])
