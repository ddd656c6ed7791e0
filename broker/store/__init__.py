"""The Store port: what the broker must remember between requests, and on which nodes.

Used TOTP codes, replay markers, browser and CLI sessions, rate-limit buckets. Every write
that guards against reuse goes through :meth:`Store.claim`, which is atomic in every backend
so two workers (or two nodes sharing a backend) can never both accept the same one-time
value; :meth:`Store.take_token` is the same for a rate-limit bucket's last token.
"""

from __future__ import annotations

from pathlib import Path

from broker.clock import Clock
from broker.config import BrokerConfig
from broker.config.state_url import masked
from broker.store.memory import MemoryStore
from broker.store.metered import MeteredStore, backend_name
from broker.store.port import STORE_FAILURES, Store, StoreFullError, StoreUnavailableError
from broker.store.redis import DEFAULT_KEY_PREFIX, SCHEMES, RedisStore
from broker.store.sqlite import SqliteStore


def open_store(
    state: str,
    clock: Clock,
    *,
    key_prefix: str = DEFAULT_KEY_PREFIX,
    connect_timeout: float = 0.5,
    timeout: float = 0.5,
    max_connections: int = 50,
    tls_ca_file: str | None = None,
) -> Store:
    """Build the backend named by the config's ``state`` value.

    ``memory``, ``sqlite:///path``, or a Redis URL: ``redis://[user:password@]host:port/db``,
    ``rediss://`` for TLS, ``valkey://`` and ``valkeys://`` alike. ``clock`` drives expiry in
    memory and SQLite; Redis expires keys by its own clock. The keyword options are Redis's
    only (see :class:`RedisStore`): ``key_prefix`` lets several brokers share one server.
    """
    if state == "memory":
        return MemoryStore(clock)
    if state.startswith("sqlite:///"):
        return SqliteStore(Path(state.removeprefix("sqlite:///")), clock)
    if state.partition("://")[0] in SCHEMES:
        return RedisStore(
            state,
            key_prefix=key_prefix,
            connect_timeout=connect_timeout,
            timeout=timeout,
            max_connections=max_connections,
            tls_ca_file=tls_ca_file,
        )
    raise ValueError(
        f"unknown state backend {masked(state)!r}: "
        "use 'memory', 'sqlite:///path' or 'redis://host:port/db'"
    )


def open_configured_store(config: BrokerConfig, clock: Clock) -> Store:
    """The backend ``config.state`` names, with the ``redis:`` section's options."""
    redis = config.redis
    return open_store(
        config.state,
        clock,
        key_prefix=redis.key_prefix,
        connect_timeout=redis.connect_timeout_seconds,
        timeout=redis.timeout_seconds,
        max_connections=redis.max_connections,
        tls_ca_file=redis.tls_ca_file,
    )


__all__ = [
    "DEFAULT_KEY_PREFIX",
    "STORE_FAILURES",
    "MemoryStore",
    "MeteredStore",
    "RedisStore",
    "SqliteStore",
    "Store",
    "StoreFullError",
    "StoreUnavailableError",
    "backend_name",
    "open_configured_store",
    "open_store",
]
