"""The authorization API on a real broker (uvicorn on loopback) with real boto3 credentials.

The broker here is built with the authorization routes added (the production app gets the
same objects wired by ``broker.app``), from its own YAML config whose ``public_url`` is the
loopback address it really listens on, so a presigned proof for it names the right host.
A second Starlette app on loopback is the resource server protected by the middleware.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import uvicorn
import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from broker.app import create_app
from broker.authz import (
    PROOF_HEADER,
    AuthzService,
    RequireIamPermission,
    presign_caller_identity,
)
from broker.config import load_config
from broker.directory import Directory
from broker.identity import Caller
from broker.sts.messages import AuthorizationMessages
from tests.integration.conftest import OffsetClock, Running, stop_server

DEV = "111111111111"
PROD = "222222222222"
REGION = "us-east-1"
BUCKET = "arn:aws:s3:::data"


def _key() -> tuple[str, str]:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    body = "".join(alphabet[b % 32] for b in os.urandom(16))
    return f"AKIA{body}", base64.b64encode(os.urandom(30)).decode()


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _allow(action: Any, resource: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def _user(key: tuple[str, str], **policies: dict[str, Any]) -> dict[str, Any]:
    return {"access_keys": [{"id": key[0], "secret": key[1]}], "policies": policies}


@dataclass
class AuthzBroker:
    url: str
    clock: OffsetClock
    keys: dict[str, tuple[str, str]]
    directory: Directory

    def creds(self, user: str) -> dict[str, str]:
        key_id, secret = self.keys[user]
        return {"aws_access_key_id": key_id, "aws_secret_access_key": secret}

    def sts(self, user: str | None = None, **creds: Any) -> Any:
        return boto3.client(
            "sts",
            endpoint_url=self.url,
            region_name=REGION,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
            **(self.creds(user) if user else creds),
        )

    def proof(self, user: str, *, expires_in: int = 60, url: str | None = None) -> str:
        key_id, secret = self.keys[user]
        return presign_caller_identity(
            url or self.url,
            access_key_id=key_id,
            secret_access_key=secret,
            region=REGION,
            expires_in=expires_in,
        )


def _config(path: Path, url: str, keys: dict[str, tuple[str, str]]) -> None:
    config = {
        "public_url": url,
        "region": REGION,
        "state": f"sqlite:///{path.parent / 'state.db'}",
        "token_keys": [{"id": "authz1", "secret": "${AUTHZ_TOKEN_KEY}"}],
        "accounts": {
            DEV: {
                "users": {
                    "writer": _user(
                        keys["writer"],
                        data=_doc(
                            {
                                "Sid": "ReadWrite",
                                **_allow(["s3:GetObject", "s3:PutObject"], f"{BUCKET}/*"),
                            },
                            {
                                "Sid": "Locked",
                                "Effect": "Deny",
                                "Action": "s3:PutObject",
                                "Resource": f"{BUCKET}/locked/*",
                            },
                            {
                                "Sid": "ListPublic",
                                **_allow(
                                    "s3:ListBucket",
                                    BUCKET,
                                    Condition={"StringLike": {"s3:prefix": "public/*"}},
                                ),
                            },
                            {
                                "Sid": "FromLoopbackOnly",
                                "Effect": "Deny",
                                "Action": "s3:GetObject",
                                "Resource": f"{BUCKET}/office/*",
                                "Condition": {"NotIpAddress": {"aws:SourceIp": "10.1.0.0/16"}},
                            },
                            _allow("sts:AssumeRole", f"arn:aws:iam::{DEV}:role/Reader"),
                        ),
                    ),
                    "auditor": _user(
                        keys["auditor"],
                        decode=_doc(_allow("sts:DecodeAuthorizationMessage", "*")),
                    ),
                    "nobody": {
                        "access_keys": [{"id": keys["nobody"][0], "secret": keys["nobody"][1]}]
                    },
                },
                "roles": {
                    "Reader": {
                        "trust_policy": _doc(
                            {
                                "Effect": "Allow",
                                "Principal": {"AWS": f"arn:aws:iam::{DEV}:root"},
                                "Action": "sts:AssumeRole",
                            }
                        ),
                        "policies": {"read": _doc(_allow("s3:GetObject", f"{BUCKET}/*"))},
                    }
                },
            },
            PROD: {
                "users": {
                    "prod-auditor": _user(
                        keys["prod-auditor"],
                        decode=_doc(_allow("sts:DecodeAuthorizationMessage", "*")),
                    )
                }
            },
        },
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _serve(sock: socket.socket, app: Any) -> Running:
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.01)
    return Running(server, thread)


def _loopback_socket() -> tuple[socket.socket, str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthzBroker]:
    folder = tmp_path_factory.mktemp("authz")
    keys = {name: _key() for name in ("writer", "auditor", "nobody", "prod-auditor")}
    sock, url = _loopback_socket()
    path = folder / "broker.yaml"
    _config(path, url, keys)
    secret = base64.b64encode(os.urandom(32)).decode()
    config = load_config(path, environ={"AUTHZ_TOKEN_KEY": secret})
    clock = OffsetClock()
    app = create_app(config, clock=clock)
    directory = Directory.build(config)
    running = _serve(sock, app)
    try:
        yield AuthzBroker(url=url, clock=clock, keys=keys, directory=directory)
    finally:
        stop_server(running)


@pytest.fixture
def clock_reset(broker: AuthzBroker) -> Iterator[OffsetClock]:
    before = broker.clock.offset
    yield broker.clock
    broker.clock.offset = before


def signed_post(
    broker: AuthzBroker,
    path: str,
    body: dict[str, Any],
    *,
    credentials: Credentials,
    service: str = "sts",
    region: str = REGION,
) -> httpx.Response:
    """POST JSON signed with SigV4 by botocore, exactly as an AWS SDK signs."""
    data = json.dumps(body).encode()
    request = AWSRequest(
        method="POST",
        url=f"{broker.url}{path}",
        data=data,
        headers={"Content-Type": "application/json"},
    )
    SigV4Auth(credentials, service, region).add_auth(request)
    return httpx.post(f"{broker.url}{path}", content=data, headers=dict(request.headers))


def user_credentials(broker: AuthzBroker, user: str) -> Credentials:
    key_id, secret = broker.keys[user]
    return Credentials(key_id, secret)


def check_as(broker: AuthzBroker, user: str, **body: Any) -> httpx.Response:
    return signed_post(broker, "/authz/check", body, credentials=user_credentials(broker, user))


def check_with_proof(broker: AuthzBroker, proof: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{broker.url}/authz/check", json={**body, "proof": {"presigned_url": proof}})


def error_of(response: httpx.Response) -> tuple[str, int]:
    return response.json()["error"]["code"], response.status_code


def decode_as(broker: AuthzBroker, user: str, message: str) -> httpx.Response:
    return signed_post(
        broker,
        "/authz/decode",
        {"encoded_message": message},
        credentials=user_credentials(broker, user),
    )


# -- checks ---------------------------------------------------------------------------------


def test_signed_check_allowed(broker: AuthzBroker) -> None:
    response = check_as(broker, "writer", action="s3:GetObject", resource=f"{BUCKET}/a.txt")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["allowed"] is True
    assert answer["principal"] == {
        "arn": f"arn:aws:iam::{DEV}:user/writer",
        "account": DEV,
        "user_id": broker.sts("writer").get_caller_identity()["UserId"],
    }
    assert answer["matched"] == [
        {"policy": "data", "statement_index": 0, "sid": "ReadWrite", "effect": "Allow"}
    ]
    assert answer["reason"] == "allowed by an identity-based policy"
    assert "encoded_message" not in answer
    assert response.headers["x-amzn-RequestId"]


def test_signed_check_explicit_and_implicit_deny(broker: AuthzBroker) -> None:
    explicit = check_as(broker, "writer", action="s3:PutObject", resource=f"{BUCKET}/locked/x")
    assert explicit.status_code == 200
    answer = explicit.json()
    assert answer["allowed"] is False
    assert answer["reason"] == "explicit deny in an identity-based policy"
    # Which statement denied is privileged: only the encoded message says.
    assert answer["matched"] == []
    assert answer["encoded_message"]
    implicit = check_as(broker, "nobody", action="s3:GetObject", resource=f"{BUCKET}/a")
    assert implicit.json()["allowed"] is False
    assert implicit.json()["reason"] == "no identity-based policy allows the s3:GetObject action"


def test_request_context_drives_conditions(broker: AuthzBroker) -> None:
    listing = {"action": "s3:ListBucket", "resource": BUCKET}
    allowed = check_as(broker, "writer", **listing, context={"s3:prefix": "public/docs"})
    assert allowed.json()["allowed"] is True
    assert (
        check_as(broker, "writer", **listing, context={"s3:prefix": "private/"}).json()["allowed"]
        is False
    )
    assert check_as(broker, "writer", **listing).json()["allowed"] is False
    many = check_as(broker, "writer", **listing, context={"s3:prefix": ["public/a", "x/"]})
    assert many.status_code == 200


def test_signed_check_cannot_restate_its_own_source_ip(broker: AuthzBroker) -> None:
    # From 127.0.0.1 the office-only Deny applies; claiming an office address must not lift it.
    office = {"action": "s3:GetObject", "resource": f"{BUCKET}/office/plan"}
    assert check_as(broker, "writer", **office).json()["allowed"] is False
    forged = check_as(broker, "writer", **office, context={"aws:SourceIp": "10.1.2.3"})
    assert error_of(forged) == ("ValidationError", 400)


def test_reserved_keys_are_refused(broker: AuthzBroker) -> None:
    for key in ("aws:PrincipalArn", "aws:PrincipalTag/team", "aws:MultiFactorAuthPresent"):
        response = check_as(
            broker, "nobody", action="s3:GetObject", resource=f"{BUCKET}/a", context={key: "true"}
        )
        assert error_of(response) == ("ValidationError", 400), key


def test_session_policy_intersects_with_role_policy(broker: AuthzBroker) -> None:
    session_policy = _doc(_allow("s3:GetObject", f"{BUCKET}/public/*"))
    creds = broker.sts("writer").assume_role(
        RoleArn=f"arn:aws:iam::{DEV}:role/Reader",
        RoleSessionName="reader",
        Policy=json.dumps(session_policy),
    )["Credentials"]
    temporary = Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    public = signed_post(
        broker,
        "/authz/check",
        {"action": "s3:GetObject", "resource": f"{BUCKET}/public/a"},
        credentials=temporary,
    )
    assert public.json()["allowed"] is True
    assert public.json()["principal"]["arn"] == f"arn:aws:sts::{DEV}:assumed-role/Reader/reader"
    private = signed_post(
        broker,
        "/authz/check",
        {"action": "s3:GetObject", "resource": f"{BUCKET}/private/a"},
        credentials=temporary,
    )
    assert private.json()["allowed"] is False
    assert private.json()["reason"] == "no session policy allows the s3:GetObject action"
    # The same session, proved by a presigned URL made from boto3's temporary credentials.
    proof = boto3.client(
        "sts",
        endpoint_url=broker.url,
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    ).generate_presigned_url("get_caller_identity", ExpiresIn=60, HttpMethod="GET")
    by_proof = check_with_proof(broker, proof, action="s3:GetObject", resource=f"{BUCKET}/public/b")
    assert by_proof.json()["allowed"] is True
    assert by_proof.json()["principal"]["arn"] == f"arn:aws:sts::{DEV}:assumed-role/Reader/reader"


def test_wrong_signature_scope_and_missing_auth(broker: AuthzBroker) -> None:
    body = {"action": "s3:GetObject", "resource": f"{BUCKET}/a"}
    wrong_secret = Credentials(broker.keys["writer"][0], base64.b64encode(os.urandom(30)).decode())
    assert error_of(signed_post(broker, "/authz/check", body, credentials=wrong_secret)) == (
        "SignatureDoesNotMatch",
        403,
    )
    other_service = signed_post(
        broker,
        "/authz/check",
        body,
        credentials=user_credentials(broker, "writer"),
        service="s3",
    )
    assert error_of(other_service) == ("SignatureDoesNotMatch", 403)
    unknown = Credentials("AKIAAAAAAAAAAAAAAAAA", "x" * 40)
    assert error_of(signed_post(broker, "/authz/check", body, credentials=unknown)) == (
        "InvalidClientTokenId",
        403,
    )
    assert error_of(httpx.post(f"{broker.url}/authz/check", json=body)) == (
        "MissingAuthenticationToken",
        403,
    )


def test_signed_body_cannot_be_swapped(broker: AuthzBroker) -> None:
    credentials = user_credentials(broker, "nobody")
    data = json.dumps({"action": "s3:GetObject", "resource": f"{BUCKET}/a"}).encode()
    request = AWSRequest(
        method="POST",
        url=f"{broker.url}/authz/check",
        data=data,
        headers={"Content-Type": "application/json"},
    )
    SigV4Auth(credentials, "sts", REGION).add_auth(request)
    swapped = json.dumps({"action": "s3:GetObject", "resource": f"{BUCKET}/b"}).encode()
    response = httpx.post(
        f"{broker.url}/authz/check", content=swapped, headers=dict(request.headers)
    )
    assert error_of(response) == ("SignatureDoesNotMatch", 403)


# -- presigned proofs -----------------------------------------------------------------------


def test_proof_from_the_client_helper_and_boto3(broker: AuthzBroker) -> None:
    ours = check_with_proof(
        broker, broker.proof("writer"), action="s3:GetObject", resource=f"{BUCKET}/a"
    )
    assert ours.json()["allowed"] is True
    boto = broker.sts("writer").generate_presigned_url(
        "get_caller_identity", ExpiresIn=60, HttpMethod="GET"
    )
    theirs = check_with_proof(broker, boto, action="s3:PutObject", resource=f"{BUCKET}/locked/a")
    assert theirs.json()["allowed"] is False
    assert theirs.json()["encoded_message"]


def test_proof_lets_the_resource_server_state_the_client_address(broker: AuthzBroker) -> None:
    office = {"action": "s3:GetObject", "resource": f"{BUCKET}/office/plan"}
    inside = check_with_proof(
        broker, broker.proof("writer"), **office, context={"aws:SourceIp": "10.1.9.9"}
    )
    assert inside.json()["allowed"] is True
    outside = check_with_proof(
        broker, broker.proof("writer"), **office, context={"aws:SourceIp": "192.0.2.1"}
    )
    assert outside.json()["allowed"] is False
    # Unknown address: the NotIpAddress deny applies (fail closed).
    assert check_with_proof(broker, broker.proof("writer"), **office).json()["allowed"] is False
    bad = check_with_proof(
        broker, broker.proof("writer"), **office, context={"aws:SourceIp": "nope"}
    )
    assert error_of(bad) == ("ValidationError", 400)


def test_expired_proof_is_refused(broker: AuthzBroker, clock_reset: OffsetClock) -> None:
    short = broker.proof("writer", expires_in=30)
    longer = broker.proof("writer", expires_in=600)
    body = {"action": "s3:GetObject", "resource": f"{BUCKET}/a"}
    clock_reset.offset += 60
    assert error_of(check_with_proof(broker, short, **body)) == ("SignatureDoesNotMatch", 403)
    # X-Amz-Expires is honoured: the 600 s proof is still good a minute later...
    assert check_with_proof(broker, longer, **body).json()["allowed"] is True
    clock_reset.offset += 600
    # ...and not past its own expiry.
    assert error_of(check_with_proof(broker, longer, **body)) == ("SignatureDoesNotMatch", 403)


def test_proof_for_another_host_is_refused(broker: AuthzBroker) -> None:
    body = {"action": "s3:GetObject", "resource": f"{BUCKET}/a"}
    port = broker.url.rsplit(":", 1)[1]
    for url in ("https://sts.amazonaws.com", f"http://localhost:{port}", "http://127.0.0.1:1"):
        proof = broker.proof("writer", url=url)
        assert error_of(check_with_proof(broker, proof, **body)) == ("AccessDenied", 403), url


def test_proof_for_another_action_or_tampered_is_refused(broker: AuthzBroker) -> None:
    body = {"action": "s3:GetObject", "resource": f"{BUCKET}/a"}
    sts = broker.sts("writer")
    for other in (
        sts.generate_presigned_url("get_session_token", ExpiresIn=60),
        sts.generate_presigned_url(
            "get_access_key_info", Params={"AccessKeyId": broker.keys["nobody"][0]}, ExpiresIn=60
        ),
    ):
        assert error_of(check_with_proof(broker, other, **body)) == ("AccessDenied", 403)
    proof = broker.proof("writer")
    # A renamed action is refused by name; an added parameter breaks the signature.
    renamed = proof.replace("Action=GetCallerIdentity", "Action=GetSessionToken")
    assert error_of(check_with_proof(broker, renamed, **body)) == ("AccessDenied", 403)
    extra = proof + "&DurationSeconds=900"
    assert error_of(check_with_proof(broker, extra, **body)) == ("SignatureDoesNotMatch", 403)
    # boto3 presigns for POST unless told HttpMethod="GET"; a proof is verified as a GET.
    post_signed = sts.generate_presigned_url("get_caller_identity", ExpiresIn=60)
    assert error_of(check_with_proof(broker, post_signed, **body)) == ("SignatureDoesNotMatch", 403)
    unsigned = f"{broker.url}/?Action=GetCallerIdentity&Version=2011-06-15"
    assert error_of(check_with_proof(broker, unsigned, **body)) == (
        "MissingAuthenticationToken",
        403,
    )
    for malformed in ("not a url", "ftp://127.0.0.1/", "http://[::1/", "x" * 20000):
        assert error_of(check_with_proof(broker, malformed, **body)) == ("ValidationError", 400)


def test_proof_and_signature_together_are_ambiguous(broker: AuthzBroker) -> None:
    response = signed_post(
        broker,
        "/authz/check",
        {
            "action": "s3:GetObject",
            "resource": f"{BUCKET}/a",
            "proof": {"presigned_url": broker.proof("nobody")},
        },
        credentials=user_credentials(broker, "writer"),
    )
    assert error_of(response) == ("ValidationError", 400)


# -- decoding -------------------------------------------------------------------------------


def _deny_message(broker: AuthzBroker) -> str:
    response = check_as(broker, "writer", action="s3:PutObject", resource=f"{BUCKET}/locked/x")
    message: str = response.json()["encoded_message"]
    return message


def test_deny_message_decodes_into_aws_shape(broker: AuthzBroker) -> None:
    response = decode_as(broker, "auditor", _deny_message(broker))
    assert response.status_code == 200, response.text
    decoded = response.json()["decoded_message"]
    assert list(decoded) == ["allowed", "explicitDeny", "matchedStatements", "failures", "context"]
    assert decoded["allowed"] is False and decoded["explicitDeny"] is True
    deny = [s for s in decoded["matchedStatements"]["items"] if s["effect"] == "DENY"]
    assert deny == [
        {
            "statementId": "Locked",
            "effect": "DENY",
            "principals": {"items": [{"value": decoded["context"]["principal"]["id"]}]},
            "principalGroups": {"items": []},
            "actions": {"items": [{"value": "s3:PutObject"}]},
            "resources": {"items": [{"value": f"{BUCKET}/locked/*"}]},
            "conditions": {"items": []},
        }
    ]
    context = decoded["context"]
    assert context["principal"]["arn"] == f"arn:aws:iam::{DEV}:user/writer"
    assert context["action"] == "s3:PutObject"
    assert context["resource"] == f"{BUCKET}/locked/x"
    keys = {c["key"]: c["values"]["items"] for c in context["conditions"]["items"]}
    assert keys["aws:SourceIp"] == [{"value": "127.0.0.1"}]
    assert keys["aws:PrincipalType"] == [{"value": "User"}]


def test_caller_without_decode_permission_is_refused(broker: AuthzBroker) -> None:
    message = _deny_message(broker)
    for user in ("writer", "nobody"):
        response = decode_as(broker, user, message)
        assert error_of(response) == ("AccessDenied", 403)
        assert "sts:DecodeAuthorizationMessage" in response.json()["error"]["message"]


def test_tampered_and_foreign_messages_are_invalid(broker: AuthzBroker) -> None:
    message = _deny_message(broker)
    middle = len(message) // 2
    flipped = message[:middle] + ("A" if message[middle] != "A" else "B") + message[middle + 1 :]
    foreign = AuthorizationMessages([("authz1", os.urandom(32))])
    # Same key ID, different secret: another broker's message that looks like ours.
    other_broker = AuthzService(
        directory=broker.directory, messages=foreign, clock=broker.clock, region=REGION
    )
    writer = broker.directory.keys[broker.keys["writer"][0]].user
    caller = Caller(
        kind="user",
        account=DEV,
        arn=writer.arn,
        user_id=writer.user_id,
        principal_arn=writer.arn,
        user=writer,
    )
    theirs = other_broker.check(caller, "s3:PutObject", f"{BUCKET}/locked/x", {}).encoded_message
    assert theirs is not None
    for hostile in (flipped, message[:-8], theirs, "!!not-a-message!!"):
        assert error_of(decode_as(broker, "auditor", hostile)) == (
            "InvalidAuthorizationMessageException",
            400,
        )
    # Messages are per account, as AWS's are.
    assert error_of(decode_as(broker, "prod-auditor", message)) == (
        "InvalidAuthorizationMessageException",
        400,
    )


def test_sts_decode_authorization_message_with_boto3(broker: AuthzBroker) -> None:
    """The STS action itself, as `aws sts decode-authorization-message` calls it."""
    message = _deny_message(broker)
    decoded = json.loads(
        broker.sts("auditor").decode_authorization_message(EncodedMessage=message)["DecodedMessage"]
    )
    assert decoded["allowed"] is False
    assert decoded["context"]["action"] == "s3:PutObject"
    for user, expected in (
        ("writer", ("AccessDenied", 403)),
        ("prod-auditor", ("InvalidAuthorizationMessageException", 400)),
    ):
        with pytest.raises(ClientError) as info:
            broker.sts(user).decode_authorization_message(EncodedMessage=message)
        response = info.value.response
        assert (
            response["Error"]["Code"],
            response["ResponseMetadata"]["HTTPStatusCode"],
        ) == expected


def test_decode_refuses_a_bearer_proof(broker: AuthzBroker) -> None:
    response = httpx.post(
        f"{broker.url}/authz/decode",
        json={
            "encoded_message": _deny_message(broker),
            "proof": {"presigned_url": broker.proof("auditor")},
        },
    )
    assert error_of(response) == ("ValidationError", 400)


# -- the request itself -----------------------------------------------------------------------


def test_malformed_requests_never_500(broker: AuthzBroker) -> None:
    url = f"{broker.url}/authz/check"
    deep = "[" * 100_00 + "]" * 100_00
    cases = [
        (
            httpx.post(url, content=b"{}", headers={"Content-Type": "text/plain"}),
            "UnsupportedMediaType",
            415,
        ),
        (
            httpx.post(url, content=b"{nope", headers={"Content-Type": "application/json"}),
            "ValidationError",
            400,
        ),
        (
            httpx.post(url, content=deep.encode(), headers={"Content-Type": "application/json"}),
            "ValidationError",
            400,
        ),
        (
            httpx.post(url, content=b"\xff\xfe", headers={"Content-Type": "application/json"}),
            "ValidationError",
            400,
        ),
        (httpx.post(url, json=[1, 2]), "ValidationError", 400),
        (
            httpx.post(url, json={"action": "s3:GetObject", "resource": "*", "extra": 1}),
            "ValidationError",
            400,
        ),
        (httpx.post(url, json={"action": 5, "resource": "*"}), "ValidationError", 400),
        (
            httpx.post(url, json={"action": "s3:Get", "resource": "*", "context": {"s3:a": 1}}),
            "ValidationError",
            400,
        ),
        (
            httpx.post(url, json={"action": "s3:Get", "resource": "*", "proof": "x"}),
            "ValidationError",
            400,
        ),
        (
            httpx.post(url, content=b" " * 300_000, headers={"Content-Type": "application/json"}),
            "RequestEntityTooLarge",
            413,
        ),
    ]
    for response, code, status in cases:
        assert error_of(response) == (code, status), response.text
    assert check_as(broker, "writer", action="s3:*", resource="*").status_code == 400


def test_openapi_document_is_served(broker: AuthzBroker) -> None:
    document = httpx.get(f"{broker.url}/authz/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": broker.url}]
    assert set(document["paths"]) == {"/authz/check", "/authz/decode"}


# -- the middleware on a resource server --------------------------------------------------------


@pytest.fixture(scope="module")
def resource_server(broker: AuthzBroker) -> Iterator[str]:
    async def read_object(request: Request) -> Response:
        principal = request.state.principal
        return JSONResponse({"key": request.path_params["key"], "caller": principal.arn})

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    protect = Middleware(
        RequireIamPermission,
        broker_url=broker.url,
        action="s3:GetObject",
        resource=lambda request: f"{BUCKET}/{request.path_params['key']}",
    )
    unreachable = Middleware(
        RequireIamPermission,
        broker_url="http://127.0.0.1:9",
        action="s3:GetObject",
        resource=f"{BUCKET}/x",
    )
    app = Starlette(
        routes=[
            Route("/objects/{key:path}", read_object, middleware=[protect]),
            Route("/down/{key}", read_object, middleware=[unreachable]),
            Route("/health", health),
        ]
    )
    sock, url = _loopback_socket()
    running = _serve(sock, app)
    try:
        yield url
    finally:
        stop_server(running)


def test_middleware_protects_a_resource_server(broker: AuthzBroker, resource_server: str) -> None:
    url = f"{resource_server}/objects/reports/q1.csv"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "MissingAuthenticationToken"
    allowed = httpx.get(url, headers={PROOF_HEADER: broker.proof("writer")})
    assert allowed.status_code == 200, allowed.text
    assert allowed.json() == {"key": "reports/q1.csv", "caller": f"arn:aws:iam::{DEV}:user/writer"}
    denied = httpx.get(url, headers={PROOF_HEADER: broker.proof("nobody")})
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "AccessDenied"
    decoded = decode_as(broker, "auditor", denied.json()["encoded_message"]).json()
    assert decoded["decoded_message"]["context"]["resource"] == f"{BUCKET}/reports/q1.csv"
    assert decoded["decoded_message"]["context"]["action"] == "s3:GetObject"
    forged = httpx.get(url, headers={PROOF_HEADER: broker.proof("writer", url="http://evil.test")})
    assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "AccessDenied"
    assert httpx.get(f"{resource_server}/health").status_code == 200


def test_middleware_uses_the_client_address(broker: AuthzBroker, resource_server: str) -> None:
    # The client reaches the resource server from 127.0.0.1, outside the office range.
    office = httpx.get(
        f"{resource_server}/objects/office/plan", headers={PROOF_HEADER: broker.proof("writer")}
    )
    assert office.status_code == 403


def test_middleware_fails_closed_when_broker_is_unreachable(
    broker: AuthzBroker, resource_server: str
) -> None:
    response = httpx.get(
        f"{resource_server}/down/x", headers={PROOF_HEADER: broker.proof("writer")}
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "BrokerUnavailable"
