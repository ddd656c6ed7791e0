"""In-process Store: one worker, nothing survives a restart.

Bounded: when full it first drops expired entries, and if every entry is still live it
refuses the write instead of evicting one, because evicting a live replay marker would let
that value be used again. Expired entries are also dropped every few thousand writes, so
short-lived ones (rate-limit buckets) do not sit in memory until the store fills.

A rate-limit bucket (:meth:`MemoryStore.take_token`) is one entry whose expiry *is* its
state (GCRA's theoretical arrival time): taking a token moves the expiry on in place, with
no new heap entry. The store remembers the expiry each key is filed under in the heap; the
purge drops heap entries that are not the one their key is filed under (left by a later
write) and files again, once, an entry it finds alive past the time it was filed for. So the heap
holds about one entry per key however often a bucket is taken from.
"""

from __future__ import annotations

import heapq

from broker.clock import Clock
from broker.store.port import StoreFullError

_PURGE_EVERY = 4096
"""Writes between two sweeps of expired entries."""
_EPSILON = 1e-6
"""Seconds of float rounding forgiven when a bucket is exactly at its burst."""

_Entry = tuple[float, bytes]
"""(expires, value)."""


class MemoryStore:
    """A dict with expiry times and a heap to find the expired ones cheaply."""

    def __init__(self, clock: Clock, *, max_entries: int = 1_000_000) -> None:
        self._clock = clock
        self._max = max_entries
        self._data: dict[tuple[str, str], _Entry] = {}
        self._expiries: list[tuple[float, str, str]] = []
        self._filed: dict[tuple[str, str], float] = {}
        """The expiry each key is filed under in the heap."""
        self._writes = 0

    def _live(self, ns: str, key: str, now: float) -> _Entry | None:
        entry = self._data.get((ns, key))
        if entry is None or entry[0] <= now:
            return None
        return entry

    def _purge(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            filed, ns, key = heapq.heappop(self._expiries)
            slot = (ns, key)
            if self._filed.get(slot) != filed:
                continue  # filed again by a later write
            entry = self._data.get(slot)
            if entry is None or entry[0] <= now:
                self._data.pop(slot, None)
                del self._filed[slot]
            else:  # a bucket that moved on since it was filed: file it at its expiry
                self._filed[slot] = entry[0]
                heapq.heappush(self._expiries, (entry[0], ns, key))

    def _set(self, ns: str, key: str, value: bytes, ttl: float, now: float) -> None:
        if (ns, key) not in self._data and len(self._data) >= self._max:
            self._purge(now)
            if len(self._data) >= self._max:
                raise StoreFullError(f"memory store holds {self._max} live entries")
        expires = now + ttl
        self._data[(ns, key)] = (expires, value)
        self._filed[(ns, key)] = expires
        heapq.heappush(self._expiries, (expires, ns, key))
        self._writes += 1
        if self._writes % _PURGE_EVERY == 0:
            self._purge(now)

    async def claim(self, namespace: str, key: str, ttl: float) -> bool:
        # No await between the check and the set: atomic within the event loop.
        now = self._clock.time()
        if self._live(namespace, key, now) is not None:
            return False
        self._set(namespace, key, b"", ttl, now)
        return True

    async def get(self, namespace: str, key: str) -> bytes | None:
        entry = self._live(namespace, key, self._clock.time())
        return None if entry is None else entry[1]

    async def put(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        self._set(namespace, key, value, ttl, self._clock.time())

    async def delete(self, namespace: str, key: str) -> None:
        self._data.pop((namespace, key), None)

    async def take_token(self, namespace: str, key: str, *, rate: float, burst: int) -> float:
        # No await: atomic within the event loop. The entry's expiry is the bucket's TAT.
        now = self._clock.time()
        interval = 1.0 / rate
        slot = (namespace, key)
        entry = self._data.get(slot)
        if entry is None:
            self._set(namespace, key, b"", interval, now)
            return 0.0
        tat = entry[0]
        # A TAT further ahead than a whole burst can only be a clock that stepped back:
        # such a bucket counts as full again (one extra burst at most, never a long refusal).
        if tat <= now or tat > now + burst * interval + _EPSILON:
            tat = now
        else:
            wait = tat - now - (burst - 1) * interval
            if wait > _EPSILON:
                return wait
        # Moved in place; the heap entry it is filed under stays (the purge files it again).
        self._data[slot] = (tat + interval, b"")
        self._writes += 1
        if self._writes % _PURGE_EVERY == 0:
            self._purge(now)
        return 0.0

    async def close(self) -> None:
        self._data.clear()
        self._expiries.clear()
        self._filed.clear()
