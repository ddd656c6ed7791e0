"""Server-rendered pages: the Jinja2 environment and the small helpers every page uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.templating import Jinja2Templates

from broker.observability import note_outcome

_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"
templates = Jinja2Templates(directory=_HERE / "templates")
"""Autoescaping is on for ``.html`` (Starlette's default environment)."""


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a template to an HTML response."""
    body = templates.get_template(name).render(**context)
    return HTMLResponse(body, status_code=status)


def error_page(status: int, title: str, message: str, code: str = "") -> HTMLResponse:
    """A refusal a person can read; ``message`` must already be safe to show. ``code``
    is also the request's outcome code in the metrics."""
    if code:
        note_outcome(code)
    return page("error.html", status, status_code=status, title=title, message=message, code=code)


_PATH_SHOWN = 120


async def not_found(request: Request, exc: Exception) -> Response:
    """404 (and 405) for a path no route serves: a page for browsers, plain text for the rest.

    Only a browser asking for HTML gets the page; an SDK or ``curl`` keeps Starlette's short
    text answer, and the STS API's own errors never come here.
    """
    status = getattr(exc, "status_code", 404)
    if "text/html" not in request.headers.get("accept", ""):
        return PlainTextResponse("Not Found" if status == 404 else "Method Not Allowed", status)
    path = request.url.path
    shown = path if len(path) <= _PATH_SHOWN else path[:_PATH_SHOWN] + "..."
    if status == 405:
        return error_page(
            405,
            "Not here",
            f"{shown} does not answer {request.method} requests.",
            "MethodNotAllowed",
        )
    return error_page(
        404,
        "Page not found",
        f"There is no page at {shown}. Sign in to choose a role, or check the address.",
        "NotFound",
    )
