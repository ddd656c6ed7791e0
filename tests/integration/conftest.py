"""A real broker on a loopback port, configured from a real YAML file, for boto3 and the CLI.

The server runs in a thread under uvicorn with the app from :func:`broker.app.create_app`,
bound to a socket we opened on port 0 (no port race). Its clock is the wall clock plus an
offset the tests can move, so expiry is tested without waiting while boto3 keeps signing
with real time.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import uvicorn
import yaml
from botocore.config import Config

from broker.app import create_app
from broker.config import load_config
from broker.totp import decode_secret, totp_now

DEV = "111111111111"
PROD = "222222222222"


class OffsetClock:
    """Wall clock plus a movable offset."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset


@dataclass
class Key:
    id: str
    secret: str


@dataclass
class Broker:
    url: str
    clock: OffsetClock
    config_path: Path
    keys: dict[str, Key]
    totp: dict[str, str]
    """User name -> base32 TOTP seed."""

    def sts(
        self,
        user: str | None = None,
        *,
        endpoint: str | None = None,
        retry: bool = True,
        **creds: Any,
    ) -> Any:
        """A boto3 STS client for a configured user, or for explicit credentials.

        ``retry=False``: one attempt per call (botocore's client ``max_attempts: 1`` still
        means one *retry*), for tests that count calls against a rate limit.
        """
        if user is not None:
            creds = {
                "aws_access_key_id": self.keys[user].id,
                "aws_secret_access_key": self.keys[user].secret,
            }
        return boto3.client(
            "sts",
            endpoint_url=endpoint or self.url,
            region_name="us-east-1",
            # Server-side validation is what is under test: botocore must not pre-empt it.
            config=Config(
                retries={"total_max_attempts": 2 if retry else 1, "mode": "standard"},
                parameter_validation=False,
            ),
            **creds,
        )

    def code(self, user: str) -> str:
        """The TOTP code the user's authenticator shows now (broker clock)."""
        return totp_now(decode_secret(self.totp[user]), self.clock.time())

    def fresh_code(self, user: str) -> str:
        """Move the broker's clock to the next 30 s step and return that step's code.

        A code is accepted once per device, so every MFA use needs a new step. The offset
        only grows (going back would land on used steps); keep MFA uses under ~25 in the
        suite so the broker stays within SigV4's 15-minute window of boto3's real clock.
        """
        self.clock.offset += 30
        return self.code(user)


def client_credentials(credentials: Mapping[str, Any]) -> dict[str, str]:
    """An STS answer's ``Credentials`` as boto3 client arguments."""
    return {
        "aws_access_key_id": credentials["AccessKeyId"],
        "aws_secret_access_key": credentials["SecretAccessKey"],
        "aws_session_token": credentials["SessionToken"],
    }


def session_client(broker: Broker, credentials: dict[str, Any]) -> Any:
    return broker.sts(**client_credentials(credentials))


def _key(n: int) -> Key:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    body = "".join(alphabet[b % 32] for b in os.urandom(16))
    return Key(id=f"AKIA{body}", secret=base64.b64encode(os.urandom(30)).decode())


