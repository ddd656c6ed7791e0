"""sts-broker benchmarks: the broker against a bare Starlette app, on one uvicorn worker.

Usage::

    .venv/bin/python bench/run.py [--seconds N] [--concurrency C] [--json FILE]
                                  [--only {sts,web,saml,throttle}]... [--throttling {on,off}]

Each server runs in its own process on a loopback port; this process is the load generator
(a minimal asyncio HTTP/1.1 client by default, keep-alive, C closed-loop tasks replaying
requests pre-signed by botocore, or unsigned AssumeRoleWithWebIdentity / AssumeRoleWithSAML
requests carrying pre-minted ID tokens / pre-signed SAML responses). The absolute numbers
depend on the machine and on the load generator sharing its cores; the ratio to the baseline
(``bare-form`` for the web identity row, ``bare-form-saml`` for the SAML row), measured in
the same run with the same generator, is the figure to compare across machines. The SAML
section also times pysaml2's stock SP path on the same responses in-process (``saml.py``).
A non-zero error count, or a pysaml2 baseline that could not run, fails the run (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import platform
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for entry in (str(ROOT), str(HERE)):  # repo for `broker`, bench/ for the sibling helpers
    if entry not in sys.path:
        sys.path.insert(0, entry)

from fleet import print_rows, print_store_share, rows_json, run_stores, run_workers  # noqa: E402
from loadgen import FORM_CT, LoadResult, Prepared, merge_results, run_load, sign_pool  # noqa: E402
from micro import (  # noqa: E402
    ALICE_KEY,
    GCI_BODY,
    MicroReport,
    Timing,
    assume_role_body,
    credentials_of,
    run_micro,
)
from saml import BASELINE_OPS as SAML_BASELINE_OPS  # noqa: E402
from saml import EXPECT as SAML_EXPECT  # noqa: E402
from saml import TOKEN_PARAM as SAML_PARAM  # noqa: E402
from saml import (  # noqa: E402
    BenchIdp,
    SamlMicro,
    print_saml_micro,
    quiet_startup,
    run_saml_micro,
)
from saml import request_body as saml_request_body  # noqa: E402
from saml import write_config as write_saml_config  # noqa: E402
from webid import EXPECT as WEB_EXPECT  # noqa: E402
from webid import Issuer, request_body, write_config  # noqa: E402

from broker.config import load_config  # noqa: E402
from broker.directory import Directory  # noqa: E402

DEMO = ROOT / "config" / "demo.yaml"


BENCH_LIMIT = {"rate": 1_000_000, "burst": 10_000_000}
BENCH_THROTTLING = {"principal": BENCH_LIMIT, "source_ip": BENCH_LIMIT}
"""Every bucket still spent on every call (same store operations as the defaults), none empty."""


def deployment_config(demo: Path, folder: Path, *, throttling: bool = True) -> Path:
    """``demo.yaml`` without its ``demo:`` block, written to ``folder``.

    The fixture IdPs it mounts are for people clicking through the demo, never part of a
    deployment, and their routing middleware would sit in front of every request measured.
    Everything else stays, the browser sign-in middlewares (headers, CSRF) included, as in
    a deployment that offers sign-in. Throttling stays on, so its cost is in every figure,
    with limits (:data:`BENCH_THROTTLING`) no bench load reaches: the load generator sends
    thousands of calls a second from one address as one principal, which the defaults
    would rightly refuse. ``throttling=False`` (``--throttling off``) turns every bucket
    off, for the before/after comparison.
    """
    data = yaml.safe_load(demo.read_text())
    data.pop("demo", None)
    data["throttling"] = BENCH_THROTTLING if throttling else {"enabled": False}
    path = folder / "broker.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


ALICE_ARN = "arn:aws:iam::111111111111:user/alice"
STARTUP_TIMEOUT_S = 20.0
WEB_TARGET = 0.5
"""The web identity issue's target: at least half of bare-form's req/s."""
DEFAULT_SECTIONS = ("sts", "web", "saml")
"""What runs without ``--only``: the signed STS workloads, web identity, SAML (each with
its floor)."""
SERVER_OPTIONS: list[str] = []
"""``--http`` / ``--loop`` for every ``bench/server.py`` process, from the command line."""
SECTIONS = (*DEFAULT_SECTIONS, "store", "workers", "throttle")
"""``--only`` choices; ``store`` (memory vs sqlite vs redis), ``workers`` (serve with one
and two workers) and ``throttle`` (the same workloads with the buckets off) run only when
named."""


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    """A server subprocess and where it listens."""

    kind: str
    process: subprocess.Popen[bytes]
    url: str


def _read_port(process: subprocess.Popen[bytes], timeout: float) -> int:
    """The ``PORT n`` line the server prints once bound, read without blocking forever."""
    lines: queue.Queue[bytes] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=timeout).decode().strip()
    except queue.Empty:
        raise RuntimeError("server did not report its port in time") from None
    if not line.startswith("PORT "):
        raise RuntimeError(f"server did not start (said {line!r})")
    return int(line.split()[1])


@contextlib.contextmanager
def serve(kind: str, *extra: str) -> Iterator[Server]:
    """Start ``bench/server.py kind`` and wait until it answers; always stop it afterwards.

    The server's stderr goes to a temporary file and is shown only if something fails, so
    the broker's start-up warning (ephemeral token key, expected for the demo config) does
    not clutter the table.
    """
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, str(HERE / "server.py"), kind, *extra, *SERVER_OPTIONS],
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=ROOT,
        )
        try:
            port = _read_port(process, STARTUP_TIMEOUT_S)
            server = Server(kind, process, f"http://127.0.0.1:{port}/")
            ready = server.url + ("healthz" if kind == "broker" else "")
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(ready, timeout=1.0).status_code == 200:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} server never became ready")
                time.sleep(0.05)
            yield server
        except BaseException:
            log.seek(0)
            text = log.read().decode(errors="replace")
            sys.stderr.write(f"--- {kind} server log ---\n{text}\n")
            raise
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()


def _post(url: str, request: Prepared) -> httpx.Response:
    return httpx.post(url, content=request.body, headers=request.headers, timeout=10.0)


# --------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    """One timed HTTP workload and what it measured."""

    name: str
    what: str
    result: LoadResult
    baseline: str = "baseline"
    """The scenario the ratios are taken against (``bare-form`` for the web identity row)."""

    def row(self, baseline: LoadResult) -> dict[str, Any]:
        r = self.result
        return {
            "name": self.name,
            "what": self.what,
            "baseline": self.baseline,
            "requests": r.requests,
            "errors": r.errors,
            "seconds": round(r.seconds, 3),
            "rps": round(r.rps, 1),
            "p50_ms": round(r.percentile_ms(50), 3),
            "p90_ms": round(r.percentile_ms(90), 3),
            "p99_ms": round(r.percentile_ms(99), 3),
            "rps_ratio_vs_baseline": round(r.rps / baseline.rps, 3),
            "p50_ratio_vs_baseline": round(r.percentile_ms(50) / baseline.percentile_ms(50), 3),
            "server_cpu_us_per_req": round(r.server_cpu_us_per_req, 1),
            "server_cpu_ratio_vs_baseline": round(
                r.server_cpu_us_per_req / baseline.server_cpu_us_per_req, 3
            ),
            "server_cpu_pct": round(r.server_cpu_s / r.seconds * 100, 1),
            "loadgen_cpu_pct": round(r.client_cpu_s / r.seconds * 100, 1),
            "first_error": r.first_error,
        }


def _load(
    server: Server, pool: list[Prepared], expect: bytes, args: argparse.Namespace
) -> LoadResult:
    return asyncio.run(
        run_load(
            server.url,
            pool,
            expect=expect,
            concurrency=args.concurrency,
            seconds=args.seconds,
            warmup=args.warmup,
            server_pid=server.process.pid,
            kind=args.client,
        )
    )


def _round_args(args: argparse.Namespace, round_: int) -> argparse.Namespace:
    """One alternating round's window: ``seconds / rounds`` long; only the first round gets
    the full warm-up (later ones only reopen their connections)."""
    warmup = args.warmup if round_ == 0 else min(args.warmup, 0.5)
    return argparse.Namespace(
        **{**vars(args), "seconds": args.seconds / args.rounds, "warmup": warmup}
    )


def run_http(args: argparse.Namespace) -> tuple[list[Scenario], dict[str, Any]]:
    """The sections asked for, in order: baseline and the three signed broker workloads,
    bare-form and web identity, bare-form-saml and AssumeRoleWithSAML."""
    scenarios: list[Scenario] = []
    extra: dict[str, Any] = {}
    sections = (
        ("sts", run_sts),
        ("web", run_web_identity),
        ("saml", run_saml),
        ("throttle", run_throttle),
    )
    for section, run in sections:
        if section in args.only:
            more, more_extra = run(args)
            scenarios += more
            extra |= more_extra
    return scenarios, extra


def run_sts(args: argparse.Namespace) -> tuple[list[Scenario], dict[str, Any]]:
    """Baseline first, then the three signed broker workloads."""
    directory = Directory.build(load_config(args.config))
    alice = directory.keys[ALICE_KEY]
    extra: dict[str, Any] = {}
    scenarios: list[Scenario] = []
    expect_alice = f"<Arn>{ALICE_ARN}</Arn>".encode()

    def pool_for(url: str, body: str, **creds: str) -> list[Prepared]:
        return sign_pool(url, body, size=args.pool, **creds)

    alice_creds = {"access_key_id": ALICE_KEY, "secret_access_key": alice.secret}

    with serve("baseline", "--user-id", alice.user.user_id) as base:
        pool = pool_for(base.url, GCI_BODY, **alice_creds)
        extra["baseline_body_bytes"] = len(_post(base.url, pool[0]).content)
        print(f"[bench] baseline on {base.url} ...", file=sys.stderr, flush=True)
        scenarios.append(
            Scenario(
                "baseline",
                "bare Starlette: read body, fixed GCI-sized XML",
                _load(base, pool, expect_alice, args),
            )
        )

    with serve("broker", "--config", str(args.config)) as broker:
        gci_pool = pool_for(broker.url, GCI_BODY, **alice_creds)
        first = _post(broker.url, gci_pool[0])
        if first.status_code != 200 or expect_alice not in first.content:
            raise RuntimeError(f"broker refused alice's GetCallerIdentity: {first.text[:300]}")
        extra["broker_gci_body_bytes"] = len(first.content)

        ar_pool = pool_for(broker.url, assume_role_body(), **alice_creds)
        answer = _post(broker.url, ar_pool[0])
        if answer.status_code != 200:
            raise RuntimeError(f"broker refused alice's AssumeRole: {answer.text[:300]}")
        temp = credentials_of(answer.content)
        extra["assume_role_body_bytes"] = len(answer.content)
        extra["session_token_bytes_http"] = len(temp["SessionToken"].encode())
        temp_pool = pool_for(
            broker.url,
            GCI_BODY,
            access_key_id=temp["AccessKeyId"],
            secret_access_key=temp["SecretAccessKey"],
            session_token=temp["SessionToken"],
        )

        print(f"[bench] broker on {broker.url} ...", file=sys.stderr, flush=True)
        scenarios.append(
            Scenario(
                "gci-sigv4",
                "GetCallerIdentity, alice's long-term key",
                _load(broker, gci_pool, expect_alice, args),
            )
        )
        scenarios.append(
            Scenario(
                "gci-session",
                "GetCallerIdentity, temporary creds (token opened per request)",
                _load(broker, temp_pool, b"assumed-role/Dev/bench", args),
            )
        )
        scenarios.append(
            Scenario(
                "assume-role",
                "AssumeRole alice -> Dev (authz + mint + seal)",
                _load(broker, ar_pool, b"<SessionToken>", args),
            )
        )
    return scenarios, extra


def unsigned_pool(url: str, bodies: list[str]) -> list[Prepared]:
    """Unsigned form POSTs, one per body: AssumeRoleWithWebIdentity needs no signature."""
    host = urlsplit(url).netloc
    return [
        Prepared(body=body.encode(), headers=(("Content-Type", FORM_CT),), host=host)
        for body in bodies
    ]


def run_web_identity(args: argparse.Namespace) -> tuple[list[Scenario], dict[str, Any]]:
    """bare-form, then AssumeRoleWithWebIdentity, with the same generator and concurrency.

    The broker runs demo.yaml plus the bench issuer (:mod:`webid`, JWKS from a file, so no
    key is ever fetched). One real answer is taken first and becomes bare-form's fixed body,
    so both servers send answers of the same size (a plain session token is not deflated,
    so its size does not vary) and the generator checks the same content in both.
    ``--pool`` distinct tokens are minted before either window and replayed (the provider
    is not single_use, as with AWS).
    """
    issuer = Issuer()
    extra: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        config = write_config(args.config, folder, issuer)
        bodies = [request_body(token) for token in issuer.tokens(args.pool)]
        extra["web_identity_request_bytes"] = len(bodies[0])
        with serve("broker", "--config", str(config)) as broker:
            pool = unsigned_pool(broker.url, bodies)
            answer = _post(broker.url, pool[0])
            if answer.status_code != 200 or WEB_EXPECT not in answer.content:
                raise RuntimeError(f"broker refused AssumeRoleWithWebIdentity: {answer.text[:300]}")
            extra["web_identity_body_bytes"] = len(answer.content)
            body_file = folder / "answer.xml"
            body_file.write_bytes(answer.content)

            with serve("bare-form", "--body-file", str(body_file)) as bare:
                bare_pool = unsigned_pool(bare.url, bodies)
                probe = _post(bare.url, bare_pool[0])
                if probe.status_code != 200 or probe.content != answer.content:
                    raise RuntimeError(
                        f"bare-form answered {probe.status_code}: {probe.text[:300]}"
                    )
                # With --rounds N both servers run throughout and their windows alternate
                # (N of seconds/N each), so background load hits both alike.
                bare_windows: list[LoadResult] = []
                web_windows: list[LoadResult] = []
                for round_ in range(args.rounds):
                    window = _round_args(args, round_)
                    print(f"[bench] bare-form on {bare.url} ...", file=sys.stderr, flush=True)
                    bare_windows.append(_load(bare, bare_pool, WEB_EXPECT, window))
                    print(
                        f"[bench] broker (web identity) on {broker.url} ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    web_windows.append(_load(broker, pool, WEB_EXPECT, window))
                bare_result = merge_results(bare_windows)
                web_result = merge_results(web_windows)
    return [
        Scenario(
            "bare-form",
            "bare Starlette: parse the form, fixed AssumeRoleWithWebIdentity answer",
            bare_result,
            baseline="bare-form",
        ),
        Scenario(
            "web-identity",
            "AssumeRoleWithWebIdentity -> WebBench (JWT verify + authz + mint + seal)",
            web_result,
            baseline="bare-form",
        ),
    ], extra


def run_throttle(args: argparse.Namespace) -> tuple[list[Scenario], dict[str, Any]]:
    """AssumeRole and AssumeRoleWithWebIdentity on two brokers, one with throttling off and
    one with it on (:data:`BENCH_THROTTLING`: every bucket spent, none ever empty), both up
    throughout and their windows alternating (``--rounds``; which goes first alternates too),
    so background load on a shared machine hits both alike. The "on" rows' ratios are
    against the "off" rows.
    """
    directory = Directory.build(load_config(args.config))
    creds = {"access_key_id": ALICE_KEY, "secret_access_key": directory.keys[ALICE_KEY].secret}
    issuer = Issuer()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        configs = {}
        for state in ("off", "on"):
            (folder / state).mkdir()
            plain = deployment_config(DEMO, folder / state, throttling=state == "on")
            configs[state] = write_config(plain, folder / state, issuer)
        bodies = [request_body(token) for token in issuer.tokens(args.pool)]
        with (
            serve("broker", "--config", str(configs["off"])) as off,
            serve("broker", "--config", str(configs["on"])) as on,
        ):
            servers = {"off": off, "on": on}
            workloads = {
                "assume-role": (
                    {
                        s: sign_pool(b.url, assume_role_body(), size=args.pool, **creds)
                        for s, b in servers.items()
                    },
                    b"<SessionToken>",
                ),
                "web-identity": (
                    {s: unsigned_pool(b.url, bodies) for s, b in servers.items()},
                    WEB_EXPECT,
                ),
            }
            windows: dict[tuple[str, str], list[LoadResult]] = {}
            for workload, (pools, expect) in workloads.items():
                for state, server in servers.items():
                    probe = _post(server.url, pools[state][0])
                    if probe.status_code != 200 or expect not in probe.content:
                        raise RuntimeError(f"{workload} refused: {probe.text[:300]}")
                for round_ in range(args.rounds):
                    window = _round_args(args, round_)
                    order = list(servers.items())  # off first, then on first, and so on
                    for state, server in order if round_ % 2 == 0 else order[::-1]:
                        print(
                            f"[bench] {workload}, throttling {state}, on {server.url} ...",
                            file=sys.stderr,
                            flush=True,
                        )
                        result = _load(server, pools[state], expect, window)
                        windows.setdefault((workload, state), []).append(result)
    return [
        Scenario(
            f"{workload}/{state}",
            f"{workload}, throttling {state}",
            merge_results(windows[(workload, state)]),
            baseline=f"{workload}/off",
        )
        for workload in ("assume-role", "web-identity")
        for state in ("off", "on")
    ], {}


def run_saml(args: argparse.Namespace) -> tuple[list[Scenario], dict[str, Any]]:
    """bare-form-saml, then AssumeRoleWithSAML, exactly as :func:`run_web_identity` does.

    The broker runs demo.yaml plus the ``Corp`` provider (metadata from a file written by
    :mod:`saml`, ``single_use: false``) and the ``SamlBench`` role; ``--pool`` distinct
    Okta-shaped responses (Response + Assertion signed) are built before either window. The
    bare-form server parses the same ~9 KB bodies and answers a copy of a real answer.
    """
    bench_idp = BenchIdp()
    extra: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        config = write_saml_config(args.config, folder, bench_idp)
        print(f"[bench] signing {args.pool} SAML responses ...", file=sys.stderr, flush=True)
        bodies = [saml_request_body(r) for r in bench_idp.responses(args.pool)]
        extra["saml_request_bytes"] = len(bodies[0])
        with serve("broker", "--config", str(config)) as broker:
            pool = unsigned_pool(broker.url, bodies)
            answer = _post(broker.url, pool[0])
            if answer.status_code != 200 or SAML_EXPECT not in answer.content:
                raise RuntimeError(f"broker refused AssumeRoleWithSAML: {answer.text[:300]}")
            again = _post(broker.url, pool[0])
            if again.status_code != 200:
                raise RuntimeError(f"broker refused a replayed response: {again.text[:300]}")
            extra["saml_body_bytes"] = len(answer.content)
            body_file = folder / "answer.xml"
            body_file.write_bytes(answer.content)

            with serve(
                "bare-form", "--body-file", str(body_file), "--token-param", SAML_PARAM
            ) as bare:
                bare_pool = unsigned_pool(bare.url, bodies)
                probe = _post(bare.url, bare_pool[0])
                if probe.status_code != 200 or probe.content != answer.content:
                    raise RuntimeError(
                        f"bare-form-saml answered {probe.status_code}: {probe.text[:300]}"
                    )
                print(f"[bench] bare-form-saml on {bare.url} ...", file=sys.stderr, flush=True)
                bare_result = _load(bare, bare_pool, SAML_EXPECT, args)

            print(f"[bench] broker (SAML) on {broker.url} ...", file=sys.stderr, flush=True)
            saml_result = _load(broker, pool, SAML_EXPECT, args)
    return [
        Scenario(
            "bare-form-saml",
            "bare Starlette: parse the ~9 KB form, fixed AssumeRoleWithSAML answer",
            bare_result,
            baseline="bare-form-saml",
        ),
        Scenario(
            "saml",
            "AssumeRoleWithSAML -> SamlBench (2 XML signatures + authz + mint + seal)",
            saml_result,
            baseline="bare-form-saml",
        ),
    ], extra


# --------------------------------------------------------------------------- output


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    """What the numbers were measured on: they mean little without it."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            name: _version(name)
            for name in (
                "starlette",
                "uvicorn",
                "httpx",
                "cryptography",
                "botocore",
                "h11",
                "uvloop",
                "httptools",
                "joserfc",
                "signxml",
                "lxml",
                "pysaml2",
            )
        },
    }


