"""The `sts-broker` command as users run it: a real process serving the demo config."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from broker.totp import decode_secret, totp_now
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


def test_check_config_reports_schema_policy_and_cross_key_mistakes_at_once(
    tmp_path: Path,
) -> None:
    """An unknown key, a schema mistake, a cross-key mistake and two bad policies (one with
    three mistakes): all reported in one run, in line order, each policy mistake at the
    line of its own element. The whole output is compared."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "public_url: http://127.0.0.1:8080\n"  # 1
        "regoin: us-east-1\n"  # 2: unknown key
        "accounts:\n"  # 3
        '  "111111111111":\n'  # 4
        "    alias: dev\n"  # 5
        "    roles:\n"  # 6
        "      Dev:\n"  # 7
        "        max_session_duration: 99999\n"  # 8: out of range
        "        trust_policy:\n"  # 9
        '          Version: "2012-10-17"\n'  # 10
        "          Statement:\n"  # 11
        "            - Effect: Allow\n"  # 12: no Principal
        "              Action: sts:AssumeRole\n"  # 13
        "            - Effect: Permit\n"  # 14: not an effect
        '              Principal: {AWS: "111111111111"}\n'  # 15
        "              Action: [sts:AssumeRole, AssumeRole]\n"  # 16: no vendor
        "        policies:\n"  # 17
        "          s3:\n"  # 18
        '            Version: "2012-10-17"\n'  # 19
        "            Statement:\n"  # 20
        "              - Effect: Allow\n"  # 21
        "                Action: s3:GetObject\n"  # 22
        "                Resource: bucket/*\n"  # 23: not an ARN
        '  "222222222222":\n'  # 24
        "    alias: dev\n"  # 25: alias used twice
    )
    result = _cli("check-config", str(bad))
    assert result.returncode == 2
    role = "accounts.111111111111.roles.Dev"
    assert result.stdout == ""
    assert result.stderr == (
        f"{bad}:2: regoin: unknown key 'regoin' (did you mean 'region'?)\n"
        f"{bad}:8: {role}.max_session_duration: must be between 3600 and 43200 (got 99999)\n"
        f"{bad}:12: {role}.trust_policy.Statement[0]: malformed policy: "
        "Missing required field Principal.\n"
        f"{bad}:14: {role}.trust_policy.Statement[1].Effect: malformed policy: "
        "Invalid effect: Permit.\n"
        f"{bad}:16: {role}.trust_policy.Statement[1].Action[1]: malformed policy: "
        "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc. "
        "Invalid action: AssumeRole.\n"
        f"{bad}:23: {role}.policies.s3.Statement[0].Resource: malformed policy: "
        'Resource bucket/* must be in ARN format or "*".\n'
        f"{bad}:25: accounts.222222222222.alias: account alias 'dev' is already used at "
        "accounts.111111111111.alias\n"
    )


def test_check_config_explains_a_yaml_syntax_error_and_stops(tmp_path: Path) -> None:
    """The value on line 5 holds an unquoted ': '; the unknown key and the bad policy
    below it cannot be read, so nothing else is reported. The whole output is compared."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "public_url: http://127.0.0.1:8080\n"
        "accounts:\n"
        '  "111111111111":\n'
        "    roles:\n"
        "      Dev:\n"
        "        description: Dev: day-to-day work\n"
        "        regoin: x\n"
        "        trust_policy: {Statement: []}\n"
    )
    result = _cli("check-config", str(bad))
    assert result.returncode == 2
    assert result.stderr == (
        f"{bad}:6: YAML syntax error: a second ': ' at column 25, inside a value. Hint: "
        "quote a value that contains ': ', e.g. description: \"Dev: day-to-day work\" "
        "(the rest of the file is checked once this is fixed)\n"
    )
    tab = tmp_path / "tab.yaml"
    tab.write_text("public_url: http://127.0.0.1:8080\naccounts:\n\t'111111111111': {}\n")
    result = _cli("check-config", str(tab))
    assert result.returncode == 2
    assert result.stderr == (
        f"{tab}:3: YAML syntax error: a tab at column 1; YAML indents with spaces only. "
        "Hint: replace the tab with spaces (the rest of the file is checked once this is "
        "fixed)\n"
    )


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


def test_serve_on_a_busy_port_says_which_and_what_to_do() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "STS_BROKER_PUBLIC_URL": f"http://127.0.0.1:{port}"}
        result = _cli("serve", "config/demo.yaml", env=env)
    assert result.returncode == 1
    # Said before the app is built: no key warnings, no uvicorn "[Errno 98]".
    assert result.stderr == (
        f"sts-broker serve: port {port} on 127.0.0.1 is already in use (another sts-broker, "
        f"or another program: ss -ltnp 'sport = :{port}' shows which). Stop it, or serve on "
        f"another port: STS_BROKER_PUBLIC_URL=http://127.0.0.1:{port + 1} sts-broker serve "
        "config/demo.yaml\n"
    )


def test_totp_prints_the_demo_devices_code() -> None:
    before = time.time()
    result = _cli("totp")
    assert result.returncode == 0, result.stderr
    codes = {
        totp_now(decode_secret("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"), t)
        for t in (before, time.time())
    }
    assert result.stdout.strip() in codes and len(result.stdout.strip()) == 6
    other = base64.b32encode(os.urandom(20)).decode()
    before = time.time()
    printed = _cli("totp", other).stdout.strip()
    assert printed in {totp_now(decode_secret(other), t) for t in (before, time.time())}
    bad = _cli("totp", "not base32!")
    assert bad.returncode == 2 and "is not base32" in bad.stderr
