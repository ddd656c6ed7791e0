"""The policy model and its parser: IAM JSON grammar, checked the way IAM checks it.

Every refusal is a :class:`MalformedPolicyError` with AWS-like text, raised when the
policy is parsed (config load, or a caller's session policy), so evaluation never meets
a document it does not fully understand. The parser does not stop at the first mistake:
it checks every element it can and lists each mistake with its place in the document, so
whoever fixes a config file sees them all, each at its own line. Unknown keys refuse
rather than being ignored: a misspelt ``"Conditon"`` silently dropped would turn a
restricted grant into a broad one. Size limits differ per policy kind and belong to the
caller.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from broker.iam.conditions import Condition, parse_conditions
from broker.iam.errors import DocumentPath, MalformedPolicyError, PolicyProblem, show
from broker.iam.matching import (
    ActionMatcher,
    PrincipalKind,
    PrincipalSpec,
    Template,
    compile_actions,
    parse_template,
)
from broker.jsonread import JsonRefusedError, read_json

PolicyKind = Literal["identity", "session", "trust", "resource"]
Effect = Literal["Allow", "Deny"]

VERSION_2012 = "2012-10-17"
VERSION_2008 = "2008-10-17"
_MAX_DOCUMENT_CHARS = 1_048_576
"""The most text :func:`parse_policy` reads (every IAM limit is far below it)."""

_TOP_KEYS = frozenset({"Version", "Id", "Statement"})
_STATEMENT_KEYS = frozenset(
    {
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    }
)
_SID = re.compile(r"[A-Za-z0-9]*")
_ACTION = re.compile(r"[A-Za-z0-9-]+:[A-Za-z0-9_*?-]+")

_PARTITION = r"aws(?:-cn|-us-gov|-iso(?:-[a-z])?)?"
_ACCOUNT = r"\d{12}"
_NAME = r"[\w+=,.@-]+"
_IAM = rf"arn:{_PARTITION}:iam::{_ACCOUNT}:"
_STS = rf"arn:{_PARTITION}:sts::{_ACCOUNT}:"
_HOST = r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_PRINCIPAL_FORMS: dict[PrincipalKind, re.Pattern[str]] = {
    "AWS": re.compile(
        rf"\*|{_ACCOUNT}|{_IAM}root|{_IAM}(?:user|role)/(?:{_NAME}/)*{_NAME}"
        rf"|{_STS}assumed-role/{_NAME}/{_NAME}|{_STS}federated-user/{_NAME}"
    ),
    "Federated": re.compile(
        rf"{_HOST}|{_IAM}saml-provider/[\w.-]+|{_IAM}oidc-provider/{_HOST}(?::\d+)?(?:/[\w.~%-]+)*"
    ),
    "Service": re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)+"),
    "CanonicalUser": re.compile(r"[0-9a-f]{64}"),
}


@dataclass(frozen=True)
class Statement:
    """One statement; ``not_*`` flags say the element was the Not- form."""

    sid: str | None
    effect: Effect
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[Template, ...] | None
    """None when the statement has neither Resource nor NotResource (trust policies):
    it then applies to any resource."""
    not_resource: bool
    principal: PrincipalSpec | None
    """None for identity and session policies, which may not name a principal."""
    not_principal: bool
    conditions: tuple[Condition, ...]
    action_matcher: ActionMatcher = field(init=False, repr=False, compare=False)
    """``actions`` compiled once (see :func:`~broker.iam.matching.compile_actions`): a
    trust policy is evaluated on every request, its action list never changes."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "action_matcher", compile_actions(self.actions))


@dataclass(frozen=True)
class Policy:
    """A parsed policy document; ``name`` labels it in decisions and matched statements."""

    name: str
    version: str | None
    statements: tuple[Statement, ...]


def parse_policy(document: str | Mapping[str, Any], *, kind: PolicyKind, name: str = "") -> Policy:
    """Parse and validate a policy of ``kind``; raise :class:`MalformedPolicyError`.

    Every mistake is found, not only the first: the error's ``problems`` list them all with
    their places in the document, and its ``reason`` is the first, the one AWS would name.
    """
    if kind not in get_args(PolicyKind):
        raise ValueError(f"unknown policy kind {kind!r}")
    data = _load(document) if isinstance(document, str) else document
    problems = _Problems()
    policy = _policy(data, kind, name, problems)
    if problems.found or policy is None:
        raise MalformedPolicyError.of(problems.found)
    return policy


class _Problems:
    """Mistakes found so far; :meth:`at` records one raised inside it and carries on."""

    def __init__(self) -> None:
        self.found: list[PolicyProblem] = []

    def add(self, path: DocumentPath, reason: str) -> None:
        self.found.append(PolicyProblem(path, reason))

    @contextmanager
    def at(self, *path: str | int) -> Iterator[None]:
        try:
            yield
        except MalformedPolicyError as exc:
            self.found.extend(exc.within(*path).problems)


