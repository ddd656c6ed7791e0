"""Statement matching and AWS's decision logic, each row citing the rule it checks."""

from __future__ import annotations

from typing import Any

import pytest

from broker.iam import (
    AuthzRequest,
    ContextValue,
    MatchedStatement,
    Policy,
    PolicyKind,
    Principal,
    authorize,
    evaluate_policies,
    explain_policies,
    parse_policy,
)
from broker.iam.matching import ContextView

EVAL = "reference_policies_evaluation-logic.html"
CROSS = "reference_policies_evaluation-logic-cross-account.html"
PRINCIPAL = "reference_policies_elements_principal.html"
NOTPRINCIPAL = "reference_policies_elements_notprincipal.html"
ACTION = "reference_policies_elements_action.html"
RESOURCE = "reference_policies_elements_resource.html"
VARS = "reference_policies_variables.html"

A = "111111111111"
B = "222222222222"
ROLE = f"arn:aws:iam::{A}:role/Dev"
SESSION = f"arn:aws:sts::{A}:assumed-role/Dev/alice"

ROLE_SESSION = Principal("AWS", (SESSION, ROLE), A)
IAM_USER = Principal("AWS", (f"arn:aws:iam::{A}:user/ops/bob",), A)
FED_USER = Principal("AWS", (f"arn:aws:sts::{A}:federated-user/bob",), A)
OTHER_ACCOUNT = Principal(
    "AWS", (f"arn:aws:sts::{B}:assumed-role/X/s", f"arn:aws:iam::{B}:role/X"), B
)
SAML = Principal("Federated", (f"arn:aws:iam::{A}:saml-provider/Corp",), None)
GOOGLE = Principal("Federated", ("accounts.google.com",), None)
OIDC = Principal("Federated", (f"arn:aws:iam::{A}:oidc-provider/idp.example.com/realm",), None)
EC2 = Principal("Service", ("ec2.amazonaws.com",), None)


def _policy(kind: PolicyKind, *statements: dict[str, Any], name: str = "p") -> Policy:
    return parse_policy(
        {"Version": "2012-10-17", "Statement": list(statements)}, kind=kind, name=name
    )


def _request(
    action: str = "sts:AssumeRole",
    resource: str = ROLE,
    context: dict[str, ContextValue] | None = None,
    principal: Principal | None = ROLE_SESSION,
) -> AuthzRequest:
    return AuthzRequest(action, resource, context or {}, principal)


def _allow(**element: Any) -> dict[str, Any]:
    return {"Effect": "Allow", **element}


def _deny(**element: Any) -> dict[str, Any]:
    return {"Effect": "Deny", **element}


# ------------------------------------------------------------- one statement, one request

