"""UpstreamSts against real HTTP peers: moto (lenient AWS), the broker (strict STS), and
sockets that fail the way networks do.

moto shows that the credentials are real enough to use (GetCallerIdentity, S3) and that
Policy and ExternalId arrive; it checks nothing else (see tests/moto_server.py), so what
only a strict upstream proves (trust policies, sts:TagSession, source identity, duration
limits, the broker's own signature) runs against the broker itself, which implements them
as AWS does. What goes on the wire exactly is read off a canned server.
"""

from __future__ import annotations

import asyncio
import json
import stat
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from broker.errors import StsError
from broker.sts.upstream import UpstreamCredentials, UpstreamSetupError, UpstreamSts
from tests.integration.conftest import DEV, Broker
from tests.integration.upstream.conftest import AwsFiles, run
from tests.integration.upstream.servers import (
    canned_server,
    closed_port,
    full_backlog,
    silent_server,
)
from tests.moto_server import MOTO_ACCOUNT, REGION, Moto

WEB_TOKEN = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6InVwc3RyZWFtLXRlc3QifQ."
    "eyJpc3MiOiJodHRwczovL2Jyb2tlci5leGFtcGxlIiwic3ViIjoiYWxpY2UiLCJhdWQiOiJzdHMuYW1hem9u"
    "YXdzLmNvbSJ9.bm90LWEtcmVhbC1zaWduYXR1cmUtYnV0LW1vdG8tZG9lcy1ub3QtY2hlY2s"
)
"""A JWT-shaped string: moto does not verify tokens, the broker refuses this one."""

READ_ONLY_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}],
    }
)
READ_ONLY_S3_ARN = "arn:aws:iam::aws:policy/ReadOnlyS3"
"""A managed policy in the test broker's config (tests/integration/conftest.py)."""

NS = 'xmlns="https://sts.amazonaws.com/doc/2011-06-15/"'
CANNED_CREDENTIALS = (
    "<Credentials><AccessKeyId>ASIACANNEDCANNED0001</AccessKeyId>"
    "<SecretAccessKey>canned/secret/access/key/000000000000000</SecretAccessKey>"
    "<SessionToken>canned-session-token</SessionToken>"
    "<Expiration>2030-01-01T00:00:00Z</Expiration></Credentials>"
)
CANNED_USER = (
    "<AssumedRoleUser><Arn>arn:aws:sts::111111111111:assumed-role/Canned/sess</Arn>"
    "<AssumedRoleId>AROACANNEDROLEID0001:sess</AssumedRoleId></AssumedRoleUser>"
)


def assume_role_answer(result: str) -> str:
    return (
        f"<AssumeRoleResponse {NS}><AssumeRoleResult>{result}</AssumeRoleResult>"
        "<ResponseMetadata><RequestId>canned</RequestId></ResponseMetadata></AssumeRoleResponse>"
    )


def error_answer(code: str, message: str, kind: str = "Sender") -> str:
    return (
        f"<ErrorResponse {NS}><Error><Type>{kind}</Type><Code>{code}</Code>"
        f"<Message>{message}</Message></Error><RequestId>canned</RequestId></ErrorResponse>"
    )


def refusal(call: Awaitable[object]) -> StsError:
    """The StsError an upstream call raises (the test fails if it succeeds)."""

    async def go() -> StsError:
        try:
            await call
        except StsError as exc:
            return exc
        raise AssertionError("the upstream call succeeded")

    return run(go())


async def assume(
    up: UpstreamSts,
    role_arn: str,
    *,
    name: str = "upstream-test",
    duration: int = 900,
    **options: Any,
) -> UpstreamCredentials:
    return await up.assume_role(
        role_arn=role_arn, role_session_name=name, duration_seconds=duration, **options
    )


# -- moto: credentials that work ---------------------------------------------------------


