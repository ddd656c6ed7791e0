"""SAML federation against a live broker and a live fixture IdP: AssumeRoleWithSAML with
responses shaped like Okta's, Entra ID's, ADFS's and Keycloak's AWS apps, every hostile
response refused with its exact code, and a full SP-initiated browser login over HTTP."""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography import x509

from broker.app import create_app
from broker.config import load_config
from idp_fixtures import SamlUser
from idp_fixtures.saml import SamlServer, hostile, serve_saml_in_thread
from idp_fixtures.saml.presets import adfs, entra_id, keycloak, okta
from tests.integration.conftest import DEV, bind_loopback, start_server, stop_server

PROVIDER = f"arn:aws:iam::{DEV}:saml-provider/Corp"
READER = f"arn:aws:iam::{DEV}:role/SamlReader"
ADMIN = f"arn:aws:iam::{DEV}:role/SamlAdmin"
ROLES = ((READER, PROVIDER), (ADMIN, PROVIDER))


@dataclass
class Setup:
    url: str
    idp: SamlServer

    @property
    def sp_entity_id(self) -> str:
        return f"{self.url}/saml/metadata"

    @property
    def acs(self) -> str:
        return f"{self.url}/saml/acs"

    def response(self, build: Callable[..., str] = okta, **options: Any) -> str:
        options.setdefault("roles", ROLES)
        options.setdefault("session_name", "alice@example.com")
        return build(self.idp.idp, sp_entity_id=self.sp_entity_id, acs_url=self.acs, **options)

    def sts(self) -> Any:
        return boto3.client(
            "sts",
            endpoint_url=self.url,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}),
        )

    def assume(self, assertion: str, role: str = READER, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.sts().assume_role_with_saml(
            RoleArn=role, PrincipalArn=PROVIDER, SAMLAssertion=assertion, **kwargs
        )
        return result


def _trust(condition: dict[str, Any]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": PROVIDER},
                "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession", "sts:SetSourceIdentity"],
                "Condition": condition,
            }
        ],
    }