# (rule, doc, statement, request, allowed)
STATEMENTS: list[tuple[str, str, dict[str, Any], AuthzRequest, bool]] = [
    ("action exact", ACTION, _allow(Action="sts:AssumeRole", Resource="*"), _request(), True),
    (
        "action case-insensitive",
        ACTION,
        _allow(Action="STS:assumerole", Resource="*"),
        _request(),
        True,
    ),
    ("action wildcard", ACTION, _allow(Action="sts:Assume*", Resource="*"), _request(), True),
    ("action ? wildcard", ACTION, _allow(Action="sts:AssumeRol?", Resource="*"), _request(), True),
    (
        "action * matches every service",
        ACTION,
        _allow(Action="*", Resource="*"),
        _request(action="s3:GetObject"),
        True,
    ),
    (
        "other service does not match",
        ACTION,
        _allow(Action="iam:*", Resource="*"),
        _request(),
        False,
    ),
    (
        "NotAction matches every other action",
        "reference_policies_elements_notaction.html",
        _allow(NotAction="iam:*", Resource="*"),
        _request(),
        True,
    ),
    (
        "NotAction excludes the listed action",
        "reference_policies_elements_notaction.html",
        _allow(NotAction=["iam:*", "sts:AssumeRole"], Resource="*"),
        _request(),
        False,
    ),
    ("resource exact", RESOURCE, _allow(Action="*", Resource=ROLE), _request(), True),
    (
        "resource case-sensitive",
        RESOURCE,
        _allow(Action="*", Resource=ROLE.lower()),
        _request(),
        False,
    ),
    (
        "resource wildcard in the resource field",
        RESOURCE,
        _allow(Action="*", Resource=f"arn:aws:iam::{A}:role/D*"),
        _request(),
        True,
    ),
    (
        "resource wildcard account field",
        RESOURCE,
        _allow(Action="*", Resource="arn:aws:iam::*:role/Dev"),
        _request(),
        True,
    ),
    (
        "resource * does not cross into the next ARN field",
        RESOURCE,
        _allow(Action="*", Resource="arn:aws:logs:*:log-group:app"),
        _request(resource="arn:aws:logs:us-east-1:111111111111:log-group:app"),
        False,
    ),
    (
        "resource ? matches one character per field",
        RESOURCE,
        _allow(Action="*", Resource="arn:aws:iam::????????????:role/Dev"),
        _request(),
        True,
    ),
    (
        "resource field may hold colons",
        RESOURCE,
        _allow(Action="*", Resource="arn:aws:logs:us-east-1:111111111111:log-group:app:*"),
        _request(resource="arn:aws:logs:us-east-1:111111111111:log-group:app:log-stream:x"),
        True,
    ),
    (
        "NotResource",
        "reference_policies_elements_notresource.html",
        _allow(Action="*", NotResource=f"arn:aws:iam::{A}:role/Admin"),
        _request(),
        True,
    ),
    (
        "NotResource excludes",
        "reference_policies_elements_notresource.html",
        _allow(Action="*", NotResource="arn:aws:iam::*:role/*"),
        _request(),
        False,
    ),
    (
        "variable in Resource",
        f"{VARS}#policy-vars-infotouse",
        _allow(Action="*", Resource="arn:aws:iam::*:role/${aws:PrincipalTag/role}"),
        _request(context={"aws:PrincipalTag/role": "Dev"}),
        True,
    ),
    (
        "variable lookup is case-insensitive",
        f"{VARS}#policy-vars-infotouse",
        _allow(Action="*", Resource="arn:aws:iam::*:role/${AWS:principaltag/ROLE}"),
        _request(context={"aws:PrincipalTag/role": "Dev"}),
        True,
    ),
    (
        "variable without value makes the Resource not match",
        f"{VARS}#policy-vars-no-value",
        _allow(Action="*", Resource="arn:aws:iam::*:role/${aws:username}"),
        _request(),
        False,
    ),
    (
        "variable default in Resource",
        f"{VARS}#policy-vars-default-values",
        _allow(Action="*", Resource="arn:aws:iam::*:role/${aws:username, 'Dev'}"),
        _request(),
        True,
    ),
    (
        "variable value * is literal in Resource",
        f"{VARS}#policy-vars-specialchars",
        _allow(Action="*", Resource="arn:aws:iam::*:role/${aws:username}"),
        _request(context={"aws:username": "*"}),
        False,
    ),
    (
        "variable value with a colon cannot forge ARN fields",
        f"{VARS}#policy-vars-infotouse",
        _allow(Action="*", Resource="arn:aws:iam::${aws:username}:role/Dev"),
        _request(context={"aws:username": f"{A}:role/Dev:x"}),
        False,
    ),
]


@pytest.mark.parametrize(
    ("rule", "doc", "statement", "request_", "expected"), STATEMENTS, ids=[s[0] for s in STATEMENTS]
)
def test_statement(
    rule: str, doc: str, statement: dict[str, Any], request_: AuthzRequest, expected: bool
) -> None:
    evaluation = evaluate_policies([_policy("identity", statement)], request_)
    assert evaluation.allowed is expected, f"{rule} ({doc})"
    assert len(evaluation.matched) == int(expected)


@pytest.mark.parametrize(
    ("rule", "doc", "statement", "request_", "expected"), STATEMENTS, ids=[s[0] for s in STATEMENTS]
)
def test_explain_agrees_with_the_evaluator(
    rule: str, doc: str, statement: dict[str, Any], request_: AuthzRequest, expected: bool
) -> None:
    """``sts-broker explain``'s words come from the same matchers, in the same order."""
    (verdict,) = explain_policies([_policy("identity", statement)], request_)
    assert verdict.applies is expected, rule
    assert (verdict.failed is None) is expected
    assert (verdict.reason == "applies") is expected


