"""Upstream accounts against moto as "real AWS": every path ends in keys moto accepts.

A SAML sign-in, the role picker's Credentials, ``AssumeRoleWithSAML`` and
``AssumeRoleWithWebIdentity`` sent to the broker, and ``sts-broker login``'s refreshing
profile each give credentials that moto's own GetCallerIdentity and S3 accept, for both
``via`` modes (``assume-role`` with the broker's profile, ``web-identity`` with an ID token
the broker signs). And when the upstream is down or silent, the API answers AWS's
ServiceUnavailable (503, XML), the browser a page that says so, and no log line holds a
secret.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from botocore.exceptions import ClientError
from moto.sts.models import sts_backends

from idp_fixtures import OidcServer, SamlUser, google
from tests.integration.cli_setup import CliHome, approval_form, cli_home, read_until, url_in
from tests.integration.test_people import _csrf
from tests.integration.upstream.accounts import (
    UpstreamBroker,
    assert_no_secret_logged,
    google_trust,
    saml_trust,
    upstream_broker,
)
from tests.integration.upstream.servers import closed_port, silent_server
from tests.moto_server import MOTO_ACCOUNT, MOTO_KEY_ID, MOTO_SECRET, REGION, Moto

WEB_ACCOUNT = "444455556666"
"""An upstream account reached with ``via: web-identity`` (moto takes any account)."""
ADMIN = f"arn:aws:iam::{MOTO_ACCOUNT}:role/Admin"
WEB_ADMIN = f"arn:aws:iam::{WEB_ACCOUNT}:role/WebAdmin"
CORP = f"arn:aws:iam::{MOTO_ACCOUNT}:saml-provider/Corp"
WEB_CORP = f"arn:aws:iam::{WEB_ACCOUNT}:saml-provider/Corp"
CLIENT = "upstream-app"
SESSION = "alice@example.com"


def _config(url: str, acs: str, *, sts_endpoint: str, google_issuer: str) -> dict[str, Any]:
    return {
        "public_url": url,
        "upstream": {
            "sts_endpoint": sts_endpoint,
            "region": REGION,
            "credentials": {"profile": "broker"},
            "connect_timeout_seconds": 1,
            "read_timeout_seconds": 1,
            "max_attempts": 1,
        },
        "login": {
            "providers": {
                "corp": {"label": "Corp SSO", "saml": {"account": MOTO_ACCOUNT, "provider": "Corp"}}
            }
        },
        "accounts": {
            MOTO_ACCOUNT: {
                "alias": "moto",
                "upstream": {"via": "assume-role", "external_id": "broker-external-id"},
                "saml_providers": {"Corp": {"metadata_url": "IDP_METADATA_URL"}},
                "oidc_providers": [
                    {"url": google_issuer, "kind": "google", "client_ids": [CLIENT]}
                ],
                "roles": {
                    "Admin": {"max_session_duration": 7200, "trust_policy": saml_trust(CORP, acs)},
                    "AppUser": {"trust_policy": google_trust(CLIENT)},
                    "AppAdmin": {
                        "trust_policy": google_trust(
                            CLIENT, **{"accounts.google.com:email": "admin@example.com"}
                        )
                    },
                },
            },
            WEB_ACCOUNT: {
                "alias": "moto-web",
                "upstream": {"via": "web-identity"},
                "saml_providers": {"Corp": {"metadata_url": "IDP_METADATA_URL"}},
                "roles": {"WebAdmin": {"trust_policy": saml_trust(WEB_CORP, acs)}},
            },
        },
    }


ALICE = SamlUser(
    "alice",
    email=SESSION,
    session_name=SESSION,
    roles=((ADMIN, CORP), (WEB_ADMIN, WEB_CORP)),
)


@pytest.fixture(scope="module")
def broker(
    tmp_path_factory: pytest.TempPathFactory, moto_server: Moto, oidc_server: OidcServer
) -> Iterator[UpstreamBroker]:
    issuer = oidc_server.add_issuer("upstream-google", replace=True)
    with upstream_broker(
        tmp_path_factory.mktemp("upstream-moto"),
        config_for=lambda url, acs: _config(
            url, acs, sts_endpoint=moto_server.url, google_issuer=issuer.issuer
        ),
        users=[ALICE],
        aws_profiles={"broker": (MOTO_KEY_ID, MOTO_SECRET)},
    ) as setup:
        yield setup


def _works_on_moto(moto: Moto, keys: dict[str, str], arn: str) -> None:
    """The keys answer moto's GetCallerIdentity with ``arn`` and can use S3 there."""
    creds = {
        "access_key_id": keys["AWS_ACCESS_KEY_ID"],
        "secret_access_key": keys["AWS_SECRET_ACCESS_KEY"],
        "session_token": keys["AWS_SESSION_TOKEN"],
    }
    assert keys["AWS_ACCESS_KEY_ID"].startswith("ASIA")
    assert moto.client("sts", **creds).get_caller_identity()["Arn"] == arn
    s3 = moto.client("s3", **creds)
    bucket = f"upstream-{keys['AWS_ACCESS_KEY_ID'].lower()}"
    s3.create_bucket(Bucket=bucket)
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def _keys(result: dict[str, Any]) -> dict[str, str]:
    creds = result["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
    }


