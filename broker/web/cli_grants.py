"""What the CLI hand-off keeps between its legs: authorization codes, device codes, refresh
tokens (the Store side of :mod:`broker.web.cli_routes`).

Each of them stands for a **grant**: a browser sign-in (:class:`SignedIn`), the role the
person approved, the session duration, and when the browser sign-in itself would end.
Credentials are minted from a grant only at the token endpoint, through the same
:class:`~broker.web.signin.RoleChooser` as the role picker, so the CLI can never get a role
or a duration the browser could not.

A login for every role (``sts-broker login --all``) is one :class:`Approval` of several
grants: one browser click, then one refresh chain per role, so each AWS profile refreshes
on its own and revoking one leaves the others alone.

Rules, the same for all three secrets:

- 256 random bits, base64url; the Store keys records by their SHA-256 only, so a copy of
  the Store (a backup, a support bundle) redeems nothing;
- single use, enforced with ``Store.claim`` (atomic across workers and nodes): a code or a
  refresh token is consumed on first presentation *whatever happens next*, so whoever
  catches one and guesses wrong has burned it rather than gained a retry;
- codes are bound to a PKCE ``code_challenge`` (RFC 7636, S256 only): only the process
  holding the ``code_verifier`` can redeem them, not another local process that caught the
  loopback redirect or read the device code off a screen;
- refresh tokens rotate on every use and live no longer than the browser sign-in would,
  nor past a sign-out in that browser (checked at the token endpoint).
  Presenting a rotated one again means two parties hold the chain: the whole chain (its
  ``family``) is revoked, so the thief's copy dies with the owner's (OAuth 2.0 Security BCP,
  refresh token rotation). ``sts-broker logout`` revokes a chain the same way (RFC 7009).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
from dataclasses import dataclass
from typing import Any

from broker.clock import Clock
from broker.pkce import challenge_of, new_verifier
from broker.store import Store
from broker.web.signin import SignedIn

CODE_SECONDS = 120
"""An authorization code must be redeemed this soon after the browser approved."""
DEVICE_SECONDS = 600
"""How long a device code (and its user code) waits for someone to approve it."""
DEVICE_INTERVAL = 5
"""RFC 8628's default polling interval; ``slow_down`` adds 5 s each time."""
_GRACE = 600
"""Device records outlive ``DEVICE_SECONDS`` this long, so a late poll reads "expired"."""

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
"""RFC 8628 6.1: consonants only (no words, no 0/O or 1/I confusion); 20^8 ~ 2^34.6."""
USER_CODE_LENGTH = 8

_SECRET = re.compile(r"[A-Za-z0-9_-]{43}", re.ASCII)
_CHALLENGE = _SECRET
"""base64url(SHA-256(verifier)) without padding: always 43 characters."""
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}", re.ASCII)
"""RFC 7636 4.1."""
DEVICE_KEY = re.compile(r"[0-9a-f]{64}", re.ASCII)
"""A device request's Store key (hex SHA-256 of its device code), as approval forms name it."""

_CODES = "cli-code"
_CODES_USED = "cli-code-used"
_DEVICES = "cli-device"
_DEVICE_USERS = "cli-device-user"
_DEVICE_DECIDED = "cli-device-decided"
_DEVICE_DECISIONS = "cli-device-decision"
_DEVICE_POLLS = "cli-device-poll"
_DEVICE_USED = "cli-device-used"
_REFRESH = "cli-refresh"
_REFRESH_USED = "cli-refresh-used"
_REFRESH_REVOKED = "cli-refresh-revoked"


class GrantError(Exception):
    """An RFC 6749 / RFC 8628 token-endpoint error: ``error`` is the protocol's code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def _new_secret() -> str:
    """256 random bits, base64url: the same shape as a PKCE verifier."""
    return new_verifier()


def valid_challenge(value: str) -> bool:
    return _CHALLENGE.fullmatch(value) is not None


def _verifier_matches(verifier: str, challenge: str) -> bool:
    if not _VERIFIER.fullmatch(verifier):
        return False
    return hmac.compare_digest(challenge_of(verifier), challenge)


def normalize_user_code(value: str) -> str | None:
    """``wdjb-mjht`` / ``WDJB MJHT`` -> ``WDJBMJHT``; None when it cannot be a user code."""
    code = re.sub(r"[\s-]", "", value).upper()
    if len(code) != USER_CODE_LENGTH or any(c not in USER_CODE_ALPHABET for c in code):
        return None
    return code


def display_user_code(code: str) -> str:
    """``WDJBMJHT`` -> ``WDJB-MJHT``, as people read and type it."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