def test_assume_role_credentials_work_against_moto(aws: AwsFiles, moto: Moto) -> None:
    role = moto.create_role("Deployer")

    async def go() -> UpstreamCredentials:
        async with UpstreamSts(moto.url, REGION, profile="moto") as up:
            return await assume(up, role["Arn"], name="alice-deploy", duration=1800)

    before = time.time()
    creds = run(go())
    session_arn = f"arn:aws:sts::{MOTO_ACCOUNT}:assumed-role/Deployer/alice-deploy"
    assert creds.assumed_role_arn == session_arn
    assert creds.assumed_role_id == f"{role['RoleId']}:alice-deploy"
    assert creds.access_key_id.startswith("ASIA")
    assert before + 1800 - 5 <= creds.expiration <= time.time() + 1800 + 5
    assert creds.packed_policy_size == 6  # moto's constant answer (it packs nothing)
    assert creds.source_identity is None

    session = {
        "access_key_id": creds.access_key_id,
        "secret_access_key": creds.secret_access_key,
        "session_token": creds.session_token,
    }
    assert moto.client("sts", **session).get_caller_identity()["Arn"] == session_arn
    s3 = moto.client("s3", **session)
    s3.create_bucket(Bucket="upstream-deploy-bucket")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["upstream-deploy-bucket"]

    shown = repr(creds)
    assert creds.access_key_id in shown
    assert creds.secret_access_key not in shown
    assert creds.session_token not in shown


def test_policy_and_external_id_arrive_at_moto(aws: AwsFiles, moto: Moto) -> None:
    role = moto.create_role("Partner")

    async def go() -> UpstreamCredentials:
        async with UpstreamSts(moto.url, REGION, profile="moto") as up:
            return await assume(
                up,
                role["Arn"],
                policy=READ_ONLY_POLICY,
                external_id="partner-7731",
                tags={"team": "platform"},
                source_identity="alice",
            )

    creds = run(go())
    recorded = moto.assumed_role(creds.access_key_id)
    assert recorded.policy == READ_ONLY_POLICY
    assert recorded.external_id == "partner-7731"
    # moto keeps neither tags nor source identity: the broker tests below prove those.
    assert creds.source_identity is None


def test_web_identity_needs_no_broker_credentials(aws: AwsFiles, moto: Moto) -> None:
    """No credentials anywhere: web identity works (unsigned), AssumeRole says what to set."""
    role = moto.create_role("WebDeployer")

    async def go() -> tuple[UpstreamCredentials, StsError]:
        async with UpstreamSts(moto.url, REGION) as up:
            creds = await up.assume_role_with_web_identity(
                role_arn=role["Arn"],
                role_session_name="alice-web",
                web_identity_token=WEB_TOKEN,
                duration_seconds=900,
                policy=READ_ONLY_POLICY,
            )
            try:
                await assume(up, role["Arn"])
            except StsError as exc:
                return creds, exc
            raise AssertionError("AssumeRole without credentials succeeded")

    creds, missing = run(go())
    assert creds.assumed_role_arn == (
        f"arn:aws:sts::{MOTO_ACCOUNT}:assumed-role/WebDeployer/alice-web"
    )
    assert moto.assumed_role(creds.access_key_id).policy == READ_ONLY_POLICY
    who = moto.client(
        "sts",
        access_key_id=creds.access_key_id,
        secret_access_key=creds.secret_access_key,
        session_token=creds.session_token,
    ).get_caller_identity()
    assert who["Arn"] == creds.assumed_role_arn

    assert (missing.code, missing.status, missing.sender) == ("ServiceUnavailable", 503, False)
    assert "no usable AWS credentials" in missing.message
    assert "NoCredentialsError" in missing.message
    assert "AWS_ACCESS_KEY_ID" in missing.message


# -- the wire: what is sent, what is read ------------------------------------------------


def test_unset_options_are_left_out_of_the_request(aws: AwsFiles) -> None:
    with canned_server() as canned:
        canned.answer(200, assume_role_answer(CANNED_CREDENTIALS + CANNED_USER))

        async def go() -> UpstreamCredentials:
            async with UpstreamSts(canned.url, REGION, profile="moto") as up:
                return await assume(up, "arn:aws:iam::111111111111:role/Canned", name="sess")

        creds = run(go())
    (method, _, body), *_ = canned.requests
    assert method == "POST"
    assert set(parse_qs(body.decode())) == {
        "Action",
        "Version",
        "RoleArn",
        "RoleSessionName",
        "DurationSeconds",
    }
    assert creds == UpstreamCredentials(
        access_key_id="ASIACANNEDCANNED0001",
        secret_access_key="canned/secret/access/key/000000000000000",
        session_token="canned-session-token",
        expiration=1893456000.0,  # 2030-01-01T00:00:00Z, as upstream said
        assumed_role_arn="arn:aws:sts::111111111111:assumed-role/Canned/sess",
        assumed_role_id="AROACANNEDROLEID0001:sess",
        packed_policy_size=None,
        source_identity=None,
    )