def test_explain_names_the_failing_condition_key_never_a_value() -> None:
    policy = _policy(
        "trust",
        _allow(
            Principal={"Federated": "accounts.google.com"},
            Action="sts:AssumeRoleWithWebIdentity",
            Condition={"StringEquals": {"accounts.google.com:email": "boss@example.com"}},
        ),
    )
    request = _request(
        "sts:AssumeRoleWithWebIdentity",
        principal=GOOGLE,
        context={"accounts.google.com:email": "intern@example.com"},
    )
    (verdict,) = explain_policies([policy], request)
    assert verdict.reason == "condition StringEquals on accounts.google.com:email does not hold"
    assert verdict.failed == "condition"
    (missing,) = explain_policies(
        [policy], _request("sts:AssumeRoleWithWebIdentity", principal=GOOGLE)
    )
    assert missing.reason.endswith("(the request has no such key)")
    (other,) = explain_policies([policy], _request("sts:AssumeRoleWithWebIdentity", principal=SAML))
    assert (other.failed, other.reason) == (
        "principal",
        "its Principal names no Federated principal this identity is",
    )


def _trust(
    principal: Any, effect: str = "Allow", element: str = "Principal", kind: PolicyKind = "trust"
) -> Policy:
    return _policy(kind, {"Effect": effect, "Action": "sts:AssumeRole", element: principal})


# (rule, doc, Principal element, caller, matches, principal_by_account)
PRINCIPALS: list[tuple[str, str, Any, Principal | None, bool, bool]] = [
    ("Principal * matches everyone", f"{PRINCIPAL}#principal-anonymous", "*", SAML, True, True),
    (
        "AWS * matches any AWS principal",
        f"{PRINCIPAL}#principal-anonymous",
        {"AWS": "*"},
        ROLE_SESSION,
        True,
        True,
    ),
    (
        "AWS * does not match a federated caller",
        f"{PRINCIPAL}#principal-anonymous",
        {"AWS": "*"},
        GOOGLE,
        False,
        True,
    ),
    (
        "account root names the account",
        f"{PRINCIPAL}#principal-accounts",
        {"AWS": f"arn:aws:iam::{A}:root"},
        ROLE_SESSION,
        True,
        True,
    ),
    (
        "bare account id names the account",
        f"{PRINCIPAL}#principal-accounts",
        {"AWS": A},
        IAM_USER,
        True,
        True,
    ),
    (
        "other account's root does not match",
        f"{PRINCIPAL}#principal-accounts",
        {"AWS": f"arn:aws:iam::{B}:root"},
        ROLE_SESSION,
        False,
        True,
    ),
    (
        "role ARN matches its sessions (the engine passes it in arns)",
        f"{PRINCIPAL}#principal-roles",
        {"AWS": ROLE},
        ROLE_SESSION,
        True,
        False,
    ),
    (
        "assumed-role session ARN",
        f"{PRINCIPAL}#principal-role-session",
        {"AWS": SESSION},
        ROLE_SESSION,
        True,
        False,
    ),
    (
        "another session of the role does not match a session ARN",
        f"{PRINCIPAL}#principal-role-session",
        {"AWS": f"arn:aws:sts::{A}:assumed-role/Dev/mallory"},
        ROLE_SESSION,
        False,
        True,
    ),
    (
        "principal ARNs are case-sensitive",
        f"{PRINCIPAL}#principal-roles",
        {"AWS": f"arn:aws:iam::{A}:role/dev"},
        ROLE_SESSION,
        False,
        True,
    ),
    (
        "IAM user ARN",
        f"{PRINCIPAL}#principal-users",
        {"AWS": f"arn:aws:iam::{A}:user/ops/bob"},
        IAM_USER,
        True,
        False,
    ),
    (
        "federated user session",
        f"{PRINCIPAL}#sts-session-principals",
        {"AWS": f"arn:aws:sts::{A}:federated-user/bob"},
        FED_USER,
        True,
        False,
    ),
    (
        "SAML provider",
        f"{PRINCIPAL}#principal-federated-saml",
        {"Federated": f"arn:aws:iam::{A}:saml-provider/Corp"},
        SAML,
        True,
        False,
    ),
    (
        "web identity provider name",
        f"{PRINCIPAL}#principal-federated-web-identity",
        {"Federated": "accounts.google.com"},
        GOOGLE,
        True,
        False,
    ),
    (
        "OIDC provider ARN",
        f"{PRINCIPAL}#principal-federated-web-identity",
        {"Federated": f"arn:aws:iam::{A}:oidc-provider/idp.example.com/realm"},
        OIDC,
        True,
        False,
    ),
    (
        "Federated does not match an AWS caller with the same string",
        PRINCIPAL,
        {"Federated": f"arn:aws:iam::{A}:saml-provider/Corp"},
        Principal("AWS", (f"arn:aws:iam::{A}:saml-provider/Corp",), A),
        False,
        True,
    ),
    (
        "service principal",
        f"{PRINCIPAL}#principal-services",
        {"Service": ["lambda.amazonaws.com", "ec2.amazonaws.com"]},
        EC2,
        True,
        False,
    ),
    (
        "service principal does not match an AWS account",
        f"{PRINCIPAL}#principal-services",
        {"Service": "ec2.amazonaws.com"},
        ROLE_SESSION,
        False,
        True,
    ),
    ("statement naming a principal never allows an unknown caller", EVAL, "*", None, False, True),
    (
        "ARN beats account when both are listed",
        f"{PRINCIPAL}#principal-accounts",
        {"AWS": [A, ROLE]},
        ROLE_SESSION,
        True,
        False,
    ),
]


