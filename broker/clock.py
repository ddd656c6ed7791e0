"""Time as an injected port: nothing in the broker reads the system clock directly.

Tests pass a :class:`FrozenClock` so expiry, skew and TOTP windows are exact.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Protocol


class Clock(Protocol):
    """Source of the current time, as POSIX seconds."""

    def time(self) -> float: ...


class SystemClock:
    """The real wall clock."""

    def time(self) -> float:
        return time.time()


class FrozenClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, start: float) -> None:
        self._now = start

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def set(self, now: float) -> None:
        self._now = now


def utc(ts: float) -> datetime:
    """A POSIX timestamp as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, tz=UTC)


def iso8601(ts: float) -> str:
    """AWS's timestamp spelling on the wire: ``2026-11-28T20:00:00Z`` (whole seconds)."""
    return _iso8601_second(int(ts))


@lru_cache(maxsize=64)
def _iso8601_second(second: int) -> str:
    """Cached per whole second: every request formats "now" and a near-future expiry."""
    return utc(second).strftime("%Y-%m-%dT%H:%M:%SZ")