def test_every_option_is_sent(aws: AwsFiles) -> None:
    extra = "<PackedPolicySize>9</PackedPolicySize><SourceIdentity>alice</SourceIdentity>"
    with canned_server() as canned:
        canned.answer(200, assume_role_answer(CANNED_CREDENTIALS + CANNED_USER + extra))

        async def go() -> UpstreamCredentials:
            async with UpstreamSts(canned.url, REGION, profile="moto") as up:
                return await assume(
                    up,
                    "arn:aws:iam::111111111111:role/Canned",
                    name="sess",
                    duration=3600,
                    source_identity="alice",
                    tags={"team": "platform", "cost": "42"},
                    transitive_tag_keys=["team"],
                    policy=READ_ONLY_POLICY,
                    policy_arns=[READ_ONLY_S3_ARN],
                    external_id="partner-7731",
                )

        creds = run(go())
    sent = {k: v[0] for k, v in parse_qs(canned.requests[0][2].decode()).items()}
    assert sent == {
        "Action": "AssumeRole",
        "Version": "2011-06-15",
        "RoleArn": "arn:aws:iam::111111111111:role/Canned",
        "RoleSessionName": "sess",
        "DurationSeconds": "3600",
        "SourceIdentity": "alice",
        "Tags.member.1.Key": "team",
        "Tags.member.1.Value": "platform",
        "Tags.member.2.Key": "cost",
        "Tags.member.2.Value": "42",
        "TransitiveTagKeys.member.1": "team",
        "Policy": READ_ONLY_POLICY,
        "PolicyArns.member.1.arn": READ_ONLY_S3_ARN,
        "ExternalId": "partner-7731",
    }
    assert (creds.packed_policy_size, creds.source_identity) == (9, "alice")


def test_web_identity_is_sent_unsigned(aws: AwsFiles) -> None:
    answer = (
        f"<AssumeRoleWithWebIdentityResponse {NS}><AssumeRoleWithWebIdentityResult>"
        f"{CANNED_CREDENTIALS}{CANNED_USER}</AssumeRoleWithWebIdentityResult>"
        "</AssumeRoleWithWebIdentityResponse>"
    )
    with canned_server() as canned:
        canned.answer(200, answer)

        async def go() -> UpstreamCredentials:
            # A profile with keys is configured, and still nothing signs the call.
            async with UpstreamSts(canned.url, REGION, profile="moto") as up:
                return await up.assume_role_with_web_identity(
                    role_arn="arn:aws:iam::111111111111:role/Canned",
                    role_session_name="sess",
                    web_identity_token=WEB_TOKEN,
                    duration_seconds=900,
                )

        creds = run(go())
    sent = parse_qs(canned.requests[0][2].decode())
    assert sent["WebIdentityToken"] == [WEB_TOKEN]
    assert "Policy" not in sent and "PolicyArns.member.1.arn" not in sent
    assert creds.assumed_role_arn == "arn:aws:sts::111111111111:assumed-role/Canned/sess"


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (assume_role_answer(CANNED_USER), "Credentials is missing"),
        (
            assume_role_answer(CANNED_CREDENTIALS.replace("SessionToken>", "Other>") + CANNED_USER),
            "SessionToken is missing",
        ),
        (assume_role_answer(CANNED_CREDENTIALS), "AssumedRoleUser is missing"),
        ("this is not XML at all", "could not be parsed"),
    ],
)
def test_malformed_answers_are_unavailable(aws: AwsFiles, answer: str, why: str) -> None:
    with canned_server() as canned:
        canned.answer(200, answer)
        up = UpstreamSts(canned.url, REGION, profile="moto", max_attempts=1)
        error = refusal(assume(up, "arn:aws:iam::111111111111:role/Canned"))
        run(up.close())
    assert (error.code, error.status, error.sender) == ("ServiceUnavailable", 503, False)
    assert f"upstream STS at {canned.url} sent an unusable AssumeRole answer" in error.message
    assert why in error.message


def test_throttling_survives_botocore_retries_as_throttling(aws: AwsFiles) -> None:
    with canned_server() as canned:
        canned.answer(400, error_answer("Throttling", "Rate exceeded"))
        up = UpstreamSts(canned.url, REGION, profile="moto", max_attempts=2)
        error = refusal(assume(up, "arn:aws:iam::111111111111:role/Canned"))
        run(up.close())
    assert len(canned.requests) == 2  # botocore's standard mode retried it
    assert (error.code, error.status, error.sender) == ("Throttling", 400, True)
    assert error.message == "upstream STS: Rate exceeded"


