"""docs/cross-account.md, run as written.

A real ``sts-broker serve config/cross-account.yaml`` process listens on a free port. The
doc's ```sh blocks (all but the one that starts the broker, done here) run in order in one
``bash -euo pipefail``, so variables and exports carry from step to step as they do in a
reader's terminal. The doc says ``http://127.0.0.1:8080``; the test substitutes the real
address. The output of each numbered step is then checked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import serve_process

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "cross-account.md"
CONFIG = ROOT / "config" / "cross-account.yaml"
DOC_URL = "http://127.0.0.1:8080"
BIN = Path(sys.executable).parent
"""The virtualenv's bin (sts-broker, aws, python), put first on the walkthrough's PATH."""

ROLE_SESSION = "arn:aws:sts::222222222222:assumed-role/UpdateApp/alice"
FENCE = re.compile(r"^```(\w*)\s*$")
STEP = re.compile(r"^#{2,4} (\d+)\. ")


def _fenced_blocks(markdown: str) -> list[tuple[str, str, str]]:
    """(step number or "", language, body) of every fenced block, in document order."""
    blocks: list[tuple[str, str, str]] = []
    step = ""
    lang: str | None = None
    body: list[str] = []
    for line in markdown.splitlines():
        if lang is None:
            heading = STEP.match(line)
            if heading:
                step = heading.group(1)
            elif line.startswith("#"):
                step = ""
            fence = FENCE.match(line)
            if fence:
                lang, body = fence.group(1), []
        elif line.startswith("```"):
            blocks.append((step, lang, "\n".join(body) + "\n"))
            lang = None
        else:
            body.append(line)
    assert lang is None, "unclosed code block"
    return blocks


def _walkthrough() -> list[tuple[str, str]]:
    """The sh blocks as (step, commands), without the one that starts the broker."""
    blocks = [(step, body) for step, lang, body in _fenced_blocks(DOC.read_text()) if lang == "sh"]
    serve = [body for _, body in blocks if "sts-broker serve" in body]
    assert serve == ["sts-broker serve config/cross-account.yaml\n"]
    steps = [(step, body) for step, body in blocks if body not in serve]
    assert all(step for step, _ in steps), "every sh block belongs to a numbered step"
    return steps


def _curl_supports_sigv4() -> bool:
    curl = shutil.which("curl")
    if curl is None:
        return False
    version = subprocess.run([curl, "--version"], capture_output=True, text=True, check=False)
    found = re.match(r"curl (\d+)\.(\d+)", version.stdout)
    return found is not None and (int(found.group(1)), int(found.group(2))) >= (7, 76)


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    with serve_process(
        [str(BIN / "sts-broker"), "serve", "config/cross-account.yaml"], cwd=ROOT
    ) as served:
        yield served.url
    assert "DEMOaliceSECRETkeyDoNotUseOutsideDemo000" not in served.output


def _run_walkthrough(url: str, home: Path) -> dict[str, str]:
    """Run every step in one bash; return each step's combined stdout and stderr."""
    parts = []
    for step, commands in _walkthrough():
        assert DOC_URL in commands or "8080" not in commands
        parts.append(f"echo '=== step {step} ==='\n{commands.replace(DOC_URL, url)}")
    script = "\n".join(parts)
    assert "8080" not in script
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
    }
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout
    outputs: dict[str, str] = {}
    pieces = re.split(r"^=== step (\d+) ===\n", result.stdout, flags=re.MULTILINE)
    assert pieces[0] == "", pieces[0]
    for step, text in zip(pieces[1::2], pieces[2::2], strict=True):
        outputs[step] = outputs.get(step, "") + text
    return outputs


def _json_objects(text: str) -> list[Any]:
    """Every JSON document printed in ``text`` (each starts with ``{`` on its own line)."""
    decoder = json.JSONDecoder()
    found = []
    for start in (m.start() for m in re.finditer(r"^\{", text, flags=re.MULTILINE)):
        found.append(decoder.raw_decode(text, start)[0])
    return found


def _in_order(text: str, *needles: str) -> bool:
    at = 0
    for needle in needles:
        at = text.find(needle, at)
        if at < 0:
            return False
        at += len(needle)
    return True


def test_doc_shows_the_config_file_as_it_is() -> None:
    yaml_blocks = [body for _, lang, body in _fenced_blocks(DOC.read_text()) if lang == "yaml"]
    assert len(yaml_blocks) == 1
    assert yaml.safe_load(yaml_blocks[0]) == yaml.safe_load(CONFIG.read_text())


def test_walkthrough_runs_as_written(broker_url: str, tmp_path: Path) -> None:
    # A missing tool is a failure, not a skip: the doc promises these commands work.
    assert _curl_supports_sigv4(), "the walkthrough needs curl >= 7.76 (--aws-sigv4)"
    out = _run_walkthrough(broker_url, tmp_path)
    assert sorted(out, key=int) == [str(n) for n in range(1, 9)]

    assert "config/cross-account.yaml: OK" in out["1"]

    [alice] = _json_objects(out["2"])
    assert alice["Arn"] == "arn:aws:iam::111111111111:user/alice"

    assert (
        "An error occurred (AccessDenied) when calling the AssumeRole operation: User: "
        "arn:aws:iam::111111111111:user/alice is not authorized to perform: sts:AssumeRole "
        "on resource: arn:aws:iam::222222222222:role/UpdateApp"
    ) in out["3"]
    assert _in_order(
        out["3"],
        "Decision:  DENIED",
        "Reason:    the role's trust policy does not allow this principal",
        "exit status 1",
        "Decision:  ALLOWED",
        "Reason:    allowed by the role's trust policy and the principal's identity policies",
        "Allow UpdateApp trust policy statement 0 (Sid DevAccountWithMfa)",
    )

    assert re.fullmatch(r"\d{6}\n", out["4"])

    [session] = _json_objects(out["5"])
    assert session["Arn"] == ROLE_SESSION
    assert session["Account"] == "222222222222"

    assert _in_order(
        out["6"],
        "Decision:  ALLOWED",
        "Action:    s3:PutObject",
        "Reason:    allowed by an identity-based policy",
        "Allow app-bucket-read-write statement 0 (Sid AppBucketReadWrite)",
        "Decision:  DENIED",
        "Action:    s3:DeleteBucket",
        "Reason:    no identity-based policy allows the s3:DeleteBucket action",
        "exit status 1",
    )

    allowed, denied = _json_objects(out["7"])
    assert allowed["allowed"] is True
    assert allowed["principal"]["arn"] == ROLE_SESSION
    assert allowed["matched"][0]["sid"] == "AppBucketReadWrite"
    assert "encoded_message" not in allowed
    assert denied["allowed"] is False
    assert denied["principal"]["arn"] == ROLE_SESSION
    assert denied["reason"] == "no identity-based policy allows the s3:DeleteBucket action"
    assert denied["encoded_message"]

    assert '"allowed":false' in re.sub(r"\s", "", out["8"])
    [decoded] = _json_objects(out["8"])
    assert decoded["allowed"] is False
    assert decoded["context"]["principal"]["arn"] == ROLE_SESSION
    assert decoded["context"]["action"] == "s3:DeleteBucket"
    assert decoded["context"]["resource"] == "arn:aws:s3:::prod-app-bucket"
    conditions = {c["key"]: c["values"]["items"] for c in decoded["context"]["conditions"]["items"]}
    assert conditions["aws:MultiFactorAuthPresent"] == [{"value": "true"}]
