"""SigV4 verification, checked against requests botocore and boto3 themselves sign.

Nothing here signs with our own code: every accepted request is produced by
``botocore.auth.SigV4Auth`` / ``SigV4QueryAuth`` or by a real ``boto3`` STS client, and
every expected string to sign is the one botocore logs while signing.
"""

from __future__ import annotations

import calendar
import datetime
import hashlib
import logging
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import botocore.auth
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.credentials import Credentials

from broker.errors import StsError
from broker.identity import SignatureClaim, read_signature, verify_signature
from broker.identity.sigv4 import _SigningKeyCache
from broker.request import HttpRequestParts

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEJr//////////wEaDM+token/with+base64=="
REGION = "us-east-1"
SIGNED = datetime.datetime(2026, 11, 29, 4, 30, 0)
NOW = float(calendar.timegm(SIGNED.timetuple()))
FORM = b"Action=GetCallerIdentity&Version=2011-06-15"
FORM_CT = "application/x-www-form-urlencoded; charset=utf-8"


@pytest.fixture(autouse=True)
def _frozen_signing_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore reads the wall clock when it signs; pin it so times are exact."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: SIGNED)


def _creds(token: str | None = None) -> Credentials:
    return Credentials(AKID, SECRET, token)


def _host(url: str) -> str:
    """The Host header urllib3 sends: port only when not the scheme's default."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}[parts.scheme]
    assert parts.hostname is not None
    return parts.hostname if parts.port in (None, default) else f"{parts.hostname}:{parts.port}"


def _text(value: str | bytes) -> str:
    """A header value as an ASGI server hands it over (bytes decoded as latin-1)."""
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _wire(
    method: str,
    url: str,
    headers: Iterable[tuple[str, str | bytes]],
    body: bytes | str | None,
) -> HttpRequestParts:
    """The request as the broker's server would see it on the wire."""
    parts = urlsplit(url)
    raw_body = body.encode() if isinstance(body, str) else (body or b"")
    return HttpRequestParts(
        method=method,
        path=parts.path or "/",
        query_string=parts.query,
        headers=[("Host", _host(url)), *((k, _text(v)) for k, v in headers)],
        body=raw_body,
    )


def _signed(
    *,
    method: str = "POST",
    url: str = "https://sts.example.test/",
    data: bytes | dict[str, str] | None = FORM,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    token: str | None = None,
    region: str = REGION,
    service: str = "sts",
    presign_expires: int | None = None,
) -> HttpRequestParts:
    """Sign with botocore, prepare, and hand back what would arrive on the wire.

    Presigning moves a form body into the query; botocore expects it as a dict then, the
    way its Query serializer hands it over.
    """
    if presign_expires is not None and isinstance(data, bytes):
        data = dict(parse_qsl(data.decode()))
    all_headers = {"Content-Type": FORM_CT} if data else {}
    all_headers.update(headers or {})
    request = AWSRequest(method=method, url=url, data=data, params=params, headers=all_headers)
    if presign_expires is None:
        SigV4Auth(_creds(token), service, region).add_auth(request)
    else:
        SigV4QueryAuth(_creds(token), service, region, presign_expires).add_auth(request)
    prepared = request.prepare()
    return _wire(prepared.method, prepared.url, prepared.headers.items(), prepared.body)


def _claim(request: HttpRequestParts) -> SignatureClaim:
    claim = read_signature(request)
    assert claim is not None
    return claim


def _botocore_string_to_sign(caplog: pytest.LogCaptureFixture) -> str:
    records = [r for r in caplog.records if r.msg == "StringToSign:\n%s"]
    assert len(records) == 1
    value = records[0].args[0]  # type: ignore[index]
    assert isinstance(value, str)
    return value


def _refusal(claim: SignatureClaim, *, now: float = NOW, **kwargs: Any) -> StsError:
    with pytest.raises(StsError) as caught:
        verify_signature(claim, SECRET, now=now, region=kwargs.pop("region", REGION), **kwargs)
    return caught.value


# --- header-signed requests --------------------------------------------------------


