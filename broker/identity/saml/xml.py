"""The parse gate: the only way SAML XML (responses, decrypted assertions, metadata) is read.

Identity brokers are broken at the parser more often than at the cryptography, so every
document passes the same gate before any of it is used:

- **Bounded**: a byte cap before parsing, then an element count cap and a depth cap (64),
  checked by XPath inside libxml2. ``huge_tree`` stays off, so lxml's own limits apply too.
- **No DTD at all**: a ``<!DOCTYPE`` is refused before parsing (byte scan, UTF-8 only, so
  the scan can't be dodged with UTF-16) and again after (``docinfo``). Without a DTD there
  are no custom entities, hence no billion laughs and no external entities (XXE); the
  parser also runs with ``resolve_entities=False``, ``load_dtd=False`` and
  ``no_network=True``.
- **No XInclude** element is accepted (lxml would only expand it on request; refusing it
  keeps a later ``xinclude()`` call from ever meaning anything).
- **No comments and no processing instructions anywhere.** The parser keeps comments
  (``remove_comments=False``) so that they can be *seen*: ``a@corp.com<!---->.evil.com``
  is a comment splitting a text node, and code that reads ``element.text`` gets
  ``a@corp.com``. No IdP needs either, so the whole document is refused instead of
  guessing which text nodes matter.
- **IDs are unique** across every attribute a signature reference could resolve
  (``ID``, ``Id``, ``id`` in any namespace, ``xml:id``): a duplicate is how a signed
  element and an attacker's element get confused (signature wrapping).

:func:`parse_xml` returns the root element; callers raise their own error from
:class:`XmlRefused` (which carries a message safe to show: it never quotes the document).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree  # type: ignore[import-untyped,unused-ignore]

from broker.errors import invalid_token, quoted

MAX_DEPTH = 64
"""Deepest element nesting accepted; a real SAML response is under 15 levels deep."""
MAX_ELEMENTS = 10_000
"""Most elements in one document; a response with hundreds of group values stays far below."""

XINCLUDE_NAMESPACES = frozenset(
    {"http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude"}
)
_DECLARATION = re.compile(rb"<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_UTF8_NAMES = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
"""The SAML 2.0 protocol namespace (Response, AuthnRequest); also the metadata's
``protocolSupportEnumeration`` value for SAML 2.0."""
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"


class XmlRefused(Exception):
    """The document failed the gate; ``str(exc)`` says why without quoting the document."""


@dataclass(frozen=True)
class ParsedXml:
    """A gated document: its root and every ID value in it (for reference checks)."""

    root: etree._Element
    ids: frozenset[str]


def _parser() -> etree.XMLParser:
    # A new parser per call: lxml parsers keep per-parse state (error log) and are not
    # meant to be shared across threads.
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,
        remove_comments=False,
        remove_pis=False,
        remove_blank_text=False,
        strip_cdata=True,
        collect_ids=False,
    )


def parse_xml(data: bytes, *, max_bytes: int, what: str = "document") -> ParsedXml:
    """Parse ``data`` through the gate, or raise :class:`XmlRefused` saying which rule failed."""
    if len(data) > max_bytes:
        raise XmlRefused(f"The {what} is larger than {max_bytes} bytes.")
    _check_encoding(data, what)
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise XmlRefused(f"The {what} contains a DOCTYPE or entity declaration; none is accepted.")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if isinstance(exc.lineno, int) else 0
        raise XmlRefused(f"The {what} is not well-formed XML (line {line}).") from None
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        raise XmlRefused(f"The {what} contains a DOCTYPE; none is accepted.")
    return ParsedXml(root=root, ids=_check_tree(root, what))


def _check_encoding(data: bytes, what: str) -> None:
    """UTF-8 (or ASCII) only, so the byte scans for ``<!DOCTYPE`` can't be bypassed."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00", b"\x4c\x6f\xa7\x94")) or (
        len(data) > 1 and data[1:2] == b"\x00"
    ):
        raise XmlRefused(f"The {what} must be UTF-8 encoded.")
    match = _DECLARATION.match(data.removeprefix(b"\xef\xbb\xbf"))
    if match and match.group(1).decode("ascii").lower() not in _UTF8_NAMES:
        raise XmlRefused(f"The {what} must be UTF-8 encoded.")


# Each check is one XPath evaluated by libxml2 over the whole document (top-level siblings
# of the root included): a Python walk of the tree cost more than the signature check.
_COUNT = etree.XPath("count(//*)")
_TOO_DEEP = etree.XPath("boolean(/" + "/".join(["*"] * (MAX_DEPTH + 1)) + ")")
_COMMENTS = etree.XPath("boolean(//comment())")
_INSTRUCTIONS = etree.XPath("boolean(//processing-instruction())")
_XINCLUDE = etree.XPath(
    "boolean(//*["
    + " or ".join(f"namespace-uri()='{namespace}'" for namespace in sorted(XINCLUDE_NAMESPACES))
    + "])"
)
_IDS = etree.XPath("//@*[local-name()='ID' or local-name()='Id' or local-name()='id']")
"""Every attribute a signature reference could resolve to (``xml:id`` included)."""


def _check_tree(root: etree._Element, what: str) -> frozenset[str]:
    """Count, depth, comments, processing instructions, XInclude, duplicate IDs."""
    if _COUNT(root) > MAX_ELEMENTS:
        raise XmlRefused(f"The {what} has more than {MAX_ELEMENTS} elements.")
    if _TOO_DEEP(root):
        raise XmlRefused(f"The {what} nests elements deeper than {MAX_DEPTH} levels.")
    if _COMMENTS(root):
        raise XmlRefused(f"The {what} contains an XML comment; comments are not accepted.")
    if _INSTRUCTIONS(root):
        raise XmlRefused(f"The {what} contains a processing instruction; none is accepted.")
    if _XINCLUDE(root):
        raise XmlRefused(f"The {what} contains an XInclude element; none is accepted.")
    values = [str(value) for value in _IDS(root)]
    unique = frozenset(values)
    if len(unique) != len(values):
        duplicate = next(value for value in values if values.count(value) > 1)
        raise XmlRefused(
            f"The {what} uses the ID {quoted(duplicate)} more than once; IDs must be unique."
        )
    return unique


def one_child(parent: etree._Element, tag: str, what: str) -> etree._Element:
    found = parent.findall(tag)
    if len(found) != 1:
        raise invalid_token(f"The SAML response must have exactly one {what} (found {len(found)}).")
    return found[0]


def plain_text(element: etree._Element, what: str) -> str:
    """An element's whole text; child elements (or anything but one text node) are refused."""
    if len(element) > 0:
        raise invalid_token(f"The {what} must be plain text.")
    return str(element.text or "")
