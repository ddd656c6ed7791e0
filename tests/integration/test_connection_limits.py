"""Slow and idle connections are cut off (issue 15, finding 4).

The broker is served by uvicorn exactly as ``sts-broker serve`` builds it from the config's
``server:`` section (:func:`broker.web.connection_limits.uvicorn_options`), with short
bounds so the test is quick. Real sockets play the slow clients: one that never sends, one
that sends its headers a byte at a time, one that trickles its body, and 600 that connect
and say nothing; meanwhile boto3 keeps getting answers. Before the bounds, every one of
them stayed open for as long as the client liked.
"""

from __future__ import annotations

import base64
import contextlib
import os
import resource
import selectors
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.app import create_app
from broker.config import ServerSettings, load_config
from broker.web.connection_limits import uvicorn_options
from tests.integration.conftest import (
    Broker,
    OffsetClock,
    Running,
    _key,
    bind_loopback,
    serve_process,
    start_server,
    stop_server,
    write_config,
)

IDLE, HEADER, BODY = 1, 2, 2
"""Seconds; the defaults are 5, 10 and 30 (docs/configuration.md)."""
SLACK = 1.5
"""Timer granularity, thread scheduling on a shared 2-core machine."""
MAX_CONNECTIONS = 900
IDLE_CLIENTS = 600


@dataclass
class Limited:
    broker: Broker
    running: Running
    port: int

    def connections(self) -> int:
        """Sockets the server holds open right now."""
        return len(self.running.server.server_state.connections)


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.fail(f"the test needs {needed} descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:
    # Client and server ends of every connection live in this process.
    _raise_fd_limit(2 * (MAX_CONNECTIONS + 100) + 256)
    folder: Path = tmp_path_factory.mktemp("limits")
    keys = {name: _key(i) for i, name in enumerate(["alice", "bob", "bob_old", "carol", "dave"])}
    totp = {"alice": base64.b32encode(os.urandom(20)).decode()}
    sock = bind_loopback()
    sock.listen(2048)
    path = folder / "broker.yaml"
    write_config(path, keys, totp, f"http://127.0.0.1:{sock.getsockname()[1]}")
    with path.open("a") as fh:
        fh.write(
            f"server:\n  idle_timeout_seconds: {IDLE}\n  header_timeout_seconds: {HEADER}\n"
            f"  body_timeout_seconds: {BODY}\n  max_connections: {MAX_CONNECTIONS}\n"
        )
    config = load_config(
        path, environ={"TEST_TOKEN_KEY": base64.b64encode(os.urandom(32)).decode()}
    )
    clock = OffsetClock()
    url, running = start_server(
        create_app(config, clock=clock), sock, backlog=2048, **uvicorn_options(config.server)
    )
    broker = Broker(url=url, clock=clock, config_path=path, keys=keys, totp=totp)
    try:
        yield Limited(broker, running, sock.getsockname()[1])
    finally:
        stop_server(running)


def _connect(port: int) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=30)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client


def _closed_after(client: socket.socket, started: float, limit: float) -> float:
    """Seconds from ``started`` until the server closed ``client`` (reading what it sent)."""
    client.settimeout(limit)
    try:
        while client.recv(4096):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for more than {limit:.1f} s")
    return time.monotonic() - started


def _trickle(client: socket.socket, data: bytes) -> int:
    """Send ``data`` one byte every 0.25 s until the server closes; the bytes sent."""
    sent = 0
    client.settimeout(0.25)
    try:
        for byte in data:
            client.send(bytes([byte]))
            sent += 1
            try:
                if client.recv(4096) == b"":
                    break
            except TimeoutError:
                continue
    except (ConnectionResetError, BrokenPipeError):
        pass
    return sent


class Steady:
    """A normal client calling GetCallerIdentity in a loop while the slow ones misbehave."""

    def __init__(self, broker: Broker) -> None:
        self._sts = broker.sts("alice")
        self.answers = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sts.get_caller_identity()
                self.answers += 1
            except Exception as exc:  # the assertion below names it
                self.errors.append(repr(exc))
            time.sleep(0.05)

    def __enter__(self) -> Steady:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_a_connection_that_never_sends_is_closed_after_the_idle_timeout(
    limited: Limited,
) -> None:
    started = time.monotonic()
    client = _connect(limited.port)
    assert IDLE - 0.2 <= _closed_after(client, started, IDLE + SLACK) <= IDLE + SLACK


