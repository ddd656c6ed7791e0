"""AssumeRoleWithWebIdentity against a live broker, with tokens from the fixture OIDC
provider running as a real server (discovery and JWKS fetched over HTTP)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

from broker.app import create_app
from broker.config import load_config
from idp_fixtures import (
    OidcProvider,
    OidcServer,
    aws_tags,
    cognito_identity,
    cognito_user_pool,
    github_actions,
    google,
    hostile,
    serve_in_thread,
)
from tests.integration.conftest import DEV, start_server, stop_server

CLIENT = "test-client"
POOL = "us-east-1:11111111-2222-3333-4444-555555555555"
WEB = "sts:AssumeRoleWithWebIdentity"


@dataclass
class WebSetup:
    url: str
    idp: OidcServer

    def issuer(self, name: str) -> OidcProvider:
        return self.idp.issuer(name)

    def provider_arn(self, name: str) -> str:
        return f"arn:aws:iam::{DEV}:oidc-provider/{self.idp.url.removeprefix('http://')}/{name}"

    def prefix(self, name: str) -> str:
        return f"{self.idp.url.removeprefix('http://')}/{name}"

    def sts(self) -> Any:
        # No credentials at all: AssumeRoleWithWebIdentity is unsigned, as with AWS.
        return boto3.client(
            "sts",
            endpoint_url=self.url,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, signature_version=None),
        )

    def assume(self, role: str, token: str, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.sts().assume_role_with_web_identity(
            RoleArn=f"arn:aws:iam::{DEV}:role/{role}",
            RoleSessionName=kwargs.pop("RoleSessionName", "web"),
            WebIdentityToken=token,
            **kwargs,
        )
        return result


def _trust(
    principal: str, condition: dict[str, Any] | None = None, actions: Any = WEB
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Federated": principal},
        "Action": actions,
    }
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def _config(path: Path, setup: WebSetup) -> None:
    base = setup.idp.url
    github = setup.prefix("github")
    cognito = setup.prefix("cognito")
    config = {
        "public_url": "http://127.0.0.1:8080",
        "token_keys": [{"id": "web1", "secret": base64.b64encode(os.urandom(32)).decode()}],
        "accounts": {
            DEV: {
                "oidc_providers": [
                    {"url": f"{base}/google", "kind": "google", "client_ids": [CLIENT]},
                    {"url": f"{base}/cognito", "kind": "cognito-user-pool", "client_ids": [CLIENT]},
                    {"url": f"{base}/cogid", "kind": "cognito-identity", "client_ids": [POOL]},
                    {
                        "url": f"{base}/github",
                        "kind": "github-actions",
                        "client_ids": ["sts.amazonaws.com"],
                    },
                    {"url": f"{base}/corp", "client_ids": [CLIENT], "single_use": True},
                ],
                "roles": {
                    "WebGoogle": {
                        "trust_policy": _trust(
                            "accounts.google.com",
                            {"StringEquals": {"accounts.google.com:aud": CLIENT}},
                        )
                    },
                    "WebCognito": {
                        "trust_policy": _trust(
                            setup.provider_arn("cognito"),
                            {"ForAnyValue:StringEquals": {f"{cognito}:cognito:groups": "admins"}},
                        )
                    },
                    "WebCognitoIdentity": {
                        "trust_policy": _trust(
                            "cognito-identity.amazonaws.com",
                            {
                                "StringEquals": {"cognito-identity.amazonaws.com:aud": POOL},
                                "ForAnyValue:StringLike": {
                                    "cognito-identity.amazonaws.com:amr": "authenticated"
                                },
                            },
                        )
                    },
                    "WebGitHub": {
                        "trust_policy": _trust(
                            setup.provider_arn("github"),
                            {
                                "StringEquals": {f"{github}:aud": "sts.amazonaws.com"},
                                "StringLike": {
                                    f"{github}:sub": "repo:octo-org/octo-repo:ref:refs/heads/main"
                                },
                            },
                        )
                    },
                    "WebCorp": {
                        "max_session_duration": 7200,
                        "trust_policy": _trust(
                            setup.provider_arn("corp"),
                            actions=[WEB, "sts:TagSession", "sts:SetSourceIdentity"],
                        ),
                        "policies": {
                            "chain": {
                                "Version": "2012-10-17",
                                "Statement": [
                                    {
                                        "Effect": "Allow",
                                        "Action": [
                                            "sts:AssumeRole",
                                            "sts:TagSession",
                                            "sts:SetSourceIdentity",
                                        ],
                                        "Resource": "*",
                                    }
                                ],
                            }
                        },
                    },
                    "TeamOnly": {
                        "trust_policy": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Principal": {"AWS": f"arn:aws:iam::{DEV}:root"},
                                    "Action": [
                                        "sts:AssumeRole",
                                        "sts:TagSession",
                                        "sts:SetSourceIdentity",
                                    ],
                                    "Condition": {
                                        "StringEquals": {"aws:PrincipalTag/team": "platform"}
                                    },
                                }
                            ],
                        }
                    },
                },
            }
        },
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebSetup]:
    with serve_in_thread() as idp:
        for name in ("google", "cognito", "cogid", "github", "corp"):
            idp.add_issuer(name)
        setup = WebSetup(url="", idp=idp)
        path = tmp_path_factory.mktemp("web") / "broker.yaml"
        _config(path, setup)
        url, running = start_server(create_app(load_config(path)))
        setup.url = url
        try:
            yield setup
        finally:
            stop_server(running)


def _refusal(web: WebSetup, role: str, token: str) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as info:
        web.assume(role, token)
    error = info.value.response
    return (
        error["Error"]["Code"],
        error["ResponseMetadata"]["HTTPStatusCode"],
        error["Error"]["Message"],
    )


def _session(web: WebSetup, creds: dict[str, Any]) -> Any:
    return boto3.client(
        "sts",
        endpoint_url=web.url,
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def _who(web: WebSetup, creds: dict[str, Any]) -> str:
    arn: str = _session(web, creds).get_caller_identity()["Arn"]
    return arn


PRESETS: list[tuple[str, str, Callable[[OidcProvider], str]]] = [
    ("google", "WebGoogle", google),
    ("cognito", "WebCognito", lambda p: cognito_user_pool(p, groups=["admins", "dev"])),
    ("cogid", "WebCognitoIdentity", cognito_identity),
    ("github", "WebGitHub", github_actions),
    ("corp", "WebCorp", lambda p: p.id_token("alice")),
]


@pytest.mark.parametrize(("issuer", "role", "mint"), PRESETS, ids=[p[0] for p in PRESETS])
def test_each_preset_gets_credentials(
    web: WebSetup, issuer: str, role: str, mint: Callable[[OidcProvider], str]
) -> None:
    token = mint(web.issuer(issuer))
    out = web.assume(role, token, RoleSessionName=f"s-{issuer}")
    arn = f"arn:aws:sts::{DEV}:assumed-role/{role}/s-{issuer}"
    assert out["AssumedRoleUser"]["Arn"] == arn
    assert out["Provider"] == web.provider_arn(issuer)
    assert out["SubjectFromWebIdentityToken"]
    assert out["Audience"] in (CLIENT, POOL, "sts.amazonaws.com")
    assert out["Credentials"]["AccessKeyId"].startswith("ASIA")
    assert _who(web, out["Credentials"]) == arn


def test_google_reports_the_subject_and_audience(web: WebSetup) -> None:
    out = web.assume("WebGoogle", google(web.issuer("google"), sub="1234567890"))
    assert out["SubjectFromWebIdentityToken"] == "1234567890"
    assert out["Audience"] == CLIENT


def test_trust_conditions_refuse_other_claims(web: WebSetup) -> None:
    # Cognito user not in the admins group; GitHub token from another repository.
    code, status, message = _refusal(
        web, "WebCognito", cognito_user_pool(web.issuer("cognito"), groups=["dev"])
    )
    assert (code, status, message) == (
        "AccessDenied",
        403,
        "Not authorized to perform sts:AssumeRoleWithWebIdentity",
    )
    other_repo = github_actions(web.issuer("github"), repository="evil-org/octo-repo")
    assert _refusal(web, "WebGitHub", other_repo)[:2] == ("AccessDenied", 403)
    unauthenticated = cognito_identity(web.issuer("cogid"), authenticated=False)
    assert _refusal(web, "WebCognitoIdentity", unauthenticated)[:2] == ("AccessDenied", 403)


def test_token_from_another_provider_is_refused_by_the_trust_policy(web: WebSetup) -> None:
    assert _refusal(web, "WebGitHub", google(web.issuer("google")))[:2] == ("AccessDenied", 403)


def test_unknown_role_is_answered_like_a_denial(web: WebSetup) -> None:
    code, status, message = _refusal(web, "Missing", google(web.issuer("google")))
    assert (code, status, message) == (
        "AccessDenied",
        403,
        "Not authorized to perform sts:AssumeRoleWithWebIdentity",
    )


def test_session_tags_and_source_identity_from_claims(web: WebSetup) -> None:
    corp = web.issuer("corp")
    token = corp.id_token(
        "alice",
        **aws_tags({"team": "platform", "cost": "42"}, ["team"]),
        **{"https://aws.amazon.com/source_identity": "alice@example.com"},
    )
    out = web.assume("WebCorp", token, DurationSeconds=7200)
    assert out["SourceIdentity"] == "alice@example.com"
    assert 0 < out["PackedPolicySize"] <= 100
    # The tags are in the session: a role that trusts only team=platform admits it, and the
    # transitive tag and source identity travel into the chained session.
    session = _session(web, out["Credentials"])
    chained = session.assume_role(
        RoleArn=f"arn:aws:iam::{DEV}:role/TeamOnly", RoleSessionName="next"
    )
    assert chained["SourceIdentity"] == "alice@example.com"
    untagged = web.assume("WebCorp", corp.id_token("bob"))
    with pytest.raises(ClientError) as info:
        _session(web, untagged["Credentials"]).assume_role(
            RoleArn=f"arn:aws:iam::{DEV}:role/TeamOnly", RoleSessionName="next"
        )
    assert info.value.response["Error"]["Code"] == "AccessDenied"


def test_claims_differing_only_in_case_are_refused_not_a_server_error(web: WebSetup) -> None:
    # Condition keys are case-insensitive: "SUB" beside "sub" is one key with two values.
    token = web.issuer("corp").id_token("alice", SUB="admin")
    code, status, message = _refusal(web, "WebCorp", token)
    assert (code, status) == ("IDPRejectedClaim", 403)
    assert "'SUB' and 'sub' differ only in case" in message
    # The refusal is per token: the same provider still admits a sound one.
    web.assume("WebCorp", web.issuer("corp").id_token("alice"))


def test_single_use_provider_refuses_a_second_use(web: WebSetup) -> None:
    token = web.issuer("corp").id_token("alice")
    web.assume("WebCorp", token)
    code, status, message = _refusal(web, "WebCorp", token)
    assert (code, status) == ("InvalidIdentityToken", 400)
    assert "already used" in message


def test_reuse_is_allowed_without_single_use_like_aws(web: WebSetup) -> None:
    token = github_actions(web.issuer("github"))
    web.assume("WebGitHub", token)
    web.assume("WebGitHub", token)


def test_duration_above_role_maximum(web: WebSetup) -> None:
    with pytest.raises(ClientError) as info:
        web.assume("WebGitHub", github_actions(web.issuer("github")), DurationSeconds=7200)
    assert info.value.response["Error"]["Code"] == "ValidationError"


HOSTILE: list[tuple[str, Callable[[OidcProvider], str], str, int]] = [
    ("alg-none", hostile.alg_none, "InvalidIdentityToken", 400),
    ("hmac-with-public-key", hostile.hmac_with_public_key, "InvalidIdentityToken", 400),
    ("foreign-key", hostile.foreign_key, "InvalidIdentityToken", 400),
    ("embedded-jwk", hostile.embedded_jwk, "InvalidIdentityToken", 400),
    ("jku", hostile.jku_header, "InvalidIdentityToken", 400),
    ("x5c", hostile.x5c_header, "InvalidIdentityToken", 400),
    ("crit", hostile.crit_header, "InvalidIdentityToken", 400),
    ("expired", hostile.expired, "ExpiredTokenException", 400),
    ("future-nbf", hostile.future_nbf, "InvalidIdentityToken", 400),
    ("future-iat", hostile.future_iat, "InvalidIdentityToken", 400),
    ("wrong-aud", hostile.wrong_aud, "IDPRejectedClaim", 403),
    ("wrong-iss", hostile.wrong_iss, "InvalidIdentityToken", 400),
    ("no-exp", hostile.no_exp, "InvalidIdentityToken", 400),
    ("float-exp", hostile.float_exp, "InvalidIdentityToken", 400),
    ("string-exp", hostile.string_exp, "InvalidIdentityToken", 400),
    ("jwe-like", hostile.jwe_like, "InvalidIdentityToken", 400),
    ("tampered-payload", hostile.tampered_payload, "InvalidIdentityToken", 400),
    ("unknown-kid", hostile.unknown_kid, "InvalidIdentityToken", 400),
    ("ps256", hostile.ps256, "InvalidIdentityToken", 400),
    ("oversized", lambda p: hostile.oversized(p, 25_000), "ValidationError", 400),
]


@pytest.mark.parametrize(("name", "build", "code", "status"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_tokens_are_refused(
    web: WebSetup, name: str, build: Callable[[OidcProvider], str], code: str, status: int
) -> None:
    token = build(web.issuer("corp"))
    got_code, got_status, message = _refusal(web, "WebCorp", token)
    assert (got_code, got_status) == (code, status), message
    assert token not in message


def test_weak_published_key_is_refused(web: WebSetup) -> None:
    provider = web.idp.add_issuer("weak")
    token = hostile.weak_rsa_1024(provider)
    # A provider not configured in the broker is refused as unknown whatever its keys.
    assert _refusal(web, "WebCorp", token)[:2] == ("InvalidIdentityToken", 400)


def test_botocore_web_identity_flow(web: WebSetup, tmp_path: Path) -> None:
    """Plain boto3 with AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN and AWS_ENDPOINT_URL_STS."""
    token_file = tmp_path / "token"
    token_file.write_text(github_actions(web.issuer("github")))
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "AWS_ROLE_ARN": f"arn:aws:iam::{DEV}:role/WebGitHub",
        "AWS_ROLE_SESSION_NAME": "ci-job",
        "AWS_ENDPOINT_URL_STS": web.url,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    script = "import boto3; print(boto3.client('sts').get_caller_identity()['Arn'])"
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"arn:aws:sts::{DEV}:assumed-role/WebGitHub/ci-job"
