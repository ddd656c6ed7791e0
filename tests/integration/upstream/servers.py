"""Loopback peers that misbehave on purpose, for the upstream clients' failure paths.

Each is a real socket, so what the clients see is what a real outage looks like: a refused
connection, a connect that never completes, a server that accepts and says nothing, one
that hangs up mid-request, and a canned HTTP server for answers no real STS would give.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def closed_port() -> str:
    """A loopback URL nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextmanager
def full_backlog() -> Iterator[str]:
    """A listener whose accept queue is full: a new connect is never completed.

    Linux answers no SYN for a listener with ``listen(0)`` once one connection waits in its
    queue (nothing accepts it), so the client's connect times out: a real connect timeout
    without a route to a black-holed address.
    """
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.connect(("127.0.0.1", port))
        yield f"http://127.0.0.1:{port}"


@contextmanager
def silent_server(*, hang_up: bool = False) -> Iterator[str]:
    """Accepts connections and never answers; with ``hang_up``, closes after the request.

    The silent one is a slow upstream (read timeout); the hang-up one a broken connection.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if hang_up:
                conn.settimeout(2)
                with suppress(OSError):
                    conn.recv(65536)
                conn.close()
            else:
                held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


@dataclass
class Canned:
    """An HTTP server that answers with what a test put in ``answers`` (the last repeats)."""

    url: str
    answers: list[tuple[int, str, bytes]] = field(default_factory=list)
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    """(method, path with query, body) of every request, in order."""

    def answer(self, status: int, body: str | bytes, content_type: str = "text/xml") -> None:
        self.answers.append(
            (status, content_type, body.encode() if isinstance(body, str) else body)
        )


@contextmanager
def canned_server() -> Iterator[Canned]:
    canned = Canned(url="")

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            canned.requests.append((self.command, self.path, self.rfile.read(length)))
            index = min(len(canned.requests), len(canned.answers)) - 1
            status, content_type, body = canned.answers[index]
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _reply

        def log_message(self, format: str, *args: Any) -> None:
            pass  # stdout stays quiet; and a getSigninToken path carries credentials

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    canned.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield canned
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
