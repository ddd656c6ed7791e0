"""Server-side browser sessions: the Store holds the data, the cookie only names it.

The cookie is ``ID.MAC``: 256 random bits and a 128-bit HMAC of them under a key derived
from the cookie key. A forged or altered cookie fails the MAC and is refused without a
Store lookup, so guessing IDs costs an attacker nothing but costs the Store nothing either.

The Store never sees the ID itself, only its SHA-256: someone who can read the SQLite file
(a backup, a support bundle) learns which sessions exist but cannot present one.

Each session is two records in namespace ``web-session``:

- ``HASH``: ``{"created": ts, "data": {...}}``, kept until the absolute timeout;
- ``HASH:seen``: the time of the last request, kept for the idle timeout.

Touching a session on every request rewrites only ``:seen``. A request that loaded the
session before a logout therefore cannot write the data back and resurrect it, and a touch
never overwrites data another request has just saved. Both timeouts are checked against the
stored timestamps, not only left to the Store's expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import Response

from broker.clock import Clock
from broker.config import BrokerConfig
from broker.store import Store
from broker.web.cookies import CookiePolicy, cookie_key, cookie_value, derive_key

NAMESPACE = "web-session"
_SIGNED_OUT = "web-session-signed-out"

_ID_BYTES = 32
_MAC_BYTES = 16
_COOKIE = re.compile(r"([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{22})", re.ASCII)


class SessionExpiredError(Exception):
    """The session ended (logout, idle or absolute timeout) after it was loaded."""


@dataclass(frozen=True)
class Session:
    """One browser's server-side state at the time it was loaded or saved."""

    id: str = field(repr=False)
    """The opaque ID from the cookie. A bearer secret: never render or log it."""
    data: Mapping[str, Any]
    created_at: float
    """When the session was created (login): the absolute timeout counts from here."""
    last_seen: float


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _store_key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


