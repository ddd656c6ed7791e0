"""No secret in any log record or error message, on any path, with everything at DEBUG.

Every path the upstream clients have (success, refusal, bad request, no credentials, refused
connection, timeout, hang-up, malformed answer, throttling; sign-in success, refusal and
outage) runs once with every logger at DEBUG, botocore's, urllib3's and httpx's included,
and the test then looks for each secret in everything that was logged or raised: the
broker's own AWS secret keys and session token, the web identity tokens, the credentials
upstream returned and the SigninTokens.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from broker.errors import StsError
from broker.sts.log_guard import WITHHELD
from broker.sts.signin import get_signin_token
from broker.sts.upstream import UpstreamCredentials, UpstreamSts
from tests.integration.conftest import DEV, Broker
from tests.integration.upstream.conftest import MOTO_SESSION_TOKEN, AwsFiles, run
from tests.integration.upstream.servers import canned_server, closed_port, silent_server
from tests.integration.upstream.test_upstream_sts import (
    CANNED_USER,
    WEB_TOKEN,
    assume_role_answer,
    error_answer,
)
from tests.moto_server import MOTO_SECRET, REGION, Moto

LOGGERS = ("", "botocore", "urllib3", "httpx", "httpcore", "broker", "moto", "uvicorn")
LONG_TOKEN = "eyJ" + "l" * 20001
"""Longer than the model's 20000: botocore checks only minimums, and moto takes anything."""


