"""A Store that reports each operation's latency and failures, around any backend.

Wrapped once, where the app opens its store, so every caller (MFA codes, replay markers,
browser sessions, CLI grants, throttling buckets) is measured the same way and no backend
repeats the timing code. A failure is counted and raised on unchanged: the wrapper decides
nothing. :meth:`MeteredStore.check` is readiness's probe: one read of a key that never
exists, which every backend answers with a round trip and no write.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

from broker.observability import Check, record_store
from broker.observability.metrics import StoreOperation
from broker.store.memory import MemoryStore
from broker.store.port import Store, StoreFullError, StoreUnavailableError
from broker.store.redis import RedisStore
from broker.store.sqlite import SqliteStore

_T = TypeVar("_T")
_PROBE = ("readiness", "probe")


def backend_name(store: Store) -> str:
    """``memory``, ``sqlite``, ``redis``, or the class name of another implementation."""
    for kind, name in ((MemoryStore, "memory"), (SqliteStore, "sqlite"), (RedisStore, "redis")):
        if isinstance(store, kind):
            return name
    return type(store).__name__.lower()


class MeteredStore:
    """``inner`` with every call timed under ``sts_broker_store_*`` (labels: backend, op)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.backend = backend_name(inner)

    async def _timed(self, operation: StoreOperation, call: Awaitable[_T]) -> _T:
        started = time.perf_counter()
        ok = False
        try:
            result = await call
            ok = True
            return result
        finally:
            record_store(self.backend, operation, time.perf_counter() - started, ok=ok)

    async def claim(self, namespace: str, key: str, ttl: float) -> bool:
        return await self._timed("claim", self.inner.claim(namespace, key, ttl))

    async def get(self, namespace: str, key: str) -> bytes | None:
        return await self._timed("get", self.inner.get(namespace, key))

    async def put(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        await self._timed("put", self.inner.put(namespace, key, value, ttl))

    async def delete(self, namespace: str, key: str) -> None:
        await self._timed("delete", self.inner.delete(namespace, key))

    async def take_token(self, namespace: str, key: str, *, rate: float, burst: int) -> float:
        return await self._timed(
            "take_token", self.inner.take_token(namespace, key, rate=rate, burst=burst)
        )

    async def close(self) -> None:
        await self.inner.close()

    async def check(self, timeout: float) -> Check:
        """Whether the backend answers a read within ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self.get(*_PROBE), timeout)
        except TimeoutError:
            return Check("store", self.backend, f"no answer within {timeout:g} s")
        except (StoreUnavailableError, StoreFullError) as exc:
            return Check("store", self.backend, str(exc))
        return Check("store", self.backend)
