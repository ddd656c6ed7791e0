"""Session revocation records: what they deny, how long a node trusts its cached answer,
and the ``aws:TokenIssueTime`` condition key AWS's own revocation policy is written with."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from broker.clock import FrozenClock, iso8601
from broker.errors import StsError
from broker.iam import AuthzRequest, authorize, parse_policy
from broker.identity import Caller, SessionClaims, SessionRevocations
from broker.identity.revocation import NAMESPACE, RECORD_SECONDS
from broker.store import MemoryStore

NOW = 1_900_000_000
ACCOUNT = "111111111111"
DEV = f"arn:aws:iam::{ACCOUNT}:role/Dev"
OPS = f"arn:aws:iam::{ACCOUNT}:role/team/Ops"


def _claims(role: str = "Dev", *, issued: int = NOW - 60, **extra: Any) -> SessionClaims:
    path = "/team/" if role == "Ops" else "/"
    return SessionClaims(
        access_key_id="ASIAEXAMPLE",
        account=ACCOUNT,
        kind="assumed-role",
        arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/s",
        user_id="AROAEXAMPLE:s",
        principal_name=role,
        principal_path=path,
        issued_at=issued,
        expires_at=issued + 3600,
        **extra,
    )


def _denied(revocations: SessionRevocations, claims: SessionClaims | None) -> bool:
    try:
        asyncio.run(revocations.check(claims))
    except StsError as exc:
        assert (exc.code, exc.status) == ("AccessDenied", 403)
        return True
    return False


def test_sessions_issued_up_to_the_revocation_are_denied_later_ones_are_not() -> None:
    clock = FrozenClock(NOW + 0.7)
    store = MemoryStore(clock)
    revocations = SessionRevocations(store, clock)
    revocation = asyncio.run(revocations.revoke(OPS))
    assert (revocation.role_arn, revocation.before) == (OPS, NOW)
    assert _denied(revocations, _claims("Ops", issued=NOW - 3600))
    assert _denied(revocations, _claims("Ops", issued=NOW))  # the same second: fail closed
    assert not _denied(revocations, _claims("Ops", issued=NOW + 1))
    assert not _denied(revocations, _claims("Dev"))  # another role
    # Long-term keys, GetSessionToken and GetFederationToken sessions are never looked up.
    assert not _denied(revocations, None)
    assert not _denied(revocations, dataclasses.replace(_claims("Ops"), kind="session"))


def test_a_session_chained_from_a_revoked_role_is_denied_too() -> None:
    clock = FrozenClock(NOW)
    revocations = SessionRevocations(MemoryStore(clock), clock)
    asyncio.run(revocations.revoke(DEV))
    chained = _claims("Ops", chain_roles=(DEV,), chain_depth=1)
    assert _denied(revocations, chained)
    clock.advance(5)
    assert not _denied(revocations, _claims("Ops", issued=NOW + 2, chain_roles=(DEV,)))


def test_the_record_outlives_every_session_and_never_moves_back() -> None:
    clock = FrozenClock(NOW)
    store = MemoryStore(clock)
    asyncio.run(store.put(NAMESPACE, DEV, b'{"before":%d}' % (NOW + 30), 60))
    revocations = SessionRevocations(store, clock)
    assert asyncio.run(revocations.revoke(DEV)).before == NOW + 30  # another node's clock
    assert RECORD_SECONDS > 43200
    clock.advance(RECORD_SECONDS - 1)
    assert asyncio.run(store.get(NAMESPACE, DEV)) is not None
    clock.advance(2)
    assert asyncio.run(store.get(NAMESPACE, DEV)) is None


def test_a_damaged_record_denies_until_a_revocation_overwrites_it() -> None:
    clock = FrozenClock(NOW)
    store = MemoryStore(clock)
    asyncio.run(store.put(NAMESPACE, DEV, b"not json", 60))
    revocations = SessionRevocations(store, clock, cache_seconds=0)
    assert _denied(revocations, _claims(issued=NOW + 10_000))
    assert asyncio.run(revocations.revoke(DEV)).before == NOW
    assert not _denied(revocations, _claims(issued=NOW + 1))


def test_other_nodes_see_a_revocation_within_the_cache_interval() -> None:
    clock = FrozenClock(NOW)
    store = MemoryStore(clock)
    writer = SessionRevocations(store, clock, cache_seconds=5)
    cached = SessionRevocations(store, clock, cache_seconds=5)
    uncached = SessionRevocations(store, clock, cache_seconds=0)
    claims = _claims()
    assert not _denied(cached, claims)  # looks once: no revocation, remembered for 5 s
    asyncio.run(writer.revoke(DEV))
    assert _denied(writer, claims)  # the writer knows at once
    assert _denied(uncached, claims)  # cache_seconds 0 reads the store every call
    assert not _denied(cached, claims)
    clock.advance(4.9)
    assert not _denied(cached, claims)
    clock.advance(0.2)
    assert _denied(cached, claims)


def test_token_issue_time_works_in_policies_as_in_aws() -> None:
    """AWS's AWSRevokeOlderSessions policy, verbatim, against real callers' contexts."""
    revoke_older = parse_policy(
        {
            "Version": "2012-10-17",
            "Statement": {
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"DateLessThan": {"aws:TokenIssueTime": iso8601(NOW)}},
            },
        },
        kind="identity",
    )
    allow_all = parse_policy(
        {"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}, kind="identity"
    )

    def decide(issued: int) -> bool:
        caller = Caller(
            kind="assumed-role",
            account=ACCOUNT,
            arn="arn:aws:sts::111111111111:assumed-role/Dev/s",
            user_id="AROAEXAMPLE:s",
            principal_arn=DEV,
            claims=_claims(issued=issued),
        )
        context = caller.context(now=NOW + 10, source_ip="", secure=True, region="us-east-1")
        request = AuthzRequest(action="s3:GetObject", resource="arn:aws:s3:::b/k", context=context)
        return authorize(request, identity=(allow_all, revoke_older)).allowed

    assert decide(NOW - 1) is False
    assert decide(NOW) is True
    assert decide(NOW + 5) is True


@pytest.mark.parametrize("cache_seconds", [0, 5])
def test_a_store_that_fails_fails_the_check(cache_seconds: int) -> None:
    class Down(MemoryStore):
        async def get(self, namespace: str, key: str) -> bytes | None:
            raise ConnectionError("down")

    clock = FrozenClock(NOW)
    with pytest.raises(ConnectionError):
        asyncio.run(
            SessionRevocations(Down(clock), clock, cache_seconds=cache_seconds).check(_claims())
        )
