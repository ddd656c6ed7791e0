"""``check-config`` warnings about identity-pool rules: a config that loads can still be wrong.

Three mistakes a valid file can hold, each found from the config alone:

- a rule that can **never match**: its value holds the separator its claim is split on (the
  parts never contain it), or has spaces at its ends (the parts are trimmed), or a Regex
  rule's role ARN names another account (a pool vouches only in its own);
- a rule **shadowed** by an earlier one: whenever it matches, an earlier rule on the same
  claim matches too (``Equals admin`` after ``StartsWith ad``), so first-match-wins never
  reaches it and only ``CustomRoleArn`` can pick its role;
- a role **no trust policy admits** for the pool's identities: the role a rule or the pool's
  defaults name, whose trust policy does not allow ``sts:AssumeRoleWithWebIdentity`` (and
  ``sts:TagSession`` / ``sts:SetSourceIdentity`` when the pool templates them) for
  ``cognito-identity.amazonaws.com`` with this pool's ``aud`` and ``amr``:
  GetCredentialsForIdentity would answer ``InvalidIdentityPoolConfigurationException``.
  Conditions on the identity (``:sub``) cannot be known here, so a trust policy that needs
  one is reported as "does not admit, as far as the config tells".

Warnings, not errors: the broker starts with them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from broker.config import BrokerConfig, KeyPath
from broker.directory import Directory
from broker.iam import AuthzRequest, ContextValue, Principal, evaluate_policies, explain_policies
from broker.identity.claims import parse_pointer
from broker.identity.oidc import COGNITO_IDENTITY_ISSUER
from broker.pools.directory import CompiledMapping, CompiledRule, Pool, PoolDirectory
from broker.sts.session_rules import assume_actions

_PROVIDER = COGNITO_IDENTITY_ISSUER.removeprefix("https://")


def lint_pools(config: BrokerConfig, directory: Directory) -> list[tuple[KeyPath, str]]:
    """Every warning, located by key path."""
    pools = PoolDirectory.build(config)
    found: list[tuple[KeyPath, str]] = []
    for pool in pools.pools.values():
        base: KeyPath = ("accounts", pool.account, "identity_pools", pool.id)
        for key, mapping in pool.mappings.items():
            at: KeyPath = (*base, "role_mappings", key, "RulesConfiguration", "Rules")
            splits = _splits(config, pool, key)
            for rule in mapping.rules:
                where = (*at, rule.index - 1)
                found.extend((where, w) for w in _never(rule, pool, splits))
                found.extend((where, w) for w in _shadowed(rule, mapping))
        found.extend(_untrusted(pool, base, directory))
    return found


def _splits(config: BrokerConfig, pool: Pool, key: str) -> Mapping[tuple[str, ...], str]:
    """Claim path -> separator of the ``split`` normaliser of the mapping's provider."""
    login = next(
        (lg for lg in pool.logins if key in lg.keys or key.rpartition(":")[0] in lg.keys), None
    )
    if login is None:
        return {}
    account = config.accounts[pool.account]
    for provider in account.oidc_providers:
        if provider.arn(pool.account) == login.provider_arn:
            return {parse_pointer(p): sep for p, sep in provider.claims.split.items()}
    for name, saml in account.saml_providers.items():
        if f"arn:aws:iam::{pool.account}:saml-provider/{name}" == login.provider_arn:
            return {parse_pointer(p): sep for p, sep in saml.claims.split.items()}
    return {}


def _never(rule: CompiledRule, pool: Pool, splits: Mapping[tuple[str, ...], str]) -> Iterator[str]:
    separator = splits.get(rule.path)
    if separator is not None and rule.match_type in ("Equals", "StartsWith", "Contains"):
        if separator in rule.value:
            yield (
                f"can never match: {rule.claim} is split on {separator!r}, so no part holds it, "
                f"and the rule's {rule.match_type} value does"
            )
        elif rule.value != rule.value.strip() and rule.match_type == "Equals":
            yield f"can never match: the parts of {rule.claim} are trimmed, the value is not"
    if rule.match_type == "Regex":
        account = rule.role_arn.split(":")[4] if rule.role_arn.count(":") >= 5 else ""
        if account.isdigit() and account != pool.account:
            yield (
                f"can never grant a role: its RoleARN names account {account}, and the pool is "
                f"in {pool.account}"
            )


