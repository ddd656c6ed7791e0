"""Policy evaluation: which statements match a request, and AWS's decision over policy sets.

The decision follows reference_policies_evaluation-logic.html: an explicit deny anywhere
wins; session policies intersect with identity policies; within one account a
resource-based policy that names the caller's own ARN allows on its own; across accounts
both sides must allow; anything else is an implicit deny.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from broker.iam.matching import (
    ContextValue,
    ContextView,
    Principal,
    PrincipalHow,
    arn_match,
    match_principal,
    not_principal_exempts,
)
from broker.iam.policy import Policy, Statement
from broker.records import fast_init


@dataclass(frozen=True)
class AuthzRequest:
    """One authorization question: may ``principal`` do ``action`` on ``resource``?"""

    action: str
    resource: str
    context: Mapping[str, ContextValue]
    """Condition keys, looked up case-insensitively; multivalued keys are tuples."""
    principal: Principal | None = None
    """Needed for trust and resource policies; without it a statement that names a
    principal never allows, and a Deny that names one always applies (fail closed)."""
    _view: ContextView = field(init=False, repr=False, compare=False)
    _action: str = field(init=False, repr=False, compare=False)
    """``action`` lower-cased once for every statement's compiled action matcher."""

    def __post_init__(self) -> None:
        # Built once so every statement shares the folded lookup; a malformed context is
        # a caller bug and fails loudly here rather than deep inside a condition.
        object.__setattr__(self, "_view", ContextView.of(self.context))
        object.__setattr__(self, "_action", self.action.lower())


@fast_init
@dataclass(frozen=True)
class MatchedStatement:
    """A statement that applied to the request, for audit and for the decision's reason."""

    policy: str
    index: int
    sid: str | None
    effect: Literal["Allow", "Deny"]


@fast_init
@dataclass(frozen=True)
class Evaluation:
    """The result of one set of policies."""

    allowed: bool
    """Some Allow statement matched (denies not taken into account)."""
    denied: bool
    """Some Deny statement matched: an explicit deny."""
    matched: tuple[MatchedStatement, ...]
    principal_by_account: bool
    """Every matching Allow named the principal only through its account (root, bare
    account id, or a wildcard), never by one of its own ARNs."""


@dataclass(frozen=True)
class Decision:
    """AWS's final answer over all policy sets, with one human sentence why."""

    allowed: bool
    explicit_deny: bool
    matched: tuple[MatchedStatement, ...]
    reason: str


@fast_init
@dataclass(frozen=True)
class _SetResult:
    """An :class:`Evaluation` plus how the Allows named the caller, which the same-account
    resource-policy rule needs."""

    evaluation: Evaluation
    allow_by_arn: bool
    allow_by_session_arn: bool


def evaluate_policies(policies: Sequence[Policy], request: AuthzRequest) -> Evaluation:
    """Evaluate one set of policies (e.g. all identity policies) against a request."""
    return _evaluate_set(policies, request).evaluation


def authorize(
    request: AuthzRequest,
    *,
    identity: Sequence[Policy],
    session: Sequence[Policy] | None = None,
    resource: Sequence[Policy] = (),
    cross_account: bool = False,
) -> Decision:
    """AWS's evaluation logic over identity, session and resource-based policies.

    ``session is None`` means the caller has no session policy; an empty sequence means it
    has session policies that allow nothing. In one account a resource-based policy that
    names the caller's role or user ARN is still limited by session policies, while one that
    names the session ARN itself is not (reference_policies_evaluation-logic.html,
    "Session policies").
    """
    ident = _evaluate_set(identity, request)
    sess = _evaluate_set(session, request) if session is not None else None
    res = _evaluate_set(resource, request)
    matched = (
        ident.evaluation.matched
        + (sess.evaluation.matched if sess else ())
        + res.evaluation.matched
    )
    action = request.action

    def decide(allowed: bool, reason: str, *, explicit: bool = False) -> Decision:
        return Decision(allowed=allowed, explicit_deny=explicit, matched=matched, reason=reason)

    if ident.evaluation.denied:
        return decide(False, "explicit deny in an identity-based policy", explicit=True)
    if sess is not None and sess.evaluation.denied:
        return decide(False, "explicit deny in a session policy", explicit=True)
    if res.evaluation.denied:
        return decide(False, "explicit deny in a resource-based policy", explicit=True)

    session_allows = sess is None or sess.evaluation.allowed
    identity_side = ident.evaluation.allowed and session_allows
    no_identity = f"no identity-based policy allows the {action} action"
    no_session = f"no session policy allows the {action} action"
    if cross_account:
        if not ident.evaluation.allowed:
            return decide(False, no_identity)
        if not session_allows:
            return decide(False, no_session)
        if not res.evaluation.allowed:
            return decide(False, f"no resource-based policy allows the {action} action")
        return decide(True, "allowed by both an identity-based and a resource-based policy")
    if identity_side:
        return decide(True, "allowed by an identity-based policy")
    if res.allow_by_session_arn or (res.allow_by_arn and session_allows):
        return decide(True, "allowed by a resource-based policy")
    if ident.evaluation.allowed or res.allow_by_arn:
        return decide(False, no_session)
    return decide(False, no_identity)


def _evaluate_set(policies: Sequence[Policy], request: AuthzRequest) -> _SetResult:
    matched: list[MatchedStatement] = []
    allowed = denied = by_arn = by_session_arn = False
    for policy in policies:
        for index, statement in enumerate(policy.statements):
            applies, how = _statement_applies(statement, request)
            if not applies:
                continue
            matched.append(MatchedStatement(policy.name, index, statement.sid, statement.effect))
            if statement.effect == "Deny":
                denied = True
                continue
            allowed = True
            by_arn = by_arn or how in ("arn", "session-arn")
            by_session_arn = by_session_arn or how == "session-arn"
    evaluation = Evaluation(
        allowed=allowed,
        denied=denied,
        matched=tuple(matched),
        principal_by_account=not by_arn,
    )
    return _SetResult(evaluation, allow_by_arn=by_arn, allow_by_session_arn=by_session_arn)


def _statement_applies(
    statement: Statement, request: AuthzRequest
) -> tuple[bool, PrincipalHow | None]:
    """Whether the statement matches, and how its Principal element named the caller."""
    view = request._view
    if statement.action_matcher(request._action) == statement.not_action:
        return False, None
    if statement.resources is not None:
        hit = any(arn_match(r, request.resource, view) for r in statement.resources)
        if hit == statement.not_resource:
            return False, None
    how: PrincipalHow | None = None
    if statement.principal is not None:
        caller = request.principal
        if caller is None:
            if statement.effect == "Allow":
                return False, None
        elif statement.not_principal:
            if not_principal_exempts(statement.principal, caller):
                return False, None
        else:
            how = match_principal(statement.principal, caller)
            if how is None:
                return False, None
    if not all(condition.matches(view) for condition in statement.conditions):
        return False, None
    return True, how
