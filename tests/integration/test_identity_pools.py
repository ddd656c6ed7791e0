"""Identity pools against a live broker: boto3's ``cognito-identity`` client, the real STS
path, tokens from the fixture OIDC provider (a real server: discovery and JWKS over HTTP).

The trust policies of ``AppUser`` and ``AppGuest`` are AWS's, copied verbatim from the
Cognito developer guide ("Using role-based access control" and "Role trust and
permissions"), with only the pool ID put in.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import yaml
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from broker.app import create_app, load_broker_config
from idp_fixtures import OidcServer, cognito_user_pool, google, serve_in_thread
from tests.integration.conftest import DEV, Key, _key, start_server, stop_server
from tests.integration.test_sts_actions import refusal

CLIENT = "test-client"
POOL = "us-east-1:0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
POOL_KC = "us-east-1:11111111-2222-4333-8444-555555555555"
POOL_TAGS = "us-east-1:22222222-3333-4444-8555-666666666666"
ROLE = f"arn:aws:iam::{DEV}:role"
WEB = "sts:AssumeRoleWithWebIdentity"
REGEX = r"aws#(?<account>\d{12})#(?<role>[\w+=,.@-]+)"


def aws_trust(pool: str, amr: str = "authenticated", actions: Any = WEB) -> dict[str, Any]:
    """The identity-pool trust policy of the Cognito developer guide, verbatim."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "",
                "Effect": "Allow",
                "Principal": {"Federated": "cognito-identity.amazonaws.com"},
                "Action": actions,
                "Condition": {
                    "StringEquals": {"cognito-identity.amazonaws.com:aud": pool},
                    "ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": amr},
                },
            }
        ],
    }


@dataclass
class Pools:
    url: str
    idp: OidcServer
    alice: Key
    bob: Key
    config_path: Path

    def cognito(self, *, signed_as: Key | None = None) -> Any:
        creds: dict[str, Any] = {}
        config = Config(retries={"max_attempts": 1}, parameter_validation=False)
        if signed_as is None:
            config = config.merge(Config(signature_version=UNSIGNED))
        else:
            creds = {
                "aws_access_key_id": signed_as.id,
                "aws_secret_access_key": signed_as.secret,
            }
        return boto3.client(
            "cognito-identity",
            endpoint_url=self.url,
            region_name="us-east-1",
            config=config,
            **creds,
        )

    def sts(self, creds: dict[str, Any] | None = None) -> Any:
        keys: dict[str, Any] = {}
        if creds is not None:
            keys = {
                "aws_access_key_id": creds["AccessKeyId"],
                "aws_secret_access_key": creds.get("SecretKey") or creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"],
            }
        config = Config(retries={"max_attempts": 1})
        if creds is None:
            config = config.merge(Config(signature_version=UNSIGNED))
        return boto3.client(
            "sts", endpoint_url=self.url, region_name="us-east-1", config=config, **keys
        )

    def login(self, name: str) -> str:
        return f"{self.idp.url.removeprefix('http://')}/{name}"

    def credentials(self, pool: str, logins: dict[str, str], **kwargs: Any) -> dict[str, Any]:
        client = self.cognito()
        identity = client.get_id(IdentityPoolId=pool, Logins=logins)["IdentityId"]
        out: dict[str, Any] = client.get_credentials_for_identity(
            IdentityId=identity, Logins=logins, **kwargs
        )
        return out

    def role_of(self, pool: str, logins: dict[str, str], **kwargs: Any) -> str:
        creds = self.credentials(pool, logins, **kwargs)["Credentials"]
        arn: str = self.sts(creds).get_caller_identity()["Arn"]
        return arn


