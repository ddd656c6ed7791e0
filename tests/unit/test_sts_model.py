"""The model-driven decoder, validator and renderer, checked against botocore itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import boto3
import botocore.session
import pytest
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.parsers import QueryParser
from botocore.serialize import QuerySerializer

from broker.errors import StsError
from broker.java_regex import translate_java_regex
from broker.request import HttpRequestParts
from broker.sts.model import StsModel
from broker.sts.protocol import parse_query_request
from broker.sts.render import render_error, xml_escape

ROLE = "arn:aws:iam::123456789012:role/Dev"
SAML_PROVIDER = "arn:aws:iam::123456789012:saml-provider/Corp"
POLICY_ARNS = [
    {"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
    {"arn": "arn:aws:iam::123456789012:policy/team/Extra"},
]
TAGS = [
    {"Key": "Project", "Value": "Ünïcode välue 日本 a\u00a0b"},
    {"Key": "cost-center:id", "Value": "a+b=c/d@e"},
]
POLICY = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]} & é'
)

# Valid parameters for every STS action: lists, tags, nested structures, URL-special text.
SAMPLES: dict[str, dict[str, Any]] = {
    "AssumeRole": {
        "RoleArn": ROLE,
        "RoleSessionName": "alice@example.com",
        "PolicyArns": POLICY_ARNS,
        "Policy": POLICY,
        "DurationSeconds": 3600,
        "Tags": TAGS,
        "TransitiveTagKeys": ["Project", "cost-center:id"],
        "ExternalId": "ext:123/abc",
        "SerialNumber": "arn:aws:iam::123456789012:mfa/alice",
        "TokenCode": "123456",
        "SourceIdentity": "alice",
        "ProvidedContexts": [
            {
                "ProviderArn": "arn:aws:iam::aws:contextProvider/IdentityCenter",
                "ContextAssertion": "abcdefgh",
            }
        ],
        "MinimumSessionTokenSize": 1024,
    },
    "AssumeRoleWithSAML": {
        "RoleArn": ROLE,
        "PrincipalArn": SAML_PROVIDER,
        "SAMLAssertion": "PHNhbWxwOlJlc3BvbnNlPg==",
        "PolicyArns": POLICY_ARNS,
        "Policy": POLICY,
        "DurationSeconds": 43200,
        "MinimumSessionTokenSize": 0,
    },
    "AssumeRoleWithWebIdentity": {
        "RoleArn": ROLE,
        "RoleSessionName": "web",
        "WebIdentityToken": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
        "ProviderId": "www.amazon.com",
        "PolicyArns": POLICY_ARNS,
        "Policy": POLICY,
        "DurationSeconds": 900,
    },
    "AssumeRoot": {
        "TargetPrincipal": "123456789012",
        "TaskPolicyArn": {"arn": "arn:aws:iam::aws:policy/root-task/IAMAuditRootUserCredentials"},
        "DurationSeconds": 900,
    },
    "DecodeAuthorizationMessage": {"EncodedMessage": "AAAA+/=="},
    "GetAccessKeyInfo": {"AccessKeyId": "AKIAIOSFODNN7EXAMPLE"},
    "GetCallerIdentity": {},
    "GetDelegatedAccessToken": {"TradeInToken": "trade-in-token"},
    "GetFederationToken": {
        "Name": "bob",
        "Policy": POLICY,
        "PolicyArns": POLICY_ARNS,
        "DurationSeconds": 129600,
        "Tags": TAGS,
    },
    "GetScopedCredentials": {
        "Policy": POLICY,
        "DurationSeconds": 60,
        "MinimumSessionTokenSize": 10,
        "ScopedSessionDescription": "nightly build",
    },
    "GetSessionToken": {
        "DurationSeconds": 7200,
        "SerialNumber": "arn:aws:iam::123456789012:mfa/alice",
        "TokenCode": "654321",
    },
    "GetWebIdentityToken": {
        "Audience": ["https://api.example.com", "client-1"],
        "DurationSeconds": 300,
        "SigningAlgorithm": "RS256",
        "Scope": "openid profile",
        "SubjectMode": "AWSIdentity",
        "Tags": TAGS,
    },
}


@pytest.fixture(scope="module")
def model() -> StsModel:
    return StsModel.load()


@pytest.fixture(scope="module")
def service() -> ServiceModel:
    return botocore.session.get_session().get_service_model("sts")


def _body_params(body: dict[str, Any]) -> dict[str, str]:
    """botocore's serialized body as the str->str parameters the protocol layer hands on."""
    return {k: str(v) for k, v in body.items() if k not in ("Action", "Version")}


