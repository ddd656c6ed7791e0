"""One fixture SAML 2.0 identity provider: keys, metadata, and the responses it issues.

Responses are real SAML 2.0 built element by element with lxml (full control over every
attribute, which the hostile builders need), signed by signxml (enveloped signature,
exclusive c14n, RSA-SHA256 / SHA-256, the Signature right after Issuer as the schema
requires, Reference ``#ID``) and optionally encrypted to the SP's certificate
(RSA-OAEP key transport of an AES-256-GCM or -CBC key).

The HTTP layer (:mod:`idp_fixtures.saml.app`) only parses requests and calls into this
object, so a test can mint a response directly (``idp.response_b64(...)``) or run the
browser flow, and both paths produce the same bytes signed by the same key.

State is shared between the server thread and the test thread, hence one lock around
every mutation.
"""

from __future__ import annotations

import base64
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypedDict, Unpack
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree  # type: ignore[import-untyped,unused-ignore]
from signxml.algorithms import SignatureConstructionMethod
from signxml.signer import XMLSigner

from idp_fixtures.oidc.provider import Clock
from idp_fixtures.saml.directory import DEFAULT_SPS, DEFAULT_USERS, SamlUser, ServiceProvider
from idp_fixtures.saml.keys import KeyAlg, PrivateKey, SigningCert, generate_signing_cert
from idp_fixtures.saml.names import (
    AC_PASSWORD_PROTECTED,
    ATTRNAME_URI,
    BINDING_POST,
    BINDING_REDIRECT,
    CM_BEARER,
    DS,
    EXC_C14N,
    MD,
    NAMEID_EMAIL,
    NAMEID_PERSISTENT,
    NAMEID_TRANSIENT,
    NAMEID_UNSPECIFIED,
    PRINCIPAL_TAG_ATTRIBUTE,
    ROLE_ATTRIBUTE,
    ROLE_SESSION_NAME_ATTRIBUTE,
    SAML,
    SAMLP,
    SESSION_DURATION_ATTRIBUTE,
    SOURCE_IDENTITY_ATTRIBUTE,
    STATUS_RESPONDER,
    STATUS_SUCCESS,
    TRANSITIVE_TAG_KEYS_ATTRIBUTE,
    XENC,
    XENC11,
    XS,
    XSI,
    XmlElement,
    b64,
    instant,
    serialize,
)

SignPlacement = Literal["assertion", "response", "both", "none"]
"""Where the enveloped signature goes; ``none`` makes an unsigned response."""

EncryptionAlg = Literal["aes256-gcm", "aes256-cbc"]
"""Content encryption of an ``EncryptedAssertion`` (CBC only for opt-in tests)."""

ClaimsFactory = Callable[[SamlUser, str], Mapping[str, Sequence[str]]]
"""Extra attributes a vendor adds for a user: ``(user, idp_entity_id) -> {name: values}``."""

_CONTENT_ALGS = {"aes256-gcm": XENC11 + "aes256-gcm", "aes256-cbc": XENC + "aes256-cbc"}
_RSA_OAEP_MGF1P = XENC + "rsa-oaep-mgf1p"
_SHA1_DIGEST = DS + "sha1"
_MAX_PENDING = 1000


@dataclass(frozen=True)
class Shape:
    """How one IdP product writes its responses, so an SP is tested against each shape.

    The fields are the differences that break real SPs: NameID format, attribute
    ``NameFormat`` (or none), where the signature goes, namespace prefixes (or default
    namespaces), ID style, role pair order, timestamps with milliseconds, where the
    encrypted key sits, and vendor-specific extra claims.
    """

    name: str
    name_id_format: str = NAMEID_PERSISTENT
    attribute_name_format: str | None = ATTRNAME_URI
    sign: SignPlacement = "assertion"
    protocol_prefix: str | None = "samlp"
    assertion_prefix: str | None = "saml"
    id_prefix: str = "_"
    id_style: Literal["hex", "uuid", "digits"] = "hex"
    authn_context: str = AC_PASSWORD_PROTECTED
    typed_values: bool = True
    role_order: Literal["role,provider", "provider,role"] = "role,provider"
    session_name_from: Literal["email", "username"] = "email"
    millis: bool = False
    not_before_skew: int = 0
    issuer_format: bool = False
    consent: bool = False
    encrypted_key_beside: bool = False
    extra_claims: ClaimsFactory | None = None


GENERIC = Shape("generic")
"""The IdP's own default shape: persistent NameID, URI attribute names, signed assertion."""


