"""The SP's key pair and ``EncryptedAssertion`` decryption (XML Encryption 1.1, in process).

IdPs encrypt assertions to the SP certificate: a random content key is wrapped with the
SP's RSA key (*key transport*), and the assertion is encrypted with that content key.
What is accepted, and why:

- Key transport: RSA-OAEP only (``xmlenc#rsa-oaep-mgf1p``, and ``xmlenc11#rsa-oaep`` with
  its ``DigestMethod`` and ``MGF``; SHA-1 is acceptable *inside* OAEP, where it is not used
  for collision resistance). RSA PKCS#1 v1.5 is refused: it is the Bleichenbacher oracle.
- Content: AES-GCM (128/192/256). AES-CBC only when the provider opts in
  (``allow_cbc_encryption``): CBC without integrity is the padding-oracle attack on XML
  Encryption (Jager & Somorovsky, 2011), so even then every decryption failure yields the
  same message, and the decrypted assertion still has to carry a valid signature.
- The wrapped key may sit in ``EncryptedData/KeyInfo`` or beside ``EncryptedData`` in the
  ``EncryptedAssertion`` (Shibboleth, Okta); at most a few are tried. ``RetrievalMethod``
  and other ways to fetch keys are not followed.

Decryption never reports *which* step failed (key unwrap, tag, padding): one message for
all, so the answer can't serve as an oracle.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import logging
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from lxml import etree  # type: ignore[import-untyped,unused-ignore]

from broker.identity.saml.xml import DS

log = logging.getLogger("broker.saml")

XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"

RSA_OAEP_MGF1P = XENC + "rsa-oaep-mgf1p"
RSA_OAEP = XENC11 + "rsa-oaep"
RSA_1_5 = XENC + "rsa-1_5"
_GCM = {XENC11 + "aes128-gcm": 16, XENC11 + "aes192-gcm": 24, XENC11 + "aes256-gcm": 32}
_CBC = {XENC + "aes128-cbc": 16, XENC + "aes192-cbc": 24, XENC + "aes256-cbc": 32}
_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "http://www.w3.org/2000/09/xmldsig#sha1": hashes.SHA1,
    XENC + "sha256": hashes.SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": hashes.SHA384,
    XENC + "sha512": hashes.SHA512,
}
_MGFS: dict[str, type[hashes.HashAlgorithm]] = {
    XENC11 + "mgf1sha1": hashes.SHA1,
    XENC11 + "mgf1sha256": hashes.SHA256,
    XENC11 + "mgf1sha384": hashes.SHA384,
    XENC11 + "mgf1sha512": hashes.SHA512,
}
_MAX_WRAPPED_KEYS = 4
_MIN_SP_KEY_BITS = 2048
_EPHEMERAL_DAYS = 3650


class DecryptionRefused(Exception):
    """The encrypted assertion can't be used; ``str(exc)`` is safe to show."""


@dataclass(frozen=True)
class SpCredentials:
    """The SP's key pair: decrypts assertions, and its certificate goes in SP metadata."""

    key: rsa.RSAPrivateKey = field(repr=False)
    certificate: x509.Certificate
    ephemeral: bool


def load_sp_credentials(
    key_file: str | None, cert_file: str | None, *, entity_id: str, now: float
) -> SpCredentials:
    """The configured key pair, or a fresh ephemeral one (with a warning) when none is set.

    The config loader has already checked that the files hold a matching RSA pair; this
    reads them again at start-up because the config keeps paths, never key material.
    """
    if key_file is not None and cert_file is not None:
        key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the SP key must be an RSA private key")
        return SpCredentials(key=key, certificate=cert, ephemeral=False)
    log.warning(
        "saml.sp_key_file/sp_cert_file not set: using an ephemeral SP key pair; IdPs that "
        "encrypt assertions must be given the new certificate after every restart"
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=_MIN_SP_KEY_BITS)
    return SpCredentials(key=key, certificate=self_signed(key, entity_id, now), ephemeral=True)


