"""Connection bounds in front of uvicorn's HTTP protocols: slow and silent clients are cut off.

uvicorn bounds one thing itself: the keep-alive wait *after* a response
(``timeout_keep_alive``). Reading its h11 and httptools protocols (0.54) shows nothing else:
no timer runs before a connection's first byte, none while a request's headers arrive (each
``data_received`` even cancels the keep-alive timer), none while the app waits for the
body, and ``limit_concurrency`` answers 503 to requests but never refuses a connection. So
a few thousand sockets that connect and say nothing, or send a header byte every few
seconds, hold the server's descriptors for as long as they like.

The bound is put in front of the protocol, in process: :class:`ConnectionLimits` is the
protocol factory given to uvicorn (``http=``), and each connection gets uvicorn's own
protocol class (h11 or httptools, whichever would be used) with a small state machine on
top that watches what the protocol already tracks:

=========  ===========================================  =======================================
phase      from                                         bound
=========  ===========================================  =======================================
idle       the connection opens; a response completes   ``server.idle_timeout_seconds``
head       the first byte of a request                  ``server.header_timeout_seconds``
body       the end of the headers (the protocol starts  ``server.body_timeout_seconds``
           the request)                                 (total, so a trickle cannot extend it)
app        the end of the body                          none: the app's own bounds apply
=========  ===========================================  =======================================

When a phase's bound runs out the connection is closed; a request whose body was cut off
reads a disconnect, as for any client that went away. A connection past
``server.max_connections`` is answered ``503 Service Unavailable`` and closed before
anything is read. The factory is a frozen value holding only numbers and a protocol name,
so it pickles into uvicorn's spawned workers; the protocol class is resolved in each.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any, Literal

from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string

from broker.config import ServerSettings

log = logging.getLogger("broker.connections")

Phase = Literal["idle", "head", "body", "app"]

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 35\r\nconnection: close\r\n\r\n"
    b"Too many connections; retry later.\n"
)


@dataclass(frozen=True)
class ConnectionLimits:
    """The protocol factory uvicorn calls per connection (see module doc)."""

    idle_seconds: float
    header_seconds: float
    body_seconds: float
    max_connections: int
    http: str = "auto"
    """uvicorn's protocol name (``auto``, ``h11``, ``httptools``) or ``module:Class``."""

    def __call__(
        self,
        *,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> asyncio.Protocol:
        protocol: asyncio.Protocol = _bounded(self.http)(  # uvicorn's own signature
            config=config,  # type: ignore[call-arg]
            server_state=server_state,
            app_state=app_state,
            _loop=_loop,
        )
        protocol._limits = self  # type: ignore[attr-defined]
        return protocol


def uvicorn_options(settings: ServerSettings, *, http: str = "auto") -> dict[str, Any]:
    """``uvicorn.Config`` keyword arguments for ``settings``: the bounded protocol factory
    (over uvicorn's ``http`` protocol) and the keep-alive timeout uvicorn keeps itself."""
    limits = ConnectionLimits(
        idle_seconds=settings.idle_timeout_seconds,
        header_seconds=settings.header_timeout_seconds,
        body_seconds=settings.body_timeout_seconds,
        max_connections=settings.max_connections,
        http=http,
    )
    return {"http": limits, "timeout_keep_alive": settings.idle_timeout_seconds}


@functools.cache
def _bounded(http: str) -> type[asyncio.Protocol]:
    base: type[asyncio.Protocol] = import_from_string(HTTP_PROTOCOLS.get(http, http))
    return type(f"Bounded{base.__name__}", (_Bounds, base), {})


class _Bounds(asyncio.Protocol):
    """The phase machine, mixed in before one of uvicorn's protocol classes.

    It reads three things those classes keep: ``connections`` (the server's open
    connections), ``cycle`` (set when a request's headers are complete) and the cycle's
    ``more_body`` (cleared when its body is), and calls ``on_response_complete`` through.
    """

    _limits: ConnectionLimits
    _phase: Phase = "idle"
    _timer: asyncio.TimerHandle | None = None
    _deadline: float | None = None
    _seen: Any = None
    # Attributes of uvicorn's protocol classes, for the type checker.
    connections: set[Any]
    cycle: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if len(self.connections) > self._limits.max_connections:
            log.warning("connection refused: %d open connections", len(self.connections) - 1)
            # uvicorn's connection_made kept the transport (uvloop's is no subclass of
            # asyncio's, so no isinstance check here).
            self.transport.write(_BUSY)
            self.transport.close()
            return
        self._enter("idle")

    def data_received(self, data: bytes) -> None:
        if self._phase == "idle":
            self._enter("head")
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        cycle = self.cycle
        if cycle is not self._seen:  # a pipelined request already started
            self._follow()
        elif self._phase != "idle":
            self._enter("idle")

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _follow(self) -> None:
        """Move on from what the protocol did with the data it just read."""
        cycle: Any = self.cycle
        if cycle is None:
            return
        if cycle is not self._seen:
            self._seen = cycle
            self._enter("body" if cycle.more_body else "app")
        elif self._phase == "body" and not cycle.more_body:
            self._enter("app")

    def _enter(self, phase: Phase) -> None:
        """Start ``phase``: set its deadline, and a timer only if none fires by then.

        Phases change several times per request, timers would cost each change a heap
        push and a cancel; a deadline is a number. The one timer per connection re-arms
        itself for the current deadline when it fires early (see :meth:`_check`).
        """
        self._phase = phase
        seconds = {
            "idle": self._limits.idle_seconds,
            "head": self._limits.header_seconds,
            "body": self._limits.body_seconds,
            "app": None,
        }[phase]
        if seconds is None:
            self._deadline = None
            return
        deadline = self.loop.time() + seconds
        self._deadline = deadline
        if self._timer is not None and self._timer.when() <= deadline:
            return  # the pending timer fires first and re-arms for this deadline
        self._cancel()
        self._timer = self.loop.call_at(deadline, self._check)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None or self.transport.is_closing():
            return  # in the app's hands: the next phase arms again
        if self.loop.time() < deadline:
            self._timer = self.loop.call_at(deadline, self._check)
            return
        if self._phase != "idle":
            log.info("connection closed: the %s took too long", _WHAT[self._phase])
        self.transport.close()


_WHAT = {"head": "request headers", "body": "request body"}
