"""Fixtures for every test folder: one real ``redis-server`` shared by the whole session,
and the CLI hand-off's broker and user machine (integration, security and browser tests
all drive the real CLI).

Tests that stop, pause or reconfigure a server start their own with
:func:`tests.redis_server.running_redis` instead, so they never disturb this one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.redis_server import RedisServer, running_redis

if TYPE_CHECKING:
    from tests.integration.cli_setup import CliBroker, CliHome


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A started server on a free loopback port (skips, or fails, without the binary)."""
    with running_redis() as server:
        yield server


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliBroker]:
    """The CLI hand-off's broker and fixture SAML IdP (``cli_setup``), one per test module."""
    from tests.integration.cli_setup import cli_broker  # noqa: PLC0415 - imports the integration conftest

    with cli_broker(tmp_path_factory.mktemp("cli")) as setup:
        yield setup


@pytest.fixture
def user(tmp_path: Path) -> Iterator[CliHome]:
    """A user's machine for the CLI (``cli_setup.cli_home``); its leftover processes end."""
    from tests.integration.cli_setup import cli_home  # noqa: PLC0415 - imports the integration conftest

    home = cli_home(tmp_path)
    yield home
    home.stop()