def self_signed(key: rsa.RSAPrivateKey, entity_id: str, now: float) -> x509.Certificate:
    """A self-signed certificate for ``key`` (SAML metadata trusts keys, not CAs)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sts-broker SAML SP")])
    start = datetime.datetime.fromtimestamp(now, tz=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - datetime.timedelta(days=1))
        .not_valid_after(start + datetime.timedelta(days=_EPHEMERAL_DAYS))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(entity_id)]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )


def decrypt_assertion(
    encrypted: etree._Element, key: rsa.RSAPrivateKey, *, allow_cbc: bool
) -> bytes:
    """The plaintext (serialized ``Assertion``) of an ``EncryptedAssertion`` element."""
    data = _only(encrypted, f"{{{XENC}}}EncryptedData", "EncryptedData")
    method = _algorithm(data)
    if method in _GCM:
        size, mode = _GCM[method], "gcm"
    elif method in _CBC and allow_cbc:
        size, mode = _CBC[method], "cbc"
    elif method in _CBC:
        raise DecryptionRefused(
            "The assertion is encrypted with AES-CBC, which this provider does not allow "
            "(set allow_cbc_encryption, or configure the IdP for AES-GCM)."
        )
    else:
        raise DecryptionRefused("The assertion's encryption algorithm is not accepted.")
    cipher_value = data.find(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
    if (
        cipher_value is None
        or data.find(f"{{{XENC}}}CipherData/{{{XENC}}}CipherReference") is not None
    ):
        raise DecryptionRefused("The encrypted assertion has no inline CipherValue.")
    ciphertext = _b64(cipher_value.text)
    wrapped = [
        *data.findall(f"{{{DS}}}KeyInfo/{{{XENC}}}EncryptedKey"),
        *encrypted.findall(f"{{{XENC}}}EncryptedKey"),
    ]
    if not wrapped:
        raise DecryptionRefused("The encrypted assertion carries no EncryptedKey.")
    if len(wrapped) > _MAX_WRAPPED_KEYS:
        raise DecryptionRefused(f"The encrypted assertion has more than {_MAX_WRAPPED_KEYS} keys.")
    for element in wrapped:
        content_key = _unwrap(element, key)
        if content_key is None or len(content_key) != size:
            continue
        plaintext = _decrypt(mode, content_key, ciphertext)
        if plaintext is not None:
            return plaintext
    raise DecryptionRefused("The encrypted assertion could not be decrypted with the SP key.")


def _unwrap(element: etree._Element, key: rsa.RSAPrivateKey) -> bytes | None:
    method = element.find(f"{{{XENC}}}EncryptionMethod")
    algorithm = method.get("Algorithm") if method is not None else None
    if algorithm == RSA_1_5:
        raise DecryptionRefused(
            "The assertion's key is wrapped with RSA PKCS#1 v1.5, which is not accepted; "
            "configure the IdP for RSA-OAEP."
        )
    if method is None or algorithm not in (RSA_OAEP_MGF1P, RSA_OAEP):
        raise DecryptionRefused("The assertion's key transport algorithm is not accepted.")
    digest: type[hashes.HashAlgorithm] = hashes.SHA1
    digest_method = method.find(f"{{{DS}}}DigestMethod")
    if digest_method is not None:
        found = _DIGESTS.get(digest_method.get("Algorithm") or "")
        if found is None:
            raise DecryptionRefused("The assertion's OAEP digest is not accepted.")
        digest = found
    mgf: type[hashes.HashAlgorithm] = hashes.SHA1
    mgf_method = method.find(f"{{{XENC11}}}MGF")
    if mgf_method is not None:
        if algorithm != RSA_OAEP:
            raise DecryptionRefused("The assertion's OAEP parameters are inconsistent.")
        found = _MGFS.get(mgf_method.get("Algorithm") or "")
        if found is None:
            raise DecryptionRefused("The assertion's OAEP mask function is not accepted.")
        mgf = found
    params = method.find(f"{{{XENC}}}OAEPparams")
    label = _b64(params.text) if params is not None else None
    value = element.find(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
    if value is None:
        raise DecryptionRefused("The assertion's EncryptedKey has no CipherValue.")
    try:
        return key.decrypt(
            _b64(value.text),
            padding.OAEP(mgf=padding.MGF1(algorithm=mgf()), algorithm=digest(), label=label),
        )
    except ValueError:
        return None


def _decrypt(mode: str, content_key: bytes, ciphertext: bytes) -> bytes | None:
    if mode == "gcm":
        if len(ciphertext) < 12 + 16:
            return None
        try:
            return AESGCM(content_key).decrypt(ciphertext[:12], ciphertext[12:], None)
        except InvalidTag:
            return None
    if len(ciphertext) < 32 or len(ciphertext) % 16:
        return None
    decryptor = Cipher(algorithms.AES(content_key), modes.CBC(ciphertext[:16])).decryptor()
    padded = decryptor.update(ciphertext[16:]) + decryptor.finalize()
    pad = padded[-1]
    # XML Encryption padding: only the last byte is defined (1..16); the rest is arbitrary.
    if not 1 <= pad <= 16:
        return None
    return padded[:-pad]


def _only(parent: etree._Element, tag: str, what: str) -> etree._Element:
    found = parent.findall(tag)
    if len(found) != 1:
        raise DecryptionRefused(f"The EncryptedAssertion must hold exactly one {what}.")
    return found[0]


def _algorithm(data: etree._Element) -> str:
    method = data.find(f"{{{XENC}}}EncryptionMethod")
    algorithm: str | None = method.get("Algorithm") if method is not None else None
    if not algorithm:
        raise DecryptionRefused("The encrypted assertion names no EncryptionMethod.")
    return algorithm


def _b64(text: str | None) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionRefused("The encrypted assertion holds invalid base64.") from None