def _errors(model: StsModel, action: str, params: dict[str, str]) -> StsError:
    with pytest.raises(StsError) as caught:
        model.parse_input(action, params)
    return caught.value


def _message(model: StsModel, action: str, params: dict[str, str]) -> str:
    error = _errors(model, action, params)
    assert (error.code, error.status) == ("ValidationError", 400)
    return error.message


def _valid_assume_role(**extra: str) -> dict[str, str]:
    return {"RoleArn": ROLE, "RoleSessionName": "alice", **extra}


# ------------------------------------------------------------------ loading


def test_load_is_cached_and_lists_every_model_operation(service: ServiceModel) -> None:
    assert StsModel.load() is StsModel.load()
    assert StsModel.load().actions() == frozenset(service.operation_names)


def test_samples_cover_every_action(model: StsModel) -> None:
    assert set(SAMPLES) == model.actions()


# ------------------------------------------------------------------ botocore serializer -> parser


@pytest.mark.parametrize("action", sorted(SAMPLES))
def test_botocore_serialized_requests_decode_to_the_same_params(
    model: StsModel, service: ServiceModel, action: str
) -> None:
    operation = service.operation_model(action)
    request = QuerySerializer().serialize_to_request(SAMPLES[action], operation)
    # Exactly how botocore's AWSRequest turns the body dict into bytes.
    body = urlencode(list(request["body"].items()), doseq=True).encode()
    parts = HttpRequestParts(
        method="POST",
        path="/",
        query_string="",
        headers=list(request["headers"].items()),
        body=body,
    )
    query = parse_query_request(parts)
    assert query.action == action
    assert query.version == "2011-06-15"
    assert model.parse_input(query.action, query.params) == SAMPLES[action]


def test_empty_list_as_botocore_sends_it(model: StsModel, service: ServiceModel) -> None:
    params = {**SAMPLES["AssumeRole"], "Tags": [], "PolicyArns": []}
    request = QuerySerializer().serialize_to_request(params, service.operation_model("AssumeRole"))
    assert request["body"]["Tags"] == ""
    decoded = model.parse_input("AssumeRole", _body_params(request["body"]))
    assert decoded["Tags"] == [] and decoded["PolicyArns"] == []


def test_empty_list_below_its_minimum_is_reported(model: StsModel) -> None:
    assert _message(model, "AssumeRole", _valid_assume_role(ProvidedContexts="")) == (
        "1 validation error detected: Value '[]' at 'providedContexts' failed to satisfy "
        "constraint: Member must have length greater than or equal to 1"
    )


# ------------------------------------------------------------------ renderer -> botocore parser


def _sample_output(shape: Shape, name: str) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return {m: _sample_output(s, m) for m, s in shape.members.items()}
    if kind == "list":
        return [_sample_output(shape.member, f"{name}{i}") for i in (1, 2)]
    if kind == "map":
        return {"k1": _sample_output(shape.value, "v1"), "k<2>": _sample_output(shape.value, "v&2")}
    if kind == "integer":
        return 4096
    if kind == "boolean":
        return True
    if kind == "timestamp":
        return datetime(2026, 11, 28, 20, 0, tzinfo=UTC).timestamp()
    return f"{name} <&> \"'\u00e9\u65e5"


