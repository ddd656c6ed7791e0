"""Who a browser session signed in as, and the roles that sign-in may use.

Every login path (the SAML ACS, an OIDC callback) ends by storing a :class:`SignedIn` in the
browser session; every page that lists or assumes roles (the role picker, the credentials
page, the CLI hand-off) reads it back with :meth:`SignedIn.from_session` and goes through
:class:`RoleChooser`, which asks the STS engine, so a browser can never get a role the
``AssumeRoleWith*`` API would refuse the same identity.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

from starlette.requests import HTTPConnection

from broker.clock import Clock
from broker.directory import Directory, Role
from broker.errors import access_denied
from broker.identity import FederatedIdentity
from broker.sts.engine import RequestInfo, StsEngine
from broker.sts.explain import trust_verdict
from broker.web.sessions import BrowserSessions, Session

LoginProtocol = Literal["saml", "oidc"]
_PROTOCOLS: dict[str, LoginProtocol] = {"saml": "saml", "oidc": "oidc"}
_SESSION_NAME_BAD = re.compile(r"[^\w+=,.@-]", re.ASCII)


def role_session_name(value: str, fallback: str) -> str:
    """A RoleSessionName (IAM: 2-64 of ``[\\w+=,.@-]``) made from a claim or NameID.

    Other characters become ``-``; too short a result falls back to ``fallback`` (the
    subject, treated the same way), so a session name always exists and always validates.
    """
    for candidate in (value, fallback, "signed-in-user"):
        name = _SESSION_NAME_BAD.sub("-", candidate)[:64]
        if len(name) >= 2:
            return name
    raise AssertionError("unreachable: the last candidate is valid")


@dataclass(frozen=True)
class SignedIn:
    """A verified sign-in, as the browser session keeps it (JSON via :meth:`to_session`)."""

    protocol: LoginProtocol
    login: str
    """The ``login.providers`` name used, or "" for a SAML provider not listed there."""
    issuer: str
    subject: str
    display_name: str
    """What the pages call the person: email, NameID or subject."""
    session_name: str
    """The RoleSessionName every role session of this sign-in gets."""
    identities: tuple[FederatedIdentity, ...]
    """One per provider (a SAML IdP registered in several accounts, an OIDC issuer trusted
    by several accounts): each account's trust policies see their own provider's view."""
    role_patterns: tuple[str, ...] = ()
    """``login.providers.NAME.roles``: when non-empty, only matching role ARNs are offered."""
    allowed_roles: tuple[str, ...] | None = None
    """From the OIDC ``roles_claim``: when set, only these role ARNs are offered."""

    def to_session(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "login": self.login,
            "issuer": self.issuer,
            "subject": self.subject,
            "display_name": self.display_name,
            "session_name": self.session_name,
            "identities": [identity.to_json() for identity in self.identities],
            "role_patterns": list(self.role_patterns),
            "allowed_roles": None if self.allowed_roles is None else list(self.allowed_roles),
        }

    @classmethod
    def from_session(cls, data: Mapping[str, Any]) -> SignedIn | None:
        """The sign-in :meth:`to_session` stored; None for anything else (fail closed)."""
        protocol = data.get("protocol")
        checked = _PROTOCOLS.get(protocol) if isinstance(protocol, str) else None
        texts = [data.get(k) for k in ("login", "issuer", "subject", "display_name")]
        session_name = data.get("session_name")
        raw_identities = data.get("identities")
        patterns = data.get("role_patterns")
        allowed = data.get("allowed_roles")
        if (
            checked is None
            or not all(isinstance(t, str) for t in texts)
            or not isinstance(session_name, str)
            or not isinstance(raw_identities, list)
            or not _str_list(patterns)
            or not (allowed is None or _str_list(allowed))
        ):
            return None
        identities = [FederatedIdentity.from_json(raw) for raw in raw_identities]
        if not identities or any(i is None for i in identities):
            return None
        login, issuer, subject, display_name = (str(t) for t in texts)
        return cls(
            protocol=checked,
            login=login,
            issuer=issuer,
            subject=subject,
            display_name=display_name,
            session_name=session_name,
            identities=tuple(i for i in identities if i is not None),
            role_patterns=tuple(patterns or ()),
            allowed_roles=None if allowed is None else tuple(allowed),
        )


async def load_signed_in(
    sessions: BrowserSessions, request: HTTPConnection
) -> tuple[Session, SignedIn] | None:
    """This browser's live session and the sign-in it holds; None without either."""
    session = await sessions.load(request)
    if session is None:
        return None
    signed_in = SignedIn.from_session(session.data)
    return None if signed_in is None else (session, signed_in)


def page_header(
    sessions: BrowserSessions, current: tuple[Session, SignedIn] | None
) -> dict[str, Any]:
    """What ``base.html`` needs to show who is signed in and a Sign out button."""
    if current is None:
        return {"user": None, "csrf_token": ""}
    session, signed_in = current
    return {"user": signed_in.display_name, "csrf_token": sessions.csrf_token(session)}


def _str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


@dataclass(frozen=True)
class RoleChoice:
    """One role on the role picker."""

    arn: str
    name: str
    account: str
    account_label: str
    """``alias (ID)`` or the ID."""
    description: str
    max_duration: int
    """The longest session this sign-in may ask for (the role's maximum, SAML caps)."""
    upstream: bool = False
    """The role lives in real AWS: its credentials and console are AWS's."""


