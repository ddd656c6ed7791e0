"""Reading AuthnRequests as a careful IdP does: decoding, safe parsing, signatures.

HTTP-Redirect carries ``SAMLRequest`` as raw DEFLATE + base64 in the query string, with
an optional detached signature over the exact query bytes (``SigAlg``, ``Signature``;
saml-bindings 3.4.4.1); HTTP-POST carries base64 XML with an optional enveloped
signature. Both are bounded (size, inflation) and parsed with DTDs, entities and network
access off, because even a test IdP should not be the weak link of a CI machine.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree  # type: ignore[import-untyped,unused-ignore]
from signxml.exceptions import InvalidInput
from signxml.exceptions import InvalidSignature as XmlInvalidSignature
from signxml.verifier import SignatureConfiguration, XMLVerifier

from idp_fixtures.saml.names import DS, SAML, SAMLP, XmlElement

MAX_REQUEST_BYTES = 64 * 1024
"""Largest AuthnRequest accepted, encoded or inflated."""

_SIG_ALGS: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": ("rsa", hashes.SHA256),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": ("rsa", hashes.SHA384),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": ("rsa", hashes.SHA512),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": ("ec", hashes.SHA256),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": ("ec", hashes.SHA384),
}


class SamlRequestError(Exception):
    """A request the IdP refuses; ``message`` is safe to show on the error page."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class AuthnRequest:
    """The parts of a ``samlp:AuthnRequest`` the IdP acts on."""

    id: str
    issuer: str
    acs_url: str | None
    acs_index: int | None
    protocol_binding: str | None
    destination: str | None
    signed: bool


def decode_redirect(saml_request: str) -> bytes:
    """base64 then raw DEFLATE (HTTP-Redirect), inflation bounded by
    :data:`MAX_REQUEST_BYTES` so a deflate bomb is refused, not expanded."""
    compressed = _b64decode(saml_request)
    inflater = zlib.decompressobj(-15)
    try:
        data = inflater.decompress(compressed, MAX_REQUEST_BYTES + 1)
    except zlib.error:
        raise SamlRequestError("SAMLRequest is not raw DEFLATE data") from None
    if len(data) > MAX_REQUEST_BYTES or inflater.unconsumed_tail:
        raise SamlRequestError("SAMLRequest inflates beyond the size limit")
    return data


def decode_post(saml_request: str) -> bytes:
    """base64 (HTTP-POST)."""
    return _b64decode(saml_request)


def _b64decode(value: str) -> bytes:
    if len(value) > MAX_REQUEST_BYTES * 2:
        raise SamlRequestError("SAMLRequest is too large")
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise SamlRequestError("SAMLRequest is not valid base64") from None


def parse_authn_request(data: bytes, *, signed: bool = False) -> tuple[AuthnRequest, XmlElement]:
    """The AuthnRequest and its element; any DOCTYPE, malformed XML or missing field is
    refused. ``signed`` records whether the binding carried a verified signature."""
    if len(data) > MAX_REQUEST_BYTES:
        raise SamlRequestError("SAMLRequest is too large")
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise SamlRequestError("SAMLRequest must not contain a DOCTYPE")
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        raise SamlRequestError("SAMLRequest is not well-formed XML") from None
    if root.tag != f"{{{SAMLP}}}AuthnRequest":
        raise SamlRequestError("SAMLRequest is not a samlp:AuthnRequest")
    if root.get("Version") != "2.0":
        raise SamlRequestError("AuthnRequest Version must be 2.0")
    request_id = root.get("ID") or ""
    if not request_id or len(request_id) > 256:
        raise SamlRequestError("AuthnRequest has no usable ID")
    issuer = root.find(f"{{{SAML}}}Issuer")
    if issuer is None or not (issuer.text or "").strip():
        raise SamlRequestError("AuthnRequest has no Issuer")
    index = root.get("AssertionConsumerServiceIndex")
    acs_url = root.get("AssertionConsumerServiceURL")
    if index is not None and acs_url is not None:
        raise SamlRequestError("AuthnRequest has both an ACS URL and an ACS index")
    if index is not None and not index.isdigit():
        raise SamlRequestError("AssertionConsumerServiceIndex is not a number")
    request = AuthnRequest(
        id=request_id,
        issuer=issuer.text.strip(),
        acs_url=acs_url,
        acs_index=int(index) if index is not None else None,
        protocol_binding=root.get("ProtocolBinding"),
        destination=root.get("Destination"),
        signed=signed,
    )
    return request, root


def raw_query_values(query: str) -> dict[str, str]:
    """Query parameters with their values *still URL-encoded*, as the Redirect-binding
    signature covers them; repeated parameters are refused."""
    values: dict[str, str] = {}
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if name in values:
            raise SamlRequestError(f"parameter {name} is repeated")
        values[name] = value
    return values


def verify_redirect_signature(
    raw: dict[str, str], sig_alg: str, signature: str, cert: x509.Certificate
) -> None:
    """Check the HTTP-Redirect signature over ``SAMLRequest=..&RelayState=..&SigAlg=..``
    (raw encoded values, RelayState only when present) with the SP's certificate."""
    if sig_alg not in _SIG_ALGS:
        raise SamlRequestError("SigAlg is not accepted (RSA/ECDSA with SHA-256 or better)")
    kind, digest = _SIG_ALGS[sig_alg]
    signed = f"SAMLRequest={raw['SAMLRequest']}"
    if "RelayState" in raw:
        signed += f"&RelayState={raw['RelayState']}"
    signed += f"&SigAlg={raw['SigAlg']}"
    try:
        value = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise SamlRequestError("Signature is not valid base64") from None
    public = cert.public_key()
    try:
        if kind == "rsa" and isinstance(public, rsa.RSAPublicKey):
            public.verify(value, signed.encode("ascii"), padding.PKCS1v15(), digest())
        elif kind == "ec" and isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(value, signed.encode("ascii"), ec.ECDSA(digest()))
        else:
            raise SamlRequestError("SigAlg does not match the SP certificate's key type")
    except InvalidSignature:
        raise SamlRequestError("AuthnRequest signature is invalid") from None


def verify_post_signature(data: bytes, root: XmlElement, cert: x509.Certificate) -> None:
    """Check the enveloped signature of a POSTed AuthnRequest: valid with the SP's
    certificate, and covering the AuthnRequest itself (not some other element)."""
    config = SignatureConfiguration(expect_references=1)
    try:
        result = XMLVerifier().verify(
            data, x509_cert=cert.public_bytes(Encoding.PEM).decode("ascii"), expect_config=config
        )
    except (XmlInvalidSignature, InvalidInput):
        raise SamlRequestError("AuthnRequest signature is invalid") from None
    signed = result.signed_xml  # type: ignore[union-attr]
    if signed is None or signed.tag != root.tag or signed.get("ID") != root.get("ID"):
        raise SamlRequestError("AuthnRequest signature does not cover the request")


def has_enveloped_signature(root: XmlElement) -> bool:
    """True when the AuthnRequest element carries a ``ds:Signature`` child."""
    return root.find(f"{{{DS}}}Signature") is not None
