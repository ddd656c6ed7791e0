"""AWS service models' Java regular expressions, rewritten for Python's ``re``.

botocore's models give every string parameter its pattern in Java syntax; the STS model
validates requests with them (:mod:`broker.sts.shapes`) and the tag rules
(:mod:`broker.tags`) check session tags from every source with the model's own tag pattern.
One translator keeps both reading the patterns the same way, and refuses any construct it
cannot translate exactly rather than weaken a pattern.
"""

from __future__ import annotations

import functools
import re
import unicodedata


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
