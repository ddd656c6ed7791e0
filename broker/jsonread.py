"""The one reader for JSON the broker did not write: bounded in size and depth, unambiguous.

Policies passed to AssumeRole, the console federation ``Session``, JWT headers and payloads,
JWKS and discovery documents, the authorization API's bodies and policy documents embedded
in the config all come from someone the broker does not control. ``json.loads`` alone is not
safe for them:

- **Depth.** CPython's parser recurses once per ``[``/``{``; a document nested past the
  recursion limit raises ``RecursionError`` (not a ``ValueError``), which escaped the
  handlers that caught only the latter as a 500. Documents that stay below the limit but
  nest hundreds deep cost every later walk over them (policy parsing, ``json.dumps``). The
  depth is checked *before* parsing: a count of brackets answers for small documents in
  one C pass; only documents with more brackets than the bound are measured, in a few more
  C passes (strings skipped, so ``"[["`` is text).
- **Size**, before anything is decoded: characters for text, bytes for bytes.
- **Repeated member names** (``{"Effect": "Allow", "Effect": "Deny"}``): RFC 8259 leaves
  their meaning to the parser, JWT (RFC 7519 section 4) and JWK (RFC 7517 section 4) let a
  reader refuse them, and two readers of one policy must never see two policies; so they
  are refused unless a caller says its format allows them.
- ``NaN``/``Infinity`` (not JSON) and bytes that are not UTF-8 (RFC 8259 section 8.1) are
  refused; ``json.loads`` would accept the first and guess an encoding for the second.

Every refusal is one :class:`JsonRefusedError` with a ``kind`` and a short reason that
completes "the document ..." ("is nested more than 32 levels deep"); each caller maps it
to its own protocol's error (``MalformedPolicyDocument``,
``InvalidIdentityToken``, ``IDPCommunicationError``, a config problem, ...). The reason
never quotes more than a bounded fragment of the document.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final, Literal

DEFAULT_MAX_DEPTH: Final = 32
"""Deep enough for every document the broker reads (an IAM policy nests 5 levels, a JWKS 3,
a tags claim 4); far below CPython's recursion limit."""

RefusalKind = Literal["size", "depth", "duplicate", "constant", "syntax", "encoding"]

_STRINGS: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
"""A JSON string; an unterminated one runs to the end of the text."""
_ALL_BUT_BRACKETS: Final = {code: None for code in range(128) if chr(code) not in "[]{}"}
"""``str.translate`` deletes with it every ASCII character but the four brackets, in C."""
_INNERMOST: Final = re.compile(r"\[\]|\{\}")
_COUNT_UP_TO: Final = 512
"""Brackets counted one by one rather than in passes (each pass costs a few of them)."""
_SHOWN_NAME: Final = 40


class JsonRefusedError(ValueError):
    """The document is not JSON the broker accepts; ``reason`` says why in a few words."""

    def __init__(self, kind: RefusalKind, reason: str, *, fragment: str = "") -> None:
        super().__init__(reason)
        self.kind: RefusalKind = kind
        self.reason = reason
        self.fragment = fragment
        """The repeated member name (``duplicate``, cut short) or the constant that is not
        a number (``constant``: ``NaN``, ``Infinity``, ``-Infinity``)."""


def _unique(items: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(items)
    if len(out) != len(items):
        seen: set[str] = set()
        for name, _ in items:
            if name in seen:
                shown = name if len(name) <= _SHOWN_NAME else name[:_SHOWN_NAME] + "..."
                raise JsonRefusedError(
                    "duplicate", f"repeats the member name {shown!r}", fragment=shown
                )
            seen.add(name)
    return out


def _no_constant(token: str) -> Any:
    raise JsonRefusedError("constant", f"is not JSON ({token} is not a number)", fragment=token)


_STRICT: Final = json.JSONDecoder(object_pairs_hook=_unique, parse_constant=_no_constant)
_LENIENT: Final = json.JSONDecoder(parse_constant=_no_constant)
"""Built once: ``json.loads`` with hooks builds a new decoder on every call."""


def read_json(
    data: str | bytes,
    *,
    max_size: int,
    max_depth: int = DEFAULT_MAX_DEPTH,
    unique_names: bool = True,
) -> Any:
    """Parse ``data`` (text, or UTF-8 bytes) within the bounds; raise :class:`JsonRefusedError`.

    ``max_size`` counts characters for text and bytes for bytes; ``max_depth`` counts open
    arrays and objects (``[]`` is depth 1, ``[[]]`` depth 2).
    """
    if len(data) > max_size:
        raise JsonRefusedError("size", f"is larger than {max_size} {_unit(data)}")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise JsonRefusedError("encoding", "is not UTF-8") from None
    else:
        text = data
    if text.count("[") + text.count("{") > max_depth and _too_deep(text, max_depth):
        raise JsonRefusedError("depth", f"is nested more than {max_depth} levels deep")
    decoder = _STRICT if unique_names else _LENIENT
    try:
        return decoder.decode(text)
    except json.JSONDecodeError as exc:
        where = (
            f"column {exc.colno}" if exc.lineno == 1 else f"line {exc.lineno} column {exc.colno}"
        )
        raise JsonRefusedError("syntax", f"is not JSON ({exc.msg} at {where})") from None
    except RecursionError:  # the scan above makes this unreachable; kept as a last guard
        raise JsonRefusedError("depth", f"is nested more than {max_depth} levels deep") from None
    except ValueError as exc:  # an integer past Python's digit limit
        if isinstance(exc, JsonRefusedError):
            raise
        raise JsonRefusedError("syntax", "has a number that is too long") from None


def _too_deep(text: str, max_depth: int) -> bool:
    """Whether the brackets outside strings nest deeper than ``max_depth``.

    In C passes: strings go (a split on quotes when nothing is escaped, else a linear
    regex in which an unterminated string runs to the end), then everything but brackets,
    then, for many brackets, each pass takes away one level of innermost ``[]`` and ``{}``
    pairs: a level left after ``max_depth`` passes is too deep. A few brackets (a policy
    has a few dozen), or brackets that stop pairing (not JSON: the parser refuses it, and
    reads no deeper than they go), are counted one by one, which is cheaper than a pass.
    """
    # Without escapes, the strings are exactly every second piece between quotes.
    outside = _STRINGS.sub("", text) if "\\" in text else "".join(text.split('"')[::2])
    if not outside.isascii():  # not JSON outside strings; brackets are ASCII anyway
        outside = outside.encode("ascii", "ignore").decode("ascii")
    brackets = outside.translate(_ALL_BUT_BRACKETS)
    if len(brackets) > _COUNT_UP_TO:
        for _ in range(max_depth):
            brackets, taken = _INNERMOST.subn("", brackets)
            if not brackets:
                return False
            if not taken:
                break
        else:
            return True  # a level was left after max_depth were taken away
    depth = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def _unit(data: str | bytes) -> str:
    return "bytes" if isinstance(data, bytes) else "characters"
