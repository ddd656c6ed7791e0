"""Answers as AWS Query XML: closures per model shape, and one generated function per operation.

Why both: the emitters below are small closures, a call or three per element. Over HTTP,
where every request's code and data compete with uvicorn's for the CPU caches, that chain
of calls costs more than it does in a tight loop (bench/README.md has the figures). So the
model's output shapes are also compiled, once per process, to source text as
``dataclasses`` does for ``__init__``: tags, indentation and error paths become literals,
and each member is an inline ``get`` and an ``append``.

The generated function is exactly the emitter it replaces (same bytes, same ``None``
members left out, same ``<Empty/>`` for a structure with no member set, same
``ValueError`` for an unknown member and ``TypeError`` naming the member's path for a
wrongly typed value); ``tests/unit/test_render.py`` compares the two on every
operation. Lists and maps (no answer the broker gives has one) are handed to the emitter for
that member.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from broker.clock import iso8601
from broker.errors import StsError
from broker.sts.shapes import INT_RANGES, XML_NAMESPACE, Shape

_XML_SPECIAL: Final = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
special: Final = _XML_SPECIAL.search
"""Bound once: every string in every answer is tested (no attribute lookup per call)."""
_XML_REPLACEMENTS: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}


def xml_escape(text: str) -> str:
    """Escape text content; characters XML 1.0 cannot carry at all become U+FFFD.

    ``\\r`` is written as a character reference because parsers normalise a literal one
    away. Control characters and lone surrogates have no XML 1.0 spelling; emitting them
    would make botocore's parser reject the whole response, so they are replaced.
    """
    if special(text) is None:
        return text
    return _XML_SPECIAL.sub(lambda m: _XML_REPLACEMENTS.get(m.group(), "\ufffd"), text)


Emit = Callable[[Any, str, list[str]], None]
"""Appends one member's XML to ``out``. The ``str`` is the path prefix the emitter adds its
own suffix to, used only in the ``TypeError`` a wrongly typed result raises."""


def leaf_text(kind: str) -> Callable[[object], str | None]:
    """The text of a leaf value of model type ``kind``; None when the value has the wrong type."""
    if kind == "string":
        return lambda value: xml_escape(value) if isinstance(value, str) else None
    if kind in INT_RANGES:
        return lambda value: (
            str(value) if isinstance(value, int) and not isinstance(value, bool) else None
        )
    if kind == "boolean":
        return lambda value: ("true" if value else "false") if isinstance(value, bool) else None
    return lambda value: (  # timestamp
        iso8601(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    )


def emitter(shape: Shape, wire: str, indent: str, suffix: str) -> Emit:
    """Compile the renderer of one element ``<wire>`` of ``shape`` at ``indent``.

    The tags, indentation and type dispatch are worked out here once per operation; the
    per-answer work is the values themselves. Paths for error messages are built only when
    a type is wrong. Answers themselves are written by :mod:`broker.sts.render`'s
    flat functions, which hand list and map members to these emitters and are tested
    against them.
    """
    kind = shape.type
    if kind not in ("structure", "list", "map"):
        text_of = leaf_text(kind)
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
            if type(value) is str and special(value) is None:
                out.append(head + value + tail)
            else:
                leaf(value, prefix, out)

        return string if kind == "string" else leaf

    deeper = indent + "  "
    opening, closing, empty = f"{indent}<{wire}>\n", f"{indent}</{wire}>\n", f"{indent}<{wire}/>\n"
    if kind == "structure":
        members = members_emitter(shape, deeper)

        def body(value: Any, path: str, out: list[str]) -> None:
            # A dict is a Mapping: skip the ABC check for the type every result uses.
            if type(value) is not dict and not isinstance(value, Mapping):
                raise TypeError(f"result member {path} must be a mapping")
            members(value, path, out)

    elif kind == "list":
        assert shape.item is not None
        item = emitter(shape.item, shape.item_wire, deeper, "")

        def body(value: Any, path: str, out: list[str]) -> None:
            if isinstance(value, str | bytes) or not isinstance(value, Sequence):
                raise TypeError(f"result member {path} must be a sequence")
            for i, element in enumerate(value, 1):
                item(element, f"{path}.{i}", out)

    else:
        assert shape.key is not None and shape.item is not None
        entry_open, entry_close = f"{deeper}<entry>\n", f"{deeper}</entry>\n"
        key_of = emitter(shape.key, shape.key_wire, deeper + "  ", ".key")
        value_of = emitter(shape.item, shape.item_wire, deeper + "  ", "")

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


def members_emitter(
    shape: Shape, indent: str
) -> Callable[[Mapping[str, Any], str, list[str]], None]:
    """The members of a structure in model order; ``None`` members are left out."""
    names = shape.member_names
    members = tuple((m.name, emitter(m.shape, m.wire, indent, f".{m.name}")) for m in shape.members)

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


# --------------------------------------------------------------------------- generated


Members = Callable[[Mapping[str, Any], str, list[str]], None]
"""``(result, path, out)``: appends the result's members to ``out`` (the path is unused:
the generated function knows every member's path; it is accepted for the same call)."""


