"""Bounded HTTP GET for documents an identity provider serves: JWKS, discovery, SAML metadata.

Whoever controls such a URL can try to make the broker hang, buffer without end, or fetch
from somewhere else, so every fetch here is bounded the same way: a timeout, a byte cap
enforced while streaming, and redirects followed by hand, at most :data:`MAX_REDIRECTS`
and only within the same origin (an issuer's URL must not bounce the broker to another
host). Failures are raised as :class:`FetchFailed` with what went wrong as data, so each
caller words them in its own vocabulary and error type.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urljoin, urlsplit

import httpx

from broker.jsonread import JsonRefusedError, read_json

MAX_REDIRECTS = 3
MAX_DOCUMENT_BYTES = 256 * 1024
"""The cap for JSON documents (discovery, JWKS): real ones are a few KiB."""

FailureKind = Literal["off_origin", "status", "too_large", "redirects", "transport"]


class FetchFailed(Exception):
    """A fetch that gave no usable body.

    ``url`` is where it failed: the URL that redirected off-origin, answered a bad status or
    raised a transport error; for ``redirects``, the URL first asked for. ``status`` is set
    for ``status``, ``error`` (the httpx exception's class name) for ``transport``.
    """

    def __init__(self, kind: FailureKind, url: str, *, status: int = 0, error: str = "") -> None:
        super().__init__(kind, url)
        self.kind: FailureKind = kind
        self.url = url
        self.status = status
        self.error = error


@dataclass(frozen=True)
class Fetched:
    """A 200 response read in full; ``url`` is the one that answered, after redirects."""

    body: bytes
    url: str
    headers: httpx.Headers


async def fetch_bounded(
    http: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    timeout: httpx.Timeout | float,
    headers: Mapping[str, str] | None = None,
    refuse_declared_oversize: bool = False,
) -> Fetched:
    """GET ``url``: bounded in time and size, same-origin redirects only.

    ``refuse_declared_oversize`` also refuses a response whose Content-Length alone exceeds
    ``max_bytes``, before reading any of it; the cap while streaming applies either way.
    """
    current = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            async with http.stream(
                "GET", current, headers=headers, follow_redirects=False, timeout=timeout
            ) as response:
                if response.is_redirect:
                    target = urljoin(current, response.headers.get("location", ""))
                    if not _same_origin(current, target):
                        raise FetchFailed("off_origin", current)
                    current = target
                    continue
                if response.status_code != 200:
                    raise FetchFailed("status", current, status=response.status_code)
                if refuse_declared_oversize:
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > max_bytes:
                        raise FetchFailed("too_large", current)
                body = await _read_capped(response, max_bytes, current)
                return Fetched(body=body, url=current, headers=response.headers)
    except httpx.HTTPError as exc:
        raise FetchFailed("transport", current, error=type(exc).__name__) from None
    raise FetchFailed("redirects", url)


async def _read_capped(response: httpx.Response, max_bytes: int, url: str) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise FetchFailed("too_large", url)
    return bytes(body)


def _same_origin(a: str, b: str) -> bool:
    first, second = urlsplit(a), urlsplit(b)
    try:
        return (first.scheme, first.hostname, first.port) == (
            second.scheme,
            second.hostname,
            second.port,
        )
    except ValueError:
        return False


def describe(failure: FetchFailed, what: str, max_bytes: int) -> str:
    """``failure`` in words that name the document (``what``: "JWKS", "metadata", ...)."""
    match failure.kind:
        case "off_origin":
            return f"the {what} at {failure.url} redirects to another host"
        case "status":
            return f"HTTP {failure.status} for the {what} at {failure.url}"
        case "too_large":
            return f"the {what} is larger than {max_bytes} bytes"
        case "redirects":
            return f"too many redirects for the {what} at {failure.url}"
        case "transport":
            return f"{failure.error} fetching the {what} at {failure.url}"


class DocumentUnusable(Exception):
    """A JSON document that could not be had; the message says why and names it."""


async def fetch_json(
    http: httpx.AsyncClient, url: str, *, what: str, timeout: httpx.Timeout | float
) -> tuple[object, Fetched]:
    """GET a small JSON document (:data:`MAX_DOCUMENT_BYTES`) and parse it.

    Raises :class:`DocumentUnusable` for a failed fetch or a body that is not JSON.
    """
    try:
        fetched = await fetch_bounded(
            http,
            url,
            max_bytes=MAX_DOCUMENT_BYTES,
            timeout=timeout,
            headers={"Accept": "application/json"},
            refuse_declared_oversize=True,
        )
    except FetchFailed as exc:
        raise DocumentUnusable(describe(exc, what, MAX_DOCUMENT_BYTES)) from None
    try:
        return read_json(fetched.body, max_size=MAX_DOCUMENT_BYTES), fetched
    except JsonRefusedError as exc:
        raise DocumentUnusable(f"the {what} at {fetched.url} {exc.reason}") from None


async def fetch_discovery(
    http: httpx.AsyncClient, issuer: str, *, timeout: httpx.Timeout | float
) -> tuple[dict[str, object], str]:
    """``(document, url)``: issuer's OpenID discovery document, its ``issuer`` checked.

    The one fetch-and-check both of its readers need (the JWKS cache takes ``jwks_uri``,
    browser sign-in the endpoints). The document must be a JSON object naming exactly the
    configured issuer (OpenID Connect Discovery 4.3): one served for another issuer is a
    mix-up, never followed. Raises :class:`DocumentUnusable`.
    """
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    document, _ = await fetch_json(http, url, what="discovery document", timeout=timeout)
    if not isinstance(document, dict):
        raise DocumentUnusable(f"the discovery document at {url} is not a JSON object")
    found = document.get("issuer")
    if found != issuer:
        shown = repr(found[:80]) if isinstance(found, str) else "missing"
        raise DocumentUnusable(
            f"the discovery document names issuer {shown}, not {issuer} as configured "
            "(they must be equal exactly)"
        )
    return document, url


class ResponseTooLargeError(httpx.TransportError):
    """A response went past the :class:`BoundedTransport` limit."""


class _CappedStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, limit: int) -> None:
        self._stream = stream
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        total = 0
        async for chunk in self._stream:
            total += len(chunk)
            if total > self._limit:
                raise ResponseTooLargeError(f"response larger than {self._limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class BoundedTransport(httpx.AsyncBaseTransport):
    """Caps every response body at ``limit`` bytes, for authlib's per-login clients.

    authlib reads the token response whole; a hostile or broken token endpoint must not
    make the broker buffer without end. One instance is shared by every login (one
    connection pool); closing a per-login client does not close it, its owner does.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CappedStream(stream, self._limit),
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        """Per-login clients close this on exit: the shared pool must outlive them."""

    async def shutdown(self) -> None:
        await self._inner.aclose()
