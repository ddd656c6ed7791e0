"""The Store interface and its errors, apart from the backends that implement it."""

from __future__ import annotations

from typing import Protocol


class Store(Protocol):
    """Key/value memory with expiry, partitioned by namespace."""

    async def claim(self, namespace: str, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds; True only for the first caller while it lives."""
        ...

    async def get(self, namespace: str, key: str) -> bytes | None:
        """The live value under ``key``, or None."""
        ...

    async def put(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        """Set ``key`` to ``value`` for ``ttl`` seconds, replacing any earlier value."""
        ...

    async def delete(self, namespace: str, key: str) -> None:
        """Forget ``key``."""
        ...

    async def take_token(self, namespace: str, key: str, *, rate: float, burst: int) -> float:
        """Take one token from the bucket ``key``: 0.0 if taken, else the seconds to wait.

        The bucket holds at most ``burst`` tokens and gains ``rate`` a second; a bucket never
        seen is full. When none is left nothing is taken, and the answer is how long until
        one is (always > 0). Check and take are one atomic step, for every handle on the same
        state. What is stored is the bucket's "theoretical arrival time" (GCRA), one number
        that expires when the bucket would be full again, so idle buckets vanish by themselves.
        A clock that steps back leaves buckets further ahead than a whole burst, which no
        taking can: those count as full again (one extra burst at most, never a refusal).
        """
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...


class StoreFullError(Exception):
    """The store refused to forget live entries to make room (that would re-open replays)."""


class StoreUnavailableError(Exception):
    """The backend could not be reached or refused the operation; the caller must fail closed.

    Raised for a backend's own I/O failures (Redis down, timed out, out of memory, read-only,
    wrong credentials; a SQLite file that cannot be written) so request paths can catch one
    type. The message names where and what, never a secret.
    """


STORE_FAILURES: tuple[type[Exception], ...] = (StoreUnavailableError, StoreFullError)
"""What a request path may meet from any backend and must answer as "unavailable, retry":
the one place per protocol (STS API, pages, CLI JSON) that turns these into a 503 catches
exactly this tuple, so no path can fail open or end in a 500."""
