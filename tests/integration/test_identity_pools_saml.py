"""SAML logins in identity pools, against a live broker and a live fixture IdP.

The base64 response goes in ``Logins`` under the SAML provider's ARN, as AWS takes it
(Cognito developer guide, "SAML identity providers (identity pools)"); it is verified by the
broker's SAML verifier, its ``Role`` attribute says which roles it may have (``CustomRoleArn``
choosing among several), or a role mapping's rules read its attributes, and the chosen
role's trust policy must admit the SAML provider.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import yaml
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from broker.app import create_app, load_broker_config
from idp_fixtures import SamlUser
from idp_fixtures.saml import SamlServer, serve_saml_in_thread
from idp_fixtures.saml.presets import okta
from tests.integration.conftest import DEV, bind_loopback, start_server, stop_server

PROVIDER = f"arn:aws:iam::{DEV}:saml-provider/Corp"
READER = f"arn:aws:iam::{DEV}:role/SamlReader"
ADMIN = f"arn:aws:iam::{DEV}:role/SamlAdmin"
OPS = f"arn:aws:iam::{DEV}:role/SamlOps"
POOL = "us-east-1:33333333-4444-4555-8666-777777777777"
POOL_RULES = "us-east-1:44444444-5555-4666-8777-888888888888"


@dataclass
class Setup:
    url: str
    idp: SamlServer

    def response(self, **options: Any) -> str:
        options.setdefault("roles", ((READER, PROVIDER),))
        options.setdefault("session_name", "alice@example.com")
        return okta(
            self.idp.idp,
            sp_entity_id=f"{self.url}/saml/metadata",
            acs_url=f"{self.url}/saml/acs",
            **options,
        )

    def cognito(self) -> Any:
        return boto3.client(
            "cognito-identity",
            endpoint_url=self.url,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, signature_version=UNSIGNED),
        )

    def role_of(self, pool: str, response: str, **kwargs: Any) -> str:
        client = self.cognito()
        logins = {PROVIDER: response}
        identity = client.get_id(IdentityPoolId=pool, Logins=logins)["IdentityId"]
        creds = client.get_credentials_for_identity(IdentityId=identity, Logins=logins, **kwargs)[
            "Credentials"
        ]
        sts = boto3.client(
            "sts",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretKey"],
            aws_session_token=creds["SessionToken"],
        )
        arn: str = sts.get_caller_identity()["Arn"]
        return arn


def _trust(acs: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": PROVIDER},
                "Action": "sts:AssumeRoleWithSAML",
                "Condition": {"StringEquals": {"saml:aud": acs}},
            }
        ],
    }


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    sock = bind_loopback()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    acs = f"{url}/saml/acs"
    user = SamlUser("alice", email="alice@example.com", roles=((READER, PROVIDER),))
    with serve_saml_in_thread(users=[user], auto_login="alice") as idp:
        config = {
            "public_url": url,
            "token_keys": [{"id": "s1", "secret": base64.b64encode(os.urandom(32)).decode()}],
            "accounts": {
                DEV: {
                    "saml_providers": {
                        "Corp": {
                            "metadata_url": idp.metadata_url,
                            "single_use": False,
                            "claims": {"split": {"/groups": ","}},
                        }
                    },
                    "roles": {
                        name: {"trust_policy": _trust(acs)}
                        for name in ("SamlReader", "SamlAdmin", "SamlOps")
                    },
                    "identity_pools": {
                        POOL: {
                            "name": "Saml app",
                            "allow_classic_flow": True,
                            "logins": [PROVIDER],
                        },
                        POOL_RULES: {
                            "name": "Saml rules",
                            "logins": [PROVIDER],
                            "role_mappings": {
                                PROVIDER: {
                                    "Type": "Rules",
                                    "AmbiguousRoleResolution": "Deny",
                                    "RulesConfiguration": {
                                        "Rules": [
                                            {
                                                "Claim": "groups",
                                                "MatchType": "Equals",
                                                "Value": "ops",
                                                "RoleARN": OPS,
                                            }
                                        ]
                                    },
                                }
                            },
                        },
                    },
                }
            },
        }
        path = tmp_path_factory.mktemp("pools-saml") / "broker.yaml"
        path.write_text(yaml.safe_dump(config))
        broker_url, running = start_server(create_app(load_broker_config(path)), sock)
        try:
            yield Setup(url=broker_url, idp=idp)
        finally:
            stop_server(running)


def _code(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def test_the_role_attribute_chooses_and_custom_role_arn_picks_among_several(
    setup: Setup,
) -> None:
    one = setup.response()
    assert setup.role_of(POOL, one).split("/")[1] == "SamlReader"
    both = setup.response(roles=((READER, PROVIDER), (ADMIN, PROVIDER)))
    assert setup.role_of(POOL, both, CustomRoleArn=ADMIN).split("/")[1] == "SamlAdmin"
    client = setup.cognito()
    identity = client.get_id(IdentityPoolId=POOL, Logins={PROVIDER: both})["IdentityId"]
    code, message = _code(
        client.get_credentials_for_identity, IdentityId=identity, Logins={PROVIDER: both}
    )
    assert code == "InvalidParameterException" and "CustomRoleArn" in message
    code, _ = _code(
        client.get_credentials_for_identity,
        IdentityId=identity,
        Logins={PROVIDER: one},
        CustomRoleArn=OPS,
    )
    assert code == "NotAuthorizedException"


def test_rules_read_saml_attributes_through_the_same_claims_model(setup: Setup) -> None:
    response = setup.response(attributes={"groups": "eng,ops"})
    assert setup.role_of(POOL_RULES, response).split("/")[1] == "SamlOps"
    other = setup.response(attributes={"groups": "eng"})
    client = setup.cognito()
    identity = client.get_id(IdentityPoolId=POOL_RULES, Logins={PROVIDER: other})["IdentityId"]
    code, message = _code(
        client.get_credentials_for_identity, IdentityId=identity, Logins={PROVIDER: other}
    )
    assert (code, message) == (
        "NotAuthorizedException",
        "The ambiguous role mapping rules denied this request.",
    )


def test_saml_logins_take_the_enhanced_flow_only(setup: Setup) -> None:
    response = setup.response()
    client = setup.cognito()
    identity = client.get_id(IdentityPoolId=POOL, Logins={PROVIDER: response})["IdentityId"]
    code, message = _code(
        client.get_open_id_token, IdentityId=identity, Logins={PROVIDER: response}
    )
    assert code == "InvalidParameterException" and "enhanced flow" in message


def test_a_tampered_response_is_refused(setup: Setup) -> None:
    response = setup.response()
    raw = base64.b64decode(response).replace(b"alice@example.com", b"mallory@example.com")
    code, message = _code(
        setup.cognito().get_id,
        IdentityPoolId=POOL,
        Logins={PROVIDER: base64.b64encode(raw).decode()},
    )
    assert code == "NotAuthorizedException" and message.startswith("Invalid login token.")
