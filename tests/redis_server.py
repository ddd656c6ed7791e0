"""A real ``redis-server`` on a loopback port, for tests of the Redis store (no fakes).

Each server gets its own port and temporary folder, persists nothing (``--save ''``,
``--appendonly no``) and can be stopped and started again on the same port, or paused
(SIGSTOP, so it accepts connections but never answers), for outage tests. Without the
binary the tests skip with the reason; with ``STS_BROKER_REQUIRE_REDIS=1`` they fail
instead, so CI never passes by skipping them (as ``STS_BROKER_REQUIRE_BROWSER`` does for
tests/browser).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

import pytest

REQUIRE_ENV = "STS_BROKER_REQUIRE_REDIS"
BINARY_ENV = "STS_BROKER_REDIS_SERVER"
"""Path of the ``redis-server`` (or ``valkey-server``) to run, else the first on ``PATH``."""
BINARY_NAMES = ("redis-server", "valkey-server")
START_SECONDS = 10.0


def unavailable(reason: str) -> NoReturn:
    """Skip with ``reason``, or fail when the environment says Redis is required."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1, so this is a failure)", pytrace=False)
    pytest.skip(reason)


def server_binary() -> str:
    """The server to run, or skip/fail (see :func:`unavailable`) when there is none."""
    configured = os.environ.get(BINARY_ENV)
    if configured:
        if not Path(configured).is_file():
            unavailable(f"{BINARY_ENV}={configured} is not a file")
        return configured
    found = next((path for name in BINARY_NAMES if (path := shutil.which(name))), None)
    if found is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TlsFiles:
    """The server's certificate and key, and the CA that signed it (PEM files)."""

    cert: Path
    key: Path
    ca: Path


def _answers_ping(port: int, tls: TlsFiles | None = None) -> bool:
    """True once the server replies to PING (``-NOAUTH`` counts: it is up, it wants a password)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as raw:
            sock = raw
            if tls is not None:
                context = ssl.create_default_context(cafile=str(tls.ca))
                sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    return reply.startswith((b"+PONG", b"-NOAUTH"))


class RedisServer:
    """One ``redis-server`` process; :meth:`stop` and :meth:`start` keep the same port."""

    def __init__(
        self,
        binary: str,
        folder: Path,
        *,
        password: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.binary = binary
        self.folder = folder
        self.password = password
        self.tls = tls
        """With TLS files the server speaks TLS only (on :attr:`port`; no plain port)."""
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``, with the password when the server requires one."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server process's ID while it runs (bench/ reads its CPU time)."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Run the server and return once it answers PING."""
        if self._process is not None:
            raise RuntimeError("redis-server is already running")
        ports = ["--port", str(self.port)]
        if self.tls is not None:
            ports = [
                "--port", "0",
                "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.cert),
                "--tls-key-file", str(self.tls.key),
                "--tls-ca-cert-file", str(self.tls.ca),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        command = [
            self.binary,
            *ports,
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.folder),
            "--logfile", str(self.folder / "redis.log"),
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + START_SECONDS
        while not _answers_ping(self.port, self.tls):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}: {self.log()}")
            time.sleep(0.01)

    def stop(self) -> None:
        """End the server (the port then refuses connections); a stopped server is a no-op."""
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def pause(self) -> None:
        """Freeze the process: the kernel still accepts connections, nothing ever answers."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, signum: signal.Signals) -> None:
        if self._process is None:
            raise RuntimeError("redis-server is not running")
        self._process.send_signal(signum)

    def log(self) -> str:
        path = self.folder / "redis.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"


@contextmanager
def running_redis(
    *, password: str | None = None, tls: TlsFiles | None = None
) -> Iterator[RedisServer]:
    """A started server in its own temporary folder, stopped and removed on exit."""
    binary = server_binary()
    with tempfile.TemporaryDirectory(prefix="sts-broker-redis-") as folder:
        server = RedisServer(binary, Path(folder), password=password, tls=tls)
        server.start()
        try:
            yield server
        finally:
            server.stop()