@pytest.mark.parametrize(
    ("rule", "doc", "element", "caller", "matches", "by_account"),
    PRINCIPALS,
    ids=[p[0] for p in PRINCIPALS],
)
def test_principal(
    rule: str, doc: str, element: Any, caller: Principal | None, matches: bool, by_account: bool
) -> None:
    evaluation = evaluate_policies([_trust(element)], _request(principal=caller))
    assert (evaluation.allowed, evaluation.principal_by_account) == (matches, by_account), (
        f"{rule} ({doc})"
    )


# (rule, doc, NotPrincipal element, caller, deny applies)
NOT_PRINCIPALS: list[tuple[str, str, Any, Principal | None, bool]] = [
    (
        "NotPrincipal denies everyone not listed",
        NOTPRINCIPAL,
        {"AWS": [f"arn:aws:iam::{B}:root", f"arn:aws:iam::{B}:role/X"]},
        ROLE_SESSION,
        True,
    ),
    (
        "NotPrincipal exempts a caller listed with its account",
        f"{NOTPRINCIPAL}#specifying-notprincipal-deny",
        {"AWS": [A, SESSION]},
        ROLE_SESSION,
        False,
    ),
    (
        "NotPrincipal without the account still denies (AWS checks the account first)",
        f"{NOTPRINCIPAL}#specifying-notprincipal-deny",
        {"AWS": SESSION},
        ROLE_SESSION,
        True,
    ),
    (
        "NotPrincipal with only the account still denies the identity in it",
        f"{NOTPRINCIPAL}#specifying-notprincipal-deny",
        {"AWS": f"arn:aws:iam::{A}:root"},
        ROLE_SESSION,
        True,
    ),
    (
        "NotPrincipal exempts a listed service",
        NOTPRINCIPAL,
        {"Service": "ec2.amazonaws.com"},
        EC2,
        False,
    ),
    ("NotPrincipal * exempts everyone", NOTPRINCIPAL, "*", ROLE_SESSION, False),
    ("NotPrincipal Deny applies to an unknown caller (fail closed)", EVAL, {"AWS": A}, None, True),
]


@pytest.mark.parametrize(
    ("rule", "doc", "element", "caller", "denied"),
    NOT_PRINCIPALS,
    ids=[n[0] for n in NOT_PRINCIPALS],
)
def test_not_principal(
    rule: str, doc: str, element: Any, caller: Principal | None, denied: bool
) -> None:
    policy = _policy(
        "resource", {"Effect": "Deny", "Action": "*", "Resource": "*", "NotPrincipal": element}
    )
    assert evaluate_policies([policy], _request(principal=caller)).denied is denied, (
        f"{rule} ({doc})"
    )


def test_deny_naming_a_principal_applies_when_caller_unknown() -> None:
    """Fail closed (ARCHITECTURE.md): without a principal a Deny that names one applies."""
    policy = _trust({"AWS": A}, effect="Deny")
    assert evaluate_policies([policy], _request(principal=None)).denied


def test_trust_policy_with_conditions_and_matched_statements() -> None:
    """A realistic SAML trust policy (id_roles_providers_create_for-saml.html)."""
    trust = _policy(
        "trust",
        {
            "Sid": "Saml",
            "Effect": "Allow",
            "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession"],
            "Principal": {"Federated": f"arn:aws:iam::{A}:saml-provider/Corp"},
            "Condition": {"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}},
        },
        name="trust",
    )
    ok = _request(
        "sts:AssumeRoleWithSAML", ROLE, {"saml:aud": "https://signin.aws.amazon.com/saml"}, SAML
    )
    assert evaluate_policies([trust], ok).matched == (
        MatchedStatement("trust", 0, "Saml", "Allow"),
    )
    wrong_aud = _request("sts:AssumeRoleWithSAML", ROLE, {"saml:aud": "https://evil.example"}, SAML)
    assert not evaluate_policies([trust], wrong_aud).allowed