# ---------------------------------------------------------------------- the browser


@pytest.mark.parametrize(
    ("role", "account"),
    [(ADMIN, MOTO_ACCOUNT), (WEB_ADMIN, WEB_ACCOUNT)],
    ids=["assume-role", "web-identity"],
)
def test_saml_signin_role_picker_credentials_work_on_moto(
    broker: UpstreamBroker, moto_server: Moto, role: str, account: str
) -> None:
    with broker.people().signed_in() as browser:
        picker = browser.get("/roles").text
        assert role in picker
        keys = broker.credentials_page(browser, role)
    # Real AWS keys: the page's exports do not point STS at the broker.
    assert "AWS_ENDPOINT_URL_STS" not in keys
    name = role.rsplit("/", 1)[1]
    _works_on_moto(moto_server, keys, f"arn:aws:sts::{account}:assumed-role/{name}/{SESSION}")
    if account == MOTO_ACCOUNT:
        # via: assume-role sent the account's ExternalId; moto records what it was given.
        session = Moto.assumed_role(keys["AWS_ACCESS_KEY_ID"])
        assert session is not None and session.external_id == "broker-external-id"
    # The keys are AWS's: the broker's own STS does not know them.
    refused = httpx.get(broker.url, params={"Action": "GetCallerIdentity", "Version": "2011-06-15"})
    assert refused.status_code == 403


def test_duration_and_expiration_are_upstreams(broker: UpstreamBroker, moto_server: Moto) -> None:
    assertion = broker.assertion(ADMIN, CORP, "alice-long")
    result = broker.sts().assume_role_with_saml(
        RoleArn=ADMIN, PrincipalArn=CORP, SAMLAssertion=assertion, DurationSeconds=5400
    )
    expiration: datetime = result["Credentials"]["Expiration"]
    session = Moto.assumed_role(result["Credentials"]["AccessKeyId"])
    assert session is not None
    # The answer carries moto's own Expiration (whole seconds), for the duration asked.
    assert abs(expiration.timestamp() - session.expiration.replace(tzinfo=UTC).timestamp()) < 1
    assert 5400 - 60 < expiration.timestamp() - time.time() <= 5400


# ---------------------------------------------------------------------- the STS API


def test_assume_role_with_web_identity_for_an_upstream_role_returns_moto_keys(
    broker: UpstreamBroker, moto_server: Moto, oidc_server: OidcServer
) -> None:
    token = google(oidc_server.issuer("upstream-google"), sub="10769150350006150715", aud=CLIENT)
    result = broker.sts().assume_role_with_web_identity(
        RoleArn=f"arn:aws:iam::{MOTO_ACCOUNT}:role/AppUser",
        RoleSessionName="app-user",
        WebIdentityToken=token,
    )
    arn = f"arn:aws:sts::{MOTO_ACCOUNT}:assumed-role/AppUser/app-user"
    assert result["AssumedRoleUser"]["Arn"] == arn
    # The response still says who the broker verified (its own fields, AWS's shape).
    assert result["SubjectFromWebIdentityToken"] == "10769150350006150715"
    assert result["Audience"] == CLIENT
    _works_on_moto(moto_server, _keys(result), arn)


def test_assume_role_with_saml_for_an_upstream_role_returns_moto_keys(
    broker: UpstreamBroker, moto_server: Moto
) -> None:
    assertion = broker.assertion(WEB_ADMIN, WEB_CORP, "alice-api")
    result = broker.sts().assume_role_with_saml(
        RoleArn=WEB_ADMIN, PrincipalArn=WEB_CORP, SAMLAssertion=assertion
    )
    arn = f"arn:aws:sts::{WEB_ACCOUNT}:assumed-role/WebAdmin/alice-api"
    assert result["AssumedRoleUser"]["Arn"] == arn
    _works_on_moto(moto_server, _keys(result), arn)


def test_the_brokers_trust_policy_decides_before_upstream_is_asked(
    broker: UpstreamBroker, oidc_server: OidcServer
) -> None:
    """A token the broker's trust policy does not admit never reaches upstream."""
    token = google(oidc_server.issuer("upstream-google"), aud=CLIENT, email="alice@example.com")
    before = len(sts_backends[MOTO_ACCOUNT]["aws"].assumed_roles)
    with pytest.raises(ClientError) as info:
        broker.sts().assume_role_with_web_identity(
            RoleArn=f"arn:aws:iam::{MOTO_ACCOUNT}:role/AppAdmin",
            RoleSessionName="x1",
            WebIdentityToken=token,
        )
    error = info.value.response["Error"]
    assert (error["Code"], error["Message"]) == (
        "AccessDenied",
        "Not authorized to perform sts:AssumeRoleWithWebIdentity",
    )
    assert len(sts_backends[MOTO_ACCOUNT]["aws"].assumed_roles) == before


