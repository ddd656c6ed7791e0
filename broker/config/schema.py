"""The broker's one configuration file as frozen typed models: every key, its type and default.

Models are frozen and refuse unknown keys (``extra="forbid"``), with no silent coercion:
each field goes through a check of :mod:`broker.config.fields`, so a message names the
rule and never echoes a secret. Build them with :func:`broker.config.load_config`, which
keeps the line of every key so mistakes point into the file.

IAM policy *grammar* is not checked here (the IAM parser owns that); start-up code reports
its findings through :meth:`ConfigError.problem` so they read the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from broker.config.base import ConfigModel
from broker.config.claims import ClaimRef, ClaimsConfig, ProviderSessionTemplates
from broker.config.fields import (
    AWS_SAML_AUDIENCES,
    ISSUER_ALGORITHMS,
    LISTEN,
    MFA_SERIAL,
    REGION,
    SAML_ROLE_PAIR,
    URL_SCHEMA,
    WRITE_ONLY,
    AccountId,
    Alias,
    Checked,
    DemoUserName,
    IamPath,
    IssuerAlgorithm,
    KeyPath,
    LoginProviderName,
    ManagedPolicyName,
    OidcKind,
    PolicyDocument,
    PolicyName,
    PrincipalName,
    SamlProviderName,
    Tags,
    as_access_secret,
    as_audiences,
    as_client_ids,
    as_client_secret,
    as_listen_address,
    as_oidc_url,
    as_proxy_network,
    as_public_url,
    as_scopes,
    as_string,
    as_token_secret,
    as_totp_secret,
    beside_config,
    decimal_seconds,
    existing_file,
    fail,
    infer_oidc_kind,
    issuer_key_problem,
    line_of,
    oidc_arn_path,
    ranged,
    rate_per_second,
    shown,
    sp_key_problem,
    text_field,
)
from broker.config.pools import IdentityPoolConfig, IdentityPoolId
from broker.config.state_url import is_redis_url, masked, parse_redis_url
from broker.totp import decode_secret


class TokenKey(ConfigModel):
    """A key that seals session tokens; the first in the list seals, every one opens."""

    id: Annotated[
        str, text_field(r"[A-Za-z0-9_-]{1,32}", "key IDs are 1-32 of A-Z, a-z, 0-9, _ and -")
    ]
    secret: Annotated[bytes, Checked(as_token_secret, WRITE_ONLY)] = Field(repr=False)


class Limits(ConfigModel):
    """Bounds the broker enforces on every request, tunable per deployment."""

    max_body_bytes: Annotated[int, ranged(1024, 1_048_576)] = 262144
    clock_skew_seconds: Annotated[int, ranged(0, 900)] = 300


class RedisSettings(ConfigModel):
    """How the broker talks to Redis (or Valkey) when ``state`` is a Redis URL.

    The timeouts bound what a dead or hung Redis costs each request (it fails closed with
    ``ServiceUnavailable`` instead of hanging); the key prefix lets several brokers, or a
    broker and other programs, share one server without meeting each other's keys.
    """

    key_prefix: Annotated[
        str,
        text_field(r"[\x21-\x7e]{1,64}", "key prefixes are 1-64 printable ASCII characters"),
    ] = "sts-broker:"
    connect_timeout_seconds: Annotated[float, decimal_seconds(0.01, 30)] = 0.5
    """How long opening a connection may take."""
    timeout_seconds: Annotated[float, decimal_seconds(0.01, 30)] = 0.5
    """How long one reply may take, and the wait for a free pooled connection."""
    max_connections: Annotated[int, ranged(1, 10000)] = 50
    """Connections each worker process may open (they are pooled and reused)."""
    tls_ca_file: Annotated[str, Checked(as_string, {"type": "string"})] | None = None
    """PEM CA certificates that verify a ``rediss://`` server instead of the system's."""

    @field_validator("tls_ca_file")
    @classmethod
    def _resolve_ca_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Relative to the config file, and it must exist at start-up."""
        return existing_file(value, info)


class RateLimit(ConfigModel):
    """A token bucket: ``burst`` calls at once, refilled at ``rate`` calls a second."""

    rate: Annotated[float, rate_per_second(0.001, 1_000_000)]
    burst: Annotated[int, ranged(1, 10_000_000)]


class ActionLimits(ConfigModel):
    """Limits of their own for one STS action, counted apart from every other action."""

    principal: RateLimit | None = None
    source_ip: RateLimit | None = None

    @model_validator(mode="after")
    def _something_to_limit(self) -> ActionLimits:
        if self.principal is None and self.source_ip is None:
            raise fail("give principal, source_ip or both (each with rate and burst)")
        return self


ActionName = Annotated[
    str, text_field(r"[A-Z][A-Za-z]{1,63}", "must be an STS action name like AssumeRole")
]


class ThrottlingSettings(ConfigModel):
    """Token buckets, on by default as AWS's are (docs/throttling.md).

    Defaults are far above what an honest client sends (AWS's own STS quotas are hundreds
    of calls a second per account) and bound what a flood can cost. ``principal`` counts the
    calls of one access key ID or one federated subject; ``source_ip`` those of one address
    (IPv6: one /64). An action under ``actions`` gets buckets of its own for the scopes it
    names, and the shared ones for the others. ``signin`` and ``device`` are per address, for
    the browser sign-in pages and for device-code entry with the CLI's token endpoint.
    """

    enabled: bool = True
    principal: RateLimit = Field(default_factory=lambda: RateLimit(rate=200, burst=400))
    source_ip: RateLimit = Field(default_factory=lambda: RateLimit(rate=1000, burst=2000))
    actions: dict[ActionName, ActionLimits] = Field(default_factory=dict)
    signin: RateLimit = Field(default_factory=lambda: RateLimit(rate=50, burst=500))
    device: RateLimit = Field(default_factory=lambda: RateLimit(rate=10, burst=100))


class ServerSettings(ConfigModel):
    """Connection bounds of the HTTP server, so slow or silent clients cannot hold sockets.

    An STS endpoint and an OIDC issuer face the internet: a connection that sends nothing,
    sends its headers a byte at a time or trickles its body is closed when its bound runs
    out, and connections past ``max_connections`` are answered 503 and closed at once
    (:mod:`broker.web.connection_limits`). Keep ``max_connections`` below the process's
    open-file limit.
    """

    idle_timeout_seconds: Annotated[int, ranged(1, 300)] = 5
    """No byte of a request: before the first one, and between requests (keep-alive)."""
    header_timeout_seconds: Annotated[int, ranged(1, 300)] = 10
    """From a request's first byte to the end of its headers."""
    body_timeout_seconds: Annotated[int, ranged(1, 600)] = 30
    """From the end of the headers to the end of the body."""
    max_connections: Annotated[int, ranged(1, 1_000_000)] = 1000


