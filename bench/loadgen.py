"""Closed-loop HTTP load: C tasks replay a pool of pre-signed requests over keep-alive.

Signing is done with botocore before the timed window, so the window measures the server
and not botocore's client-side cost. For the same reason the default client is a minimal
HTTP/1.1 writer/reader on asyncio streams (``raw``): on a 2-CPU machine httpx's own CPU cost
per request (~0.6 ms, and worse with a shared pool under concurrency) is several times the
server's, so with httpx the *load generator* is what gets measured and every workload shows
the same req/s. ``--client httpx`` keeps the httpx.AsyncClient path for comparison.

SigV4 signatures stay valid for 15 minutes, far longer than a run, and STS does not refuse
a replayed signed request, so replaying the pool is a faithful workload. Each request
carries a distinct signed ``X-Bench-Seq`` header, so the pool holds distinct signatures, as
a fleet of real clients would send.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

FORM_CT = "application/x-www-form-urlencoded; charset=utf-8"
REGION = "us-east-1"
_SKIP_HEADERS = {"host", "content-length"}
"""httpx sets these itself from the URL and body, to the same values botocore signed."""


@dataclass(frozen=True)
class Prepared:
    """One signed request as bytes and headers, ready to replay."""

    body: bytes
    headers: tuple[tuple[str, str], ...]
    host: str
    """The ``Host`` value botocore signed (``127.0.0.1:port``)."""

    def wire(self) -> bytes:
        """The whole HTTP/1.1 request as it goes on the socket, serialised once up front."""
        lines = [
            "POST / HTTP/1.1",
            f"Host: {self.host}",
            f"Content-Length: {len(self.body)}",
            *(f"{k}: {v}" for k, v in self.headers),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def sign_pool(
    url: str,
    body: str,
    *,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None = None,
    size: int = 256,
) -> list[Prepared]:
    """``size`` distinct POST requests signed with SigV4 for ``url`` (STS, us-east-1)."""
    credentials = Credentials(access_key_id, secret_access_key, session_token)
    signer = SigV4Auth(credentials, "sts", REGION)
    pool: list[Prepared] = []
    for seq in range(size):
        request = AWSRequest(
            method="POST",
            url=url,
            data=body.encode(),
            headers={"Content-Type": FORM_CT, "X-Bench-Seq": str(seq)},
        )
        signer.add_auth(request)
        prepared = request.prepare()
        headers = tuple(
            (k, v.decode() if isinstance(v, bytes) else v)
            for k, v in prepared.headers.items()
            if k.lower() not in _SKIP_HEADERS
        )
        assert isinstance(prepared.body, bytes)
        pool.append(Prepared(body=prepared.body, headers=headers, host=urlsplit(url).netloc))
    return pool


def client(concurrency: int) -> httpx.AsyncClient:
    """HTTP/1.1 keep-alive, one connection per task, nothing retried or redirected."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(limits=limits, timeout=30.0, http2=False, follow_redirects=False)


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux ``/proc``), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    # After the ")" that closes comm, utime and stime are fields 12 and 13 (0-based).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class LoadResult:
    """What one timed window measured. Latencies are in nanoseconds."""

    requests: int
    errors: int
    seconds: float
    latencies_ns: list[int] = field(repr=False)
    server_cpu_s: float
    client_cpu_s: float
    first_error: str | None = None
    store_cpu_s: float = 0.0
    """CPU of the store's own process (a redis-server) over the window; 0 when none."""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile: a value some request actually took."""
        if not self.latencies_ns:
            return float("nan")
        ordered = sorted(self.latencies_ns)
        rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
        return ordered[rank - 1] / 1e6

    @property
    def server_cpu_us_per_req(self) -> float:
        """Server CPU per answered request: immune to the load generator being the limit."""
        return self.server_cpu_s / self.requests * 1e6 if self.requests else float("nan")


def merge_results(results: Sequence[LoadResult]) -> LoadResult:
    """Several windows of one workload as one: counts, times and CPU summed, latencies pooled.

    For alternating rounds (``run.py --rounds``): interleaving two workloads' windows
    exposes both to the same background load, so their ratio survives a shared machine.
    """
    if not results:
        raise ValueError("no windows to merge")
    return LoadResult(
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
        seconds=sum(r.seconds for r in results),
        latencies_ns=[ns for r in results for ns in r.latencies_ns],
        server_cpu_s=sum(r.server_cpu_s for r in results),
        client_cpu_s=sum(r.client_cpu_s for r in results),
        first_error=next((r.first_error for r in results if r.first_error), None),
        store_cpu_s=sum(r.store_cpu_s for r in results),
    )


class _Tally:
    """Counts and latencies shared by the tasks of one window (one event loop, no locks)."""

    def __init__(self, record: bool) -> None:
        self.record = record
        self.requests = 0
        self.errors = 0
        self.latencies: list[int] = []
        self.first_error: str | None = None

    def done(self, started_ns: int, problem: str | None) -> None:
        if self.record:
            self.latencies.append(time.perf_counter_ns() - started_ns)
        self.requests += 1
        if problem is not None:
            self.errors += 1
            if self.first_error is None:
                self.first_error = problem


def _check(status: int, body: bytes, expect: bytes) -> str | None:
    if status == 200 and expect in body:
        return None
    return f"HTTP {status}: {body[:300].decode(errors='replace')}"


async def _raw_worker(
    url: str,
    wires: Sequence[bytes],
    cursor: Iterator[int],
    expect: bytes,
    deadline: float,
    tally: _Tally,
) -> None:
    """One keep-alive connection; write a request, read exactly its answer, repeat."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        while time.perf_counter() < deadline:
            wire = wires[next(cursor) % len(wires)]
            started = time.perf_counter_ns()
            try:
                writer.write(wire)
                head = await reader.readuntil(b"\r\n\r\n")
                status_line, _, rest = head.partition(b"\r\n")
                status = int(status_line.split(b" ", 2)[1])
                length = None
                for line in rest.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length is None:
                    raise ValueError("answer without Content-Length")
                body = await reader.readexactly(length)
                problem = _check(status, body, expect)
            except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
                tally.done(started, f"{type(exc).__name__}: {exc}")
                return  # the connection is in an unknown state: this task stops
            tally.done(started, problem)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _httpx_worker(
    http: httpx.AsyncClient,
    url: str,
    pool: Sequence[Prepared],
    cursor: Iterator[int],
    expect: bytes,
    deadline: float,
    tally: _Tally,
) -> None:
    while time.perf_counter() < deadline:
        item = pool[next(cursor) % len(pool)]
        started = time.perf_counter_ns()
        try:
            response = await http.post(url, content=item.body, headers=item.headers)
            problem = _check(response.status_code, response.content, expect)
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        tally.done(started, problem)