# ---------------------------------------------------------------------- the CLI


@pytest.fixture
def user(tmp_path: Path) -> Iterator[CliHome]:
    home = cli_home(tmp_path)
    yield home
    home.stop()


def test_login_profile_refreshes_by_calling_upstream_again(
    broker: UpstreamBroker, moto_server: Moto, user: CliHome
) -> None:
    proc = user.start(
        "login", "--broker", broker.url, "--provider", "corp", "--role", ADMIN, "--profile", "up"
    )
    url = url_in(read_until(proc, "Waiting for you to approve"), f"{broker.url}/cli/authorize?")
    assert parse_qs(urlsplit(url).query)["role"] == [ADMIN]
    with broker.people().signed_in() as browser:
        page = browser.get(url.removeprefix(broker.url))
        assert page.status_code == 200, page.text
        approved = browser.post("/cli/authorize", data=approval_form(page.text))
        assert approved.status_code == 303, approved.text
        browser.get(approved.headers["location"])
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    arn = f"arn:aws:sts::{MOTO_ACCOUNT}:assumed-role/Admin/{SESSION}"
    first = user.cache("up")["credentials"]
    # Every refresh goes to the broker, which asks upstream again: a new key moto knows.
    keys = []
    for _ in range(2):
        printed = user.run("credential-process", "--profile", "up", "--refresh-before", "86400")
        assert printed.returncode == 0, printed.stderr
        keys.append(json.loads(printed.stdout))
    assert len({first["AccessKeyId"], *(k["AccessKeyId"] for k in keys)}) == 3
    for out in keys:
        _works_on_moto(
            moto_server,
            {
                "AWS_ACCESS_KEY_ID": out["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": out["SecretAccessKey"],
                "AWS_SESSION_TOKEN": out["SessionToken"],
            },
            arn,
        )
    # The profile is for AWS: region set, no [services] section sending STS to the broker;
    # the real AWS CLI runs its credential_process and AWS (moto) knows the keys.
    config = user.config_file.read_text()
    assert "[profile up]\ncredential_process = " in config
    assert "services" not in config and broker.url not in config
    assert user.caller("up", moto_server.url) == arn
    # exec/env hand out the keys without the broker as STS endpoint.
    printed_env = user.run("env", "--profile", "up", "--shell", "bash")
    assert printed_env.returncode == 0, printed_env.stderr
    assert "AWS_ACCESS_KEY_ID=" in printed_env.stdout
    assert "AWS_ENDPOINT_URL_STS" not in printed_env.stdout
    assert user.cache("up")["upstream"]["FederationEndpoint"] == (
        "https://signin.aws.amazon.com/federation"
    )


# ---------------------------------------------------------------------- upstream down


def _down_config(sts_endpoint: str) -> Callable[[str, str], dict[str, Any]]:
    def build(url: str, acs: str) -> dict[str, Any]:
        return _config(url, acs, sts_endpoint=sts_endpoint, google_issuer="https://unused.example")

    return build


@pytest.mark.parametrize("kind", ["down", "slow"])
def test_upstream_down_or_slow_is_service_unavailable_everywhere(tmp_path: Path, kind: str) -> None:
    with (
        silent_server() if kind == "slow" else nullcontext(closed_port()) as endpoint,
        upstream_broker(
            tmp_path,
            config_for=_down_config(endpoint),
            users=[ALICE],
            aws_profiles={"broker": (MOTO_KEY_ID, MOTO_SECRET)},
        ) as down,
    ):
        assertion = down.assertion(ADMIN, CORP, "alice-api")
        form = {
            "Action": "AssumeRoleWithSAML",
            "Version": "2011-06-15",
            "RoleArn": ADMIN,
            "PrincipalArn": CORP,
            "SAMLAssertion": assertion,
        }
        started = time.monotonic()
        answer = httpx.post(down.url, data=form)
        elapsed = time.monotonic() - started
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith("text/xml")
        assert "<Code>ServiceUnavailable</Code>" in answer.text
        assert "<Type>Receiver</Type>" in answer.text
        assert "did not answer" in answer.text
        assert elapsed < 5  # connect/read timeouts of 1 s, one attempt
        # The assertion was not used up: nothing was issued for it.
        again = httpx.post(down.url, data=form)
        assert "<Code>ServiceUnavailable</Code>" in again.text, again.text

        with down.people().signed_in() as browser:
            page = _post_assume(browser, ADMIN, "credentials")
            assert page.status_code == 503, page.text
            assert "ServiceUnavailable" in page.text and "did not answer" in page.text
            console = _post_assume(browser, ADMIN, "console")
            assert console.status_code == 503
        assert_no_secret_logged(down.logs, MOTO_SECRET, assertion[40:120])


# ---------------------------------------------------------------------- helpers


def _post_assume(browser: httpx.Client, role: str, target: str) -> httpx.Response:
    return browser.post(
        "/assume",
        data={
            "csrf_token": _csrf(browser.get("/roles").text),
            "role": role,
            "duration": "3600",
            "target": target,
        },
    )