@pytest.mark.parametrize("token", [None, TOKEN])
@pytest.mark.parametrize("url", ["https://sts.example.test/", "http://127.0.0.1:8080/sts"])
def test_post_form_body_verifies(url: str, token: str | None) -> None:
    claim = _claim(_signed(url=url, token=token))
    verify_signature(claim, SECRET, now=NOW, region=REGION)
    assert claim.access_key_id == AKID
    assert claim.security_token == token
    assert (claim.scope_date, claim.region, claim.service) == ("20261129", REGION, "sts")
    assert claim.signed_at == NOW
    assert claim.presigned is False
    assert claim.expires_in is None
    expected_headers = ["content-type", "host", "x-amz-date"]
    if token:
        expected_headers.append("x-amz-security-token")
    assert claim.signed_headers == tuple(expected_headers)
    assert len(claim.signature) == 64


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/sts",
        "/sts/",
        "/a%20b",
        "/a/./b/../c",
        "//double//slash/",
        "/%E2%82%AC/x",
        "/~user/a-b_c.d",
        "/%2F%3F%25",
        "/a+b:c@d",
    ],
)
def test_string_to_sign_matches_botocore_for_paths(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="botocore.auth")
    claim = _claim(_signed(url=f"https://sts.example.test{path}"))
    assert claim.string_to_sign == _botocore_string_to_sign(caplog)
    verify_signature(claim, SECRET, now=NOW, region=REGION)


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "with space",
        "é",
        "日本語テキスト",
        "~-._",
        "/?#[]@!$&'()*+,;=",
        "100%",
        "+",
        "",
        "a=b=c",
    ],
)
def test_get_with_query_params_matches_botocore(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="botocore.auth")
    params = {
        "Action": "GetCallerIdentity",
        "Version": "2011-06-15",
        "Tags.member.1.Value": value,
        f"Key {value}": "x",
    }
    claim = _claim(_signed(method="GET", data=None, params=params, token=TOKEN))
    assert claim.string_to_sign == _botocore_string_to_sign(caplog)
    verify_signature(claim, SECRET, now=NOW, region=REGION)


def test_repeated_query_keys_sort_by_value(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="botocore.auth")
    claim = _claim(_signed(method="GET", data=None, url="https://sts.example.test/?b=2&a=2&a=1&c"))
    assert claim.string_to_sign == _botocore_string_to_sign(caplog)
    verify_signature(claim, SECRET, now=NOW, region=REGION)


def test_header_values_are_trimmed_and_folded() -> None:
    claim = _claim(_signed(headers={"X-Custom": "  a \t  b   c  ", "X-Empty": ""}))
    assert "x-custom" in claim.signed_headers
    assert "x-empty" in claim.signed_headers
    verify_signature(claim, SECRET, now=NOW, region=REGION)


def test_repeated_headers_are_joined_with_commas() -> None:
    request = AWSRequest(method="POST", url="https://sts.example.test/", data=FORM)
    request.headers["X-Multi"] = "first"
    request.headers["X-Multi"] = " second  value "  # HTTPHeaders appends a second header
    SigV4Auth(_creds(), "sts", REGION).add_auth(request)
    wire = _wire("POST", request.url, request.headers.items(), FORM)
    assert [v for k, v in wire.headers if k == "X-Multi"] == ["first", " second  value "]
    verify_signature(_claim(wire), SECRET, now=NOW, region=REGION)


def test_date_header_instead_of_x_amz_date() -> None:
    wire = _signed(headers={"Date": "placeholder"})
    assert not any(k.lower() == "x-amz-date" for k, _ in wire.headers)
    claim = _claim(wire)
    assert claim.signed_at == NOW
    assert "date" in claim.signed_headers
    verify_signature(claim, SECRET, now=NOW, region=REGION)


def test_matching_content_sha256_header_is_accepted() -> None:
    claim = _claim(_signed(headers={"X-Amz-Content-SHA256": hashlib.sha256(FORM).hexdigest()}))
    assert "x-amz-content-sha256" in claim.signed_headers
    verify_signature(claim, SECRET, now=NOW, region=REGION)


def test_empty_body_hashes_as_empty_string(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="botocore.auth")
    claim = _claim(_signed(method="GET", data=None, params={"Action": "GetCallerIdentity"}))
    assert claim.string_to_sign == _botocore_string_to_sign(caplog)
    verify_signature(claim, SECRET, now=NOW, region=REGION)


