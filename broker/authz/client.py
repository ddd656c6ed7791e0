"""A small client for resource servers, and the caller's half: making a proof.

The caller (who holds credentials) presigns a ``GetCallerIdentity`` URL for the broker with
:func:`presign_caller_identity` and hands it to the resource server, e.g. in the
``X-Sts-Broker-Proof`` header. The resource server, which holds no credentials, asks the
broker with :class:`AuthzClient`. A presigned URL is a bearer proof for its lifetime, so it
is short by default (60 s) and should only travel over TLS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

__all__ = ["AuthzClient", "AuthzError", "CheckOutcome", "PrincipalInfo", "presign_caller_identity"]

DEFAULT_PROOF_SECONDS = 60
_TIMEOUT = httpx.Timeout(5.0)
_MAX_ERROR_CHARS = 512


def presign_caller_identity(
    broker_url: str,
    *,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None = None,
    region: str = "us-east-1",
    expires_in: int = DEFAULT_PROOF_SECONDS,
) -> str:
    """A presigned ``GetCallerIdentity`` URL for ``broker_url``: the caller's proof.

    Signed exactly as boto3's ``generate_presigned_url("get_caller_identity")`` signs it
    (SigV4 query auth, service ``sts``); ``region`` must be the broker's. From a boto3
    session: ``creds = session.get_credentials().get_frozen_credentials()`` and pass
    ``creds.access_key``, ``creds.secret_key``, ``creds.token``.
    """
    if not 1 <= expires_in <= 900:
        raise ValueError("expires_in must be 1..900 seconds (the broker honours at most 900)")
    query = urlencode({"Action": "GetCallerIdentity", "Version": "2011-06-15"})
    request = AWSRequest(method="GET", url=f"{broker_url.rstrip('/')}/?{query}")
    credentials = Credentials(access_key_id, secret_access_key, session_token)
    SigV4QueryAuth(credentials, "sts", region, expires=expires_in).add_auth(request)
    url: str = request.url
    return url


@dataclass(frozen=True)
class PrincipalInfo:
    """Who the broker says the caller is (GetCallerIdentity's three facts)."""

    arn: str
    account: str
    user_id: str


@dataclass(frozen=True)
class CheckOutcome:
    """The broker's decision. ``encoded_message`` is set on a deny only."""

    allowed: bool
    principal: PrincipalInfo
    reason: str
    matched: tuple[Mapping[str, Any], ...]
    encoded_message: str | None


class AuthzError(Exception):
    """The broker refused the request itself (bad proof, bad input) or could not be asked.

    ``status`` is the broker's HTTP status, or 503 with code ``BrokerUnavailable`` when the
    broker could not be reached or answered something that is not its API.
    """

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class AuthzClient:
    """Asks the broker's ``/authz/check``; pass a shared ``httpx.AsyncClient`` to pool
    connections (otherwise one is made and :meth:`aclose` closes it)."""

    def __init__(self, broker_url: str, http: httpx.AsyncClient | None = None) -> None:
        self._url = broker_url.rstrip("/") + "/authz/check"
        self._owned = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=_TIMEOUT)

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    async def check(
        self,
        presigned_url: str,
        action: str,
        resource: str,
        context: Mapping[str, str | Sequence[str]] | None = None,
    ) -> CheckOutcome:
        """May the caller proved by ``presigned_url`` do ``action`` on ``resource``?

        A deny is an outcome, not an error; :class:`AuthzError` means no decision was made.
        """
        body = {
            "action": action,
            "resource": resource,
            "context": {
                k: v if isinstance(v, str) else list(v) for k, v in (context or {}).items()
            },
            "proof": {"presigned_url": presigned_url},
        }
        try:
            response = await self._http.post(self._url, json=body)
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AuthzError("BrokerUnavailable", type(exc).__name__, 503) from None
        if response.status_code != 200:
            error = data.get("error") if isinstance(data, dict) else None
            if not isinstance(error, dict):
                raise AuthzError("BrokerUnavailable", f"HTTP {response.status_code}", 503)
            raise AuthzError(
                str(error.get("code", "Unknown"))[:_MAX_ERROR_CHARS],
                str(error.get("message", ""))[:_MAX_ERROR_CHARS],
                response.status_code,
            )
        try:
            principal = data["principal"]
            return CheckOutcome(
                allowed=data["allowed"] is True,
                principal=PrincipalInfo(
                    arn=str(principal["arn"]),
                    account=str(principal["account"]),
                    user_id=str(principal["user_id"]),
                ),
                reason=str(data["reason"]),
                matched=tuple(data["matched"]),
                encoded_message=data.get("encoded_message"),
            )
        except (KeyError, TypeError):
            raise AuthzError("BrokerUnavailable", "malformed answer", 503) from None
