"""Untrusted JSON, bounded on every path (issue 15, finding 1).

Each test builds the hostile document a probe sent (nesting past any recursion limit,
nesting past the reader's depth bound, repeated member names) and checks the refusal of
the path it arrives on: its AWS code, its HTTP status, its envelope. Before the shared
reader (:mod:`broker.jsonread`) the deep ones answered 500 (``RecursionError`` escaping a
parser that caught only ``ValueError``), or crashed the config loader.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from broker.config import ConfigError, load_config
from broker.jsonread import JsonRefusedError, read_json
from tests.integration.conftest import DEV, Broker, served_broker
from tests.unit.test_jwks import provider, settings
from tests.unit.test_oidc import (
    CLIENT,
    Issuer,
    assert_refused,
    claims_for,
    make_config,
    refusal,
    sign,
)

DEV_ROLE = f"arn:aws:iam::{DEV}:role/Dev"
DEEP = "[" * 2000
"""Nesting far past CPython's recursion limit: what json.loads turned into RecursionError."""


def _nested_statement(levels: int) -> str:
    return '{"Version":"2012-10-17","Statement":' + "[" * levels + "]" * levels + "}"


def _code(exc: ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with served_broker(tmp_path_factory.mktemp("json-bounds")) as served:
        yield served


# --------------------------------------------------------------------------- the reader


def test_reader_bounds_depth_size_names_and_constants() -> None:
    assert read_json('{"a": [1, {"b": null}]}', max_size=100) == {"a": [1, {"b": None}]}
    assert read_json(b"[[[]]]", max_size=10, max_depth=3) == [[[]]]
    for text, kind in (
        ("[[[[]]]]", "depth"),
        ("[" * 99, "depth"),
        ('{"a": 1, "a": 2}', "duplicate"),
        ('{"x": NaN}', "constant"),
        ("[1,]", "syntax"),
        ("x" * 101, "size"),
    ):
        with pytest.raises(JsonRefusedError) as caught:
            read_json(text, max_size=100, max_depth=3)
        assert caught.value.kind == kind, (text[:20], caught.value)
    with pytest.raises(JsonRefusedError) as caught:
        read_json(b'{"a": "\xff"}', max_size=100)
    assert caught.value.kind == "encoding"
    # Brackets inside strings are text, not nesting; an unterminated string cannot make
    # the depth scan quadratic (it is linear in the input either way).
    assert read_json('["[[[[[[", "]]]"]', max_size=100, max_depth=1) == ["[[[[[[", "]]]"]
    started = time.perf_counter()
    with pytest.raises(JsonRefusedError) as caught:
        read_json('"' + '\\"[' * 100_000, max_size=400_000, max_depth=1)
    assert caught.value.kind == "syntax"
    assert time.perf_counter() - started < 1.0
    # Repeated names are allowed only where a format allows them.
    assert read_json('{"a": 1, "a": 2}', max_size=100, unique_names=False) == {"a": 2}


# --------------------------------------------------------------------------- STS API


@pytest.mark.parametrize(
    "policy",
    [DEEP, _nested_statement(1000), _nested_statement(40)],
    ids=["brackets-2000", "statement-1000-deep", "statement-40-deep"],
)
def test_nested_session_policy_is_malformed_policy_document(broker: Broker, policy: str) -> None:
    with pytest.raises(ClientError) as caught:
        broker.sts("alice").assume_role(RoleArn=DEV_ROLE, RoleSessionName="deep", Policy=policy)
    assert _code(caught.value) == ("MalformedPolicyDocument", 400)
    with pytest.raises(ClientError) as caught:
        broker.sts("dave").get_federation_token(Name="deep", Policy=policy)
    assert _code(caught.value) == ("MalformedPolicyDocument", 400)


def test_session_policy_with_a_repeated_name_is_malformed(broker: Broker) -> None:
    """Two parsers could read ``"Effect": "Allow", "Effect": "Deny"`` two ways: refused."""
    policy = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Effect":"Allow",'
        '"Action":"*","Resource":"*"}]}'
    )
    with pytest.raises(ClientError) as caught:
        broker.sts("alice").assume_role(RoleArn=DEV_ROLE, RoleSessionName="dup", Policy=policy)
    assert _code(caught.value) == ("MalformedPolicyDocument", 400)
    assert "Effect" in caught.value.response["Error"]["Message"]