# --- presigned requests ------------------------------------------------------------


@pytest.mark.parametrize("token", [None, TOKEN])
@pytest.mark.parametrize("url", ["https://sts.example.test/", "http://127.0.0.1:8080/sts"])
def test_presigned_url_verifies(url: str, token: str | None) -> None:
    wire = _signed(
        method="GET",
        url=url,
        data=None,
        params={"Action": "GetCallerIdentity", "Version": "2011-06-15"},
        token=token,
        presign_expires=60,
    )
    assert "X-Amz-Signature=" in wire.query_string
    assert not any(k.lower() == "authorization" for k, _ in wire.headers)
    claim = _claim(wire)
    assert claim.presigned is True
    assert claim.expires_in == 60
    assert claim.security_token == token
    assert claim.signed_headers == ("host",)
    verify_signature(claim, SECRET, now=NOW + 60, region=REGION)


def test_presigned_form_body_moves_into_query(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="botocore.auth")
    wire = _signed(presign_expires=900, token=TOKEN)
    assert wire.body == b""
    assert "Action=GetCallerIdentity" in wire.query_string
    claim = _claim(wire)
    assert claim.string_to_sign == _botocore_string_to_sign(caplog)
    verify_signature(claim, SECRET, now=NOW, region=REGION)


def test_presigned_with_unicode_and_reserved_params(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="botocore.auth")
    params = {"Action": "GetCallerIdentity", "Odd": "é /+&=%~*", "日本": "値"}
    claim = _claim(_signed(method="GET", data=None, params=params, presign_expires=300))
    assert claim.string_to_sign == _botocore_string_to_sign(caplog)
    verify_signature(claim, SECRET, now=NOW, region=REGION)


def test_presigned_live_until_expiry_and_within_skew() -> None:
    claim = _claim(_signed(presign_expires=60))
    verify_signature(claim, SECRET, now=NOW + 60, region=REGION)
    refusal = _refusal(claim, now=NOW + 61)
    assert (refusal.code, refusal.status) == ("SignatureDoesNotMatch", 403)
    assert refusal.message == (
        "Signature expired: 20261129T043000Z is now earlier than 20261129T043001Z "
        "(20261129T043101Z - 1 min.)"
    )


def test_presigned_lifetime_is_capped_at_the_skew_window() -> None:
    """Real STS honours a presigned URL for 15 minutes whatever X-Amz-Expires says."""
    claim = _claim(_signed(presign_expires=3600))
    verify_signature(claim, SECRET, now=NOW + 900, region=REGION)
    refusal = _refusal(claim, now=NOW + 901)
    assert (refusal.code, refusal.status) == ("SignatureDoesNotMatch", 403)
    assert refusal.message.startswith("Signature expired: 20261129T043000Z is now earlier than")


# --- a real boto3 client -----------------------------------------------------------

_CALLER_IDENTITY_XML = b"""<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:iam::111111111111:user/alice</Arn>
    <UserId>AIDAEXAMPLEUSERID0001</UserId>
    <Account>111111111111</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>0b6e3f4c-0000-4000-8000-000000000000</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"""


