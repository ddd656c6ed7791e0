"""Signing keys of a fixture issuer: real keys, published as a JWKS.

Real RSA/EC keys (not canned test vectors) so a relying party verifies exactly what it
would verify in production; weak keys can be made on purpose to test that they are refused.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

from joserfc.jwk import ECKey, RSAKey

Alg = Literal["RS256", "ES256"]
"""Algorithms a fixture issuer signs with (what real IdPs use)."""


@dataclass(frozen=True)
class SigningKey:
    """One key pair with its ``kid`` and the JWS algorithm it signs with."""

    kid: str
    alg: str
    key: RSAKey | ECKey

    def public_jwk(self) -> dict[str, Any]:
        """The JWKS entry: public parameters plus ``kid``, ``alg`` and ``use``."""
        jwk = dict(self.key.as_dict(private=False))
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return jwk

    def public_pem(self) -> bytes:
        """SubjectPublicKeyInfo PEM, the bytes an algorithm-confusion attack keys HMAC with."""
        return self.key.as_pem(private=False)


def generate_key(alg: Alg = "RS256", *, rsa_bits: int = 2048) -> SigningKey:
    """A fresh key for ``alg``; ``kid`` is its RFC 7638 thumbprint, as many IdPs do.

    ``rsa_bits`` below 2048 is allowed (with joserfc's warning silenced) because
    publishing a weak key is exactly what a weak-key refusal test needs.
    """
    key: RSAKey | ECKey
    if alg == "RS256":
        with warnings.catch_warnings():
            if rsa_bits < 2048:
                warnings.simplefilter("ignore")
            key = RSAKey.generate_key(rsa_bits, auto_kid=True)
    elif alg == "ES256":
        key = ECKey.generate_key("P-256", auto_kid=True)
    else:
        raise ValueError(f"unsupported signing algorithm {alg!r}; use RS256 or ES256")
    kid = key.kid
    if kid is None:
        raise RuntimeError("joserfc generated a key without a kid")
    return SigningKey(kid=kid, alg=alg, key=key)
