"""Store backends: one contract for memory, SQLite and Redis, then each one's own edges.

The contract runs against every backend: claim is first-wins, expiry frees a key again,
namespaces never meet, and two handles on one state (a second SQLite open of the file, a
second RedisStore with the same prefix) agree under concurrency. Memory and SQLite expire
by the injected clock, which the tests move; Redis expires by its own clock, so for it the
tests use short real TTLs and wait them out. The Redis variant runs against a real
``redis-server`` (tests/redis_server.py) and skips, or fails, without one.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from broker.clock import FrozenClock
from broker.store import (
    MemoryStore,
    RedisStore,
    SqliteStore,
    Store,
    StoreFullError,
    StoreUnavailableError,
    open_store,
)
from tests.redis_server import RedisServer

SHORT_TTL = 0.2
"""Long enough for the next call to find the key alive, short enough to wait out (Redis)."""
PAST_SHORT_TTL = 0.3


@dataclass
class Backend:
    """One backend under test: how to reach its state again, and how time passes for it."""

    open: Callable[[], Store]
    """Another handle on the same state (for memory, the same store: there is one)."""
    elapse: Callable[[float], Awaitable[None]]
    """Let ``seconds`` pass as this backend sees time."""


def _memory() -> Backend:
    clock = FrozenClock(1000.0)
    store = MemoryStore(clock)

    async def elapse(seconds: float) -> None:
        clock.advance(seconds)

    return Backend(open=lambda: store, elapse=elapse)


def _sqlite(path: Path) -> Backend:
    clock = FrozenClock(1000.0)

    async def elapse(seconds: float) -> None:
        clock.advance(seconds)

    return Backend(open=lambda: SqliteStore(path, clock), elapse=elapse)


def _redis(server: RedisServer) -> Backend:
    prefix = f"test-{uuid.uuid4().hex}:"  # one session-wide server: every test its own keys
    return Backend(open=lambda: RedisStore(server.url, key_prefix=prefix), elapse=asyncio.sleep)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "memory":
        return _memory()
    if request.param == "sqlite":
        return _sqlite(tmp_path / "state.db")
    return _redis(request.getfixturevalue("redis_server"))


def run(backend: Backend, test: Callable[[Store], Awaitable[None]]) -> None:
    """Run ``test`` with a fresh handle in its own event loop, closing the handle after."""

    async def main() -> None:
        store = backend.open()
        try:
            await test(store)
        finally:
            await store.close()

    asyncio.run(main())


def test_claim_is_first_caller_only(backend: Backend) -> None:
    async def test(store: Store) -> None:
        assert await store.claim("mfa", "dev#1", 60) is True
        assert await store.claim("mfa", "dev#1", 60) is False
        assert await store.claim("mfa", "dev#1", 60) is False
        assert await store.claim("mfa", "dev#2", 60) is True
        assert await store.claim("other", "dev#1", 60) is True

    run(backend, test)


def test_claim_after_expiry_succeeds_again(backend: Backend) -> None:
    async def test(store: Store) -> None:
        assert await store.claim("mfa", "dev#1", SHORT_TTL) is True
        assert await store.claim("mfa", "dev#1", SHORT_TTL) is False
        await backend.elapse(PAST_SHORT_TTL)
        assert await store.claim("mfa", "dev#1", SHORT_TTL) is True

    run(backend, test)


def test_put_get_delete_and_expiry(backend: Backend) -> None:
    async def test(store: Store) -> None:
        assert await store.get("s", "k") is None
        await store.put("s", "k", b"v1", 60)
        assert await store.get("s", "k") == b"v1"
        await store.put("s", "k", b"\x00v2\xff", 60)
        assert await store.get("s", "k") == b"\x00v2\xff"
        await store.delete("s", "k")
        assert await store.get("s", "k") is None
        await store.delete("s", "never-there")
        await store.put("s", "short", b"v", SHORT_TTL)
        assert await store.get("s", "short") == b"v"
        await backend.elapse(PAST_SHORT_TTL)
        assert await store.get("s", "short") is None

    run(backend, test)


def test_a_put_key_is_claimed_and_a_deleted_one_is_free(backend: Backend) -> None:
    async def test(store: Store) -> None:
        await store.put("n", "k", b"v", 60)
        assert await store.claim("n", "k", 60) is False
        await store.delete("n", "k")
        assert await store.claim("n", "k", 60) is True

    run(backend, test)


# Pairs that would share a key if the namespace were joined to the key unescaped, or with
# only ':' escaped: ("a\\", "b:x") and ("a:b", "x").
NAMESPACED = [("a:b", "c"), ("a", "b:c"), ("a\\", "b:x"), ("a:b", "x"), ("", "a:b"), ("a", ":b")]


def test_namespaces_are_isolated_whatever_they_hold(backend: Backend) -> None:
    async def test(store: Store) -> None:
        for i, (namespace, key) in enumerate(NAMESPACED):
            await store.put(namespace, key, str(i).encode(), 60)
        for i, (namespace, key) in enumerate(NAMESPACED):
            assert await store.get(namespace, key) == str(i).encode()
        assert await store.get("a", "b") is None
        await store.delete("a", "b:c")
        assert await store.get("a:b", "c") == b"0"

    run(backend, test)


def test_two_handles_on_one_state_agree(backend: Backend) -> None:
    """Two workers (or nodes) share the state: a code used by one is refused by the other."""

    async def test(first: Store) -> None:
        second = backend.open()
        try:
            assert await first.claim("mfa", "dev#7", 60) is True
            assert await second.claim("mfa", "dev#7", 60) is False
            await second.put("s", "k", b"v", 60)
            assert await first.get("s", "k") == b"v"
        finally:
            await second.close()

    run(backend, test)


def test_concurrent_claims_through_two_handles_have_exactly_one_winner(backend: Backend) -> None:
    async def test(first: Store) -> None:
        second = backend.open()
        try:
            results = await asyncio.gather(
                *((first, second)[i % 2].claim("n", "same", 60) for i in range(50))
            )
        finally:
            await second.close()
        assert sorted(results) == [False] * 49 + [True]

    run(backend, test)


RATE = 10.0
"""Tokens a second in the bucket tests: 0.1 s a token, short enough to wait out on Redis."""


def test_take_token_spends_the_burst_then_says_how_long_to_wait(backend: Backend) -> None:
    async def test(store: Store) -> None:
        assert [await store.take_token("rl", "alice", rate=RATE, burst=3) for _ in range(3)] == [
            0.0
        ] * 3
        wait = await store.take_token("rl", "alice", rate=RATE, burst=3)
        assert 0.0 < wait <= 1 / RATE + 1e-6  # refused, and nothing was taken:
        again = await store.take_token("rl", "alice", rate=RATE, burst=3)
        assert 0.0 < again <= wait
        await backend.elapse(again + 0.02)
        assert await store.take_token("rl", "alice", rate=RATE, burst=3) == 0.0
        assert await store.take_token("rl", "alice", rate=RATE, burst=3) > 0.0

    run(backend, test)


def test_take_token_refills_at_the_rate_up_to_the_burst(backend: Backend) -> None:
    async def test(store: Store) -> None:
        for _ in range(2):
            assert await store.take_token("rl", "k", rate=RATE, burst=2) == 0.0
        assert await store.take_token("rl", "k", rate=RATE, burst=2) > 0.0
        await backend.elapse(5.0 / RATE)  # long enough for five tokens; the bucket holds two
        assert [await store.take_token("rl", "k", rate=RATE, burst=2) for _ in range(3)][:2] == [
            0.0,
            0.0,
        ]
        assert await store.take_token("rl", "k", rate=RATE, burst=2) > 0.0

    run(backend, test)


def test_buckets_are_per_key_and_per_namespace(backend: Backend) -> None:
    async def test(store: Store) -> None:
        assert await store.take_token("rl", "alice", rate=RATE, burst=1) == 0.0
        assert await store.take_token("rl", "alice", rate=RATE, burst=1) > 0.0
        assert await store.take_token("rl", "bob", rate=RATE, burst=1) == 0.0
        assert await store.take_token("other", "alice", rate=RATE, burst=1) == 0.0

    run(backend, test)


def test_concurrent_takes_through_two_handles_spend_exactly_the_burst(backend: Backend) -> None:
    """Two workers (or nodes) share one bucket: 40 concurrent takes, 10 tokens, 10 winners."""

    async def test(first: Store) -> None:
        second = backend.open()
        try:
            results = await asyncio.gather(
                *(
                    (first, second)[i % 2].take_token("rl", "k", rate=0.01, burst=10)
                    for i in range(40)
                )
            )
        finally:
            await second.close()
        assert sum(1 for wait in results if wait == 0.0) == 10
        assert all(wait > 0.0 for wait in results if wait != 0.0)

    run(backend, test)


def test_an_idle_bucket_is_forgotten_once_it_would_be_full(backend: Backend) -> None:
    """What is stored expires when the bucket has refilled, so idle buckets cost nothing."""

    async def test(store: Store) -> None:
        assert await store.take_token("rl", "k", rate=RATE, burst=5) == 0.0
        assert await store.take_token("rl", "k", rate=RATE, burst=5) == 0.0
        assert await store.get("rl", "k") is not None  # alive while it refills
        await backend.elapse(2 / RATE + 0.05)
        assert await store.get("rl", "k") is None

    run(backend, test)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_clock_stepping_back_counts_the_bucket_as_full(kind: str, tmp_path: Path) -> None:
    """NTP may step the wall clock back: a bucket must not then refuse for that long."""
    clock = FrozenClock(1000.0)
    store: Store = MemoryStore(clock) if kind == "memory" else SqliteStore(tmp_path / "s.db", clock)

    async def run() -> None:
        clock.advance(900)
        for _ in range(3):
            assert await store.take_token("rl", "k", rate=RATE, burst=3) == 0.0
        assert await store.take_token("rl", "k", rate=RATE, burst=3) > 0.0
        clock.set(1000.0)  # 900 s back
        for _ in range(3):
            assert await store.take_token("rl", "k", rate=RATE, burst=3) == 0.0
        assert await store.take_token("rl", "k", rate=RATE, burst=3) > 0.0
        await store.close()

    asyncio.run(run())


def test_a_redis_bucket_far_in_the_future_counts_as_full(
    redis_server: RedisServer,
) -> None:
    """Redis's clock stepping back, as the script sees it: a stored TAT far ahead of TIME."""
    prefix = f"test-{uuid.uuid4().hex}:"
    raw = redis.Redis(host="127.0.0.1", port=redis_server.port)
    seconds, micros = raw.time()
    raw.set(f"{prefix}rl:k", str((seconds + 900) * 1_000_000 + micros), px=1_000_000)

    async def run() -> None:
        store = RedisStore(redis_server.url, key_prefix=prefix)
        try:
            for _ in range(3):
                assert await store.take_token("rl", "k", rate=RATE, burst=3) == 0.0
            assert await store.take_token("rl", "k", rate=RATE, burst=3) > 0.0
        finally:
            await store.close()

    asyncio.run(run())
    raw.close()


