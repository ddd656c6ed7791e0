"""Query input against botocore's STS model: decoding and validation, in AWS's words.

Validation answers in AWS's Coral wording (``1 validation error detected: Value 'x' at
'roleSessionName' failed to satisfy constraint: ...``) because scripts and SDK users match
on it. Values of ``sensitive`` members are never echoed (AWS writes ``Value at 'x'``).
:class:`StsModel` is the face of the three modules: it compiles the shapes
(:mod:`broker.sts.shapes`) and the renderers (:mod:`broker.sts.render`) once.
"""

from __future__ import annotations

import difflib
import functools
import gzip
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import botocore

from broker.config import BrokerConfig, KeyPath
from broker.errors import StsError, validation_error
from broker.sts.render import compile_members, xml_escape
from broker.sts.shapes import (
    API_VERSION,
    INT_RANGES,
    XML_NAMESPACE,
    Operation,
    Shape,
    ShapeCompiler,
)

_MODEL_PATH: Final = (
    Path(botocore.__file__).parent / "data" / "sts" / API_VERSION / "service-2.json.gz"
)
_INT_RE: Final = re.compile(r"[+-]?[0-9]{1,19}")
_INDEX_RE: Final = re.compile(r"[1-9][0-9]{0,8}")
_MAX_ECHO: Final = 256
"""Characters of a rejected value quoted back in a message; longer ones are cut."""
_MAX_LISTED: Final = 25
"""Violations spelled out in one message; the count still covers all of them."""


class _Invalid:
    """Marker for a member whose raw value could not be decoded (already reported)."""


_INVALID: Final = _Invalid()


class _Node:
    """One dotted segment of Query parameter names (``Tags`` -> ``member`` -> ``1`` -> ``Key``).

    Building the tree once makes decoding linear in the number of parameters, whatever
    the shape depth, instead of rescanning every name for every member.
    """

    __slots__ = ("children", "value")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.value: str | None = None


# --------------------------------------------------------------------------- messages


def _echo_text(value: object, shape: Shape) -> str:
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


def violation(value: object, path: str, shape: Shape, sensitive: bool, rule: str) -> str:
    """One violation in Coral's words; a sensitive value is never echoed."""
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


def coral_message(violations: Sequence[str]) -> str:
    """AWS's ``N validation errors detected: ...`` text for a list of violations."""
    count = len(violations)
    listed = "; ".join(violations[:_MAX_LISTED])
    more = "; ..." if count > _MAX_LISTED else ""
    noun = "error" if count == 1 else "errors"
    return f"{count} validation {noun} detected: {listed}{more}"


def _coral_error(violations: Sequence[str]) -> StsError:
    return validation_error(coral_message(violations))


def _shorten(text: str, limit: int = 128) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# --------------------------------------------------------------------------- decoding


class _Decoder:
    """Decodes one request's parameter tree against an input shape, collecting violations."""

    def __init__(self) -> None:
        self.violations: list[str] = []

    def structure(self, shape: Shape, node: _Node | None, prefix: str) -> dict[str, Any]:
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
                        violation(None, path, m.shape, m.sensitive, "Member must not be null")
                    )
            elif value is not _INVALID:
                out[m.name] = value
        return out

    def value(self, shape: Shape, node: _Node | None, path: str, sensitive: bool) -> Any:
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

    def list(self, shape: Shape, node: _Node, path: str, sensitive: bool) -> Any:
        items = node.children.get(shape.item_wire)
        if items is None or not items.children:
            if node.value is None:
                return None
            if node.value == "":
                return []  # botocore sends ``Name=`` for an empty list
            self.violations.append(
                violation(node.value, path, shape, sensitive, "Member must be a list")
            )
            return _INVALID
        assert shape.item is not None
        wire = shape.item_wire
        out = []
        for index, child in _indexed(items, path, wire):
            value = self.value(shape.item, child, f"{path}.{index}.{wire}", sensitive)
            if value is None:
                self.violations.append(
                    violation(
                        None,
                        f"{path}.{index}.{wire}",
                        shape.item,
                        sensitive,
                        "Member must not be null",
                    )
                )
            out.append(value)
        return _INVALID if any(v is _INVALID or v is None for v in out) else out

    def map(self, shape: Shape, node: _Node, path: str, sensitive: bool) -> Any:
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
                    violation(None, item_path, shape.item, sensitive, "Member must not be null")
                )
            failed = failed or value is None or value is _INVALID
            out[key] = value
        return _INVALID if failed else out

    def scalar(self, shape: Shape, raw: str, path: str, sensitive: bool) -> Any:
        kind = shape.type
        if kind == "string":
            return raw
        if kind in INT_RANGES:
            low, high = INT_RANGES[kind]
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
        self.violations.append(violation(raw, path, shape, sensitive, rule))
        return _INVALID

    def check(self, shape: Shape, value: Any, path: str, sensitive: bool) -> None:
        """Apply the model's min/max/pattern/enum traits to a decoded value."""
        broken = constraint_violations(shape, value, path, sensitive)
        if broken:
            self.violations.extend(broken)


def constraint_violations(shape: Shape, value: Any, path: str, sensitive: bool) -> list[str]:
    """The model's min/max/pattern/enum traits ``value`` breaks, in Coral's words.

    Protocol-neutral: the Query decoder here and the JSON decoder of the identity pools
    API (:mod:`broker.pools.model`) both check decoded values with it.
    """
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
            return _NONE_BROKEN
    rules: list[str] = []
    if kind in INT_RANGES:
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
    return [violation(value, path, shape, sensitive, rule) for rule in rules]


_NONE_BROKEN: Final[list[str]] = []
"""Shared empty answer of :func:`constraint_violations` (never appended to)."""


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
        compiler = ShapeCompiler(service["shapes"])
        ops: dict[str, Operation] = {}
        for name, op in service["operations"].items():
            output = op.get("output")
            ops[name] = Operation(
                name=name,
                input=compiler.shape(op["input"]["shape"]) if "input" in op else None,
                output=compiler.shape(output["shape"]) if output else None,
                result_wrapper=(output or {}).get("resultWrapper", f"{name}Result"),
            )
        self._ops: Final = ops
        self._actions: Final = frozenset(ops)
        self._renderers: Final = {
            name: compile_members(op.output, "    ", name) for name, op in ops.items() if op.output
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

    def _operation(self, action: str) -> Operation:
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


def throttled_action_problems(config: BrokerConfig) -> Iterator[tuple[KeyPath, str]]:
    """Each ``throttling.actions`` name that is no STS action, as a config mistake at its key.

    A loader check (see :func:`broker.config.load_config`): a misspelt action would
    otherwise be limited by nothing of its own, silently.
    """
    known = StsModel.load().actions()
    for name in config.throttling.actions:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            yield ("throttling", "actions", name), f"{name!r} is not an STS action{hint}"
