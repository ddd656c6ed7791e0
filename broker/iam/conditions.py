"""The Condition element: operators, their literals, and how they meet a request context.

Semantics follow reference_policies_elements_condition_operators.html and
reference_policies_condition-single-vs-multi-valued-context-keys.html: operators AND, keys
AND, a key's policy values OR; negated operators are the complement of their positive
form (so ``StringNotEquals`` with a list means "equal to none of them"). Literals are
checked when the policy is parsed, so a typo refuses the policy instead of silently
never matching.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from broker.iam.errors import MalformedPolicyError, PolicyProblem, show
from broker.iam.matching import ContextView, Template, arn_match, glob_match, parse_template

SetOperator = Literal["ForAnyValue", "ForAllValues"]

_Compare = Callable[[str, Template, ContextView], "bool | None"]
"""(context value, policy value, context) -> match; None when the context value cannot be
read as the operator's type, which makes the whole key fail to match."""

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_EPOCH = re.compile(r"\d+(?:\.\d+)?")
_BOOLS = ("true", "false")
_KEY = re.compile(r"[^:\s][^:]*:.+")


def _number(text: str) -> Decimal | None:
    return Decimal(text) if _NUMBER.fullmatch(text) else None


def _date(text: str) -> float | None:
    """ISO 8601 or epoch seconds, as AWS accepts on either side; naive times are UTC."""
    if _EPOCH.fullmatch(text):
        return float(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _binary(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _ordered(
    parse: Callable[[str], Decimal | float | None], test: Callable[[int], bool]
) -> _Compare:
    """A comparison on a parsed type; ``test`` gets -1/0/1 for (context <=> policy)."""

    def compare(actual: str, expected: Template, _context: ContextView) -> bool | None:
        left = parse(actual)
        right = parse(expected.raw)
        if left is None or right is None:
            return None
        return test((left > right) - (left < right))

    return compare


def _string_equals(actual: str, expected: Template, context: ContextView) -> bool | None:
    text = expected.text(context)
    return text is not None and actual == text


def _string_equals_ic(actual: str, expected: Template, context: ContextView) -> bool | None:
    text = expected.text(context)
    return text is not None and actual.casefold() == text.casefold()


def _string_like(actual: str, expected: Template, context: ContextView) -> bool | None:
    return glob_match(expected, actual, context)


def _arn_like(actual: str, expected: Template, context: ContextView) -> bool | None:
    return arn_match(expected, actual, context)


def _bool(actual: str, expected: Template, _context: ContextView) -> bool | None:
    if actual.lower() not in _BOOLS:
        return None
    return actual.lower() == expected.raw.lower()


def _binary_equals(actual: str, expected: Template, _context: ContextView) -> bool | None:
    left = _binary(actual)
    return None if left is None else left == _binary(expected.raw)


def _ip(actual: str, expected: Template, _context: ContextView) -> bool | None:
    address = _address(actual)
    network = _network(expected.raw)
    if address is None or network is None:
        return None
    return address.version == network.version and address in network


def _valid_number(raw: str) -> bool:
    return _number(raw) is not None


def _valid_date(raw: str) -> bool:
    return _date(raw) is not None


def _valid_bool(raw: str) -> bool:
    return raw.lower() in _BOOLS


def _valid_binary(raw: str) -> bool:
    return _binary(raw) is not None


def _valid_network(raw: str) -> bool:
    return _network(raw) is not None


@dataclass(frozen=True)
class _Operator:
    compare: _Compare
    negated: bool
    variables: bool
    """String and ARN operators take policy variables; the others read literals only."""
    literal: Callable[[str], bool] | None
    """Parse-time check of a policy value, with the type named in the refusal."""
    type_name: str


def _family(
    names: Mapping[str, tuple[_Compare, bool]],
    *,
    variables: bool,
    literal: Callable[[str], bool] | None = None,
    type_name: str = "string",
) -> dict[str, _Operator]:
    return {
        name: _Operator(compare, negated, variables, literal, type_name)
        for name, (compare, negated) in names.items()
    }


def _ordered_family(
    prefix: str, parse: Callable[[str], Decimal | float | None]
) -> dict[str, tuple[_Compare, bool]]:
    return {
        f"{prefix}Equals": (_ordered(parse, lambda c: c == 0), False),
        f"{prefix}NotEquals": (_ordered(parse, lambda c: c == 0), True),
        f"{prefix}LessThan": (_ordered(parse, lambda c: c < 0), False),
        f"{prefix}LessThanEquals": (_ordered(parse, lambda c: c <= 0), False),
        f"{prefix}GreaterThan": (_ordered(parse, lambda c: c > 0), False),
        f"{prefix}GreaterThanEquals": (_ordered(parse, lambda c: c >= 0), False),
    }


_OPERATORS: dict[str, _Operator] = {
    **_family(
        {
            "StringEquals": (_string_equals, False),
            "StringNotEquals": (_string_equals, True),
            "StringEqualsIgnoreCase": (_string_equals_ic, False),
            "StringNotEqualsIgnoreCase": (_string_equals_ic, True),
            "StringLike": (_string_like, False),
            "StringNotLike": (_string_like, True),
            "ArnEquals": (_arn_like, False),
            "ArnLike": (_arn_like, False),
            "ArnNotEquals": (_arn_like, True),
            "ArnNotLike": (_arn_like, True),
        },
        variables=True,
    ),
    **_family(
        _ordered_family("Numeric", _number),
        variables=False,
        literal=_valid_number,
        type_name="number",
    ),
    **_family(
        _ordered_family("Date", _date), variables=False, literal=_valid_date, type_name="date"
    ),
    **_family({"Bool": (_bool, False)}, variables=False, literal=_valid_bool, type_name="boolean"),
    **_family(
        {"BinaryEquals": (_binary_equals, False)},
        variables=False,
        literal=_valid_binary,
        type_name="base64 binary",
    ),
    **_family(
        {"IpAddress": (_ip, False), "NotIpAddress": (_ip, True)},
        variables=False,
        literal=_valid_network,
        type_name="IP address or CIDR",
    ),
}

_NULL = "Null"
_IF_EXISTS = "IfExists"


@dataclass(frozen=True)
class Condition:
    """One key under one operator, e.g. ``"StringLike": {"saml:aud": ["a", "b"]}``."""

    operator: str
    """As written, e.g. ``ForAnyValue:StringLikeIfExists``."""
    key: str
    values: tuple[Template, ...]
    base: str
    set_operator: SetOperator | None
    if_exists: bool

    def matches(self, context: ContextView) -> bool:
        """Evaluate against a request context (missing-key rules per the AWS pages cited
        in the module docstring)."""
        actual = context.get(self.key)
        if self.base == _NULL:
            return any((actual is None) == (v.raw.lower() == "true") for v in self.values)
        op = _OPERATORS[self.base]
        if actual is None:
            if self.if_exists:
                return True
            if self.set_operator is not None:
                return self.set_operator == "ForAllValues"
            return op.negated
        outcomes = [self._one(op, value, context) for value in actual]
        if self.set_operator == "ForAnyValue":
            return any(o is True for o in outcomes)
        if self.set_operator == "ForAllValues" or op.negated:
            # A negated plain operator on a multivalued key holds only if no value hits:
            # the complement of the positive operator's any-match.
            return all(o is True for o in outcomes)
        return any(o is True for o in outcomes)

    def _one(self, op: _Operator, actual: str, context: ContextView) -> bool | None:
        """Does one context value satisfy the operator (negation applied)?"""
        for expected in self.values:
            hit = op.compare(actual, expected, context)
            if hit is None:
                return None
            if hit:
                return not op.negated
        return op.negated


def parse_conditions(block: object, *, variables: bool) -> tuple[Condition, ...]:
    """Parse a statement's Condition element, refusing anything AWS would refuse.

    Every bad operator and key is reported (with its place: operator, then key), not only
    the first.
    """
    if not isinstance(block, Mapping):
        raise MalformedPolicyError("Syntax errors in policy. Condition must be an object.")
    out: list[Condition] = []
    problems: list[PolicyProblem] = []
    for operator, keys in block.items():
        place = str(operator)
        try:
            base, set_operator, if_exists = _parse_operator(operator)
        except MalformedPolicyError as exc:
            problems.extend(exc.within(place).problems)
            continue
        if not isinstance(keys, Mapping) or not keys:
            reason = (
                f"Syntax errors in policy. Condition operator {show(operator)} must map "
                "condition keys to values."
            )
            problems.append(PolicyProblem((place,), reason))
            continue
        for key, raw_values in keys.items():
            try:
                texts = _condition_values(raw_values, _condition_key(key))
                out.append(
                    Condition(
                        operator=operator,
                        key=str(key),
                        values=_check_values(base, texts, str(key), variables=variables),
                        base=base,
                        set_operator=set_operator,
                        if_exists=if_exists,
                    )
                )
            except MalformedPolicyError as exc:
                problems.extend(exc.within(place, str(key)).problems)
    if problems:
        raise MalformedPolicyError.of(problems)
    return tuple(out)


def _condition_key(key: object) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise MalformedPolicyError(
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc. "
            f"Invalid condition key: {show(key)}."
        )
    return key


def _parse_operator(operator: object) -> tuple[str, SetOperator | None, bool]:
    if not isinstance(operator, str):
        raise MalformedPolicyError(f"Unknown condition operator: {show(operator)}")
    name = operator
    set_operator: SetOperator | None = None
    for prefix in ("ForAnyValue", "ForAllValues"):
        if name.startswith(prefix + ":"):
            set_operator = "ForAnyValue" if prefix == "ForAnyValue" else "ForAllValues"
            name = name[len(prefix) + 1 :]
    if_exists = name.endswith(_IF_EXISTS) and name != _IF_EXISTS
    base = name.removesuffix(_IF_EXISTS) if if_exists else name
    if base == _NULL and (if_exists or set_operator):
        raise MalformedPolicyError(
            f"Unknown condition operator: {show(operator)} (Null takes no IfExists or set operator)"
        )
    if base != _NULL and base not in _OPERATORS:
        raise MalformedPolicyError(f"Unknown condition operator: {show(operator)}")
    return base, set_operator, if_exists


def _condition_values(raw: object, key: str) -> tuple[str, ...]:
    """Scalars become strings as AWS reads them (JSON true -> "true", 5 -> "5")."""
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise MalformedPolicyError(f"Syntax errors in policy. Empty value list for {show(key)}.")
    out: list[str] = []
    for item in items:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, str):
            out.append(item)
        elif isinstance(item, int | float):
            out.append(str(item))
        else:
            raise MalformedPolicyError(
                f"Syntax errors in policy. Condition value for {show(key)} must be a string, "
                "number or boolean."
            )
    return tuple(out)


def _check_values(
    base: str, texts: tuple[str, ...], key: str, *, variables: bool
) -> tuple[Template, ...]:
    if base == _NULL:
        for text in texts:
            if text.lower() not in _BOOLS:
                raise MalformedPolicyError(
                    f"Invalid value for Null condition on {show(key)}: {show(text)} "
                    "(expected true or false)."
                )
        return tuple(parse_template(text, variables=False) for text in texts)
    op = _OPERATORS[base]
    templates = tuple(parse_template(t, variables=variables and op.variables) for t in texts)
    if op.literal is not None:
        for text in texts:
            if not op.literal(text):
                raise MalformedPolicyError(
                    f"Invalid {op.type_name} value for {base} on {show(key)}: {show(text)}."
                )
    return templates
