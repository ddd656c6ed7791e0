"""Signing keys of OIDC issuers: discovered, fetched, parsed once, cached, refreshed sparingly.

This is the ``KeySource`` port for web identity. Verification is the broker's busiest path,
so the JWKS is parsed into joserfc key objects once per fetch and the hot path is a dict
lookup with no I/O and no JSON. Fetching is where an attacker has leverage, so it is bounded
every way there is:

- a token naming an unknown ``kid`` may trigger at most one refetch per issuer per
  ``refresh_interval_seconds``, and concurrent callers share the one fetch in flight, so a
  flood of made-up ``kid`` values costs the issuer one request per interval;
- requests have a timeout and a response size cap, and redirects are followed only within
  the same origin (a JWKS URL must not bounce the broker to another host);
- discovery's ``issuer`` must equal the configured URL exactly (OpenID Connect Discovery
  section 4.3), and the ``jwks_uri`` it names must be https (http only on loopback);
- keys that are weak or contradict themselves (RSA under 2048 bits, ``use: enc``, an
  ``alg`` that isn't the key's, a curve that isn't the algorithm's, private members) are
  dropped when the set is parsed, and remembered so the refusal can say why.

When the issuer is down, the last key set fetched stays usable for
``last_known_good_seconds`` past its expiry, then verification fails closed with
``IDPCommunicationError`` (which botocore retries). Time comes from the injected clock.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey, RSAPublicNumbers
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from broker.clock import Clock
from broker.config import OidcProviderConfig, OidcSettings, oidc_url_problem
from broker.errors import StsError, communication_error, invalid_token, quoted
from broker.identity.fetch import MAX_DOCUMENT_BYTES, DocumentUnusable, fetch_discovery, fetch_json
from broker.identity.refresh import RefreshGate, wait_at_most
from broker.jsonread import JsonRefusedError, read_json
from broker.observability import record_idp_fetch

log = logging.getLogger("broker.oidc")

ALLOWED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"})
"""What AWS accepts for web identity tokens; no HMAC, no ``none``, no RSA-PSS."""

_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512"})
_EC_ALGORITHM = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_MIN_RSA_BITS = 2048
_MAX_RSA_BITS = 8192
"""Above this a verification costs milliseconds: a key set could slow every request."""
_MAX_KEYS = 100
_MAX_KIDLESS_CANDIDATES = 8
"""A token without ``kid`` is tried against at most this many keys of its algorithm."""
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")


@dataclass(frozen=True)
class VerificationKey:
    """One usable public key of an issuer, already parsed, and the algorithms it may verify."""

    kid: str | None
    algorithms: frozenset[str]
    key: RSAKey | ECKey = field(repr=False)
    public: RSAPublicKey | EllipticCurvePublicKey = field(repr=False, compare=False)
    """The same key as a ``cryptography`` object, taken out once when the set is parsed:
    the hot path verifies with it directly instead of going through joserfc per token."""
    rsa: bool = field(init=False, repr=False, compare=False)
    """Whether ``public`` is an RSA key (else EC), decided here once: the ABC
    ``isinstance`` check costs more than a dict lookup on every verification."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "rsa", isinstance(self.public, RSAPublicKey))


