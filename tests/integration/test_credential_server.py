"""``sts-broker serve-credentials`` as workloads use it: the real command serving a real
login's credentials, and boto3 and the AWS CLI in subprocesses whose environment holds
nothing but the variables it printed (plus ``PATH`` and an empty ``HOME``).

The non-loopback refusal is tested twice. For real: a TCP connection to the server's
``127.0.0.1`` port from a socket bound to one of this machine's own non-loopback addresses
(Linux routes it over ``lo``, and the server sees that address as the peer; no packet
leaves the machine, no other host is involved; the address is found with a UDP
``connect``, which sends nothing). And at the socket level on any machine: the server
handles one request over a ``socketpair`` whose peer address it is told is
``192.0.2.7`` (TEST-NET-1), so the check runs on real bytes whatever the machine has.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from broker.client.cache import CredentialCache
from broker.client.credential_server import CredentialServer, CredentialSource
from tests.integration.cli_setup import (
    READER_SESSION,
    CliBroker,
    CliHome,
    logged_in,
)

AWS = str(Path(sys.executable).parent / "aws")
WHO_AM_I = (
    "import sys, boto3\n"
    "session = boto3.Session()\n"
    "sts = session.client('sts', endpoint_url=sys.argv[1], region_name='us-east-1')\n"
    "print(sts.get_caller_identity()['Arn'])\n"
    "print(session.get_credentials().method)\n"
)


@dataclass
class Served:
    variables: dict[str, str]
    said: str

    @property
    def url(self) -> str:
        return self.variables["AWS_CONTAINER_CREDENTIALS_FULL_URI"]

    @property
    def base(self) -> str:
        return self.url.rsplit("/", 1)[0]

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])


@contextmanager
def serving(user: CliHome, *flags: str) -> Iterator[Served]:
    """``serve-credentials --profile svc FLAGS`` until the block ends (then Ctrl-C)."""
    proc = user.start("serve-credentials", "--profile", "svc", "--shell", "bash", *flags)
    assert proc.stdout is not None and proc.stderr is not None
    count = 3 if "--imds" in flags else 2
    lines = [proc.stdout.readline() for _ in range(count)]
    said = proc.stderr.readline()
    variables = {}
    for line in lines:
        name, _, value = line.strip().removeprefix("export ").partition("=")
        variables[name] = value.strip("'")
    try:
        yield Served(variables, said)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def _clean_env(user: CliHome, **variables: str) -> dict[str, str]:
    """Only PATH, an empty HOME and the served variables: nothing else to find keys in."""
    home = user.root / "workload-home"
    home.mkdir(exist_ok=True)
    return {"PATH": user.env["PATH"], "HOME": str(home), **variables}


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def _callers(broker: str, env: dict[str, str]) -> tuple[str, str, str]:
    """(boto3's caller ARN, the credential provider boto3 used, the AWS CLI's caller ARN)."""
    boto = _run([sys.executable, "-c", WHO_AM_I, broker], env)
    assert boto.returncode == 0, boto.stderr
    arn, method = boto.stdout.splitlines()
    region = ["--region", "us-east-1"]
    aws = _run([AWS, "sts", "get-caller-identity", "--endpoint-url", broker, *region], env)
    assert aws.returncode == 0, aws.stderr
    return arn, method, json.loads(aws.stdout)["Arn"]


def test_boto3_and_the_aws_cli_get_credentials_from_the_ecs_endpoint(
    cli: CliBroker, user: CliHome
) -> None:
    logged_in(cli, user, "svc")
    with serving(user) as served:
        assert set(served.variables) == {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        }
        assert served.url == f"http://127.0.0.1:{served.port}/credentials"
        assert len(served.variables["AWS_CONTAINER_AUTHORIZATION_TOKEN"]) == 43
        assert "Serving the credentials of svc" in served.said
        env = _clean_env(user, **served.variables)
        assert _callers(cli.url, env) == (READER_SESSION, "container-role", READER_SESSION)

        # The answer is the documented shape; credentials about to expire are refreshed.
        token = served.variables["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
        first = httpx.get(served.url, headers={"Authorization": token}).json()
        assert set(first) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "RoleArn"}
        assert first["RoleArn"].endswith(":role/CliReader")
        cached = user.cache("svc")
        soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 300))
        cached["credentials"]["Expiration"] = soon
        user.cache_file("svc").write_text(json.dumps(cached))
        second = httpx.get(served.url, headers={"Authorization": token}).json()
        assert second["AccessKeyId"] != first["AccessKeyId"]
        assert second["Expiration"] != soon

        # IMDS is off unless asked for.
        assert httpx.put(f"{served.base}/latest/api/token").status_code == 404


def test_boto3_and_the_aws_cli_get_credentials_from_imdsv2(cli: CliBroker, user: CliHome) -> None:
    logged_in(cli, user, "svc")
    with serving(user, "--imds") as served:
        endpoint = served.variables["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
        assert endpoint == f"{served.base}/"
        env = _clean_env(user, AWS_EC2_METADATA_SERVICE_ENDPOINT=endpoint)
        assert _callers(cli.url, env) == (READER_SESSION, "iam-role", READER_SESSION)

        ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        token = httpx.put(f"{served.base}/latest/api/token", headers=ttl).text
        roles = f"{served.base}/latest/meta-data/iam/security-credentials/"
        named = httpx.get(roles, headers={"X-aws-ec2-metadata-token": token})
        assert named.text == "CliReader"
        creds = httpx.get(f"{roles}CliReader", headers={"X-aws-ec2-metadata-token": token}).json()
        assert creds["Code"] == "Success" and creds["Type"] == "AWS-HMAC"
        assert set(creds) == {
            "Code",
            "LastUpdated",
            "Type",
            "AccessKeyId",
            "SecretAccessKey",
            "Token",
            "Expiration",
        }


def _refusal(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


def test_requests_without_the_token_are_refused(cli: CliBroker, user: CliHome) -> None:
    logged_in(cli, user, "svc")
    with serving(user, "--imds") as served:
        token = served.variables["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
        assert _refusal(httpx.get(served.url)) == (401, "Unauthorized")
        other = "B" if token.endswith("A") else "A"  # one character off, never the same token
        wrong = httpx.get(served.url, headers={"Authorization": token[:-1] + other})
        assert _refusal(wrong) == (401, "Unauthorized")
        assert "AccessKeyId" not in wrong.text
        # Another Host (a rebinding web page's own name) is refused even with the token.
        rebound = httpx.get(served.url, headers={"Authorization": token, "Host": "evil.example"})
        assert _refusal(rebound) == (403, "Forbidden")
        # IMDSv2: no session token, a forged one, a proxied token request, a bad TTL.
        roles = f"{served.base}/latest/meta-data/iam/security-credentials/CliReader"
        assert _refusal(httpx.get(roles)) == (401, "Unauthorized")
        forged = httpx.get(roles, headers={"X-aws-ec2-metadata-token": token})
        assert _refusal(forged) == (401, "Unauthorized")
        ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        proxied = httpx.put(
            f"{served.base}/latest/api/token", headers={**ttl, "X-Forwarded-For": "10.0.0.1"}
        )
        assert _refusal(proxied) == (403, "Forbidden")
        for bad in ("0", "21601", "x", ""):
            answer = httpx.put(
                f"{served.base}/latest/api/token",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": bad},
            )
            assert _refusal(answer) == (400, "BadRequest")
        assert _refusal(httpx.get(f"{served.base}/latest/api/token")) == (405, "MethodNotAllowed")
        # A workload with the URI but not the token gets no credentials at all.
        env = _clean_env(user, AWS_CONTAINER_CREDENTIALS_FULL_URI=served.url)
        boto = _run([sys.executable, "-c", WHO_AM_I, cli.url], env)
        assert boto.returncode != 0
        assert "Unable to locate credentials" in boto.stderr or "401" in boto.stderr


def _own_non_loopback_address() -> str | None:
    """This machine's source address towards TEST-NET-1 (a UDP connect sends no packet)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


