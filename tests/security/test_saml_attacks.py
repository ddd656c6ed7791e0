"""Hostile SAML: each test builds the real malicious Response and asserts the exact refusal.

Signature wrapping variants follow Somorovsky et al., "On Breaking SAML" (2012) and the
XSW1-8 catalogue of SAML Raider: each starts from a response genuinely signed by the IdP
and moves, clones or nests the signed parts around attacker content.
"""

from __future__ import annotations

import base64
import copy
import zlib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree  # type: ignore[import-untyped,unused-ignore]
from signxml.algorithms import SignatureConstructionMethod
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

from broker.errors import StsError
from tests.saml_builders import (
    ACCOUNT,
    ACS,
    AWS,
    DS,
    EXC_C14N,
    IDP_ENTITY,
    NOW,
    PROVIDER_ARN,
    ROLE,
    SAML,
    SAMLP,
    SP_ENTITY,
    Harness,
    add_attribute,
    assertion,
    encode,
    encode_text,
    encrypt,
    keypair,
    metadata,
    response,
    sign,
    signed_response,
)

EVIL_ROLE = f"arn:aws:iam::{ACCOUNT}:role/Admin,{PROVIDER_ARN}"


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def refused(harness: Harness, text: str, code: str, status: int, fragment: str, **kw: Any) -> None:
    error = harness.refusal(text, **kw)
    assert (error.code, error.status) == (code, status), error
    assert fragment in error.message, error.message
    assert "<" not in error.message  # never echoes XML


def invalid(harness: Harness, text: str, fragment: str, **kw: Any) -> None:
    refused(harness, text, "InvalidIdentityToken", 400, fragment, **kw)


def find(root: Any, path: str) -> Any:
    found = root.find(path)
    assert found is not None, path
    return found


def evil_copy(signed_assertion: Any, *, id: str = "_evil") -> Any:
    """The signed assertion with its signature removed, a new ID and the attacker's claims."""
    clone = copy.deepcopy(signed_assertion)
    for signature in clone.findall(f"{{{DS}}}Signature"):
        clone.remove(signature)
    clone.set("ID", id)
    find(clone, f".//{{{SAML}}}NameID").text = "admin@corp.example"
    find(clone, f".//{{{SAML}}}Attribute[@Name='{ROLE}']/{{{SAML}}}AttributeValue").text = EVIL_ROLE
    return clone


# --------------------------------------------------------------------------- signatures


def test_unsigned_response_is_refused(harness: Harness) -> None:
    invalid(harness, encode(signed_response(sign_assertion=False)), "is not signed")


def test_content_changed_after_signing_is_refused(harness: Harness) -> None:
    root = signed_response()
    find(root, f".//{{{SAML}}}NameID").text = "admin@corp.example"
    invalid(harness, encode(root), "signed content was changed")
    root = signed_response()
    value = find(root, f".//{{{DS}}}SignatureValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[10] ^= 1
    value.text = base64.b64encode(bytes(raw)).decode()
    invalid(harness, encode(root), "The Assertion signature is not valid")


def test_signature_by_a_key_not_in_metadata_with_its_own_embedded_cert(harness: Harness) -> None:
    attacker = keypair("attacker")
    root = signed_response(pair=attacker)
    # The embedded certificate is well-formed and matches the signing key: still refused.
    embedded = find(root, f".//{{{DS}}}X509Certificate").text
    assert base64.b64decode(embedded)
    invalid(harness, encode(root), "not made by a key in the identity provider's metadata")


def test_embedded_metadata_certificate_does_not_lend_its_trust(harness: Harness) -> None:
    attacker = keypair("attacker")
    element = sign(assertion(), attacker, with_cert=False)
    key_info = etree.SubElement(find(element, f"{{{DS}}}Signature"), f"{{{DS}}}KeyInfo")
    cert = etree.SubElement(
        etree.SubElement(key_info, f"{{{DS}}}X509Data"), f"{{{DS}}}X509Certificate"
    )
    cert.text = base64.b64encode(keypair("idp").cert.public_bytes(Encoding.DER)).decode()
    invalid(harness, encode(response(element)), "The Assertion signature is not valid")


def test_hmac_signature_is_refused_by_name(harness: Harness) -> None:
    element = assertion()
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm="hmac-sha256",
        digest_algorithm="sha256",
        c14n_algorithm=EXC_C14N,
    )
    signed = signer.sign(element, key=b"a shared secret the attacker chose")
    invalid(harness, encode(response(signed)), "algorithm is not accepted (HMAC)")


