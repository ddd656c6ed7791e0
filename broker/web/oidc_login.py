"""Signing people in with OIDC: authorization code flow with PKCE S256, one callback per provider.

``GET /oidc/login/{name}`` sends the browser to the provider; ``GET /oidc/callback/{name}``
takes the answer, trades the code for tokens and stores a :class:`SignedIn` in a new
browser session. The OAuth side (authorization URL, PKCE challenge, client authentication
at the token endpoint, the token response) is authlib's
:class:`~authlib.integrations.httpx_client.AsyncOAuth2Client`. authlib's *Starlette*
integration is deliberately not used: it keeps ``state``, ``nonce`` and the code verifier
in Starlette's client-side ``request.session`` cookie, which this broker does not have.
Here they live server-side under the single-use :class:`~broker.web.login.LoginBinding`
handle (which travels as ``state``) tied to this browser's login cookie, as for SAML.

What the callback insists on, and why, in order:

1. The handle: known, unexpired, unused, started by this browser, for this provider name
   (login CSRF, replay, and a ``state`` moved from one provider's callback to another's).
2. RFC 9207 ``iss``: required when discovery announces
   ``authorization_response_iss_parameter_supported``, and equal to the issuer whenever
   present. Without it a provider the broker also trusts could answer a request made to
   another one and have its code sent to the wrong token endpoint (the mix-up attack).
3. The code is redeemed with the PKCE verifier (a stolen code is useless without it).
4. The ID token is verified by :class:`~broker.identity.WebIdentityVerifier` for every
   account whose ``oidc_providers`` lists this issuer with this client ID: the very checks
   of ``AssumeRoleWithWebIdentity`` (signature, ``iss``, times, audience, the issuer
   kind's rules), so a browser can never sign in with a token the API would refuse. On top
   of that, as OpenID Connect Core 3.1.3.7 asks of a relying party: the token must come
   from *this* provider (not another issuer the account also trusts), name this client
   in ``aud`` (and ``azp`` if present), and carry the ``nonce`` sent (constant-time).

Every refusal is an error page with a stable code, never a 500, and creates no session;
no code, token, verifier or secret is logged or shown. The provider's discovery document
is fetched with the broker's bounded fetch and cached for ``oidc.jwks_ttl_seconds``; the
token endpoint is reached with a bounded response size and no redirects.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Recent authlib releases warn, on import, that plain httpx is deprecated in favour of
# ``httpx2``. The broker is built on httpx (its transports, its bounded fetch) and authlib
# still supports it, so the warning is silenced for the one import below. authlib.deprecate
# goes first because importing it installs an "always" filter that would beat ours.
import authlib.deprecate  # type: ignore[import-untyped]  # noqa: F401
import httpx
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from broker.clock import Clock
from broker.config import (
    BrokerConfig,
    OidcLoginConfig,
    oidc_arn_path,
)
from broker.errors import StsError
from broker.identity import FederatedIdentity, WebIdentity, WebIdentityVerifier
from broker.identity.claims import claim_path
from broker.identity.fetch import BoundedTransport
from broker.identity.oidc.discovery import DiscoveryError, ProviderDiscovery, ProviderMetadata
from broker.observability import Check
from broker.web.audit import BrowserAudit
from broker.web.login import LoginBinding, LoginBindingError, PendingLogin
from broker.web.pages import error_page
from broker.web.redirects import DEFAULT_RETURN, after_login
from broker.web.sessions import BrowserSessions
from broker.web.signin import SignedIn, role_session_name

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.base_client import (  # type: ignore[import-untyped]
        OAuthError,
    )
    from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
        AsyncOAuth2Client,
    )

log = logging.getLogger("broker.web.oidc")

MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
"""An ID token is at most ``oidc.max_token_bytes`` (20000); the rest of the answer is small."""
_CODE = re.compile(r"[\x21-\x7e]{1,2048}", re.ASCII)
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}", re.ASCII)
"""RFC 6749 section 4.1.2.1: ``error`` is NQSCHAR; longer than 64 is not a real code."""
_ERROR_TEXT = re.compile(r"[\x20-\x7e]{1,200}", re.ASCII)
_USER_ERRORS = frozenset(
    {
        "access_denied",
        "login_required",
        "consent_required",
        "interaction_required",
        "account_selection_required",
    }
)
"""IdP answers that mean "this person did not (or could not) sign in": 403, not 502."""
_MAX_DISPLAY = 256
_MAX_ROLES_CLAIM = 1000


def redirect_uri(public_url: str, name: str) -> str:
    """The callback of login provider ``name``: the redirect URI registered with its client."""
    return f"{public_url}/oidc/callback/{name}"


@dataclass(frozen=True)
class _LoginProvider:
    name: str
    label: str
    config: OidcLoginConfig
    roles: tuple[str, ...]
    accounts: tuple[tuple[str, str], ...]
    """(account, provider ARN) of every account trusting this issuer with this client ID."""
    redirect_uri: str


class Refusal(Exception):
    """A login refused: becomes an error page; ``message`` is safe to show."""

    def __init__(
        self, status: int, code: str, message: str, *, title: str = "Sign-in refused"
    ) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message
        self.title = title

    def page(self) -> Response:
        return error_page(self.status, self.title, self.message, self.code)


class OidcLoginRoutes:
    """``/oidc/login/{name}`` and ``/oidc/callback/{name}`` for every ``login.providers``
    entry with ``oidc``."""

    def __init__(
        self,
        *,
        config: BrokerConfig,
        web: WebIdentityVerifier,
        sessions: BrowserSessions,
        login: LoginBinding,
        clock: Clock,
        audit: BrowserAudit,
    ) -> None:
        self._web = web
        self._audit = audit
        self._sessions = sessions
        self._login = login
        self._timeout = httpx.Timeout(float(config.oidc.http_timeout_seconds))
        self._http = httpx.AsyncClient(follow_redirects=False)
        """For discovery (through the bounded fetch)."""
        self._discovery = ProviderDiscovery(config.oidc, clock, self._http)
        self._transport = BoundedTransport(httpx.AsyncHTTPTransport(), MAX_TOKEN_RESPONSE_BYTES)
        """For the token endpoint, shared by every login's authlib client."""
        self._providers: dict[str, _LoginProvider] = {}
        for name, provider in config.login.providers.items():
            if provider.oidc is None:
                continue
            oidc = provider.oidc
            accounts = tuple(
                (account, trusted.arn(account))
                for account, account_config in config.accounts.items()
                for trusted in account_config.oidc_providers
                if trusted.arn_path == oidc_arn_path(oidc.url)
                and oidc.client_id in trusted.client_ids
            )
            self._providers[name] = _LoginProvider(
                name=name,
                label=provider.label,
                config=oidc,
                roles=tuple(provider.roles),
                accounts=accounts,
                redirect_uri=redirect_uri(config.public_url, name),
            )

    def routes(self) -> list[Route]:
        return [
            Route("/oidc/login/{name}", self.start_login, methods=["GET"]),
            Route("/oidc/callback/{name}", self.callback, methods=["GET"]),
        ]

    async def discovery_checks(self, *, wait: float) -> list[Check]:
        """Readiness: can each login provider's sign-in start (its discovery document)?"""
        providers = list(self._providers.values())
        problems = await asyncio.gather(
            *(self._discovery.check(p.config.url, wait=wait) for p in providers)
        )
        return [
            Check("oidc_discovery", p.name, problem)
            for p, problem in zip(providers, problems, strict=True)
        ]

    async def aclose(self) -> None:
        """Close both connection pools (app shutdown)."""
        await self._http.aclose()
        await self._transport.shutdown()

    # -- routes ---------------------------------------------------------------------------

    async def start_login(self, request: Request) -> Response:
        """Send the browser to the provider's authorization endpoint (302)."""
        provider = self._providers.get(str(request.path_params["name"]))
        if provider is None:
            return _unknown_provider()
        try:
            metadata = await self._metadata(provider)
            client = self._client(provider, metadata)
        except Refusal as refusal:
            return refusal.page()
        nonce = secrets.token_urlsafe(32)
        # 64 characters of RFC 7636's unreserved set (43-128 allowed): 384 random bits.
        verifier = secrets.token_urlsafe(48)
        response = RedirectResponse("/", status_code=302)
        handle = await self._login.begin(
            request,
            response,
            kind="oidc",
            request_id=nonce,
            return_to=request.query_params.get("return_to", DEFAULT_RETURN),
            extra={"provider": provider.name, "verifier": verifier},
        )
        async with client:
            url, _ = client.create_authorization_url(
                metadata.authorization_endpoint,
                state=handle,
                code_verifier=verifier,
                nonce=nonce,
            )
        response.headers["location"] = str(url)
        return response

    async def callback(self, request: Request) -> Response:
        """The provider's answer. Every refusal is a page and leaves no session behind."""
        provider = self._providers.get(str(request.path_params["name"]))
        if provider is None:
            return _unknown_provider()
        try:
            signed_in, return_to, verified = await self._sign_in(request, provider)
        except Refusal as refusal:
            log.info("OIDC login via %s refused: %s", provider.name, refusal.code)
            self._audit.signin(
                request,
                protocol="oidc",
                login=provider.name,
                verified=None,
                error=(refusal.code, refusal.message),
            )
            return refusal.page()
        response = RedirectResponse(after_login(return_to), status_code=303)
        await self._sessions.create(request, response, signed_in.to_session())
        self._audit.signin(
            request, protocol="oidc", login=provider.name, verified=verified, error=None
        )
        log.info("OIDC login %r via %s", signed_in.subject[:64], provider.name)
        return response

    # -- steps ----------------------------------------------------------------------------

    async def _sign_in(
        self, request: Request, provider: _LoginProvider
    ) -> tuple[SignedIn, str, WebIdentity]:
        params = _single_params(request)
        metadata = await self._metadata(provider)
        pending = await self._finish(request, params.get("state", ""), provider)
        _check_iss(params, metadata)
        error = params.get("error")
        if error is not None:
            raise _idp_error(error, params.get("error_description"))
        code = params.get("code", "")
        if not _CODE.fullmatch(code):
            raise Refusal(
                400, "MalformedCallback", "The sign-in response has no usable authorization code."
            )
        id_token = await self._redeem(provider, metadata, code, pending.extra["verifier"])
        identities = await self._verify(provider, id_token)
        claims = identities[0].claims
        _check_client(claims, provider.config.client_id)
        _check_nonce(claims, pending.request_id)
        return _signed_in(provider, identities), pending.return_to, identities[0]

    async def _metadata(self, provider: _LoginProvider) -> ProviderMetadata:
        try:
            return await self._discovery.metadata(provider.config.url)
        except DiscoveryError as exc:
            raise Refusal(
                502,
                "OidcDiscoveryFailed",
                f"The sign-in provider {provider.label} can't be used right now: {exc}.",
                title="Identity provider unavailable",
            ) from None

    async def _finish(self, request: Request, state: str, provider: _LoginProvider) -> PendingLogin:
        try:
            pending = await self._login.finish(request, state, kind="oidc")
        except LoginBindingError as exc:
            raise Refusal(400, exc.code, exc.message, title="Sign-in failed") from None
        if pending.extra.get("provider") != provider.name or "verifier" not in pending.extra:
            raise Refusal(
                400,
                "LoginProviderMismatch",
                "This sign-in response arrived for another provider than the one it was "
                "started with; start again.",
                title="Sign-in failed",
            )
        return pending

    def _client(self, provider: _LoginProvider, metadata: ProviderMetadata) -> Any:
        """A fresh authlib client for one login (it holds per-login token state)."""
        secret = provider.config.client_secret
        if secret is None:
            method = "none"
        elif "client_secret_basic" in metadata.token_auth_methods:
            method = "client_secret_basic"
        elif "client_secret_post" in metadata.token_auth_methods:
            method = "client_secret_post"
        else:
            raise Refusal(
                502,
                "OidcDiscoveryFailed",
                f"The sign-in provider {provider.label} accepts neither client_secret_basic "
                "nor client_secret_post at its token endpoint.",
                title="Identity provider unavailable",
            )
        return AsyncOAuth2Client(
            client_id=provider.config.client_id,
            client_secret=None if secret is None else secret.get_secret_value(),
            token_endpoint_auth_method=method,
            scope=" ".join(provider.config.scopes),
            redirect_uri=provider.redirect_uri,
            code_challenge_method="S256",
            transport=self._transport,
            timeout=self._timeout,
            follow_redirects=False,
            trust_env=False,
        )

    async def _redeem(
        self, provider: _LoginProvider, metadata: ProviderMetadata, code: str, verifier: str
    ) -> str:
        """The ID token the token endpoint gives for ``code`` and ``verifier``."""
        try:
            async with self._client(provider, metadata) as client:
                token = await client.fetch_token(
                    metadata.token_endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=verifier,
                )
        except OAuthError as exc:
            error = exc.error if isinstance(exc.error, str) else ""
            shown = error if _ERROR_CODE.fullmatch(error) else "an unknown error"
            raise Refusal(
                400,
                "TokenExchangeRefused",
                f"The identity provider refused to redeem the sign-in ({shown}); start again.",
            ) from None
        except (httpx.HTTPError, ValueError, TypeError, KeyError) as exc:
            log.warning("OIDC token endpoint of %s failed: %s", provider.name, type(exc).__name__)
            raise Refusal(
                502,
                "TokenEndpointUnavailable",
                f"The sign-in provider {provider.label} did not answer the token request "
                "usably; try again later.",
                title="Identity provider unavailable",
            ) from None
        id_token = token.get("id_token") if isinstance(token, Mapping) else None
        if not isinstance(id_token, str):
            raise Refusal(
                502,
                "NoIdToken",
                f"The sign-in provider {provider.label} answered without an ID token.",
                title="Identity provider unavailable",
            )
        return id_token

    async def _verify(self, provider: _LoginProvider, id_token: str) -> list[WebIdentity]:
        """The token as each trusting account sees it: the API's checks, one per account."""
        if not provider.accounts:
            raise Refusal(
                403,
                "NoTrustingAccount",
                "No account trusts this provider with this client ID, so no role could be used.",
            )
        identities: list[WebIdentity] = []
        for account, provider_arn in provider.accounts:
            try:
                identity = await self._web.verify(id_token, account=account)
            except StsError as exc:
                if exc.code == "IDPCommunicationError":
                    raise Refusal(
                        502, exc.code, exc.message, title="Identity provider unavailable"
                    ) from None
                raise Refusal(403, exc.code, exc.message) from None
            if identity.provider_arn != provider_arn:
                raise Refusal(
                    403,
                    "IdTokenIssuerMismatch",
                    f"The ID token was issued by another provider than {provider.label}.",
                )
            identities.append(identity)
        return identities