def print_http(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\nHTTP, one uvicorn worker ({args.http} parser, {args.loop} loop), loopback, "
        f"{args.concurrency} concurrent keep-alive "
        f"connections ({args.client} client), {args.seconds:g}s per workload after "
        f"{args.warmup:g}s warm-up, throttling {args.throttling}"
        + (" (the throttle section runs both)" if "throttle" in args.only else "")
        + (
            f"; web and throttle sections in {args.rounds} alternating rounds"
            if args.rounds > 1 and ("web" in args.only or "throttle" in args.only)
            else ""
        )
    )
    header = (
        f"{'workload':<14} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
        f"{'errors':>6} {'rps/base':>8} {'p50/base':>8} {'srv µs/req':>10} {'cpu/base':>8} "
        f"{'srv cpu':>7} {'gen cpu':>7}"
    )
    print(header)
    print("-" * len(header))
    shown = rows[0]["baseline"] if rows else "baseline"
    if shown != "baseline":
        print(f"  (ratios below are against {shown})")
    for r in rows:
        if r["baseline"] != shown:
            shown = r["baseline"]
            print(f"  (ratios below are against {shown})")
        print(
            f"{r['name']:<14} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f} {r['errors']:>6d} {r['rps_ratio_vs_baseline']:>8.2f} "
            f"{r['p50_ratio_vs_baseline']:>8.2f} {r['server_cpu_us_per_req']:>10.0f} "
            f"{r['server_cpu_ratio_vs_baseline']:>8.2f} {r['server_cpu_pct']:>6.0f}% "
            f"{r['loadgen_cpu_pct']:>6.0f}%"
        )