def _config(path: Path, idp: OidcServer, alice: Key, bob: Key, public_url: str) -> None:
    base = idp.url
    path_of = base.removeprefix("http://")

    def role(trust: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"trust_policy": trust, **extra}

    config = {
        "public_url": public_url,
        "state": f"sqlite:///{path.parent / 'state.db'}",
        "token_keys": [{"id": "p1", "secret": base64.b64encode(os.urandom(32)).decode()}],
        "accounts": {
            DEV: {
                "users": {
                    "alice": {
                        "access_keys": [{"id": alice.id, "secret": alice.secret}],
                        "policies": {
                            "pools": {
                                "Version": "2012-10-17",
                                "Statement": [
                                    {
                                        "Effect": "Allow",
                                        "Action": "cognito-identity:*",
                                        "Resource": f"arn:aws:cognito-identity:us-east-1:{DEV}:"
                                        "identitypool/*",
                                    }
                                ],
                            }
                        },
                    },
                    "bob": {"access_keys": [{"id": bob.id, "secret": bob.secret}]},
                },
                "oidc_providers": [
                    {"url": f"{base}/google", "kind": "google", "client_ids": [CLIENT]},
                    {"url": f"{base}/cognito", "kind": "cognito-user-pool", "client_ids": [CLIENT]},
                    {
                        "url": f"{base}/keycloak",
                        "client_ids": [CLIENT],
                        "claims": {
                            "split": {"/groups": ","},
                            "keycloak_roles": {"clients": ["app"]},
                        },
                    },
                    {"url": f"{base}/other", "client_ids": [CLIENT]},
                    {"url": f"{base}/once", "client_ids": [CLIENT], "single_use": True},
                ],
                "roles": {
                    "AppUser": role(aws_trust(POOL)),
                    "AppGuest": role(aws_trust(POOL, "unauthenticated")),
                    "AppAdmin": role(aws_trust(POOL)),
                    "AppEditor": role(aws_trust(POOL)),
                    # "Role trust and permissions": a role for one provider's users only.
                    "GoogleOnly": role(aws_trust(POOL, "accounts.google.com")),
                    "KcDeployer": role(aws_trust(POOL_KC)),
                    "KcOps": role(aws_trust(POOL_KC)),
                    "KcAdmin": role(aws_trust(POOL_KC)),
                    "Tagged": role(
                        aws_trust(
                            POOL_TAGS, actions=[WEB, "sts:TagSession", "sts:SetSourceIdentity"]
                        ),
                        policies={
                            "chain": {
                                "Version": "2012-10-17",
                                "Statement": [
                                    {
                                        "Effect": "Allow",
                                        "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                                        "Resource": "*",
                                    }
                                ],
                            }
                        },
                    ),
                    "Engineers": role(
                        {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Principal": {"AWS": f"arn:aws:iam::{DEV}:root"},
                                    "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                                    "Condition": {"StringEquals": {"aws:PrincipalTag/team": "eng"}},
                                }
                            ],
                        }
                    ),
                },
                "identity_pools": {
                    POOL: {
                        "name": "MyApp",
                        "allow_unauthenticated": True,
                        "allow_classic_flow": True,
                        "logins": [
                            "accounts.google.com",
                            f"{path_of}/cognito",
                            f"{path_of}/once",
                        ],
                        "developer_provider_name": "login.myapp",
                        "roles": {
                            "authenticated": f"{ROLE}/AppUser",
                            "unauthenticated": f"{ROLE}/AppGuest",
                        },
                        "role_mappings": {
                            "accounts.google.com": {
                                "Type": "Rules",
                                "AmbiguousRoleResolution": "AuthenticatedRole",
                                "RulesConfiguration": {
                                    "Rules": [
                                        {
                                            "Claim": "email",
                                            "MatchType": "Equals",
                                            "Value": "admin@example.com",
                                            "RoleARN": f"{ROLE}/AppAdmin",
                                        },
                                        {
                                            "Claim": "email",
                                            "MatchType": "StartsWith",
                                            "Value": "admin",
                                            "RoleARN": f"{ROLE}/AppEditor",
                                        },
                                    ]
                                },
                            },
                            f"{path_of}/cognito": {
                                "Type": "Token",
                                "AmbiguousRoleResolution": "AuthenticatedRole",
                            },
                        },
                    },
                    POOL_KC: {
                        "name": "Keycloak app",
                        "logins": [f"{path_of}/keycloak"],
                        "role_mappings": {
                            f"{path_of}/keycloak": {
                                "Type": "Rules",
                                "AmbiguousRoleResolution": "Deny",
                                "RulesConfiguration": {
                                    "Rules": [
                                        {
                                            "Claim": "/roles",
                                            "MatchType": "Equals",
                                            "Value": "app:deployer",
                                            "RoleARN": f"{ROLE}/KcDeployer",
                                        },
                                        {
                                            "Claim": "groups",
                                            "MatchType": "Equals",
                                            "Value": "ops",
                                            "RoleARN": f"{ROLE}/KcOps",
                                        },
                                        {
                                            # Catastrophic for a backtracking engine.
                                            "Claim": "/okta_groups",
                                            "MatchType": "Regex",
                                            "Value": "(a+)+b",
                                            "RoleARN": f"{ROLE}/KcOps",
                                        },
                                        {
                                            "Claim": "/okta_groups",
                                            "MatchType": "Regex",
                                            "Value": REGEX,
                                            "RoleARN": "arn:aws:iam::$${account}:role/$${role}",
                                        },
                                    ]
                                },
                            }
                        },
                    },
                    POOL_TAGS: {
                        "name": "Tagged app",
                        "logins": [f"{path_of}/keycloak"],
                        "roles": {"authenticated": f"{ROLE}/Tagged"},
                        "session": {
                            "role_session_name": "${claim:/preferred_username}",
                            "source_identity": "${claim:/email}",
                            "tags": {"team": "${claim:/groups}", "email": "${claim:/email}"},
                        },
                    },
                },
            }
        },
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pools]:
    with serve_in_thread() as idp:
        for name in ("google", "cognito", "keycloak", "other", "once"):
            idp.add_issuer(name)
        alice, bob = _key(0), _key(1)
        path = tmp_path_factory.mktemp("pools") / "broker.yaml"
        _config(path, idp, alice, bob, "http://127.0.0.1:8080")
        url, running = start_server(create_app(load_broker_config(path)))
        try:
            yield Pools(url=url, idp=idp, alice=alice, bob=bob, config_path=path)
        finally:
            stop_server(running)


