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
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from broker import __version__
from broker.authz import AuthzApi, AuthzService
from broker.clock import Clock, SystemClock
from broker.config import (
    BrokerConfig,
    ConfigCheck,
    ConfigError,
    DataCheck,
    listen_address,
    load_config,
)
from broker.demo import demo_middleware
from broker.directory import Directory, policy_grammar
from broker.identity import SamlVerifier, SessionRevocations, TokenSealer, WebIdentityVerifier
from broker.identity.saml import metadata_file_problems
from broker.issuer import WebIdentityIssuer
from broker.issuer import routes as issuer_routes
from broker.observability import AuditTrail, open_sinks
from broker.observability.http import RequestMetrics
from broker.observability.metrics import mark_process_up, multiprocess_dir, worker_exit
from broker.pools import (
    CognitoApi,
    CognitoModel,
    LoginVerifier,
    PoolDirectory,
    PoolIdentities,
    PoolService,
    is_cognito_request,
    pool_config_problems,
)
from broker.proxies import ForwardedForMiddleware, TrustedProxies
from broker.store import STORE_FAILURES, MeteredStore, Store, open_configured_store
from broker.sts.api import StsApi
from broker.sts.engine import StsEngine
from broker.sts.messages import AuthorizationMessages
from broker.sts.model import StsModel, throttled_action_problems
from broker.sts.upstream import UpstreamSetupError
from broker.sts.upstream_sessions import UpstreamSessions
from broker.throttling import Throttle
from broker.web import (
    BrowserSessions,
    LoginBinding,
    form_middleware,
    headers_middleware,
    saml_routes,
)
from broker.web.admin import AdminRoutes, ListenerRouter
from broker.web.audit import BrowserAudit
from broker.web.cli_routes import FORM_TARGET as CLI_FORM_TARGET
from broker.web.cli_routes import CliRoutes
from broker.web.console import ConsoleFederation
from broker.web.internal_failure import InternalFailureMiddleware
from broker.web.oidc_login import OidcLoginRoutes
from broker.web.outage import store_outage_answer
from broker.web.pages import STATIC_DIR, not_found
from broker.web.people import PeopleRoutes, is_signin_query
from broker.web.redirects import RETURN_PREFIXES
from broker.web.signin import RoleChooser

log = logging.getLogger("broker")

CSRF_EXEMPT = {
    "/": "STS Query API: SigV4 or an assertion/token in the body, no cookie",
    "/sts": "STS Query API: SigV4 or an assertion/token in the body, no cookie",
    "/cognito-identity": "identity pools JSON API: SigV4 or login tokens in the body, no cookie",
    "/authz/check": "JSON API authenticated by SigV4 or a presigned proof, no cookie",
    "/authz/decode": "JSON API authenticated by SigV4, no cookie",
    "/saml/acs": "cross-site POST from the IdP; bound to the browser by LoginBinding instead",
    "/cli/token": "OAuth token endpoint for the CLI: proof is the code/verifier or refresh token",
    "/cli/device": "device-code start for the CLI (RFC 8628): no cookie, answers JSON only",
    "/cli/revoke": "token revocation for the CLI (RFC 7009): proof is the refresh token",
    "/console/logout": "console may have no browser session: checks Origin and its own token",
}
"""Unsafe-method routes that take no cookie-authenticated form, with the reason each is safe."""


ROUTE_FAMILIES = {
    "/": "pages",
    "/sts": "sts",
    "/cognito-identity": "cognito",
    "/roles": "pages",
    "/assume": "pages",
    "/logout": "pages",
    "/federation": "console",
    "/healthz": "admin",
    "/readyz": "admin",
    "/metrics": "admin",
}
"""Exact path -> the ``action`` label of requests that name no STS action (metrics)."""
ROUTE_PREFIXES = (
    ("/saml/", "saml"),
    ("/oidc/", "oidc"),
    ("/cli/", "cli"),
    ("/console", "console"),
    ("/authz/", "authz"),
    ("/.well-known/", "issuer"),
    ("/login/", "pages"),
    ("/static/", "static"),
    ("/_demo/", "demo"),
)
"""Path prefix -> route family, for paths :data:`ROUTE_FAMILIES` does not list."""


