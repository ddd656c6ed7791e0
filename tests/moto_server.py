"""moto's server mode on a loopback port: the stand-in for real AWS STS, IAM and S3.

There is no internet here, so tests that need "real AWS" talk to moto over real HTTP, with
real botocore clients. Start it once per session (:func:`moto_server`) and take a fresh
state per test (:func:`moto`, which resets every moto backend first).

moto is a lenient upstream, and tests should know how lenient (see the upstream tests'
module docstring for the consequences): it verifies no signature and no credentials, does
not require the role to exist or evaluate its trust policy, ignores ``Tags``,
``TransitiveTagKeys``, ``SourceIdentity`` and ``PolicyArns``, does not check
``DurationSeconds`` against the role's maximum, answers ``PackedPolicySize`` 6 whatever was
sent, and accepts any string as a web identity token. It does record ``Policy`` and
``ExternalId`` on the session it creates (:meth:`Moto.assumed_role`), works out the
account from the role ARN, and answers GetCallerIdentity for the credentials it issued.

Importing moto registers a (disabled) ``before-send`` handler in every botocore session
made afterwards; it only acts under ``mock_aws``, which these tests never use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer
from moto.sts.models import sts_backends

MOTO_ACCOUNT = "123456789012"
"""moto's default account: where roles created with :meth:`Moto.create_role` live."""

MOTO_KEY_ID = "AKIAMOTOTESTKEY00001"
MOTO_SECRET = "moto/secret/key/never/checked/by/moto/00"
"""Any credentials do for moto (it checks no signatures); these sign the tests' own calls."""

REGION = "us-east-1"


@dataclass
class Moto:
    """A running moto server and what tests do with it."""

    url: str
    server: ThreadedMotoServer

    def client(
        self,
        service: str,
        *,
        access_key_id: str = MOTO_KEY_ID,
        secret_access_key: str = MOTO_SECRET,
        session_token: str | None = None,
    ) -> Any:
        """A boto3 client for ``service`` pointed at moto (one attempt: failures show)."""
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            config=Config(retries={"mode": "standard", "max_attempts": 1}),
        )

    def create_role(
        self,
        name: str,
        *,
        trust_policy: Mapping[str, Any] | None = None,
        max_session_duration: int = 3600,
    ) -> dict[str, Any]:
        """Create an IAM role through moto's IAM API; returns IAM's ``Role`` (Arn, RoleId)."""
        trust = trust_policy or {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{MOTO_ACCOUNT}:root"},
                    "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
                }
            ],
        }
        answer = self.client("iam").create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust),
            MaxSessionDuration=max_session_duration,
        )
        return dict(answer["Role"])

    def reset(self) -> None:
        """Forget every role, bucket and session (moto's own reset endpoint)."""
        httpx.post(f"{self.url}/moto-api/reset").raise_for_status()

    @staticmethod
    def assumed_role(access_key_id: str, account: str = MOTO_ACCOUNT) -> Any:
        """What moto recorded for the session behind ``access_key_id`` (or None).

        Reads moto's in-process backend (the server runs in this process): the only way to
        see what it kept of a request, since it answers little of it back.
        """
        return sts_backends[account]["aws"].get_assumed_role_from_access_key(access_key_id)


@contextmanager
def running_moto() -> Iterator[Moto]:
    """moto on 127.0.0.1, a port the kernel picked (port 0: no race), until the block ends."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield Moto(url=f"http://{host}:{port}", server=server)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Moto]:
    """One moto server for the whole session (starting one takes a moment)."""
    with running_moto() as moto:
        yield moto


@pytest.fixture
def moto(moto_server: Moto) -> Moto:
    """The session's moto server, reset so this test starts from an empty account."""
    moto_server.reset()
    return moto_server
