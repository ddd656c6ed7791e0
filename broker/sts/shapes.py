"""botocore's STS service model compiled once into small frozen shapes.

Every AWS SDK builds its requests from this same model and parses our answers with it, so
the broker drives both directions from it (:mod:`broker.sts.model` decodes and validates
input, :mod:`broker.sts.render` writes answers) instead of hand-written per-action code.
This module turns the raw JSON into linked :class:`Shape` objects, and the model's Java
regular expressions into Python ones, so the hot path only walks frozen values.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

API_VERSION: Final = "2011-06-15"
XML_NAMESPACE: Final = "https://sts.amazonaws.com/doc/2011-06-15/"
_SUPPORTED_TYPES: Final = frozenset(
    {"structure", "list", "map", "string", "integer", "long", "boolean", "timestamp"}
)
INT_RANGES: Final = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_ALSO_SENSITIVE: Final = frozenset({"tokenCodeType", "contextAssertionType"})
"""Credential-like shapes the model leaves unmarked (an MFA code, a signed context
assertion): never echoed in messages either, since messages end up in logs."""


@dataclass(frozen=True)
class Member:
    name: str
    """The model's member name: the key in parsed input and in results."""
    wire: str
    """The Query parameter segment / XML element name (``locationName`` or ``name``)."""
    path: str
    """Coral's spelling in messages: the name with its first letter lowercased."""
    shape: Shape
    sensitive: bool