class _CannedBody:
    """Stands in for urllib3's response: botocore only streams the body."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        yield self._body


@pytest.mark.parametrize("token", [None, TOKEN])
@pytest.mark.parametrize(
    ("endpoint", "region"),
    [("http://127.0.0.1:8080", "us-east-1"), ("http://localhost:9443/sts", "eu-central-1")],
)
def test_boto3_client_request_verifies(endpoint: str, region: str, token: str | None) -> None:
    sent: list[Any] = []

    def capture(request: Any, **kwargs: Any) -> AWSResponse:
        sent.append(request)
        headers = {"Content-Type": "text/xml", "x-amzn-RequestId": "req"}
        return AWSResponse(request.url, 200, headers, _CannedBody(_CALLER_IDENTITY_XML))

    client = boto3.client(
        "sts",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        aws_session_token=token,
    )
    client.meta.events.register("before-send.sts.GetCallerIdentity", capture)
    assert client.get_caller_identity()["Account"] == "111111111111"

    assert len(sent) == 1
    prepared = sent[0]
    claim = _claim(_wire(prepared.method, prepared.url, prepared.headers.items(), prepared.body))
    assert claim.region == region
    assert claim.security_token == token
    verify_signature(claim, SECRET, now=claim.signed_at + 5, region=region)
    with pytest.raises(StsError) as caught:
        verify_signature(claim, SECRET[:-1] + "X", now=claim.signed_at, region=region)
    assert caught.value.code == "SignatureDoesNotMatch"


# --- absent and malformed signatures -----------------------------------------------


def test_unsigned_request_reads_as_none() -> None:
    body = b"Action=AssumeRoleWithWebIdentity&Version=2011-06-15&WebIdentityToken=x"
    wire = HttpRequestParts("POST", "/", "", [("Host", "sts.example.test")], body)
    assert read_signature(wire) is None


def test_unrelated_x_amz_query_params_are_not_a_signature() -> None:
    wire = HttpRequestParts("GET", "/", "X-Amz-Date=20261129T043000Z&Action=X", [], b"")
    assert read_signature(wire) is None


def _with_authorization(value: str, *, drop: tuple[str, ...] = ()) -> HttpRequestParts:
    wire = _signed()
    headers = [
        (k, v) for k, v in wire.headers if k.lower() != "authorization" and k.lower() not in drop
    ]
    return HttpRequestParts(
        wire.method, wire.path, wire.query_string, [*headers, ("Authorization", value)], wire.body
    )


def _incomplete(request: HttpRequestParts) -> StsError:
    with pytest.raises(StsError) as caught:
        read_signature(request)
    assert (caught.value.code, caught.value.status) == ("IncompleteSignature", 400)
    return caught.value


def test_missing_signature_and_date_named_together_without_echoing_secrets() -> None:
    credential = f"{AKID}/20261129/us-east-1/sts/aws4_request"
    refusal = _incomplete(
        _with_authorization(
            f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host;x-amz-date",
            drop=("x-amz-date",),
        )
    )
    assert refusal.message == (
        "Authorization header requires 'Signature' parameter. Authorization header requires "
        "existence of either a 'X-Amz-Date' or a 'Date' header. "
        f"Authorization=AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host;x-amz-date"
    )


def test_every_missing_parameter_is_named() -> None:
    refusal = _incomplete(_with_authorization("AWS4-HMAC-SHA256"))
    assert refusal.message == (
        "Authorization header requires 'Credential' parameter. Authorization header requires "
        "'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. "
        "Authorization=AWS4-HMAC-SHA256"
    )


def test_sigv4a_is_refused_as_unsupported() -> None:
    refusal = _incomplete(
        _with_authorization(
            "AWS4-ECDSA-P256-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261129/sts/aws4_request, "
            "SignedHeaders=host;x-amz-date;x-amz-region-set, Signature=3045022100ab"
        )
    )
    assert "'AWS4-ECDSA-P256-SHA256'" in refusal.message
    assert "Only AWS4-HMAC-SHA256 is accepted" in refusal.message
    assert "3045022100ab" not in refusal.message


def test_host_must_be_signed() -> None:
    refusal = _incomplete(
        _with_authorization(
            f"AWS4-HMAC-SHA256 Credential={AKID}/20261129/us-east-1/sts/aws4_request, "
            "SignedHeaders=x-amz-date, Signature=" + "0" * 64
        )
    )
    assert refusal.message == (
        "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
    )


def test_credential_scope_shape() -> None:
    refusal = _incomplete(
        _with_authorization(
            f"AWS4-HMAC-SHA256 Credential={AKID}/20261129/us-east-1/sts, "
            "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
        )
    )
    assert refusal.message == (
        "Credential must have exactly 5 slash-delimited elements, e.g. "
        f"keyid/date/region/service/term, got '{AKID}/20261129/us-east-1/sts'"
    )


def test_both_header_and_query_signature_refused() -> None:
    header_signed = _signed()
    presigned = _signed(presign_expires=60)
    both = HttpRequestParts(
        "GET", "/", presigned.query_string, header_signed.headers, header_signed.body
    )
    refusal = _incomplete(both)
    assert refusal.message.startswith("Only one auth mechanism allowed")


def test_incomplete_presigned_query_names_missing_parameters() -> None:
    wire = HttpRequestParts(
        "GET",
        "/",
        "Action=GetCallerIdentity&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=" + "0" * 64,
        [("Host", "sts.example.test")],
        b"",
    )
    refusal = _incomplete(wire)
    assert refusal.message == (
        "AWS query-string parameters must include 'X-Amz-Credential', 'X-Amz-Date', "
        "'X-Amz-SignedHeaders', 'X-Amz-Expires'. Re-examine the query-string parameters."
    )


# --- scope and time ----------------------------------------------------------------


def test_region_mismatch_names_the_broker_region() -> None:
    refusal = _refusal(_claim(_signed(region="eu-west-1")), region="us-east-1")
    assert (refusal.code, refusal.status) == ("SignatureDoesNotMatch", 403)
    assert refusal.message.startswith(
        "Credential should be scoped to a valid region, not 'eu-west-1'. "
    )
    assert "'us-east-1'" in refusal.message
    assert "region_name" in refusal.message


def test_service_mismatch() -> None:
    refusal = _refusal(_claim(_signed(service="iam")))
    assert (refusal.code, refusal.status) == ("SignatureDoesNotMatch", 403)
    assert refusal.message == "Credential should be scoped to correct service: 'sts'. "


def test_skew_window_edges_and_messages() -> None:
    claim = _claim(_signed())
    verify_signature(claim, SECRET, now=NOW + 900, region=REGION)
    verify_signature(claim, SECRET, now=NOW - 900, region=REGION)
    late = _refusal(claim, now=NOW + 1800)
    assert late.message == (
        "Signature expired: 20261129T043000Z is now earlier than 20261129T044500Z "
        "(20261129T050000Z - 15 min.)"
    )
    early = _refusal(claim, now=NOW - 1800)
    assert early.message == (
        "Signature not yet current: 20261129T043000Z is still later than 20261129T041500Z "
        "(20261129T040000Z + 15 min.)"
    )
    assert (late.code, late.status, early.code, early.status) == (
        "SignatureDoesNotMatch",
        403,
        "SignatureDoesNotMatch",
        403,
    )


def test_custom_skew() -> None:
    claim = _claim(_signed())
    verify_signature(claim, SECRET, now=NOW + 300, region=REGION, max_skew=300)
    refusal = _refusal(claim, now=NOW + 301, max_skew=300)
    assert refusal.message.endswith("(20261129T043501Z - 5 min.)")


def test_wrong_secret_gives_aws_text() -> None:
    claim = _claim(_signed())
    with pytest.raises(StsError) as caught:
        verify_signature(claim, "x" * 40, now=NOW, region=REGION)
    assert (caught.value.code, caught.value.status) == ("SignatureDoesNotMatch", 403)
    assert caught.value.message == (
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. "
        "Consult the service documentation for details."
    )


# --- secrets and the key cache -----------------------------------------------------


def test_claim_repr_hides_token_and_signature() -> None:
    claim = _claim(_signed(token=TOKEN))
    assert TOKEN not in repr(claim)
    assert claim.signature not in repr(claim)


def test_signing_key_cache_is_bounded_and_keyed_without_the_secret() -> None:
    cache = _SigningKeyCache(max_entries=2)
    first = cache.get(SECRET, "20261129", REGION, "sts")
    assert cache.get(SECRET, "20261129", REGION, "sts") is first
    cache.get("another-secret", "20261129", REGION, "sts")
    cache.get(SECRET, "20261130", REGION, "sts")
    entries = cache._entries
    assert len(entries) == 2
    for fingerprint, *_rest in entries:
        assert SECRET.encode() not in fingerprint
        assert fingerprint != SECRET.encode()
    # The first entry was evicted as least recently used; a fresh derivation is equal.
    assert cache.get(SECRET, "20261129", REGION, "sts") == first


def test_cached_key_never_serves_another_secret() -> None:
    claim = _claim(_signed())
    verify_signature(claim, SECRET, now=NOW, region=REGION)
    with pytest.raises(StsError) as caught:
        verify_signature(claim, SECRET[:-1] + "Z", now=NOW, region=REGION)
    assert caught.value.code == "SignatureDoesNotMatch"