class RoleChooser:
    """Lists and assumes the roles of a :class:`SignedIn`, through the STS engine."""

    def __init__(
        self,
        *,
        engine: StsEngine,
        directory: Directory,
        clock: Clock,
        secure: bool,
    ) -> None:
        self._engine = engine
        self._directory = directory
        self._clock = clock
        self._secure = secure

    def request_info(self, request: HTTPConnection) -> RequestInfo:
        """What policies may test about this browser request (time, source IP, https)."""
        client = request.client
        return RequestInfo(
            now=self._clock.time(), source_ip=client.host if client else "", secure=self._secure
        )

    def roles(self, signed_in: SignedIn, info: RequestInfo) -> list[RoleChoice]:
        """Every role this sign-in may assume now, sorted by account then name."""
        found: dict[str, RoleChoice] = {}
        for identity in signed_in.identities:
            for role in self._candidates(identity):
                if role.arn in found or not _offered(signed_in, role.arn):
                    continue
                if not self._engine.admits(
                    identity, role, session_name=signed_in.session_name, info=info
                ):
                    continue
                found[role.arn] = self._choice(role, identity, info.now)
        return sorted(found.values(), key=lambda c: (c.account, c.name.lower()))

    def explain(self, signed_in: SignedIn, info: RequestInfo) -> list[str]:
        """Why this sign-in has no role, for the "no roles" page: one line per role whose
        trust policy names the provider (roles meant for others are left out), from the
        same decision :meth:`roles` makes. Reasons name statements and condition keys, never
        a value: a trust policy's values may be other people's."""
        lines: list[str] = []
        for identity in signed_in.identities:
            considered = 0
            for role in self._candidates(identity):
                if not _offered(signed_in, role.arn):
                    lines.append(f"{role.arn}: not offered by this sign-in (roles or roles_claim)")
                    considered += 1
                    continue
                verdict = trust_verdict(
                    self._engine, identity, role, session_name=signed_in.session_name, info=info
                )
                if verdict.granted or not verdict.names_identity:
                    continue
                considered += 1
                reasons = "; ".join(verdict.details) or verdict.how
                lines.append(f"{role.arn}: {reasons}")
            if not considered:
                lines.append(
                    f"No role's trust policy names {identity.provider_arn} for {identity.action}."
                )
        return lines

    def choice(self, signed_in: SignedIn, role_arn: str, info: RequestInfo) -> RoleChoice | None:
        """``role_arn`` as :meth:`roles` would list it, or None: one role's check, not all."""
        role = self._directory.role(role_arn)
        if role is None or not _offered(signed_in, role_arn):
            return None
        for identity in signed_in.identities:
            if self._engine.admits(identity, role, session_name=signed_in.session_name, info=info):
                return self._choice(role, identity, info.now)
        return None

    async def assume(
        self, signed_in: SignedIn, role_arn: str, duration: int | None, info: RequestInfo
    ) -> dict[str, Any]:
        """AssumeRole-shaped result members for ``role_arn``; StsError when not allowed."""
        if not _offered(signed_in, role_arn):
            raise access_denied(f"Not authorized: this sign-in may not use {role_arn}")
        return await self._engine.assume_federated(
            self.identity_for(signed_in, role_arn),
            role_arn,
            session_name=signed_in.session_name,
            duration=duration,
            info=info,
        )

    def identity_for(self, signed_in: SignedIn, role_arn: str) -> FederatedIdentity:
        """The provider view of ``signed_in`` that vouches for ``role_arn`` (its account's,
        and one whose assertion pairs it), else the first: what :meth:`assume` presents."""
        role = self._directory.role(role_arn)
        return next(
            (
                i
                for i in signed_in.identities
                if role is not None
                and role.account == i.account
                and (i.roles is None or role_arn in i.roles)
            ),
            signed_in.identities[0],
        )

    def account_alias(self, role_arn: str) -> str:
        """The alias of the account ``role_arn`` is in ("" without one)."""
        account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
        return self._directory.aliases.get(account, "")

    def is_upstream(self, role_arn: str) -> bool:
        """Whether ``role_arn`` lives in real AWS (its credentials are AWS's)."""
        role = self._directory.role(role_arn)
        return role is not None and role.upstream is not None

    def _candidates(self, identity: FederatedIdentity) -> Sequence[Role]:
        if identity.roles is not None:
            return [r for arn in identity.roles if (r := self._directory.role(arn)) is not None]
        return [r for r in self._directory.roles.values() if r.account == identity.account]

    def _choice(self, role: Role, identity: FederatedIdentity, now: float) -> RoleChoice:
        longest = role.max_session_duration
        if identity.max_duration is not None:
            longest = min(longest, identity.max_duration)
        if identity.not_after is not None:
            longest = min(longest, int(identity.not_after - now))
        alias = self._directory.aliases.get(role.account)
        return RoleChoice(
            arn=role.arn,
            name=role.name,
            account=role.account,
            account_label=f"{alias} ({role.account})" if alias else role.account,
            description=role.description,
            max_duration=longest,
            upstream=role.upstream is not None,
        )


def _offered(signed_in: SignedIn, role_arn: str) -> bool:
    if signed_in.allowed_roles is not None and role_arn not in signed_in.allowed_roles:
        return False
    if signed_in.role_patterns:
        return any(fnmatchcase(role_arn, p) for p in signed_in.role_patterns)
    return True