def _expected(shape: Shape, value: Any) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return {m: _expected(shape.members[m], v) for m, v in value.items()}
    if kind == "list":
        return [_expected(shape.member, v) for v in value]
    if kind == "map":
        return {k: _expected(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        return datetime.fromtimestamp(value, tz=UTC)
    return value


def _parse(xml: bytes, shape: Shape | None, status: int = 200) -> dict[str, Any]:
    parsed: dict[str, Any] = QueryParser().parse(
        {"body": xml, "headers": {}, "status_code": status}, shape
    )
    return parsed


@pytest.mark.parametrize("action", sorted(SAMPLES))
def test_rendered_results_parse_back_through_botocore(
    model: StsModel, service: ServiceModel, action: str
) -> None:
    shape = service.operation_model(action).output_shape
    result = _sample_output(shape, action)
    xml = model.render_result(action, result, "req-1")
    parsed = _parse(xml, shape)
    assert parsed.pop("ResponseMetadata")["RequestId"] == "req-1"
    assert _deep_utc(parsed) == _expected(shape, result)


def _deep_utc(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_utc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_utc(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value


def test_result_layout_matches_real_sts_byte_for_byte(model: StsModel) -> None:
    xml = model.render_result(
        "AssumeRoleWithWebIdentity",
        {
            "Credentials": {
                "AccessKeyId": "ASIAEXAMPLEEXAMPLE12",
                "SecretAccessKey": "secret",
                "SessionToken": "token",
                "Expiration": datetime(2026, 11, 28, 20, 0, tzinfo=UTC).timestamp() + 0.7,
            },
            "SubjectFromWebIdentityToken": "sub-1",
            "AssumedRoleUser": {
                "Arn": "arn:aws:sts::111111111111:assumed-role/Dev/alice",
                "AssumedRoleId": "AROAEXAMPLE:alice",
            },
            "PackedPolicySize": None,
            "Provider": "arn:aws:iam::111111111111:oidc-provider/idp.example.com",
            "Audience": "client-1",
        },
        "1b2c",
    )
    assert xml == (
        b'<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n'
        b"  <AssumeRoleWithWebIdentityResult>\n"
        b"    <Credentials>\n"
        b"      <AccessKeyId>ASIAEXAMPLEEXAMPLE12</AccessKeyId>\n"
        b"      <SecretAccessKey>secret</SecretAccessKey>\n"
        b"      <SessionToken>token</SessionToken>\n"
        b"      <Expiration>2026-11-28T20:00:00Z</Expiration>\n"
        b"    </Credentials>\n"
        b"    <SubjectFromWebIdentityToken>sub-1</SubjectFromWebIdentityToken>\n"
        b"    <AssumedRoleUser>\n"
        b"      <AssumedRoleId>AROAEXAMPLE:alice</AssumedRoleId>\n"
        b"      <Arn>arn:aws:sts::111111111111:assumed-role/Dev/alice</Arn>\n"
        b"    </AssumedRoleUser>\n"
        b"    <Provider>arn:aws:iam::111111111111:oidc-provider/idp.example.com</Provider>\n"
        b"    <Audience>client-1</Audience>\n"
        b"  </AssumeRoleWithWebIdentityResult>\n"
        b"  <ResponseMetadata>\n"
        b"    <RequestId>1b2c</RequestId>\n"
        b"  </ResponseMetadata>\n"
        b"</AssumeRoleWithWebIdentityResponse>\n"
    )


def test_text_that_xml_cannot_carry_stays_well_formed(
    model: StsModel, service: ServiceModel
) -> None:
    shape = service.operation_model("GetCallerIdentity").output_shape
    xml = model.render_result(
        "GetCallerIdentity",
        {"UserId": "a\r\nb\tc", "Account": "x\x00y\x1fz", "Arn": "]]>&amp;"},
        "r",
    )
    parsed = _parse(xml, shape)
    assert parsed["UserId"] == "a\r\nb\tc"
    assert parsed["Account"] == "x\ufffdy\ufffdz"
    assert parsed["Arn"] == "]]>&amp;"


def test_xml_escape_leaves_plain_text_untouched() -> None:
    text = "arn:aws:iam::123456789012:role/Dev"
    assert xml_escape(text) is text
    assert xml_escape("<a & b>") == "&lt;a &amp; b&gt;"


def test_render_refuses_members_the_model_does_not_have(model: StsModel) -> None:
    with pytest.raises(ValueError, match="Acount"):
        model.render_result("GetCallerIdentity", {"Acount": "1"}, "r")


def test_render_refuses_wrong_types(model: StsModel) -> None:
    with pytest.raises(
        TypeError, match=r"GetSessionToken\.Credentials\.Expiration must be a timestamp"
    ):
        model.render_result("GetSessionToken", {"Credentials": {"Expiration": "soon"}}, "r")
    with pytest.raises(TypeError, match="must be a integer"):
        model.render_result("AssumeRole", {"PackedPolicySize": True}, "r")


def test_render_unknown_action_is_a_bug() -> None:
    with pytest.raises(ValueError, match="unknown action"):
        StsModel.load().render_result("AssumeRol", {}, "r")


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (StsError("InvalidIdentityToken", "Bad <token> & more", 400), "Sender"),
        (StsError("InternalFailure", "oops", 500, sender=False), "Receiver"),
    ],
)
def test_errors_parse_back_through_botocore(error: StsError, kind: str) -> None:
    parsed = _parse(render_error(error, "rid-9"), None, error.status)
    assert parsed["Error"] == {"Type": kind, "Code": error.code, "Message": error.message}
    assert parsed["ResponseMetadata"]["RequestId"] == "rid-9"


def test_botocore_maps_modelled_error_codes_to_client_exceptions() -> None:
    client = boto3.client(
        "sts", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    for code, exc in [
        ("ExpiredTokenException", client.exceptions.ExpiredTokenException),
        ("InvalidIdentityToken", client.exceptions.InvalidIdentityTokenException),
        ("IDPCommunicationError", client.exceptions.IDPCommunicationErrorException),
    ]:
        parsed = _parse(render_error(StsError(code, "m", 400), "r"), None, 400)
        assert client.exceptions.from_code(parsed["Error"]["Code"]) is exc


def test_error_layout_matches_real_sts() -> None:
    assert render_error(StsError("AccessDenied", "no", 403), "id") == (
        b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n'
        b"  <Error>\n    <Type>Sender</Type>\n    <Code>AccessDenied</Code>\n"
        b"    <Message>no</Message>\n  </Error>\n  <RequestId>id</RequestId>\n</ErrorResponse>\n"
    )


# ------------------------------------------------------------------ actions


def test_unknown_action(model: StsModel) -> None:
    error = _errors(model, "AssumeRoles", {})
    assert (error.code, error.status) == ("InvalidAction", 400)
    assert error.message == "Could not find operation AssumeRoles for version 2011-06-15"


def test_missing_action(model: StsModel) -> None:
    error = _errors(model, "", {"RoleArn": ROLE})
    assert (error.code, error.message, error.status) == ("MissingAction", "Missing Action", 400)


def test_unknown_parameters_are_ignored(model: StsModel) -> None:
    assert model.parse_input("AssumeRole", _valid_assume_role(Bogus="1", **{"Tags.x.1": "y"})) == {
        "RoleArn": ROLE,
        "RoleSessionName": "alice",
    }


def test_action_without_input_members(model: StsModel) -> None:
    assert model.parse_input("GetCallerIdentity", {"Anything": "x"}) == {}


# ------------------------------------------------------------------ validation messages


def test_pattern_violation_message(model: StsModel) -> None:
    assert _message(model, "AssumeRole", _valid_assume_role(RoleSessionName="x y")) == (
        "1 validation error detected: Value 'x y' at 'roleSessionName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
    )


def test_several_violations_in_one_message(model: StsModel) -> None:
    assert _message(model, "AssumeRole", {"RoleSessionName": "ok", "DurationSeconds": "10"}) == (
        "2 validation errors detected: Value null at 'roleArn' failed to satisfy constraint: "
        "Member must not be null; Value '10' at 'durationSeconds' failed to satisfy constraint: "
        "Member must have value greater than or equal to 900"
    )


def test_length_bounds(model: StsModel) -> None:
    assert _message(model, "AssumeRole", _valid_assume_role(RoleSessionName="a")) == (
        "1 validation error detected: Value 'a' at 'roleSessionName' failed to satisfy "
        "constraint: Member must have length greater than or equal to 2"
    )
    long_name = "a" * 65
    assert _message(model, "AssumeRole", _valid_assume_role(RoleSessionName=long_name)) == (
        f"1 validation error detected: Value '{long_name}' at 'roleSessionName' failed to "
        "satisfy constraint: Member must have length less than or equal to 64"
    )


def test_integer_bounds_and_non_integers(model: StsModel) -> None:
    assert _message(model, "AssumeRole", _valid_assume_role(DurationSeconds="43201")) == (
        "1 validation error detected: Value '43201' at 'durationSeconds' failed to satisfy "
        "constraint: Member must have value less than or equal to 43200"
    )
    for bad in (
        "1e3",
        "3600.0",
        " 3600",
        "0x10",
        "\uff13\uff16\uff10\uff10",
        "1_000",
        "99999999999",
    ):
        assert _message(model, "AssumeRole", _valid_assume_role(DurationSeconds=bad)) == (
            f"1 validation error detected: Value '{bad}' at 'durationSeconds' failed to "
            "satisfy constraint: Member must be an integer"
        )
    assert (
        model.parse_input("AssumeRole", _valid_assume_role(DurationSeconds="+0900"))[
            "DurationSeconds"
        ]
        == 900
    )


def test_list_member_paths(model: StsModel) -> None:
    params = _valid_assume_role(
        **{
            "Tags.member.1.Key": "ok",
            "Tags.member.1.Value": "fine",
            "Tags.member.2.Key": "bad key!",
            "PolicyArns.member.1.arn": "short",
            "TransitiveTagKeys.member.1": "",
        }
    )
    assert _message(model, "AssumeRole", params) == (
        "5 validation errors detected: "
        "Value 'short' at 'policyArns.1.member.arn' failed to satisfy constraint: "
        "Member must have length greater than or equal to 20; "
        "Value 'bad key!' at 'tags.2.member.key' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+; "
        "Value null at 'tags.2.member.value' failed to satisfy constraint: "
        "Member must not be null; "
        "Value '' at 'transitiveTagKeys.1.member' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1; "
        "Value '' at 'transitiveTagKeys.1.member' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+"
    )


def test_nested_structure_path(model: StsModel) -> None:
    message = _message(
        model, "AssumeRoot", {"TargetPrincipal": "123456789012", "TaskPolicyArn.arn": "x"}
    )
    assert message == (
        "1 validation error detected: Value 'x' at 'taskPolicyArn.arn' failed to satisfy "
        "constraint: Member must have length greater than or equal to 20"
    )


def test_list_too_long_is_reported_with_a_truncated_value(model: StsModel) -> None:
    params = _valid_assume_role()
    for i in range(1, 52):
        params[f"Tags.member.{i}.Key"] = f"k{i}"
        params[f"Tags.member.{i}.Value"] = "v"
    message = _message(model, "AssumeRole", params)
    assert message.startswith(
        "1 validation error detected: Value '[{Key=k1, Value=v}, {Key=k2, Value=v}"
    )
    assert message.endswith(
        "...' at 'tags' failed to satisfy constraint: "
        "Member must have length less than or equal to 50"
    )
    assert len(message) < 500


def test_enum(model: StsModel) -> None:
    params = {"Audience.member.1": "a", "SigningAlgorithm": "RS256", "SubjectMode": "Other"}
    assert _message(model, "GetWebIdentityToken", params) == (
        "1 validation error detected: Value 'Other' at 'subjectMode' failed to satisfy "
        "constraint: Member must satisfy enum value set: [AWSIdentity, OriginIdentity]"
    )


def test_many_violations_are_counted_but_capped(model: StsModel) -> None:
    params = _valid_assume_role(**{f"TransitiveTagKeys.member.{i}": "!" for i in range(1, 31)})
    message = _message(model, "AssumeRole", params)
    assert message.startswith(
        "30 validation errors detected: Value '!' at 'transitiveTagKeys.1.member'"
    )
    assert message.endswith("; ...")
    assert message.count("failed to satisfy") == 25


# ------------------------------------------------------------------ sensitive members


def test_sensitive_values_are_never_echoed(model: StsModel) -> None:
    params = {"RoleArn": ROLE, "PrincipalArn": SAML_PROVIDER, "SAMLAssertion": "s3c"}
    assert _message(model, "AssumeRoleWithSAML", params) == (
        "1 validation error detected: Value at 'sAMLAssertion' failed to satisfy constraint: "
        "Member must have length greater than or equal to 4"
    )
    params = {"RoleArn": ROLE, "RoleSessionName": "web"}
    assert _message(model, "AssumeRoleWithWebIdentity", params) == (
        "1 validation error detected: Value at 'webIdentityToken' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_mfa_codes_and_context_assertions_are_not_echoed_either(model: StsModel) -> None:
    message = _message(model, "GetSessionToken", {"TokenCode": "98765x"})
    assert "98765x" not in message
    assert message == (
        "1 validation error detected: Value at 'tokenCode' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [\\d]*"
    )
    params = _valid_assume_role(
        **{
            "ProvidedContexts.member.1.ProviderArn": "x",
            "ProvidedContexts.member.1.ContextAssertion": "secret-assertion",
        }
    )
    message = _message(model, "AssumeRole", params)
    assert "secret-assertion" not in message
    assert "at 'providedContexts.1.member.providerArn'" in message


# ------------------------------------------------------------------ Java patterns, translated


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("RoleSessionName", "alice+bob=,.@-_9", True),
        ("RoleSessionName", "ünï", False),  # Java's \w is ASCII-only
        ("RoleSessionName", "alice\n", False),  # the whole value must match
        ("Policy", "é\t{}\r\n", True),
        ("Policy", "\u0100", False),  # above \u00FF
        ("Policy", "{}\x01", False),  # fullmatch, not a prefix match
        ("RoleArn", ROLE + "\u0085\u00a0😀", True),  # NEL, NBSP and \u10000-\u10FFFF
        ("RoleArn", ROLE + "\u0080", False),  # C1 control not in the class
        ("RoleArn", ROLE + "\x00", False),
        ("SourceIdentity", "aws-admin", True),
    ],
)
def test_patterns_match_like_java(model: StsModel, field: str, value: str, ok: bool) -> None:
    params = _valid_assume_role(**{field: value})
    if ok:
        assert model.parse_input("AssumeRole", params)[field] == value
    else:
        assert "Member must satisfy regular expression pattern" in _message(
            model, "AssumeRole", params
        )


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("Ünïcode 日本 ٣", True),
        ("nb\u00a0sp\u2003em", True),
        ("emoji😀", False),
        ("semi;colon", False),
    ],
)
def test_unicode_properties_in_tag_patterns(model: StsModel, value: str, ok: bool) -> None:
    params = _valid_assume_role(**{"Tags.member.1.Key": "k", "Tags.member.1.Value": value})
    if ok:
        assert model.parse_input("AssumeRole", params)["Tags"] == [{"Key": "k", "Value": value}]
    else:
        assert "tags.1.member.value" in _message(model, "AssumeRole", params)


