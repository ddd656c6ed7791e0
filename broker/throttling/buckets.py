"""Which bucket a call spends a token from, and what happens when the Store cannot answer.

**Buckets.** Every STS call spends one token from its source address's bucket as soon as its
action is known (before any signature or token is checked, so a flood of forgeries costs
little), and one from its principal's once the principal is proven: the access key ID of a
SigV4 call after its signature verified, the issuer and subject of a web identity token or
SAML assertion after its signature verified. Keying principals on proven identities only
means nobody can empty someone else's bucket by sending calls in their name. An action
listed under ``throttling.actions`` has buckets of its own for the scopes it names.
IPv6 sources are counted per /64, the block one host is usually given.

**Store down: fail open, to buckets in this process.** Throttling guards against floods; it
must not turn a Redis blip into an outage of the paths that need no store (SigV4 calls,
AssumeRole without MFA, web identity for providers that are not ``single_use``). So when
the shared Store raises :class:`~broker.store.StoreUnavailableError` the buckets move to
memory in this process for ``fallback_seconds`` (the limits then hold per process instead
of per cluster), with one warning per switch, and the Store is tried again after that: a
dead Redis costs one bounded timeout per process per interval, never one per request.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from dataclasses import dataclass

from broker.clock import Clock
from broker.config import RateLimit, ThrottlingSettings
from broker.errors import StsError
from broker.observability.metrics import ThrottleScope, count_throttled
from broker.store import MemoryStore, Store, StoreFullError, StoreUnavailableError

log = logging.getLogger("broker.throttling")

FALLBACK_SECONDS = 5.0
"""How long buckets stay in process memory after the Store failed, before it is tried again."""
_LOCAL_ENTRIES = 100_000
_ALL = "*"
"""The group of the buckets every action shares."""


class Throttled(StsError):
    """Over the limit: AWS's ``Throttling`` (400, "Rate exceeded"); botocore retries it."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("Throttling", "Rate exceeded", 400)
        self.retry_after = retry_after
        """Seconds until the bucket has a token again (for a ``Retry-After`` header)."""


@dataclass(frozen=True)
class _Limit:
    namespace: str
    prefix: str
    """The group (an action's name, or ``*`` for the shared buckets) and a space."""
    rate: float
    burst: int


def _limit(namespace: str, group: str, limit: RateLimit) -> _Limit:
    return _Limit(namespace, f"{group} ", limit.rate, limit.burst)


@functools.lru_cache(maxsize=4096)
def _ipv6_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def address_key(address: str) -> str:
    """What an address is counted as: itself for IPv4, its /64 for IPv6."""
    return _ipv6_key(address) if ":" in address else address


def federated_principal(issuer: str, subject: str) -> str:
    """One federated principal: its issuer and subject, joined so no two pairs meet."""
    return f"{len(issuer)}:{issuer}{subject}"


class Throttle:
    """The broker's buckets, from ``throttling:`` in the config (see the module doc)."""

    def __init__(
        self,
        settings: ThrottlingSettings,
        store: Store,
        clock: Clock,
        *,
        fallback_seconds: float = FALLBACK_SECONDS,
    ) -> None:
        self.enabled = settings.enabled
        self._store = store
        self._clock = clock
        self._local = MemoryStore(clock, max_entries=_LOCAL_ENTRIES)
        self._fallback_seconds = fallback_seconds
        self._local_until = 0.0
        self._principal_default = _limit("throttle-principal", _ALL, settings.principal)
        self._ip_default = _limit("throttle-ip", _ALL, settings.source_ip)
        self._principal = {
            action: _limit("throttle-principal", action, limits.principal)
            for action, limits in settings.actions.items()
            if limits.principal is not None
        }
        self._ip = {
            action: _limit("throttle-ip", action, limits.source_ip)
            for action, limits in settings.actions.items()
            if limits.source_ip is not None
        }
        self._signin = _limit("throttle-signin", _ALL, settings.signin)
        self._device = _limit("throttle-device", _ALL, settings.device)

    async def source_ip(self, action: str, address: str) -> None:
        """Spend a token of ``address``'s bucket for ``action``; :class:`Throttled` if none.

        An unknown address (no peer, or a garbled forwarded one) is not counted here.
        """
        if self.enabled and address:
            await self._spend(
                self._ip.get(action, self._ip_default), address_key(address), action, "source_ip"
            )

    async def principal(self, action: str, principal: str) -> None:
        """Spend a token of a proven principal's bucket for ``action``, or :class:`Throttled`."""
        if self.enabled:
            await self._spend(
                self._principal.get(action, self._principal_default), principal, action, "principal"
            )

    async def signin(self, address: str) -> None:
        """A browser sign-in page's request from ``address``."""
        if self.enabled and address:
            await self._spend(self._signin, address_key(address), "signin", "signin")

    async def device(self, address: str) -> None:
        """Device-code entry or the CLI's token endpoints, from ``address``."""
        if self.enabled and address:
            await self._spend(self._device, address_key(address), "device", "device_code")

    async def _spend(self, limit: _Limit, who: str, action: str, scope: ThrottleScope) -> None:
        if self._local_until:
            wait = await self._spend_degraded(limit, limit.prefix + who)
        else:
            try:
                wait = await self._store.take_token(
                    limit.namespace, limit.prefix + who, rate=limit.rate, burst=limit.burst
                )
            except (StoreUnavailableError, StoreFullError) as exc:
                wait = await self._fall_back(limit, limit.prefix + who, exc)
        if wait:
            count_throttled(action, scope)
            raise Throttled(wait)

    async def _fall_back(self, limit: _Limit, key: str, exc: Exception) -> float:
        """The store failed: buckets in this process for ``fallback_seconds`` (module doc)."""
        self._local_until = self._clock.time() + self._fallback_seconds
        log.warning(
            "rate-limit buckets are kept in this process for %.0f s (limits hold per "
            "process, not per cluster, until the store answers): %s",
            self._fallback_seconds,
            exc,
        )
        return await self._take_locally(limit, key)

    async def _spend_degraded(self, limit: _Limit, key: str) -> float:
        """Since the store failed: this process's buckets, and the store again once due."""
        if self._clock.time() < self._local_until:
            return await self._take_locally(limit, key)
        try:
            wait = await self._store.take_token(
                limit.namespace, key, rate=limit.rate, burst=limit.burst
            )
        except (StoreUnavailableError, StoreFullError) as exc:
            return await self._fall_back(limit, key, exc)
        self._local_until = 0.0
        log.warning("rate-limit buckets are back in the shared store")
        return wait

    async def _take_locally(self, limit: _Limit, key: str) -> float:
        """From this process's buckets; a full table admits (fail open, as above)."""
        try:
            return await self._local.take_token(
                limit.namespace, key, rate=limit.rate, burst=limit.burst
            )
        except StoreFullError:
            return 0.0