def test_memory_store_sweeps_expired_buckets_without_being_full() -> None:
    clock = FrozenClock(0.0)
    store = MemoryStore(clock)

    async def run() -> None:
        for i in range(5000):
            assert await store.take_token("rl", f"ip{i}", rate=100.0, burst=10) == 0.0
            clock.advance(0.001)
        # Each bucket lived 10 ms; the sweep every few thousand writes dropped the old ones.
        assert len(store._data) < 4000
        # A bucket taken from again and again keeps one heap entry, re-filed as it moves on.
        for _ in range(3000):
            await store.take_token("rl", "hot", rate=1e6, burst=10)
        assert len(store._expiries) < 4000
        # Nor one that has refilled by every next call (a fast rate): still one heap entry.
        for _ in range(10_000):
            clock.advance(0.001)
            assert await store.take_token("rl", "fast", rate=1e6, burst=10) == 0.0
        assert sum(1 for _, _, key in store._expiries if key == "fast") <= 2
        assert len(store._filed) == len(store._data)

    asyncio.run(run())


def test_redis_bucket_key_expires_with_the_refill(redis_server: RedisServer) -> None:
    prefix = f"test-{uuid.uuid4().hex}:"
    raw = redis.Redis(host="127.0.0.1", port=redis_server.port)

    async def run() -> None:
        store = RedisStore(redis_server.url, key_prefix=prefix)
        try:
            assert await store.take_token("rl", "k", rate=RATE, burst=5) == 0.0
            assert await store.take_token("rl", "k", rate=RATE, burst=5) == 0.0
        finally:
            await store.close()

    asyncio.run(run())
    ttl = raw.pttl(f"{prefix}rl:k")
    assert 0 < ttl <= 200  # two tokens to refill at 100 ms each
    raw.close()


