"""botocore's STS service model compiled once into small frozen shapes.

Every AWS SDK builds its requests from this same model and parses our answers with it, so
the broker drives both directions from it (:mod:`broker.sts.model` decodes and validates
input, :mod:`broker.sts.render` writes answers) instead of hand-written per-action code.
This module turns the raw JSON into linked :class:`Shape` objects, and the model's Java
regular expressions into Python ones (:mod:`broker.java_regex`), so the hot path only walks
frozen values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from broker.java_regex import translate_java_regex

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
