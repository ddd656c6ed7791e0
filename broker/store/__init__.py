"""The Store port: what the broker must remember between requests, and on which nodes.

Used TOTP codes, replay markers, browser and CLI sessions, rate-limit buckets. Every write
that guards against reuse goes through :meth:`Store.claim`, which is atomic in every backend
so two workers (or two nodes sharing a backend) can never both accept the same one-time
value; :meth:`Store.take_token` is the same for a rate-limit bucket's last token.
"""

from __future__ import annotations

from pathlib import Path

from broker.clock import Clock
from broker.store.memory import MemoryStore
from broker.store.port import Store, StoreFullError, StoreUnavailableError
from broker.store.redis import DEFAULT_KEY_PREFIX, SCHEMES, RedisStore
from broker.store.sqlite import SqliteStore


def open_store(state: str, clock: Clock, *, key_prefix: str = DEFAULT_KEY_PREFIX) -> Store:
    """Build the backend named by the config's ``state`` value.

    ``memory``, ``sqlite:///path``, or a Redis URL: ``redis://[user:password@]host:port/db``,
    ``rediss://`` for TLS, ``valkey://`` and ``valkeys://`` alike. ``clock`` drives expiry in
    memory and SQLite; Redis expires keys by its own clock. ``key_prefix`` is used by Redis
    only, so that several brokers can share one server.
    """
    if state == "memory":
        return MemoryStore(clock)
    if state.startswith("sqlite:///"):
        return SqliteStore(Path(state.removeprefix("sqlite:///")), clock)
    if state.partition("://")[0] in SCHEMES:
        return RedisStore(state, key_prefix=key_prefix)
    raise ValueError(
        f"unknown state backend {_without_credentials(state)!r}: "
        "use 'memory', 'sqlite:///path' or 'redis://host:port/db'"
    )


def _without_credentials(state: str) -> str:
    """``state`` with anything before an ``@`` masked: a mistyped URL may still hold a password."""
    head, at, tail = state.rpartition("@")
    if not at:
        return state
    scheme, sep, _ = head.partition("://")
    return f"{scheme}://***@{tail}" if sep else f"***@{tail}"


__all__ = [
    "DEFAULT_KEY_PREFIX",
    "MemoryStore",
    "RedisStore",
    "SqliteStore",
    "Store",
    "StoreFullError",
    "StoreUnavailableError",
    "open_store",
]
