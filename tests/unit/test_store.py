"""Store backends: claim is first-wins, expiry is honoured, SQLite is shared across opens."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from broker.clock import FrozenClock
from broker.store import (
    MemoryStore,
    SqliteStore,
    Store,
    StoreFullError,
    StoreUnavailableError,
    open_store,
)


def _backends(tmp_path: Path, clock: FrozenClock) -> list[Store]:
    return [MemoryStore(clock), SqliteStore(tmp_path / "state.db", clock)]


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_claim_put_get_delete_and_expiry(tmp_path: Path, backend: str) -> None:
    clock = FrozenClock(1000.0)
    store = open_store("memory" if backend == "memory" else f"sqlite:///{tmp_path}/s.db", clock)

    async def run() -> None:
        assert await store.claim("mfa", "dev#1", 60) is True
        assert await store.claim("mfa", "dev#1", 60) is False
        assert await store.claim("other", "dev#1", 60) is True  # namespaces are separate
        clock.advance(61)
        assert await store.claim("mfa", "dev#1", 60) is True  # expired: usable again
        await store.put("s", "k", b"v1", 10)
        assert await store.get("s", "k") == b"v1"
        await store.put("s", "k", b"v2", 10)
        assert await store.get("s", "k") == b"v2"
        clock.advance(11)
        assert await store.get("s", "k") is None
        await store.put("s", "k", b"v3", 10)
        await store.delete("s", "k")
        assert await store.get("s", "k") is None
        await store.close()

    asyncio.run(run())


def test_concurrent_claims_have_exactly_one_winner(tmp_path: Path) -> None:
    clock = FrozenClock(1000.0)

    async def run(store: Store) -> list[bool]:
        results = await asyncio.gather(*(store.claim("n", "same", 60) for _ in range(50)))
        await store.close()
        return list(results)

    for store in _backends(tmp_path, clock):
        assert sorted(asyncio.run(run(store))) == [False] * 49 + [True]


def test_sqlite_state_is_shared_between_two_opens(tmp_path: Path) -> None:
    """Two workers on one host open the same file: a code used by one is refused by the other."""
    clock = FrozenClock(1000.0)
    first = SqliteStore(tmp_path / "shared.db", clock)
    second = SqliteStore(tmp_path / "shared.db", clock)

    async def run() -> None:
        assert await first.claim("mfa", "dev#7", 60) is True
        assert await second.claim("mfa", "dev#7", 60) is False
        await first.close()
        await second.close()

    asyncio.run(run())


def test_full_memory_store_refuses_instead_of_forgetting_live_entries() -> None:
    clock = FrozenClock(0.0)
    store = MemoryStore(clock, max_entries=3)

    async def run() -> None:
        for i in range(3):
            assert await store.claim("n", str(i), 60)
        with pytest.raises(StoreFullError):
            await store.claim("n", "3", 60)
        assert await store.claim("n", "0", 60) is False  # the live entry was kept
        clock.advance(61)
        assert await store.claim("n", "3", 60) is True  # expired ones make room

    asyncio.run(run())


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown state backend"):
        open_store("redis://x", FrozenClock(0))


def test_sqlite_failure_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path, FrozenClock(0.0))
    with sqlite3.connect(path) as other:
        other.execute("DROP TABLE entries")

    async def run() -> None:
        with pytest.raises(StoreUnavailableError) as caught:
            await store.claim("n", "k", 60)
        assert str(caught.value) == f"SQLite store {path} failed: no such table: entries"
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        await store.close()

    asyncio.run(run())