@pytest.mark.parametrize(
    ("algorithm", "digest", "fragment"),
    [
        ("rsa-sha1", "sha256", "algorithm is not accepted (SHA-1)"),
        ("rsa-sha256", "sha1", "digest algorithm is not accepted"),
        ("rsa-sha224", "sha256", "algorithm is not accepted"),
    ],
)
def test_weak_signature_and_digest_algorithms_are_refused(
    harness: Harness, algorithm: str, digest: str, fragment: str
) -> None:
    element = sign(assertion(), algorithm=algorithm, digest=digest)
    invalid(harness, encode(response(element)), fragment)


def test_md5_is_refused_before_any_crypto(harness: Harness) -> None:
    root = signed_response()
    find(root, f".//{{{DS}}}SignatureMethod").set(
        "Algorithm", "http://www.w3.org/2001/04/xmldsig-more#rsa-md5"
    )
    invalid(harness, encode(root), "algorithm is not accepted")
    root = signed_response()
    find(root, f".//{{{DS}}}DigestMethod").set(
        "Algorithm", "http://www.w3.org/2001/04/xmldsig-more#md5"
    )
    invalid(harness, encode(root), "digest algorithm is not accepted")


def test_inclusive_canonicalization_is_refused(harness: Harness) -> None:
    element = sign(assertion(), c14n="http://www.w3.org/2006/12/xml-c14n11")
    invalid(harness, encode(response(element)), "must use exclusive canonicalization")


@pytest.mark.parametrize(
    "transform",
    [
        "http://www.w3.org/TR/1999/REC-xpath-19991116",
        "http://www.w3.org/TR/1999/REC-xslt-19991116",
        "http://www.w3.org/2000/09/xmldsig#base64",
    ],
)
def test_any_transform_beyond_enveloped_and_exclusive_c14n_is_refused(
    harness: Harness, transform: str
) -> None:
    root = signed_response()
    transforms = find(root, f".//{{{DS}}}Transforms")
    etree.SubElement(transforms, f"{{{DS}}}Transform").set("Algorithm", transform)
    invalid(harness, encode(root), "transforms must be exactly enveloped-signature")
    root = signed_response()
    find(root, f".//{{{DS}}}Transforms").remove(find(root, f".//{{{DS}}}Transform"))
    invalid(harness, encode(root), "transforms must be exactly enveloped-signature")


@pytest.mark.parametrize("uri", ["", "#_r1", "#xpointer(/)", "#other"])
def test_reference_must_be_the_enclosing_element(harness: Harness, uri: str) -> None:
    root = signed_response()
    find(root, f".//{{{DS}}}Reference").set("URI", uri)
    invalid(harness, encode(root), "must reference the element it is in")


def test_two_references_are_refused(harness: Harness) -> None:
    root = signed_response()
    reference = find(root, f".//{{{DS}}}Reference")
    reference.addnext(copy.deepcopy(reference))
    invalid(harness, encode(root), "exactly one Reference")


def test_two_signatures_on_one_element_are_refused(harness: Harness) -> None:
    root = signed_response()
    signature = find(root, f".//{{{DS}}}Signature")
    signature.addnext(copy.deepcopy(signature))
    invalid(harness, encode(root), "signatures in unexpected places")


def test_a_broken_response_signature_fails_even_with_a_good_assertion_signature(
    harness: Harness,
) -> None:
    root = signed_response(sign_response=True)
    find(root, f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode").set(
        "Value", "urn:oasis:names:tc:SAML:2.0:status:Success "
    )
    invalid(harness, encode(root), "did not report success")
    root = signed_response(sign_response=True)
    root.set("Destination", ACS + "?x")
    invalid(harness, encode(root), "The Response signature is not valid")