def _raw_get(sock: socket.socket, port: int, token: str) -> bytes:
    request = (
        f"GET /credentials HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: {token}\r\nConnection: close\r\n\r\n"
    )
    sock.sendall(request.encode())
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def test_a_request_from_a_non_loopback_address_is_refused(cli: CliBroker, user: CliHome) -> None:
    address = _own_non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    logged_in(cli, user, "svc")
    with serving(user) as served:
        token = served.variables["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
        with socket.socket() as sock:
            sock.bind((address, 0))
            sock.connect(("127.0.0.1", served.port))
            assert sock.getsockname()[0] == address  # the peer the server sees
            answer = _raw_get(sock, served.port, token)
        assert answer.startswith(b"HTTP/1.0 403 ")
        assert b'"code": "Forbidden"' in answer and b"AccessKeyId" not in answer
        with socket.create_connection(("127.0.0.1", served.port)) as sock:
            assert _raw_get(sock, served.port, token).startswith(b"HTTP/1.0 200 ")


def test_the_peer_address_check_at_the_socket_level(
    cli: CliBroker, user: CliHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    logged_in(cli, user, "svc")
    monkeypatch.setenv("HOME", str(user.home))
    server = CredentialServer(CredentialSource(CredentialCache(), "svc"), port=0, imds=False)
    try:
        for peer, status in ((("192.0.2.7", 40000), b"403"), (("127.0.0.1", 40000), b"200")):
            ours, theirs = socket.socketpair()
            with ours, theirs:
                handler = threading.Thread(target=server.process_request, args=(theirs, peer))
                handler.start()
                answer = _raw_get(ours, server.port, server.token)
                handler.join(timeout=10)
            assert answer.split(b" ", 2)[1] == status, answer
    finally:
        server.server_close()


def test_serving_an_unknown_profile_or_a_busy_port_says_why(cli: CliBroker, user: CliHome) -> None:
    none = user.run("serve-credentials", "--profile", "nobody")
    assert none.returncode == 1 and "no cached login for profile 'nobody'" in none.stderr
    logged_in(cli, user, "svc")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = user.run("serve-credentials", "--profile", "svc", "--port", str(port))
    assert done.returncode == 1
    assert done.stderr == (
        f"sts-broker serve-credentials: cannot listen on 127.0.0.1:{port}: address already "
        "in use; choose another --port (0: any free one)\n"
    )