@dataclass(frozen=True)
class Shape:
    name: str
    type: str
    members: tuple[Member, ...] = ()
    required: frozenset[str] = frozenset()
    item: Shape | None = None
    """List member shape, or map value shape."""
    item_wire: str = "member"
    key: Shape | None = None
    key_wire: str = "key"
    min: int | None = None
    max: int | None = None
    pattern: str | None = None
    regex: re.Pattern[str] | None = field(default=None, compare=False)
    enum: tuple[str, ...] = ()
    sensitive: bool = False
    member_names: frozenset[str] = field(init=False, repr=False, compare=False)
    """Names of ``members``, for rendering's unknown-member check on every response."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "member_names", frozenset(m.name for m in self.members))


@dataclass(frozen=True)
class Operation:
    name: str
    input: Shape | None
    output: Shape | None
    result_wrapper: str


# --------------------------------------------------------------------------- regexes


@functools.cache
def _category_ranges(category: str) -> str:
    """Python class body for a Java ``\\p{X}`` general category (``re`` has none)."""
    if not re.fullmatch(r"[LMNPSZC][a-z]?", category):
        raise ValueError(f"unsupported Unicode property \\p{{{category}}} in model pattern")
    parts: list[str] = []
    start = -1
    for cp in range(0x110001):
        inside = cp <= 0x10FFFF and unicodedata.category(chr(cp)).startswith(category)
        if inside and start < 0:
            start = cp
        elif not inside and start >= 0:
            end = cp - 1
            parts.append(f"\\U{start:08X}" if start == end else f"\\U{start:08X}-\\U{end:08X}")
            start = -1
    return "".join(parts)


def _hex_run(src: str, start: int, limit: int) -> str:
    end = start
    while end < len(src) and end - start < limit and src[end] in "0123456789abcdefABCDEF":
        end += 1
    return src[start:end]


def translate_java_regex(pattern: str) -> str:
    """Rewrite a model pattern (Java syntax) into an equivalent Python ``re`` pattern.

    Handles what the AWS models use: ``\\p{L}``-style categories (expanded to explicit
    ranges), ``\\uHHHH`` escapes (and the models' ``\\u10000``-``\\u10FFFF`` spelling of
    supplementary code points), ``\\xHH``, the ASCII shorthands and escaped punctuation.
    Anything else (class intersections, nested classes, unknown escapes) raises, so a
    pattern is never silently weakened. Compile the result with ``re.ASCII``: Java's
    ``\\w``/``\\d``/``\\s`` are ASCII-only by default.
    """
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise ValueError(f"dangling backslash in {pattern!r}")
            e = pattern[i + 1]
            if e in "pP":
                if pattern.startswith("{", i + 2):
                    close = pattern.find("}", i + 3)
                    if close < 0:
                        raise ValueError(f"unterminated \\p{{ in {pattern!r}")
                    name, i = pattern[i + 3 : close], close + 1
                else:
                    name, i = pattern[i + 2 : i + 3], i + 3
                body = _category_ranges(name)
                if e == "P":
                    if in_class:
                        raise ValueError(f"negated property inside a class in {pattern!r}")
                    out.append(f"[^{body}]")
                else:
                    out.append(body if in_class else f"[{body}]")
                continue
            if e == "u":
                digits = _hex_run(pattern, i + 2, 6)
                if len(digits) < 4:
                    raise ValueError(f"bad \\u escape in {pattern!r}")
                if len(digits) >= 5 and 0x10000 <= int(digits, 16) <= 0x10FFFF:
                    used = len(digits)
                else:
                    used = 4
                out.append(f"\\U{int(digits[:used], 16):08X}")
                i += 2 + used
                continue
            if e == "x":
                digits = _hex_run(pattern, i + 2, 2)
                if len(digits) != 2:
                    raise ValueError(f"bad \\x escape in {pattern!r}")
                out.append(f"\\x{digits}")
                i += 4
                continue
            if e.isalnum() and e not in "wWdDsStnrf" and not (e in "bB" and not in_class):
                raise ValueError(f"unsupported escape \\{e} in {pattern!r}")
            out.append("\\" + e)
            i += 2
            continue
        if in_class:
            if c == "[" or pattern.startswith("&&", i):
                raise ValueError(f"nested class or intersection in {pattern!r}")
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern.startswith("^", i + 1):
                out.append("[^")
                i += 2
                continue
        out.append(c)
        i += 1
    if in_class:
        raise ValueError(f"unterminated class in {pattern!r}")
    return "".join(out)


# --------------------------------------------------------------------------- compiling


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


class ShapeCompiler:
    """Turns the model's shape dictionary into linked frozen ``Shape`` objects."""

    def __init__(self, shapes: Mapping[str, Any]) -> None:
        self._raw = shapes
        self._done: dict[str, Shape] = {}
        self._active: set[str] = set()

    def shape(self, name: str) -> Shape:
        if name in self._done:
            return self._done[name]
        if name in self._active:
            raise ValueError(f"recursive shape {name} is not supported")
        self._active.add(name)
        raw = self._raw[name]
        kind = raw["type"]
        if kind not in _SUPPORTED_TYPES:
            raise ValueError(f"shape {name} has unsupported type {kind}")
        if raw.get("flattened"):
            raise ValueError(f"flattened shape {name} is not supported")
        pattern = raw.get("pattern")
        compiled = Shape(
            name=name,
            type=kind,
            members=tuple(self._members(raw)) if kind == "structure" else (),
            required=frozenset(raw.get("required", ())),
            item=self._ref(raw["member" if kind == "list" else "value"])
            if kind in ("list", "map")
            else None,
            item_wire=self._wire(raw, "member" if kind == "list" else "value"),
            key=self._ref(raw["key"]) if kind == "map" else None,
            key_wire=self._wire(raw, "key") if kind == "map" else "key",
            min=raw.get("min"),
            max=raw.get("max"),
            pattern=pattern,
            regex=re.compile(translate_java_regex(pattern), re.ASCII) if pattern else None,
            enum=tuple(raw.get("enum", ())),
            sensitive=bool(raw.get("sensitive")),
        )
        self._active.discard(name)
        self._done[name] = compiled
        return compiled

    def _ref(self, ref: Mapping[str, Any]) -> Shape:
        return self.shape(ref["shape"])

    @staticmethod
    def _wire(raw: Mapping[str, Any], part: str) -> str:
        ref = raw.get(part)
        default = "member" if part == "member" else part
        return str(ref.get("locationName", default)) if isinstance(ref, Mapping) else default

    def _members(self, raw: Mapping[str, Any]) -> Iterator[Member]:
        for member_name, ref in raw["members"].items():
            target = self._ref(ref)
            yield Member(
                name=member_name,
                wire=ref.get("locationName", member_name),
                path=_lower_first(member_name),
                shape=target,
                sensitive=target.sensitive
                or bool(ref.get("sensitive"))
                or target.name in _ALSO_SENSITIVE,
            )
