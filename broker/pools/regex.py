"""Regex rules with a bounded engine: RE2, whole-value matches, named groups for templates.

A Regex rule reads a claim an identity provider fills from user-controlled data (group
names, email addresses), so the pattern meets hostile input on every request. Python's
``re`` backtracks: ``(a+)+$`` against forty ``a`` and a ``b`` runs for minutes. RE2
(``google-re2``) matches in time linear in the input and refuses the constructs that need
backtracking (back-references, look-around) when the config is loaded, with its own
message. Matches are anchored at both ends (``fullmatch``): ``aws#\\d{12}#Admin`` must not
accept ``xaws#123456789012#Adminx``. ``\\w`` and ``\\d`` are ASCII-only in RE2, as in
IAM's own patterns. Named groups (``(?<name>...)`` or ``(?P<name>...)``) fill ``${name}``
in the rule's ``RoleARN`` and in the pool's session templates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import re2

MAX_PATTERN_CHARS: Final = 512
_MAX_MEMORY: Final = 1 << 22
"""Bytes RE2 may use for one compiled pattern (its DFA cache); a pattern needing more is
refused at load time rather than slowing requests."""


class PatternError(ValueError):
    """A pattern RE2 cannot compile; the message is RE2's, for the config error."""


def _options() -> Any:
    options = re2.Options()
    options.max_mem = _MAX_MEMORY
    options.log_errors = False  # refusals are reported as config errors, not on stderr
    return options


@dataclass(frozen=True)
class BoundedPattern:
    """A compiled rule pattern: linear-time, anchored, with its group names."""

    source: str
    groups: frozenset[str]
    _compiled: Any = field(repr=False, compare=False)

    @classmethod
    def compile(cls, pattern: str) -> BoundedPattern:
        if len(pattern) > MAX_PATTERN_CHARS:
            raise PatternError(f"patterns are at most {MAX_PATTERN_CHARS} characters")
        try:
            compiled = re2.compile(pattern, _options())
        except re2.error as exc:
            reason = exc.args[0] if exc.args else "invalid pattern"
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            raise PatternError(f"RE2 cannot compile it: {reason}") from None
        return cls(source=pattern, groups=frozenset(compiled.groupindex), _compiled=compiled)

    def match(self, text: str) -> dict[str, str] | None:
        """The named groups when ``text`` matches whole (an unmatched group is ""), else None."""
        found = self._compiled.fullmatch(text)
        if found is None:
            return None
        return {name: value or "" for name, value in found.groupdict().items()}