def _unknown_provider() -> Response:
    return error_page(
        404, "Unknown sign-in provider", "No such sign-in provider here.", "UnknownLoginProvider"
    )


def _single_params(request: Request) -> dict[str, str]:
    """The query, each parameter at most once (RFC 6749 section 3.1: repeats are invalid)."""
    query = request.query_params
    if len(query) > 20 or any(len(query.getlist(key)) > 1 for key in query):
        raise Refusal(
            400,
            "MalformedCallback",
            "The sign-in response repeats parameters or has too many.",
            title="Sign-in failed",
        )
    return dict(query)


def _check_iss(params: Mapping[str, str], metadata: ProviderMetadata) -> None:
    """RFC 9207: required when announced; compared exactly whenever present."""
    iss = params.get("iss")
    if iss is None:
        if metadata.iss_parameter_supported:
            raise Refusal(
                400,
                "IssuerMissing",
                "The sign-in response does not say which provider sent it (no iss), though "
                "this provider always does; start again.",
            )
        return
    if not hmac.compare_digest(iss.encode("utf-8"), metadata.issuer.encode("utf-8")):
        raise Refusal(
            400,
            "IssuerMismatch",
            "The sign-in response comes from another identity provider than the one asked "
            "(iss does not match); start again.",
        )


def _idp_error(error: str, description: str | None) -> Refusal:
    shown = error if _ERROR_CODE.fullmatch(error) else "unknown_error"
    message = f"The identity provider did not sign you in: {shown}."
    if description is not None and _ERROR_TEXT.fullmatch(description):
        message += f" It said: {description}"
    status = 403 if shown in _USER_ERRORS else 502
    return Refusal(status, "IdentityProviderError", message)


