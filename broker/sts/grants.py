"""What the broker's decision allows: one role session, fully described, not yet issued.

Every AssumeRole* path (the signed AssumeRole, AssumeRoleWithSAML, AssumeRoleWithWebIdentity,
a browser or CLI role pick) ends its decision in a :class:`RoleGrant`. Issuing it is a
separate step with two implementations: the broker's own STS seals it into a session
token, and an upstream account asks real AWS STS for it
(:mod:`broker.sts.upstream_sessions`). So the same rules decide every session, wherever its
credentials come from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from broker.directory import Role


@dataclass(frozen=True)
class RoleGrant:
    """A role session the trust policy admitted, with everything AWS's rules fixed for it."""

    role: Role
    session_name: str
    duration: int
    tags: Mapping[str, str] = field(default_factory=dict)
    transitive_tag_keys: Sequence[str] = ()
    source_identity: str | None = None
    policy_text: str | None = None
    """The session policy, minified JSON (already parsed with the IAM grammar)."""
    policy_arns: Sequence[str] = ()
    subject: str = ""
    """Who the session is for, stable across sessions: ``PROVIDER_ARN/SUBJECT`` for a
    federated person, the principal ARN for a signed caller (an upstream ID token's
    ``sub``)."""
    source_arn: str = ""
    """What the session came from: the provider ARN, or the calling principal's ARN."""
    mfa: bool = False
    mfa_authenticated_at: int | None = None
    chain_depth: int = 0
    chain_roles: Sequence[str] = ()
    """The roles a chained session descends from (a revocation of any reaches it)."""
