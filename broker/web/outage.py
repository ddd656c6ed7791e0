"""What the browser side answers while the state store is down: a page, or the CLI's JSON.

Sessions, login bindings, CLI codes and device codes all live in the store, so none of these
routes can decide anything without it, and guessing would fail open (a replayed login, a
device code approved twice). They fail closed instead, each in its audience's shape, and
recover by themselves: the next request after the store returns simply works.

This is the one place the pages and the CLI endpoints translate a store failure: the app
registers :func:`store_outage_answer` as the exception handler for
:data:`broker.store.STORE_FAILURES`, so no route needs its own ``try``. (The STS Query API
answers its callers in AWS's XML and translates the same failures itself.)
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from broker.errors import STORE_OUTAGE_MESSAGE
from broker.web.cli_routes import JSON_ENDPOINTS, oauth_error
from broker.web.pages import error_page

log = logging.getLogger("broker.web")

RETRY_AFTER_SECONDS = 5
"""What ``Retry-After`` suggests: long enough not to hammer a store that is restarting."""

_PAGE_MESSAGE = (
    "The broker cannot reach the state it keeps for sign-ins right now, so it cannot go on "
    "safely. Nothing was changed. Wait a few seconds and reload the page."
)


async def store_outage_answer(request: Request, exc: Exception) -> Response:
    """503 for a request whose route needed the store: JSON on the CLI's JSON endpoints
    (RFC 6749's ``temporarily_unavailable``), the broker's error page everywhere else."""
    log.warning("%s %s: state store unavailable: %s", request.method, request.url.path, exc)
    answer: Response
    if (request.method, request.url.path) in JSON_ENDPOINTS:
        answer = oauth_error("temporarily_unavailable", STORE_OUTAGE_MESSAGE, 503)
    else:
        answer = error_page(503, "Service unavailable", _PAGE_MESSAGE, "ServiceUnavailable")
    answer.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return answer
