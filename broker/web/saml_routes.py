"""SAML in the browser: SP metadata, SP-initiated login, the ACS, and the roles it yields.

The ACS verifies with the same :class:`~broker.identity.saml.SamlVerifier` as the
``AssumeRoleWithSAML`` API (one code path). What the ACS adds is the binding to the
browser: the AuthnRequest ID travels in the Store under a single-use RelayState handle
tied to this browser's login cookie (:class:`~broker.web.login.LoginBinding`), the
Response must answer exactly that request, and the assertion ID is consumed once here;
the browser session carries the identity from then on, as a
:class:`~broker.web.signin.SignedIn` that the role picker (:mod:`broker.web.people`) reads.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from broker.clock import Clock
from broker.config import LoginProviderConfig
from broker.errors import StsError
from broker.identity import FederatedIdentity, SamlIdentity, SamlVerifier
from broker.identity.saml.sp import (
    HTTP_REDIRECT,
    authn_request,
    new_request_id,
    redirect_url,
    sp_metadata,
)
from broker.store import Store
from broker.sts.engine import REPLAY_MARGIN_SECONDS
from broker.web.audit import BrowserAudit
from broker.web.forms import read_form
from broker.web.login import LoginBinding, LoginBindingError
from broker.web.pages import error_page
from broker.web.redirects import DEFAULT_RETURN, after_login
from broker.web.sessions import BrowserSessions
from broker.web.signin import SignedIn

log = logging.getLogger("broker.web.saml")

_NO_SESSION_NAME = (
    "The identity provider's response has no RoleSessionName attribute "
    "(https://aws.amazon.com/SAML/Attributes/RoleSessionName). AWS requires one, and so "
    "does this broker: ask your identity provider administrator to add it to the AWS app."
)


def signed_in(identity: SamlIdentity, logins: Mapping[str, LoginProviderConfig]) -> SignedIn:
    """What the browser session keeps of a verified SAML identity.

    One :class:`FederatedIdentity` per provider the assertion pairs a role with (an IdP
    registered in several accounts), each seen through its own provider, so every account's
    trust policies see exactly what ``AssumeRoleWithSAML`` through that provider would.
    The login is the first ``login.providers`` entry naming one of those providers; its
    ``roles`` patterns narrow what the picker offers.
    """
    if identity.session_name is None:
        raise ValueError("a browser session needs the assertion's RoleSessionName")
    providers = list(dict.fromkeys(role.provider_arn for role in identity.roles))
    login = ""
    patterns: tuple[str, ...] = ()
    for name, provider in logins.items():
        if provider.saml is not None and provider.saml.arn() in providers:
            login, patterns = name, tuple(provider.roles)
            break
    return SignedIn(
        protocol="saml",
        login=login,
        issuer=identity.issuer,
        subject=identity.subject,
        display_name=identity.subject,
        session_name=identity.session_name,
        identities=tuple(
            FederatedIdentity.from_saml(identity.for_provider(arn)) for arn in providers
        ),
        role_patterns=patterns,
    )


class SamlBrowserRoutes:
    """Endpoints under ``/saml``: SP metadata, SP-initiated login and the ACS."""

    def __init__(
        self,
        *,
        verifier: SamlVerifier,
        sessions: BrowserSessions,
        login: LoginBinding,
        store: Store,
        clock: Clock,
        logins: Mapping[str, LoginProviderConfig],
        max_body_bytes: int,
        audit: BrowserAudit,
    ) -> None:
        self._verifier = verifier
        self._audit = audit
        self._sessions = sessions
        self._login = login
        self._store = store
        self._clock = clock
        self._logins = logins
        self._max_body = max_body_bytes

    def routes(self) -> list[Route]:
        return [
            Route("/saml/metadata", self.metadata, methods=["GET"]),
            Route("/saml/login", self.start_login, methods=["GET"]),
            Route("/saml/acs", self.acs, methods=["POST"]),
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
            return_to=after_login(request.query_params.get("return_to")),
        )
        response.headers["location"] = redirect_url(
            endpoint.location, xml, handle, self._verifier.sp_credentials
        )
        return response

    async def acs(self, request: Request) -> Response:
        """The IdP's POST. Every refusal is a page and leaves no session behind."""
        form = await read_form(request, self._max_body)
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
            self._signin_event(request, None, (exc.code, exc.message))
            return error_page(400, "Sign-in failed", exc.message, exc.code)
        except StsError as exc:
            log.info("SAML ACS refused: %s %s", exc.code, exc.message)
            self._signin_event(request, None, (exc.code, exc.message))
            return error_page(
                403 if exc.status == 403 else 400, "Sign-in refused", exc.message, exc.code
            )
        if identity.session_name is None:
            # Every role session is named after it, and the API refuses such an assertion
            # too: signing the person in would only lead to a picker whose every role fails.
            log.info("SAML ACS refused: no RoleSessionName from %s", identity.issuer)
            self._signin_event(request, identity, ("InvalidIdentityToken", _NO_SESSION_NAME))
            return error_page(400, "Sign-in refused", _NO_SESSION_NAME, "InvalidIdentityToken")
        ttl = max(1.0, identity.not_on_or_after - self._clock.time()) + REPLAY_MARGIN_SECONDS
        if not await self._store.claim(
            "saml-acs", f"{identity.issuer}#{identity.assertion_id}", ttl
        ):
            replayed = "This sign-in response was already used."
            self._signin_event(request, identity, ("AssertionReplayed", replayed))
            return error_page(400, "Sign-in refused", replayed, "AssertionReplayed")
        response = RedirectResponse(after_login(return_to), status_code=303)
        session = signed_in(identity, self._logins)
        await self._sessions.create(request, response, session.to_session())
        self._signin_event(request, identity, None, session.login)
        log.info(
            "SAML login %s via %s (%d roles)",
            identity.subject,
            identity.issuer,
            len(identity.roles),
        )
        return response

    def _signin_event(
        self,
        request: Request,
        identity: SamlIdentity | None,
        error: tuple[str, str] | None,
        login: str = "",
    ) -> None:
        """The ``SignIn`` audit event; ``login`` is the ``login.providers`` name, when the
        sign-in got that far (else the provider ARN stands in)."""
        self._audit.signin(
            request,
            protocol="saml",
            login=login or (identity.provider_arn if identity else ""),
            verified=identity,
            error=error,
        )
