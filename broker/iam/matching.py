"""Wildcards, ARNs, policy variables and principals: how one policy string meets one request.

Everything here is linear-ish and allocation-light on purpose: session policies arrive from
callers, so a pattern such as ``*a*a*a*a*b`` must not be able to make matching explode
(no regular expressions are built from policy text).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from broker.iam.errors import MalformedPolicyError, show

ContextValue = str | tuple[str, ...]
"""A condition key's value: one string, or a tuple of strings for a multivalued key."""


class _Wildcard:
    """A wildcard unit in a compiled pattern (distinct from any literal character)."""

    __slots__ = ("symbol",)

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol

    def __repr__(self) -> str:
        return self.symbol


_STAR = _Wildcard("*")
_QMARK = _Wildcard("?")
_Unit = str | _Wildcard
"""One step of a pattern: a single literal character, or ``*`` / ``?``."""

_ARN_FIELDS = 6


# --------------------------------------------------------------------------- context


@dataclass(frozen=True)
class ContextView:
    """A request context with AWS's case-insensitive key lookup, built once per request."""

    values: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, context: Mapping[str, ContextValue]) -> ContextView:
        """Fold keys to lower case; two spellings of one key are a caller bug, so refuse."""
        # Fast path (every request builds one): str keys with str values, no key repeated
        # in another case (then no key was lost to folding). Anything else takes the
        # checking loop below, which says what is wrong.
        fast: dict[str, tuple[str, ...]] = {}
        for key, value in context.items():
            if type(value) is not str or type(key) is not str:
                break
            fast[key.lower()] = (value,)
        else:
            if len(fast) == len(context):
                return cls(fast)
        folded: dict[str, tuple[str, ...]] = {}
        for key, value in context.items():
            if not isinstance(key, str):
                raise TypeError("context keys must be strings")
            if isinstance(value, str):
                normalized: tuple[str, ...] = (value,)
            elif isinstance(value, tuple) and all(isinstance(item, str) for item in value):
                normalized = value
            else:
                raise TypeError(f"context value for {key!r} must be a str or a tuple of str")
            lowered = key.lower()
            if lowered in folded:
                raise ValueError(f"context key {key!r} given twice (keys are case-insensitive)")
            folded[lowered] = normalized
        return cls(folded)

    def get(self, key: str) -> tuple[str, ...] | None:
        """The key's values, or None when absent or empty (AWS treats both as missing)."""
        found = self.values.get(key.lower())
        return found if found else None


# --------------------------------------------------------------------------- variables


@dataclass(frozen=True)
class Variable:
    """``${key}`` or ``${key, 'default'}``: replaced by the request's single value for key."""

    key: str
    default: str | None


@dataclass(frozen=True)
class Escaped:
    """``${*}``, ``${?}`` or ``${$}``: a character that must stay literal, never a wildcard."""

    char: str


_Part = str | Variable | Escaped

_VARIABLE_BODY = re.compile(r"\s*([^\s,'${}][^,'${}]*?)\s*(?:,\s*'([^']*)'\s*)?")