CONFIG_CHECKS: tuple[ConfigCheck, ...] = (
    metadata_file_problems,
    pool_config_problems,
    throttled_action_problems,
)
"""Checks that need a layer above ``config``: the contents of files the config names (SAML
metadata), identity pools, the STS action names ``throttling.actions`` may use."""
DATA_CHECKS: tuple[DataCheck, ...] = (policy_grammar,)
"""Checks of the file's own data that belong to a layer above ``config`` (IAM grammar)."""


def load_broker_config(
    path: str | Path, *, environ: Mapping[str, str] | None = None
) -> BrokerConfig:
    """The config file with every check a serving broker makes: the file's own rules, IAM
    policy grammar and the contents of the files it names (SAML metadata), one list of
    mistakes in line order."""
    return load_config(path, environ=environ, checks=CONFIG_CHECKS, data_checks=DATA_CHECKS)


def upstream_sessions(config: BrokerConfig, issuer: WebIdentityIssuer) -> UpstreamSessions | None:
    """The upstream STS client, when an account's roles live in real AWS (else None).

    Built at start-up, so an unknown ``upstream.credentials.profile`` stops the broker with
    the setting named; and said once what ``via: web-identity`` needs from AWS's side.
    """
    vias = {a.upstream.via for a in config.accounts.values() if a.upstream is not None}
    if not vias:
        return None
    if "web-identity" in vias:
        if not config.issuer.keys:
            log.warning(
                "via: web-identity with no issuer keys configured: the ephemeral keys change "
                "at every restart and differ between nodes, so AWS will refuse tokens it "
                "cannot verify; configure issuer.keys"
            )
        if not config.public_url.startswith("https://"):
            log.warning(
                "via: web-identity: AWS fetches the broker's OIDC discovery document and "
                "JWKS from public_url (%s) over HTTPS; an http URL works only for a "
                "stand-in upstream on this machine",
                config.public_url,
            )
    try:
        return UpstreamSessions(config, issuer)
    except UpstreamSetupError as exc:
        raise ConfigError.problem(config, ("upstream", "credentials"), str(exc)) from None


CONFIG_ENV = "STS_BROKER_CONFIG"
"""The variable naming the config file: ``serve``'s default, and what each worker reads."""