def keycloak(pools: Pools, sub: str = "kc-user", **claims: Any) -> str:
    token: str = pools.idp.issuer("keycloak").id_token(sub, aud=CLIENT, **claims)
    return token


# --------------------------------------------------------------------------- enhanced flow


def test_google_login_gets_an_identity_and_credentials_for_the_mapped_role(pools: Pools) -> None:
    token = google(pools.idp.issuer("google"), sub="1001", email="carol@example.com", aud=CLIENT)
    client = pools.cognito()
    identity = client.get_id(IdentityPoolId=POOL, Logins={"accounts.google.com": token})
    identity_id = identity["IdentityId"]
    assert identity_id.startswith("us-east-1:") and len(identity_id) == 46
    again = client.get_id(IdentityPoolId=POOL, Logins={"accounts.google.com": token})
    assert again["IdentityId"] == identity_id
    out = client.get_credentials_for_identity(
        IdentityId=identity_id, Logins={"accounts.google.com": token}
    )
    assert out["IdentityId"] == identity_id
    creds = out["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and creds["SecretKey"]
    assert 3500 < creds["Expiration"].timestamp() - time.time() <= 3600
    arn = pools.sts(creds).get_caller_identity()["Arn"]
    assert arn == f"arn:aws:sts::{DEV}:assumed-role/AppUser/CognitoIdentityCredentials"


def test_rules_mode_first_match_wins_and_custom_role_arn_may_pick_another_match(
    pools: Pools,
) -> None:
    # admin@example.com matches rule 1 (Equals) and rule 2 (StartsWith admin): crafted to
    # match two rules, it gets the first; CustomRoleArn may pick rule 2's role, no other.
    issuer = pools.idp.issuer("google")
    token = google(issuer, sub="1002", email="admin@example.com", aud=CLIENT)
    logins = {"accounts.google.com": token}
    assert pools.role_of(POOL, logins).split("/")[1] == "AppAdmin"
    editor = pools.role_of(POOL, logins, CustomRoleArn=f"{ROLE}/AppEditor")
    assert editor.split("/")[1] == "AppEditor"
    code, status, message = refusal(
        pools.credentials, pool=POOL, logins=logins, CustomRoleArn=f"{ROLE}/KcAdmin"
    )
    assert (code, status) == ("NotAuthorizedException", 400)
    assert "no rule this identity matches grants it" in message
    # No rule matches, AmbiguousRoleResolution AuthenticatedRole: the pool's default role.
    plain = google(issuer, sub="1003", email="dan@example.com", aud=CLIENT)
    assert pools.role_of(POOL, {"accounts.google.com": plain}).split("/")[1] == "AppUser"


def test_token_mode_reads_cognito_roles_and_preferred_role(pools: Pools) -> None:
    issuer = pools.idp.issuer("cognito")
    key = pools.login("cognito")
    both = [f"{ROLE}/AppAdmin", f"{ROLE}/AppEditor"]
    preferred = cognito_user_pool(
        issuer, aud=CLIENT, roles=both, preferred_role=f"{ROLE}/AppEditor"
    )
    assert pools.role_of(POOL, {key: preferred}).split("/")[1] == "AppEditor"
    custom = pools.role_of(POOL, {key: preferred}, CustomRoleArn=f"{ROLE}/AppAdmin")
    assert custom.split("/")[1] == "AppAdmin"
    code, _, message = refusal(
        pools.credentials, pool=POOL, logins={key: preferred}, CustomRoleArn=f"{ROLE}/AppUser"
    )
    assert code == "NotAuthorizedException" and "cognito:roles" in message
    # cognito:roles without cognito:preferred_role: ambiguous -> the authenticated role.
    ambiguous = cognito_user_pool(issuer, aud=CLIENT, roles=both)
    assert pools.role_of(POOL, {key: ambiguous}).split("/")[1] == "AppUser"


# --------------------------------------------------------------------------- basic flow


def test_basic_flow_token_works_with_aws_trust_policy_verbatim(pools: Pools) -> None:
    token = google(pools.idp.issuer("google"), sub="1004", email="erin@example.com", aud=CLIENT)
    client = pools.cognito()
    identity_id = client.get_id(IdentityPoolId=POOL, Logins={"accounts.google.com": token})[
        "IdentityId"
    ]
    opened = client.get_open_id_token(IdentityId=identity_id, Logins={"accounts.google.com": token})
    assert opened["IdentityId"] == identity_id
    out = pools.sts().assume_role_with_web_identity(
        RoleArn=f"{ROLE}/AppUser", RoleSessionName="web", WebIdentityToken=opened["Token"]
    )
    assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{DEV}:assumed-role/AppUser/web"
    assert out["SubjectFromWebIdentityToken"] == identity_id
    assert out["Audience"] == POOL
    assert out["Provider"] == f"arn:aws:iam::{DEV}:oidc-provider/cognito-identity.amazonaws.com"
    # The unauthenticated role's verbatim trust policy does not admit an authenticated token.
    with pytest.raises(ClientError) as info:
        pools.sts().assume_role_with_web_identity(
            RoleArn=f"{ROLE}/AppGuest", RoleSessionName="web", WebIdentityToken=opened["Token"]
        )
    assert info.value.response["Error"]["Code"] == "AccessDenied"


def test_amr_names_the_provider_so_a_role_can_trust_only_its_users(pools: Pools) -> None:
    client = pools.cognito()
    google_token = google(pools.idp.issuer("google"), sub="1011", aud=CLIENT)
    user_pool = cognito_user_pool(pools.idp.issuer("cognito"), sub="amr-up", aud=CLIENT)
    for logins, admitted in (
        ({"accounts.google.com": google_token}, True),
        ({pools.login("cognito"): user_pool}, False),
    ):
        identity_id = client.get_id(IdentityPoolId=POOL, Logins=logins)["IdentityId"]
        token = client.get_open_id_token(IdentityId=identity_id, Logins=logins)["Token"]
        call = {
            "RoleArn": f"{ROLE}/GoogleOnly",
            "RoleSessionName": "amr",
            "WebIdentityToken": token,
        }
        if admitted:
            pools.sts().assume_role_with_web_identity(**call)
        else:
            code = refusal(pools.sts().assume_role_with_web_identity, **call)[0]
            assert code == "AccessDenied"


def test_basic_flow_is_off_unless_the_pool_allows_it(pools: Pools) -> None:
    token = keycloak(pools, "kc-basic", realm_access={"roles": []}, groups="ops")
    logins = {pools.login("keycloak"): token}
    client = pools.cognito()
    identity_id = client.get_id(IdentityPoolId=POOL_KC, Logins=logins)["IdentityId"]
    code, _, message = refusal(client.get_open_id_token, IdentityId=identity_id, Logins=logins)
    assert code == "InvalidParameterException" and "allow_classic_flow" in message


# --------------------------------------------------------------------------- guests


def test_a_guest_identity_works_only_where_allowed(pools: Pools) -> None:
    client = pools.cognito()
    guest = client.get_id(IdentityPoolId=POOL)["IdentityId"]
    creds = client.get_credentials_for_identity(IdentityId=guest)["Credentials"]
    arn = pools.sts(creds).get_caller_identity()["Arn"]
    assert arn == f"arn:aws:sts::{DEV}:assumed-role/AppGuest/CognitoIdentityCredentials"
    token = client.get_open_id_token(IdentityId=guest)["Token"]
    guest_session = pools.sts().assume_role_with_web_identity(
        RoleArn=f"{ROLE}/AppGuest", RoleSessionName="guest", WebIdentityToken=token
    )
    assert guest_session["AssumedRoleUser"]["Arn"].endswith("AppGuest/guest")
    code, _, message = refusal(client.get_id, IdentityPoolId=POOL_KC)
    assert (code, message) == (
        "NotAuthorizedException",
        "Unauthenticated access is not supported for this identity pool.",
    )


def test_an_authenticated_identity_needs_one_of_its_logins(pools: Pools) -> None:
    issuer = pools.idp.issuer("google")
    token = google(issuer, sub="1005", email="fay@example.com", aud=CLIENT)
    client = pools.cognito()
    identity_id = client.get_id(IdentityPoolId=POOL, Logins={"accounts.google.com": token})[
        "IdentityId"
    ]
    code, _, message = refusal(client.get_credentials_for_identity, IdentityId=identity_id)
    assert code == "NotAuthorizedException" and "Logins don't match" in message
    # Someone else's valid Google token does not open this identity either.
    other = google(issuer, sub="1006", email="gus@example.com", aud=CLIENT)
    code, _, message = refusal(
        client.get_credentials_for_identity,
        IdentityId=identity_id,
        Logins={"accounts.google.com": other},
    )
    assert code == "NotAuthorizedException" and "Logins don't match" in message


def test_a_guest_that_signs_in_keeps_its_identity(pools: Pools) -> None:
    client = pools.cognito()
    guest = client.get_id(IdentityPoolId=POOL)["IdentityId"]
    token = google(pools.idp.issuer("google"), sub="1007", email="hal@example.com", aud=CLIENT)
    out = client.get_credentials_for_identity(
        IdentityId=guest, Logins={"accounts.google.com": token}
    )
    assert out["IdentityId"] == guest
    again = client.get_id(IdentityPoolId=POOL, Logins={"accounts.google.com": token})
    assert again["IdentityId"] == guest  # the login is linked to the former guest


def test_linked_logins_merge_into_the_older_identity(pools: Pools) -> None:
    client = pools.cognito()
    google_token = google(
        pools.idp.issuer("google"), sub="1008", email="ivy@example.com", aud=CLIENT
    )
    pool_token = cognito_user_pool(pools.idp.issuer("cognito"), sub="ivy-up", aud=CLIENT)
    first = client.get_id(IdentityPoolId=POOL, Logins={"accounts.google.com": google_token})
    second = client.get_id(IdentityPoolId=POOL, Logins={pools.login("cognito"): pool_token})
    assert first["IdentityId"] != second["IdentityId"]
    both = {"accounts.google.com": google_token, pools.login("cognito"): pool_token}
    merged = client.get_id(IdentityPoolId=POOL, Logins=both)["IdentityId"]
    assert merged == first["IdentityId"]
    alone = client.get_id(IdentityPoolId=POOL, Logins={pools.login("cognito"): pool_token})
    assert alone["IdentityId"] == first["IdentityId"]
    # The disabled identity answers with its owner's ID.
    out = client.get_credentials_for_identity(
        IdentityId=second["IdentityId"], Logins={pools.login("cognito"): pool_token}
    )
    assert out["IdentityId"] == first["IdentityId"]


def test_identity_ids_survive_a_restart_and_are_the_same_on_another_node(pools: Pools) -> None:
    token = google(pools.idp.issuer("google"), sub="1009", email="joe@example.com", aud=CLIENT)
    logins = {"accounts.google.com": token}
    before = pools.cognito().get_id(IdentityPoolId=POOL, Logins=logins)["IdentityId"]
    # A second broker process on the same config and SQLite state: another node, or the
    # same one after a restart.
    url, running = start_server(create_app(load_broker_config(pools.config_path)))
    try:
        other = Pools(url, pools.idp, pools.alice, pools.bob, pools.config_path)
        assert other.cognito().get_id(IdentityPoolId=POOL, Logins=logins)["IdentityId"] == before
    finally:
        stop_server(running)


# --------------------------------------------------------------------------- keycloak


def test_keycloak_roles_and_comma_separated_groups_map_through_config_alone(
    pools: Pools,
) -> None:
    key = pools.login("keycloak")
    deployer = keycloak(
        pools,
        "kc-1",
        realm_access={"roles": ["offline_access"]},
        resource_access={"app": {"roles": ["deployer"]}},
        groups="eng,ops",
    )
    assert pools.role_of(POOL_KC, {key: deployer}).split("/")[1] == "KcDeployer"
    ops = keycloak(pools, "kc-2", realm_access={"roles": ["user"]}, groups="eng, ops")
    assert pools.role_of(POOL_KC, {key: ops}).split("/")[1] == "KcOps"
    # Nothing matches and AmbiguousRoleResolution is Deny.
    nobody = keycloak(pools, "kc-3", realm_access={"roles": ["user"]}, groups="eng")
    code, _, message = refusal(pools.credentials, pool=POOL_KC, logins={key: nobody})
    assert (code, message) == (
        "NotAuthorizedException",
        "The ambiguous role mapping rules denied this request.",
    )


def test_a_regex_rule_maps_okta_style_groups_with_captures(pools: Pools) -> None:
    key = pools.login("keycloak")
    token = keycloak(pools, "kc-4", okta_groups=["everyone", f"aws#{DEV}#KcAdmin"])
    assert pools.role_of(POOL_KC, {key: token}).split("/")[1] == "KcAdmin"
    # A group naming another account's role, or a role that is not configured, maps nothing.
    stranger = keycloak(pools, "kc-5", okta_groups=["aws#999999999999#KcAdmin", f"aws#{DEV}#Nope"])
    assert refusal(pools.credentials, pool=POOL_KC, logins={key: stranger})[0] == (
        "NotAuthorizedException"
    )


def test_a_pathological_regex_input_is_answered_at_once(pools: Pools) -> None:
    key = pools.login("keycloak")
    # (a+)+b against a run of a's without the b: Python's re would take 2^n steps.
    hostile = "a" * 2000 + "!"
    token = keycloak(pools, "kc-6", okta_groups=[hostile] * 5)
    started = time.perf_counter()
    assert refusal(pools.credentials, pool=POOL_KC, logins={key: token})[0] == (
        "NotAuthorizedException"
    )
    assert time.perf_counter() - started < 2.0  # two HTTP round trips and a JWT check


# --------------------------------------------------------------------------- templates


def test_session_tags_and_source_identity_from_templates_reach_the_session(
    pools: Pools,
) -> None:
    token = keycloak(pools, "kc-7", preferred_username="kim", email="kim@example.com", groups="eng")
    out = pools.credentials(POOL_TAGS, {pools.login("keycloak"): token})
    session = pools.sts(out["Credentials"])
    assert session.get_caller_identity()["Arn"] == f"arn:aws:sts::{DEV}:assumed-role/Tagged/kim"
    # aws:PrincipalTag/team=eng admits the chained AssumeRole; the source identity is carried.
    chained = session.assume_role(RoleArn=f"{ROLE}/Engineers", RoleSessionName="next")
    assert chained["SourceIdentity"] == "kim@example.com"
    other = keycloak(pools, "kc-8", preferred_username="lea", email="lea@example.com", groups="ops")
    lea = pools.sts(pools.credentials(POOL_TAGS, {pools.login("keycloak"): other})["Credentials"])
    with pytest.raises(ClientError) as info:
        lea.assume_role(RoleArn=f"{ROLE}/Engineers", RoleSessionName="next")
    assert info.value.response["Error"]["Code"] == "AccessDenied"


def test_a_template_that_yields_nothing_is_a_clear_refusal(pools: Pools) -> None:
    token = keycloak(pools, "kc-9", preferred_username="max", groups="eng")  # no email
    code, _, message = refusal(
        pools.credentials, pool=POOL_TAGS, logins={pools.login("keycloak"): token}
    )
    assert code == "NotAuthorizedException"
    assert "template needs the claim /email" in message


# --------------------------------------------------------------------------- hostile


def test_a_token_of_another_provider_is_refused_whatever_key_it_is_sent_under(
    pools: Pools,
) -> None:
    client = pools.cognito()
    other = pools.idp.issuer("other").id_token("mallory", aud=CLIENT)
    code, _, message = refusal(
        client.get_id, IdentityPoolId=POOL, Logins={"accounts.google.com": other}
    )
    assert code == "NotAuthorizedException" and "not by the provider" in message
    # The provider of another pool (POOL_KC's Keycloak) is not a login of POOL.
    kc = keycloak(pools, "kc-10")
    code, _, message = refusal(
        client.get_id, IdentityPoolId=POOL, Logins={pools.login("keycloak"): kc}
    )
    assert code == "NotAuthorizedException" and "is not a provider of identity pool" in message


def test_a_pool_token_of_another_pool_or_identity_is_refused(pools: Pools) -> None:
    client = pools.cognito()
    guest = client.get_id(IdentityPoolId=POOL)["IdentityId"]
    token = client.get_open_id_token(IdentityId=guest)["Token"]
    other_guest = client.get_id(IdentityPoolId=POOL)["IdentityId"]
    code, _, message = refusal(
        client.get_credentials_for_identity,
        IdentityId=other_guest,
        Logins={"cognito-identity.amazonaws.com": token},
    )
    assert code == "NotAuthorizedException" and "for another identity" in message


def test_a_single_use_provider_token_mints_once(pools: Pools) -> None:
    token = pools.idp.issuer("once").id_token("once-user", aud=CLIENT)
    logins = {pools.login("once"): token}
    client = pools.cognito()
    identity_id = client.get_id(IdentityPoolId=POOL, Logins=logins)["IdentityId"]
    client.get_id(IdentityPoolId=POOL, Logins=logins)  # GetId mints nothing: not a use
    client.get_credentials_for_identity(IdentityId=identity_id, Logins=logins)
    code, _, message = refusal(
        client.get_credentials_for_identity, IdentityId=identity_id, Logins=logins
    )
    assert code == "NotAuthorizedException" and "already used" in message


def test_a_forged_or_expired_login_token_is_refused_as_on_the_sts_path(pools: Pools) -> None:
    client = pools.cognito()
    token = google(pools.idp.issuer("google"), sub="1010", aud=CLIENT)
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    code, _, message = refusal(
        client.get_id, IdentityPoolId=POOL, Logins={"accounts.google.com": forged}
    )
    assert code == "NotAuthorizedException" and "signature is not valid" in message
    now = int(time.time())
    expired = google(
        pools.idp.issuer("google"), sub="1010", aud=CLIENT, iat=now - 4200, exp=now - 600
    )
    code, _, message = refusal(
        client.get_id, IdentityPoolId=POOL, Logins={"accounts.google.com": expired}
    )
    assert code == "NotAuthorizedException" and "expired" in message.lower()


# --------------------------------------------------------------------------- signed ops


def test_developer_identities_are_signed_and_feed_the_enhanced_flow(pools: Pools) -> None:
    signed = pools.cognito(signed_as=pools.alice)
    out = signed.get_open_id_token_for_developer_identity(
        IdentityPoolId=POOL, Logins={"login.myapp": "user-42"}, TokenDuration=600
    )
    again = signed.get_open_id_token_for_developer_identity(
        IdentityPoolId=POOL, Logins={"login.myapp": "user-42"}
    )
    assert again["IdentityId"] == out["IdentityId"]
    creds = pools.cognito().get_credentials_for_identity(
        IdentityId=out["IdentityId"], Logins={"cognito-identity.amazonaws.com": out["Token"]}
    )["Credentials"]
    assert (
        pools.sts(creds)
        .get_caller_identity()["Arn"]
        .endswith("/AppUser/CognitoIdentityCredentials")
    )
    # Unsigned, signed by someone without the permission, or the name used unsigned elsewhere.
    code, _, _ = refusal(
        pools.cognito().get_open_id_token_for_developer_identity,
        IdentityPoolId=POOL,
        Logins={"login.myapp": "user-42"},
    )
    assert code == "MissingAuthenticationTokenException"
    code, _, message = refusal(
        pools.cognito(signed_as=pools.bob).get_open_id_token_for_developer_identity,
        IdentityPoolId=POOL,
        Logins={"login.myapp": "user-42"},
    )
    assert code == "AccessDeniedException" and "GetOpenIdTokenForDeveloperIdentity" in message
    code, _, _ = refusal(pools.cognito().get_id, IdentityPoolId=POOL, Logins={"login.myapp": "x"})
    assert code == "NotAuthorizedException"


def test_describe_and_roles_answer_the_config(pools: Pools) -> None:
    signed = pools.cognito(signed_as=pools.alice)
    described = signed.describe_identity_pool(IdentityPoolId=POOL)
    assert described["IdentityPoolName"] == "MyApp"
    assert described["AllowUnauthenticatedIdentities"] is True
    assert described["DeveloperProviderName"] == "login.myapp"
    assert described["SupportedLoginProviders"] == {"accounts.google.com": CLIENT}
    assert described["CognitoIdentityProviders"][0]["ProviderName"] == pools.login("cognito")
    roles = signed.get_identity_pool_roles(IdentityPoolId=POOL)
    assert roles["Roles"] == {
        "authenticated": f"{ROLE}/AppUser",
        "unauthenticated": f"{ROLE}/AppGuest",
    }
    rules = roles["RoleMappings"]["accounts.google.com"]["RulesConfiguration"]["Rules"]
    assert rules[0]["RoleARN"] == f"{ROLE}/AppAdmin"
    code, _, _ = refusal(
        pools.cognito(signed_as=pools.bob).describe_identity_pool, IdentityPoolId=POOL
    )
    assert code == "AccessDeniedException"


def test_bad_input_gets_aws_codes(pools: Pools) -> None:
    client = pools.cognito()
    code, status, message = refusal(client.get_id, IdentityPoolId="not-a-pool")
    assert (code, status) == ("ValidationException", 400)
    assert "at 'identityPoolId' failed to satisfy constraint" in message
    missing = "us-east-1:00000000-0000-4000-8000-000000000000"
    assert refusal(client.get_id, IdentityPoolId=missing)[:2] == ("ResourceNotFoundException", 400)
    code, _, _ = refusal(client.get_credentials_for_identity, IdentityId=missing)
    assert code == "ResourceNotFoundException"


def test_the_separate_endpoint_and_raw_protocol_errors(pools: Pools) -> None:
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AWSCognitoIdentityService.GetId",
    }
    ok = httpx.post(
        f"{pools.url}/cognito-identity", headers=headers, content=f'{{"IdentityPoolId":"{POOL}"}}'
    )
    assert ok.status_code == 200 and ok.json()["IdentityId"].startswith("us-east-1:")
    assert ok.headers["x-amzn-requestid"]
    for body, code in (
        ('{"IdentityPoolId": 1}', "SerializationException"),
        ("{nope", "SerializationException"),
        (f'{{"IdentityPoolId":"{POOL}","IdentityPoolId":"{POOL}"}}', "SerializationException"),
    ):
        bad = httpx.post(pools.url, headers=headers, content=body)
        assert (bad.status_code, bad.json()["__type"]) == (400, code)
    unknown = httpx.post(
        pools.url,
        headers={**headers, "X-Amz-Target": "AWSCognitoIdentityService.DeleteIdentities"},
        content="{}",
    )
    assert unknown.json()["__type"] == "UnknownOperationException"