def test_response_and_assertion_may_use_two_keys_of_one_provider(tmp_path: Path) -> None:
    other = keypair("idp-other")
    harness = Harness(tmp_path, idp_metadata=metadata(certs=[keypair("idp").cert, other.cert]))
    element = sign(assertion())
    root = sign(response(element), other)
    # Both keys are in this one provider's metadata: accepted.
    assert harness.verify(encode(root)).subject


def test_keys_of_two_providers_sharing_an_entity_id_do_not_mix(tmp_path: Path) -> None:
    # Two accounts register the same IdP entity ID with different keys. A Response signed
    # with one and an assertion signed with the other must not pass for either.
    b_key = keypair("idp-b")
    second = (
        '  "222222222222":\n    saml_providers:\n'
        "      B: {metadata_file: b.xml, idp_initiated: true}\n"
    )
    harness = Harness(
        tmp_path,
        provider=", idp_initiated: true",
        extra_accounts=second,
        extra_files={"b.xml": metadata(IDP_ENTITY, [b_key.cert])},
    )
    root = sign(response(sign(assertion())), b_key)
    invalid(
        harness,
        encode(root),
        "signed by keys of different identity providers",
        provider_arn=None,
        api=False,
    )
    invalid(harness, encode(root), "The Response signature is not valid")


def test_signature_object_element_is_refused(harness: Harness) -> None:
    root = signed_response()
    etree.SubElement(find(root, f".//{{{DS}}}Signature"), f"{{{DS}}}Object")
    invalid(harness, encode(root), "signature has unexpected elements")


# --------------------------------------------------------------------------- wrapping (XSW)


def test_xsw_extra_unsigned_assertion_before_the_signed_one(harness: Harness) -> None:
    root = signed_response()
    signed = find(root, f"{{{SAML}}}Assertion")
    signed.addprevious(evil_copy(signed))
    invalid(harness, encode(root), "exactly one assertion (found 2)")


def test_xsw_evil_assertion_reusing_the_signed_id(harness: Harness) -> None:
    root = signed_response()
    signed = find(root, f"{{{SAML}}}Assertion")
    signed.addprevious(evil_copy(signed, id="_a1"))
    invalid(harness, encode(root), "uses the ID '_a1' more than once")


def test_xsw_signed_assertion_hidden_inside_the_evil_one(harness: Harness) -> None:
    root = signed_response()
    signed = find(root, f"{{{SAML}}}Assertion")
    evil = evil_copy(signed)
    root.replace(signed, evil)
    advice = etree.Element(f"{{{SAML}}}Advice")
    advice.append(signed)
    find(evil, f"{{{SAML}}}Conditions").addnext(advice)
    invalid(harness, encode(root), "exactly one assertion (found 2)")


def test_xsw_signature_moved_to_the_evil_assertion(harness: Harness) -> None:
    root = signed_response()
    signed = find(root, f"{{{SAML}}}Assertion")
    evil = evil_copy(signed, id="_a1")
    signature = find(signed, f"{{{DS}}}Signature")
    find(evil, f"{{{SAML}}}Issuer").addnext(signature)
    root.replace(signed, evil)
    # The signed original goes inside the signature, where a lax verifier resolves "#_a1".
    original = copy.deepcopy(signed)
    original.set("ID", "_a1x")
    etree.SubElement(signature, f"{{{DS}}}Object").append(original)
    invalid(harness, encode(root), "exactly one assertion (found 2)")
    # Without the original anywhere, the moved signature no longer matches the content.
    etree.strip_elements(signature, f"{{{DS}}}Object")
    invalid(harness, encode(root), "signed content was changed")


def test_xsw_signed_response_wrapped_in_an_evil_response(harness: Harness) -> None:
    signed_root = signed_response(sign_assertion=False, sign_response=True)
    evil_root = response(evil_copy(find(signed_root, f"{{{SAML}}}Assertion")), id="_evilr")
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    extensions.append(signed_root)
    find(evil_root, f"{{{SAML}}}Issuer").addnext(extensions)
    invalid(harness, encode(evil_root), "exactly one assertion (found 2)")


