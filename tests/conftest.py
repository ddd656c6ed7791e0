"""Fixtures for every test folder: one real ``redis-server`` shared by the whole session.

Tests that stop, pause or reconfigure a server start their own with
:func:`tests.redis_server.running_redis` instead, so they never disturb this one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.redis_server import RedisServer, running_redis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A started server on a free loopback port (skips, or fails, without the binary)."""
    with running_redis() as server:
        yield server
