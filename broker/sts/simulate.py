"""Policy simulation for people writing policies: "may this principal do X to Y, and why?"

It builds the same :class:`~broker.identity.caller.Caller` the broker would authenticate, the
same condition keys, and asks the same decision functions the engine uses
(:mod:`broker.sts.decisions`), so a simulation can never disagree with a live request.
For ``sts:AssumeRole*`` and ``sts:TagSession`` on a configured role it also evaluates that
role's trust policy, with AWS's cross-account rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from broker.directory import Directory
from broker.errors import StsError
from broker.iam import AuthzRequest, ContextValue, MatchedStatement, evaluate_policies
from broker.identity import Caller
from broker.ids import unique_id
from broker.sts.decisions import assume_role_problem, identity_problem

SIMULATED_SESSION = "simulation"
"""Session name used when the principal is a role (the simulation acts as a role session)."""


@dataclass(frozen=True)
class Simulation:
    """The decision and everything that led to it, ready to print."""

    allowed: bool
    principal: str
    action: str
    resource: str
    reason: str
    matched: tuple[MatchedStatement, ...]
    context: Mapping[str, ContextValue]


def caller_for(directory: Directory, principal_arn: str) -> Caller:
    """A configured user (``arn:aws:iam::A:user/N``) or a role (acting as a role session)."""
    user = directory.users.get(principal_arn)
    if user is not None:
        return Caller(
            kind="user",
            account=user.account,
            arn=user.arn,
            user_id=user.user_id,
            principal_arn=user.arn,
            user=user,
        )
    role = directory.role(principal_arn)
    if role is not None:
        return Caller(
            kind="assumed-role",
            account=role.account,
            arn=f"arn:aws:sts::{role.account}:assumed-role/{role.name}/{SIMULATED_SESSION}",
            user_id=f"{unique_id('AROA', role.account, role.path, role.name)}:{SIMULATED_SESSION}",
            principal_arn=role.arn,
            role=role,
        )
    raise StsError(
        "ValidationError",
        f"{principal_arn} is not a user or role in this config (give the ARN with its path).",
    )


def parse_context(pairs: Sequence[str]) -> dict[str, ContextValue]:
    """``key=value`` arguments; a key given several times becomes a multi-valued key."""
    values: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise StsError("ValidationError", f"--context takes key=value, got {pair!r}")
        values.setdefault(key, []).append(value)
    return {k: v[0] if len(v) == 1 else tuple(v) for k, v in values.items()}


def simulate(
    directory: Directory,
    *,
    principal_arn: str,
    action: str,
    resource: str,
    context: Mapping[str, ContextValue],
    now: float,
    region: str,
) -> Simulation:
    """Decide as the broker would; ``context`` adds to (and overrides) the global keys."""
    caller = caller_for(directory, principal_arn)
    keys = caller.context(now=now, source_ip="", secure=True, region=region)
    lowered = {k.lower() for k in context}
    keys = {k: v for k, v in keys.items() if k.lower() not in lowered}
    keys.update(context)
    role = directory.role(resource)
    request = AuthzRequest(action=action, resource=resource, context=keys)
    if role is not None and action.lower().startswith(("sts:assumerole", "sts:tagsession")):
        problem = assume_role_problem(caller, role, action, keys, directory)
        trust = evaluate_policies(
            (role.trust_policy,),
            AuthzRequest(
                action=action, resource=role.arn, context=keys, principal=caller.principal()
            ),
        )
        identity = evaluate_policies(caller.identity_policies(), request)
        matched = trust.matched + identity.matched
        if problem is None:
            reason = "allowed by the role's trust policy" + (
                " and the principal's identity policies"
                if role.account != caller.account or trust.principal_by_account
                else ""
            )
        else:
            reason = problem or " the role's trust policy does not allow this principal"
    else:
        problem = identity_problem(caller, directory, request)
        matched = evaluate_policies(caller.identity_policies(), request).matched
        reason = "allowed by an identity-based policy" if problem is None else problem
    # "... because of an explicit deny" reads as a reason once the connective goes.
    reason = reason.strip().removeprefix("because ").removeprefix("of ")
    return Simulation(
        allowed=problem is None,
        principal=caller.arn if caller.kind == "user" else principal_arn,
        action=action,
        resource=resource,
        reason=reason,
        matched=matched,
        context=keys,
    )


def render(result: Simulation) -> str:
    """Human-readable report, one fact per line."""
    lines = [
        f"Decision:  {'ALLOWED' if result.allowed else 'DENIED'}",
        f"Principal: {result.principal}",
        f"Action:    {result.action}",
        f"Resource:  {result.resource}",
        f"Reason:    {result.reason}",
    ]
    if result.matched:
        lines.append("Matched statements:")
        for m in result.matched:
            sid = f" (Sid {m.sid})" if m.sid else ""
            lines.append(f"  {m.effect:<5} {m.policy} statement {m.index}{sid}")
    else:
        lines.append("Matched statements: none")
    return "\n".join(lines)
