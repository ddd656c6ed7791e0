"""Pure authorization decisions for STS actions: no I/O, no HTTP, no minting.

The engine refuses with these reasons; ``sts-broker simulate`` prints them. Keeping them in
one place means the simulator can never disagree with what the broker actually does.
"""

from __future__ import annotations

from collections.abc import Mapping

from broker.directory import Directory, Role
from broker.iam import AuthzRequest, ContextValue, evaluate_policies
from broker.identity import Caller


def identity_problem(caller: Caller, directory: Directory, request: AuthzRequest) -> str | None:
    """Why the caller's identity (∩ session) policies do not allow ``request``, or None.

    AWS's order: an explicit deny anywhere wins; then the identity policies must allow, and
    when the session was given session policies, those must allow too (intersection).
    """
    identity = evaluate_policies(caller.identity_policies(), request)
    if identity.denied:
        return "of an explicit deny in an identity-based policy"
    session_policies = caller.session_policies(directory)
    session = evaluate_policies(session_policies, request) if session_policies is not None else None
    if session is not None and session.denied:
        return "of an explicit deny in a session policy"
    if not identity.allowed:
        return f"no identity-based policy allows the {request.action} action"
    if session is not None and not session.allowed:
        return f"no session policy allows the {request.action} action"
    return None


def assume_role_problem(
    caller: Caller,
    role: Role,
    action: str,
    context: Mapping[str, ContextValue],
    directory: Directory,
) -> str | None:
    """Why ``caller`` may not ``action`` (sts:AssumeRole, sts:TagSession, ...) on ``role``.

    Returns None when allowed, else the tail of AWS's message (`` because ...`` or
    `` with an explicit deny ...``; empty when the trust policy simply does not allow, as
    AWS says nothing more then).

    AWS: the trust policy always has to allow. The caller's identity policies must allow as
    well when the role is in another account, or when the trust policy names the caller
    only through its account (``arn:aws:iam::A:root``), not by its own ARN. An explicit deny
    in either place wins.
    """
    request = AuthzRequest(
        action=action, resource=role.arn, context=context, principal=caller.principal()
    )
    trust = evaluate_policies((role.trust_policy,), request)
    if trust.denied:
        return " with an explicit deny in a resource-based policy"
    if not trust.allowed:
        return ""
    identity_request = AuthzRequest(action=action, resource=role.arn, context=context)
    if role.account != caller.account or trust.principal_by_account:
        problem = identity_problem(caller, directory, identity_request)
    elif evaluate_policies(caller.identity_policies(), identity_request).denied:
        problem = "of an explicit deny in an identity-based policy"
    else:
        problem = None
    return None if problem is None else f" because {problem}"
