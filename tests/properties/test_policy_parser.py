"""The IAM policy parser parses or refuses every document, and what it parses evaluates.

Documents are JSON text (arbitrary text, hostile nesting, and JSON built mostly from the
grammar's own keys and operators so the deep checks are reached) and mappings. Every
outcome is a :class:`~broker.iam.Policy` or a ``MalformedPolicyError``, never another
exception; a parsed policy then answers any request without raising.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from broker.iam import (
    AuthzRequest,
    MalformedPolicyError,
    Principal,
    evaluate_policies,
    parse_policy,
)
from broker.iam import policy as policy_grammar
from broker.iam.policy import PolicyKind
from tests.properties.budget import budget

KINDS: list[PolicyKind] = ["identity", "session", "trust", "resource"]
KEYS = [
    *sorted(policy_grammar._TOP_KEYS | policy_grammar._STATEMENT_KEYS),
    *("AWS", "Federated", "Service", "CanonicalUser"),
]
"""The grammar's own keys (read from the parser, so a new one is generated too)."""
WORDS = [
    "2012-10-17",
    "2008-10-17",
    "Allow",
    "Deny",
    "*",
    "s3:GetObject",
    "sts:AssumeRole",
    "s3:*",
    "arn:aws:s3:::b/*",
    "arn:aws:iam::111111111111:root",
    "arn:aws:iam::111111111111:role/Dev",
    "111111111111",
    "${aws:username}",
    "${",
    "StringEquals",
    "StringLike",
    "ForAnyValue:StringEquals",
    "ForAllValues:StringLike",
    "NumericLessThan",
    "DateGreaterThan",
    "Bool",
    "IpAddress",
    "Null",
    "ArnLike",
    "StringEqualsIfExists",
    "aws:SourceIp",
    "aws:PrincipalTag/team",
    "aws:TokenIssueTime",
    "10.0.0.0/8",
    "2026-01-01T00:00:00Z",
    "true",
    "",
]
_scalars = st.one_of(
    st.sampled_from(WORDS),
    st.text(max_size=12),
    st.integers(-(2**65), 2**65),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)
_documents = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS + WORDS) | st.text(max_size=8), inner, max_size=5),
    ),
    max_leaves=25,
)


def _policy_shaped(draw: st.DrawFn) -> dict[str, Any]:
    statement = draw(st.dictionaries(st.sampled_from(KEYS), _documents, min_size=1, max_size=7))
    return {
        "Version": draw(st.sampled_from(["2012-10-17", "2008-10-17", "x"])),
        "Statement": draw(st.sampled_from([statement, [statement], [statement, statement]])),
    }


policy_shaped = st.composite(_policy_shaped)


def _outcome(document: str | dict[str, Any], kind: PolicyKind) -> None:
    try:
        policy = parse_policy(document, kind=kind, name="p")
    except MalformedPolicyError as exc:
        assert exc.reason and len(exc.reason) < 1000
        return
    request = AuthzRequest(
        action="s3:GetObject",
        resource="arn:aws:s3:::b/k",
        context={"aws:SourceIp": "10.1.2.3", "aws:username": "alice", "aws:TagKeys": ("a", "b")},
        principal=Principal(kind="AWS", arns=("arn:aws:iam::111111111111:user/a",), account="1"),
    )
    evaluate_policies((policy,), request)


@given(policy_shaped(), st.sampled_from(KINDS))
@settings(max_examples=budget(150))
@example(
    {"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"": {}}}},
    "identity",
)
def test_policy_shaped_mappings_parse_or_refuse(document: dict[str, Any], kind: PolicyKind) -> None:
    _outcome(document, kind)
    _outcome(json.dumps(document), kind)


@given(st.one_of(st.text(max_size=200), _documents.map(json.dumps)), st.sampled_from(KINDS))
@settings(max_examples=budget(150))
@example("[" * 2000, "session")
@example('{"Version":"2012-10-17","Statement":' + "[" * 1000 + "]" * 1000 + "}", "session")
@example('{"Statement": {"Effect": "Allow", "Effect": "Deny"}}', "identity")
@example(
    '{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}], "x": NaN}', "session"
)
@example('{"Statement": ' + "1" * 5000 + "}", "identity")
def test_policy_text_parses_or_refuses(text: str, kind: PolicyKind) -> None:
    _outcome(text, kind)
