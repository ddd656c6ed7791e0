"""The pages people use: sign-in, the role picker, the credentials page, and logout.

Everything a person may do here goes through :class:`~broker.web.signin.RoleChooser`, i.e.
through the STS engine with the identity verified at login, so the pages can never grant
what ``AssumeRoleWithSAML`` / ``AssumeRoleWithWebIdentity`` would refuse that identity.

Secrets never rest in the browser session: credentials are minted on ``POST /assume`` and
rendered into that one response (every page is ``Cache-Control: no-store``), or traded at
once for a console sign-in URL. The session holds only the verified identity, so "switch
role" is another ``POST /assume``, not another IdP login.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import groupby
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from broker.client.snippets import credential_snippets
from broker.clock import iso8601
from broker.config import BrokerConfig, SamlProviderConfig
from broker.errors import StsError, access_denied, validation_error
from broker.sts.upstream_sessions import UpstreamSessions
from broker.web.audit import BrowserAudit
from broker.web.console import ConsoleFederation, ConsoleSigninError, utc_text
from broker.web.cookies import cookie_value
from broker.web.durations import MAX_DURATION, MIN_DURATION, duration_options
from broker.web.forms import read_form
from broker.web.pages import error_page, page
from broker.web.redirects import RETURN_PREFIXES, after_login, safe_return_to
from broker.web.sessions import BrowserSessions, Session
from broker.web.signin import (
    LoginProtocol,
    RoleChoice,
    RoleChooser,
    SignedIn,
    load_signed_in,
    page_header,
)

log = logging.getLogger("broker.web")
LAST_LOGIN_SECONDS = 365 * 24 * 3600
SEARCH_THRESHOLD = 5
"""The role picker shows its filter box above this many roles."""
_MAX_FORM_BYTES = 4096
_UNSAFE_NAME = re.compile(r"[^a-z0-9_-]+", re.ASCII)


@dataclass(frozen=True)
class LoginChoice:
    """One way to sign in: a ``login.providers`` entry or an account's SAML provider."""

    name: str
    """The ``/login/{name}`` segment and the value of the last-used cookie."""
    label: str
    protocol: LoginProtocol
    provider: str
    """SAML: the provider ARN; OIDC: the login provider name (its callback path)."""
    listed: bool
    """Shown on the sign-in page (derived SAML names are hidden once providers are set)."""

    def start_url(self, return_to: str) -> str:
        """Where the protocol's own login starts; ``return_to`` is already safe (or "/")."""
        query: dict[str, str] = {"provider": self.provider} if self.protocol == "saml" else {}
        if return_to != "/":
            query["return_to"] = return_to
        base = "/saml/login" if self.protocol == "saml" else f"/oidc/login/{self.provider}"
        return f"{base}?{urlencode(query)}" if query else base


def login_choices(config: BrokerConfig) -> dict[str, LoginChoice]:
    """Every sign-in choice by name, in the order the sign-in page lists them.

    The configured ``login.providers`` first. Every account SAML provider that none of
    them names also gets a stable derived name (``saml-ACCOUNT-PROVIDER``, lowercased), so
    a link to ``/login/NAME`` keeps working when providers are added later; those are
    listed only when ``login.providers`` is empty.
    """
    choices: dict[str, LoginChoice] = {}
    covered: set[str] = set()
    for name, provider in config.login.providers.items():
        if provider.saml is not None:
            arn = provider.saml.arn()
            covered.add(arn)
            choices[name] = LoginChoice(name, provider.label, "saml", arn, listed=True)
        else:
            choices[name] = LoginChoice(name, provider.label, "oidc", name, listed=True)
    listed = not config.login.providers
    for account_id, account in sorted(config.accounts.items()):
        for provider_name in sorted(account.saml_providers):
            arn = SamlProviderConfig.arn(account_id, provider_name)
            if arn in covered:
                continue
            base = _UNSAFE_NAME.sub("-", f"saml-{account_id}-{provider_name}".lower())
            name, n = base, 1
            while name in choices:
                n += 1
                name = f"{base}-{n}"
            label = f"{provider_name} ({account.alias or account_id})"
            choices[name] = LoginChoice(name, label, "saml", arn, listed=listed)
    return choices


def is_signin_query(request: Request) -> bool:
    """``GET /`` for the sign-in page: no query, or only ``return_to`` (pages that need a
    sign-in send the browser to ``/?return_to=...``). STS calls always carry ``Action``."""
    return all(key == "return_to" for key in request.query_params)


