"""Real SAML for tests: keys, IdP metadata, assertions and responses signed with signxml.

Nothing here is mocked: responses are signed by signxml's XMLSigner with keys made by
cryptography, encrypted assertions use real RSA-OAEP and AES, so a test that passes here
passes against a real IdP's bytes. Attack tests take the signed tree and edit it.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from lxml import etree  # type: ignore[import-untyped,unused-ignore]
from signxml.algorithms import SignatureConstructionMethod
from signxml.signer import XMLSigner

from broker.clock import FrozenClock, iso8601
from broker.config import load_config
from broker.errors import StsError
from broker.identity import SamlIdentity, SamlVerifier

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
XS = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
NSMAP = {"samlp": SAMLP, "saml": SAML}
AWS = "https://aws.amazon.com/SAML/Attributes/"
ROLE = AWS + "Role"

NOW = 1_800_000_000  # 2027-01-15T08:00:00Z
ACCOUNT = "111111111111"
OTHER_ACCOUNT = "222222222222"
PUBLIC_URL = "https://broker.example.com"
ACS = PUBLIC_URL + "/saml/acs"
SP_ENTITY = PUBLIC_URL + "/saml/metadata"
IDP_ENTITY = "https://idp.corp.example/saml"
PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT}:saml-provider/Corp"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/Dev"


@dataclass(frozen=True)
class KeyPair:
    """A private key and a self-signed certificate for it."""

    key: Any
    cert: x509.Certificate

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@functools.cache
def keypair(name: str, kind: str = "rsa", bits: int = 2048) -> KeyPair:
    """A key pair per name (cached: RSA generation is the slow part of a test run)."""
    key: Any = (
        ec.generate_private_key(ec.SECP256R1())
        if kind == "ec"
        else rsa.generate_private_key(public_exponent=65537, key_size=bits)
    )
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=365))  # expired at NOW on purpose
        .sign(key, hashes.SHA256())
    )
    return KeyPair(key=key, cert=cert)


def metadata(
    entity_id: str = IDP_ENTITY,
    certs: Sequence[x509.Certificate] = (),
    *,
    use: str | None = "signing",
) -> bytes:
    """IdP metadata with the given signing certificates and an SSO endpoint."""
    root = etree.Element(f"{{{MD}}}EntityDescriptor", nsmap={"md": MD, "ds": DS})
    root.set("entityID", entity_id)
    idp = etree.SubElement(root, f"{{{MD}}}IDPSSODescriptor")
    idp.set("protocolSupportEnumeration", SAMLP)
    for cert in certs or [keypair("idp").cert]:
        descriptor = etree.SubElement(idp, f"{{{MD}}}KeyDescriptor")
        if use is not None:
            descriptor.set("use", use)
        data = etree.SubElement(
            etree.SubElement(etree.SubElement(descriptor, f"{{{DS}}}KeyInfo"), f"{{{DS}}}X509Data"),
            f"{{{DS}}}X509Certificate",
        )
        data.text = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    sso = etree.SubElement(idp, f"{{{MD}}}SingleSignOnService")
    sso.set("Binding", "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect")
    sso.set("Location", "https://idp.corp.example/sso")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")  # type: ignore[no-any-return]


def _sub(parent: Any, tag: str, text: str | None = None, **attrs: str) -> Any:
    element = etree.SubElement(parent, f"{{{SAML}}}{tag}")
    for name, value in attrs.items():
        element.set(name, value)
    if text is not None:
        element.text = text
    return element


def assertion(
    *,
    id: str = "_a1",
    issuer: str | None = IDP_ENTITY,
    subject: str = "alice@corp.example",
    name_format: str | None = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    recipient: str | None = ACS,
    method: str = "urn:oasis:names:tc:SAML:2.0:cm:bearer",
    confirmations: int = 1,
    scd_not_on_or_after: int | None = NOW + 300,
    scd_not_before: int | None = None,
    in_response_to: str | None = None,
    not_before: int | None = NOW - 60,
    not_on_or_after: int | None = NOW + 300,
    audiences: Sequence[Sequence[str]] = ((SP_ENTITY,),),
    authn_statements: int = 1,
    session_not_on_or_after: int | None = None,
    roles: Sequence[str] | None = (f"{ROLE_ARN},{PROVIDER_ARN}",),
    attributes: Mapping[str, Sequence[str]] | None = None,
    extra_conditions: Iterable[str] = (),
    issue_instant: int = NOW - 5,
    placeholder: bool = True,
) -> Any:
    """An Assertion element; ``placeholder`` puts the signature slot after Issuer."""
    root = etree.Element(f"{{{SAML}}}Assertion", nsmap={"saml": SAML, "xs": XS, "xsi": XSI})
    root.set("ID", id)
    root.set("Version", "2.0")
    root.set("IssueInstant", iso8601(issue_instant))
    if issuer is not None:
        _sub(root, "Issuer", issuer)
    if placeholder:
        etree.SubElement(root, f"{{{DS}}}Signature", nsmap={"ds": DS}).set("Id", "placeholder")
    subj = _sub(root, "Subject")
    name_id = _sub(subj, "NameID", subject)
    if name_format is not None:
        name_id.set("Format", name_format)
    for _ in range(confirmations):
        confirmation = _sub(subj, "SubjectConfirmation", Method=method)
        data = _sub(confirmation, "SubjectConfirmationData")
        if recipient is not None:
            data.set("Recipient", recipient)
        if scd_not_on_or_after is not None:
            data.set("NotOnOrAfter", iso8601(scd_not_on_or_after))
        if scd_not_before is not None:
            data.set("NotBefore", iso8601(scd_not_before))
        if in_response_to is not None:
            data.set("InResponseTo", in_response_to)
    conditions = _sub(root, "Conditions")
    if not_before is not None:
        conditions.set("NotBefore", iso8601(not_before))
    if not_on_or_after is not None:
        conditions.set("NotOnOrAfter", iso8601(not_on_or_after))
    for restriction in audiences:
        element = _sub(conditions, "AudienceRestriction")
        for audience in restriction:
            _sub(element, "Audience", audience)
    for tag in extra_conditions:
        _sub(conditions, tag)
    for _ in range(authn_statements):
        statement = _sub(root, "AuthnStatement", AuthnInstant=iso8601(NOW - 10))
        statement.set("SessionIndex", "_s1")
        if session_not_on_or_after is not None:
            statement.set("SessionNotOnOrAfter", iso8601(session_not_on_or_after))
        context = _sub(statement, "AuthnContext")
        _sub(context, "AuthnContextClassRef", "urn:oasis:names:tc:SAML:2.0:ac:classes:Password")
    values: dict[str, Sequence[str]] = {}
    if roles is not None:
        values[ROLE] = roles
    values[AWS + "RoleSessionName"] = ["alice"]
    values.update(attributes or {})
    statement = _sub(root, "AttributeStatement")
    for name, items in values.items():
        attribute = _sub(statement, "Attribute", Name=name)
        attribute.set("NameFormat", "urn:oasis:names:tc:SAML:2.0:attrname-format:uri")
        for item in items:
            value = _sub(attribute, "AttributeValue", item)
            value.set(f"{{{XSI}}}type", "xs:string")
    return root


def add_attribute(assertion_element: Any, name: str, values: Sequence[str]) -> None:
    """One more Attribute element in the (first) AttributeStatement."""
    statement = assertion_element.find(f"{{{SAML}}}AttributeStatement")
    attribute = _sub(statement, "Attribute", Name=name)
    for item in values:
        _sub(attribute, "AttributeValue", item)


def response(
    content: Any | None = None,
    *,
    id: str = "_r1",
    issuer: str | None = IDP_ENTITY,
    destination: str | None = ACS,
    in_response_to: str | None = None,
    status: str = "urn:oasis:names:tc:SAML:2.0:status:Success",
    placeholder: bool = False,
) -> Any:
    """A Response around ``content`` (an Assertion or EncryptedAssertion element)."""
    root = etree.Element(f"{{{SAMLP}}}Response", nsmap=NSMAP)
    root.set("ID", id)
    root.set("Version", "2.0")
    root.set("IssueInstant", iso8601(NOW - 5))
    if destination is not None:
        root.set("Destination", destination)
    if in_response_to is not None:
        root.set("InResponseTo", in_response_to)
    if issuer is not None:
        _sub(root, "Issuer", issuer)
    if placeholder:
        etree.SubElement(root, f"{{{DS}}}Signature", nsmap={"ds": DS}).set("Id", "placeholder")
    status_element = etree.SubElement(root, f"{{{SAMLP}}}Status")
    etree.SubElement(status_element, f"{{{SAMLP}}}StatusCode").set("Value", status)
    if content is not None:
        root.append(content)
    return root


class _AnySigner(XMLSigner):
    """signxml's signer without its SHA-1 refusal: old IdPs do sign with SHA-1."""

    def check_deprecated_methods(self) -> None:
        return None