def app_from_environment() -> Starlette:
    """The broker for the config file ``$STS_BROKER_CONFIG`` names: uvicorn's app factory.

    ``sts-broker serve --workers N`` hands uvicorn this import string, and each worker
    process calls it to build its own app (its own store connections, its own key caches);
    ``serve`` has already checked the file, and the worker count, before any worker starts.
    ``uvicorn --factory broker.app:app_from_environment`` works the same.
    """
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise RuntimeError(f"{CONFIG_ENV} names no config file")
    return create_app(load_broker_config(path))


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
    state = MeteredStore(store or open_configured_store(config, clock))
    trail = audit_trail(config, clock)
    audit = BrowserAudit(trail)
    throttle = Throttle(config.throttling, state, clock)
    revocations = SessionRevocations(state, clock, cache_seconds=config.revocation.cache_seconds)

    issuer = WebIdentityIssuer(config, clock)
    upstream = upstream_sessions(config, issuer)
    # The issuer's keys also sign the identity pools' OpenID tokens: the verifier trusts
    # them as each pool account's cognito-identity.amazonaws.com provider.
    web = WebIdentityVerifier(config, clock, pool_keys=issuer.jwks())
    saml = SamlVerifier(config, clock)
    pools = PoolDirectory.build(config)
    engine = StsEngine(
        directory=directory,
        sealer=sealer,
        store=state,
        region=config.region,
        web=web,
        saml=saml,
        issuer=issuer,
        messages=messages,
        upstream=upstream,
        throttle=throttle,
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
        audit=trail,
        throttle=throttle,
        revocations=revocations,
    )

    cognito = CognitoApi(
        model=CognitoModel.load(),
        service=PoolService(
            pools=pools,
            directory=directory,
            identities=PoolIdentities(state, secret=keys[0][1]),
            logins=LoginVerifier(web=web, saml=saml),
            engine=engine,
            issuer=issuer,
            store=state,
            clock=clock,
            region=config.region,
        ),
        directory=directory,
        sealer=sealer,
        clock=clock,
        region=config.region,
        max_body_bytes=config.limits.max_body_bytes,
    )

    console = ConsoleFederation(
        sealer=sealer,
        directory=directory,
        clock=clock,
        public_url=config.public_url,
        audit=audit,
        revocations=revocations,
    )
    admin = AdminRoutes(store=state, web=web, saml=saml, clock=clock)
    routes: list[BaseRoute] = [
        Route("/sts", api.handle, methods=["GET", "POST"]),
        Route("/cognito-identity", cognito.handle, methods=["POST"]),
        *console.routes(),
        *admin.routes(admin=config.admin_listen is None),
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
            audit=audit,
        )
        people = PeopleRoutes(
            config=config,
            sessions=sessions,
            chooser=chooser,
            console=console,
            audit=audit,
            upstream=upstream,
        )
        routes += browser.routes()
        routes += people.routes()
        routes += CliRoutes(
            chooser=chooser,
            sessions=sessions,
            store=state,
            clock=clock,
            public_url=config.public_url,
            region=config.region,
            audit=audit,
            upstream=upstream,
        ).routes()
        if any(p.oidc is not None for p in config.login.providers.values()):
            oidc_login = OidcLoginRoutes(
                config=config, web=web, sessions=sessions, login=login, clock=clock, audit=audit
            )
            routes += oidc_login.routes()
            admin.add_checks(oidc_login.discovery_checks)
        csrf = form_middleware(config, sessions, csrf_exempt=CSRF_EXEMPT, throttle=throttle)
        form_targets = (CLI_FORM_TARGET,)

    async def root(request: Request) -> Response:
        # GET / with no query (or only the sign-in page's return_to, never an STS
        # parameter) is for people; anything else is an STS call.
        if people is not None and request.method == "GET" and is_signin_query(request):
            return await people.signin_page(request)
        if request.method == "POST" and is_cognito_request(request):
            return await cognito.handle(request)
        if request.method == "GET" and not request.url.query:
            return PlainTextResponse(
                f"sts-broker {__version__}: AWS STS Query API at {config.public_url}/\n"
            )
        return await api.handle(request)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        mark_process_up(__version__)
        yield
        await web.aclose()
        await saml.aclose()
        if oidc_login is not None:
            await oidc_login.aclose()
        await state.close()
        if upstream is not None:
            await upstream.aclose()
        trail.close()
        if multiprocess_dir() is not None:
            worker_exit(os.getpid())

    proxies = TrustedProxies(config.trusted_proxies)
    observed = [
        Middleware(RequestMetrics, exact=ROUTE_FAMILIES, prefixes=ROUTE_PREFIXES),
    ]
    if proxies:
        # Before the metrics and every route: each then reads one source address.
        observed.insert(0, Middleware(ForwardedForMiddleware, proxies=proxies))
    if config.admin_listen is not None:
        # Outermost: admin requests skip the page middleware and are not counted as traffic.
        admin_app = Starlette(routes=admin.routes())
        observed.insert(
            0,
            Middleware(
                ListenerRouter, admin=admin_app, admin_port=listen_address(config.admin_listen)[1]
            ),
        )
    return Starlette(
        routes=[Route("/", root, methods=["GET", "POST"]), *routes],
        # Outermost first: the listener router, proxies and metrics; the demo IdPs (other
        # sites with headers of their own); then every answer of the broker gets the page
        # headers (an API-only broker's console and getSigninToken too), and whatever
        # escapes a handler, the CSRF checks included, becomes its protocol's InternalFailure
        # inside them.
        middleware=[
            *observed,
            *demo_middleware(config, sp=saml, clock=clock),
            headers_middleware(config, form_targets=form_targets),
            Middleware(InternalFailureMiddleware),
            *csrf,
        ],
        exception_handlers={
            404: not_found,
            405: not_found,
            **{kind: store_outage_answer for kind in STORE_FAILURES},
        },
        lifespan=lifespan,
    )


def audit_trail(config: BrokerConfig, clock: Clock) -> AuditTrail:
    """The ``audit:`` section's sinks as a trail; ConfigError when its file can't be opened."""
    try:
        sinks = open_sinks(stdout=config.audit.stdout, file=config.audit.file)
    except OSError as exc:
        raise ConfigError.problem(
            config, ("audit", "file"), f"cannot open {config.audit.file} ({exc.strerror})"
        ) from None
    return AuditTrail(sinks, region=config.region, clock=clock)
