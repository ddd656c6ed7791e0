"""Why each statement of a policy does or does not apply to a request, in words.

:mod:`broker.iam.evaluate` answers *whether*; people debugging a trust policy ask *why
not* ("which condition failed?"). This walks a statement in the evaluator's own order
(action, resource, principal, conditions) with the evaluator's own matchers, and names the
first element that does not hold. Reasons name operators, condition keys and actions, never
a policy's values or the request's: a trust policy's values may be other people's
identities (``accounts.google.com:email``), so the explanation is safe to show to the
person being refused (the role picker does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from broker.iam.evaluate import AuthzRequest
from broker.iam.matching import arn_match, match_principal, not_principal_exempts
from broker.iam.policy import Policy, Statement


@dataclass(frozen=True)
class StatementVerdict:
    """One statement against one request."""

    policy: str
    index: int
    sid: str | None
    effect: str
    applies: bool
    reason: str
    failed: Literal["action", "resource", "principal", "condition"] | None = None
    """Which element did not hold (None when the statement applies)."""

    def __str__(self) -> str:
        sid = f" (Sid {self.sid})" if self.sid else ""
        return f"{self.effect} statement {self.index}{sid}: {self.reason}"


def explain_policies(
    policies: Sequence[Policy], request: AuthzRequest
) -> tuple[StatementVerdict, ...]:
    """A verdict for every statement, in order (``applies`` agrees with the evaluator)."""
    out: list[StatementVerdict] = []
    for policy in policies:
        for index, statement in enumerate(policy.statements):
            found = _mismatch(statement, request)
            out.append(
                StatementVerdict(
                    policy=policy.name,
                    index=index,
                    sid=statement.sid,
                    effect=statement.effect,
                    applies=found is None,
                    reason=found[1] if found else "applies",
                    failed=found[0] if found else None,
                )
            )
    return tuple(out)


_Failed = tuple[Literal["action", "resource", "principal", "condition"], str]


def _mismatch(statement: Statement, request: AuthzRequest) -> _Failed | None:
    view = request._view
    if statement.action_matcher(request._action) == statement.not_action:
        element = "NotAction" if statement.not_action else "Action"
        return "action", f"its {element} does not cover {request.action}"
    if statement.resources is not None:
        hit = any(arn_match(r, request.resource, view) for r in statement.resources)
        if hit == statement.not_resource:
            return "resource", "its Resource does not cover this resource"
    if statement.principal is not None:
        caller = request.principal
        if caller is None:
            if statement.effect == "Allow":
                return "principal", "it names a principal, and the request has none"
        elif statement.not_principal:
            if not_principal_exempts(statement.principal, caller):
                return "principal", "its NotPrincipal leaves this principal out"
        elif match_principal(statement.principal, caller) is None:
            return "principal", f"its Principal names no {caller.kind} principal this identity is"
    for condition in statement.conditions:
        if not condition.matches(view):
            missing = view.get(condition.key) is None
            detail = " (the request has no such key)" if missing else ""
            return "condition", (
                f"condition {condition.operator} on {condition.key} does not hold{detail}"
            )
    return None
