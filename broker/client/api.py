"""The CLI's HTTP side: the broker's ``/cli/*`` endpoints and the console's getSigninToken.

Every answer is checked before use (a JSON object with the fields we need) and every
failure becomes a :class:`BrokerError` whose message a person can act on: what happened,
in words ("cannot reach the broker at https://broker.example.com: connection refused"),
not an exception's repr. Nothing here logs or prints a secret; callers print only what
the user must see.

httpx (and ssl) are imported by the calls that need them: ``credential-process`` runs on
every AWS CLI call and, while its cached credentials are fresh, talks to no one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from broker.loopback import is_loopback_host

if TYPE_CHECKING:
    import httpx

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TIMEOUT = 30.0
CREDENTIAL_FIELDS = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")


UNREACHABLE = "unreachable"
BAD_RESPONSE = "bad_response"


class BrokerError(Exception):
    """A refusal (RFC 6749 ``error``) or an unreachable / misbehaving broker.

    ``str()`` is the sentence to show: for a refusal, the broker's own description and its
    code; for the CLI's own codes (:data:`UNREACHABLE`, :data:`BAD_RESPONSE`), the
    description alone.
    """

    def __init__(self, error: str, description: str) -> None:
        if error in (UNREACHABLE, BAD_RESPONSE):
            text = description
        else:
            text = f"the broker refused: {description or error}" + (
                f" ({error})" if description else ""
            )
        super().__init__(text)
        self.error = error
        self.description = description


def broker_url(value: str) -> str:
    """The broker's base URL without a trailing slash; ValueError when unusable.

    Plain http only to loopback: the credentials and refresh tokens that cross this link
    are bearer secrets.
    """
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the broker URL must be an http(s) URL, got {value!r}")
    if parts.query or parts.fragment:
        raise ValueError("the broker URL must not have a query or fragment")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError("the broker URL must use https (plain http is accepted only for loopback)")
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def unreachable(broker: str, exc: Exception) -> BrokerError:
    """The BrokerError for a request that got no HTTP answer, saying why in words."""
    return BrokerError(UNREACHABLE, f"cannot reach the broker at {broker}: {_why(exc)}")


def _why(exc: BaseException) -> str:
    """``connection refused``, ``no answer within 30 s``, ...: the cause, as a person says it."""
    import socket  # noqa: PLC0415 - only on failure: credential-process starts without them
    import ssl  # noqa: PLC0415

    if type(exc).__name__.endswith("Timeout") or isinstance(exc, TimeoutError):
        return f"no answer within {TIMEOUT:g} s"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return "its host name does not resolve"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"its TLS certificate is not trusted ({cause.verify_message})"
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed ({cause.reason or cause})"
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno).lower()
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


def _json(broker: str, response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise BrokerError(
            BAD_RESPONSE,
            f"{broker} answered HTTP {response.status_code} without JSON: is it the URL "
            "of an sts-broker?",
        )
    return body


def post_form(broker: str, path: str, form: Mapping[str, str]) -> dict[str, Any]:
    """POST a urlencoded form, return the JSON object; BrokerError for any refusal."""
    import httpx  # noqa: PLC0415 - see module doc

    try:
        response = httpx.post(f"{broker}{path}", data=dict(form), timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise unreachable(broker, exc) from None
    body = _json(broker, response)
    if response.status_code != 200:
        error = body.get("error")
        description = body.get("error_description")
        raise BrokerError(
            error if isinstance(error, str) else f"http_{response.status_code}",
            description if isinstance(description, str) else "",
        )
    return body


def has_credentials(body: Mapping[str, Any]) -> bool:
    return all(isinstance(body.get(k), str) and body.get(k) for k in CREDENTIAL_FIELDS)


def token(broker: str, form: Mapping[str, str]) -> dict[str, Any]:
    """Call ``/cli/token``; the answer has credentials (checked) and maybe a refresh token,
    or, for a login to every role, ``Logins``: a list of such answers (each checked by the
    caller, since one role may fail while the others work)."""
    body = post_form(broker, "/cli/token", form)
    logins = body.get("Logins")
    if isinstance(logins, list) and all(isinstance(item, dict) for item in logins):
        return body
    if not has_credentials(body):
        raise BrokerError(BAD_RESPONSE, "the broker's answer has no credentials")
    return body


def revoke(broker: str, refresh_token: str) -> None:
    """RFC 7009 revocation of a refresh token at ``/cli/revoke``; BrokerError on failure."""
    post_form(broker, "/cli/revoke", {"token": refresh_token, "token_type_hint": "refresh_token"})


def check_broker(broker: str) -> None:
    """``GET /healthz``: BrokerError when the broker is unreachable or is no sts-broker."""
    import httpx  # noqa: PLC0415 - see module doc

    try:
        response = httpx.get(f"{broker}/healthz", timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise unreachable(broker, exc) from None
    if _json(broker, response).get("status") != "ok":
        raise BrokerError(BAD_RESPONSE, f"{broker}/healthz does not answer like an sts-broker")


def signin_token(federation: str, credentials: Mapping[str, Any]) -> str:
    """The console federation protocol's getSigninToken for these credentials, at
    ``federation`` (the broker's ``/federation``, or AWS's for real AWS credentials)."""
    import httpx  # noqa: PLC0415 - see module doc

    session = json.dumps(
        {
            "sessionId": credentials["AccessKeyId"],
            "sessionKey": credentials["SecretAccessKey"],
            "sessionToken": credentials["SessionToken"],
        }
    )
    try:
        response = httpx.get(
            federation,
            params={"Action": "getSigninToken", "Session": session},
            timeout=TIMEOUT,
        )
    except httpx.HTTPError as exc:
        raise unreachable(federation, exc) from None
    body = _json(federation, response)
    signin = body.get("SigninToken")
    if response.status_code != 200 or not isinstance(signin, str):
        error = body.get("Error")
        raise BrokerError("console_refused", error if isinstance(error, str) else "no SigninToken")
    return signin


def console_login_url(federation: str, signin: str, *, destination: str, issuer: str) -> str:
    """The ``federation?Action=login`` URL that opens the console at ``destination``."""
    query = urlencode(
        {"Action": "login", "Issuer": issuer, "Destination": destination, "SigninToken": signin}
    )
    return f"{federation}?{query}"
