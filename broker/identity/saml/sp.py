"""The SP side of the SAML browser protocol: SP metadata and HTTP-Redirect AuthnRequests.

Built with lxml and cryptography rather than pysaml2: pysaml2's configuration insists on
finding the ``xmlsec1`` binary at start-up even when nothing is signed with it, which
would make a system package a hard runtime dependency of every broker with a SAML
provider. The two messages are small and fully specified (SAML 2.0 core 3.4.1,
bindings 3.4.4); pysaml2 parses them in the tests as an independent peer.
"""

from __future__ import annotations

import base64
import secrets
import zlib
from urllib.parse import quote, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree  # type: ignore[import-untyped,unused-ignore]

from broker.clock import iso8601
from broker.identity.saml.crypto import SpCredentials
from broker.identity.saml.xml import DS, MD, SAML, SAMLP

HTTP_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
HTTP_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
NAMEID_FORMATS = (
    "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
)


def sp_metadata(*, entity_id: str, acs_url: str, credentials: SpCredentials) -> bytes:
    """SP metadata for IdP administrators: one POST ACS, signing + encryption key, signed
    assertions wanted, AuthnRequests signed."""
    cert_b64 = base64.b64encode(
        credentials.certificate.public_bytes(serialization.Encoding.DER)
    ).decode("ascii")
    root = etree.Element(f"{{{MD}}}EntityDescriptor", nsmap={"md": MD, "ds": DS})
    root.set("entityID", entity_id)
    sp = etree.SubElement(root, f"{{{MD}}}SPSSODescriptor")
    sp.set("AuthnRequestsSigned", "true")
    sp.set("WantAssertionsSigned", "true")
    sp.set("protocolSupportEnumeration", SAMLP)
    for use in ("signing", "encryption"):
        descriptor = etree.SubElement(sp, f"{{{MD}}}KeyDescriptor", use=use)
        info = etree.SubElement(descriptor, f"{{{DS}}}KeyInfo")
        data = etree.SubElement(info, f"{{{DS}}}X509Data")
        etree.SubElement(data, f"{{{DS}}}X509Certificate").text = cert_b64
    for name_format in NAMEID_FORMATS:
        etree.SubElement(sp, f"{{{MD}}}NameIDFormat").text = name_format
    acs = etree.SubElement(sp, f"{{{MD}}}AssertionConsumerService")
    acs.set("Binding", HTTP_POST)
    acs.set("Location", acs_url)
    acs.set("index", "0")
    acs.set("isDefault", "true")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def new_request_id() -> str:
    """An AuthnRequest ID: an NCName (starts with a letter), 160 random bits."""
    return "id-" + secrets.token_hex(20)


def authn_request(
    *, request_id: str, entity_id: str, acs_url: str, destination: str, now: float
) -> bytes:
    """The AuthnRequest XML (SAML core 3.4.1): answer by POST to our ACS, any NameID."""
    root = etree.Element(f"{{{SAMLP}}}AuthnRequest", nsmap={"samlp": SAMLP, "saml": SAML})
    root.set("ID", request_id)
    root.set("Version", "2.0")
    root.set("IssueInstant", iso8601(now))
    root.set("Destination", destination)
    root.set("AssertionConsumerServiceURL", acs_url)
    root.set("ProtocolBinding", HTTP_POST)
    etree.SubElement(root, f"{{{SAML}}}Issuer").text = entity_id
    policy = etree.SubElement(root, f"{{{SAMLP}}}NameIDPolicy")
    policy.set("AllowCreate", "true")
    return bytes(etree.tostring(root, encoding="UTF-8"))


def redirect_url(
    sso_url: str, request_xml: bytes, relay_state: str, credentials: SpCredentials
) -> str:
    """The HTTP-Redirect binding URL, signed (bindings 3.4.4.1).

    The signature covers the exact URL-encoded ``SAMLRequest``, ``RelayState`` and
    ``SigAlg`` as they appear in the query, which is what the IdP verifies. Requests are
    always signed: an IdP that does not ask ignores the signature, one that does needs it.
    """
    deflated = zlib.compress(request_xml, 9)[2:-4]  # raw DEFLATE, as the binding requires
    query = (
        f"SAMLRequest={quote(base64.b64encode(deflated).decode('ascii'), safe='')}"
        f"&RelayState={quote(relay_state, safe='')}"
        f"&SigAlg={quote(RSA_SHA256, safe='')}"
    )
    signature = credentials.key.sign(query.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    separator = "&" if urlsplit(sso_url).query else "?"
    signed = quote(base64.b64encode(signature).decode("ascii"), safe="")
    return f"{sso_url}{separator}{query}&Signature={signed}"
