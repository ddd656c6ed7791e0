"""Who is calling: a SigV4-signed request turned into a :class:`Caller`.

This is the SigV4 adapter's second half: :mod:`broker.identity.sigv4` reads and checks the
signature; this module finds the secret it must have been made with (a configured IAM
user's access key, or the secret derived from a sealed session token) and refuses with the
code real STS uses. What comes out is a plain value the engine reasons about.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from broker.clock import iso8601
from broker.directory import Directory, Role, User
from broker.errors import StsError
from broker.iam import ContextValue, MalformedPolicyError, Policy, Principal, parse_policy
from broker.identity.session_tokens import (
    SessionClaims,
    TokenInvalidError,
    TokenSealer,
    role_arn_of,
)
from broker.identity.sigv4 import read_signature, verify_signature
from broker.request import HttpRequestParts

CallerKind = Literal["user", "session", "assumed-role", "federated-user"]

_INVALID_TOKEN = "The security token included in the request is invalid."
_EXPIRED_TOKEN = "The security token included in the request is expired"


@dataclass(frozen=True)
class Caller:
    """An authenticated principal and what policies govern it right now."""

    kind: CallerKind
    account: str
    arn: str
    """The ARN GetCallerIdentity reports."""
    user_id: str
    principal_arn: str
    """``aws:PrincipalArn``: the role ARN for a role session, else :attr:`arn`."""
    user: User | None = None
    role: Role | None = None
    claims: SessionClaims | None = None
    access_key_id: str = ""
    """The key ID the request was signed with (``AKIA...`` or ``ASIA...``); "" if not signed
    (the audit trail records it, throttling counts by it)."""

    @property
    def mfa(self) -> bool:
        return self.claims is not None and self.claims.mfa

    def principal(self) -> Principal:
        """The spellings a trust policy's ``Principal`` may use for this caller."""
        arns = (self.arn,) if self.principal_arn == self.arn else (self.arn, self.principal_arn)
        return Principal(kind="AWS", arns=arns, account=self.account)

    def identity_policies(self) -> tuple[Policy, ...]:
        """The caller's current permission policies (AWS reads them live, not from the token)."""
        if self.role is not None:
            return self.role.policies
        if self.user is not None:
            return self.user.policies
        return ()

    def session_policies(self, directory: Directory) -> tuple[Policy, ...] | None:
        """Policies passed when the session was made; None when there were none."""
        if self.claims is None:
            return None
        if not (self.claims.session_policy or self.claims.policy_arns):
            # AWS: a federation token passed no policy has no permissions at all.
            return () if self.claims.kind == "federated-user" else None
        found: list[Policy] = []
        if self.claims.session_policy:
            found.append(_session_policy(self.claims.session_policy))
        for arn in self.claims.policy_arns:
            managed = directory.managed_policy(arn)
            # A managed policy removed from config grants nothing any more; the
            # intersection then denies, which is the safe reading.
            found.append(managed if managed is not None else _EMPTY_SESSION_POLICY)
        return tuple(found)

    def tags(self) -> dict[str, str]:
        """Principal tags: session tags for a session, else the user's or role's own tags."""
        if self.claims is not None and self.claims.kind != "session":
            base = dict(self.role.tags) if self.role is not None else {}
            base.update(self.claims.tags)
            return base
        return dict(self.user.tags) if self.user is not None else {}

    def context(
        self, *, now: float, source_ip: str, secure: bool, region: str
    ) -> dict[str, ContextValue]:
        """The global condition keys AWS sets for every request by this caller."""
        ctx: dict[str, ContextValue] = {
            "aws:CurrentTime": iso8601(now),
            "aws:EpochTime": str(int(now)),
            "aws:SecureTransport": "true" if secure else "false",
            "aws:PrincipalAccount": self.account,
            "aws:PrincipalArn": self.principal_arn,
            "aws:userid": self.user_id,
            "aws:PrincipalType": _PRINCIPAL_TYPES[self.kind],
            "aws:RequestedRegion": region,
        }
        if source_ip:
            ctx["aws:SourceIp"] = source_ip
        if self.kind in ("user", "session") and self.user is not None:
            ctx["aws:username"] = self.user.name
        for key, value in self.tags().items():
            ctx[f"aws:PrincipalTag/{key}"] = value
        claims = self.claims
        if claims is not None:
            # Long-term keys carry no MFA keys at all (AWS), hence only for sessions.
            ctx["aws:MultiFactorAuthPresent"] = "true" if claims.mfa else "false"
            ctx["aws:TokenIssueTime"] = iso8601(claims.issued_at)
            if claims.mfa and claims.mfa_authenticated_at is not None:
                ctx["aws:MultiFactorAuthAge"] = str(max(0, int(now) - claims.mfa_authenticated_at))
            if claims.source_identity:
                ctx["aws:SourceIdentity"] = claims.source_identity
        return ctx


