"""Identity-pool role mapping as AWS documents it, one table row per documented example.

Sources, cited per case:

- RBAC: Cognito developer guide, "Using role-based access control",
  https://docs.aws.amazon.com/cognito/latest/developerguide/role-based-access-control.html
  (sections "Using tokens to assign roles to users" and "Using rule-based mapping to assign
  roles to users").
- CDK: the ``RoleMappingMatchType`` example of the AWS CDK reference,
  https://docs.aws.amazon.com/cdk/api/v2/docs/aws-cdk-lib.aws_cognito_identitypool.RoleMappingMatchType.html
  (``custom:admin`` Equals ``admin`` -> admin role; NotEqual ``admin`` -> non-admin role).
- SAML: Cognito developer guide, "SAML identity providers (identity pools)",
  https://docs.aws.amazon.com/cognito/latest/developerguide/saml-identity-provider.html
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.config import BrokerConfig, ConfigError
from broker.identity.claims import Claims
from broker.pools.directory import Pool, PoolDirectory
from broker.pools.mapping import RoleChoice, choose_role, choose_saml_role
from broker.pools.regex import BoundedPattern, PatternError

ACCOUNT = "123456789012"
POOL = "us-east-1:12345678-1234-4234-8234-123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role"
DEFAULT = f"{ROLE}/Authenticated"
SALES, ADMIN, NON_ADMIN, EDITOR = (f"{ROLE}/{n}" for n in ("Sales", "Admin", "NonAdmin", "Editor"))
ROLES = {DEFAULT, SALES, ADMIN, NON_ADMIN, EDITOR, f"{ROLE}/Deployer"}


def _rule(claim: str, match: str, value: str, role: str) -> dict[str, str]:
    return {"Claim": claim, "MatchType": match, "Value": value, "RoleARN": role}


def _pool(mapping: dict[str, Any] | None, *, default: str | None = DEFAULT) -> Pool:
    roles: dict[str, Any] = {
        name: {"trust_policy": {"Statement": []}} for name in (r.split("/")[-1] for r in ROLES)
    }
    pool: dict[str, Any] = {"name": "Test", "logins": ["idp.example.com"]}
    if default is not None:
        pool["roles"] = {"authenticated": default}
    if mapping is not None:
        pool["role_mappings"] = {"idp.example.com": mapping}
    config = BrokerConfig.model_validate(
        {
            "public_url": "http://127.0.0.1:8080",
            "accounts": {
                ACCOUNT: {
                    "oidc_providers": [{"url": "https://idp.example.com", "client_ids": ["c"]}],
                    "roles": roles,
                    "identity_pools": {POOL: pool},
                }
            },
        }
    )
    built = PoolDirectory.build(config).get(POOL)
    assert built is not None
    return built


def _choose(
    mapping: dict[str, Any] | None,
    claims: dict[str, Any],
    custom: str | None = None,
    *,
    default: str | None = DEFAULT,
) -> RoleChoice:
    pool = _pool(mapping, default=default)
    compiled = pool.mappings.get("idp.example.com")
    return choose_role(pool, compiled, Claims.of(claims), custom, ROLES)


def _outcome(choice: RoleChoice) -> str:
    if choice.refusal is not None:
        return choice.refusal.code
    assert choice.role_arn is not None
    return choice.role_arn


RULES_SALES = {
    "Type": "Rules",
    "AmbiguousRoleResolution": "AuthenticatedRole",
    "RulesConfiguration": {"Rules": [_rule("custom:dept", "Equals", "Sales", SALES)]},
}
RULES_CDK = {
    "Type": "Rules",
    "AmbiguousRoleResolution": "Deny",
    "RulesConfiguration": {
        "Rules": [
            _rule("custom:admin", "Equals", "admin", ADMIN),
            _rule("custom:admin", "NotEqual", "admin", NON_ADMIN),
        ]
    },
}
RULES_ORDER = {
    "Type": "Rules",
    "AmbiguousRoleResolution": "Deny",
    "RulesConfiguration": {
        "Rules": [
            _rule("email", "StartsWith", "admin", ADMIN),
            _rule("email", "Contains", "@example.com", EDITOR),
        ]
    },
}
TOKEN_AUTH = {"Type": "Token", "AmbiguousRoleResolution": "AuthenticatedRole"}
TOKEN_DENY = {"Type": "Token", "AmbiguousRoleResolution": "Deny"}

CASES: list[tuple[str, dict[str, Any] | None, dict[str, Any], str | None, str]] = [
    # (source: what the page says, mapping, claims, CustomRoleArn, expected role or error code)
    (
        "RBAC rules: custom:dept of Sales gets the Sales role",
        RULES_SALES,
        {"custom:dept": "Sales"},
        None,
        SALES,
    ),
    (
        "RBAC rules: no rule matches -> Role resolution 'Use default Authenticated role'",
        RULES_SALES,
        {"custom:dept": "Marketing"},
        None,
        DEFAULT,
    ),
    (
        "CDK: custom:admin Equals admin -> the admin role",
        RULES_CDK,
        {"custom:admin": "admin"},
        None,
        ADMIN,
    ),
    (
        "CDK: custom:admin NotEqual admin -> the non-admin role",
        RULES_CDK,
        {"custom:admin": "user"},
        None,
        NON_ADMIN,
    ),
    (
        "RBAC rules: NotEqual with the claim absent is not evaluated; no match -> DENY",
        RULES_CDK,
        {},
        None,
        "NotAuthorizedException",
    ),
    (
        "RBAC rules: evaluated in order, the first matching rule is used",
        RULES_ORDER,
        {"email": "admin@example.com"},
        None,
        ADMIN,
    ),
    (
        "RBAC rules: CustomRoleArn overrides the order (a role a matching rule grants)",
        RULES_ORDER,
        {"email": "admin@example.com"},
        EDITOR,
        EDITOR,
    ),
    (
        "hostile: CustomRoleArn of a rule that does not match",
        RULES_ORDER,
        {"email": "bob@example.com"},
        ADMIN,
        "NotAuthorizedException",
    ),
    (
        "hostile: CustomRoleArn outside the mapping",
        RULES_ORDER,
        {"email": "admin@example.com"},
        DEFAULT,
        "NotAuthorizedException",
    ),
    (
        "RBAC tokens: CustomRoleArn set and in cognito:roles -> used",
        TOKEN_AUTH,
        {"cognito:roles": [ADMIN, EDITOR], "cognito:preferred_role": ADMIN},
        EDITOR,
        EDITOR,
    ),
    (
        "RBAC tokens: CustomRoleArn not in cognito:roles -> deny access",
        TOKEN_AUTH,
        {"cognito:roles": [ADMIN]},
        EDITOR,
        "NotAuthorizedException",
    ),
    (
        "RBAC tokens: cognito:preferred_role set -> use it",
        TOKEN_AUTH,
        {"cognito:roles": [ADMIN, EDITOR], "cognito:preferred_role": EDITOR},
        None,
        EDITOR,
    ),
    (
        "RBAC tokens: cognito:roles is a comma-separated string (as the page words it)",
        TOKEN_AUTH,
        {"cognito:roles": f"{ADMIN},{EDITOR}"},
        EDITOR,
        EDITOR,
    ),
    (
        "RBAC tokens: no preferred role -> AmbiguousRoleResolution AuthenticatedRole",
        TOKEN_AUTH,
        {"cognito:roles": [ADMIN, EDITOR]},
        None,
        DEFAULT,
    ),
    (
        "RBAC tokens: no preferred role -> AmbiguousRoleResolution Deny",
        TOKEN_DENY,
        {"cognito:roles": [ADMIN, EDITOR]},
        None,
        "NotAuthorizedException",
    ),
    ("RBAC: no role mapping -> the pool's authenticated role", None, {"any": "x"}, None, DEFAULT),
]


@pytest.mark.parametrize(
    ("source", "mapping", "claims", "custom", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_documented_role_mapping(
    source: str,
    mapping: dict[str, Any] | None,
    claims: dict[str, Any],
    custom: str | None,
    expected: str,
) -> None:
    assert _outcome(_choose(mapping, claims, custom)) == expected, source


def test_ambiguity_both_ways_without_an_authenticated_role() -> None:
    # AuthenticatedRole with no such role is AWS's invalid-configuration answer.
    choice = _choose(TOKEN_AUTH, {}, default=None)
    assert _outcome(choice) == "InvalidIdentityPoolConfigurationException"
    assert _outcome(_choose(TOKEN_DENY, {}, default=None)) == "NotAuthorizedException"
    denied = _choose(TOKEN_DENY, {})
    assert denied.refusal is not None
    assert denied.refusal.message == "The ambiguous role mapping rules denied this request."


def test_list_claims_match_on_any_value_and_notequal_on_none() -> None:
    mapping = {
        "Type": "Rules",
        "AmbiguousRoleResolution": "Deny",
        "RulesConfiguration": {
            "Rules": [
                _rule("cognito:groups", "Equals", "admins", ADMIN),
                _rule("cognito:groups", "NotEqual", "contractors", EDITOR),
            ]
        },
    }
    assert _outcome(_choose(mapping, {"cognito:groups": ["dev", "admins"]})) == ADMIN
    assert _outcome(_choose(mapping, {"cognito:groups": ["dev", "qa"]})) == EDITOR
    refused = _choose(mapping, {"cognito:groups": ["dev", "contractors"]})
    assert _outcome(refused) == "NotAuthorizedException"
    assert [r.reason for r in refused.results] == [
        "claim 'cognito:groups': no value equals the rule's value",
        "claim 'cognito:groups': a value equals the rule's value",
    ]


def test_reasons_never_carry_claim_values() -> None:
    choice = _choose(RULES_ORDER, {"email": "secret-person@elsewhere.org"})
    assert all("secret-person" not in r.reason for r in choice.results)
    assert "secret-person" not in choice.how


def test_a_pointer_claim_reads_nested_roles() -> None:
    mapping = {
        "Type": "Rules",
        "AmbiguousRoleResolution": "Deny",
        "RulesConfiguration": {
            "Rules": [_rule("/resource_access/app/roles", "Equals", "deploy", f"{ROLE}/Deployer")]
        },
    }
    claims = {"resource_access": {"app": {"roles": ["read", "deploy"]}}}
    assert _outcome(_choose(mapping, claims)) == f"{ROLE}/Deployer"


# --------------------------------------------------------------------------- regex


OKTA = r"aws#(?<account>\d{12})#(?<role>[\w+=,.@-]+)"
REGEX_MAPPING = {
    "Type": "Rules",
    "AmbiguousRoleResolution": "Deny",
    "RulesConfiguration": {
        "Rules": [_rule("groups", "Regex", OKTA, "arn:aws:iam::${account}:role/${role}")]
    },
}


def test_regex_captures_name_the_role_and_custom_role_arn_picks_among_them() -> None:
    claims = {"groups": ["everyone", f"aws#{ACCOUNT}#Sales", f"aws#{ACCOUNT}#Editor"]}
    choice = _choose(REGEX_MAPPING, claims)
    assert _outcome(choice) == SALES
    assert choice.captures == {"account": ACCOUNT, "role": "Sales"}
    assert _outcome(_choose(REGEX_MAPPING, claims, EDITOR)) == EDITOR


@pytest.mark.parametrize(
    "group",
    [
        "aws#999999999999#Sales",  # another account: a provider vouches in its own only
        f"aws#{ACCOUNT}#Nobody",  # not a configured role
        f"xaws#{ACCOUNT}#Sales",  # anchored: no match inside a longer value
        f"aws#{ACCOUNT}#Sales/../Admin",  # the group's class keeps the ARN well-formed
    ],
)
def test_regex_never_guesses_a_role(group: str) -> None:
    assert _outcome(_choose(REGEX_MAPPING, {"groups": [group]})) == "NotAuthorizedException"


def test_a_pathological_input_finishes_in_milliseconds() -> None:
    # (a+)+b against a's without the b: exponential for a backtracking engine.
    pattern = BoundedPattern.compile(r"(a+)+b")
    started = time.perf_counter()
    for _ in range(20):
        assert pattern.match("a" * 2048 + "!") is None
    assert (time.perf_counter() - started) / 20 < 0.01


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        (r"(\w+)\1", "invalid escape sequence"),
        (r"(?=a)", "invalid perl operator"),
        ("(a", "missing )"),
    ],
)
def test_patterns_needing_backtracking_are_refused(pattern: str, fragment: str) -> None:
    with pytest.raises(PatternError, match="RE2 cannot compile it") as info:
        BoundedPattern.compile(pattern)
    assert fragment in str(info.value)


# --------------------------------------------------------------------------- SAML


@pytest.mark.parametrize(
    ("roles", "custom", "expected"),
    [
        ((ADMIN,), None, ADMIN),  # one role in the assertion
        ((ADMIN, EDITOR), EDITOR, EDITOR),  # several: customRoleArn chooses
        ((ADMIN, EDITOR), None, "InvalidParameterException"),
        ((ADMIN,), EDITOR, "NotAuthorizedException"),  # must be in the assertion
    ],
)
def test_saml_roles_come_from_the_assertion(
    roles: tuple[str, ...], custom: str | None, expected: str
) -> None:
    assert _outcome(choose_saml_role(roles, custom)) == expected


# --------------------------------------------------------------------------- config


def _load(tmp_path: Path, pool: dict[str, Any], **account: Any) -> BrokerConfig:
    data = {
        "public_url": "http://127.0.0.1:8080",
        "accounts": {
            ACCOUNT: {
                "oidc_providers": [{"url": "https://idp.example.com", "client_ids": ["c"]}],
                "roles": {"Sales": {"trust_policy": _aws_trust(POOL)}},
                "identity_pools": {POOL: {"name": "Test", **pool}},
                **account,
            }
        },
    }
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    from broker.app import load_broker_config  # noqa: PLC0415 - the composition root's checks

    return load_broker_config(path)


def _problems(tmp_path: Path, pool: dict[str, Any], **account: Any) -> str:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, pool, **account)
    return str(info.value)


def test_config_mistakes_are_located(tmp_path: Path) -> None:
    mapping = {
        "Type": "Rules",
        "AmbiguousRoleResolution": "Deny",
        "RulesConfiguration": {
            "Rules": [
                _rule("groups", "Regex", r"(\w)\1", f"{ROLE}/Sales"),
                _rule("groups", "Regex", r"aws#(?<acct>\d{12})", "arn:aws:iam::$${account}:role/x"),
                _rule("email", "Equals", "a", f"{ROLE}/Missing"),
            ]
        },
    }
    text = _problems(
        tmp_path,
        {
            "logins": ["idp.example.com", "unknown.example.com"],
            "role_mappings": {"idp.example.com": mapping, "elsewhere": TOKEN_AUTH},
            "session": {"tags": {"team": "$${nope}"}},
        },
    )
    lines = text.splitlines()
    base = f"accounts.{ACCOUNT}.identity_pools.{POOL}"
    assert any(
        f"{base}.logins[1]: account {ACCOUNT} has no OIDC provider" in line for line in lines
    )
    assert any(
        "role_mappings.elsewhere: role mappings are keyed by one of the pool's logins" in ln
        for ln in lines
    )
    assert any(
        "Rules[0].Value: RE2 cannot compile it: invalid escape sequence" in ln for ln in lines
    )
    assert any(
        "Rules[1].RoleARN: uses ${account}, which the pattern has no named group" in ln
        for ln in lines
    )
    assert any(f"Rules[2].RoleARN: no role {ROLE}/Missing is defined" in ln for ln in lines)
    assert any("session.tags.team: uses ${nope}, but no Regex rule" in ln for ln in lines)
    assert all(line.startswith(str(tmp_path / "broker.yaml") + ":") for line in lines)


@pytest.mark.parametrize(
    ("session", "fragment"),
    [
        ({"tags": {f"k{i}": "v" for i in range(51)}}, "at most 50 tags"),
        ({"tags": {"aws:team": "x"}}, "reserved"),
        ({"tags": {"Team": "a", "team": "b"}}, "Tag keys are case insensitive"),
        ({"tags": {"team": "x"}, "transitive_tag_keys": ["cost"]}, "Transitive tag key"),
        ({"tags": {"team": "a,b ${claim:/x}"}}, "the text around the placeholders"),
        ({"source_identity": "${claim:email}"}, "needs a JSON pointer"),
        ({"role_session_name": "${claim:/x|upper}"}, "the only modifier is |join:SEP"),
        ({"tags": {"t": "x" * 257}}, "at most 256 characters"),
    ],
)
def test_template_limits_are_checked_at_load(
    tmp_path: Path, session: dict[str, Any], fragment: str
) -> None:
    assert fragment in _problems(tmp_path, {"session": session})


def test_provider_templates_may_not_use_rule_groups(tmp_path: Path) -> None:
    text = _problems(
        tmp_path,
        {},
        oidc_providers=[
            {
                "url": "https://idp.example.com",
                "client_ids": ["c"],
                "session": {"tags": {"role": "$${role}"}},
            }
        ],
    )
    assert "only identity pools have rules" in text
    # Unescaped, the file's own ${VAR} substitution answers first, and says how to escape.
    unescaped = _problems(
        tmp_path,
        {},
        oidc_providers=[
            {
                "url": "https://idp.example.com",
                "client_ids": ["c"],
                "session": {"tags": {"role": "${role}"}},
            }
        ],
    )
    assert "environment variable role is not set" in unescaped and "write $${" in unescaped


def test_the_cognito_identity_name_is_the_broker_where_pools_live(tmp_path: Path) -> None:
    text = _problems(
        tmp_path,
        {},
        oidc_providers=[{"url": "https://cognito-identity.amazonaws.com", "client_ids": [POOL]}],
    )
    assert "is itself the cognito-identity.amazonaws.com provider of its pools" in text


def test_a_sound_pool_loads(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        {
            "logins": ["idp.example.com"],
            "role_mappings": {
                "idp.example.com": RULES_SALES
                | {
                    "RulesConfiguration": {
                        "Rules": [_rule("custom:dept", "Equals", "Sales", f"{ROLE}/Sales")]
                    }
                }
            },
        },
    )
    assert POOL in config.accounts[ACCOUNT].identity_pools


# --------------------------------------------------------------------------- lint


def _aws_trust(pool: str) -> dict[str, Any]:
    """The Cognito developer guide's identity-pool trust policy (role-based-access-control)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": "cognito-identity.amazonaws.com"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {"cognito-identity.amazonaws.com:aud": pool},
                    "ForAnyValue:StringLike": {
                        "cognito-identity.amazonaws.com:amr": "authenticated"
                    },
                },
            }
        ],
    }