@pytest.mark.parametrize(
    ("status", "kind", "expected_status", "sender"),
    [
        (500, "Receiver", 500, False),
        (403, "Sender", 403, True),
        (301, "Sender", 400, True),  # not an error status: AWS's Type decides
        (301, "Receiver", 500, False),
    ],
)
def test_upstream_error_status_and_type(
    aws: AwsFiles, status: int, kind: str, expected_status: int, sender: bool
) -> None:
    with canned_server() as canned:
        canned.answer(status, error_answer("SomethingFailed", "it failed upstream", kind))
        up = UpstreamSts(canned.url, REGION, profile="moto", max_attempts=1)
        error = refusal(assume(up, "arn:aws:iam::111111111111:role/Canned"))
        run(up.close())
    assert (error.code, error.status, error.sender) == ("SomethingFailed", expected_status, sender)
    assert error.message == "upstream STS: it failed upstream"


def test_a_non_aws_error_page_is_unavailable(aws: AwsFiles) -> None:
    with canned_server() as canned:
        canned.answer(502, "<html><body>Bad Gateway</body></html>", "text/html")
        up = UpstreamSts(canned.url, REGION, profile="moto", max_attempts=1)
        error = refusal(assume(up, "arn:aws:iam::111111111111:role/Canned"))
        run(up.close())
    assert (error.code, error.status) == ("ServiceUnavailable", 503)
    assert f"upstream STS at {canned.url} answered HTTP 502" in error.message


# -- the broker as a strict upstream -----------------------------------------------------


def test_trust_policy_refusal_keeps_code_status_and_message(broker_profiles: Broker) -> None:
    up = UpstreamSts(broker_profiles.url, REGION, profile="bob")
    error = refusal(assume(up, f"arn:aws:iam::{DEV}:role/AliceOnly"))
    run(up.close())
    assert (error.code, error.status, error.sender) == ("AccessDenied", 403, True)
    assert error.message.startswith(
        f"upstream STS: User: arn:aws:iam::{DEV}:user/bob is not authorized to perform: "
        f"sts:AssumeRole on resource: arn:aws:iam::{DEV}:role/AliceOnly"
    )


def test_duration_above_the_role_maximum_is_a_validation_error(broker_profiles: Broker) -> None:
    up = UpstreamSts(broker_profiles.url, REGION, profile="alice")
    error = refusal(assume(up, f"arn:aws:iam::{DEV}:role/Dev", duration=7201))  # max 7200
    run(up.close())
    assert (error.code, error.status) == ("ValidationError", 400)
    assert error.message == (
        "upstream STS: The requested DurationSeconds exceeds the MaxSessionDuration set for "
        "this role."
    )


def test_a_duration_botocore_refuses_is_never_sent(aws: AwsFiles) -> None:
    with canned_server() as canned:
        up = UpstreamSts(canned.url, REGION, profile="moto")
        error = refusal(assume(up, "arn:aws:iam::111111111111:role/Canned", duration=100))
        run(up.close())
    assert canned.requests == []
    assert (error.code, error.status) == ("ValidationError", 400)
    assert error.message.startswith("not sent to upstream STS: ")
    assert "DurationSeconds" in error.message


