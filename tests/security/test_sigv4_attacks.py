"""Hostile SigV4 inputs: each test builds the real malicious request and asserts the refusal.

Requests start life genuinely signed by botocore; the attack is what an adversary can do
afterwards without the secret (tamper, replay, re-scope, malform). Every refusal is checked
for its exact code and HTTP status, and for not echoing the signature or session token.
"""

from __future__ import annotations

import calendar
import datetime
import hashlib
from collections.abc import Callable, Iterable
from urllib.parse import quote, urlsplit

import botocore.auth
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from broker.errors import StsError
from broker.identity import read_signature, verify_signature
from broker.request import HttpRequestParts

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEJr//////////wEaDM+sessiontoken=="
REGION = "us-east-1"
SIGNED = datetime.datetime(2026, 11, 29, 4, 30, 0)
NOW = float(calendar.timegm(SIGNED.timetuple()))
FORM = b"Action=GetCallerIdentity&Version=2011-06-15"
HOST = "sts.example.test"
SCOPE = f"{AKID}/20261129/us-east-1/sts/aws4_request"


@pytest.fixture(autouse=True)
def _frozen_signing_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: SIGNED)


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _signed(
    *,
    method: str = "POST",
    path: str = "/",
    data: bytes | dict[str, str] | None = FORM,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    token: str | None = TOKEN,
    region: str = REGION,
    service: str = "sts",
    presign_expires: int | None = None,
) -> HttpRequestParts:
    """A request genuinely signed by botocore, as the broker would receive it."""
    request = AWSRequest(
        method=method, url=f"https://{HOST}{path}", data=data, params=params, headers=headers
    )
    credentials = Credentials(AKID, SECRET, token)
    if presign_expires is None:
        SigV4Auth(credentials, service, region).add_auth(request)
    else:
        SigV4QueryAuth(credentials, service, region, presign_expires).add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body or b""
    return HttpRequestParts(
        method=prepared.method,
        path=parts.path,
        query_string=parts.query,
        headers=[("Host", HOST), *((k, _text(v)) for k, v in prepared.headers.items())],
        body=body,
    )


def _presigned(expires: int = 60, token: str | None = TOKEN) -> HttpRequestParts:
    return _signed(
        method="GET",
        data=None,
        params={"Action": "GetCallerIdentity", "Version": "2011-06-15"},
        presign_expires=expires,
        token=token,
    )


def _replace(request: HttpRequestParts, **changes: object) -> HttpRequestParts:
    fields: dict[str, object] = {
        "method": request.method,
        "path": request.path,
        "query_string": request.query_string,
        "headers": list(request.headers),
        "body": request.body,
    }
    fields.update(changes)
    return HttpRequestParts(**fields)  # type: ignore[arg-type]


def _edit_headers(
    request: HttpRequestParts, edit: Callable[[list[tuple[str, str]]], Iterable[tuple[str, str]]]
) -> HttpRequestParts:
    return _replace(request, headers=list(edit(list(request.headers))))


def _set_header(request: HttpRequestParts, name: str, value: str) -> HttpRequestParts:
    return _edit_headers(
        request,
        lambda hs: [(k, value if k.lower() == name.lower() else v) for k, v in hs],
    )


def _authorization(request: HttpRequestParts) -> str:
    value = request.header("authorization")
    assert value is not None
    return value


def _signature_of(request: HttpRequestParts) -> str:
    """The signature value the request carries, wherever it is ("" if none)."""
    carrier = request.header("authorization") or request.query_string
    for marker in ("Signature=", "X-Amz-Signature="):
        if marker in carrier:
            return carrier.rsplit(marker, 1)[1].split("&", 1)[0]
    return ""


