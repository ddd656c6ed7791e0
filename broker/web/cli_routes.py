"""The CLI hand-off: ``sts-broker login`` turns a browser sign-in into role credentials in
the terminal, and keeps them fresh (the client is :mod:`broker.client.login`).

**Loopback flow** (RFC 8252 native-app redirect with PKCE, RFC 7636 S256). The CLI listens
on ``127.0.0.1:PORT`` and opens ``GET /cli/authorize?port&code_challenge&state[&provider]
[&role][&duration]``. Without a session the browser signs in first and comes back here;
with one, a confirmation page names the role, the duration and the port, and its form
(CSRF-protected like every form) ``POST /cli/authorize`` answers with a 303 to
``http://127.0.0.1:PORT/callback?code&state``. Nothing reaches the CLI without that click:
a page that opens this URL in someone's browser gets a question, not credentials.

**Device flow** (RFC 8628 shapes), for a terminal with no browser: ``POST /cli/device``
gives the CLI a secret ``device_code`` and a short ``user_code``; the person opens
``/cli/device``, types the code, approves (``POST /cli/device/approve``), and the CLI,
polling ``/cli/token``, gets the credentials.

**Every role at once** (``sts-broker login --all``): ``all_roles=1`` instead of ``role``
asks for every role the sign-in may use; the page lists them all and one Approve sends
them all. The token answer is then ``{"Version": 1, "Region", "Logins": [...]}``, one
credentials answer per role, each with its own refresh chain (or, for a role that could
not be assumed, its ``RoleArn`` and an RFC 6749 ``error``).

**Revocation** ``POST /cli/revoke`` (RFC 7009: ``token``, optional ``token_type_hint``)
ends the refresh chain a token belongs to; ``sts-broker logout`` calls it. The answer is
200 ``{}`` whether or not the token was known (RFC 7009 2.2).

**Token endpoint** ``POST /cli/token`` (RFC 6749 form in, JSON out, errors as
``{"error", "error_description"}`` with status 400): ``authorization_code``,
``urn:ietf:params:oauth:grant-type:device_code`` and ``refresh_token``. Credentials are
minted here, per redemption, by :meth:`RoleChooser.assume` from the stored
:class:`~broker.web.cli_grants.Grant`; the answer is the ``credential_process`` JSON plus
``RoleArn``, ``AccountAlias``, the broker's ``Region`` and a rotating ``refresh_token``
that lives as long as the browser sign-in would. Only the holder of the ``code_verifier``
can redeem a code or a device code (see :mod:`broker.web.cli_grants`), so another local
process that catches the redirect, or reads the device code, gets nothing.

``/cli/token``, ``/cli/revoke`` and ``POST /cli/device`` take no cookie (the proof is in
the body) and are exempt from the CSRF middleware for that reason; the two approval forms
are not.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from broker.clock import Clock, iso8601
from broker.errors import StsError
from broker.observability import note_outcome
from broker.store import Store
from broker.sts.engine import RequestInfo
from broker.sts.upstream_sessions import UpstreamSessions
from broker.web.audit import BrowserAudit
from broker.web.cli_grants import (
    DEVICE_KEY,
    Approval,
    CliGrants,
    Grant,
    GrantError,
    display_user_code,
    valid_challenge,
)
from broker.web.durations import (
    DEFAULT_DURATION,
    MAX_DURATION,
    MIN_DURATION,
    duration_options,
)
from broker.web.forms import read_form
from broker.web.pages import error_page, page
from broker.web.sessions import BrowserSessions, Session
from broker.web.signin import (
    RoleChoice,
    RoleChooser,
    SignedIn,
    load_signed_in,
    page_header,
)

log = logging.getLogger("broker.web.cli")

CALLBACK_HOST = "127.0.0.1"
FORM_TARGET = f"http://{CALLBACK_HOST}:*"
"""CSP ``form-action`` source for the approval form: Chrome checks the redirect it answers
with (to the CLI's loopback port) against ``form-action`` too."""
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
MAX_USER_CODE_MISSES = 5
"""Wrong user codes one browser session may type (per 15 min) before it is refused: a
guessed code would approve a stranger's terminal with this person's roles (RFC 8628 5.1)."""
_MISS_SECONDS = 900
_MISSES = "cli-device-misses"
_MAX_FORM_BYTES = 8192

JSON_ENDPOINTS = frozenset({("POST", "/cli/device"), ("POST", "/cli/token")})
"""(method, path) of the routes that answer the CLI in JSON rather than a person in HTML."""

_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)
_STATE = re.compile(r"[A-Za-z0-9_-]{16,128}", re.ASCII)
_PROVIDER = re.compile(r"[a-z0-9][a-z0-9_-]{0,79}", re.ASCII)
_ROLE = re.compile(r"arn:aws:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}", re.ASCII)
_DURATION = re.compile(r"[0-9]{1,6}", re.ASCII)
_ALL_ROLES = re.compile(r"1|true", re.ASCII)
_TYPED_USER_CODE = re.compile(r"[A-Za-z -]{1,16}", re.ASCII)
"""What a person may type; :func:`normalize_user_code` then decides."""


