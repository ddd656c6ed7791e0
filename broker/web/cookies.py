"""The broker's browser cookies: their names, their flags and the key they are signed with.

Sign-in uses three cookies (the console landing page has its own sealed one, see
:mod:`broker.web.console`), and nothing else is ever stored in the browser:

- the **session cookie** holds an opaque random ID plus a MAC (see
  :mod:`broker.web.sessions`); ``SameSite=Lax``, so a cross-site form post never carries it;
- the **login cookie** holds a random secret that ties an outgoing SAML AuthnRequest or OIDC
  authorization request to the browser that started it (see :mod:`broker.web.login`). It
  must reach the SAML ACS, which the IdP reaches by a cross-site POST, so on https it is
  ``SameSite=None; Secure``;
- the **last-login cookie** (``SESSION_NAME-last-login``) names the sign-in button used last
  (see :mod:`broker.web.people`), so the sign-in page can put it first. It is no secret and
  grants nothing.

On https the session and login cookies carry the ``__Host-`` prefix: browsers then accept
them only with ``Secure``, ``Path=/`` and no ``Domain``, so a sibling subdomain cannot plant
or overwrite them (cookie tossing would otherwise fix a session or a login binding). On http,
accepted only for loopback hosts, the cookies are not ``Secure`` (browsers would drop them)
and lose the prefix: local development works, and nothing on a network path ever sees them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.datastructures import Headers
from starlette.responses import Response

from broker.config import BrokerConfig
from broker.loopback import is_loopback_host

log = logging.getLogger("broker.web")

_MAX_COOKIE_VALUE = 512
"""Longer values are not ours; refusing them early bounds the work done on each one."""


class InsecureWebOriginError(ValueError):
    """``public_url`` is plain http on a host other than loopback: no cookie can be safe there."""


@dataclass(frozen=True)
class CookiePolicy:
    """Names and flags of both cookies, decided once from ``public_url``."""

    secure: bool
    """True on https: ``Secure``, ``__Host-`` names, login cookie ``SameSite=None``."""
    session_name: str
    login_name: str

    @classmethod
    def for_public_url(cls, public_url: str) -> CookiePolicy:
        """https anywhere, http only on loopback; raises :class:`InsecureWebOriginError` else."""
        parts = urlsplit(public_url)
        if parts.scheme == "https":
            return cls(True, "__Host-sts-broker", "__Host-sts-broker-login")
        if parts.scheme == "http" and parts.hostname and is_loopback_host(parts.hostname):
            return cls(False, "sts-broker", "sts-broker-login")
        raise InsecureWebOriginError(
            "browser sign-in needs an https:// public_url (plain http is accepted only for "
            "127.0.0.1, ::1 and localhost): session cookies would cross the network in clear"
        )

    @property
    def login_same_site(self) -> Literal["none", "lax"]:
        """``None`` needs ``Secure`` (browsers drop it otherwise), so http falls back to Lax."""
        return "none" if self.secure else "lax"

    def set(
        self,
        response: Response,
        name: str,
        value: str,
        *,
        same_site: Literal["none", "lax"],
        max_age: int | None,
    ) -> None:
        """Set one of our cookies with the flags every one of them shares."""
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite=same_site,
        )

    def clear(self, response: Response, name: str, *, same_site: Literal["none", "lax"]) -> None:
        """Expire a cookie; the flags must match or a ``__Host-`` deletion is ignored."""
        response.delete_cookie(
            name, path="/", secure=self.secure, httponly=True, samesite=same_site
        )


def cookie_value(headers: Headers, name: str) -> str | None:
    """The one value the browser sent for ``name``; None when absent, ambiguous or oversized.

    Parsed from the raw ``Cookie`` headers because a dict of cookies silently keeps one of
    two same-named values, and two values (one planted with another ``Path``) is exactly
    the ambiguity an attacker would create: refuse to choose.
    """
    found: list[str] = []
    for header in headers.getlist("cookie"):
        for pair in header.split(";"):
            key, sep, value = pair.strip().partition("=")
            if sep and key == name:
                found.append(value.strip())
    if len(found) != 1 or not 0 < len(found[0]) <= _MAX_COOKIE_VALUE:
        return None
    return found[0]


def cookie_key(config: BrokerConfig) -> bytes:
    """The root key of every web cookie MAC: configured, derived, or (with a warning) random.

    Derived from the first token key with HKDF under a label of its own, so it can never
    equal a key that seals tokens, and every node holding the same ``token_keys`` agrees on
    it. Rotating ``token_keys`` (a new first key) therefore ends browser sessions; set
    ``web.cookie_key`` to decouple the two.
    """
    if config.web.cookie_key is not None:
        return config.web.cookie_key
    if config.token_keys:
        return derive_key(config.token_keys[0].secret, b"sts-broker web cookie key v1")
    log.warning(
        "no web.cookie_key and no token_keys configured: browser sessions use an ephemeral "
        "key; they end when the process restarts and do not work across workers or nodes"
    )
    return os.urandom(32)


def derive_key(secret: bytes, purpose: bytes) -> bytes:
    """A 32-byte sub-key of ``secret`` for one ``purpose`` (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)