def sign(
    element: Any,
    pair: KeyPair | None = None,
    *,
    algorithm: str = "rsa-sha256",
    digest: str = "sha256",
    c14n: str = EXC_C14N,
    with_cert: bool = True,
) -> Any:
    """``element`` with an enveloped signature (in its placeholder, else appended)."""
    pair = pair or keypair("idp")
    signer = _AnySigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=algorithm,
        digest_algorithm=digest,
        c14n_algorithm=c14n,
    )
    if element.find(f"{{{DS}}}Signature[@Id='placeholder']") is None:
        issuer = element.find(f"{{{SAML}}}Issuer")
        slot = etree.Element(f"{{{DS}}}Signature", nsmap={"ds": DS})
        slot.set("Id", "placeholder")
        if issuer is not None:
            issuer.addnext(slot)
        else:
            element.insert(0, slot)
    return signer.sign(
        element,
        key=pair.key,
        cert=[pair.cert_pem] if with_cert else None,
        always_add_key_value=False,
    )


def signed_response(
    *,
    sign_assertion: bool = True,
    sign_response: bool = False,
    pair: KeyPair | None = None,
    **assertion_kw: Any,
) -> Any:
    """The common case: a Response with one assertion, signed where asked."""
    response_kw = {
        key: assertion_kw.pop(key)
        for key in ("destination", "in_response_to_response", "status", "response_issuer")
        if key in assertion_kw
    }
    element = assertion(placeholder=sign_assertion, **assertion_kw)
    if sign_assertion:
        element = sign(element, pair)
    root = response(
        element,
        destination=response_kw.get("destination", ACS),
        in_response_to=response_kw.get("in_response_to_response"),
        status=response_kw.get("status", "urn:oasis:names:tc:SAML:2.0:status:Success"),
        issuer=response_kw.get("response_issuer", IDP_ENTITY),
    )
    if sign_response:
        root = sign(root, pair)
    return root