# --------------------------------------------------------------------------- explain


def _explain(pools: Pools, tmp_path: Path, token: str, *args: str) -> tuple[int, str]:
    token_file = tmp_path / "token.jwt"
    token_file.write_text(token)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "broker",
            "explain",
            "-c",
            str(pools.config_path),
            "--token",
            str(token_file),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_explain_prints_the_matched_rule_and_the_refused_roles(
    pools: Pools, tmp_path: Path
) -> None:
    token = google(pools.idp.issuer("google"), sub="1020", email="admin@example.com", aud=CLIENT)
    code, out = _explain(pools, tmp_path, token, "--pool", POOL)
    assert code == 0, out
    assert "rule 1: email Equals 'admin@example.com' -> " in out
    assert "AppAdmin: matches (claim 'email' Equals the rule's value)" in out
    lines = out.splitlines()
    granted = lines.index(f"  GRANTED {ROLE}/AppAdmin")
    assert "chosen: rule 1" in lines[granted + 1]
    assert "trust policy statement 0 admits it" in lines[granted + 1]
    editor = lines.index(f"  refused {ROLE}/AppEditor")
    assert "rule 2 matches too, but rule 1 comes first" in lines[editor + 1]
    user = lines.index(f"  refused {ROLE}/AppUser")
    assert "the pool's authenticated role: used only when" in lines[user + 1]


