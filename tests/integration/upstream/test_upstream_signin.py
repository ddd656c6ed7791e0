"""Console sign-in for upstream sessions: getSigninToken and the login URL, against the
broker's own /federation (which implements AWS's protocol) and peers that fail."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from broker.errors import StsError
from broker.sts.signin import MAX_ANSWER_BYTES, get_signin_token, login_url
from broker.sts.upstream import UpstreamCredentials, UpstreamSts
from tests.integration.conftest import DEV, Broker
from tests.integration.upstream.conftest import run
from tests.integration.upstream.servers import canned_server, closed_port, silent_server
from tests.moto_server import REGION

ONLY_FEDERATION = "Only federation tokens or assume role tokens may be used"
ISSUER = "https://idp.example.com/"


def role_credentials(broker: Broker, name: str = "console-upstream") -> UpstreamCredentials:
    """Dev role credentials the way an upstream account gets them: through UpstreamSts."""

    async def go() -> UpstreamCredentials:
        async with UpstreamSts(broker.url, REGION, profile="alice") as up:
            return await up.assume_role(
                role_arn=f"arn:aws:iam::{DEV}:role/Dev",
                role_session_name=name,
                duration_seconds=3600,
            )

    return run(go())


def signin(
    endpoint: str,
    credentials: UpstreamCredentials | tuple[str, str, str],
    duration: int | None = 3600,
    timeout: float = 5.0,
) -> str:
    async def go() -> str:
        async with httpx.AsyncClient() as http:
            return await get_signin_token(http, endpoint, credentials, duration, timeout=timeout)

    return run(go())


def refused(
    endpoint: str,
    credentials: tuple[str, str, str],
    duration: int | None = 3600,
    timeout: float = 5.0,
) -> StsError:
    with pytest.raises(StsError) as caught:
        signin(endpoint, credentials, duration, timeout)
    error = caught.value
    for secret in credentials[1:]:
        assert secret not in error.message
    return error


def test_upstream_credentials_sign_in_to_the_console(broker_profiles: Broker) -> None:
    creds = role_credentials(broker_profiles)
    federation = f"{broker_profiles.url}/federation"
    token = signin(federation, creds)
    url = login_url(federation, token, ISSUER, f"{broker_profiles.url}/console")

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == federation
    assert parse_qs(parts.query) == {
        "Action": ["login"],
        "Issuer": [ISSUER],
        "Destination": [f"{broker_profiles.url}/console"],
        "SigninToken": [token],
    }
    login = httpx.get(url)
    assert login.status_code == 302
    assert login.headers["location"] == f"{broker_profiles.url}/console"
    landing = httpx.get(login.headers["location"], cookies=login.cookies)
    assert landing.status_code == 200
    assert f"arn:aws:sts::{DEV}:assumed-role/Dev/console-upstream" in landing.text


def test_a_credentials_triple_works_too(broker_profiles: Broker) -> None:
    creds = role_credentials(broker_profiles, "console-triple")
    triple = (creds.access_key_id, creds.secret_access_key, creds.session_token)
    assert signin(f"{broker_profiles.url}/federation", triple, None)


def test_the_request_is_the_documented_get() -> None:
    with canned_server() as canned:
        canned.answer(200, json.dumps({"SigninToken": "canned-signin-token"}), "application/json")
        token = signin(f"{canned.url}/federation", ("ASIAKEY", "the-secret", "the-token"), 900)
    assert token == "canned-signin-token"
    method, path, _ = canned.requests[0]
    parts = urlsplit(path)
    assert (method, parts.path) == ("GET", "/federation")
    query = parse_qs(parts.query)
    assert query["Action"] == ["getSigninToken"]
    assert query["SessionDuration"] == ["900"]
    assert json.loads(query["Session"][0]) == {
        "sessionId": "ASIAKEY",
        "sessionKey": "the-secret",
        "sessionToken": "the-token",
    }


def test_credentials_the_endpoint_refuses(broker_profiles: Broker) -> None:
    federation = f"{broker_profiles.url}/federation"
    session = broker_profiles.sts("alice").get_session_token()["Credentials"]
    triple = (session["AccessKeyId"], session["SecretAccessKey"], session["SessionToken"])
    error = refused(federation, triple)
    assert (error.code, error.status, error.sender) == ("FederationRefused", 502, False)
    assert error.message == (
        f"the federation endpoint at {federation} refused getSigninToken (HTTP 400): "
        f"{ONLY_FEDERATION}"
    )

    creds = role_credentials(broker_profiles, "console-too-long")
    role = (creds.access_key_id, creds.secret_access_key, creds.session_token)
    too_short = refused(federation, role, duration=100)
    assert too_short.message.endswith("SessionDuration must be between 900 and 43200 seconds")

    forged = refused(federation, (creds.access_key_id, "0" * 40, creds.session_token))
    assert forged.message.endswith("The security token included in the request is invalid")


@pytest.mark.parametrize(
    ("status", "body", "code", "why"),
    [
        (200, "<html>not json</html>", "FederationInvalidAnswer", "the answer is not JSON"),
        (200, "{}", "FederationInvalidAnswer", "the answer has no SigninToken"),
        (200, '{"SigninToken": ""}', "FederationInvalidAnswer", "the answer has no SigninToken"),
        (
            200,
            json.dumps({"SigninToken": "x" * MAX_ANSWER_BYTES}),
            "FederationInvalidAnswer",
            f"the answer is larger than {MAX_ANSWER_BYTES} bytes",
        ),
        (302, "", "FederationRefused", "refused getSigninToken (HTTP 302)"),
        (500, "oops", "FederationRefused", "refused getSigninToken (HTTP 500)"),
    ],
)
def test_answers_without_a_signin_token(status: int, body: str, code: str, why: str) -> None:
    with canned_server() as canned:
        canned.answer(status, body, "application/json")
        error = refused(f"{canned.url}/federation", ("ASIAKEY", "the-secret", "the-token"))
    assert (error.code, error.status, error.sender) == (code, 502, False)
    assert f"the federation endpoint at {canned.url}/federation " in error.message
    assert why in error.message


def test_an_unreachable_endpoint_is_unavailable() -> None:
    federation = f"{closed_port()}/federation"
    started = time.monotonic()
    error = refused(federation, ("ASIAKEY", "the-secret", "the-token"))
    assert time.monotonic() - started < 1.0
    assert (error.code, error.status, error.sender) == ("ServiceUnavailable", 503, False)
    assert error.message == (
        f"the federation endpoint at {federation} did not answer: ConnectError"
    )


def test_a_silent_endpoint_times_out() -> None:
    with silent_server() as url:
        started = time.monotonic()
        error = refused(f"{url}/federation", ("ASIAKEY", "the-secret", "the-token"), timeout=0.5)
        elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 1.5
    assert (error.code, error.status) == ("ServiceUnavailable", 503)
    assert error.message == (
        f"the federation endpoint at {url}/federation did not answer: timed out (ReadTimeout)"
    )