class RevocationSettings(ConfigModel):
    """How quickly a revocation of a role's sessions reaches a node that did not write it.

    Each node remembers a role's revocation (or that it has none) for ``cache_seconds``
    before reading the state store again: one store read per role per interval instead of
    one per signed call. 0 reads the store on every signed call of a role session.
    """

    cache_seconds: Annotated[int, ranged(0, 60)] = 5


class OidcSettings(ConfigModel):
    """How the broker treats every OIDC issuer: key caching, outage tolerance, token bounds.

    Broker-wide rather than per provider because they are operational trade-offs (how long a
    down issuer is tolerated, how hard an unknown ``kid`` may make us fetch), not facts
    about one issuer.
    """

    jwks_ttl_seconds: Annotated[int, ranged(60, 86400)] = 3600
    refresh_interval_seconds: Annotated[int, ranged(1, 3600)] = 30
    last_known_good_seconds: Annotated[int, ranged(0, 604800)] = 21600
    http_timeout_seconds: Annotated[int, ranged(1, 60)] = 5
    max_token_bytes: Annotated[int, ranged(256, 20000)] = 20000
    max_token_lifetime_seconds: Annotated[int, ranged(300, 604800)] = 86400

    @model_validator(mode="after")
    def _interval_within_ttl(self) -> OidcSettings:
        """A key set must live at least one refresh interval, or the bounds contradict."""
        if self.refresh_interval_seconds > self.jwks_ttl_seconds:
            raise fail(
                f"refresh_interval_seconds ({self.refresh_interval_seconds}) must not exceed "
                f"jwks_ttl_seconds ({self.jwks_ttl_seconds})"
            )
        return self