@dataclass(frozen=True)
class LoginRequest:
    """A sign-in waiting on the login page: where the response goes and what it answers.

    ``request_id`` is ``None`` for an IdP-initiated sign-in (no InResponseTo).
    """

    sp_entity_id: str
    acs_url: str
    request_id: str | None
    relay_state: str | None
    expires_at: float


class AssertionOptions(TypedDict, total=False):
    """Keyword options of :meth:`SamlIdp.assertion` (and every response builder).

    ``roles``/``session_name``/... ``None`` (or absent) take the user's values; an
    ``attributes`` entry set to ``None`` removes that attribute.
    """

    in_response_to: str | None
    roles: Sequence[tuple[str, str]] | None
    attributes: Mapping[str, str | Sequence[str] | None] | None
    name_id: str | None
    name_id_format: str | None
    session_name: str | None
    session_duration: int | None
    source_identity: str | None
    principal_tags: Mapping[str, str] | None
    transitive_tag_keys: Sequence[str] | None
    session_not_on_or_after: float | None
    lifetime: int
    audience: str | Sequence[str] | None
    audiences: Sequence[Sequence[str]] | None
    recipient: str | None
    issuer: str | None
    issued_at: float | None
    assertion_id: str | None
    confirmation_method: str
    shape: Shape | None


class _AnyAlgorithmSigner(XMLSigner):
    """signxml's signer without its SHA-1 refusal: the hostile ``sha1_signature`` needs it."""

    def check_deprecated_methods(self) -> None:
        return None


def sign_xml(
    element: XmlElement,
    key: PrivateKey | bytes,
    *,
    algorithm: str = "rsa-sha256",
    digest: str = "sha256",
    certs: Sequence[x509.Certificate] = (),
    reference_uri: str | None = None,
) -> XmlElement:
    """``element`` with an enveloped XML signature; returns the new (signed) tree.

    The Signature goes into an existing ``<ds:Signature Id="placeholder"/>`` if the
    element has one, else right after the element's own ``Issuer`` (saml-schema:
    Issuer, Signature, ...). ``certs`` go into KeyInfo/X509Data; ``key`` as bytes is an
    HMAC secret. The Reference is ``#ID`` of ``element`` unless ``reference_uri``.
    """
    if element.find(f".//{{{DS}}}Signature[@Id='placeholder']") is None:
        slot = etree.Element(f"{{{DS}}}Signature", nsmap={"ds": DS})
        slot.set("Id", "placeholder")
        issuer = element.find(f"{{{SAML}}}Issuer")
        if issuer is not None:
            issuer.addnext(slot)
        else:
            element.insert(0, slot)
    signer = _AnyAlgorithmSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=algorithm,
        digest_algorithm=digest,
        c14n_algorithm=EXC_C14N,
    )
    return signer.sign(
        element,
        key=key,
        cert=list(certs) or None,
        reference_uri=reference_uri,
        always_add_key_value=False,
    )