# ------------------------------------------------------------------------- the decision

ALLOW_ASSUME = _allow(Action="sts:AssumeRole", Resource="*")
DENY_ASSUME = _deny(Action="sts:AssumeRole", Resource="*")
ALLOW_S3 = _allow(Action="s3:*", Resource="*")
TRUST_ROLE_ARN = {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": ROLE}}
TRUST_SESSION_ARN = {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": SESSION}}
TRUST_ACCOUNT = {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": A}}
TRUST_DENY = {"Effect": "Deny", "Action": "sts:AssumeRole", "Principal": "*"}

NO_IDENTITY = "no identity-based policy allows the sts:AssumeRole action"
NO_SESSION = "no session policy allows the sts:AssumeRole action"

# (rule, doc, identity, session, resource, cross_account, allowed, explicit_deny, reason)
DECISIONS: list[
    tuple[
        str,
        str,
        list[dict[str, Any]],
        list[dict[str, Any]] | None,
        list[dict[str, Any]],
        bool,
        bool,
        bool,
        str,
    ]
] = [
    (
        "implicit deny by default",
        f"{EVAL}#policy-eval-basics",
        [],
        None,
        [],
        False,
        False,
        False,
        NO_IDENTITY,
    ),
    (
        "identity allow",
        f"{EVAL}#policy-eval-basics",
        [ALLOW_ASSUME],
        None,
        [],
        False,
        True,
        False,
        "allowed by an identity-based policy",
    ),
    (
        "explicit deny overrides allow",
        f"{EVAL}#policy-eval-denyallow",
        [ALLOW_ASSUME, DENY_ASSUME],
        None,
        [],
        False,
        False,
        True,
        "explicit deny in an identity-based policy",
    ),
    (
        "deny in a session policy wins",
        f"{EVAL}#policy-eval-denyallow",
        [ALLOW_ASSUME],
        [ALLOW_ASSUME, DENY_ASSUME],
        [],
        False,
        False,
        True,
        "explicit deny in a session policy",
    ),
    (
        "deny in a resource policy wins over identity allow",
        f"{EVAL}#policy-eval-denyallow",
        [ALLOW_ASSUME],
        None,
        [TRUST_DENY],
        False,
        False,
        True,
        "explicit deny in a resource-based policy",
    ),
    (
        "identity deny checked before resource allow",
        f"{EVAL}#policy-eval-denyallow",
        [DENY_ASSUME],
        None,
        [TRUST_ROLE_ARN],
        False,
        False,
        True,
        "explicit deny in an identity-based policy",
    ),
    (
        "session policy intersects: both allow",
        "access_policies.html#policies_session",
        [ALLOW_ASSUME],
        [ALLOW_ASSUME],
        [],
        False,
        True,
        False,
        "allowed by an identity-based policy",
    ),
    (
        "session policy intersects: session does not allow",
        "access_policies.html#policies_session",
        [ALLOW_ASSUME],
        [ALLOW_S3],
        [],
        False,
        False,
        False,
        NO_SESSION,
    ),
    (
        "session policy cannot grant beyond identity",
        "access_policies.html#policies_session",
        [ALLOW_S3],
        [ALLOW_ASSUME],
        [],
        False,
        False,
        False,
        NO_IDENTITY,
    ),
    (
        "empty session policy set allows nothing",
        "access_policies.html#policies_session",
        [ALLOW_ASSUME],
        [],
        [],
        False,
        False,
        False,
        NO_SESSION,
    ),
    (
        "same account: resource policy naming the role ARN allows alone",
        f"{EVAL}#policy-eval-basics",
        [],
        None,
        [TRUST_ROLE_ARN],
        False,
        True,
        False,
        "allowed by a resource-based policy",
    ),
    (
        "same account: resource policy naming only the account needs identity allow",
        f"{EVAL}#policy-eval-basics",
        [],
        None,
        [TRUST_ACCOUNT],
        False,
        False,
        False,
        NO_IDENTITY,
    ),
    (
        "same account: account-named resource allow plus identity allow",
        f"{EVAL}#policy-eval-basics",
        [ALLOW_ASSUME],
        None,
        [TRUST_ACCOUNT],
        False,
        True,
        False,
        "allowed by an identity-based policy",
    ),
    (
        "same account: role-ARN resource allow is still limited by session policy",
        f"{EVAL}#policy_eval_session_policies",
        [],
        [ALLOW_S3],
        [TRUST_ROLE_ARN],
        False,
        False,
        False,
        NO_SESSION,
    ),
    (
        "same account: session-ARN resource allow is not limited by session policy",
        f"{EVAL}#policy_eval_session_policies",
        [],
        [ALLOW_S3],
        [TRUST_SESSION_ARN],
        False,
        True,
        False,
        "allowed by a resource-based policy",
    ),
    (
        "cross-account: identity alone is not enough",
        CROSS,
        [ALLOW_ASSUME],
        None,
        [],
        True,
        False,
        False,
        "no resource-based policy allows the sts:AssumeRole action",
    ),
    (
        "cross-account: resource alone is not enough",
        CROSS,
        [],
        None,
        [TRUST_ROLE_ARN],
        True,
        False,
        False,
        NO_IDENTITY,
    ),
    (
        "cross-account: both sides allow",
        CROSS,
        [ALLOW_ASSUME],
        None,
        [TRUST_ACCOUNT],
        True,
        True,
        False,
        "allowed by both an identity-based and a resource-based policy",
    ),
    (
        "cross-account: session policy still limits the identity side",
        CROSS,
        [ALLOW_ASSUME],
        [ALLOW_S3],
        [TRUST_ROLE_ARN],
        True,
        False,
        False,
        NO_SESSION,
    ),
]


@pytest.mark.parametrize(
    ("rule", "doc", "identity", "session", "resource", "cross", "allowed", "explicit", "reason"),
    DECISIONS,
    ids=[d[0] for d in DECISIONS],
)
def test_decision(
    rule: str,
    doc: str,
    identity: list[dict[str, Any]],
    session: list[dict[str, Any]] | None,
    resource: list[dict[str, Any]],
    cross: bool,
    allowed: bool,
    explicit: bool,
    reason: str,
) -> None:
    decision = authorize(
        _request(),
        identity=[_policy("identity", s, name=f"id{i}") for i, s in enumerate(identity)],
        session=None
        if session is None
        else [_policy("session", s, name=f"s{i}") for i, s in enumerate(session)],
        resource=[_policy("trust", s, name=f"trust{i}") for i, s in enumerate(resource)],
        cross_account=cross,
    )
    assert (decision.allowed, decision.explicit_deny, decision.reason) == (
        allowed,
        explicit,
        reason,
    ), f"{rule} ({doc})"


def test_decision_lists_every_matched_statement_in_order() -> None:
    """reference_policies_evaluation-logic.html: every applicable statement is considered,
    not only the first; the audit trail keeps policy names and indexes."""
    identity = _policy("identity", ALLOW_S3, dict(ALLOW_ASSUME, Sid="Assume"), name="id")
    trust = _policy("trust", TRUST_ACCOUNT, name="trust")
    decision = authorize(_request(), identity=[identity], resource=[trust])
    assert decision.matched == (
        MatchedStatement("id", 1, "Assume", "Allow"),
        MatchedStatement("trust", 0, None, "Allow"),
    )


def test_context_with_one_key_spelt_twice_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="case-insensitive"):
        _request(context={"aws:username": "a", "AWS:UserName": "b"})


def test_context_view_folds_keys_and_keeps_multivalued_keys() -> None:
    view = ContextView.of({"aws:UserName": "a", "aws:TagKeys": ("x", "y"), "s3:prefix": ()})
    assert view.get("AWS:USERNAME") == ("a",)
    assert view.get("aws:tagkeys") == ("x", "y")
    assert view.get("s3:prefix") is None  # no value: AWS treats it as missing
    assert ContextView.of({"aws:UserName": "a"}).values == {"aws:username": ("a",)}


@pytest.mark.parametrize(
    ("context", "error"),
    [
        ({"aws:username": "a", "AWS:UserName": "b"}, ValueError),
        ({"aws:UserName": ("a", "b"), "AWS:USERNAME": "c"}, ValueError),
        ({"aws:username": 1}, TypeError),
        ({"aws:username": ("a", 1)}, TypeError),
        ({1: "a"}, TypeError),
    ],
)
def test_context_view_refuses_what_the_caller_got_wrong(
    context: dict[Any, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        ContextView.of(context)
