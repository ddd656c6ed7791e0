"""SAML responses a correct SP must refuse, one builder per rule.

Each builder returns the base64 ``SAMLResponse`` and is valid in every respect but the
one it is named after: right Issuer, Audience, Recipient, Destination, times, and a real
signature by the IdP's key wherever the attack needs one. So a refusal proves that one
rule exists, not that something else happened to fail. The signature-wrapping (XSW)
builders keep the original signature valid over the element it signs: only *which*
element an SP reads decides whether it is fooled.

Every builder takes the IdP first, then ``user``, ``sp_entity_id``, ``acs_url``
(default: AWS's own SP values) and any :class:`~idp_fixtures.saml.idp.AssertionOptions`.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Unpack

from lxml import etree  # type: ignore[import-untyped,unused-ignore]

from idp_fixtures.saml.directory import SamlUser
from idp_fixtures.saml.idp import AssertionOptions, SamlIdp, sign_xml
from idp_fixtures.saml.keys import SigningCert, generate_signing_cert
from idp_fixtures.saml.names import (
    AWS_ACS_URL,
    AWS_SP_ENTITY_ID,
    DS,
    ROLE_ATTRIBUTE,
    SAML,
    SAMLP,
    STATUS_AUTHN_FAILED,
    XmlElement,
    b64,
    serialize,
)

_SENDER_VOUCHES = "urn:oasis:names:tc:SAML:2.0:cm:sender-vouches"
_DECOY_NS = "urn:idp-fixtures:hostile"
_EVIL_NAME_ID = "admin@example.com"


@functools.cache
def attacker_key() -> SigningCert:
    """The attacker's key pair (one per process: RSA generation is the slow part)."""
    return generate_signing_cert("attacker.example")


@dataclass(frozen=True)
class _Target:
    idp: SamlIdp
    user: str | SamlUser
    sp_entity_id: str
    acs_url: str
    options: AssertionOptions

    def assertion(self, **overrides: object) -> XmlElement:
        merged = dict(self.options) | overrides
        return self.idp.assertion(
            user=self.user,
            sp_entity_id=self.sp_entity_id,
            acs_url=self.acs_url,
            **merged,  # type: ignore[arg-type]
        )

    def signed(self, **overrides: object) -> XmlElement:
        return self.idp.sign_element(self.assertion(**overrides))

    def envelope(self, content: XmlElement | list[XmlElement], **kw: object) -> XmlElement:
        fields: dict[str, object] = {
            "destination": self.acs_url,
            "in_response_to": self.options.get("in_response_to"),
            "issued_at": self.options.get("issued_at"),
            "shape": self.options.get("shape"),
        } | kw
        return self.idp.envelope(content, **fields)  # type: ignore[arg-type]

    def response(self, **overrides: object) -> str:
        """The base64 response around the IdP-signed assertion: the builders whose attack is
        one wrong assertion field are just this, with that field in ``overrides``."""
        return _encode(self.envelope(self.signed(**overrides)))

    def mutated(self, mutate: Callable[[XmlElement], object], **overrides: object) -> str:
        """The base64 response around an assertion that ``mutate`` changed *before* the IdP
        signed it: the signature is valid, so only the rule about the change can refuse it."""
        assertion = self.assertion(**overrides)
        mutate(assertion)
        return _encode(self.envelope(self.idp.sign_element(assertion)))


def _target(
    idp: SamlIdp,
    user: str | SamlUser,
    sp_entity_id: str,
    acs_url: str,
    options: AssertionOptions,
) -> _Target:
    return _Target(idp, user, sp_entity_id, acs_url, options)


def _encode(root: XmlElement) -> str:
    return b64(serialize(root))


def _name_id(assertion: XmlElement) -> XmlElement:
    return assertion.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID")


def _strip_signature(element: XmlElement) -> XmlElement:
    signature = element.find(f"{{{DS}}}Signature")
    if signature is not None:
        element.remove(signature)
    return signature


def _extensions(response: XmlElement) -> XmlElement:
    """A ``samlp:Extensions`` in its schema place (after Issuer/Signature, before Status)."""
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    response.find(f"{{{SAMLP}}}Status").addprevious(extensions)
    return extensions


# -- signatures ---------------------------------------------------------------------------


