"""The policy model and its parser: IAM JSON grammar, checked the way IAM checks it.

Every refusal is a :class:`MalformedPolicyError` with AWS-like text, raised when the
policy is parsed (config load, or a caller's session policy), so evaluation never meets
a document it does not fully understand. Unknown keys refuse rather than being ignored:
a misspelt ``"Conditon"`` silently dropped would turn a restricted grant into a broad one.
Size limits differ per policy kind and belong to the caller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from broker.iam.conditions import Condition, parse_conditions
from broker.iam.errors import MalformedPolicyError, show
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
    """Parse and validate a policy of ``kind``; raise :class:`MalformedPolicyError`."""
    if kind not in get_args(PolicyKind):
        raise ValueError(f"unknown policy kind {kind!r}")
    data = _load(document) if isinstance(document, str) else document
    if not isinstance(data, Mapping):
        raise MalformedPolicyError("Syntax errors in policy. The document must be a JSON object.")
    _refuse_unknown(data, _TOP_KEYS)
    version = data.get("Version")
    if version is not None and version not in (VERSION_2012, VERSION_2008):
        raise MalformedPolicyError(
            f"Syntax errors in policy. Unsupported Version: {show(version)} "
            f"(use {VERSION_2012} or {VERSION_2008})."
        )
    if "Id" in data and not isinstance(data["Id"], str):
        raise MalformedPolicyError("Syntax errors in policy. Id must be a string.")
    if "Statement" not in data:
        raise MalformedPolicyError("Missing required field Statement.")
    raw_statements = data["Statement"]
    if isinstance(raw_statements, Mapping):
        raw_statements = [raw_statements]
    if not isinstance(raw_statements, list) or not raw_statements:
        raise MalformedPolicyError(
            "Syntax errors in policy. Statement must be an object or a non-empty list of objects."
        )
    variables = version == VERSION_2012
    statements = tuple(_statement(raw, kind, variables=variables) for raw in raw_statements)
    sids = [s.sid for s in statements if s.sid]
    if len(sids) != len(set(sids)):
        raise MalformedPolicyError("Statement IDs (SID) in a single policy must be unique.")
    return Policy(name=name, version=version, statements=statements)


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


def _refuse_unknown(data: Mapping[Any, Any], allowed: frozenset[str]) -> None:
    for key in data:
        if key not in allowed:
            raise MalformedPolicyError(f"Syntax errors in policy. Unknown field {show(key)}.")


def _statement(raw: object, kind: PolicyKind, *, variables: bool) -> Statement:
    if not isinstance(raw, Mapping):
        raise MalformedPolicyError("Syntax errors in policy. Each Statement must be an object.")
    _refuse_unknown(raw, _STATEMENT_KEYS)
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise MalformedPolicyError("Syntax errors in policy. Sid must be a string.")
    if sid is not None and kind != "resource" and not _SID.fullmatch(sid):
        raise MalformedPolicyError("Statement IDs (SID) must be alpha-numeric.")
    effect = raw.get("Effect")
    if effect is None:
        raise MalformedPolicyError("Missing required field Effect.")
    if effect not in ("Allow", "Deny"):
        raise MalformedPolicyError(f"Invalid effect: {show(effect)}.")
    actions, not_action = _one_of(raw, "Action", "NotAction", missing="actions")
    for action in actions:
        if action != "*" and not _ACTION.fullmatch(action):
            raise MalformedPolicyError(
                "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc. "
                f"Invalid action: {show(action)}."
            )
    principal, not_principal = _principal(raw, kind, effect)
    has_resource = "Resource" in raw or "NotResource" in raw
    if kind in ("identity", "session") and not has_resource:
        raise MalformedPolicyError("Policy statement must contain resources.")
    resources: tuple[Template, ...] | None = None
    not_resource = False
    if has_resource:
        texts, not_resource = _one_of(raw, "Resource", "NotResource", missing="resources")
        resources = tuple(_resource(text, variables=variables) for text in texts)
    conditions = (
        parse_conditions(raw["Condition"], variables=variables) if "Condition" in raw else ()
    )
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
            f"Syntax errors in policy. {field} must be a string or a list of strings."
        )
    if not items:
        raise MalformedPolicyError(f"Policy statement must contain {missing}.")
    return tuple(items)


def _resource(text: str, *, variables: bool) -> Template:
    if text != "*" and (not text.startswith("arn:") or text.count(":") < 5):
        raise MalformedPolicyError(f'Resource {show(text)} must be in ARN format or "*".')
    return parse_template(text, variables=variables)


def _principal(
    raw: Mapping[str, Any], kind: PolicyKind, effect: str
) -> tuple[PrincipalSpec | None, bool]:
    present = [key for key in ("Principal", "NotPrincipal") if key in raw]
    if kind in ("identity", "session"):
        if present:
            raise MalformedPolicyError("Policy document should not specify a principal.")
        return None, False
    if not present:
        raise MalformedPolicyError("Missing required field Principal.")
    if len(present) == 2:
        raise MalformedPolicyError("Statement cannot have both Principal and NotPrincipal.")
    negated = present[0] == "NotPrincipal"
    if negated and kind == "trust":
        raise MalformedPolicyError("NotPrincipal is not supported in a role trust policy.")
    if negated and effect != "Deny":
        raise MalformedPolicyError('NotPrincipal must be used with "Effect": "Deny".')
    return _principal_spec(raw[present[0]]), negated


def _principal_spec(value: object) -> PrincipalSpec:
    if value == "*":
        return PrincipalSpec(everyone=True, entries=())
    if not isinstance(value, Mapping) or not value:
        raise MalformedPolicyError(f"Invalid principal in policy: {show(value)}")
    entries: list[tuple[PrincipalKind, str]] = []
    for kind, names in value.items():
        if kind not in _PRINCIPAL_FORMS:
            raise MalformedPolicyError(f"Invalid principal in policy: {show(kind)}")
        items = [names] if isinstance(names, str) else names
        if not isinstance(items, list) or not items:
            raise MalformedPolicyError(f'Invalid principal in policy: "{kind}":{show(names)}')
        for item in items:
            if not isinstance(item, str) or not _PRINCIPAL_FORMS[kind].fullmatch(item):
                raise MalformedPolicyError(f'Invalid principal in policy: "{kind}":"{show(item)}"')
            entries.append((kind, item))
    return PrincipalSpec(everyone=False, entries=tuple(entries))