def test_lengths_count_code_points(model: StsModel) -> None:
    value = "\U0001d400" * 256  # a letter outside the BMP: 256 code points, 512 UTF-16 units
    params = _valid_assume_role(**{"Tags.member.1.Key": "k", "Tags.member.1.Value": value})
    assert model.parse_input("AssumeRole", params)["Tags"][0]["Value"] == value
    params["Tags.member.1.Value"] = value + "a"
    assert _message(model, "AssumeRole", params).endswith(
        "Member must have length less than or equal to 256"
    )


@pytest.mark.parametrize(
    "pattern",
    ["[a&&b]", "[[a]b]", "\\p{IsAlphabetic}", "[\\P{L}]", "\\k<x>", "[abc", "ab\\", "\\u12"],
)
def test_untranslatable_patterns_fail_loudly(pattern: str) -> None:
    with pytest.raises(ValueError):
        translate_java_regex(pattern)


def test_translation_of_escapes() -> None:
    assert (
        translate_java_regex("[\\u0009\\u10000-\\u10FFFF]")
        == "[\\U00000009\\U00010000-\\U0010FFFF]"
    )
    assert translate_java_regex("[\\x21\\-\\/]+( [^a])*") == "[\\x21\\-\\/]+( [^a])*"


# ------------------------------------------------------------------ malformed list encodings


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"TransitiveTagKeys.member.2": "a"}, "indices must run 1..N without gaps"),
        ({"TransitiveTagKeys.member.1": "a", "TransitiveTagKeys.member.3": "b"}, "without gaps"),
        ({"TransitiveTagKeys.member.01": "a"}, "invalid index '01'"),
        ({"TransitiveTagKeys.member.0": "a"}, "invalid index '0'"),
        ({"TransitiveTagKeys.member.x": "a"}, "invalid index 'x'"),
    ],
)
def test_malformed_list_indices_are_refused(
    model: StsModel, params: dict[str, str], fragment: str
) -> None:
    assert fragment in _message(model, "AssumeRole", _valid_assume_role(**params))