def test_xsw_response_signature_pointing_at_a_moved_original(harness: Harness) -> None:
    signed_root = signed_response(sign_assertion=False, sign_response=True)
    signature = find(signed_root, f"{{{DS}}}Signature")
    evil_root = response(evil_copy(find(signed_root, f"{{{SAML}}}Assertion")), id="_evilr")
    find(evil_root, f"{{{SAML}}}Issuer").addnext(copy.deepcopy(signature))
    invalid(harness, encode(evil_root), "must reference the element it is in")


def test_xsw_assertion_not_a_direct_child(harness: Harness) -> None:
    root = signed_response()
    signed = find(root, f"{{{SAML}}}Assertion")
    extensions = etree.SubElement(root, f"{{{SAMLP}}}Extensions")
    extensions.append(signed)
    invalid(harness, encode(root), "must be a direct child of the Response")


def test_signature_deep_inside_the_assertion_is_refused(harness: Harness) -> None:
    root = signed_response()
    signed = find(root, f"{{{SAML}}}Assertion")
    signature = copy.deepcopy(find(signed, f"{{{DS}}}Signature"))
    find(signed, f".//{{{SAML}}}Subject").append(signature)
    invalid(harness, encode(root), "signatures in unexpected places")


def test_id_attribute_in_another_namespace_cannot_shadow(harness: Harness) -> None:
    root = signed_response()
    find(root, f"{{{SAMLP}}}Status").set("{urn:evil}ID", "_a1")
    invalid(harness, encode(root), "uses the ID '_a1' more than once")


# --------------------------------------------------------------------------- parser attacks


def _with_doctype(doctype: str) -> str:
    body = etree.tostring(signed_response()).decode()
    return encode_text(doctype + body)


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>',
        '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
        '<!DOCTYPE r SYSTEM "http://evil.example/x.dtd">',
        "<!DOCTYPE r>",
    ],
)
def test_any_doctype_is_refused(harness: Harness, doctype: str) -> None:
    invalid(harness, _with_doctype(doctype), "DOCTYPE or entity declaration")


def test_undeclared_entity_is_not_well_formed(harness: Harness) -> None:
    body = etree.tostring(signed_response()).decode().replace("alice@corp", "&x;alice@corp")
    invalid(harness, encode_text(body), "not well-formed XML")


def test_utf16_input_is_refused(harness: Harness) -> None:
    body = etree.tostring(signed_response(), encoding="UTF-16")
    invalid(harness, encode_text(body), "must be UTF-8")
    declared = b'<?xml version="1.0" encoding="ISO-8859-1"?>' + etree.tostring(signed_response())
    invalid(harness, encode_text(declared), "must be UTF-8")


def test_xinclude_is_refused(harness: Harness) -> None:
    root = signed_response()
    include = etree.SubElement(root, "{http://www.w3.org/2001/XInclude}include")
    include.set("href", "file:///etc/passwd")
    invalid(harness, encode(root), "XInclude")


def test_processing_instruction_is_refused(harness: Harness) -> None:
    body = etree.tostring(signed_response()).decode()
    invalid(harness, encode_text('<?xml-stylesheet href="x"?>' + body), "processing instruction")


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("alice@corp.example", "alice@<!---->corp.example"),
        (IDP_ENTITY + "<", IDP_ENTITY + "<!-- -->" + "<"),
        ("role/Dev,", "role/Dev<!---->,"),
    ],
)
def test_comment_inside_text_is_refused_even_though_the_signature_holds(
    harness: Harness, before: str, after: str
) -> None:
    body = etree.tostring(signed_response()).decode()
    assert before in body
    tampered = body.replace(before, after, 1)
    # Exclusive c14n drops comments, so the signature itself still verifies:
    cert = keypair("idp").cert_pem
    tampered_root = etree.fromstring(tampered.encode())
    assertion_element = find(tampered_root, f"{{{SAML}}}Assertion")
    XMLVerifier().verify(
        assertion_element,
        x509_cert=cert,
        expect_config=SignatureConfiguration(
            location="./", verification_time=keypair("idp").cert.not_valid_before_utc
        ),
    )
    invalid(harness, encode_text(tampered), "comment")