class _Writer:
    """Accumulates the source lines and the constants they refer to."""

    def __init__(
        self,
    ) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {"special": special, "_Mapping": Mapping}

    def constant(self, value: Any) -> str:
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def structure(self, shape: Shape, var: str, indent: str, path: str, depth: int) -> None:
        """The members of mapping ``var`` (already type-checked), in model order."""
        names = self.constant(shape.member_names)
        self.line(depth, f"if not {names}.issuperset({var}):")
        self.line(depth + 1, f"_unknown = sorted(k for k in {var} if k not in {names})")
        self.line(
            depth + 1,
            f"raise ValueError({f'result for {path} has members not in the model: '!r}"
            " + str(_unknown))",
        )
        value = f"x{depth}"
        for member in shape.members:
            self.line(depth, f"{value} = {var}.get({member.name!r})")
            self.line(depth, f"if {value} is not None:")
            self.member(
                member.shape,
                member.wire,
                value,
                indent=indent,
                path=path,
                name=member.name,
                depth=depth + 1,
            )

    def member(
        self, shape: Shape, wire: str, var: str, *, indent: str, path: str, name: str, depth: int
    ) -> None:
        where = f"{path}.{name}"
        kind = shape.type
        if kind == "structure":
            opening, closing = f"{indent}<{wire}>\n", f"{indent}</{wire}>\n"
            self.line(depth, f"if type({var}) is not dict and not isinstance({var}, _Mapping):")
            self.line(depth + 1, f"raise TypeError({f'result member {where} must be a mapping'!r})")
            self.line(depth, f"out.append({opening!r})")
            self.line(depth, f"mark{depth} = len(out)")
            self.structure(shape, var, indent + "  ", where, depth)
            self.line(depth, f"if len(out) == mark{depth}:")
            self.line(depth + 1, f"out[mark{depth} - 1] = {f'{indent}<{wire}/>' + chr(10)!r}")
            self.line(depth, "else:")
            self.line(depth + 1, f"out.append({closing!r})")
        elif kind in ("list", "map"):
            emit = self.constant(emitter(shape, wire, indent, f".{name}"))
            self.line(depth, f"{emit}({var}, {path!r}, out)")
        else:
            head, tail = f"{indent}<{wire}>", f"</{wire}>\n"
            text = self.constant(leaf_text(kind))
            wrong = f"result member {where} must be a {kind}, got "
            if kind == "string":  # most leaves: nothing to call when nothing needs escaping
                self.line(depth, f"if type({var}) is str and special({var}) is None:")
                self.line(depth + 1, f"out.append({head!r} + {var} + {tail!r})")
                self.line(depth, "else:")
                depth += 1
            self.line(depth, f"t = {text}({var})")
            self.line(depth, "if t is None:")
            self.line(depth + 1, f"raise TypeError({wrong!r} + type({var}).__name__)")
            self.line(depth, f"out.append({head!r} + t + {tail!r})")


def compile_members(shape: Shape, indent: str, path: str) -> Members:
    """The generated renderer of structure ``shape``'s members at ``indent``.

    ``path`` is the result's name in error messages (the operation name). It shares the
    escaping test, leaf converters and emitters with the closures above.
    """
    writer = _Writer()
    writer.line(0, "def members(value, path, out):")
    writer.structure(shape, "value", indent, path, 1)
    namespace = dict(writer.constants)
    exec("\n".join(writer.lines), namespace)  # noqa: S102 - names and literals from the model
    members: Members = namespace["members"]
    members.__qualname__ = f"render_{path}"
    return members
