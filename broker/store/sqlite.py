"""SQLite Store: survives restarts and is shared by every worker process on one host.

``claim`` is a single ``INSERT ... ON CONFLICT ... WHERE expired`` statement, so the check
and the write are one atomic step even with several processes on the same file (WAL mode).
``take_token`` (a rate-limit bucket) reads and writes its row inside one ``BEGIN IMMEDIATE``
transaction, which holds the file's write lock from the read on, so two processes cannot
both spend the bucket's last token. The row's ``expires`` *is* the bucket's state (GCRA's
theoretical arrival time), so the purge below also removes idle buckets.
**Where the calls run.** A statement takes ~15 µs; handing it to a worker thread and back
costs ~100 µs more (measured: ``asyncio.to_thread`` of nothing, on the bench machine), and
throttling spends two buckets on every STS call. So each call first runs on the event loop
on a connection that never waits (``busy_timeout`` 0): WAL mode with ``synchronous=NORMAL``
commits without an fsync, so it touches only the OS page cache. Only what could block runs
in a worker thread, on a second connection that waits up to 10 s: a call that still finds
the file's write lock held after two short pauses (another process in a long write), and
the upkeep every 1,000 writes (the purge of expired rows and the WAL checkpoint, the one
step that fsyncs; automatic checkpoints are off for that reason). SQLite's own operational
failures (file locked past the busy timeout, disk full, unwritable) surface as
:class:`StoreUnavailableError`, like any other backend's I/O failures.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

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


_UPKEEP_EVERY = 1000
"""Writes between two purges of expired rows and WAL checkpoints."""
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_INLINE_PAUSES = (0.0, 0.0005, 0.002)
"""Seconds slept on the loop before each attempt on the non-waiting connection."""


def _connect(path: Path, *, timeout: float) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=timeout)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run in the upkeep, in a thread
    return db


class SqliteStore:
    """Two connections, each behind its own lock (a connection serves one thread at a time).

    ``_fast`` runs on the event loop and never waits for a lock; ``_db`` runs in worker
    threads and may wait (module doc). Separate locks matter: with one, every call that
    arrives while a thread holds it would go to a thread too, and under load they would
    keep each other there.
    """

    def __init__(self, path: Path, clock: Clock) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._fast_lock = threading.Lock()
        self._db = _connect(path, timeout=10)
        self._db.executescript(_SCHEMA)
        self._fast = _connect(path, timeout=0)
        self._writes = 0

    def _claim(self, db: sqlite3.Connection, ns: str, key: str, ttl: float) -> bool:
        now = self._clock.time()
        cur = db.execute(_CLAIM, (ns, key, now + ttl, now))
        self._writes += 1
        return cur.rowcount == 1

    def _get(self, db: sqlite3.Connection, ns: str, key: str) -> bytes | None:
        row = db.execute(
            "SELECT value FROM entries WHERE ns = ? AND key = ? AND expires > ?",
            (ns, key, self._clock.time()),
        ).fetchone()
        return None if row is None else bytes(row[0])

    def _put(self, db: sqlite3.Connection, ns: str, key: str, value: bytes, ttl: float) -> None:
        db.execute(_PUT, (ns, key, value, self._clock.time() + ttl))
        self._writes += 1

    def _delete(self, db: sqlite3.Connection, ns: str, key: str) -> None:
        db.execute("DELETE FROM entries WHERE ns = ? AND key = ?", (ns, key))

    def _take_token(
        self, db: sqlite3.Connection, ns: str, key: str, rate: float, burst: int
    ) -> float:
        now = self._clock.time()
        interval = 1.0 / rate
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT expires FROM entries WHERE ns = ? AND key = ?", (ns, key)
            ).fetchone()
            tat = max(float(row[0]), now) if row is not None else now
            if tat > now + burst * interval + _EPSILON:  # the clock stepped back: full
                tat = now
            wait = tat - now - (burst - 1) * interval
            if wait > _EPSILON:
                db.execute("COMMIT")
                return wait
            db.execute(_PUT, (ns, key, b"", tat + interval))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite may have rolled back already
                db.execute("ROLLBACK")
            raise
        self._writes += 1
        return 0.0

    def _upkeep(self) -> None:
        """Drop what has expired, so the file does not grow forever, and checkpoint the WAL."""
        with self._lock:
            self._db.execute("DELETE FROM entries WHERE expires <= ?", (self._clock.time(),))
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _in_thread(
        self,
        call: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """``call`` on the connection that waits for locks (in a worker thread)."""
        with self._lock:
            return call(self._db, *args, **kwargs)

    async def _run(
        self,
        call: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """``call`` on the event loop if nothing makes it wait, else in a thread.

        A lock held briefly (usually this store's own thread finishing a write) is worth
        two short pauses on the loop before the thread hop: falling back at once would put
        the next calls in the same spot, and under load they would keep each other there.
        """
        try:
            if self._writes >= _UPKEEP_EVERY:
                self._writes = 0
                await asyncio.to_thread(self._upkeep)
            for pause in _INLINE_PAUSES:
                if pause:
                    await asyncio.sleep(pause)
                if not self._fast_lock.acquire(blocking=False):
                    continue
                try:
                    return call(self._fast, *args, **kwargs)
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode & 0xFF not in _BUSY_CODES:
                        raise
                finally:
                    self._fast_lock.release()
            # Still locked (another process in a long write): wait for it off the loop.
            waiting = functools.partial(self._in_thread, call, *args, **kwargs)
            return await asyncio.to_thread(waiting)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(f"SQLite store {self._path} failed: {exc}") from exc

    async def claim(self, namespace: str, key: str, ttl: float) -> bool:
        return await self._run(self._claim, namespace, key, ttl)

    async def get(self, namespace: str, key: str) -> bytes | None:
        return await self._run(self._get, namespace, key)

    async def put(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        await self._run(self._put, namespace, key, value, ttl)

    async def delete(self, namespace: str, key: str) -> None:
        await self._run(self._delete, namespace, key)

    async def take_token(self, namespace: str, key: str, *, rate: float, burst: int) -> float:
        return await self._run(self._take_token, namespace, key, rate, burst)

    async def close(self) -> None:
        with self._fast_lock:
            self._fast.close()
        with self._lock:
            self._db.close()