async def _drive(
    kind: str,
    http: httpx.AsyncClient | None,
    url: str,
    pool: Sequence[Prepared],
    wires: Sequence[bytes],
    expect: bytes,
    concurrency: int,
    seconds: float,
    record: bool,
    cursor: Iterator[int],
) -> _Tally:
    """C tasks, each sending one request at a time until the deadline (closed loop).

    The tasks take pool entries from one shared ``cursor``, in order: a pool of one-time
    requests (single-use tokens) is then never sent twice while it lasts.
    """
    deadline = time.perf_counter() + seconds
    tally = _Tally(record)
    if kind == "raw":
        tasks = [
            _raw_worker(url, wires, cursor, expect, deadline, tally) for _ in range(concurrency)
        ]
    else:
        assert http is not None
        tasks = [
            _httpx_worker(http, url, pool, cursor, expect, deadline, tally)
            for _ in range(concurrency)
        ]
    await asyncio.gather(*tasks)
    return tally


async def run_load(
    url: str,
    pool: Sequence[Prepared],
    *,
    expect: bytes,
    concurrency: int,
    seconds: float,
    warmup: float,
    server_pid: int | Sequence[int],
    kind: str = "raw",
    store_pid: int | None = None,
    cursor: Iterator[int] | None = None,
) -> LoadResult:
    """Warm up (connections open, caches filled, not recorded), then one timed window.

    ``kind`` is ``raw`` (minimal asyncio client) or ``httpx`` (httpx.AsyncClient).
    ``server_pid`` may list several processes (a supervisor and its workers): their CPU is
    summed. ``store_pid`` (a redis-server) is measured apart. ``cursor`` carries the
    position in the pool over several calls (one-time pools); by default each call starts
    at the pool's beginning.
    """
    wires = [item.wire() for item in pool]
    pids = [server_pid] if isinstance(server_pid, int) else list(server_pid)
    cursor = cursor if cursor is not None else itertools.count()
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(client(concurrency)) if kind == "httpx" else None
        if warmup > 0:
            await _drive(kind, http, url, pool, wires, expect, concurrency, warmup, False, cursor)
        server_before = sum(map(proc_cpu_seconds, pids))
        store_before = proc_cpu_seconds(store_pid) if store_pid else 0.0
        client_before = time.process_time()
        started = time.perf_counter()
        tally = await _drive(
            kind, http, url, pool, wires, expect, concurrency, seconds, True, cursor
        )
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - client_before
        server_cpu = sum(map(proc_cpu_seconds, pids)) - server_before
        store_cpu = (proc_cpu_seconds(store_pid) - store_before) if store_pid else 0.0
    return LoadResult(
        requests=tally.requests,
        errors=tally.errors,
        seconds=elapsed,
        latencies_ns=tally.latencies,
        server_cpu_s=server_cpu,
        client_cpu_s=client_cpu,
        first_error=tally.first_error,
        store_cpu_s=store_cpu,
    )
