"""Fleet benchmarks: the state backends side by side, and one ``serve`` worker against two.

**Stores** (``run.py --only store``). Three brokers run at once, one per backend (``memory``,
``sqlite``, ``redis`` on a ``redis-server`` this module starts on loopback), each one uvicorn
worker from ``bench/server.py`` with the same config: the deployment config plus the bench
OIDC issuer twice, once as an ordinary provider and once as a ``single_use`` one (its own
issuer URL, same key). Three workloads, their windows alternating across the backends in
``--rounds`` rounds so background load hits all three alike:

- ``assume-role``: AssumeRole alice -> Dev, no MFA: the store is never consulted (control);
- ``web-identity``: the ordinary provider, tokens replayed: no store either (control);
- ``web-once``: the ``single_use`` provider, every request a token never sent before, so
  every request makes exactly one atomic claim (``SET NX PX`` on Redis, one ``INSERT ... ON
  CONFLICT`` on SQLite, a dict insert in memory).

``web-once`` minus ``web-identity`` (same tokens' shape, same verification) is what the
store costs a request: server CPU per request (SQLite's work runs in the broker's threads, so
it is in there; redis-py's client side too), plus, for Redis, the redis-server's own CPU
per request, measured from its ``/proc`` entry over the same windows. In process, the claim
alone is timed per backend (wall clock: for Redis that is a loopback round trip).

**Workers** (``run.py --only workers``): the real ``sts-broker serve`` command with
``--workers 1`` and ``--workers 2`` (SQLite state and configured keys, as several workers
require), AssumeRole and web identity; and one worker on h11 + asyncio against the default
httptools + uvloop, to show what uvicorn's standard extra changes. Server CPU is the sum
over the supervisor and its workers.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from loadgen import LoadResult, Prepared, merge_results, run_load, sign_pool
from micro import ALICE_KEY, assume_role_body
from webid import (
    ACCOUNT,
    CLIENT_ID,
    EXPECT,
    Issuer,
    add_web_identity,
    request_body,
)

from broker.config import load_config
from broker.directory import Directory
from broker.store import open_store
from tests.redis_server import RedisServer
from tests.saml_builders import keypair

ONCE_ISSUER = "https://bench-once.example.com"
ONCE_ROLE = "WebOnce"
BACKENDS = ("memory", "sqlite", "redis")
MAX_RPS = 5000
"""A bound on what one broker answers here, to size the pool of never-sent tokens."""


@dataclass
class Row:
    """One workload on one server: its merged windows."""

    workload: str
    server: str
    result: LoadResult


# --------------------------------------------------------------------------- config


def _with_once_provider(data: dict[str, Any], jwks: Path) -> dict[str, Any]:
    """The bench issuer once more, under its own URL, ``single_use``, with role WebOnce."""
    account = data["accounts"][ACCOUNT]
    account["oidc_providers"].append(
        {
            "url": ONCE_ISSUER,
            "client_ids": [CLIENT_ID],
            "jwks_file": str(jwks.resolve()),
            "single_use": True,
        }
    )
    account["roles"][ONCE_ROLE] = {
        "trust_policy": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {
                        "Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/bench-once.example.com"
                    },
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {"bench-once.example.com:aud": CLIENT_ID}},
                }
            ],
        }
    }
    return data


def _shared_keys(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """What several workers must share: token, issuer and SAML SP keys, all from files."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP384R1())
    for name, key in (("issuer-rs256.pem", rsa_key), ("issuer-es384.pem", ec_key)):
        (folder / name).write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    sp = keypair("bench-sp")
    (folder / "sp.key").write_bytes(sp.key_pem)
    (folder / "sp.crt").write_text(sp.cert_pem)
    data["token_keys"] = [{"id": "bench", "secret": base64.b64encode(os.urandom(32)).decode()}]
    data["issuer"] = {
        "keys": [
            {"id": "rs", "algorithm": "RS256", "private_key_file": "issuer-rs256.pem"},
            {"id": "es", "algorithm": "ES384", "private_key_file": "issuer-es384.pem"},
        ]
    }
    data["saml"] = {"sp_key_file": "sp.key", "sp_cert_file": "sp.crt"}
    return data


