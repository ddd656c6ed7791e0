"""A live broker with the observability settings under test, and the calls that exercise it.

:func:`observed_broker` is ``served_broker`` (tests/integration/conftest.py: the same users,
roles and keys) with extra top-level config keys (``audit``, ``admin_listen``,
``log_format``) and, with ``admin=True``, a second loopback socket bound first so that
``admin_listen`` names its real port; the one uvicorn server accepts on both, as ``serve``
does. :func:`api_calls` makes one of each kind of STS and console call with boto3 and
httpx, successes and refusals, so the audit trail and the metrics have something of each.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.conftest import (
    DEV,
    PROD,
    Broker,
    OffsetClock,
    bind_loopback,
    served_broker,
    session_client,
)

DEV_ROLE = f"arn:aws:iam::{DEV}:role/Dev"


@dataclass
class Observed:
    broker: Broker
    admin_url: str | None


@contextmanager
def observed_broker(
    folder: Path,
    *,
    admin: bool = False,
    clock: OffsetClock | None = None,
    edit: Callable[[dict[str, Any]], None] | None = None,
    **settings: Any,
) -> Iterator[Observed]:
    """The broker, with ``settings`` as top-level keys and ``edit`` applied to the file."""
    sockets = [bind_loopback()] if admin else []
    admin_url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}" if admin else None
    if admin_url is not None:
        settings["admin_listen"] = admin_url.removeprefix("http://")

    def change(document: dict[str, Any]) -> None:
        document.update(settings)
        if edit is not None:
            edit(document)

    with served_broker(folder, clock=clock, edit=change, also=sockets) as broker:
        yield Observed(broker, admin_url)


def _unsigned(url: str) -> Any:
    return boto3.client(
        "sts",
        endpoint_url=url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, signature_version=None),
    )


def api_calls(broker: Broker) -> dict[str, int]:
    """One of each kind of call (see module doc); returns how many STS calls of each action
    were made, refusals included, for tests that count them."""
    made: dict[str, int] = {}

    def call(action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        made[action] = made.get(action, 0) + 1
        return fn(*args, **kwargs)

    alice = broker.sts("alice")
    call("GetCallerIdentity", alice.get_caller_identity)
    session = call(
        "GetSessionToken",
        alice.get_session_token,
        SerialNumber=f"arn:aws:iam::{DEV}:mfa/alice",
        TokenCode=broker.fresh_code("alice"),
    )["Credentials"]
    role = call(
        "AssumeRole",
        session_client(broker, session).assume_role,
        RoleArn=f"arn:aws:iam::{PROD}:role/UpdateApp",
        RoleSessionName="alice-mfa",
        Tags=[{"Key": "project", "Value": "audit"}],
    )["Credentials"]
    dev = call(
        "AssumeRole",
        alice.assume_role,
        RoleArn=DEV_ROLE,
        RoleSessionName="alice",
        DurationSeconds=900,
    )["Credentials"]
    call("GetCallerIdentity", session_client(broker, role).get_caller_identity)
    with pytest.raises(ClientError) as denied:
        call(
            "AssumeRole",
            broker.sts("bob").assume_role,
            RoleArn=f"arn:aws:iam::{DEV}:role/AliceOnly",
            RoleSessionName="bob",
        )
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    forged = broker.sts(
        aws_access_key_id=broker.keys["alice"].id,
        aws_secret_access_key="x" * 40,
    )
    with pytest.raises(ClientError) as bad:
        call("GetCallerIdentity", forged.get_caller_identity)
    assert bad.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    call(
        "GetFederationToken",
        broker.sts("dave").get_federation_token,
        Name="dave-fed",
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
            }
        ),
    )
    call(
        "GetWebIdentityToken",
        alice.get_web_identity_token,
        Audience=["https://api.example.com"],
        SigningAlgorithm="ES384",
    )
    with pytest.raises(ClientError) as web:
        call(
            "AssumeRoleWithWebIdentity",
            _unsigned(broker.url).assume_role_with_web_identity,
            RoleArn=DEV_ROLE,
            RoleSessionName="web",
            WebIdentityToken="eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL25vd2hlcmUifQ.c2ln",
        )
    assert web.value.response["Error"]["Code"] == "InvalidIdentityToken"
    _console(broker, dev)
    return made


def _console(broker: Broker, creds: dict[str, Any]) -> None:
    """getSigninToken, then login: the console cookie is set."""
    session = json.dumps(
        {
            "sessionId": creds["AccessKeyId"],
            "sessionKey": creds["SecretAccessKey"],
            "sessionToken": creds["SessionToken"],
        }
    )
    answer = httpx.get(
        f"{broker.url}/federation", params={"Action": "getSigninToken", "Session": session}
    )
    assert answer.status_code == 200, answer.text
    query = urlencode(
        {
            "Action": "login",
            "Issuer": "https://idp.example.com/",
            "Destination": f"{broker.url}/console",
            "SigninToken": answer.json()["SigninToken"],
        }
    )
    login = httpx.get(f"{broker.url}/federation?{query}")
    assert login.status_code == 302, login.text
    refused = httpx.get(
        f"{broker.url}/federation", params={"Action": "getSigninToken", "Session": "{}"}
    )
    assert refused.status_code == 400
