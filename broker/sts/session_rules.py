"""AWS's rules for what a new session may carry: its duration, tags, source identity and
packed policy size, and the condition keys its request adds.

Pure functions of the request and the parent session, shared by every AssumeRole* action
of :mod:`broker.sts.engine` (and by whatever else hands out role sessions), so each rule
is stated once, in AWS's words.
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from broker.directory import Role
from broker.errors import StsError, validation_error
from broker.iam import ContextValue
from broker.identity import FederatedIdentity, SessionClaims
from broker.tags import MAX_TAGS, TagError, validate_tags

ROLE_DEFAULT_DURATION = 3600
CHAINED_MAX_DURATION = 3600
SESSION_TOKEN_DEFAULT_DURATION = 43200
PACKED_LIMIT_BYTES = 1500
"""Compressed size of session policies + tags that counts as 100% ``PackedPolicySize``.

AWS does not publish its packing; this limit lets a maximal 2048-character policy with a
handful of tags fit, and refuses what AWS's documented limits would refuse too."""
MAX_SESSION_TAGS = MAX_TAGS


def federated_duration(
    requested: int | None, role: Role, identity: FederatedIdentity, now: float
) -> int:
    """AWS: min(DurationSeconds or 3600, SAML SessionDuration, SAML SessionNotOnOrAfter)."""
    duration = role_duration(requested, role, chained=False)
    if identity.max_duration is not None:
        duration = min(duration, identity.max_duration)
    if identity.not_after is not None:
        duration = min(duration, int(identity.not_after - now))
    if duration <= 0:
        raise StsError(
            "ExpiredTokenException",
            "The SAML session ended (SessionNotOnOrAfter has passed).",
        )
    return duration


def role_duration(requested: int | None, role: Role, chained: bool) -> int:
    """AWS's bounds: the role's maximum, and one hour for role chaining (the model checks 900)."""
    if requested is None:
        return ROLE_DEFAULT_DURATION
    if chained and requested > CHAINED_MAX_DURATION:
        raise validation_error(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed "
            "by role chaining."
        )
    if requested > role.max_session_duration:
        raise validation_error(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
        )
    return requested


def session_tags(
    params: Mapping[str, Any], parent: SessionClaims | None
) -> tuple[dict[str, str], list[str]]:
    """Passed tags plus the transitive tags a chained session inherits (AWS: those cannot be
    overwritten in the chain, and all count towards the limit)."""
    tags, transitive = validated_tags(params.get("Tags", ()), params.get("TransitiveTagKeys", ()))
    if parent is not None:
        passed = {key.lower() for key in tags}
        for key in parent.transitive_tag_keys:
            if key.lower() in passed:
                raise validation_error(
                    f"Tag key {key!r} is a transitive tag of the calling session and cannot be "
                    "set again in a role chain."
                )
            tags[key] = parent.tags[key]
            transitive.append(key)
    if len(tags) > MAX_SESSION_TAGS:
        raise validation_error(
            f"A session can carry at most {MAX_SESSION_TAGS} tags, inherited transitive tags "
            f"included (got {len(tags)})."
        )
    return tags, transitive


def validated_tags(
    passed: Sequence[Mapping[str, str]], transitive_keys: Sequence[str]
) -> tuple[dict[str, str], list[str]]:
    """AWS's tag rules (:func:`broker.tags.validate_tags`), whoever supplies the tags (a
    caller's ``Tags`` or a token's claim), as ``ValidationError``; the tags as a mapping and
    the transitive keys spelled as the tags spell them (keys are case-insensitive)."""
    tags: dict[str, str] = {}
    for tag in passed:
        key = tag["Key"]
        if key in tags:  # a repeat the mapping would hide; validate_tags catches other cases
            raise validation_error(
                "Duplicate tag keys found. Please note that Tag keys are case insensitive."
            )
        tags[key] = tag["Value"]
    try:
        validate_tags(tags, transitive_keys)
    except TagError as exc:
        raise validation_error(str(exc)) from None
    spelled = {key.lower(): key for key in tags}
    return tags, [spelled[key.lower()] for key in transitive_keys]


def request_keys(
    session_name: str,
    tags: Mapping[str, str],
    transitive: Sequence[str],
    source_identity: str | None,
) -> dict[str, ContextValue]:
    """The request's own condition keys for any AssumeRole* call."""
    keys: dict[str, ContextValue] = {"sts:RoleSessionName": session_name}
    if source_identity is not None:
        keys["sts:SourceIdentity"] = source_identity
    keys.update(tag_keys(tags))
    if tags:
        keys["sts:TransitiveTagKeys"] = tuple(transitive)
    return keys


def tag_keys(tags: Mapping[str, str]) -> dict[str, ContextValue]:
    """``aws:RequestTag/KEY`` and ``aws:TagKeys`` for the tags a request passes."""
    if not tags:
        return {}
    keys: dict[str, ContextValue] = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    keys["aws:TagKeys"] = tuple(tags)
    return keys


def assume_actions(action: str, tags: Mapping[str, str], source_identity: str | None) -> list[str]:
    """Every action the trust policy must allow: tags need TagSession, a source identity
    needs SetSourceIdentity (AWS)."""
    actions = [action]
    if tags:
        actions.append("sts:TagSession")
    if source_identity is not None:
        actions.append("sts:SetSourceIdentity")
    return actions


def carried_source_identity(requested: str | None, parent: SessionClaims | None) -> str | None:
    """Set once, then carried through every chained session unchanged (AWS)."""
    inherited = parent.source_identity if parent is not None else None
    if requested is not None and requested.lower().startswith("aws:"):
        raise validation_error("SourceIdentity may not start with 'aws:'.")
    if inherited is not None and requested is not None and requested != inherited:
        raise validation_error(
            f"SourceIdentity cannot be changed once set: this session carries {inherited!r}."
        )
    return inherited if inherited is not None else requested


def packed_size(
    policy_text: str | None, policy_arns: Sequence[str], tags: Sequence[Mapping[str, str]]
) -> int | None:
    """Percent of the packed limit used by session policies and tags; None if none passed."""
    if policy_text is None and not policy_arns and not tags:
        return None
    blob = json.dumps(
        [policy_text or "", list(policy_arns), [[t["Key"], t["Value"]] for t in tags]],
        separators=(",", ":"),
    ).encode()
    percent = math.ceil(len(zlib.compress(blob, 9)) * 100 / PACKED_LIMIT_BYTES)
    if percent > 100:
        raise StsError(
            "PackedPolicyTooLarge",
            f"Packed size of the session policies and tags is {percent}% of the allowed limit.",
        )
    return percent


MAX_SUBJECT_CHARS = 255
"""The longest ``sub`` an ID token may carry (AWS's and the broker's verifier's bound)."""


def upstream_subject(provider_arn: str, subject: str) -> str:
    """A stable, unambiguous subject for a federated person: ``PROVIDER_ARN/SUBJECT``.

    Qualified by the provider, so an AWS trust policy that tests ``sub`` cannot be met by
    another IdP's person of the same name; a subject too long to fit is replaced by its
    SHA-256, which is as stable.
    """
    qualified = f"{provider_arn}/{subject}"
    if len(qualified) <= MAX_SUBJECT_CHARS:
        return qualified
    return f"{provider_arn}/sha256:{hashlib.sha256(subject.encode()).hexdigest()}"
