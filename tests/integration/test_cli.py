"""The `sts-broker` command as users run it: a real process serving the demo config."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from tests.integration.conftest import free_port, serve_process

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo.yaml"
ALICE = ("AKIABTXV5AHDQBAUYSKD", "DEMOaliceSECRETkeyDoNotUseOutsideDemo000")


def _cli(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def served_demo() -> Iterator[str]:
    with serve_process([sys.executable, "-m", "broker", "serve", str(DEMO)]) as served:
        yield served.url
    # The ephemeral-key warning is logged; no secret from the demo file ever is.
    assert "ephemeral key" in served.output
    assert ALICE[1] not in served.output


def test_serve_demo_config_answers_boto3(served_demo: str) -> None:
    sts = boto3.client(
        "sts",
        endpoint_url=served_demo,
        region_name="us-east-1",
        aws_access_key_id=ALICE[0],
        aws_secret_access_key=ALICE[1],
    )
    assert sts.get_caller_identity()["Arn"] == "arn:aws:iam::111111111111:user/alice"
    role = sts.assume_role(RoleArn="arn:aws:iam::111111111111:role/Dev", RoleSessionName="demo")
    assert role["AssumedRoleUser"]["Arn"] == "arn:aws:sts::111111111111:assumed-role/Dev/demo"
    health = httpx.get(f"{served_demo}/healthz").json()
    assert health["status"] == "ok"


def test_check_config_accepts_the_demo() -> None:
    result = _cli("check-config", str(DEMO))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": OK")


def test_check_config_reports_file_line_key_and_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "public_url: http://127.0.0.1:8080\n"
        "accounts:\n"
        '  "111111111111":\n'
        "    roles:\n"
        "      Dev:\n"
        "        max_session_duration: 99999\n"
        "        trust_policy:\n"
        '          Version: "2012-10-17"\n'
        "          Statement: [{Effect: Allow, Action: sts:AssumeRole, Resource: '*'}]\n"
    )
    result = _cli("check-config", str(bad))
    assert result.returncode == 2
    assert (
        f"{bad}:6: accounts.111111111111.roles.Dev.max_session_duration: "
        "must be between 3600 and 43200 (got 99999)"
    ) in result.stderr
    fixed = bad.read_text().replace("99999", "3600")
    bad.write_text(fixed)
    result = _cli("check-config", str(bad))
    assert result.returncode == 2
    assert (
        f"{bad}:7: accounts.111111111111.roles.Dev.trust_policy: malformed policy: "
        in result.stderr
    )
    assert "Principal" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_a_bad_config_exits_before_listening(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("public_url: http://127.0.0.1:8080\nregion: moon-1\n")
    result = _cli("serve", str(bad), "--port", str(free_port()))
    assert result.returncode == 2
    assert f"{bad}:2: region:" in result.stderr


def test_serve_demo_on_another_port_says_how_to_move_it() -> None:
    # The demo IdPs are fetched at public_url: serving elsewhere would 502 every sign-in.
    port = free_port()
    result = _cli("serve", str(DEMO), "--port", str(port))
    assert result.returncode == 2
    assert f"set STS_BROKER_PUBLIC_URL=http://127.0.0.1:{port} instead" in result.stderr


def test_config_schema_is_json_schema() -> None:
    result = _cli("config-schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert "accounts" in schema["properties"]
    assert "public_url" in schema.get("required", [])


def test_keygen_makes_a_usable_token_key() -> None:
    result = _cli("keygen")
    assert len(base64.b64decode(result.stdout.strip())) == 32


@pytest.mark.parametrize(
    ("principal", "action", "resource", "context", "allowed", "reason"),
    [
        (
            "arn:aws:iam::222222222222:role/UpdateApp",
            "s3:PutObject",
            "arn:aws:s3:::prod-app-bucket/site/index.html",
            [],
            True,
            "allowed by an identity-based policy",
        ),
        (
            "arn:aws:iam::222222222222:role/UpdateApp",
            "s3:DeleteBucket",
            "arn:aws:s3:::prod-app-bucket",
            [],
            False,
            "no identity-based policy allows the s3:DeleteBucket action",
        ),
        (
            "arn:aws:iam::111111111111:user/alice",
            "sts:AssumeRole",
            "arn:aws:iam::222222222222:role/UpdateApp",
            [],
            False,
            "the role's trust policy does not allow this principal",
        ),
        (
            "arn:aws:iam::111111111111:user/alice",
            "sts:AssumeRole",
            "arn:aws:iam::222222222222:role/UpdateApp",
            ["--context", "aws:MultiFactorAuthPresent=true"],
            True,
            "allowed by the role's trust policy and the principal's identity policies",
        ),
    ],
)
def test_simulate(
    principal: str, action: str, resource: str, context: list[str], allowed: bool, reason: str
) -> None:
    result = _cli(
        "simulate",
        "--config",
        str(DEMO),
        "--principal",
        principal,
        "--action",
        action,
        "--resource",
        resource,
        *context,
        "--json",
    )
    assert result.returncode == (0 if allowed else 1), result.stderr
    report = json.loads(result.stdout)
    assert report["allowed"] is allowed
    assert report["reason"] == reason
    text = _cli(
        "simulate",
        "--config",
        str(DEMO),
        "--principal",
        principal,
        "--action",
        action,
        "--resource",
        resource,
        *context,
    )
    assert ("Decision:  ALLOWED" if allowed else "Decision:  DENIED") in text.stdout


def test_simulate_unknown_principal() -> None:
    result = _cli(
        "simulate",
        "--config",
        str(DEMO),
        "--principal",
        "arn:aws:iam::111111111111:user/eve",
        "--action",
        "s3:GetObject",
        "--resource",
        "*",
    )
    assert result.returncode == 2
    assert "is not a user or role in this config" in result.stderr