def test_no_secret_reaches_a_log_or_a_message(
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    aws: AwsFiles,
    moto: Moto,
    broker_profiles: Broker,
) -> None:
    broker = broker_profiles
    # Made before DEBUG is on: the guard covers the upstream clients, not the test's boto3.
    session = broker.sts("alice").get_session_token()["Credentials"]
    not_a_role = (session["AccessKeyId"], session["SecretAccessKey"], session["SessionToken"])
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    role = moto.create_role("Logged")["Arn"]
    dev = f"arn:aws:iam::{DEV}:role/Dev"
    secrets = [
        MOTO_SECRET,
        MOTO_SESSION_TOKEN,
        WEB_TOKEN,
        LONG_TOKEN,
        broker.keys["alice"].secret,
        broker.keys["bob"].secret,
        "x" * 40,  # the alice-wrong-secret profile's secret
    ]
    outcomes: list[object] = []

    async def attempt(call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            result = await call()
        except StsError as exc:
            outcomes.append(exc)
            return None
        outcomes.append(result)
        if isinstance(result, UpstreamCredentials):
            secrets.extend([result.secret_access_key, result.session_token])
        elif isinstance(result, str):
            secrets.append(result)  # a SigninToken
        return result

    def assume(up: UpstreamSts, arn: str, **options: Any) -> Callable[[], Awaitable[Any]]:
        return lambda: up.assume_role(
            role_arn=arn, role_session_name="logged", duration_seconds=900, **options
        )

    def web(
        up: UpstreamSts, arn: str, token: str = WEB_TOKEN, duration: int = 900
    ) -> Callable[[], Awaitable[Any]]:
        return lambda: up.assume_role_with_web_identity(
            role_arn=arn,
            role_session_name="logged",
            web_identity_token=token,
            duration_seconds=duration,
        )

    async def upstream_paths() -> None:
        async with UpstreamSts(moto.url, REGION, profile="moto") as up:
            await attempt(assume(up, role, tags={"team": "platform"}, source_identity="alice"))
            await attempt(web(up, role))
            await attempt(web(up, role, LONG_TOKEN))
            await attempt(web(up, role, duration=100))  # ParamValidationError: never sent
        async with UpstreamSts(broker.url, REGION, profile="bob") as up:
            await attempt(assume(up, f"arn:aws:iam::{DEV}:role/AliceOnly"))  # AccessDenied
            await attempt(web(up, dev))  # InvalidIdentityToken
        async with UpstreamSts(broker.url, REGION, profile="alice-wrong-secret") as up:
            await attempt(assume(up, dev))  # SignatureDoesNotMatch
        async with UpstreamSts(closed_port(), REGION, profile="moto", max_attempts=2) as up:
            await attempt(assume(up, role))
            await attempt(web(up, role))
        with silent_server() as url:
            async with UpstreamSts(url, REGION, profile="moto", read_timeout=0.3) as up:
                await attempt(assume(up, role))
                await attempt(web(up, role))
        with silent_server(hang_up=True) as url:
            async with UpstreamSts(url, REGION, profile="moto", max_attempts=1) as up:
                await attempt(web(up, role))
        with canned_server() as canned:
            canned.answer(200, assume_role_answer(CANNED_USER))  # no Credentials
            canned.answer(400, error_answer("Throttling", "Rate exceeded"))
            async with UpstreamSts(canned.url, REGION, profile="moto", max_attempts=2) as up:
                await attempt(assume(up, role))
                await attempt(assume(up, role))

    def signin(
        http: httpx.AsyncClient, endpoint: str, credentials: Any, timeout: float
    ) -> Callable[[], Awaitable[Any]]:
        return lambda: get_signin_token(http, endpoint, credentials, 3600, timeout=timeout)

    async def signin_paths() -> None:
        async with UpstreamSts(broker.url, REGION, profile="alice") as up:
            creds = await attempt(assume(up, dev))
        secrets.extend(not_a_role[1:])
        federation = f"{broker.url}/federation"
        async with httpx.AsyncClient() as http:
            for endpoint, credentials in [
                (federation, creds),
                (federation, not_a_role),
                (f"{closed_port()}/federation", creds),
            ]:
                await attempt(signin(http, endpoint, credentials, 5.0))
            with silent_server() as url:
                await attempt(signin(http, url, creds, 0.3))

    run(upstream_paths())
    run(signin_paths())
    # Default chain with nothing in it: AssumeRole cannot sign.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws.config.with_name("empty")))
    run(_no_credentials(moto.url, role, outcomes))

    kinds = [o.code if isinstance(o, StsError) else type(o).__name__ for o in outcomes]
    assert kinds == [
        "UpstreamCredentials",
        "UpstreamCredentials",
        "UpstreamCredentials",
        "ValidationError",
        "AccessDenied",
        "InvalidIdentityToken",
        "ServiceUnavailable",  # the broker refused the broker's own signature
        *["ServiceUnavailable"] * 5,  # refused, timed out twice, hung up
        "ServiceUnavailable",  # malformed answer
        "Throttling",
        "UpstreamCredentials",
        "str",  # a SigninToken
        "FederationRefused",
        "ServiceUnavailable",
        "ServiceUnavailable",
        "ServiceUnavailable",  # no credentials
    ]
    records = caplog.records
    texts = [caplog.text, *(r.getMessage() for r in records)]
    texts += [repr(o) for o in outcomes if isinstance(o, (StsError, UpstreamCredentials))]
    texts += [o.message for o in outcomes if isinstance(o, StsError)]
    for secret in secrets:
        leaks = [text[:200] for text in texts if secret in text]
        assert not leaks, f"{secret[:6]}... leaked: {leaks[:2]}"
    assert "Session=" not in caplog.text  # httpx's "HTTP Request: GET <url>" line was withheld

    # Not vacuous: the libraries did log, and the guard withheld what carried credentials.
    assert sum(r.name.startswith("botocore") for r in records) > 100
    withheld = {r.args[0] for r in records if r.msg == WITHHELD and isinstance(r.args, tuple)}
    assert {"botocore.endpoint", "botocore.parsers", "botocore.auth", "httpx"} <= withheld


async def _no_credentials(url: str, role: str, outcomes: list[object]) -> None:
    async with UpstreamSts(url, REGION) as up:
        try:
            await up.assume_role(role_arn=role, role_session_name="logged", duration_seconds=900)
        except StsError as exc:
            outcomes.append(exc)


def test_the_guard_leaves_other_botocore_users_alone(
    caplog: pytest.LogCaptureFixture, aws: AwsFiles, moto: Moto
) -> None:
    """Outside an upstream call nothing is rewritten: other code's DEBUG logs stay whole."""
    run(UpstreamSts(moto.url, REGION, profile="moto").close())  # attaches the filter
    caplog.set_level(logging.DEBUG, logger="botocore")
    moto.client("sts").get_caller_identity()
    bodies = [r.getMessage() for r in caplog.records if r.name == "botocore.parsers"]
    assert any("GetCallerIdentityResponse" in body for body in bodies)
    assert not any(r.msg == WITHHELD for r in caplog.records)
