"""A YAML syntax error, said for the person fixing the file: where, what YAML expected there,
and what usually causes it.

PyYAML's own text ("mapping values are not allowed here", "expected <block end>, but found
'<block mapping start>'") names its parser's states, not the mistake. The common mistakes
behind them are few: a tab, a line indented unlike its neighbours, a value with an
unquoted ``: `` in it, a key without a colon, a quote or bracket left open. Each gets a
sentence and a hint; anything else keeps PyYAML's words. The line is where the mistake is
(for a key without a colon or an unclosed quote, where it starts, not where PyYAML noticed).

Nothing after a syntax error can be read, so this is the one mistake reported for the file,
and the message says the rest is checked once it is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

REST = "the rest of the file is checked once this is fixed"


@dataclass(frozen=True)
class SyntaxProblem:
    """Where (1-based line, or None) and what, as one sentence with its hint."""

    line: int | None
    reason: str


def explain(exc: yaml.MarkedYAMLError, text: str) -> SyntaxProblem:
    """The person's version of ``exc`` for a file whose content is ``text``."""
    problem = exc.problem or ""
    mark = exc.problem_mark or exc.context_mark
    context = exc.context_mark
    line = mark.line + 1 if mark else None
    column = mark.column + 1 if mark else 0
    source = _line(text, mark.line) if mark else ""
    what, hint = "", ""
    if problem.startswith("found character '\\t'"):
        what = f"a tab at column {column}; YAML indents with spaces only"
        hint = "replace the tab with spaces"
    elif problem == "mapping values are not allowed here":
        before = source[: max(column - 1, 0)]
        if ": " in before or before.rstrip().endswith(":"):
            key, _, value = source.partition(": ")
            what = f"a second ': ' at column {column}, inside a value"
            hint = f"quote a value that contains ': ', e.g. {key.strip()}: {_quoted(value)}"
        else:
            what = (
                f"a key at column {column} where YAML expected the value of the line above "
                "to go on: this line is indented deeper than the keys before it"
            )
            hint = "indent it exactly like the keys it belongs with"
    elif problem.startswith("expected <block end>, but found") and context is not None:
        found = problem.rsplit("found ", 1)[1]
        if found == "'-'":
            what = (
                "a list item ('- ') where YAML expected a key of the mapping that starts at "
                f"line {context.line + 1}"
            )
            hint = "indent the item under the key that holds the list"
        elif found == "'?'" or "collection" in (exc.context or ""):
            what = (
                f"a key where YAML expected another '- ' item of the list that starts at "
                f"line {context.line + 1}"
            )
            hint = "give the key its own, less indented, line, or make it a list item"
        else:
            above = _indents(text, context.line, mark.line if mark else context.line)
            what = (
                f"a key indented to column {column}, like no key above it (those are at "
                f"column {' or '.join(str(c) for c in above)})"
            )
            hint = "indent it exactly like the keys it belongs with"
    elif problem == "could not find expected ':'" and context is not None:
        line = context.line + 1
        what = "a line that is neither 'key: value' nor a list item: YAML expected a ':'"
        hint = "add the ':' after the key, or quote the text if it is part of a value"
    elif "while scanning a quoted scalar" in (exc.context or "") and context is not None:
        line = context.line + 1
        what = f"a quoted value opened at column {context.column + 1} is never closed"
        hint = "add the closing quote"
    elif "while parsing a flow" in (exc.context or "") and context is not None:
        opener = "[" if "sequence" in (exc.context or "") else "{"
        closer = "]" if opener == "[" else "}"
        what = (
            f"YAML expected ',' or '{closer}' to go on with the '{opener}' opened at line "
            f"{context.line + 1}, column {context.column + 1}"
        )
        hint = f"close the '{opener}', and quote values that contain ':' or ','"
    if not what:
        what = problem or "invalid YAML"
        if exc.context:
            what = f"{what} ({exc.context})"
        return SyntaxProblem(line, f"YAML syntax error: {what} ({REST})")
    return SyntaxProblem(line, f"YAML syntax error: {what}. Hint: {hint} ({REST})")


def _line(text: str, index: int) -> str:
    lines = text.splitlines()
    return lines[index] if 0 <= index < len(lines) else ""


def _indents(text: str, start: int, stop: int) -> list[int]:
    """The columns (1-based) where the keys of lines ``start`` up to ``stop`` begin."""
    lines = text.splitlines()[start:stop]
    found = {
        len(line) - len(line.lstrip(" ")) + 1
        for line in lines
        if line.strip() and not line.lstrip().startswith("#")
    }
    return sorted(found)


def _quoted(value: str) -> str:
    inner = value.strip().replace("\\", "\\\\").replace('"', '\\"')
    return f'"{inner}"'
