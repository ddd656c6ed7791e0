"""The configured identity pools, compiled once at start-up and read per request.

The config says what a pool is in AWS's words (:mod:`broker.config.pools`); this is the
indexed form the API needs: pool ID -> :class:`Pool`, each login by every name a client may
send it under, each role mapping with its rules compiled (claim pointers parsed, Regex
patterns compiled with RE2, ``${name}`` references checked against the pattern's groups).
Building it is where the mistakes only compiling can find are reported, as
``file:line: key.path: reason``, like the IAM grammar in :class:`broker.directory.Directory`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from broker.config import (
    BrokerConfig,
    CapturePart,
    ConfigError,
    IdentityPoolConfig,
    KeyPath,
    OidcKind,
    RoleMapping,
    SamlProviderConfig,
    SessionTemplates,
    parse_template,
)
from broker.identity.claims import claim_path
from broker.pools.regex import BoundedPattern, PatternError

MatchType = Literal["Equals", "Contains", "StartsWith", "NotEqual", "Regex"]


@dataclass(frozen=True)
class PoolLogin:
    """One provider a pool takes tokens from, resolved to the account's provider."""

    name: str
    """As the pool lists it (and the usual ``Logins`` key)."""
    kind: Literal["oidc", "saml"]
    provider_arn: str
    keys: frozenset[str]
    """Every ``Logins`` key that names it: the listed name, the provider's host/path and,
    for Google, ``accounts.google.com``."""
    client_ids: tuple[str, ...] = ()
    """An OIDC provider's client IDs (what DescribeIdentityPool reports)."""
    oidc_kind: OidcKind | None = None


@dataclass(frozen=True)
class CompiledRule:
    index: int
    """1-based, as people count rules."""
    claim: str
    path: tuple[str, ...]
    match_type: MatchType
    value: str
    role_arn: str
    """A role ARN, or for a Regex rule a template of its groups."""
    pattern: BoundedPattern | None = None


@dataclass(frozen=True)
class CompiledMapping:
    key: str
    """The ``role_mappings`` key: a login, or ``LOGIN:CLIENT_ID``."""
    type: Literal["Token", "Rules"]
    ambiguous: Literal["AuthenticatedRole", "Deny"]
    rules: tuple[CompiledRule, ...] = ()


@dataclass(frozen=True)
class Pool:
    id: str
    account: str
    name: str
    arn: str
    """``arn:aws:cognito-identity:REGION:ACCOUNT:identitypool/ID``: what policies name."""
    config: IdentityPoolConfig
    logins: tuple[PoolLogin, ...]
    mappings: Mapping[str, CompiledMapping] = field(default_factory=dict)

    @property
    def region(self) -> str:
        return self.id.split(":", 1)[0]

    @property
    def session(self) -> SessionTemplates:
        return self.config.session

    def login(self, key: str) -> PoolLogin | None:
        """The login a ``Logins`` key names, or None."""
        return next((login for login in self.logins if key in login.keys), None)

    def mapping(self, login: PoolLogin, audience: str | None) -> CompiledMapping | None:
        """The role mapping for ``login``: ``LOGIN:CLIENT_ID`` first (AWS keys user pools by
        app client), then the login itself."""
        for key in sorted(login.keys):
            if audience is not None and f"{key}:{audience}" in self.mappings:
                return self.mappings[f"{key}:{audience}"]
        return next((self.mappings[k] for k in sorted(login.keys) if k in self.mappings), None)


class PoolDirectory:
    """Every account's pools by pool ID; immutable after :meth:`build`."""

    def __init__(self, pools: Mapping[str, Pool]) -> None:
        self.pools = pools

    def get(self, pool_id: str) -> Pool | None:
        return self.pools.get(pool_id)

    @classmethod
    def build(cls, config: BrokerConfig) -> PoolDirectory:
        """Compile every pool; raise one :class:`ConfigError` listing every mistake."""
        directory, problems = _compile(config)
        if problems:
            raise ConfigError(
                [
                    problem
                    for key_path, reason in problems
                    for problem in ConfigError.problem(config, key_path, reason).problems
                ]
            )
        return directory


def pool_config_problems(config: BrokerConfig) -> list[tuple[KeyPath, str]]:
    """What only compiling the pools finds (a pattern RE2 refuses, a ``${name}`` no group
    defines): a load-time check (``broker.app.CONFIG_CHECKS``), so ``check-config`` says it."""
    return _compile(config)[1]


