"""Checked field types for the config file, and the words their mistakes are reported in.

Every value in the file goes through one of these checks instead of pydantic's own
coercion, so a message reads like the rest of the broker's (``must be between 3600 and
43200 (got 99999)``), names the type instead of echoing a value that may be secret, and
the JSON Schema the editor sees states the same rule. Shared by the models
(:mod:`broker.config.schema`), the loader and the cross-checks, and by the few later
stages (issuer key loader, JWKS source) that must apply the same rule to a value that
arrives after start-up.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import SplitResult, urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, SecretStr, ValidationInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from broker.errors import quoted
from broker.jsonread import JsonRefusedError, read_json
from broker.loopback import is_loopback_host
from broker.totp import decode_secret

KeyPath = tuple[str | int, ...]
"""A position in the file: mapping keys (str) and list indexes (int), from the top."""

_KEY_TEXT = (
    "generate one with: python -c "
    '"import os,base64;print(base64.b64encode(os.urandom(32)).decode())"'
)


def format_key_path(key_path: KeyPath) -> str:
    """``accounts.111111111111.users.alice.access_keys[0].id``; odd keys are JSON-quoted."""
    out = ""
    for part in key_path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = part if re.fullmatch(r"[^.\s\[\]\"']+", part) else json.dumps(part)
        out = f"{out}.{text}" if out else text
    return out


def line_of(lines: Mapping[KeyPath, int], key_path: KeyPath) -> int | None:
    for end in range(len(key_path), -1, -1):
        line = lines.get(key_path[:end])
        if line is not None:
            return line
    return None


def fail(reason: str) -> PydanticCustomError:
    # The reason goes through the context: a template would treat "${" and "{" as fields.
    return PydanticCustomError("config", "{reason}", {"reason": reason})


def kind_of(value: object) -> str:
    """A value's type in YAML words; used instead of the value so nothing secret is echoed."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def shown(value: str) -> str:
    """A non-secret string for a message, shortened so one line stays one line."""
    return quoted(value, 60)


def as_string(value: object) -> str:
    if not isinstance(value, str):
        raise fail(f"must be a string (got {kind_of(value)}); quote it")
    return value


@dataclass(frozen=True, eq=False)
class Checked:
    """Field metadata: our own check (so messages read like the rest) plus its JSON Schema.

    Compared by identity (``eq=False``): typing hashes ``Annotated`` metadata, and the
    schema dict is not hashable.
    """

    check: Callable[[object], Any]
    schema: dict[str, Any]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(self.check)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return dict(self.schema)


def text_field(regex: str, what: str, *, flags: int = re.ASCII) -> Checked:
    """A string matching ``regex`` whole; ``\\w`` is ASCII-only, as in IAM's Java patterns."""
    compiled = re.compile(regex, flags)

    def check(value: object) -> str:
        text = as_string(value)
        if not compiled.fullmatch(text):
            raise fail(f"{what} (got {shown(text)})")
        return text

    return Checked(check, {"type": "string", "pattern": f"^(?:{regex})$"})


def ranged(low: int, high: int) -> Checked:
    def check(value: object) -> int:
        # Digit strings are accepted because ${VAR} substitution always yields text.
        if isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(f"must be a whole number between {low} and {high} (got {kind_of(value)})")
        if not low <= value <= high:
            raise fail(f"must be between {low} and {high} (got {value})")
        return value

    return Checked(check, {"type": "integer", "minimum": low, "maximum": high})


def _decimal(low: float, high: float, digits: int, kind: str, bounds: str) -> Checked:
    """A number that may have a fraction, between ``low`` and ``high``; ``kind`` and
    ``bounds`` are the messages (``{got}`` the value's type or the value itself)."""
    text = re.compile(rf"[0-9]{{1,{digits}}}(?:\.[0-9]{{1,6}})?")

    def check(value: object) -> float:
        # Number strings are accepted because ${VAR} substitution always yields text.
        if isinstance(value, str) and text.fullmatch(value):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail(kind.format(got=kind_of(value)))
        if not low <= value <= high:  # NaN fails this too
            raise fail(bounds.format(got=value))
        return float(value)

    return Checked(check, {"type": "number", "minimum": low, "maximum": high})