def _allow(action: str | list[str], resource: str | list[str]) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _trust(principal: Any, actions: Any = "sts:AssumeRole", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": actions, **extra}


def write_config(path: Path, keys: dict[str, Key], totp: dict[str, str], public_url: str) -> None:
    role = f"arn:aws:iam::{DEV}:role"
    config = {
        "public_url": public_url,
        "region": "us-east-1",
        "state": f"sqlite:///{path.parent / 'state.db'}",
        "token_keys": [{"id": "test1", "secret": "${TEST_TOKEN_KEY}"}],
        "managed_policies": {
            "ReadOnlyS3": _doc(_allow(["s3:Get*", "s3:List*"], "*")),
        },
        "accounts": {
            DEV: {
                "alias": "dev",
                "outbound_web_identity_federation": True,
                "users": {
                    "alice": {
                        "access_keys": [{"id": keys["alice"].id, "secret": keys["alice"].secret}],
                        "mfa_devices": [
                            {
                                "serial": f"arn:aws:iam::{DEV}:mfa/alice",
                                "totp_secret": totp["alice"],
                            }
                        ],
                        "tags": {"team": "platform"},
                        "policies": {
                            "assume": _doc(
                                _allow(
                                    ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
                                    [f"arn:aws:iam::{PROD}:role/UpdateApp", f"{role}/*"],
                                ),
                                _allow(["sts:GetAccessKeyInfo", "sts:GetWebIdentityToken"], "*"),
                            )
                        },
                    },
                    "bob": {
                        "access_keys": [
                            {"id": keys["bob"].id, "secret": keys["bob"].secret},
                            {
                                "id": keys["bob_old"].id,
                                "secret": keys["bob_old"].secret,
                                "status": "Inactive",
                            },
                        ],
                    },
                    "dave": {
                        "access_keys": [{"id": keys["dave"].id, "secret": keys["dave"].secret}],
                        "policies": {
                            "federate": _doc(
                                _allow(
                                    ["sts:GetFederationToken", "sts:TagSession"],
                                    f"arn:aws:sts::{DEV}:federated-user/*",
                                ),
                                _allow(
                                    ["s3:GetObject", "s3:PutObject"], "arn:aws:s3:::dave-bucket/*"
                                ),
                            )
                        },
                    },
                    "carol": {
                        "access_keys": [{"id": keys["carol"].id, "secret": keys["carol"].secret}],
                        "policies": {
                            "mixed": _doc(
                                _allow("sts:AssumeRole", "*"),
                                {
                                    "Effect": "Deny",
                                    "Action": "sts:AssumeRole",
                                    "Resource": f"{role}/Dev",
                                },
                            )
                        },
                    },
                },
                "roles": {
                    "Dev": {
                        "max_session_duration": 7200,
                        "trust_policy": _doc(_trust({"AWS": f"arn:aws:iam::{DEV}:root"})),
                        "policies": {
                            "chain": _doc(
                                _allow(
                                    [
                                        "sts:AssumeRole",
                                        "sts:TagSession",
                                        "sts:SetSourceIdentity",
                                        "sts:GetWebIdentityToken",
                                    ],
                                    "*",
                                )
                            )
                        },
                    },
                    "Tagged": {
                        "trust_policy": _doc(
                            _trust(
                                {"AWS": f"arn:aws:iam::{DEV}:root"},
                                ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
                            )
                        ),
                        "policies": {
                            "chain": _doc(
                                _allow(
                                    ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
                                    "*",
                                )
                            )
                        },
                    },
                    "NoTags": {
                        "trust_policy": _doc(_trust({"AWS": f"arn:aws:iam::{DEV}:root"})),
                    },
                    "Partner": {
                        "trust_policy": _doc(
                            _trust(
                                {"AWS": f"arn:aws:iam::{DEV}:root"},
                                Condition={"StringEquals": {"sts:ExternalId": "partner-7731"}},
                            )
                        ),
                    },
                    "AliceOnly": {
                        "trust_policy": _doc(_trust({"AWS": f"arn:aws:iam::{DEV}:user/alice"})),
                    },
                    "BobDirect": {
                        "trust_policy": _doc(_trust({"AWS": f"arn:aws:iam::{DEV}:user/bob"})),
                    },
                },
            },
            PROD: {
                "alias": "prod",
                "roles": {
                    "UpdateApp": {
                        "max_session_duration": 7200,
                        "trust_policy": _doc(
                            _trust(
                                {"AWS": f"arn:aws:iam::{DEV}:root"},
                                ["sts:AssumeRole", "sts:TagSession"],
                                Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}},
                            )
                        ),
                        "policies": {
                            "app": _doc(
                                _allow(
                                    ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
                                    [
                                        "arn:aws:s3:::prod-app-bucket",
                                        "arn:aws:s3:::prod-app-bucket/*",
                                    ],
                                ),
                                _allow("sts:GetWebIdentityToken", "*"),
                            )
                        },
                    },
                    "OpenToDev": {
                        "trust_policy": _doc(_trust({"AWS": f"arn:aws:iam::{DEV}:root"})),
                    },
                },
            },
        },
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@dataclass
class Running:
    server: uvicorn.Server
    thread: threading.Thread


def bind_loopback() -> socket.socket:
    """A socket on a free loopback port, bound now so there is no port race."""
    # proto=IPPROTO_TCP lets asyncio set TCP_NODELAY (it checks sock.proto); else Nagle adds ~40 ms.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


HTTP_PARSERS = ("h11", "httptools")
"""The HTTP/1.1 parsers uvicorn offers; ``serve`` picks httptools when it is installed."""


