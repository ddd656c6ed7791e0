"""Starlette app factory: wires config to routes and middleware. No logic lives here."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from broker import __version__
from broker.authz import AuthorizationMessages, AuthzApi, AuthzService
from broker.clock import Clock, SystemClock
from broker.config import BrokerConfig
from broker.console import ConsoleFederation
from broker.directory import Directory
from broker.identity import SamlVerifier, WebIdentityVerifier
from broker.issuer import WebIdentityIssuer
from broker.issuer import routes as issuer_routes
from broker.store import Store, open_store
from broker.sts.api import StsApi
from broker.sts.engine import StsEngine
from broker.sts.model import StsModel
from broker.sts.tokens import TokenSealer
from broker.web import BrowserSessions, LoginBinding, saml_routes, web_middleware
from broker.web.pages import STATIC_DIR

log = logging.getLogger("broker")

CSRF_EXEMPT = {
    "/": "STS Query API: SigV4 or an assertion/token in the body, no cookie",
    "/sts": "STS Query API: SigV4 or an assertion/token in the body, no cookie",
    "/authz/check": "JSON API authenticated by SigV4 or a presigned proof, no cookie",
    "/authz/decode": "JSON API authenticated by SigV4, no cookie",
    "/saml/acs": "cross-site POST from the IdP; bound to the browser by LoginBinding instead",
}
"""Unsafe-method routes that take no cookie-authenticated form, with the reason each is safe."""


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

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

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

    console = ConsoleFederation(
        sealer=sealer, directory=directory, clock=clock, public_url=config.public_url
    )
    routes: list[BaseRoute] = [
        Route("/sts", api.handle, methods=["GET", "POST"]),
        *console.routes(),
        Route("/healthz", health, methods=["GET"]),
        *issuer_routes(issuer),
        *authz.routes(),
    ]
    middleware: list[Middleware] = []
    if saml.provider_arns():
        # Browser sign-in exists only where a login provider does: building the sessions
        # refuses an http public_url off loopback, which an API-only broker may have.
        sessions = BrowserSessions.from_config(config, state, clock)
        login = LoginBinding(
            state, clock, sessions.cookies, return_prefixes=saml_routes.RETURN_PREFIXES
        )
        browser = saml_routes.SamlBrowserRoutes(
            verifier=saml,
            sessions=sessions,
            login=login,
            store=state,
            clock=clock,
            directory=directory,
            max_body_bytes=config.saml.max_response_bytes * 2,
        )
        routes += [*browser.routes(), Mount("/static", StaticFiles(directory=STATIC_DIR))]
        middleware = web_middleware(config, sessions, csrf_exempt=CSRF_EXEMPT)

    async def root(request: Request) -> Response:
        # GET / with no query is for people (the sign-in page, later); anything else is STS.
        if request.method == "GET" and not request.url.query:
            return PlainTextResponse(
                f"sts-broker {__version__}: AWS STS Query API at {config.public_url}/\n"
            )
        return await api.handle(request)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await web.aclose()
        await saml.aclose()
        await state.close()

    return Starlette(
        routes=[Route("/", root, methods=["GET", "POST"]), *routes],
        middleware=middleware,
        lifespan=lifespan,
    )