def encrypt_assertion(
    assertion: XmlElement,
    cert: x509.Certificate,
    *,
    alg: EncryptionAlg = "aes256-gcm",
    key_beside: bool = False,
    prefix: str | None = "saml",
) -> XmlElement:
    """An ``EncryptedAssertion`` holding ``assertion``, encrypted to ``cert``.

    A random AES-256 key encrypts the serialized assertion (GCM: 12-byte IV, tag
    appended; CBC: 16-byte IV, padded), and is wrapped with RSA-OAEP (MGF1/SHA-1, the
    ``rsa-oaep-mgf1p`` every SP supports). ``key_beside`` puts the EncryptedKey next to
    EncryptedData (Okta, Shibboleth) instead of inside its KeyInfo.
    """
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise ValueError("assertion encryption needs an RSA certificate (RSA-OAEP key transport)")
    plaintext = etree.tostring(assertion)
    content_key = os.urandom(32)
    if alg == "aes256-gcm":
        iv = os.urandom(12)
        ciphertext = iv + AESGCM(content_key).encrypt(iv, plaintext, None)
    elif alg == "aes256-cbc":
        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = Cipher(algorithms.AES(content_key), modes.CBC(iv)).encryptor()
        ciphertext = iv + encryptor.update(padded) + encryptor.finalize()
    else:
        raise ValueError(f"unsupported content encryption {alg!r}")
    # SHA-1 inside OAEP (rsa-oaep-mgf1p) is not used for collision resistance; it is what
    # every SP accepts.
    wrapped = public.encrypt(
        content_key,
        asym_padding.OAEP(
            mgf=asym_padding.MGF1(hashes.SHA1()),  # noqa: S303
            algorithm=hashes.SHA1(),  # noqa: S303
            label=None,
        ),
    )
    nsmap: dict[str | None, str] = {prefix: SAML, "xenc": XENC, "ds": DS}
    carrier = etree.Element(f"{{{SAML}}}EncryptedAssertion", nsmap=nsmap)
    data = etree.SubElement(carrier, f"{{{XENC}}}EncryptedData")
    data.set("Id", "_" + secrets.token_hex(16))
    data.set("Type", XENC + "Element")
    etree.SubElement(data, f"{{{XENC}}}EncryptionMethod").set("Algorithm", _CONTENT_ALGS[alg])
    encrypted_key = etree.Element(f"{{{XENC}}}EncryptedKey")
    method = etree.SubElement(encrypted_key, f"{{{XENC}}}EncryptionMethod")
    method.set("Algorithm", _RSA_OAEP_MGF1P)
    etree.SubElement(method, f"{{{DS}}}DigestMethod").set("Algorithm", _SHA1_DIGEST)
    recipient_info = etree.SubElement(encrypted_key, f"{{{DS}}}KeyInfo")
    _x509_data(recipient_info, cert)
    _text_child(
        etree.SubElement(encrypted_key, f"{{{XENC}}}CipherData"),
        f"{{{XENC}}}CipherValue",
        b64(wrapped),
    )
    if key_beside:
        reference = etree.SubElement(
            etree.SubElement(data, f"{{{DS}}}KeyInfo"), f"{{{DS}}}RetrievalMethod"
        )
        reference.set("Type", XENC + "EncryptedKey")
        key_id = "_" + secrets.token_hex(16)
        encrypted_key.set("Id", key_id)
        reference.set("URI", f"#{key_id}")
    else:
        etree.SubElement(data, f"{{{DS}}}KeyInfo").append(encrypted_key)
    _text_child(
        etree.SubElement(data, f"{{{XENC}}}CipherData"), f"{{{XENC}}}CipherValue", b64(ciphertext)
    )
    if key_beside:
        carrier.append(encrypted_key)
    return carrier


def _x509_data(key_info: XmlElement, cert: x509.Certificate) -> None:
    data = etree.SubElement(key_info, f"{{{DS}}}X509Data")
    _text_child(data, f"{{{DS}}}X509Certificate", b64(cert.public_bytes(Encoding.DER)))


def _text_child(parent: XmlElement, tag: str, text: str, **attrs: str) -> XmlElement:
    child = etree.SubElement(parent, tag)
    for name, value in attrs.items():
        child.set(name, value)
    child.text = text
    return child


class _WallClock:
    def time(self) -> float:
        return time.time()