_CREDENTIAL_KINDS = frozenset({"assumed-role", "session", "federated-user"})

_PRINCIPAL_TYPES: dict[CallerKind, str] = {
    "user": "User",
    "session": "User",
    "assumed-role": "AssumedRole",
    "federated-user": "FederatedUser",
}

_EMPTY_SESSION_POLICY = Policy(name="removed session policy", version="2012-10-17", statements=())
"""Allows nothing: stands in for a session policy that no longer resolves."""


@lru_cache(maxsize=1024)
def _session_policy(document: str) -> Policy:
    """Parse a session policy from a token once per distinct document (hot path)."""
    try:
        return parse_policy(document, kind="session", name="session policy")
    except MalformedPolicyError:
        # It parsed when the session was made; a later grammar change must not widen it.
        return _EMPTY_SESSION_POLICY


def authenticate(
    parts: HttpRequestParts,
    *,
    directory: Directory,
    sealer: TokenSealer,
    now: float,
    region: str,
    service: str = "sts",
) -> Caller:
    """Verify the request's SigV4 signature and name its caller, or raise AWS's refusal.

    ``service`` is the credential scope's service: ``sts`` for the Query API,
    ``cognito-identity`` for the identity pools' signed operations."""
    claim = read_signature(parts)
    if claim is None:
        raise StsError("MissingAuthenticationToken", "Request is missing Authentication Token", 403)
    akid = claim.access_key_id
    if claim.security_token is not None:
        try:
            claims, secret = sealer.open(claim.security_token)
        except TokenInvalidError:
            raise StsError("InvalidClientTokenId", _INVALID_TOKEN, 403) from None
        if claims.access_key_id != akid:
            raise StsError("InvalidClientTokenId", _INVALID_TOKEN, 403)
        if now >= claims.expires_at:
            # Before the signature, as AWS does: the token itself is authenticated by its
            # seal, and its holder learns nothing new from being told it expired.
            raise StsError("ExpiredToken", _EXPIRED_TOKEN, 403)
        verify_signature(claim, secret, now=now, region=region, service=service)
        return _session_caller(claims, directory)
    if akid.startswith("ASIA"):
        # A temporary key without its token can never be verified.
        raise StsError("InvalidClientTokenId", _INVALID_TOKEN, 403)
    key = directory.keys.get(akid)
    if key is None or not key.active:
        raise StsError("InvalidClientTokenId", _INVALID_TOKEN, 403)
    verify_signature(claim, key.secret, now=now, region=region, service=service)
    user = key.user
    return Caller(
        kind="user",
        account=user.account,
        arn=user.arn,
        user_id=user.user_id,
        principal_arn=user.arn,
        user=user,
        access_key_id=akid,
    )


def _session_caller(claims: SessionClaims, directory: Directory) -> Caller:
    """A caller from an opened token, tied to the principal as configured *now*."""
    role: Role | None = None
    user: User | None = None
    if claims.kind not in _CREDENTIAL_KINDS:
        # Other sealed objects (console sign-in tokens and cookies) are never credentials.
        raise StsError("InvalidClientTokenId", _INVALID_TOKEN, 403)
    if claims.kind == "assumed-role":
        role = directory.role(role_arn_of(claims) or "")
        if role is None:
            raise StsError("InvalidClientTokenId", _INVALID_TOKEN, 403)
        principal_arn = role.arn
    elif claims.kind == "session":
        user = directory.users.get(claims.arn)
        if user is None:
            raise StsError("InvalidClientTokenId", _INVALID_TOKEN, 403)
        principal_arn = user.arn
    else:
        # A federated user acts with its IAM user's live policies (∩ the passed ones).
        user = directory.users.get(claims.source_arn)
        if user is None:
            raise StsError("InvalidClientTokenId", _INVALID_TOKEN, 403)
        principal_arn = claims.arn
    return Caller(
        kind=claims.kind,  # type: ignore[arg-type]
        account=claims.account,
        arn=claims.arn,
        user_id=claims.user_id,
        principal_arn=principal_arn,
        user=user,
        role=role,
        claims=claims,
        access_key_id=claims.access_key_id,
    )
