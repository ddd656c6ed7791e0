"""Fixtures for the upstream clients: moto, the broker's own AWS profiles, a clean AWS env.

botocore reads the environment and the shared config files whenever a session is made, so
every test here gets files of its own (:class:`AwsFiles`) and an environment with no stray
``AWS_*`` variable: what a client finds is exactly what the test wrote.
"""

from __future__ import annotations

import asyncio
import configparser
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.integration.conftest import Broker
from tests.moto_server import MOTO_KEY_ID, MOTO_SECRET, moto, moto_server

__all__ = ["AwsFiles", "aws", "broker_profiles", "moto", "moto_server", "run"]

T = TypeVar("T")

MOTO_SESSION_TOKEN = "moto-profile-session-token/never/to/be/logged/ZZZ"
"""The "moto" profile's session token: botocore sends it as X-Amz-Security-Token."""

_CLEARED = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_STS_REGIONAL_ENDPOINTS",
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """The repo's way to test async code: one ``asyncio.run`` per test."""
    return asyncio.run(coro)


@dataclass
class AwsFiles:
    """This test's ~/.aws/config: profiles the broker's upstream client may name."""

    config: Path

    def add_profile(self, name: str, **settings: str) -> str:
        parser = configparser.RawConfigParser()
        parser.read(self.config)
        parser[f"profile {name}"] = settings
        with self.config.open("w") as out:
            parser.write(out)
        return name

    def add_keys(self, name: str, key_id: str, secret: str, token: str | None = None) -> str:
        settings = {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
        if token is not None:
            settings["aws_session_token"] = token
        return self.add_profile(name, **settings)


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AwsFiles:
    """A clean AWS environment with a "moto" profile (static keys plus a session token).

    No instance metadata lookups either: a test that finds no credentials must fail at once.
    """
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "aws-config"
    credentials = tmp_path / "aws-credentials"
    credentials.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    files = AwsFiles(config=config)
    files.add_keys("moto", MOTO_KEY_ID, MOTO_SECRET, MOTO_SESSION_TOKEN)
    return files


@pytest.fixture
def broker_profiles(aws: AwsFiles, broker: Broker) -> Broker:
    """Profiles for the test broker's IAM users (``alice``, ``bob``) and a wrong secret."""
    for user in ("alice", "bob"):
        aws.add_keys(user, broker.keys[user].id, broker.keys[user].secret)
    aws.add_keys("alice-wrong-secret", broker.keys["alice"].id, "x" * 40)
    return broker
