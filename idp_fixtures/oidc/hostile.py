"""Tokens a relying party must refuse, one builder per rule.

Each builder returns a compact token string that is valid in every respect but the one
it is named after, so a refusal test proves that one rule exists (not that something
else happened to fail). Signatures are real: made with the provider's own key when the
point is a bad header or claim, or with a freshly generated attacker key when the point
is a key the provider never published.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from joserfc import jwe
from joserfc.jws import JWSRegistry
from joserfc.registry import HeaderParameter

from idp_fixtures.oidc.keys import SigningKey, generate_key
from idp_fixtures.oidc.provider import OidcProvider

Signer = Literal["attacker", "provider"]
"""Who signs a header-attack token: a fresh attacker key, or the provider's real key
(then the header is the only thing wrong)."""

_PERMISSIVE = JWSRegistry(strict_check_header=False, algorithms=["RS256", "ES256"])


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(value: dict[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def alg_none(provider: OidcProvider, sub: str = "alice", **claims: Any) -> str:
    """``alg: none`` and an empty signature segment (``header.payload.``)."""
    header = {"alg": "none", "typ": "JWT", "kid": provider.current_key.kid}
    return f"{_segment(header)}.{_segment(provider.claims(sub, **claims))}."


def hmac_with_public_key(provider: OidcProvider, sub: str = "alice", **claims: Any) -> str:
    """Algorithm confusion: HS256 keyed with the provider's public key PEM, current ``kid``.

    A verifier that lets the token pick the algorithm and feeds it "the key for this kid"
    would accept it.
    """
    key = provider.current_key
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = f"{_segment(header)}.{_segment(provider.claims(sub, **claims))}"
    mac = hmac.new(key.public_pem(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(mac)}"


def foreign_key(
    provider: OidcProvider, sub: str = "alice", *, kid_in_jwks: bool = False, **claims: Any
) -> str:
    """Signed by a fresh key the provider never published.

    ``kid_in_jwks`` ``True`` reuses the provider's current ``kid`` (the signature check
    must fail); ``False`` uses the attacker key's own ``kid`` (the lookup must fail).
    """
    attacker = _attacker_like(provider)
    kid = provider.current_key.kid if kid_in_jwks else attacker.kid
    return provider.sign(provider.claims(sub, **claims), key=attacker, header={"kid": kid})


def _signer(provider: OidcProvider, signed_by: Signer) -> SigningKey:
    return provider.current_key if signed_by == "provider" else _attacker_like(provider)


def _attacker_like(provider: OidcProvider) -> SigningKey:
    """A fresh key of the same kind as the provider's current one."""
    return generate_key("ES256" if provider.current_key.alg == "ES256" else "RS256")


def _with_header(
    provider: OidcProvider, key: SigningKey, extra: dict[str, Any], sub: str, claims: Any
) -> str:
    """Sign with ``key`` under the provider's current ``kid`` plus ``extra`` header fields."""
    header = {"kid": provider.current_key.kid, **extra}
    return provider.sign(
        provider.claims(sub, **claims), key=key, header=header, registry=_PERMISSIVE
    )


def embedded_jwk(
    provider: OidcProvider, sub: str = "alice", *, signed_by: Signer = "attacker", **claims: Any
) -> str:
    """A ``jwk`` header carrying the signer's own public key (CVE-2018-0114 style);
    ``kid`` is the provider's current one."""
    key = _signer(provider, signed_by)
    return _with_header(provider, key, {"jwk": key.public_jwk()}, sub, claims)


def jku_header(
    provider: OidcProvider,
    sub: str = "alice",
    *,
    jku: str = "https://attacker.example/jwks.json",
    signed_by: Signer = "attacker",
    **claims: Any,
) -> str:
    """A ``jku`` header pointing at a JWKS the attacker controls."""
    return _with_header(provider, _signer(provider, signed_by), {"jku": jku}, sub, claims)


def x5c_header(
    provider: OidcProvider, sub: str = "alice", *, signed_by: Signer = "attacker", **claims: Any
) -> str:
    """An ``x5c`` header with a real self-signed certificate for the signing key."""
    key = _signer(provider, signed_by)
    chain = [base64.b64encode(_self_signed_der(key)).decode("ascii")]
    return _with_header(provider, key, {"x5c": chain}, sub, claims)


def _self_signed_der(key: SigningKey) -> bytes:
    private = key.key.private_key
    if private is None:
        raise ValueError("signing key has no private part")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker.example")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(private, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


def crit_header(
    provider: OidcProvider, sub: str = "alice", *, extension: str = "x-unknown", **claims: Any
) -> str:
    """Provider-signed, with ``crit`` naming an extension no verifier understands
    (RFC 7515 section 4.1.11: must be rejected)."""
    alg = provider.current_key.alg
    registry = JWSRegistry(
        header_registry={extension: HeaderParameter("unknown critical extension", "str")},
        algorithms=[alg],
    )
    header = {"crit": [extension], extension: "must-understand"}
    return provider.sign(provider.claims(sub, **claims), header=header, registry=registry)


