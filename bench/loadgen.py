"""Closed-loop HTTP load: C tasks replay a pool of pre-signed requests over keep-alive.

Signing is done with botocore before the timed window, so the window measures the server
and not botocore's client-side cost. SigV4 signatures stay valid for 15 minutes, which is
far longer than a run, and STS does not refuse a replayed signed request, so replaying the
pool is a faithful workload. Each request carries a distinct signed ``X-Bench-Seq`` header,
so the pool holds distinct signatures, as a fleet of real clients would send.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

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
        pool.append(Prepared(body=prepared.body, headers=headers))
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


async def _drive(
    http: httpx.AsyncClient,
    url: str,
    pool: Sequence[Prepared],
    expect: bytes,
    concurrency: int,
    seconds: float,
    record: bool,
) -> tuple[int, int, list[int], str | None]:
    """C tasks, each sending one request at a time until the deadline (closed loop)."""
    deadline = time.perf_counter() + seconds
    latencies: list[int] = []
    counts = [0, 0]
    first_error: list[str] = []

    async def worker(offset: int) -> None:
        index = offset
        while time.perf_counter() < deadline:
            item = pool[index % len(pool)]
            index += concurrency
            started = time.perf_counter_ns()
            try:
                response = await http.post(url, content=item.body, headers=item.headers)
                ok = response.status_code == 200 and expect in response.content
                problem = None if ok else f"HTTP {response.status_code}: {response.text[:300]}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            elapsed = time.perf_counter_ns() - started
            if record:
                latencies.append(elapsed)
            counts[0] += 1
            if problem is not None:
                counts[1] += 1
                if not first_error:
                    first_error.append(problem)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return counts[0], counts[1], latencies, first_error[0] if first_error else None


async def run_load(
    url: str,
    pool: Sequence[Prepared],
    *,
    expect: bytes,
    concurrency: int,
    seconds: float,
    warmup: float,
    server_pid: int,
) -> LoadResult:
    """Warm up (connections open, caches filled, not recorded), then one timed window."""
    async with client(concurrency) as http:
        if warmup > 0:
            await _drive(http, url, pool, expect, concurrency, warmup, record=False)
        server_before = proc_cpu_seconds(server_pid)
        client_before = time.process_time()
        started = time.perf_counter()
        requests, errors, latencies, first_error = await _drive(
            http, url, pool, expect, concurrency, seconds, record=True
        )
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - client_before
        server_cpu = proc_cpu_seconds(server_pid) - server_before
    return LoadResult(
        requests=requests,
        errors=errors,
        seconds=elapsed,
        latencies_ns=latencies,
        server_cpu_s=server_cpu,
        client_cpu_s=client_cpu,
        first_error=first_error,
    )
