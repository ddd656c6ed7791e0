"""Cognito-compatible identity pools, per account: ``accounts.ACCOUNT.identity_pools``.

The shape follows AWS's own API so existing definitions paste in: ``role_mappings`` takes
the ``RoleMappings`` JSON of ``SetIdentityPoolRoles`` verbatim (``Type``,
``AmbiguousRoleResolution``, ``RulesConfiguration.Rules[].Claim/MatchType/Value/RoleARN``),
and ``roles`` is its ``Roles`` map. Two extensions, both supersets of AWS's grammar: a rule
``Claim`` may be a JSON pointer (``/realm_access/roles``), and ``MatchType: Regex`` matches
the whole claim value against an RE2 pattern whose named groups fill ``${name}`` in the
``RoleARN`` (Okta's ``aws#(?<account>\\d{12})#(?<role>...)`` group convention). Behaviour
lives in :mod:`broker.pools`; this module only says what a valid file looks like.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from broker.config.base import ConfigModel
from broker.config.claims import POINTER, SessionTemplates
from broker.config.fields import REGION, fail, text_field

IDENTITY_POOL_ID = (
    rf"{REGION}:[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}"
)
"""``REGION:UUID`` in lower case, as AWS spells identity pool (and identity) IDs."""
ROLE_ARN = r"arn:aws:iam::[0-9]{12}:role/(?:[\x21-\x7e]{0,510}/)?[\w+=,.@-]{1,64}"

IdentityPoolId = Annotated[
    str,
    text_field(
        IDENTITY_POOL_ID,
        "identity pool IDs are REGION:UUID, lower case (us-east-1:0f1e2d3c-4b5a-6978-8695-"
        "a4b3c2d1e0f9)",
    ),
]
RoleArn = Annotated[
    str, text_field(ROLE_ARN, "must be a role ARN: arn:aws:iam::ACCOUNT:role/NAME", flags=0)
]
RuleRoleArn = Annotated[
    str,
    text_field(
        r"arn:aws:iam::(?:[0-9]{12}|\$\{[A-Za-z_][A-Za-z0-9_]{0,31}\}):role/[\x21-\x7e]{1,512}",
        "must be a role ARN (a Regex rule may use ${name} for its named groups)",
        flags=0,
    ),
]
LoginName = Annotated[
    str,
    text_field(
        r"[\x21-\x7e]{1,2048}",
        "login names are an OIDC provider's host/path (accounts.google.com, "
        "cognito-idp.REGION.amazonaws.com/POOL) or a SAML provider ARN",
    ),
]
RoleMappingKey = Annotated[
    str,
    text_field(
        r"[\x21-\x7e]{1,2048}",
        "role mapping keys name a login (and for a user pool, LOGIN:CLIENT_ID)",
    ),
]
DeveloperProviderName = Annotated[
    str,
    text_field(r"[\w._-]{1,128}", "developer provider names are 1-128 of letters, digits and ._-"),
]
PoolName = Annotated[
    str,
    text_field(
        r"[\w\s+=,.@-]{1,128}", "pool names are 1-128 of letters, digits, spaces and +=,.@-"
    ),
]
RuleClaim = Annotated[
    str,
    text_field(
        rf"[^\s/][^\s]{{0,63}}|{POINTER}",
        "must be a claim name (1-64 characters, as AWS allows) or a JSON pointer such as "
        "/realm_access/roles",
        flags=re.DOTALL,
    ),
]
RuleValue = Annotated[
    str, text_field(r".{1,512}", "rule values are 1-512 characters", flags=re.DOTALL)
]


class MappingRule(ConfigModel):
    """One rule: if the token's ``Claim`` matches ``Value`` by ``MatchType``, ``RoleARN``."""

    Claim: RuleClaim
    MatchType: Literal["Equals", "Contains", "StartsWith", "NotEqual", "Regex"]
    Value: RuleValue
    RoleARN: RuleRoleArn

    @model_validator(mode="after")
    def _aws_bounds(self) -> MappingRule:
        """AWS's 128-character values; a Regex (the broker's extension) may be longer."""
        if self.MatchType != "Regex" and len(self.Value) > 128:
            raise fail(f"Value is at most 128 characters for {self.MatchType} (AWS)")
        if self.MatchType != "Regex" and "${" in self.RoleARN:
            raise fail("only a Regex rule may use ${name} in its RoleARN")
        return self


class RulesConfigurationType(ConfigModel):
    """AWS allows 1-400 rules per provider (the console documents 25); evaluated in order."""

    Rules: list[MappingRule] = Field(min_length=1, max_length=400)


class RoleMapping(ConfigModel):
    """AWS's ``RoleMapping``: choose the role from the token (``Token``) or by rules."""

    Type: Literal["Token", "Rules"]
    AmbiguousRoleResolution: Literal["AuthenticatedRole", "Deny"] | None = None
    RulesConfiguration: RulesConfigurationType | None = None

    @model_validator(mode="after")
    def _complete(self) -> RoleMapping:
        """AWS: both types need AmbiguousRoleResolution; Rules needs RulesConfiguration."""
        if self.AmbiguousRoleResolution is None:
            raise fail(
                "AmbiguousRoleResolution is required (AuthenticatedRole or Deny): it decides "
                "when no rule matches or the token names no single role"
            )
        if self.Type == "Rules" and self.RulesConfiguration is None:
            raise fail("Type Rules needs RulesConfiguration")
        if self.Type == "Token" and self.RulesConfiguration is not None:
            raise fail("Type Token reads cognito:roles; remove RulesConfiguration or use Rules")
        return self


class PoolRoles(ConfigModel):
    """AWS's ``Roles`` map: the default role of each kind of identity."""

    authenticated: RoleArn | None = None
    unauthenticated: RoleArn | None = None


class IdentityPoolConfig(ConfigModel):
    """One identity pool: who may sign in, and which role each identity gets."""

    name: PoolName
    allow_unauthenticated: bool = False
    """Guest identities (GetId without Logins); they get ``roles.unauthenticated``."""
    allow_classic_flow: bool = False
    """The basic flow (GetOpenIdToken, then AssumeRoleWithWebIdentity); off by default, as
    for a new pool in AWS."""
    logins: list[LoginName] = Field(default_factory=list, max_length=50)
    """The providers whose tokens this pool takes: ``oidc_providers`` of this account by
    host/path (``accounts.google.com`` for a Google one) and its SAML provider ARNs."""
    developer_provider_name: DeveloperProviderName | None = None
    roles: PoolRoles = Field(default_factory=PoolRoles)
    role_mappings: dict[RoleMappingKey, RoleMapping] = Field(default_factory=dict, max_length=10)
    session: SessionTemplates = Field(default_factory=SessionTemplates)
    """Templated tags, SourceIdentity and RoleSessionName of this pool's sessions."""

    @model_validator(mode="after")
    def _distinct_logins(self) -> IdentityPoolConfig:
        if len(set(self.logins)) != len(self.logins):
            raise fail("logins lists a provider twice")
        if self.developer_provider_name is not None and self.developer_provider_name in (
            self.logins
        ):
            raise fail("developer_provider_name must differ from the logins")
        return self
