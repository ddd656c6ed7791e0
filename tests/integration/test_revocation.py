"""Revoking the active sessions of a role (issue 15, finding 7), as AWS's "Revoke active
sessions" does: every session of that role issued up to the revocation is denied on its next
signed call, on every broker that shares the state store; sessions issued later work.

Two real brokers serve one config and one SQLite state file (as two nodes would); the
revocation is written by the real ``sts-broker revoke-sessions`` command, and by the admin
API, signed with SigV4 by a caller whose policy allows ``sts-broker:RevokeSessions``.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from broker.app import create_app
from broker.config import load_config
from tests.integration.conftest import (
    DEV,
    Broker,
    Key,
    OffsetClock,
    _key,
    bind_loopback,
    session_client,
    start_server,
    stop_server,
    write_config,
)

ROOT = Path(__file__).resolve().parents[2]
CLI = (sys.executable, "-m", "broker")
DEV_ROLE = f"arn:aws:iam::{DEV}:role/Dev"
TAGGED_ROLE = f"arn:aws:iam::{DEV}:role/Tagged"
NOTAGS_ROLE = f"arn:aws:iam::{DEV}:role/NoTags"


@dataclass
class Nodes:
    a: Broker
    b: Broker
    config_path: Path
    environ: dict[str, str]
    admin: Key


def _admin_policy() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sts-broker:RevokeSessions", "Resource": NOTAGS_ROLE}
        ],
    }


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    folder = tmp_path_factory.mktemp("revocation")
    keys = {
        name: _key(i) for i, name in enumerate(["alice", "bob", "bob_old", "carol", "dave", "ops"])
    }
    totp = {"alice": base64.b32encode(os.urandom(20)).decode()}
    sock_a, sock_b = bind_loopback(), bind_loopback()
    path = folder / "broker.yaml"
    write_config(path, keys, totp, f"http://127.0.0.1:{sock_a.getsockname()[1]}")
    data = yaml.safe_load(path.read_text())
    data["revocation"] = {"cache_seconds": 0}  # see test_revocation_cache for the cache
    data["accounts"][DEV]["users"]["ops"] = {
        "access_keys": [{"id": keys["ops"].id, "secret": keys["ops"].secret}],
        "policies": {"revoke": _admin_policy()},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    environ = {"TEST_TOKEN_KEY": base64.b64encode(os.urandom(32)).decode()}
    brokers, running = [], []
    for sock in (sock_a, sock_b):
        clock = OffsetClock()
        url, server = start_server(
            create_app(load_config(path, environ=environ), clock=clock), sock
        )
        brokers.append(Broker(url=url, clock=clock, config_path=path, keys=keys, totp=totp))
        running.append(server)
    try:
        yield Nodes(brokers[0], brokers[1], path, environ, keys["ops"])
    finally:
        for server in running:
            stop_server(server)


def _revoke_sessions(nodes: Nodes, role: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "revoke-sessions", "-c", str(nodes.config_path), "--role", role],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={**os.environ, **nodes.environ},
    )


def _denied(broker: Broker, creds: dict[str, Any]) -> str:
    with pytest.raises(ClientError) as caught:
        session_client(broker, creds).get_caller_identity()
    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
        "AccessDenied",
        403,
    )
    return str(error["Error"]["Message"])


def _works(broker: Broker, creds: dict[str, Any]) -> str:
    return str(session_client(broker, creds).get_caller_identity()["Arn"])


def _next_second() -> None:
    """Sessions issued in the revocation's own second are revoked too (fail closed)."""
    time.sleep(1.05 - time.time() % 1)