class WebSettings(ConfigModel):
    """Browser sign-in: how long a session lives and the key its cookies are signed with.

    ``cookie_key`` is optional because a broker with ``token_keys`` can derive one (HKDF, a
    label of its own) and every node then agrees; without either, the key is ephemeral and
    browser sessions end at restart and do not work across workers.
    """

    session_idle_seconds: Annotated[int, ranged(60, 86400)] = 900
    session_absolute_seconds: Annotated[int, ranged(300, 86400)] = 28800
    cookie_key: Annotated[bytes, Checked(as_token_secret, WRITE_ONLY)] | None = Field(
        default=None, repr=False
    )

    @model_validator(mode="after")
    def _idle_within_absolute(self) -> WebSettings:
        """An idle timeout longer than the absolute one would never apply: a typo, refuse it."""
        if self.session_idle_seconds > self.session_absolute_seconds:
            raise fail(
                f"session_idle_seconds ({self.session_idle_seconds}) must not exceed "
                f"session_absolute_seconds ({self.session_absolute_seconds})"
            )
        return self


class SamlSettings(ConfigModel):
    """How the broker acts as a SAML service provider, for every provider of every account.

    The SP key pair decrypts ``EncryptedAssertion``s and is published in the SP metadata.
    Without one the broker makes an ephemeral pair at start-up (and warns): encrypted
    assertions then stop working at every restart, since the IdP encrypts to the old key.
    """

    sp_key_file: Annotated[str, Checked(as_string, {"type": "string"})] | None = None
    sp_cert_file: Annotated[str, Checked(as_string, {"type": "string"})] | None = None
    max_response_bytes: Annotated[int, ranged(8192, 1_048_576)] = 262144
    metadata_refresh_seconds: Annotated[int, ranged(60, 604800)] = 3600
    max_assertion_lifetime_seconds: Annotated[int, ranged(60, 86400)] = 300
    """How long after its IssueInstant an assertion is accepted (and its replay record kept),
    whatever NotOnOrAfter it carries: IdPs issue them for the POST that follows at once."""

    @field_validator("sp_key_file", "sp_cert_file")
    @classmethod
    def _resolve_sp_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Relative to the config file, and it must exist at start-up."""
        return existing_file(value, info)

    @model_validator(mode="after")
    def _sp_key_pair(self) -> SamlSettings:
        """Both files or neither, and the certificate must hold the key's public half."""
        if (self.sp_key_file is None) != (self.sp_cert_file is None):
            raise fail("set both sp_key_file and sp_cert_file, or neither")
        if self.sp_key_file is not None and self.sp_cert_file is not None:
            problem = sp_key_problem(Path(self.sp_key_file), Path(self.sp_cert_file))
            if problem is not None:
                raise fail(problem)
        return self


class AccessKeyConfig(ConfigModel):
    """A long-term ``AKIA`` key pair with which a user signs STS calls."""

    id: Annotated[
        str, text_field(r"AKIA[A-Z2-7]{16}", "access key IDs are AKIA + 16 of A-Z and 2-7")
    ]
    secret: Annotated[SecretStr, Checked(as_access_secret, WRITE_ONLY)]
    status: Literal["Active", "Inactive"] = "Active"


class MfaDeviceConfig(ConfigModel):
    """A virtual MFA device: the serial callers pass as ``SerialNumber`` and its TOTP seed."""

    serial: Annotated[
        str, text_field(MFA_SERIAL, "must be an MFA ARN: arn:aws:iam::ACCOUNT:mfa/NAME")
    ]
    totp_secret: Annotated[SecretStr, Checked(as_totp_secret, WRITE_ONLY)]

    def totp_secret_bytes(self) -> bytes:
        """The decoded seed, for computing codes (decoded the way authenticator apps do)."""
        return decode_secret(self.totp_secret.get_secret_value())


