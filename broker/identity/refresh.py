"""One fetch at a time, at most one start per interval: the refresh rule of cached IdP documents.

JWKS and OIDC discovery documents are refreshed the same way: while a fetch is in flight,
callers wait for it instead of starting their own; once it is over, no new one starts until
the interval has passed, so a flood of requests (unknown ``kid``s, login clicks during an
outage) costs the issuer at most one request per interval.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

_background: set[asyncio.Future[Any]] = set()
"""Waits :func:`wait_at_most` stopped waiting for: referenced until done (asyncio keeps
only weak references to tasks, and a collected task would never record its result)."""


@dataclass
class RefreshGate:
    """The per-document state of that rule; used on one event loop only."""

    last_attempt: float = -math.inf
    inflight: asyncio.Future[None] | None = None

    async def run(self, now: float, interval: float, fetch: Callable[[], Awaitable[None]]) -> None:
        """Run ``fetch`` unless one is in flight (then wait for it) or one started lately.

        The check and the start happen with no ``await`` between them, so two callers on
        one loop can't both start one. ``fetch`` records its own result and must not raise.
        """
        if self.inflight is not None:
            await asyncio.shield(self.inflight)
            return
        if now - self.last_attempt < interval:
            return
        self.last_attempt = now
        task = asyncio.ensure_future(fetch())
        self.inflight = task
        try:
            await asyncio.shield(task)
        finally:
            if self.inflight is task:
                self.inflight = None

    def cancel(self) -> None:
        """Stop a fetch still in flight (shutdown)."""
        if self.inflight is not None:
            self.inflight.cancel()


async def wait_at_most(seconds: float, work: Awaitable[None]) -> None:
    """Run ``work``, waiting for it at most ``seconds``; past that it goes on by itself.

    For readiness: a probe must answer in time, and a fetch it started must not be cut
    short (the next probe, or the next token, uses its result).
    """
    task = asyncio.ensure_future(work)
    _background.add(task)
    task.add_done_callback(_background.discard)
    await asyncio.wait({task}, timeout=seconds)
