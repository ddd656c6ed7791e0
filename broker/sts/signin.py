"""The AWS federation endpoint as a client: console sign-in for upstream role sessions.

A custom identity broker turns role credentials into a console session in two steps
(REFERENCE.md, "Console federation"): a server-to-server ``GET
{federation}?Action=getSigninToken&Session={json}`` trades the credentials for a SigninToken,
then the browser is sent to ``{federation}?Action=login&...&SigninToken=...``. AWS puts the
credentials in the query string of that GET, so the URL is itself a secret: it is never
logged here, httpx's own "HTTP Request" line is withheld by :mod:`broker.sts.log_guard`, and
no error message names it (only the endpoint without its query).

Why not :func:`broker.identity.fetch.fetch_bounded`: it fits the bounds (timeout, byte cap
while streaming) but not the protocol. It drops the body of a non-200 answer, and that body
is the only place the endpoint says *why* it refused ("Only federation tokens or assume role
tokens may be used"); its :class:`~broker.identity.fetch.FetchFailed` carries the URL that
failed, which here holds the session key; and it follows redirects, which getSigninToken
never sends. So the read below is the same bounded stream, with no redirects and the body
read whatever the status.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from broker.errors import StsError
from broker.sts.log_guard import guarding
from broker.sts.upstream import UpstreamCredentials

MAX_ANSWER_BYTES = 64 * 1024
"""A SigninToken answer is a few KiB at most; anything bigger is not one."""

MAX_REASON_CHARS = 300

SessionCredentials = UpstreamCredentials | tuple[str, str, str]
"""Role credentials: an upstream answer, or ``(access_key_id, secret_access_key, token)``."""


async def get_signin_token(
    http: httpx.AsyncClient,
    federation_endpoint: str,
    credentials: SessionCredentials,
    session_duration: int | None,
    *,
    timeout: httpx.Timeout | float,
) -> str:
    """Trade role credentials for a SigninToken (valid 15 minutes at AWS).

    ``session_duration`` (900-43200 s, AssumeRole* credentials only; the endpoint enforces
    it) is how long the console session lasts; None leaves it to the endpoint. Raises
    :class:`StsError`: ServiceUnavailable 503 when the endpoint cannot be reached or does not
    answer in time, ``FederationRefused`` 502 when it answers with an error,
    ``FederationInvalidAnswer`` 502 when a 200 answer holds no SigninToken.
    """
    if isinstance(credentials, UpstreamCredentials):
        key_id = credentials.access_key_id
        secret = credentials.secret_access_key
        token = credentials.session_token
    else:
        key_id, secret, token = credentials
    session = json.dumps(
        {"sessionId": key_id, "sessionKey": secret, "sessionToken": token},
        separators=(",", ":"),
    )
    query: dict[str, str] = {"Action": "getSigninToken"}
    if session_duration is not None:
        query["SessionDuration"] = str(session_duration)
    query["Session"] = session
    url = _with_query(federation_endpoint, query)
    where = _without_query(federation_endpoint)
    secrets = (secret, token, session, url)

    failure: StsError
    with guarding(secrets):
        try:
            async with http.stream(
                "GET",
                url,
                headers={"Accept": "application/json"},
                follow_redirects=False,
                timeout=timeout,
            ) as response:
                status = response.status_code
                body = await _read_capped(response)
        except httpx.TimeoutException as exc:
            failure = _unavailable(where, f"timed out ({type(exc).__name__})")
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            failure = _unavailable(where, type(exc).__name__)
        else:
            return _signin_token(status, body, where, secrets)
    # Raised outside the handler: no __context__ keeps httpx's exception (and its request,
    # URL and credentials included) reachable from what the caller logs.
    raise failure


def login_url(federation_endpoint: str, signin_token: str, issuer: str, destination: str) -> str:
    """The ``Action=login`` URL that signs a browser in to ``destination`` (a console URL).

    ``issuer`` is where the console's sign-out and session-expiry links send the user back.
    The URL is a bearer secret for the SigninToken's lifetime: send it to the browser only
    over HTTPS (a 302), and never log it.
    """
    return _with_query(
        federation_endpoint,
        {
            "Action": "login",
            "Issuer": issuer,
            "Destination": destination,
            "SigninToken": signin_token,
        },
    )


def _signin_token(status: int, body: bytes | None, where: str, secrets: tuple[str, ...]) -> str:
    if status != 200:
        reason = _reason(body, secrets)
        raise StsError(
            "FederationRefused",
            f"the federation endpoint at {where} refused getSigninToken (HTTP {status})"
            + (f": {reason}" if reason else ""),
            502,
            sender=False,
        )
    if body is None:
        raise _invalid(where, f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise _invalid(where, "the answer is not JSON") from None
    token = document.get("SigninToken") if isinstance(document, dict) else None
    if not isinstance(token, str) or not token:
        raise _invalid(where, "the answer has no SigninToken")
    return token


def _reason(body: bytes | None, secrets: tuple[str, ...]) -> str:
    """The endpoint's own refusal text (``{"Error": ...}``), short and scrubbed; else ""."""
    if not body:
        return ""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return ""
    text = document.get("Error") if isinstance(document, dict) else None
    if not isinstance(text, str):
        return ""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text[:MAX_REASON_CHARS]


async def _read_capped(response: httpx.Response) -> bytes | None:
    """The body, or None once it passes :data:`MAX_ANSWER_BYTES` (read no further)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
        return None
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            return None
    return bytes(body)


def _with_query(endpoint: str, params: dict[str, str]) -> str:
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(params)}"


def _without_query(endpoint: str) -> str:
    """The endpoint as messages may name it: no query, fragment or user info."""
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an invalid URL)"
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def _unavailable(where: str, reason: str) -> StsError:
    return StsError(
        "ServiceUnavailable",
        f"the federation endpoint at {where} did not answer: {reason}",
        503,
        sender=False,
    )


def _invalid(where: str, why: str) -> StsError:
    return StsError(
        "FederationInvalidAnswer",
        f"the federation endpoint at {where} sent no usable SigninToken: {why}",
        502,
        sender=False,
    )
