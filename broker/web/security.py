"""Defences every page gets without asking: security headers and CSRF checks (pure ASGI).

Both are middleware rather than per-route helpers so a page added later is protected by
default: a route is exempt from CSRF only by being named, with a reason, in the app factory.

**Headers.** Every ``text/html`` response gets a strict Content-Security-Policy, ``nosniff``,
``same-origin`` referrers, frame denial, ``Cross-Origin-Opener-Policy``, ``Cache-Control: no-store``
and, on https, HSTS. Everything else (the STS XML API, JSON) is left byte-for-byte as the
app wrote it, except that ``Cache-Control: no-store`` is added when the app set no
``Cache-Control``: those answers carry credentials, and no proxy or browser may keep them.

**CSRF.** Every request with an unsafe method (anything but GET, HEAD, OPTIONS, TRACE) to a
path that is not exempt must

1. come from the broker's own origin when the browser says where it comes from (``Origin``,
   or ``Referer`` when there is no ``Origin``): else ``CrossOriginRequest``;
2. be an ``application/x-www-form-urlencoded`` form with exactly one ``csrf_token`` field
   (``CsrfTokenMissing``) equal, compared in constant time, to the token of the session
   cookie it carries (``CsrfTokenInvalid``; also when there is no valid session cookie).

A refusal is a small HTML page, status 403, naming the code. The body is read once (bounded
by ``max_body_bytes``, else 413 ``RequestTooLarge``) and replayed to the route unchanged.

Exempt paths skip both checks and are passed through untouched. Three kinds belong there,
and nothing else: requests not authenticated by a cookie (the STS Query API: SigV4 or the
assertion/token in the body; the CLI token endpoints: a PKCE verifier), the SAML ACS, a
legitimate cross-site POST from the IdP that :class:`broker.web.login.LoginBinding` binds to
the browser instead, and a route that makes the same two checks itself against a cookie of
its own (``/console/logout``: a console opened by ``sts-broker console`` has no browser
session, so the session's token cannot protect it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.config import BrokerConfig
from broker.throttling import Throttle
from broker.web.pages import error_page
from broker.web.rate_limits import SignInLimits
from broker.web.sessions import BrowserSessions

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_FIELD = "csrf_token"

_HSTS = b"max-age=31536000"
_ORIGIN = re.compile(r"https?://[a-z0-9.\-\[\]:]+?(?::\*)?", re.ASCII)
"""An origin, optionally with CSP's any-port wildcard (``http://127.0.0.1:*``)."""
_MAX_FORM_FIELDS = 1000


def content_security_policy(form_targets: Sequence[str] = ()) -> str:
    """The CSP of every page. ``form_targets`` extends ``form-action`` with other origins.

    The broker's pages post to themselves. Extend it only for a form that posts to, or
    whose answer redirects to, another origin (Chrome applies ``form-action`` to the
    redirect after a form post too, so a "sign in with X" form answered by a redirect to
    the IdP needs the IdP's origin here). A port may be ``*``: the CLI hand-off's approval
    form is answered by a redirect to the CLI's loopback listener, on a port chosen per login.
    """
    for target in form_targets:
        if not _ORIGIN.fullmatch(target):
            raise ValueError(f"form target {target!r} is not an origin like https://idp.example")
    form_action = " ".join(("'self'", *form_targets))
    return (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; "
        f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )


class SecurityHeadersMiddleware:
    """Adds the page headers to HTML responses and ``no-store`` to the rest (see module doc)."""

    def __init__(self, app: ASGIApp, *, hsts: bool, form_targets: Sequence[str] = ()) -> None:
        self.app = app
        headers = [
            (b"content-security-policy", content_security_policy(form_targets).encode("ascii")),
            (b"x-content-type-options", b"nosniff"),
            # Not no-referrer: under it Chromium sends "Origin: null" on the pages' own form
            # posts, which the CSRF origin check must refuse. same-origin still sends no
            # Referer (and a null Origin) to or from any other site.
            (b"referrer-policy", b"same-origin"),
            (b"x-frame-options", b"DENY"),
            (b"cache-control", b"no-store"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if hsts:
            headers.append((b"strict-transport-security", _HSTS))
        self._page_headers = headers
        self._managed = frozenset(name for name, _ in headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": self._headers_for(message.get("headers", []))}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _headers_for(self, raw: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        # One pass over the headers (every answer, STS API included, comes through here):
        # the first Content-Type, and whether any Cache-Control is set.
        content_type: bytes | None = None
        cache_control = False
        for key, value in raw:
            name = key.lower()
            if name == b"content-type":
                if content_type is None:
                    content_type = value
            elif name == b"cache-control":
                cache_control = True
        if (
            content_type is not None
            and content_type.split(b";", 1)[0].strip().lower() == b"text/html"
        ):
            # Ours replace whatever the route set: a page cannot loosen its own policy.
            kept = [(k, v) for k, v in raw if k.lower() not in self._managed]
            return kept + self._page_headers
        headers = list(raw)
        if not cache_control:
            headers.append((b"cache-control", b"no-store"))
        return headers


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` as browsers serialise ``Origin`` (default port dropped)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def same_origin(headers: Headers, ours: str | None) -> bool:
    """False when the browser names another origin than ``ours``; True when ours or none.

    ``Origin`` decides when sent; otherwise ``Referer`` does; each must come exactly once.
    Shared with ``/console/logout``, which makes the middleware's checks itself.
    """
    origins = headers.getlist("origin")
    if origins:
        return len(origins) == 1 and origins[0] == ours
    referers = headers.getlist("referer")
    if referers:
        return len(referers) == 1 and origin_of(referers[0]) == ours
    return True


class CsrfMiddleware:
    """Origin and synchronizer-token checks on unsafe methods (see module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        sessions: BrowserSessions,
        public_url: str,
        exempt: Mapping[str, str],
        max_body_bytes: int = 65536,
    ) -> None:
        origin = origin_of(public_url)
        if origin is None:
            raise ValueError("public_url must be an http(s) URL with a host")
        for path, reason in exempt.items():
            if not path.startswith("/") or not reason.strip():
                raise ValueError("each CSRF exemption is an absolute path with a reason")
        self.app = app
        self._sessions = sessions
        self._origin = origin
        self._exempt = frozenset(exempt)
        self._max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in SAFE_METHODS
            or scope["path"] in self._exempt
        ):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not same_origin(headers, self._origin):
            await refusal(403, "CrossOriginRequest", CROSS_ORIGIN_MESSAGE)(scope, receive, send)
            return
        body = await _read_body(headers, receive, self._max_body)
        if body is None:
            await refusal(413, "RequestTooLarge", _TOO_LARGE)(scope, receive, send)
            return
        token = _form_token(headers, body)
        if token is None:
            await refusal(403, "CsrfTokenMissing", STALE_FORM_MESSAGE)(scope, receive, send)
            return
        if not self._sessions.csrf_token_matches(headers, token):
            await refusal(403, "CsrfTokenInvalid", STALE_FORM_MESSAGE)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


def web_middleware(
    config: BrokerConfig,
    sessions: BrowserSessions,
    *,
    csrf_exempt: Mapping[str, str],
    form_targets: Sequence[str] = (),
    throttle: Throttle | None = None,
) -> list[Middleware]:
    """The page middlewares in the right order for ``Starlette(middleware=...)``.

    Headers outermost, so the CSRF and rate-limit refusal pages get them too; then
    :func:`form_middleware`.
    """
    return [
        headers_middleware(config, form_targets=form_targets),
        *form_middleware(config, sessions, csrf_exempt=csrf_exempt, throttle=throttle),
    ]


def headers_middleware(config: BrokerConfig, *, form_targets: Sequence[str] = ()) -> Middleware:
    """The page headers for every answer of the broker, whatever else it serves: HSTS when
    ``public_url`` is https (as the cookies' ``Secure`` flag is)."""
    return Middleware(
        SecurityHeadersMiddleware,
        hsts=config.public_url.startswith("https://"),
        form_targets=form_targets,
    )


def form_middleware(
    config: BrokerConfig,
    sessions: BrowserSessions,
    *,
    csrf_exempt: Mapping[str, str],
    throttle: Throttle | None = None,
) -> list[Middleware]:
    """What guards the pages' requests: the sign-in rate limits
    (:mod:`broker.web.rate_limits`, with ``throttle``) before the CSRF checks read a form."""
    limits = [] if throttle is None else [Middleware(SignInLimits, throttle=throttle)]
    return [*limits, csrf_middleware(config, sessions, csrf_exempt=csrf_exempt)]


def csrf_middleware(
    config: BrokerConfig, sessions: BrowserSessions, *, csrf_exempt: Mapping[str, str]
) -> Middleware:
    """The CSRF checks, for a broker that has browser sessions to protect."""
    return Middleware(
        CsrfMiddleware,
        sessions=sessions,
        public_url=config.public_url,
        exempt=csrf_exempt,
        max_body_bytes=config.limits.max_body_bytes,
    )


CROSS_ORIGIN_MESSAGE = (
    "This form was sent from another site. Open the broker directly and try again."
)
STALE_FORM_MESSAGE = (
    "This form has expired or was not sent by this browser. Reload the page and try again."
)
_TOO_LARGE = "The request is too large."


async def _read_body(headers: Headers, receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it exceeds ``limit`` (declared or actual)."""
    declared = headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _form_token(headers: Headers, body: bytes) -> str | None:
    """The one ``csrf_token`` of a urlencoded form; None if absent, repeated or not a form."""
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        return None
    try:
        pairs = parse_qsl(
            body.decode("latin-1"), keep_blank_values=True, max_num_fields=_MAX_FORM_FIELDS
        )
    except ValueError:
        return None
    tokens = [value for name, value in pairs if name == CSRF_FIELD]
    return tokens[0] if len(tokens) == 1 and tokens[0] else None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the body already read, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def refusal(status: int, code: str, message: str) -> HTMLResponse:
    """The broker's own error page (its template and stylesheet), naming the code.

    A person meets this after a stale tab or a hostile site's post, so it looks like the
    rest of the broker and says what to do; the code is what support and tests look for.
    """
    return error_page(status, "Request refused", message, code)