def write_fleet_config(deployment: Path, folder: Path, issuer: Issuer, state: str) -> Path:
    """The deployment config, the bench providers (ordinary and single_use), shared keys,
    and ``state``; written to ``folder`` (its relative paths resolve there)."""
    jwks = issuer.write_jwks(folder / "bench-jwks.json")
    data = add_web_identity(yaml.safe_load(deployment.read_text()), jwks)
    data = _shared_keys(_with_once_provider(data, jwks), folder)
    data["state"] = state
    data["redis"] = {"key_prefix": f"bench-{os.getpid()}-{time.monotonic_ns()}:"}
    path = folder / "broker.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _mint_slice(key_pem: bytes, first: int, count: int) -> list[str]:
    from joserfc.jwk import RSAKey  # noqa: PLC0415 - in the pool's worker processes

    issuer = Issuer(key=RSAKey.import_key(key_pem))
    return [
        request_body(t, role=ONCE_ROLE) for t in issuer.tokens(count, iss=ONCE_ISSUER, first=first)
    ]


def mint_once_bodies(issuer: Issuer, count: int) -> list[str]:
    """``count`` distinct single-use token requests, minted on every CPU (RSA signing is
    the slow part: ~0.7 ms a token)."""
    workers = os.cpu_count() or 1
    per = -(-count // workers)
    pem = issuer.key.as_pem(private=True)
    with ProcessPoolExecutor(workers) as pool:
        parts = pool.map(_mint_slice, [pem] * workers, range(0, count, per), [per] * workers)
        return [body for part in parts for body in part][:count]


# --------------------------------------------------------------------------- servers


@dataclass
class Running:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    pids: list[int]


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(child) for child in text.split()]
    return []