def decimal_seconds(low: float, high: float) -> Checked:
    """A duration in seconds that may have a fraction (``0.5``), between ``low`` and ``high``."""
    return _decimal(
        low,
        high,
        6,
        f"must be a number of seconds between {low} and {high} (got {{got}})",
        f"must be between {low} and {high} seconds (got {{got}})",
    )


def rate_per_second(low: float, high: float) -> Checked:
    """A positive number of events a second; decimals allowed (``0.5`` is one every 2 s)."""
    return _decimal(
        low,
        high,
        9,
        "must be a number of calls a second (got {got})",
        f"must be between {low:g} and {high:g} calls a second (got {{got:g}})",
    )


def as_proxy_network(value: object) -> str:
    """An address or CIDR a trusted proxy sends from, normalised (``10.0.0.0/8``, ``::1/128``).

    A network with host bits set is refused with the one that was probably meant, and ``/0``
    is refused outright: trusting every address lets any client choose its own source IP.
    """
    text = as_string(value).strip()
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise fail(
            f"must be an IP address or a CIDR network like 10.0.0.0/8 or fd00::/8 "
            f"(got {shown(text)})"
        ) from None
    if network.network_address != ipaddress.ip_interface(text).ip:
        raise fail(f"{shown(text)} has host bits set; did you mean {network}?")
    if network.prefixlen == 0:
        raise fail(
            f"{network} trusts every address, so any client could choose its own source IP "
            "with X-Forwarded-For; list the addresses of your load balancers or proxies"
        )
    return str(network)


def as_public_url(value: object) -> str:
    text = as_string(value)
    what = "must be an http:// or https:// URL with a host and no query or fragment"
    if not re.fullmatch(r"[\x21-\x7e]+", text):
        raise fail(f"{what}; it contains spaces or non-ASCII characters")
    parts = urlsplit(text)
    if "@" in parts.netloc:
        raise fail("must not contain user:password@ (the URL is shown to browsers and logs)")
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or not port_ok
        or "?" in text
        or "#" in text
    ):
        raise fail(f"{what} (got {shown(text)})")
    return text.rstrip("/")


LISTEN = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}"
"""``host:port`` or ``[v6-address]:port``: where a socket binds (``admin_listen``)."""


def listen_address(text: str) -> tuple[str, int]:
    """``(host, port)`` of an address :func:`as_listen_address` accepted."""
    host, _, port = text.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


def as_listen_address(value: object) -> str:
    text = as_string(value)
    if not re.fullmatch(LISTEN, text):
        raise fail(f"must be host:port, such as 127.0.0.1:9090 or [::1]:9090 (got {shown(text)})")
    port = listen_address(text)[1]
    if not 1 <= port <= 65535:
        raise fail(f"the port must be a number from 1 to 65535 (got {port})")
    return text


def as_token_secret(value: object) -> bytes:
    text = as_string(value)
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise fail(f"must be base64 of at least 32 random bytes; {_KEY_TEXT}") from None
    if len(raw) < 32:
        raise fail(f"must decode to at least 32 bytes (decodes to {len(raw)}); {_KEY_TEXT}")
    return raw


def as_access_secret(value: object) -> SecretStr:
    text = as_string(value)
    if not re.fullmatch(r"[A-Za-z0-9/+]{40}", text):
        raise fail(f"must be 40 characters of A-Z, a-z, 0-9, / and + (got {len(text)} characters)")
    return SecretStr(text)


def as_totp_secret(value: object) -> SecretStr:
    text = as_string(value)
    try:
        raw = decode_secret(text)
    except (binascii.Error, ValueError):
        raise fail("must be base32 (A-Z, 2-7), as authenticator apps show it") from None
    if len(raw) < 16:
        raise fail(f"must decode to at least 16 bytes (decodes to {len(raw)})")
    return SecretStr(text)


