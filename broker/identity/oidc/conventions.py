"""What each kind of OIDC issuer means: extra claim checks, condition keys, principal names.

The verifier proves a token genuine and its standard claims sound; a :class:`Convention`
then says what the claims *mean* for one kind of issuer, behind one narrow interface (the
way Dex keeps each upstream behind a connector). The condition keys are AWS's, so trust
policies written for AWS work verbatim:

- Google is a built-in AWS principal: keys are ``accounts.google.com:aud`` (``azp`` when
  present, else ``aud``), ``:oaud`` (the ``aud``) and ``:sub``, whatever URL the provider
  is configured at, so a fixture issuer on loopback follows Google's rules exactly.
- Cognito identity pools: ``cognito-identity.amazonaws.com:aud``, ``:sub``, ``:amr``.
- Everything else (Cognito user pools, GitHub Actions, any issuer) uses the provider's
  ``HOST/PATH`` as prefix: ``:aud``, ``:sub``, ``:amr`` and every other string (or list of
  strings) claim, e.g. ``token.actions.githubusercontent.com:job_workflow_ref``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from broker.config import OidcKind
from broker.errors import rejected_claim
from broker.iam import ContextValue
from broker.identity.claims import context_value

TAGS_CLAIM = "https://aws.amazon.com/tags"
COGNITO_IDENTITY_ISSUER = "https://cognito-identity.amazonaws.com"
"""``iss`` of Cognito identity-pool tokens: also what the broker's own identity pools sign,
so AWS's identity-pool trust policies (``cognito-identity.amazonaws.com:aud``) work verbatim."""
SOURCE_IDENTITY_CLAIM = "https://aws.amazon.com/source_identity"

_CLAIM_NAME = re.compile(r"[\x21-\x7e]{1,128}")
"""Claim names that can become condition keys (printable ASCII, bounded)."""
_MAX_AMR_ITEMS = 100
_NOT_EXPOSED = frozenset({"aud", "sub", TAGS_CLAIM, SOURCE_IDENTITY_CLAIM})
"""``aud``/``sub`` are set from the verified values; AWS's own claims feed tags instead."""


def _refuse_case_twins(prefix: str, context: Mapping[str, ContextValue]) -> None:
    seen: dict[str, str] = {}
    for key in context:
        twin = seen.setdefault(key.lower(), key)
        if twin != key:
            names = sorted(name[len(prefix) + 1 :][:64] for name in (twin, key))
            raise rejected_claim(
                f"The token's claims {names[0]!r} and {names[1]!r} differ only in case; "
                "condition keys are case-insensitive, so a trust policy could not tell them "
                "apart."
            )


class Convention:
    """A generic OIDC issuer: keys under ``HOST/PATH``, no checks beyond the standard ones."""

    exposes_claims = True
    """Whether its claims become condition keys (flat names and the pointers trust
    policies name); False where AWS fixes the keys (Google, Cognito identity pools)."""

    def issuers(self, url: str) -> tuple[str, ...]:
        """The ``iss`` values a provider at ``url`` issues (exact strings)."""
        return (url,)

    def prefix(self, arn_path: str) -> str:
        """The condition-key prefix (``PREFIX:aud``)."""
        return arn_path

    def principal_names(self, provider_arn: str) -> tuple[str, ...]:
        """What a trust policy's ``{"Federated": ...}`` may name to admit this provider."""
        return (provider_arn,)

    def audience(self, claims: Mapping[str, Any], matched: str) -> str:
        """The client the token is for, as AWS reports it (``Audience``, ``PREFIX:aud``)."""
        return matched

    def check(self, claims: Mapping[str, Any]) -> None:
        """Refuse (``IDPRejectedClaim``) what this issuer's tokens must never carry."""

    def context(
        self, prefix: str, claims: Mapping[str, Any], audience: str, matched: str
    ) -> dict[str, ContextValue]:
        """The condition keys a trust policy may test.

        Condition keys are case-insensitive, so two claims whose names differ only in case
        (``email`` and ``Email``, or a custom ``SUB`` beside the verified ``sub``) would be
        one key with two values. Which one a policy sees cannot be left to chance, and
        exposing neither would let a negated condition (``StringNotEquals``) pass on a
        missing key: such a token is refused.
        """
        context: dict[str, ContextValue] = {}
        cased = False
        for name, value in claims.items():
            if name in _NOT_EXPOSED or name.startswith("/") or not _CLAIM_NAME.fullmatch(name):
                continue  # a name starting with / would read as a pointer key
            shown = context_value(value)
            if shown is not None:
                context[f"{prefix}:{name}"] = shown
                cased = cased or not name.islower()
        context[f"{prefix}:aud"] = audience
        context[f"{prefix}:sub"] = claims["sub"]
        if cased:  # only then can two names fold together (checked without a set otherwise)
            _refuse_case_twins(prefix, context)
        return context