class PeopleRoutes:
    """``GET /`` (via :meth:`signin_page`), ``/login/{name}``, ``/roles``, ``/assume``,
    ``/logout``."""

    def __init__(
        self,
        *,
        config: BrokerConfig,
        sessions: BrowserSessions,
        chooser: RoleChooser,
        console: ConsoleFederation,
        audit: BrowserAudit,
        upstream: UpstreamSessions | None = None,
    ) -> None:
        self._sessions = sessions
        self._audit = audit
        self._chooser = chooser
        self._console = console
        self._upstream = upstream
        console.link_role_picker("/roles", self._form_token)
        self._public_url = config.public_url.rstrip("/")
        self._region = config.region
        self._choices = login_choices(config)
        self._labels = {name: p.label for name, p in config.login.providers.items()}
        cookies = sessions.cookies
        # Not a secret and not the session: just which button to put first.
        self._last_cookie = f"{cookies.session_name}-last-login"

    async def _form_token(self, request: Request) -> str | None:
        """The CSRF token of this browser's sign-in (for the console's Credentials form)."""
        current = await load_signed_in(self._sessions, request)
        return self._sessions.csrf_token(current[0]) if current is not None else None

    def routes(self) -> list[Route]:
        return [
            Route("/login/{name}", self.login, methods=["GET"]),
            Route("/roles", self.roles, methods=["GET"]),
            Route("/assume", self.assume, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
        ]

    # ------------------------------------------------------------------ sign-in

    async def signin_page(self, request: Request) -> Response:
        """``GET /``: one button per way to sign in, the last one used first."""
        current = await load_signed_in(self._sessions, request)
        last = cookie_value(request.headers, self._last_cookie)
        listed = [c for c in self._choices.values() if c.listed]
        listed.sort(key=lambda c: c.name != last)  # stable: config order otherwise
        return_to = safe_return_to(request.query_params.get("return_to"), RETURN_PREFIXES)
        # "Continue" goes where the page that sent the browser here wanted to go.
        proceed = after_login(return_to)
        buttons = [
            {
                "label": c.label,
                "href": _with_return_to(f"/login/{c.name}", return_to),
                "last": c.name == last,
            }
            for c in listed
        ]
        return page(
            "signin.html",
            buttons=buttons,
            proceed=proceed,
            **page_header(self._sessions, current),
        )

    async def login(self, request: Request) -> Response:
        """``/login/{name}``: remember the choice, then start that protocol's login."""
        choice = self._choices.get(request.path_params["name"])
        if choice is None:
            return error_page(404, "Unknown sign-in provider", "No such sign-in option here.")
        return_to = safe_return_to(request.query_params.get("return_to"), RETURN_PREFIXES)
        response = RedirectResponse(choice.start_url(return_to), status_code=303)
        self._sessions.cookies.set(
            response,
            self._last_cookie,
            choice.name,
            same_site="lax",
            max_age=LAST_LOGIN_SECONDS,
        )
        return response

    # ------------------------------------------------------------------ roles

    async def roles(self, request: Request) -> Response:
        """The role picker."""
        current = await load_signed_in(self._sessions, request)
        if current is None:
            return RedirectResponse("/", status_code=303)
        return self._picker(request, current)

    async def assume(self, request: Request) -> Response:
        """One role, one duration: the credentials page, or straight into the console."""
        current = await load_signed_in(self._sessions, request)
        if current is None:
            return RedirectResponse("/", status_code=303)
        signed_in = current[1]
        info = self._chooser.request_info(request)
        form = await read_form(request, _MAX_FORM_BYTES)
        try:
            if form is None:
                raise validation_error("The form is malformed: send each field once.")
            role_arn, duration, target = _assume_fields(form)
        except StsError as exc:
            return self._picker(request, current, status=400, error=exc)
        try:
            choice = self._chooser.choice(signed_in, role_arn, info)
            if choice is None:
                raise access_denied(f"Not authorized: this sign-in may not use {role_arn}")
            result = await self._chooser.assume(signed_in, role_arn, duration, info)
        except StsError as exc:
            self._role_event(request, signed_in, role_arn, duration, target, result=None, error=exc)
            return self._picker(request, current, status=_page_status(exc), error=exc)
        self._role_event(request, signed_in, role_arn, duration, target, result=result, error=None)
        try:
            console_url: str | None = await self._console_link(choice, result, info.now)
        except ConsoleSigninError as exc:
            # Not expected for credentials minted a moment ago; the keys still work.
            if target == "console":
                return error_page(403, "Console sign-in refused", str(exc), "ConsoleSignin")
            console_url = None
        except StsError as exc:
            # AWS's federation endpoint refused or could not be reached: the keys still work.
            if target == "console":
                return error_page(
                    _page_status(exc), "AWS console sign-in failed", exc.message, exc.code
                )
            log.warning("console link for %s: %s: %s", choice.arn, exc.code, exc.message)
            console_url = None
        if target == "console" and console_url is not None:
            return RedirectResponse(console_url, status_code=303)
        return self._credentials(current, choice, result, console_url)

    async def _console_link(self, choice: RoleChoice, result: Mapping[str, Any], now: float) -> str:
        """The console sign-in URL for fresh credentials: AWS's federation endpoint for an
        upstream role, the broker's own ``/federation`` for a local one."""
        if choice.upstream and self._upstream is not None:
            return await self._upstream.console_link(result["Credentials"], now)
        return self._console.login_url(result["Credentials"])

    def _role_event(
        self,
        request: Request,
        signed_in: SignedIn,
        role_arn: str,
        duration: int,
        target: str,
        *,
        result: Mapping[str, Any] | None,
        error: StsError | None,
    ) -> None:
        self._audit.role_session(
            request,
            signed_in,
            self._chooser.identity_for(signed_in, role_arn),
            role_arn=role_arn,
            duration=duration,
            result=result,
            error=None if error is None else (error.code, error.message),
            via="browser",
            target=target,
        )

    async def logout(self, request: Request) -> Response:
        """End the session on the server (the CSRF middleware checked the form)."""
        response = RedirectResponse("/", status_code=303)
        await self._sessions.destroy(request, response)
        return response

    # ------------------------------------------------------------------ rendering

    def _picker(
        self,
        request: Request,
        current: tuple[Session, SignedIn],
        *,
        status: int = 200,
        error: StsError | None = None,
    ) -> Response:
        signed_in = current[1]
        info = self._chooser.request_info(request)
        choices = self._chooser.roles(signed_in, info)
        views = [_role_view(c, f"duration-{n}") for n, c in enumerate(choices)]
        accounts = [
            {"label": label, "roles": [view for _, view in group]}
            for label, group in groupby(
                zip(choices, views, strict=True), key=lambda pair: pair[0].account_label
            )
        ]
        return page(
            "roles.html",
            status,
            accounts=accounts,
            searchable=len(choices) > SEARCH_THRESHOLD,
            via=self._labels.get(signed_in.login) or signed_in.issuer,
            why=[] if choices else self._chooser.explain(signed_in, info),
            error=error,
            **page_header(self._sessions, current),
        )

    def _credentials(
        self,
        current: tuple[Session, SignedIn],
        choice: RoleChoice,
        result: Mapping[str, Any],
        console_url: str | None,
    ) -> Response:
        credentials = result["Credentials"]
        expires = float(credentials["Expiration"])
        profile = choice.name.lower()
        return page(
            "credentials.html",
            role=choice,
            session_arn=result["AssumedRoleUser"]["Arn"],
            expires_iso=iso8601(expires),
            expires_utc=utc_text(expires),
            console_url=console_url,
            snippets=credential_snippets(
                credentials,
                public_url=self._public_url,
                profile=profile,
                role_arn=choice.arn,
                region=self._region,
                upstream=choice.upstream,
            ),
            **page_header(self._sessions, current),
        )


def _page_status(error: StsError) -> int:
    """The role picker's status for a refusal: AWS's for a server-side failure (an upstream
    that is down answers 503), 400 for a bad request or throttling, else 403."""
    if error.status >= 500:
        return error.status
    return 400 if error.code in ("ValidationError", "Throttling") else 403


def _assume_fields(form: Mapping[str, str]) -> tuple[str, int, str]:
    """(role ARN, duration, target) from the picker's form; ValidationError otherwise."""
    role_arn = form.get("role", "")
    raw = form.get("duration", "")
    target = form.get("target", "")
    if not role_arn:
        raise validation_error("Choose a role.")
    if target not in ("console", "credentials"):
        raise validation_error("Choose Console or Credentials.")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
        raise validation_error("The session duration must be a number of seconds.")
    duration = int(raw)
    if not MIN_DURATION <= duration <= MAX_DURATION:
        # AssumeRole's own DurationSeconds bounds (the API's model checks them there).
        raise validation_error(
            f"The session duration must be {MIN_DURATION} to {MAX_DURATION} seconds."
        )
    return role_arn, duration, target


def _role_view(choice: RoleChoice, element_id: str) -> dict[str, Any]:
    return {
        "id": element_id,
        "arn": choice.arn,
        "name": choice.name,
        "description": choice.description,
        "durations": duration_options(choice.max_duration),
    }


def _with_return_to(path: str, return_to: str) -> str:
    return f"{path}?{urlencode({'return_to': return_to})}" if return_to != "/" else path