def test_explain_says_why_trust_policies_refuse_on_the_sts_path(
    pools: Pools, tmp_path: Path
) -> None:
    token = google(pools.idp.issuer("google"), sub="1021", email="x@example.com", aud=CLIENT)
    code, out = _explain(pools, tmp_path, token, "--role", f"{ROLE}/AppUser")
    assert code == 1, out
    assert f"  refused {ROLE}/AppUser" in out
    assert "no trust policy statement allows sts:AssumeRoleWithWebIdentity" in out
    assert "its Principal names no Federated principal this identity is" in out
    assert f"Identity pools that take this login (see --pool): {POOL}" in out


def test_explain_verifies_unless_told_not_to(pools: Pools, tmp_path: Path) -> None:
    token = google(pools.idp.issuer("google"), sub="1022", email="admin@example.com", aud=CLIENT)
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    code, out = _explain(pools, tmp_path, forged, "--pool", POOL)
    assert code == 1 and "signature is not valid" in out, out
    code, out = _explain(pools, tmp_path, forged, "--pool", POOL, "--no-verify")
    assert code == 0, out
    assert out.startswith("NOT VERIFIED (--no-verify)")
    assert f"  GRANTED {ROLE}/AppAdmin" in out


def test_explain_of_a_denied_mapping_exits_1(pools: Pools, tmp_path: Path) -> None:
    token = keycloak(pools, "kc-20", realm_access={"roles": []}, groups="eng")
    code, out = _explain(pools, tmp_path, token, "--pool", POOL_KC)
    assert code == 1, out
    assert "No role: NotAuthorizedException: The ambiguous role mapping rules denied" in out
    assert "rule 2: groups Equals 'ops'" in out and "no match" in out