@dataclass(frozen=True)
class Grant:
    """What credentials may be minted from, and until when."""

    signed_in: SignedIn
    role_arn: str
    duration: int
    ends_at: float
    """When the browser sign-in this came from ends (its absolute timeout): no refresh after."""
    browser: str
    """That browser session's key (:meth:`BrowserSessions.key_of`): signing out there ends
    the grant too."""

    def to_json(self) -> dict[str, Any]:
        return {
            "signed_in": self.signed_in.to_session(),
            "role": self.role_arn,
            "duration": self.duration,
            "ends_at": self.ends_at,
            "browser": self.browser,
        }

    @classmethod
    def from_json(cls, value: object) -> Grant | None:
        """The grant :meth:`to_json` wrote; None for anything else (fail closed)."""
        if not isinstance(value, dict):
            return None
        raw_signed_in, role, duration, ends_at, browser = (
            value.get(k) for k in ("signed_in", "role", "duration", "ends_at", "browser")
        )
        signed_in = (
            SignedIn.from_session(raw_signed_in) if isinstance(raw_signed_in, dict) else None
        )
        if signed_in is None or not isinstance(role, str) or not isinstance(browser, str):
            return None
        if isinstance(duration, bool) or not isinstance(duration, int):
            return None
        if isinstance(ends_at, bool) or not isinstance(ends_at, int | float):
            return None
        if not math.isfinite(ends_at):
            return None
        return cls(signed_in, role, duration, float(ends_at), browser)


@dataclass(frozen=True)
class Approval:
    """What one click in the browser approved: a grant per role, several for ``--all``."""

    grants: tuple[Grant, ...]
    every_role: bool = False
    """The CLI asked for every role (``login --all``): it expects one answer per role."""

    def to_json(self) -> dict[str, Any]:
        return {"grants": [g.to_json() for g in self.grants], "all": self.every_role}

    @classmethod
    def from_json(cls, value: object) -> Approval | None:
        """The approval :meth:`to_json` wrote; None for anything else (fail closed)."""
        if not isinstance(value, dict):
            return None
        raw, every_role = value.get("grants"), value.get("all")
        if not isinstance(raw, list) or not raw or not isinstance(every_role, bool):
            return None
        grants = [Grant.from_json(item) for item in raw]
        if any(g is None for g in grants):
            return None
        return cls(tuple(g for g in grants if g is not None), every_role)


@dataclass(frozen=True)
class DeviceStart:
    """What ``POST /cli/device`` answers with (the device code only ever goes to the CLI)."""

    device_code: str
    user_code: str
    """Normalised (``WDJBMJHT``); show it with :func:`display_user_code`."""
    expires_in: int
    interval: int


@dataclass(frozen=True)
class PendingDevice:
    """A device request waiting for approval, as the approval page shows it."""

    key: str
    """The Store key (hash of the device code): what the approval form refers to."""
    user_code: str
    role_arn: str
    duration: int
    every_role: bool