def unsigned(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    **options: Unpack[AssertionOptions],
) -> str:
    """No signature on the Response nor on the Assertion."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    return _encode(t.envelope(t.assertion()))


def signed_by_foreign_key(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    **options: Unpack[AssertionOptions],
) -> str:
    """Assertion signed by the attacker's key, with the *IdP's* certificate in KeyInfo
    (so a verifier that only compares the KeyInfo certificate with metadata is fooled)."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    signed = idp.sign_element(
        t.assertion(), key=attacker_key(), key_info_cert=idp.signing_cert.cert
    )
    return _encode(t.envelope(signed))


def embedded_attacker_cert(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    **options: Unpack[AssertionOptions],
) -> str:
    """Assertion signed by the attacker's key with the attacker's own certificate in
    KeyInfo: valid for anyone who trusts KeyInfo instead of the metadata."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    return _encode(t.envelope(idp.sign_element(t.assertion(), key=attacker_key())))


def tampered_after_signing(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    forged_name_id: str = _EVIL_NAME_ID,
    **options: Unpack[AssertionOptions],
) -> str:
    """Signed by the IdP, then the NameID changed to ``forged_name_id`` (digest mismatch)."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    signed = t.signed()
    _name_id(signed).text = forged_name_id
    return _encode(t.envelope(signed))


def sha1_signature(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    **options: Unpack[AssertionOptions],
) -> str:
    """A valid RSA-SHA1 signature with a SHA-1 digest, by the IdP's key."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    signed = idp.sign_element(t.assertion(), algorithm="rsa-sha1", digest="sha1")
    return _encode(t.envelope(signed))


def hmac_signature(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    **options: Unpack[AssertionOptions],
) -> str:
    """HMAC-SHA256 keyed with the IdP's public certificate PEM (algorithm confusion: a
    verifier that feeds "the IdP's key" to whatever algorithm the document names)."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    secret = idp.signing_cert.cert_pem.encode("ascii")
    signed = sign_xml(t.assertion(), secret, algorithm="hmac-sha256")
    return _encode(t.envelope(signed))


def two_signatures(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    **options: Unpack[AssertionOptions],
) -> str:
    """An assertion with two ``ds:Signature`` children: the IdP's (after Issuer, valid)
    and an attacker's (last child). An SP must accept exactly one signature per element."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    assertion = t.assertion()
    slot = etree.SubElement(assertion, f"{{{DS}}}Signature", nsmap={"ds": DS})
    slot.set("Id", "placeholder")
    attacked = idp.sign_element(assertion, key=attacker_key())
    return _encode(t.envelope(idp.sign_element(attacked)))


# -- signature wrapping -------------------------------------------------------------------


def xsw_original_in_extensions(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    forged_name_id: str = _EVIL_NAME_ID,
    **options: Unpack[AssertionOptions],
) -> str:
    """The signed original moved into ``samlp:Extensions``; in its place an unsigned evil
    copy with the same ID and ``forged_name_id``."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    original = t.signed()
    evil = copy.deepcopy(original)
    _strip_signature(evil)
    _name_id(evil).text = forged_name_id
    response = t.envelope(evil)
    _extensions(response).append(original)
    return _encode(response)


def xsw_original_in_advice(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    forged_name_id: str = _EVIL_NAME_ID,
    **options: Unpack[AssertionOptions],
) -> str:
    """An unsigned evil assertion (``forged_name_id``) whose ``saml:Advice`` holds the
    intact signed original: "a valid signature somewhere inside" is not enough."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    original = t.signed()
    evil = t.assertion(name_id=forged_name_id)
    advice = etree.Element(f"{{{SAML}}}Advice")
    advice.append(original)
    evil.find(f"{{{SAML}}}Conditions").addnext(advice)
    return _encode(t.envelope(evil))


def xsw_cloned_assertion(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    forged_name_id: str = _EVIL_NAME_ID,
    **options: Unpack[AssertionOptions],
) -> str:
    """The signed original followed by a clone with the same ID, the same (copied)
    Signature element and ``forged_name_id``: duplicate IDs, "last one wins" readers."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    original = t.signed()
    clone = copy.deepcopy(original)
    _name_id(clone).text = forged_name_id
    return _encode(t.envelope([original, clone]))


