"""The broker's buckets: which calls share one, what a refusal is, and a Store that fails.

Driven with a frozen clock over the memory store (the backends' own behaviour is the Store
contract in test_store.py); the failing store is a real Store implementation whose every
call raises what a dead Redis raises, so the fallback is exercised as it runs in a broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from broker.clock import FrozenClock
from broker.config import ActionLimits, RateLimit, ThrottlingSettings
from broker.store import MemoryStore, StoreUnavailableError
from broker.throttling import Throttle, Throttled, address_key, federated_principal

SETTINGS = ThrottlingSettings(
    principal=RateLimit(rate=1, burst=3),
    source_ip=RateLimit(rate=1, burst=5),
    actions={
        "AssumeRoleWithSAML": ActionLimits(principal=RateLimit(rate=1, burst=1)),
        "GetCallerIdentity": ActionLimits(source_ip=RateLimit(rate=1, burst=2)),
    },
    signin=RateLimit(rate=1, burst=2),
    device=RateLimit(rate=1, burst=1),
)


def _throttle(settings: ThrottlingSettings = SETTINGS) -> tuple[Throttle, FrozenClock]:
    clock = FrozenClock(1000.0)
    return Throttle(settings, MemoryStore(clock), clock), clock


def _admitted(calls: Callable[[], Awaitable[None]], times: int) -> list[bool]:
    """Which of ``times`` calls made in a row went through."""

    async def run() -> list[bool]:
        out = []
        for _ in range(times):
            try:
                await calls()
            except Throttled:
                out.append(False)
            else:
                out.append(True)
        return out

    return asyncio.run(run())


def test_a_refusal_is_aws_throttling_with_the_time_to_wait() -> None:
    throttle, _ = _throttle()
    _admitted(lambda: throttle.principal("AssumeRole", "AKIAALICE"), 3)
    with pytest.raises(Throttled) as caught:
        asyncio.run(throttle.principal("AssumeRole", "AKIAALICE"))
    refusal = caught.value
    assert (refusal.code, refusal.status, refusal.message, refusal.sender) == (
        "Throttling",
        400,
        "Rate exceeded",
        True,
    )
    assert refusal.retry_after == pytest.approx(1.0)


def test_one_principal_flooding_leaves_another_alone_and_refills() -> None:
    throttle, clock = _throttle()
    assert _admitted(lambda: throttle.principal("AssumeRole", "AKIAALICE"), 5) == [
        True,
        True,
        True,
        False,
        False,
    ]
    assert _admitted(lambda: throttle.principal("AssumeRole", "AKIABOB"), 1) == [True]
    # Actions without limits of their own share the principal's bucket.
    assert _admitted(lambda: throttle.principal("GetSessionToken", "AKIAALICE"), 1) == [False]
    clock.advance(1.0)
    assert _admitted(lambda: throttle.principal("GetSessionToken", "AKIAALICE"), 2) == [
        True,
        False,
    ]


def test_an_action_with_its_own_limit_has_its_own_bucket() -> None:
    throttle, _ = _throttle()
    subject = federated_principal("https://idp.example.com/saml", "alice")
    assert _admitted(lambda: throttle.principal("AssumeRoleWithSAML", subject), 2) == [True, False]
    # ... and leaves the shared one untouched.
    assert _admitted(lambda: throttle.principal("AssumeRole", subject), 3) == [True] * 3
    # GetCallerIdentity's own limit is per address only; per principal it shares.
    assert _admitted(lambda: throttle.source_ip("GetCallerIdentity", "203.0.113.7"), 3) == [
        True,
        True,
        False,
    ]
    assert _admitted(lambda: throttle.source_ip("AssumeRole", "203.0.113.7"), 6) == [True] * 5 + [
        False
    ]


def test_federated_principals_never_meet() -> None:
    assert federated_principal("https://a", "b/c") != federated_principal("https://a/b", "c")
    throttle, _ = _throttle(ThrottlingSettings(principal=RateLimit(rate=1, burst=1)))
    first = federated_principal("https://a", "b/c")
    second = federated_principal("https://a/b", "c")
    assert _admitted(lambda: throttle.principal("AssumeRoleWithWebIdentity", first), 1) == [True]
    assert _admitted(lambda: throttle.principal("AssumeRoleWithWebIdentity", second), 1) == [True]


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
    ],
)
def test_ipv6_sources_are_counted_per_64(address: str, key: str) -> None:
    assert address_key(address) == key


def test_one_ipv6_host_cannot_dodge_its_bucket_by_changing_address() -> None:
    throttle, _ = _throttle()
    hosts = iter(f"2001:db8:1:2::{i:x}" for i in range(1, 100))
    assert _admitted(lambda: throttle.source_ip("AssumeRole", next(hosts)), 6) == [True] * 5 + [
        False
    ]
    assert _admitted(lambda: throttle.source_ip("AssumeRole", "2001:db8:1:3::1"), 1) == [True]


def test_an_unknown_address_is_not_counted() -> None:
    throttle, _ = _throttle()
    assert _admitted(lambda: throttle.source_ip("AssumeRole", ""), 20) == [True] * 20
    assert _admitted(lambda: throttle.signin(""), 5) == [True] * 5


def test_signin_and_device_entry_have_their_own_buckets() -> None:
    throttle, _ = _throttle()
    assert _admitted(lambda: throttle.signin("203.0.113.7"), 3) == [True, True, False]
    assert _admitted(lambda: throttle.device("203.0.113.7"), 2) == [True, False]
    assert _admitted(lambda: throttle.source_ip("AssumeRole", "203.0.113.7"), 1) == [True]


def test_disabled_throttling_counts_nothing() -> None:
    throttle, _ = _throttle(SETTINGS.model_copy(update={"enabled": False}))
    assert not throttle.enabled
    assert _admitted(lambda: throttle.principal("AssumeRole", "AKIAALICE"), 50) == [True] * 50
    assert _admitted(lambda: throttle.source_ip("AssumeRole", "203.0.113.7"), 50) == [True] * 50


class DeadStore(MemoryStore):
    """A Store whose backend is gone: every bucket call fails as RedisStore's would."""

    def __init__(self, clock: FrozenClock) -> None:
        super().__init__(clock)
        self.down = True
        self.calls = 0

    async def take_token(self, namespace: str, key: str, *, rate: float, burst: int) -> float:
        self.calls += 1
        if self.down:
            raise StoreUnavailableError("Redis at 127.0.0.1:6390 cannot be reached: refused")
        return await super().take_token(namespace, key, rate=rate, burst=burst)


