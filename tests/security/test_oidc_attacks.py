"""Hostile web identity tokens: each attack is built for real and refused with the exact code.

The issuer is a real server on loopback with real RSA/EC keys; the attacker has its own
keys, the issuer's public keys, and tokens the issuer really signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from joserfc.jwk import ECKey, RSAKey

from broker.config import BrokerConfig
from broker.errors import StsError
from broker.identity import WebIdentity
from tests.unit.test_oidc import (
    CLIENT,
    Issuer,
    assert_refused,
    b64,
    claims_for,
    identity,
    make_config,
    public_jwk,
    refusal,
    rsa_key,
    sign,
    verify_with,
)

INVALID = ("InvalidIdentityToken", 400)


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    running = Issuer().start()
    yield running
    running.stop()


@pytest.fixture
def setup(issuer: Issuer) -> tuple[Issuer, RSAKey, BrokerConfig]:
    key = issuer.add_rsa("k1")
    return issuer, key, make_config({"url": issuer.url, "client_ids": [CLIENT]})


def forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A token assembled by hand: whatever header and signature the attacker likes."""
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(claims).encode())
    return f"{head}.{body}.{b64(signature)}" if signature else f"{head}.{body}."


def hmac_token(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def refused(config: BrokerConfig, token: str, code: str, status: int, fragment: str = "") -> None:
    assert_refused(refusal(config, token), code, status, fragment)


# --------------------------------------------------------------------------- algorithms


def test_alg_none_is_refused(setup: tuple[Issuer, RSAKey, BrokerConfig]) -> None:
    issuer, key, config = setup
    claims = claims_for(issuer.url)
    for alg in ("none", "None", "NONE"):
        refused(config, forge({"alg": alg, "kid": "k1"}, claims), *INVALID, "not accepted")
    # "none" with a trailing signature copied from a real token
    real_signature = sign(key, claims).rsplit(".", 1)[1]
    token = forge({"alg": "none", "kid": "k1"}, claims) + real_signature
    refused(config, token, *INVALID, "not accepted")
    assert issuer.hits["jwks"] == 0


def test_hmac_signed_with_the_issuers_public_key_is_refused(
    setup: tuple[Issuer, RSAKey, BrokerConfig],
) -> None:
    issuer, key, config = setup
    claims = claims_for(issuer.url)
    pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk_text = json.dumps(public_jwk(key, "k1")).encode()
    for alg in ("HS256", "HS384", "HS512"):
        for secret in (pem, jwk_text):
            token = hmac_token(secret, {"alg": alg, "kid": "k1", "typ": "JWT"}, claims)
            refused(config, token, *INVALID, f"({alg!r}) is not accepted")


def test_rsa_pss_and_other_algorithms_are_refused(
    setup: tuple[Issuer, RSAKey, BrokerConfig],
) -> None:
    issuer, key, config = setup
    claims = claims_for(issuer.url)
    head = b64(json.dumps({"alg": "PS256", "kid": "k1"}).encode())
    body = b64(json.dumps(claims).encode())
    private = key.private_key
    assert private is not None
    pss = private.sign(
        f"{head}.{body}".encode(),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )
    refused(config, f"{head}.{body}.{b64(pss)}", *INVALID, "('PS256') is not accepted")
    for alg in ("EdDSA", "RS1", "ES256K", "", 256):
        refused(config, forge({"alg": alg, "kid": "k1"}, claims, b"x" * 64), *INVALID)


def test_rsa_kid_with_an_ec_algorithm_is_refused(
    setup: tuple[Issuer, RSAKey, BrokerConfig],
) -> None:
    issuer, _, config = setup
    attacker = ECKey.generate_key("P-256")
    token = sign(attacker, claims_for(issuer.url), alg="ES256", kid="k1")
    refused(config, token, *INVALID, "verifies RS256, RS384, RS512, but the token says ES256")


# --------------------------------------------------------------------------- keys in headers


@pytest.mark.parametrize("member", ["jwk", "jku", "x5u", "x5c"])
def test_headers_that_bring_their_own_key_are_refused(
    setup: tuple[Issuer, RSAKey, BrokerConfig], member: str
) -> None:
    issuer, _, config = setup
    attacker = rsa_key(fresh=True)
    values: dict[str, Any] = {
        "jwk": public_jwk(attacker, "k1"),
        "jku": "https://attacker.example/jwks",
        "x5u": "https://attacker.example/cert.pem",
        "x5c": ["MIIB"],
    }
    token = sign(attacker, claims_for(issuer.url), kid="k1", **{member: values[member]})
    refused(config, token, *INVALID, f"carries {member}; keys come only from the provider")
    assert issuer.hits["jwks"] == 0


def test_crit_cty_and_unknown_header_members_are_refused(
    setup: tuple[Issuer, RSAKey, BrokerConfig],
) -> None:
    issuer, key, config = setup
    claims = claims_for(issuer.url)
    # Signed by the real key: only the header makes them unacceptable.
    for extra in ({"crit": ["exp"], "exp": 1}, {"cty": "JWT"}, {"b64": False, "crit": ["b64"]}):
        head = b64(json.dumps({"alg": "RS256", "kid": "k1", **extra}).encode())
        body = b64(json.dumps(claims).encode())
        signature = key.private_key.sign(  # type: ignore[union-attr]
            f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        refused(config, f"{head}.{body}.{b64(signature)}", *INVALID, "is not accepted")
    refused(config, sign(key, claims, typ="at+jwt"), *INVALID, "typ must be JWT")
    refused(config, forge({"alg": "RS256", "x5t": 7}, claims, b"s"), *INVALID, "x5t must be")


def test_github_style_x5t_header_is_accepted_and_ignored(
    setup: tuple[Issuer, RSAKey, BrokerConfig],
) -> None:
    issuer, key, config = setup
    token = sign(key, claims_for(issuer.url), typ="JWT", x5t="bm90LWEtcmVhbC10aHVtYnByaW50")
    assert identity(config, token).subject == "user-1"


# --------------------------------------------------------------------------- kid


def test_kid_is_only_a_lookup_key(setup: tuple[Issuer, RSAKey, BrokerConfig]) -> None:
    issuer, key, config = setup
    claims = claims_for(issuer.url)
    for kid in ("../../../../etc/passwd", "' OR '1'='1", "__class__", "keys", "k1\x00", "K1"):
        refused(config, sign(key, claims, kid=kid), *INVALID, "no key with kid")
    for kid in ("", "x" * 257):
        refused(config, sign(key, claims, kid=kid), *INVALID, "kid must be a string")
    refused(config, forge({"alg": "RS256", "kid": {"$ne": 1}}, claims, b"s"), *INVALID)


def test_attacker_key_with_the_issuers_kid_fails_the_signature(
    setup: tuple[Issuer, RSAKey, BrokerConfig],
) -> None:
    issuer, _, config = setup
    attacker = rsa_key(fresh=True)
    token = sign(attacker, claims_for(issuer.url), kid="k1")
    refused(config, token, *INVALID, "signature is not valid")


def test_token_from_another_issuer_relabelled_is_refused(
    setup: tuple[Issuer, RSAKey, BrokerConfig],
) -> None:
    trusted, _, _ = setup
    other = Issuer("/other").start()
    try:
        other_key = other.add_rsa("k1")  # same kid as the trusted issuer's key
        other_key_ec = other.add_ec("e1")
        config = make_config(
            {"url": trusted.url, "client_ids": [CLIENT]},
            {"url": other.url, "client_ids": ["other-client"]},
        )
        token = sign(other_key_ec, claims_for(trusted.url), alg="ES256", kid="e1")
        refused(config, token, *INVALID, "no key with kid 'e1'")
        rsa_token = sign(rsa_key(fresh=True), claims_for(trusted.url), kid="k1")
        refused(config, rsa_token, *INVALID, "signature is not valid")
        assert other_key is not None and other.hits["jwks"] == 0
    finally:
        other.stop()


def test_kidless_token_is_not_tried_against_an_unbounded_key_list(issuer: Issuer) -> None:
    for index in range(9):
        issuer.jwks.append(public_jwk(rsa_key(fresh=True), f"k{index}"))
    config = make_config({"url": issuer.url, "client_ids": [CLIENT]})
    token = sign(rsa_key(fresh=True), claims_for(issuer.url), kid=None)
    refused(config, token, *INVALID, "tokens must name their key")


def test_weak_issuer_key_is_refused_even_with_a_valid_signature(issuer: Issuer) -> None:
    weak = issuer.add_rsa("weak", bits=1024)
    config = make_config({"url": issuer.url, "client_ids": [CLIENT]})
    refused(config, sign(weak, claims_for(issuer.url), kid="weak"), *INVALID, "1024 bits")
    issuer.jwks = [public_jwk(weak, None)]
    refused(config, sign(weak, claims_for(issuer.url), kid=None), *INVALID, "no key for RS256")


# --------------------------------------------------------------------------- structure


def test_tampered_payload_fails_the_signature(setup: tuple[Issuer, RSAKey, BrokerConfig]) -> None:
    issuer, key, config = setup
    head, _, signature = sign(key, claims_for(issuer.url)).split(".")
    body = b64(json.dumps(claims_for(issuer.url, sub="admin")).encode())
    refused(config, f"{head}.{body}.{signature}", *INVALID, "signature is not valid")


def test_duplicate_claims_are_refused_even_when_signed(
    setup: tuple[Issuer, RSAKey, BrokerConfig],
) -> None:
    issuer, key, config = setup
    text = json.dumps(claims_for(issuer.url))[:-1] + ', "sub": "admin"}'
    refused(config, sign(key, text), *INVALID, "repeats the member name 'sub'")
    head = '{"alg": "RS256", "kid": "k1", "alg": "none"}'
    token = f"{b64(head.encode())}.{b64(text.encode())}.c2ln"
    refused(config, token, *INVALID, "repeats the member name 'alg'")


def test_payload_must_be_a_json_object(setup: tuple[Issuer, RSAKey, BrokerConfig]) -> None:
    _, key, config = setup
    for payload in (b"[1, 2]", b'"iss"', b"NaN", b'{"exp": Infinity}', b"\xff\xfe{}"):
        refused(config, sign(key, payload), *INVALID, "The token payload is not")


def test_jwe_and_malformed_compact_forms_are_refused(
    setup: tuple[Issuer, RSAKey, BrokerConfig],
) -> None:
    issuer, key, config = setup
    jwe = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a2V5.aXY.Y2lwaGVy.dGFn"
    refused(config, jwe, *INVALID, "Encrypted tokens (JWE) are not accepted")
    good = sign(key, claims_for(issuer.url))
    head, body, signature = good.split(".")
    for bad in (
        f"{head}.{body}",
        f"{head}.{body}.{signature}.extra",
        f"{head}.{body}=.{signature}",
        f"{head}.{body}.{signature} ",
        f" {good}",
        f"{head}.{body}.{signature}\n",
        f"{head}.{body}.é{signature}",
        f"{head}..{signature}",
    ):
        refused(config, bad, *INVALID, "not a JWT")
    refused(config, f"{head}.{body}.", *INVALID, "is not signed")
    refused(config, f"{head}.{body}.{signature[:-5]}", *INVALID)


def test_oversized_tokens_and_headers_are_refused_before_any_crypto(
    setup: tuple[Issuer, RSAKey, BrokerConfig],
) -> None:
    issuer, key, config = setup
    huge = sign(key, claims_for(issuer.url, pad="x" * 20_000))
    refused(config, huge, "ValidationError", 400, "between 4 and 20000")
    big_header = sign(key, claims_for(issuer.url), typ="JWT", x5t="x" * 600)
    refused(config, big_header, *INVALID, "header is larger than 512 bytes")
    assert issuer.hits["jwks"] == 0


def test_unknown_issuer_gets_no_fetch_and_no_echo_of_the_token(
    setup: tuple[Issuer, RSAKey, BrokerConfig],
) -> None:
    issuer, key, config = setup
    evil = "https://attacker.example/" + "a" * 300
    error = refusal(config, sign(key, claims_for(evil)))
    assert_refused(error, *INVALID, "No OpenIDConnect provider found in your account")
    assert len(error.message) < 200
    refused(config, sign(key, claims_for(issuer.url, iss=None)), *INVALID, "no iss claim")
    refused(config, sign(key, claims_for(issuer.url + "/")), *INVALID, "No OpenIDConnect")
    assert issuer.hits["jwks"] == 0


def test_exp_that_is_not_an_integer_is_refused(setup: tuple[Issuer, RSAKey, BrokerConfig]) -> None:
    issuer, key, config = setup
    text = json.dumps(claims_for(issuer.url, exp=None))[:-1] + ', "exp": 1e400}'
    refused(config, sign(key, text), *INVALID, "exp claim")
    digits = json.dumps(claims_for(issuer.url, exp=None))[:-1] + ', "exp": ' + "9" * 5000 + "}"
    refused(config, sign(key, digits), *INVALID)


# --------------------------------------------------------------------------- replay


def test_reencoded_ecdsa_signature_keeps_the_replay_key(issuer: Issuer) -> None:
    """(r, s) and (r, n - s) both verify; replay must key on the payload, not the token."""
    key = issuer.add_ec("e1")
    config = make_config({"url": issuer.url, "client_ids": [CLIENT], "single_use": True})
    token = sign(key, claims_for(issuer.url), alg="ES256", kid="e1")
    head, body, signature = token.split(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    flipped = r.to_bytes(32, "big") + (order - s).to_bytes(32, "big")
    twin = f"{head}.{body}.{b64(flipped)}"
    assert twin != token
    assert decode_dss_signature(encode_dss_signature(r, order - s)) == (r, order - s)
    results = verify_with(config, [token, twin])
    assert all(isinstance(result, WebIdentity) for result in results), results
    first, second = results
    assert isinstance(first, WebIdentity) and isinstance(second, WebIdentity)
    assert first.replay_key == second.replay_key
    assert first.single_use


def test_refusals_never_echo_the_token(setup: tuple[Issuer, RSAKey, BrokerConfig]) -> None:
    issuer, key, config = setup
    tokens = [
        sign(key, claims_for(issuer.url, aud="nope")),
        sign(key, claims_for(issuer.url, exp=1)),
        sign(rsa_key(fresh=True), claims_for(issuer.url)),
        forge({"alg": "none"}, claims_for(issuer.url)),
    ]
    for result in verify_with(config, tokens):
        assert isinstance(result, StsError)
        for token in tokens:
            for part in token.split("."):
                assert not part or part not in result.message