def test_a_scalar_where_a_list_belongs_is_refused(model: StsModel) -> None:
    assert _message(model, "AssumeRole", _valid_assume_role(TransitiveTagKeys="a")) == (
        "1 validation error detected: Value 'a' at 'transitiveTagKeys' failed to satisfy "
        "constraint: Member must be a list"
    )


def test_list_element_without_members_is_null(model: StsModel) -> None:
    params = _valid_assume_role(**{"Tags.member.1": "not-a-structure"})
    assert _message(model, "AssumeRole", params) == (
        "1 validation error detected: Value null at 'tags.1.member' failed to satisfy "
        "constraint: Member must not be null"
    )


def test_list_element_with_only_unknown_members_is_empty(model: StsModel) -> None:
    params = _valid_assume_role(**{"PolicyArns.member.1.Arn": "wrong-case"})
    assert model.parse_input("AssumeRole", params)["PolicyArns"] == [{}]


# ------------------------------------------------------------------ booleans, timestamps, maps

SYNTHETIC: dict[str, Any] = {
    "metadata": {
        "apiVersion": "2011-06-15",
        "protocol": "query",
        "xmlNamespace": "https://sts.amazonaws.com/doc/2011-06-15/",
        "endpointPrefix": "sts",
        "serviceId": "STS",
        "signatureVersion": "v4",
    },
    "operations": {
        "Probe": {
            "name": "Probe",
            "http": {"method": "POST", "requestUri": "/"},
            "input": {"shape": "ProbeRequest"},
            "output": {"shape": "ProbeResponse", "resultWrapper": "ProbeResult"},
        }
    },
    "shapes": {
        "ProbeRequest": {
            "type": "structure",
            "required": ["Flag"],
            "members": {
                "Flag": {"shape": "flag"},
                "When": {"shape": "when"},
                "Attrs": {"shape": "attrs"},
                "Big": {"shape": "big"},
            },
        },
        "ProbeResponse": {
            "type": "structure",
            "members": {
                "Flag": {"shape": "flag"},
                "Attrs": {"shape": "attrs"},
                "Names": {"shape": "names"},
            },
        },
        "flag": {"type": "boolean"},
        "when": {"type": "timestamp"},
        "big": {"type": "long", "max": 2**40},
        "attrs": {"type": "map", "key": {"shape": "str"}, "value": {"shape": "str"}},
        "names": {"type": "list", "member": {"shape": "str"}},
        "str": {"type": "string", "max": 5},
    },
}


