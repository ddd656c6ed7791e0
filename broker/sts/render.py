"""One straight-line Python function per operation that writes its answer's XML.

Why: the model's emitters (:mod:`broker.sts.model`) are small closures, a call or three per
element. In process an AssumeRoleWithWebIdentity answer costs 6 µs that way, but measured
over HTTP, where every request's code and data compete with uvicorn's for the CPU caches,
rendering cost 9-20 µs of server CPU per request. This generated function renders it in
5 µs in process and ~3 µs/req less over HTTP (a hand-written template, with none of the
checks below, measured 6-11 µs less). So the model's output shapes are compiled, once per
process, to source text as ``dataclasses`` does for ``__init__``: tags, indentation and
error paths become literals, and each member is an inline ``get`` and an ``append``.

The generated function is exactly the emitter it replaces (same bytes, same ``None``
members left out, same ``<Empty/>`` for a structure with no member set, same
``ValueError`` for an unknown member and ``TypeError`` naming the member's path for a
wrongly typed value); ``tests/unit/test_render_codegen.py`` compares the two on every
operation. Lists and maps (no answer the broker gives has one) are handed to the model's
own emitter for that member.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from broker.sts.model import _Emit, _Shape

Members = Callable[[Mapping[str, Any], str, list[str]], None]
"""``(result, path, out)``: appends the result's members to ``out`` (the path is unused:
the generated function knows every member's path; it is accepted for the same call)."""


class _Writer:
    """Accumulates the source lines and the constants they refer to."""

    def __init__(
        self,
        *,
        special: Callable[[str], object],
        leaf_text: Callable[[str], Callable[[object], str | None]],
        emitter: Callable[[_Shape, str, str, str], _Emit],
    ) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {"_special": special, "_Mapping": Mapping}
        self._leaf_text = leaf_text
        self._emitter = emitter

    def constant(self, value: Any) -> str:
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def structure(self, shape: _Shape, var: str, indent: str, path: str, depth: int) -> None:
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
        self, shape: _Shape, wire: str, var: str, *, indent: str, path: str, name: str, depth: int
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
            emit = self.constant(self._emitter(shape, wire, indent, f".{name}"))
            self.line(depth, f"{emit}({var}, {path!r}, out)")
        else:
            head, tail = f"{indent}<{wire}>", f"</{wire}>\n"
            text = self.constant(self._leaf_text(kind))
            wrong = f"result member {where} must be a {kind}, got "
            if kind == "string":  # most leaves: nothing to call when nothing needs escaping
                self.line(depth, f"if type({var}) is str and _special({var}) is None:")
                self.line(depth + 1, f"out.append({head!r} + {var} + {tail!r})")
                self.line(depth, "else:")
                depth += 1
            self.line(depth, f"t = {text}({var})")
            self.line(depth, "if t is None:")
            self.line(depth + 1, f"raise TypeError({wrong!r} + type({var}).__name__)")
            self.line(depth, f"out.append({head!r} + t + {tail!r})")


def compile_members(
    shape: _Shape,
    indent: str,
    path: str,
    *,
    special: Callable[[str], object],
    leaf_text: Callable[[str], Callable[[object], str | None]],
    emitter: Callable[[_Shape, str, str, str], _Emit],
) -> Members:
    """The generated renderer of structure ``shape``'s members at ``indent``.

    ``path`` is the result's name in error messages (the operation name). The model passes
    its own escaping test, leaf converters and emitter, so both renderers share them.
    """
    writer = _Writer(special=special, leaf_text=leaf_text, emitter=emitter)
    writer.line(0, "def members(value, path, out):")
    writer.structure(shape, "value", indent, path, 1)
    namespace = dict(writer.constants)
    exec("\n".join(writer.lines), namespace)  # noqa: S102 - names and literals from the model
    members: Members = namespace["members"]
    members.__qualname__ = f"render_{path}"
    return members
