"""Upstream accounts against a second broker as a *strict* upstream STS.

moto issues whatever it is asked; the second broker checks what AWS would: the ID token
the first broker signs (against the first broker's issuer, fetched over HTTP, with
``aud`` = ``sts.amazonaws.com``), its own trust policies, the session tags and source
identity they require, the role's maximum duration, and the console's federation
protocol. So these tests show that ``via: web-identity`` works only when the upstream
trusts the broker's issuer, that the upstream sees the tags and source identity, that a
role the broker's own trust policy refuses is refused before any upstream call, and that
the Console button signs in at the upstream's federation endpoint.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

from broker.app import create_app
from broker.config import load_config
from idp_fixtures import SamlUser
from tests.integration.cli_setup import approval_form, cli_home, read_until, url_in
from tests.integration.conftest import bind_loopback, start_server, stop_server
from tests.integration.test_people import _csrf
from tests.integration.upstream.accounts import (
    SOURCE,
    TAG,
    UpstreamBroker,
    assert_no_secret_logged,
    saml_trust,
    upstream_broker,
)

WEBID = "555566667777"
"""Upstream account reached with ``via: web-identity``."""
KEYED = "666677778888"
"""Upstream account reached with ``via: assume-role`` (the broker's key in that account)."""
DEPLOY = f"arn:aws:iam::{WEBID}:role/Deploy"
UNTRUSTING = f"arn:aws:iam::{WEBID}:role/Untrusting"
FORBIDDEN = f"arn:aws:iam::{WEBID}:role/Forbidden"
OPS = f"arn:aws:iam::{KEYED}:role/Ops"
WEB_CORP = f"arn:aws:iam::{WEBID}:saml-provider/Corp"
KEYED_CORP = f"arn:aws:iam::{KEYED}:saml-provider/Corp"
BROKER_KEY = "AKIAUPSTREAMBROKERAB"
BROKER_SECRET = "UpstreamBrokerSecretKeyNeverLogged000001"
SESSION = "alice@example.com"
JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")
LOCAL = "111111111111"
"""A local account of the broker, whose user may assume an upstream role."""
CI_KEY = "AKIALOCALCIUSERKEYAB"
CI_SECRET = "LocalCiUserSecretKeyForAssumeRole0000001"
CI_USER = f"arn:aws:iam::{LOCAL}:user/ci"
CI_DEPLOY = f"arn:aws:iam::{WEBID}:role/CiDeploy"


class _Counter:
    """ASGI wrapper counting the HTTP requests that reach the upstream broker."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests += 1
        await self.app(scope, receive, send)


@dataclass
class Pair:
    broker: UpstreamBroker
    upstream_url: str
    counter: _Counter
    extra: dict[str, Any] = field(default_factory=dict)

    def upstream_sts(self, keys: dict[str, str]) -> Any:
        return boto3.client(
            "sts",
            endpoint_url=self.upstream_url,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}),
            aws_access_key_id=keys["AccessKeyId"],
            aws_secret_access_key=keys["SecretAccessKey"],
            aws_session_token=keys["SessionToken"],
        )


def _upstream_config(upstream_url: str, broker_url: str) -> dict[str, Any]:
    """The strict upstream: trusts the broker's issuer for WEBID, its key for KEYED."""
    issuer_host = broker_url.removeprefix("http://")
    provider = f"arn:aws:iam::{WEBID}:oidc-provider/{issuer_host}"

    def web_trust(principal: str) -> dict[str, Any]:
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": principal},
                    "Action": [
                        "sts:AssumeRoleWithWebIdentity",
                        "sts:TagSession",
                        "sts:SetSourceIdentity",
                    ],
                    "Condition": {
                        "StringEquals": {
                            f"{issuer_host}:aud": "sts.amazonaws.com",
                            "aws:RequestTag/team": "blue",
                        },
                        "StringLike": {f"{issuer_host}:sub": f"{WEB_CORP}/*"},
                    },
                }
            ],
        }

    return {
        "public_url": upstream_url,
        "token_keys": [{"id": "s1", "secret": base64.b64encode(os.urandom(32)).decode()}],
        "accounts": {
            WEBID: {
                "oidc_providers": [{"url": broker_url, "client_ids": ["sts.amazonaws.com"]}],
                "roles": {
                    "Deploy": {"trust_policy": web_trust(provider)},
                    "Untrusting": {"trust_policy": web_trust("accounts.google.com")},
                    "CiDeploy": {
                        "trust_policy": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Principal": {"Federated": provider},
                                    "Action": "sts:AssumeRoleWithWebIdentity",
                                    "Condition": {"StringEquals": {f"{issuer_host}:sub": CI_USER}},
                                }
                            ],
                        }
                    },
                },
            },
            KEYED: {
                "users": {
                    "broker-svc": {
                        "access_keys": [{"id": BROKER_KEY, "secret": BROKER_SECRET}],
                    }
                },
                "roles": {
                    "Ops": {
                        "trust_policy": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Principal": {"AWS": f"arn:aws:iam::{KEYED}:user/broker-svc"},
                                    "Action": [
                                        "sts:AssumeRole",
                                        "sts:TagSession",
                                        "sts:SetSourceIdentity",
                                    ],
                                    "Condition": {"StringEquals": {"aws:RequestTag/team": "blue"}},
                                }
                            ],
                        }
                    }
                },
            },
        },
    }


