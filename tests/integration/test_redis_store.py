"""The Redis store against a real ``redis-server``: sharing, the keys it writes, failures.

Beyond the contract every backend meets (tests/unit/test_store.py), Redis is what several
brokers share over the network, so these tests check what only it can get wrong: prefixes
that keep brokers apart, the key and TTL actually written, and every way the server can
fail (gone, hung, out of memory, read-only, wrong password) arriving as
``StoreUnavailableError`` within the configured timeout, with no password in sight, and
the same store working again once the server is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from urllib.parse import quote

import pytest
import redis

from broker.store import RedisStore, StoreUnavailableError
from tests.redis_server import RedisServer, running_redis

PASSWORD = "pw-d9f1@/:?#x"
"""Holds every character a URL must percent-encode, to prove it is decoded and masked."""
BOUND = 2.0
"""Seconds any failing call may take at most (the timeouts here are far below it)."""


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A server of this test's own, free to stop, pause or reconfigure."""
    with running_redis() as server:
        yield server


@pytest.fixture(scope="module")
def locked_redis() -> Iterator[RedisServer]:
    """A server that requires a password (``requirepass``)."""
    with running_redis(password=PASSWORD) as server:
        yield server


def _prefix() -> str:
    return f"test-{uuid.uuid4().hex}:"


def _raw(server: RedisServer) -> redis.Redis:
    """A plain redis-py client, to look at or change the server behind the store's back."""
    return redis.Redis(host="127.0.0.1", port=server.port, password=server.password)


Operation = Callable[[RedisStore], Awaitable[object]]
OPERATIONS: list[tuple[str, Operation]] = [
    ("claim", lambda store: store.claim("n", "k", 60)),
    ("get", lambda store: store.get("n", "k")),
    ("put", lambda store: store.put("n", "k", b"v", 60)),
    ("delete", lambda store: store.delete("n", "k")),
]


async def _each_fails(store: RedisStore, message: str) -> list[float]:
    """Run every operation, expecting each to fail with ``message``; their durations."""
    elapsed = []
    for name, operation in OPERATIONS:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError) as caught:
            await operation(store)
        elapsed.append(time.monotonic() - started)
        assert str(caught.value).startswith(message), (name, str(caught.value))
    return elapsed


def test_same_prefix_shares_state_and_another_prefix_does_not(redis_server: RedisServer) -> None:
    prefix = _prefix()

    async def run() -> None:
        first = RedisStore(redis_server.url, key_prefix=prefix)
        same = RedisStore(redis_server.url, key_prefix=prefix)
        other = RedisStore(redis_server.url, key_prefix=_prefix())
        assert await first.claim("mfa", "dev#1", 60) is True
        assert await same.claim("mfa", "dev#1", 60) is False
        assert await other.claim("mfa", "dev#1", 60) is True
        await first.put("s", "k", b"v", 60)
        assert await same.get("s", "k") == b"v"
        assert await other.get("s", "k") is None
        for store in (first, same, other):
            await store.close()

    asyncio.run(run())


def test_keys_and_ttls_are_written_as_documented(redis_server: RedisServer) -> None:
    raw = _raw(redis_server)

    async def run() -> None:
        store = RedisStore(redis_server.url, key_prefix="p1:")
        await store.put("mfa", "dev#1", b"v", 30)
        await store.put("a:b\\", "c:d", b"v", 30)
        assert await store.claim("cut", "short", 0.0001) is True  # 1 ms: not refused as PX 0
        await asyncio.sleep(0.01)
        assert await store.claim("cut", "short", 0.0001) is True  # and not held for a second
        await asyncio.sleep(0.01)  # gone again before the keys are listed
        await store.put("cut", "long", b"v", 1.5)  # milliseconds: EX would say 1 or 2 s
        await store.close()

    asyncio.run(run())
    assert sorted(raw.keys("p1:*")) == [b"p1:a\\:b\\\\:c:d", b"p1:cut:long", b"p1:mfa:dev#1"]
    assert 29_000 < raw.pttl("p1:mfa:dev#1") <= 30_000
    assert 1400 < raw.pttl("p1:cut:long") <= 1500
    assert raw.get("p1:mfa:dev#1") == b"v"
    raw.close()


def test_a_stopped_server_fails_every_call_at_once_and_its_return_heals_the_store(
    own_redis: RedisServer,
) -> None:
    async def run() -> None:
        store = RedisStore(own_redis.url, key_prefix=_prefix())
        assert await store.claim("mfa", "dev#1", 60) is True
        own_redis.stop()
        elapsed = await _each_fails(
            store,
            f"Redis at 127.0.0.1:{own_redis.port} cannot be reached: ConnectionError: ",
        )
        assert max(elapsed) < BOUND
        own_redis.start()  # same port; the data is gone (nothing is persisted)
        assert await store.claim("mfa", "dev#1", 60) is True
        assert await store.claim("mfa", "dev#1", 60) is False
        await store.close()

    asyncio.run(run())