# --------------------------------------------------------------------------- federation


@pytest.mark.parametrize(
    "session",
    ["[" * 5000, '{"a":' * 40 + "1" + "}" * 40, '{"sessionId":"a","sessionId":"b"}'],
    ids=["brackets-5000", "objects-40-deep", "repeated-name"],
)
def test_federation_session_json_is_bounded(broker: Broker, session: str) -> None:
    """Unauthenticated: anyone can send this, so it must never reach a 500."""
    response = httpx.get(
        f"{broker.url}/federation", params={"Action": "getSigninToken", "Session": session}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"Error": "Missing or invalid Session parameter"}


# --------------------------------------------------------------------------- JWT, JWKS, discovery


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    running = Issuer().start()
    yield running
    running.stop()


def _with_deep_claim(claims: dict[str, Any], levels: int) -> str:
    """The claims as JSON text plus ``"x": [[[...1...]]]`` (built as text: ``json.dumps``
    itself recurses)."""
    return json.dumps(claims)[:-1] + ', "x": ' + "[" * levels + "1" + "]" * levels + "}"


def test_a_validly_signed_token_with_deep_claims_is_refused(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config(provider(issuer), **settings())
    for levels in (40, 3000):
        token = sign(key, _with_deep_claim(claims_for(issuer.url), levels))
        assert_refused(refusal(config, token), "InvalidIdentityToken", 400, "nested")


def test_deep_or_ambiguous_key_documents_are_an_idp_communication_error(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    good = json.dumps({"keys": issuer.jwks})
    config = make_config(provider(issuer), **settings())
    token = sign(key, claims_for(issuer.url))
    for raw, fragment in (
        ("[" * 5000, "nested"),
        ('{"keys": ' + "[" * 40 + "]" * 40 + "}", "nested"),
        ('{"keys": [], ' + good[1:], "repeats"),
    ):
        issuer.jwks_raw, issuer.jwks_status = raw.encode(), 200
        assert_refused(refusal(config, token), "IDPCommunicationError", 400, fragment)


def test_deep_discovery_document_is_an_idp_communication_error(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    issuer.discovery_extra = {"deep": json.loads("[" * 900 + "]" * 900)}
    config = make_config(provider(issuer), **settings())
    token = sign(key, claims_for(issuer.url))
    assert_refused(refusal(config, token), "IDPCommunicationError", 400, "nested")


# --------------------------------------------------------------------------- config


def _config_problem(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    return str(caught.value).replace(str(tmp_path) + "/", "")


def test_config_embedded_policy_json_is_bounded(tmp_path: Path) -> None:
    deep = "[" * 5000 + "]" * 5000
    found = _config_problem(
        tmp_path,
        f"""\
        public_url: http://127.0.0.1:8080
        accounts:
          "111111111111":
            roles:
              Dev:
                trust_policy: '{deep}'
        """,
    )
    assert found.startswith(
        "c.yaml:6: accounts.111111111111.roles.Dev.trust_policy: is a string but not JSON"
    ), found
    assert "nested more than" in found


def test_config_yaml_nesting_is_bounded_with_its_line(tmp_path: Path) -> None:
    deep = "[" * 5000 + "]" * 5000
    found = _config_problem(tmp_path, f"public_url: http://127.0.0.1:8080\naccounts: {deep}\n")
    assert found.startswith("c.yaml:2: "), found
    assert "nested more than" in found


# --------------------------------------------------------------------------- authorization API


def test_authz_body_with_a_repeated_name_is_a_validation_error(broker: Broker) -> None:
    body = b'{"action": "s3:GetObject", "action": "iam:*", "resource": "*"}'
    response = httpx.post(
        f"{broker.url}/authz/check", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "ValidationError"
    assert CLIENT not in response.text
