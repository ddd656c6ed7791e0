"""botocore's STS model, compiled once: Query input decoding, validation and XML rendering.

Every AWS SDK builds its requests from this same model and parses our answers with it, so
driving both directions from the model (rather than hand-written per-action code) keeps the
broker byte-compatible with whatever botocore sends and expects. The raw JSON is compiled
into small frozen shape objects once; the hot path then only walks those.

Validation answers in AWS's Coral wording (``1 validation error detected: Value 'x' at
'roleSessionName' failed to satisfy constraint: ...``) because scripts and SDK users match
on it. Values of ``sensitive`` members are never echoed (AWS writes ``Value at 'x'``).
"""

from __future__ import annotations

import functools
import gzip
import json
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import botocore

from broker.clock import iso8601
from broker.errors import StsError, validation_error
from broker.sts.render_codegen import compile_members

API_VERSION: Final = "2011-06-15"
XML_NAMESPACE: Final = "https://sts.amazonaws.com/doc/2011-06-15/"
_MODEL_PATH: Final = (
    Path(botocore.__file__).parent / "data" / "sts" / API_VERSION / "service-2.json.gz"
)

_SUPPORTED_TYPES: Final = frozenset(
    {"structure", "list", "map", "string", "integer", "long", "boolean", "timestamp"}
)
_INT_RANGES: Final = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_INT_RE: Final = re.compile(r"[+-]?[0-9]{1,19}")
_INDEX_RE: Final = re.compile(r"[1-9][0-9]{0,8}")
_MAX_ECHO: Final = 256
"""Characters of a rejected value quoted back in a message; longer ones are cut."""
_MAX_LISTED: Final = 25
"""Violations spelled out in one message; the count still covers all of them."""
_ALSO_SENSITIVE: Final = frozenset({"tokenCodeType", "contextAssertionType"})
"""Credential-like shapes the model leaves unmarked (an MFA code, a signed context
assertion): never echoed in messages either, since messages end up in logs."""
_XML_SPECIAL: Final = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_special: Final = _XML_SPECIAL.search
"""Bound once: every string in every answer is tested (no attribute lookup per call)."""
_XML_REPLACEMENTS: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}


class _Invalid:
    """Marker for a member whose raw value could not be decoded (already reported)."""


_INVALID: Final = _Invalid()


@dataclass(frozen=True)
class _Member:
    name: str
    """The model's member name: the key in parsed input and in results."""
    wire: str
    """The Query parameter segment / XML element name (``locationName`` or ``name``)."""
    path: str
    """Coral's spelling in messages: the name with its first letter lowercased."""
    shape: _Shape
    sensitive: bool


@dataclass(frozen=True)
class _Shape:
    name: str
    type: str
    members: tuple[_Member, ...] = ()
    required: frozenset[str] = frozenset()
    item: _Shape | None = None
    """List member shape, or map value shape."""
    item_wire: str = "member"
    key: _Shape | None = None
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
class _Operation:
    name: str
    input: _Shape | None
    output: _Shape | None
    result_wrapper: str


class _Node:
    """One dotted segment of Query parameter names (``Tags`` -> ``member`` -> ``1`` -> ``Key``).

    Building the tree once makes decoding linear in the number of parameters, whatever
    the shape depth, instead of rescanning every name for every member.
    """

    __slots__ = ("children", "value")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.value: str | None = None


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


