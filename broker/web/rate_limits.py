"""Limits of their own for the browser sign-in pages and the CLI's device-code endpoints.

People sign in a few requests at a time, so these buckets are per source address and far
smaller than the STS API's; device-code entry gets its own, stricter bucket, because a
guessed user code would approve a stranger's terminal (the per-session miss counter in
:mod:`broker.web.cli_routes` is the first guard, this one stops cycling through sessions).
A refused page is a 429 page a person can read; a refused JSON endpoint answers in its own
RFC 6749 shape, ``slow_down``, which ``sts-broker login`` already backs off on. Both carry
``Retry-After``.

A pure ASGI middleware between the security headers (so the 429 page gets them) and CSRF
(so a flood is refused before any form is read): a path it does not list, the STS API among
them, costs one dictionary lookup.
"""

from __future__ import annotations

import math
from typing import Literal

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from broker.throttling import Throttle, Throttled
from broker.web.cli_routes import oauth_error
from broker.web.pages import error_page

Bucket = Literal["signin", "device"]
Answer = Literal["page", "json"]

ROUTES: dict[tuple[str, str], tuple[Bucket, Answer]] = {
    ("GET", "/saml/login"): ("signin", "page"),
    ("POST", "/saml/acs"): ("signin", "page"),
    ("POST", "/assume"): ("signin", "page"),
    ("GET", "/cli/authorize"): ("signin", "page"),
    ("POST", "/cli/authorize"): ("signin", "page"),
    ("GET", "/cli/device"): ("device", "page"),
    ("POST", "/cli/device/approve"): ("device", "page"),
    ("POST", "/cli/device"): ("device", "json"),
    ("POST", "/cli/token"): ("device", "json"),
}
"""Exact (method, path) -> bucket and how a refusal is answered."""
PREFIXES: tuple[tuple[str, str, Bucket, Answer], ...] = (
    ("GET", "/login/", "signin", "page"),
    ("GET", "/oidc/login/", "signin", "page"),
    ("GET", "/oidc/callback/", "signin", "page"),
)
"""Routes with a path parameter: (method, path prefix, bucket, answer)."""


_STARTS = tuple(prefix for _, prefix, _, _ in PREFIXES)


def _route(method: str, path: str) -> tuple[Bucket, Answer] | None:
    found = ROUTES.get((method, path))
    if found is not None or not path.startswith(_STARTS):
        return found
    for want, prefix, bucket, answer in PREFIXES:
        if method == want and path.startswith(prefix):
            return bucket, answer
    return None


_WHAT: dict[Bucket, str] = {"signin": "sign-in requests", "device": "device-code requests"}


def refusal(bucket: Bucket, answer: Answer, retry_after: float) -> Response:
    """The 429 for a refused request, in the shape its endpoint answers in."""
    seconds = max(1, math.ceil(retry_after))
    wait = "a second" if seconds == 1 else f"{seconds} seconds"
    if answer == "json":
        response: Response = oauth_error(
            "slow_down",
            f"Rate exceeded: too many requests from this address; retry in {wait}",
            429,
        )
    else:
        response = error_page(
            429,
            "Too many requests",
            f"Too many {_WHAT[bucket]} came from your network in a short time. "
            f"Wait {wait}, then try again.",
            "Throttling",
        )
    response.headers["Retry-After"] = str(seconds)
    return response


class SignInLimits:
    """Spends a token of the source address's ``signin`` or ``device`` bucket (see module doc)."""

    def __init__(self, app: ASGIApp, *, throttle: Throttle) -> None:
        self.app = app
        self._throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._throttle.enabled:
            await self.app(scope, receive, send)
            return
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        route = _route(method, scope["path"])
        if route is not None:
            bucket, answer = route
            client = scope.get("client")
            address = client[0] if client else ""
            spend = self._throttle.signin if bucket == "signin" else self._throttle.device
            try:
                await spend(address)
            except Throttled as exc:
                await refusal(bucket, answer, exc.retry_after)(scope, receive, send)
                return
        await self.app(scope, receive, send)