def expired(provider: OidcProvider, sub: str = "alice", *, ago: int = 3600, **claims: Any) -> str:
    """``exp`` ``ago`` seconds in the past (default: an hour, beyond any sane skew)."""
    now = provider.now()
    return provider.id_token(sub, iat=now - ago - 3600, exp=now - ago, **claims)


def future_nbf(
    provider: OidcProvider, sub: str = "alice", *, ahead: int = 3600, **claims: Any
) -> str:
    """``nbf`` ``ahead`` seconds in the future."""
    return provider.id_token(sub, nbf=provider.now() + ahead, **claims)


def future_iat(
    provider: OidcProvider, sub: str = "alice", *, ahead: int = 3600, **claims: Any
) -> str:
    """``iat`` ``ahead`` seconds in the future (and ``exp`` an hour after it)."""
    iat = provider.now() + ahead
    return provider.id_token(sub, iat=iat, exp=iat + 3600, **claims)


def wrong_aud(
    provider: OidcProvider,
    sub: str = "alice",
    *,
    aud: str = "not-a-registered-client",
    **claims: Any,
) -> str:
    """``aud`` naming a client the relying party did not register."""
    return provider.id_token(sub, aud=aud, **claims)


def wrong_iss(
    provider: OidcProvider, sub: str = "alice", *, iss: str | None = None, **claims: Any
) -> str:
    """Provider-signed but ``iss`` differs; default is the issuer plus a trailing slash,
    the near-miss an exact comparison must catch."""
    return provider.id_token(sub, iss=iss if iss is not None else provider.issuer + "/", **claims)


def no_exp(provider: OidcProvider, sub: str = "alice", **claims: Any) -> str:
    """No ``exp`` claim at all."""
    return provider.id_token(sub, exp=None, **claims)


def float_exp(provider: OidcProvider, sub: str = "alice", **claims: Any) -> str:
    """``exp`` as a non-integer number (``now + 3600.5``)."""
    return provider.id_token(sub, exp=provider.now() + 3600.5, **claims)


def string_exp(provider: OidcProvider, sub: str = "alice", **claims: Any) -> str:
    """``exp`` as a string of digits."""
    return provider.id_token(sub, exp=str(provider.now() + 3600), **claims)


def oversized(
    provider: OidcProvider, n_bytes: int = 20_001, sub: str = "alice", **claims: Any
) -> str:
    """A validly signed token of ``n_bytes`` or ``n_bytes + 1`` characters (base64 cannot
    reach every length), padded with a ``pad`` claim."""
    base = provider.claims(sub, **claims)
    pad = max(0, (n_bytes - len(provider.sign(base))) * 3 // 4 - 8)
    while True:
        token = provider.sign({**base, "pad": "x" * pad})
        if len(token) >= n_bytes:
            return token
        pad += 1


def jwe_like(provider: OidcProvider, sub: str = "alice", **claims: Any) -> str:
    """A real five-segment JWE of the claims, encrypted to the provider's own public key
    (RSA-OAEP-256 or ECDH-ES, A256GCM): a JWS verifier must refuse it, not decrypt it."""
    key = provider.current_key
    alg = "RSA-OAEP-256" if key.alg.startswith("RS") else "ECDH-ES"
    header = {"alg": alg, "enc": "A256GCM", "kid": key.kid, "typ": "JWT"}
    payload = json.dumps(provider.claims(sub, **claims)).encode("utf-8")
    return jwe.encrypt_compact(header, payload, key.key, algorithms=[alg, "A256GCM"])


def tampered_payload(
    provider: OidcProvider, sub: str = "alice", *, forged_sub: str = "admin", **claims: Any
) -> str:
    """Header and signature of a genuine token for ``sub``, payload of one for
    ``forged_sub``: the signature no longer covers what the token says."""
    genuine = provider.id_token(sub, **claims)
    forged = provider.id_token(forged_sub, **claims)
    header, _, signature = genuine.split(".")
    return f"{header}.{forged.split('.')[1]}.{signature}"


def unknown_kid(provider: OidcProvider, sub: str = "alice", **claims: Any) -> str:
    """Signed by the provider's real current key, but ``kid`` names no published key:
    a verifier that falls back to trying every key would accept it."""
    kid = f"unknown-{secrets.token_hex(8)}"
    return provider.sign(provider.claims(sub, **claims), header={"kid": kid})


def ps256(provider: OidcProvider, sub: str = "alice", **claims: Any) -> str:
    """RSASSA-PSS (PS256) with a published RSA key of the provider: a real, valid
    signature in an algorithm outside the broker's allow-list."""
    rsa = next((k for k in provider.published_keys if k.alg.startswith("RS")), None)
    if rsa is None:
        raise ValueError("ps256 needs the provider to publish an RSA key")
    return provider.sign(provider.claims(sub, **claims), key=rsa, alg="PS256")


def weak_rsa_1024(provider: OidcProvider, sub: str = "alice", **claims: Any) -> str:
    """Publishes a fresh 1024-bit RSA key in the provider's JWKS and signs RS256 with it:
    signature and ``kid`` check out, only the key strength is wrong."""
    weak = generate_key("RS256", rsa_bits=1024)
    provider.publish_key(weak)
    return provider.sign(provider.claims(sub, **claims), key=weak)