def xsw_evil_first(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    forged_name_id: str = _EVIL_NAME_ID,
    **options: Unpack[AssertionOptions],
) -> str:
    """An unsigned evil assertion (own ID, ``forged_name_id``) before the signed original:
    "verify one, read the first" readers."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    evil = t.assertion(name_id=forged_name_id)
    return _encode(t.envelope([evil, t.signed()]))


def xsw_response_extra_assertion(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    forged_name_id: str = _EVIL_NAME_ID,
    **options: Unpack[AssertionOptions],
) -> str:
    """A Response signed by the IdP (valid) with an extra unsigned evil assertion inside
    the signature's ``ds:Object``: the enveloped-signature transform removes the whole
    Signature, so the response signature still verifies, and the evil assertion comes
    first in document order."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    response = idp.sign_element(t.envelope(t.assertion()))
    holder = etree.SubElement(response.find(f"{{{DS}}}Signature"), f"{{{DS}}}Object")
    holder.append(t.assertion(name_id=forged_name_id))
    return _encode(response)


def xsw_reference_to_other_element(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    forged_name_id: str = _EVIL_NAME_ID,
    **options: Unpack[AssertionOptions],
) -> str:
    """The evil assertion (``forged_name_id``) carries a valid IdP signature whose
    Reference points at *another* element: the original assertion, moved (without its
    Signature) into ``samlp:Extensions``. The signature verifies; it just doesn't cover
    the assertion it sits in."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    original = t.signed()
    signature = _strip_signature(original)
    evil = t.assertion(name_id=forged_name_id)
    evil.find(f"{{{SAML}}}Issuer").addnext(signature)
    response = t.envelope(evil)
    _extensions(response).append(original)
    return _encode(response)


def comment_in_name_id(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    before: str = "admin@corp.com",
    after: str = ".evil.com",
    **options: Unpack[AssertionOptions],
) -> str:
    """NameID ``admin@corp.com<!---->.evil.com``: the IdP signed ``admin@corp.com.evil.com``
    (the attacker's real account); the comment is added after signing, which keeps the
    signature valid because exclusive c14n drops comments. A reader that takes the first
    text node sees ``admin@corp.com``."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    signed = t.signed(name_id=before + after)
    name_id = _name_id(signed)
    name_id.text = before
    comment = etree.Comment("")
    comment.tail = after
    name_id.append(comment)
    return _encode(t.envelope(signed))


# -- XML parser attacks -------------------------------------------------------------------


def _with_doctype(t: _Target, entity: Callable[[str], str], reference: str) -> str:
    """The signed response with a DOCTYPE declaring ``entity(name_id)`` and the NameID
    written as ``reference``; the signature covers the NameID as expanded text."""
    signed = t.signed()
    name_id = _name_id(signed).text
    response = t.envelope(signed)
    subset = entity(name_id)
    body = etree.tostring(response).decode("utf-8")
    pattern = re.compile(r"(<(?:[\w.-]+:)?NameID\b[^>]*>)" + re.escape(name_id) + r"(</)")
    body, count = pattern.subn(lambda m: m.group(1) + reference + m.group(2), body, count=1)
    if count != 1:
        raise RuntimeError("NameID not found for the entity reference")
    root_name = response.prefix + ":Response" if response.prefix else "Response"
    head = f"<?xml version='1.0' encoding='UTF-8'?>\n<!DOCTYPE {root_name} [{subset}]>\n"
    return b64((head + body).encode("utf-8"))


def doctype(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    **options: Unpack[AssertionOptions],
) -> str:
    """A DOCTYPE with an internal entity whose value is the NameID; the NameID is written
    as ``&subject;``. Signed over the expanded text, so an entity-expanding parser sees
    a valid signature. Any DOCTYPE must be refused."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    return _with_doctype(t, lambda value: f'<!ENTITY subject "{value}">', "&subject;")


def xxe_external_entity(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    system_id: str = "file:///etc/hostname",
    **options: Unpack[AssertionOptions],
) -> str:
    """A DOCTYPE declaring an external entity (``SYSTEM system_id``) used as the NameID:
    a parser that resolves it reads local files (or makes requests)."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    return _with_doctype(t, lambda _: f'<!ENTITY xxe SYSTEM "{system_id}">', "&xxe;")


def deep_nesting(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    depth: int = 128,
    **options: Unpack[AssertionOptions],
) -> str:
    """A validly signed response whose ``samlp:Extensions`` nests ``depth`` elements
    (below libxml2's own limit of 256, so only the SP's depth bound stops it)."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    response = t.envelope(t.signed())
    node = _extensions(response)
    for _ in range(depth):
        node = etree.SubElement(node, f"{{{_DECOY_NS}}}n", nsmap={"x": _DECOY_NS})
    return _encode(response)


def oversized(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    size: int = 100_001,
    **options: Unpack[AssertionOptions],
) -> str:
    """A validly signed response of at least ``size`` base64 characters (default: one
    more than ``AssumeRoleWithSAML``'s 100000-character ``SAMLAssertion`` limit), padded
    with an extra attribute inside the signed assertion."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    base = len(t.response())
    padding = max(0, (size - base) * 3 // 4 + 64)
    extra = dict(options.get("attributes") or {}) | {"urn:idp-fixtures:padding": "x" * padding}
    return t.response(attributes=extra)


# -- protocol rules -----------------------------------------------------------------------


def expired(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    ago: int = 3600,
    **options: Unpack[AssertionOptions],
) -> str:
    """Issued long enough ago that Conditions and SubjectConfirmationData
    ``NotOnOrAfter`` passed ``ago`` seconds ago."""
    lifetime = options.get("lifetime", 300)
    options["issued_at"] = idp.now() - ago - lifetime
    return _target(idp, user, sp_entity_id, acs_url, options).response()


def not_yet_valid(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    ahead: int = 3600,
    **options: Unpack[AssertionOptions],
) -> str:
    """Issued ``ahead`` seconds in the future: ``NotBefore`` (and IssueInstant) not yet."""
    options["issued_at"] = idp.now() + ahead
    return _target(idp, user, sp_entity_id, acs_url, options).response()


def wrong_audience(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    evil_audience: str = "https://evil.example.com/saml",
    **options: Unpack[AssertionOptions],
) -> str:
    """The only Audience is another SP's."""
    return _target(idp, user, sp_entity_id, acs_url, options).response(audience=evil_audience)


def extra_audience_restriction(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    other: str = "https://evil.example.com/saml",
    **options: Unpack[AssertionOptions],
) -> str:
    """Two AudienceRestriction elements, one with this SP, one with ``other`` only: every
    restriction must hold (core 2.5.1.4), so this SP is not an audience."""
    return _target(idp, user, sp_entity_id, acs_url, options).response(
        audiences=[[sp_entity_id], [other]]
    )


def wrong_recipient(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    evil_recipient: str = "https://evil.example.com/saml/acs",
    **options: Unpack[AssertionOptions],
) -> str:
    """SubjectConfirmationData ``Recipient`` is another ACS (Destination is right)."""
    return _target(idp, user, sp_entity_id, acs_url, options).response(recipient=evil_recipient)


def wrong_destination(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    destination: str = "https://evil.example.com/saml/acs",
    **options: Unpack[AssertionOptions],
) -> str:
    """The Response ``Destination`` is another ACS; the response is signed (so the
    Destination is authentic) as well as the assertion."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    response = t.envelope(t.signed(), destination=destination)
    return _encode(idp.sign_element(response))


def not_bearer(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    method: str = _SENDER_VOUCHES,
    **options: Unpack[AssertionOptions],
) -> str:
    """The only SubjectConfirmation has ``Method`` ``method`` (sender-vouches), not bearer."""
    return _target(idp, user, sp_entity_id, acs_url, options).response(confirmation_method=method)


def no_recipient(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    **options: Unpack[AssertionOptions],
) -> str:
    """SubjectConfirmationData without ``Recipient`` (AWS requires it)."""

    def drop_recipient(assertion: XmlElement) -> None:
        data = assertion.find(
            f"{{{SAML}}}Subject/{{{SAML}}}SubjectConfirmation/{{{SAML}}}SubjectConfirmationData"
        )
        del data.attrib["Recipient"]

    return _target(idp, user, sp_entity_id, acs_url, options).mutated(drop_recipient)


def duplicate_role_attribute(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    extra_role: tuple[str, str] = (
        "arn:aws:iam::111111111111:role/Admin",
        "arn:aws:iam::111111111111:saml-provider/IdpFixtures",
    ),
    **options: Unpack[AssertionOptions],
) -> str:
    """Two ``Attribute`` elements named ``.../Role`` (the second with ``extra_role``): an
    SP must not merge or pick one."""

    def duplicate_role(assertion: XmlElement) -> None:
        statement = assertion.find(f"{{{SAML}}}AttributeStatement")
        role = statement.find(f"{{{SAML}}}Attribute[@Name='{ROLE_ATTRIBUTE}']")
        if role is None:
            raise ValueError("the user has no roles to duplicate; pass roles=[...]")
        duplicate = copy.deepcopy(role)
        for value in duplicate.findall(f"{{{SAML}}}AttributeValue")[1:]:
            duplicate.remove(value)
        duplicate.find(f"{{{SAML}}}AttributeValue").text = ",".join(extra_role)
        role.addnext(duplicate)

    return _target(idp, user, sp_entity_id, acs_url, options).mutated(duplicate_role)


def role_only_in_advice(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    advice_roles: tuple[tuple[str, str], ...] = (
        (
            "arn:aws:iam::111111111111:role/Admin",
            "arn:aws:iam::111111111111:saml-provider/IdpFixtures",
        ),
    ),
    **options: Unpack[AssertionOptions],
) -> str:
    """The signed assertion has no Role attribute; ``advice_roles`` appear only in an assertion
    inside its ``saml:Advice`` (attributes there are not statements about the subject)."""

    def add_advice(assertion: XmlElement) -> None:
        inner = etree.Element(f"{{{SAML}}}Assertion")
        inner.set("ID", idp.new_id())
        inner.set("Version", "2.0")
        inner.set("IssueInstant", assertion.get("IssueInstant"))
        etree.SubElement(inner, f"{{{SAML}}}Issuer").text = idp.entity_id
        inner.append(
            idp.attribute_statement(
                {ROLE_ATTRIBUTE: [f"{r},{p}" for r, p in advice_roles]}, options.get("shape")
            )
        )
        advice = etree.Element(f"{{{SAML}}}Advice")
        advice.append(inner)
        assertion.find(f"{{{SAML}}}Conditions").addnext(advice)

    return _target(idp, user, sp_entity_id, acs_url, options).mutated(add_advice, roles=[])


def several_assertions(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    second_user: str | SamlUser | None = None,
    **options: Unpack[AssertionOptions],
) -> str:
    """Two assertions, each validly signed (the second for ``second_user``, default the
    same user): a Response must carry exactly one."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    second = _target(idp, second_user or user, sp_entity_id, acs_url, options).signed()
    return _encode(t.envelope([t.signed(), second]))


def two_authn_statements(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    **options: Unpack[AssertionOptions],
) -> str:
    """A signed assertion with two AuthnStatements (exactly one is allowed)."""

    def add_twin(assertion: XmlElement) -> None:
        statement = assertion.find(f"{{{SAML}}}AuthnStatement")
        twin = copy.deepcopy(statement)
        twin.set("SessionIndex", idp.new_id())
        statement.addnext(twin)

    return _target(idp, user, sp_entity_id, acs_url, options).mutated(add_twin)


def status_failure(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    status: str = STATUS_AUTHN_FAILED,
    **options: Unpack[AssertionOptions],
) -> str:
    """Status ``Responder`` / ``status`` (AuthnFailed) around an otherwise valid signed
    assertion: a non-success status must win over any assertion."""
    t = _target(idp, user, sp_entity_id, acs_url, options)
    return _encode(t.envelope(t.signed(), status=status))


def issuer_mismatch(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    evil_issuer: str = "https://evil.example.com/idp",
    **options: Unpack[AssertionOptions],
) -> str:
    """The Assertion's Issuer is ``evil_issuer`` while the IdP's key signed it and the
    Response's Issuer is the IdP: the signer must be the Issuer's metadata key."""
    return _target(idp, user, sp_entity_id, acs_url, options).response(issuer=evil_issuer)


BUILDERS = (
    unsigned,
    signed_by_foreign_key,
    embedded_attacker_cert,
    tampered_after_signing,
    sha1_signature,
    hmac_signature,
    two_signatures,
    xsw_original_in_extensions,
    xsw_original_in_advice,
    xsw_cloned_assertion,
    xsw_evil_first,
    xsw_response_extra_assertion,
    xsw_reference_to_other_element,
    comment_in_name_id,
    doctype,
    xxe_external_entity,
    deep_nesting,
    oversized,
    expired,
    not_yet_valid,
    wrong_audience,
    extra_audience_restriction,
    wrong_recipient,
    wrong_destination,
    not_bearer,
    no_recipient,
    duplicate_role_attribute,
    role_only_in_advice,
    several_assertions,
    two_authn_statements,
    status_failure,
    issuer_mismatch,
)
"""Every builder, for tests that run a whole refusal matrix."""