def test_revoke_sessions_denies_earlier_sessions_on_every_node(nodes: Nodes) -> None:
    alice = nodes.a.sts("alice")
    before = alice.assume_role(RoleArn=DEV_ROLE, RoleSessionName="leaked")["Credentials"]
    chained_same = session_client(nodes.a, before).assume_role(
        RoleArn=DEV_ROLE, RoleSessionName="again"
    )["Credentials"]
    chained_other = session_client(nodes.a, before).assume_role(
        RoleArn=TAGGED_ROLE, RoleSessionName="hop"
    )["Credentials"]
    unrelated = alice.assume_role(RoleArn=TAGGED_ROLE, RoleSessionName="other")["Credentials"]
    assert _works(nodes.b, before).endswith("assumed-role/Dev/leaked")

    done = _revoke_sessions(nodes, DEV_ROLE)
    assert done.returncode == 0, done.stderr
    assert DEV_ROLE in done.stdout and "issued before" in done.stdout

    for node in (nodes.a, nodes.b):
        message = _denied(node, before)
        assert "revoked" in message and DEV_ROLE in message
        _denied(node, chained_same)  # a session of Dev, made by chaining
        _denied(node, chained_other)  # a session made from a revoked Dev session
        assert _works(node, unrelated).endswith("assumed-role/Tagged/other")
    # Nor can the revoked session make new ones.
    with pytest.raises(ClientError) as caught:
        session_client(nodes.b, before).assume_role(RoleArn=TAGGED_ROLE, RoleSessionName="x")
    assert caught.value.response["Error"]["Code"] == "AccessDenied"

    _next_second()
    after = nodes.b.sts("alice").assume_role(RoleArn=DEV_ROLE, RoleSessionName="fresh")
    for node in (nodes.a, nodes.b):
        assert _works(node, after["Credentials"]).endswith("assumed-role/Dev/fresh")


def test_console_sign_in_with_a_revoked_session_is_refused(nodes: Nodes) -> None:
    import json  # noqa: PLC0415

    creds = nodes.a.sts("alice").assume_role(RoleArn=NOTAGS_ROLE, RoleSessionName="console")[
        "Credentials"
    ]
    assert _revoke_sessions(nodes, NOTAGS_ROLE).returncode == 0
    session = json.dumps(
        {
            "sessionId": creds["AccessKeyId"],
            "sessionKey": creds["SecretAccessKey"],
            "sessionToken": creds["SessionToken"],
        }
    )
    response = httpx.get(
        f"{nodes.b.url}/federation", params={"Action": "getSigninToken", "Session": session}
    )
    assert response.status_code == 400
    assert "revoked" in response.json()["Error"]


def test_revoke_sessions_refuses_a_memory_state_and_an_unknown_role(
    nodes: Nodes, tmp_path: Path
) -> None:
    unknown = _revoke_sessions(nodes, f"arn:aws:iam::{DEV}:role/Nobody")
    assert unknown.returncode == 2
    assert "no role arn:aws:iam::111111111111:role/Nobody in" in unknown.stderr
    memory = tmp_path / "memory.yaml"
    data = yaml.safe_load(nodes.config_path.read_text())
    data["state"] = "memory"
    memory.write_text(yaml.safe_dump(data))
    refused = _revoke_sessions(
        Nodes(nodes.a, nodes.b, memory, nodes.environ, nodes.admin), DEV_ROLE
    )
    assert refused.returncode == 2
    assert "state is memory" in refused.stderr
    assert "/admin/revoke-sessions" in refused.stderr


# --------------------------------------------------------------------------- the admin API


def _signed_post(url: str, key: Key, body: bytes) -> httpx.Response:
    request = AWSRequest(
        method="POST", url=url, data=body, headers={"content-type": "application/json"}
    )
    SigV4Auth(Credentials(key.id, key.secret), "sts", "us-east-1").add_auth(request)
    return httpx.post(url, content=body, headers=dict(request.headers.items()))


def test_the_admin_api_revokes_for_a_caller_allowed_to(nodes: Nodes) -> None:
    _next_second()  # past the CLI revocation of the test above
    creds = nodes.a.sts("alice").assume_role(RoleArn=NOTAGS_ROLE, RoleSessionName="api")[
        "Credentials"
    ]
    assert _works(nodes.b, creds)
    body = b'{"role_arn": "' + NOTAGS_ROLE.encode() + b'"}'
    url = f"{nodes.a.url}/admin/revoke-sessions"
    refused = _signed_post(url, nodes.a.keys["bob"], body)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "AccessDenied"
    assert "sts-broker:RevokeSessions" in refused.json()["error"]["message"]
    other = _signed_post(url, nodes.admin, b'{"role_arn": "' + DEV_ROLE.encode() + b'"}')
    assert other.status_code == 403  # allowed on NoTags only
    unsigned = httpx.post(url, content=body, headers={"content-type": "application/json"})
    assert unsigned.json()["error"]["code"] == "MissingAuthenticationToken"
    done = _signed_post(url, nodes.admin, body)
    assert done.status_code == 200, done.text
    assert done.json()["role_arn"] == NOTAGS_ROLE
    assert done.headers["cache-control"] == "no-store"
    _denied(nodes.a, creds)
    _denied(nodes.b, creds)