def _policy(data: object, kind: PolicyKind, name: str, problems: _Problems) -> Policy | None:
    if not isinstance(data, Mapping):
        problems.add((), "Syntax errors in policy. The document must be a JSON object.")
        return None
    _refuse_unknown(data, _TOP_KEYS, (), problems)
    version = data.get("Version")
    if version is not None and version not in (VERSION_2012, VERSION_2008):
        problems.add(
            ("Version",),
            f"Syntax errors in policy. Unsupported Version: {show(version)} "
            f"(use {VERSION_2012} or {VERSION_2008}).",
        )
    if "Id" in data and not isinstance(data["Id"], str):
        problems.add(("Id",), "Syntax errors in policy. Id must be a string.")
    if "Statement" not in data:
        problems.add((), "Missing required field Statement.")
        return None
    raw_statements = data["Statement"]
    # A single statement may be given as an object; its elements are then Statement.Effect.
    places: list[DocumentPath]
    if isinstance(raw_statements, Mapping):
        raw_statements, places = [raw_statements], [("Statement",)]
    elif isinstance(raw_statements, list):
        places = [("Statement", i) for i in range(len(raw_statements))]
    if not isinstance(raw_statements, list) or not raw_statements:
        problems.add(
            ("Statement",),
            "Syntax errors in policy. Statement must be an object or a non-empty list of objects.",
        )
        return None
    variables = version == VERSION_2012
    statements = [
        _statement(raw, kind, variables=variables, at=at, problems=problems)
        for raw, at in zip(raw_statements, places, strict=True)
    ]
    seen: set[str] = set()
    for statement, at in zip(statements, places, strict=True):
        if statement is not None and statement.sid:
            if statement.sid in seen:
                problems.add((*at, "Sid"), "Statement IDs (SID) in a single policy must be unique.")
            seen.add(statement.sid)
    if problems.found:
        return None
    return Policy(
        name=name, version=version, statements=tuple(s for s in statements if s is not None)
    )


def policy_problems(document: str | Mapping[str, Any], *, kind: PolicyKind) -> list[PolicyProblem]:
    """Every mistake of a policy document (none: it parses), each with its place."""
    try:
        parse_policy(document, kind=kind)
    except MalformedPolicyError as exc:
        return list(exc.problems)
    return []


def _load(text: str) -> object:
    """Strict JSON (:func:`broker.jsonread.read_json`): repeated names, NaN/Infinity and
    deep nesting refuse, since parsers disagree on them and a policy must mean one thing.
    Size limits differ per policy kind and are the caller's; this bound only keeps the
    reader's own work finite."""
    try:
        return read_json(text, max_size=_MAX_DOCUMENT_CHARS)
    except JsonRefusedError as exc:
        if exc.kind == "duplicate":
            reason = f"Syntax errors in policy. Duplicate key {show(exc.fragment)}."
        elif exc.kind == "constant":
            reason = f"Syntax errors in policy. Invalid number {exc.fragment}."
        else:
            reason = "Syntax errors in policy."
        raise MalformedPolicyError(reason) from None


def _refuse_unknown(
    data: Mapping[Any, Any], allowed: frozenset[str], at: DocumentPath, problems: _Problems
) -> None:
    for key in data:
        if key not in allowed:
            problems.add((*at, key), f"Syntax errors in policy. Unknown field {show(key)}.")


def _statement(
    raw: object, kind: PolicyKind, *, variables: bool, at: DocumentPath, problems: _Problems
) -> Statement | None:
    """One statement, or None when any of its elements is wrong (each one recorded)."""
    if not isinstance(raw, Mapping):
        problems.add(at, "Syntax errors in policy. Each Statement must be an object.")
        return None
    before = len(problems.found)
    _refuse_unknown(raw, _STATEMENT_KEYS, at, problems)
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        problems.add((*at, "Sid"), "Syntax errors in policy. Sid must be a string.")
    elif sid is not None and kind != "resource" and not _SID.fullmatch(sid):
        problems.add((*at, "Sid"), "Statement IDs (SID) must be alpha-numeric.")
    effect = raw.get("Effect")
    if effect is None:
        problems.add(at, "Missing required field Effect.")
    elif effect not in ("Allow", "Deny"):
        problems.add((*at, "Effect"), f"Invalid effect: {show(effect)}.")
    actions: tuple[str, ...] = ()
    not_action = False
    with problems.at(*at):
        actions, not_action = _one_of(raw, "Action", "NotAction", missing="actions")
        key = "NotAction" if not_action else "Action"
        for index, action in enumerate(actions):
            if action != "*" and not _ACTION.fullmatch(action):
                problems.add(
                    (*at, key, index) if isinstance(raw[key], list) else (*at, key),
                    "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc. "
                    f"Invalid action: {show(action)}.",
                )
    principal: PrincipalSpec | None = None
    not_principal = False
    with problems.at(*at):
        principal, not_principal = _principal(raw, kind, effect)
    has_resource = "Resource" in raw or "NotResource" in raw
    if kind in ("identity", "session") and not has_resource:
        problems.add(at, "Policy statement must contain resources.")
    resources: tuple[Template, ...] | None = None
    not_resource = False
    if has_resource:
        with problems.at(*at):
            texts, not_resource = _one_of(raw, "Resource", "NotResource", missing="resources")
            key = "NotResource" if not_resource else "Resource"
            listed = isinstance(raw[key], list)
            parsed = []
            for index, text in enumerate(texts):
                with problems.at(*at, key, *((index,) if listed else ())):
                    parsed.append(_resource(text, variables=variables))
            resources = tuple(parsed)
    conditions: tuple[Condition, ...] = ()
    if "Condition" in raw:
        with problems.at(*at, "Condition"):
            conditions = parse_conditions(raw["Condition"], variables=variables)
    if len(problems.found) > before:
        return None
    return Statement(
        sid=sid,
        effect="Allow" if effect == "Allow" else "Deny",
        actions=actions,
        not_action=not_action,
        resources=resources,
        not_resource=not_resource,
        principal=principal,
        not_principal=not_principal,
        conditions=conditions,
    )