class UserConfig(ConfigModel):
    """An IAM user: signs calls with its access keys, proves MFA with its devices."""

    path: IamPath = "/"
    access_keys: list[AccessKeyConfig] = Field(default_factory=list)
    mfa_devices: list[MfaDeviceConfig] = Field(default_factory=list)
    policies: dict[PolicyName, PolicyDocument] = Field(default_factory=dict)
    managed_policies: list[ManagedPolicyName] = Field(default_factory=list)
    tags: Tags = Field(default_factory=dict)


class RoleConfig(ConfigModel):
    """An IAM role: who may assume it (trust policy) and what its sessions may do."""

    path: IamPath = "/"
    max_session_duration: Annotated[int, ranged(3600, 43200)] = 3600
    trust_policy: PolicyDocument
    policies: dict[PolicyName, PolicyDocument] = Field(default_factory=dict)
    managed_policies: list[ManagedPolicyName] = Field(default_factory=list)
    tags: Tags = Field(default_factory=dict)
    description: Annotated[
        str, text_field(r".{0,1000}", "descriptions are at most 1000 characters", flags=re.DOTALL)
    ] = ""


class OidcProviderConfig(ConfigModel):
    """An OIDC identity provider (IAM's ``oidc-provider``) whose ID tokens this account trusts.

    ``url`` is the issuer exactly as its tokens spell ``iss``; the provider's ARN path is the
    URL without its scheme. Keys come from discovery, ``jwks_uri`` or, offline, ``jwks_file``.
    """

    url: Annotated[str, Checked(as_oidc_url, URL_SCHEMA)]
    client_ids: Annotated[
        list[str],
        Checked(as_client_ids, {"type": "array", "minItems": 1, "maxItems": 100}),
    ]
    kind: OidcKind | None = None
    jwks_uri: Annotated[str, Checked(as_oidc_url, URL_SCHEMA)] | None = None
    jwks_file: Annotated[str, Checked(as_string, {"type": "string"})] | None = None
    max_token_age: Annotated[int, ranged(60, 604800)] = 86400
    single_use: bool = False
    claims: ClaimsConfig = Field(default_factory=ClaimsConfig)
    """How this provider's claims are normalised (:mod:`broker.config.claims`)."""
    session: ProviderSessionTemplates = Field(default_factory=ProviderSessionTemplates)
    """Session tags and SourceIdentity made from its claims, on every path."""

    @field_validator("jwks_file")
    @classmethod
    def _resolve_jwks_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Relative to the config file (like ``state``), and it must exist at start-up."""
        return existing_file(value, info)

    @model_validator(mode="after")
    def _one_key_source(self) -> OidcProviderConfig:
        if self.jwks_uri is not None and self.jwks_file is not None:
            raise fail("set jwks_uri or jwks_file, not both")
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


class IssuerKeyConfig(ConfigModel):
    """A key that signs the JWTs the broker mints, with its place in a rotation.

    ``current`` signs; ``next`` is published in the JWKS before it signs, so verifiers have
    cached it by the time it does; ``previous`` stays published after it stopped signing,
    until the tokens it signed have expired.
    """

    id: Annotated[
        str, text_field(r"[A-Za-z0-9_.-]{1,64}", "key IDs (kid) are 1-64 of A-Z, a-z, 0-9 and _.-")
    ]
    algorithm: IssuerAlgorithm
    private_key_file: Annotated[str, Checked(as_string, {"type": "string"})]
    status: Literal["current", "next", "previous"] = "current"

    @field_validator("private_key_file")
    @classmethod
    def _resolve_private_key_file(cls, value: str, info: ValidationInfo) -> str:
        """Relative to the config file; read and checked now so a bad key stops start-up."""
        path = beside_config(value, info)
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise fail(f"cannot read the key file {path} ({exc.strerror})") from None
        algorithm = info.data.get("algorithm")
        if isinstance(algorithm, str):
            problem = issuer_key_problem(pem, algorithm)
            if problem is not None:
                raise fail(f"{path}: {problem}")
        return str(path)


class IssuerSettings(ConfigModel):
    """The broker as an OIDC issuer: the keys GetWebIdentityToken signs with.

    With no keys the broker makes one of each algorithm at start-up (and warns): fine for a
    demo, but tokens then stop verifying at restart and nodes disagree on the key set.
    """

    keys: list[IssuerKeyConfig] = Field(default_factory=list)
    jwks_max_age_seconds: Annotated[int, ranged(60, 86400)] = 600

    @model_validator(mode="after")
    def _one_current_per_algorithm(self) -> IssuerSettings:
        """Every algorithm needs exactly one signer; kids must name one key each."""
        if not self.keys:
            return self
        seen: set[str] = set()
        for key in self.keys:
            if key.id in seen:
                raise fail(f"key ID {key.id!r} is used twice")
            seen.add(key.id)
        for algorithm in ISSUER_ALGORITHMS:
            current = [
                k.id for k in self.keys if k.algorithm == algorithm and k.status == "current"
            ]
            if len(current) != 1:
                raise fail(
                    f"needs exactly one {algorithm} key with status current "
                    f"(found {len(current)}); GetWebIdentityToken offers RS256 and ES384"
                )
        return self


class SamlProviderConfig(ConfigModel):
    """A SAML identity provider (IAM's ``saml-provider``) whose assertions this account trusts.

    Its metadata is the only source of its entity ID and signing keys. The broker's own
    entity ID is always an accepted audience; ``audiences`` adds more.
    """

    metadata_file: Annotated[str, Checked(as_string, {"type": "string"})] | None = None
    metadata_url: Annotated[str, Checked(as_oidc_url, URL_SCHEMA)] | None = None
    audiences: Annotated[list[str], Checked(as_audiences, {"type": "array", "maxItems": 20})] = (
        Field(default_factory=list)
    )
    idp_initiated: bool = False
    allow_cbc_encryption: bool = False
    single_use: bool = True
    claims: ClaimsConfig = Field(default_factory=ClaimsConfig)
    """How this provider's attributes are normalised (:mod:`broker.config.claims`)."""
    session: ProviderSessionTemplates = Field(default_factory=ProviderSessionTemplates)
    """Session tags and SourceIdentity made from its attributes, on every path."""

    @field_validator("metadata_file")
    @classmethod
    def _read_metadata_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Relative to the config file, and readable now so a missing file stops start-up here.

        Its contents are SAML, checked by the metadata parser the broker uses at start-up
        (:func:`broker.identity.saml.metadata.metadata_file_problems`, one of the loader's
        ``checks``), so this package needs no SAML code.
        """
        if value is None:
            return None
        path = beside_config(value, info)
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise fail(f"cannot read the metadata file {path} ({exc.strerror})") from None
        return str(path)

    @model_validator(mode="after")
    def _one_metadata_source(self) -> SamlProviderConfig:
        if (self.metadata_file is None) == (self.metadata_url is None):
            raise fail("set exactly one of metadata_file and metadata_url")
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


Partition = Literal["aws", "aws-cn", "aws-us-gov"]


@dataclass(frozen=True)
class PartitionDefaults:
    """Where a partition's STS, sign-in and console live (AWS's own endpoints)."""

    sts_endpoint: str
    region: str
    federation_endpoint: str
    console_url: str


PARTITIONS: Mapping[str, PartitionDefaults] = {
    "aws": PartitionDefaults(
        "https://sts.amazonaws.com",
        "us-east-1",
        "https://signin.aws.amazon.com/federation",
        "https://console.aws.amazon.com/",
    ),
    "aws-cn": PartitionDefaults(
        "https://sts.cn-north-1.amazonaws.com.cn",
        "cn-north-1",
        "https://signin.amazonaws.cn/federation",
        "https://console.amazonaws.cn/",
    ),
    "aws-us-gov": PartitionDefaults(
        "https://sts.us-gov-west-1.amazonaws.com",
        "us-gov-west-1",
        "https://signin.amazonaws-us-gov.com/federation",
        "https://console.amazonaws-us-gov.com/",
    ),
}


class UpstreamCredentialsConfig(ConfigModel):
    """How the broker authenticates to upstream STS for ``via: assume-role`` accounts.

    ``profile`` names a profile of the broker host's AWS config (``~/.aws/config`` or
    ``AWS_CONFIG_FILE``); without it botocore's default chain is used (environment,
    shared files, container or instance role). The secret itself never enters this file.
    """

    profile: (
        Annotated[
            str,
            text_field(
                r"[\w+=,.@:/-]{1,128}", "profile names are 1-128 of letters, digits and +=,.@:/_-"
            ),
        ]
        | None
    ) = None


class UpstreamSettings(ConfigModel):
    """Where "real AWS" is, for accounts whose roles live there (``accounts.ID.upstream``).

    Unset endpoints take the partition's own (AWS's global STS, sign-in and console for
    ``aws``); set ``sts_endpoint`` to a regional endpoint, or to a stand-in in tests.
    """

    sts_endpoint: Annotated[str, Checked(as_oidc_url, URL_SCHEMA)] | None = None
    region: (
        Annotated[str, text_field(REGION, "must be an AWS region name like us-east-1")] | None
    ) = None
    partition: Partition = "aws"
    federation_endpoint: Annotated[str, Checked(as_oidc_url, URL_SCHEMA)] | None = None
    console_url: Annotated[str, Checked(as_oidc_url, URL_SCHEMA)] | None = None
    credentials: UpstreamCredentialsConfig = Field(default_factory=UpstreamCredentialsConfig)
    audience: Annotated[
        str, text_field(r"[\x21-\x7e]{1,255}", "audiences are 1-255 printable ASCII characters")
    ] = "sts.amazonaws.com"
    """``aud`` of the ID tokens the broker signs for ``via: web-identity``: a client ID of the
    IAM OIDC provider created for the broker in AWS."""
    token_lifetime_seconds: Annotated[int, ranged(60, 3600)] = 300
    """How long those ID tokens live: they are used at once, so a few minutes."""
    connect_timeout_seconds: Annotated[int, ranged(1, 30)] = 3
    read_timeout_seconds: Annotated[int, ranged(1, 60)] = 10
    max_attempts: Annotated[int, ranged(1, 10)] = 3
    """Attempts per upstream call, botocore's standard retry mode (Throttling included)."""

    @property
    def endpoints(self) -> PartitionDefaults:
        """The endpoints in force: each set value, else the partition's own."""
        base = PARTITIONS[self.partition]
        return PartitionDefaults(
            sts_endpoint=self.sts_endpoint or base.sts_endpoint,
            region=self.region or base.region,
            federation_endpoint=self.federation_endpoint or base.federation_endpoint,
            console_url=self.console_url or base.console_url,
        )