def start_server(
    app: Any,
    sock: socket.socket | None = None,
    *,
    http: Any = "auto",
    also: Sequence[socket.socket] = (),
    **options: Any,
) -> tuple[str, Running]:
    """Serve ``app`` in a thread on ``sock`` (and on the sockets ``also`` names, as ``serve``
    serves the admin listener); ``http`` picks uvicorn's parser (``auto``: httptools if
    installed, as ``sts-broker serve`` does), ``options`` go to ``uvicorn.Config`` (an
    ``http`` among them, as :func:`broker.web.connection_limits.uvicorn_options` gives,
    wins). Returns the first socket's URL."""
    sock = sock or bind_loopback()
    port = sock.getsockname()[1]
    # proxy_headers=False, as `sts-broker serve` runs it: the app alone decides whether to
    # believe X-Forwarded-For (trusted_proxies), never uvicorn's default trust of 127.0.0.1.
    settings: dict[str, Any] = {"http": http, "proxy_headers": False, **options}
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **settings))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock, *also]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("broker did not start")
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}", Running(server, thread)


def stop_server(running: Running) -> None:
    running.server.should_exit = True
    running.thread.join(timeout=10)


def free_port() -> int:
    """A loopback port free right now, for a child process that binds it itself."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServedProcess:
    """A running ``sts-broker serve``: its URL, and once stopped, everything it printed."""

    url: str
    output: str = ""


@contextmanager
def serve_process(command: list[str], *, cwd: Path | None = None) -> Iterator[ServedProcess]:
    """Run ``command --port PORT`` (an ``sts-broker serve``) as a real process until exit.

    Tests of the command line and of the docs need the real entry point, not the in-thread
    app: it waits for ``/healthz`` (20 s at most, or until the process dies) and, on exit,
    stops the process and keeps its combined output so callers can check what it logged.
    """
    port = free_port()
    # Configs that derive URLs from it (config/demo.yaml) then match the port served on.
    env = {**os.environ, "STS_BROKER_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    proc = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = ServedProcess(url=f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                if httpx.get(f"{served.url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"broker did not start: {proc.stdout.read() if proc.stdout else ''}"
                )
            time.sleep(0.1)
        yield served
    finally:
        proc.terminate()
        served.output, _ = proc.communicate(timeout=10)


@contextmanager
def served_broker(
    folder: Path,
    *,
    http: str = "auto",
    clock: OffsetClock | None = None,
    edit: Callable[[dict[str, Any]], None] | None = None,
    also: Sequence[socket.socket] = (),
) -> Iterator[Broker]:
    """The test config (``write_config``) written to ``folder`` and served on loopback.

    ``edit`` changes the YAML document before it is loaded (settings under test); ``also``
    are more sockets the same server accepts on (an admin listener).
    """
    keys = {name: _key(i) for i, name in enumerate(["alice", "bob", "bob_old", "carol", "dave"])}
    totp = {"alice": base64.b32encode(os.urandom(20)).decode()}
    path = folder / "broker.yaml"
    sock = bind_loopback()
    # public_url is the real address: the broker is also an OIDC issuer at that URL.
    write_config(path, keys, totp, f"http://127.0.0.1:{sock.getsockname()[1]}")
    if edit is not None:
        document = yaml.safe_load(path.read_text())
        edit(document)
        path.write_text(yaml.safe_dump(document, sort_keys=False))
    config = load_config(
        path, environ={"TEST_TOKEN_KEY": base64.b64encode(os.urandom(32)).decode()}
    )
    clock = clock or OffsetClock()
    url, running = start_server(create_app(config, clock=clock), sock, http=http, also=also)
    try:
        yield Broker(url=url, clock=clock, config_path=path, keys=keys, totp=totp)
    finally:
        stop_server(running)


@pytest.fixture(scope="session", params=HTTP_PARSERS)
def broker(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Broker]:
    """The shared test broker, once per HTTP parser: every test that uses it (the STS
    actions, SigV4 refusals, console federation, the answers' headers) runs on h11 and on
    httptools, each broker with its own clock and state."""
    with served_broker(tmp_path_factory.mktemp("broker"), http=request.param) as served:
        yield served


@pytest.fixture
def clock_reset(broker: Broker) -> Iterator[OffsetClock]:
    """Tests that jump the clock forward get it back where it was afterwards."""
    before = broker.clock.offset
    yield broker.clock
    broker.clock.offset = before