def _broker_config(url: str, acs: str, upstream_url: str) -> dict[str, Any]:
    refused = saml_trust(WEB_CORP, acs)
    refused["Statement"][0]["Condition"]["StringEquals"]["saml:aud"] = "https://elsewhere/acs"
    return {
        "public_url": url,
        "upstream": {
            "sts_endpoint": upstream_url,
            "region": "us-east-1",
            "federation_endpoint": f"{upstream_url}/federation",
            "console_url": f"{upstream_url}/console",
            "credentials": {"profile": "broker"},
            "max_attempts": 1,
        },
        "login": {
            "providers": {
                "corp": {"label": "Corp SSO", "saml": {"account": WEBID, "provider": "Corp"}}
            }
        },
        "accounts": {
            LOCAL: {
                "users": {
                    "ci": {
                        "access_keys": [{"id": CI_KEY, "secret": CI_SECRET}],
                        "policies": {
                            "assume": {
                                "Version": "2012-10-17",
                                "Statement": [
                                    {
                                        "Effect": "Allow",
                                        "Action": "sts:AssumeRole",
                                        "Resource": [CI_DEPLOY, DEPLOY],
                                    }
                                ],
                            }
                        },
                    }
                },
            },
            WEBID: {
                "upstream": {"via": "web-identity"},
                "saml_providers": {"Corp": {"metadata_url": "IDP_METADATA_URL"}},
                "roles": {
                    "Deploy": {
                        "max_session_duration": 7200,
                        "trust_policy": saml_trust(WEB_CORP, acs),
                    },
                    "Untrusting": {"trust_policy": saml_trust(WEB_CORP, acs)},
                    "Forbidden": {"trust_policy": refused},
                    "CiDeploy": {
                        "trust_policy": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Principal": {"AWS": CI_USER},
                                    "Action": "sts:AssumeRole",
                                }
                            ],
                        }
                    },
                },
            },
            KEYED: {
                "upstream": {"via": "assume-role"},
                "saml_providers": {"Corp": {"metadata_url": "IDP_METADATA_URL"}},
                "roles": {"Ops": {"trust_policy": saml_trust(KEYED_CORP, acs)}},
            },
        },
    }


def _person(name: str, team: str) -> SamlUser:
    return SamlUser(
        name,
        email=f"{name}@example.com",
        session_name=f"{name}@example.com",
        roles=(
            (DEPLOY, WEB_CORP),
            (UNTRUSTING, WEB_CORP),
            (FORBIDDEN, WEB_CORP),
            (OPS, KEYED_CORP),
        ),
        attributes={f"{TAG}team": (team,), SOURCE: (name,)},
    )


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    folder = tmp_path_factory.mktemp("upstream-broker")
    upstream_sock = bind_loopback()
    upstream_url = f"http://127.0.0.1:{upstream_sock.getsockname()[1]}"
    started: dict[str, Any] = {}

    def config_for(url: str, acs: str) -> dict[str, Any]:
        # The broker's URL is known now: start the upstream that trusts its issuer.
        path = folder / "upstream.yaml"
        path.write_text(yaml.safe_dump(_upstream_config(upstream_url, url)))
        counter = _Counter(create_app(load_config(path)))
        started["counter"] = counter
        started["running"] = start_server(counter, upstream_sock)[1]
        return _broker_config(url, acs, upstream_url)

    with upstream_broker(
        folder,
        config_for=config_for,
        users=[_person("alice", "blue"), _person("bob", "red")],
        aws_profiles={"broker": (BROKER_KEY, BROKER_SECRET)},
    ) as broker:
        try:
            yield Pair(broker=broker, upstream_url=upstream_url, counter=started["counter"])
        finally:
            stop_server(started["running"])


