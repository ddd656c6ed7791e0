"""The broker's one configuration file: YAML in, frozen typed models out, or every mistake at once.

A broker refuses to start on a bad config, so the errors are written for the person fixing
the file: each one names the file, the line, the key path and what to change
(``config/demo.yaml:14: accounts.111111111111.roles.Dev.max_session_duration: must be
between 3600 and 43200 (got 99999)``). To get there:

- YAML is *composed* (not just loaded) so every key path keeps its line, and duplicate keys,
  which PyYAML silently resolves to the last one, are caught.
- ``${VAR}`` substitution runs on the parsed scalars, never on the text, so a secret in the
  environment can't smuggle YAML structure into the file.
- Validation is pydantic (frozen, ``extra="forbid"``); its messages are rewritten into the
  file's vocabulary, and no message ever echoes a secret.
- Checks that span the file (access key IDs unique, MFA devices in their own account,
  managed policies defined) run on the raw data too, so they report alongside field errors
  instead of after the next attempt.

IAM policy *grammar* is not checked here (the IAM parser owns that); start-up code reports
its findings through :meth:`ConfigError.problem` so they read the same way.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import SplitResult, urlsplit

import yaml
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from broker.totp import decode_secret

KeyPath = tuple[str | int, ...]
"""A position in the file: mapping keys (str) and list indexes (int), from the top."""

_MAX_NODES = 200_000
"""Upper bound on YAML nodes visited, so alias chains ("billion laughs") can't hang start-up."""

_KEY_TEXT = (
    "generate one with: python -c "
    '"import os,base64;print(base64.b64encode(os.urandom(32)).decode())"'
)


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class Problem:
    """One mistake in the file, located as precisely as the file allows."""

    file: str
    line: int | None
    key_path: str
    reason: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return (
            f"{where}: {self.key_path}: {self.reason}"
            if self.key_path
            else f"{where}: {self.reason}"
        )


class ConfigError(Exception):
    """The config can't be used; :attr:`problems` lists every mistake found, one per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)

    @classmethod
    def problem(cls, config: BrokerConfig, key_path: KeyPath, reason: str) -> ConfigError:
        """A mistake found after loading (e.g. IAM grammar), located in the file it came from."""
        file, line = config.locate(key_path)
        return cls(
            [Problem(file=file, line=line, key_path=format_key_path(key_path), reason=reason)]
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


def _fail(reason: str) -> PydanticCustomError:
    # The reason goes through the context: a template would treat "${" and "{" as fields.
    return PydanticCustomError("config", "{reason}", {"reason": reason})


def _kind(value: object) -> str:
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


def _shown(value: str) -> str:
    """A non-secret string for a message, shortened so one line stays one line."""
    return repr(value if len(value) <= 60 else value[:57] + "...")


# --------------------------------------------------------------------------- field types


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise _fail(f"must be a string (got {_kind(value)}); quote it")
    return value


@dataclass(frozen=True, eq=False)
class _Checked:
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


def _text(regex: str, what: str, *, flags: int = re.ASCII) -> _Checked:
    """A string matching ``regex`` whole; ``\\w`` is ASCII-only, as in IAM's Java patterns."""
    compiled = re.compile(regex, flags)

    def check(value: object) -> str:
        text = _string(value)
        if not compiled.fullmatch(text):
            raise _fail(f"{what} (got {_shown(text)})")
        return text

    return _Checked(check, {"type": "string", "pattern": f"^(?:{regex})$"})


def _ranged(low: int, high: int) -> _Checked:
    def check(value: object) -> int:
        # Digit strings are accepted because ${VAR} substitution always yields text.
        if isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(f"must be a whole number between {low} and {high} (got {_kind(value)})")
        if not low <= value <= high:
            raise _fail(f"must be between {low} and {high} (got {value})")
        return value

    return _Checked(check, {"type": "integer", "minimum": low, "maximum": high})


def _public_url(value: object) -> str:
    text = _string(value)
    what = "must be an http:// or https:// URL with a host and no query or fragment"
    if not re.fullmatch(r"[\x21-\x7e]+", text):
        raise _fail(f"{what}; it contains spaces or non-ASCII characters")
    parts = urlsplit(text)
    if "@" in parts.netloc:
        raise _fail("must not contain user:password@ (the URL is shown to browsers and logs)")
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
        raise _fail(f"{what} (got {_shown(text)})")
    return text.rstrip("/")


def _token_secret(value: object) -> bytes:
    text = _string(value)
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise _fail(f"must be base64 of at least 32 random bytes; {_KEY_TEXT}") from None
    if len(raw) < 32:
        raise _fail(f"must decode to at least 32 bytes (decodes to {len(raw)}); {_KEY_TEXT}")
    return raw


def _access_secret(value: object) -> SecretStr:
    text = _string(value)
    if not re.fullmatch(r"[A-Za-z0-9/+]{40}", text):
        raise _fail(f"must be 40 characters of A-Z, a-z, 0-9, / and + (got {len(text)} characters)")
    return SecretStr(text)


def _totp_secret(value: object) -> SecretStr:
    text = _string(value)
    try:
        raw = decode_secret(text)
    except (binascii.Error, ValueError):
        raise _fail("must be base32 (A-Z, 2-7), as authenticator apps show it") from None
    if len(raw) < 16:
        raise _fail(f"must decode to at least 16 bytes (decodes to {len(raw)})")
    return SecretStr(text)