UpstreamVia = Literal["assume-role", "web-identity"]


class AccountUpstream(ConfigModel):
    """An account whose roles live in real AWS: the broker decides, upstream STS issues.

    ``via: assume-role``: the broker calls AssumeRole with its own AWS credentials
    (``upstream.credentials``). ``via: web-identity``: it signs an ID token with its issuer
    keys and calls AssumeRoleWithWebIdentity, holding no AWS secret at all.
    """

    via: UpstreamVia
    external_id: (
        Annotated[
            str,
            text_field(
                r"[\w+=,.@:/-]{2,1224}", "external IDs are 2-1224 of letters, digits and +=,.@:/_-"
            ),
        ]
        | None
    ) = None
    """Sent as AssumeRole's ``ExternalId`` (``via: assume-role`` only), if the AWS role's
    trust policy asks for one."""

    @model_validator(mode="after")
    def _external_id_for_assume_role(self) -> AccountUpstream:
        if self.external_id is not None and self.via != "assume-role":
            raise fail("external_id applies only to via: assume-role")
        return self


class AccountConfig(ConfigModel):
    """One AWS-style account: its users, its roles and its federation providers.

    A *local* account (no ``upstream``) is served by the broker's own STS; an *upstream* one
    names roles that exist in real AWS, so it holds no users and no role permissions here.
    """

    alias: Alias | None = None
    users: dict[PrincipalName, UserConfig] = Field(default_factory=dict)
    roles: dict[PrincipalName, RoleConfig] = Field(default_factory=dict)
    saml_providers: dict[SamlProviderName, SamlProviderConfig] = Field(default_factory=dict)
    oidc_providers: list[OidcProviderConfig] = Field(default_factory=list)
    outbound_web_identity_federation: bool = False
    """GetWebIdentityToken for this account's principals; off by default, as in AWS."""
    upstream: AccountUpstream | None = None
    """Set for an account whose roles live in real AWS (see :class:`UpstreamSettings`)."""
    identity_pools: dict[IdentityPoolId, IdentityPoolConfig] = Field(default_factory=dict)
    """Cognito-compatible identity pools (:mod:`broker.config.pools`), by pool ID."""


