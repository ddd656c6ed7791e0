"""XML signatures on SAML messages: the one form SAML needs, checked before any crypto.

A signature must be an enveloped signature over the element it sits in, with one
``Reference`` to that element's ID, exactly enveloped + exclusive c14n transforms,
exclusive c14n for ``SignedInfo``, and RSA/ECDSA with SHA-256/384/512 (HMAC, SHA-1 and MD5
are refused by name). Anything else is refused *before* signxml runs, so signature
wrapping and algorithm confusion never reach the verifier. signxml then verifies with the
provider's metadata certificates only; a certificate in the message's ``KeyInfo`` merely
orders the tries.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree  # type: ignore[import-untyped,unused-ignore]
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import SignXMLException
from signxml.verifier import SignatureConfiguration, XMLVerifier

from broker.errors import invalid_token
from broker.identity.saml.xml import DS, one_child

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

_SIGNATURE_METHODS = {
    SignatureMethod.RSA_SHA256,
    SignatureMethod.RSA_SHA384,
    SignatureMethod.RSA_SHA512,
    SignatureMethod.ECDSA_SHA256,
    SignatureMethod.ECDSA_SHA384,
    SignatureMethod.ECDSA_SHA512,
}
_DIGESTS = {DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512}
_SIGNATURE_URIS = frozenset(method.value for method in _SIGNATURE_METHODS)
_DIGEST_URIS = frozenset(digest.value for digest in _DIGESTS)
_SIGNATURE_CHILDREN = frozenset(
    {f"{{{DS}}}SignedInfo", f"{{{DS}}}SignatureValue", f"{{{DS}}}KeyInfo"}
)


@dataclass(frozen=True)
class Verified:
    """A signature that held: the signed element (re-parsed) and the certificate used."""

    element: etree._Element
    certificate: x509.Certificate


class SignatureChecker:
    """Verifies enveloped signatures; keeps one strict signxml configuration per certificate."""

    def __init__(self) -> None:
        self._signature_configs: dict[bytes, SignatureConfiguration] = {}

    def verify(
        self,
        signed: etree._Element,
        signature: etree._Element,
        certificates: list[x509.Certificate],
        what: str,
    ) -> Verified:
        """Verify ``signed``'s enveloped signature with metadata certificates only."""
        _check_shape(signed, signature, what)
        for certificate in _hinted(certificates, signature):
            try:
                result = XMLVerifier().verify(
                    signed,
                    x509_cert=certificate,
                    id_attribute="ID",
                    expect_config=self._signature_config(certificate),
                )
            except (
                SignXMLException,
                etree.LxmlError,
                ValueError,
                TypeError,
                CryptoInvalidSignature,
            ):
                continue
            element = result.signed_xml if not isinstance(result, list) else None
            if element is None or element.tag != signed.tag:
                break
            return Verified(element=element, certificate=certificate)
        raise invalid_token(
            f"The {what} signature is not valid: it was not made by a key in the identity "
            "provider's metadata, or the signed content was changed."
        )

    def _signature_config(self, certificate: x509.Certificate) -> SignatureConfiguration:
        """Strict signxml settings for one metadata certificate, built once per certificate.

        ``verification_time`` is pinned inside the certificate's validity: metadata keys
        are trusted because the metadata lists them, not for their certificate dates (SAML
        Metadata Interoperability Profile), and nothing here may read the wall clock.
        """
        key = certificate.public_bytes(Encoding.DER)
        config = self._signature_configs.get(key)
        if config is None:
            config = SignatureConfiguration(
                require_x509=True,
                location="./",
                expect_references=1,
                signature_methods=frozenset(_SIGNATURE_METHODS),
                digest_algorithms=frozenset(_DIGESTS),
                verification_time=certificate.not_valid_before_utc,
            )
            self._signature_configs[key] = config
        return config


def assertion_signature(assertion: etree._Element) -> etree._Element | None:
    found = [child for child in assertion if child.tag == f"{{{DS}}}Signature"]
    if len(found) > 1:
        raise invalid_token("The Assertion carries more than one signature.")
    return found[0] if found else None


def _check_shape(signed: etree._Element, signature: etree._Element, what: str) -> None:
    """Refuse every signature form beyond the one SAML needs, before any crypto runs."""
    if any(child.tag not in _SIGNATURE_CHILDREN for child in signature):
        raise invalid_token(
            f"The {what} signature has unexpected elements "
            "(only SignedInfo, SignatureValue and KeyInfo are accepted)."
        )
    info = one_child(signature, f"{{{DS}}}SignedInfo", f"{what} signature SignedInfo")
    c14n = one_child(info, f"{{{DS}}}CanonicalizationMethod", "CanonicalizationMethod")
    if c14n.get("Algorithm") != EXC_C14N:
        raise invalid_token(f"The {what} signature must use exclusive canonicalization.")
    method = one_child(info, f"{{{DS}}}SignatureMethod", "SignatureMethod").get("Algorithm") or ""
    if method not in _SIGNATURE_URIS:
        kind = "HMAC" if "hmac" in method.lower() else "SHA-1" if "sha1" in method.lower() else "it"
        raise invalid_token(
            f"The {what} signature algorithm is not accepted ({kind}); use RSA or ECDSA "
            "with SHA-256, SHA-384 or SHA-512."
        )
    references = info.findall(f"{{{DS}}}Reference")
    if len(references) != 1:
        raise invalid_token(f"The {what} signature must have exactly one Reference.")
    reference = references[0]
    element_id = signed.get("ID")
    if not element_id or reference.get("URI") != f"#{element_id}":
        raise invalid_token(
            f"The {what} signature must reference the element it is in (URI #{{its ID}})."
        )
    transforms = reference.findall(f"{{{DS}}}Transforms/{{{DS}}}Transform")
    if (
        [t.get("Algorithm") for t in transforms] != [ENVELOPED, EXC_C14N]
        or any(
            len(child) > 0
            and (len(child) != 1 or etree.QName(child[0]).localname != "InclusiveNamespaces")
            for child in transforms
        )
        or len(transforms[0]) > 0
    ):
        raise invalid_token(
            f"The {what} signature's transforms must be exactly enveloped-signature and "
            "exclusive canonicalization."
        )
    digest = one_child(reference, f"{{{DS}}}DigestMethod", "DigestMethod").get("Algorithm") or ""
    if digest not in _DIGEST_URIS:
        raise invalid_token(
            f"The {what} signature's digest algorithm is not accepted; use SHA-256, SHA-384 "
            "or SHA-512."
        )


def _hinted(
    certificates: list[x509.Certificate], signature: etree._Element
) -> list[x509.Certificate]:
    """Metadata certificates, the one equal to the message's embedded certificate first.

    The embedded certificate only orders the tries (saving a failed verification during a
    key rollover); it is never itself used to verify anything.
    """
    element = signature.find(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate")
    if element is None or not element.text:
        return certificates
    try:
        embedded = base64.b64decode("".join(str(element.text).split()), validate=True)
    except (binascii.Error, ValueError):
        return certificates
    first = [c for c in certificates if c.public_bytes(Encoding.DER) == embedded]
    return first + [c for c in certificates if c not in first]