def _load(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8")


class CliGrants:
    """Issue and redeem the CLI hand-off's codes and tokens (see module doc)."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    # ------------------------------------------------------------------ loopback codes

    async def issue_code(self, challenge: str, approval: Approval) -> str:
        """A single-use authorization code for ``approval``, redeemable with the verifier only."""
        if not valid_challenge(challenge):
            raise ValueError("code_challenge must be an S256 challenge")
        code = _new_secret()
        record = {"challenge": challenge, "approval": approval.to_json()}
        await self._store.put(_CODES, _hash(code), _dump(record), CODE_SECONDS)
        return code

    async def redeem_code(self, code: str, verifier: str) -> Approval:
        """The approval behind ``code``; GrantError ``invalid_grant`` for any mismatch.

        The code is consumed before the verifier is checked: a wrong guess burns it.
        """
        if not _SECRET.fullmatch(code):
            raise GrantError("invalid_grant", "the authorization code is malformed")
        key = _hash(code)
        record = _load(await self._store.get(_CODES, key))
        if record is None:
            raise GrantError("invalid_grant", "the authorization code is unknown or expired")
        if not await self._store.claim(_CODES_USED, key, CODE_SECONDS):
            raise GrantError("invalid_grant", "the authorization code was already used")
        await self._store.delete(_CODES, key)
        challenge = record.get("challenge")
        if not isinstance(challenge, str) or not _verifier_matches(verifier, challenge):
            raise GrantError(
                "invalid_grant", "code_verifier does not match the code_challenge of this code"
            )
        approval = Approval.from_json(record.get("approval"))
        if approval is None:
            raise GrantError("invalid_grant", "the authorization code is unknown or expired")
        return approval

    # ------------------------------------------------------------------ device codes

    async def start_device(
        self, challenge: str, role_arn: str, duration: int, *, every_role: bool = False
    ) -> DeviceStart:
        """A new device request (RFC 8628 3.1-3.2), waiting for a browser to approve it."""
        if not valid_challenge(challenge):
            raise ValueError("code_challenge must be an S256 challenge")
        device_code = _new_secret()
        key = _hash(device_code)
        for _ in range(10):
            user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
            # claim, not put: two live requests must never share a user code.
            if await self._store.claim(_DEVICE_USERS, user_code, DEVICE_SECONDS):
                break
        else:  # pragma: no cover - 10 collisions in a 2^34 space means the Store is broken
            raise RuntimeError("could not allocate a user code")
        now = self._clock.time()
        record = {
            "challenge": challenge,
            "user_code": user_code,
            "role": role_arn,
            "duration": duration,
            "all": every_role,
            "expires_at": now + DEVICE_SECONDS,
        }
        await self._store.put(_DEVICES, key, _dump(record), DEVICE_SECONDS + _GRACE)
        await self._store.put(_DEVICE_USERS, user_code, key.encode("ascii"), DEVICE_SECONDS)
        return DeviceStart(device_code, user_code, DEVICE_SECONDS, DEVICE_INTERVAL)

    async def find_device(self, user_code: str) -> PendingDevice | None:
        """The undecided, unexpired request a person typed the user code of; else None."""
        code = normalize_user_code(user_code)
        if code is None:
            return None
        raw_key = await self._store.get(_DEVICE_USERS, code)
        if raw_key is None:
            return None
        pending = await self.pending(raw_key.decode("ascii", "replace"))
        return pending if pending is not None and pending.user_code == code else None

    async def pending(self, key: str) -> PendingDevice | None:
        """The undecided, unexpired request stored under ``key``; else None."""
        if not DEVICE_KEY.fullmatch(key):
            return None
        record = _load(await self._store.get(_DEVICES, key))
        code = record.get("user_code") if record is not None else None
        if record is None or not isinstance(code, str):
            return None
        if await self._store.get(_DEVICE_DECISIONS, key) is not None:
            return None
        role, duration, expires_at, every_role = (
            record.get(k) for k in ("role", "duration", "expires_at", "all")
        )
        if not isinstance(role, str) or not isinstance(duration, int):
            return None
        if not isinstance(expires_at, int | float) or self._clock.time() >= expires_at:
            return None
        return PendingDevice(key, code, role, duration, every_role is True)

    async def decide_device(self, key: str, approval: Approval | None) -> bool:
        """Approve (``approval``) or deny (None) a pending request, once; False if decided."""
        if not DEVICE_KEY.fullmatch(key):
            return False
        if await self._store.get(_DEVICES, key) is None:
            return False
        ttl = DEVICE_SECONDS + _GRACE
        if not await self._store.claim(_DEVICE_DECIDED, key, ttl):
            return False
        decision = {"denied": True} if approval is None else {"approval": approval.to_json()}
        await self._store.put(_DEVICE_DECISIONS, key, _dump(decision), ttl)
        return True

    async def poll_device(self, device_code: str, verifier: str) -> Approval:
        """The approval; else GrantError with RFC 8628 3.5's ``error``.

        ``authorization_pending`` while nobody decided, ``slow_down`` (and 5 s more on the
        interval) when polled faster than the interval, ``access_denied``, ``expired_token``;
        ``invalid_grant`` for an unknown device code, a wrong verifier or a second redemption.
        """
        if not _SECRET.fullmatch(device_code):
            raise GrantError("invalid_grant", "the device_code is malformed")
        key = _hash(device_code)
        record = _load(await self._store.get(_DEVICES, key))
        if record is None:
            raise GrantError("invalid_grant", "the device_code is unknown")
        challenge = record.get("challenge")
        if not isinstance(challenge, str) or not _verifier_matches(verifier, challenge):
            raise GrantError(
                "invalid_grant", "code_verifier does not match the code_challenge of this request"
            )
        now = self._clock.time()
        expires_at = record.get("expires_at")
        if not isinstance(expires_at, int | float) or now >= expires_at:
            raise GrantError("expired_token", "the device code expired; start again")
        decision = _load(await self._store.get(_DEVICE_DECISIONS, key))
        if decision is None:
            await self._pace(key, now)
            raise GrantError("authorization_pending", "waiting for approval in the browser")
        if decision.get("denied"):
            raise GrantError("access_denied", "the request was denied in the browser")
        if not await self._store.claim(_DEVICE_USED, key, DEVICE_SECONDS + _GRACE):
            raise GrantError("invalid_grant", "the device code was already used")
        approval = Approval.from_json(decision.get("approval"))
        if approval is None:
            raise GrantError("invalid_grant", "the device code is unknown")
        return approval

    async def _pace(self, key: str, now: float) -> None:
        """RFC 8628 3.5: a poll sooner than the interval is ``slow_down``, +5 s each time.

        Kept apart from the request record, so a poll can never overwrite a decision.
        """
        last = _load(await self._store.get(_DEVICE_POLLS, key)) or {}
        at, interval = last.get("at"), last.get("interval")
        if not isinstance(at, int | float) or not isinstance(interval, int):
            at, interval = None, DEVICE_INTERVAL
        too_soon = at is not None and now - at < interval
        if too_soon:
            interval += 5
        await self._store.put(
            _DEVICE_POLLS, key, _dump({"at": now, "interval": interval}), DEVICE_SECONDS
        )
        if too_soon:
            raise GrantError("slow_down", f"poll at most every {interval} seconds")

    # ------------------------------------------------------------------ refresh tokens

    async def issue_refresh(self, grant: Grant, family: str | None = None) -> str | None:
        """A refresh token for ``grant`` (None when its sign-in has already ended)."""
        ttl = grant.ends_at - self._clock.time()
        if ttl <= 0:
            return None
        token = _new_secret()
        record = {"grant": grant.to_json(), "family": family or _new_secret()}
        await self._store.put(_REFRESH, _hash(token), _dump(record), ttl)
        return token

    async def redeem_refresh(self, token: str) -> tuple[Grant, str]:
        """(grant, family) of a live, unused refresh token; consumes it. Else invalid_grant.

        A token presented twice revokes its family: every later token of that chain fails.
        """
        if not _SECRET.fullmatch(token):
            raise GrantError("invalid_grant", "the refresh token is malformed")
        key = _hash(token)
        record = _load(await self._store.get(_REFRESH, key))
        family = record.get("family") if record is not None else None
        grant = Grant.from_json(record.get("grant")) if record is not None else None
        if grant is None or not isinstance(family, str):
            raise GrantError("invalid_grant", "the refresh token is unknown or its sign-in ended")
        ttl = grant.ends_at - self._clock.time()
        if ttl <= 0:
            raise GrantError("invalid_grant", "the browser sign-in behind this token ended")
        if await self._store.get(_REFRESH_REVOKED, family) is not None:
            raise GrantError("invalid_grant", "this login was revoked")
        if not await self._store.claim(_REFRESH_USED, key, ttl):
            await self._store.put(_REFRESH_REVOKED, family, b"1", ttl)
            raise GrantError(
                "invalid_grant", "the refresh token was already used; this login is now revoked"
            )
        return grant, family

    async def revoke_refresh(self, token: str) -> bool:
        """Revoke the chain ``token`` belongs to (RFC 7009); False when it names none.

        The record stays, so a later use is told "revoked" rather than "unknown". Unknown,
        malformed and expired tokens are not an error (RFC 7009 2.2): there is nothing left
        to revoke, and the answer must not tell a guesser which tokens exist.
        """
        if not _SECRET.fullmatch(token):
            return False
        record = _load(await self._store.get(_REFRESH, _hash(token)))
        family = record.get("family") if record is not None else None
        grant = Grant.from_json(record.get("grant")) if record is not None else None
        if grant is None or not isinstance(family, str):
            return False
        ttl = grant.ends_at - self._clock.time()
        if ttl <= 0:
            return False
        await self._store.put(_REFRESH_REVOKED, family, b"1", ttl)
        return True