class SamlLoginConfig(ConfigModel):
    """A sign-in button for one account's SAML provider (``accounts.ACCOUNT.saml_providers``)."""

    account: AccountId
    provider: SamlProviderName

    def arn(self) -> str:
        return SamlProviderConfig.arn(self.account, self.provider)


class OidcLoginConfig(ConfigModel):
    """A "sign in with" button for an OIDC provider (authorization code + PKCE S256).

    Its ID token is checked exactly like an ``AssumeRoleWithWebIdentity`` token, by every
    account whose ``oidc_providers`` lists ``url`` with ``client_id``; the roles offered are
    those whose trust policies admit it there.
    """

    url: Annotated[str, Checked(as_oidc_url, URL_SCHEMA)]
    client_id: Annotated[
        str, text_field(r"[\x20-\x7e]{1,255}", "client IDs are 1-255 printable ASCII characters")
    ]
    client_secret: Annotated[SecretStr, Checked(as_client_secret, WRITE_ONLY)] | None = Field(
        default=None, repr=False
    )
    """None for a public client (PKCE only)."""
    scopes: Annotated[list[str], Checked(as_scopes, {"type": "array", "maxItems": 20})] = Field(
        default_factory=lambda: ["openid", "email", "profile"]
    )
    roles_claim: ClaimRef | None = None
    """When set (``cognito:roles``, or a pointer such as ``/realm_access/roles``), only role
    ARNs listed in this claim are offered."""
    session_name_claim: ClaimRef = "email"
    """RoleSessionName comes from this claim (``sub`` when absent), cut to IAM's alphabet."""


