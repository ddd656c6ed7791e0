"""AWS's Tag rules on every path that makes session tags (issue 15, finding 2).

The rules live in one place (:func:`broker.tags.validate_tags`); each path answers with
its own code: ``IDPRejectedClaim`` (403) when an identity provider's token or assertion
carries the tags, ``ValidationError`` (400) when a caller passes them. The OIDC cases are
real, validly signed tokens from the fixture provider over HTTP, sent by boto3: before the
shared rules, every one of the first four got credentials.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import pytest
from botocore.exceptions import ClientError

from broker.errors import StsError
from broker.identity.saml.attributes import PRINCIPAL_TAG, TRANSITIVE_TAG_KEYS, session_tags
from broker.java_regex import translate_java_regex
from broker.tags import (
    MAX_TAGS,
    TAG_KEY_PATTERN,
    TAG_VALUE_PATTERN,
    TagError,
    _tag_text,
    validate_tags,
)
from idp_fixtures import aws_tags
from tests.integration.conftest import DEV, Broker, served_broker
from tests.integration.test_web_identity import WebSetup, web

__all__ = ["web"]  # the live web identity broker fixture, shared with its own module

BAD_TAGS: list[tuple[str, dict[str, str], list[str]]] = [
    ("value-257", {"team": "v" * 257}, []),
    ("key-129", {"k" * 129: "v"}, []),
    ("key-empty", {"": "v"}, []),
    ("key-newline", {"team\nadmin": "v"}, []),
    ("value-newline", {"team": "a\nb"}, []),
    ("value-tab", {"team": "a\tb"}, []),
    ("key-aws-prefix", {"AWS:team": "v"}, []),
    ("keys-differ-in-case", {"team": "a", "Team": "b"}, []),
    ("51-tags", {f"k{i}": "v" for i in range(MAX_TAGS + 1)}, []),
    ("transitive-not-a-tag", {"team": "a"}, ["cost"]),
]
IDS = [case[0] for case in BAD_TAGS]


# --------------------------------------------------------------------------- the rules


def test_the_patterns_are_the_models_and_ascii_is_checked_the_same_way() -> None:
    import gzip  # noqa: PLC0415
    import json  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    import botocore  # noqa: PLC0415

    path = Path(botocore.__file__).parent / "data/sts/2011-06-15/service-2.json.gz"
    shapes = json.loads(gzip.decompress(path.read_bytes()))["shapes"]
    assert shapes["tagKeyType"]["pattern"] == TAG_KEY_PATTERN
    assert shapes["tagValueType"]["pattern"] == TAG_VALUE_PATTERN
    assert (shapes["tagKeyType"]["min"], shapes["tagKeyType"]["max"]) == (1, 128)
    assert shapes["tagValueType"]["max"] == 256
    assert shapes["tagListType"]["max"] == MAX_TAGS
    full = re.compile(translate_java_regex(TAG_KEY_PATTERN), re.ASCII)
    for code in range(128):
        char = chr(code)
        assert _tag_text(char) == (full.fullmatch(char) is not None), repr(char)
    for char in ("é", "Ж", "日", "٣", "\u3000", "\u2028", "\u200b", "\U0001f600"):
        in_model = unicodedata.category(char)[0] in "LZN"
        assert _tag_text(f"a{char}") == in_model, repr(char)


@pytest.mark.parametrize(("name", "tags", "transitive"), BAD_TAGS, ids=IDS)
def test_validate_tags_refuses(name: str, tags: dict[str, str], transitive: list[str]) -> None:
    with pytest.raises(TagError):
        validate_tags(tags, transitive)


def test_validate_tags_accepts_what_aws_accepts() -> None:
    validate_tags({})
    validate_tags({"k" * 128: "v" * 256, "Équipe": "données", "a b": "", "x_.:/=+-@": "1"})
    validate_tags({f"k{i}": "v" for i in range(MAX_TAGS)}, ["K1", "k2"])


# --------------------------------------------------------------------------- OIDC tokens


@pytest.mark.parametrize(("name", "tags", "transitive"), BAD_TAGS, ids=IDS)
def test_oidc_tag_claims_are_rejected_claims(
    web: WebSetup, name: str, tags: dict[str, str], transitive: list[str]
) -> None:
    token = web.issuer("corp").id_token("alice", **aws_tags(tags, transitive))
    with pytest.raises(ClientError) as caught:
        web.assume("WebCorp", token)
    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
        "IDPRejectedClaim",
        403,
    )
    assert "tag" in error["Error"]["Message"].lower()


def test_oidc_tags_within_the_rules_still_make_a_session(web: WebSetup) -> None:
    tags = {"k" * 128: "v" * 256, "Équipe": "données", "empty": ""}
    token = web.issuer("corp").id_token("alice", **aws_tags(tags, ["équipe"]))
    assert web.assume("WebCorp", token)["Credentials"]["AccessKeyId"].startswith("ASIA")


# --------------------------------------------------------------------------- SAML attributes


def _saml_tags(tags: dict[str, str], transitive: list[str]) -> dict[str, tuple[str, ...]]:
    aws: dict[str, tuple[str, ...]] = {PRINCIPAL_TAG + k: (v,) for k, v in tags.items()}
    if transitive:
        aws[TRANSITIVE_TAG_KEYS] = tuple(transitive)
    return aws


@pytest.mark.parametrize(("name", "tags", "transitive"), BAD_TAGS, ids=IDS)
def test_saml_principal_tags_are_rejected_claims(
    name: str, tags: dict[str, str], transitive: list[str]
) -> None:
    with pytest.raises(StsError) as caught:
        session_tags(_saml_tags(tags, transitive))
    assert (caught.value.code, caught.value.status) == ("IDPRejectedClaim", 403)


# --------------------------------------------------------------------------- the API


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with served_broker(tmp_path_factory.mktemp("tags")) as served:
        yield served


@pytest.mark.parametrize(("name", "tags", "transitive"), BAD_TAGS, ids=IDS)
def test_assume_role_tags_are_validation_errors(
    broker: Broker, name: str, tags: dict[str, str], transitive: list[str]
) -> None:
    with pytest.raises(ClientError) as caught:
        broker.sts("alice").assume_role(
            RoleArn=f"arn:aws:iam::{DEV}:role/Tagged",
            RoleSessionName="tags",
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            TransitiveTagKeys=transitive,
        )
    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
        "ValidationError",
        400,
    )
