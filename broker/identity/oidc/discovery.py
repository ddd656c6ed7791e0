"""OIDC discovery for browser sign-in: a provider's authorization and token endpoints.

``AssumeRoleWithWebIdentity`` needs only an issuer's keys; signing people in also needs
where to send them and where to redeem the code, and whether the provider promises RFC
9207's ``iss`` (the mix-up defence). That comes from the issuer's discovery document,
fetched and issuer-checked by the same :func:`~broker.identity.fetch.fetch_discovery` as
for keys, then cached under the same outage rule as JWKS.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from broker.clock import Clock
from broker.config import OidcSettings, oidc_url_problem
from broker.identity.fetch import DocumentUnusable, fetch_discovery
from broker.identity.refresh import RefreshGate, wait_at_most
from broker.observability import record_idp_fetch

log = logging.getLogger("broker.web.oidc")


class DiscoveryError(Exception):
    """Why a provider's discovery document can't be used; safe to show (URLs, no secrets)."""


@dataclass(frozen=True)
class ProviderMetadata:
    """What the broker uses of a provider's ``.well-known/openid-configuration``."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    token_auth_methods: tuple[str, ...]
    """``token_endpoint_auth_methods_supported`` (the spec's default when absent)."""
    iss_parameter_supported: bool
    """RFC 9207: the provider adds ``iss`` to every authorization response."""


def endpoint_problem(value: object) -> str | None:
    """Why ``value`` can't be an authorization or token endpoint (None when it can).

    The same rule as issuer URLs (https, http only on loopback, no credentials), except
    that a query is allowed: some providers put a policy name there.
    """
    if not isinstance(value, str):
        return "is missing"
    base, _, query = value.partition("?")
    if "#" in value or not re.fullmatch(r"[\x21-\x7e]*", query):
        return f"must not have a fragment or spaces (got {value[:80]!r})"
    return oidc_url_problem(base)


def parse_discovery(document: Mapping[str, object], issuer: str) -> ProviderMetadata:
    """The sign-in metadata of ``issuer``'s discovery document (its ``issuer`` already
    checked by :func:`~broker.identity.fetch.fetch_discovery`); DiscoveryError if unusable."""
    endpoints: dict[str, str] = {}
    for name in ("authorization_endpoint", "token_endpoint"):
        value = document.get(name)
        problem = endpoint_problem(value)
        if problem is not None:
            raise DiscoveryError(f"the discovery document's {name} {problem}")
        assert isinstance(value, str)
        endpoints[name] = value
    response_types = document.get("response_types_supported")
    if isinstance(response_types, list) and "code" not in response_types:
        raise DiscoveryError("the provider does not support the authorization code flow")
    methods = document.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise DiscoveryError("the provider does not support PKCE with S256")
    auth_methods = document.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
    if not isinstance(auth_methods, list):
        auth_methods = ["client_secret_basic"]
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=endpoints["authorization_endpoint"],
        token_endpoint=endpoints["token_endpoint"],
        token_auth_methods=tuple(m for m in auth_methods if isinstance(m, str)),
        iss_parameter_supported=document.get("authorization_response_iss_parameter_supported")
        is True,
    )


@dataclass
class _Cached:
    """One issuer's cache entry; only :class:`ProviderDiscovery` touches it, on one loop."""

    metadata: ProviderMetadata | None = None
    fresh_until: float = 0.0
    usable_until: float = 0.0
    last_error: str | None = None
    gate: RefreshGate = field(default_factory=RefreshGate)


class ProviderDiscovery:
    """Discovery documents per issuer, cached like JWKS (same settings, same outage rule).

    Fresh for ``jwks_ttl_seconds``; when a refresh fails the last good document serves for
    ``last_known_good_seconds`` more; an issuer is asked at most once per
    ``refresh_interval_seconds``, so a flood of login clicks during an outage costs the
    provider nothing; and callers arriving while a fetch is in flight wait for that one
    fetch instead of failing or starting their own.
    """

    def __init__(self, settings: OidcSettings, clock: Clock, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._clock = clock
        self._http = http
        self._timeout = httpx.Timeout(float(settings.http_timeout_seconds))
        self._cache: dict[str, _Cached] = {}

    async def metadata(self, issuer: str) -> ProviderMetadata:
        """The provider's checked metadata; :class:`DiscoveryError` when none is usable."""
        entry = self._cache.setdefault(issuer, _Cached())
        if entry.metadata is not None and self._clock.time() < entry.fresh_until:
            return entry.metadata
        await self._run_refresh(issuer, entry)
        return self._usable(entry)

    async def check(self, issuer: str, *, wait: float) -> str | None:
        """Why sign-in through ``issuer`` can't start now; None when it can (readiness).

        Refreshes a stale document as a login click would, waiting at most ``wait``.
        """
        entry = self._cache.setdefault(issuer, _Cached())
        if entry.metadata is None or self._clock.time() >= entry.fresh_until:
            await wait_at_most(wait, self._run_refresh(issuer, entry))
        try:
            self._usable(entry)
        except DiscoveryError as exc:
            return str(exc)
        return None

    async def _run_refresh(self, issuer: str, entry: _Cached) -> None:
        await entry.gate.run(
            self._clock.time(),
            self._settings.refresh_interval_seconds,
            lambda: self._refresh(issuer, entry),
        )

    def _usable(self, entry: _Cached) -> ProviderMetadata:
        if entry.metadata is not None and self._clock.time() < entry.usable_until:
            return entry.metadata
        raise DiscoveryError(entry.last_error or "the discovery document was not fetched yet")

    async def _refresh(self, issuer: str, entry: _Cached) -> None:
        try:
            metadata = await self._fetch(issuer)
        except DiscoveryError as exc:
            record_idp_fetch("oidc_discovery", issuer, ok=False, at=self._clock.time())
            entry.last_error = str(exc)
            log.warning("OIDC discovery of %s: %s", issuer, exc)
            return
        now = self._clock.time()
        record_idp_fetch("oidc_discovery", issuer, ok=True, at=now)
        ttl = self._settings.jwks_ttl_seconds
        entry.metadata, entry.last_error = metadata, None
        entry.fresh_until = now + ttl
        entry.usable_until = now + ttl + self._settings.last_known_good_seconds

    async def _fetch(self, issuer: str) -> ProviderMetadata:
        try:
            document, _ = await fetch_discovery(self._http, issuer, timeout=self._timeout)
        except DocumentUnusable as exc:
            raise DiscoveryError(str(exc)) from None
        return parse_discovery(document, issuer)