class LoginProviderConfig(ConfigModel):
    """One button on the sign-in page: exactly one of ``saml`` and ``oidc``."""

    label: Annotated[str, text_field(r"[^\x00-\x1f\x7f]{1,64}", "labels are 1-64 characters")]
    saml: SamlLoginConfig | None = None
    oidc: OidcLoginConfig | None = None
    roles: list[
        Annotated[
            str,
            text_field(
                r"arn:aws:iam::(?:[0-9]{12}|\*):role/[\x21-\x7e]{1,512}",
                "must be a role ARN (wildcards * and ? allowed)",
            ),
        ]
    ] = Field(default_factory=list)
    """Optional allow-list of role ARN patterns (``*``/``?``) narrowing what this login offers."""

    @model_validator(mode="after")
    def _one_protocol(self) -> LoginProviderConfig:
        if (self.saml is None) == (self.oidc is None):
            raise fail("set exactly one of saml and oidc")
        return self


class LoginSettings(ConfigModel):
    """The sign-in page. Without providers it lists every account's SAML providers."""

    providers: dict[LoginProviderName, LoginProviderConfig] = Field(default_factory=dict)


class DemoUser(ConfigModel):
    """Someone the demo IdPs sign in: a button on both fixture login pages.

    The SAML IdP asserts ``saml_roles`` as AWS's ``Role`` attribute (the IdP, not the
    broker, decides SAML roles, as Okta or Entra ID would); the OIDC provider only vouches
    for the name and verified email, and the trust policies decide what Google users get.
    """

    name: Annotated[str, text_field(r"[^\x00-\x1f\x7f]{1,64}", "names are 1-64 characters")]
    email: Annotated[
        str,
        text_field(r"[^\s@]{1,64}@[^\s@]{1,190}", "must be an email address like a@example.com"),
    ]
    saml_roles: list[
        Annotated[
            str,
            text_field(
                SAML_ROLE_PAIR, "must be 'ROLE_ARN,SAML_PROVIDER_ARN' (AWS's Role attribute)"
            ),
        ]
    ] = Field(default_factory=list)


class DemoSettings(ConfigModel):
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
            raise fail("list under users the people the demo IdPs sign in")
        return self