def test_comment_truncation_of_a_signed_longer_name_is_refused(harness: Harness) -> None:
    root = signed_response(subject="a@corp.com.evil.com")
    body = (
        etree.tostring(root).decode().replace("a@corp.com.evil.com", "a@corp.com<!---->.evil.com")
    )
    invalid(harness, encode_text(body), "comments are not accepted")


def test_oversized_deep_wide_and_deflated_inputs(harness: Harness) -> None:
    refused(
        harness,
        encode_text(b"<a>" + b" " * 300_000 + b"</a>"),
        "ValidationError",
        400,
        "larger than 262144 bytes",
    )
    deep = "<a>" * 70 + "</a>" * 70
    invalid(harness, encode_text(deep), "deeper than 64 levels")
    wide = "<a>" + "<b/>" * 10_001 + "</a>"
    invalid(harness, encode_text(wide), "more than 10000 elements")
    # Deflate belongs to the Redirect binding only: a compressed bomb is never inflated.
    bomb = base64.b64encode(zlib.compress(b"<a>" + b"x" * 10_000_000 + b"</a>")[2:-4]).decode()
    invalid(harness, bomb, "not well-formed XML")


def test_doctype_inside_the_encrypted_plaintext_is_refused(harness: Harness) -> None:
    signed = sign(assertion())
    plaintext = b'<!DOCTYPE x [<!ENTITY e "e">]>' + etree.tostring(signed)
    carrier = encrypt(signed, keypair("sp").cert, plaintext=plaintext)
    invalid(harness, encode(response(carrier)), "decrypted assertion contains a DOCTYPE")
    carrier = encrypt(signed, keypair("sp").cert, plaintext=b"<x><!---->y</x>")
    invalid(harness, encode(response(carrier)), "decrypted assertion contains an XML comment")


# --------------------------------------------------------------------------- protocol


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"destination": "https://other-sp.example/acs"}, "Destination"),
        ({"recipient": "https://other-sp.example/acs"}, "Recipient"),
        ({"recipient": "https://signin.aws.amazon.com/saml"}, "Recipient"),
        ({"recipient": None}, "must have a Recipient"),
        ({"audiences": [["https://other-sp.example"]]}, "AudienceRestriction does not name"),
        ({"audiences": [[]]}, "AudienceRestriction must hold only Audience"),
        ({"audiences": []}, "must have an AudienceRestriction"),
        ({"method": "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"}, "must be bearer"),
        ({"confirmations": 2}, "exactly one SubjectConfirmation (found 2)"),
        ({"scd_not_before": NOW - 10}, "must not have NotBefore"),
        ({"scd_not_on_or_after": None}, "SubjectConfirmationData NotOnOrAfter is missing"),
        ({"authn_statements": 0}, "exactly one AuthnStatement (found 0)"),
        ({"authn_statements": 2}, "exactly one AuthnStatement (found 2)"),
        ({"issuer": "https://evil.example/saml"}, "is not the entity ID of the identity provider"),
        ({"issuer": None}, "has no Issuer"),
        ({"response_issuer": "https://evil.example"}, "Response's Issuer differs"),
        ({"extra_conditions": ["Unknown"]}, "condition the broker does not understand"),
        ({"status": "urn:oasis:names:tc:SAML:2.0:status:Responder"}, "did not report success"),
    ],
)
def test_protocol_rules(harness: Harness, kwargs: dict[str, Any], fragment: str) -> None:
    invalid(harness, encode(signed_response(**kwargs)), fragment)


def test_several_audience_restrictions_all_apply(harness: Harness) -> None:
    text = encode(signed_response(audiences=[[SP_ENTITY], ["https://other-sp.example"]]))
    invalid(harness, text, "AudienceRestriction does not name")
    assert harness.verify(
        encode(signed_response(audiences=[[SP_ENTITY, "x"], ["y", SP_ENTITY]]))
    ).subject


def test_signed_response_without_destination_is_refused(harness: Harness) -> None:
    text = encode(signed_response(sign_assertion=False, sign_response=True, destination=None))
    invalid(harness, text, "A signed Response must carry a Destination")


def test_no_assertion_at_all(harness: Harness) -> None:
    invalid(harness, encode(response(None)), "exactly one assertion (found 0)")