def _saml(pair: Pair, user: str, role: str, provider: str = WEB_CORP) -> dict[str, Any]:
    team = "blue" if user == "alice" else "red"
    assertion = pair.broker.assertion(
        role,
        provider,
        f"{user}@example.com",
        user=_person(user, team),
        principal_tags={"team": team},
        source_identity=user,
    )
    return {"RoleArn": role, "PrincipalArn": provider, "SAMLAssertion": assertion}


def _refusal(pair: Pair, **params: Any) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as info:
        pair.broker.sts().assume_role_with_saml(**params)
    error = info.value.response["Error"]
    status = info.value.response["ResponseMetadata"]["HTTPStatusCode"]
    return error["Code"], error["Message"], status


# ---------------------------------------------------------------------- via: web-identity


def test_web_identity_upstream_sees_the_tags_and_source_identity(pair: Pair) -> None:
    result = pair.broker.sts().assume_role_with_saml(**_saml(pair, "alice", DEPLOY))
    arn = f"arn:aws:sts::{WEBID}:assumed-role/Deploy/{SESSION}"
    assert result["AssumedRoleUser"]["Arn"] == arn
    # The upstream (the second broker) set the source identity from the broker's token.
    assert result["SourceIdentity"] == "alice"
    # The keys are the upstream's: its own GetCallerIdentity knows them.
    identity = pair.upstream_sts(result["Credentials"]).get_caller_identity()
    assert identity["Arn"] == arn
    # The ID token the broker signed for the upstream is a bearer secret: never logged
    # (botocore logs request bodies at DEBUG, which these tests run at).
    for line in pair.broker.logs:
        for token in JWT.findall(line):
            payload = token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            assert claims.get("iss") != pair.broker.url, line[:200]
    assert_no_secret_logged(pair.broker.logs, result["Credentials"]["SecretAccessKey"])


def test_the_upstream_refuses_what_its_trust_policy_refuses(pair: Pair) -> None:
    # bob's team tag is red: the broker admits him (its trust policy has no tag rule), and
    # the upstream's trust policy, which sees the tag, refuses; its answer is passed on.
    code, message, status = _refusal(pair, **_saml(pair, "bob", DEPLOY))
    assert (code, status) == ("AccessDenied", 403)
    assert message == "upstream STS: Not authorized to perform sts:AssumeRoleWithWebIdentity"


def test_web_identity_works_only_where_the_upstream_trusts_the_brokers_issuer(
    pair: Pair,
) -> None:
    code, message, status = _refusal(pair, **_saml(pair, "alice", UNTRUSTING))
    assert (code, status) == ("AccessDenied", 403)
    assert message.startswith("upstream STS: Not authorized")


def test_a_role_the_broker_refuses_is_refused_before_any_upstream_call(pair: Pair) -> None:
    before = pair.counter.requests
    code, message, status = _refusal(pair, **_saml(pair, "alice", FORBIDDEN))
    assert (code, message, status) == (
        "AccessDenied",
        "Not authorized to perform sts:AssumeRoleWithSAML",
        403,
    )
    assert pair.counter.requests == before


def test_upstream_validation_errors_pass_through(pair: Pair) -> None:
    # The broker allows Deploy 7200 s; the upstream role's maximum is 3600 s.
    params = _saml(pair, "alice", DEPLOY)
    code, message, status = _refusal(pair, **params, DurationSeconds=7200)
    assert (code, status) == ("ValidationError", 400)
    assert message == (
        "upstream STS: The requested DurationSeconds exceeds the MaxSessionDuration set for "
        "this role."
    )


def test_a_broker_user_assumes_an_upstream_role_with_a_signed_call(pair: Pair) -> None:
    """AssumeRole signed with the broker's own keys, for a role of an upstream account:
    the broker decides (its trust policy names the user), the upstream issues (its trust
    policy tests the ``sub`` the broker's token carries: the user's ARN)."""
    sts = boto3.client(
        "sts",
        endpoint_url=pair.broker.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
        aws_access_key_id=CI_KEY,
        aws_secret_access_key=CI_SECRET,
    )
    result = sts.assume_role(RoleArn=CI_DEPLOY, RoleSessionName="pipeline")
    arn = f"arn:aws:sts::{WEBID}:assumed-role/CiDeploy/pipeline"
    assert result["AssumedRoleUser"]["Arn"] == arn
    assert pair.upstream_sts(result["Credentials"]).get_caller_identity()["Arn"] == arn
    with pytest.raises(ClientError) as info:  # the broker's trust policy names only ci
        sts.assume_role(RoleArn=DEPLOY, RoleSessionName="pipeline")
    assert info.value.response["Error"]["Code"] == "AccessDenied"


# ---------------------------------------------------------------------- via: assume-role