class BrowserSessions:
    """Create, load, save and destroy sessions; also the CSRF tokens bound to them."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        key: bytes,
        cookies: CookiePolicy,
        idle_seconds: int = 900,
        absolute_seconds: int = 28800,
    ) -> None:
        if len(key) < 32:
            raise ValueError("the cookie key must be at least 32 bytes")
        if not 0 < idle_seconds <= absolute_seconds:
            raise ValueError("need 0 < idle_seconds <= absolute_seconds")
        self._store = store
        self._clock = clock
        self._mac_key = derive_key(key, b"sts-broker web session id v1")
        self._csrf_key = derive_key(key, b"sts-broker web csrf v1")
        self.cookies = cookies
        self.idle_seconds = idle_seconds
        self.absolute_seconds = absolute_seconds

    @classmethod
    def from_config(cls, config: BrokerConfig, store: Store, clock: Clock) -> BrowserSessions:
        """Sessions as ``web:`` says; InsecureWebOriginError for http off loopback."""
        return cls(
            store,
            clock,
            key=cookie_key(config),
            cookies=CookiePolicy.for_public_url(config.public_url),
            idle_seconds=config.web.session_idle_seconds,
            absolute_seconds=config.web.session_absolute_seconds,
        )

    # ------------------------------------------------------------------ cookie <-> ID

    def _mac(self, session_id: str) -> str:
        digest = hmac.new(self._mac_key, session_id.encode("ascii"), hashlib.sha256).digest()
        return _b64(digest[:_MAC_BYTES])

    def _verified_id(self, headers: Headers) -> str | None:
        """The session ID the cookie names, if its MAC is ours; no Store lookup."""
        value = cookie_value(headers, self.cookies.session_name)
        match = _COOKIE.fullmatch(value) if value is not None else None
        if match is None:
            return None
        session_id, mac = match.groups()
        return session_id if hmac.compare_digest(mac, self._mac(session_id)) else None

    # ------------------------------------------------------------------ CSRF

    def _csrf_for(self, session_id: str) -> str:
        return _b64(hmac.new(self._csrf_key, session_id.encode("ascii"), hashlib.sha256).digest())

    def csrf_token(self, session: Session) -> str:
        """The synchronizer token for this session's forms: an HMAC of the ID, never the ID."""
        return self._csrf_for(session.id)

    def csrf_token_matches(self, headers: Headers, submitted: str) -> bool:
        """Whether ``submitted`` is the token of the session cookie these headers carry.

        Needs no Store lookup: whether the session is still alive is the page's concern;
        this only proves the form was rendered for the browser that posts it.
        """
        session_id = self._verified_id(headers)
        if session_id is None:
            return False
        expected = self._csrf_for(session_id).encode("ascii")
        return hmac.compare_digest(expected, submitted.encode("utf-8", "surrogateescape"))

    # ------------------------------------------------------------------ lifecycle

    async def load(self, request: HTTPConnection) -> Session | None:
        """The live session of this browser, its idle timer restarted; None if there is none."""
        session_id = self._verified_id(request.headers)
        if session_id is None:
            return None
        key = _store_key(session_id)
        record = _parse_record(await self._store.get(NAMESPACE, key))
        seen = _parse_seen(await self._store.get(NAMESPACE, f"{key}:seen"))
        now = self._clock.time()
        if record is None or seen is None:
            await self._forget(key)
            return None
        created, data = record
        if now - created >= self.absolute_seconds or now - seen >= self.idle_seconds:
            await self._forget(key)
            return None
        await self._touch(key, created, now)
        return Session(session_id, MappingProxyType(data), created, now)

    async def create(
        self, request: HTTPConnection, response: Response, data: Mapping[str, Any]
    ) -> Session:
        """A new session under a new ID (call at login); the browser's previous one is ended.

        Always a fresh ID, whatever cookie the browser sent: an ID an attacker planted
        before login (session fixation) never becomes an authenticated session.
        """
        previous = self._verified_id(request.headers)
        if previous is not None:
            await self._forget(_store_key(previous))
        session_id = _b64(secrets.token_bytes(_ID_BYTES))
        now = self._clock.time()
        key = _store_key(session_id)
        await self._store.put(NAMESPACE, key, _record(now, data), float(self.absolute_seconds))
        await self._touch(key, now, now)
        # No Max-Age: the cookie ends with the browser; the server ends the session anyway.
        self.cookies.set(
            response,
            self.cookies.session_name,
            f"{session_id}.{self._mac(session_id)}",
            same_site="lax",
            max_age=None,
        )
        return Session(session_id, MappingProxyType(dict(data)), now, now)

    async def save(self, session: Session, data: Mapping[str, Any]) -> Session:
        """Replace the session's data; raises SessionExpiredError if it ended meanwhile.

        The ID does not change (use :meth:`create` when the user's identity changes).
        """
        key = _store_key(session.id)
        stored = _parse_record(await self._store.get(NAMESPACE, key))
        now = self._clock.time()
        if stored is None or stored[0] != session.created_at:
            raise SessionExpiredError("the session ended")
        remaining = session.created_at + self.absolute_seconds - now
        if remaining <= 0 or now - session.last_seen >= self.idle_seconds:
            await self._forget(key)
            raise SessionExpiredError("the session ended")
        await self._store.put(NAMESPACE, key, _record(session.created_at, data), remaining)
        await self._touch(key, session.created_at, now)
        return Session(session.id, MappingProxyType(dict(data)), session.created_at, now)

    async def destroy(self, request: HTTPConnection, response: Response) -> None:
        """Log out: the server-side records go first, then the cookie is cleared.

        A sign-out marker outlives the session (until its absolute timeout), so whatever was
        handed out from it to last longer (the CLI's refresh tokens) can see it was ended on
        purpose: see :meth:`signed_out`. An idle timeout leaves no marker.
        """
        session_id = self._verified_id(request.headers)
        if session_id is not None:
            key = _store_key(session_id)
            record = _parse_record(await self._store.get(NAMESPACE, key))
            await self._forget(key)
            if record is not None:
                remaining = record[0] + self.absolute_seconds - self._clock.time()
                if remaining > 0:
                    await self._store.put(_SIGNED_OUT, key, b"1", remaining)
        self.cookies.clear(response, self.cookies.session_name, same_site="lax")

    @staticmethod
    def key_of(session: Session) -> str:
        """A stable name for ``session`` that is not its bearer secret (the ID's SHA-256)."""
        return _store_key(session.id)

    async def signed_out(self, key: str) -> bool:
        """Whether the session named ``key`` (:meth:`key_of`) was ended by logging out."""
        return await self._store.get(_SIGNED_OUT, key) is not None

    async def _touch(self, key: str, created: float, now: float) -> None:
        ttl = min(float(self.idle_seconds), created + self.absolute_seconds - now)
        await self._store.put(NAMESPACE, f"{key}:seen", repr(now).encode("ascii"), ttl)

    async def _forget(self, key: str) -> None:
        await self._store.delete(NAMESPACE, key)
        await self._store.delete(NAMESPACE, f"{key}:seen")


def _record(created: float, data: Mapping[str, Any]) -> bytes:
    """Compact JSON; raises TypeError/ValueError for data that is not plain JSON."""
    return json.dumps(
        {"created": created, "data": dict(data)}, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def _parse_record(raw: bytes | None) -> tuple[float, dict[str, Any]] | None:
    """(created, data), or None for anything that is not a record we wrote (fail closed)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    created, data = value.get("created"), value.get("data")
    if isinstance(created, bool) or not isinstance(created, int | float):
        return None
    if not math.isfinite(created):
        return None
    if not isinstance(data, dict):
        return None
    return float(created), data


def _parse_seen(raw: bytes | None) -> float | None:
    if raw is None:
        return None
    try:
        seen = float(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    # NaN would compare false against every timeout and so never expire.
    return seen if math.isfinite(seen) else None
