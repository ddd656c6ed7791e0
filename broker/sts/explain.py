"""Which roles a federated identity may assume, and why each other one refuses it.

``sts-broker explain`` and the role picker's "no roles" message ask the same question the
engine decides: for each role, does its trust policy admit this identity, for every action
the session needs? The decision is the engine's own (:meth:`StsEngine.admits`); the words
come from :func:`broker.iam.explain_policies` over the engine's own trust requests
(:meth:`StsEngine.trust_requests`), so the explanation cannot drift from what the broker
does. Reasons name statements, operators and condition keys, never a value, so they are
safe to show to the person refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from broker.directory import Role
from broker.errors import StsError
from broker.iam import explain_policies
from broker.identity import FederatedIdentity
from broker.sts.engine import RequestInfo, StsEngine


@dataclass(frozen=True)
class RoleVerdict:
    """One role for one identity."""

    role_arn: str
    granted: bool
    how: str
    """Granted: the statement that admits; refused: the one-line reason."""
    details: tuple[str, ...] = ()
    """Refused by the trust policy: each statement's reason."""
    names_identity: bool = True
    """Some trust statement names this identity's provider (False: the role is simply not
    for it, which a "no roles" page need not list)."""


def explain_roles(
    engine: StsEngine,
    identity: FederatedIdentity,
    roles: Iterable[Role],
    *,
    session_name: str,
    info: RequestInfo,
) -> list[RoleVerdict]:
    """A verdict for each of ``roles``, in the order given."""
    return [
        trust_verdict(engine, identity, role, session_name=session_name, info=info)
        for role in roles
    ]


def trust_verdict(
    engine: StsEngine,
    identity: FederatedIdentity,
    role: Role,
    *,
    session_name: str,
    info: RequestInfo,
    how: str = "",
) -> RoleVerdict:
    """Whether ``role``'s trust policy admits ``identity`` now, and by which statement.

    ``how`` prefixes a granted verdict (the rule that chose the role, for a pool)."""
    if role.account != identity.account:
        return RoleVerdict(role.arn, False, "the provider vouches only in its own account")
    if identity.roles is not None and role.arn not in identity.roles:
        return RoleVerdict(
            role.arn, False, "the sign-in (the SAML Role attribute) does not grant it"
        )
    try:
        requests = engine.trust_requests(identity, role.arn, session_name=session_name, info=info)
    except StsError as exc:
        return RoleVerdict(role.arn, False, exc.message)
    admitted = engine.admits(identity, role, session_name=session_name, info=info)
    for request in requests:
        verdicts = explain_policies((role.trust_policy,), request)
        denies = [v for v in verdicts if v.applies and v.effect == "Deny"]
        allows = [v for v in verdicts if v.applies and v.effect == "Allow"]
        if denies:
            return RoleVerdict(
                role.arn, False, f"trust policy {denies[0]} (an explicit deny of {request.action})"
            )
        if not allows:
            return RoleVerdict(
                role.arn,
                False,
                f"no trust policy statement allows {request.action}",
                tuple(str(v) for v in verdicts),
                names_identity=any(v.failed not in ("principal", "action") for v in verdicts),
            )
    if not admitted:  # the engine is the decision; words that disagree would be a bug
        return RoleVerdict(role.arn, False, "the trust policy does not admit this identity")
    allows = [v for v in explain_policies((role.trust_policy,), requests[0]) if v.applies]
    statement = "its trust policy admits it"
    if allows:
        sid = f" (Sid {allows[0].sid})" if allows[0].sid else ""
        statement = f"trust policy statement {allows[0].index}{sid} admits it"
    return RoleVerdict(role.arn, True, f"{how}{'; ' if how else ''}{statement}")


def render_verdicts(verdicts: Iterable[RoleVerdict]) -> list[str]:
    """One line per role, then its statements' reasons, indented."""
    lines: list[str] = []
    for verdict in verdicts:
        mark = "GRANTED" if verdict.granted else "refused"
        lines.append(f"  {mark:<8}{verdict.role_arn}")
        lines.append(f"            {verdict.how}")
        lines.extend(f"              {detail}" for detail in verdict.details)
    return lines
