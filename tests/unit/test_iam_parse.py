"""Policy grammar: what parses, and one refusal per rule with its exact reason.

Each row cites the IAM documentation page (and section) whose rule it checks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.iam import MalformedPolicyError, PolicyKind, parse_policy, policy_problems

GRAMMAR = "reference_policies_grammar.html"
ELEMENTS = "reference_policies_elements.html"
PRINCIPAL = "reference_policies_elements_principal.html"
NOTPRINCIPAL = "reference_policies_elements_notprincipal.html"
OPS = "reference_policies_elements_condition_operators.html"
VARS = "reference_policies_variables.html"

SYNTAX = "Syntax errors in policy."
VENDOR = "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."

ALLOW_ALL = {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}
TRUST = {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": "111111111111"}}


def _doc(*statements: dict[str, Any], version: str | None = "2012-10-17") -> dict[str, Any]:
    doc: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        doc["Version"] = version
    return doc


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _principal(value: Any) -> dict[str, Any]:
    return _doc(_with(TRUST, Principal=value))


# (rule, doc, kind, document, exact reason)
REFUSALS: list[tuple[str, str, PolicyKind, Any, str]] = [
    ("not JSON", GRAMMAR, "identity", '{"Statement": [', "Syntax errors in policy."),
    (
        "top level not an object",
        GRAMMAR,
        "identity",
        "[]",
        "Syntax errors in policy. The document must be a JSON object.",
    ),
    (
        "duplicate JSON key",
        GRAMMAR,
        "identity",
        '{"Statement": {"Effect": "Allow", "Effect": "Deny", "Action": "*", "Resource": "*"}}',
        "Syntax errors in policy. Duplicate key Effect.",
    ),
    (
        "NaN is not JSON",
        GRAMMAR,
        "identity",
        '{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", '
        '"Condition": {"NumericEquals": {"a:b": NaN}}}}',
        "Syntax errors in policy. Invalid number NaN.",
    ),
    (
        "unknown top-level key",
        GRAMMAR,
        "identity",
        {**_doc(ALLOW_ALL), "Statements": []},
        "Syntax errors in policy. Unknown field Statements.",
    ),
    (
        "bad Version",
        "reference_policies_elements_version.html",
        "identity",
        _doc(ALLOW_ALL, version="2012-10-18"),
        "Syntax errors in policy. Unsupported Version: 2012-10-18 (use 2012-10-17 or 2008-10-17).",
    ),
    (
        "Id not a string",
        "reference_policies_elements_id.html",
        "identity",
        {**_doc(ALLOW_ALL), "Id": 5},
        "Syntax errors in policy. Id must be a string.",
    ),
    (
        "Statement missing",
        GRAMMAR,
        "identity",
        {"Version": "2012-10-17"},
        "Missing required field Statement.",
    ),
    (
        "Statement empty list",
        GRAMMAR,
        "identity",
        _doc(),
        "Syntax errors in policy. Statement must be an object or a non-empty list of objects.",
    ),
    (
        "Statement not an object",
        GRAMMAR,
        "identity",
        {"Statement": ["x"]},
        "Syntax errors in policy. Each Statement must be an object.",
    ),
    (
        "unknown statement key",
        GRAMMAR,
        "identity",
        _doc(_with(ALLOW_ALL, Conditon={})),
        "Syntax errors in policy. Unknown field Conditon.",
    ),
    (
        "duplicate Sid",
        "reference_policies_elements_sid.html",
        "identity",
        _doc(_with(ALLOW_ALL, Sid="A"), _with(ALLOW_ALL, Sid="A")),
        "Statement IDs (SID) in a single policy must be unique.",
    ),
    (
        "Sid not alphanumeric",
        "reference_policies_elements_sid.html",
        "identity",
        _doc(_with(ALLOW_ALL, Sid="a b")),
        "Statement IDs (SID) must be alpha-numeric.",
    ),
    (
        "Sid not a string",
        "reference_policies_elements_sid.html",
        "identity",
        _doc(_with(ALLOW_ALL, Sid=1)),
        "Syntax errors in policy. Sid must be a string.",
    ),
    (
        "Effect missing",
        "reference_policies_elements_effect.html",
        "identity",
        _doc(_with(ALLOW_ALL, Effect=None)),
        "Missing required field Effect.",
    ),
    (
        "Effect is case-sensitive",
        "reference_policies_elements_effect.html",
        "identity",
        _doc(_with(ALLOW_ALL, Effect="allow")),
        "Invalid effect: allow.",
    ),
    (
        "no Action",
        "reference_policies_elements_action.html",
        "identity",
        _doc(_with(ALLOW_ALL, Action=None)),
        "Policy statement must contain actions.",
    ),
    (
        "empty Action list",
        "reference_policies_elements_action.html",
        "identity",
        _doc(_with(ALLOW_ALL, Action=[])),
        "Policy statement must contain actions.",
    ),
    (
        "Action and NotAction",
        "reference_policies_elements_notaction.html",
        "identity",
        _doc(_with(ALLOW_ALL, NotAction="s3:*")),
        "Statement cannot have both Action and NotAction.",
    ),
    (
        "Action without vendor",
        "reference_policies_elements_action.html",
        "identity",
        _doc(_with(ALLOW_ALL, Action="AssumeRole")),
        f"{VENDOR} Invalid action: AssumeRole.",
    ),
    (
        "Action not a string",
        "reference_policies_elements_action.html",
        "identity",
        _doc(_with(ALLOW_ALL, Action=[1])),
        "Syntax errors in policy. Action must be a string or a list of strings.",
    ),
    (
        "identity policy without Resource",
        "reference_policies_elements_resource.html",
        "identity",
        _doc(_with(ALLOW_ALL, Resource=None)),
        "Policy statement must contain resources.",
    ),
    (
        "session policy without Resource",
        "reference_policies_elements_resource.html",
        "session",
        _doc(_with(ALLOW_ALL, Resource=None)),
        "Policy statement must contain resources.",
    ),
    (
        "Resource and NotResource",
        "reference_policies_elements_notresource.html",
        "identity",
        _doc(_with(ALLOW_ALL, NotResource="*")),
        "Statement cannot have both Resource and NotResource.",
    ),
    (
        "Resource not an ARN",
        "reference_policies_elements_resource.html",
        "identity",
        _doc(_with(ALLOW_ALL, Resource="bucket/*")),
        'Resource bucket/* must be in ARN format or "*".',
    ),
    (
        "Resource ARN with too few fields",
        "reference_policies_elements_resource.html",
        "identity",
        _doc(_with(ALLOW_ALL, Resource="arn:aws:iam::1")),
        'Resource arn:aws:iam::1 must be in ARN format or "*".',
    ),
    (
        "identity policy with Principal",
        PRINCIPAL,
        "identity",
        _doc(_with(ALLOW_ALL, Principal="*")),
        "Policy document should not specify a principal.",
    ),
    (
        "session policy with NotPrincipal",
        NOTPRINCIPAL,
        "session",
        _doc(_with(ALLOW_ALL, NotPrincipal="*")),
        "Policy document should not specify a principal.",
    ),
    (
        "trust policy without Principal",
        PRINCIPAL,
        "trust",
        _doc(_with(TRUST, Principal=None)),
        "Missing required field Principal.",
    ),
    (
        "Principal and NotPrincipal",
        NOTPRINCIPAL,
        "resource",
        _doc(_with(TRUST, Effect="Deny", Resource="*", NotPrincipal="*")),
        "Statement cannot have both Principal and NotPrincipal.",
    ),
    (
        "NotPrincipal in a trust policy",
        f"{NOTPRINCIPAL}#notprincipal-key-points",
        "trust",
        _doc(_with(TRUST, Effect="Deny", Principal=None, NotPrincipal={"AWS": "111111111111"})),
        "NotPrincipal is not supported in a role trust policy.",
    ),
    (
        "NotPrincipal with Allow",
        NOTPRINCIPAL,
        "resource",
        _doc(_with(TRUST, Principal=None, NotPrincipal={"AWS": "111111111111"})),
        'NotPrincipal must be used with "Effect": "Deny".',
    ),
    (
        "partial wildcard AWS principal",
        f"{PRINCIPAL}#principal-anonymous",
        "trust",
        _principal({"AWS": "arn:aws:iam::111111111111:role/*"}),
        'Invalid principal in policy: "AWS":"arn:aws:iam::111111111111:role/*"',
    ),
    (
        "wildcard account in principal",
        f"{PRINCIPAL}#principal-anonymous",
        "trust",
        _principal({"AWS": "arn:aws:iam::*:root"}),
        'Invalid principal in policy: "AWS":"arn:aws:iam::*:root"',
    ),
    (
        "short account id",
        f"{PRINCIPAL}#principal-accounts",
        "trust",
        _principal({"AWS": "12345"}),
        'Invalid principal in policy: "AWS":"12345"',
    ),
    (
        "unknown principal type",
        PRINCIPAL,
        "trust",
        _principal({"Aws": "111111111111"}),
        "Invalid principal in policy: Aws",
    ),
    (
        "principal string other than *",
        PRINCIPAL,
        "trust",
        _principal("111111111111"),
        "Invalid principal in policy: 111111111111",
    ),
    (
        "empty principal object",
        PRINCIPAL,
        "trust",
        _principal({}),
        "Invalid principal in policy: {}",
    ),
    (
        "empty principal list",
        PRINCIPAL,
        "trust",
        _principal({"AWS": []}),
        'Invalid principal in policy: "AWS":[]',
    ),
    (
        "Federated wildcard",
        f"{PRINCIPAL}#principal-federated-users",
        "trust",
        _principal({"Federated": "*"}),
        'Invalid principal in policy: "Federated":"*"',
    ),
    (
        "Service with uppercase / wildcard",
        f"{PRINCIPAL}#principal-services",
        "trust",
        _principal({"Service": "*.amazonaws.com"}),
        'Invalid principal in policy: "Service":"*.amazonaws.com"',
    ),
    (
        "unknown condition operator",
        OPS,
        "identity",
        _doc(_with(ALLOW_ALL, Condition={"StringEqualz": {"saml:aud": "x"}})),
        "Unknown condition operator: StringEqualz",
    ),
    (
        "operator names are case-sensitive",
        OPS,
        "identity",
        _doc(_with(ALLOW_ALL, Condition={"stringequals": {"saml:aud": "x"}})),
        "Unknown condition operator: stringequals",
    ),
    (
        "unknown set operator",
        f"{OPS}#reference_policies_multi-key-or-value-conditions",
        "identity",
        _doc(_with(ALLOW_ALL, Condition={"ForSomeValues:StringEquals": {"saml:aud": "x"}})),
        "Unknown condition operator: ForSomeValues:StringEquals",
    ),
    (
        "NullIfExists",
        f"{OPS}#Conditions_Null",
        "identity",
        _doc(_with(ALLOW_ALL, Condition={"NullIfExists": {"saml:aud": "true"}})),
        "Unknown condition operator: NullIfExists (Null takes no IfExists or set operator)",
    ),
    (
        "Null value not boolean",
        f"{OPS}#Conditions_Null",
        "identity",
        _doc(_with(ALLOW_ALL, Condition={"Null": {"saml:aud": "yes"}})),
        "Invalid value for Null condition on saml:aud: yes (expected true or false).",
    ),
    (
        "non-numeric Numeric literal",
        f"{OPS}#Conditions_Numeric",
        "identity",
        _doc(_with(ALLOW_ALL, Condition={"NumericLessThan": {"s3:max-keys": "ten"}})),
        "Invalid number value for NumericLessThan on s3:max-keys: ten.",
    ),
    (
        "variable in a Numeric literal",
        f"{VARS}#policy-vars-wheretouse",
        "identity",
        _doc(_with(ALLOW_ALL, Condition={"NumericEquals": {"s3:max-keys": "${aws:username}"}})),
        "Invalid number value for NumericEquals on s3:max-keys: ${aws:username}.",
    ),
    (
        "bad date literal",
        f"{OPS}#Conditions_Date",
        "identity",
        _doc(_with(ALLOW_ALL, Condition={"DateLessThan": {"aws:CurrentTime": "tomorrow"}})),
        "Invalid date value for DateLessThan on aws:CurrentTime: tomorrow.",
    ),
    (
        "bad CIDR",
        f"{OPS}#Conditions_IPAddress",
        "identity",
        _doc(_with(ALLOW_ALL, Condition={"IpAddress": {"aws:SourceIp": "203.0.113.0/33"}})),
        "Invalid IP address or CIDR value for IpAddress on aws:SourceIp: 203.0.113.0/33.",
    ),
    (
        "bad Bool literal",
        f"{OPS}#Conditions_Boolean",
        "identity",
        _doc(_with(ALLOW_ALL, Condition={"Bool": {"aws:SecureTransport": "yes"}})),
        "Invalid boolean value for Bool on aws:SecureTransport: yes.",
    ),
    (
        "bad base64 literal",
        f"{OPS}#Conditions_BinaryEquals",
        "identity",
        _doc(_with(ALLOW_ALL, Condition={"BinaryEquals": {"s3:key": "!!"}})),
        "Invalid base64 binary value for BinaryEquals on s3:key: !!.",
    ),
    (
        "condition key without vendor",
        OPS,
        "identity",
        _doc(_with(ALLOW_ALL, Condition={"StringEquals": {"aud": "x"}})),
        f"{VENDOR} Invalid condition key: aud.",
    ),
    (
        "condition value an object",
        OPS,
        "identity",
        _doc(_with(ALLOW_ALL, Condition={"StringEquals": {"saml:aud": {"x": 1}}})),
        f"{SYNTAX} Condition value for saml:aud must be a string, number or boolean.",
    ),
    (
        "condition value list empty",
        OPS,
        "identity",
        _doc(_with(ALLOW_ALL, Condition={"StringEquals": {"saml:aud": []}})),
        "Syntax errors in policy. Empty value list for saml:aud.",
    ),
    (
        "condition operator without keys",
        OPS,
        "identity",
        _doc(_with(ALLOW_ALL, Condition={"StringEquals": {}})),
        f"{SYNTAX} Condition operator StringEquals must map condition keys to values.",
    ),
    (
        "Condition not an object",
        OPS,
        "identity",
        _doc(_with(ALLOW_ALL, Condition=["x"])),
        "Syntax errors in policy. Condition must be an object.",
    ),
    (
        "unterminated variable",
        VARS,
        "identity",
        _doc(_with(ALLOW_ALL, Resource="arn:aws:s3:::b/${aws:username")),
        "Invalid policy variable in arn:aws:s3:::b/${aws:username: missing '}'.",
    ),
    (
        "variable without a vendor",
        VARS,
        "identity",
        _doc(_with(ALLOW_ALL, Resource="arn:aws:s3:::b/${username}")),
        "Invalid policy variable in arn:aws:s3:::b/${username}: ${username}.",
    ),
    (
        "variable default not quoted",
        f"{VARS}#policy-vars-default-values",
        "identity",
        _doc(_with(ALLOW_ALL, Resource="arn:aws:s3:::b/${aws:username, none}")),
        "Invalid policy variable in arn:aws:s3:::b/${aws:username, none}: ${aws:username, none}.",
    ),
]


@pytest.mark.parametrize(
    ("rule", "doc", "kind", "document", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_refusal(rule: str, doc: str, kind: PolicyKind, document: Any, reason: str) -> None:
    with pytest.raises(MalformedPolicyError) as caught:
        parse_policy(document, kind=kind)
    assert caught.value.reason == reason, f"{rule} ({doc})"


# (rule, doc, kind, document)
ACCEPTED: list[tuple[str, str, PolicyKind, Any]] = [
    (
        "single Statement object",
        GRAMMAR,
        "identity",
        {"Version": "2012-10-17", "Statement": ALLOW_ALL},
    ),
    (
        "Version absent",
        "reference_policies_elements_version.html",
        "identity",
        _doc(ALLOW_ALL, version=None),
    ),
    (
        "Version 2008 keeps ${ as text",
        "reference_policies_elements_version.html",
        "identity",
        _doc(_with(ALLOW_ALL, Resource="arn:aws:s3:::b/${oops"), version="2008-10-17"),
    ),
    ("trust policy without Resource", PRINCIPAL, "trust", _doc(TRUST)),
    (
        "console default empty Sid",
        "reference_policies_elements_sid.html",
        "trust",
        _doc(_with(TRUST, Sid=""), _with(TRUST, Sid="")),
    ),
    (
        "resource policy Sid with spaces",
        "reference_policies_elements_sid.html",
        "resource",
        _doc(_with(TRUST, Sid="Allow my account", Resource="*")),
    ),
    ("Principal *", f"{PRINCIPAL}#principal-anonymous", "trust", _principal("*")),
    (
        "every AWS principal form",
        f"{PRINCIPAL}#principal-specifying",
        "trust",
        _principal(
            {
                "AWS": [
                    "*",
                    "111111111111",
                    "arn:aws:iam::111111111111:root",
                    "arn:aws:iam::111111111111:user/path/to/alice",
                    "arn:aws:iam::111111111111:role/Dev",
                    "arn:aws:sts::111111111111:assumed-role/Dev/alice",
                    "arn:aws:sts::111111111111:federated-user/bob",
                    "arn:aws-cn:iam::111111111111:root",
                ]
            }
        ),
    ),
    (
        "federated forms",
        f"{PRINCIPAL}#principal-federated-users",
        "trust",
        _principal(
            {
                "Federated": [
                    "accounts.google.com",
                    "cognito-identity.amazonaws.com",
                    "arn:aws:iam::111111111111:saml-provider/Corp",
                    "arn:aws:iam::111111111111:oidc-provider/idp.example.com/realm",
                ]
            }
        ),
    ),
    (
        "service and canonical user",
        f"{PRINCIPAL}#principal-services",
        "trust",
        _principal({"Service": "ec2.amazonaws.com", "CanonicalUser": "a" * 64}),
    ),
    (
        "NotPrincipal with Deny in a resource policy",
        NOTPRINCIPAL,
        "resource",
        _doc(
            _with(
                TRUST,
                Effect="Deny",
                Resource="*",
                Principal=None,
                NotPrincipal={"AWS": "111111111111"},
            )
        ),
    ),
    (
        "Numeric literal as JSON number, Bool as JSON bool",
        OPS,
        "identity",
        _doc(
            _with(
                ALLOW_ALL,
                Condition={
                    "NumericLessThan": {"s3:max-keys": 10},
                    "Bool": {"aws:SecureTransport": True},
                },
            )
        ),
    ),
    (
        "every operator spelling",
        OPS,
        "identity",
        _doc(
            _with(
                ALLOW_ALL,
                Condition={
                    "ForAllValues:StringLikeIfExists": {"aws:TagKeys": "a*"},
                    "ForAnyValue:ArnNotLikeIfExists": {"aws:SourceArn": "arn:aws:iam::*:role/*"},
                    "DateGreaterThanEquals": {"aws:CurrentTime": "1767225600"},
                    "NotIpAddressIfExists": {"aws:SourceIp": ["10.0.0.0/8", "::1"]},
                    "Null": {"aws:TokenIssueTime": "false"},
                    "StringNotEqualsIgnoreCaseIfExists": {"saml:aud": "X"},
                },
            )
        ),
    ),
    (
        "variable forms",
        VARS,
        "identity",
        _doc(
            _with(
                ALLOW_ALL,
                Resource=[
                    "arn:aws:s3:::b/${aws:username}/*",
                    "arn:aws:s3:::b/${aws:PrincipalTag/cost center, 'none'}",
                    "arn:aws:s3:::b/${*}${?}${$}",
                ],
            )
        ),
    ),
]


@pytest.mark.parametrize(
    ("rule", "doc", "kind", "document"), ACCEPTED, ids=[a[0] for a in ACCEPTED]
)
def test_accepted(rule: str, doc: str, kind: PolicyKind, document: Any) -> None:
    policy = parse_policy(document, kind=kind, name="n")
    assert policy.statements, f"{rule} ({doc})"
    # A str document and the same mapping parse to the same model.
    assert parse_policy(json.dumps(document), kind=kind, name="n") == policy


def test_model_fields() -> None:
    """reference_policies_grammar.html: the parsed model keeps what evaluation needs."""
    policy = parse_policy(
        json.dumps(
            _doc(
                _with(TRUST, Sid="One", Action=["sts:AssumeRole", "sts:TagSession"]),
                {"Effect": "Deny", "NotAction": "sts:*", "Resource": "*", "Principal": "*"},
            )
        ),
        kind="resource",
        name="trust",
    )
    assert policy.name == "trust"
    assert policy.version == "2012-10-17"
    first, second = policy.statements
    assert (first.sid, first.effect, first.actions, first.not_action) == (
        "One",
        "Allow",
        ("sts:AssumeRole", "sts:TagSession"),
        False,
    )
    assert first.resources is None
    assert second.not_action
    assert second.principal is not None
    assert second.principal.everyone


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown policy kind"):
        parse_policy(_doc(ALLOW_ALL), kind="boundary")  # type: ignore[arg-type]


def test_long_fragments_are_cut_in_reasons() -> None:
    """A session policy is caller input: an echoed fragment must stay bounded."""
    with pytest.raises(MalformedPolicyError) as caught:
        parse_policy(_doc(_with(ALLOW_ALL, Action="x" * 5000)), kind="session")
    assert len(caught.value.reason) < 250
    assert caught.value.reason.endswith("....")


def test_deeply_nested_json_refuses() -> None:
    """Bounded everything (ARCHITECTURE.md): pathological nesting is a syntax error, not a crash."""
    with pytest.raises(MalformedPolicyError) as caught:
        parse_policy("[" * 100_000 + "]" * 100_000, kind="session")
    assert caught.value.reason == "Syntax errors in policy."


# --------------------------------------------------------------------- every mistake, placed


def test_every_mistake_is_reported_with_its_place_and_the_first_is_the_reason() -> None:
    document = {
        "Version": "2012-10-17",
        "Statment": [],
        "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole"},
            {
                "Sid": "bad-sid",
                "Effect": "Permit",
                "Principal": {"AWS": ["111111111111", "not-an-arn"], "Martian": "x"},
                "Action": ["sts:AssumeRole", "AssumeRole"],
                "Resource": ["*", "bucket"],
                "Condition": {
                    "StringEqualz": {"aws:username": "a"},
                    "StringEquals": {"nokey": "a", "aws:PrincipalTag/x": []},
                    "NumericLessThan": {"aws:EpochTime": "soon"},
                },
            },
            "not an object",
        ],
    }
    with pytest.raises(MalformedPolicyError) as caught:
        parse_policy(document, kind="trust")
    found = [(p.path, p.reason) for p in caught.value.problems]
    assert found == [
        (("Statment",), f"{SYNTAX} Unknown field Statment."),
        (("Statement", 0), "Missing required field Principal."),
        (("Statement", 1, "Sid"), "Statement IDs (SID) must be alpha-numeric."),
        (("Statement", 1, "Effect"), "Invalid effect: Permit."),
        (("Statement", 1, "Action", 1), f"{VENDOR} Invalid action: AssumeRole."),
        (
            ("Statement", 1, "Principal", "AWS", 1),
            'Invalid principal in policy: "AWS":"not-an-arn"',
        ),
        (("Statement", 1, "Principal", "Martian"), "Invalid principal in policy: Martian"),
        (("Statement", 1, "Resource", 1), 'Resource bucket must be in ARN format or "*".'),
        (
            ("Statement", 1, "Condition", "StringEqualz"),
            "Unknown condition operator: StringEqualz",
        ),
        (
            ("Statement", 1, "Condition", "StringEquals", "nokey"),
            f"{VENDOR} Invalid condition key: nokey.",
        ),
        (
            ("Statement", 1, "Condition", "StringEquals", "aws:PrincipalTag/x"),
            f"{SYNTAX} Empty value list for aws:PrincipalTag/x.",
        ),
        (
            ("Statement", 1, "Condition", "NumericLessThan", "aws:EpochTime"),
            "Invalid number value for NumericLessThan on aws:EpochTime: soon.",
        ),
        (("Statement", 2), f"{SYNTAX} Each Statement must be an object."),
    ]
    # AWS names one mistake: the first, as before this parser reported them all.
    assert caught.value.reason == f"{SYNTAX} Unknown field Statment."


def test_a_single_statement_object_is_placed_under_statement() -> None:
    document = {"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "bucket"}}
    with pytest.raises(MalformedPolicyError) as caught:
        parse_policy(document, kind="identity")
    assert [p.path for p in caught.value.problems] == [("Statement", "Resource")]


def test_duplicate_sids_are_placed_at_the_second_one() -> None:
    one = {"Sid": "A", **ALLOW_ALL}
    with pytest.raises(MalformedPolicyError) as caught:
        parse_policy(_doc(one, ALLOW_ALL, one), kind="identity")
    assert [(p.path, p.reason) for p in caught.value.problems] == [
        (("Statement", 2, "Sid"), "Statement IDs (SID) in a single policy must be unique.")
    ]


def test_policy_problems_is_empty_for_a_good_policy() -> None:
    assert policy_problems(_doc(ALLOW_ALL), kind="identity") == []
    assert [p.path for p in policy_problems('{"Statement": [', kind="identity")] == [()]