def web_target(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Whether AssumeRoleWithWebIdentity reached half of bare-form's req/s, and by how much."""
    web = next((r for r in rows if r["name"] == "web-identity"), None)
    if web is None:
        return None
    ratio = web["rps_ratio_vs_baseline"]
    return {
        "target_rps_ratio": WEB_TARGET,
        "rps_ratio": ratio,
        "met": ratio >= WEB_TARGET,
        "margin_pct": round((ratio / WEB_TARGET - 1) * 100, 1),
    }


def print_target(target: dict[str, Any] | None) -> None:
    if target is None:
        return
    verdict = "met" if target["met"] else "NOT met"
    print(
        f"\nTarget (web-identity req/s >= {target['target_rps_ratio']:.2f} x bare-form): "
        f"{verdict}, ratio {target['rps_ratio']:.2f} ({target['margin_pct']:+.0f}% vs target)"
    )


def saml_http_vs_pysaml2(rows: list[dict[str, Any]], saml: SamlMicro | None) -> float | None:
    """AssumeRoleWithSAML req/s over HTTP ÷ pysaml2's in-process verifications/s (context)."""
    row = next((r for r in rows if r["name"] == "saml"), None)
    if row is None or saml is None or saml.baseline_ops_per_s is None:
        return None
    return float(row["rps"]) / saml.baseline_ops_per_s


def print_micro(timings: list[Timing]) -> None:
    print("\nIn-process, per call (median of 5 batches; best in brackets)")
    width = max(len(t.name) for t in timings)
    for t in timings:
        print(f"  {t.name:<{width}} {t.median_us:>9.2f} µs/op  [{t.best_us:.2f}]")


def print_tokens(extra: dict[str, Any], report: MicroReport | None) -> None:
    if "session_token_bytes_http" in extra or report is not None:
        print("\nSession token sizes (bytes, base64url ASCII)")
    if "session_token_bytes_http" in extra:
        print(
            f"  plain AssumeRole (from the HTTP answer)         {extra['session_token_bytes_http']}"
        )
    if report is not None:
        for name, size in report.token_sizes.items():
            print(f"  {name:<47} {size}")
        print(f"  PackedPolicySize of the large one: {report.packed_policy_size_percent}%")
    bodies: list[str] = []
    if "baseline_body_bytes" in extra:
        bodies.append(
            f"baseline {extra['baseline_body_bytes']} B, broker GetCallerIdentity "
            f"{extra['broker_gci_body_bytes']} B, AssumeRole {extra['assume_role_body_bytes']} B"
        )
    if "web_identity_body_bytes" in extra:
        bodies.append(
            f"AssumeRoleWithWebIdentity {extra['web_identity_body_bytes']} B (= bare-form's; "
            f"request body {extra['web_identity_request_bytes']} B)"
        )
    if "saml_body_bytes" in extra:
        bodies.append(
            f"AssumeRoleWithSAML {extra['saml_body_bytes']} B (= bare-form-saml's; request "
            f"body {extra['saml_request_bytes']} B)"
        )
    if bodies:
        print("\nResponse bodies: " + ", ".join(bodies))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="timed window per workload")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop client tasks")
    parser.add_argument("--warmup", type=float, default=2.0, help="untimed seconds per workload")
    parser.add_argument("--pool", type=int, default=256, help="distinct pre-signed requests")
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="load generator: minimal asyncio HTTP/1.1 (default) or httpx.AsyncClient",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="web and throttle sections: alternate N windows of seconds/N each "
        "(bare-form/web-identity; throttling off/on)",
    )
    parser.add_argument(
        "--throttling",
        choices=["on", "off"],
        default="on",
        help="rate-limit buckets on (limits no bench load reaches, the default) or off",
    )
    parser.add_argument(
        "--http",
        choices=["auto", "h11", "httptools"],
        default="auto",
        help="the servers' HTTP parser (auto: httptools when installed, as serve)",
    )
    parser.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="the servers' event loop (auto: uvloop when installed, as serve)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--no-micro", action="store_true", help="skip the in-process section")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP section")
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        help="run only this section (repeatable): sts = baseline + signed STS workloads, "
        "web = bare-form + web identity, saml = bare-form-saml + AssumeRoleWithSAML + the "
        "pysaml2 comparison; store = memory vs sqlite vs redis; workers = serve with 1 and 2 "
        "workers; throttle = AssumeRole and web identity with throttling off and on; default "
        "sts, web and saml",
    )
    parser.add_argument(
        "--saml-baseline-ops",
        type=int,
        default=SAML_BASELINE_OPS,
        help="pysaml2 calls timed (~60 ms each)",
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.concurrency < 1 or args.pool < 1 or args.warmup < 0:
        parser.error("--seconds and --pool must be positive, --concurrency at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not 1 <= args.saml_baseline_ops <= 1000:
        parser.error("--saml-baseline-ops must be 1..1000")
    args.only = tuple(args.only or DEFAULT_SECTIONS)
    SERVER_OPTIONS[:] = ["--http", args.http, "--loop", args.loop]
    with tempfile.TemporaryDirectory(prefix="sts-bench-") as folder:
        args.config = deployment_config(DEMO, Path(folder), throttling=args.throttling == "on")
        return run_all(args)


def run_all(args: argparse.Namespace) -> int:
    """Every section asked for, printed as it completes; 1 if anything failed."""
    info = machine()
    versions = info["versions"]
    print(
        f"sts-broker bench  {info['date']}  {info['cpus']} CPUs ({info['cpu_model']})  "
        f"Python {info['python']}  starlette {versions['starlette']}  uvicorn "
        f"{versions['uvicorn']}  httpx {versions['httpx']}  cryptography "
        f"{versions['cryptography']}  uvloop {versions['uvloop']}  httptools "
        f"{versions['httptools']}  signxml {versions['signxml']}  lxml {versions['lxml']}  "
        f"pysaml2 {versions['pysaml2']}"
    )
    if (info["cpus"] or 0) <= 2:
        print(
            "note: the load generator shares the CPUs with the server: absolute numbers are "
            "conservative; compare the ratios to the baseline."
        )

    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    fleet_errors: list[int] = []
    if not args.no_http and set(args.only) & set(DEFAULT_SECTIONS):
        scenarios, extra = run_http(args)
        by_name = {s.name: s.result for s in scenarios}
        rows = [s.row(by_name[s.baseline]) for s in scenarios]
        print_http(rows, args)
        print_target(web_target(rows))
    fleet_json: dict[str, Any] = {}
    if "store" in args.only:
        stores = run_stores(args)
        print_rows(
            f"State backends: one uvicorn worker each, {args.concurrency} connections, "
            f"{args.seconds:g}s per row in {args.rounds} alternating rounds "
            "(rps/1st: against memory)",
            stores["rows"],
        )
        print_store_share(stores["rows"], stores["claim_us"])
        fleet_json["stores"] = {"rows": rows_json(stores["rows"]), "claim_us": stores["claim_us"]}
        errors = sum(r.result.errors for r in stores["rows"])
        if errors:
            print(f"\nFAIL: the store section had {errors} errors", file=sys.stderr)
            fleet_errors.append(errors)
    if "workers" in args.only:
        workers = run_workers(args)
        print_rows(
            f"sts-broker serve --workers N: {args.concurrency} connections, {args.seconds:g}s per "
            f"row in {args.rounds} alternating rounds; generator on the same {info['cpus']} "
            "CPUs (rps/1st: against 1 worker)",
            workers,
        )
        fleet_json["workers"] = rows_json(workers)
        errors = sum(r.result.errors for r in workers)
        if errors:
            print(f"\nFAIL: the workers section had {errors} errors", file=sys.stderr)
            fleet_errors.append(errors)
    report = None
    saml: SamlMicro | None = None
    if not args.no_micro and set(args.only) & set(DEFAULT_SECTIONS):
        timings: list[Timing] = []
        if "sts" in args.only or "web" in args.only:
            with quiet_startup():  # the demo's ephemeral-key warnings stay out of the table
                report = run_micro(args.config)
            timings += report.timings
        if "saml" in args.only:
            print("[bench] in-process SAML, pysaml2 ...", file=sys.stderr, flush=True)
            saml = run_saml_micro(args.config, baseline_ops=args.saml_baseline_ops)
            timings += saml.timings
        print_micro(timings)
    if saml is not None:
        print_saml_micro(saml)
        versus = saml_http_vs_pysaml2(rows, saml)
        if versus is not None:
            print(
                f"  (for scale: AssumeRoleWithSAML over HTTP, whole request, {versus:.1f}x "
                "pysaml2's in-process verifications/s)"
            )
    print_tokens(extra, report)

    if args.json is not None:
        payload = {
            "machine": info,
            "settings": {
                "seconds": args.seconds,
                "rounds": args.rounds,
                "concurrency": args.concurrency,
                "warmup": args.warmup,
                "pool": args.pool,
                "client": args.client,
                "throttling": args.throttling,
                "only": list(args.only),
                "saml_baseline_ops": args.saml_baseline_ops,
                "http": args.http,
                "loop": args.loop,
            },
            "http": rows,
            "web_identity_target": web_target(rows),
            "saml_target": saml.verdict() if saml else None,
            "micro": [asdict(t) for t in (report.timings if report else [])]
            + [asdict(t) for t in (saml.timings if saml else [])],
            "token_sizes": {
                **(
                    {"plain AssumeRole (HTTP)": extra["session_token_bytes_http"]}
                    if "session_token_bytes_http" in extra
                    else {}
                ),
                **(report.token_sizes if report else {}),
            },
            "packed_policy_size_percent": report.packed_policy_size_percent if report else None,
            "bodies": {k: v for k, v in extra.items() if k.endswith("_bytes")},
            **fleet_json,
        }
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")

    status = 1 if fleet_errors else 0
    for r in rows:
        if r["errors"]:
            print(
                f"\nFAIL: {r['name']} had {r['errors']} errors; first: {r['first_error']}",
                file=sys.stderr,
            )
            status = 1
    if "baseline_body_bytes" in extra and (
        extra["baseline_body_bytes"] != extra["broker_gci_body_bytes"]
    ):
        print(
            f"\nFAIL: baseline body is {extra['baseline_body_bytes']} B but the broker's "
            f"GetCallerIdentity is {extra['broker_gci_body_bytes']} B",
            file=sys.stderr,
        )
        status = 1
    if saml is not None and saml.baseline_error is not None:
        print(f"\nFAIL: {saml.baseline_error}", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