def test_a_restart_between_calls_costs_no_failed_call(own_redis: RedisServer) -> None:
    """Pooled connections to the old process are dead: they are replaced, no call fails."""

    async def run() -> None:
        store = RedisStore(own_redis.url, key_prefix=_prefix())
        await asyncio.gather(*(store.put("n", str(i), b"v", 60) for i in range(5)))
        own_redis.stop()
        own_redis.start()
        assert await asyncio.gather(*(store.get("n", str(i)) for i in range(5))) == [None] * 5
        assert await store.claim("n", "k", 60) is True
        await store.close()

    asyncio.run(run())


def test_a_hung_server_fails_every_call_within_the_timeout(own_redis: RedisServer) -> None:
    """SIGSTOP: connections are still accepted, nothing answers; only the timeout saves us."""

    async def run() -> None:
        store = RedisStore(own_redis.url, key_prefix=_prefix(), timeout=0.3, connect_timeout=0.3)
        assert await store.claim("mfa", "dev#1", 60) is True
        own_redis.pause()
        try:
            elapsed = await _each_fails(
                store, f"Redis at 127.0.0.1:{own_redis.port} did not answer in time: TimeoutError: "
            )
        finally:
            own_redis.resume()
        assert min(elapsed) > 0.25 and max(elapsed) < BOUND
        assert await store.claim("mfa", "dev#1", 60) is False  # same server, its data kept
        await store.close()

    asyncio.run(run())


def test_out_of_memory_and_read_only_are_store_unavailable(own_redis: RedisServer) -> None:
    raw = _raw(own_redis)
    refused = f"^Redis at 127.0.0.1:{own_redis.port} refused the command: "
    out_of_memory = refused + "OutOfMemoryError: command not allowed when used memory"
    read_only = refused + "ReadOnlyError: You can't write against a read only replica"

    async def run() -> None:
        store = RedisStore(own_redis.url, key_prefix=_prefix())
        await store.put("n", "kept", b"v", 60)
        raw.config_set("maxmemory", "1")  # every write now exceeds it; reads still work
        with pytest.raises(StoreUnavailableError, match=out_of_memory):
            await store.claim("n", "k", 60)
        with pytest.raises(StoreUnavailableError, match=out_of_memory):
            await store.put("n", "k", b"v", 60)
        assert await store.get("n", "kept") == b"v"
        raw.config_set("maxmemory", "0")
        raw.replicaof("127.0.0.1", "1")  # a replica of nothing: read-only
        with pytest.raises(StoreUnavailableError, match=read_only):
            await store.claim("n", "k", 60)
        raw.replicaof("NO", "ONE")
        assert await store.claim("n", "k", 60) is True
        await store.close()

    asyncio.run(run())
    raw.close()


def test_the_right_password_works_and_is_never_shown(locked_redis: RedisServer) -> None:
    assert "%40" in locked_redis.url  # the URL carries it percent-encoded

    async def run() -> None:
        store = RedisStore(locked_redis.url, key_prefix="p2:")
        assert await store.claim("mfa", f"dev#{uuid.uuid4()}", 60) is True
        shown = f"RedisStore('redis://:***@127.0.0.1:{locked_redis.port}/0', key_prefix='p2:')"
        assert repr(store) == str(store) == shown
        await store.close()

    asyncio.run(run())


WRONG = "wrong-password"
NEAR_MISS = PASSWORD[:-1]
BAD_PAIR = "AuthenticationError: invalid username-password pair or user is disabled."


@pytest.mark.parametrize(
    ("userinfo", "detail"),
    [
        (f":{WRONG}@", BAD_PAIR),
        ("", "AuthenticationError: Authentication required."),
        (f"default:{quote(NEAR_MISS, safe='')}@", BAD_PAIR),
    ],
)
def test_wrong_credentials_are_store_unavailable_without_the_password(
    locked_redis: RedisServer, userinfo: str, detail: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://{userinfo}127.0.0.1:{locked_redis.port}/0"

    async def run() -> None:
        store = RedisStore(url)
        with pytest.raises(StoreUnavailableError) as caught:
            await store.get("n", "k")
        assert str(caught.value) == (
            f"Redis at 127.0.0.1:{locked_redis.port} refused the credentials: {detail}"
        )
        told = [repr(store), str(store)]
        error: BaseException | None = caught.value
        while error is not None:  # the whole chain a traceback in a log would show
            told += [str(error), repr(error)]
            error = error.__cause__ or error.__context__
        await store.close()
        told.append(caplog.text)
        for secret in (WRONG, NEAR_MISS, quote(NEAR_MISS, safe="")):
            assert not any(secret in text for text in told)

    with caplog.at_level(logging.DEBUG):
        asyncio.run(run())
