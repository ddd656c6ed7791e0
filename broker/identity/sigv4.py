"""AWS Signature Version 4 verification, byte-exact with what botocore signs.

Every signed STS action (GetCallerIdentity, AssumeRole, GetSessionToken, ...) reaches the
broker signed by an unmodified AWS SDK, either in the ``Authorization`` header or as a
presigned query string. Verification is split in two so the caller can look the access key
up in between, exactly where real STS answers ``InvalidClientTokenId``:

1. :func:`read_signature` parses what the request *claims* (key, scope, time, signed
   headers) and computes the string to sign. No secret is involved, so it runs before the
   key lookup; it raises only ``IncompleteSignature`` (400) for malformed signatures.
2. :func:`verify_signature` checks scope, time and the HMAC with the secret; every refusal
   is ``SignatureDoesNotMatch`` (403), as STS answers.

The canonical request follows botocore's ``SigV4Auth`` / ``SigV4QueryAuth`` for non-S3
services: the path is normalised (dot segments and empty segments removed) and URI-encoded
once more (so ``%20`` becomes ``%2520``), query parameters are decoded and re-encoded with
RFC 3986 unreserved characters, header values are trimmed and whitespace-folded, and the
payload hash is SHA-256 of the body. Messages never echo a signature or a session token.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_to_bytes

from broker.errors import StsError
from broker.request import HttpRequestParts

__all__ = ["SignatureClaim", "read_signature", "verify_signature"]

_ALGORITHM = "AWS4-HMAC-SHA256"
_TERMINATOR = "aws4_request"
_MAX_EXPIRES = 604800
"""AWS's ceiling for ``X-Amz-Expires``: a signing key is only valid for seven days."""
_MAX_AUTHORIZATION_CHARS = 8192
_MAX_CREDENTIAL_CHARS = 512
_MAX_SIGNED_HEADERS = 64
_ECHO_LIMIT = 128
_AMZ_DATE_RE = re.compile(r"\d{8}T\d{6}Z", re.ASCII)
_SCOPE_DATE_RE = re.compile(r"\d{8}", re.ASCII)
_EXPIRES_RE = re.compile(r"\d{1,12}", re.ASCII)
_TOKEN_RE = re.compile(r"[A-Za-z0-9-]{1,32}", re.ASCII)
_HEADER_NAME_RE = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+", re.ASCII)
_PRINTABLE_RE = re.compile(r"[\x21-\x7e]*", re.ASCII)
_SINGLE_HEADERS = ("authorization", "host", "x-amz-date", "x-amz-security-token")
"""Headers whose repetition could make the verifier and the action read different values."""
_QUERY_AUTH_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)


@dataclass(frozen=True)
class SignatureClaim:
    """What a request claims about its signer, read before we know the secret.

    ``string_to_sign`` is complete: the only thing left to check is the HMAC under the
    secret the caller finds for ``access_key_id``, plus scope and time.
    """

    access_key_id: str
    security_token: str | None = field(repr=False)
    """``X-Amz-Security-Token`` (header or query), ``None`` if absent; a credential, so no repr."""
    scope_date: str
    """``YYYYMMDD`` from the credential scope."""
    region: str
    service: str
    signed_at: float
    """``X-Amz-Date`` (or ``Date``) as POSIX seconds."""
    presigned: bool
    expires_in: int | None
    """``X-Amz-Expires`` for presigned requests, else ``None``."""
    signed_headers: tuple[str, ...]
    signature: str = field(repr=False)
    string_to_sign: str
    _amz_date: str = field(repr=False)
    """The request time in ISO 8601 basic form, as it appears in the string to sign."""
    _date_source: str = field(repr=False)
    """``X-Amz-Date`` or ``Date``: named in the scope-date refusal as AWS does."""
    _defect: str | None = field(default=None, repr=False)
    """A mismatch found without the secret (tampered body hash, absent signed header).

    Kept until :func:`verify_signature` so the caller still answers an unknown key with
    ``InvalidClientTokenId`` first, the order real STS uses.
    """


