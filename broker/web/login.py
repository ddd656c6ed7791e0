"""Binding an outgoing login (SAML AuthnRequest, OIDC authorization request) to one browser.

Without it, an attacker can sign in at the IdP as themselves and make the victim's browser
deliver the result (login CSRF: the victim then works, unknowingly, in the attacker's
account), or answer a request the broker never made (unsolicited ``InResponseTo``).

:meth:`LoginBinding.begin` stores ``{kind, request_id, return_to, extra, hash of the login
cookie}`` under a random single-use **handle** that travels as SAML ``RelayState`` or OIDC
``state``, and sets the login cookie. :meth:`LoginBinding.finish` consumes the handle and
checks the browser. The rule, exactly:

1. The handle must be well formed, and is consumed on first presentation, whatever happens
   next (``Store.claim``, atomic across workers and nodes): a second presentation is
   ``LoginHandleReplayed``.
2. It must name a stored login (``LoginHandleUnknown``) started less than ``ttl_seconds``
   ago (``LoginHandleExpired``), of the same ``kind`` (``LoginKindMismatch``).
3. If the request carries the login cookie, its hash must equal the stored one
   (``LoginBrowserMismatch``): the handle was issued to another browser.
4. If it carries no login cookie, the login is refused (``LoginCookieMissing``), with one
   exception: a SAML ACS post on an http (loopback) broker. There the cookie cannot be
   ``SameSite=None`` (browsers require ``Secure`` for that), so a cross-site POST from the
   IdP arrives without it, and the 256-bit single-use handle is the only binding. That is
   weaker (it does not stop login CSRF) and is why http is accepted only on loopback. On
   https the cookie is ``SameSite=None; Secure`` and reaches the ACS; OIDC callbacks are
   top-level GET redirects, which carry even a ``Lax`` cookie.

The Store holds only SHA-256 hashes of handles and cookies, never the values. ``extra``
is what a protocol must remember between the two legs and never sends to the browser
(OIDC: the PKCE ``code_verifier`` and the provider name); it lives only server-side, for
at most twice ``ttl_seconds``, and is gone once the handle is consumed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from starlette.requests import HTTPConnection
from starlette.responses import Response

from broker.clock import Clock
from broker.store import Store
from broker.web.cookies import CookiePolicy, cookie_value
from broker.web.redirects import safe_return_to

NAMESPACE = "web-login"
_USED_NAMESPACE = "web-login-used"

LoginKind = Literal["saml", "oidc"]
_KINDS: dict[str, LoginKind] = {"saml": "saml", "oidc": "oidc"}

_SECRET = re.compile(r"[A-Za-z0-9_-]{43}", re.ASCII)
"""Handles and login cookies: 32 random bytes, base64url without padding."""
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,256}", re.ASCII)
_EXTRA_KEY = re.compile(r"[a-z_]{1,32}", re.ASCII)
_EXTRA_VALUE = re.compile(r"[\x21-\x7e]{0,256}", re.ASCII)
_MAX_EXTRA = 8


class LoginBindingError(Exception):
    """A login result that cannot be tied to a login this browser started.

    ``code`` is stable and safe to show; ``message`` says what to do. Neither contains the
    handle, the cookie or the request ID.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"LoginBindingError({self.code!r}, {self.message!r})"


@dataclass(frozen=True)
class PendingLogin:
    """What :meth:`LoginBinding.begin` recorded, returned once by :meth:`LoginBinding.finish`."""

    kind: LoginKind
    request_id: str
    """The AuthnRequest ID (SAML ``InResponseTo`` must equal it) or the OIDC nonce/state."""
    return_to: str
    """Already passed through :func:`safe_return_to`; safe to redirect to."""
    started_at: float
    extra: Mapping[str, str] = field(default_factory=dict)
    """What :meth:`LoginBinding.begin` was given as ``extra`` (empty when nothing)."""