def _refused(
    request: HttpRequestParts,
    code: str,
    status: int,
    *,
    now: float = NOW,
    region: str = REGION,
    secret: str = SECRET,
) -> StsError:
    """Run the full read + verify path and return the refusal, checking it leaks nothing."""
    with pytest.raises(StsError) as caught:
        claim = read_signature(request)
        assert claim is not None
        verify_signature(claim, secret, now=now, region=region)
    error = caught.value
    assert (error.code, error.status) == (code, status), error.message
    assert TOKEN not in error.message
    assert SECRET not in error.message
    signature = _signature_of(request)
    if len(signature) >= 16:
        assert signature[:16] not in error.message
    return error


def test_genuine_request_is_accepted() -> None:
    """The baseline every attack below departs from."""
    for request in (_signed(), _presigned()):
        claim = read_signature(request)
        assert claim is not None
        verify_signature(claim, SECRET, now=NOW, region=REGION)


# --- tampering after signing -------------------------------------------------------


def test_altered_body() -> None:
    request = _replace(_signed(), body=b"Action=GetCallerIdentity&Version=2011-06-16")
    _refused(request, "SignatureDoesNotMatch", 403)


def test_body_swapped_for_another_action() -> None:
    body = b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::1:role/Admin"
    _refused(_replace(_signed(), body=body), "SignatureDoesNotMatch", 403)


def test_altered_query_param() -> None:
    request = _signed(method="GET", data=None, params={"Action": "GetCallerIdentity", "x": "1"})
    tampered = _replace(request, query_string=request.query_string.replace("x=1", "x=2"))
    _refused(tampered, "SignatureDoesNotMatch", 403)


def test_added_query_param() -> None:
    request = _signed(method="GET", data=None, params={"Action": "GetCallerIdentity"})
    tampered = _replace(request, query_string=request.query_string + "&DurationSeconds=43200")
    _refused(tampered, "SignatureDoesNotMatch", 403)


def test_param_added_to_presigned_url() -> None:
    request = _presigned()
    tampered = _replace(request, query_string="Extra=1&" + request.query_string)
    _refused(tampered, "SignatureDoesNotMatch", 403)


def test_altered_path() -> None:
    _refused(_replace(_signed(path="/sts"), path="/admin"), "SignatureDoesNotMatch", 403)


def test_altered_method() -> None:
    _refused(_replace(_signed(), method="PUT"), "SignatureDoesNotMatch", 403)


def test_altered_signed_header() -> None:
    request = _signed(headers={"X-Tenant": "alpha"})
    _refused(_set_header(request, "X-Tenant", "beta"), "SignatureDoesNotMatch", 403)


def test_altered_host() -> None:
    _refused(_set_header(_signed(), "Host", "evil.example"), "SignatureDoesNotMatch", 403)


def test_swapped_session_token() -> None:
    request = _set_header(_signed(), "X-Amz-Security-Token", "AnotherSessionsToken==")
    _refused(request, "SignatureDoesNotMatch", 403)


def test_signed_headers_list_names_an_absent_header() -> None:
    request = _signed()
    head, _, rest = _authorization(request).partition("SignedHeaders=")
    listed, tail = rest.split(",", 1)
    names = ";".join(sorted([*listed.split(";"), "x-added"]))
    tampered = _set_header(request, "Authorization", f"{head}SignedHeaders={names},{tail}")
    error = _refused(tampered, "SignatureDoesNotMatch", 403)
    assert (
        error.message == "Header 'x-added' is listed in SignedHeaders but absent from the request."
    )


def test_content_sha256_header_contradicting_the_body() -> None:
    original = hashlib.sha256(FORM).hexdigest()
    request = _signed(headers={"X-Amz-Content-SHA256": original})
    tampered = _replace(request, body=b"Action=AssumeRole&Version=2011-06-15")
    error = _refused(tampered, "SignatureDoesNotMatch", 403)
    assert "x-amz-content-sha256" in error.message


