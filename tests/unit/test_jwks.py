"""The JWKS key source against a real issuer on loopback: caching, refresh limits, outages.

Requests are counted at the issuer, so "no fetch on the hot path" and "one fetch per
interval" are measured, not inferred.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc.jwk import ECKey

from broker.clock import FrozenClock
from broker.config import BrokerConfig
from broker.errors import StsError
from broker.identity import WebIdentity, WebIdentityVerifier
from broker.identity.oidc import parse_jwks
from tests.unit.test_oidc import (
    ACCOUNT,
    CLIENT,
    NOW,
    OTHER_ACCOUNT,
    Issuer,
    assert_refused,
    claims_for,
    identity,
    make_config,
    public_jwk,
    refusal,
    rsa_key,
    sign,
    verify_with,
)


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    running = Issuer().start()
    yield running
    running.stop()


def settings(**oidc: Any) -> dict[str, Any]:
    base = {
        "jwks_ttl_seconds": 600,
        "refresh_interval_seconds": 30,
        "last_known_good_seconds": 3600,
    }
    return {"oidc": {**base, **oidc}}


def provider(issuer: Issuer) -> dict[str, Any]:
    return {"url": issuer.url, "client_ids": [CLIENT]}


def test_cached_keys_mean_no_fetch_on_the_hot_path(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config(provider(issuer), **settings())
    tokens = [sign(key, claims_for(issuer.url, sub=f"u{i}")) for i in range(50)]
    results = verify_with(config, tokens)
    assert all(isinstance(result, WebIdentity) for result in results)
    assert issuer.hits == Counter({"discovery": 1, "jwks": 1})


def test_concurrent_first_calls_share_one_fetch(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config(provider(issuer), **settings())
    token = sign(key, claims_for(issuer.url))

    async def run() -> list[WebIdentity]:
        verifier = WebIdentityVerifier(config, FrozenClock(NOW))
        try:
            return await asyncio.gather(
                *(verifier.verify(token, account=ACCOUNT) for _ in range(50))
            )
        finally:
            await verifier.aclose()

    assert len(asyncio.run(run())) == 50
    assert issuer.hits == Counter({"discovery": 1, "jwks": 1})


def test_accounts_trusting_one_issuer_share_its_keys(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    data = make_config(provider(issuer)).model_dump()
    data["accounts"][OTHER_ACCOUNT]["oidc_providers"] = [provider(issuer)]
    config = BrokerConfig.model_validate(data)
    token = sign(key, claims_for(issuer.url))
    results = [
        verify_with(config, [token], account=account)[0] for account in (ACCOUNT, OTHER_ACCOUNT)
    ]
    assert [r.provider_arn for r in results if isinstance(r, WebIdentity)] == [
        f"arn:aws:iam::{account}:oidc-provider/{issuer.url.removeprefix('http://')}"
        for account in (ACCOUNT, OTHER_ACCOUNT)
    ]


def ttl_fetches(issuer: Issuer, cache_control: str | None, advance: list[int]) -> list[int]:
    """JWKS fetch count after each clock advance (one verification per step)."""
    key = issuer.add_rsa("k1")
    issuer.cache_control = cache_control
    config = make_config(provider(issuer), **settings(jwks_ttl_seconds=600))
    clock = FrozenClock(NOW)
    counts: list[int] = []
    token_at = {}
    for step in range(len(advance)):
        token_at[step] = sign(key, claims_for(issuer.url, iat=int(NOW) + sum(advance[: step + 1])))

    async def run() -> None:
        verifier = WebIdentityVerifier(config, clock)
        try:
            for step, seconds in enumerate(advance):
                clock.advance(seconds)
                await verifier.verify(token_at[step], account=ACCOUNT)
                counts.append(issuer.hits["jwks"])
        finally:
            await verifier.aclose()

    asyncio.run(run())
    return counts


def test_cache_control_max_age_is_honoured_within_bounds(issuer: Issuer) -> None:
    assert ttl_fetches(issuer, "public, max-age=120", [0, 119, 1, 60, 60]) == [1, 1, 2, 2, 3]


def test_max_age_below_the_refresh_interval_is_raised_to_it(issuer: Issuer) -> None:
    assert ttl_fetches(issuer, "max-age=1", [0, 29, 1]) == [1, 1, 2]
    assert issuer.hits["discovery"] == 2


def test_max_age_above_the_ttl_is_capped_and_missing_means_the_ttl(issuer: Issuer) -> None:
    assert ttl_fetches(issuer, "max-age=86400", [0, 599, 1]) == [1, 1, 2]


def test_no_store_means_one_refresh_interval(issuer: Issuer) -> None:
    assert ttl_fetches(issuer, "no-store", [0, 29, 1]) == [1, 1, 2]


def test_issuer_outage_serves_last_known_good_then_fails_closed(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config(provider(issuer), **settings())
    clock = FrozenClock(NOW)

    def token() -> str:
        now = int(clock.time())
        return sign(key, claims_for(issuer.url, iat=now, exp=now + 600))

    async def run() -> list[WebIdentity | StsError]:
        verifier = WebIdentityVerifier(config, clock)
        out: list[WebIdentity | StsError] = []

        async def attempt() -> None:
            try:
                out.append(await verifier.verify(token(), account=ACCOUNT))
            except StsError as exc:
                out.append(exc)

        try:
            await attempt()  # keys cached
            issuer.stop()
            await attempt()  # fresh: no fetch needed
            clock.advance(601)
            await attempt()  # stale: the fetch fails, last known good serves
            clock.advance(10)
            await attempt()  # no new attempt within the interval
            clock.advance(3600 - 12)  # 4199 s after the fetch: fresh 600 + window 3600
            await attempt()  # last second of the window
            clock.advance(1)
            await attempt()  # window over: fail closed
        finally:
            await verifier.aclose()
        return out

    results = asyncio.run(run())
    assert all(isinstance(result, WebIdentity) for result in results[:5]), results
    error = results[5]
    assert isinstance(error, StsError)
    assert_refused(error, "IDPCommunicationError", 400, "Couldn't retrieve verification key")
    assert "ConnectError" in error.message


def test_issuer_down_from_the_start_is_a_retryable_communication_error() -> None:
    down = Issuer().start()
    down.stop()
    key = down.add_rsa("k1")
    config = make_config(provider(down), **settings())
    error = refusal(config, sign(key, claims_for(down.url)))
    assert_refused(error, "IDPCommunicationError", 400, down.url)


def test_unknown_kid_flood_costs_one_fetch_per_interval(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config(provider(issuer), **settings())
    clock = FrozenClock(NOW)
    good = sign(key, claims_for(issuer.url))
    flood = [sign(key, claims_for(issuer.url), kid=secrets.token_hex(8)) for _ in range(100)]

    async def run() -> list[int]:
        verifier = WebIdentityVerifier(config, clock)
        counts = []

        async def burst() -> None:
            results = await asyncio.gather(
                *(verifier.verify(t, account=ACCOUNT) for t in flood), return_exceptions=True
            )
            for result in results:
                assert isinstance(result, StsError)
                assert_refused(result, "InvalidIdentityToken", 400, "no key with kid")

        try:
            await verifier.verify(good, account=ACCOUNT)
            counts.append(issuer.hits["jwks"])
            await burst()  # the warm-up fetch was just now: no refetch allowed
            counts.append(issuer.hits["jwks"])
            clock.advance(30)
            await burst()
            counts.append(issuer.hits["jwks"])
            await burst()
            clock.advance(29)
            await burst()
            counts.append(issuer.hits["jwks"])
            clock.advance(1)
            await burst()
            counts.append(issuer.hits["jwks"])
        finally:
            await verifier.aclose()
        return counts

    assert asyncio.run(run()) == [1, 1, 2, 2, 3]
    assert issuer.hits["discovery"] == 1


def test_rotated_key_is_picked_up_by_an_unknown_kid_refresh(issuer: Issuer) -> None:
    old = issuer.add_rsa("old")
    config = make_config(provider(issuer), **settings())
    clock = FrozenClock(NOW)
    new = rsa_key(fresh=True)
    new_token = sign(new, claims_for(issuer.url), kid="new")

    def rotate(index: int) -> None:
        if index == 1:
            issuer.jwks = [public_jwk(new, "new")]
            clock.advance(30)

    results = verify_with(
        config,
        [sign(old, claims_for(issuer.url), kid="old"), new_token],
        clock=clock,
        between=rotate,
    )
    assert all(isinstance(result, WebIdentity) for result in results), results
    assert issuer.hits["jwks"] == 2


def test_a_withdrawn_key_stops_verifying_once_the_set_is_refetched(issuer: Issuer) -> None:
    """The hot path remembers which keys fit a (kid, alg), but only for one fetched set.

    Tokens signed with ``old`` verify from the cached selection while the set is fresh; the
    issuer then withdraws ``old``, and once the TTL passes the refetched set must refuse
    them, whatever the previous set's selection said.
    """
    old = issuer.add_rsa("old")
    config = make_config(provider(issuer), **settings(jwks_ttl_seconds=600))
    clock = FrozenClock(NOW)
    tokens = [sign(old, claims_for(issuer.url, sub=f"u{i}"), kid="old") for i in range(3)]

    def withdraw(index: int) -> None:
        if index == 2:
            issuer.jwks = [public_jwk(rsa_key(fresh=True), "new")]
            clock.advance(601)

    results = verify_with(config, tokens, clock=clock, between=withdraw)
    assert [isinstance(result, WebIdentity) for result in results] == [True, True, False]
    assert isinstance(results[2], StsError)
    assert_refused(results[2], "InvalidIdentityToken", 400, "no key with kid 'old'")
    assert issuer.hits["jwks"] == 2


def test_discovery_must_name_the_configured_issuer(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    issuer.discovery_extra = {"issuer": issuer.url + "/"}
    config = make_config(provider(issuer), **settings())
    error = refusal(config, sign(key, claims_for(issuer.url)))
    assert_refused(error, "IDPCommunicationError", 400, "not " + issuer.url + " as configured")
    assert issuer.hits["jwks"] == 0


def test_discovered_jwks_uri_must_be_https(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    issuer.discovery_extra = {"jwks_uri": "http://keys.example.com/jwks"}
    config = make_config(provider(issuer), **settings())
    error = refusal(config, sign(key, claims_for(issuer.url)))
    assert_refused(error, "IDPCommunicationError", 400, "must use https://")


def test_redirects_stay_on_the_same_origin(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    other = "http://127.0.0.2:9/jwks"  # another loopback host: still another origin
    for target, ok in ((issuer.url + "/jwks", True), (other, False)):
        issuer.redirect_to = target
        config = make_config({**provider(issuer), "jwks_uri": issuer.base + "/moved"}, **settings())
        result = verify_with(config, [sign(key, claims_for(issuer.url))])[0]
        if ok:
            assert isinstance(result, WebIdentity)
        else:
            assert isinstance(result, StsError)
            assert_refused(result, "IDPCommunicationError", 400, "redirects to another host")
    assert issuer.hits["moved"] == 2


def test_oversized_or_broken_key_documents_are_refused(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config(provider(issuer), **settings())
    token = sign(key, claims_for(issuer.url))
    for raw, status, fragment in (
        (b'{"keys": [' + b" " * 300_000 + b"]}", 200, "larger than"),
        (b"<html>", 200, "is not JSON"),
        (b'{"keys": {}}', 200, "'keys' list"),
        (b"{}", 503, "HTTP 503"),
    ):
        issuer.jwks_raw, issuer.jwks_status = raw, status
        assert_refused(refusal(config, token), "IDPCommunicationError", 400, fragment)


def test_weak_and_contradictory_keys_are_dropped_with_a_reason() -> None:
    strong = rsa_key()
    weak = rsa_key(1024)
    document = {
        "keys": [
            public_jwk(strong, "good"),
            public_jwk(weak, "weak"),
            public_jwk(strong, "enc", use="enc"),
            public_jwk(strong, "ops", key_ops=["encrypt"]),
            public_jwk(strong, "es", alg="ES256"),
            public_jwk(strong, "ps", alg="PS256"),
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {**public_jwk(strong, "priv"), **dict(strong.as_dict(private=True), kid="priv")},
            {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "offcurve"},
            {"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA", "kid": "k1curve"},
            {"kty": "RSA", "n": "!!", "e": "AQAB", "kid": "garbage"},
        ]
    }
    keys, rejected = parse_jwks(document)
    assert [key.kid for key in keys] == ["good"]
    assert keys[0].algorithms == {"RS256", "RS384", "RS512"}
    assert rejected["weak"] == "RSA key of 1024 bits (2048 to 8192 accepted)"
    assert "use 'enc'" in rejected["enc"]
    assert "key_ops" in rejected["ops"]
    assert "RSA key declares algorithm 'ES256'" in rejected["es"]
    assert "'PS256' is not accepted" in rejected["ps"]
    assert "'oct'" in rejected["hmac"]
    assert "private key material" in rejected["priv"]
    assert "not a valid EC public key" in rejected["offcurve"]
    assert "secp256k1" in rejected["k1curve"]
    assert "not base64url" in rejected["garbage"]


def test_ec_key_alg_must_match_its_curve() -> None:
    key = ECKey.generate_key("P-256")
    keys, rejected = parse_jwks({"keys": [public_jwk(key, "a", alg="ES384")]})
    assert keys == ()
    assert "it can only be ES256" in rejected["a"]


def test_token_naming_a_dropped_key_is_told_why(issuer: Issuer) -> None:
    weak = issuer.add_rsa("weak", bits=1024)
    config = make_config(provider(issuer), **settings())
    error = refusal(config, sign(weak, claims_for(issuer.url), kid="weak"))
    assert_refused(error, "InvalidIdentityToken", 400, "RSA key of 1024 bits")


def test_offline_keys_file_that_is_broken_is_reported(tmp_path: Any) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": "nope"}))
    url = "http://127.0.0.1:9/offline"
    config = make_config({"url": url, "client_ids": [CLIENT], "jwks_file": str(path)})
    error = refusal(config, sign(rsa_key(), claims_for(url)))
    assert_refused(error, "IDPCommunicationError", 400, "jwks_file")
    path.write_text(json.dumps({"keys": [public_jwk(rsa_key(), "k1")]}))
    assert identity(config, sign(rsa_key(), claims_for(url))).subject == "user-1"
