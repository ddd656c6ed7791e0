"""The last line of defence: an exception that escapes a handler still gets its protocol's answer.

Every handler turns the refusals it knows into its protocol's error, and the STS API and the
authorization API also catch whatever else happens. This middleware is for everything
nobody foresaw (a dependency that fails in a new way, a bug): without it Starlette answers
a plain-text ``Internal Server Error`` that no SDK, CLI or person can make sense of. Here
the failure is logged once, with a fresh request ID and its traceback (server side only),
and the client gets that request ID in the envelope it expects, and nothing else:

=========================================  ===================================================
route family                               answer (status 500)
=========================================  ===================================================
the Query API (``/``, ``/sts``: a POST, or  AWS's ``ErrorResponse`` XML, ``InternalFailure``,
a GET with ``Action``)                      ``x-amzn-RequestId``, as the API renders it
``/authz/*``, ``/admin/*``, the issuer's    ``{"error": {"code": "InternalFailure", ...},
``/.well-known/*``, ``/healthz``             "request_id"}`` (the authorization API's shape)
``/cli/token``, ``POST /cli/device``        OAuth's ``{"error": "server_error",
                                            "error_description"}`` (RFC 6749 5.2)
``/federation`` (but ``Action=login``)      the federation protocol's ``{"Error": ...}``
everything else (pages)                     the broker's error page, naming the request ID
=========================================  ===================================================

An exception after the answer has started cannot change it any more: it is logged and the
connection is closed by the server, as for any unfinished response.
"""

from __future__ import annotations

import json
import logging
from typing import Literal

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.errors import StsError
from broker.ids import request_id
from broker.sts.api import QueryAnswer
from broker.sts.render import render_error
from broker.web.pages import error_page

log = logging.getLogger("broker.failure")

Envelope = Literal["query", "json", "oauth", "federation", "page"]

QUERY_PATHS = frozenset({"/", "/sts"})
JSON_PREFIXES = ("/authz/", "/admin/", "/.well-known/")
JSON_PATHS = frozenset({"/healthz"})
OAUTH_ROUTES = frozenset({("POST", "/cli/token"), ("POST", "/cli/device")})
FEDERATION_PATH = "/federation"

_MESSAGE = "The request processing has failed because of an unknown error."
"""AWS's text for ``InternalFailure``; the other envelopes say the same."""


def envelope_for(scope: Scope) -> Envelope:
    """Which protocol a request speaks, from its method, path and query (see module doc)."""
    method: str = scope.get("method", "GET")
    path: str = scope.get("path", "/")
    query: bytes = scope.get("query_string", b"")
    if path in QUERY_PATHS:
        return "query" if method == "POST" or b"Action=" in query else "page"
    if path == FEDERATION_PATH:
        return "page" if b"Action=login" in query else "federation"
    if path in JSON_PATHS or path.startswith(JSON_PREFIXES):
        return "json"
    if (method, path) in OAUTH_ROUTES:
        return "oauth"
    return "page"


def failure_answer(envelope: Envelope, rid: str) -> Response:
    """The 500 answer of one route family, carrying only the request ID."""
    if envelope == "query":
        failure = StsError("InternalFailure", _MESSAGE, 500, sender=False)
        return QueryAnswer(render_error(failure, rid), 500, rid)
    if envelope == "json":
        body = {"error": {"code": "InternalFailure", "message": _MESSAGE}, "request_id": rid}
        return JSONResponse(body, 500, headers={"Cache-Control": "no-store"})
    if envelope == "oauth":
        body = {"error": "server_error", "error_description": f"{_MESSAGE} ({rid})"}
        return JSONResponse(body, 500, headers={"Cache-Control": "no-store"})
    if envelope == "federation":
        return JSONResponse({"Error": f"{_MESSAGE} ({rid})"}, 500)
    return error_page(
        500,
        "Something went wrong",
        f"The broker could not complete this request. If it keeps happening, give this "
        f"request ID to your administrator: {rid}.",
        "InternalFailure",
    )


class InternalFailureMiddleware:
    """Catches what escapes the app below and answers it as :func:`failure_answer` says."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            rid = request_id()
            log.exception(
                "request %s failed unexpectedly: %s %s",
                rid,
                scope.get("method", "-"),
                json.dumps(scope.get("path", ""))[1:-1][:200],
            )
            if started:
                return  # the answer is on its way: the server closes the connection
            await failure_answer(envelope_for(scope), rid)(scope, receive, send)