def test_tags_source_identity_and_policies_reach_the_broker(broker_profiles: Broker) -> None:
    """The broker enforces what moto ignores: each option provably arrived."""
    tagged = f"arn:aws:iam::{DEV}:role/Tagged"
    options: dict[str, Any] = {
        "tags": {"team": "platform"},
        "transitive_tag_keys": ["team"],
        "source_identity": "alice",
        "policy": READ_ONLY_POLICY,
        "policy_arns": [READ_ONLY_S3_ARN],
    }

    async def go() -> tuple[UpstreamCredentials, UpstreamCredentials, list[StsError]]:
        refusals = []
        async with UpstreamSts(broker_profiles.url, REGION, profile="alice") as up:
            full = await assume(up, tagged, **options)
            bare = await assume(up, tagged)
            cases: list[tuple[str, dict[str, Any]]] = [
                ("NoTags", {}),  # Tags need sts:TagSession in the trust policy
                ("Tagged", {"policy_arns": ["arn:aws:iam::aws:policy/AdministratorAccess"]}),
                ("Tagged", {"transitive_tag_keys": ["nope"]}),
                # Dev's trust policy has no sts:SetSourceIdentity (nor sts:TagSession).
                ("Dev", {"tags": {}, "transitive_tag_keys": ()}),
            ]
            for role, change in cases:
                try:
                    await assume(up, f"arn:aws:iam::{DEV}:role/{role}", **{**options, **change})
                except StsError as exc:
                    refusals.append(exc)
        return full, bare, refusals

    full, bare, refusals = run(go())
    assert full.source_identity == "alice"
    assert full.packed_policy_size is not None and 0 < full.packed_policy_size <= 100
    assert full.assumed_role_arn == f"arn:aws:sts::{DEV}:assumed-role/Tagged/upstream-test"
    assert (bare.source_identity, bare.packed_policy_size) == (None, None)
    assert [(e.code, e.status) for e in refusals] == [
        ("AccessDenied", 403),
        ("ValidationError", 400),
        ("ValidationError", 400),
        ("AccessDenied", 403),
    ]
    assert "sts:TagSession" in refusals[0].message
    assert "AdministratorAccess does not exist" in refusals[1].message
    assert "'nope' is not among the session tags" in refusals[2].message
    assert "sts:SetSourceIdentity" in refusals[3].message


def test_external_id_reaches_the_broker(broker_profiles: Broker) -> None:
    partner = f"arn:aws:iam::{DEV}:role/Partner"

    async def go() -> tuple[StsError, UpstreamCredentials]:
        async with UpstreamSts(broker_profiles.url, REGION, profile="alice") as up:
            try:
                await assume(up, partner, external_id="wrong")
            except StsError as exc:
                return exc, await assume(up, partner, external_id="partner-7731")
        raise AssertionError("a wrong ExternalId was accepted")

    wrong, right = run(go())
    assert (wrong.code, wrong.status) == ("AccessDenied", 403)
    assert right.assumed_role_arn == f"arn:aws:sts::{DEV}:assumed-role/Partner/upstream-test"


def test_web_identity_refusal_from_the_broker(broker_profiles: Broker) -> None:
    up = UpstreamSts(broker_profiles.url, REGION)
    error = refusal(
        up.assume_role_with_web_identity(
            role_arn=f"arn:aws:iam::{DEV}:role/Dev",
            role_session_name="alice-web",
            web_identity_token=WEB_TOKEN,
            duration_seconds=900,
        )
    )
    run(up.close())
    assert (error.code, error.status, error.sender) == ("InvalidIdentityToken", 400, True)
    assert error.message.startswith("upstream STS: ")
    assert WEB_TOKEN not in error.message


def test_upstream_refusing_the_brokers_own_key_is_unavailable(broker_profiles: Broker) -> None:
    """SignatureDoesNotMatch is about the broker's key, not the caller's: a 503, not a 403."""
    up = UpstreamSts(broker_profiles.url, REGION, profile="alice-wrong-secret")
    error = refusal(assume(up, f"arn:aws:iam::{DEV}:role/Dev"))
    run(up.close())
    assert (error.code, error.status, error.sender) == ("ServiceUnavailable", 503, False)
    assert "refused the broker's own AWS credentials (SignatureDoesNotMatch: " in error.message
    assert "AWS profile 'alice-wrong-secret'" in error.message
    assert "x" * 40 not in error.message


# -- credentials and setup ---------------------------------------------------------------


def test_an_unknown_profile_fails_at_construction(aws: AwsFiles) -> None:
    with pytest.raises(UpstreamSetupError, match="AWS profile 'nowhere' is not in the shared"):
        UpstreamSts("http://127.0.0.1:9", REGION, profile="nowhere")


