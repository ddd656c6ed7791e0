"""Signing keys and self-signed certificates of the fixture SAML IdP.

SAML metadata carries X.509 certificates, not bare keys, so every key comes with a real
self-signed certificate (as Okta, Entra ID, ADFS and Keycloak publish). Keys are made
fresh by cryptography: a verifier is tested against exactly what it would see in
production, and an "attacker" key is just another one of these.
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

KeyAlg = Literal["RSA-2048", "RSA-3072", "RSA-4096", "EC-P256"]
"""Key types the IdP signs with (RSA-2048 is what every AWS-facing IdP uses by default)."""

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class SigningCert:
    """A private key and the self-signed certificate that publishes its public half."""

    key: PrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> str:
        """The certificate as PEM text (what signxml takes and SPs load from files)."""
        return self.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @property
    def cert_b64(self) -> str:
        """Base64 DER, the content of ``ds:X509Certificate`` in metadata and KeyInfo."""
        return base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()

    @property
    def key_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM of the private key (tests that play the IdP need it)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def signature_algorithm(self) -> str:
        """The signxml algorithm name matching the key: ``rsa-sha256`` or ``ecdsa-sha256``."""
        return "ecdsa-sha256" if isinstance(self.key, ec.EllipticCurvePrivateKey) else "rsa-sha256"


def generate_signing_cert(
    common_name: str = "idp-fixtures", key_alg: KeyAlg = "RSA-2048", *, valid_days: int = 3650
) -> SigningCert:
    """A fresh key of ``key_alg`` with a self-signed certificate for ``common_name``.

    Validity starts a day in the past (clock skew) and lasts ``valid_days``; SAML SPs
    generally ignore metadata certificate dates, but a long validity keeps strict ones
    happy.
    """
    key: PrivateKey
    if key_alg == "EC-P256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif key_alg in ("RSA-2048", "RSA-3072", "RSA-4096"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(key_alg[4:]))
    else:
        raise ValueError(f"unsupported key type {key_alg!r}")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64] or "idp")])
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=valid_days))
        .sign(key, hashes.SHA256())
    )
    return SigningCert(key=key, cert=cert)