def test_redis_bucket_script_is_loaded_again_after_a_script_flush(
    redis_server: RedisServer,
) -> None:
    """EVALSHA first; a server that lost the script (restart, SCRIPT FLUSH) gets it again."""
    prefix = f"test-{uuid.uuid4().hex}:"
    raw = redis.Redis(host="127.0.0.1", port=redis_server.port)

    async def run() -> None:
        store = RedisStore(redis_server.url, key_prefix=prefix)
        try:
            assert await store.take_token("rl", "k", rate=RATE, burst=1) == 0.0
            raw.script_flush()
            assert await store.take_token("rl", "k", rate=RATE, burst=1) > 0.0
            assert await store.take_token("rl", "other", rate=RATE, burst=1) == 0.0
        finally:
            await store.close()

    asyncio.run(run())
    raw.close()


def test_sqlite_bucket_failure_is_store_unavailable_and_leaves_no_transaction(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path, FrozenClock(0.0))
    with sqlite3.connect(path) as other:
        other.execute("DROP TABLE entries")

    async def run() -> None:
        with pytest.raises(StoreUnavailableError):
            await store.take_token("rl", "k", rate=1.0, burst=1)
        assert not store._db.in_transaction and not store._fast.in_transaction
        await store.close()

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


PASSWORD = "s3cr3t-pw"
UNKNOWN = "unknown state backend {!r}: use 'memory', 'sqlite:///path' or 'redis://host:port/db'"
INVALID = "invalid Redis URL: "
SCHEME = INVALID + "it must start with redis://, rediss://, valkey:// or valkeys://"
PORT = INVALID + "the port must be a number from 1 to 65535 (got {!r})"
PORT_TEXT = INVALID + (
    "the port must be a number from 1 to 65535 (got text that is not a number; "
    "if it is a password, the '@host' after it is missing)"
)
DB = INVALID + "the database must be a number, as in redis://host:6379/0 (got {!r})"
NO_HOST = INVALID + "it names no host (as in redis://host:6379/0)"
OPTIONS = INVALID + "options after '?' or '#' are not supported"
ENCODE = INVALID + "percent-encode '/', '?', '#' and '@' in the user name and password"
USER_ALONE = INVALID + (
    "a user name needs a password (redis://user:password@host); "
    "for a password alone write redis://:password@host"
)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ("memcached://h:11211", UNKNOWN.format("memcached://h:11211")),
        (f"redis+tls://:{PASSWORD}@h:6379", UNKNOWN.format("redis+tls://***@h:6379")),
        (f"Redis://:{PASSWORD}@h", UNKNOWN.format("Redis://***@h")),
        (f":{PASSWORD}@h:6379", UNKNOWN.format("***@h:6379")),
        ("redis", SCHEME),
        (f"redis://:{PASSWORD}@h:99999/0", PORT.format("99999")),
        ("redis://h:0", PORT.format("0")),
        ("valkey://h:port/0", PORT_TEXT),
        ("redis://[::1]:x/0", PORT_TEXT),
        (f"redis://alice:{PASSWORD}", PORT_TEXT),
        (f"redis://:{PASSWORD}@h:6379/db0", DB.format("db0")),
        ("rediss://h:6379/0/1", DB.format("0/1")),
        ("redis://h/-1", DB.format("-1")),
        (f"redis://:{PASSWORD}@:6379/0", NO_HOST),
        ("redis:///0", NO_HOST),
        ("redis://h:6379/0?ssl_cert_reqs=none", OPTIONS),
        ("redis://:s3cr/3t-pw@h:6379/0", ENCODE),
        ("redis://:s3cr?3t-pw@h:6379/0", ENCODE),
        ("redis://alice@h:6379", USER_ALONE),
    ],
)
def test_bad_state_urls_are_refused_with_the_reason_and_without_the_password(
    state: str, message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        open_store(state, FrozenClock(0))
    assert str(caught.value) == message
    assert "s3cr" not in str(caught.value)


@pytest.mark.parametrize(
    ("state", "shown"),
    [
        ("redis://h", "redis://h:6379/0"),
        ("redis://h:7000/3", "redis://h:7000/3"),
        ("valkey://h/", "valkey://h:6379/0"),
        (f"rediss://alice:{PASSWORD}@cache:6380/1", "rediss://alice:***@cache:6380/1"),
        (f"valkeys://:{PASSWORD}@[::1]:6379/0", "valkeys://:***@[::1]:6379/0"),
        ("redis://:p%40ss%2Fw%3Ard@h", "redis://:***@h:6379/0"),
    ],
)
def test_redis_urls_open_a_store_that_shows_no_password(state: str, shown: str) -> None:
    store = open_store(state, FrozenClock(0), key_prefix="b1:")
    assert isinstance(store, RedisStore)
    assert repr(store) == str(store) == f"RedisStore({shown!r}, key_prefix='b1:')"
    asyncio.run(store.close())


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("timeout", 0.0, "timeout must be a positive number of seconds (got 0.0)"),
        (
            "connect_timeout",
            math.inf,
            "connect_timeout must be a positive number of seconds (got inf)",
        ),
        ("max_connections", 0, "max_connections must be at least 1 (got 0)"),
    ],
)
def test_unbounded_redis_settings_are_refused(option: str, value: float, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        RedisStore("redis://h", **{option: value})
    assert str(caught.value) == message


def test_sqlite_waits_for_another_process_lock_off_the_event_loop(tmp_path: Path) -> None:
    """A write lock held elsewhere: the call waits in a thread (the loop keeps running) and
    then succeeds, instead of failing at once as the loop's own connection would."""
    path = tmp_path / "state.db"
    store = SqliteStore(path, FrozenClock(0.0))
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    threading.Timer(0.3, other.commit).start()

    async def run() -> tuple[float, float, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        started = time.monotonic()
        wait = await store.take_token("rl", "k", rate=1.0, burst=1)
        elapsed = time.monotonic() - started
        ticker.cancel()
        assert await store.claim("n", "k", 60) is True  # and the loop's path is back
        await store.close()
        return wait, elapsed, ticks

    wait, elapsed, ticks = asyncio.run(run())
    other.close()
    assert wait == 0.0
    assert elapsed >= 0.25
    assert ticks >= 10  # the event loop ran while the call waited for the lock


def test_sqlite_purges_expired_rows_every_thousand_writes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    clock = FrozenClock(0.0)
    store = SqliteStore(path, clock)

    async def run() -> None:
        for i in range(500):
            assert await store.claim("old", str(i), 10)
        clock.advance(11)  # those 500 have expired
        for i in range(500):
            await store.put("new", str(i), b"v", 60)
        await store.get("new", "0")  # the 1,000th write was the last one: upkeep is due
        await store.claim("new", "x", 60)
        await store.close()

    asyncio.run(run())
    with sqlite3.connect(path) as check:
        namespaces = dict(check.execute("SELECT ns, count(*) FROM entries GROUP BY ns"))
    assert namespaces == {"new": 501}


def test_sqlite_wal_stays_bounded_without_automatic_checkpoints(tmp_path: Path) -> None:
    """Automatic checkpoints are off (they would fsync on the event loop); the upkeep's own
    keep the write-ahead log from growing with every write."""
    path = tmp_path / "state.db"
    store = SqliteStore(path, FrozenClock(0.0))

    wal = path.with_name(path.name + "-wal")

    async def run() -> list[int]:
        sizes = []
        for i in range(6000):
            await store.put("n", str(i), b"v" * 64, 60)
            if i + 1 in (2000, 6000):
                sizes.append(wal.stat().st_size)  # closing would remove the file
        await store.close()
        return sizes

    after_2000, after_6000 = asyncio.run(run())
    # Checkpointed, the log is reused from its start: its size stops growing (without the
    # upkeep's checkpoints it triples from 2,000 to 6,000 writes).
    assert after_6000 <= after_2000 * 1.25, (after_2000, after_6000)


def test_sqlite_calls_stay_on_the_event_loop_under_concurrency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """32 concurrent callers, 3,000 writes: only the three upkeeps hop to a thread (a hop
    costs ~100 µs; a fallback that made the next calls fall back too once cost 4x)."""
    hops: list[str] = []
    real = asyncio.to_thread

    async def counted(call: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(call, "func", call).__name__)
        return await real(call, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    store = SqliteStore(tmp_path / "state.db", FrozenClock(0.0))

    async def caller(n: int) -> None:
        for i in range(94):
            await store.take_token("rl", f"{n}-{i % 3}", rate=1e6, burst=10**6)
            await asyncio.sleep(0)

    async def run() -> None:
        await asyncio.gather(*(caller(n) for n in range(32)))
        await store.close()

    asyncio.run(run())
    assert hops == ["_upkeep"] * 3
