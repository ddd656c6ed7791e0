"""Starlette app factory: wires config to routes and middleware. No logic lives here."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from broker import __version__
from broker.authz import AuthzApi, AuthzService
from broker.clock import Clock, SystemClock
from broker.config import BrokerConfig, ConfigCheck, load_config
from broker.demo import demo_middleware
from broker.directory import Directory
from broker.identity import SamlVerifier, SessionRevocations, TokenSealer, WebIdentityVerifier
from broker.identity.saml import metadata_file_problems
from broker.issuer import WebIdentityIssuer
from broker.issuer import routes as issuer_routes
from broker.store import Store, open_store
from broker.sts.api import StsApi
from broker.sts.engine import StsEngine
from broker.sts.messages import AuthorizationMessages
from broker.sts.model import StsModel
from broker.web import (
    BrowserSessions,
    LoginBinding,
    csrf_middleware,
    headers_middleware,
    saml_routes,
)
from broker.web.cli_routes import FORM_TARGET as CLI_FORM_TARGET
from broker.web.cli_routes import CliRoutes
from broker.web.console import ConsoleFederation
from broker.web.internal_failure import InternalFailureMiddleware
from broker.web.oidc_login import OidcLoginRoutes
from broker.web.pages import STATIC_DIR
from broker.web.people import PeopleRoutes, is_signin_query
from broker.web.redirects import RETURN_PREFIXES
from broker.web.signin import RoleChooser

log = logging.getLogger("broker")

CSRF_EXEMPT = {
    "/": "STS Query API: SigV4 or an assertion/token in the body, no cookie",
    "/sts": "STS Query API: SigV4 or an assertion/token in the body, no cookie",
    "/authz/check": "JSON API authenticated by SigV4 or a presigned proof, no cookie",
    "/authz/decode": "JSON API authenticated by SigV4, no cookie",
    "/saml/acs": "cross-site POST from the IdP; bound to the browser by LoginBinding instead",
    "/cli/token": "OAuth token endpoint for the CLI: proof is the code/verifier or refresh token",
    "/cli/device": "device-code start for the CLI (RFC 8628): no cookie, answers JSON only",
    "/console/logout": "console may have no browser session: checks Origin and its own token",
}
"""Unsafe-method routes that take no cookie-authenticated form, with the reason each is safe."""


CONFIG_CHECKS: tuple[ConfigCheck, ...] = (metadata_file_problems,)
"""Checks of files the config names whose contents belong to a layer above ``config``."""


def load_broker_config(
    path: str | Path, *, environ: Mapping[str, str] | None = None
) -> BrokerConfig:
    """The config file with every check a serving broker makes: the file's own rules and
    the contents of the files it names (SAML metadata), one list of mistakes in line order."""
    return load_config(path, environ=environ, checks=CONFIG_CHECKS)


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
    revocations = SessionRevocations(state, clock, cache_seconds=config.revocation.cache_seconds)

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
        revocations=revocations,
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
        revocations=revocations,
    )

    console = ConsoleFederation(
        sealer=sealer,
        directory=directory,
        clock=clock,
        public_url=config.public_url,
        revocations=revocations,
    )
    routes: list[BaseRoute] = [
        Route("/sts", api.handle, methods=["GET", "POST"]),
        *console.routes(),
        Route("/healthz", health, methods=["GET"]),
        *issuer_routes(issuer),
        *authz.routes(),
        # Always: the console landing page is served by API-only brokers too.
        Mount("/static", StaticFiles(directory=STATIC_DIR)),
    ]
    csrf: list[Middleware] = []
    form_targets: tuple[str, ...] = ()
    people: PeopleRoutes | None = None
    oidc_login: OidcLoginRoutes | None = None
    if saml.provider_arns() or config.login.providers:
        # Browser sign-in exists only where a login provider does: building the sessions
        # refuses an http public_url off loopback, which an API-only broker may have.
        sessions = BrowserSessions.from_config(config, state, clock)
        login = LoginBinding(state, clock, sessions.cookies, return_prefixes=RETURN_PREFIXES)
        chooser = RoleChooser(
            engine=engine,
            directory=directory,
            clock=clock,
            secure=sessions.cookies.secure,
        )
        browser = saml_routes.SamlBrowserRoutes(
            verifier=saml,
            sessions=sessions,
            login=login,
            store=state,
            clock=clock,
            logins=config.login.providers,
            max_body_bytes=config.saml.max_response_bytes * 2,
        )
        people = PeopleRoutes(config=config, sessions=sessions, chooser=chooser, console=console)
        routes += browser.routes()
        routes += people.routes()
        routes += CliRoutes(
            chooser=chooser,
            sessions=sessions,
            store=state,
            clock=clock,
            public_url=config.public_url,
        ).routes()
        if any(p.oidc is not None for p in config.login.providers.values()):
            oidc_login = OidcLoginRoutes(
                config=config, web=web, sessions=sessions, login=login, clock=clock
            )
            routes += oidc_login.routes()
        csrf = [csrf_middleware(config, sessions, csrf_exempt=CSRF_EXEMPT)]
        form_targets = (CLI_FORM_TARGET,)

    async def root(request: Request) -> Response:
        # GET / with no query (or only the sign-in page's return_to, never an STS
        # parameter) is for people; anything else is an STS call.
        if people is not None and request.method == "GET" and is_signin_query(request):
            return await people.signin_page(request)
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
        if oidc_login is not None:
            await oidc_login.aclose()
        await state.close()

    return Starlette(
        routes=[Route("/", root, methods=["GET", "POST"]), *routes],
        # Outermost first. The demo IdPs are other sites with headers of their own; every
        # answer of the broker gets the page headers (an API-only broker's console and
        # getSigninToken too), and whatever escapes a handler, the CSRF checks included,
        # becomes its protocol's InternalFailure inside them.
        middleware=[
            *demo_middleware(config, sp=saml, clock=clock),
            headers_middleware(config, form_targets=form_targets),
            Middleware(InternalFailureMiddleware),
            *csrf,
        ],
        lifespan=lifespan,
    )