def test_issuer_not_the_idp_that_signed(tmp_path: Path) -> None:
    # A second provider's IdP (its own key, its own entity ID) signs an assertion naming
    # the first IdP as Issuer: the key that verified decides, not the claimed Issuer.
    other = keypair("idp-b")
    second = (
        '  "222222222222":\n    saml_providers:\n'
        "      B: {metadata_file: b.xml, idp_initiated: true}\n"
    )
    harness = Harness(
        tmp_path,
        provider=", idp_initiated: true",
        extra_accounts=second,
        extra_files={"b.xml": metadata("https://idp-b.example", [other.cert])},
    )
    text = encode(signed_response(pair=other))
    invalid(harness, text, "not made by a key in the identity provider's metadata")
    invalid(harness, text, "not made by a key", provider_arn=None, api=False)


def test_attributes_only_in_advice_are_never_read(harness: Harness) -> None:
    element = assertion(roles=None)
    advice = etree.Element(f"{{{SAML}}}Advice")
    statement = etree.SubElement(advice, f"{{{SAML}}}AttributeStatement")
    attribute = etree.SubElement(statement, f"{{{SAML}}}Attribute", Name=ROLE)
    etree.SubElement(attribute, f"{{{SAML}}}AttributeValue").text = EVIL_ROLE
    find(element, f"{{{SAML}}}Conditions").addnext(advice)
    text = encode(response(sign(element)))
    refused(harness, text, "IDPRejectedClaim", 403, "only inside Advice")


def test_duplicate_and_misnamed_role_attributes(harness: Harness) -> None:
    element = assertion()
    add_attribute(element, ROLE, [EVIL_ROLE])
    refused(harness, encode(response(sign(element))), "IDPRejectedClaim", 403, "more than once")
    element = assertion(roles=None)
    add_attribute(element, AWS + "role", [EVIL_ROLE])
    refused(harness, encode(response(sign(element))), "IDPRejectedClaim", 403, "only in case")
    element = assertion()
    add_attribute(element, AWS.upper() + "RoleSessionName", ["x"])
    refused(harness, encode(response(sign(element))), "IDPRejectedClaim", 403, "only in case")


def test_complex_role_values_are_refused(harness: Harness) -> None:
    element = assertion()
    value = find(element, f".//{{{SAML}}}Attribute[@Name='{ROLE}']/{{{SAML}}}AttributeValue")
    value.text = None
    etree.SubElement(value, "inner").text = EVIL_ROLE
    refused(harness, encode(response(sign(element))), "IDPRejectedClaim", 403, "must be text")


def test_unsolicited_or_foreign_in_response_to_at_the_acs(harness: Harness) -> None:
    solicited = encode(signed_response(in_response_to="_other_session"))
    invalid(harness, solicited, "did not make", provider_arn=None, api=False)
    invalid(
        harness, solicited, "does not match", provider_arn=None, in_response_to="_mine", api=False
    )


def test_encrypted_assertion_with_its_own_signature_element(harness: Harness) -> None:
    carrier = encrypt(sign(assertion()), keypair("sp").cert)
    carrier.append(copy.deepcopy(find(sign(assertion()), f"{{{DS}}}Signature")))
    invalid(harness, encode(response(carrier)), "must not carry a signature")


def test_decryption_failures_all_read_the_same(harness: Harness) -> None:
    messages = set()
    for tamper in ("key", "data"):
        carrier = encrypt(sign(assertion()), keypair("sp").cert)
        path = (
            ".//{*}EncryptedKey/{*}CipherData/{*}CipherValue"
            if tamper == "key"
            else ("{*}EncryptedData/{*}CipherData/{*}CipherValue")
        )
        value = find(carrier, path)
        raw = bytearray(base64.b64decode(value.text))
        raw[-1] ^= 1
        value.text = base64.b64encode(bytes(raw)).decode()
        error = harness.refusal(encode(response(carrier)))
        assert isinstance(error, StsError)
        messages.add((error.code, error.message))
    assert messages == {
        (
            "InvalidIdentityToken",
            "The encrypted assertion could not be decrypted with the SP key.",
        )
    }