@dataclass(frozen=True)
class Template:
    """A policy string, split into literal text, policy variables and escapes.

    Text parts keep ``*`` and ``?`` as wildcards where the operator uses them; what a
    variable or escape produces is always literal, so a user named ``*`` matches nothing
    but the resource spelled with a ``*``.
    """

    raw: str
    parts: tuple[_Part, ...]

    def text(self, context: ContextView) -> str | None:
        """The string with variables replaced; None when a variable has no value."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                value = _resolve(part, context)
                if value is None:
                    return None
                out.append(value)
        return "".join(out)

    def units(self, context: ContextView) -> tuple[_Unit, ...] | None:
        """The pattern for wildcard matching; None when a variable has no value."""
        out: list[_Unit] = []
        for part in self.parts:
            if isinstance(part, str):
                out.extend(_STAR if ch == "*" else _QMARK if ch == "?" else ch for ch in part)
            else:
                value = _resolve(part, context)
                if value is None:
                    return None
                out.extend(value)
        return tuple(out)


def _resolve(part: Variable | Escaped, context: ContextView) -> str | None:
    """A variable's value: multivalued keys cannot be variables (AWS), so they resolve to
    nothing and the value does not match."""
    if isinstance(part, Escaped):
        return part.char
    found = context.get(part.key)
    if found is not None and len(found) == 1:
        return found[0]
    if found is None and part.default is not None:
        return part.default
    return None


def parse_template(raw: str, *, variables: bool) -> Template:
    """Split ``raw`` into parts; with ``variables`` off (Version absent or 2008-10-17)
    ``${...}`` is plain text, as AWS reads old policies."""
    if not variables or "${" not in raw:
        return Template(raw, (raw,) if raw else ())
    parts: list[_Part] = []
    pos = 0
    while True:
        start = raw.find("${", pos)
        if start < 0:
            break
        end = raw.find("}", start)
        if end < 0:
            raise MalformedPolicyError(f"Invalid policy variable in {show(raw)}: missing '}}'.")
        if start > pos:
            parts.append(raw[pos:start])
        parts.append(_parse_variable(raw[start + 2 : end], raw))
        pos = end + 1
    if pos < len(raw):
        parts.append(raw[pos:])
    return Template(raw, tuple(parts))


def _parse_variable(body: str, raw: str) -> Variable | Escaped:
    if body in ("*", "?", "$"):
        return Escaped(body)
    match = _VARIABLE_BODY.fullmatch(body)
    if match is None or ":" not in match.group(1):
        raise MalformedPolicyError(f"Invalid policy variable in {show(raw)}: ${{{show(body)}}}.")
    return Variable(match.group(1), match.group(2))


# --------------------------------------------------------------------------- wildcards


def _glob(pattern: tuple[_Unit, ...], text: str) -> bool:
    """Whole-string match with ``*`` (any run) and ``?`` (one character).

    The classic two-pointer algorithm: it backtracks only to the most recent ``*``, so
    its worst case is O(len(pattern) * len(text)), never exponential.
    """
    p = t = 0
    star_p = -1
    star_t = 0
    while t < len(text):
        unit = pattern[p] if p < len(pattern) else None
        if unit is _STAR:
            star_p, star_t = p, t
            p += 1
        elif unit is not None and (unit is _QMARK or unit == text[t]):
            p += 1
            t += 1
        elif star_p >= 0:
            p = star_p + 1
            star_t += 1
            t = star_t
        else:
            return False
    while p < len(pattern) and pattern[p] is _STAR:
        p += 1
    return p == len(pattern)


def glob_match(template: Template, text: str, context: ContextView, *, fold: bool = False) -> bool:
    """StringLike-style match of the whole string; ``fold`` for AWS's case-insensitive fields."""
    units = template.units(context)
    if units is None:
        return False
    if fold:
        units = tuple(u.lower() if isinstance(u, str) else u for u in units)
        text = text.lower()
    return _glob(units, text)


def arn_match(template: Template, arn: str, context: ContextView) -> bool:
    """ARN-aware match: each of the six ``:`` fields is matched on its own, so a ``*`` in
    the account field cannot swallow ``:role/...``; the resource field may hold colons."""
    units = template.units(context)
    if units is None:
        return False
    if units == (_STAR,):
        return True
    fields = arn.split(":", _ARN_FIELDS - 1)
    pattern_fields = _split_units(units)
    if len(fields) != _ARN_FIELDS or len(pattern_fields) != _ARN_FIELDS:
        return False
    return all(_glob(p, f) for p, f in zip(pattern_fields, fields, strict=True))


def _split_units(units: tuple[_Unit, ...]) -> list[tuple[_Unit, ...]]:
    fields: list[tuple[_Unit, ...]] = []
    start = 0
    for index, unit in enumerate(units):
        if unit == ":" and len(fields) < _ARN_FIELDS - 1:
            fields.append(units[start:index])
            start = index + 1
    fields.append(units[start:])
    return fields


def action_match(pattern: str, action: str) -> bool:
    """Actions compare case-insensitively (``STS:assumerole`` is ``sts:AssumeRole``)."""
    return glob_match(Template(pattern, (pattern,)), action, ContextView({}), fold=True)


ActionMatcher = Callable[[str], bool]
"""Takes the request's action already lower-cased (``str.lower``), once per request."""


