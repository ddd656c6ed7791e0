"""The Store interface and its one error, apart from the backends that implement it."""

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

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...


class StoreFullError(Exception):
    """The store refused to forget live entries to make room (that would re-open replays)."""