def _one_of(
    raw: Mapping[str, Any], element: str, negated: str, *, missing: str
) -> tuple[tuple[str, ...], bool]:
    """Exactly one of an element and its Not- form, as a string or non-empty string list."""
    if element in raw and negated in raw:
        raise MalformedPolicyError(f"Statement cannot have both {element} and {negated}.")
    if element not in raw and negated not in raw:
        raise MalformedPolicyError(f"Policy statement must contain {missing}.")
    key = element if element in raw else negated
    return _strings(raw[key], key, missing=missing), key == negated


def _strings(value: object, field: str, *, missing: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise MalformedPolicyError(
            f"Syntax errors in policy. {field} must be a string or a list of strings.", (field,)
        )
    if not items:
        raise MalformedPolicyError(f"Policy statement must contain {missing}.", (field,))
    return tuple(items)


def _resource(text: str, *, variables: bool) -> Template:
    if text != "*" and (not text.startswith("arn:") or text.count(":") < 5):
        raise MalformedPolicyError(f'Resource {show(text)} must be in ARN format or "*".')
    return parse_template(text, variables=variables)


def _principal(
    raw: Mapping[str, Any], kind: PolicyKind, effect: object
) -> tuple[PrincipalSpec | None, bool]:
    present = [key for key in ("Principal", "NotPrincipal") if key in raw]
    if kind in ("identity", "session"):
        if present:
            raise MalformedPolicyError(
                "Policy document should not specify a principal.", (present[0],)
            )
        return None, False
    if not present:
        raise MalformedPolicyError("Missing required field Principal.")
    if len(present) == 2:
        raise MalformedPolicyError("Statement cannot have both Principal and NotPrincipal.")
    key = present[0]
    negated = key == "NotPrincipal"
    if negated and kind == "trust":
        raise MalformedPolicyError("NotPrincipal is not supported in a role trust policy.", (key,))
    if negated and effect == "Allow":
        raise MalformedPolicyError('NotPrincipal must be used with "Effect": "Deny".', (key,))
    try:
        return _principal_spec(raw[key]), negated
    except MalformedPolicyError as exc:
        raise exc.within(key) from None


def _principal_spec(value: object) -> PrincipalSpec:
    """``"*"`` or ``{"AWS": ..., "Federated": ...}``; every bad entry is named at its place."""
    if value == "*":
        return PrincipalSpec(everyone=True, entries=())
    if not isinstance(value, Mapping) or not value:
        raise MalformedPolicyError(f"Invalid principal in policy: {show(value)}")
    entries: list[tuple[PrincipalKind, str]] = []
    problems: list[PolicyProblem] = []
    for kind, names in value.items():
        if kind not in _PRINCIPAL_FORMS:
            problems.append(PolicyProblem((kind,), f"Invalid principal in policy: {show(kind)}"))
            continue
        items = [names] if isinstance(names, str) else names
        if not isinstance(items, list) or not items:
            reason = f'Invalid principal in policy: "{kind}":{show(names)}'
            problems.append(PolicyProblem((kind,), reason))
            continue
        for index, item in enumerate(items):
            if not isinstance(item, str) or not _PRINCIPAL_FORMS[kind].fullmatch(item):
                place = (kind, index) if isinstance(names, list) else (kind,)
                reason = f'Invalid principal in policy: "{kind}":"{show(item)}"'
                problems.append(PolicyProblem(place, reason))
                continue
            entries.append((kind, item))
    if problems:
        raise MalformedPolicyError.of(problems)
    return PrincipalSpec(everyone=False, entries=tuple(entries))