MAX_POLICY_TEXT = 131072
"""The longest policy document given as a JSON string (IAM's own limits are 2-10 KiB)."""


def as_policy_document(value: object) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = read_json(value, max_size=MAX_POLICY_TEXT)
        except JsonRefusedError as exc:
            if exc.kind == "syntax":
                raise fail(f"is a string but {exc.reason.removeprefix('is ')}") from None
            raise fail(f"is a string but not JSON the broker accepts: it {exc.reason}") from None
    if not isinstance(value, dict):
        raise fail(f"must be a policy document: a mapping or a JSON object (got {kind_of(value)})")
    return value


def as_tag_value(value: object) -> str:
    text = as_string(value)
    if len(text) > 256:
        raise fail(f"tag values are at most 256 characters (got {len(text)})")
    return text


def as_list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise fail(f"must be a list (got {kind_of(value)})")
    return value


NAME = r"[\w+=,.@-]{1,64}"
IAM_PATH = r"/|/[\x21-\x7e]{0,510}/"
POLICY_NAME = r"[\w+=,.@-]{1,128}"
MANAGED_NAME = r"(?:[\w+=,.@-]+/){0,8}[\w+=,.@-]{1,128}"
MFA_SERIAL = r"arn:aws:iam::([0-9]{12}):mfa/[\w+=,.@/-]{1,512}"
REGION = r"[a-z]{2,4}(?:-[a-z]+)+-[0-9]{1,2}"

WRITE_ONLY = {"type": "string", "writeOnly": True}
AccountId = Annotated[
    str, text_field(r"[0-9]{12}", "account IDs are exactly 12 digits, written as a quoted string")
]
Alias = Annotated[str, text_field(r"[a-z0-9-]{3,63}", "must be 3-63 of a-z, 0-9 and -")]
PrincipalName = Annotated[str, text_field(NAME, "names are 1-64 of letters, digits and +=,.@_-")]
IamPath = Annotated[str, text_field(IAM_PATH, "must be / or start and end with / (e.g. /team/)")]
PolicyName = Annotated[
    str, text_field(POLICY_NAME, "policy names are 1-128 of letters, digits and +=,.@_-")
]
ManagedPolicyName = Annotated[
    str,
    text_field(
        MANAGED_NAME, "managed policy names are letters, digits, +=,.@_- and / between parts"
    ),
]
PolicyDocument = Annotated[
    dict[str, Any], Checked(as_policy_document, {"type": ["object", "string"]})
]
SamlProviderName = Annotated[
    str, text_field(r"[\w.-]{1,128}", "SAML provider names are 1-128 of letters, digits and ._-")
]
TagKey = Annotated[str, text_field(r".{1,128}", "tag keys are 1-128 characters", flags=re.DOTALL)]
TagValue = Annotated[str, Checked(as_tag_value, {"type": "string", "maxLength": 256})]
Tags = dict[TagKey, TagValue]


OidcKind = Literal["google", "cognito-user-pool", "cognito-identity", "github-actions", "generic"]
"""Which issuer's conventions (claim checks, condition keys, principal names) a provider follows."""


def oidc_url_problem(text: str) -> str | None:
    """Why ``text`` can't be an issuer or key URL (None when it can).

    Shared with the JWKS key source, which applies the same rule to a discovered
    ``jwks_uri``: the document could otherwise send the broker to fetch keys over http.
    """
    if not re.fullmatch(r"[\x21-\x7e]+", text):
        return "must be a URL without spaces or non-ASCII characters"
    parts: SplitResult = urlsplit(text)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if "@" in parts.netloc:
        return "must not contain user:password@"
    if "?" in text or "#" in text:
        return f"must not have a query or fragment (got {shown(text)})"
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        return f"must be an https:// URL with a host (got {shown(text)})"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return (
            f"must use https:// (plain http is accepted only for 127.0.0.1, ::1 and localhost; "
            f"got {shown(text)})"
        )
    return None


