"""SQLite Store: survives restarts and is shared by every worker process on one host.

``claim`` is a single ``INSERT ... ON CONFLICT ... WHERE expired`` statement, so the check
and the write are one atomic step even with several processes on the same file (WAL mode).
``take_token`` (a rate-limit bucket) reads and writes its row inside one ``BEGIN IMMEDIATE``
transaction, which holds the file's write lock from the read on, so two processes cannot
both spend the bucket's last token. The row's ``expires`` *is* the bucket's state (GCRA's
theoretical arrival time), so the purge below also removes idle buckets.
Calls run in a worker thread so a slow disk never blocks the event loop. SQLite's own
operational failures (file locked past the busy timeout, disk full, unwritable) surface as
:class:`StoreUnavailableError`, like any other backend's I/O failures.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from broker.clock import Clock
from broker.store.port import StoreUnavailableError

_P = ParamSpec("_P")
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    ns TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_expires ON entries (expires);
"""

_CLAIM = """
INSERT INTO entries (ns, key, value, expires) VALUES (?, ?, x'', ?)
ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, expires = excluded.expires
WHERE entries.expires <= ?
"""

_PUT = """
INSERT INTO entries (ns, key, value, expires) VALUES (?, ?, ?, ?)
ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, expires = excluded.expires
"""


_EPSILON = 1e-6
"""Seconds of float rounding forgiven when a bucket is exactly at its burst."""


class SqliteStore:
    """One connection guarded by a lock; statements are tiny, so contention is negligible."""

    def __init__(self, path: Path, clock: Clock) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._writes = 0

    def _claim(self, ns: str, key: str, ttl: float) -> bool:
        now = self._clock.time()
        with self._lock:
            cur = self._db.execute(_CLAIM, (ns, key, now + ttl, now))
            self._maybe_purge(now)
            return cur.rowcount == 1

    def _get(self, ns: str, key: str) -> bytes | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM entries WHERE ns = ? AND key = ? AND expires > ?",
                (ns, key, self._clock.time()),
            ).fetchone()
        return None if row is None else bytes(row[0])

    def _put(self, ns: str, key: str, value: bytes, ttl: float) -> None:
        now = self._clock.time()
        with self._lock:
            self._db.execute(_PUT, (ns, key, value, now + ttl))
            self._maybe_purge(now)

    def _delete(self, ns: str, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM entries WHERE ns = ? AND key = ?", (ns, key))

    def _take_token(self, ns: str, key: str, rate: float, burst: int) -> float:
        now = self._clock.time()
        interval = 1.0 / rate
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT expires FROM entries WHERE ns = ? AND key = ?", (ns, key)
                ).fetchone()
                tat = max(float(row[0]), now) if row is not None else now
                if tat > now + burst * interval + _EPSILON:  # the clock stepped back: full
                    tat = now
                wait = tat - now - (burst - 1) * interval
                if wait > _EPSILON:
                    self._db.execute("COMMIT")
                    return wait
                self._db.execute(_PUT, (ns, key, b"", tat + interval))
                self._maybe_purge(now)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back already
                    self._db.execute("ROLLBACK")
                raise
        return 0.0

    def _maybe_purge(self, now: float) -> None:
        """Every 1000 writes, drop what has expired, so the file does not grow forever."""
        self._writes += 1
        if self._writes % 1000 == 0:
            self._db.execute("DELETE FROM entries WHERE expires <= ?", (now,))

    async def _in_thread(self, call: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return await asyncio.to_thread(call, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(f"SQLite store {self._path} failed: {exc}") from exc

    async def claim(self, namespace: str, key: str, ttl: float) -> bool:
        return await self._in_thread(self._claim, namespace, key, ttl)

    async def get(self, namespace: str, key: str) -> bytes | None:
        return await self._in_thread(self._get, namespace, key)

    async def put(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        await self._in_thread(self._put, namespace, key, value, ttl)

    async def delete(self, namespace: str, key: str) -> None:
        await self._in_thread(self._delete, namespace, key)

    async def take_token(self, namespace: str, key: str, *, rate: float, burst: int) -> float:
        return await self._in_thread(self._take_token, namespace, key, rate, burst)

    async def close(self) -> None:
        with self._lock:
            self._db.close()
