"""The keys the broker signs its own JWTs with, and the key set it publishes for them.

Verifiers cache a JWKS (ours says for how long), so a key must be *published* before it
*signs* and stay published after it stops, or tokens would fail to verify in the window
between our change and their refresh. Each configured key therefore has a status:

- ``current``: signs new tokens of its algorithm (exactly one per algorithm) and is published;
- ``next``: published only, so verifiers already hold it when it becomes ``current``;
- ``previous``: published only, until every token it signed has expired.

Rotating is three config edits, each rolled out to every node and left for one JWKS
max-age: add the new key as ``next``; swap it to ``current`` and the old one to
``previous``; remove the old one once its tokens (one hour at most) are gone.

Without configured keys the broker generates one RSA-2048 and one P-384 key at start-up and
warns: tokens then stop verifying after a restart and several nodes publish different key
sets. Private keys never leave this module (not in ``repr``, logs or the JWKS).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from joserfc.jwk import ECKey, RSAKey

from broker.config import (
    ISSUER_ALGORITHMS,
    IssuerAlgorithm,
    IssuerKeyConfig,
    IssuerSettings,
    issuer_key_problem,
)

log = logging.getLogger("broker.issuer")

KeyStatus = Literal["current", "next", "previous"]

_EPHEMERAL_RSA_BITS = 2048
_STATUS_ORDER: dict[KeyStatus, int] = {"current": 0, "next": 1, "previous": 2}


@dataclass(frozen=True)
class SigningKey:
    """One issuer key: its ``kid``, algorithm, rotation status and the private key itself."""

    kid: str
    algorithm: IssuerAlgorithm
    status: KeyStatus
    key: RSAKey | ECKey = field(repr=False)

    def public_jwk(self) -> dict[str, Any]:
        """The JWK a verifier needs: public members only, pinned to one algorithm and use."""
        public = {
            name: value
            for name, value in self.key.as_dict(private=False).items()
            if name in ("kty", "n", "e", "crv", "x", "y")
        }
        return {**public, "kid": self.kid, "alg": self.algorithm, "use": "sig"}


class IssuerKeys:
    """The loaded key set: one signer per algorithm, every published key for the JWKS."""

    def __init__(self, keys: Sequence[SigningKey], *, ephemeral: bool) -> None:
        signers = {key.algorithm: key for key in keys if key.status == "current"}
        missing = [alg for alg in ISSUER_ALGORITHMS if alg not in signers]
        if missing:
            raise ValueError(f"no current signing key for {', '.join(missing)}")
        self._signers = signers
        self._published = tuple(sorted(keys, key=lambda key: _STATUS_ORDER[key.status]))
        self.ephemeral = ephemeral
        """True when the keys were generated at start-up (they die with the process)."""

    @classmethod
    def from_settings(cls, settings: IssuerSettings) -> IssuerKeys:
        """Keys from the config's PEM files, or ephemeral ones (with a warning) when none."""
        if settings.keys:
            return cls([_load(entry) for entry in settings.keys], ephemeral=False)
        log.warning(
            "issuer.keys is not configured: GetWebIdentityToken signs with keys generated at "
            "start-up; its tokens stop verifying when the process restarts, and several "
            "workers or nodes publish different key sets. Configure issuer.keys for a deployment."
        )
        return cls(generate_keys(), ephemeral=True)

    def signer(self, algorithm: IssuerAlgorithm) -> SigningKey:
        """The key that signs new tokens of ``algorithm``."""
        return self._signers[algorithm]

    @property
    def published(self) -> tuple[SigningKey, ...]:
        """Every key verifiers should accept now: current, then next, then previous."""
        return self._published

    def jwks(self) -> dict[str, Any]:
        """The JWKS document (RFC 7517) for ``/.well-known/jwks.json``."""
        return {"keys": [key.public_jwk() for key in self._published]}


def generate_keys() -> list[SigningKey]:
    """A fresh current key for each algorithm; ``kid`` is the RFC 7638 thumbprint."""
    rsa_key = RSAKey.generate_key(_EPHEMERAL_RSA_BITS)
    ec_key = ECKey.generate_key("P-384")
    return [
        SigningKey(kid=rsa_key.thumbprint(), algorithm="RS256", status="current", key=rsa_key),
        SigningKey(kid=ec_key.thumbprint(), algorithm="ES384", status="current", key=ec_key),
    ]


def _load(entry: IssuerKeyConfig) -> SigningKey:
    """Read a configured key; refuse it (ValueError) if the file changed into a bad key."""
    path = Path(entry.private_key_file)
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"issuer key {entry.id}: cannot read {path} ({exc.strerror})") from None
    problem = issuer_key_problem(pem, entry.algorithm)
    if problem is not None:
        raise ValueError(f"issuer key {entry.id}: {path}: {problem}")
    private = load_pem_private_key(pem, password=None)
    key: RSAKey | ECKey
    if isinstance(private, rsa.RSAPrivateKey):
        key = RSAKey.import_key(private)
    else:
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        key = ECKey.import_key(private)
    return SigningKey(kid=entry.id, algorithm=entry.algorithm, status=entry.status, key=key)
