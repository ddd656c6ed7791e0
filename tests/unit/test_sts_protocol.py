"""The Query request reader: encodings, content types, ambiguity and size limits."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from starlette.requests import ClientDisconnect, Request

from broker.errors import StsError
from broker.request import HttpRequestParts
from broker.sts.protocol import QueryRequest, parse_query_request, read_query_request

FORM = ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")


def _post(
    body: bytes | str, *, query: str = "", headers: list[tuple[str, str]] | None = None
) -> HttpRequestParts:
    raw = body.encode() if isinstance(body, str) else body
    return HttpRequestParts(
        method="POST",
        path="/",
        query_string=query,
        headers=[FORM] if headers is None else headers,
        body=raw,
    )


def _get(query: str, body: bytes = b"") -> HttpRequestParts:
    return HttpRequestParts(method="GET", path="/", query_string=query, headers=[], body=body)


def _refusal(parts: HttpRequestParts) -> StsError:
    with pytest.raises(StsError) as caught:
        parse_query_request(parts)
    return caught.value


# ------------------------------------------------------------------ the happy paths


def test_form_post_is_decoded_in_order() -> None:
    parts = _post(
        "Action=AssumeRole&Version=2011-06-15&RoleSessionName=a%2Bb+c&RoleArn=arn%3Aaws&Empty=&Bare"
    )
    query = parse_query_request(parts)
    assert query == QueryRequest(
        action="AssumeRole",
        version="2011-06-15",
        params={"RoleSessionName": "a+b c", "RoleArn": "arn:aws", "Empty": "", "Bare": ""},
        parts=parts,
    )
    assert list(query.params) == ["RoleSessionName", "RoleArn", "Empty", "Bare"]


def test_utf8_percent_encoding_is_decoded() -> None:
    query = parse_query_request(_post("Action=X&Tags.member.1.Value=%C3%BCber%20%E6%97%A5"))
    assert query.params == {"Tags.member.1.Value": "über 日"}


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "Application/X-WWW-Form-Urlencoded; Charset=UTF-8",
        'application/x-www-form-urlencoded; charset="utf-8"',
    ],
)
def test_form_content_type_variants(content_type: str) -> None:
    query = parse_query_request(
        _post("Action=GetCallerIdentity", headers=[("content-type", content_type)])
    )
    assert query.action == "GetCallerIdentity"


def test_post_may_carry_parameters_in_query_and_body() -> None:
    query = parse_query_request(
        _post("RoleArn=r&Version=2011-06-15", query="Action=AssumeRole&Version=2011-06-15")
    )
    assert (query.action, query.version, dict(query.params)) == (
        "AssumeRole",
        "2011-06-15",
        {"RoleArn": "r"},
    )


def test_post_without_body_or_content_type_reads_the_query() -> None:
    query = parse_query_request(_post(b"", query="Action=GetCallerIdentity", headers=[]))
    assert query.action == "GetCallerIdentity"


def test_botocore_presigned_get_caller_identity() -> None:
    client = boto3.client(
        "sts",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:8080",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        aws_session_token="session/token+with=specials",
    )
    url = urlsplit(client.generate_presigned_url("get_caller_identity", ExpiresIn=60))
    query = parse_query_request(_get(url.query))
    assert (query.action, query.version, dict(query.params)) == (
        "GetCallerIdentity",
        "2011-06-15",
        {},
    )
    # The signature parameters stay in the raw request for the SigV4 verifier.
    for name in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Security-Token"):
        assert name in query.parts.query_string


def test_version_may_be_absent_and_action_may_be_missing() -> None:
    query = parse_query_request(_post("RoleArn=x"))
    assert (query.action, query.version) == ("", None)


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-amz-json-1.0",
        "application/x-amz-json-1.1",
        "application/json",
        "text/xml",
        "multipart/form-data",
    ],
)
def test_other_protocols_are_refused(content_type: str) -> None:
    error = _refusal(
        _post('{"Action": "GetCallerIdentity"}', headers=[("Content-Type", content_type)])
    )
    assert (error.code, error.status) == ("UnsupportedMediaType", 415)
    assert error.message.startswith("Only the AWS Query protocol is served")
    assert content_type in error.message


def test_other_charsets_are_refused() -> None:
    error = _refusal(
        _post(
            "Action=X",
            headers=[("Content-Type", "application/x-www-form-urlencoded; charset=iso-8859-1")],
        )
    )
    assert (error.code, error.status) == ("UnsupportedMediaType", 415)


def test_body_without_content_type_is_refused() -> None:
    error = _refusal(_post("Action=GetCallerIdentity", headers=[]))
    assert (error.code, error.status) == ("UnsupportedMediaType", 415)


@pytest.mark.parametrize(
    ("parts", "name"),
    [
        (_post("Action=AssumeRole&RoleArn=a&RoleArn=a"), "RoleArn"),
        (_post("Action=AssumeRole&RoleArn=a&Role%41rn=b"), "RoleArn"),
        (_get("Action=GetCallerIdentity&Action=AssumeRole"), "Action"),
        (_get("X-Amz-Signature=a&X-Amz-Signature=b"), "X-Amz-Signature"),
        (_post("Action=AssumeRole", query="Action=GetCallerIdentity"), "Action"),
        (_post("RoleArn=b", query="RoleArn=a"), "RoleArn"),
    ],
)
def test_ambiguous_parameters_are_refused(parts: HttpRequestParts, name: str) -> None:
    error = _refusal(parts)
    assert (error.code, error.status) == ("ValidationError", 400)
    assert f"Parameter '{name}'" in error.message


@pytest.mark.parametrize(
    "parts",
    [
        _post("Action=X&RoleArn=%zz"),
        _post("Action=X&RoleArn=%4"),
        _post("Action=X&RoleArn=abc%"),
        _post("Action=X&Role%G1rn=a"),
        _post("Action=X&RoleArn=%ff%fe"),  # not UTF-8 once decoded
        _post("Action=X&RoleArn=%ed%a0%80"),  # an encoded surrogate is not UTF-8
        _post("Action=X&RoleArn=\u00fc".encode()),  # raw, unencoded UTF-8
        _post(b"Action=X&RoleArn=\xff"),
        _get("Action=X&RoleArn=%C3"),
        _get("Action=X&RoleArn=über"),
    ],
)
def test_bad_encodings_are_refused(parts: HttpRequestParts) -> None:
    error = _refusal(parts)
    assert (error.code, error.status) == ("ValidationError", 400)


def test_other_versions_are_refused_like_aws() -> None:
    error = _refusal(_post("Action=AssumeRole&Version=2011-06-16"))
    assert (error.code, error.status) == ("InvalidAction", 400)
    assert error.message == "Could not find operation AssumeRole for version 2011-06-16"


def test_get_with_a_body_is_refused() -> None:
    error = _refusal(_get("Action=GetCallerIdentity", body=b"Action=AssumeRole"))
    assert (error.code, error.status) == ("ValidationError", 400)


def test_other_methods_are_refused() -> None:
    parts = HttpRequestParts(
        method="PUT", path="/", query_string="Action=X", headers=[FORM], body=b""
    )
    error = _refusal(parts)
    assert (error.code, error.status) == ("MethodNotAllowed", 405)


def test_huge_parameter_names_are_shortened_in_messages() -> None:
    name = "A" * 5000
    error = _refusal(_post(f"{name}=1&{name}=2"))
    assert len(error.message) < 200


# ------------------------------------------------------------------ reading from Starlette


class _Receiver:
    """An ASGI receive callable that hands out body chunks and counts how many were read."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        index = self.calls
        self.calls += 1
        return {
            "type": "http.request",
            "body": self.chunks[index],
            "more_body": index + 1 < len(self.chunks),
        }


