"""AWS console federation (the "custom identity broker" protocol) against this broker.

``GET /federation?Action=getSigninToken`` trades AssumeRole* or GetFederationToken
credentials for a SigninToken; ``GET /federation?Action=login`` trades that token for a
console session cookie and redirects to ``/console``, a landing page that shows who the
session is and what it may do, with a way back to the role picker and ``POST
/console/logout`` to end the console session.

Both the SigninToken and the console cookie are sealed with the broker's
:class:`~broker.identity.session_tokens.TokenSealer` (AES-GCM, authenticated), as claims of
their own kinds (``console-signin``, ``console-session``) with the access key ID
``console``. Neither works as an STS session token (the secret derived for it is never
disclosed, and getSigninToken refuses its kind), and no STS session token is accepted as
either.

Like AWS, a SigninToken is valid for 15 minutes and is *not* single-use: anyone holding the
login URL during that window can sign in, so it must travel only over HTTPS.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from broker.clock import Clock, iso8601
from broker.directory import Directory
from broker.errors import StsError
from broker.iam import Policy
from broker.identity import (
    SessionClaims,
    SessionRevocations,
    TokenInvalidError,
    TokenSealer,
)
from broker.jsonread import JsonRefusedError, read_json
from broker.web.audit import BrowserAudit
from broker.web.forms import read_form
from broker.web.pages import error_page, page
from broker.web.security import (
    CROSS_ORIGIN_MESSAGE,
    CSRF_FIELD,
    STALE_FORM_MESSAGE,
    origin_of,
    refusal,
    same_origin,
)

SIGNIN_TOKEN_SECONDS = 15 * 60
MIN_SESSION_DURATION = 900
MAX_SESSION_DURATION = 43200
CHAINED_MAX_SESSION_DURATION = 3600
CONSOLE_PATH = "/console"
CONSOLE_LOGOUT_PATH = "/console/logout"
"""Exempt from the CSRF middleware (``broker.app.CSRF_EXEMPT``): it checks its own token."""

_KIND_SIGNIN = "console-signin"
_KIND_CONSOLE = "console-session"
_FEDERATION_KINDS = ("assumed-role", "federated-user")
_ONLY_FEDERATION = "Only federation tokens or assume role tokens may be used"
_MAX_SESSION_PARAM = 12 * 1024
_SESSION_DEPTH = 1
"""``Session`` is one flat object of three strings."""
_NOT_A_KEY = "console"
"""The access key ID of console claims: never a real key (those start AKIA/ASIA)."""
_SIGNOUT_CONTEXT = b"sts-broker console sign-out v1\0"
_MAX_SIGNOUT_FORM = 1024


DEFAULT_CREDENTIALS_SECONDS = 3600
"""The session length of the landing page's "Credentials" (capped at the role's maximum)."""

FormToken = Callable[[Request], Awaitable[str | None]]
"""The CSRF token of the browser sign-in a request carries, or None without one."""


class ConsoleSigninError(Exception):
    """Credentials that cannot open a console session (the protocol's own refusal text)."""


class _Refused(Exception):
    def __init__(self, message: str, claims: SessionClaims | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.claims = claims
        """The session whose credentials were refused, once they were verified (audit)."""


def utc_text(ts: float) -> str:
    """``2026-11-29 10:02:27 UTC``: an instant as the pages show it to people."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class ConsoleFederation:
    """The federation endpoint and the console landing page."""

    def __init__(
        self,
        *,
        sealer: TokenSealer,
        directory: Directory,
        clock: Clock,
        public_url: str,
        audit: BrowserAudit,
        revocations: SessionRevocations,
    ) -> None:
        self._sealer = sealer
        self._audit = audit
        self._revocations = revocations
        self._directory = directory
        self._clock = clock
        self._public_url = public_url.rstrip("/")
        parts = urlsplit(self._public_url)
        self._origin = (parts.scheme, parts.netloc)
        self._own_origin = origin_of(self._public_url)
        """As browsers send it in ``Origin``, for the sign-out form's check."""
        self._secure = parts.scheme == "https"
        # __Host- pins the cookie to this host on https (no Domain, Path=/, Secure).
        self._cookie = "__Host-sts-broker-console" if self._secure else "sts-broker-console"
        self._roles_url: str | None = None
        self._form_token: FormToken | None = None

    def routes(self) -> list[Route]:
        return [
            Route("/federation", self.federation, methods=["GET"]),
            Route(CONSOLE_PATH, self.console, methods=["GET"]),
            Route(CONSOLE_LOGOUT_PATH, self.logout, methods=["POST"]),
        ]

    def link_role_picker(self, url: str, form_token: FormToken) -> None:
        """Offer "Switch role" (to ``url``) and "Credentials" on the landing page.

        Called by the people pages when they exist: an API-only broker serves the console
        to custom identity brokers but has no role picker to go back to. ``form_token``
        gives the CSRF token of the browser's sign-in, if it has one: then "Credentials"
        is the role picker's own form for this role (``POST /assume``), else a link to the
        role picker (a console opened by ``sts-broker console`` has no browser sign-in).
        """
        self._roles_url = url
        self._form_token = form_token

    # -- /federation -------------------------------------------------------------------

    async def federation(self, request: Request) -> Response:
        action = request.query_params.get("Action", "")
        if action == "getSigninToken":
            duration = request.query_params.get("SessionDuration")
            try:
                token, claims = await self._signin_token(request)
            except _Refused as refused:
                self._audit.signin_token(
                    request, refused.claims, duration=duration, error=refused.message
                )
                return JSONResponse({"Error": refused.message}, status_code=400)
            self._audit.signin_token(request, claims, duration=duration, error=None)
            return JSONResponse({"SigninToken": token})
        if action == "login":
            return self._login(request)
        return JSONResponse({"Error": "Unsupported Action"}, status_code=400)

    async def _signin_token(self, request: Request) -> tuple[str, SessionClaims]:
        raw = request.query_params.get("Session", "")
        if not raw or len(raw) > _MAX_SESSION_PARAM:
            raise _Refused("Missing or invalid Session parameter")
        try:
            session = read_json(raw, max_size=_MAX_SESSION_PARAM, max_depth=_SESSION_DEPTH)
        except JsonRefusedError:
            raise _Refused("Missing or invalid Session parameter") from None
        if not isinstance(session, dict) or not all(
            isinstance(session.get(k), str) and session.get(k)
            for k in ("sessionId", "sessionKey", "sessionToken")
        ):
            # Long-term keys come without a session token: they can never sign in.
            if isinstance(session, dict) and not session.get("sessionToken"):
                raise _Refused(_ONLY_FEDERATION)
            raise _Refused("Missing or invalid Session parameter")
        token, claims = self._mint_signin(
            session["sessionId"],
            session["sessionKey"],
            session["sessionToken"],
            request.query_params.get("SessionDuration"),
        )
        # A revoked role session signs in to nothing (:mod:`broker.identity.revocation`);
        # checked once the credentials proved valid, so only their holder learns of it.
        try:
            await self._revocations.check(claims)
        except StsError as exc:
            raise _Refused(exc.message, claims) from None
        return token, claims

    def _mint_signin(
        self, access_key_id: str, secret_key: str, session_token: str, duration: str | None
    ) -> tuple[str, SessionClaims]:
        """A SigninToken for these credentials, and their session; _Refused when they cannot
        sign in (carrying the session once the credentials were verified)."""
        try:
            claims, secret = self._sealer.open(session_token)
        except TokenInvalidError:
            raise _Refused("The security token included in the request is invalid") from None
        valid_key = hmac.compare_digest(
            claims.access_key_id.encode(), access_key_id.encode()
        ) and hmac.compare_digest(secret.encode(), secret_key.encode())
        if not claims.access_key_id or not valid_key:
            raise _Refused("The security token included in the request is invalid")
        now = self._clock.time()
        if now >= claims.expires_at:
            raise _Refused("The security token included in the request is expired", claims)
        if claims.kind not in _FEDERATION_KINDS:
            raise _Refused(_ONLY_FEDERATION, claims)
        try:
            ends = self._console_end(claims, duration, int(now))
        except _Refused as refused:
            raise _Refused(refused.message, claims) from None
        signin = dataclasses.replace(
            claims,
            kind=_KIND_SIGNIN,
            access_key_id=_NOT_A_KEY,
            issued_at=int(now),
            expires_at=int(now) + SIGNIN_TOKEN_SECONDS,
            extra={"console": {"kind": claims.kind, "ends": ends}},
        )
        token, _ = self._sealer.seal(signin)
        return token, claims

    def login_url(self, credentials: Mapping[str, Any]) -> str:
        """The ``/federation?Action=login`` URL for credentials the broker just minted.

        What a custom identity broker builds after ``getSigninToken``, made here directly:
        the broker holds the sealer, so an HTTP round trip to itself would add nothing. The
        console session lasts as long as the credentials do (bounded to 900-43200 s, as
        ``SessionDuration`` is). The URL is a bearer secret for SIGNIN_TOKEN_SECONDS.
        Raises ConsoleSigninError for credentials that cannot sign in (expired, not a role
        session).
        """
        remaining = int(float(credentials["Expiration"]) - self._clock.time())
        duration = min(max(remaining, MIN_SESSION_DURATION), MAX_SESSION_DURATION)
        try:
            token, _ = self._mint_signin(
                str(credentials["AccessKeyId"]),
                str(credentials["SecretAccessKey"]),
                str(credentials["SessionToken"]),
                str(duration),
            )
        except _Refused as refused:
            raise ConsoleSigninError(refused.message) from None
        query = urlencode(
            {
                "Action": "login",
                "Issuer": self._public_url,
                "Destination": f"{self._public_url}{CONSOLE_PATH}",
                "SigninToken": token,
            }
        )
        return f"{self._public_url}/federation?{query}"

    @staticmethod
    def _console_end(claims: SessionClaims, duration: str | None, now: int) -> int:
        """When the console session ends: SessionDuration, else the credentials' expiry."""
        if duration is None:
            return claims.expires_at
        if claims.kind != "assumed-role":
            raise _Refused("SessionDuration is allowed only with assume role credentials")
        try:
            seconds = int(duration)
        except ValueError:
            raise _Refused("SessionDuration must be an integer") from None
        if not MIN_SESSION_DURATION <= seconds <= MAX_SESSION_DURATION:
            raise _Refused(
                f"SessionDuration must be between {MIN_SESSION_DURATION} and "
                f"{MAX_SESSION_DURATION} seconds"
            )
        if claims.chain_depth > 0 and seconds > CHAINED_MAX_SESSION_DURATION:
            raise _Refused(
                "SessionDuration may not exceed 3600 seconds for role chaining credentials"
            )
        return now + seconds

    def _open(self, token: str, kind: str) -> SessionClaims | None:
        try:
            claims, _ = self._sealer.open(token)
        except TokenInvalidError:
            return None
        if (
            claims.kind != kind
            or claims.access_key_id != _NOT_A_KEY
            or self._clock.time() >= claims.expires_at
        ):
            return None
        console = claims.extra.get("console")
        if not isinstance(console, dict) or console.get("kind") not in _FEDERATION_KINDS:
            return None
        return claims

    def _login(self, request: Request) -> Response:
        destination = self._destination(request.query_params.get("Destination", ""))
        if destination is None:
            message = "The destination is not on this broker."
            self._audit.console_login(request, None, destination=None, error=message)
            return error_page(400, "Sign-in refused", message, "destination")
        claims = self._open(request.query_params.get("SigninToken", ""), _KIND_SIGNIN)
        if claims is None:
            message = "The sign-in token is invalid or expired."
            self._audit.console_login(request, None, destination=destination, error=message)
            return error_page(400, "Sign-in refused", message, "signin-token")
        ends = int(claims.extra["console"]["ends"])
        now = int(self._clock.time())
        if now >= ends:
            message = "The session has ended."
            self._audit.console_login(request, claims, destination=destination, error=message)
            return error_page(400, "Sign-in refused", message, "expired")
        self._audit.console_login(request, claims, destination=destination, error=None)
        cookie, _ = self._sealer.seal(
            dataclasses.replace(claims, kind=_KIND_CONSOLE, issued_at=now, expires_at=ends)
        )
        response = RedirectResponse(destination, status_code=302)
        response.set_cookie(
            self._cookie,
            cookie,
            max_age=ends - now,
            path="/",
            secure=self._secure,
            httponly=True,
            samesite="lax",
        )
        return response

    def _destination(self, value: str) -> str | None:
        """``/console`` or below on this broker, as an absolute URL; else None."""
        if not value or any(c in value for c in "\\\r\n\t") or value.startswith("//"):
            return None
        parts = urlsplit(value)
        if parts.scheme or parts.netloc:
            if (parts.scheme, parts.netloc) != self._origin:
                return None
        elif not value.startswith("/"):
            return None
        path = parts.path
        if path != CONSOLE_PATH and not path.startswith(CONSOLE_PATH + "/"):
            return None
        if "/." in path or "%" in path:
            return None
        query = f"?{parts.query}" if parts.query else ""
        return f"{self._public_url}{path}{query}"

    # -- /console ----------------------------------------------------------------------

    async def console(self, request: Request) -> Response:
        cookie = request.cookies.get(self._cookie, "")
        claims = self._open(cookie, _KIND_CONSOLE)
        view = self._view(claims) if claims is not None else None
        if view is None:
            response = RedirectResponse("/", status_code=302)
            if self._cookie in request.cookies:
                self._clear(response)
            return response
        form_token = await self._form_token(request) if self._form_token else None
        landing = page(
            "console.html",
            **view,
            roles_url=self._roles_url,
            credentials_token=form_token,
            signout_token=_signout_token(cookie),
        )
        landing.headers["Cache-Control"] = "no-store"
        return landing

    async def logout(self, request: Request) -> Response:
        """``POST /console/logout``: end the console session (its cookie), nothing else.

        The browser sign-in, if any, stays: "Sign out of console" is not "sign out".

        CSRF: the middleware's token belongs to the browser session, and a console opened
        by ``sts-broker console`` has none, so this route is exempt from it and checks the
        same two things itself: the Origin (or Referer) is ours when the browser names one,
        and the form's token is the one the landing page rendered, a hash of the HttpOnly
        console cookie that another site can neither read nor compute. A forced sign-out
        would only be a nuisance, but "refused" is simpler to reason about than "harmless".
        Without a console cookie there is nothing to end and nothing to check.
        """
        if not same_origin(request.headers, self._own_origin):
            return refusal(403, "CrossOriginRequest", CROSS_ORIGIN_MESSAGE)
        cookie = request.cookies.get(self._cookie, "")
        response = RedirectResponse("/", status_code=303)
        if not cookie:
            return response
        form = await read_form(request, _MAX_SIGNOUT_FORM)
        token = (form or {}).get(CSRF_FIELD, "")
        if not token:
            return refusal(403, "CsrfTokenMissing", STALE_FORM_MESSAGE)
        expected = _signout_token(cookie)
        if not hmac.compare_digest(expected.encode(), token.encode("utf-8", "surrogateescape")):
            return refusal(403, "CsrfTokenInvalid", STALE_FORM_MESSAGE)
        self._clear(response)
        return response

    def _clear(self, response: Response) -> None:
        response.delete_cookie(self._cookie, path="/", secure=self._secure, httponly=True)

    def _view(self, claims: SessionClaims) -> dict[str, Any] | None:
        """What the landing page shows; None when the principal no longer exists."""
        kind = claims.extra["console"]["kind"]
        policies: tuple[Policy, ...]
        duration = 0
        if kind == "assumed-role":
            principal = f"arn:aws:iam::{claims.account}:role{claims.principal_path}"
            role = self._directory.role(principal + claims.principal_name)
            if role is None:
                return None
            principal, policies = role.arn, role.policies
            duration = min(DEFAULT_CREDENTIALS_SECONDS, role.max_session_duration)
        else:
            user = self._directory.users.get(claims.source_arn)
            if user is None:
                return None
            principal, policies = user.arn, user.policies
        limited = kind == "federated-user" or bool(claims.session_policy or claims.policy_arns)
        return {
            "arn": claims.arn,
            # The header's "who": the role session name, or the federated user's name.
            "who": claims.arn.rsplit("/", 1)[-1],
            "kind": kind,
            "principal": principal,
            "principal_name": claims.principal_name,
            "account": claims.account,
            "alias": self._directory.aliases.get(claims.account, ""),
            "expires": utc_text(claims.expires_at),
            "expires_iso": iso8601(claims.expires_at),
            "credentials_duration": duration,
            "policies": [_render(policy) for policy in policies],
            "session_limited": limited,
            "session_policy_arns": list(claims.policy_arns),
            "inline_session_policy": bool(claims.session_policy),
        }


def _signout_token(cookie: str) -> str:
    """The sign-out form's CSRF token: bound to this console cookie, useless without it."""
    digest = hashlib.sha256(_SIGNOUT_CONTEXT + cookie.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _render(policy: Policy) -> dict[str, Any]:
    statements = []
    for st in policy.statements:
        resources = [r.raw for r in st.resources] if st.resources is not None else ["*"]
        statements.append(
            {
                "effect": st.effect,
                "action_label": "NotAction" if st.not_action else "Action",
                "actions": list(st.actions),
                "resource_label": "NotResource" if st.not_resource else "Resource",
                "resources": resources,
                "conditions": bool(st.conditions),
            }
        )
    return {"name": policy.name, "statements": statements}
