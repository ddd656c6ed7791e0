"""Which role an identity pool gives a login: AWS's token and rules modes, and why.

AWS documents the grammar in the Cognito developer guide, "Using role-based access control"
(docs.aws.amazon.com/cognito/latest/developerguide/role-based-access-control.html):

- **No mapping** for the provider: the pool's authenticated role.
- **Token** mode reads ``cognito:roles`` and ``cognito:preferred_role``: ``CustomRoleArn``
  is used if it is one of ``cognito:roles`` (else access is denied); otherwise the
  preferred role; otherwise ``AmbiguousRoleResolution`` decides.
- **Rules** mode: rules are evaluated in order and the first match's role is used, unless
  ``CustomRoleArn`` overrides the order (here: it must be the role of a rule that matches,
  never another); a ``NotEqual`` rule whose claim is absent is not evaluated; with no match,
  ``AmbiguousRoleResolution`` decides (``AuthenticatedRole``, or ``Deny``).
- A SAML login with no mapping takes its role from the assertion's ``Role`` attribute
  (``CustomRoleArn`` choosing among several), as the guide's SAML page says.

For a list claim (``cognito:groups``, a split ``groups``) a rule matches when one of its
values does, and ``NotEqual`` when none equals. ``Regex`` (the broker's extension) matches
each value whole with RE2; each matching value names a role through the rule's groups,
and a role outside the pool's account or not configured is skipped, never guessed.

Every rule is evaluated, so the result can say why each role was or was not chosen
(``sts-broker explain``) and ``CustomRoleArn`` can pick any role a rule grants. Reasons
name claims and rules, never a claim's value, so they are safe to show.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from broker.config import CapturePart, parse_template
from broker.errors import StsError, quoted
from broker.identity.claims import ABSENT, Claims
from broker.pools.directory import CompiledMapping, CompiledRule, Pool

ROLES_CLAIM = "cognito:roles"
PREFERRED_ROLE_CLAIM = "cognito:preferred_role"


def not_authorized(message: str) -> StsError:
    return StsError("NotAuthorizedException", message, 400)


def invalid_configuration() -> StsError:
    """AWS's wording, which names the usual cause (the pool's roles and their trust)."""
    return StsError(
        "InvalidIdentityPoolConfigurationException",
        "Invalid identity pool configuration. Check assigned IAM roles for this pool.",
        400,
    )


@dataclass(frozen=True)
class RuleResult:
    """One rule against one identity."""

    rule: CompiledRule
    matched: bool
    reason: str
    roles: tuple[str, ...] = ()
    """The roles it grants when it matched (a Regex rule: one per matching value)."""
    captures: tuple[Mapping[str, str], ...] = ()
    """The named groups behind each of ``roles`` (empty mappings for other rules)."""


@dataclass(frozen=True)
class RoleChoice:
    """The role chosen (or the refusal) and the evidence for ``explain``."""

    role_arn: str | None
    how: str
    captures: Mapping[str, str] = field(default_factory=dict)
    results: tuple[RuleResult, ...] = ()
    refusal: StsError | None = None
    mapping: CompiledMapping | None = None

    def require(self) -> str:
        """The role, or the refusal raised."""
        if self.refusal is not None:
            raise self.refusal
        assert self.role_arn is not None
        return self.role_arn


def evaluate_rule(
    rule: CompiledRule, claims: Claims, account: str, roles: Collection[str]
) -> RuleResult:
    """Does ``rule`` match these claims, and which roles does it grant?"""
    value = claims.lookup(rule.path)
    name = quoted(rule.claim, 80)
    if value is ABSENT or value is None:
        if rule.match_type == "NotEqual":
            return RuleResult(rule, False, f"claim {name} is absent, so NotEqual is not evaluated")
        return RuleResult(rule, False, f"claim {name} is absent")
    texts = claims.texts(rule.path)
    if not texts:
        return RuleResult(rule, False, f"claim {name} is not text or a list of text")
    if rule.match_type == "Regex":
        return _regex_result(rule, texts, account, roles)
    hit = any(_hits(rule.match_type, text, rule.value) for text in texts)
    matched = not hit if rule.match_type == "NotEqual" else hit
    if not matched:
        verb = {
            "Equals": "no value equals",
            "Contains": "no value contains",
            "StartsWith": "no value starts with",
            "NotEqual": "a value equals",
        }[rule.match_type]
        return RuleResult(rule, False, f"claim {name}: {verb} the rule's value")
    return RuleResult(
        rule, True, f"claim {name} {rule.match_type} the rule's value", (rule.role_arn,), ({},)
    )


def _hits(match_type: str, text: str, wanted: str) -> bool:
    """The positive test behind each match type (``NotEqual`` is the complement of Equals)."""
    if match_type == "Contains":
        return wanted in text
    if match_type == "StartsWith":
        return text.startswith(wanted)
    return text == wanted


def _regex_result(
    rule: CompiledRule, texts: tuple[str, ...], account: str, roles: Collection[str]
) -> RuleResult:
    assert rule.pattern is not None
    name = quoted(rule.claim, 80)
    granted: list[str] = []
    captured: list[Mapping[str, str]] = []
    skipped = 0
    for text in texts:
        groups = rule.pattern.match(text)
        if groups is None:
            continue
        arn = _fill(rule.role_arn, groups)
        if arn in roles and arn.split(":")[4] == account:
            if arn not in granted:
                granted.append(arn)
                captured.append(groups)
        else:
            skipped += 1
    if granted:
        return RuleResult(
            rule, True, f"claim {name} matches the rule's pattern", tuple(granted), tuple(captured)
        )
    if skipped:
        return RuleResult(
            rule,
            False,
            f"claim {name} matches the pattern, but names no role configured in account "
            f"{account} ({skipped} value(s) skipped)",
        )
    return RuleResult(rule, False, f"claim {name}: no value matches the rule's pattern")


def _fill(template: str, groups: Mapping[str, str]) -> str:
    return "".join(
        groups.get(part.name, "") if isinstance(part, CapturePart) else str(part)
        for part in parse_template(template)
    )


def choose_role(
    pool: Pool,
    mapping: CompiledMapping | None,
    claims: Claims,
    custom_role_arn: str | None,
    roles: Collection[str],
) -> RoleChoice:
    """The role ``pool`` gives an authenticated login with these claims (AWS's order)."""
    default = pool.config.roles.authenticated
    if mapping is None:
        if custom_role_arn is not None and custom_role_arn != default:
            return _refused(
                "no role mapping for this provider, so only the pool's authenticated role",
                custom_role_arn,
            )
        if default is None:
            return RoleChoice(
                None, "the pool has no authenticated role", refusal=invalid_configuration()
            )
        return RoleChoice(default, "the pool's authenticated role (no role mapping)")
    if mapping.type == "Token":
        return _token_mode(mapping, claims, custom_role_arn, default)
    results = tuple(evaluate_rule(rule, claims, pool.account, roles) for rule in mapping.rules)
    matched = [r for r in results if r.matched]
    if custom_role_arn is not None:
        for result in matched:
            if custom_role_arn in result.roles:
                groups = result.captures[result.roles.index(custom_role_arn)]
                how = f"CustomRoleArn, which rule {result.rule.index} grants this identity"
                return RoleChoice(custom_role_arn, how, groups, results, mapping=mapping)
        choice = _refused("no rule this identity matches grants it", custom_role_arn)
        return RoleChoice(
            None, choice.how, results=results, refusal=choice.refusal, mapping=mapping
        )
    if matched:
        first = matched[0]
        how = f"rule {first.rule.index} ({first.reason}): the first rule that matches"
        return RoleChoice(first.roles[0], how, first.captures[0], results, mapping=mapping)
    return _ambiguous(mapping, default, "no rule matches", results)


def _token_mode(
    mapping: CompiledMapping, claims: Claims, custom: str | None, default: str | None
) -> RoleChoice:
    listed = _roles_claim(claims)
    preferred = claims.get(PREFERRED_ROLE_CLAIM)
    if custom is not None:
        if custom in listed:
            return RoleChoice(custom, f"CustomRoleArn, listed in {ROLES_CLAIM}", mapping=mapping)
        return _refused(f"it is not listed in the token's {ROLES_CLAIM}", custom)
    if isinstance(preferred, str) and preferred:
        return RoleChoice(preferred, f"the token's {PREFERRED_ROLE_CLAIM}", mapping=mapping)
    why = (
        f"the token has {ROLES_CLAIM} but no {PREFERRED_ROLE_CLAIM}"
        if listed
        else f"the token has no {ROLES_CLAIM}"
    )
    return _ambiguous(mapping, default, why, ())


def _roles_claim(claims: Claims) -> tuple[str, ...]:
    """``cognito:roles``: a list (what Cognito sends) or the comma-separated string the
    developer guide describes."""
    value = claims.get(ROLES_CLAIM)
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


def _ambiguous(
    mapping: CompiledMapping,
    default: str | None,
    why: str,
    results: tuple[RuleResult, ...],
) -> RoleChoice:
    if mapping.ambiguous == "Deny":
        return RoleChoice(
            None,
            f"{why}, and AmbiguousRoleResolution is Deny",
            results=results,
            refusal=not_authorized("The ambiguous role mapping rules denied this request."),
            mapping=mapping,
        )
    if default is None:
        return RoleChoice(
            None,
            f"{why}; AmbiguousRoleResolution is AuthenticatedRole, but the pool has none",
            results=results,
            refusal=invalid_configuration(),
            mapping=mapping,
        )
    how = f"{why}, so AmbiguousRoleResolution AuthenticatedRole: the pool's authenticated role"
    return RoleChoice(default, how, results=results, mapping=mapping)


def _refused(why: str, custom: str) -> RoleChoice:
    return RoleChoice(
        None,
        f"CustomRoleArn refused: {why}",
        refusal=not_authorized(
            f"CustomRoleArn {quoted(custom, 200)} is not a role this identity may get: {why}."
        ),
    )


def choose_saml_role(saml_roles: tuple[str, ...], custom: str | None) -> RoleChoice:
    """A SAML login without a role mapping: the assertion's ``Role`` attribute decides."""
    if custom is not None:
        if custom in saml_roles:
            return RoleChoice(custom, "CustomRoleArn, paired with this provider in the assertion")
        return _refused(
            "the assertion's Role attribute does not pair it with this provider", custom
        )
    if len(saml_roles) == 1:
        return RoleChoice(saml_roles[0], "the one role the assertion's Role attribute names")
    return RoleChoice(
        None,
        "the assertion names several roles and no CustomRoleArn chose one",
        refusal=StsError(
            "InvalidParameterException",
            "The SAML assertion grants several roles; pass CustomRoleArn to choose one.",
            400,
        ),
    )