def _compile(config: BrokerConfig) -> tuple[PoolDirectory, list[tuple[KeyPath, str]]]:
    problems: list[tuple[KeyPath, str]] = []
    pools: dict[str, Pool] = {}
    for account, account_config in config.accounts.items():
        names = _login_names(config, account)
        for pool_id, pool in account_config.identity_pools.items():
            at: KeyPath = ("accounts", account, "identity_pools", pool_id)
            logins = tuple(names[n] for n in pool.logins if n in names)
            mappings: dict[str, CompiledMapping] = {}
            groups: set[str] = set()
            for key, mapping in pool.role_mappings.items():
                compiled = _compile_mapping(key, mapping, (*at, "role_mappings", key), problems)
                mappings[key] = compiled
                groups.update(g for r in compiled.rules if r.pattern for g in r.pattern.groups)
            problems.extend(_capture_problems((*at, "session"), pool.session, groups))
            region = pool_id.split(":", 1)[0]
            pools[pool_id] = Pool(
                id=pool_id,
                account=account,
                name=pool.name,
                arn=f"arn:aws:cognito-identity:{region}:{account}:identitypool/{pool_id}",
                config=pool,
                logins=logins,
                mappings=mappings,
            )
    return PoolDirectory(pools), problems


def _login_names(config: BrokerConfig, account: str) -> dict[str, PoolLogin]:
    """Every name a pool of ``account`` may list, to the login it means."""
    out: dict[str, PoolLogin] = {}
    account_config = config.accounts[account]
    for provider in account_config.oidc_providers:
        keys = {provider.arn_path}
        if provider.provider_kind == "google":
            keys.add("accounts.google.com")
        for name in keys:
            out[name] = PoolLogin(
                name=name,
                kind="oidc",
                provider_arn=provider.arn(account),
                keys=frozenset(keys),
                client_ids=tuple(provider.client_ids),
                oidc_kind=provider.provider_kind,
            )
    for name in account_config.saml_providers:
        arn = SamlProviderConfig.arn(account, name)
        out[arn] = PoolLogin(name=arn, kind="saml", provider_arn=arn, keys=frozenset({arn}))
    return out


def _compile_mapping(
    key: str, mapping: RoleMapping, at: KeyPath, problems: list[tuple[KeyPath, str]]
) -> CompiledMapping:
    rules: list[CompiledRule] = []
    configured = mapping.RulesConfiguration.Rules if mapping.RulesConfiguration else []
    for index, rule in enumerate(configured):
        where: KeyPath = (*at, "RulesConfiguration", "Rules", index)
        pattern: BoundedPattern | None = None
        if rule.MatchType == "Regex":
            try:
                pattern = BoundedPattern.compile(rule.Value)
            except PatternError as exc:
                problems.append(((*where, "Value"), str(exc)))
            else:
                missing = sorted(
                    part.name
                    for part in parse_template(rule.RoleARN)
                    if isinstance(part, CapturePart) and part.name not in pattern.groups
                )
                if missing:
                    problems.append(
                        (
                            (*where, "RoleARN"),
                            f"uses ${{{missing[0]}}}, which the pattern has no named group for "
                            f"(its groups: {', '.join(sorted(pattern.groups)) or 'none'})",
                        )
                    )
        rules.append(
            CompiledRule(
                index=index + 1,
                claim=rule.Claim,
                path=claim_path(rule.Claim),
                match_type=rule.MatchType,
                value=rule.Value,
                role_arn=rule.RoleARN,
                pattern=pattern,
            )
        )
    assert mapping.AmbiguousRoleResolution is not None  # the config model requires it
    return CompiledMapping(
        key=key, type=mapping.Type, ambiguous=mapping.AmbiguousRoleResolution, rules=tuple(rules)
    )


def _capture_problems(
    at: KeyPath, session: SessionTemplates, groups: set[str]
) -> Iterator[tuple[KeyPath, str]]:
    """A session template may use ``${name}`` only for a group some Regex rule defines."""
    templated: dict[tuple[str, ...], str | None] = {
        **{("tags", key): value for key, value in session.tags.items()},
        ("source_identity",): session.source_identity,
        ("role_session_name",): session.role_session_name,
    }
    for where, template in templated.items():
        if template is None:
            continue
        for part in parse_template(template):
            if isinstance(part, CapturePart) and part.name not in groups:
                yield (
                    (*at, *where),
                    f"uses ${{{part.name}}}, but no Regex rule of this pool has a group of "
                    "that name",
                )