def _lint_config(tmp_path: Path) -> Path:
    other_pool = "us-east-1:99999999-1234-4234-8234-123456789012"
    rules = [
        _rule("email", "StartsWith", "admin", f"{ROLE}/Sales"),
        _rule("email", "Equals", "admin@example.com", f"{ROLE}/Editor"),  # shadowed by 1
        _rule("groups", "Equals", "eng,ops", f"{ROLE}/Sales"),  # never: split on ","
        _rule("groups", "Regex", "aws#(?<r>.+)", "arn:aws:iam::999999999999:role/$${r}"),
        _rule("groups", "Equals", "ops", f"{ROLE}/Stranger"),  # trusts another pool only
    ]
    data = {
        "public_url": "http://127.0.0.1:8080",
        "accounts": {
            ACCOUNT: {
                "oidc_providers": [
                    {
                        "url": "https://idp.example.com",
                        "client_ids": ["c"],
                        "claims": {"split": {"/groups": ","}},
                    }
                ],
                "roles": {
                    "Sales": {"trust_policy": _aws_trust(POOL)},
                    "Editor": {"trust_policy": _aws_trust(POOL)},
                    "Stranger": {"trust_policy": _aws_trust(other_pool)},
                },
                "identity_pools": {
                    POOL: {
                        "name": "Test",
                        "logins": ["idp.example.com"],
                        "roles": {"authenticated": f"{ROLE}/Sales"},
                        "role_mappings": {
                            "idp.example.com": {
                                "Type": "Rules",
                                "AmbiguousRoleResolution": "AuthenticatedRole",
                                "RulesConfiguration": {"Rules": rules},
                            }
                        },
                    }
                },
            }
        },
    }
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_check_config_warns_on_shadowed_never_matching_and_untrusted_rules(
    tmp_path: Path,
) -> None:
    path = _lint_config(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "broker", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stdout.splitlines() if ": warning: " in line]
    rules = f'accounts.{ACCOUNT}.identity_pools.{POOL}.role_mappings."idp.example.com".'
    rules += "RulesConfiguration.Rules"
    expected = {
        f"{rules}[1]: warning: shadowed by rule 1: whenever this rule matches, rule 1 matches "
        "first, so only CustomRoleArn can reach this one",
        f"{rules}[2]: warning: can never match: groups is split on ',', so no part holds it, "
        "and the rule's Equals value does",
        f"{rules}[3]: warning: can never grant a role: its RoleARN names account "
        f"999999999999, and the pool is in {ACCOUNT}",
    }
    assert {w.split(": ", 1)[1] for w in warnings} >= expected
    untrusted = [w for w in warnings if f"{ROLE}/Stranger" in w]
    assert len(untrusted) == 1
    assert f"{rules}[4].RoleARN: warning: no trust policy of {ROLE}/Stranger admits" in untrusted[0]
    assert (
        "condition StringEquals on cognito-identity.amazonaws.com:aud does not hold"
        in (untrusted[0])
    )
    assert all(w.startswith(f"{path}:") for w in warnings)  # file:line: key.path
    assert done.stdout.strip().endswith(f"{path}: OK ({len(warnings)} warnings)")
    assert len(warnings) == 4