def _incomplete(message: str) -> StsError:
    return StsError("IncompleteSignature", message, 400)


def _mismatch(message: str) -> StsError:
    return StsError("SignatureDoesNotMatch", message, 403)


def _echo(value: str) -> str:
    """A client-supplied, non-secret value made safe to quote in a message (bounded, printable)."""
    clipped = value[:_ECHO_LIMIT]
    if not _PRINTABLE_RE.fullmatch(clipped.replace(" ", "")):
        return "(unprintable)"
    return clipped + ("..." if len(value) > _ECHO_LIMIT else "")


def _basic_iso(ts: float) -> str:
    """POSIX seconds as SigV4's ``YYYYMMDDTHHMMSSZ``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(int(ts)))


def _span(seconds: int) -> str:
    """A window length the way AWS prints it in time refusals (``15 min.``)."""
    return f"{seconds // 60} min." if seconds % 60 == 0 else f"{seconds} sec."


# --- request parsing -----------------------------------------------------------------


def _query_pairs(query_string: str) -> list[tuple[str, str]]:
    """Raw ``(key, value)`` pairs in arrival order, split the way botocore splits them."""
    if not query_string:
        return []
    pairs = []
    for part in query_string.split("&"):
        key, _, value = part.partition("=")
        pairs.append((key, value))
    return pairs


def _query_bytes(raw: str) -> bytes:
    """Percent-decode one query component; ``+`` is a space, as in the form encoding
    botocore's request preparer (``urlencode``) puts on the wire."""
    return unquote_to_bytes(raw.replace("+", " "))


def _query_text(raw: str) -> str:
    return _query_bytes(raw).decode("utf-8", "replace")


def _canonical_query(pairs: Sequence[tuple[str, str]], *, drop: str | None) -> str:
    """Decode and re-encode every pair with RFC 3986 unreserved characters, then sort.

    Decoding first makes the result independent of how the client spelled its encoding
    (``+`` or ``%20``, ``%7E`` or ``~``); the bytes are never reinterpreted as text, so
    invalid UTF-8 survives exactly.
    """
    encoded = [
        (quote(_query_bytes(key), safe="-_.~"), quote(_query_bytes(value), safe="-_.~"))
        for key, value in pairs
        if drop is None or _query_text(key) != drop
    ]
    return "&".join(f"{key}={value}" for key, value in sorted(encoded))


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 dot-segment removal that also drops empty segments, as AWS and botocore do."""
    output: list[str] = []
    for segment in path.split("/"):
        if not segment or segment == ".":
            continue
        if segment == "..":
            if output:
                output.pop()
        else:
            output.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and output else ""
    return first + "/".join(output) + last


def _canonical_uri(raw_path: str) -> str:
    """Non-S3 canonical URI: normalise the path as sent, then URI-encode it once more."""
    return quote(_remove_dot_segments(raw_path) if raw_path else "/", safe="/~")


_Headers = Mapping[str, Sequence[str]]
"""A request's headers by lower-cased name, values in arrival order (see :func:`_index`)."""


def _index(request: HttpRequestParts) -> dict[str, list[str]]:
    """Group the headers by lower-cased name once, instead of rescanning every header for
    each of the dozen names the verifier looks up."""
    out: dict[str, list[str]] = {}
    for key, value in request.headers:
        out.setdefault(key.lower(), []).append(value)
    return out


def _header_values(headers: _Headers, name: str) -> Sequence[str]:
    return headers.get(name, ())


def _trimall(value: str) -> str:
    """SigV4's Trimall: strip and fold runs of whitespace to one space (botocore's split)."""
    return " ".join(value.split())


def _parse_algorithm(algorithm: str) -> None:
    if algorithm == _ALGORITHM:
        return
    named = f"'{algorithm}'" if _TOKEN_RE.fullmatch(algorithm) else "this scheme"
    raise _incomplete(
        f"Unsupported AWS 'algorithm': {named}. Only {_ALGORITHM} is accepted "
        "(SigV4a and other schemes are not)."
    )


