"""One fixture OIDC issuer: its keys, users, clients, and the tokens it mints.

The HTTP layer (:mod:`idp_fixtures.oidc.app`) only parses requests and calls into this
object, so a test can mint tokens directly (``provider.id_token(...)``) or run the real
browser flow, and both paths produce tokens signed the same way by the same keys.

State is shared between the server thread and the test thread, hence one lock around
every mutation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from joserfc import jws
from joserfc.jws import JWSRegistry

from idp_fixtures.oidc.directory import DEFAULT_CLIENTS, DEFAULT_USERS, Client, User
from idp_fixtures.oidc.keys import Alg, SigningKey, generate_key


class Clock(Protocol):
    """Current time as POSIX seconds; structurally the same as ``broker.clock.Clock``.

    Declared here so ``idp_fixtures`` stays usable by projects that are not the broker.
    """

    def time(self) -> float: ...


class _WallClock:
    def time(self) -> float:
        return time.time()


class OAuthError(Exception):
    """An RFC 6749 error: ``error`` code, human description, HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated ``/authorize`` request, waiting for a user to be picked."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str
    nonce: str
    code_challenge: str | None


@dataclass(frozen=True)
class TokenResponse:
    """What ``/token`` answers for a redeemed code."""

    access_token: str
    id_token: str
    expires_in: int
    scope: str

    def as_json(self) -> dict[str, Any]:
        """The RFC 6749 section 5.1 body."""
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "id_token": self.id_token,
            "scope": self.scope,
        }


@dataclass(frozen=True)
class _Grant:
    request: AuthorizationRequest
    sub: str
    auth_time: int
    expires_at: float


@dataclass(frozen=True)
class _AccessGrant:
    sub: str
    code: str
    expires_at: float


_SIGNING_ALGS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "ES512")