@pytest.fixture(scope="module")
def saml(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    sock = bind_loopback()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    user = SamlUser(
        "alice", email="alice@example.com", roles=ROLES, session_name="alice@example.com"
    )
    with serve_saml_in_thread(users=[user], auto_login="alice") as idp:
        config = {
            "public_url": url,
            "token_keys": [{"id": "saml1", "secret": base64.b64encode(os.urandom(32)).decode()}],
            "accounts": {
                DEV: {
                    "alias": "dev",
                    "saml_providers": {"Corp": {"metadata_url": idp.metadata_url}},
                    "roles": {
                        "SamlReader": {
                            "max_session_duration": 7200,
                            "trust_policy": _trust(
                                {"StringEquals": {"saml:aud": f"{url}/saml/acs"}}
                            ),
                        },
                        "SamlAdmin": {
                            "trust_policy": _trust(
                                {
                                    "StringEquals": {
                                        "saml:aud": f"{url}/saml/acs",
                                        "saml:sub_type": "persistent",
                                    }
                                }
                            )
                        },
                    },
                }
            },
        }
        path = tmp_path_factory.mktemp("saml") / "broker.yaml"
        path.write_text(yaml.safe_dump(config))
        broker_url, running = start_server(create_app(load_config(path)), sock)
        setup = Setup(url=broker_url, idp=idp)
        # The IdP verifies the broker's signed AuthnRequests with the SP certificate, as an
        # administrator registers it from the broker's metadata.
        idp.idp.register_sp(setup.sp_entity_id, (setup.acs,), cert=_sp_certificate(setup))
        try:
            yield setup
        finally:
            stop_server(running)


def _refusal(call: Callable[[], Any]) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response
    return (
        error["Error"]["Code"],
        error["ResponseMetadata"]["HTTPStatusCode"],
        error["Error"]["Message"],
    )


def _who(saml: Setup, creds: dict[str, Any]) -> str:
    client = boto3.client(
        "sts",
        endpoint_url=saml.url,
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    arn: str = client.get_caller_identity()["Arn"]
    return arn


@pytest.mark.parametrize(
    ("name", "build", "options"),
    [
        ("okta", okta, {}),
        ("entra-id", entra_id, {}),
        ("entra-id-persistent", entra_id, {"persistent": True}),
        ("adfs", adfs, {}),
        ("keycloak", keycloak, {}),
        ("okta-encrypted", okta, {"encrypt": True}),
    ],
)
def test_idp_shapes_are_accepted(
    saml: Setup, name: str, build: Callable[..., str], options: dict[str, Any]
) -> None:
    if options.get("encrypt"):
        options["encryption_cert"] = _sp_certificate(saml)
    out = saml.assume(saml.response(build, **options))
    assert (
        out["AssumedRoleUser"]["Arn"]
        == f"arn:aws:sts::{DEV}:assumed-role/SamlReader/alice@example.com"
    )
    assert out["Issuer"] == saml.idp.idp.entity_id
    assert out["Audience"] == saml.acs
    assert out["Subject"]
    assert out["SubjectType"] in {
        "persistent",
        "transient",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
    }
    qualifier = hashlib.sha1(f"{saml.idp.idp.entity_id}{DEV}/Corp".encode()).digest()
    assert out["NameQualifier"] == base64.b64encode(qualifier).decode()
    assert _who(saml, out["Credentials"]) == out["AssumedRoleUser"]["Arn"]


def _sp_certificate(saml: Setup) -> x509.Certificate:
    metadata = httpx.get(f"{saml.url}/saml/metadata").text
    der = re.search(r"<ds:X509Certificate>([^<]+)</ds:X509Certificate>", metadata)
    assert der is not None
    return x509.load_der_x509_certificate(base64.b64decode(der.group(1)))


def test_trust_condition_on_subject_type(saml: Setup) -> None:
    # SamlAdmin wants a persistent NameID: Okta's default unspecified/email format is refused.
    code, status, message = _refusal(lambda: saml.assume(saml.response(okta), role=ADMIN))
    assert (code, status, message) == (
        "AccessDenied",
        403,
        "Not authorized to perform sts:AssumeRoleWithSAML",
    )
    out = saml.assume(saml.response(entra_id, persistent=True), role=ADMIN)
    assert out["SubjectType"] == "persistent"


def test_role_not_in_the_assertion_is_refused(saml: Setup) -> None:
    only_reader = saml.response(okta, roles=((READER, PROVIDER),))
    code, status, _ = _refusal(lambda: saml.assume(only_reader, role=ADMIN))
    assert (code, status) == ("AccessDenied", 403)


def test_replay_rule_once_per_role(saml: Setup) -> None:
    assertion = saml.response(entra_id, persistent=True)
    saml.assume(assertion, role=READER)
    code, status, message = _refusal(lambda: saml.assume(assertion, role=READER))
    assert (code, status) == ("InvalidIdentityToken", 400)
    assert "already redeemed" in message
    saml.assume(assertion, role=ADMIN)  # another of its roles: allowed (gimme-aws-creds style)


def test_duration_is_bounded_by_session_duration_attribute(saml: Setup) -> None:
    out = saml.assume(saml.response(okta, session_duration=1200), DurationSeconds=3600)
    remaining = out["Credentials"]["Expiration"].timestamp() - time.time()
    assert 1100 < remaining <= 1200
    code, status, _ = _refusal(lambda: saml.assume(saml.response(okta), DurationSeconds=7201))
    assert (code, status) == ("ValidationError", 400)


EXPECTED: dict[str, tuple[str, int]] = {
    "expired": ("ExpiredTokenException", 400),
    "not_yet_valid": ("InvalidIdentityToken", 400),
    "oversized": ("ValidationError", 400),
    "duplicate_role_attribute": ("IDPRejectedClaim", 403),
}
"""Every other hostile response is InvalidIdentityToken (400), as AWS answers them."""


@pytest.mark.parametrize("build", hostile.BUILDERS, ids=[b.__name__ for b in hostile.BUILDERS])
def test_hostile_responses_are_refused(saml: Setup, build: Callable[..., str]) -> None:
    assertion = build(saml.idp.idp, sp_entity_id=saml.sp_entity_id, acs_url=saml.acs, roles=ROLES)
    code, status, message = _refusal(lambda: saml.assume(assertion))
    expected = EXPECTED.get(build.__name__, ("InvalidIdentityToken", 400))
    assert (code, status) == expected, message
    assert assertion[:64] not in message


def _follow_login(saml: Setup, client: httpx.Client, return_to: str = "/roles") -> httpx.Response:
    """Browser steps: broker -> IdP (auto-login) -> auto-POST form -> broker ACS."""
    start = client.get(
        f"{saml.url}/saml/login", params={"provider": PROVIDER, "return_to": return_to}
    )
    assert start.status_code == 302, start.text
    assert start.headers["location"].startswith(saml.idp.sso_url)
    at_idp = client.get(start.headers["location"], follow_redirects=True)
    assert at_idp.status_code == 200, at_idp.text
    form = _auto_post_form(at_idp.text)
    assert form["action"] == saml.acs
    return client.post(form["action"], data={k: v for k, v in form.items() if k != "action"})


def _auto_post_form(page: str) -> dict[str, str]:
    action = re.search(r'<form[^>]*action="([^"]+)"', page)
    assert action is not None, page
    fields = {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page)
    }
    return {"action": html.unescape(action.group(1)), **fields}


def test_sp_initiated_browser_login_then_api(saml: Setup) -> None:
    with httpx.Client() as client:
        start = client.get(f"{saml.url}/saml/login", params={"provider": PROVIDER})
        location = start.headers["location"]
        at_idp = client.get(location, follow_redirects=True)
        form = _auto_post_form(at_idp.text)
        saml_response = form["SAMLResponse"]
        done = client.post(
            form["action"], data={"SAMLResponse": saml_response, "RelayState": form["RelayState"]}
        )
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/roles"
        roles = client.get(f"{saml.url}/roles")
        assert roles.status_code == 200
        assert "Signed in as <strong>alice" in roles.text
        assert READER in roles.text and ADMIN in roles.text
        assert "dev (111111111111)" in roles.text
        assert roles.headers["content-security-policy"].startswith("default-src 'none'")
        # Replaying the same POST (same RelayState handle) is refused and creates no session.
        with httpx.Client() as attacker:
            again = attacker.post(
                form["action"],
                data={"SAMLResponse": saml_response, "RelayState": form["RelayState"]},
            )
            assert again.status_code == 400
            assert "already used" in again.text
            assert attacker.get(f"{saml.url}/roles").status_code == 303
    # The assertion the ACS consumed is still good once per role through the API.
    out = saml.assume(saml_response)
    assert _who(saml, out["Credentials"]).endswith("assumed-role/SamlReader/alice@example.com")


def _at_acs_size(build: Callable[..., str]) -> Callable[..., str]:
    """The ACS takes responses up to saml.max_response_bytes (256 KiB decoded), not the API's
    100,000 characters: its oversized case must be larger than that."""
    if build is hostile.oversized:
        return lambda idp, **kw: hostile.oversized(idp, size=400_000, **kw)
    return build


@pytest.mark.parametrize("build", hostile.BUILDERS, ids=[b.__name__ for b in hostile.BUILDERS])
def test_acs_refuses_hostile_responses_with_a_page_and_no_session(
    saml: Setup, build: Callable[..., str]
) -> None:
    """Every refusal class at the ACS too, inside a real SP-initiated login: the hostile
    response answers the browser's own AuthnRequest (its RelayState), so only the
    response's own defect can be the reason it is refused."""
    with httpx.Client() as client:
        start = client.get(f"{saml.url}/saml/login", params={"provider": PROVIDER})
        request_id = _request_id(start.headers["location"])
        relay = parse_qs(urlsplit(start.headers["location"]).query)["RelayState"][0]
        assertion = _at_acs_size(build)(
            saml.idp.idp,
            sp_entity_id=saml.sp_entity_id,
            acs_url=saml.acs,
            roles=ROLES,
            in_response_to=request_id,
        )
        response = client.post(saml.acs, data={"SAMLResponse": assertion, "RelayState": relay})
        assert response.status_code in (400, 403), response.text
        assert "Sign-in refused" in response.text or "Sign-in failed" in response.text
        assert "sts-broker=" not in response.headers.get("set-cookie", "")
        assert client.get(f"{saml.url}/roles").status_code == 303


def _request_id(location: str) -> str:
    raw = parse_qs(urlsplit(location).query)["SAMLRequest"][0]
    xml = zlib.decompress(base64.b64decode(raw), -15).decode()
    found = re.search(r' ID="([^"]+)"', xml)
    assert found is not None
    return found.group(1)


def test_unsolicited_response_is_refused_without_idp_initiated(saml: Setup) -> None:
    with httpx.Client() as client:
        response = client.post(saml.acs, data={"SAMLResponse": saml.response(okta)})
        assert response.status_code == 400
        assert client.get(f"{saml.url}/roles").status_code == 303


def test_relay_state_cannot_redirect_elsewhere(saml: Setup) -> None:
    with httpx.Client() as client:
        done = _follow_login(saml, client, return_to="https://evil.example.com/")
        assert done.status_code == 303
        assert done.headers["location"] == "/roles"


def test_sp_metadata_is_served(saml: Setup) -> None:
    metadata = httpx.get(f"{saml.url}/saml/metadata")
    assert metadata.status_code == 200
    assert f'entityID="{saml.sp_entity_id}"' in metadata.text
    assert saml.acs in metadata.text


def test_unknown_provider_login_is_a_404_page(saml: Setup) -> None:
    response = httpx.get(
        f"{saml.url}/saml/login", params={"provider": "arn:aws:iam::1:saml-provider/x"}
    )
    assert response.status_code == 404


def test_signin_page_lists_every_account_saml_provider_without_login_providers(
    saml: Setup,
) -> None:
    """No ``login.providers``: each account's SAML provider is a button, labelled with the
    provider and the account alias, going through ``/login/NAME`` to the SAML login."""
    page = httpx.get(f"{saml.url}/")
    assert page.status_code == 200
    assert re.findall(r'href="(/login/[^"]+)"', page.text) == [f"/login/saml-{DEV}-corp"]
    assert "Corp (dev)" in page.text
    start = httpx.get(f"{saml.url}/login/saml-{DEV}-corp", params={"return_to": "/roles"})
    assert start.status_code == 303
    assert parse_qs(urlsplit(start.headers["location"]).query) == {
        "provider": [PROVIDER],
        "return_to": ["/roles"],
    }