def test_slow_headers_are_cut_off_while_normal_clients_get_answers(limited: Limited) -> None:
    with Steady(limited.broker) as steady:
        client = _connect(limited.port)
        started = time.monotonic()
        head = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
        sent = _trickle(client, head)  # never a complete head
        elapsed = time.monotonic() - started
        assert elapsed <= HEADER + SLACK, elapsed
        assert sent < len(head)
    assert steady.errors == []
    assert steady.answers >= 5


def test_a_trickled_body_is_cut_off(limited: Limited) -> None:
    client = _connect(limited.port)
    client.sendall(
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
    )
    started = time.monotonic()
    body = b"A" * (int((BODY + SLACK) / 0.25) + 8)
    assert _trickle(client, body) < len(body)
    assert time.monotonic() - started <= BODY + SLACK


def test_600_idle_connections_do_not_keep_their_sockets(limited: Limited) -> None:
    before = limited.connections()
    clients = [_connect(limited.port) for _ in range(IDLE_CLIENTS)]
    opened = time.monotonic()
    try:
        deadline = opened + 5
        while limited.connections() < before + IDLE_CLIENTS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert limited.connections() >= before + IDLE_CLIENTS * 0.9  # they were all accepted
        with Steady(limited.broker) as steady:
            # The steady client keeps one pooled connection of its own open meanwhile.
            deadline = opened + IDLE + 5
            while limited.connections() > before + 1 and time.monotonic() < deadline:
                time.sleep(0.1)
        assert limited.connections() <= before + 1, limited.connections()
        assert time.monotonic() - opened <= IDLE + 5
        assert steady.errors == []
        for client in clients[:20]:  # and the clients see it as closed
            assert _closed_after(client, time.monotonic(), 1.0) <= 1.0
    finally:
        for client in clients:
            client.close()


def test_connections_past_the_cap_are_refused_with_503(limited: Limited) -> None:
    extra = 5
    clients = [_connect(limited.port) for _ in range(MAX_CONNECTIONS + extra)]
    try:
        time.sleep(0.3)
        assert limited.connections() <= MAX_CONNECTIONS  # the extra ones are never kept
        # Each client hears either the 503 (refused at once) or, later, the idle close.
        refused = 0
        with selectors.DefaultSelector() as selector:  # epoll: fds past 1024 are fine
            for client in clients:
                selector.register(client, selectors.EVENT_READ)
            deadline = time.monotonic() + IDLE + SLACK + 3
            while selector.get_map() and time.monotonic() < deadline:
                for key, _ in selector.select(timeout=0.2):
                    client = key.fileobj
                    assert isinstance(client, socket.socket)
                    selector.unregister(client)
                    with contextlib.suppress(ConnectionResetError):
                        refused += client.recv(4096).startswith(b"HTTP/1.1 503 ")
            left = len(selector.get_map())
        assert left == 0, f"{left} connections neither refused nor closed"
        assert refused >= extra
    finally:
        for client in clients:
            client.close()
    time.sleep(0.2)
    assert limited.broker.sts("alice").get_caller_identity()["Arn"].endswith("user/alice")


def test_server_settings_defaults_are_safe() -> None:
    settings = ServerSettings()
    assert (
        settings.idle_timeout_seconds,
        settings.header_timeout_seconds,
        settings.body_timeout_seconds,
        settings.max_connections,
    ) == (5, 10, 30, 1000)
    options = uvicorn_options(settings)
    assert options["timeout_keep_alive"] == 5


def test_sts_broker_serve_applies_the_server_section(tmp_path: Path) -> None:
    """The command itself, as a real process: its config's bounds are the ones in force."""
    path = tmp_path / "broker.yaml"
    path.write_text(
        "public_url: http://127.0.0.1:8080\n"
        "server: {idle_timeout_seconds: 1, header_timeout_seconds: 1}\n"
        'accounts:\n  "111111111111": {alias: dev}\n'
    )
    with serve_process([sys.executable, "-m", "broker", "serve", str(path)]) as served:
        port = int(served.url.rsplit(":", 1)[1])
        started = time.monotonic()
        idle = _connect(port)
        assert _closed_after(idle, started, 1 + SLACK) <= 1 + SLACK
        slow = _connect(port)
        started = time.monotonic()
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        assert _closed_after(slow, started, 1 + SLACK) <= 1 + SLACK
