"""The operator's endpoints: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics``.

``/healthz`` answers 200 while the process can answer at all: a load balancer or an
orchestrator restarts on its failure, so it checks nothing outside the process.
``/readyz`` answers 200 only when the broker can do its work now (the checks of
:mod:`broker.observability.readiness`: the store answers, every configured provider's keys
are usable), else 503 with a JSON body naming each failed check and why, so traffic goes
elsewhere until it recovers by itself. ``/metrics`` is Prometheus's text format.

**The admin listener.** With ``admin_listen`` set, ``serve`` binds a second socket and the
same server (every worker) accepts on both; :class:`ListenerRouter` sends what arrives on
the admin socket's port to the admin app (these three routes) and everything else to the
broker. ``/metrics`` and ``/readyz`` are then served on the admin port only: readiness
bodies name issuers and their failures, and metrics show traffic, neither of which the
public port should hand out; ``/healthz`` stays on both (it says only "ok" and the
version). The router reads the socket the connection arrived on (ASGI's ``server``),
which no client header can change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from broker import __version__
from broker.clock import Clock
from broker.identity import SamlVerifier, WebIdentityVerifier
from broker.observability import Check, exposition, readiness
from broker.observability.metrics import CONTENT_TYPE
from broker.store.metered import MeteredStore

CHECK_WAIT_SECONDS = 2.0
"""How long a probe waits for a store answer or a key refresh it started (a refresh left
unfinished goes on; the next probe sees its result)."""

CheckSource = Callable[..., Awaitable[list[Check]]]


class AdminRoutes:
    """The three endpoints, over the parts whose readiness they report."""

    def __init__(
        self,
        *,
        store: MeteredStore,
        web: WebIdentityVerifier,
        saml: SamlVerifier,
        clock: Clock,
        extra_checks: Sequence[CheckSource] = (),
    ) -> None:
        self._store = store
        self._web = web
        self._saml = saml
        self._clock = clock
        self._extra = list(extra_checks)

    def add_checks(self, source: CheckSource) -> None:
        """More readiness checks (login providers' discovery, when sign-in exists)."""
        self._extra.append(source)

    def routes(self, *, admin: bool = True) -> list[Route]:
        """The routes to serve; ``admin=False`` is the public port's share (``/healthz``)."""
        found = [Route("/healthz", self.health, methods=["GET"])]
        if admin:
            found += [
                Route("/readyz", self.ready, methods=["GET"]),
                Route("/metrics", self.metrics, methods=["GET"]),
            ]
        return found

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    async def checks(self) -> list[Check]:
        wait = CHECK_WAIT_SECONDS
        store, found = await asyncio.gather(
            self._store.check(wait),
            asyncio.gather(
                self._web.key_checks(wait=wait),
                self._saml.metadata_checks(wait=wait),
                *(source(wait=wait) for source in self._extra),
            ),
        )
        return [store, *(check for checks in found for check in checks)]

    async def ready(self, request: Request) -> Response:
        status, body = readiness(await self.checks())
        return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    async def metrics(self, request: Request) -> Response:
        return Response(
            exposition(self._clock.time()),
            media_type=CONTENT_TYPE,
            headers={"Cache-Control": "no-store"},
        )


class ListenerRouter:
    """Requests that arrived on port ``admin_port`` go to ``admin``, the rest to ``app``."""

    def __init__(self, app: ASGIApp, *, admin: ASGIApp, admin_port: int) -> None:
        self.app = app
        self._admin = admin
        self._port = admin_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] == "http" and server is not None and server[1] == self._port:
            await self._admin(scope, receive, send)
            return
        await self.app(scope, receive, send)