def infer_oidc_kind(url: str) -> OidcKind:
    """The conventions a provider follows when ``kind`` is not set, read from its URL."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    path = parts.path.rstrip("/")
    if host == "accounts.google.com" and not path:
        return "google"
    if host == "cognito-identity.amazonaws.com" and not path:
        return "cognito-identity"
    if re.fullmatch(r"cognito-idp\.[a-z0-9-]+\.amazonaws\.com", host) and re.fullmatch(
        r"/[\w-]+", path, re.ASCII
    ):
        return "cognito-user-pool"
    if host == "token.actions.githubusercontent.com":
        return "github-actions"
    return "generic"


def as_oidc_url(value: object) -> str:
    text = as_string(value)
    problem = oidc_url_problem(text)
    if problem is not None:
        raise fail(problem)
    return text


def as_client_ids(value: object) -> list[str]:
    items = as_list(value)
    if not 1 <= len(items) <= 100:
        raise fail(f"must list 1 to 100 client IDs, as IAM does (got {len(items)})")
    return distinct_strings(
        items, r"[\x20-\x7e]{1,255}", "client IDs are 1-255 printable ASCII characters", "client ID"
    )


def distinct_strings(items: list[Any], pattern: str, rule: str, noun: str) -> list[str]:
    """Each item a string matching ``pattern`` (else "``rule`` (got ...)"), none listed twice:
    a repeated client ID or audience is a copy-paste slip, so it is refused, not merged."""
    out: list[str] = []
    for item in items:
        text = as_string(item)
        if not re.fullmatch(pattern, text):
            raise fail(f"{rule} (got {shown(text)})")
        if text in out:
            raise fail(f"{noun} {shown(text)} is listed twice")
        out.append(text)
    return out


URL_SCHEMA = {"type": "string", "format": "uri"}


def oidc_arn_path(url: str) -> str:
    """The IAM name of an OIDC provider: its URL without scheme and trailing slash."""
    return url.split("://", 1)[-1].rstrip("/")


IssuerAlgorithm = Literal["RS256", "ES384"]
"""What GetWebIdentityToken signs with (AWS offers exactly these two)."""

ISSUER_ALGORITHMS: tuple[IssuerAlgorithm, ...] = get_args(IssuerAlgorithm)


_MAX_PEM_BYTES = 64 * 1024


def issuer_key_problem(pem: bytes, algorithm: str) -> str | None:
    """Why ``pem`` can't sign ``algorithm`` tokens (None when it can).

    Shared with the issuer's key loader, so a key file swapped after start-up is refused for
    the same reasons and in the same words as at load time. Never echoes the key.
    """
    if len(pem) > _MAX_PEM_BYTES:
        return f"the key file is larger than {_MAX_PEM_BYTES} bytes"
    try:
        key = load_pem_private_key(pem, password=None)
    except TypeError:
        return "the PEM private key is encrypted; store it unencrypted (and protect the file)"
    except (ValueError, UnsupportedAlgorithm):
        return "not a PEM private key (expected -----BEGIN PRIVATE KEY-----)"
    if algorithm == "RS256":
        if not isinstance(key, rsa.RSAPrivateKey):
            return "RS256 needs an RSA private key"
        if not 2048 <= key.key_size <= 8192:
            return f"RS256 keys must have 2048 to 8192 bits (this one has {key.key_size})"
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp384r1":
        return "ES384 needs an EC private key on the P-384 curve (secp384r1)"
    return None


def sp_key_problem(key_file: Path, cert_file: Path) -> str | None:
    """Why the files can't be the SAML SP key pair (None when they can); never echoes a key.

    Shared with the SAML verifier, which reads the pair again at start-up.
    """
    try:
        pem = key_file.read_bytes()
        cert_pem = cert_file.read_bytes()
    except OSError as exc:
        return f"cannot read the SP key pair ({exc.strerror})"
    if len(pem) > _MAX_SP_FILE_BYTES or len(cert_pem) > _MAX_SP_FILE_BYTES:
        return f"the SP key and certificate files must be at most {_MAX_SP_FILE_BYTES} bytes"
    try:
        key = load_pem_private_key(pem, password=None)
    except TypeError:
        return "sp_key_file is encrypted; store it unencrypted (and protect the file)"
    except (ValueError, UnsupportedAlgorithm):
        return "sp_key_file is not a PEM private key (expected -----BEGIN PRIVATE KEY-----)"
    if not isinstance(key, rsa.RSAPrivateKey) or not 2048 <= key.key_size <= 8192:
        return "sp_key_file must be an RSA key of 2048 to 8192 bits (IdPs encrypt to RSA)"
    try:
        certificate = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return "sp_cert_file is not a PEM certificate (expected -----BEGIN CERTIFICATE-----)"
    public = certificate.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or (
        public.public_numbers() != key.public_key().public_numbers()
    ):
        return "sp_cert_file does not hold the public key of sp_key_file"
    return None


_MAX_SP_FILE_BYTES = 64 * 1024


AWS_SAML_AUDIENCES = frozenset({"https://signin.aws.amazon.com/saml", "urn:amazon:webservices"})
"""AWS's own SP values: listing one lets an IdP app made for AWS be pointed at the broker."""