def test_assume_role_upstream_with_the_brokers_own_key(pair: Pair) -> None:
    result = pair.broker.sts().assume_role_with_saml(**_saml(pair, "alice", OPS, KEYED_CORP))
    arn = f"arn:aws:sts::{KEYED}:assumed-role/Ops/{SESSION}"
    assert result["AssumedRoleUser"]["Arn"] == arn
    assert result["SourceIdentity"] == "alice"
    assert pair.upstream_sts(result["Credentials"]).get_caller_identity()["Arn"] == arn
    # The tag reached the upstream's trust policy: without it, AssumeRole is refused.
    code, message, status = _refusal(pair, **_saml(pair, "bob", OPS, KEYED_CORP))
    assert (code, status) == ("AccessDenied", 403)
    assert message.startswith("upstream STS: User: arn:aws:iam::666677778888:user/broker-svc")
    assert_no_secret_logged(pair.broker.logs, BROKER_SECRET)


# ---------------------------------------------------------------------- the browser


def test_console_button_signs_in_at_the_upstream_federation_endpoint(pair: Pair) -> None:
    with pair.broker.people().signed_in() as browser:
        token = _csrf(browser.get("/roles").text)
        answer = browser.post(
            "/assume",
            data={"csrf_token": token, "role": DEPLOY, "duration": "3600", "target": "console"},
        )
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{pair.upstream_url}/federation"
    query = parse_qs(parts.query)
    assert query["Action"] == ["login"]
    assert query["Issuer"] == [pair.broker.url]
    assert query["Destination"] == [f"{pair.upstream_url}/console"]
    # The upstream's federation endpoint accepts the SigninToken: its console opens.
    with httpx.Client() as visitor:
        landed = visitor.get(location, follow_redirects=True)
    assert landed.status_code == 200, landed.text
    assert f"arn:aws:sts::{WEBID}:assumed-role/Deploy/{SESSION}" in landed.text


def test_upstream_refusal_in_the_browser_is_a_page_with_its_code(pair: Pair) -> None:
    bob = _person("bob", "red")
    with pair.broker.people().signed_in(
        user=bob,
        roles=bob.roles,
        session_name="bob@example.com",
        principal_tags={"team": "red"},
        source_identity="bob",
    ) as browser:
        token = _csrf(browser.get("/roles").text)
        page = browser.post(
            "/assume",
            data={"csrf_token": token, "role": DEPLOY, "duration": "3600", "target": "credentials"},
        )
    assert page.status_code == 403
    assert "AccessDenied" in page.text and "upstream STS: Not authorized" in page.text


def test_credentials_page_for_an_upstream_role(pair: Pair, tmp_path: Path) -> None:
    with pair.broker.people().signed_in() as browser:
        keys = pair.broker.credentials_page(browser, OPS)
    creds = {
        "AccessKeyId": keys["AWS_ACCESS_KEY_ID"],
        "SecretAccessKey": keys["AWS_SECRET_ACCESS_KEY"],
        "SessionToken": keys["AWS_SESSION_TOKEN"],
    }
    arn = f"arn:aws:sts::{KEYED}:assumed-role/Ops/{SESSION}"
    assert pair.upstream_sts(creds).get_caller_identity()["Arn"] == arn


# ---------------------------------------------------------------------- the CLI


def test_cli_console_signs_in_at_the_upstream_federation_endpoint(
    pair: Pair, tmp_path: Path
) -> None:
    """``sts-broker console`` for an upstream role's profile: AWS's console, not the broker's."""
    user = cli_home(tmp_path)
    try:
        broker = pair.broker.url
        proc = user.start(
            "login", "--broker", broker, "--provider", "corp", "--role", DEPLOY, "--profile", "dp"
        )
        url = url_in(read_until(proc, "Waiting for you to approve"), f"{broker}/cli/authorize?")
        with pair.broker.people().signed_in() as browser:
            page = browser.get(url.removeprefix(broker))
            assert page.status_code == 200, page.text
            approved = browser.post("/cli/authorize", data=approval_form(page.text))
            assert approved.status_code == 303, approved.text
            browser.get(approved.headers["location"])
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        opened = user.run("console", "--profile", "dp", "--no-browser")
        assert opened.returncode == 0, opened.stderr
        link = opened.stdout.strip()
        parts = urlsplit(link)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{pair.upstream_url}/federation"
        query = parse_qs(parts.query)
        assert query["Issuer"] == [broker]
        assert query["Destination"] == [f"{pair.upstream_url}/console"]
        with httpx.Client() as visitor:
            landed = visitor.get(link, follow_redirects=True)
        assert landed.status_code == 200, landed.text
        assert f"arn:aws:sts::{WEBID}:assumed-role/Deploy/{SESSION}" in landed.text
    finally:
        user.stop()
