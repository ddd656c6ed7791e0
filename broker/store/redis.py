"""Redis (or Valkey) Store: one memory shared by every broker node that points at the server.

Replay markers only protect a cluster if every node sees them, which the in-process and
SQLite stores cannot give across hosts. Each operation here is one command and one round
trip, and nothing is read, decided on and written back across round trips: ``claim`` is
``SET key "" NX PX ttl``, which the server checks and writes in one step, so two nodes can
never both be told True while the key lives.

**Expiry is Redis's clock.** The memory and SQLite stores take the broker's :class:`Clock`;
this one does not, because ``PX`` makes the server drop a key when its own timer runs out.
A test that moves an injected clock therefore expires nothing here: expiry is tested with
short real TTLs. A TTL is sent in whole milliseconds, rounded up (it is a minimum lifetime:
rounding down could end a replay marker early) and at least 1 ms (Redis refuses ``PX 0``).

**Rate-limit buckets** (``take_token``) are one Lua script (GCRA: one number per bucket,
its theoretical arrival time in microseconds, with a ``PX`` that ends when the bucket would
be full again). Redis runs a script atomically, so read, decide and write are one step for
every node; the script reads Redis's own ``TIME``, so nodes whose clocks disagree still
share one bucket exactly. It is sent as ``EVALSHA`` and loaded (``SCRIPT LOAD``) only when
the server does not know it yet, e.g. after a restart.

**Keys** are ``{key_prefix}{namespace}:{key}``. The prefix lets several brokers share one
Redis; choose prefixes none of which starts another. In the namespace, ``\\`` and ``:`` are
backslash-escaped, so the first bare ``:`` after the prefix always ends it and
``("a:b", "c")`` can never meet ``("a", "b:c")``. The broker's namespaces hold neither
character, so their keys read as written; the key comes last and needs no escaping.

**Failures** of any kind (refused or dropped connection, timeout, ``OOM``, ``READONLY``,
wrong credentials) become :class:`StoreUnavailableError` naming host:port and what went
wrong, never the password, so callers can fail closed on one type.

**Bounded and self-healing.** Connect and reply timeouts bound every call (and the wait for
a pooled connection), so a dead or hung Redis costs a request a bounded wait, never a hang.
A pooled connection that died in between (say Redis restarted) is replaced without failing
the call: the pool checks a connection as it hands it out, and a command that fails with a
connection error is retried once, at once, on a fresh connection. That retry is safe for
``claim``: if the first ``SET`` did land, the retry answers False, a refusal and never a
second acceptance; for ``take_token`` it can at worst take a second token (stricter, never
looser). Timeouts are not retried: a slow Redis would only be asked twice and
the wait doubled. There is no periodic ``PING`` (``health_check_interval``), since the
hand-out check and the retry already catch dead connections without an extra round trip.
When Redis comes back the next call simply connects: the broker needs no restart.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from broker.config.state_url import REDIS_SCHEMES, parse_redis_url
from broker.store.port import StoreUnavailableError

DEFAULT_KEY_PREFIX = "sts-broker:"
SCHEMES = REDIS_SCHEMES
"""URL schemes this store opens (their grammar is the config's: :mod:`broker.config.state_url`)."""

# Most specific first: AuthenticationError is a RedisConnectionError.
_WHAT_WENT_WRONG: tuple[tuple[type[RedisError], str], ...] = (
    (AuthenticationError, "refused the credentials"),
    (RedisTimeoutError, "did not answer in time"),
    (RedisConnectionError, "cannot be reached"),
    (ResponseError, "refused the command"),
)


_TAKE_TOKEN = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = now
local stored = tonumber(redis.call('GET', KEYS[1]) or '')
-- further ahead than a whole burst: Redis's clock stepped back, and the bucket counts as full
if stored and stored > now and stored <= now + tolerance + interval then tat = stored end
local wait = tat - now - tolerance
if wait > 0 then return wait end
local later = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', later), 'PX', math.ceil((later - now) / 1000))
return 0
"""
"""KEYS[1] the bucket; ARGV µs per token, µs of burst tolerance; returns µs to wait (0: taken)."""


def _escape(namespace: str) -> str:
    return namespace.replace("\\", "\\\\").replace(":", "\\:")


def _milliseconds(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))


class RedisStore:
    """A Store over a pool of connections to one Redis (or Valkey) server.

    ``url`` is ``redis://[user:password@]host[:port][/db]`` (``rediss://`` for TLS with the
    certificate and host name verified; ``valkey://`` and ``valkeys://`` mean the same).
    ``connect_timeout`` bounds opening a connection, ``timeout`` each reply and the wait for
    a free one of the ``max_connections`` pooled connections (all seconds). ``tls_ca_file``
    (PEM) replaces the system's CAs for verifying a TLS server (a private CA's Redis).
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        connect_timeout: float = 0.5,
        timeout: float = 0.5,
        max_connections: int = 50,
        tls_ca_file: str | None = None,
    ) -> None:
        for name, seconds in (("connect_timeout", connect_timeout), ("timeout", timeout)):
            if not (math.isfinite(seconds) and seconds > 0):
                raise ValueError(f"{name} must be a positive number of seconds (got {seconds!r})")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1 (got {max_connections!r})")
        self._address = address = parse_redis_url(url)
        if tls_ca_file is not None and not address.tls:
            raise ValueError("tls_ca_file needs a TLS URL (rediss:// or valkeys://)")
        self._prefix = key_prefix
        tls_options: dict[str, Any] = {"ssl_cert_reqs": "required", "ssl_check_hostname": True}
        if tls_ca_file is not None:
            tls_options["ssl_ca_certs"] = tls_ca_file
        self._pool = BlockingConnectionPool(
            max_connections=max_connections,
            timeout=timeout,
            connection_class=SSLConnection if address.tls else Connection,
            host=address.host,
            port=address.port,
            db=address.db,
            username=address.username,
            password=address.password,
            socket_connect_timeout=connect_timeout,
            socket_timeout=timeout,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
            retry_on_error=[RedisConnectionError],  # redis-py 5 retries only what is listed here
            health_check_interval=0,
            # RESP2 on every redis-py version: what these commands and the script need, spoken
            # by every Redis, Valkey and proxy, and it keeps the pool's hand-out check (which
            # redis-py skips for RESP3 connections with maintenance notifications).
            protocol=2,
            **(tls_options if address.tls else {}),
        )
        self._client = Redis(connection_pool=self._pool)
        self._take_token = self._client.register_script(_TAKE_TOKEN)

    def __repr__(self) -> str:
        return f"RedisStore({self._address.shown!r}, key_prefix={self._prefix!r})"

    def _key(self, namespace: str, key: str) -> str:
        return f"{self._prefix}{_escape(namespace)}:{key}"

    @contextmanager
    def _unavailable_on_error(self) -> Iterator[None]:
        try:
            yield
        except RedisError as exc:
            raise StoreUnavailableError(self._describe(exc)) from exc

    def _describe(self, exc: RedisError) -> str:
        what = next((text for kind, text in _WHAT_WENT_WRONG if isinstance(exc, kind)), "failed")
        detail = f"{type(exc).__name__}: {exc}"  # the class says OOM or READONLY, not the text
        password = self._address.password
        if password:
            detail = detail.replace(password, "***")
        return f"Redis at {self._address.where} {what}: {detail}"

    async def claim(self, namespace: str, key: str, ttl: float) -> bool:
        with self._unavailable_on_error():
            won = await self._client.set(
                self._key(namespace, key), b"", px=_milliseconds(ttl), nx=True
            )
        return bool(won)

    async def get(self, namespace: str, key: str) -> bytes | None:
        with self._unavailable_on_error():
            value = await self._client.get(self._key(namespace, key))
        return cast(bytes | None, value)  # the pool does not decode replies

    async def put(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        with self._unavailable_on_error():
            await self._client.set(self._key(namespace, key), value, px=_milliseconds(ttl))

    async def delete(self, namespace: str, key: str) -> None:
        with self._unavailable_on_error():
            await self._client.delete(self._key(namespace, key))

    async def take_token(self, namespace: str, key: str, *, rate: float, burst: int) -> float:
        interval = max(1, round(1_000_000 / rate))
        with self._unavailable_on_error():
            waited = await self._take_token(
                keys=[self._key(namespace, key)], args=[interval, (burst - 1) * interval]
            )
        return int(waited) / 1_000_000

    async def close(self) -> None:
        with self._unavailable_on_error():
            await self._pool.disconnect()
