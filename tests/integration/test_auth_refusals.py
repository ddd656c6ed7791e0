"""Authentication refusals on the wire: each with the exact AWS code and HTTP status."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from broker.app import create_app
from broker.config import load_config
from tests.integration.conftest import (
    DEV,
    PROD,
    Broker,
    OffsetClock,
    session_client,
    start_server,
    stop_server,
)


def refusal(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    error = info.value.response
    return error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]


def _dev_session(broker: Broker, seconds: int = 900) -> dict[str, Any]:
    return broker.sts("alice").assume_role(
        RoleArn=f"arn:aws:iam::{DEV}:role/Dev", RoleSessionName="auth", DurationSeconds=seconds
    )["Credentials"]


def test_wrong_secret_is_signature_does_not_match(broker: Broker) -> None:
    sts = broker.sts(aws_access_key_id=broker.keys["alice"].id, aws_secret_access_key="x" * 40)
    assert refusal(sts.get_caller_identity) == ("SignatureDoesNotMatch", 403)


def test_unknown_access_key(broker: Broker) -> None:
    sts = broker.sts(aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="y" * 40)
    assert refusal(sts.get_caller_identity) == ("InvalidClientTokenId", 403)


def test_inactive_access_key(broker: Broker) -> None:
    sts = broker.sts("bob_old")
    assert refusal(sts.get_caller_identity) == ("InvalidClientTokenId", 403)


def test_unsigned_call_to_a_signed_action(broker: Broker) -> None:
    response = httpx.post(broker.url, data={"Action": "GetCallerIdentity", "Version": "2011-06-15"})
    assert response.status_code == 403
    assert "<Code>MissingAuthenticationToken</Code>" in response.text
    assert response.headers["x-amzn-requestid"]


def test_expired_session_token(broker: Broker, clock_reset: OffsetClock) -> None:
    temp = session_client(broker, _dev_session(broker))
    temp.get_caller_identity()
    clock_reset.offset += 901
    assert refusal(temp.get_caller_identity) == ("ExpiredToken", 403)


@pytest.mark.parametrize("position", [0, 5, 30, -2])
def test_tampered_session_token(broker: Broker, position: int) -> None:
    creds = _dev_session(broker)
    token = creds["SessionToken"]
    flipped = "B" if token[position] != "B" else "C"
    creds["SessionToken"] = (
        token[:position] + flipped + token[position + 1 :]
        if position != -2
        else token[:-2] + flipped + token[-1]
    )
    assert refusal(session_client(broker, creds).get_caller_identity) == (
        "InvalidClientTokenId",
        403,
    )


def test_token_of_another_session_with_this_key_id(broker: Broker) -> None:
    first, second = _dev_session(broker), _dev_session(broker)
    mixed = dict(first, SessionToken=second["SessionToken"])
    assert refusal(session_client(broker, mixed).get_caller_identity) == (
        "InvalidClientTokenId",
        403,
    )


def test_temporary_key_without_its_token(broker: Broker) -> None:
    creds = _dev_session(broker)
    sts = broker.sts(
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"]
    )
    assert refusal(sts.get_caller_identity) == ("InvalidClientTokenId", 403)


def test_token_sealed_by_an_unknown_key(broker: Broker) -> None:
    """Credentials from another broker (different token key) are refused here."""
    other_key = base64.b64encode(os.urandom(32)).decode()
    config = load_config(broker.config_path, environ={"TEST_TOKEN_KEY": other_key})
    url, running = start_server(create_app(config))
    try:
        foreign = broker.sts("alice", endpoint=url)  # same user, the other broker
        creds = foreign.assume_role(RoleArn=f"arn:aws:iam::{DEV}:role/Dev", RoleSessionName="ff")[
            "Credentials"
        ]
        assert session_client(broker, creds).meta.endpoint_url == broker.url
        assert refusal(session_client(broker, creds).get_caller_identity) == (
            "InvalidClientTokenId",
            403,
        )
    finally:
        stop_server(running)


def test_signing_region_must_be_the_brokers(broker: Broker) -> None:
    sts = broker.sts("alice")
    sts._client_config.region_name = "eu-west-1"
    sts._request_signer._region_name = "eu-west-1"
    with pytest.raises(ClientError) as info:
        sts.get_caller_identity()
    assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert "us-east-1" in info.value.response["Error"]["Message"]


def test_presigned_get_caller_identity_url(broker: Broker) -> None:
    """The Vault / aws-iam-authenticator pattern: a presigned URL proves who you are."""
    sts = broker.sts("alice")
    url = sts.generate_presigned_url("get_caller_identity", ExpiresIn=60, HttpMethod="GET")
    response = httpx.get(url)
    assert response.status_code == 200, response.text
    assert f"<Arn>arn:aws:iam::{DEV}:user/alice</Arn>" in response.text
    # botocore signs the operation's own method (POST) unless told otherwise: it must be POSTed.
    post_url = sts.generate_presigned_url("get_caller_identity", ExpiresIn=60)
    assert httpx.post(post_url).status_code == 200
    assert httpx.get(post_url).status_code == 403


def test_presigned_url_after_expiry(broker: Broker, clock_reset: OffsetClock) -> None:
    url = broker.sts("alice").generate_presigned_url(
        "get_caller_identity", ExpiresIn=60, HttpMethod="GET"
    )
    assert httpx.get(url).status_code == 200
    clock_reset.offset += 120
    response = httpx.get(url)
    assert response.status_code == 403
    assert "<Code>" in response.text


def test_unknown_action(broker: Broker) -> None:
    response = httpx.post(broker.url, data={"Action": "MintMoney", "Version": "2011-06-15"})
    assert response.status_code == 400
    assert "<Code>InvalidAction</Code>" in response.text
    assert response.headers["content-type"].startswith("text/xml")


def test_oversized_body(broker: Broker) -> None:
    response = httpx.post(
        broker.url,
        content=b"Action=GetCallerIdentity&Version=2011-06-15&Pad=" + b"a" * 300_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert "<ErrorResponse" in response.text


def test_get_root_without_action_is_for_people(broker: Broker) -> None:
    response = httpx.get(broker.url + "/")
    assert response.status_code == 200
    assert "sts-broker" in response.text


def test_sts_path_serves_the_api_too(broker: Broker) -> None:
    sts = broker.sts("alice", endpoint=broker.url + "/sts")
    assert sts.get_caller_identity()["Account"] == DEV


def _aws_cli() -> str:
    found = shutil.which("aws", path=str(Path(sys.executable).parent))
    assert found, "the AWS CLI is a test dependency (awscli)"
    return found


def test_aws_cli_get_caller_identity_and_assume_role(broker: Broker, tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": broker.keys["alice"].id,
        "AWS_SECRET_ACCESS_KEY": broker.keys["alice"].secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_STS": broker.url,
    }

    def aws(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_aws_cli(), "sts", *args, "--output", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    who = aws("get-caller-identity")
    assert who.returncode == 0, who.stderr
    assert f'"Arn": "arn:aws:iam::{DEV}:user/alice"' in who.stdout
    role = [
        "assume-role",
        "--role-arn",
        f"arn:aws:iam::{PROD}:role/UpdateApp",
        "--role-session-name",
        "cli",
    ]
    mfa = [
        "--serial-number",
        f"arn:aws:iam::{DEV}:mfa/alice",
        "--token-code",
        broker.fresh_code("alice"),
    ]
    assumed = aws(*role, *mfa)
    assert assumed.returncode == 0, assumed.stderr
    assert f"arn:aws:sts::{PROD}:assumed-role/UpdateApp/cli" in assumed.stdout
    denied = aws(*role)
    assert denied.returncode != 0
    assert "(AccessDenied)" in denied.stderr
