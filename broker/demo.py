"""The demo's identity providers, served by the broker itself under ``/_demo/``.

``sts-broker serve config/demo.yaml`` must give a complete, clickable system on one port
with no external service, so the real fixture IdPs of :mod:`idp_fixtures` run inside the
broker process: the SAML IdP at ``/_demo/saml`` (metadata ``/_demo/saml/metadata``, also
its entity ID) and the OIDC provider at ``/_demo/oidc`` (one issuer per configured URL
below it, e.g. ``/_demo/oidc/google``). The broker trusts them exactly as it trusts any
IdP: it fetches their metadata and JWKS over HTTP from its own ``public_url`` (lazily, at
first use; the fetch is async, so one uvicorn worker serves the fetch while awaiting it),
and nothing here hands it keys in-process. Only what an administrator would register with
a real IdP is passed across: the broker's SP entity ID, ACS and certificate (the IdP
verifies signed AuthnRequests with it), and an OIDC client per ``login.providers`` entry
whose URL is a demo issuer, with the redirect URI ``{public_url}/oidc/callback/NAME``.

Why a routing middleware and not ``Mount`` among the broker's routes: a real IdP is
another site, and the broker's page defences are written for the broker's own pages. Its
CSP (``script-src 'self'``, no inline styles) would stop the IdP's nonce'd auto-POST
script and its styles, and its CSRF middleware would refuse the IdP's own form posts and
the token endpoint. So ``/_demo/`` is dispatched before those middlewares run, and the
fixture apps keep the headers they set themselves.

They sign in whoever clicks, so they exist only on a loopback ``public_url``: the config
check refuses anything else, and :func:`demo_middleware` refuses again for a config built
in code.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.middleware import Middleware
from starlette.routing import Mount, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from broker.clock import Clock
from broker.config import BrokerConfig, ConfigError, KeyPath
from broker.identity import SamlVerifier
from broker.loopback import is_loopback_host
from broker.web.oidc_login import redirect_uri

if TYPE_CHECKING:
    from idp_fixtures.oidc import Client

log = logging.getLogger("broker.demo")

DEMO_PREFIX = "/_demo"
OIDC_PREFIX = f"{DEMO_PREFIX}/oidc"


def demo_middleware(config: BrokerConfig, *, sp: SamlVerifier, clock: Clock) -> list[Middleware]:
    """The middleware serving the enabled demo IdPs (none when ``config.demo`` enables none).

    ``sp`` is the broker's SAML verifier: its entity ID, ACS URL and certificate are
    registered with the SAML IdP. ``clock`` is the broker's, so tests that move time move
    the IdPs' timestamps too.
    """
    demo = config.demo
    if not (demo.saml_idp or demo.oidc_provider):
        return []
    host = urlsplit(config.public_url).hostname or ""
    if not is_loopback_host(host):
        raise ConfigError.problem(
            config,
            ("demo",),
            f"the demo IdPs sign in whoever clicks; they run only on a loopback public_url "
            f"(this one's host is {host!r})",
        )
    routes: list[Mount] = []
    if demo.oidc_provider:
        routes.append(Mount(OIDC_PREFIX, app=_oidc_app(config, clock)))
    if demo.saml_idp:
        # The SAML app serves /saml/...: mounted at /_demo it answers /_demo/saml/...
        routes.append(Mount(DEMO_PREFIX, app=_saml_app(config, sp, clock)))
    log.warning(
        "demo IdPs at %s%s/: they sign in whoever clicks (demo only, loopback only)",
        config.public_url,
        DEMO_PREFIX,
    )
    return [Middleware(DemoMounts, idps=Router(routes=routes))]


class DemoMounts:
    """Sends ``/_demo/...`` to the demo IdPs and everything else (lifespan too) to the broker."""

    def __init__(self, app: ASGIApp, *, idps: ASGIApp) -> None:
        self.app = app
        self._idps = idps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _route_path(scope).startswith(DEMO_PREFIX + "/"):
            await self._idps(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path below the app's mount point (``root_path``), as Starlette routes it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root + "/") else path


def _saml_app(config: BrokerConfig, sp: SamlVerifier, clock: Clock) -> ASGIApp:
    # Imported here: idp_fixtures is a test tool, loaded only by a broker that runs the demo.
    from idp_fixtures.saml import SamlServer, SamlUser, ServiceProvider  # noqa: PLC0415

    users = [
        SamlUser(
            username,
            name_id=user.email,
            email=user.email,
            display_name=user.name,
            roles=tuple(_role_pair(value) for value in user.saml_roles),
        )
        for username, user in config.demo.users.items()
    ]
    broker_sp = ServiceProvider(sp.sp_entity_id, (sp.acs_url,), sp.sp_credentials.certificate)
    server = SamlServer(
        f"{config.public_url}{DEMO_PREFIX}", users=users, sps=[broker_sp], clock=clock
    )
    return server.app


def _role_pair(value: str) -> tuple[str, str]:
    role_arn, provider_arn = value.split(",", 1)
    return role_arn, provider_arn


def _oidc_app(config: BrokerConfig, clock: Clock) -> ASGIApp:
    from idp_fixtures.oidc import OidcServer, User  # noqa: PLC0415

    base = f"{config.public_url}{OIDC_PREFIX}"
    server = OidcServer(base)
    users = [
        User(username, email=user.email, name=user.name)
        for username, user in config.demo.users.items()
    ]
    clients = _demo_clients(config, base)
    if not clients:
        log.warning(
            "demo.oidc_provider is on but no OIDC provider URL is under %s/ (e.g. %s/google)",
            base,
            base,
        )
    for name, (at, registered) in clients.items():
        try:
            server.add_issuer(name, users=users, clients=registered.values(), clock=clock)
        except ValueError as exc:
            raise ConfigError.problem(config, at, f"demo OIDC issuer: {exc}") from None
    return server.app


def _demo_clients(config: BrokerConfig, base: str) -> dict[str, tuple[KeyPath, dict[str, Client]]]:
    """Issuer name -> (where the file first names it, its clients by ID).

    A login provider's client gets the broker's callback for that provider as its redirect
    URI and the configured secret; a client ID only an account's ``oidc_providers`` lists
    (tokens for the STS API) gets no redirect URI: an audience that never logs anyone in.
    """
    from idp_fixtures.oidc import Client  # noqa: PLC0415

    found: dict[str, tuple[KeyPath, dict[str, Client]]] = {}
    for login_name, login in config.login.providers.items():
        oidc = login.oidc
        name = None if oidc is None else _issuer_name(oidc.url, base)
        if oidc is None or name is None:
            continue
        at: KeyPath = ("login", "providers", login_name, "oidc", "url")
        secret = oidc.client_secret.get_secret_value() if oidc.client_secret else None
        redirect = redirect_uri(config.public_url, login_name)
        _, registered = found.setdefault(name, (at, {}))
        known = registered.get(oidc.client_id)
        redirects = (known.redirect_uris if known else ()) + (redirect,)
        registered[oidc.client_id] = Client(oidc.client_id, redirects, secret=secret)
    for account_id, account in config.accounts.items():
        for index, provider in enumerate(account.oidc_providers):
            name = _issuer_name(provider.url, base)
            if name is None:
                continue
            at = ("accounts", account_id, "oidc_providers", index, "url")
            _, registered = found.setdefault(name, (at, {}))
            for client_id in provider.client_ids:
                registered.setdefault(client_id, Client(client_id))
    return found


def _issuer_name(url: str, base: str) -> str | None:
    """``google`` for ``{base}/google``; None for a URL that is not a demo issuer."""
    if not url.startswith(base + "/"):
        return None
    return url[len(base) + 1 :].rstrip("/")