class AuditSettings(ConfigModel):
    """Where the audit trail goes: JSON lines on standard output, to a file, or both.

    Off unless set: the trail names every caller and role, so where it is kept (and who
    may read it) is the operator's decision. A relative ``file`` is beside the config
    file; its folder must exist, the file is created (mode 0600) and appended to.
    """

    stdout: bool = False
    file: Annotated[str, Checked(as_string, {"type": "string"})] | None = None

    @field_validator("file")
    @classmethod
    def _resolve_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        path = beside_config(value, info)
        if not path.parent.is_dir():
            raise fail(f"the folder {path.parent} does not exist")
        if path.is_dir():
            raise fail(f"{path} is a folder; name a file in it")
        return str(path)


class BrokerConfig(ConfigModel):
    """The whole file. Build it with :func:`load_config` so errors can point at lines."""

    public_url: Annotated[str, Checked(as_public_url, {"type": "string", "format": "uri"})]
    region: Annotated[str, text_field(REGION, "must be an AWS region name like us-east-1")] = (
        "us-east-1"
    )
    state: Annotated[
        str,
        Checked(
            as_string,
            {
                "type": "string",
                "pattern": "^(memory|sqlite:///.+|(redis|rediss|valkey|valkeys)://.+)$",
            },
        ),
    ] = "memory"
    redis: RedisSettings = Field(default_factory=RedisSettings)
    token_keys: list[TokenKey] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    throttling: ThrottlingSettings = Field(default_factory=ThrottlingSettings)
    trusted_proxies: list[
        Annotated[str, Checked(as_proxy_network, {"type": "string", "examples": ["10.0.0.0/8"]})]
    ] = Field(default_factory=list)
    """Addresses whose ``X-Forwarded-For`` is believed; empty: the header is ignored."""
    server: ServerSettings = Field(default_factory=ServerSettings)
    revocation: RevocationSettings = Field(default_factory=RevocationSettings)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    saml: SamlSettings = Field(default_factory=SamlSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    issuer: IssuerSettings = Field(default_factory=IssuerSettings)
    login: LoginSettings = Field(default_factory=LoginSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    upstream: UpstreamSettings = Field(default_factory=UpstreamSettings)
    accounts: dict[AccountId, AccountConfig]
    managed_policies: dict[ManagedPolicyName, PolicyDocument] = Field(default_factory=dict)
    admin_listen: (
        Annotated[
            str,
            Checked(as_listen_address, {"type": "string", "pattern": f"^(?:{LISTEN})$"}),
        ]
        | None
    ) = None
    """Serve ``/metrics`` and ``/readyz`` on this address only (not on the public port)."""
    audit: AuditSettings = Field(default_factory=AuditSettings)
    log_format: Literal["text", "json"] = "text"

    _source: Path | None = PrivateAttr(default=None)
    _display: str = PrivateAttr(default="<config>")
    _lines: dict[KeyPath, int] = PrivateAttr(default_factory=dict)

    @field_validator("state")
    @classmethod
    def _resolve_state(cls, value: str, info: ValidationInfo) -> str:
        """``sqlite:///rel.db`` is relative to the config file, so the broker runs from anywhere;
        a Redis URL is checked whole now, and no message quotes its password."""
        if value == "memory":
            return value
        if is_redis_url(value):
            try:
                parse_redis_url(value)
            except ValueError as exc:
                raise fail(str(exc)) from None
            return value
        if not value.startswith("sqlite:///") or value == "sqlite:///":
            raise fail(
                "must be 'memory', 'sqlite:///path/to/file.db' or "
                f"'redis://[user:password@]host:port/db' (got {shown(masked(value))})"
            )
        return "sqlite:///" + str(beside_config(value.removeprefix("sqlite:///"), info))

    @property
    def source(self) -> Path | None:
        """The file this config was loaded from (None when built in code)."""
        return self._source

    def locate(self, key_path: KeyPath) -> tuple[str, int | None]:
        """(file as the user named it, line of ``key_path`` or of its nearest located parent)."""
        return self._display, line_of(self._lines, key_path)


def config_json_schema() -> dict[str, Any]:
    """JSON Schema of the file, for editors and CI linting of config repos."""
    return BrokerConfig.model_json_schema()