class _Google(Convention):
    """Google: also ``iss`` without scheme, ``azp`` as the audience, email only if verified."""

    exposes_claims = False

    def issuers(self, url: str) -> tuple[str, ...]:
        return (url, url.split("://", 1)[-1])

    def prefix(self, arn_path: str) -> str:
        return "accounts.google.com"

    def principal_names(self, provider_arn: str) -> tuple[str, ...]:
        return (provider_arn, "accounts.google.com")

    def audience(self, claims: Mapping[str, Any], matched: str) -> str:
        azp = claims.get("azp")
        return azp if isinstance(azp, str) else matched

    def context(
        self, prefix: str, claims: Mapping[str, Any], audience: str, matched: str
    ) -> dict[str, ContextValue]:
        context: dict[str, ContextValue] = {
            f"{prefix}:aud": audience,
            f"{prefix}:oaud": matched,
            f"{prefix}:sub": claims["sub"],
        }
        # An unverified address is only a string the user typed: never let a policy match it.
        email = claims.get("email")
        if isinstance(email, str) and claims.get("email_verified") is True:
            context[f"{prefix}:email"] = email
        hosted_domain = claims.get("hd")
        if isinstance(hosted_domain, str):
            context[f"{prefix}:hd"] = hosted_domain
        return context


class _CognitoUserPool(Convention):
    """Cognito user pools sign access tokens with the same keys: only ID tokens are accepted."""

    def check(self, claims: Mapping[str, Any]) -> None:
        token_use = claims.get("token_use")
        if token_use != "id":
            shown = repr(token_use) if isinstance(token_use, str) else "missing"
            raise rejected_claim(
                f"The token_use claim is {shown}; only Cognito ID tokens (token_use 'id') "
                "are accepted."
            )


class _CognitoIdentity(Convention):
    """Cognito identity pools: fixed key prefix and ``amr`` saying how the identity signed in."""

    exposes_claims = False

    def prefix(self, arn_path: str) -> str:
        return "cognito-identity.amazonaws.com"

    def principal_names(self, provider_arn: str) -> tuple[str, ...]:
        return (provider_arn, "cognito-identity.amazonaws.com")

    def check(self, claims: Mapping[str, Any]) -> None:
        amr = claims.get("amr")
        if not (
            isinstance(amr, list)
            and 0 < len(amr) <= _MAX_AMR_ITEMS
            and all(isinstance(item, str) for item in amr)
            and ("authenticated" in amr or "unauthenticated" in amr)
        ):
            raise rejected_claim(
                "Cognito identity tokens must carry an amr list containing 'authenticated' "
                "or 'unauthenticated'."
            )

    def context(
        self, prefix: str, claims: Mapping[str, Any], audience: str, matched: str
    ) -> dict[str, ContextValue]:
        return {
            f"{prefix}:aud": audience,
            f"{prefix}:sub": claims["sub"],
            f"{prefix}:amr": tuple(claims["amr"]),
        }


class _GitHubActions(Convention):
    """GitHub Actions: every token names its repository; trust policies key on it."""

    def check(self, claims: Mapping[str, Any]) -> None:
        owner, repository = claims.get("repository_owner"), claims.get("repository")
        if not (
            isinstance(owner, str)
            and isinstance(repository, str)
            and owner
            and repository.startswith(owner + "/")
        ):
            raise rejected_claim(
                "GitHub Actions tokens must carry repository and repository_owner claims, "
                "the repository inside its owner."
            )


_CONVENTIONS: dict[OidcKind, Convention] = {
    "generic": Convention(),
    "google": _Google(),
    "cognito-user-pool": _CognitoUserPool(),
    "cognito-identity": _CognitoIdentity(),
    "github-actions": _GitHubActions(),
}


def convention_for(kind: OidcKind) -> Convention:
    """The rules for one provider kind (stateless, shared)."""
    return _CONVENTIONS[kind]