class _BadRequest(Exception):
    """A parameter the CLI (or someone posing as it) got wrong: a 400, never a redirect."""


@dataclass(frozen=True)
class LoopbackRequest:
    """A validated ``/cli/authorize`` request."""

    port: int
    challenge: str
    state: str
    provider: str
    role: str
    """"" lets the person choose on the confirmation page."""
    duration: int
    every_role: bool = False
    """``all_roles=1``: every role of the sign-in, one answer each (``login --all``)."""

    def query(self) -> str:
        """The canonical query string: only characters ``safe_return_to`` accepts."""
        params = {"port": str(self.port), "code_challenge": self.challenge, "state": self.state}
        if self.provider:
            params["provider"] = self.provider
        if self.role:
            params["role"] = self.role
        if self.every_role:
            params["all_roles"] = "1"
        params["duration"] = str(self.duration)
        return urlencode(params)

    def callback(self, **params: str) -> str:
        return f"http://{CALLBACK_HOST}:{self.port}/callback?" + urlencode(
            {**params, "state": self.state}
        )


def _one(params: Mapping[str, list[str]], name: str, pattern: re.Pattern[str] | None) -> str:
    """The single value of ``name`` ("" when absent); _BadRequest when repeated or malformed."""
    values = params.get(name, [])
    if len(values) > 1:
        raise _BadRequest(f"{name} is given more than once")
    value = values[0] if values else ""
    if value and pattern is not None and not pattern.fullmatch(value):
        raise _BadRequest(f"{name} is malformed")
    return value


def _duration(value: str) -> int:
    if not value:
        return DEFAULT_DURATION
    if not _DURATION.fullmatch(value) or not MIN_DURATION <= int(value) <= MAX_DURATION:
        raise _BadRequest(f"duration must be {MIN_DURATION}-{MAX_DURATION} seconds")
    return int(value)


def _challenge(params: Mapping[str, list[str]]) -> str:
    """The S256 ``code_challenge`` both flows require (``code_challenge_method`` may be
    omitted, as RFC 7636 allows, but only S256 is accepted)."""
    challenge = _one(params, "code_challenge", None)
    if not valid_challenge(challenge):
        raise _BadRequest("code_challenge must be base64url(SHA-256(code_verifier))")
    if _one(params, "code_challenge_method", None) not in ("", "S256"):
        raise _BadRequest("code_challenge_method must be S256")
    return challenge


def _roles_wanted(params: Mapping[str, list[str]]) -> tuple[str, bool]:
    """(``role``, ``all_roles``): one role, every role, or "" and False (choose on the page)."""
    role = _one(params, "role", _ROLE)
    every_role = bool(_one(params, "all_roles", _ALL_ROLES))
    if role and every_role:
        raise _BadRequest("give role or all_roles, not both")
    return role, every_role


