"""The Store port: what the broker must remember between requests, and on which nodes.

Used TOTP codes today; replay caches and browser sessions later. Every write that guards
against reuse goes through :meth:`Store.claim`, which is atomic in every backend so two
workers (or two nodes sharing a backend) can never both accept the same one-time value.
"""

from __future__ import annotations

from pathlib import Path

from broker.clock import Clock
from broker.store.memory import MemoryStore
from broker.store.port import Store, StoreFullError, StoreUnavailableError
from broker.store.sqlite import SqliteStore


def open_store(state: str, clock: Clock) -> Store:
    """Build the backend named by the config's ``state`` value (``memory`` or ``sqlite:///path``)."""
    if state == "memory":
        return MemoryStore(clock)
    if state.startswith("sqlite:///"):
        return SqliteStore(Path(state.removeprefix("sqlite:///")), clock)
    raise ValueError(f"unknown state backend {state!r}: use 'memory' or 'sqlite:///path'")


__all__ = [
    "MemoryStore",
    "SqliteStore",
    "Store",
    "StoreFullError",
    "StoreUnavailableError",
    "open_store",
]