class OidcProvider:
    """One issuer: ``issuer`` is its exact URL (no trailing slash), as ``iss`` carries it.

    ``users`` / ``clients`` default to :data:`DEFAULT_USERS` / :data:`DEFAULT_CLIENTS`;
    the first client is the default ``aud``. ``auto_login`` names a user signed in
    without showing the login page. ``jwks_max_age`` is the JWKS ``Cache-Control``
    max-age; ``code_lifetime`` how long an authorization code may be redeemed.
    """

    def __init__(
        self,
        issuer: str,
        *,
        users: Iterable[User] | None = None,
        clients: Iterable[Client] | None = None,
        alg: Alg = "RS256",
        auto_login: str | None = None,
        clock: Clock | None = None,
        jwks_max_age: int = 300,
        code_lifetime: int = 60,
        access_token_lifetime: int = 3600,
    ) -> None:
        if issuer.endswith("/") or "?" in issuer or "#" in issuer:
            raise ValueError("issuer must be a URL without trailing slash, query or fragment")
        self._issuer = issuer
        self._alg: Alg = alg
        self._clock: Clock = clock if clock is not None else _WallClock()
        self.jwks_max_age = jwks_max_age
        self.code_lifetime = code_lifetime
        self.access_token_lifetime = access_token_lifetime
        self._lock = threading.RLock()
        self._initial_users = tuple(DEFAULT_USERS if users is None else users)
        self._initial_clients = tuple(DEFAULT_CLIENTS if clients is None else clients)
        if not self._initial_clients:
            raise ValueError("an issuer needs at least one client (the default audience)")
        self._initial_auto_login = auto_login
        self._initial_key = generate_key(alg)
        self._users: dict[str, User] = {}
        self._clients: dict[str, Client] = {}
        self._keys: list[SigningKey] = []
        self._current: SigningKey = self._initial_key
        self._codes: dict[str, _Grant] = {}
        self._access: dict[str, _AccessGrant] = {}
        self.auto_login: str | None = None
        self.reset()

    # -- identity and configuration ------------------------------------------------------

    @property
    def issuer(self) -> str:
        """The exact issuer URL (``iss`` of every token, discovery ``issuer``)."""
        return self._issuer

    @property
    def clock(self) -> Clock:
        """The clock every ``iat``/``exp`` and code expiry is read from."""
        return self._clock

    @property
    def users(self) -> Mapping[str, User]:
        """Configured users by subject (a copy)."""
        with self._lock:
            return dict(self._users)

    @property
    def clients(self) -> Mapping[str, Client]:
        """Registered clients by ID (a copy)."""
        with self._lock:
            return dict(self._clients)

    @property
    def default_client(self) -> Client:
        """The first registered client: the ``aud`` of tokens minted without one."""
        with self._lock:
            return next(iter(self._clients.values()))

    def add_user(self, user: User) -> None:
        """Register (or replace) a user."""
        with self._lock:
            self._users[user.sub] = user

    def add_client(self, client: Client) -> None:
        """Register (or replace) a client; it becomes the default only if it is the first."""
        with self._lock:
            self._clients[client.client_id] = client

    def reset(self) -> None:
        """Back to the state at construction: initial key only, initial users and clients,
        no outstanding codes or access tokens.

        The issuer URL and the initial key survive, so a relying party that cached the
        JWKS keeps working across tests that share this issuer.
        """
        with self._lock:
            self._users = {u.sub: u for u in self._initial_users}
            self._clients = {c.client_id: c for c in self._initial_clients}
            self._keys = [self._initial_key]
            self._current = self._initial_key
            self._codes.clear()
            self._access.clear()
            self.auto_login = self._initial_auto_login

    # -- keys ----------------------------------------------------------------------------

    @property
    def current_key(self) -> SigningKey:
        """The key new tokens are signed with."""
        with self._lock:
            return self._current

    @property
    def published_keys(self) -> tuple[SigningKey, ...]:
        """Every key in the JWKS, current one included."""
        with self._lock:
            return tuple(self._keys)

    def jwks(self) -> dict[str, Any]:
        """The JWKS document served at ``{issuer}/jwks``."""
        with self._lock:
            return {"keys": [k.public_jwk() for k in self._keys]}

    def rotate_keys(self, alg: Alg | None = None) -> SigningKey:
        """Make a new current key; the old ones stay published until :meth:`retire_old_keys`.

        This is how real IdPs rotate, so a relying party must accept tokens signed by
        either key during the overlap.
        """
        key = generate_key(alg or self._alg)
        with self._lock:
            self._keys.append(key)
            self._current = key
        return key

    def retire_old_keys(self) -> None:
        """Unpublish every key but the current one."""
        with self._lock:
            self._keys = [self._current]

    def publish_key(self, key: SigningKey) -> None:
        """Publish an extra key without making it current (e.g. a weak 1024-bit RSA key)."""
        with self._lock:
            if all(k.kid != key.kid for k in self._keys):
                self._keys.append(key)

    # -- minting -------------------------------------------------------------------------

    def now(self) -> int:
        """Current time in whole seconds, as JWT NumericDates are written."""
        return int(self._clock.time())

    def claims(
        self,
        sub: str = "alice",
        *,
        aud: str | Sequence[str] | None = None,
        lifetime: int = 3600,
        **claims: Any,
    ) -> dict[str, Any]:
        """The payload :meth:`id_token` would sign, without signing it.

        Known users contribute their profile claims. An explicit claim overrides, and an
        explicit ``None`` removes the claim (``exp=None`` makes a token without ``exp``).
        """
        now = self.now()
        audience: str | list[str]
        if aud is None:
            audience = self.default_client.client_id
        elif isinstance(aud, str):
            audience = aud
        else:
            audience = list(aud)
        payload: dict[str, Any] = {
            "iss": self._issuer,
            "sub": sub,
            "aud": audience,
            "iat": now,
            "exp": now + lifetime,
            "jti": secrets.token_urlsafe(16),
        }
        user = self.users.get(sub)
        if user is not None:
            payload.update(user.profile_claims())
        for name, value in claims.items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        return payload

    def sign(
        self,
        payload: Mapping[str, Any] | bytes,
        *,
        key: SigningKey | None = None,
        alg: str | None = None,
        header: Mapping[str, Any] | None = None,
        registry: JWSRegistry | None = None,
    ) -> str:
        """Sign ``payload`` as a compact JWS with ``key`` (default: the current key).

        ``header`` adds or overrides protected header parameters; hostile builders use it
        with a permissive ``registry`` to produce headers a verifier must refuse.
        """
        signer = key if key is not None else self.current_key
        algorithm = alg or signer.alg
        protected: dict[str, Any] = {"alg": algorithm, "kid": signer.kid, "typ": "JWT"}
        protected.update(header or {})
        body = payload if isinstance(payload, bytes) else _json_bytes(payload)
        reg = registry if registry is not None else JWSRegistry(algorithms=[algorithm])
        return jws.serialize_compact(protected, body, signer.key, registry=reg)

    def id_token(
        self,
        sub: str = "alice",
        aud: str | Sequence[str] | None = None,
        lifetime: int = 3600,
        **claims: Any,
    ) -> str:
        """A signed ID token for ``sub`` (see :meth:`claims` for how claims combine)."""
        return self.sign(self.claims(sub, aud=aud, lifetime=lifetime, **claims))

    def discovery(self) -> dict[str, Any]:
        """The ``.well-known/openid-configuration`` document."""
        algs = sorted({k.alg for k in self.published_keys if k.alg in _SIGNING_ALGS})
        return {
            "issuer": self._issuer,
            "authorization_endpoint": f"{self._issuer}/authorize",
            "token_endpoint": f"{self._issuer}/token",
            "userinfo_endpoint": f"{self._issuer}/userinfo",
            "jwks_uri": f"{self._issuer}/jwks",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algs,
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "azp",
                "iat",
                "exp",
                "auth_time",
                "nonce",
                "at_hash",
                "email",
                "email_verified",
                "name",
                "groups",
            ],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
        }

    # -- authorization-code flow ---------------------------------------------------------

    def issue_code(self, request: AuthorizationRequest, sub: str) -> str:
        """Record that ``sub`` signed in for ``request``; return the one-time code."""
        code = secrets.token_urlsafe(32)
        now = self._clock.time()
        with self._lock:
            self._purge(now)
            self._codes[code] = _Grant(request, sub, int(now), now + self.code_lifetime)
        return code

    def _purge(self, now: float) -> None:
        """Drop expired codes and access tokens so a long-running server stays bounded."""
        for code in [c for c, g in self._codes.items() if g.expires_at <= now]:
            del self._codes[code]
        for token in [t for t, a in self._access.items() if a.expires_at <= now]:
            del self._access[token]

    def redeem_code(
        self, code: str, *, client_id: str, redirect_uri: str, code_verifier: str | None
    ) -> TokenResponse:
        """Trade a code for tokens (the caller has already authenticated the client).

        The code is consumed by the first attempt whatever its outcome, and a second use
        also revokes the access token the first one produced (RFC 6749 section 4.1.2).
        """
        with self._lock:
            grant = self._codes.pop(code, None)
            if grant is None:
                for token, access in list(self._access.items()):
                    if access.code == code:
                        del self._access[token]
                raise OAuthError("invalid_grant", "unknown, expired or already used code")
        req = grant.request
        if self._clock.time() >= grant.expires_at:
            raise OAuthError("invalid_grant", "authorization code expired")
        if req.client_id != client_id:
            raise OAuthError("invalid_grant", "code was issued to another client")
        if req.redirect_uri != redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization")
        _check_pkce(req.code_challenge, code_verifier)
        access_token = secrets.token_urlsafe(32)
        lifetime = self.access_token_lifetime
        with self._lock:
            self._access[access_token] = _AccessGrant(
                grant.sub, code, self._clock.time() + lifetime
            )
        id_token = self.id_token(
            grant.sub,
            aud=client_id,
            nonce=req.nonce,
            auth_time=grant.auth_time,
            at_hash=_at_hash(access_token),
            azp=client_id,
        )
        return TokenResponse(access_token, id_token, lifetime, req.scope)

    def userinfo(self, access_token: str) -> dict[str, Any] | None:
        """The claims ``/userinfo`` returns for ``access_token``, or ``None`` if invalid."""
        with self._lock:
            access = self._access.get(access_token)
        if access is None or self._clock.time() >= access.expires_at:
            return None
        user = self.users.get(access.sub)
        info: dict[str, Any] = {"sub": access.sub}
        if user is not None:
            info.update(user.profile_claims())
        return info

    def authenticate_client(self, client_id: str, secret: str | None) -> Client:
        """The client, if ``secret`` is right for it (``None`` for a public client).

        Raises ``invalid_client`` (401) otherwise; comparison is constant-time.
        """
        client = self.clients.get(client_id)
        if client is None:
            raise OAuthError("invalid_client", "unknown client", 401)
        if client.secret is None:
            if secret is not None:
                raise OAuthError("invalid_client", "public client must not send a secret", 401)
            return client
        if secret is None or not hmac.compare_digest(
            secret.encode("utf-8"), client.secret.encode("utf-8")
        ):
            raise OAuthError("invalid_client", "client authentication failed", 401)
        return client


def _json_bytes(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier`` (RFC 7636 section 4.2)."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def _at_hash(access_token: str) -> str:
    return _b64url(hashlib.sha256(access_token.encode("ascii")).digest()[:16])


_PKCE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def valid_pkce_value(value: str) -> bool:
    """True for a 43-128 character string of unreserved characters (RFC 7636)."""
    return 43 <= len(value) <= 128 and set(value) <= _PKCE_CHARS


def _check_pkce(challenge: str | None, verifier: str | None) -> None:
    if challenge is None:
        if verifier is not None:
            # RFC 9700 section 4.8.2: a verifier without a challenge is a downgrade attempt.
            raise OAuthError("invalid_grant", "code_verifier sent but no code_challenge was")
        return
    if verifier is None:
        raise OAuthError("invalid_grant", "code_verifier is required")
    if not valid_pkce_value(verifier):
        raise OAuthError("invalid_grant", "malformed code_verifier")
    if not hmac.compare_digest(s256(verifier), challenge):
        raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
