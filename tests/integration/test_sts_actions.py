"""Every STS action against a live broker, through boto3 exactly as users call AWS."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import DEV, PROD, Broker, session_client

ALICE_MFA = f"arn:aws:iam::{DEV}:mfa/alice"


def refusal(call: Any, **kwargs: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    error = info.value.response
    return (
        error["Error"]["Code"],
        error["ResponseMetadata"]["HTTPStatusCode"],
        error["Error"]["Message"],
    )


def test_get_caller_identity_for_an_iam_user(broker: Broker) -> None:
    who = broker.sts("alice").get_caller_identity()
    assert who["Account"] == DEV
    assert who["Arn"] == f"arn:aws:iam::{DEV}:user/alice"
    assert re.fullmatch(r"AIDA[A-Z2-7]{17}", who["UserId"])
    assert re.fullmatch(r"[0-9a-f-]{36}", who["ResponseMetadata"]["RequestId"])
    assert (
        who["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
        == who["ResponseMetadata"]["RequestId"]
    )


def test_seed_scenario_cross_account_with_mfa(broker: Broker) -> None:
    """A developer in account A assumes UpdateApp in account B, which trusts A and requires MFA."""
    sts = broker.sts("alice")
    assumed = sts.assume_role(
        RoleArn=f"arn:aws:iam::{PROD}:role/UpdateApp",
        RoleSessionName="alice",
        SerialNumber=ALICE_MFA,
        TokenCode=broker.fresh_code("alice"),
        DurationSeconds=7200,
    )
    creds = assumed["Credentials"]
    assert re.fullmatch(r"ASIA[A-Z2-7]{16}", creds["AccessKeyId"])
    assert len(creds["SecretAccessKey"]) == 40
    lifetime = creds["Expiration"] - datetime.now(UTC)
    assert (
        timedelta(seconds=7100)
        < lifetime - timedelta(seconds=broker.clock.offset)
        <= timedelta(seconds=7200)
    )
    assert assumed["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{PROD}:assumed-role/UpdateApp/alice"
    assert re.fullmatch(r"AROA[A-Z2-7]{17}:alice", assumed["AssumedRoleUser"]["AssumedRoleId"])

    who = session_client(broker, creds).get_caller_identity()
    assert who["Arn"] == f"arn:aws:sts::{PROD}:assumed-role/UpdateApp/alice"
    assert who["Account"] == PROD
    assert who["UserId"] == assumed["AssumedRoleUser"]["AssumedRoleId"]


def test_seed_scenario_without_mfa_is_denied_by_the_trust_policy(broker: Broker) -> None:
    code, status, message = refusal(
        broker.sts("alice").assume_role,
        RoleArn=f"arn:aws:iam::{PROD}:role/UpdateApp",
        RoleSessionName="alice",
    )
    assert (code, status) == ("AccessDenied", 403)
    assert message == (
        f"User: arn:aws:iam::{DEV}:user/alice is not authorized to perform: sts:AssumeRole "
        f"on resource: arn:aws:iam::{PROD}:role/UpdateApp"
    )


def test_mfa_through_get_session_token_then_cross_account(broker: Broker) -> None:
    """The aws-vault path: GetSessionToken with MFA, then AssumeRole with those credentials."""
    session = broker.sts("alice").get_session_token(
        SerialNumber=ALICE_MFA, TokenCode=broker.fresh_code("alice"), DurationSeconds=3600
    )["Credentials"]
    assert session["AccessKeyId"].startswith("ASIA")
    temp = session_client(broker, session)
    assert temp.get_caller_identity()["Arn"] == f"arn:aws:iam::{DEV}:user/alice"
    role = temp.assume_role(RoleArn=f"arn:aws:iam::{PROD}:role/UpdateApp", RoleSessionName="vault")
    assert role["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{PROD}:assumed-role/UpdateApp/vault"


def test_get_session_token_defaults_to_12_hours(broker: Broker) -> None:
    creds = broker.sts("bob").get_session_token()["Credentials"]
    lifetime = creds["Expiration"] - datetime.now(UTC) - timedelta(seconds=broker.clock.offset)
    assert timedelta(hours=12) - timedelta(seconds=60) < lifetime <= timedelta(hours=12)


def test_session_token_credentials_may_not_call_get_session_token(broker: Broker) -> None:
    temp = session_client(broker, broker.sts("bob").get_session_token()["Credentials"])
    code, status, message = refusal(temp.get_session_token)
    assert (code, status) == ("AccessDenied", 403)
    assert message == "Cannot call GetSessionToken with session credentials"
    code, status, _ = refusal(temp.get_access_key_info, AccessKeyId=broker.keys["bob"].id)
    assert (code, status) == ("AccessDenied", 403)


def test_role_credentials_may_not_call_get_session_token(broker: Broker) -> None:
    creds = broker.sts("alice").assume_role(
        RoleArn=f"arn:aws:iam::{DEV}:role/Dev", RoleSessionName="ss"
    )["Credentials"]
    code, status, _ = refusal(session_client(broker, creds).get_session_token)
    assert (code, status) == ("AccessDenied", 403)


def test_mfa_code_wrong_and_reused(broker: Broker) -> None:
    sts = broker.sts("alice")
    good = broker.fresh_code("alice")
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    code, status, message = refusal(sts.get_session_token, SerialNumber=ALICE_MFA, TokenCode=wrong)
    assert (code, status) == ("AccessDenied", 403)
    assert "invalid MFA one time pass code" in message
    sts.get_session_token(SerialNumber=ALICE_MFA, TokenCode=good)
    code, status, message = refusal(sts.get_session_token, SerialNumber=ALICE_MFA, TokenCode=good)
    assert (code, status) == ("AccessDenied", 403)
    assert "already used" in message


def test_mfa_device_of_another_user_is_refused(broker: Broker) -> None:
    code, status, message = refusal(
        broker.sts("bob").get_session_token, SerialNumber=ALICE_MFA, TokenCode=broker.code("alice")
    )
    assert (code, status) == ("AccessDenied", 403)
    assert "serial number" in message


def test_same_account_role_trusting_the_account_needs_identity_allow(broker: Broker) -> None:
    # bob has no policies: the trust policy names the account only, so bob's own policy must allow.
    code, status, message = refusal(
        broker.sts("bob").assume_role, RoleArn=f"arn:aws:iam::{DEV}:role/Dev", RoleSessionName="bb"
    )
    assert (code, status) == ("AccessDenied", 403)
    assert message.endswith("because no identity-based policy allows the sts:AssumeRole action")


def test_same_account_role_naming_the_user_needs_no_identity_policy(broker: Broker) -> None:
    out = broker.sts("bob").assume_role(
        RoleArn=f"arn:aws:iam::{DEV}:role/BobDirect", RoleSessionName="bb"
    )
    assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{DEV}:assumed-role/BobDirect/bb"


def test_trust_policy_naming_someone_else_denies(broker: Broker) -> None:
    code, status, _ = refusal(
        broker.sts("bob").assume_role,
        RoleArn=f"arn:aws:iam::{DEV}:role/AliceOnly",
        RoleSessionName="bb",
    )
    assert (code, status) == ("AccessDenied", 403)


def test_explicit_deny_in_identity_policy_wins(broker: Broker) -> None:
    code, status, message = refusal(
        broker.sts("carol").assume_role,
        RoleArn=f"arn:aws:iam::{DEV}:role/Dev",
        RoleSessionName="cc",
    )
    assert (code, status) == ("AccessDenied", 403)
    assert "explicit deny in an identity-based policy" in message


def test_cross_account_needs_the_callers_identity_allow(broker: Broker) -> None:
    """OpenToDev trusts account A without conditions; bob (no policies) is still refused."""
    code, status, message = refusal(
        broker.sts("bob").assume_role,
        RoleArn=f"arn:aws:iam::{PROD}:role/OpenToDev",
        RoleSessionName="bb",
    )
    assert (code, status) == ("AccessDenied", 403)
    assert "no identity-based policy allows" in message


def test_unknown_role_looks_like_any_denial(broker: Broker) -> None:
    code, status, message = refusal(
        broker.sts("alice").assume_role,
        RoleArn=f"arn:aws:iam::{DEV}:role/Nope",
        RoleSessionName="aa",
    )
    assert (code, status) == ("AccessDenied", 403)
    assert message.endswith(f"on resource: arn:aws:iam::{DEV}:role/Nope")


def test_external_id(broker: Broker) -> None:
    arn = f"arn:aws:iam::{DEV}:role/Partner"
    sts = broker.sts("alice")
    assert refusal(sts.assume_role, RoleArn=arn, RoleSessionName="pp")[:2] == ("AccessDenied", 403)
    assert refusal(sts.assume_role, RoleArn=arn, RoleSessionName="pp", ExternalId="other-1")[
        :2
    ] == (
        "AccessDenied",
        403,
    )
    out = sts.assume_role(RoleArn=arn, RoleSessionName="pp", ExternalId="partner-7731")
    assert out["AssumedRoleUser"]["Arn"].endswith("assumed-role/Partner/pp")


def test_duration_bounds(broker: Broker) -> None:
    sts = broker.sts("alice")
    dev = f"arn:aws:iam::{DEV}:role/Dev"
    code, status, message = refusal(
        sts.assume_role, RoleArn=dev, RoleSessionName="dd", DurationSeconds=7201
    )
    assert (code, status) == ("ValidationError", 400)
    assert (
        message == "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    )
    code, status, message = refusal(
        sts.assume_role, RoleArn=dev, RoleSessionName="dd", DurationSeconds=899
    )
    assert (code, status) == ("ValidationError", 400)
    assert "Member must have value greater than or equal to 900" in message
    out = sts.assume_role(RoleArn=dev, RoleSessionName="dd", DurationSeconds=900)
    lifetime = (
        out["Credentials"]["Expiration"]
        - datetime.now(UTC)
        - timedelta(seconds=broker.clock.offset)
    )
    assert timedelta(seconds=800) < lifetime <= timedelta(seconds=900)


def test_role_chaining_caps_at_one_hour_and_keeps_source_identity(broker: Broker) -> None:
    first = broker.sts("alice").assume_role(
        RoleArn=f"arn:aws:iam::{DEV}:role/Tagged",
        RoleSessionName="one",
        SourceIdentity="alice@example.com",
        Tags=[{"Key": "project", "Value": "apollo"}, {"Key": "cost", "Value": "42"}],
        TransitiveTagKeys=["project"],
    )
    assert first["SourceIdentity"] == "alice@example.com"
    assert 0 < first["PackedPolicySize"] <= 100
    chained = session_client(broker, first["Credentials"])
    code, status, message = refusal(
        chained.assume_role,
        RoleArn=f"arn:aws:iam::{DEV}:role/Tagged",
        RoleSessionName="two",
        DurationSeconds=3601,
    )
    assert (code, status) == ("ValidationError", 400)
    assert "1 hour session limit for roles assumed by role chaining" in message
    second = chained.assume_role(RoleArn=f"arn:aws:iam::{DEV}:role/Tagged", RoleSessionName="two")
    assert second["SourceIdentity"] == "alice@example.com"
    # The transitive tag travels; overwriting it in the chain is refused.
    code, status, message = refusal(
        chained.assume_role,
        RoleArn=f"arn:aws:iam::{DEV}:role/Tagged",
        RoleSessionName="three",
        Tags=[{"Key": "PROJECT", "Value": "other"}],
    )
    assert (code, status) == ("ValidationError", 400)
    assert "transitive tag of the calling session" in message


def test_chained_transitive_tags_need_tag_session_on_the_next_role(broker: Broker) -> None:
    first = broker.sts("alice").assume_role(
        RoleArn=f"arn:aws:iam::{DEV}:role/Tagged",
        RoleSessionName="one",
        Tags=[{"Key": "project", "Value": "apollo"}],
        TransitiveTagKeys=["project"],
    )
    chained = session_client(broker, first["Credentials"])
    code, status, message = refusal(
        chained.assume_role, RoleArn=f"arn:aws:iam::{DEV}:role/NoTags", RoleSessionName="two"
    )
    assert (code, status) == ("AccessDenied", 403)
    assert "sts:TagSession" in message


def test_tags_require_tag_session_in_trust_policy(broker: Broker) -> None:
    code, status, message = refusal(
        broker.sts("alice").assume_role,
        RoleArn=f"arn:aws:iam::{DEV}:role/NoTags",
        RoleSessionName="tt",
        Tags=[{"Key": "k", "Value": "v"}],
    )
    assert (code, status) == ("AccessDenied", 403)
    assert "sts:TagSession" in message


def test_duplicate_tag_keys_differing_in_case(broker: Broker) -> None:
    code, status, message = refusal(
        broker.sts("alice").assume_role,
        RoleArn=f"arn:aws:iam::{DEV}:role/Tagged",
        RoleSessionName="tt",
        Tags=[{"Key": "Team", "Value": "a"}, {"Key": "team", "Value": "b"}],
    )
    assert (code, status) == ("ValidationError", 400)
    assert message == "Duplicate tag keys found. Please note that Tag keys are case insensitive."


def test_session_policy_limits_the_session(broker: Broker) -> None:
    """Identity (Dev allows sts:AssumeRole on *) ∩ session policy (only Tagged) decides."""
    policy = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole",'
        f'"Resource":"arn:aws:iam::{DEV}:role/Tagged"}}]}}'
    )
    first = broker.sts("alice").assume_role(
        RoleArn=f"arn:aws:iam::{DEV}:role/Dev",
        RoleSessionName="scoped",
        Policy=policy,
        PolicyArns=[{"arn": "arn:aws:iam::aws:policy/ReadOnlyS3"}],
    )
    assert 0 < first["PackedPolicySize"] <= 100
    scoped = session_client(broker, first["Credentials"])
    code, status, message = refusal(
        scoped.assume_role,
        RoleArn=f"arn:aws:iam::{DEV}:role/Partner",
        RoleSessionName="xx",
        ExternalId="partner-7731",
    )
    assert (code, status) == ("AccessDenied", 403)
    assert "session policy" in message


def test_malformed_session_policy(broker: Broker) -> None:
    sts = broker.sts("alice")
    dev = f"arn:aws:iam::{DEV}:role/Dev"
    code, status, message = refusal(
        sts.assume_role, RoleArn=dev, RoleSessionName="mm", Policy="{not json"
    )
    assert (code, status) == ("MalformedPolicyDocument", 400)
    assert message == "The policy is not in the valid JSON format."
    with_principal = (
        '{"Version":"2012-10-17","Statement":'
        '[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}'
    )
    code, status, _ = refusal(
        sts.assume_role, RoleArn=dev, RoleSessionName="mm", Policy=with_principal
    )
    assert (code, status) == ("MalformedPolicyDocument", 400)


def test_unknown_policy_arn(broker: Broker) -> None:
    code, status, message = refusal(
        broker.sts("alice").assume_role,
        RoleArn=f"arn:aws:iam::{DEV}:role/Dev",
        RoleSessionName="mm",
        PolicyArns=[{"arn": "arn:aws:iam::aws:policy/AdministratorAccess"}],
    )
    assert (code, status) == ("ValidationError", 400)
    assert "AdministratorAccess" in message


def test_get_access_key_info(broker: Broker) -> None:
    sts = broker.sts("alice")
    assert sts.get_access_key_info(AccessKeyId=broker.keys["bob"].id)["Account"] == DEV
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{PROD}:role/UpdateApp",
        RoleSessionName="kk",
        SerialNumber=ALICE_MFA,
        TokenCode=broker.fresh_code("alice"),
    )["Credentials"]
    assert sts.get_access_key_info(AccessKeyId=creds["AccessKeyId"])["Account"] == PROD
    code, status, _ = refusal(
        broker.sts("bob").get_access_key_info, AccessKeyId=broker.keys["alice"].id
    )
    assert (code, status) == ("AccessDenied", 403)


def test_source_identity_needs_set_source_identity(broker: Broker) -> None:
    code, status, message = refusal(
        broker.sts("alice").assume_role,
        RoleArn=f"arn:aws:iam::{DEV}:role/NoTags",
        RoleSessionName="ss",
        SourceIdentity="alice",
    )
    assert (code, status) == ("AccessDenied", 403)
    assert "sts:SetSourceIdentity" in message
    code, status, _ = refusal(
        broker.sts("alice").assume_role,
        RoleArn=f"arn:aws:iam::{DEV}:role/Tagged",
        RoleSessionName="ss",
        SourceIdentity="aws:admin",
    )
    assert (code, status) == ("ValidationError", 400)


def test_get_federation_token(broker: Broker) -> None:
    out = broker.sts("dave").get_federation_token(
        Name="partner-app",
        DurationSeconds=1800,
        Policy=(
            '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject",'
            '"Resource":"arn:aws:s3:::dave-bucket/*"}]}'
        ),
        Tags=[{"Key": "partner", "Value": "acme"}],
    )
    arn = f"arn:aws:sts::{DEV}:federated-user/partner-app"
    assert out["FederatedUser"] == {"FederatedUserId": f"{DEV}:partner-app", "Arn": arn}
    assert 0 < out["PackedPolicySize"] <= 100
    lifetime = (
        out["Credentials"]["Expiration"]
        - datetime.now(UTC)
        - timedelta(seconds=broker.clock.offset)
    )
    assert timedelta(seconds=1700) < lifetime <= timedelta(seconds=1800)
    federated = session_client(broker, out["Credentials"])
    assert federated.get_caller_identity()["Arn"] == arn
    # AWS: federation token credentials may call only GetCallerIdentity in STS.
    for call, kwargs in [
        (
            federated.assume_role,
            {"RoleArn": f"arn:aws:iam::{DEV}:role/Dev", "RoleSessionName": "ff"},
        ),
        (federated.get_session_token, {}),
        (federated.get_federation_token, {"Name": "again"}),
    ]:
        assert refusal(call, **kwargs)[:2] == ("AccessDenied", 403)


def test_get_federation_token_needs_permission_and_long_term_keys(broker: Broker) -> None:
    code, status, message = refusal(broker.sts("bob").get_federation_token, Name="nobody")
    assert (code, status) == ("AccessDenied", 403)
    assert "federated-user/nobody because no identity-based policy allows" in message
    temp = session_client(broker, broker.sts("dave").get_session_token()["Credentials"])
    code, status, message = refusal(temp.get_federation_token, Name="partner-app")
    assert (code, status) == ("AccessDenied", 403)
    code, status, _ = refusal(broker.sts("dave").get_federation_token, Name="x")
    assert (code, status) == ("ValidationError", 400)
