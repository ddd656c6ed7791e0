"""The README's quick start, run as written: what command 1 installs is what the examples
import, and the boto3 and AWS CLI examples print what their comments say.

The broker is the real ``sts-broker serve config/demo.yaml`` process (on a free port: the
examples' ``http://127.0.0.1:8080`` is replaced by its address). The boto3 block runs as a
script; the AWS CLI block runs in one ``bash``, its ``. .venv/bin/activate`` pointing at
this interpreter's virtualenv, and every line of its output is compared with the ``#``
lines under each command.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import serve_process

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOC_URL = "http://127.0.0.1:8080"
BIN = Path(sys.executable).parent


def _section_block(heading: str, lang: str) -> str:
    """The first ```lang block after ``heading``."""
    section = README.split(f"\n{heading}\n", 1)[1]
    found = re.search(rf"```{lang}\n(.*?)```", section, re.DOTALL)
    assert found is not None, heading
    return found.group(1)


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    with serve_process(
        [sys.executable, "-m", "broker", "serve", "config/demo.yaml"], cwd=ROOT
    ) as s:
        yield s.url


def test_quick_start_installs_what_the_examples_use() -> None:
    first = _section_block("## Quick start", "sh").splitlines()
    command = next(line for line in first if line.startswith("python3 -m venv"))
    assert "pip install -e '.[demo]'" in command
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    demo = {re.split(r"[<>=]", r)[0] for r in extras["optional-dependencies"]["demo"]}
    boto3_example = _section_block("### boto3", "python")
    imported = set(re.findall(r"^import (.+)$", boto3_example, re.MULTILINE)[0].split(", "))
    assert imported - {"time"} <= demo  # boto3 (broker is the package itself)
    assert "aws sts" in _section_block("### AWS CLI", "sh") and "awscli" in demo


def test_the_boto3_example_prints_what_it_says(demo: str) -> None:
    script = _section_block("### boto3", "python")
    expected = re.findall(r"^print\(.*\)\s+# (\S+)$", script, re.MULTILINE)
    assert len(expected) == 2
    done = subprocess.run(
        [sys.executable, "-c", script.replace(DOC_URL, demo)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == expected


def test_the_aws_cli_example_prints_what_it_says(demo: str) -> None:
    block = _section_block("### AWS CLI", "sh")
    expected = [line[2:] for line in block.splitlines() if line.startswith("# ")]
    assert len(expected) == 4
    script = block.replace(DOC_URL, demo).replace(". .venv/bin/activate", f". {BIN}/activate")
    done = subprocess.run(
        ["bash", "-c", "exec 2>&1\n" + script],  # stderr in order with stdout
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT / ".no-home")},
    )
    printed = [line for line in done.stdout.splitlines() if line.strip()]
    assert printed == expected, done.stdout
