"""Encoded authorization messages and the check service, without HTTP.

Every refusal test builds the real hostile input (a flipped byte, another broker's message,
a session token, an expired message) and asserts AWS's exact code and status.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest

from broker.authz import AuthzService
from broker.clock import FrozenClock
from broker.directory import Directory, User
from broker.errors import StsError
from broker.iam import AuthzRequest, Decision, authorize, parse_policy
from broker.identity import Caller, SessionClaims, TokenSealer
from broker.sts.messages import MAX_MESSAGE_CHARS, AuthorizationMessages

ACCOUNT = "111111111111"
NOW = 1_800_000_000.0
KEY = ("k1", os.urandom(32))


def _user(name: str, account: str = ACCOUNT, *statements: dict[str, Any]) -> Caller:
    policies = (
        (
            parse_policy(
                {"Version": "2012-10-17", "Statement": list(statements)},
                kind="identity",
                name=f"{name}-policy",
            ),
        )
        if statements
        else ()
    )
    arn = f"arn:aws:iam::{account}:user/{name}"
    user = User(
        account=account,
        name=name,
        path="/",
        arn=arn,
        user_id=f"AIDA{name.upper():A<17}"[:21],
        policies=policies,
        tags={"team": "platform"},
        mfa_devices={},
    )
    return Caller(
        kind="user", account=account, arn=arn, user_id=user.user_id, principal_arn=arn, user=user
    )


WRITER = _user(
    "writer",
    ACCOUNT,
    {"Sid": "Write", "Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*"},
    {
        "Sid": "Locked",
        "Effect": "Deny",
        "Action": "s3:*",
        "Resource": "arn:aws:s3:::b/locked/*",
        "Condition": {"StringEquals": {"aws:PrincipalTag/team": ["platform", "ops"]}},
    },
)
AUDITOR = _user(
    "auditor",
    ACCOUNT,
    {"Effect": "Allow", "Action": "sts:DecodeAuthorizationMessage", "Resource": "*"},
)
FOREIGN_AUDITOR = _user(
    "auditor",
    "222222222222",
    {"Effect": "Allow", "Action": "sts:DecodeAuthorizationMessage", "Resource": "*"},
)
NOBODY = _user("nobody")
DIRECTORY = Directory(keys={}, users={}, roles={}, managed={}, aliases={})


def _refusal(call: Any, *args: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(StsError) as info:
        call(*args, **kwargs)
    return info.value.code, info.value.status


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def messages(clock: FrozenClock) -> AuthorizationMessages:
    return AuthorizationMessages([KEY], clock=clock)


@pytest.fixture
def service(messages: AuthorizationMessages, clock: FrozenClock) -> AuthzService:
    return AuthzService(directory=DIRECTORY, messages=messages, clock=clock, region="us-east-1")


def _denied_message(service: AuthzService) -> str:
    result = service.check(WRITER, "s3:PutObject", "arn:aws:s3:::b/locked/x", {"s3:x": "1"})
    assert not result.allowed and result.encoded_message is not None
    return result.encoded_message


def test_decoded_message_has_aws_shape_exactly(service: AuthzService) -> None:
    message = _denied_message(service)
    document = service.messages.decode_for(AUDITOR, message, DIRECTORY)
    assert set(document) == {
        "allowed",
        "explicitDeny",
        "matchedStatements",
        "failures",
        "context",
    }
    assert document["allowed"] is False
    assert document["explicitDeny"] is True
    assert document["failures"] == {"items": []}
    statements = document["matchedStatements"]["items"]
    # The Allow matched too; AWS lists every statement that applied.
    assert [s["effect"] for s in statements] == ["ALLOW", "DENY"]
    deny = statements[1]
    assert deny == {
        "statementId": "Locked",
        "effect": "DENY",
        "principals": {"items": [{"value": WRITER.user_id}]},
        "principalGroups": {"items": []},
        "actions": {"items": [{"value": "s3:*"}]},
        "resources": {"items": [{"value": "arn:aws:s3:::b/locked/*"}]},
        "conditions": {
            "items": [
                {
                    "key": "aws:PrincipalTag/team",
                    "values": {"items": [{"value": "platform"}, {"value": "ops"}]},
                }
            ]
        },
    }
    context = document["context"]
    assert set(context) == {"principal", "action", "resource", "conditions"}
    assert context["principal"] == {"id": WRITER.user_id, "arn": WRITER.arn}
    assert context["action"] == "s3:PutObject"
    assert context["resource"] == "arn:aws:s3:::b/locked/x"
    keys = {c["key"]: c["values"]["items"] for c in context["conditions"]["items"]}
    assert keys["aws:PrincipalArn"] == [{"value": WRITER.arn}]
    assert keys["aws:PrincipalTag/team"] == [{"value": "platform"}]
    assert keys["s3:x"] == [{"value": "1"}]
    assert keys["aws:CurrentTime"] == [{"value": "2027-01-15T08:00:00Z"}]


def test_implicit_deny_message_and_allow_has_none(service: AuthzService) -> None:
    allowed = service.check(WRITER, "s3:PutObject", "arn:aws:s3:::b/ok", {})
    assert allowed.allowed and allowed.encoded_message is None
    assert [m.sid for m in allowed.matched] == ["Write"]
    denied = service.check(NOBODY, "s3:GetObject", "arn:aws:s3:::b/x", {})
    assert denied.reason == "no identity-based policy allows the s3:GetObject action"
    assert denied.encoded_message is not None
    document = service.messages.decode(denied.encoded_message)
    assert document["allowed"] is False and document["explicitDeny"] is False
    assert document["matchedStatements"] == {"items": []}


def test_message_is_opaque_and_compact(service: AuthzService) -> None:
    message = _denied_message(service)
    assert len(message) < 2000
    assert "writer" not in message and "locked" not in message
    raw = base64.urlsafe_b64decode(message + "=" * (-len(message) % 4))
    assert b"writer" not in raw and b"s3:" not in raw


@pytest.mark.parametrize("position", [0, 1, 3, 6, 17, 30, -1])
def test_every_flipped_byte_is_refused(service: AuthzService, position: int) -> None:
    raw = bytearray(base64.urlsafe_b64decode(_with_padding(_denied_message(service))))
    raw[position] ^= 0x01
    tampered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert _refusal(service.messages.decode, tampered) == (
        "InvalidAuthorizationMessageException",
        400,
    )


def _with_padding(text: str) -> str:
    return text + "=" * (-len(text) % 4)


def test_truncated_foreign_and_garbage_are_refused(service: AuthzService) -> None:
    message = _denied_message(service)
    other = AuthorizationMessages([("k1", os.urandom(32))], clock=FrozenClock(NOW))
    foreign = other.encode(
        Decision(False, False, (), "no"),
        AuthzRequest(action="s3:GetObject", resource="*", context={}),
        NOBODY,
    )
    for hostile in (
        message[:-4],
        message[:20],
        foreign,
        "not base64 at all!",
        "A" * 40,
        "é" * 10,
        "A" * (MAX_MESSAGE_CHARS + 1),
        "",
    ):
        assert _refusal(service.messages.decode, hostile) == (
            "InvalidAuthorizationMessageException",
            400,
        ), hostile[:30]


def test_session_token_sealed_with_same_key_is_not_a_message(service: AuthzService) -> None:
    claims = SessionClaims(
        access_key_id="ASIAAAAAAAAAAAAAAAAA",
        account=ACCOUNT,
        kind="session",
        arn=WRITER.arn,
        user_id=WRITER.user_id,
        principal_name="writer",
        principal_path="/",
        issued_at=int(NOW),
        expires_at=int(NOW) + 900,
    )
    token, _ = TokenSealer([KEY]).seal(claims)
    assert _refusal(service.messages.decode, token) == (
        "InvalidAuthorizationMessageException",
        400,
    )


def test_rotated_key_still_opens_and_expiry_is_enforced(clock: FrozenClock) -> None:
    old = AuthorizationMessages([KEY], clock=clock, ttl_seconds=3600)
    message = old.encode(
        Decision(False, False, (), "no"),
        AuthzRequest(action="s3:GetObject", resource="*", context={}),
        NOBODY,
    )
    rotated = AuthorizationMessages([("k2", os.urandom(32)), KEY], clock=clock, ttl_seconds=3600)
    assert rotated.decode(message)["context"]["action"] == "s3:GetObject"
    clock.advance(3601)
    code, status = _refusal(rotated.decode, message)
    assert (code, status) == ("InvalidAuthorizationMessageException", 400)


def test_decode_needs_permission_before_looking_at_the_message(service: AuthzService) -> None:
    decode_for = service.messages.decode_for
    # Without the permission even garbage answers AccessDenied: nothing is learnt.
    assert _refusal(decode_for, NOBODY, "garbage", DIRECTORY) == ("AccessDenied", 403)
    assert _refusal(decode_for, NOBODY, _denied_message(service), DIRECTORY) == (
        "AccessDenied",
        403,
    )
    assert _refusal(decode_for, AUDITOR, "garbage", DIRECTORY) == (
        "InvalidAuthorizationMessageException",
        400,
    )


def test_message_about_another_account_is_refused(service: AuthzService) -> None:
    assert _refusal(
        service.messages.decode_for, FOREIGN_AUDITOR, _denied_message(service), DIRECTORY
    ) == (
        "InvalidAuthorizationMessageException",
        400,
    )


def test_huge_context_still_fits_what_decode_accepts(service: AuthzService) -> None:
    context = {f"svc:k{i}": os.urandom(500).hex() for i in range(64)}
    result = service.check(NOBODY, "s3:GetObject", "arn:aws:s3:::b/" + "x" * 2000, context)
    assert result.encoded_message is not None
    assert len(result.encoded_message) <= MAX_MESSAGE_CHARS
    document = service.messages.decode(result.encoded_message)
    assert document["context"]["resource"].endswith("x" * 2000)


def test_decision_matches_the_policy_engine(service: AuthzService) -> None:
    request = AuthzRequest(
        action="s3:PutObject",
        resource="arn:aws:s3:::b/locked/x",
        context=service.global_context(WRITER),
    )
    expected = authorize(request, identity=WRITER.identity_policies())
    got = service.check(WRITER, "s3:PutObject", "arn:aws:s3:::b/locked/x", {})
    assert (got.allowed, got.reason, got.matched) == (
        expected.allowed,
        expected.reason,
        expected.matched,
    )
    assert got.reason == "explicit deny in an identity-based policy"


@pytest.mark.parametrize(
    "key",
    [
        "aws:PrincipalTag/team",
        "AWS:principalarn",
        "aws:MultiFactorAuthPresent",
        "aws:SourceIp",
        "aws:userid",
        "aws:TokenIssueTime",
        "aws:CurrentTime",
    ],
)
def test_keys_derived_from_credentials_cannot_be_supplied(service: AuthzService, key: str) -> None:
    # The Locked deny tests aws:PrincipalTag/team: overriding it would lift the deny.
    code, status = _refusal(
        service.check, WRITER, "s3:PutObject", "arn:aws:s3:::b/locked/x", {key: "x"}
    )
    assert (code, status) == ("ValidationError", 400)


@pytest.mark.parametrize(
    ("action", "resource", "context"),
    [
        ("s3:*", "arn:aws:s3:::b/x", {}),
        ("s3PutObject", "arn:aws:s3:::b/x", {}),
        ("s3:PutObject", "", {}),
        ("s3:PutObject", "a" * 2049, {}),
        ("s3:PutObject", "arn:\x00", {}),
        ("s3:PutObject", "arn:aws:s3:::b/x", {"nocolon": "v"}),
        ("s3:PutObject", "arn:aws:s3:::b/x", {"s3:a": "v", "S3:A": "w"}),
        ("s3:PutObject", "arn:aws:s3:::b/x", {f"s3:k{i}": "v" for i in range(65)}),
        ("s3:PutObject", "arn:aws:s3:::b/x", {"s3:a": ("v",) * 65}),
    ],
)
def test_malformed_checks_are_validation_errors(
    service: AuthzService, action: str, resource: str, context: dict[str, Any]
) -> None:
    assert _refusal(service.check, WRITER, action, resource, context) == ("ValidationError", 400)


def test_supplied_region_replaces_the_brokers_own(service: AuthzService) -> None:
    region_bound = _user(
        "regional",
        ACCOUNT,
        {
            "Effect": "Allow",
            "Action": "ec2:RunInstances",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}},
        },
    )
    assert not service.check(region_bound, "ec2:RunInstances", "*", {}).allowed
    assert service.check(
        region_bound, "ec2:RunInstances", "*", {"aws:requestedregion": "eu-west-1"}
    ).allowed


def test_get_session_token_credentials_cannot_call_iam_without_mfa(
    service: AuthzService,
) -> None:
    admin = _user("admin", ACCOUNT, {"Effect": "Allow", "Action": "*", "Resource": "*"})
    claims = SessionClaims(
        access_key_id="ASIAAAAAAAAAAAAAAAAA",
        account=ACCOUNT,
        kind="session",
        arn=admin.arn,
        user_id=admin.user_id,
        principal_name="admin",
        principal_path="/",
        issued_at=int(NOW),
        expires_at=int(NOW) + 900,
    )
    session = Caller(
        kind="session",
        account=ACCOUNT,
        arn=admin.arn,
        user_id=admin.user_id,
        principal_arn=admin.arn,
        user=admin.user,
        claims=claims,
    )
    assert service.check(session, "s3:GetObject", "*", {}).allowed
    iam = service.check(session, "iam:ListUsers", "*", {})
    assert not iam.allowed
    assert iam.reason == "credentials from GetSessionToken cannot call IAM without MFA"
    assert iam.encoded_message is not None
    code, status = _refusal(service.decode, session, iam.encoded_message)
    assert (code, status) == ("AccessDenied", 403)
