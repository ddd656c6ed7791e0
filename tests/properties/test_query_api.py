"""The Query API reader and the model validator never fail on any request.

Whatever method, content type, query string and body arrive, the reader answers a decoded
request or one of its refusals, and whatever parameters a decoded request carries, the
model answers validated input or a refusal: a code from the allowed set, a client status,
and never any other exception (which the API would turn into a 500).
"""

from __future__ import annotations

import functools
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from broker.errors import StsError
from broker.request import HttpRequestParts
from broker.sts.model import StsModel
from broker.sts.protocol import parse_query_request
from tests.properties.budget import budget

READER_CODES = {"ValidationError", "InvalidAction", "MethodNotAllowed", "UnsupportedMediaType"}
MODEL_CODES = {"ValidationError", "InvalidAction", "MissingAction"}
ACTIONS = [
    "AssumeRole",
    "AssumeRoleWithSAML",
    "AssumeRoleWithWebIdentity",
    "DecodeAuthorizationMessage",
    "GetAccessKeyInfo",
    "GetCallerIdentity",
    "GetFederationToken",
    "GetSessionToken",
    "GetWebIdentityToken",
]
NAMES = [
    "RoleArn",
    "RoleSessionName",
    "DurationSeconds",
    "Policy",
    "ExternalId",
    "SerialNumber",
    "TokenCode",
    "SourceIdentity",
    "Name",
    "WebIdentityToken",
    "SAMLAssertion",
    "PrincipalArn",
    "AccessKeyId",
    "EncodedMessage",
    "SigningAlgorithm",
    "Audience.member.1",
    "Audience.member.2",
    "Tags.member.1.Key",
    "Tags.member.1.Value",
    "Tags.member.2.Key",
    "Tags.member.3.Value",
    "Tags.member.0.Key",
    "TransitiveTagKeys.member.1",
    "PolicyArns.member.1.arn",
    "PolicyArns.member.5.arn",
    "PolicyArns.member",
    "ProvidedContexts.member.1.ProviderArn",
    "ProvidedContexts.member.1.ContextAssertion",
]


@functools.cache
def _model() -> StsModel:
    return StsModel.load()


_escape = st.sampled_from(["%", "%2", "%zz", "%41", "%C3%A9", "%FF", "%00", "+", "&", "=", "%25"])
_component = st.lists(
    st.one_of(st.text(max_size=6), _escape, st.sampled_from(["Action", "Version"])), max_size=4
).map("".join)
_pairs = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["Action", "Version", *NAMES]), _component),
        st.tuples(_component, _component),
    ),
    max_size=8,
).map(lambda pairs: "&".join(f"{name}={value}" for name, value in pairs))
_content_types = st.sampled_from(
    [
        None,
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=utf-8",
        "application/x-www-form-urlencoded; charset=latin-1",
        "APPLICATION/X-WWW-FORM-URLENCODED",
        "application/json",
        "application/x-amz-json-1.0",
        "",
        ";;;",
        "text/plain; charset",
    ]
)


@st.composite
def _requests(draw: st.DrawFn) -> HttpRequestParts:
    method = draw(st.sampled_from(["GET", "POST", "post", "PUT", "DELETE", "HEAD", ""]))
    query = draw(st.one_of(_pairs, st.text(max_size=40)))
    body_text = draw(st.one_of(_pairs, st.text(max_size=40)))
    body = draw(
        st.one_of(
            st.just(body_text.encode("utf-8", "surrogatepass")),
            st.binary(max_size=40),
            st.just(b""),
        )
    )
    headers = []
    content_type = draw(_content_types)
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    if draw(st.booleans()):
        headers.append(("content-type", draw(_content_types) or "x"))
    return HttpRequestParts(method=method, path="/", query_string=query, headers=headers, body=body)


@given(_requests())
@settings(max_examples=budget(150))
@example(
    HttpRequestParts(
        "POST",
        "/",
        "",
        [("Content-Type", "application/x-www-form-urlencoded")],
        b"Action=AssumeRole&Policy=" + b"%5B" * 2000,
    )
)
@example(HttpRequestParts("GET", "/", "Action=GetCallerIdentity&Action=GetCallerIdentity", [], b""))
@example(HttpRequestParts("GET", "/", "A=%C3%28", [], b""))
def test_the_reader_decodes_or_refuses_every_request(parts: HttpRequestParts) -> None:
    try:
        query = parse_query_request(parts)
    except StsError as exc:
        assert exc.code in READER_CODES, exc
        assert 400 <= exc.status < 500
        return
    try:
        _model().parse_input(query.action, query.params)
    except StsError as exc:
        assert exc.code in MODEL_CODES, exc
        assert exc.status == 400


_values = st.one_of(
    st.text(max_size=30),
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["", " ", "arn:aws:iam::111111111111:role/Dev", "900", "43201", "1e3"]),
    st.text(min_size=2040, max_size=2060, alphabet='[{}]"a:,'),
)


@given(
    action=st.sampled_from([*ACTIONS, "", "assumerole", "Nope"]),
    params=st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=20), _values, max_size=10),
)
@settings(max_examples=budget(150))
@example(action="AssumeRole", params={"Tags.member.1.Key": "a", "Tags.member.3.Key": "b"})
@example(action="AssumeRole", params={"PolicyArns.member": "x", "PolicyArns.member.1.arn": "y"})
@example(action="GetSessionToken", params={"DurationSeconds": str(2**70)})
def test_the_model_validates_or_refuses_every_parameter_set(
    action: str, params: dict[str, Any]
) -> None:
    try:
        parsed = _model().parse_input(action, params)
    except StsError as exc:
        assert exc.code in MODEL_CODES, exc
        assert exc.status == 400
        assert len(exc.message) < 4000
        return
    assert isinstance(parsed, dict)