def _hash(value: str) -> str:
    # UTF-8, not ASCII: a cookie is attacker-chosen text and must hash, not raise.
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class LoginBinding:
    """Binds an outgoing login request to this browser, single use."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        cookies: CookiePolicy,
        *,
        return_prefixes: Sequence[str],
        ttl_seconds: int = 600,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self._store = store
        self._clock = clock
        self._cookies = cookies
        self._return_prefixes = tuple(return_prefixes)
        self._ttl = ttl_seconds

    def _cookie_required(self, kind: str) -> bool:
        """Rule 4 of the module docstring: only an http SAML post may arrive without it."""
        return self._cookies.secure or kind != "saml"

    async def begin(
        self,
        request: HTTPConnection,
        response: Response,
        *,
        kind: LoginKind,
        request_id: str,
        return_to: str,
        extra: Mapping[str, str] | None = None,
    ) -> str:
        """Record the login, set the login cookie, return the handle for RelayState/state.

        The browser's login cookie is reused when it has one, so two tabs signing in at once
        both succeed. ``return_to`` is reduced to an allow-listed path here, once. ``extra``
        (at most 8 entries, keys ``[a-z_]``, values printable ASCII up to 256 characters)
        comes back in :attr:`PendingLogin.extra`.
        """
        if kind not in _KINDS:
            raise ValueError("kind must be 'saml' or 'oidc'")
        if not _REQUEST_ID.fullmatch(request_id):
            raise ValueError("request_id must be 1-256 printable ASCII characters")
        extra = dict(extra or {})
        if not _valid_extra(extra):
            raise ValueError("extra must map up to 8 [a-z_] keys to printable ASCII values")
        current = cookie_value(request.headers, self._cookies.login_name)
        browser = (
            current
            if current is not None and _SECRET.fullmatch(current)
            else secrets.token_urlsafe(32)
        )
        handle = secrets.token_urlsafe(32)
        record = {
            "kind": kind,
            "request_id": request_id,
            "return_to": safe_return_to(return_to, self._return_prefixes),
            "browser": _hash(browser),
            "started": self._clock.time(),
            "extra": extra,
        }
        # Kept twice as long as it is valid, so a late arrival reads "expired", not "unknown".
        await self._store.put(
            NAMESPACE,
            _hash(handle),
            json.dumps(record, separators=(",", ":")).encode("utf-8"),
            2.0 * self._ttl,
        )
        self._cookies.set(
            response,
            self._cookies.login_name,
            browser,
            same_site=self._cookies.login_same_site,
            max_age=self._ttl,
        )
        return handle

    async def finish(
        self, request: HTTPConnection, handle: str, *, kind: LoginKind
    ) -> PendingLogin:
        """Consume ``handle`` and return its login if this browser started it; else raise."""
        if not _SECRET.fullmatch(handle):
            raise LoginBindingError(
                "LoginHandleMalformed", "the sign-in state is missing or malformed; start again"
            )
        key = _hash(handle)
        if not await self._store.claim(_USED_NAMESPACE, key, 2.0 * self._ttl):
            raise LoginBindingError(
                "LoginHandleReplayed", "this sign-in response was already used; start again"
            )
        raw = await self._store.get(NAMESPACE, key)
        await self._store.delete(NAMESPACE, key)
        record = _parse(raw)
        if record is None:
            raise LoginBindingError(
                "LoginHandleUnknown", "this sign-in was not started here; start again"
            )
        if self._clock.time() - record.started_at >= self._ttl:
            raise LoginBindingError(
                "LoginHandleExpired", "the sign-in took too long and expired; start again"
            )
        if record.kind != kind:
            raise LoginBindingError(
                "LoginKindMismatch", "this sign-in response is for another protocol; start again"
            )
        cookie = cookie_value(request.headers, self._cookies.login_name)
        if cookie is None:
            if self._cookie_required(kind):
                raise LoginBindingError(
                    "LoginCookieMissing",
                    "this browser did not start this sign-in (no login cookie); start again",
                )
        elif not hmac.compare_digest(_hash(cookie), record.browser):
            raise LoginBindingError(
                "LoginBrowserMismatch", "this sign-in was started in another browser; start again"
            )
        return PendingLogin(
            record.kind,
            record.request_id,
            record.return_to,
            record.started_at,
            MappingProxyType(dict(record.extra)),
        )


@dataclass(frozen=True)
class _Record:
    kind: LoginKind
    request_id: str
    return_to: str
    browser: str
    started_at: float
    extra: Mapping[str, str]


def _valid_extra(extra: object) -> bool:
    return (
        isinstance(extra, dict)
        and len(extra) <= _MAX_EXTRA
        and all(
            isinstance(k, str)
            and isinstance(v, str)
            and _EXTRA_KEY.fullmatch(k) is not None
            and _EXTRA_VALUE.fullmatch(v) is not None
            for k, v in extra.items()
        )
    )


def _parse(raw: bytes | None) -> _Record | None:
    """The stored login, or None for anything that is not a record we wrote (fail closed)."""
    if raw is None:
        return None
    try:
        value: Any = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    kind, request_id = value.get("kind"), value.get("request_id")
    return_to, browser, started = value.get("return_to"), value.get("browser"), value.get("started")
    checked_kind = _KINDS.get(kind) if isinstance(kind, str) else None
    if checked_kind is None:
        return None
    if not (isinstance(request_id, str) and isinstance(return_to, str)):
        return None
    if not isinstance(browser, str) or isinstance(started, bool):
        return None
    if not isinstance(started, int | float) or not math.isfinite(started):
        return None
    # Records written before ``extra`` existed have none: that reads as empty.
    extra = value.get("extra", {})
    if not _valid_extra(extra):
        return None
    return _Record(checked_kind, request_id, return_to, browser, float(started), dict(extra))
