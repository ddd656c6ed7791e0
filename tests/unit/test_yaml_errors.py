"""YAML syntax errors as ``check-config`` says them: the line of the mistake, what YAML
expected there, a hint for the usual causes, and nothing else (the rest cannot be read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import ConfigError, load_config

REST = " (the rest of the file is checked once this is fixed)"
INDENT = "Hint: indent it exactly like the keys it belongs with"


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (
            "a:\n\tb: 1\n",
            2,
            "a tab at column 1; YAML indents with spaces only. Hint: replace the tab with spaces",
        ),
        (
            "a:\n  label: Corp: SSO\n",
            2,
            "a second ': ' at column 14, inside a value. Hint: quote a value that contains "
            "': ', e.g. label: \"Corp: SSO\"",
        ),
        (
            "a:\n  b: 1\n   c: 2\n",
            3,
            "a key at column 5 where YAML expected the value of the line above to go on: this "
            f"line is indented deeper than the keys before it. {INDENT}",
        ),
        (
            "a:\n    b: 1\n  c: 2\n",
            3,
            f"a key indented to column 3, like no key above it (those are at column 1 or 5). "
            f"{INDENT}",
        ),
        (
            "a:\n  b: 1\n  just some text\n  c: 2\n",
            3,
            "a line that is neither 'key: value' nor a list item: YAML expected a ':'. Hint: "
            "add the ':' after the key, or quote the text if it is part of a value",
        ),
        (
            'a:\n  b: "open\n  c: 2\n',
            2,
            "a quoted value opened at column 6 is never closed. Hint: add the closing quote",
        ),
        (
            "a: {b: 1\nc: 2\n",
            2,
            "YAML expected ',' or '}' to go on with the '{' opened at line 1, column 4. Hint: "
            "close the '{', and quote values that contain ':' or ','",
        ),
        (
            "a:\n  b: 1\n- c\n",
            3,
            "a list item ('- ') where YAML expected a key of the mapping that starts at line 1. "
            "Hint: indent the item under the key that holds the list",
        ),
        (
            "a:\n  - x\n  b: 1\n",
            3,
            "a key where YAML expected another '- ' item of the list that starts at line 2. "
            "Hint: give the key its own, less indented, line, or make it a list item",
        ),
        ("a: *nope\n", 1, "found undefined alias 'nope'"),
    ],
    ids=[
        "tab",
        "colon",
        "deeper",
        "shallower",
        "no-colon",
        "open-quote",
        "open-brace",
        "item-in-mapping",
        "key-in-list",
        "other",
    ],
)
def test_a_syntax_error_names_its_line_what_yaml_expected_and_a_hint(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text + "regoin: x\n")  # never reported: nothing past the error is read
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}:{line}: YAML syntax error: {reason}{REST}"