class _Compiler:
    """Turns the model's shape dictionary into linked frozen ``_Shape`` objects."""

    def __init__(self, shapes: Mapping[str, Any]) -> None:
        self._raw = shapes
        self._done: dict[str, _Shape] = {}
        self._active: set[str] = set()

    def shape(self, name: str) -> _Shape:
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
        compiled = _Shape(
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

    def _ref(self, ref: Mapping[str, Any]) -> _Shape:
        return self.shape(ref["shape"])

    @staticmethod
    def _wire(raw: Mapping[str, Any], part: str) -> str:
        ref = raw.get(part)
        default = "member" if part == "member" else part
        return str(ref.get("locationName", default)) if isinstance(ref, Mapping) else default

    def _members(self, raw: Mapping[str, Any]) -> Iterator[_Member]:
        for member_name, ref in raw["members"].items():
            target = self._ref(ref)
            yield _Member(
                name=member_name,
                wire=ref.get("locationName", member_name),
                path=_lower_first(member_name),
                shape=target,
                sensitive=target.sensitive
                or bool(ref.get("sensitive"))
                or target.name in _ALSO_SENSITIVE,
            )


# --------------------------------------------------------------------------- messages


def _echo_text(value: object, shape: _Shape) -> str:
    """Java-``toString``-like rendering of a decoded value, masking sensitive parts."""
    if isinstance(value, list):
        item = shape.item
        return "[" + ", ".join(_echo_text(v, item) if item else str(v) for v in value) + "]"
    if isinstance(value, dict):
        if shape.type == "map":
            return (
                "{"
                + ", ".join(f"{k}={_echo_text(v, shape.item or shape)}" for k, v in value.items())
                + "}"
            )
        shown = []
        for m in shape.members:
            if m.name in value:
                text = "***" if m.sensitive else _echo_text(value[m.name], m.shape)
                shown.append(f"{m.name}={text}")
        return "{" + ", ".join(shown) + "}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _violation(value: object, path: str, shape: _Shape, sensitive: bool, rule: str) -> str:
    if sensitive:
        subject = "Value"
    elif value is None:
        subject = "Value null"
    else:
        text = _echo_text(value, shape)
        if len(text) > _MAX_ECHO:
            text = text[:_MAX_ECHO] + "..."
        subject = f"Value '{text}'"
    return f"{subject} at '{path}' failed to satisfy constraint: {rule}"


def _coral_error(violations: Sequence[str]) -> StsError:
    count = len(violations)
    listed = "; ".join(violations[:_MAX_LISTED])
    more = "; ..." if count > _MAX_LISTED else ""
    noun = "error" if count == 1 else "errors"
    return validation_error(f"{count} validation {noun} detected: {listed}{more}")


def _shorten(text: str, limit: int = 128) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# --------------------------------------------------------------------------- decoding


class _Decoder:
    """Decodes one request's parameter tree against an input shape, collecting violations."""

    def __init__(self) -> None:
        self.violations: list[str] = []

    def structure(self, shape: _Shape, node: _Node | None, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        children = node.children if node is not None else {}
        for m in shape.members:
            path = f"{prefix}.{m.path}" if prefix else m.path
            child = children.get(m.wire)
            # Most members of an input are absent: no call to find that out.
            value = None if child is None else self.value(m.shape, child, path, m.sensitive)
            if value is None:
                if m.name in shape.required:
                    self.violations.append(
                        _violation(None, path, m.shape, m.sensitive, "Member must not be null")
                    )
            elif value is not _INVALID:
                out[m.name] = value
        return out

    def value(self, shape: _Shape, node: _Node | None, path: str, sensitive: bool) -> Any:
        """The decoded value; ``None`` if absent, ``_INVALID`` if undecodable (reported)."""
        if node is None:
            return None
        kind = shape.type
        if kind == "structure":
            return self.structure(shape, node, path) if node.children else None
        if kind == "list":
            decoded: Any = self.list(shape, node, path, sensitive)
        elif kind == "map":
            decoded = self.map(shape, node, path, sensitive)
        elif node.value is None:
            return None
        else:
            decoded = self.scalar(shape, node.value, path, sensitive)
        if decoded is not None and decoded is not _INVALID:
            self.check(shape, decoded, path, sensitive)
        return decoded

    def list(self, shape: _Shape, node: _Node, path: str, sensitive: bool) -> Any:
        items = node.children.get(shape.item_wire)
        if items is None or not items.children:
            if node.value is None:
                return None
            if node.value == "":
                return []  # botocore sends ``Name=`` for an empty list
            self.violations.append(
                _violation(node.value, path, shape, sensitive, "Member must be a list")
            )
            return _INVALID
        assert shape.item is not None
        wire = shape.item_wire
        out = []
        for index, child in _indexed(items, path, wire):
            value = self.value(shape.item, child, f"{path}.{index}.{wire}", sensitive)
            if value is None:
                self.violations.append(
                    _violation(
                        None,
                        f"{path}.{index}.{wire}",
                        shape.item,
                        sensitive,
                        "Member must not be null",
                    )
                )
            out.append(value)
        return _INVALID if any(v is _INVALID or v is None for v in out) else out

    def map(self, shape: _Shape, node: _Node, path: str, sensitive: bool) -> Any:
        entries = node.children.get("entry")
        if entries is None or not entries.children:
            return {} if node.value == "" else None
        assert shape.key is not None and shape.item is not None
        out: dict[str, Any] = {}
        failed = False
        for _, entry in _indexed(entries, path, "entry"):
            key_node = entry.children.get(shape.key_wire)
            if key_node is None or key_node.value is None:
                raise validation_error(f"A map entry of parameter '{path}' has no {shape.key_wire}")
            key = self.value(shape.key, key_node, f"{path}.{shape.key_wire}", False)
            if key is _INVALID:
                failed = True
                continue
            if key in out:
                raise validation_error(f"Map parameter '{path}' repeats a key")
            item_path = f"{path}.{key}"
            value = self.value(
                shape.item, entry.children.get(shape.item_wire), item_path, sensitive
            )
            if value is None:
                self.violations.append(
                    _violation(None, item_path, shape.item, sensitive, "Member must not be null")
                )
            failed = failed or value is None or value is _INVALID
            out[key] = value
        return _INVALID if failed else out

    def scalar(self, shape: _Shape, raw: str, path: str, sensitive: bool) -> Any:
        kind = shape.type
        if kind == "string":
            return raw
        if kind in _INT_RANGES:
            low, high = _INT_RANGES[kind]
            if _INT_RE.fullmatch(raw) and low <= int(raw) <= high:
                return int(raw)
            rule = "Member must be an integer"
        elif kind == "boolean":
            if raw in ("true", "false"):
                return raw == "true"
            rule = "Member must be a boolean"
        else:  # timestamp: botocore's Query serializer sends ISO 8601
            try:
                when = datetime.fromisoformat(raw)
            except ValueError:
                rule = "Member must be an ISO 8601 timestamp"
            else:
                return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
        self.violations.append(_violation(raw, path, shape, sensitive, rule))
        return _INVALID

    def check(self, shape: _Shape, value: Any, path: str, sensitive: bool) -> None:
        """Apply the model's min/max/pattern/enum traits to a decoded value."""
        kind = shape.type
        if kind == "string":
            # Most strings pass: test every trait before building any list of broken rules.
            length = len(value)
            if (
                (shape.min is None or length >= shape.min)
                and (shape.max is None or length <= shape.max)
                and (shape.regex is None or shape.regex.fullmatch(value))
                and (not shape.enum or value in shape.enum)
            ):
                return
        rules: list[str] = []
        if kind in _INT_RANGES:
            if shape.min is not None and value < shape.min:
                rules.append(f"Member must have value greater than or equal to {shape.min}")
            if shape.max is not None and value > shape.max:
                rules.append(f"Member must have value less than or equal to {shape.max}")
        elif kind in ("string", "list", "map"):
            # Length in Unicode code points, as Smithy's length trait defines it.
            if shape.min is not None and len(value) < shape.min:
                rules.append(f"Member must have length greater than or equal to {shape.min}")
            if shape.max is not None and len(value) > shape.max:
                rules.append(f"Member must have length less than or equal to {shape.max}")
            if shape.regex is not None and not shape.regex.fullmatch(value):
                rules.append(f"Member must satisfy regular expression pattern: {shape.pattern}")
            if shape.enum and value not in shape.enum:
                rules.append(f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
        self.violations.extend(_violation(value, path, shape, sensitive, rule) for rule in rules)


def _indexed(node: _Node, path: str, wire: str) -> Iterator[tuple[int, _Node]]:
    """The children ``1..N`` of a list/map node, refusing gaps and non-canonical indices."""
    indices: dict[int, _Node] = {}
    for segment, child in node.children.items():
        if not _INDEX_RE.fullmatch(segment):
            raise validation_error(
                f"Parameter '{path}.{wire}' has an invalid index '{_shorten(segment, 32)}'"
            )
        indices[int(segment)] = child
    if max(indices) != len(indices):
        raise validation_error(f"Parameter '{path}.{wire}' indices must run 1..N without gaps")
    for index in range(1, len(indices) + 1):
        yield index, indices[index]


def _tree(params: Mapping[str, str]) -> _Node:
    root = _Node()
    for name, value in params.items():
        node = root
        for segment in name.split("."):
            node = node.children.setdefault(segment, _Node())
        node.value = value
    return root


# --------------------------------------------------------------------------- rendering


def xml_escape(text: str) -> str:
    """Escape text content; characters XML 1.0 cannot carry at all become U+FFFD.

    ``\\r`` is written as a character reference because parsers normalise a literal one
    away. Control characters and lone surrogates have no XML 1.0 spelling; emitting them
    would make botocore's parser reject the whole response, so they are replaced.
    """
    if _special(text) is None:
        return text
    return _XML_SPECIAL.sub(lambda m: _XML_REPLACEMENTS.get(m.group(), "\ufffd"), text)


_Emit = Callable[[Any, str, list[str]], None]
"""Appends one member's XML to ``out``. The ``str`` is the path prefix the emitter adds its
own suffix to, used only in the ``TypeError`` a wrongly typed result raises."""


def _leaf_text(kind: str) -> Callable[[object], str | None]:
    """The text of a leaf value of model type ``kind``; None when the value has the wrong type."""
    if kind == "string":
        return lambda value: xml_escape(value) if isinstance(value, str) else None
    if kind in _INT_RANGES:
        return lambda value: (
            str(value) if isinstance(value, int) and not isinstance(value, bool) else None
        )
    if kind == "boolean":
        return lambda value: ("true" if value else "false") if isinstance(value, bool) else None
    return lambda value: (  # timestamp
        iso8601(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    )


def _emitter(shape: _Shape, wire: str, indent: str, suffix: str) -> _Emit:
    """Compile the renderer of one element ``<wire>`` of ``shape`` at ``indent``.

    The tags, indentation and type dispatch are worked out here once per operation; the
    per-answer work is the values themselves. Paths for error messages are built only when
    a type is wrong. Answers themselves are written by :mod:`broker.sts.render_codegen`'s
    flat functions, which hand list and map members to these emitters and are tested
    against them.
    """
    kind = shape.type
    if kind not in ("structure", "list", "map"):
        text_of = _leaf_text(kind)
        head, tail = f"{indent}<{wire}>", f"</{wire}>\n"

        def leaf(value: Any, prefix: str, out: list[str]) -> None:
            text = text_of(value)
            if text is None:
                raise TypeError(
                    f"result member {prefix}{suffix} must be a {kind}, got {type(value).__name__}"
                )
            out.append(head + text + tail)

        def string(value: Any, prefix: str, out: list[str]) -> None:
            # Most leaves are plain strings: no extra call to find their text, no escaping
            # pass when nothing needs escaping (a str subclass takes the general path).
            if type(value) is str and _special(value) is None:
                out.append(head + value + tail)
            else:
                leaf(value, prefix, out)

        return string if kind == "string" else leaf

    deeper = indent + "  "
    opening, closing, empty = f"{indent}<{wire}>\n", f"{indent}</{wire}>\n", f"{indent}<{wire}/>\n"
    if kind == "structure":
        members = _members_emitter(shape, deeper)

        def body(value: Any, path: str, out: list[str]) -> None:
            # A dict is a Mapping: skip the ABC check for the type every result uses.
            if type(value) is not dict and not isinstance(value, Mapping):
                raise TypeError(f"result member {path} must be a mapping")
            members(value, path, out)

    elif kind == "list":
        assert shape.item is not None
        item = _emitter(shape.item, shape.item_wire, deeper, "")

        def body(value: Any, path: str, out: list[str]) -> None:
            if isinstance(value, str | bytes) or not isinstance(value, Sequence):
                raise TypeError(f"result member {path} must be a sequence")
            for i, element in enumerate(value, 1):
                item(element, f"{path}.{i}", out)

    else:
        assert shape.key is not None and shape.item is not None
        entry_open, entry_close = f"{deeper}<entry>\n", f"{deeper}</entry>\n"
        key_of = _emitter(shape.key, shape.key_wire, deeper + "  ", ".key")
        value_of = _emitter(shape.item, shape.item_wire, deeper + "  ", "")

        def body(value: Any, path: str, out: list[str]) -> None:
            if not isinstance(value, Mapping):
                raise TypeError(f"result member {path} must be a mapping")
            for key, element in value.items():
                out.append(entry_open)
                key_of(key, path, out)
                value_of(element, f"{path}.{key}", out)
                out.append(entry_close)

    def container(value: Any, prefix: str, out: list[str]) -> None:
        out.append(opening)
        mark = len(out)
        body(value, prefix + suffix, out)
        if len(out) == mark:
            out[mark - 1] = empty
        else:
            out.append(closing)

    return container


def _members_emitter(
    shape: _Shape, indent: str
) -> Callable[[Mapping[str, Any], str, list[str]], None]:
    """The members of a structure in model order; ``None`` members are left out."""
    names = shape.member_names
    members = tuple(
        (m.name, _emitter(m.shape, m.wire, indent, f".{m.name}")) for m in shape.members
    )

    def emit(value: Mapping[str, Any], path: str, out: list[str]) -> None:
        if not names.issuperset(value):
            unknown = [k for k in value if k not in names]
            raise ValueError(f"result for {path} has members not in the model: {sorted(unknown)}")
        for name, member in members:
            member_value = value.get(name)
            if member_value is not None:
                member(member_value, path, out)

    return emit


def render_error(error: StsError, request_id: str) -> bytes:
    """AWS's Query ``ErrorResponse`` document for ``error`` (``Receiver`` for server faults)."""
    kind = "Sender" if error.sender else "Receiver"
    return (
        f'<ErrorResponse xmlns="{XML_NAMESPACE}">\n'
        "  <Error>\n"
        f"    <Type>{kind}</Type>\n"
        f"    <Code>{xml_escape(error.code)}</Code>\n"
        f"    <Message>{xml_escape(error.message)}</Message>\n"
        "  </Error>\n"
        f"  <RequestId>{xml_escape(request_id)}</RequestId>\n"
        "</ErrorResponse>\n"
    ).encode()


# --------------------------------------------------------------------------- public


class StsModel:
    """The compiled STS service model: which actions exist, their inputs and outputs."""

    def __init__(self, service: Mapping[str, Any]) -> None:
        """Compile a service description (the parsed ``service-2.json``).

        Refuses a model whose protocol, version or namespace differ from what the broker
        speaks, or that uses a construct it cannot decode faithfully: a half-understood
        model would validate less than AWS does.
        """
        meta = service["metadata"]
        if meta.get("protocol") != "query" or meta.get("apiVersion") != API_VERSION:
            raise ValueError("the STS model is not the 2011-06-15 Query protocol")
        if meta.get("xmlNamespace") != XML_NAMESPACE:
            raise ValueError("the STS model's XML namespace changed")
        compiler = _Compiler(service["shapes"])
        ops: dict[str, _Operation] = {}
        for name, op in service["operations"].items():
            output = op.get("output")
            ops[name] = _Operation(
                name=name,
                input=compiler.shape(op["input"]["shape"]) if "input" in op else None,
                output=compiler.shape(output["shape"]) if output else None,
                result_wrapper=(output or {}).get("resultWrapper", f"{name}Result"),
            )
        self._ops: Final = ops
        self._actions: Final = frozenset(ops)
        self._renderers: Final = {
            name: compile_members(
                op.output,
                "    ",
                name,
                special=_special,
                leaf_text=_leaf_text,
                emitter=_emitter,
            )
            for name, op in ops.items()
            if op.output
        }

    @classmethod
    @functools.cache
    def load(cls) -> StsModel:
        """The model botocore ships, read and compiled once per process."""
        with gzip.open(_MODEL_PATH, "rt", encoding="utf-8") as fh:
            return cls(json.load(fh))

    def actions(self) -> frozenset[str]:
        """Every operation name in the model."""
        return self._actions

    def _operation(self, action: str) -> _Operation:
        if not action:
            raise StsError("MissingAction", "Missing Action", 400)
        op = self._ops.get(action)
        if op is None:
            raise StsError(
                "InvalidAction",
                f"Could not find operation {_shorten(action)} for version {API_VERSION}",
                400,
            )
        return op

    def parse_input(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        """Decode and validate Query parameters into ``{member name: value}``.

        Raises ``MissingAction`` for an empty action, ``InvalidAction`` for an unknown one
        and one ``ValidationError`` listing every violated constraint. Parameters the model
        does not know are ignored, as AWS does.
        """
        op = self._operation(action)
        if op.input is None:
            return {}
        decoder = _Decoder()
        result = decoder.structure(op.input, _tree(params), "")
        if decoder.violations:
            raise _coral_error(decoder.violations)
        return result

    def render_result(self, action: str, result: Mapping[str, Any], request_id: str) -> bytes:
        """The success document for ``action``, laid out as real STS sends it.

        Members go in model order; ``None`` members are left out. A member the model
        does not have raises ``ValueError``: it is a bug in the caller, and dropping it
        silently would hide it.
        """
        op = self._ops.get(action)
        if op is None:
            raise ValueError(f"unknown action {action!r}")
        out = [f'<{action}Response xmlns="{XML_NAMESPACE}">\n', f"  <{op.result_wrapper}>\n"]
        members = self._renderers.get(action)
        if members is not None:
            members(result, action, out)
        elif result:
            raise ValueError(f"{action} has no output members")
        out.append(
            f"  </{op.result_wrapper}>\n"
            "  <ResponseMetadata>\n"
            f"    <RequestId>{xml_escape(request_id)}</RequestId>\n"
            "  </ResponseMetadata>\n"
            f"</{action}Response>\n"
        )
        return "".join(out).encode()
