"""One claims model for every path: verified claims, normalised once, read by everyone.

An OIDC token's payload and a SAML assertion's attributes arrive in each provider's own
shape. Right after verification the adapter turns them into :class:`Claims`, applying the
provider's normalisers (:mod:`broker.config.claims`: split a delimited string into a list,
flatten Keycloak's realm and client roles), and from then on every reader sees the same
view: identity-pool mapping rules, trust-policy condition keys, session templates, the
browser sign-in's ``roles_claim`` and ``sts-broker explain``. Nothing re-reads the raw
payload, so a normaliser cannot be bypassed by one path and honoured by another.

**Addressing.** A claim is named by an RFC 6901 JSON pointer (``/realm_access/roles``,
``/resource_access/app/roles``; ``~1`` is ``/`` and ``~0`` is ``~`` inside a name). AWS's
mapping rules name top-level claims (``email``, ``cognito:groups``), so a name that does
not start with ``/`` is one top-level member, exactly as written.

**Condition keys.** A trust policy may test a pointer as a condition key: the provider's
prefix, a colon, then the pointer (``keycloak.example.com/realms/corp:/realm_access/roles``,
``saml:/groups``). Only the keys trust policies actually name are computed (they are found
in the config once, at start-up), so a token with a large nested payload costs nothing
extra, and only for providers whose conventions expose claims at all (Google's keys stay
AWS's fixed ones, so ``email_verified`` cannot be bypassed through a pointer).

**Claims held elsewhere.** A token that says some claims are not in it (OpenID Connect
distributed claims, ``_claim_names``, which Entra ID uses for groups overage, or its
``hasgroups``) is refused with what to configure: reading it as "no groups" would decide on
a claim that is not there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from broker.config import ClaimsConfig
from broker.errors import quoted, rejected_claim
from broker.iam import ContextValue

MAX_LIST_ITEMS: Final = 256
"""Items of one list claim that reach a condition key, a rule or a template."""
MAX_VALUE_CHARS: Final = 2048
"""Characters of one claim value that reach a condition key, a rule or a template."""
_MAX_KEYS_PER_PREFIX: Final = 64
"""Pointer condition keys computed per provider: bounded, since every token pays for them."""


class _Absent:
    """The marker for "no such claim" (``None`` is JSON ``null``, a value)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """The member names (or list indexes, as text) of an RFC 6901 pointer.

    ``""`` is the whole document (no tokens). Raises :class:`ValueError` for text that is
    not a pointer: it must start with ``/`` and ``~`` may only be ``~0`` or ``~1``.
    """
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise ValueError(f"a JSON pointer starts with / (got {quoted(pointer)})")
    tokens = []
    for raw in pointer[1:].split("/"):
        cleaned = raw.replace("~0", "").replace("~1", "")
        if "~" in cleaned:
            raise ValueError(f"~ must be written ~0 in a JSON pointer (got {quoted(pointer)})")
        tokens.append(raw.replace("~1", "/").replace("~0", "~"))
    return tuple(tokens)


def claim_path(claim: str) -> tuple[str, ...]:
    """Where a rule's ``Claim`` points: a JSON pointer when it starts with ``/``, else the
    one top-level claim of that name (AWS's rules name ``email``, ``cognito:groups``)."""
    return parse_pointer(claim) if claim.startswith("/") else (claim,)


def _step(value: object, token: str) -> object:
    if isinstance(value, Mapping):
        return value.get(token, ABSENT)
    if isinstance(value, list) and token.isdigit() and (token == "0" or token[0] != "0"):
        index = int(token)
        return value[index] if index < len(value) else ABSENT
    return ABSENT


def scalar_text(value: object) -> str | None:
    """A scalar claim as text for comparisons and templates: strings as they are,
    ``true``/``false``, numbers as JSON writes them; None for null, objects and lists."""
    if isinstance(value, str):
        return value if len(value) <= MAX_VALUE_CHARS else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return None


def context_value(value: object) -> ContextValue | None:
    """A claim as a condition value: a string or a list of strings, bounded; else None."""
    if isinstance(value, str):
        return value if len(value) <= MAX_VALUE_CHARS else None
    if (
        isinstance(value, list)
        and len(value) <= MAX_LIST_ITEMS
        and all(isinstance(item, str) and len(item) <= MAX_VALUE_CHARS for item in value)
    ):
        return tuple(value)
    return None


