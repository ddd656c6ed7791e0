"""A verified SAML or OIDC identity, as one provider presents it to trust policies.

``AssumeRoleWithSAML`` and ``AssumeRoleWithWebIdentity`` verify their proof and turn it into
a :class:`FederatedIdentity`; the engine's one federated path
(:meth:`broker.sts.engine.StsEngine.assume_federated`) decides from it alone. A browser
login builds the same objects once and keeps them, as JSON, in the server-side session, so
a person can pick or switch roles without a new IdP login while the session lives, and the
rules applied are exactly the API's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from broker.iam import ContextValue
from broker.identity.oidc import WebIdentity
from broker.identity.saml import SamlIdentity
from broker.records import fast_init

FederatedAction = Literal["sts:AssumeRoleWithSAML", "sts:AssumeRoleWithWebIdentity"]
_ACTIONS: dict[str, FederatedAction] = {
    "sts:AssumeRoleWithSAML": "sts:AssumeRoleWithSAML",
    "sts:AssumeRoleWithWebIdentity": "sts:AssumeRoleWithWebIdentity",
}


@fast_init
@dataclass(frozen=True)
class FederatedIdentity:
    """What a role's trust policy is evaluated against, for one provider."""

    action: FederatedAction
    provider_arn: str
    principal_names: tuple[str, ...]
    """The ``Federated`` principal values this identity matches (ARN and short names)."""
    context: Mapping[str, ContextValue]
    """The provider's condition keys (``saml:sub``, ``accounts.google.com:aud``, ...)."""
    subject: str = ""
    """Who the person is at their provider: the SAML NameID or the token's ``sub``."""
    session_tags: Mapping[str, str] = field(default_factory=dict)
    transitive_tag_keys: tuple[str, ...] = ()
    source_identity: str | None = None
    roles: tuple[str, ...] | None = None
    """SAML: the role ARNs the assertion pairs with this provider (no other may be used).
    OIDC: None, any role of the provider's account whose trust policy admits the identity."""
    max_duration: int | None = None
    """SAML ``SessionDuration``: caps the session like ``DurationSeconds`` does."""
    not_after: int | None = None
    """SAML ``SessionNotOnOrAfter``: no session may outlive it."""

    @property
    def account(self) -> str:
        """The account whose provider vouches for this identity (field 5 of its ARN)."""
        return self.provider_arn.split(":")[4]

    @classmethod
    def from_saml(cls, identity: SamlIdentity) -> FederatedIdentity:
        """``identity`` must already be seen through its provider (``for_provider``)."""
        return cls(
            action="sts:AssumeRoleWithSAML",
            provider_arn=identity.provider_arn,
            principal_names=(identity.provider_arn,),
            context=identity.context,
            subject=identity.subject,
            session_tags=identity.session_tags,
            transitive_tag_keys=identity.transitive_tag_keys,
            source_identity=identity.source_identity,
            roles=tuple(
                r.role_arn for r in identity.roles if r.provider_arn == identity.provider_arn
            ),
            max_duration=identity.session_duration,
            not_after=identity.session_not_on_or_after,
        )

    @classmethod
    def from_web(cls, identity: WebIdentity) -> FederatedIdentity:
        return cls(
            action="sts:AssumeRoleWithWebIdentity",
            provider_arn=identity.provider_arn,
            principal_names=identity.principal_names,
            context=identity.context,
            subject=identity.subject,
            session_tags=identity.session_tags,
            transitive_tag_keys=identity.transitive_tag_keys,
            source_identity=identity.source_identity,
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for the browser session (tuples become lists)."""
        return {
            "action": self.action,
            "provider_arn": self.provider_arn,
            "principal_names": list(self.principal_names),
            "context": {k: v if isinstance(v, str) else list(v) for k, v in self.context.items()},
            "subject": self.subject,
            "session_tags": dict(self.session_tags),
            "transitive_tag_keys": list(self.transitive_tag_keys),
            "source_identity": self.source_identity,
            "roles": None if self.roles is None else list(self.roles),
            "max_duration": self.max_duration,
            "not_after": self.not_after,
        }

    @classmethod
    def from_json(cls, raw: object) -> FederatedIdentity | None:
        """The identity :meth:`to_json` wrote; None for anything else (fail closed)."""
        if not isinstance(raw, dict):
            return None
        raw_action = raw.get("action")
        action = _ACTIONS.get(raw_action) if isinstance(raw_action, str) else None
        provider_arn = raw.get("provider_arn")
        names = _strings(raw.get("principal_names"))
        context = _context(raw.get("context"))
        tags = raw.get("session_tags")
        transitive = _strings(raw.get("transitive_tag_keys"))
        source = raw.get("source_identity")
        roles = raw.get("roles")
        subject = raw.get("subject", "")
        if (
            action is None
            or not isinstance(provider_arn, str)
            or provider_arn.count(":") < 5
            or names is None
            or context is None
            or not isinstance(tags, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())
            or transitive is None
            or not (source is None or isinstance(source, str))
            or not (roles is None or _strings(roles) is not None)
            or not _optional_int(raw.get("max_duration"))
            or not _optional_int(raw.get("not_after"))
            or not isinstance(subject, str)
        ):
            return None
        return cls(
            action=action,
            provider_arn=provider_arn,
            principal_names=names,
            context=MappingProxyType(context),
            subject=subject,
            session_tags=MappingProxyType(dict(tags)),
            transitive_tag_keys=transitive,
            source_identity=source,
            roles=None if roles is None else tuple(roles),
            max_duration=raw.get("max_duration"),
            not_after=raw.get("not_after"),
        )


def _strings(value: object) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return tuple(value)


def _context(value: object) -> dict[str, ContextValue] | None:
    if not isinstance(value, dict):
        return None
    out: dict[str, ContextValue] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            return None
        if isinstance(item, str):
            out[key] = item
            continue
        items = _strings(item)
        if items is None:
            return None
        out[key] = items
    return out


def _optional_int(value: object) -> bool:
    if value is None:
        return True
    return isinstance(value, int) and not isinstance(value, bool) and math.isfinite(value)
