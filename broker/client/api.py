"""The CLI's HTTP side: the broker's ``/cli/*`` endpoints and the console's getSigninToken.

Every answer is checked before use (a JSON object with the fields we need) and every
failure becomes a :class:`BrokerError` whose message a person can act on. Nothing here
logs or prints a secret; callers print only what the user must see.

httpx is imported by the calls that need it: ``credential-process`` runs on every AWS CLI
call and, while its cached credentials are fresh, talks to no one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from broker.loopback import is_loopback_host

if TYPE_CHECKING:
    import httpx

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TIMEOUT = 30.0
CREDENTIAL_FIELDS = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")


class BrokerError(Exception):
    """A refusal (RFC 6749 ``error``) or an unreachable / misbehaving broker."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description


def broker_url(value: str) -> str:
    """The broker's base URL without a trailing slash; ValueError when unusable.

    Plain http only to loopback: the credentials and refresh tokens that cross this link
    are bearer secrets.
    """
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--broker must be an http(s) URL, got {value!r}")
    if parts.query or parts.fragment:
        raise ValueError("--broker must not have a query or fragment")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError("--broker must use https (plain http is accepted only for loopback)")
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise BrokerError(
            "bad_response", f"the broker answered HTTP {response.status_code} without JSON"
        )
    return body


def post_form(broker: str, path: str, form: Mapping[str, str]) -> dict[str, Any]:
    """POST a urlencoded form, return the JSON object; BrokerError for any refusal."""
    import httpx  # noqa: PLC0415 - see module doc

    try:
        response = httpx.post(f"{broker}{path}", data=dict(form), timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise BrokerError("unreachable", f"cannot reach {broker}: {exc}") from None
    body = _json(response)
    if response.status_code != 200:
        error = body.get("error")
        description = body.get("error_description")
        raise BrokerError(
            error if isinstance(error, str) else f"http_{response.status_code}",
            description if isinstance(description, str) else "",
        )
    return body


def token(broker: str, form: Mapping[str, str]) -> dict[str, Any]:
    """Call ``/cli/token``; the answer has credentials (checked) and maybe a refresh token."""
    body = post_form(broker, "/cli/token", form)
    if not all(isinstance(body.get(k), str) and body.get(k) for k in CREDENTIAL_FIELDS):
        raise BrokerError("bad_response", "the broker's answer has no credentials")
    return body


def signin_token(broker: str, credentials: Mapping[str, Any]) -> str:
    """The console federation protocol's getSigninToken for these credentials."""
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
            f"{broker}/federation",
            params={"Action": "getSigninToken", "Session": session},
            timeout=TIMEOUT,
        )
    except httpx.HTTPError as exc:
        raise BrokerError("unreachable", f"cannot reach {broker}: {exc}") from None
    body = _json(response)
    signin = body.get("SigninToken")
    if response.status_code != 200 or not isinstance(signin, str):
        error = body.get("Error")
        raise BrokerError("console_refused", error if isinstance(error, str) else "no SigninToken")
    return signin


def console_login_url(broker: str, signin: str) -> str:
    """The ``/federation?Action=login`` URL that opens the console landing page."""
    query = urlencode(
        {
            "Action": "login",
            "Issuer": "sts-broker-cli",
            "Destination": f"{broker}/console",
            "SigninToken": signin,
        }
    )
    return f"{broker}/federation?{query}"
