"""A browser sign-in as the session keeps it, and the roles it may use through the engine."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from broker.clock import FrozenClock
from broker.config import ConfigError, load_config
from broker.directory import Directory
from broker.errors import StsError
from broker.identity import FederatedIdentity, SamlVerifier, TokenSealer, WebIdentityVerifier
from broker.issuer import WebIdentityIssuer
from broker.store import MemoryStore
from broker.sts.engine import RequestInfo, StsEngine
from broker.sts.messages import AuthorizationMessages
from broker.web.signin import RoleChooser, SignedIn, role_session_name

NOW = 1_800_000_000.0
GOOGLE = "arn:aws:iam::111111111111:oidc-provider/accounts.google.com"
SAML = "arn:aws:iam::111111111111:saml-provider/Corp"
DEV = "arn:aws:iam::111111111111:role/Dev"
ADMIN = "arn:aws:iam::111111111111:role/Admin"
OPS = "arn:aws:iam::111111111111:role/team/Ops"
OTHER = "arn:aws:iam::222222222222:role/Dev"
INFO = RequestInfo(now=NOW, source_ip="127.0.0.1", secure=False)

CONFIG = """\
public_url: http://127.0.0.1:8080
accounts:
  "111111111111":
    alias: dev
    oidc_providers:
      - url: https://accounts.google.com
        client_ids: [app.apps.googleusercontent.com]
    roles:
      Dev:
        description: Everyday work.
        max_session_duration: 7200
        trust_policy:
          Version: "2012-10-17"
          Statement:
            - Effect: Allow
              Principal: {Federated: accounts.google.com}
              Action: sts:AssumeRoleWithWebIdentity
              Condition:
                StringEquals: {"accounts.google.com:sub": alice}
      Admin:
        trust_policy:
          Version: "2012-10-17"
          Statement:
            - Effect: Allow
              Principal: {Federated: accounts.google.com}
              Action: sts:AssumeRoleWithWebIdentity
              Condition:
                StringEquals: {"accounts.google.com:sub": root}
      Ops:
        path: /team/
        trust_policy:
          Version: "2012-10-17"
          Statement:
            - Effect: Allow
              Principal: {Federated: accounts.google.com}
              Action: [sts:AssumeRoleWithWebIdentity, sts:TagSession]
  "222222222222":
    roles:
      Dev:
        trust_policy:
          Version: "2012-10-17"
          Statement:
            - Effect: Allow
              Principal: {Federated: accounts.google.com}
              Action: sts:AssumeRoleWithWebIdentity