def _check_client(claims: Mapping[str, Any], client_id: str) -> None:
    """OIDC Core 3.1.3.7 (3)-(5): this client is an audience and, if named, the azp.

    The verifier already accepts any client ID the account registers for the issuer; a
    browser login must get a token issued to *its* client, not another application's.
    """
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    azp = claims.get("azp")
    if client_id not in audiences or (azp is not None and azp != client_id):
        raise Refusal(
            403,
            "IdTokenAudienceMismatch",
            "The ID token was issued to another application than this broker's sign-in.",
        )


def _check_nonce(claims: Mapping[str, Any], expected: str) -> None:
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not hmac.compare_digest(
        nonce.encode("utf-8"), expected.encode("utf-8")
    ):
        raise Refusal(
            403,
            "NonceMismatch",
            "The ID token does not answer this sign-in (nonce mismatch); start again.",
        )


def _email_verified(claims: Mapping[str, Any]) -> bool:
    """Only an explicit ``false`` (Cognito may send the string) marks an address unverified."""
    verified = claims.get("email_verified")
    return verified is not False and verified != "false"


def _signed_in(provider: _LoginProvider, identities: list[WebIdentity]) -> SignedIn:
    """The session's :class:`SignedIn`.

    - ``display_name``: the ``email`` claim unless the provider says it is unverified, else
      ``sub`` (an unverified address is only what someone typed).
    - ``session_name``: from ``session_name_claim`` (``email`` by default), falling back to
      ``sub``; an unverified ``email`` is never used, as it would put a name the person
      merely typed into every role session's ARN.
    - ``allowed_roles``: with ``roles_claim`` set (a claim name or a JSON pointer into the
      normalised claims), exactly the strings of that claim's list; a missing or
      malformed claim allows no role at all (fail closed).
    """
    claims = identities[0].claims
    subject = identities[0].subject
    verified = _email_verified(claims)
    email = claims.get("email")
    display = email if isinstance(email, str) and email and verified else subject
    name_claim = provider.config.session_name_claim
    raw_name = claims.lookup(claim_path(name_claim))
    if not isinstance(raw_name, str) or (name_claim == "email" and not verified):
        raw_name = subject
    allowed: tuple[str, ...] | None = None
    if provider.config.roles_claim is not None:
        # A name, or a JSON pointer (/realm_access/roles) into the normalised claims.
        listed = claims.lookup(claim_path(provider.config.roles_claim))
        allowed = ()
        if (
            isinstance(listed, list)
            and len(listed) <= _MAX_ROLES_CLAIM
            and all(isinstance(v, str) for v in listed)
        ):
            allowed = tuple(listed)
    return SignedIn(
        protocol="oidc",
        login=provider.name,
        issuer=provider.config.url,
        subject=subject,
        display_name=display[:_MAX_DISPLAY],
        session_name=role_session_name(raw_name, subject),
        identities=tuple(FederatedIdentity.from_web(identity) for identity in identities),
        role_patterns=provider.roles,
        allowed_roles=allowed,
    )
