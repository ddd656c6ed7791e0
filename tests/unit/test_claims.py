"""The claims model: JSON pointers (RFC 6901), provider normalisers, pointer condition keys.

Tokens are real signed JWTs from a real issuer on loopback (``tests/unit/test_oidc.py``'s
helpers), SAML attributes go through the real verifier in ``test_saml_claims`` below.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.config import BrokerConfig, ClaimsConfig
from broker.errors import StsError
from broker.identity.claims import (
    ABSENT,
    Claims,
    claim_path,
    normalise,
    parse_pointer,
    pointer_condition_keys,
)
from tests.saml_builders import Harness, encode, signed_response
from tests.unit.test_oidc import (
    ACCOUNT,
    CLIENT,
    Issuer,
    assert_refused,
    claims_for,
    identity,
    refusal,
    sign,
)


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    running = Issuer().start()
    yield running
    running.stop()


# RFC 6901 section 5's example document and every pointer the RFC evaluates against it.
RFC6901_DOCUMENT: dict[str, Any] = {
    "foo": ["bar", "baz"],
    "": 0,
    "a/b": 1,
    "c%d": 2,
    "e^f": 3,
    "g|h": 4,
    "i\\j": 5,
    'k"l': 6,
    " ": 7,
    "m~n": 8,
}
RFC6901_EXAMPLES = [
    ("", RFC6901_DOCUMENT),
    ("/foo", ["bar", "baz"]),
    ("/foo/0", "bar"),
    ("/", 0),
    ("/a~1b", 1),
    ("/c%d", 2),
    ("/e^f", 3),
    ("/g|h", 4),
    ("/i\\j", 5),
    ('/k"l', 6),
    ("/ ", 7),
    ("/m~0n", 8),
]


@pytest.mark.parametrize(("pointer", "expected"), RFC6901_EXAMPLES)
def test_rfc6901_section_5_examples(pointer: str, expected: Any) -> None:
    assert Claims.of(RFC6901_DOCUMENT).lookup(parse_pointer(pointer)) == expected


@pytest.mark.parametrize(
    "pointer", ["foo", "/~2", "/a~", "/~a"], ids=["no-slash", "tilde-2", "trailing", "tilde-a"]
)
def test_a_malformed_pointer_is_refused(pointer: str) -> None:
    with pytest.raises(ValueError, match="pointer"):
        parse_pointer(pointer)


def test_missing_members_and_indexes_are_absent_not_null() -> None:
    claims = Claims.of({"a": {"b": None}, "list": ["x"]})
    assert claims.lookup(parse_pointer("/a/b")) is None
    assert claims.lookup(parse_pointer("/a/c")) is ABSENT
    assert claims.lookup(parse_pointer("/list/1")) is ABSENT
    assert claims.lookup(parse_pointer("/list/01")) is ABSENT  # RFC 6901: no leading zeros
    assert claims.lookup(parse_pointer("/list/-")) is ABSENT


def test_a_rule_claim_without_slash_is_one_top_level_name() -> None:
    # AWS's rules name claims like "cognito:groups" or "custom:dept": never a pointer.
    assert claim_path("cognito:groups") == ("cognito:groups",)
    assert claim_path("https://aws.amazon.com/tags") == ("https://aws.amazon.com/tags",)
    assert claim_path("/realm_access/roles") == ("realm_access", "roles")


def test_texts_read_scalars_and_lists_of_scalars() -> None:
    claims = Claims.of({"n": 3, "b": True, "l": ["a", 2, {"x": 1}, None], "o": {"k": "v"}})
    assert claims.texts(("n",)) == ("3",)
    assert claims.texts(("b",)) == ("true",)
    assert claims.texts(("l",)) == ("a", "2")
    assert claims.texts(("o",)) is None
    assert claims.texts(("missing",)) is None


# --------------------------------------------------------------------------- normalisers


def test_split_turns_a_delimited_string_into_a_list() -> None:
    settings = ClaimsConfig.model_validate({"split": {"/groups": ",", "/nested/teams": ";"}})
    raw = {"groups": "admins, dev,,ops ", "nested": {"teams": "a;b"}, "other": "x,y"}
    claims = normalise(raw, settings)
    assert claims["groups"] == ["admins", "dev", "ops"]
    assert claims.lookup(("nested", "teams")) == ["a", "b"]
    assert claims["other"] == "x,y"
    assert raw["groups"] == "admins, dev,,ops "  # the verified payload is never changed
    listed = normalise({"groups": ["a,b", "c", 7]}, settings)
    assert listed["groups"] == ["a", "b", "c", 7]


def test_keycloak_roles_become_one_flat_list() -> None:
    settings = ClaimsConfig.model_validate({"keycloak_roles": {"clients": ["app", "absent"]}})
    raw = {
        "realm_access": {"roles": ["offline_access", "admin"]},
        "resource_access": {"app": {"roles": ["deployer"]}, "other": {"roles": ["x"]}},
    }
    claims = normalise(raw, settings)
    assert claims["roles"] == ["offline_access", "admin", "app:deployer"]


def test_keycloak_roles_never_overwrite_a_claim_the_token_carries() -> None:
    settings = ClaimsConfig.model_validate({"keycloak_roles": {}})
    with pytest.raises(StsError) as info:
        normalise({"roles": ["forged"], "realm_access": {"roles": []}}, settings)
    assert_refused(info.value, "IDPRejectedClaim", 403, "keycloak_roles.into")


@pytest.mark.parametrize(
    "raw",
    [
        {"hasgroups": True},
        {"_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "x"}}},
    ],
    ids=["hasgroups", "claim-names"],
)
def test_entra_groups_overage_is_refused_with_what_to_configure(raw: dict[str, Any]) -> None:
    with pytest.raises(StsError) as info:
        normalise({"sub": "u", **raw}, ClaimsConfig())
    assert_refused(info.value, "IDPRejectedClaim", 403, "groups overage")
    assert "ApplicationGroup" in info.value.message


def test_other_distributed_claims_are_refused_too() -> None:
    with pytest.raises(StsError) as info:
        normalise({"_claim_names": {"address": "src"}}, ClaimsConfig())
    assert_refused(info.value, "IDPRejectedClaim", 403, "'address' are held elsewhere")


# --------------------------------------------------------------------------- condition keys


def _trust(condition: dict[str, Any]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": "x"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": condition,
            }
        ],
    }


def test_only_the_pointer_keys_trust_policies_name_are_computed() -> None:
    policies = [
        _trust({"ForAnyValue:StringEquals": {"idp.example.com/r:/realm_access/roles": "a"}}),
        _trust({"StringEquals": {"IDP.example.com/r:/REALM_ACCESS/roles": "b"}}),  # same key
        _trust({"StringEquals": {"idp.example.com/r:email": "x", "other.example:/a": "y"}}),
        _trust({"StringEquals": {"idp.example.com/r:/bad~2": "z"}}),
        {"Statement": "not a list"},
    ]
    keys = pointer_condition_keys(policies, "idp.example.com/r")
    assert keys == (("idp.example.com/r:/realm_access/roles", ("realm_access", "roles")),)


def _config(issuer: Issuer, claims: dict[str, Any], condition: dict[str, Any]) -> BrokerConfig:
    return BrokerConfig.model_validate(
        {
            "public_url": "http://127.0.0.1:8080",
            "accounts": {
                ACCOUNT: {
                    "oidc_providers": [
                        {"url": issuer.url, "client_ids": [CLIENT], "claims": claims}
                    ],
                    "roles": {"R": {"trust_policy": _trust(condition)}},
                }
            },
        }
    )


def test_a_keycloak_token_gets_pointer_and_normalised_condition_keys(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    prefix = issuer.url.removeprefix("http://")
    config = _config(
        issuer,
        {"split": {"/groups": ","}},
        {
            "ForAnyValue:StringEquals": {
                f"{prefix}:/realm_access/roles": "admin",
                f"{prefix}:/resource_access/app/roles": "deployer",
                f"{prefix}:/missing": "x",
            }
        },
    )
    token = sign(
        key,
        claims_for(
            issuer.url,
            realm_access={"roles": ["admin", "user"]},
            resource_access={"app": {"roles": ["deployer"]}},
            groups="eng,ops",
        ),
    )
    context = identity(config, token).context
    assert context[f"{prefix}:/realm_access/roles"] == ("admin", "user")
    assert context[f"{prefix}:/resource_access/app/roles"] == ("deployer",)
    assert f"{prefix}:/missing" not in context
    assert context[f"{prefix}:groups"] == ("eng", "ops")  # split before the flat keys


def test_an_overage_token_is_refused_on_the_sts_path(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = _config(issuer, {}, {"StringEquals": {"x:y": "z"}})
    error = refusal(config, sign(key, claims_for(issuer.url, hasgroups=True)))
    assert_refused(error, "IDPRejectedClaim", 403, "groups overage")


def test_a_flat_claim_that_looks_like_a_pointer_is_not_exposed(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    prefix = issuer.url.removeprefix("http://")
    config = _config(issuer, {}, {"StringEquals": {f"{prefix}:/admin": "true"}})
    # A claim literally named "/admin" must not answer for the pointer /admin.
    token = sign(key, claims_for(issuer.url, **{"/admin": "true"}))
    context = identity(config, token).context
    assert f"{prefix}:/admin" not in context


def test_saml_attributes_enter_the_same_model(tmp_path: Path) -> None:
    # The Corp provider splits its one-value "groups" attribute; a trust policy anywhere
    # in the config testing saml:/groups makes that pointer a condition key.
    trust = (
        "    roles: {R: {trust_policy: {Statement: [{Effect: Allow, Principal: {Federated: x},"
        ' Action: "sts:AssumeRoleWithSAML", Condition: {"ForAnyValue:StringEquals":'
        ' {"saml:/groups": eng}}}]}}}\n'
    )
    harness = Harness(
        tmp_path,
        provider=', claims: {split: {/groups: ","}}',
        extra_accounts=f'  "222222222222":\n{trust}',
    )
    attributes = {"groups": ["eng, ops"], "department": ["R&D"]}
    identity = harness.verify(encode(signed_response(attributes=attributes)))
    assert identity.claims["groups"] == ["eng", "ops"]
    assert identity.claims["department"] == ["R&D"]
    assert identity.context["saml:/groups"] == ("eng", "ops")
    assert identity.attributes["groups"] == ("eng, ops",)  # the raw attributes stay as sent


# --------------------------------------------------------------------------- templates


def _templated(issuer: Issuer, session: dict[str, Any]) -> BrokerConfig:
    return BrokerConfig.model_validate(
        {
            "public_url": "http://127.0.0.1:8080",
            "accounts": {
                ACCOUNT: {
                    "oidc_providers": [
                        {
                            "url": issuer.url,
                            "client_ids": [CLIENT],
                            "claims": {"split": {"/groups": ","}},
                            "session": session,
                        }
                    ]
                }
            },
        }
    )


def test_provider_templates_make_session_tags_and_source_identity(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = _templated(
        issuer,
        {
            "tags": {"team": "${claim:/groups}", "dept": "d-${claim:/org/dept}"},
            "transitive_tag_keys": ["team"],
            "source_identity": "${claim:/email}",
        },
    )
    token = sign(
        key,
        claims_for(issuer.url, groups="eng,ops", org={"dept": "42"}, email="a@example.com"),
    )
    result = identity(config, token)
    assert dict(result.session_tags) == {"team": "eng:ops", "dept": "d-42"}
    assert result.transitive_tag_keys == ("team",)
    assert result.source_identity == "a@example.com"


def test_a_template_that_yields_nothing_refuses_the_token(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = _templated(issuer, {"tags": {"team": "${claim:/groups}"}})
    for claims in ({}, {"groups": ""}, {"groups": {"not": "text"}}):
        error = refusal(config, sign(key, claims_for(issuer.url, **claims)))
        assert_refused(error, "IDPRejectedClaim", 403, "needs the claim /groups")


def test_templated_values_are_checked_by_aws_rules(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = _templated(issuer, {"source_identity": "${claim:/name}"})
    error = refusal(config, sign(key, claims_for(issuer.url, name="Alice Smith")))
    assert_refused(error, "IDPRejectedClaim", 403, "SourceIdentity template made a value")
    tags = _templated(issuer, {"tags": {"team": "${claim:/team}"}})
    error = refusal(tags, sign(key, claims_for(issuer.url, team="a,b")))  # ',' is no tag char
    assert_refused(error, "IDPRejectedClaim", 403, "Templated session tags")


def test_a_tag_from_the_token_and_a_template_at_once_is_refused(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = _templated(issuer, {"tags": {"Team": "${claim:/groups}"}})
    token = sign(
        key,
        claims_for(
            issuer.url,
            groups="eng",
            **{"https://aws.amazon.com/tags": {"principal_tags": {"team": ["x"]}}},
        ),
    )
    error = refusal(config, token)
    assert_refused(error, "IDPRejectedClaim", 403, "both from the identity provider and")
