"""What one HTTP request has learnt about itself, readable by every layer it passes through.

The request middleware (:class:`broker.observability.http.RequestMetrics`) opens a
:class:`RequestContext` for each request and keeps it in a context variable for the
request's task: log lines read its request ID (``log_format: json``), the STS API answers
with that ID and notes the action and outcome code, and an error page notes its code, so
the middleware can count the request under the right labels when the answer has gone.

The context is a small mutable object rather than a value set again at each stage: a
context variable set in a task that the framework starts for a middleware would not be
seen by the code that started it, while a change to the object it holds is.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass

from broker.ids import request_id


@dataclass
class RequestContext:
    """The request ID and, once known, the bounded action and outcome labels."""

    request_id: str
    action: str | None = None
    """An STS action of the model (or ``Unknown``); None leaves the middleware's route
    family."""
    code: str | None = None
    """The AWS error code (or a page's own short code) the request was answered with;
    None means the HTTP status decides (``Success`` below 400)."""


_CURRENT: ContextVar[RequestContext | None] = ContextVar("sts_broker_request", default=None)


def begin_request() -> tuple[RequestContext, Token[RequestContext | None]]:
    """A fresh context with a new request ID, current until :func:`end_request`."""
    context = RequestContext(request_id())
    return context, _CURRENT.set(context)


def end_request(token: Token[RequestContext | None]) -> None:
    _CURRENT.reset(token)


def current_request() -> RequestContext | None:
    return _CURRENT.get()


def current_request_id() -> str:
    """This request's ID, or a new one outside any request (an app used without the
    middleware still answers with a valid ID)."""
    context = _CURRENT.get()
    return context.request_id if context is not None else request_id()


def note_outcome(code: str, *, action: str | None = None) -> None:
    """Record how this request was answered (no-op outside a request)."""
    context = _CURRENT.get()
    if context is None:
        return
    context.code = code
    if action is not None:
        context.action = action
