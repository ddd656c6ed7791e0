"""The last line of defence (issue 15, finding 1): a failure nobody handled still gets the
envelope of the protocol it arrived on, with a request ID and no traceback.

The failure is injected the way it happens in production: the real broker, real routes, and
a dependency that breaks under them (the state store's driver raising an error nobody
expects, after the broker started; a store that is merely down is an expected failure and
answers ServiceUnavailable, tests/integration/test_fleet.py). Each route family is driven
over HTTP by its real client shape and the answer's status, content type and body are
checked, and the failure is logged exactly once with the request ID the client saw.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from broker.clock import SystemClock
from broker.pkce import challenge_of, new_verifier
from broker.store import MemoryStore
from tests.integration.browser_config import CORP, served_browser_broker
from tests.integration.conftest import DEV, Broker

REQUEST_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
DEV_ROLE = f"arn:aws:iam::{DEV}:role/Dev"


class BreakingStore(MemoryStore):
    """A real memory store until :attr:`broken`; then every call fails with a driver bug."""

    def __init__(self) -> None:
        super().__init__(SystemClock())
        self.broken = False

    def _check(self) -> None:
        if self.broken:
            raise RuntimeError("redis 127.0.0.1:6379: unexpected reply (injected)")

    async def claim(self, namespace: str, key: str, ttl: float) -> bool:
        self._check()
        return await super().claim(namespace, key, ttl)

    async def get(self, namespace: str, key: str) -> bytes | None:
        self._check()
        return await super().get(namespace, key)

    async def put(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        self._check()
        await super().put(namespace, key, value, ttl)

    async def delete(self, namespace: str, key: str) -> None:
        self._check()
        await super().delete(namespace, key)

    async def take_token(self, namespace: str, key: str, *, rate: float, burst: int) -> float:
        self._check()
        return await super().take_token(namespace, key, rate=rate, burst=burst)


class Failing:
    def __init__(self, broker: Broker, store: BreakingStore) -> None:
        self.broker = broker
        self.store = store


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Failing]:
    store = BreakingStore()
    # Every role session's signed use reads the store (revocations), uncached here.
    with served_browser_broker(
        tmp_path_factory.mktemp("failing"), store=store, revocation={"cache_seconds": 0}
    ) as broker:
        yield Failing(broker, store)


@pytest.fixture
def broken(failing: Failing) -> Iterator[Failing]:
    failing.store.broken = True
    yield failing
    failing.store.broken = False


def _logged_once(caplog: pytest.LogCaptureFixture, rid: str) -> None:
    mine = [r for r in caplog.records if rid in r.getMessage()]
    assert len(mine) == 1, [r.getMessage() for r in caplog.records]
    assert mine[0].exc_info is not None  # the traceback stays in the log
    assert not [r for r in caplog.records if "Exception in ASGI application" in r.getMessage()]


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text
    assert "RuntimeError" not in text
    assert "unexpected reply" not in text


def test_query_api_answers_internal_failure_xml(
    broken: Failing, caplog: pytest.LogCaptureFixture
) -> None:
    """An MFA code is claimed in the store: AssumeRole with MFA meets the outage."""
    broker = broken.broker
    sts = broker.sts("alice")
    with pytest.raises(Exception) as caught:
        sts.assume_role(
            RoleArn="arn:aws:iam::222222222222:role/UpdateApp",
            RoleSessionName="alice",
            SerialNumber=f"arn:aws:iam::{DEV}:mfa/alice",
            TokenCode=broker.fresh_code("alice"),
        )
    response: dict[str, Any] = caught.value.response  # type: ignore[attr-defined]
    assert response["Error"]["Code"] == "InternalFailure"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 500
    rid = response["ResponseMetadata"]["RequestId"]
    assert REQUEST_ID.fullmatch(rid)
    _logged_once(caplog, rid)


def test_a_page_answers_the_broker_error_page(
    broken: Failing, caplog: pytest.LogCaptureFixture
) -> None:
    """Starting a SAML sign-in records the pending login in the store."""
    url = f"{broken.broker.url}/saml/login?{urlencode({'provider': CORP})}"
    response = httpx.get(url)
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert "Reason code: <code>InternalFailure</code>" in response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]
    _no_traceback(response.text)
    (rid,) = REQUEST_ID.findall(response.text)
    _logged_once(caplog, rid)


def test_the_cli_oauth_endpoints_answer_oauth_json(
    broken: Failing, caplog: pytest.LogCaptureFixture
) -> None:
    """The device-code start stores the code it hands out."""
    challenge = challenge_of(new_verifier())
    response = httpx.post(
        f"{broken.broker.url}/cli/device",
        data={"code_challenge": challenge, "code_challenge_method": "S256"},
    )
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == "server_error"
    _no_traceback(response.text)
    (rid,) = REQUEST_ID.findall(body["error_description"])
    _logged_once(caplog, rid)


def _role_credentials(failing: Failing) -> dict[str, Any]:
    failing.store.broken = False
    try:
        out = failing.broker.sts("alice").assume_role(RoleArn=DEV_ROLE, RoleSessionName="fail")
    finally:
        failing.store.broken = True
    return dict(out["Credentials"])


def test_the_federation_endpoint_answers_its_json(
    broken: Failing, caplog: pytest.LogCaptureFixture
) -> None:
    """getSigninToken checks the role session against the revocations in the store."""
    creds = _role_credentials(broken)
    session = json.dumps(
        {
            "sessionId": creds["AccessKeyId"],
            "sessionKey": creds["SecretAccessKey"],
            "sessionToken": creds["SessionToken"],
        }
    )
    response = httpx.get(
        f"{broken.broker.url}/federation",
        params={"Action": "getSigninToken", "Session": session},
    )
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    (error,) = response.json().values()
    assert list(response.json()) == ["Error"]
    _no_traceback(response.text)
    (rid,) = REQUEST_ID.findall(error)
    _logged_once(caplog, rid)


def test_the_authorization_api_answers_its_json(
    broken: Failing, caplog: pytest.LogCaptureFixture
) -> None:
    creds = _role_credentials(broken)
    url = f"{broken.broker.url}/authz/check"
    body = b'{"action": "s3:GetObject", "resource": "arn:aws:s3:::b/k"}'
    request = AWSRequest(
        method="POST", url=url, data=body, headers={"content-type": "application/json"}
    )
    signer = Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    SigV4Auth(signer, "sts", "us-east-1").add_auth(request)
    response = httpx.post(url, content=body, headers=dict(request.headers.items()))
    assert response.status_code == 500
    answer = response.json()
    assert answer["error"]["code"] == "InternalFailure"
    _no_traceback(response.text)
    _logged_once(caplog, answer["request_id"])


@pytest.fixture(autouse=True)
def _capture_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