def encode(element: Any) -> str:
    """What an IdP posts: base64 of the serialized Response."""
    return base64.b64encode(etree.tostring(element)).decode()


def encode_text(xml: str | bytes) -> str:
    return base64.b64encode(xml.encode() if isinstance(xml, str) else xml).decode()


def encrypt(
    assertion_element: Any,
    sp_cert: x509.Certificate,
    *,
    method: str = XENC11 + "aes256-gcm",
    transport: str = XENC + "rsa-oaep-mgf1p",
    key_in_keyinfo: bool = True,
    plaintext: bytes | None = None,
) -> Any:
    """An EncryptedAssertion holding ``assertion_element`` (or raw ``plaintext``)."""
    if plaintext is None:
        plaintext = etree.tostring(assertion_element)
    size = 16 if "128" in method else 32
    content_key = os.urandom(size)
    if "gcm" in method:
        iv = os.urandom(12)
        ciphertext = iv + AESGCM(content_key).encrypt(iv, plaintext, None)
    else:
        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = Cipher(algorithms.AES(content_key), modes.CBC(iv)).encryptor()
        ciphertext = iv + encryptor.update(padded) + encryptor.finalize()
    public = sp_cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    if transport.endswith("rsa-1_5"):
        wrapped = public.encrypt(content_key, asym_padding.PKCS1v15())
    else:
        wrapped = public.encrypt(
            content_key,
            asym_padding.OAEP(
                mgf=asym_padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None
            ),
        )
    carrier = etree.Element(
        f"{{{SAML}}}EncryptedAssertion", nsmap={"saml": SAML, "xenc": XENC, "ds": DS}
    )
    data = etree.SubElement(carrier, f"{{{XENC}}}EncryptedData")
    data.set("Type", XENC + "Element")
    etree.SubElement(data, f"{{{XENC}}}EncryptionMethod").set("Algorithm", method)
    encrypted_key = etree.Element(f"{{{XENC}}}EncryptedKey")
    etree.SubElement(encrypted_key, f"{{{XENC}}}EncryptionMethod").set("Algorithm", transport)
    key_value = etree.SubElement(
        etree.SubElement(encrypted_key, f"{{{XENC}}}CipherData"), f"{{{XENC}}}CipherValue"
    )
    key_value.text = base64.b64encode(wrapped).decode()
    if key_in_keyinfo:
        etree.SubElement(data, f"{{{DS}}}KeyInfo").append(encrypted_key)
    cipher_value = etree.SubElement(
        etree.SubElement(data, f"{{{XENC}}}CipherData"), f"{{{XENC}}}CipherValue"
    )
    cipher_value.text = base64.b64encode(ciphertext).decode()
    if not key_in_keyinfo:
        carrier.append(encrypted_key)
    return carrier


