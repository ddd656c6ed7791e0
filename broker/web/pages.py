"""Server-rendered pages: the Jinja2 environment and the small helpers every page uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.responses import HTMLResponse
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
    return page("error.html", status, title=title, message=message, code=code)
