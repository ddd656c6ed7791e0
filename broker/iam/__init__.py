"""IAM policy engine: parse, validate and evaluate IAM JSON policies as AWS does.

Pure code, no I/O: the STS engine parses trust, identity and session policies with
:func:`parse_policy` and asks :func:`authorize` (or :func:`evaluate_policies` for one set).
"""

from __future__ import annotations

from broker.iam.errors import DocumentPath, MalformedPolicyError, PolicyProblem
from broker.iam.evaluate import (
    AuthzRequest,
    Decision,
    Evaluation,
    MatchedStatement,
    authorize,
    evaluate_policies,
)
from broker.iam.explain import StatementVerdict, explain_policies
from broker.iam.matching import ContextValue, Principal
from broker.iam.policy import Policy, PolicyKind, Statement, parse_policy, policy_problems

__all__ = [
    "AuthzRequest",
    "ContextValue",
    "Decision",
    "DocumentPath",
    "Evaluation",
    "MalformedPolicyError",
    "MatchedStatement",
    "Policy",
    "PolicyKind",
    "PolicyProblem",
    "Principal",
    "Statement",
    "StatementVerdict",
    "authorize",
    "evaluate_policies",
    "explain_policies",
    "parse_policy",
    "policy_problems",
]
