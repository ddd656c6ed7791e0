"""Serving a fixture app on a loopback socket under uvicorn in a daemon thread.

Shared by the OIDC and SAML fixture servers (and their command line). The socket is bound
before the app exists (port 0, no race) because both put their own URL, port included,
into what they sign and publish; so binding and running are separate steps here.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def origin(host: str, port: int) -> str:
    """``http://host:port`` with IPv6 literals bracketed."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


@contextmanager
def running_in_thread(app: ASGIApp, sock: socket.socket, *, what: str) -> Iterator[None]:
    """Serve ``app`` on ``sock`` in a daemon thread until the block exits, then close ``sock``.

    Waits (up to ten seconds) for uvicorn to report it started, so the first request of a
    test never races the server; ``what`` (``"OIDC"``, ``"SAML"``) names the server in the
    thread name and in the error raised when it does not start.
    """
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    runner = uvicorn.Server(config)
    thread = threading.Thread(
        target=runner.run,
        kwargs={"sockets": [sock]},
        name=f"idp-fixtures-{what.lower()}",
        daemon=True,
    )
    thread.start()
    try:
        for _ in range(1000):
            if runner.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not runner.started:
            raise RuntimeError(f"the fixture {what} server did not start")
        yield
    finally:
        runner.should_exit = True
        thread.join(timeout=10)
        sock.close()