def _implies(later: CompiledRule, earlier: CompiledRule) -> bool:
    """Whenever ``later`` matches a value, ``earlier`` matches it too (same claim)."""
    if later.path != earlier.path:
        return False
    lt, et, lv, ev = later.match_type, earlier.match_type, later.value, earlier.value
    if lt == et and lv == ev:
        return True
    if et == "StartsWith":
        return lt in ("Equals", "StartsWith") and lv.startswith(ev)
    if et == "Contains":
        return lt in ("Equals", "StartsWith", "Contains") and ev in lv
    return False


def _shadowed(rule: CompiledRule, mapping: CompiledMapping) -> Iterator[str]:
    for earlier in mapping.rules[: rule.index - 1]:
        if _implies(rule, earlier):
            same = " (to the same role)" if earlier.role_arn == rule.role_arn else ""
            yield (
                f"shadowed by rule {earlier.index}{same}: whenever this rule matches, rule "
                f"{earlier.index} matches first, so only CustomRoleArn can reach this one"
            )
            return


def _untrusted(pool: Pool, base: KeyPath, directory: Directory) -> Iterator[tuple[KeyPath, str]]:
    if (
        not any(login.kind == "oidc" for login in pool.logins)
        and not pool.config.allow_unauthenticated
    ):
        return  # SAML logins are trusted through the SAML provider: nothing to say here
    session = pool.session
    tags = dict.fromkeys(session.tags, "x")
    source = "x" if session.source_identity is not None else None
    named: dict[str, tuple[KeyPath, bool]] = {}
    roles = pool.config.roles
    if roles.authenticated:
        named[roles.authenticated] = ((*base, "roles", "authenticated"), True)
    if roles.unauthenticated:
        named[roles.unauthenticated] = ((*base, "roles", "unauthenticated"), False)
    for key, mapping in pool.mappings.items():
        for rule in mapping.rules:
            if "${" not in rule.role_arn:
                where: KeyPath = (
                    *base,
                    "role_mappings",
                    key,
                    "RulesConfiguration",
                    "Rules",
                    rule.index - 1,
                    "RoleARN",
                )
                named.setdefault(rule.role_arn, (where, True))
    for arn, (where, authenticated) in named.items():
        role = directory.role(arn)
        if role is None:
            continue  # the config checks report a role that is not defined
        amr = (
            ("authenticated", *(lg.name for lg in pool.logins))
            if authenticated
            else ("unauthenticated",)
        )
        context: dict[str, ContextValue] = {
            f"{_PROVIDER}:aud": pool.id,
            f"{_PROVIDER}:amr": amr,
            "aws:FederatedProvider": f"arn:aws:iam::{pool.account}:oidc-provider/{_PROVIDER}",
        }
        principal = Principal(
            kind="Federated",
            arns=(f"arn:aws:iam::{pool.account}:oidc-provider/{_PROVIDER}", _PROVIDER),
            account=None,
        )
        for action in assume_actions(
            "sts:AssumeRoleWithWebIdentity",
            tags if authenticated else {},
            source if authenticated else None,
        ):
            request = AuthzRequest(
                action=action, resource=arn, context=context, principal=principal
            )
            result = evaluate_policies((role.trust_policy,), request)
            if result.allowed and not result.denied:
                continue
            reasons = "; ".join(str(v) for v in explain_policies((role.trust_policy,), request))
            kind = "authenticated" if authenticated else "unauthenticated"
            yield (
                where,
                f"no trust policy of {arn} admits this pool's {kind} identities for {action}, as "
                f"far as the config tells ({reasons}): GetCredentialsForIdentity would answer "
                "InvalidIdentityPoolConfigurationException",
            )
            break