"""


def google(sub: str = "alice", **extra: Any) -> FederatedIdentity:
    return FederatedIdentity(
        action="sts:AssumeRoleWithWebIdentity",
        provider_arn=GOOGLE,
        principal_names=(GOOGLE, "accounts.google.com"),
        context={"accounts.google.com:sub": sub, "accounts.google.com:aud": "app"},
        **extra,
    )


def signed_in(*identities: FederatedIdentity, **extra: Any) -> SignedIn:
    return SignedIn(
        protocol="oidc",
        login="google",
        issuer="https://accounts.google.com",
        subject="alice",
        display_name="alice@example.com",
        session_name="alice@example.com",
        identities=identities or (google(),),
        **extra,
    )


@pytest.fixture
def chooser(tmp_path: Path) -> RoleChooser:
    path = tmp_path / "broker.yaml"
    path.write_text(CONFIG)
    config = load_config(path, environ={})
    clock = FrozenClock(NOW)
    keys = [("k1", b"k" * 32)]
    directory = Directory.build(config)
    engine = StsEngine(
        directory=directory,
        sealer=TokenSealer(keys),
        store=MemoryStore(clock),
        region="us-east-1",
        web=WebIdentityVerifier(config, clock),
        saml=SamlVerifier(config, clock),
        issuer=WebIdentityIssuer(config, clock),
        messages=AuthorizationMessages(keys, clock=clock),
    )
    return RoleChooser(engine=engine, directory=directory, clock=clock, secure=False)


# -- FederatedIdentity and SignedIn as JSON --------------------------------------------------


def test_identity_round_trips_through_json() -> None:
    identity = google(
        session_tags={"team": "a"},
        transitive_tag_keys=("team",),
        source_identity="alice",
        roles=(DEV,),
        max_duration=1800,
        not_after=int(NOW) + 600,
    )
    raw = json.loads(json.dumps(identity.to_json()))
    assert FederatedIdentity.from_json(raw) == identity
    assert identity.account == "111111111111"


@pytest.mark.parametrize(
    "change",
    [
        {"action": "sts:AssumeRole"},
        {"provider_arn": "not-an-arn"},
        {"principal_names": "accounts.google.com"},
        {"context": {"k": 1}},
        {"session_tags": {"k": 1}},
        {"roles": [1]},
        {"max_duration": True},
        {"not_after": "soon"},
    ],
)
def test_identity_from_json_fails_closed(change: dict[str, Any]) -> None:
    raw = {**google().to_json(), **change}
    assert FederatedIdentity.from_json(raw) is None


def test_signed_in_round_trips_and_fails_closed() -> None:
    original = signed_in(role_patterns=("arn:aws:iam::*:role/Dev",), allowed_roles=(DEV,))
    data = json.loads(json.dumps(original.to_session()))
    assert SignedIn.from_session(data) == original
    assert SignedIn.from_session({**data, "protocol": "ldap"}) is None
    assert SignedIn.from_session({**data, "identities": []}) is None
    assert SignedIn.from_session({**data, "identities": [{"action": "x"}]}) is None
    assert SignedIn.from_session({**data, "allowed_roles": "Dev"}) is None
    assert SignedIn.from_session({}) is None


@pytest.mark.parametrize(
    ("value", "fallback", "expected"),
    [
        ("alice@example.com", "sub", "alice@example.com"),
        ("Ada Lovelace", "sub", "Ada-Lovelace"),
        ("é", "user-42", "user-42"),
        ("", "", "signed-in-user"),
        ("x" * 80, "sub", "x" * 64),
    ],
)
def test_role_session_name_is_always_valid(value: str, fallback: str, expected: str) -> None:
    assert role_session_name(value, fallback) == expected


# -- RoleChooser ----------------------------------------------------------------------------


def test_roles_are_those_the_trust_policies_admit_in_the_providers_account(
    chooser: RoleChooser,
) -> None:
    choices = chooser.roles(signed_in(), INFO)
    assert [c.arn for c in choices] == [DEV, OPS]
    dev = choices[0]
    assert (dev.account_label, dev.description, dev.max_duration) == (
        "dev (111111111111)",
        "Everyday work.",
        7200,
    )
    # The 222222222222 role trusts Google too, but that account registers no provider.
    assert OTHER not in {c.arn for c in choices}


def test_choice_checks_one_role_as_roles_would(chooser: RoleChooser) -> None:
    listed = {c.arn: c for c in chooser.roles(signed_in(), INFO)}
    assert chooser.choice(signed_in(), DEV, INFO) == listed[DEV]
    assert chooser.choice(signed_in(), ADMIN, INFO) is None
    assert chooser.choice(signed_in(), OTHER, INFO) is None
    assert chooser.choice(signed_in(), "arn:aws:iam::111111111111:role/Missing", INFO) is None
    assert chooser.choice(signed_in(role_patterns=("*/team/*",)), DEV, INFO) is None


def test_tags_need_tag_session_in_the_trust_policy(chooser: RoleChooser) -> None:
    tagged = signed_in(google(session_tags={"team": "a"}))
    assert [c.arn for c in chooser.roles(tagged, INFO)] == [OPS]


def test_patterns_and_claimed_roles_narrow_the_list(chooser: RoleChooser) -> None:
    assert [c.arn for c in chooser.roles(signed_in(role_patterns=("*/team/*",)), INFO)] == [OPS]
    assert [c.arn for c in chooser.roles(signed_in(allowed_roles=(DEV,)), INFO)] == [DEV]
    assert chooser.roles(signed_in(allowed_roles=()), INFO) == []


def test_saml_identity_offers_only_its_roles_and_caps_duration(chooser: RoleChooser) -> None:
    identity = FederatedIdentity(
        action="sts:AssumeRoleWithSAML",
        provider_arn=SAML,
        principal_names=(SAML,),
        context={},
        roles=(DEV,),
        max_duration=1200,
    )
    # Dev trusts Google only, so a SAML sign-in granted Dev still gets nothing.
    assert chooser.roles(signed_in(identity), INFO) == []


def test_assume_mints_credentials_for_an_admitted_role(chooser: RoleChooser) -> None:
    result = asyncio.run(chooser.assume(signed_in(), DEV, 1800, INFO))
    assert result["AssumedRoleUser"]["Arn"] == (
        "arn:aws:sts::111111111111:assumed-role/Dev/alice@example.com"
    )
    assert result["Credentials"]["Expiration"] == NOW + 1800


@pytest.mark.parametrize(
    ("role", "duration", "code"),
    [
        (ADMIN, None, "AccessDenied"),
        (OTHER, None, "AccessDenied"),
        ("arn:aws:iam::111111111111:role/Missing", None, "AccessDenied"),
        (DEV, 7201, "ValidationError"),
    ],
)
def test_assume_refuses_like_the_api(
    chooser: RoleChooser, role: str, duration: int | None, code: str
) -> None:
    with pytest.raises(StsError) as refused:
        asyncio.run(chooser.assume(signed_in(), role, duration, INFO))
    assert refused.value.code == code


def test_assume_refuses_a_role_outside_the_patterns(chooser: RoleChooser) -> None:
    with pytest.raises(StsError) as refused:
        asyncio.run(chooser.assume(signed_in(role_patterns=("*/team/*",)), DEV, None, INFO))
    assert refused.value.code == "AccessDenied"


def test_saml_session_not_on_or_after_ends_role_sessions(chooser: RoleChooser) -> None:
    ended = google(not_after=int(NOW) - 1)
    with pytest.raises(StsError) as refused:
        asyncio.run(chooser.assume(signed_in(ended), DEV, None, INFO))
    assert refused.value.code == "ExpiredTokenException"


# -- config: login providers must name what the accounts define ------------------------------


def test_login_providers_must_name_a_defined_provider(tmp_path: Path) -> None:
    path = tmp_path / "broker.yaml"
    path.write_text(
        CONFIG
        + textwrap.dedent(
            """\
            login:
              providers:
                corp: {label: Corp, saml: {account: "111111111111", provider: Corp}}
                google:
                  label: Google
                  oidc: {url: https://accounts.google.com, client_id: other-client}
            """
        )
    )
    with pytest.raises(ConfigError) as error:
        load_config(path, environ={})
    text = str(error.value)
    assert "login.providers.corp.saml.provider: account 111111111111 has no" in text
    assert "login.providers.google.oidc.client_id: no account's oidc_providers lists" in text


def test_demo_idps_are_refused_off_loopback(tmp_path: Path) -> None:
    path = tmp_path / "broker.yaml"
    path.write_text(
        CONFIG.replace("http://127.0.0.1:8080", "https://sts.example.com")
        + "demo: {saml_idp: true}\n"
    )
    with pytest.raises(ConfigError) as error:
        load_config(path, environ={})
    assert "demo: the demo IdPs sign in whoever clicks" in str(error.value)