@dataclass(frozen=True)
class KeySet:
    """An issuer's keys as of one fetch, indexed by ``kid``, with their freshness bounds."""

    keys: tuple[VerificationKey, ...]
    by_kid: Mapping[str, tuple[VerificationKey, ...]]
    rejected: Mapping[str, str]
    """``kid`` -> why the issuer's key with that ``kid`` can't be used."""
    fresh_until: float
    """Until then the set is used without asking the issuer again."""
    usable_until: float
    """Past freshness, the set still serves (issuer down) until then; after it, fail closed."""
    selected: dict[tuple[str | None, str], tuple[VerificationKey, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )
    """``(kid, alg)`` -> its keys, for selections that found keys only: bounded by the keys
    the issuer publishes times the algorithms, whatever ``kid`` values tokens make up."""


@dataclass(frozen=True)
class _Selection:
    keys: tuple[VerificationKey, ...]
    reason: str
    unknown: bool
    """True when a fresher key set might help (unknown ``kid``, no key for the algorithm)."""


class _FetchError(Exception):
    """Why keys could not be had from the issuer; safe to show (no token, no secret)."""


@dataclass
class _IssuerState:
    """Mutable per-issuer cache entry; only the key source touches it, on one event loop."""

    keys: KeySet | None = None
    jwks_uri: str | None = None
    last_error: str | None = None
    gate: RefreshGate = field(default_factory=RefreshGate)


def _keys_unavailable(issuer: str, reason: str) -> StsError:
    return communication_error(
        f"Couldn't retrieve verification key from your identity provider {issuer}: {reason}"
    )


def parse_jwks(document: object) -> tuple[tuple[VerificationKey, ...], dict[str, str]]:
    """Usable keys of a JWKS document, and ``kid`` -> reason for the keys that are not.

    Raises :class:`ValueError` when the document is not a JWKS at all.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("the JWKS is not a JSON object with a 'keys' list")
    entries: list[Any] = document["keys"]
    if len(entries) > _MAX_KEYS:
        raise ValueError(f"the JWKS has {len(entries)} keys (at most {_MAX_KEYS} accepted)")
    keys: list[VerificationKey] = []
    rejected: dict[str, str] = {}
    for entry in entries:
        kid = entry.get("kid") if isinstance(entry, dict) else None
        if kid is not None and not isinstance(kid, str):
            continue
        try:
            keys.append(_import_key(entry, kid))
        except ValueError as exc:
            log.info("ignoring an issuer key (kid %r): %s", kid, exc)
            if kid is not None:
                rejected[kid] = str(exc)
    return tuple(keys), rejected


def _import_key(entry: object, kid: str | None) -> VerificationKey:
    if not isinstance(entry, dict):
        raise ValueError("the key is not a JSON object")
    kty, use, alg, ops = (entry.get(name) for name in ("kty", "use", "alg", "key_ops"))
    if kty not in ("RSA", "EC"):
        raise ValueError(f"key type {kty!r} can't verify ID tokens (RSA or EC only)")
    if use is not None and use != "sig":
        raise ValueError(f"the key is for use {use!r}, not 'sig'")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise ValueError("the key's key_ops do not include 'verify'")
    if alg is not None and alg not in ALLOWED_ALGORITHMS:
        raise ValueError(f"the key's algorithm {alg!r} is not accepted")
    if _PRIVATE_MEMBERS & entry.keys():
        raise ValueError("the key set publishes private key material; fix the issuer")
    if kty == "RSA":
        return _rsa_key(entry, kid, alg)
    return _ec_key(entry, kid, alg)


def _b64_int(value: object, what: str) -> int:
    if not isinstance(value, str) or not _BASE64URL.fullmatch(value):
        raise ValueError(f"the key's {what} is not base64url")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"the key's {what} is not base64url") from None
    return int.from_bytes(raw, "big")


def _rsa_key(entry: Mapping[str, Any], kid: str | None, alg: object) -> VerificationKey:
    if alg is not None and alg not in _RSA_ALGORITHMS:
        raise ValueError(f"an RSA key declares algorithm {alg!r}")
    modulus, exponent = _b64_int(entry.get("n"), "n"), _b64_int(entry.get("e"), "e")
    bits = modulus.bit_length()
    if not _MIN_RSA_BITS <= bits <= _MAX_RSA_BITS:
        raise ValueError(f"RSA key of {bits} bits ({_MIN_RSA_BITS} to {_MAX_RSA_BITS} accepted)")
    try:
        public = RSAPublicNumbers(exponent, modulus).public_key()
    except ValueError:
        raise ValueError("not a valid RSA public key") from None
    algorithms = frozenset({alg}) if isinstance(alg, str) else _RSA_ALGORITHMS
    return VerificationKey(
        kid=kid, algorithms=algorithms, key=RSAKey.import_key(public), public=public
    )


def _ec_key(entry: Mapping[str, Any], kid: str | None, alg: object) -> VerificationKey:
    curve = entry.get("crv")
    expected = _EC_ALGORITHM.get(curve) if isinstance(curve, str) else None
    if expected is None:
        raise ValueError(f"EC curve {curve!r} is not accepted (P-256, P-384, P-521)")
    if alg is not None and alg != expected:
        raise ValueError(
            f"an EC key on {curve} declares algorithm {alg!r} (it can only be {expected})"
        )
    public = {"kty": "EC", "crv": curve, "x": entry.get("x"), "y": entry.get("y")}
    try:
        key = ECKey.import_key(public)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, binascii.Error):
        raise ValueError("not a valid EC public key") from None
    return VerificationKey(
        kid=kid, algorithms=frozenset({expected}), key=key, public=key.public_key
    )


def _build(
    keys: tuple[VerificationKey, ...], rejected: dict[str, str], fresh: float, usable: float
) -> KeySet:
    by_kid: dict[str, tuple[VerificationKey, ...]] = {}
    for key in keys:
        if key.kid is not None:
            by_kid[key.kid] = (*by_kid.get(key.kid, ()), key)
    return KeySet(
        keys=keys, by_kid=by_kid, rejected=rejected, fresh_until=fresh, usable_until=usable
    )


def _select(keys: KeySet, kid: str | None, alg: str) -> _Selection:
    """The keys that may verify a token with this header, or why there are none."""
    if kid is not None:
        named = keys.by_kid.get(kid)
        if named is None:
            if kid in keys.rejected:
                return _Selection(
                    (), f"The issuer's key {kid!r} can't be used: {keys.rejected[kid]}.", False
                )
            return _Selection((), f"The issuer publishes no key with kid {quoted(kid)}.", True)
        fitting = tuple(key for key in named if alg in key.algorithms)
        if not fitting:
            allowed = ", ".join(sorted(set().union(*(key.algorithms for key in named))))
            return _Selection(
                (), f"The key {quoted(kid)} verifies {allowed}, but the token says {alg}.", False
            )
        return _Selection(fitting, "", False)
    fitting = tuple(key for key in keys.keys if alg in key.algorithms)
    if not fitting:
        return _Selection((), f"The issuer publishes no key for {alg}.", True)
    if len(fitting) > _MAX_KIDLESS_CANDIDATES:
        return _Selection(
            (),
            f"The token has no kid and the issuer publishes {len(fitting)} {alg} keys; "
            "tokens must name their key (kid).",
            False,
        )
    return _Selection(fitting, "", False)


def pinned_key_set(document: object) -> KeySet:
    """Keys known at start-up, never fetched and never stale: the broker's own issuer keys,
    with which it verifies the identity-pool tokens it signed itself."""
    keys, rejected = parse_jwks(document)
    return _build(keys, rejected, math.inf, math.inf)


def select_keys(keys: KeySet, *, kid: str | None, alg: str) -> tuple[VerificationKey, ...]:
    """The keys of a pinned set that may verify a token with this header; refuses
    (``InvalidIdentityToken``) when none may."""
    found = keys.selected.get((kid, alg))
    if found is not None:
        return found
    selection = _select(keys, kid, alg)
    if not selection.keys:
        raise invalid_token(selection.reason)
    keys.selected[(kid, alg)] = selection.keys
    return selection.keys


def _max_age(cache_control: str | None) -> int | None:
    """``max-age`` of a Cache-Control header; 0 for no-store/no-cache; None when absent."""
    if not cache_control:
        return None
    directives = [part.strip().lower() for part in cache_control.split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return 0
    for directive in directives:
        match = re.fullmatch(r"max-age\s*=\s*\"?([0-9]{1,10})\"?", directive)
        if match:
            return int(match.group(1))
    return None


class KeySource:
    """Verification keys per issuer, cached and refreshed under the rules above.

    One instance serves every provider of every account; two accounts trusting the same
    issuer share its cache entry. It does not own ``http`` (the caller closes it).
    """

    def __init__(self, settings: OidcSettings, clock: Clock, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._clock = clock
        self._http = http
        self._timeout = httpx.Timeout(float(settings.http_timeout_seconds))
        self._states: dict[tuple[str, str | None, str | None], _IssuerState] = {}

    def cached(
        self, provider: OidcProviderConfig, *, kid: str | None, alg: str
    ) -> tuple[VerificationKey, ...] | None:
        """The keys :meth:`candidates` would answer, if its answer needs no I/O and was found
        before with the same key set; else None (then call :meth:`candidates`).

        The hot path: a token from a known issuer whose keys are fresh costs two dict
        lookups and no coroutine. Refusals are never cached here: they go the full way.
        """
        state = self._states.get((provider.url, provider.jwks_uri, provider.jwks_file))
        keys = state.keys if state is not None else None
        if keys is None or self._clock.time() >= keys.fresh_until:
            return None
        return keys.selected.get((kid, alg))

    async def candidates(
        self, provider: OidcProviderConfig, *, kid: str | None, alg: str
    ) -> tuple[VerificationKey, ...]:
        """The keys that may have signed a token from ``provider`` with this ``kid``/``alg``.

        Raises ``InvalidIdentityToken`` when the issuer has no such usable key, and
        ``IDPCommunicationError`` when its keys can't be had (outage past last-known-good).
        """
        state = self._state(provider)
        keys = state.keys
        if keys is None or self._clock.time() >= keys.fresh_until:
            await self._refresh(provider, state)
            keys = self._usable(provider, state)
        found = _select(keys, kid, alg)
        if found.keys:
            keys.selected[(kid, alg)] = found.keys
            return found.keys
        if found.unknown:
            await self._refresh(provider, state)
            keys = self._usable(provider, state)
            found = _select(keys, kid, alg)
            if found.keys:
                return found.keys
            if state.last_error is not None:
                raise _keys_unavailable(provider.url, state.last_error)
        raise invalid_token(found.reason)

    async def check(self, provider: OidcProviderConfig, *, wait: float) -> str | None:
        """Why ``provider``'s keys can't verify a token now; None when they can (readiness).

        Keys past freshness are refreshed as a token would refresh them (same gate, so a
        probe never costs the issuer more than tokens would), waiting at most ``wait``
        seconds; stale keys within the last-known-good window still count as usable.
        """
        state = self._state(provider)
        keys = state.keys
        if keys is None or self._clock.time() >= keys.fresh_until:
            await wait_at_most(wait, self._refresh(provider, state))
        try:
            self._usable(provider, state)
        except StsError as exc:
            return exc.message
        return None

    async def aclose(self) -> None:
        """Stop fetches still in flight (shutdown)."""
        for state in self._states.values():
            state.gate.cancel()

    # -- cache ----------------------------------------------------------------------------

    def _state(self, provider: OidcProviderConfig) -> _IssuerState:
        slot = (provider.url, provider.jwks_uri, provider.jwks_file)
        state = self._states.get(slot)
        if state is None:
            state = self._states[slot] = _IssuerState()
        return state

    def _usable(self, provider: OidcProviderConfig, state: _IssuerState) -> KeySet:
        keys = state.keys
        if keys is not None and self._clock.time() < keys.usable_until:
            return keys
        reason = state.last_error or "no keys fetched yet"
        raise _keys_unavailable(provider.url, reason)

    async def _refresh(self, provider: OidcProviderConfig, state: _IssuerState) -> None:
        """Fetch once, unless a fetch is in flight or one was tried lately (RefreshGate)."""
        await state.gate.run(
            self._clock.time(),
            self._settings.refresh_interval_seconds,
            lambda: self._fetch_into(provider, state),
        )

    async def _fetch_into(self, provider: OidcProviderConfig, state: _IssuerState) -> None:
        try:
            state.keys = await self._fetch(provider, state)
            state.last_error = None
            record_idp_fetch("oidc_jwks", provider.url, ok=True, at=self._clock.time())
        except _FetchError as exc:
            record_idp_fetch("oidc_jwks", provider.url, ok=False, at=self._clock.time())
            state.last_error = str(exc)
            stale = state.keys is not None and self._clock.time() < state.keys.usable_until
            log.warning(
                "OIDC keys of %s: %s (%s)",
                provider.url,
                exc,
                "serving last known good keys" if stale else "no usable keys",
            )

    # -- fetching -------------------------------------------------------------------------

    async def _fetch(self, provider: OidcProviderConfig, state: _IssuerState) -> KeySet:
        if provider.jwks_file is not None:
            return self._read_file(Path(provider.jwks_file))
        jwks_uri = provider.jwks_uri
        if jwks_uri is None:
            expired = state.keys is None or self._clock.time() >= state.keys.fresh_until
            if state.jwks_uri is None or expired:
                state.jwks_uri = await self._discover(provider.url)
            jwks_uri = state.jwks_uri
        document, cache_control = await self._get_json(jwks_uri, "JWKS")
        try:
            keys, rejected = parse_jwks(document)
        except ValueError as exc:
            raise _FetchError(f"{exc} ({jwks_uri})") from None
        settings = self._settings
        max_age = _max_age(cache_control)
        ttl = settings.jwks_ttl_seconds if max_age is None else max_age
        ttl = min(max(ttl, settings.refresh_interval_seconds), settings.jwks_ttl_seconds)
        fresh = self._clock.time() + ttl
        log.info(
            "OIDC keys of %s: %d usable, %d refused, fresh for %ds",
            provider.url,
            len(keys),
            len(rejected),
            ttl,
        )
        return _build(keys, rejected, fresh, fresh + settings.last_known_good_seconds)

    def _read_file(self, path: Path) -> KeySet:
        """Offline keys: read once, never fetched, never stale."""
        try:
            keys, rejected = parse_jwks(read_json(path.read_bytes(), max_size=MAX_DOCUMENT_BYTES))
        except JsonRefusedError as exc:
            raise _FetchError(f"can't use the jwks_file {path}: it {exc.reason}") from None
        except (OSError, ValueError) as exc:
            raise _FetchError(f"can't use the jwks_file {path}: {exc}") from None
        return _build(keys, rejected, math.inf, math.inf)

    async def _discover(self, issuer: str) -> str:
        try:
            document, url = await fetch_discovery(self._http, issuer, timeout=self._timeout)
        except DocumentUnusable as exc:
            record_idp_fetch("oidc_discovery", issuer, ok=False, at=self._clock.time())
            raise _FetchError(str(exc)) from None
        record_idp_fetch("oidc_discovery", issuer, ok=True, at=self._clock.time())
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise _FetchError(f"the discovery document at {url} has no jwks_uri")
        problem = oidc_url_problem(jwks_uri)
        if problem is not None:
            raise _FetchError(f"the discovered jwks_uri {problem}")
        return jwks_uri

    async def _get_json(self, url: str, what: str) -> tuple[object, str | None]:
        """GET a small JSON document: bounded in time and size, same-origin redirects only."""
        try:
            document, fetched = await fetch_json(self._http, url, what=what, timeout=self._timeout)
        except DocumentUnusable as exc:
            raise _FetchError(str(exc)) from None
        return document, fetched.headers.get("cache-control")