@dataclass(frozen=True)
class Claims(Mapping[str, Any]):
    """A verified identity's claims after its provider's normalisers; read-only.

    It is a mapping of the top-level claims (so ``claims.get("email")`` reads as before),
    plus pointer lookups. OIDC claims are the token's payload; SAML claims are the
    assertion's attributes by ``Name``, each a list of its values.
    """

    members: Mapping[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.members[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def lookup(self, path: Iterable[str]) -> Any:
        """The value at ``path`` (tokens of :func:`parse_pointer` or :func:`claim_path`),
        or :data:`ABSENT`."""
        value: object = self.members
        for token in path:
            value = _step(value, token)
            if value is ABSENT:
                return ABSENT
        return value

    def texts(self, path: Iterable[str]) -> tuple[str, ...] | None:
        """The value at ``path`` as texts: one for a scalar, one per scalar item of a list
        (nested items skipped); None when absent, null, an object, or out of bounds."""
        value = self.lookup(path)
        if isinstance(value, list):
            if len(value) > MAX_LIST_ITEMS:
                return None
            return tuple(t for t in (scalar_text(item) for item in value) if t is not None)
        text = scalar_text(value)
        return None if text is None else (text,)

    @classmethod
    def of(cls, members: Mapping[str, Any]) -> Claims:
        return cls(MappingProxyType(dict(members)))


# --------------------------------------------------------------------------- normalising


def normalise(raw: Mapping[str, Any], settings: ClaimsConfig) -> Claims:
    """The claims every later stage reads: ``raw`` (verified) with the normalisers applied.

    Refuses (``IDPRejectedClaim``) a token whose claims are held elsewhere, and one whose
    normalised output would overwrite a claim it already carries.
    """
    _refuse_claims_held_elsewhere(raw)
    members = dict(raw)
    for pointer, separator in settings.split.items():
        path = parse_pointer(pointer)
        value = Claims(members).lookup(path)
        if isinstance(value, str | list):
            # A SAML attribute is always a list of values: each string of a list is split.
            texts = [value] if isinstance(value, str) else value
            items: list[object] = []
            for text in texts:
                if isinstance(text, str):
                    items.extend(p for p in (s.strip() for s in text.split(separator)) if p)
                else:
                    items.append(text)
            if len(items) > MAX_LIST_ITEMS:
                raise rejected_claim(
                    f"The claim {pointer} splits into more than {MAX_LIST_ITEMS} items."
                )
            members = _replaced(members, path, items)
    keycloak = settings.keycloak_roles
    if keycloak is not None:
        if keycloak.into in members:
            raise rejected_claim(
                f"The token already has a {quoted(keycloak.into)} claim, where keycloak_roles "
                "writes the Keycloak roles; set keycloak_roles.into to another claim name."
            )
        view = Claims(members)
        roles = _string_items(view.lookup(("realm_access", "roles")))
        for client in keycloak.clients:
            client_roles = _string_items(view.lookup(("resource_access", client, "roles")))
            roles.extend(f"{client}:{role}" for role in client_roles)
        members[keycloak.into] = roles[:MAX_LIST_ITEMS]
    return Claims(MappingProxyType(members))


def _string_items(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]


def _replaced(members: dict[str, Any], path: tuple[str, ...], new: object) -> dict[str, Any]:
    """``members`` with the object member at ``path`` set to ``new`` (copies on the way
    down; the verified payload itself is never changed)."""
    head, rest = path[0], path[1:]
    out = dict(members)
    if not rest:
        out[head] = new
        return out
    child = out.get(head)
    if isinstance(child, Mapping):
        out[head] = _replaced(dict(child), rest, new)
    return out


_ENTRA_GROUPS_ADVICE = (
    "Entra ID left the groups claim out because the user is in more groups than fit in a "
    "token (groups overage), and the broker does not fetch them from Microsoft Graph. In "
    "the app registration's Token configuration, emit only the groups assigned to the "
    "application (groupMembershipClaims: ApplicationGroup), or map app roles (the roles "
    "claim) instead of groups."
)


def _refuse_claims_held_elsewhere(raw: Mapping[str, Any]) -> None:
    names = raw.get("_claim_names")
    if raw.get("hasgroups") is True or (
        isinstance(names, Mapping) and any(name == "groups" for name in names)
    ):
        raise rejected_claim(f"The token's groups claim is not in it. {_ENTRA_GROUPS_ADVICE}")
    if names is not None:
        shown = (
            ", ".join(quoted(str(n), 40) for n in list(names)[:5])
            if isinstance(names, Mapping)
            else "some claims"
        )
        raise rejected_claim(
            f"The token says {shown} are held elsewhere (OpenID Connect distributed claims, "
            "_claim_names), which the broker does not fetch; configure the identity provider "
            "to put them in the ID token."
        )


# --------------------------------------------------------------------------- condition keys


def pointer_condition_keys(
    trust_policies: Iterable[Mapping[str, Any]], prefix: str
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The ``PREFIX:/pointer`` condition keys these (raw) trust policies test, as written,
    each with its pointer's tokens; one spelling per key (keys are case-insensitive)."""
    wanted = prefix.lower() + ":/"
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for key in _condition_keys(trust_policies):
        if not key.lower().startswith(wanted) or key.lower() in found:
            continue
        try:
            tokens = parse_pointer(key[len(prefix) + 1 :])
        except ValueError:
            continue  # never matches; check-config says so
        found[key.lower()] = (key, tokens)
        if len(found) >= _MAX_KEYS_PER_PREFIX:
            break
    return tuple(found.values())


def pointer_context(
    claims: Claims, keys: Iterable[tuple[str, tuple[str, ...]]]
) -> dict[str, ContextValue]:
    """The condition keys :func:`pointer_condition_keys` found, with this identity's values
    (keys whose claim is absent or not a string or list of strings are left out)."""
    context: dict[str, ContextValue] = {}
    for key, tokens in keys:
        value = context_value(claims.lookup(tokens))
        if value is not None:
            context[key] = value
    return context


def _condition_keys(policies: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """Every condition key written in raw policy documents (malformed parts skipped)."""
    for document in policies:
        statements = document.get("Statement")
        for statement in statements if isinstance(statements, list) else [statements]:
            if not isinstance(statement, Mapping):
                continue
            condition = statement.get("Condition")
            if not isinstance(condition, Mapping):
                continue
            for block in condition.values():
                if isinstance(block, Mapping):
                    yield from (key for key in block if isinstance(key, str))
