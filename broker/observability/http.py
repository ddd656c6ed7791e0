"""The request middleware: a request context for every request, and its count and latency.

Pure ASGI (no ``BaseHTTPMiddleware``: that runs the app in another task and buffers it),
outermost but for the listener router, so the time measured is the whole answer: body
reading, CSRF checks, rendering. The labels come from the request context the handlers
fill in (:mod:`broker.observability.context`): the STS API names its action and AWS's
outcome code; every other request is counted under its route family, looked up in a table
the composition root passes (exact paths first, then prefixes), with the code a page
noted or, failing that, ``Success`` or ``HTTP<status>``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.observability.context import begin_request, end_request
from broker.observability.metrics import SUCCESS, record_request

OTHER_FAMILY = "other"


class RequestMetrics:
    """Counts every HTTP request of ``app`` (see the module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        exact: Mapping[str, str],
        prefixes: Sequence[tuple[str, str]],
    ) -> None:
        self.app = app
        self._exact = dict(exact)
        self._prefixes = tuple(prefixes)

    def family(self, path: str) -> str:
        """The route family counted for a request to ``path`` that names no STS action."""
        found = self._exact.get(path)
        if found is not None:
            return found
        for prefix, family in self._prefixes:
            if path.startswith(prefix):
                return family
        return OTHER_FAMILY

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        context, token = begin_request()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            end_request(token)
            action = context.action or self.family(scope["path"])
            code = context.code or (SUCCESS if status < 400 else f"HTTP{status}")
            record_request(action, code, time.perf_counter() - started)
