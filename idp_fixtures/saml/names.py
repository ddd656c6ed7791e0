"""Namespaces, well-known URIs and small XML helpers shared by the fixture SAML IdP.

Kept apart so the IdP, the presets, the hostile builders and the HTTP app spell every
SAML URI the same way (a typo in a namespace is a silent interoperability bug).
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

from lxml import etree  # type: ignore[import-untyped,unused-ignore]

XmlElement = Any
"""An ``lxml.etree._Element`` (lxml ships no type information)."""

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
XS = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"

BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"

NAMEID_PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
NAMEID_TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
NAMEID_UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"

ATTRNAME_URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
ATTRNAME_BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
ATTRNAME_UNSPECIFIED = "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified"

CM_BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
CM_HOLDER_OF_KEY = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"

STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
STATUS_REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
STATUS_RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
STATUS_AUTHN_FAILED = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"

AC_PASSWORD = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"
AC_PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
AC_UNSPECIFIED = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"

AWS_ATTRIBUTES = "https://aws.amazon.com/SAML/Attributes/"
ROLE_ATTRIBUTE = AWS_ATTRIBUTES + "Role"
ROLE_SESSION_NAME_ATTRIBUTE = AWS_ATTRIBUTES + "RoleSessionName"
SESSION_DURATION_ATTRIBUTE = AWS_ATTRIBUTES + "SessionDuration"
SOURCE_IDENTITY_ATTRIBUTE = AWS_ATTRIBUTES + "SourceIdentity"
PRINCIPAL_TAG_ATTRIBUTE = AWS_ATTRIBUTES + "PrincipalTag:"
TRANSITIVE_TAG_KEYS_ATTRIBUTE = AWS_ATTRIBUTES + "TransitiveTagKeys"

AWS_SP_ENTITY_ID = "urn:amazon:webservices"
"""The audience AWS's own sign-in expects (what IdP apps for AWS put in AudienceRestriction)."""
AWS_ACS_URL = "https://signin.aws.amazon.com/saml"
"""AWS's sign-in ACS: the Recipient and Destination IdP apps for AWS use."""


def instant(timestamp: float, *, millis: bool = False) -> str:
    """A SAML ``xs:dateTime`` in UTC with a ``Z`` (milliseconds when the shape wants them)."""
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def serialize(element: XmlElement) -> bytes:
    """The bytes an IdP posts: UTF-8 with an XML declaration, no pretty-printing.

    No pretty-printing on purpose: whitespace added after signing would be covered by
    an enveloped signature only by luck.
    """
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8")  # type: ignore[no-any-return]


def b64(data: bytes) -> str:
    """Standard base64 as text (the ``SAMLResponse`` form value)."""
    return base64.b64encode(data).decode("ascii")


def find_all(element: XmlElement, path: str) -> list[XmlElement]:
    """``element.findall`` with the ``samlp``/``saml``/``ds``/``xenc`` prefixes bound."""
    return list(element.findall(path, namespaces=NSMAP))


NSMAP = {"samlp": SAMLP, "saml": SAML, "ds": DS, "xenc": XENC, "md": MD}
"""Prefixes for ``find``/``findall`` paths in this package and in tests."""