def test_credentials_that_vanish_after_startup_are_unavailable(
    aws: AwsFiles, tmp_path: Path
) -> None:
    """A credential_process that worked at startup and fails on refresh (short-lived keys)."""
    flag = tmp_path / "credentials-available"
    flag.touch()
    script = tmp_path / "credentials.sh"
    script.write_text(
        "#!/bin/sh\n"
        f'[ -f "{flag}" ] || {{ echo "no credentials here any more" >&2; exit 1; }}\n'
        "expires=$(date -u -d '+5 minutes' +%Y-%m-%dT%H:%M:%SZ)\n"
        'echo "{\\"Version\\": 1, \\"AccessKeyId\\": \\"AKIAPROCESSPROCESS01\\", '
        '\\"SecretAccessKey\\": \\"process-secret\\", \\"Expiration\\": \\"$expires\\"}"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    aws.add_profile("rotating", credential_process=str(script))
    up = UpstreamSts(closed_port(), REGION, profile="rotating", max_attempts=1)
    flag.unlink()  # five minutes left is inside botocore's mandatory refresh window
    error = refusal(assume(up, "arn:aws:iam::111111111111:role/Any"))
    run(up.close())
    assert (error.code, error.status, error.sender) == ("ServiceUnavailable", 503, False)
    assert "no usable AWS credentials" in error.message
    assert "CredentialRetrievalError" in error.message
    assert "AWS profile 'rotating'" in error.message


def test_a_closed_client_refuses_calls(aws: AwsFiles) -> None:
    up = UpstreamSts(closed_port(), REGION, profile="moto")
    run(up.close())
    run(up.close())  # idempotent
    error = refusal(assume(up, "arn:aws:iam::111111111111:role/Any"))
    assert (error.code, error.status) == ("ServiceUnavailable", 503)
    assert "is closed" in error.message


# -- an upstream that does not answer ----------------------------------------------------


def _unanswered(url: str, elapsed_max: float, **settings: Any) -> tuple[StsError, float]:
    up = UpstreamSts(url, REGION, profile="moto", **settings)
    started = time.monotonic()
    error = refusal(assume(up, "arn:aws:iam::111111111111:role/Any"))
    elapsed = time.monotonic() - started
    run(up.close())
    assert (error.code, error.status, error.sender) == ("ServiceUnavailable", 503, False)
    assert error.message.startswith(f"upstream STS at {url} did not answer: ")
    assert elapsed < elapsed_max, elapsed
    return error, elapsed


def test_a_closed_port_is_unavailable_at_once(aws: AwsFiles) -> None:
    error, _ = _unanswered(closed_port(), 1.0, max_attempts=1)
    assert error.message.endswith("connection refused or host unreachable")
    # botocore retries a refused connection (standard mode), with a short backoff.
    _unanswered(closed_port(), 2.0, max_attempts=3)


def test_a_connect_that_never_completes_times_out(aws: AwsFiles) -> None:
    with full_backlog() as url:
        error, elapsed = _unanswered(url, 1.5, connect_timeout=0.3, max_attempts=1)
    assert error.message.endswith("no connection within 0.3 s")
    assert elapsed >= 0.3


def test_an_upstream_that_never_answers_times_out(aws: AwsFiles) -> None:
    with silent_server() as url:
        error, elapsed = _unanswered(url, 1.5, read_timeout=0.5, max_attempts=1)
    assert error.message.endswith("no answer within 0.5 s")
    assert elapsed >= 0.5


def test_a_dropped_connection_is_unavailable(aws: AwsFiles) -> None:
    with silent_server(hang_up=True) as url:
        error, _ = _unanswered(url, 1.5, max_attempts=1)
    assert error.message.endswith("the connection closed before a complete answer")


def test_a_slow_upstream_blocks_neither_the_loop_nor_other_calls(aws: AwsFiles, moto: Moto) -> None:
    role = moto.create_role("Fast")

    async def go() -> None:
        with silent_server() as url:
            slow = UpstreamSts(url, REGION, profile="moto", read_timeout=1.5, max_attempts=1)
            fast = UpstreamSts(moto.url, REGION, profile="moto")
            started = time.monotonic()
            stuck = [
                asyncio.create_task(assume(slow, "arn:aws:iam::111111111111:role/Any"))
                for _ in range(3)
            ]
            await asyncio.sleep(0.1)  # the slow calls are on the wire now
            tick = time.monotonic()
            await asyncio.sleep(0.05)
            assert time.monotonic() - tick < 0.5  # the event loop is free
            creds = await assume(fast, role["Arn"])
            assert creds.assumed_role_arn.endswith("assumed-role/Fast/upstream-test")
            assert time.monotonic() - started < 1.2  # done while the slow ones still wait
            assert not any(task.done() for task in stuck)
            outcomes = await asyncio.gather(*stuck, return_exceptions=True)
            # In parallel on the pool: three slow calls take one read timeout, not three.
            assert time.monotonic() - started < 3.0
            assert all(isinstance(o, StsError) and o.status == 503 for o in outcomes)
            await slow.close()
            await fast.close()

    run(go())
