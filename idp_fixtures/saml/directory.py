"""Who can sign in and which service providers may ask: users and SPs of the SAML IdP.

A SAML IdP, unlike an OIDC provider, decides the AWS roles itself (the ``Role``
attribute), so a user carries its role pairs. Service providers are registered with their
exact ACS URLs: the IdP posts a response only to a registered ACS, as real IdPs do.

Loading ``users.yaml`` is strict (unknown keys are errors) so a typo fails at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from idp_fixtures.saml.names import AWS_ACS_URL, AWS_SP_ENTITY_ID


@dataclass(frozen=True)
class SamlUser:
    """A person the IdP can sign in.

    ``username`` is what the login page shows and what tests pass as ``user``;
    ``name_id`` (default: the username) is the NameID value. ``roles`` are
    ``(role_arn, provider_arn)`` pairs for the AWS ``Role`` attribute; ``attributes``
    are extra SAML attributes by full name.
    """

    username: str
    name_id: str | None = None
    email: str | None = None
    display_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    groups: tuple[str, ...] = ()
    roles: tuple[tuple[str, str], ...] = ()
    session_name: str | None = None
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        """The NameID value."""
        return self.name_id if self.name_id is not None else self.username

    @property
    def role_session_name(self) -> str:
        """``RoleSessionName``: explicit, else the email, else the username."""
        return self.session_name or self.email or self.username


@dataclass(frozen=True)
class ServiceProvider:
    """A relying party: its entity ID (the AuthnRequest Issuer and the Audience), the
    ACS URLs responses may be posted to (exact match), and optionally its certificate
    (verifies signed AuthnRequests, encrypts assertions)."""

    entity_id: str
    acs_urls: tuple[str, ...]
    cert: x509.Certificate | None = None

    def __post_init__(self) -> None:
        if not self.acs_urls:
            raise ValueError(f"service provider {self.entity_id!r} needs at least one ACS URL")

    @property
    def default_acs(self) -> str:
        """Where IdP-initiated responses and requests without an ACS URL go."""
        return self.acs_urls[0]


@dataclass(frozen=True)
class SamlDirectory:
    """Users and service providers, as loaded from ``users.yaml`` or built in Python."""

    users: tuple[SamlUser, ...] = ()
    sps: tuple[ServiceProvider, ...] = ()


FIXTURE_ACCOUNT = "111111111111"
"""The AWS account of the default users' roles."""
FIXTURE_PROVIDER_ARN = f"arn:aws:iam::{FIXTURE_ACCOUNT}:saml-provider/IdpFixtures"
"""The SAML provider ARN of the default users' role pairs."""

DEFAULT_USERS: tuple[SamlUser, ...] = (
    SamlUser(
        "alice",
        email="alice@example.com",
        display_name="Alice Example",
        given_name="Alice",
        family_name="Example",
        groups=("admins", "dev"),
        roles=(
            (f"arn:aws:iam::{FIXTURE_ACCOUNT}:role/Dev", FIXTURE_PROVIDER_ARN),
            (f"arn:aws:iam::{FIXTURE_ACCOUNT}:role/Admin", FIXTURE_PROVIDER_ARN),
        ),
    ),
    SamlUser(
        "bob",
        email="bob@example.com",
        display_name="Bob Example",
        given_name="Bob",
        family_name="Example",
        groups=("dev",),
        roles=((f"arn:aws:iam::{FIXTURE_ACCOUNT}:role/ReadOnly", FIXTURE_PROVIDER_ARN),),
    ),
)
"""Users an IdP gets when none are given."""

DEFAULT_SPS: tuple[ServiceProvider, ...] = (ServiceProvider(AWS_SP_ENTITY_ID, (AWS_ACS_URL,)),)
"""AWS's own sign-in, the SP every AWS-facing IdP app is configured for."""


def load_saml_directory(path: str | Path) -> SamlDirectory:
    """Read a SAML ``users.yaml`` (see :func:`parse_saml_directory`); ``cert_file`` paths
    are relative to the file."""
    source = Path(path)
    with source.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    return parse_saml_directory(
        data if data is not None else {}, source=str(path), base=source.parent
    )


