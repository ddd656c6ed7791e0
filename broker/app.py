"""Starlette app factory: wires config to routes and middleware. No logic lives here."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from broker import __version__
from broker.authz import AuthorizationMessages, AuthzApi, AuthzService
from broker.clock import Clock, SystemClock
from broker.config import BrokerConfig
from broker.directory import Directory
from broker.identity import SamlVerifier, WebIdentityVerifier
from broker.issuer import WebIdentityIssuer
from broker.issuer import routes as issuer_routes
from broker.store import Store, open_store
from broker.sts.api import StsApi
from broker.sts.engine import StsEngine
from broker.sts.model import StsModel
from broker.sts.tokens import TokenSealer

log = logging.getLogger("broker")


def token_keys(config: BrokerConfig) -> list[tuple[str, bytes]]:
    """The configured token keys, or an ephemeral one (and say what that costs).

    Computed once: session tokens and authorization messages must share the same keys.
    """
    keys = [(key.id, key.secret) for key in config.token_keys]
    if not keys:
        log.warning(
            "no token_keys configured: using an ephemeral key; session tokens will not survive "
            "a restart and are not valid on other nodes or workers"
        )
        keys = [("ephemeral", os.urandom(32))]
    return keys


def create_app(
    config: BrokerConfig, *, clock: Clock | None = None, store: Store | None = None
) -> Starlette:
    """Build the broker for ``config``; raises ConfigError for policies that do not parse."""
    clock = clock or SystemClock()
    directory = Directory.build(config)
    keys = token_keys(config)
    sealer = TokenSealer(keys)
    messages = AuthorizationMessages(keys, clock=clock)
    state = store or open_store(config.state, clock)
    web = WebIdentityVerifier(config, clock)
    saml = SamlVerifier(config, clock)
    issuer = WebIdentityIssuer(config, clock)
    engine = StsEngine(
        directory=directory,
        sealer=sealer,
        store=state,
        region=config.region,
        web=web,
        saml=saml,
        issuer=issuer,
        messages=messages,
    )
    authz = AuthzApi(
        service=AuthzService(
            directory=directory, messages=messages, clock=clock, region=config.region
        ),
        directory=directory,
        sealer=sealer,
        clock=clock,
        region=config.region,
        public_url=config.public_url,
        max_body_bytes=config.limits.max_body_bytes,
    )
    api = StsApi(
        model=StsModel.load(),
        engine=engine,
        directory=directory,
        sealer=sealer,
        clock=clock,
        region=config.region,
        max_body_bytes=config.limits.max_body_bytes,
    )

    async def root(request: Request) -> Response:
        # GET / with no query is for people (the sign-in page, later); anything else is STS.
        if request.method == "GET" and not request.url.query:
            return PlainTextResponse(
                f"sts-broker {__version__}: AWS STS Query API at {config.public_url}/\n"
            )
        return await api.handle(request)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await web.aclose()
        await saml.aclose()
        await state.close()

    return Starlette(
        routes=[
            Route("/", root, methods=["GET", "POST"]),
            Route("/sts", api.handle, methods=["GET", "POST"]),
            Route("/healthz", health, methods=["GET"]),
            *issuer_routes(issuer),
            *authz.routes(),
        ],
        lifespan=lifespan,
    )