def test_booleans_timestamps_longs_and_maps_round_trip_from_botocore() -> None:
    model = StsModel(SYNTHETIC)
    operation = OperationModel(SYNTHETIC["operations"]["Probe"], ServiceModel(SYNTHETIC, "sts"))
    when = datetime(2026, 11, 28, 20, 0, 0, 500000, tzinfo=UTC)
    params = {"Flag": False, "When": when, "Attrs": {"a": "1", "b": "22"}, "Big": 2**35}
    body = QuerySerializer().serialize_to_request(params, operation)["body"]
    decoded = model.parse_input("Probe", _body_params(body))
    assert decoded == {
        "Flag": False,
        "When": when.timestamp(),
        "Attrs": {"a": "1", "b": "22"},
        "Big": 2**35,
    }


def test_booleans_timestamps_and_maps_validate() -> None:
    model = StsModel(SYNTHETIC)
    message = _message(
        model,
        "Probe",
        {
            "Flag": "True",
            "When": "yesterday",
            "Attrs.entry.1.key": "k",
            "Attrs.entry.1.value": "toolong",
        },
    )
    assert message == (
        "3 validation errors detected: "
        "Value 'True' at 'flag' failed to satisfy constraint: Member must be a boolean; "
        "Value 'yesterday' at 'when' failed to satisfy constraint: "
        "Member must be an ISO 8601 timestamp; "
        "Value 'toolong' at 'attrs.k' failed to satisfy constraint: "
        "Member must have length less than or equal to 5"
    )
    assert _message(model, "Probe", {"Flag": "true", "Attrs.entry.1.key": "k"}) == (
        "1 validation error detected: Value null at 'attrs.k' failed to satisfy constraint: "
        "Member must not be null"
    )
    assert _message(
        model, "Probe", {"Flag": "true", "Attrs.entry.1.key": "k" * 6, "Attrs.entry.1.value": "v"}
    ) == (
        f"1 validation error detected: Value '{'k' * 6}' at 'attrs.key' failed to satisfy "
        "constraint: Member must have length less than or equal to 5"
    )
    assert "has no key" in _message(model, "Probe", {"Flag": "true", "Attrs.entry.1.value": "v"})
    repeated = {"Flag": "true", "Attrs.entry.1.key": "k", "Attrs.entry.2.key": "k"}
    assert "repeats a key" in _message(model, "Probe", repeated)


def test_booleans_and_lists_render_for_botocore() -> None:
    model = StsModel(SYNTHETIC)
    shape = ServiceModel(SYNTHETIC, "sts").operation_model("Probe").output_shape
    xml = model.render_result("Probe", {"Flag": False, "Attrs": {}, "Names": ["a", "b"]}, "r")
    assert b"<Flag>false</Flag>" in xml and b"<Attrs/>" in xml
    parsed = _parse(xml, shape)
    assert parsed["Flag"] is False and parsed["Names"] == ["a", "b"]


def test_models_that_cannot_be_served_faithfully_are_refused() -> None:
    for change in (
        {"metadata": {**SYNTHETIC["metadata"], "protocol": "json"}},
        {"metadata": {**SYNTHETIC["metadata"], "xmlNamespace": "urn:x"}},
        {"shapes": {**SYNTHETIC["shapes"], "str": {"type": "blob"}}},
        {
            "shapes": {
                **SYNTHETIC["shapes"],
                "names": {"type": "list", "member": {"shape": "str"}, "flattened": True},
            }
        },
    ):
        with pytest.raises(ValueError):
            StsModel({**SYNTHETIC, **change})