def as_audiences(value: object) -> list[str]:
    items = as_list(value)
    if len(items) > 20:
        raise fail(f"must list at most 20 audiences (got {len(items)})")
    return distinct_strings(
        items,
        r"[\x21-\x7e]{1,1024}",
        "audiences are 1-1024 printable ASCII characters without spaces",
        "audience",
    )


LOGIN_NAME = r"[a-z0-9][a-z0-9_-]{0,31}"
LoginProviderName = Annotated[
    str,
    text_field(LOGIN_NAME, "login provider names are 1-32 of a-z, 0-9, _ and -, starting a-z/0-9"),
]
"""Also the path segment of the provider's OIDC callback (``/oidc/callback/NAME``)."""


def as_client_secret(value: object) -> SecretStr:
    text = as_string(value)
    if not 1 <= len(text) <= 1024:
        raise fail(f"must be 1-1024 characters (got {len(text)})")
    return SecretStr(text)


def as_scopes(value: object) -> list[str]:
    items = as_list(value)
    scopes = distinct_strings(
        items, r"[\x21\x23-\x5b\x5d-\x7e]{1,128}", "scopes are RFC 6749 scope tokens", "scope"
    )
    if "openid" not in scopes:
        raise fail("must include openid: the broker signs people in with the ID token")
    return scopes


SAML_ROLE_PAIR = (
    r"arn:aws:iam::[0-9]{12}:role/[\x21-\x2b\x2d-\x7e]{1,512}"
    r",arn:aws:iam::[0-9]{12}:saml-provider/[\w.-]{1,128}"
)


DemoUserName = Annotated[
    str, text_field(r"[a-z0-9][a-z0-9._-]{0,31}", "demo user names are 1-32 of a-z, 0-9, . _ and -")
]


def _resolve_path(value: str, base: Path | None) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return Path(os.path.normpath(path))


def beside_config(value: str, info: ValidationInfo) -> Path:
    """``value`` resolved against the config file's folder, which :func:`load_config` passes
    as validation context; a config built in code has none, so the path stays as written."""
    base = info.context.get("base_dir") if isinstance(info.context, dict) else None
    return _resolve_path(value, base)


def existing_file(value: str | None, info: ValidationInfo) -> str | None:
    """An optional file setting, resolved beside the config, that must exist at start-up:
    a missing key or metadata file should stop the broker now, not fail the first login."""
    if value is None:
        return None
    path = beside_config(value, info)
    if not path.is_file():
        raise fail(f"file not found: {path}")
    return str(path)