def test_unsigned_payload_refused() -> None:
    request = _signed(headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    _refused(request, "IncompleteSignature", 400)


def test_streaming_payload_refused() -> None:
    request = _signed(headers={"X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"})
    _refused(request, "IncompleteSignature", 400)


def test_unsigned_token_header_refused() -> None:
    request = _signed(token=None)
    tampered = _edit_headers(request, lambda hs: [*hs, ("X-Amz-Security-Token", TOKEN)])
    error = _refused(tampered, "IncompleteSignature", 400)
    assert error.message == "X-Amz-Security-Token must be a signed header."


def test_token_in_header_and_query_refused() -> None:
    request = _signed()
    tampered = _replace(request, query_string=f"X-Amz-Security-Token={quote(TOKEN, safe='')}")
    _refused(tampered, "IncompleteSignature", 400)


# --- wrong key, scope, or signature ------------------------------------------------


def test_wrong_secret() -> None:
    _refused(_signed(), "SignatureDoesNotMatch", 403, secret="A" * 40)


@pytest.mark.parametrize(
    ("signature", "code", "status"),
    [
        ("", "IncompleteSignature", 400),
        ("0", "SignatureDoesNotMatch", 403),
        ("deadbeef", "SignatureDoesNotMatch", 403),
        ("g" * 64, "SignatureDoesNotMatch", 403),
        ("é" * 64, "SignatureDoesNotMatch", 403),
        ("Z" * 10_000, "IncompleteSignature", 400),
    ],
)
def test_forged_signature_values(signature: str, code: str, status: int) -> None:
    request = _signed()
    authorization = _authorization(request).rsplit("Signature=", 1)[0] + f"Signature={signature}"
    _refused(_set_header(request, "Authorization", authorization), code, status)


def test_truncated_signature() -> None:
    request = _signed()
    authorization = _authorization(request)[:-1]
    _refused(_set_header(request, "Authorization", authorization), "SignatureDoesNotMatch", 403)


def test_uppercased_signature() -> None:
    request = _signed()
    head, signature = _authorization(request).rsplit("Signature=", 1)
    tampered = _set_header(request, "Authorization", f"{head}Signature={signature.upper()}")
    _refused(tampered, "SignatureDoesNotMatch", 403)


def test_signed_for_another_region() -> None:
    error = _refused(_signed(region="eu-west-1"), "SignatureDoesNotMatch", 403)
    assert error.message.startswith(
        "Credential should be scoped to a valid region, not 'eu-west-1'. "
    )


def test_signed_for_another_service() -> None:
    error = _refused(_signed(service="iam"), "SignatureDoesNotMatch", 403)
    assert error.message == "Credential should be scoped to correct service: 'sts'. "


def test_credential_rescoped_to_another_date() -> None:
    request = _signed()
    authorization = _authorization(request).replace("/20261129/", "/20261130/")
    error = _refused(
        _set_header(request, "Authorization", authorization), "SignatureDoesNotMatch", 403
    )
    assert error.message == (
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
        "HTTP: '20261130' != '20261129', from 'X-Amz-Date'."
    )


def test_credential_rescoped_to_another_region_by_editing() -> None:
    request = _signed()
    authorization = _authorization(request).replace("/us-east-1/", "/us-west-2/")
    tampered = _set_header(request, "Authorization", authorization)
    _refused(tampered, "SignatureDoesNotMatch", 403, region="us-west-2")


def test_x_amz_date_moved_with_the_credential() -> None:
    """Shifting both the date header and the scope keeps them consistent, not the MAC."""
    request = _signed()
    authorization = _authorization(request).replace("/20261129/", "/20261130/")
    tampered = _set_header(
        _set_header(request, "Authorization", authorization), "X-Amz-Date", "20261130T043000Z"
    )
    _refused(tampered, "SignatureDoesNotMatch", 403, now=NOW + 86400)


# --- time ---------------------------------------------------------------------------


def test_x_amz_date_far_in_the_past() -> None:
    error = _refused(_signed(), "SignatureDoesNotMatch", 403, now=NOW + 30 * 86400)
    assert error.message.startswith("Signature expired: 20261129T043000Z is now earlier than")


def test_x_amz_date_far_in_the_future() -> None:
    error = _refused(_signed(), "SignatureDoesNotMatch", 403, now=NOW - 3600)
    assert error.message.startswith("Signature not yet current: 20261129T043000Z is still later")


@pytest.mark.parametrize(
    "value",
    ["20261129T043000", "2026-11-29T04:30:00Z", "20261399T043000Z", "", "20261129T043000Z,x"],
)
def test_malformed_x_amz_date(value: str) -> None:
    _refused(_set_header(_signed(), "X-Amz-Date", value), "IncompleteSignature", 400)


def test_replayed_presigned_url_after_expiry() -> None:
    request = _presigned(expires=60)
    claim = read_signature(request)
    assert claim is not None
    verify_signature(claim, SECRET, now=NOW + 30, region=REGION)
    error = _refused(request, "SignatureDoesNotMatch", 403, now=NOW + 61)
    assert error.message.startswith("Signature expired:")


def test_presigned_url_with_long_expiry_is_cut_to_fifteen_minutes() -> None:
    _refused(_presigned(expires=604800), "SignatureDoesNotMatch", 403, now=NOW + 901)


@pytest.mark.parametrize("expires", [0, 604801])
def test_presigned_expires_out_of_range(expires: int) -> None:
    error = _refused(_presigned(expires=expires), "SignatureDoesNotMatch", 403)
    assert error.message == f"X-Amz-Expires must be between 1 and 604800 seconds, not {expires}."


@pytest.mark.parametrize("expires", ["-1", "60.5", "1e3", "9" * 20])
def test_presigned_expires_not_a_number(expires: str) -> None:
    request = _presigned()
    query = request.query_string.replace("X-Amz-Expires=60", f"X-Amz-Expires={expires}")
    _refused(_replace(request, query_string=query), "IncompleteSignature", 400)


# --- malformed signatures ----------------------------------------------------------


@pytest.mark.parametrize(
    "algorithm", ["aws4-hmac-sha256", "AWS4-HMAC-SHA512", "AWS4-ECDSA-P256-SHA256", "AWS"]
)
def test_other_algorithms_in_header(algorithm: str) -> None:
    request = _signed()
    authorization = _authorization(request).replace("AWS4-HMAC-SHA256", algorithm, 1)
    _refused(_set_header(request, "Authorization", authorization), "IncompleteSignature", 400)


def test_odd_case_algorithm_in_presigned_query() -> None:
    request = _presigned()
    query = request.query_string.replace(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=Aws4-Hmac-Sha256"
    )
    _refused(_replace(request, query_string=query), "IncompleteSignature", 400)


def test_bearer_token_is_not_echoed() -> None:
    secretish = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.c2ln"
    request = _set_header(_signed(), "Authorization", f"Bearer {secretish}")
    error = _refused(request, "IncompleteSignature", 400)
    assert secretish not in error.message
    bare = _set_header(_signed(), "Authorization", secretish)
    assert secretish not in _refused(bare, "IncompleteSignature", 400).message


def test_duplicate_authorization_headers() -> None:
    request = _signed()
    doubled = _edit_headers(request, lambda hs: [*hs, ("authorization", _authorization(request))])
    _refused(doubled, "IncompleteSignature", 400)


@pytest.mark.parametrize("name", ["Host", "X-Amz-Date", "X-Amz-Security-Token"])
def test_duplicate_single_valued_headers(name: str) -> None:
    request = _signed()
    value = request.header(name)
    assert value is not None
    _refused(_edit_headers(request, lambda hs: [*hs, (name, value)]), "IncompleteSignature", 400)


def test_duplicate_presigned_signature_param() -> None:
    request = _presigned()
    query = request.query_string + "&X-Amz-Signature=" + "0" * 64
    _refused(_replace(request, query_string=query), "IncompleteSignature", 400)


def test_percent_encoded_duplicate_auth_param() -> None:
    """``X-Amz-Signatur%65`` decodes to the same name and counts as a repeat."""
    request = _presigned()
    query = request.query_string + "&X-Amz-Signatur%65=" + "0" * 64
    _refused(_replace(request, query_string=query), "IncompleteSignature", 400)


def test_header_and_query_signature_together() -> None:
    request = _replace(_signed(), query_string=_presigned().query_string)
    _refused(request, "IncompleteSignature", 400)


@pytest.mark.parametrize(
    "credential",
    [
        f"{AKID}/20261129/us-east-1/sts/aws4_request/extra",
        f"{AKID}//20261129/us-east-1/sts/aws4_request",
        f"{AKID}/20261129/us-east-1/sts/aws4_request/",
        f"/{AKID}/20261129/us-east-1/sts/aws4_request",
        f"{AKID}/20261129/us-east-1/sts/aws5_request",
        f"{AKID}/2026-11-29/us-east-1/sts/aws4_request",
        f"{AKID}/20261129/us-east-1/sts",
    ],
)
def test_malformed_credential(credential: str) -> None:
    request = _signed()
    authorization = _authorization(request).replace(
        f"Credential={SCOPE}", f"Credential={credential}"
    )
    _refused(_set_header(request, "Authorization", authorization), "IncompleteSignature", 400)


@pytest.mark.parametrize(
    "signed_headers",
    ["x-amz-date", "Host;x-amz-date", "host;;x-amz-date", "host;host;x-amz-date", "host x"],
)
def test_malformed_signed_headers(signed_headers: str) -> None:
    request = _signed(token=None)
    head, _, rest = _authorization(request).partition("SignedHeaders=")
    tail = rest.split(",", 1)[1]
    tampered = _set_header(request, "Authorization", f"{head}SignedHeaders={signed_headers},{tail}")
    _refused(tampered, "IncompleteSignature", 400)


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256 Credential=a/b/c/d/e Signature=x",
        f"AWS4-HMAC-SHA256 Credential={SCOPE}, Credential={SCOPE}, SignedHeaders=host, Signature=0",
        f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host, Signature=0, Policy=x",
        f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host, Signature=0,",
        "AWS4-HMAC-SHA256 ",
    ],
)
def test_malformed_authorization_parameters(authorization: str) -> None:
    _refused(_set_header(_signed(), "Authorization", authorization), "IncompleteSignature", 400)