def test_store_down_keeps_limiting_in_process_and_asks_again_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FrozenClock(1000.0)
    store = DeadStore(clock)
    throttle = Throttle(SETTINGS, store, clock, fallback_seconds=5.0)
    caplog.set_level(logging.WARNING, logger="broker.throttling")
    # Fail open to this process's buckets: the limit still holds, nothing raises else.
    assert _admitted(lambda: throttle.principal("AssumeRole", "AKIAALICE"), 4) == [
        True,
        True,
        True,
        False,
    ]
    assert store.calls == 1  # asked once, then left alone for fallback_seconds
    assert [r.getMessage() for r in caplog.records] == [
        "rate-limit buckets are kept in this process for 5 s (limits hold per process, not per "
        "cluster, until the store answers): Redis at 127.0.0.1:6390 cannot be reached: refused"
    ]
    clock.advance(4.9)
    _admitted(lambda: throttle.principal("AssumeRole", "AKIABOB"), 1)
    assert store.calls == 1
    store.down = False
    clock.advance(0.2)
    assert _admitted(lambda: throttle.principal("AssumeRole", "AKIACAROL"), 1) == [True]
    assert store.calls == 2
    assert caplog.records[-1].getMessage() == "rate-limit buckets are back in the shared store"
    assert asyncio.run(store.get("throttle-principal", "* AKIACAROL")) is not None