def parse_saml_directory(
    data: object, *, source: str = "users", base: Path | None = None
) -> SamlDirectory:
    """Validate the SAML ``users.yaml`` shape::

        users:
          alice:
            email: alice@example.com
            name: Alice Example
            roles: ["arn:aws:iam::1111:role/Dev,arn:aws:iam::1111:saml-provider/Corp"]
            attributes: {"https://aws.amazon.com/SAML/Attributes/PrincipalTag:team": [platform]}
        sps:
          https://broker.example.com/saml/metadata:
            acs_urls: ["https://broker.example.com/saml/acs"]
            cert_file: sp.crt

    Errors name the offending entry.
    """
    top = _mapping(data, source)
    _only(top, {"users", "sps"}, source)
    users = tuple(
        _user(name, spec, f"{source}: users.{name}")
        for name, spec in _mapping(top.get("users") or {}, f"{source}: users").items()
    )
    sps = tuple(
        _sp(name, spec, f"{source}: sps.{name}", base or Path("."))
        for name, spec in _mapping(top.get("sps") or {}, f"{source}: sps").items()
    )
    return SamlDirectory(users=users, sps=sps)


def parse_role_pair(value: str, where: str = "role") -> tuple[str, str]:
    """``"role_arn,provider_arn"`` (either order, as AWS accepts) -> ``(role, provider)``."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"{where}: expected 'role_arn,provider_arn'")
    first, second = parts
    if ":saml-provider/" in first and ":role/" in second:
        return second, first
    if ":role/" in first and ":saml-provider/" in second:
        return first, second
    raise ValueError(f"{where}: expected one role ARN and one saml-provider ARN")


def _user(name: object, spec: object, where: str) -> SamlUser:
    username = _text(name, where)
    body = _mapping(spec if spec is not None else {}, where)
    _only(
        body,
        {
            "name_id",
            "email",
            "name",
            "given_name",
            "family_name",
            "groups",
            "roles",
            "session_name",
            "attributes",
        },
        where,
    )
    attributes = {
        _text(k, f"{where}.attributes"): _texts(v, f"{where}.attributes.{k}", allow_scalar=True)
        for k, v in _mapping(body.get("attributes") or {}, f"{where}.attributes").items()
    }
    return SamlUser(
        username=username,
        name_id=_optional(body, "name_id", where),
        email=_optional(body, "email", where),
        display_name=_optional(body, "name", where),
        given_name=_optional(body, "given_name", where),
        family_name=_optional(body, "family_name", where),
        groups=_texts(body.get("groups") or [], f"{where}.groups"),
        roles=tuple(
            parse_role_pair(r, f"{where}.roles")
            for r in _texts(body.get("roles") or [], f"{where}.roles")
        ),
        session_name=_optional(body, "session_name", where),
        attributes=attributes,
    )


def _sp(name: object, spec: object, where: str, base: Path) -> ServiceProvider:
    entity_id = _text(name, where)
    body = _mapping(spec if spec is not None else {}, where)
    _only(body, {"acs_urls", "cert_file"}, where)
    acs_urls = _texts(body.get("acs_urls") or [], f"{where}.acs_urls")
    if not acs_urls:
        raise ValueError(f"{where}: acs_urls must list at least one URL")
    cert = None
    cert_file = _optional(body, "cert_file", where)
    if cert_file is not None:
        try:
            cert = x509.load_pem_x509_certificate((base / cert_file).read_bytes())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{where}.cert_file: cannot load a PEM certificate ({exc})") from None
    return ServiceProvider(entity_id, acs_urls, cert)


def _mapping(value: object, where: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: expected a non-empty string")
    return value


def _texts(value: object, where: str, *, allow_scalar: bool = False) -> tuple[str, ...]:
    if allow_scalar and isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected a list of strings")
    return tuple(_text(v, where) for v in value)


def _optional(body: Mapping[str, Any], key: str, where: str) -> str | None:
    value = body.get(key)
    return None if value is None else _text(value, f"{where}.{key}")


def _only(body: Mapping[Any, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in body if k not in allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