def _parse_authorization(value: str) -> dict[str, str]:
    """The ``Credential`` / ``SignedHeaders`` / ``Signature`` parameters of the header.

    Missing parameters are left out rather than refused here, so the caller can name all
    of them (and a missing date) in one message, as AWS does.
    """
    if len(value) > _MAX_AUTHORIZATION_CHARS:
        raise _incomplete(f"Authorization header exceeds {_MAX_AUTHORIZATION_CHARS} characters.")
    algorithm, _, rest = value.strip().partition(" ")
    _parse_algorithm(algorithm)
    params: dict[str, str] = {}
    components = rest.split(",") if rest.strip() else []
    for index, part in enumerate(components, start=1):
        key, eq, val = part.strip().partition("=")
        if not eq:
            raise _incomplete(
                f"Authorization header component {index} is not a valid key=value pair "
                "(missing equal-sign)."
            )
        if key not in ("Credential", "SignedHeaders", "Signature"):
            named = f"'{key}'" if _TOKEN_RE.fullmatch(key) else "an unknown key"
            raise _incomplete(f"Authorization header has an unexpected parameter {named}.")
        if key in params:
            raise _incomplete(f"Authorization header repeats the '{key}' parameter.")
        if val.strip():
            params[key] = val.strip()
    return params


def _parse_credential(credential: str) -> tuple[str, str, str, str]:
    """``(access_key_id, date, region, service)`` from ``AKID/DATE/REGION/SERVICE/aws4_request``."""
    if len(credential) > _MAX_CREDENTIAL_CHARS:
        raise _incomplete(f"Credential exceeds {_MAX_CREDENTIAL_CHARS} characters.")
    elements = credential.split("/")
    if len(elements) != 5 or not all(elements):
        raise _incomplete(
            "Credential must have exactly 5 slash-delimited elements, e.g. "
            f"keyid/date/region/service/term, got '{_echo(credential)}'"
        )
    access_key_id, scope_date, region, service, terminator = elements
    if terminator != _TERMINATOR:
        raise _incomplete(
            f"Credential should be scoped with a valid terminator: '{_TERMINATOR}', "
            f"not '{_echo(terminator)}'. "
        )
    if not _SCOPE_DATE_RE.fullmatch(scope_date):
        raise _incomplete(f"Credential scope date must be YYYYMMDD, not '{_echo(scope_date)}'.")
    return access_key_id, scope_date, region, service


def _parse_signed_headers(value: str) -> tuple[str, ...]:
    names = tuple(value.split(";"))
    if len(names) > _MAX_SIGNED_HEADERS:
        raise _incomplete(f"SignedHeaders lists more than {_MAX_SIGNED_HEADERS} headers.")
    if not all(_HEADER_NAME_RE.fullmatch(name) for name in names) or len(set(names)) != len(names):
        raise _incomplete(
            "SignedHeaders must be a ';'-separated list of distinct lowercase header names."
        )
    if "host" not in names:
        raise _incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        )
    return names


def _parse_amz_date(value: str, source: str) -> float:
    if not _AMZ_DATE_RE.fullmatch(value):
        raise _incomplete(f"{source} must be in ISO 8601 basic format YYYYMMDD'T'HHMMSS'Z'.")
    fields = (
        int(value[0:4]),
        int(value[4:6]),
        int(value[6:8]),
        int(value[9:11]),
        int(value[11:13]),
        int(value[13:15]),
    )
    try:
        # ``datetime`` accepts exactly what ``strptime`` does, bar leap seconds (:60,
        # :61), which go the slow way below; it costs a tenth of ``strptime``.
        datetime(*fields)
    except ValueError:
        pass
    else:
        return float(calendar.timegm(fields))
    try:
        parsed = time.strptime(value, "%Y%m%dT%H%M%SZ")
    except ValueError:
        raise _incomplete(f"{source} is not a valid date and time.") from None
    return float(calendar.timegm(parsed))


