"""Broker-to-broker federation: tokens from GetWebIdentityToken on one broker are accepted by
a second broker that lists the first as an OIDC provider (AssumeRoleWithWebIdentity)."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
import yaml
from botocore.exceptions import ClientError

from broker.app import create_app
from broker.config import load_config
from tests.integration.conftest import DEV, PROD, Broker, session_client, start_server, stop_server

AUDIENCE = "second-broker"
SECOND = "333333333333"


@pytest.fixture(scope="module")
def second(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    host = broker.url.removeprefix("http://")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::{SECOND}:oidc-provider/{host}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{host}:aud": AUDIENCE},
                    "StringLike": {f"{host}:sub": f"arn:aws:iam::{DEV}:*"},
                },
            }
        ],
    }
    config = {
        "public_url": "http://127.0.0.1:8081",
        "token_keys": [{"id": "second", "secret": base64.b64encode(os.urandom(32)).decode()}],
        "accounts": {
            SECOND: {
                "oidc_providers": [{"url": broker.url, "client_ids": [AUDIENCE]}],
                "roles": {"FromFirstBroker": {"trust_policy": trust}},
            }
        },
    }
    path = tmp_path_factory.mktemp("second") / "broker.yaml"
    path.write_text(yaml.safe_dump(config))
    url, running = start_server(create_app(load_config(path)))
    try:
        yield url
    finally:
        stop_server(running)


def _second_sts(url: str) -> Any:
    return boto3.client("sts", endpoint_url=url, region_name="us-east-1")


def test_issuer_documents(broker: Broker) -> None:
    discovery = httpx.get(f"{broker.url}/.well-known/openid-configuration").json()
    assert discovery["issuer"] == "http://127.0.0.1:8080" or discovery["issuer"].startswith("http")
    jwks = httpx.get(discovery["jwks_uri"]).json()
    assert {key["alg"] for key in jwks["keys"]} >= {"RS256", "ES384"}


@pytest.mark.parametrize("algorithm", ["RS256", "ES384"])
def test_second_broker_accepts_first_brokers_tokens(
    broker: Broker, second: str, algorithm: str
) -> None:
    minted = broker.sts("alice").get_web_identity_token(
        Audience=[AUDIENCE], SigningAlgorithm=algorithm, DurationSeconds=300
    )
    assert minted["Expiration"]
    out = _second_sts(second).assume_role_with_web_identity(
        RoleArn=f"arn:aws:iam::{SECOND}:role/FromFirstBroker",
        RoleSessionName="alice-from-first",
        WebIdentityToken=minted["WebIdentityToken"],
    )
    assert out["SubjectFromWebIdentityToken"] == f"arn:aws:iam::{DEV}:user/alice"
    assert out["Audience"] == AUDIENCE
    arn = f"arn:aws:sts::{SECOND}:assumed-role/FromFirstBroker/alice-from-first"
    assert out["AssumedRoleUser"]["Arn"] == arn
    creds = out["Credentials"]
    who = boto3.client(
        "sts",
        endpoint_url=second,
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    ).get_caller_identity()
    assert who["Arn"] == arn


def test_token_for_another_audience_is_refused(broker: Broker, second: str) -> None:
    minted = broker.sts("alice").get_web_identity_token(
        Audience=["someone-else"], SigningAlgorithm="RS256"
    )
    with pytest.raises(ClientError) as info:
        _second_sts(second).assume_role_with_web_identity(
            RoleArn=f"arn:aws:iam::{SECOND}:role/FromFirstBroker",
            RoleSessionName="x-x",
            WebIdentityToken=minted["WebIdentityToken"],
        )
    assert info.value.response["Error"]["Code"] == "IDPRejectedClaim"


def test_get_web_identity_token_refusals(broker: Broker) -> None:
    def code(call: Any, **kwargs: Any) -> tuple[str, int]:
        with pytest.raises(ClientError) as info:
            call(**kwargs)
        return info.value.response["Error"]["Code"], info.value.response["ResponseMetadata"][
            "HTTPStatusCode"
        ]

    # bob has no sts:GetWebIdentityToken permission.
    assert code(
        broker.sts("bob").get_web_identity_token, Audience=["a"], SigningAlgorithm="RS256"
    ) == (
        "AccessDenied",
        403,
    )
    # A 900 s role session cannot mint a token that outlives it.
    role = broker.sts("alice").assume_role(
        RoleArn=f"arn:aws:iam::{DEV}:role/Dev", RoleSessionName="short", DurationSeconds=900
    )
    chained = session_client(broker, role["Credentials"])
    assert chained.get_web_identity_token(
        Audience=["a"], SigningAlgorithm="ES384", DurationSeconds=60
    )
    assert code(
        chained.get_web_identity_token,
        Audience=["a"],
        SigningAlgorithm="RS256",
        DurationSeconds=3600,
    ) == ("SessionDurationEscalationException", 403)
    assert code(
        broker.sts("alice").get_web_identity_token, Audience=["a"], SigningAlgorithm="HS256"
    ) == (
        "ValidationError",
        400,
    )
    # The prod account has not enabled outbound federation.
    prod = broker.sts("alice").assume_role(
        RoleArn=f"arn:aws:iam::{PROD}:role/UpdateApp",
        RoleSessionName="p-p",
        SerialNumber=f"arn:aws:iam::{DEV}:mfa/alice",
        TokenCode=broker.fresh_code("alice"),
    )
    assert code(
        session_client(broker, prod["Credentials"]).get_web_identity_token,
        Audience=["a"],
        SigningAlgorithm="RS256",
    ) == ("OutboundWebIdentityFederationDisabledException", 403)
