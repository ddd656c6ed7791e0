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
