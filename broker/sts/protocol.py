"""Reading an AWS Query protocol request: size limit, content type, strict form decoding.

The reader is deliberately stricter than a generic form parser. Ambiguous input (a
parameter given twice, bad percent-encoding, bytes that are not UTF-8) is refused rather
than resolved by a rule an attacker could exploit: the SigV4 verifier and the parameter
decoder must see one and the same request. The raw request is kept in ``parts`` for the
signature check; presigned-URL signature parameters (``X-Amz-*``) stay there and are not
passed on as action parameters.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, unquote_to_bytes

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from broker.errors import StsError, validation_error
from broker.records import fast_init
from broker.request import HttpRequestParts
from broker.sts.shapes import API_VERSION

_FORM: Final = "application/x-www-form-urlencoded"
_BAD_PERCENT: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SIGNATURE_PREFIX: Final = "x-amz-"
_MAX_NAME_IN_MESSAGE: Final = 64


@fast_init
@dataclass(frozen=True)
class QueryRequest:
    """One decoded Query request: the action, its version and its other parameters."""

    action: str
    """The ``Action`` parameter, ``""`` when absent (the model answers ``MissingAction``)."""
    version: str | None
    params: Mapping[str, str]
    """Every other parameter, decoded, in arrival order (query string first)."""
    parts: HttpRequestParts


def _name(name: str) -> str:
    if len(name) <= _MAX_NAME_IN_MESSAGE:
        return name
    return name[:_MAX_NAME_IN_MESSAGE] + "..."


def _decode_component(raw: str, where: str) -> str:
    # ``raw`` is ASCII (checked by the caller): with no escape in it, decoding can only turn
    # ``+`` into a space, so skip the regex, the byte round trip and the UTF-8 check.
    if "%" not in raw:
        return raw.replace("+", " ") if "+" in raw else raw
    if _BAD_PERCENT.search(raw):
        raise validation_error(f"The {where} has an invalid percent-encoding")
    try:
        return unquote_to_bytes(raw.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError:
        raise validation_error(f"The {where} is not valid UTF-8 once decoded") from None


def _decode_pairs(raw: str, where: str) -> dict[str, str]:
    """``application/x-www-form-urlencoded`` pairs, refusing anything ambiguous.

    Raw (unencoded) non-ASCII is refused: every AWS SDK percent-encodes, and accepting raw
    bytes would leave their meaning to a guess about the client's charset.
    """
    if not raw:
        return {}  # a POST's usual empty query string
    if not raw.isascii():
        raise validation_error(f"The {where} must be percent-encoded ASCII")
    out: dict[str, str] = {}
    for pair in raw.split("&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition("=")
        name = _decode_component(raw_name, where)
        if name in out:
            raise validation_error(
                f"Parameter '{_name(name)}' appears more than once in the {where}"
            )
        out[name] = _decode_component(raw_value, where)
    return out


def _form_body(parts: HttpRequestParts) -> dict[str, str]:
    try:
        text = parts.body.decode("ascii")
    except UnicodeDecodeError:
        raise validation_error("The request body must be percent-encoded ASCII") from None
    return _decode_pairs(text, "request body")


_BODY_DECODERS: Final[Mapping[str, Callable[[HttpRequestParts], dict[str, str]]]] = {
    _FORM: _form_body,
}
"""The one dispatch point from media type to body decoder (add a JSON variant here)."""


def _unsupported(detail: str) -> StsError:
    return StsError(
        "UnsupportedMediaType",
        "Only the AWS Query protocol is served: send the parameters as "
        f"application/x-www-form-urlencoded ({detail})",
        415,
    )


def _body_params(parts: HttpRequestParts) -> dict[str, str]:
    content_type = parts.header("content-type")
    if content_type is None:
        if parts.body:
            raise _unsupported("the request has a body but no Content-Type")
        return {}
    media, charset_ok = _media_type(content_type)
    decoder = _BODY_DECODERS.get(media.lower())
    if decoder is None:
        raise _unsupported(f"got Content-Type {_name(media)!r}")
    if not charset_ok:
        raise _unsupported("the only charset accepted is utf-8")
    return decoder(parts)


@functools.lru_cache(maxsize=64)
def _media_type(content_type: str) -> tuple[str, bool]:
    """``(media type as sent, stripped; whether every charset parameter says utf-8)``.

    A pure function of the header's text, memoised: a client sends the same Content-Type
    on every request, and splitting it is a micro-second of each one. The refusals stay
    with the caller.
    """
    media, *attributes = (piece.strip() for piece in content_type.split(";"))
    for attribute in attributes:
        key, _, value = attribute.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            return media, False
    return media, True


def parse_query_request(parts: HttpRequestParts) -> QueryRequest:
    """Decode ``parts`` into a :class:`QueryRequest` (pure: no I/O, no Starlette).

    Parameters may come from the query string (GET, presigned URLs) and, for POST, also
    from a form body. A name given twice anywhere is refused, except the same value in
    both the query string and the body. ``Version``, when present, must be 2011-06-15.
    """
    method = parts.method.upper()
    if method not in ("GET", "POST"):
        raise StsError(
            "MethodNotAllowed", f"The Query API accepts GET and POST, not {_name(method)}", 405
        )
    query = _decode_pairs(parts.query_string, "query string")
    if method == "GET":
        if parts.body:
            raise validation_error("A GET request must not carry a body")
        merged = query
    else:
        merged = _body_params(parts)
        if query:  # a POST's query string is usually empty: nothing to merge
            merged, body = dict(query), merged
            for name, value in body.items():
                if merged.setdefault(name, value) != value:
                    raise validation_error(
                        f"Parameter '{_name(name)}' has different values in the query string "
                        "and the body"
                    )
    params = {k: v for k, v in merged.items() if not k.lower().startswith(_SIGNATURE_PREFIX)}
    action = params.pop("Action", "")
    version = params.pop("Version", None)
    if version is not None and version != API_VERSION:
        raise StsError(
            "InvalidAction",
            f"Could not find operation {_name(action)} for version {_name(version)}",
            400,
        )
    return QueryRequest(action=action, version=version, params=params, parts=parts)


def _too_large(limit: int) -> StsError:
    return StsError("RequestEntityTooLarge", f"The request body exceeds {limit} bytes", 413)


async def read_query_request(request: Request, *, max_body_bytes: int) -> QueryRequest:
    """Read the body (never more than ``max_body_bytes``) and decode the request."""
    return parse_query_request(await read_request_parts(request, max_body_bytes=max_body_bytes))


async def read_request_parts(request: Request, *, max_body_bytes: int) -> HttpRequestParts:
    """The request as it arrived, body included (never more than ``max_body_bytes``).

    Shared by every API the broker serves on ``POST /`` (the Query API here, the identity
    pools' JSON API), so each reads bodies under the same bounds. A declared
    ``Content-Length`` over the limit is refused before reading anything; the streamed body
    is counted as it arrives, so a lying or absent length cannot push more than one chunk
    past the limit into memory. Every request goes through here, so it
    reads the ASGI scope and ``receive`` directly: what ``Request.stream()``,
    ``request.headers`` and ``request.client`` would give, without building them.
    """
    scope = request.scope
    raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
    # What ``request.headers.get`` would answer (the first header whose raw name is
    # exactly ``content-length``, as ASGI spells it), without building a Headers object.
    declared = next((v.decode("latin-1") for k, v in raw_headers if k == b"content-length"), "")
    if declared.isdigit() and int(declared) > max_body_bytes:
        raise _too_large(max_body_bytes)
    body = await _read_body(request.receive, max_body_bytes)
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else quote(request.url.path)
    client = scope.get("client")
    return HttpRequestParts(
        method=scope["method"],
        path=path,
        query_string=bytes(scope.get("query_string", b"")).decode("latin-1"),
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers],
        body=body,
        client_ip=client[0] if client else "",
    )


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, as ``Request.stream()`` delivers it, refused past ``limit`` bytes.

    A disconnect before the end raises Starlette's ``ClientDisconnect``, as ``stream()``
    does (uvicorn then drops the answer).
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif kind == "http.disconnect":
            raise ClientDisconnect()