def _parse_http_date(value: str) -> float:
    """The RFC 7231 ``Date`` header botocore sends when the request already carried one."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise _incomplete("Date header is not a valid RFC 7231 date.") from None
    return float(calendar.timegm(parsed.utctimetuple()))


def _single(headers: _Headers, name: str) -> str | None:
    values = _header_values(headers, name)
    return values[0] if values else None


def _payload_hash(request: HttpRequestParts, headers: _Headers) -> tuple[str, str | None]:
    """``(hash, defect)``: SHA-256 of the body; a declared ``x-amz-content-sha256`` must agree.

    STS signs the payload, so ``UNSIGNED-PAYLOAD`` and streaming forms are malformed here.
    """
    actual = hashlib.sha256(request.body).hexdigest()
    declared_values = _header_values(headers, "x-amz-content-sha256")
    if not declared_values:
        return actual, None
    declared = ",".join(declared_values)
    if declared == "UNSIGNED-PAYLOAD" or declared.startswith("STREAMING-"):
        raise _incomplete(
            f"x-amz-content-sha256 '{_echo(declared)}' is not accepted for sts: "
            "the request payload must be signed."
        )
    if declared != actual:
        return actual, (
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        )
    return actual, None


@dataclass(frozen=True)
class _Parsed:
    """The signature parameters, whichever form carried them."""

    credential: str
    signed_headers: str
    signature: str
    amz_date: str
    signed_at: float
    date_source: str
    security_token: str | None
    expires_in: int | None


def _from_header(headers: _Headers, authorization: str, query_token: str | None) -> _Parsed:
    params = _parse_authorization(authorization)
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if name not in params
    ]
    amz_date = _single(headers, "x-amz-date")
    date_header = _header_values(headers, "date")
    if amz_date is None and not date_header:
        problems.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if problems:
        shown = ", ".join(
            f"{name}={_echo(params[name])}"
            for name in ("Credential", "SignedHeaders")
            if name in params
        )
        raise _incomplete(" ".join(problems) + f" Authorization={_ALGORITHM} {shown}".rstrip())
    if amz_date is not None:
        signed_at = _parse_amz_date(amz_date, "X-Amz-Date")
        source = "X-Amz-Date"
    else:
        if len(date_header) > 1:
            raise _incomplete("Header 'date' must appear at most once.")
        signed_at = _parse_http_date(date_header[0])
        amz_date = _basic_iso(signed_at)
        source = "Date"
    signed_headers = params["SignedHeaders"]
    header_token = _single(headers, "x-amz-security-token")
    if header_token is not None and query_token is not None:
        raise _incomplete(
            "X-Amz-Security-Token must be sent once: in a header or in the query, not both."
        )
    if header_token is not None and "x-amz-security-token" not in signed_headers.split(";"):
        raise _incomplete("X-Amz-Security-Token must be a signed header.")
    return _Parsed(
        credential=params["Credential"],
        signed_headers=signed_headers,
        signature=params["Signature"],
        amz_date=amz_date,
        signed_at=signed_at,
        date_source=source,
        security_token=header_token if header_token is not None else query_token,
        expires_in=None,
    )


def _from_query(headers: _Headers, params: dict[str, list[str]]) -> _Parsed:
    missing = [f"'{name}'" for name in _QUERY_AUTH_PARAMS if not params.get(name)]
    if missing:
        raise _incomplete(
            f"AWS query-string parameters must include {', '.join(missing)}. "
            "Re-examine the query-string parameters."
        )
    _parse_algorithm(params["X-Amz-Algorithm"][0])
    if _header_values(headers, "x-amz-security-token"):
        raise _incomplete(
            "X-Amz-Security-Token must be sent once: in a header or in the query, not both."
        )
    expires = params["X-Amz-Expires"][0]
    if not _EXPIRES_RE.fullmatch(expires):
        raise _incomplete("X-Amz-Expires must be a whole number of seconds.")
    amz_date = params["X-Amz-Date"][0]
    tokens = params.get("X-Amz-Security-Token")
    return _Parsed(
        credential=params["X-Amz-Credential"][0],
        signed_headers=params["X-Amz-SignedHeaders"][0],
        signature=params["X-Amz-Signature"][0],
        amz_date=amz_date,
        signed_at=_parse_amz_date(amz_date, "X-Amz-Date"),
        date_source="X-Amz-Date",
        security_token=tokens[0] if tokens else None,
        expires_in=int(expires),
    )


def read_signature(request: HttpRequestParts) -> SignatureClaim | None:
    """Parse the SigV4 signature a request carries and compute its string to sign.

    Returns ``None`` when the request carries no signature at all (no ``Authorization``
    header, no ``X-Amz-Algorithm`` / ``X-Amz-Credential`` / ``X-Amz-Signature`` query
    parameter): the caller decides whether the action needs one
    (``MissingAuthenticationToken``). Raises :class:`StsError` ``IncompleteSignature``
    (400) for anything malformed, so nothing ambiguous reaches the key lookup.
    """
    pairs = _query_pairs(request.query_string)
    params: dict[str, list[str]] = {}
    for key, value in pairs:
        name = _query_text(key)
        if name.startswith("X-Amz-"):
            params.setdefault(name, []).append(_query_text(value))
    headers = _index(request)
    authorizations = _header_values(headers, "authorization")
    query_auth = any(
        name in params for name in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature")
    )
    if not authorizations and not query_auth:
        return None
    if authorizations and query_auth:
        raise _incomplete(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified"
        )
    for name in _SINGLE_HEADERS:
        if len(_header_values(headers, name)) > 1:
            raise _incomplete(f"Header '{name}' must appear at most once.")
    for name in (*_QUERY_AUTH_PARAMS, "X-Amz-Security-Token"):
        if len(params.get(name, ())) > 1:
            raise _incomplete(f"Query parameter '{name}' must appear at most once.")

    query_tokens = params.get("X-Amz-Security-Token")
    query_token = query_tokens[0] if query_tokens else None
    parsed = (
        _from_header(headers, authorizations[0], query_token)
        if authorizations
        else _from_query(headers, params)
    )
    access_key_id, scope_date, region, service = _parse_credential(parsed.credential)
    signed_headers = _parse_signed_headers(parsed.signed_headers)
    payload_hash, defect = _payload_hash(request, headers)

    canonical_headers = []
    for name in signed_headers:
        values = _header_values(headers, name)
        if not values and defect is None:
            defect = f"Header '{name}' is listed in SignedHeaders but absent from the request."
        canonical_headers.append(f"{name}:{','.join(_trimall(v) for v in values)}\n")
    canonical_request = "\n".join(
        (
            request.method,
            _canonical_uri(request.path),
            _canonical_query(pairs, drop=None if authorizations else "X-Amz-Signature"),
            "".join(canonical_headers),
            parsed.signed_headers,
            payload_hash,
        )
    )
    scope = f"{scope_date}/{region}/{service}/{_TERMINATOR}"
    string_to_sign = "\n".join(
        (
            _ALGORITHM,
            parsed.amz_date,
            scope,
            hashlib.sha256(canonical_request.encode("utf-8", "surrogatepass")).hexdigest(),
        )
    )
    return SignatureClaim(
        access_key_id=access_key_id,
        security_token=parsed.security_token,
        scope_date=scope_date,
        region=region,
        service=service,
        signed_at=parsed.signed_at,
        presigned=not authorizations,
        expires_in=parsed.expires_in,
        signed_headers=signed_headers,
        signature=parsed.signature,
        string_to_sign=string_to_sign,
        _amz_date=parsed.amz_date,
        _date_source=parsed.date_source,
        _defect=defect,
    )


# --- verification --------------------------------------------------------------------


class _SigningKeyCache:
    """A small, thread-safe LRU of derived SigV4 signing keys.

    Deriving a key costs four HMACs; a client signs many requests per day with one key,
    so caching makes verification one HMAC. Entries are keyed by an HMAC of the secret
    under a per-process random key, never by the secret itself, so the cache's keys reveal
    nothing offline.
    """

    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._pepper = os.urandom(32)
        self._entries: OrderedDict[tuple[bytes, str, str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, secret: str, date: str, region: str, service: str) -> bytes:
        fingerprint = hmac.new(self._pepper, secret.encode("utf-8"), hashlib.sha256).digest()
        cache_key = (fingerprint, date, region, service)
        with self._lock:
            cached = self._entries.get(cache_key)
            if cached is not None:
                self._entries.move_to_end(cache_key)
                return cached
        key = _derive_signing_key(secret, date, region, service)
        with self._lock:
            self._entries[cache_key] = key
            self._entries.move_to_end(cache_key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return key


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _derive_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k_date = _hmac(f"AWS4{secret}".encode(), date)
    return _hmac(_hmac(_hmac(k_date, region), service), _TERMINATOR)


_SIGNING_KEYS = _SigningKeyCache(max_entries=1024)


def _check_scope(claim: SignatureClaim, region: str, service: str) -> None:
    if claim.scope_date != claim._amz_date[:8]:
        raise _mismatch(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{claim.scope_date}' != '{claim._amz_date[:8]}', "
            f"from '{claim._date_source}'."
        )
    if claim.region != region:
        raise _mismatch(
            f"Credential should be scoped to a valid region, not '{_echo(claim.region)}'. "
            f"This broker signs in '{region}': set the client's region (botocore "
            f"region_name, AWS_REGION) to '{region}'."
        )
    if claim.service != service:
        raise _mismatch(f"Credential should be scoped to correct service: '{service}'. ")


def _check_time(claim: SignatureClaim, now: float, max_skew: int) -> None:
    """Header form: within ``max_skew`` either way. Presigned: live for
    ``min(X-Amz-Expires, max_skew)`` after signing, the window real STS enforces."""
    window = max_skew
    if claim.presigned:
        expires = claim.expires_in
        if expires is None or not 1 <= expires <= _MAX_EXPIRES:
            raise _mismatch(
                f"X-Amz-Expires must be between 1 and {_MAX_EXPIRES} seconds, not {expires}."
            )
        window = min(expires, max_skew)
    if claim.signed_at < now - window:
        raise _mismatch(
            f"Signature expired: {claim._amz_date} is now earlier than "
            f"{_basic_iso(now - window)} ({_basic_iso(now)} - {_span(window)})"
        )
    if claim.signed_at > now + max_skew:
        raise _mismatch(
            f"Signature not yet current: {claim._amz_date} is still later than "
            f"{_basic_iso(now + max_skew)} ({_basic_iso(now)} + {_span(max_skew)})"
        )


def verify_signature(
    claim: SignatureClaim,
    secret_access_key: str,
    *,
    now: float,
    region: str,
    service: str = "sts",
    max_skew: int = 900,
) -> None:
    """Check a claim against the signer's secret; return quietly only if it is genuine.

    Raises :class:`StsError` ``SignatureDoesNotMatch`` (403) for a defect found while
    reading, a credential scoped to another date, region or service, a time outside the
    allowed window, or a wrong signature (compared in constant time).
    """
    if claim._defect is not None:
        raise _mismatch(claim._defect)
    _check_scope(claim, region, service)
    _check_time(claim, now, max_skew)
    key = _SIGNING_KEYS.get(secret_access_key, claim.scope_date, claim.region, claim.service)
    expected = hmac.new(key, claim.string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    provided = claim.signature.encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(expected.encode("ascii"), provided):
        raise _mismatch(_SIGNATURE_MISMATCH)
