"""SAML in the browser: SP metadata, SP-initiated login, the ACS, and the roles it yields.

The ACS verifies with the same :class:`~broker.identity.saml.SamlVerifier` as the
``AssumeRoleWithSAML`` API (one code path). What the ACS adds is the binding to the
browser: the AuthnRequest ID travels in the Store under a single-use RelayState handle
tied to this browser's login cookie (:class:`~broker.web.login.LoginBinding`), the
Response must answer exactly that request, and the assertion ID is consumed once here;
the browser session carries the identity from then on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from broker.clock import Clock
from broker.directory import Directory
from broker.errors import StsError
from broker.identity import SamlIdentity, SamlVerifier
from broker.store import Store
from broker.sts.engine import REPLAY_MARGIN_SECONDS
from broker.web.login import LoginBinding, LoginBindingError
from broker.web.pages import error_page, page
from broker.web.redirects import safe_return_to
from broker.web.saml_sp import (
    HTTP_REDIRECT,
    authn_request,
    new_request_id,
    redirect_url,
    sp_metadata,
)
from broker.web.sessions import BrowserSessions

log = logging.getLogger("broker.web.saml")

RETURN_PREFIXES = ("/roles", "/credentials")
"""Where a login may send the browser afterwards (everything else becomes ``/roles``)."""
DEFAULT_RETURN = "/roles"


def session_data(identity: SamlIdentity) -> dict[str, Any]:
    """What the browser session keeps of a verified SAML identity (JSON-ready).

    Enough to pick any of its roles later without a new IdP login while the session lives.
    """
    return {
        "kind": "saml",
        "issuer": identity.issuer,
        "subject": identity.subject,
        "subject_type": identity.subject_type,
        "audience": identity.audience,
        "roles": [[r.role_arn, r.provider_arn] for r in identity.roles],
        "session_name": identity.session_name,
        "session_duration": identity.session_duration,
        "session_not_on_or_after": identity.session_not_on_or_after,
        "source_identity": identity.source_identity,
        "session_tags": dict(identity.session_tags),
        "transitive_tag_keys": list(identity.transitive_tag_keys),
        "context": {k: list(v) if isinstance(v, tuple) else v for k, v in identity.context.items()},
    }


class SamlBrowserRoutes:
    """Endpoints under ``/saml`` plus the roles page a SAML login lands on."""

    def __init__(
        self,
        *,
        verifier: SamlVerifier,
        sessions: BrowserSessions,
        login: LoginBinding,
        store: Store,
        clock: Clock,
        directory: Directory,
        max_body_bytes: int,
    ) -> None:
        self._verifier = verifier
        self._sessions = sessions
        self._login = login
        self._store = store
        self._clock = clock
        self._directory = directory
        self._max_body = max_body_bytes

    def routes(self) -> list[Route]:
        return [
            Route("/saml/metadata", self.metadata, methods=["GET"]),
            Route("/saml/login", self.start_login, methods=["GET"]),
            Route("/saml/acs", self.acs, methods=["POST"]),
            Route("/roles", self.roles, methods=["GET"]),
        ]

    async def metadata(self, request: Request) -> Response:
        body = sp_metadata(
            entity_id=self._verifier.sp_entity_id,
            acs_url=self._verifier.acs_url,
            credentials=self._verifier.sp_credentials,
        )
        return Response(body, media_type="application/samlmetadata+xml")

    async def start_login(self, request: Request) -> Response:
        """``/saml/login?provider=ARN[&return_to=/path]``: send the browser to the IdP."""
        provider = request.query_params.get("provider", "")
        if provider not in self._verifier.provider_arns():
            return error_page(404, "Unknown sign-in provider", "No such SAML provider here.")
        try:
            metadata = await self._verifier.idp_metadata(provider)
        except StsError as exc:
            return error_page(502, "Identity provider unavailable", exc.message, exc.code)
        endpoint = next((e for e in metadata.sso_endpoints if e.binding == HTTP_REDIRECT), None)
        if endpoint is None:
            return error_page(
                502,
                "Identity provider unavailable",
                "The IdP's metadata offers no HTTP-Redirect single sign-on endpoint.",
            )
        request_id = new_request_id()
        xml = authn_request(
            request_id=request_id,
            entity_id=self._verifier.sp_entity_id,
            acs_url=self._verifier.acs_url,
            destination=endpoint.location,
            now=self._clock.time(),
        )
        response = RedirectResponse("/", status_code=302)
        handle = await self._login.begin(
            request,
            response,
            kind="saml",
            request_id=request_id,
            return_to=_return_to(request.query_params.get("return_to", DEFAULT_RETURN)),
        )
        response.headers["location"] = redirect_url(
            endpoint.location, xml, handle, self._verifier.sp_credentials
        )
        return response

    async def acs(self, request: Request) -> Response:
        """The IdP's POST. Every refusal is a page and leaves no session behind."""
        form = await self._form(request)
        if form is None:
            return error_page(
                400, "Sign-in failed", "The sign-in response is missing or malformed."
            )
        saml_response = form.get("SAMLResponse", "")
        relay = form.get("RelayState", "")
        in_response_to: str | None = None
        return_to = DEFAULT_RETURN
        try:
            if relay:
                pending = await self._login.finish(request, relay, kind="saml")
                in_response_to, return_to = pending.request_id, pending.return_to
            identity = await self._verifier.verify(
                saml_response, provider_arn=None, in_response_to=in_response_to, api=False
            )
        except LoginBindingError as exc:
            return error_page(400, "Sign-in failed", exc.message, exc.code)
        except StsError as exc:
            log.info("SAML ACS refused: %s %s", exc.code, exc.message)
            return error_page(
                403 if exc.status == 403 else 400, "Sign-in refused", exc.message, exc.code
            )
        ttl = max(1.0, identity.not_on_or_after - self._clock.time()) + REPLAY_MARGIN_SECONDS
        if not await self._store.claim(
            "saml-acs", f"{identity.issuer}#{identity.assertion_id}", ttl
        ):
            return error_page(
                400,
                "Sign-in refused",
                "This sign-in response was already used.",
                "AssertionReplayed",
            )
        response = RedirectResponse(_return_to(return_to), status_code=303)
        await self._sessions.create(request, response, session_data(identity))
        log.info(
            "SAML login %s via %s (%d roles)",
            identity.subject,
            identity.issuer,
            len(identity.roles),
        )
        return response

    async def roles(self, request: Request) -> Response:
        """The roles this sign-in may use, grouped by account."""
        session = await self._sessions.load(request)
        if session is None:
            return RedirectResponse("/", status_code=303)
        grouped: dict[str, list[dict[str, str]]] = {}
        for role_arn, _provider in session.data.get("roles", []):
            account = role_arn.split(":")[4]
            grouped.setdefault(account, []).append(
                {"arn": role_arn, "name": role_arn.rsplit("/", 1)[-1]}
            )
        accounts = [
            {"label": _account_label(account, self._directory.aliases), "roles": roles}
            for account, roles in sorted(grouped.items())
        ]
        return page(
            "roles.html",
            subject=session.data.get("subject", ""),
            issuer=session.data.get("issuer", ""),
            accounts=accounts,
        )

    async def _form(self, request: Request) -> Mapping[str, str] | None:
        """The urlencoded form, each field exactly once, within the size limit."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > self._max_body:
                return None
        try:
            pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            return None
        form: dict[str, str] = {}
        for key, value in pairs:
            if key in form:
                return None
            form[key] = value
        return form


def _return_to(value: str) -> str:
    """An allow-listed path to land on after login; anything else lands on the roles page."""
    safe = safe_return_to(value, RETURN_PREFIXES)
    return safe if safe != "/" else DEFAULT_RETURN


def _account_label(account: str, aliases: Mapping[str, str]) -> str:
    alias = aliases.get(account)
    return f"{alias} ({account})" if alias else account
