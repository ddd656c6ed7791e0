"""The config loader answers every file with a config or ``file:line: key.path: reason``.

Files are arbitrary bytes and text, and a sound config with random edits: values replaced
by anything YAML can hold (deep nesting, JSON-in-a-string policies, ``${VAR}``), keys
removed or misspelt, text inserted at random places. Loading either succeeds (and then the
IAM grammar check either passes or reports the same way) or raises ``ConfigError`` whose
every line names the file; never another exception.
"""

from __future__ import annotations

import copy
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from broker.config import ConfigError, load_config
from broker.directory import Directory
from tests.properties.budget import budget

SOUND: dict[str, Any] = {
    "public_url": "http://127.0.0.1:8080",
    "region": "us-east-1",
    "state": "memory",
    "server": {"idle_timeout_seconds": 5},
    "saml": {"max_assertion_lifetime_seconds": 300},
    "accounts": {
        "111111111111": {
            "alias": "dev",
            "users": {
                "alice": {
                    "access_keys": [
                        {
                            "id": "AKIABTXV5AHDQBAUYSKD",
                            "secret": "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY01",
                        }
                    ],
                    "tags": {"team": "platform"},
                    "policies": {
                        "p": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}
                            ],
                        }
                    },
                }
            },
            "roles": {
                "Dev": {
                    "max_session_duration": 3600,
                    "trust_policy": '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",'
                    ' "Principal": {"AWS": "arn:aws:iam::111111111111:root"},'
                    ' "Action": "sts:AssumeRole"}]}',
                }
            },
        }
    },
}
LINE = re.compile(r"[^\n]*?c\.yaml(:\d+)?: ")


def _load(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.yaml"
        path.write_bytes(data)
        try:
            Directory.build(load_config(path, environ={"SET": "value"}))
        except ConfigError as exc:
            text = str(exc)
            assert text, "a ConfigError names at least one problem"
            for line in text.splitlines():
                assert LINE.match(line), line


_yaml_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True),
        st.text(max_size=15),
        st.sampled_from(["${SET}", "${UNSET}", "${UNSET:-x}", "$${X}", "[" * 3000, '{"a":']),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


PATHS = _paths(SOUND)[1:]


@st.composite
def _edited(draw: st.DrawFn) -> bytes:
    data = copy.deepcopy(SOUND)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent: Any = data
        try:
            for part in path[:-1]:
                parent = parent[part]
            action = draw(st.sampled_from(["replace", "delete", "rename"]))
            if action == "replace":
                parent[path[-1]] = draw(_yaml_values)
            elif isinstance(parent, dict):
                value = parent.pop(path[-1])
                if action == "rename":
                    parent[draw(st.text(max_size=10))] = value
        except (KeyError, IndexError, TypeError):
            continue
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.text(max_size=8)) + text[at:]
    return text.encode("utf-8", "surrogatepass")


@given(_edited())
@settings(max_examples=budget(100))
@example(b"public_url: http://127.0.0.1:8080\naccounts: " + b"[" * 5000 + b"]" * 5000 + b"\n")
@example(b"public_url: http://h\nregion: caf\xe9\n")
@example(b"a: &x [*x]\n")
@example(b"accounts: {'111111111111': {roles: {Dev: {trust_policy: '" + b"[" * 3000 + b"'}}}}\n")
def test_edited_configs_load_or_are_reported(data: bytes) -> None:
    _load(data)


@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
@settings(max_examples=budget(100))
@example(b"\xff\xfe")
@example(b"- 1\n")
@example(b"? [a, b]\n: c\n")
@example(b"!!python/object:os.system x\n")
def test_arbitrary_files_load_or_are_reported(data: bytes) -> None:
    _load(data)