def _policy_document(value: object) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise _fail(f"is a string but not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise _fail(f"must be a policy document: a mapping or a JSON object (got {_kind(value)})")
    return value


def _tag_value(value: object) -> str:
    text = _string(value)
    if len(text) > 256:
        raise _fail(f"tag values are at most 256 characters (got {len(text)})")
    return text


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(f"must be a list (got {_kind(value)})")
    return value


_NAME = r"[\w+=,.@-]{1,64}"
_IAM_PATH = r"/|/[\x21-\x7e]{0,510}/"
_POLICY_NAME = r"[\w+=,.@-]{1,128}"
_MANAGED_NAME = r"(?:[\w+=,.@-]+/){0,8}[\w+=,.@-]{1,128}"
_MFA_SERIAL = r"arn:aws:iam::([0-9]{12}):mfa/[\w+=,.@/-]{1,512}"
_REGION = r"[a-z]{2,4}(?:-[a-z]+)+-[0-9]{1,2}"

_WRITE_ONLY = {"type": "string", "writeOnly": True}
AccountId = Annotated[
    str, _text(r"[0-9]{12}", "account IDs are exactly 12 digits, written as a quoted string")
]
Alias = Annotated[str, _text(r"[a-z0-9-]{3,63}", "must be 3-63 of a-z, 0-9 and -")]
PrincipalName = Annotated[str, _text(_NAME, "names are 1-64 of letters, digits and +=,.@_-")]
IamPath = Annotated[str, _text(_IAM_PATH, "must be / or start and end with / (e.g. /team/)")]
PolicyName = Annotated[
    str, _text(_POLICY_NAME, "policy names are 1-128 of letters, digits and +=,.@_-")
]
ManagedPolicyName = Annotated[
    str,
    _text(_MANAGED_NAME, "managed policy names are letters, digits, +=,.@_- and / between parts"),
]
PolicyDocument = Annotated[
    dict[str, Any], _Checked(_policy_document, {"type": ["object", "string"]})
]
SamlProviderName = Annotated[
    str, _text(r"[\w.-]{1,128}", "SAML provider names are 1-128 of letters, digits and ._-")
]
TagKey = Annotated[str, _text(r".{1,128}", "tag keys are 1-128 characters", flags=re.DOTALL)]
TagValue = Annotated[str, _Checked(_tag_value, {"type": "string", "maxLength": 256})]
Tags = dict[TagKey, TagValue]


class _Model(BaseModel):
    """Frozen, unknown keys refused, no silent coercion (``"yes"`` is not a boolean here)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class TokenKey(_Model):
    """A key that seals session tokens; the first in the list seals, every one opens."""

    id: Annotated[str, _text(r"[A-Za-z0-9_-]{1,32}", "key IDs are 1-32 of A-Z, a-z, 0-9, _ and -")]
    secret: Annotated[bytes, _Checked(_token_secret, _WRITE_ONLY)] = Field(repr=False)


class Limits(_Model):
    """Bounds the broker enforces on every request, tunable per deployment."""

    max_body_bytes: Annotated[int, _ranged(1024, 1_048_576)] = 262144
    clock_skew_seconds: Annotated[int, _ranged(0, 900)] = 300


class OidcSettings(_Model):
    """How the broker treats every OIDC issuer: key caching, outage tolerance, token bounds.

    Broker-wide rather than per provider because they are operational trade-offs (how long a
    down issuer is tolerated, how hard an unknown ``kid`` may make us fetch), not facts
    about one issuer.
    """

    jwks_ttl_seconds: Annotated[int, _ranged(60, 86400)] = 3600
    refresh_interval_seconds: Annotated[int, _ranged(1, 3600)] = 30
    last_known_good_seconds: Annotated[int, _ranged(0, 604800)] = 21600
    http_timeout_seconds: Annotated[int, _ranged(1, 60)] = 5
    max_token_bytes: Annotated[int, _ranged(256, 20000)] = 20000
    max_token_lifetime_seconds: Annotated[int, _ranged(300, 604800)] = 86400

    @model_validator(mode="after")
    def _interval_within_ttl(self) -> OidcSettings:
        """A key set must live at least one refresh interval, or the bounds contradict."""
        if self.refresh_interval_seconds > self.jwks_ttl_seconds:
            raise _fail(
                f"refresh_interval_seconds ({self.refresh_interval_seconds}) must not exceed "
                f"jwks_ttl_seconds ({self.jwks_ttl_seconds})"
            )
        return self


class WebSettings(_Model):
    """Browser sign-in: how long a session lives and the key its cookies are signed with.

    ``cookie_key`` is optional because a broker with ``token_keys`` can derive one (HKDF, a
    label of its own) and every node then agrees; without either, the key is ephemeral and
    browser sessions end at restart and do not work across workers.
    """

    session_idle_seconds: Annotated[int, _ranged(60, 86400)] = 900
    session_absolute_seconds: Annotated[int, _ranged(300, 86400)] = 28800
    cookie_key: Annotated[bytes, _Checked(_token_secret, _WRITE_ONLY)] | None = Field(
        default=None, repr=False
    )

    @model_validator(mode="after")
    def _idle_within_absolute(self) -> WebSettings:
        """An idle timeout longer than the absolute one would never apply: a typo, refuse it."""
        if self.session_idle_seconds > self.session_absolute_seconds:
            raise _fail(
                f"session_idle_seconds ({self.session_idle_seconds}) must not exceed "
                f"session_absolute_seconds ({self.session_absolute_seconds})"
            )
        return self


class SamlSettings(_Model):
    """How the broker acts as a SAML service provider, for every provider of every account.

    The SP key pair decrypts ``EncryptedAssertion``s and is published in the SP metadata.
    Without one the broker makes an ephemeral pair at start-up (and warns): encrypted
    assertions then stop working at every restart, since the IdP encrypts to the old key.
    """

    sp_key_file: Annotated[str, _Checked(_string, {"type": "string"})] | None = None
    sp_cert_file: Annotated[str, _Checked(_string, {"type": "string"})] | None = None
    max_response_bytes: Annotated[int, _ranged(8192, 1_048_576)] = 262144
    metadata_refresh_seconds: Annotated[int, _ranged(60, 604800)] = 3600

    @field_validator("sp_key_file", "sp_cert_file")
    @classmethod
    def _resolve_sp_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Relative to the config file, and it must exist at start-up."""
        return _existing_file(value, info)

    @model_validator(mode="after")
    def _sp_key_pair(self) -> SamlSettings:
        """Both files or neither, and the certificate must hold the key's public half."""
        if (self.sp_key_file is None) != (self.sp_cert_file is None):
            raise _fail("set both sp_key_file and sp_cert_file, or neither")
        if self.sp_key_file is not None and self.sp_cert_file is not None:
            problem = sp_key_problem(Path(self.sp_key_file), Path(self.sp_cert_file))
            if problem is not None:
                raise _fail(problem)
        return self


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


class AccessKeyConfig(_Model):
    """A long-term ``AKIA`` key pair with which a user signs STS calls."""

    id: Annotated[str, _text(r"AKIA[A-Z2-7]{16}", "access key IDs are AKIA + 16 of A-Z and 2-7")]
    secret: Annotated[SecretStr, _Checked(_access_secret, _WRITE_ONLY)]
    status: Literal["Active", "Inactive"] = "Active"


class MfaDeviceConfig(_Model):
    """A virtual MFA device: the serial callers pass as ``SerialNumber`` and its TOTP seed."""

    serial: Annotated[str, _text(_MFA_SERIAL, "must be an MFA ARN: arn:aws:iam::ACCOUNT:mfa/NAME")]
    totp_secret: Annotated[SecretStr, _Checked(_totp_secret, _WRITE_ONLY)]

    def totp_secret_bytes(self) -> bytes:
        """The decoded seed, for computing codes (decoded the way authenticator apps do)."""
        return decode_secret(self.totp_secret.get_secret_value())


class UserConfig(_Model):
    """An IAM user: signs calls with its access keys, proves MFA with its devices."""

    path: IamPath = "/"
    access_keys: list[AccessKeyConfig] = Field(default_factory=list)
    mfa_devices: list[MfaDeviceConfig] = Field(default_factory=list)
    policies: dict[PolicyName, PolicyDocument] = Field(default_factory=dict)
    managed_policies: list[ManagedPolicyName] = Field(default_factory=list)
    tags: Tags = Field(default_factory=dict)


class RoleConfig(_Model):
    """An IAM role: who may assume it (trust policy) and what its sessions may do."""

    path: IamPath = "/"
    max_session_duration: Annotated[int, _ranged(3600, 43200)] = 3600
    trust_policy: PolicyDocument
    policies: dict[PolicyName, PolicyDocument] = Field(default_factory=dict)
    managed_policies: list[ManagedPolicyName] = Field(default_factory=list)
    tags: Tags = Field(default_factory=dict)
    description: Annotated[
        str, _text(r".{0,1000}", "descriptions are at most 1000 characters", flags=re.DOTALL)
    ] = ""


OidcKind = Literal["google", "cognito-user-pool", "cognito-identity", "github-actions", "generic"]
"""Which issuer's conventions (claim checks, condition keys, principal names) a provider follows."""


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``: the only hosts plain http is acceptable for.

    Tests and fixture identity providers run there; anywhere else http would let anyone on
    the path swap the signing keys.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        return f"must not have a query or fragment (got {_shown(text)})"
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        return f"must be an https:// URL with a host (got {_shown(text)})"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return (
            f"must use https:// (plain http is accepted only for 127.0.0.1, ::1 and localhost; "
            f"got {_shown(text)})"
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


def _oidc_url(value: object) -> str:
    text = _string(value)
    problem = oidc_url_problem(text)
    if problem is not None:
        raise _fail(problem)
    return text


def _client_ids(value: object) -> list[str]:
    items = _list(value)
    if not 1 <= len(items) <= 100:
        raise _fail(f"must list 1 to 100 client IDs, as IAM does (got {len(items)})")
    return _distinct_strings(
        items, r"[\x20-\x7e]{1,255}", "client IDs are 1-255 printable ASCII characters", "client ID"
    )


def _distinct_strings(items: list[Any], pattern: str, rule: str, noun: str) -> list[str]:
    """Each item a string matching ``pattern`` (else "``rule`` (got ...)"), none listed twice:
    a repeated client ID or audience is a copy-paste slip, so it is refused, not merged."""
    out: list[str] = []
    for item in items:
        text = _string(item)
        if not re.fullmatch(pattern, text):
            raise _fail(f"{rule} (got {_shown(text)})")
        if text in out:
            raise _fail(f"{noun} {_shown(text)} is listed twice")
        out.append(text)
    return out


_URL_SCHEMA = {"type": "string", "format": "uri"}


class OidcProviderConfig(_Model):
    """An OIDC identity provider (IAM's ``oidc-provider``) whose ID tokens this account trusts.

    ``url`` is the issuer exactly as its tokens spell ``iss``; the provider's ARN path is the
    URL without its scheme. Keys come from discovery, ``jwks_uri`` or, offline, ``jwks_file``.
    """

    url: Annotated[str, _Checked(_oidc_url, _URL_SCHEMA)]
    client_ids: Annotated[
        list[str],
        _Checked(_client_ids, {"type": "array", "minItems": 1, "maxItems": 100}),
    ]
    kind: OidcKind | None = None
    jwks_uri: Annotated[str, _Checked(_oidc_url, _URL_SCHEMA)] | None = None
    jwks_file: Annotated[str, _Checked(_string, {"type": "string"})] | None = None
    max_token_age: Annotated[int, _ranged(60, 604800)] = 86400
    single_use: bool = False

    @field_validator("jwks_file")
    @classmethod
    def _resolve_jwks_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Relative to the config file (like ``state``), and it must exist at start-up."""
        return _existing_file(value, info)

    @model_validator(mode="after")
    def _one_key_source(self) -> OidcProviderConfig:
        if self.jwks_uri is not None and self.jwks_file is not None:
            raise _fail("set jwks_uri or jwks_file, not both")
        return self

    @property
    def provider_kind(self) -> OidcKind:
        """``kind`` when set, else what the URL says (see :func:`infer_oidc_kind`)."""
        return self.kind if self.kind is not None else infer_oidc_kind(self.url)

    @property
    def arn_path(self) -> str:
        """``host[:port]/path``: the URL without scheme or trailing slash, as IAM names it."""
        return oidc_arn_path(self.url)

    def arn(self, account: str) -> str:
        """``arn:aws:iam::ACCOUNT:oidc-provider/HOST/PATH``."""
        return f"arn:aws:iam::{account}:oidc-provider/{self.arn_path}"


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


class IssuerKeyConfig(_Model):
    """A key that signs the JWTs the broker mints, with its place in a rotation.

    ``current`` signs; ``next`` is published in the JWKS before it signs, so verifiers have
    cached it by the time it does; ``previous`` stays published after it stopped signing,
    until the tokens it signed have expired.
    """

    id: Annotated[
        str, _text(r"[A-Za-z0-9_.-]{1,64}", "key IDs (kid) are 1-64 of A-Z, a-z, 0-9 and _.-")
    ]
    algorithm: IssuerAlgorithm
    private_key_file: Annotated[str, _Checked(_string, {"type": "string"})]
    status: Literal["current", "next", "previous"] = "current"

    @field_validator("private_key_file")
    @classmethod
    def _resolve_private_key_file(cls, value: str, info: ValidationInfo) -> str:
        """Relative to the config file; read and checked now so a bad key stops start-up."""
        path = _beside_config(value, info)
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise _fail(f"cannot read the key file {path} ({exc.strerror})") from None
        algorithm = info.data.get("algorithm")
        if isinstance(algorithm, str):
            problem = issuer_key_problem(pem, algorithm)
            if problem is not None:
                raise _fail(f"{path}: {problem}")
        return str(path)


class IssuerSettings(_Model):
    """The broker as an OIDC issuer: the keys GetWebIdentityToken signs with.

    With no keys the broker makes one of each algorithm at start-up (and warns): fine for a
    demo, but tokens then stop verifying at restart and nodes disagree on the key set.
    """

    keys: list[IssuerKeyConfig] = Field(default_factory=list)
    jwks_max_age_seconds: Annotated[int, _ranged(60, 86400)] = 600

    @model_validator(mode="after")
    def _one_current_per_algorithm(self) -> IssuerSettings:
        """Every algorithm needs exactly one signer; kids must name one key each."""
        if not self.keys:
            return self
        seen: set[str] = set()
        for key in self.keys:
            if key.id in seen:
                raise _fail(f"key ID {key.id!r} is used twice")
            seen.add(key.id)
        for algorithm in ISSUER_ALGORITHMS:
            current = [
                k.id for k in self.keys if k.algorithm == algorithm and k.status == "current"
            ]
            if len(current) != 1:
                raise _fail(
                    f"needs exactly one {algorithm} key with status current "
                    f"(found {len(current)}); GetWebIdentityToken offers RS256 and ES384"
                )
        return self


AWS_SAML_AUDIENCES = frozenset({"https://signin.aws.amazon.com/saml", "urn:amazon:webservices"})
"""AWS's own SP values: listing one lets an IdP app made for AWS be pointed at the broker."""


def _audiences(value: object) -> list[str]:
    items = _list(value)
    if len(items) > 20:
        raise _fail(f"must list at most 20 audiences (got {len(items)})")
    return _distinct_strings(
        items,
        r"[\x21-\x7e]{1,1024}",
        "audiences are 1-1024 printable ASCII characters without spaces",
        "audience",
    )


class SamlProviderConfig(_Model):
    """A SAML identity provider (IAM's ``saml-provider``) whose assertions this account trusts.

    Its metadata is the only source of its entity ID and signing keys. The broker's own
    entity ID is always an accepted audience; ``audiences`` adds more.
    """

    metadata_file: Annotated[str, _Checked(_string, {"type": "string"})] | None = None
    metadata_url: Annotated[str, _Checked(_oidc_url, _URL_SCHEMA)] | None = None
    audiences: Annotated[list[str], _Checked(_audiences, {"type": "array", "maxItems": 20})] = (
        Field(default_factory=list)
    )
    idp_initiated: bool = False
    allow_cbc_encryption: bool = False
    single_use: bool = True

    @field_validator("metadata_file")
    @classmethod
    def _read_metadata_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Relative to the config file; parsed now so a broken file stops start-up here."""
        if value is None:
            return None
        path = _beside_config(value, info)
        # Imported here: broker.identity imports this module, so a top-level import would
        # be circular. By the time a file is validated both are fully loaded.
        from broker.identity.saml_metadata import MetadataError, parse_metadata  # noqa: PLC0415

        try:
            parse_metadata(path.read_bytes())
        except OSError as exc:
            raise _fail(f"cannot read the metadata file {path} ({exc.strerror})") from None
        except MetadataError as exc:
            raise _fail(f"{path}: {exc}") from None
        return str(path)

    @model_validator(mode="after")
    def _one_metadata_source(self) -> SamlProviderConfig:
        if (self.metadata_file is None) == (self.metadata_url is None):
            raise _fail("set exactly one of metadata_file and metadata_url")
        return self

    @property
    def metadata_source(self) -> str:
        """The absolute metadata file path, or the metadata URL."""
        source = self.metadata_file if self.metadata_file is not None else self.metadata_url
        assert source is not None
        return source

    @property
    def aws_audience(self) -> bool:
        """True when an AWS SP value is listed: AWS's sign-in URLs become valid recipients."""
        return not AWS_SAML_AUDIENCES.isdisjoint(self.audiences)

    @staticmethod
    def arn(account: str, name: str) -> str:
        """``arn:aws:iam::ACCOUNT:saml-provider/NAME``."""
        return f"arn:aws:iam::{account}:saml-provider/{name}"


class AccountConfig(_Model):
    """One AWS-style account: its users, its roles and (later) its federation providers."""

    alias: Alias | None = None
    users: dict[PrincipalName, UserConfig] = Field(default_factory=dict)
    roles: dict[PrincipalName, RoleConfig] = Field(default_factory=dict)
    saml_providers: dict[SamlProviderName, SamlProviderConfig] = Field(default_factory=dict)
    oidc_providers: list[OidcProviderConfig] = Field(default_factory=list)
    outbound_web_identity_federation: bool = False
    """GetWebIdentityToken for this account's principals; off by default, as in AWS."""


_LOGIN_NAME = r"[a-z0-9][a-z0-9_-]{0,31}"
LoginProviderName = Annotated[
    str, _text(_LOGIN_NAME, "login provider names are 1-32 of a-z, 0-9, _ and -, starting a-z/0-9")
]
"""Also the path segment of the provider's OIDC callback (``/oidc/callback/NAME``)."""


def _client_secret(value: object) -> SecretStr:
    text = _string(value)
    if not 1 <= len(text) <= 1024:
        raise _fail(f"must be 1-1024 characters (got {len(text)})")
    return SecretStr(text)


def _scopes(value: object) -> list[str]:
    items = _list(value)
    scopes = _distinct_strings(
        items, r"[\x21\x23-\x5b\x5d-\x7e]{1,128}", "scopes are RFC 6749 scope tokens", "scope"
    )
    if "openid" not in scopes:
        raise _fail("must include openid: the broker signs people in with the ID token")
    return scopes


class SamlLoginConfig(_Model):
    """A sign-in button for one account's SAML provider (``accounts.ACCOUNT.saml_providers``)."""

    account: AccountId
    provider: SamlProviderName

    def arn(self) -> str:
        return SamlProviderConfig.arn(self.account, self.provider)


class OidcLoginConfig(_Model):
    """A "sign in with" button for an OIDC provider (authorization code + PKCE S256).

    Its ID token is checked exactly like an ``AssumeRoleWithWebIdentity`` token, by every
    account whose ``oidc_providers`` lists ``url`` with ``client_id``; the roles offered are
    those whose trust policies admit it there.
    """

    url: Annotated[str, _Checked(_oidc_url, _URL_SCHEMA)]
    client_id: Annotated[
        str, _text(r"[\x20-\x7e]{1,255}", "client IDs are 1-255 printable ASCII characters")
    ]
    client_secret: Annotated[SecretStr, _Checked(_client_secret, _WRITE_ONLY)] | None = Field(
        default=None, repr=False
    )
    """None for a public client (PKCE only)."""
    scopes: Annotated[list[str], _Checked(_scopes, {"type": "array", "maxItems": 20})] = Field(
        default_factory=lambda: ["openid", "email", "profile"]
    )
    roles_claim: (
        Annotated[str, _text(r"[\x21-\x7e]{1,128}", "claim names are printable")] | None
    ) = None
    """When set (e.g. ``cognito:roles``), only role ARNs listed in this claim are offered."""
    session_name_claim: Annotated[
        str, _text(r"[\x21-\x7e]{1,128}", "claim names are printable")
    ] = "email"
    """RoleSessionName comes from this claim (``sub`` when absent), cut to IAM's alphabet."""


class LoginProviderConfig(_Model):
    """One button on the sign-in page: exactly one of ``saml`` and ``oidc``."""

    label: Annotated[str, _text(r"[^\x00-\x1f\x7f]{1,64}", "labels are 1-64 characters")]
    saml: SamlLoginConfig | None = None
    oidc: OidcLoginConfig | None = None
    roles: list[
        Annotated[
            str,
            _text(
                r"arn:aws:iam::(?:[0-9]{12}|\*):role/[\x21-\x7e]{1,512}",
                "must be a role ARN (wildcards * and ? allowed)",
            ),
        ]
    ] = Field(default_factory=list)
    """Optional allow-list of role ARN patterns (``*``/``?``) narrowing what this login offers."""

    @model_validator(mode="after")
    def _one_protocol(self) -> LoginProviderConfig:
        if (self.saml is None) == (self.oidc is None):
            raise _fail("set exactly one of saml and oidc")
        return self


class LoginSettings(_Model):
    """The sign-in page. Without providers it lists every account's SAML providers."""

    providers: dict[LoginProviderName, LoginProviderConfig] = Field(default_factory=dict)


_SAML_ROLE_PAIR = (
    r"arn:aws:iam::[0-9]{12}:role/[\x21-\x2b\x2d-\x7e]{1,512}"
    r",arn:aws:iam::[0-9]{12}:saml-provider/[\w.-]{1,128}"
)


class DemoUser(_Model):
    """Someone the demo IdPs sign in: a button on both fixture login pages.

    The SAML IdP asserts ``saml_roles`` as AWS's ``Role`` attribute (the IdP, not the
    broker, decides SAML roles, as Okta or Entra ID would); the OIDC provider only vouches
    for the name and verified email, and the trust policies decide what Google users get.
    """

    name: Annotated[str, _text(r"[^\x00-\x1f\x7f]{1,64}", "names are 1-64 characters")]
    email: Annotated[
        str, _text(r"[^\s@]{1,64}@[^\s@]{1,190}", "must be an email address like a@example.com")
    ]
    saml_roles: list[
        Annotated[
            str,
            _text(_SAML_ROLE_PAIR, "must be 'ROLE_ARN,SAML_PROVIDER_ARN' (AWS's Role attribute)"),
        ]
    ] = Field(default_factory=list)


DemoUserName = Annotated[
    str, _text(r"[a-z0-9][a-z0-9._-]{0,31}", "demo user names are 1-32 of a-z, 0-9, . _ and -")
]


class DemoSettings(_Model):
    """Fixture IdPs mounted inside the broker for the demo (``config/demo.yaml``).

    Only for a loopback ``public_url``: they sign in whoever clicks, so they must never be
    reachable from another machine.
    """

    saml_idp: bool = False
    """The idp_fixtures SAML IdP under ``/_demo/saml`` (metadata: ``/_demo/saml/metadata``)."""
    oidc_provider: bool = False
    """The idp_fixtures OIDC provider under ``/_demo/oidc``: one issuer per configured
    provider URL below it (``{public_url}/_demo/oidc/NAME``)."""
    users: dict[DemoUserName, DemoUser] = Field(default_factory=dict)
    """Who the demo IdPs offer on their login pages."""

    @model_validator(mode="after")
    def _someone_to_sign_in(self) -> DemoSettings:
        if (self.saml_idp or self.oidc_provider) and not self.users:
            raise _fail("list under users the people the demo IdPs sign in")
        return self


class BrokerConfig(_Model):
    """The whole file. Build it with :func:`load_config` so errors can point at lines."""

    public_url: Annotated[str, _Checked(_public_url, {"type": "string", "format": "uri"})]
    region: Annotated[str, _text(_REGION, "must be an AWS region name like us-east-1")] = (
        "us-east-1"
    )
    state: Annotated[
        str, _Checked(_string, {"type": "string", "pattern": "^(memory|sqlite:///.+)$"})
    ] = "memory"
    token_keys: list[TokenKey] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    saml: SamlSettings = Field(default_factory=SamlSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    issuer: IssuerSettings = Field(default_factory=IssuerSettings)
    login: LoginSettings = Field(default_factory=LoginSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    accounts: dict[AccountId, AccountConfig]
    managed_policies: dict[ManagedPolicyName, PolicyDocument] = Field(default_factory=dict)

    _source: Path | None = PrivateAttr(default=None)
    _display: str = PrivateAttr(default="<config>")
    _lines: dict[KeyPath, int] = PrivateAttr(default_factory=dict)

    @field_validator("state")
    @classmethod
    def _resolve_state(cls, value: str, info: ValidationInfo) -> str:
        """``sqlite:///rel.db`` is relative to the config file, so the broker runs from anywhere."""
        if value == "memory":
            return value
        if not value.startswith("sqlite:///") or value == "sqlite:///":
            raise _fail(f"must be 'memory' or 'sqlite:///path/to/file.db' (got {_shown(value)})")
        return "sqlite:///" + str(_beside_config(value.removeprefix("sqlite:///"), info))

    @property
    def source(self) -> Path | None:
        """The file this config was loaded from (None when built in code)."""
        return self._source

    def locate(self, key_path: KeyPath) -> tuple[str, int | None]:
        """(file as the user named it, line of ``key_path`` or of its nearest located parent)."""
        return self._display, _line_of(self._lines, key_path)


def _resolve_path(value: str, base: Path | None) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return Path(os.path.normpath(path))


def _beside_config(value: str, info: ValidationInfo) -> Path:
    """``value`` resolved against the config file's folder, which :func:`load_config` passes
    as validation context; a config built in code has none, so the path stays as written."""
    base = info.context.get("base_dir") if isinstance(info.context, dict) else None
    return _resolve_path(value, base)


def _existing_file(value: str | None, info: ValidationInfo) -> str | None:
    """An optional file setting, resolved beside the config, that must exist at start-up:
    a missing key or metadata file should stop the broker now, not fail the first login."""
    if value is None:
        return None
    path = _beside_config(value, info)
    if not path.is_file():
        raise _fail(f"file not found: {path}")
    return str(path)


def _line_of(lines: Mapping[KeyPath, int], key_path: KeyPath) -> int | None:
    for end in range(len(key_path), -1, -1):
        line = lines.get(key_path[:end])
        if line is not None:
            return line
    return None


def config_json_schema() -> dict[str, Any]:
    """JSON Schema of the file, for editors and CI linting of config repos."""
    return BrokerConfig.model_json_schema()


# --------------------------------------------------------------------------- YAML


_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


class _Composer:
    """Turns a composed YAML node graph into plain data plus a key path -> line map."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.lines: dict[KeyPath, int] = {}
        self.problems: list[tuple[KeyPath, int | None, str]] = []
        self.broken: set[KeyPath] = set()
        """Values already reported as unreadable: pydantic's follow-up errors are noise."""
        self.budget = _MAX_NODES
        self.data: Any = None

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise _Unreadable(
                node.start_mark.line + 1,
                f"more than {_MAX_NODES} values once aliases are expanded; refusing to load",
            )
        if isinstance(node, yaml.CollectionNode) and node.tag not in _PLAIN_TAGS:
            # Collections are built here, not by PyYAML's constructors, so a tag would
            # otherwise be silently ignored: refuse it like SafeLoader refuses unknown ones.
            self.problems.append(
                (path, node.start_mark.line + 1, f"unsupported YAML tag {node.tag!r}")
            )
            self.broken.add(path)
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            out: list[Any] = []
            for index, item in enumerate(node.value):
                self.lines.setdefault((*path, index), item.start_mark.line + 1)
                out.append(self.build(item, (*path, index)))
            return out
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError) as exc:
            reason = (
                exc.problem if isinstance(exc, yaml.MarkedYAMLError) and exc.problem else str(exc)
            )
            self.problems.append((path, node.start_mark.line + 1, f"cannot read value: {reason}"))
            self.broken.add(path)
            return None

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problems.append(
                    (path, line, "YAML merge keys (<<) are not supported; write the keys out")
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append((path, line, "keys must be plain text, not lists or mappings"))
                continue
            key = self._key(key_node)
            if not isinstance(key, str):
                key = key_node.value
                self.problems.append(
                    (
                        (*path, key),
                        line,
                        f'YAML reads this key as {_kind_word(key_node)}; quote it: "{key}"',
                    )
                )
            if key in first_line:
                self.problems.append(
                    ((*path, key), line, f"duplicate key (first defined at line {first_line[key]})")
                )
                continue
            first_line[key] = line
            self.lines.setdefault((*path, key), line)
            out[key] = self.build(value_node, (*path, key))
        return out

    def _key(self, node: yaml.ScalarNode) -> object:
        """The key as YAML reads it; None when it can't be read (then reported as non-text)."""
        try:
            return self.loader.construct_object(node)
        except (yaml.YAMLError, ValueError):
            return None


def _kind_word(node: yaml.ScalarNode) -> str:
    return {
        "tag:yaml.org,2002:int": "a number",
        "tag:yaml.org,2002:float": "a decimal number",
        "tag:yaml.org,2002:bool": "a boolean",
        "tag:yaml.org,2002:null": "null",
        "tag:yaml.org,2002:timestamp": "a date",
    }.get(node.tag, "a non-string value")


class _Unreadable(Exception):
    """The file is not YAML we can use at all; nothing past this point would make sense."""

    def __init__(self, line: int | None, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


def _parse_yaml(text: str) -> _Composer:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise _Unreadable(None, "the file is empty; it needs at least public_url and accounts")
        composer = _Composer(loader)
        composer.lines[()] = node.start_mark.line + 1
        composer.data = composer.build(node, ())
        return composer
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = exc.problem or "invalid YAML"
        if exc.context:
            reason = f"{reason} ({exc.context})"
        raise _Unreadable(mark.line + 1 if mark else None, reason) from None
    finally:
        loader.dispose()


# --------------------------------------------------------------------------- ${VAR}

_ENV_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _substitute(
    data: Any, path: KeyPath, environ: Mapping[str, str], missing: list[tuple[KeyPath, str]]
) -> Any:
    """Replace ``${VAR}``/``${VAR:-default}`` in string values; ``$${`` is a literal ``${``.

    Only the NAME grammar above is substituted, so IAM policy variables such as
    ``${aws:username}`` pass through untouched. Replacement text is not rescanned.
    """
    if isinstance(data, dict):
        return {k: _substitute(v, (*path, k), environ, missing) for k, v in data.items()}
    if isinstance(data, list):
        return [_substitute(v, (*path, i), environ, missing) for i, v in enumerate(data)]
    if not isinstance(data, str) or "${" not in data:
        return data

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name is None:
            return "${"
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                missing.append((path, name))
                return ""
            return default
        return value

    return _ENV_REF.sub(replace, data)


# --------------------------------------------------------------------------- cross-field


def _cross_checks(data: Mapping[str, Any]) -> list[tuple[KeyPath, str]]:
    """Rules that span the file. Tolerant of malformed parts: pydantic reports those."""
    found: list[tuple[KeyPath, str]] = []
    seen: dict[str, dict[str, KeyPath]] = {}

    def unique(what: str, value: str, at: KeyPath) -> None:
        first = seen.setdefault(what, {}).setdefault(value, at)
        if first != at:
            found.append((at, f"{what} {value!r} is already used at {format_key_path(first)}"))

    for at, key_id in _strings_in(data.get("token_keys"), "id", ("token_keys",)):
        unique("token key ID", key_id, at)
    found.extend(_login_checks(data))
    demo = _as_dict(data.get("demo"))
    public_url = data.get("public_url")
    if any(demo.get(k) is True for k in ("saml_idp", "oidc_provider")) and isinstance(
        public_url, str
    ):
        host = urlsplit(public_url).hostname or ""
        if not is_loopback_host(host):
            found.append(
                (
                    ("demo",),
                    "the demo IdPs sign in whoever clicks; they run only on a loopback "
                    f"public_url (this one's host is {host!r})",
                )
            )
    managed = data.get("managed_policies", {})
    defined = set(managed) if isinstance(managed, dict) else None
    for account_id, account in _as_dict(data.get("accounts")).items():
        base: KeyPath = ("accounts", account_id)
        alias = _as_dict(account).get("alias")
        if isinstance(alias, str):
            unique("account alias", alias, (*base, "alias"))
        providers = _as_dict(account).get("oidc_providers")
        for at, url in _strings_in(providers, "url", (*base, "oidc_providers")):
            # Same ARN, same provider: http/https or a trailing slash don't make a second one.
            unique(f"OIDC provider in account {account_id}", oidc_arn_path(url), at)
        for kind in ("users", "roles"):
            for name, principal in _as_dict(_as_dict(account).get(kind)).items():
                where: KeyPath = (*base, kind, name)
                refs = _as_list(_as_dict(principal).get("managed_policies"))
                for i, ref in enumerate(refs):
                    if isinstance(ref, str) and defined is not None and ref not in defined:
                        reason = f"managed policy {ref!r} is not defined in managed_policies"
                        found.append(((*where, "managed_policies", i), reason))
                keys = _as_dict(principal).get("access_keys")
                for at, key_id in _strings_in(keys, "id", (*where, "access_keys")):
                    unique("access key ID", key_id, at)
                devices = _as_dict(principal).get("mfa_devices")
                for at, serial in _strings_in(devices, "serial", (*where, "mfa_devices")):
                    unique("MFA serial", serial, at)
                    match = re.fullmatch(_MFA_SERIAL, serial, re.ASCII)
                    if match and match.group(1) != account_id:
                        other = match.group(1)
                        found.append(
                            (at, f"MFA device must be in account {account_id}, not {other}")
                        )
    return found


def _login_checks(data: Mapping[str, Any]) -> list[tuple[KeyPath, str]]:
    """Each login provider must name something the accounts define, or it could sign no one in."""
    found: list[tuple[KeyPath, str]] = []
    accounts = _as_dict(data.get("accounts"))
    for name, provider in _as_dict(_as_dict(data.get("login")).get("providers")).items():
        at: KeyPath = ("login", "providers", name)
        saml = _as_dict(_as_dict(provider).get("saml"))
        account, saml_name = saml.get("account"), saml.get("provider")
        if isinstance(account, str) and isinstance(saml_name, str):
            defined = _as_dict(_as_dict(accounts.get(account)).get("saml_providers"))
            if saml_name not in defined:
                found.append(
                    (
                        (*at, "saml", "provider"),
                        f"account {account} has no saml_providers entry {saml_name!r}",
                    )
                )
        oidc = _as_dict(_as_dict(provider).get("oidc"))
        url, client_id = oidc.get("url"), oidc.get("client_id")
        if isinstance(url, str) and isinstance(client_id, str):
            trusted = any(
                isinstance(p, dict)
                and isinstance(p.get("url"), str)
                and oidc_arn_path(p["url"]) == oidc_arn_path(url)
                and client_id in _as_list(p.get("client_ids"))
                for a in accounts.values()
                for p in _as_list(_as_dict(a).get("oidc_providers"))
            )
            if not trusted:
                found.append(
                    (
                        (*at, "oidc", "client_id"),
                        f"no account's oidc_providers lists {url} with this client ID, so no "
                        "role could trust its users; add it to client_ids there",
                    )
                )
    return found


def _strings_in(items: object, field: str, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    """(path, value) of ``field`` in each mapping of a list, skipping malformed entries."""
    for index, item in enumerate(_as_list(items)):
        value = _as_dict(item).get(field)
        if isinstance(value, str):
            yield (*path, index, field), value


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


# --------------------------------------------------------------------------- pydantic errors


def _reason(error: Mapping[str, Any], loc: KeyPath) -> str:
    kind = error["type"]
    if kind == "config":
        return str(error["ctx"]["reason"])
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        name = str(loc[-1])
        close = difflib.get_close_matches(name, _known_keys(loc[:-1]), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {name!r}{hint}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be a mapping (got {_kind(error['input'])})"
    if kind in ("list_type", "tuple_type"):
        return f"must be a list (got {_kind(error['input'])})"
    if kind == "bool_type":
        return f"must be true or false (got {_kind(error['input'])})"
    if kind == "literal_error":
        got = error["input"]
        shown = _shown(got) if isinstance(got, str) else _kind(got)
        return f"must be one of {error['ctx']['expected']} (got {shown})"
    return f"invalid value ({error['msg']})"


def _known_keys(loc: KeyPath) -> list[str]:
    """Field names of the model at ``loc``, for "did you mean" hints."""
    current: Any = BrokerConfig
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif get_origin(current) is list:
            current = get_args(current)[0]
        else:
            return []
        if get_origin(current) is Annotated:
            current = get_args(current)[0]
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> BrokerConfig:
    """Read, substitute, validate. Raises :class:`ConfigError` listing every problem found."""
    display = str(path)
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(
            [Problem(display, None, "", f"cannot read the file ({exc.strerror})")]
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Problem(display, None, "", f"not UTF-8 (bad byte at offset {exc.start})")]
        ) from None

    try:
        parsed = _parse_yaml(text)
    except _Unreadable as exc:
        raise ConfigError([Problem(display, exc.line, "", exc.reason)]) from None
    lines = parsed.lines
    problems = [
        Problem(display, line, format_key_path(key_path), reason)
        for key_path, line, reason in parsed.problems
    ]
    if not isinstance(parsed.data, dict):
        reason = f"the file must be a mapping of keys (got {_kind(parsed.data)})"
        raise ConfigError([*problems, Problem(display, 1, "", reason)])

    def add(key_path: KeyPath, reason: str) -> None:
        problems.append(
            Problem(display, _line_of(lines, key_path), format_key_path(key_path), reason)
        )

    missing: list[tuple[KeyPath, str]] = []
    data = _substitute(parsed.data, (), os.environ if environ is None else environ, missing)
    for key_path, name in missing:
        add(
            key_path,
            f"environment variable {name} is not set "
            f"(set it, or give a default: ${{{name}:-default}})",
        )
    # Values already reported (unset variable, unreadable scalar) would only add noise.
    reported = parsed.broken | {key_path for key_path, _ in missing}

    base_dir = file.resolve().parent
    config: BrokerConfig | None = None
    try:
        config = BrokerConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            if loc and loc[-1] == "[key]":
                loc = loc[:-1]
            if loc not in reported:
                add(loc, _reason(error, loc))
    for key_path, reason in _cross_checks(data):
        add(key_path, reason)

    if problems or config is None:
        unique = list(dict.fromkeys(problems))
        unique.sort(key=lambda p: (p.line is not None, p.line or 0))
        raise ConfigError(unique)
    config._source = base_dir / file.name
    config._display = display
    config._lines = lines
    return config