def compile_actions(patterns: tuple[str, ...]) -> ActionMatcher:
    """One matcher for a statement's Action/NotAction list, built when the policy is parsed.

    Equivalent to ``any(action_match(p, action) for p in patterns)``, but the per-request
    work drops to a set lookup for literal names (most policies) and a ``startswith`` for
    ``service:Prefix*``; only other wildcard shapes keep the general matcher, with their
    units lowered once here. Non-ASCII patterns (which the parser never admits) keep
    :func:`action_match` itself, since lowering such a string whole and per character can
    differ.
    """
    literals: set[str] = set()
    prefixes: list[str] = []
    general: list[ActionMatcher] = []
    for pattern in patterns:
        if not pattern.isascii():
            general.append(functools.partial(action_match, pattern))
            continue
        folded = pattern.lower()
        head = folded.rstrip("*")
        if "*" not in head and "?" not in head:
            if head == folded:
                literals.add(folded)
            elif not head:
                return _match_any  # only stars: matches every action
            else:
                prefixes.append(head)
        else:
            units = tuple(_STAR if ch == "*" else _QMARK if ch == "?" else ch for ch in folded)
            general.append(functools.partial(_glob, units))
    frozen = frozenset(literals)
    starts = tuple(prefixes)
    if not starts and not general:
        return frozen.__contains__
    rest = tuple(general)

    def matches(lowered: str) -> bool:
        return (
            lowered in frozen
            or (bool(starts) and lowered.startswith(starts))
            or any(match(lowered) for match in rest)
        )

    return matches


def _match_any(lowered: str) -> bool:
    return True


# --------------------------------------------------------------------------- principals

PrincipalKind = Literal["AWS", "Federated", "Service", "CanonicalUser"]


@dataclass(frozen=True)
class Principal:
    """Who asks, as a policy's Principal element may name them."""

    kind: Literal["AWS", "Federated", "Service"]
    arns: tuple[str, ...]
    """Every exact spelling a Principal element may use for this caller: for a role
    session both the session ARN and the role ARN; for SAML the provider ARN; for web
    identity the provider name or ARN."""
    account: str | None
    """Matches ``arn:aws:iam::A:root`` and bare ``A`` in an AWS principal."""


@dataclass(frozen=True)
class PrincipalSpec:
    """A parsed Principal / NotPrincipal element."""

    everyone: bool
    """``"Principal": "*"``."""
    entries: tuple[tuple[PrincipalKind, str], ...]


PrincipalHow = Literal["session-arn", "arn", "account"]
"""How a spec named the caller: by a session's own ARN, by another exact ARN (role, user,
provider), or only through its account (root, bare account id, or a wildcard)."""

_ROOT = re.compile(r"arn:[a-z-]+:iam::(\d{12}):root")
_SESSION_ARN = re.compile(r"arn:[a-z-]+:sts::\d{12}:(?:assumed-role|federated-user)/.+")


def match_principal(spec: PrincipalSpec, principal: Principal) -> PrincipalHow | None:
    """Whether ``spec`` names ``principal``, and the most specific way it does."""
    if spec.everyone:
        return "account"
    best: PrincipalHow | None = None
    for kind, value in spec.entries:
        if kind != principal.kind:
            continue
        if value in principal.arns:
            if _SESSION_ARN.fullmatch(value):
                return "session-arn"
            best = "arn"
        elif best is None and kind == "AWS" and _names_account(value, principal):
            best = "account"
    return best


def _names_account(value: str, principal: Principal) -> bool:
    if value == "*":
        return True
    if principal.account is None:
        return False
    root = _ROOT.fullmatch(value)
    return (root.group(1) if root else value) == principal.account


def not_principal_exempts(spec: PrincipalSpec, principal: Principal) -> bool:
    """Whether a NotPrincipal element leaves the caller out of its statement.

    AWS checks the account before the identity inside it, so an AWS caller is exempt only
    when both its account and one of its own ARNs are listed (reference_policies_elements_
    notprincipal.html, "Specifying NotPrincipal and Deny"); listing just one denies it.
    """
    if spec.everyone:
        return True
    listed = {value for kind, value in spec.entries if kind == principal.kind}
    if "*" in listed:
        return True
    named_by_arn = any(arn in listed for arn in principal.arns)
    if principal.kind != "AWS" or principal.account is None:
        return named_by_arn
    account_listed = any(_names_account(v, principal) for v in listed)
    return named_by_arn and account_listed