@contextlib.contextmanager
def running(name: str, command: Sequence[str], url: str, workers: int = 1) -> Iterator[Running]:
    """A server process (``url`` must be where it listens); its pids once its workers run."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(list(command), stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    up = httpx.get(f"{url}healthz", timeout=1.0).status_code == 200
                    if up and len(_children(process.pid)) >= (workers if workers > 1 else 0):
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} never became ready")
                time.sleep(0.05)
            yield Running(name, process, url, [process.pid, *_children(process.pid)])
        except BaseException:
            log.seek(0)
            sys.stderr.write(f"--- {name} log ---\n{log.read().decode(errors='replace')}\n")
            raise
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_server(
    name: str, config: Path, *extra: str
) -> contextlib.AbstractContextManager[Running]:
    """``bench/server.py broker`` (one uvicorn worker) on a port it picks and prints."""
    from run import serve  # noqa: PLC0415 - run.py owns the server helper

    @contextlib.contextmanager
    def wrapped() -> Iterator[Running]:
        with serve("broker", "--config", str(config), *extra) as server:
            yield Running(name, server.process, server.url, [server.process.pid])

    return wrapped()


def serve_command(config: Path, port: int, workers: int, http: str, loop: str) -> list[str]:
    """The command a deployment runs."""
    return [
        sys.executable,
        "-m",
        "broker",
        "serve",
        str(config),
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--http",
        http,
        "--loop",
        loop,
        "--log-level",
        "warning",
    ]


# --------------------------------------------------------------------------- loads


def _load(
    server: Running,
    pool: list[Prepared],
    expect: bytes,
    args: argparse.Namespace,
    *,
    seconds: float,
    warmup: float,
    store_pid: int | None = None,
    cursor: Iterator[int] | None = None,
) -> LoadResult:
    return asyncio.run(
        run_load(
            server.url,
            pool,
            expect=expect,
            concurrency=args.concurrency,
            seconds=seconds,
            warmup=warmup,
            server_pid=server.pids,
            kind=args.client,
            store_pid=store_pid,
            cursor=cursor,
        )
    )


def _unsigned(url: str, bodies: Sequence[str]) -> list[Prepared]:
    from run import unsigned_pool  # noqa: PLC0415

    return unsigned_pool(url, list(bodies))


def _signed_assume_role(url: str, config: Path, size: int) -> list[Prepared]:
    alice = Directory.build(load_config(config)).keys[ALICE_KEY]
    return sign_pool(
        url,
        assume_role_body(),
        access_key_id=ALICE_KEY,
        secret_access_key=alice.secret,
        size=size,
    )


def run_stores(args: argparse.Namespace) -> dict[str, Any]:
    """memory, sqlite, redis: three brokers up at once, windows alternating (module doc)."""
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    if binary is None:
        raise RuntimeError("the store section needs redis-server (apt-get install redis-server)")
    issuer = Issuer()
    rounds = args.rounds
    window = args.seconds / rounds
    warmups = [args.warmup] + [min(args.warmup, 0.5)] * (rounds - 1)
    needed = int(MAX_RPS * (args.seconds + sum(warmups))) + 1000
    print(f"[bench] minting {needed} single-use tokens ...", file=sys.stderr, flush=True)
    once = mint_once_bodies(issuer, needed)
    reusable = [request_body(t) for t in issuer.tokens(args.pool)]
    rows: dict[tuple[str, str], list[LoadResult]] = {}
    claims: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="sts-bench-store-") as name,
        contextlib.ExitStack() as stack,
    ):
        folder = Path(name)
        redis = RedisServer(binary, folder)
        redis.start()
        stack.callback(redis.stop)
        redis_pid = redis.pid
        states = {
            "memory": "memory",
            "sqlite": f"sqlite:///{folder / 'state.db'}",
            "redis": redis.url,
        }
        servers: dict[str, Running] = {}
        pools: dict[str, dict[str, list[Prepared]]] = {}
        for backend in BACKENDS:
            sub = folder / backend
            sub.mkdir()
            config = write_fleet_config(args.config, sub, issuer, states[backend])
            server = stack.enter_context(bench_server(backend, config))
            servers[backend] = server
            pools[backend] = {
                "assume-role": _signed_assume_role(server.url, config, args.pool),
                "web-identity": _unsigned(server.url, reusable),
                "web-once": _unsigned(server.url, once),
            }
            claims[backend] = _claim_us(states[backend], args)
        cursors = {backend: itertools.count() for backend in BACKENDS}
        expects = {"assume-role": b"<SessionToken>", "web-identity": EXPECT, "web-once": EXPECT}
        for round_ in range(rounds):
            for workload in ("assume-role", "web-identity", "web-once"):
                for backend in BACKENDS:
                    print(
                        f"[bench] {workload} on {backend} (round {round_ + 1}/{rounds}) ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    result = _load(
                        servers[backend],
                        pools[backend][workload],
                        expects[workload],
                        args,
                        seconds=window,
                        warmup=warmups[round_],
                        store_pid=redis_pid if backend == "redis" else None,
                        cursor=cursors[backend] if workload == "web-once" else None,
                    )
                    rows.setdefault((workload, backend), []).append(result)
        for backend in BACKENDS:
            used = next(cursors[backend])
            if used > len(once):
                raise RuntimeError(
                    f"{backend}: ran out of single-use tokens ({used} > {len(once)})"
                )
    merged = [Row(w, b, merge_results(results)) for (w, b), results in rows.items()]
    return {"rows": merged, "claim_us": claims}


def _claim_us(state: str, args: argparse.Namespace) -> float:
    """Median µs of one ``claim`` of a fresh key on ``state`` (5 batches of 2,000)."""
    from broker.clock import SystemClock  # noqa: PLC0415

    async def batches() -> float:
        store = open_store(state, SystemClock(), key_prefix=f"bench-claim-{time.monotonic_ns()}:")
        try:
            times = []
            counter = itertools.count()
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(2000):
                    assert await store.claim("bench", str(next(counter)), 60.0)
                times.append((time.perf_counter() - started) / 2000 * 1e6)
            return sorted(times)[2]
        finally:
            await store.close()

    return asyncio.run(batches())


def run_workers(args: argparse.Namespace) -> list[Row]:
    """``sts-broker serve`` with one and two workers, and one worker on h11 + asyncio."""
    issuer = Issuer()
    reusable = [request_body(t) for t in issuer.tokens(args.pool)]
    variants = (
        ("1 worker", 1, "httptools", "uvloop"),
        ("2 workers", 2, "httptools", "uvloop"),
        ("1 w, h11+asyncio", 1, "h11", "asyncio"),
    )
    rows: dict[tuple[str, str], list[LoadResult]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="sts-bench-workers-") as name,
        contextlib.ExitStack() as stack,
    ):
        folder = Path(name)
        config = write_fleet_config(args.config, folder, issuer, f"sqlite:///{folder / 's.db'}")
        servers = []
        for label, workers, http, loop in variants:
            port = _free_port()
            url = f"http://127.0.0.1:{port}/"
            command = serve_command(config, port, workers, http, loop)
            server = stack.enter_context(running(label, command, url, workers))
            pools = {
                "assume-role": _signed_assume_role(url, config, args.pool),
                "web-identity": _unsigned(url, reusable),
            }
            servers.append((server, pools))
        expects = {"assume-role": b"<SessionToken>", "web-identity": EXPECT}
        window = args.seconds / args.rounds
        for round_ in range(args.rounds):
            warmup = args.warmup if round_ == 0 else min(args.warmup, 0.5)
            for workload in ("assume-role", "web-identity"):
                for server, pools in servers:
                    print(
                        f"[bench] {workload} on {server.name} (round {round_ + 1}) ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    result = _load(
                        server,
                        pools[workload],
                        expects[workload],
                        args,
                        seconds=window,
                        warmup=warmup,
                    )
                    rows.setdefault((workload, server.name), []).append(result)
    return [Row(w, s, merge_results(results)) for (w, s), results in rows.items()]


# --------------------------------------------------------------------------- output


def _line(row: Row, base: Row | None) -> str:
    r = row.result
    cpu = r.server_cpu_us_per_req
    ratio = f"{r.rps / base.result.rps:>8.2f}" if base else f"{'':>8}"
    store = f"{r.store_cpu_s / r.requests * 1e6:>9.0f}" if r.store_cpu_s else f"{'-':>9}"
    return (
        f"{row.workload:<13} {row.server:<17} {r.rps:>7.0f} {r.percentile_ms(50):>7.2f} "
        f"{r.percentile_ms(99):>7.2f} {r.errors:>6d} {ratio} {cpu:>10.0f} {store} "
        f"{r.server_cpu_s / r.seconds * 100:>7.0f}% {r.client_cpu_s / r.seconds * 100:>6.0f}%"
    )


HEADER = (
    f"{'workload':<13} {'server':<17} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
    f"{'rps/1st':>8} {'srv µs/req':>10} {'redis µs':>9} {'srv cpu':>8} {'gen cpu':>7}"
)


def print_rows(title: str, rows: list[Row]) -> None:
    print(f"\n{title}")
    print(HEADER)
    print("-" * len(HEADER))
    first: dict[str, Row] = {}
    for row in rows:
        base = first.setdefault(row.workload, row)
        print(_line(row, base))


def print_store_share(rows: list[Row], claim_us: dict[str, float]) -> None:
    by = {(r.workload, r.server): r.result for r in rows}
    print("\nThe store's share of a single_use web identity request (web-once minus web-identity)")
    for backend in BACKENDS:
        once, plain = by[("web-once", backend)], by[("web-identity", backend)]
        extra = once.server_cpu_us_per_req - plain.server_cpu_us_per_req
        redis = once.store_cpu_s / once.requests * 1e6 if once.store_cpu_s else 0.0
        share = (extra + redis) / (once.server_cpu_us_per_req + redis) * 100
        p50 = once.percentile_ms(50) - plain.percentile_ms(50)
        print(
            f"  {backend:<7} broker +{extra:5.0f} µs/req CPU, redis-server {redis:4.0f} µs/req, "
            f"share {share:4.1f}% of the CPU a request costs; p50 {p50:+.2f} ms; "
            f"claim alone in process {claim_us[backend]:6.1f} µs"
        )


def rows_json(rows: list[Row]) -> list[dict[str, Any]]:
    return [
        {
            "workload": r.workload,
            "server": r.server,
            "requests": r.result.requests,
            "errors": r.result.errors,
            "rps": round(r.result.rps, 1),
            "p50_ms": round(r.result.percentile_ms(50), 3),
            "p99_ms": round(r.result.percentile_ms(99), 3),
            "server_cpu_us_per_req": round(r.result.server_cpu_us_per_req, 1),
            "store_cpu_us_per_req": round(r.result.store_cpu_s / r.result.requests * 1e6, 1)
            if r.result.requests
            else None,
            "server_cpu_pct": round(r.result.server_cpu_s / r.result.seconds * 100, 1),
            "loadgen_cpu_pct": round(r.result.client_cpu_s / r.result.seconds * 100, 1),
            "first_error": r.result.first_error,
        }
        for r in rows
    ]