class SamlIdp:
    """A fixture SAML IdP: signing certificate(s), users, registered SPs, and responses.

    ``entity_id`` is the Issuer of everything it signs; ``sso_url`` (default
    ``{origin of entity_id}/saml/sso``) is advertised in metadata. ``sign`` ``None``
    uses the ``shape``'s placement (generic: the assertion). ``encrypt`` makes every
    response carry an ``EncryptedAssertion`` to the SP's certificate (``register_sp``'s
    ``cert``, else ``encryption_cert``).
    """

    def __init__(
        self,
        entity_id: str,
        *,
        users: Iterable[SamlUser] | None = None,
        sps: Iterable[ServiceProvider] | None = None,
        clock: Clock | None = None,
        sign: SignPlacement | None = None,
        encrypt: bool = False,
        encryption_cert: x509.Certificate | None = None,
        encryption_alg: EncryptionAlg = "aes256-gcm",
        key_alg: KeyAlg = "RSA-2048",
        shape: Shape = GENERIC,
        sso_url: str | None = None,
        auto_login: str | None = None,
        login_timeout: int = 600,
    ) -> None:
        if not entity_id or len(entity_id) > 1024:
            raise ValueError("entity_id must be 1 to 1024 characters")
        self._entity_id = entity_id
        self._sso_url = sso_url or _default_sso_url(entity_id)
        self._clock: Clock = clock if clock is not None else _WallClock()
        self._initial_settings = (sign, encrypt, encryption_cert, encryption_alg, shape)
        self._sign = sign
        self.encrypt = encrypt
        self.encryption_cert = encryption_cert
        self.encryption_alg: EncryptionAlg = encryption_alg
        self._key_alg: KeyAlg = key_alg
        self.shape = shape
        self.login_timeout = login_timeout
        self._lock = threading.RLock()
        self._initial_users = tuple(DEFAULT_USERS if users is None else users)
        self._initial_sps = tuple(DEFAULT_SPS if sps is None else sps)
        self._initial_auto_login = auto_login
        self._initial_cert = generate_signing_cert(_common_name(entity_id), key_alg)
        self._certs: list[SigningCert] = []
        self._current = self._initial_cert
        self._users: dict[str, SamlUser] = {}
        self._sps: dict[str, ServiceProvider] = {}
        self._pending: dict[str, LoginRequest] = {}
        self.auto_login: str | None = None
        self.reset()

    # -- identity and configuration ------------------------------------------------------

    @property
    def entity_id(self) -> str:
        """The IdP entity ID: metadata ``entityID`` and the Issuer of every response."""
        return self._entity_id

    @property
    def sso_url(self) -> str:
        """The SingleSignOnService location advertised in metadata (both bindings)."""
        return self._sso_url

    @property
    def clock(self) -> Clock:
        """The clock every IssueInstant and validity window is read from."""
        return self._clock

    @property
    def sign(self) -> SignPlacement:
        """Default signature placement of :meth:`response` (explicit, else the shape's)."""
        return self._sign if self._sign is not None else self.shape.sign

    @sign.setter
    def sign(self, value: SignPlacement | None) -> None:
        self._sign = value

    @property
    def users(self) -> Mapping[str, SamlUser]:
        """Configured users by username (a copy)."""
        with self._lock:
            return dict(self._users)

    @property
    def sps(self) -> Mapping[str, ServiceProvider]:
        """Registered service providers by entity ID (a copy)."""
        with self._lock:
            return dict(self._sps)

    def add_user(self, user: SamlUser) -> None:
        """Register (or replace) a user."""
        with self._lock:
            self._users[user.username] = user

    def register_sp(
        self, entity_id: str, acs_urls: str | Sequence[str], cert: x509.Certificate | None = None
    ) -> ServiceProvider:
        """Register (or replace) a service provider and the exact ACS URLs it may use."""
        urls = (acs_urls,) if isinstance(acs_urls, str) else tuple(acs_urls)
        sp = ServiceProvider(entity_id, urls, cert)
        with self._lock:
            self._sps[entity_id] = sp
        return sp

    def reset(self) -> None:
        """Back to the state at construction: initial certificate only, initial users and
        SPs, no pending logins, and the constructor's ``auto_login``, ``sign``,
        ``encrypt``, ``encryption_cert``, ``encryption_alg`` and ``shape``.

        The entity ID and the initial certificate survive, so an SP that loaded the
        metadata once keeps working across tests sharing this IdP.
        """
        with self._lock:
            self._users = {u.username: u for u in self._initial_users}
            self._sps = {sp.entity_id: sp for sp in self._initial_sps}
            self._certs = [self._initial_cert]
            self._current = self._initial_cert
            self._pending.clear()
            self.auto_login = self._initial_auto_login
            (
                self._sign,
                self.encrypt,
                self.encryption_cert,
                self.encryption_alg,
                self.shape,
            ) = self._initial_settings

    # -- keys and metadata ---------------------------------------------------------------

    @property
    def signing_cert(self) -> SigningCert:
        """The key and certificate new responses are signed with."""
        with self._lock:
            return self._current

    @property
    def published_certs(self) -> tuple[SigningCert, ...]:
        """Every certificate in the metadata, current one included."""
        with self._lock:
            return tuple(self._certs)

    def rotate_key(self, key_alg: KeyAlg | None = None) -> SigningCert:
        """A new current signing key; the old certificate stays in metadata until
        :meth:`retire_old_keys` (the overlap real IdPs give SPs to pick up the new one)."""
        fresh = generate_signing_cert(_common_name(self._entity_id), key_alg or self._key_alg)
        with self._lock:
            self._certs.append(fresh)
            self._current = fresh
        return fresh

    def retire_old_keys(self) -> None:
        """Publish only the current certificate."""
        with self._lock:
            self._certs = [self._current]

    def metadata(self) -> bytes:
        """IdP metadata: ``EntityDescriptor``/``IDPSSODescriptor`` with one
        ``KeyDescriptor use="signing"`` per published certificate, the NameID formats, and
        ``SingleSignOnService`` for the HTTP-Redirect and HTTP-POST bindings."""
        root = etree.Element(f"{{{MD}}}EntityDescriptor", nsmap={"md": MD, "ds": DS})
        root.set("entityID", self._entity_id)
        descriptor = etree.SubElement(root, f"{{{MD}}}IDPSSODescriptor")
        descriptor.set("WantAuthnRequestsSigned", "false")
        descriptor.set("protocolSupportEnumeration", SAMLP)
        for signing in self.published_certs:
            key_descriptor = etree.SubElement(descriptor, f"{{{MD}}}KeyDescriptor")
            key_descriptor.set("use", "signing")
            _x509_data(etree.SubElement(key_descriptor, f"{{{DS}}}KeyInfo"), signing.cert)
        for name_format in (NAMEID_PERSISTENT, NAMEID_TRANSIENT, NAMEID_EMAIL, NAMEID_UNSPECIFIED):
            _text_child(descriptor, f"{{{MD}}}NameIDFormat", name_format)
        for binding in (BINDING_REDIRECT, BINDING_POST):
            sso = etree.SubElement(descriptor, f"{{{MD}}}SingleSignOnService")
            sso.set("Binding", binding)
            sso.set("Location", self._sso_url)
        return serialize(root)

    # -- building responses --------------------------------------------------------------

    def now(self) -> float:
        """Current time from the IdP's clock."""
        return self._clock.time()

    def new_id(self, shape: Shape | None = None) -> str:
        """A fresh XML ID in the shape's style (``_hex``, ``_uuid``, ``id`` + digits)."""
        style = (shape or self.shape).id_style
        prefix = (shape or self.shape).id_prefix
        if style == "uuid":
            return prefix + str(uuid.uuid4())
        if style == "digits":
            return prefix + "".join(secrets.choice("0123456789") for _ in range(21))
        return prefix + secrets.token_hex(16)

    def user(self, user: str | SamlUser) -> SamlUser:
        """The configured user called ``user``, or a bare one with that NameID and no roles."""
        if isinstance(user, SamlUser):
            return user
        return self.users.get(user) or SamlUser(user)

    def assertion(
        self,
        *,
        user: str | SamlUser,
        sp_entity_id: str,
        acs_url: str,
        **options: Unpack[AssertionOptions],
    ) -> XmlElement:
        """An unsigned ``saml:Assertion`` for ``user``, addressed to one SP.

        Defaults: Audience = ``sp_entity_id``; Recipient = ``acs_url``; validity
        ``lifetime`` (300 s) from ``issued_at`` (now); roles, RoleSessionName and extra
        attributes from the user. Sign it with :meth:`sign_element`; hostile builders
        edit it first.
        """
        shape = options.get("shape") or self.shape
        profile = self.user(user)
        issued = options.get("issued_at")
        base = self.now() if issued is None else issued
        lifetime = options.get("lifetime", 300)
        millis = shape.millis
        prefix = shape.assertion_prefix
        root = etree.Element(f"{{{SAML}}}Assertion", nsmap={prefix: SAML})
        root.set("ID", options.get("assertion_id") or self.new_id(shape))
        root.set("IssueInstant", instant(base, millis=millis))
        root.set("Version", "2.0")
        issuer = _text_child(root, f"{{{SAML}}}Issuer", options.get("issuer") or self._entity_id)
        if shape.issuer_format:
            issuer.set("Format", "urn:oasis:names:tc:SAML:2.0:nameid-format:entity")
        subject = etree.SubElement(root, f"{{{SAML}}}Subject")
        name_id = _text_child(
            subject, f"{{{SAML}}}NameID", options.get("name_id") or profile.subject
        )
        name_id.set("Format", options.get("name_id_format") or shape.name_id_format)
        confirmation = etree.SubElement(subject, f"{{{SAML}}}SubjectConfirmation")
        confirmation.set("Method", options.get("confirmation_method", CM_BEARER))
        data = etree.SubElement(confirmation, f"{{{SAML}}}SubjectConfirmationData")
        in_response_to = options.get("in_response_to")
        if in_response_to is not None:
            data.set("InResponseTo", in_response_to)
        data.set("NotOnOrAfter", instant(base + lifetime, millis=millis))
        data.set("Recipient", options.get("recipient") or acs_url)
        conditions = etree.SubElement(root, f"{{{SAML}}}Conditions")
        conditions.set("NotBefore", instant(base - shape.not_before_skew, millis=millis))
        conditions.set("NotOnOrAfter", instant(base + lifetime, millis=millis))
        for restriction in _audiences(options, sp_entity_id):
            element = etree.SubElement(conditions, f"{{{SAML}}}AudienceRestriction")
            for audience in restriction:
                _text_child(element, f"{{{SAML}}}Audience", audience)
        statement = etree.SubElement(root, f"{{{SAML}}}AuthnStatement")
        statement.set("AuthnInstant", instant(base, millis=millis))
        statement.set("SessionIndex", self.new_id(shape))
        session_end = options.get("session_not_on_or_after")
        if session_end is not None:
            statement.set("SessionNotOnOrAfter", instant(session_end, millis=millis))
        context = etree.SubElement(statement, f"{{{SAML}}}AuthnContext")
        _text_child(context, f"{{{SAML}}}AuthnContextClassRef", shape.authn_context)
        attributes = self._attributes(profile, shape, options)
        if attributes:
            self._attribute_statement(root, attributes, shape)
        return root

    def _attributes(
        self, user: SamlUser, shape: Shape, options: AssertionOptions
    ) -> dict[str, tuple[str, ...]]:
        """AWS attributes first (Role, RoleSessionName, ...), then vendor claims, then the
        user's and the caller's extra attributes (later ones override)."""
        out: dict[str, tuple[str, ...]] = {}
        roles = options.get("roles")
        pairs = user.roles if roles is None else tuple(roles)
        if pairs:
            out[ROLE_ATTRIBUTE] = tuple(
                f"{role},{provider}"
                if shape.role_order == "role,provider"
                else f"{provider},{role}"
                for role, provider in pairs
            )
        session_name = options.get("session_name")
        if session_name is None:
            session_name = (
                user.username if shape.session_name_from == "username" else user.role_session_name
            )
        out[ROLE_SESSION_NAME_ATTRIBUTE] = (session_name,)
        duration = options.get("session_duration")
        if duration is not None:
            out[SESSION_DURATION_ATTRIBUTE] = (str(duration),)
        source_identity = options.get("source_identity")
        if source_identity is not None:
            out[SOURCE_IDENTITY_ATTRIBUTE] = (source_identity,)
        for key, value in (options.get("principal_tags") or {}).items():
            out[PRINCIPAL_TAG_ATTRIBUTE + key] = (value,)
        transitive = options.get("transitive_tag_keys")
        if transitive:
            out[TRANSITIVE_TAG_KEYS_ATTRIBUTE] = tuple(transitive)
        if shape.extra_claims is not None:
            out.update({k: tuple(v) for k, v in shape.extra_claims(user, self._entity_id).items()})
        out.update(user.attributes)
        for name, values in (options.get("attributes") or {}).items():
            if values is None:
                out.pop(name, None)
            else:
                out[name] = (values,) if isinstance(values, str) else tuple(values)
        return out

    def _attribute_statement(
        self, parent: XmlElement, attributes: Mapping[str, Sequence[str]], shape: Shape
    ) -> XmlElement:
        statement = etree.SubElement(parent, f"{{{SAML}}}AttributeStatement")
        for name, values in attributes.items():
            attribute = etree.SubElement(statement, f"{{{SAML}}}Attribute")
            attribute.set("Name", name)
            if shape.attribute_name_format is not None:
                attribute.set("NameFormat", shape.attribute_name_format)
            for value in values:
                if shape.typed_values:
                    element = etree.SubElement(
                        attribute, f"{{{SAML}}}AttributeValue", nsmap={"xs": XS, "xsi": XSI}
                    )
                    element.set(f"{{{XSI}}}type", "xs:string")
                else:
                    element = etree.SubElement(attribute, f"{{{SAML}}}AttributeValue")
                element.text = value
        return statement

    def attribute_statement(
        self, attributes: Mapping[str, Sequence[str]], shape: Shape | None = None
    ) -> XmlElement:
        """A detached ``saml:AttributeStatement`` (hostile builders graft it elsewhere)."""
        holder = etree.Element(
            f"{{{SAML}}}Holder", nsmap={(shape or self.shape).assertion_prefix: SAML}
        )
        statement = self._attribute_statement(holder, attributes, shape or self.shape)
        holder.remove(statement)
        return statement

    def sign_element(
        self,
        element: XmlElement,
        *,
        key: SigningCert | None = None,
        algorithm: str | None = None,
        digest: str = "sha256",
        key_info_cert: x509.Certificate | None = None,
        with_cert: bool = True,
        reference_uri: str | None = None,
    ) -> XmlElement:
        """``element`` (an Assertion or Response) signed by ``key`` (default: the current
        signing key), its certificate in KeyInfo unless ``key_info_cert`` replaces it or
        ``with_cert`` is false. Returns the new signed tree."""
        signer = key or self.signing_cert
        cert = key_info_cert or signer.cert
        return sign_xml(
            element,
            signer.key,
            algorithm=algorithm or signer.signature_algorithm,
            digest=digest,
            certs=(cert,) if with_cert else (),
            reference_uri=reference_uri,
        )

    def envelope(
        self,
        content: XmlElement | list[XmlElement],
        *,
        destination: str | None,
        in_response_to: str | None = None,
        status: str = STATUS_SUCCESS,
        status_message: str | None = None,
        response_id: str | None = None,
        issuer: str | None = None,
        issued_at: float | None = None,
        shape: Shape | None = None,
    ) -> XmlElement:
        """An unsigned ``samlp:Response`` around ``content`` (assertions, encrypted
        assertions, or nothing). ``destination`` ``None`` leaves Destination out."""
        form = shape or self.shape
        nsmap = {form.protocol_prefix: SAMLP}
        if form.assertion_prefix is not None and form.assertion_prefix != form.protocol_prefix:
            nsmap[form.assertion_prefix] = SAML
        root = etree.Element(f"{{{SAMLP}}}Response", nsmap=nsmap)
        root.set("ID", response_id or self.new_id(form))
        root.set("Version", "2.0")
        base = self.now() if issued_at is None else issued_at
        root.set("IssueInstant", instant(base, millis=form.millis))
        if destination is not None:
            root.set("Destination", destination)
        if in_response_to is not None:
            root.set("InResponseTo", in_response_to)
        if form.consent:
            root.set("Consent", "urn:oasis:names:tc:SAML:2.0:consent:unspecified")
        issuer_element = etree.SubElement(
            root,
            f"{{{SAML}}}Issuer",
            nsmap={None: SAML} if form.assertion_prefix is None else None,
        )
        issuer_element.text = issuer or self._entity_id
        if form.issuer_format:
            issuer_element.set("Format", "urn:oasis:names:tc:SAML:2.0:nameid-format:entity")
        status_element = etree.SubElement(root, f"{{{SAMLP}}}Status")
        code = etree.SubElement(status_element, f"{{{SAMLP}}}StatusCode")
        if status == STATUS_SUCCESS:
            code.set("Value", status)
        else:
            # A failure is Requester/Responder with the specific code nested (core 3.2.2.2).
            top = status if status.endswith((":Requester", ":Responder")) else STATUS_RESPONDER
            code.set("Value", top)
            if top != status:
                etree.SubElement(code, f"{{{SAMLP}}}StatusCode").set("Value", status)
        if status_message is not None:
            _text_child(status_element, f"{{{SAMLP}}}StatusMessage", status_message)
        for child in content if isinstance(content, list | tuple) else [content]:
            root.append(child)
        return root

    def response_element(
        self,
        *,
        user: str | SamlUser,
        sp_entity_id: str,
        acs_url: str,
        destination: str | None = None,
        sign: SignPlacement | None = None,
        encrypt: bool | EncryptionAlg | None = None,
        encryption_cert: x509.Certificate | None = None,
        status: str = STATUS_SUCCESS,
        response_id: str | None = None,
        **options: Unpack[AssertionOptions],
    ) -> XmlElement:
        """The complete Response tree :meth:`response` serializes."""
        shape = options.get("shape") or self.shape
        placement = sign or self._sign or shape.sign
        assertion = self.assertion(user=user, sp_entity_id=sp_entity_id, acs_url=acs_url, **options)
        if placement in ("assertion", "both"):
            assertion = self.sign_element(assertion)
        alg = self._encryption(encrypt)
        if alg is not None:
            cert = encryption_cert or self._encryption_cert_for(sp_entity_id)
            assertion = encrypt_assertion(
                assertion,
                cert,
                alg=alg,
                key_beside=shape.encrypted_key_beside,
                prefix=shape.assertion_prefix,
            )
        root = self.envelope(
            assertion,
            destination=destination or acs_url,
            in_response_to=options.get("in_response_to"),
            status=status,
            response_id=response_id,
            issued_at=options.get("issued_at"),
            shape=shape,
        )
        if placement in ("response", "both"):
            root = self.sign_element(root)
        return root

    def response(
        self,
        *,
        user: str | SamlUser,
        sp_entity_id: str,
        acs_url: str,
        destination: str | None = None,
        sign: SignPlacement | None = None,
        encrypt: bool | EncryptionAlg | None = None,
        encryption_cert: x509.Certificate | None = None,
        status: str = STATUS_SUCCESS,
        response_id: str | None = None,
        **options: Unpack[AssertionOptions],
    ) -> bytes:
        """A signed SAML Response for ``user`` to one SP, as bytes (see :meth:`assertion`
        for the assertion options). Destination defaults to ``acs_url``; ``sign`` and
        ``encrypt`` default to the IdP's settings; ``encrypt`` may name the content
        algorithm (``"aes256-cbc"``)."""
        return serialize(
            self.response_element(
                user=user,
                sp_entity_id=sp_entity_id,
                acs_url=acs_url,
                destination=destination,
                sign=sign,
                encrypt=encrypt,
                encryption_cert=encryption_cert,
                status=status,
                response_id=response_id,
                **options,
            )
        )

    def response_b64(
        self,
        *,
        user: str | SamlUser,
        sp_entity_id: str,
        acs_url: str,
        destination: str | None = None,
        sign: SignPlacement | None = None,
        encrypt: bool | EncryptionAlg | None = None,
        encryption_cert: x509.Certificate | None = None,
        status: str = STATUS_SUCCESS,
        response_id: str | None = None,
        **options: Unpack[AssertionOptions],
    ) -> str:
        """:meth:`response` base64-encoded: the ``SAMLResponse`` form value (and the
        ``SAMLAssertion`` of ``AssumeRoleWithSAML``)."""
        return b64(
            self.response(
                user=user,
                sp_entity_id=sp_entity_id,
                acs_url=acs_url,
                destination=destination,
                sign=sign,
                encrypt=encrypt,
                encryption_cert=encryption_cert,
                status=status,
                response_id=response_id,
                **options,
            )
        )

    def _encryption(self, encrypt: bool | EncryptionAlg | None) -> EncryptionAlg | None:
        wanted = self.encrypt if encrypt is None else encrypt
        if wanted is False:
            return None
        return self.encryption_alg if wanted is True else wanted

    def _encryption_cert_for(self, sp_entity_id: str) -> x509.Certificate:
        sp = self.sps.get(sp_entity_id)
        cert = sp.cert if sp is not None and sp.cert is not None else self.encryption_cert
        if cert is None:
            raise ValueError(
                f"no encryption certificate: register_sp({sp_entity_id!r}, ..., cert=...) "
                "or pass encryption_cert"
            )
        return cert

    # -- browser sign-in state (used by the HTTP app) ------------------------------------

    def hold_login(
        self,
        *,
        sp_entity_id: str,
        acs_url: str,
        request_id: str | None,
        relay_state: str | None,
    ) -> str:
        """Park a validated sign-in while the login page is shown; returns its handle.

        Server-side, so the page carries only an opaque handle and cannot be edited to
        redirect the response elsewhere.
        """
        handle = secrets.token_urlsafe(24)
        now = self.now()
        login = LoginRequest(
            sp_entity_id, acs_url, request_id, relay_state, now + self.login_timeout
        )
        with self._lock:
            for stale in [h for h, p in self._pending.items() if p.expires_at <= now]:
                del self._pending[stale]
            while len(self._pending) >= _MAX_PENDING:
                del self._pending[next(iter(self._pending))]
            self._pending[handle] = login
        return handle

    def peek_login(self, handle: str) -> LoginRequest | None:
        """The pending sign-in for ``handle`` if it has not expired (it stays pending)."""
        with self._lock:
            login = self._pending.get(handle)
        if login is None or login.expires_at <= self.now():
            return None
        return login

    def take_login(self, handle: str) -> LoginRequest | None:
        """Consume the pending sign-in for ``handle`` (single use); ``None`` if unknown
        or expired."""
        with self._lock:
            login = self._pending.pop(handle, None)
        if login is None or login.expires_at <= self.now():
            return None
        return login


def _audiences(options: AssertionOptions, sp_entity_id: str) -> tuple[tuple[str, ...], ...]:
    explicit = options.get("audiences")
    if explicit is not None:
        return tuple(tuple(r) for r in explicit)
    audience = options.get("audience")
    if audience is None:
        return ((sp_entity_id,),)
    return ((audience,),) if isinstance(audience, str) else (tuple(audience),)


def _default_sso_url(entity_id: str) -> str:
    parts = urlsplit(entity_id)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}/saml/sso"
    raise ValueError("entity_id is not an http(s) URL: pass sso_url")


def _common_name(entity_id: str) -> str:
    host = urlsplit(entity_id).hostname
    return host or entity_id


def decode_response(saml_response: str) -> bytes:
    """The Response XML inside a base64 ``SAMLResponse`` (whitespace tolerated)."""
    return base64.b64decode("".join(saml_response.split()), validate=True)
