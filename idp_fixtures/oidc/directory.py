"""Who can sign in and which apps may ask: the users and clients of a fixture issuer.

Kept apart from the provider so the same ``users.yaml`` can feed every issuer of a server
(and the standalone CLI) without each one re-parsing it. Loading is strict: a typo in a
test's fixture file should fail loudly at start-up, not as a confusing login later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class User:
    """A person the provider can sign in; ``sub`` is the stable subject identifier."""

    sub: str
    email: str | None = None
    name: str | None = None
    groups: tuple[str, ...] = ()
    claims: Mapping[str, Any] = field(default_factory=dict)

    def profile_claims(self) -> dict[str, Any]:
        """The claims this user contributes to ID tokens and ``/userinfo`` (besides ``sub``).

        Extra ``claims`` come last so a fixture file can override the derived ones.
        """
        out: dict[str, Any] = {}
        if self.email is not None:
            out["email"] = self.email
            out["email_verified"] = True
        if self.name is not None:
            out["name"] = self.name
        if self.groups:
            out["groups"] = list(self.groups)
        out.update(self.claims)
        return out


@dataclass(frozen=True)
class Client:
    """A relying party registered with the provider.

    ``secret`` ``None`` makes a public client: it authenticates with nothing at ``/token``
    and must therefore use PKCE. Redirect URIs are compared exactly (RFC 9700), so a
    test can check that a near-miss URI is refused.
    """

    client_id: str
    redirect_uris: tuple[str, ...] = ()
    secret: str | None = field(default=None, repr=False)

    @property
    def public(self) -> bool:
        """True when the client has no secret (PKCE is then mandatory)."""
        return self.secret is None


@dataclass(frozen=True)
class Directory:
    """Users and clients, as loaded from ``users.yaml`` or built in Python."""

    users: tuple[User, ...] = ()
    clients: tuple[Client, ...] = ()


DEFAULT_USERS: tuple[User, ...] = (
    User("alice", email="alice@example.com", name="Alice Example", groups=("admins", "dev")),
    User("bob", email="bob@example.com", name="Bob Example", groups=("dev",)),
)
"""Users an issuer gets when none are given, so a bare fixture can sign someone in."""

DEFAULT_CLIENTS: tuple[Client, ...] = (
    Client("test-client", ("http://127.0.0.1/callback",), secret="test-secret"),
)
"""The client an issuer gets when none are given; its ID is the default ``aud``."""


def load_directory(path: str | Path) -> Directory:
    """Read a ``users.yaml`` file (see :func:`parse_directory` for its shape)."""
    with Path(path).open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    return parse_directory(data if data is not None else {}, source=str(path))


def parse_directory(data: object, *, source: str = "users") -> Directory:
    """Validate the ``users.yaml`` shape::

        users:
          alice: {email: a@example.com, name: Alice, groups: [dev], claims: {dept: eng}}
        clients:
          app: {secret: s3cret, redirect_uris: ["http://127.0.0.1:8000/cb"]}

    A client without ``secret`` is public. Errors name the offending entry but never
    echo a secret's value.
    """
    top = _mapping(data, source)
    _only(top, {"users", "clients"}, source)
    users = tuple(
        _user(name, spec, f"{source}: users.{name}")
        for name, spec in _mapping(top.get("users") or {}, f"{source}: users").items()
    )
    clients = tuple(
        _client(name, spec, f"{source}: clients.{name}")
        for name, spec in _mapping(top.get("clients") or {}, f"{source}: clients").items()
    )
    return Directory(users=users, clients=clients)


def _user(name: object, spec: object, where: str) -> User:
    sub = _text(name, where)
    body = _mapping(spec if spec is not None else {}, where)
    _only(body, {"email", "name", "groups", "claims"}, where)
    groups = body.get("groups") or []
    if not isinstance(groups, list):
        raise ValueError(f"{where}: groups must be a list of strings")
    claims = _mapping(body.get("claims") or {}, f"{where}.claims")
    email = body.get("email")
    display = body.get("name")
    return User(
        sub=sub,
        email=None if email is None else _text(email, f"{where}.email"),
        name=None if display is None else _text(display, f"{where}.name"),
        groups=tuple(_text(g, f"{where}.groups") for g in groups),
        claims={_text(k, f"{where}.claims"): v for k, v in claims.items()},
    )


def _client(name: object, spec: object, where: str) -> Client:
    client_id = _text(name, where)
    body = _mapping(spec if spec is not None else {}, where)
    _only(body, {"secret", "redirect_uris"}, where)
    uris = body.get("redirect_uris") or []
    if not isinstance(uris, list):
        raise ValueError(f"{where}: redirect_uris must be a list of URLs")
    secret = body.get("secret")
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise ValueError(f"{where}: secret must be a non-empty string")
    return Client(
        client_id=client_id,
        redirect_uris=tuple(_text(u, f"{where}.redirect_uris") for u in uris),
        secret=secret,
    )


def _mapping(value: object, where: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: expected a non-empty string")
    return value


def _only(body: Mapping[Any, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in body if k not in allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