def config_yaml(
    metadata_file: str = "idp.xml",
    *,
    provider: str = "",
    extra_accounts: str = "",
    sp_files: bool = True,
) -> str:
    """A broker config with one provider ``Corp`` in account 111111111111."""
    saml = "saml: {sp_key_file: sp.key, sp_cert_file: sp.crt}\n" if sp_files else ""
    return (
        f"public_url: {PUBLIC_URL}\n"
        f"{saml}"
        "accounts:\n"
        f'  "{ACCOUNT}":\n'
        "    saml_providers:\n"
        f"      Corp: {{metadata_file: {metadata_file}{provider}}}\n"
        f"{extra_accounts}"
    )


class Harness:
    """A config on disk (metadata, SP key pair) and a way to run the verifier against it."""

    def __init__(
        self,
        directory: Path,
        *,
        idp_metadata: bytes | None = None,
        provider: str = "",
        extra_accounts: str = "",
        extra_files: Mapping[str, bytes] | None = None,
    ) -> None:
        sp = keypair("sp")
        files = {
            "idp.xml": idp_metadata if idp_metadata is not None else metadata(),
            "sp.key": sp.key_pem,
            "sp.crt": sp.cert_pem.encode(),
            **(extra_files or {}),
        }
        for name, content in files.items():
            (directory / name).write_bytes(content)
        path = directory / "broker.yaml"
        path.write_text(config_yaml(provider=provider, extra_accounts=extra_accounts))
        self.config = load_config(path, environ={})
        self.clock = FrozenClock(NOW)

    def verify(
        self,
        saml_response: str,
        *,
        provider_arn: str | None = PROVIDER_ARN,
        in_response_to: str | None = None,
        api: bool = True,
    ) -> SamlIdentity:
        async def run() -> SamlIdentity:
            verifier = SamlVerifier(self.config, self.clock)
            try:
                return await verifier.verify(
                    saml_response, provider_arn=provider_arn, in_response_to=in_response_to, api=api
                )
            finally:
                await verifier.aclose()

        return asyncio.run(run())

    def refusal(self, saml_response: str, **kw: Any) -> StsError:
        """The StsError the verifier raises (the test fails if it accepts)."""
        try:
            self.verify(saml_response, **kw)
        except StsError as exc:
            return exc
        raise AssertionError("the verifier accepted the response")