def parse_loopback(params: Mapping[str, list[str]]) -> LoopbackRequest:
    """The ``/cli/authorize`` parameters, all checked; _BadRequest names the first bad one."""
    port = _one(params, "port", _PORT)
    if not port or not 1024 <= int(port) <= 65535:
        raise _BadRequest("port must be a number from 1024 to 65535")
    challenge = _challenge(params)
    state = _one(params, "state", _STATE)
    if not state:
        raise _BadRequest("state is missing")
    role, every_role = _roles_wanted(params)
    return LoopbackRequest(
        port=int(port),
        challenge=challenge,
        state=state,
        provider=_one(params, "provider", _PROVIDER),
        role=role,
        duration=_duration(_one(params, "duration", _DURATION)),
        every_role=every_role,
    )


def _multi(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    return params


def _form_params(form: Mapping[str, str]) -> dict[str, list[str]]:
    return {key: [value] for key, value in form.items()}


def oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    """An RFC 6749 5.2 error body (``error`` is also the request's outcome code)."""
    note_outcome(error)
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


class CliRoutes:
    """``/cli/authorize``, ``/cli/device``, ``/cli/device/approve``, ``/cli/token`` and
    ``/cli/revoke``."""

    def __init__(
        self,
        *,
        chooser: RoleChooser,
        sessions: BrowserSessions,
        store: Store,
        clock: Clock,
        public_url: str,
        region: str,
        audit: BrowserAudit,
        upstream: UpstreamSessions | None = None,
    ) -> None:
        self._chooser = chooser
        self._audit = audit
        self._sessions = sessions
        self._store = store
        self._clock = clock
        self._grants = CliGrants(store, clock)
        self._public_url = public_url.rstrip("/")
        self._region = region
        self._upstream = upstream
        """The broker's region: the CLI writes it into the profiles (``region = ...``)."""

    def routes(self) -> list[Route]:
        return [
            Route("/cli/authorize", self.authorize, methods=["GET"]),
            Route("/cli/authorize", self.approve, methods=["POST"]),
            Route("/cli/device", self.device_page, methods=["GET"]),
            Route("/cli/device", self.device_start, methods=["POST"]),
            Route("/cli/device/approve", self.device_decide, methods=["POST"]),
            Route("/cli/token", self.token, methods=["POST"]),
            Route("/cli/revoke", self.revoke, methods=["POST"]),
        ]

    # ------------------------------------------------------------------ browser pages

    @staticmethod
    def _to_login(provider: str, return_to: str) -> Response:
        where = f"/login/{provider}" if provider else "/"
        return RedirectResponse(f"{where}?{urlencode({'return_to': return_to})}", 303)

    def _grant(self, session: Session, signed_in: SignedIn, role: str, duration: int) -> Grant:
        """What the approval hands the CLI: valid until the browser sign-in would end, and
        tied to that session, so signing out there ends it too."""
        ends_at = session.created_at + self._sessions.absolute_seconds
        return Grant(signed_in, role, duration, ends_at, self._sessions.key_of(session))

    def _approval(
        self,
        session: Session,
        signed_in: SignedIn,
        request: Request,
        form: Mapping[str, str],
        *,
        every_role: bool,
    ) -> Approval | Response:
        """The grants an Approve click makes: the chosen role, or every role offered (each
        with the chosen duration, capped at that role's maximum)."""
        if not every_role:
            chosen = self._chosen(signed_in, request, form)
            if isinstance(chosen, Response):
                return chosen
            role, duration = chosen
            return Approval((self._grant(session, signed_in, role.arn, duration),))
        roles = self._offer(signed_in, request, "")
        if isinstance(roles, Response):
            return roles
        raw = form.get("duration", "")
        if not _DURATION.fullmatch(raw):
            return _bad_form("Choose a session duration.")
        grants = tuple(
            self._grant(session, signed_in, r.arn, max(MIN_DURATION, min(int(raw), r.max_duration)))
            for r in roles
        )
        return Approval(grants, every_role=True)

    async def authorize(self, request: Request) -> Response:
        """The confirmation page (after a sign-in when the browser has no session)."""
        try:
            wanted = parse_loopback(_multi(request))
        except _BadRequest as exc:
            return error_page(400, "Invalid CLI sign-in request", str(exc), "invalid_request")
        current = await load_signed_in(self._sessions, request)
        if current is None:
            return self._to_login(wanted.provider, f"/cli/authorize?{wanted.query()}")
        session, signed_in = current
        roles = self._offer(signed_in, request, wanted.role)
        if isinstance(roles, Response):
            return roles
        hidden = {
            "csrf_token": self._sessions.csrf_token(session),
            "port": str(wanted.port),
            "code_challenge": wanted.challenge,
            "state": wanted.state,
        }
        if wanted.every_role:
            hidden["all_roles"] = "1"
        return page(
            "cli_confirm.html",
            action="/cli/authorize",
            **page_header(self._sessions, current),
            roles=roles,
            every_role=wanted.every_role,
            durations=_durations(roles, wanted.duration),
            port=wanted.port,
            user_code="",
            hidden=hidden,
        )

    async def approve(self, request: Request) -> Response:
        """The confirmation form: a 303 to the CLI's loopback port with a code (or a denial)."""
        form = await read_form(request, _MAX_FORM_BYTES)
        if form is None:
            return error_page(400, "Invalid CLI sign-in request", "The form is malformed.")
        try:
            wanted = parse_loopback(_form_params({k: v for k, v in form.items() if k in _LOOP}))
        except _BadRequest as exc:
            return error_page(400, "Invalid CLI sign-in request", str(exc), "invalid_request")
        current = await load_signed_in(self._sessions, request)
        if current is None:
            return _signed_out()
        session, signed_in = current
        if form.get("decision") == "deny":
            self._decision_event(request, signed_in, form.get("role", ""), None, "loopback")
            return RedirectResponse(wanted.callback(error="access_denied"), 303)
        approval = self._approval(session, signed_in, request, form, every_role=wanted.every_role)
        if isinstance(approval, Response):
            return approval
        code = await self._grants.issue_code(wanted.challenge, approval)
        log.info(
            "CLI login approved for %s as %s",
            signed_in.display_name,
            ", ".join(g.role_arn for g in approval.grants),
        )
        for granted in approval.grants:
            self._decision_event(request, signed_in, granted.role_arn, granted.duration, "loopback")
        return RedirectResponse(wanted.callback(code=code), 303)

    async def device_page(self, request: Request) -> Response:
        """Where the person types the user code, then confirms like the loopback flow."""
        params = _multi(request)
        try:
            typed = _one(params, "user_code", _TYPED_USER_CODE)
            provider = _one(params, "provider", _PROVIDER)
        except _BadRequest as exc:
            return error_page(400, "Invalid device code", str(exc), "invalid_request")
        current = await load_signed_in(self._sessions, request)
        if current is None:
            back = "/cli/device" + (f"?{urlencode({'user_code': typed})}" if typed else "")
            return self._to_login(provider, back)
        session, signed_in = current
        if not typed:
            return page("cli_device.html", **page_header(self._sessions, current), message="")
        misses_key = self._sessions.key_of(session)
        misses = await self._misses(misses_key)
        if misses >= MAX_USER_CODE_MISSES:
            return error_page(
                429,
                "Too many wrong codes",
                "Too many codes that match no request were typed in this session. "
                "Wait 15 minutes, or start again from your terminal.",
                "slow_down",
            )
        pending = await self._grants.find_device(typed)
        if pending is None:
            await self._store.put(
                _MISSES, misses_key, str(misses + 1).encode("ascii"), _MISS_SECONDS
            )
            return page(
                "cli_device.html",
                status=400,
                **page_header(self._sessions, current),
                message="No waiting terminal has this code (or it expired). Check the code "
                "your terminal shows and try again.",
            )
        roles = self._offer(signed_in, request, pending.role_arn)
        if isinstance(roles, Response):
            return roles
        return page(
            "cli_confirm.html",
            action="/cli/device/approve",
            **page_header(self._sessions, current),
            roles=roles,
            every_role=pending.every_role,
            durations=_durations(roles, pending.duration),
            port=None,
            user_code=display_user_code(pending.user_code),
            hidden={"csrf_token": self._sessions.csrf_token(session), "device": pending.key},
        )

    async def _misses(self, key: str) -> int:
        raw = await self._store.get(_MISSES, key)
        try:
            return int(raw or b"0")
        except ValueError:
            return MAX_USER_CODE_MISSES

    async def device_decide(self, request: Request) -> Response:
        form = await read_form(request, _MAX_FORM_BYTES)
        device = form.get("device", "") if form is not None else ""
        if form is None or not DEVICE_KEY.fullmatch(device):
            return error_page(400, "Invalid device approval", "The form is malformed.")
        current = await load_signed_in(self._sessions, request)
        if current is None:
            return _signed_out()
        session, signed_in = current
        pending = await self._grants.pending(device)
        if pending is None:
            return _already_decided()
        approval: Approval | None = None
        if form.get("decision") != "deny":
            decided = self._approval(
                session, signed_in, request, form, every_role=pending.every_role
            )
            if isinstance(decided, Response):
                return decided
            approval = decided
        if not await self._grants.decide_device(device, approval):
            return _already_decided()
        if approval is None:
            self._decision_event(request, signed_in, form.get("role", ""), None, "device")
        else:
            for granted in approval.grants:
                self._decision_event(
                    request, signed_in, granted.role_arn, granted.duration, "device"
                )
        return page(
            "cli_done.html",
            approved=approval is not None,
            roles=[g.role_arn for g in approval.grants] if approval else [],
            **page_header(self._sessions, current),
        )

    def _offer(
        self, signed_in: SignedIn, request: Request, wanted: str
    ) -> list[RoleChoice] | Response:
        """The roles the page offers: ``wanted`` alone, or all of this sign-in's roles."""
        info = self._chooser.request_info(request)
        if wanted:
            one = self._chooser.choice(signed_in, wanted, info)
            if one is None:
                return error_page(
                    403,
                    "Role not available",
                    f"This sign-in may not use {wanted}. Sign in as someone who may, or run "
                    "sts-broker login without --role to choose.",
                    "AccessDenied",
                )
            roles = [one]
        else:
            roles = self._chooser.roles(signed_in, info)
        if not roles:
            return error_page(
                403,
                "No roles",
                "This sign-in may use no role in this broker: the identity provider granted "
                "none, or no trust policy admits it.",
                "AccessDenied",
            )
        usable = [r for r in roles if r.max_duration >= MIN_DURATION]
        if not usable:
            return error_page(
                403,
                "Sign-in ends too soon",
                "Your sign-in ends in less than 15 minutes. Sign in again first.",
                "ExpiredToken",
            )
        return usable

    def _chosen(
        self, signed_in: SignedIn, request: Request, form: Mapping[str, str]
    ) -> tuple[RoleChoice, int] | Response:
        """The role and duration an approval form names, both re-checked here."""
        arn, raw = form.get("role", ""), form.get("duration", "")
        if not arn:
            return _bad_form("Choose a role.")
        roles = self._offer(signed_in, request, arn)
        if isinstance(roles, Response):
            return roles
        if not _DURATION.fullmatch(raw):
            return _bad_form("Choose a session duration.")
        role = roles[0]
        # The page only offers durations the role allows; a bigger one is capped, not refused.
        return role, max(MIN_DURATION, min(int(raw), role.max_duration))

    # ------------------------------------------------------------------ CLI endpoints

    async def device_start(self, request: Request) -> Response:
        """RFC 8628 3.1-3.2: a device code for the CLI, a user code for the person."""
        form = await read_form(request, _MAX_FORM_BYTES)
        if form is None:
            return oauth_error("invalid_request", "send a urlencoded form, each field once")
        try:
            params = _form_params(form)
            challenge = _challenge(params)
            role, every_role = _roles_wanted(params)
            duration = _duration(_one(params, "duration", _DURATION))
            provider = _one(params, "provider", _PROVIDER)
        except _BadRequest as exc:
            return oauth_error("invalid_request", str(exc))
        started = await self._grants.start_device(challenge, role, duration, every_role=every_role)
        user_code = display_user_code(started.user_code)
        complete = {"user_code": user_code, **({"provider": provider} if provider else {})}
        return JSONResponse(
            {
                "device_code": started.device_code,
                "user_code": user_code,
                "verification_uri": f"{self._public_url}/cli/device",
                "verification_uri_complete": f"{self._public_url}/cli/device?"
                + urlencode(complete),
                "expires_in": started.expires_in,
                "interval": started.interval,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def token(self, request: Request) -> Response:
        """RFC 6749 token endpoint for the three grants (see module doc)."""
        form = await read_form(request, _MAX_FORM_BYTES)
        if form is None:
            return oauth_error("invalid_request", "send a urlencoded form, each field once")
        grant_type = form.get("grant_type", "")
        family: str | None = None
        try:
            if grant_type == "authorization_code":
                approval = await self._grants.redeem_code(
                    form.get("code", ""), form.get("code_verifier", "")
                )
            elif grant_type == DEVICE_GRANT:
                approval = await self._grants.poll_device(
                    form.get("device_code", ""), form.get("code_verifier", "")
                )
            elif grant_type == "refresh_token":
                grant, family = await self._grants.redeem_refresh(form.get("refresh_token", ""))
                approval = Approval((grant,))
            elif not grant_type:
                return oauth_error("invalid_request", "grant_type is missing")
            else:
                return oauth_error("unsupported_grant_type", "this grant type is not supported")
        except GrantError as exc:
            return oauth_error(exc.error, exc.description)
        # Every grant of one approval comes from the same browser session.
        if await self._sessions.signed_out(approval.grants[0].browser):
            return oauth_error(
                "invalid_grant",
                "you signed out of the broker in the browser this login came from; "
                "run sts-broker login again",
            )
        info = self._chooser.request_info(request)
        if not approval.every_role:
            try:
                body = await self._mint(request, info, approval.grants[0], family, grant_type)
            except StsError as exc:
                return _refused(exc)
            return _no_store(body)
        logins: list[dict[str, Any]] = []
        for grant in approval.grants:
            try:
                logins.append(await self._mint(request, info, grant, None, grant_type))
            except StsError as exc:
                logins.append(
                    {
                        "RoleArn": grant.role_arn,
                        "error": _refusal_code(exc),
                        "error_description": f"{exc.code}: {exc.message}",
                    }
                )
        return _no_store({"Version": 1, "Region": self._region, "Logins": logins})

    def _decision_event(
        self,
        request: Request,
        signed_in: SignedIn,
        role_arn: str,
        duration: int | None,
        flow: str,
    ) -> None:
        """The ``CliLogin`` audit event: approved with a duration, denied without."""
        self._audit.cli_login(
            request,
            signed_in,
            self._chooser.identity_for(signed_in, role_arn),
            role_arn=role_arn if _ROLE.fullmatch(role_arn) else "",
            duration=duration,
            flow=flow,
            approved=duration is not None,
        )

    async def _mint(
        self,
        request: Request,
        info: RequestInfo,
        grant: Grant,
        family: str | None,
        grant_type: str,
    ) -> dict[str, Any]:
        """Credentials for one grant and its next refresh token (audited either way);
        StsError when refused."""
        identity = self._chooser.identity_for(grant.signed_in, grant.role_arn)

        def audit(result: Mapping[str, Any] | None, error: StsError | None) -> None:
            self._audit.role_session(
                request,
                grant.signed_in,
                identity,
                role_arn=grant.role_arn,
                duration=grant.duration,
                result=result,
                error=None if error is None else (error.code, error.message),
                via="cli",
                grantType=grant_type,
            )

        try:
            result = await self._chooser.assume(
                grant.signed_in, grant.role_arn, grant.duration, info
            )
        except StsError as exc:
            audit(None, exc)
            raise
        audit(result, None)
        refresh = await self._grants.issue_refresh(grant, family)
        body = credentials_body(result, grant, refresh)
        body["AccountAlias"] = self._chooser.account_alias(grant.role_arn)
        body["Region"] = self._region
        if self._upstream is not None and self._chooser.is_upstream(grant.role_arn):
            # Real AWS keys: the CLI must not point STS at the broker, and its console
            # command signs in at AWS's federation endpoint.
            body["Upstream"] = {
                "FederationEndpoint": self._upstream.federation_endpoint,
                "ConsoleUrl": self._upstream.console_url,
            }
        return body

    async def revoke(self, request: Request) -> Response:
        """RFC 7009 token revocation: ends the refresh chain of ``token``."""
        form = await read_form(request, _MAX_FORM_BYTES)
        if form is None:
            return oauth_error("invalid_request", "send a urlencoded form, each field once")
        token = form.get("token", "")
        if not token:
            return oauth_error("invalid_request", "token is missing")
        if await self._grants.revoke_refresh(token):
            log.info("CLI login revoked by its refresh token")
        return _no_store({})


def _refusal_code(error: StsError) -> str:
    """``temporarily_unavailable`` when upstream STS (or the store) is down or busy: the
    grant is still good, try again later; else ``invalid_grant``: the trust policy, the
    role or the sign-in's bounds changed since approval."""
    return (
        "temporarily_unavailable"
        if error.status >= 500 or error.code == "Throttling"
        else ("invalid_grant")
    )


def _refused(error: StsError) -> JSONResponse:
    code = _refusal_code(error)
    status = error.status if code == "temporarily_unavailable" else 400
    return oauth_error(code, f"{error.code}: {error.message}", status)


_LOOP = (
    "port",
    "code_challenge",
    "code_challenge_method",
    "state",
    "role",
    "all_roles",
    "duration",
)
"""The form fields of the loopback approval that repeat the ``/cli/authorize`` query."""


def credentials_body(
    result: Mapping[str, Any], grant: Grant, refresh: str | None
) -> dict[str, Any]:
    """The token endpoint's answer: ``credential_process`` JSON plus what the CLI caches."""
    creds = result["Credentials"]
    body: dict[str, Any] = {
        "Version": 1,
        "AccessKeyId": creds["AccessKeyId"],
        "SecretAccessKey": creds["SecretAccessKey"],
        "SessionToken": creds["SessionToken"],
        "Expiration": iso8601(float(creds["Expiration"])),
        "RoleArn": grant.role_arn,
        "AssumedRoleArn": result["AssumedRoleUser"]["Arn"],
    }
    if refresh is not None:
        body["refresh_token"] = refresh
        body["refresh_expires_at"] = iso8601(grant.ends_at)
    return body


def _durations(roles: list[RoleChoice], wanted: int) -> list[dict[str, Any]]:
    """The duration choices (those the longest offered role allows); ``wanted`` preselected."""
    return duration_options(max(r.max_duration for r in roles), wanted, exact=True)


def _no_store(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _already_decided() -> Response:
    return error_page(
        409,
        "Nothing to approve",
        "This request was already approved or denied, or it expired.",
        "already_decided",
    )


def _signed_out() -> Response:
    return error_page(
        401,
        "Signed out",
        "Your sign-in ended before you approved. Run sts-broker login again.",
        "login_required",
    )


def _bad_form(message: str) -> Response:
    return error_page(400, "Invalid CLI sign-in request", message, "invalid_request")