def test_huge_authorization_header() -> None:
    request = _signed()
    authorization = _authorization(request).replace(
        "SignedHeaders=", "SignedHeaders=" + "a" * 100_000 + ";"
    )
    error = _refused(
        _set_header(request, "Authorization", authorization), "IncompleteSignature", 400
    )
    assert len(error.message) < 200


def test_huge_signed_header_value_still_checked() -> None:
    request = _signed(headers={"X-Big": "v"})
    _refused(_set_header(request, "X-Big", "v" * 1_000_000), "SignatureDoesNotMatch", 403)


def test_too_many_signed_headers() -> None:
    names = ";".join(sorted(["host", *(f"x-h{i:03d}" for i in range(100))]))
    request = _signed()
    head, _, rest = _authorization(request).partition("SignedHeaders=")
    tail = rest.split(",", 1)[1]
    tampered = _set_header(request, "Authorization", f"{head}SignedHeaders={names},{tail}")
    _refused(tampered, "IncompleteSignature", 400)


def test_huge_credential_is_not_echoed_whole() -> None:
    request = _signed()
    credential = "A" * 5000 + "/20261129/us-east-1/sts/aws4_request"
    authorization = _authorization(request).replace(SCOPE, credential)
    error = _refused(
        _set_header(request, "Authorization", authorization), "IncompleteSignature", 400
    )
    assert len(error.message) < 300