def _request(
    receiver: _Receiver, headers: list[tuple[bytes, bytes]], query: bytes = b""
) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/sts/",
        "raw_path": b"/sts/%7Euser",
        "query_string": query,
        "headers": headers,
        "client": ("127.0.0.9", 5555),
        "server": ("127.0.0.1", 8080),
        "scheme": "http",
    }
    return Request(scope, receiver)


def _read(request: Request, limit: int) -> QueryRequest:
    return asyncio.run(read_query_request(request, max_body_bytes=limit))


def test_read_builds_raw_parts() -> None:
    body = b"Action=AssumeRole&RoleArn=a"
    receiver = _Receiver([body[:10], body[10:]])
    headers = [
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"x-amz-date", b"20261128T200000Z"),
    ]
    query = _read(_request(receiver, headers, b"Version=2011-06-15"), len(body))
    assert query.action == "AssumeRole"
    assert query.parts == HttpRequestParts(
        method="POST",
        path="/sts/%7Euser",
        query_string="Version=2011-06-15",
        headers=[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-amz-date", "20261128T200000Z"),
        ],
        body=body,
        client_ip="127.0.0.9",
    )


def test_streamed_body_over_the_limit_is_refused_without_reading_on() -> None:
    receiver = _Receiver([b"x" * 10] * 100)
    with pytest.raises(StsError) as caught:
        _read(_request(receiver, [(b"content-type", b"application/x-www-form-urlencoded")]), 25)
    assert (caught.value.code, caught.value.status) == ("RequestEntityTooLarge", 413)
    assert receiver.calls == 3  # 30 bytes seen: one chunk past the 25-byte limit, no more


def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    receiver = _Receiver([b"x" * 26])
    headers = [(b"content-type", b"application/x-www-form-urlencoded"), (b"content-length", b"26")]
    with pytest.raises(StsError) as caught:
        _read(_request(receiver, headers), 25)
    assert (caught.value.code, caught.value.status) == ("RequestEntityTooLarge", 413)
    assert receiver.calls == 0


def test_body_exactly_at_the_limit_is_accepted() -> None:
    body = b"Action=GetCallerIdentity"
    receiver = _Receiver([body])
    headers = [(b"content-type", b"application/x-www-form-urlencoded"), (b"content-length", b"24")]
    assert _read(_request(receiver, headers), len(body)).action == "GetCallerIdentity"


def test_client_gone_before_the_body_ends_is_a_disconnect_not_a_request() -> None:
    """A half-sent body is never decoded: the read stops as Starlette's stream() would."""

    async def receive() -> dict[str, object]:
        calls.append(1)
        if len(calls) == 1:
            return {"type": "http.request", "body": b"Action=Get", "more_body": True}
        return {"type": "http.disconnect"}

    calls: list[int] = []
    request = Request(_request(_Receiver([]), []).scope, receive)
    with pytest.raises(ClientDisconnect):
        _read(request, 1000)
    assert len(calls) == 2
