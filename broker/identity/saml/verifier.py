"""SAML: a base64 ``<samlp:Response>`` in, a verified, immutable :class:`SamlIdentity` out.

This adapter is the only code that touches SAML XML. ``AssumeRoleWithSAML`` is unsigned,
so the Response is the whole proof; the order below is what keeps signature wrapping
(XSW), parser differentials and comment truncation out:

1. **Gate** (:mod:`broker.identity.saml_xml`): strict base64, size cap, no DOCTYPE or
   entities, no XInclude, no comments or processing instructions, depth and element caps,
   unique IDs.
2. **Shape before crypto**: the root is a Response holding exactly one ``Assertion`` or
   ``EncryptedAssertion`` as a direct child and no assertion anywhere else; a
   ``ds:Signature`` may only be a direct child of the Response or of that Assertion, one
   each. Every signature has one ``Reference`` whose URI is ``#`` + the ID of the element
   it sits in, transforms exactly enveloped + exclusive c14n, exclusive c14n for
   ``SignedInfo``, RSA/ECDSA with SHA-256/384/512 and a SHA-256/384/512 digest; HMAC,
   SHA-1 and MD5 are refused by name.
3. **Verify** with signxml, in process, with certificates from the provider's metadata
   only (:mod:`broker.identity.saml_metadata`); a certificate in the message's ``KeyInfo``
   is at most an ordering hint and never verifies anything. Every signature present must
   verify, and at least one must cover the assertion.
4. **Read only what was verified**: from here on the code sees signxml's ``signed_xml``
   (the canonicalized signed element, re-parsed), never the posted tree. If only the
   Response is signed, the assertion is taken from inside the verified Response copy. An
   ``EncryptedAssertion`` is decrypted (:mod:`broker.identity.saml_crypto`) and its
   plaintext passes the gate again.
5. **Protocol**: Status Success; Destination (required when the Response is signed) and
   Recipient among the accepted recipients; exactly one SubjectConfirmation, bearer, with
   NotOnOrAfter and Recipient and no NotBefore; Conditions in time (``limits.clock_skew_seconds``)
   and *every* AudienceRestriction naming an accepted audience; exactly one AuthnStatement;
   Issuer equal to the metadata entity ID of the key that verified; InResponseTo bound
   to the browser session at the ACS (unsolicited only when the provider allows it).
6. **AWS attributes** (exact, case-sensitive names; a name differing only in case is
   refused, not ignored): Role pairs in either order, for this provider only and in its
   account; RoleSessionName, SessionDuration, SourceIdentity, PrincipalTag:KEY and
   TransitiveTagKeys bounded as STS bounds them. Attributes are read only from
   ``AttributeStatement`` children of the assertion: ``Advice`` is never read.

Errors (``broker.errors.StsError``):

==============================  ======  =================================================
code                            status  when
==============================  ======  =================================================
``ValidationError``             400     not base64, larger than ``saml.max_response_bytes``,
                                        malformed ``PrincipalArn``
``InvalidIdentityToken``        400     gate, shape, signature, algorithm, Issuer,
                                        Destination/Recipient/Audience, bearer, times not
                                        yet valid, InResponseTo, status, decryption,
                                        unknown provider
``ExpiredTokenException``       400     SubjectConfirmationData or Conditions NotOnOrAfter
                                        passed beyond the skew
``IDPRejectedClaim``            403     signature fine, a claim refused: no Role for this
                                        provider, Role ARNs malformed or in another
                                        account, RoleSessionName, SessionDuration,
                                        SourceIdentity or tags out of bounds
``IDPCommunicationError``       400     the provider's metadata was never loadable
==============================  ======  =================================================

Messages name the rule and at most a short, quoted value; never the XML, never a key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree  # type: ignore[import-untyped,unused-ignore]
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import SignXMLException
from signxml.verifier import SignatureConfiguration, XMLVerifier

from broker.clock import Clock, iso8601
from broker.config import BrokerConfig, SamlProviderConfig
from broker.errors import StsError, validation_error
from broker.iam import ContextValue
from broker.identity.saml_crypto import (
    DecryptionRefused,
    SpCredentials,
    decrypt_assertion,
    load_sp_credentials,
)
from broker.identity.saml_metadata import IdpMetadata, MetadataSource
from broker.identity.saml_xml import XmlRefused, parse_xml

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
NAMEID_PREFIX = "urn:oasis:names:tc:SAML:2.0:nameid-format:"
ENTITY_FORMAT = NAMEID_PREFIX + "entity"

AWS_ATTRIBUTES = "https://aws.amazon.com/SAML/Attributes/"
ROLE = AWS_ATTRIBUTES + "Role"
ROLE_SESSION_NAME = AWS_ATTRIBUTES + "RoleSessionName"
SESSION_DURATION = AWS_ATTRIBUTES + "SessionDuration"
SOURCE_IDENTITY = AWS_ATTRIBUTES + "SourceIdentity"
PRINCIPAL_TAG = AWS_ATTRIBUTES + "PrincipalTag:"
TRANSITIVE_TAG_KEYS = AWS_ATTRIBUTES + "TransitiveTagKeys"
_AWS_NAMES = (ROLE, ROLE_SESSION_NAME, SESSION_DURATION, SOURCE_IDENTITY, TRANSITIVE_TAG_KEYS)

AWS_RECIPIENT = re.compile(
    r"https://(?:[a-z]{2,4}(?:-[a-z]+)+-[0-9]{1,2}\.)?signin\.aws\.amazon\.com/saml", re.ASCII
)
"""AWS's sign-in ACS, global or regional: a valid Recipient only for AWS-audience providers."""

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

_ROLE_ARN = re.compile(
    r"arn:aws:iam::([0-9]{12}):role/(?:[\x21-\x7e]{0,510}/)?[\w+=,.@-]{1,64}", re.ASCII
)
_PROVIDER_ARN = re.compile(r"arn:aws:iam::([0-9]{12}):saml-provider/([\w.-]{1,128})", re.ASCII)
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
_TAG_KEY = re.compile(r"[\w\s.:/=+\-@]{1,128}")
_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?Z", re.ASCII
)
MAX_ROLE_VALUES = 100
MAX_SESSION_TAGS = 50
MAX_ATTRIBUTE_VALUES = 1000
_MIN_RESPONSE_CHARS = 4

_EDU = "urn:oid:1.3.6.1.4.1.5923."
CONTEXT_ATTRIBUTES: Mapping[str, str] = MappingProxyType(
    {
        **{
            f"{_EDU}1.1.1.{n}": f"saml:{key}"
            for n, key in (
                (1, "edupersonaffiliation"),
                (2, "edupersonnickname"),
                (3, "edupersonorgdn"),
                (4, "edupersonorgunitdn"),
                (5, "edupersonprimaryaffiliation"),
                (6, "edupersonprincipalname"),
                (7, "edupersonentitlement"),
                (8, "edupersonprimaryorgunitdn"),
                (9, "edupersonscopedaffiliation"),
                (10, "edupersontargetedid"),
                (11, "edupersonassurance"),
            )
        },
        **{
            f"{_EDU}1.2.1.{n}": f"saml:{key}"
            for n, key in (
                (2, "eduorghomepageuri"),
                (3, "eduorgidentityauthnpolicyuri"),
                (4, "eduorglegalname"),
                (5, "eduorgsuperioruri"),
                (6, "eduorgwhitepagesuri"),
            )
        },
        "urn:oid:2.5.4.3": "saml:cn",
        "urn:oid:2.5.4.4": "saml:surname",
        "urn:oid:2.5.4.41": "saml:name",
        "urn:oid:2.5.4.42": "saml:givenName",
        "urn:oid:2.5.4.45": "saml:x500UniqueIdentifier",
        "urn:oid:0.9.2342.19200300.100.1.1": "saml:uid",
        "urn:oid:0.9.2342.19200300.100.1.3": "saml:mail",
    }
)
"""Attribute name (URN) -> trust-policy key, as AWS maps them; friendly names also map."""
_FRIENDLY_CONTEXT = MappingProxyType(
    {
        **{key.removeprefix("saml:").lower(): key for key in CONTEXT_ATTRIBUTES.values()},
        "mail": "saml:mail",
        "uid": "saml:uid",
        "cn": "saml:cn",
        "sn": "saml:surname",
        "givenname": "saml:givenName",
    }
)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class SamlRole:
    """One ``Role`` attribute value: a role and the provider allowed to assume it."""

    role_arn: str
    provider_arn: str


@dataclass(frozen=True)
class SamlIdentity:
    """Who a verified SAML assertion says the caller is, in the terms trust policies use.

    At the ACS one IdP may be registered as a provider in several accounts; then ``roles``
    holds the roles of each (every :class:`SamlRole` names its own provider) and the
    provider fields describe the first in (account, name) order. Call
    :meth:`for_provider` with the chosen role's provider before evaluating its trust
    policy, so ``saml:doc`` and ``saml:namequalifier`` are that provider's.
    """

    issuer: str
    account: str
    provider_name: str
    provider_arn: str
    subject: str
    """The NameID text, exactly."""
    subject_type: str
    """NameID Format with ``urn:oasis:names:tc:SAML:2.0:nameid-format:`` stripped."""
    audience: str
    """AWS's ``Audience`` response field: the SubjectConfirmationData Recipient."""
    name_qualifier: str
    roles: tuple[SamlRole, ...]
    session_name: str | None
    session_duration: int | None
    session_not_on_or_after: int | None
    source_identity: str | None
    session_tags: Mapping[str, str]
    transitive_tag_keys: tuple[str, ...]
    context: Mapping[str, ContextValue]
    assertion_id: str
    not_on_or_after: int
    """SubjectConfirmationData NotOnOrAfter: replay-cache entries live until then."""
    in_response_to: str | None
    attributes: Mapping[str, tuple[str, ...]]
    single_use: bool
    """Redeem the assertion ID once (per role at the API): the provider's ``single_use``,
    or the assertion's ``OneTimeUse`` condition."""

    def for_provider(self, provider_arn: str) -> SamlIdentity:
        """This identity as seen by one of its providers (its roles only, its keys)."""
        if provider_arn == self.provider_arn:
            return self
        match = _PROVIDER_ARN.fullmatch(provider_arn)
        roles = tuple(role for role in self.roles if role.provider_arn == provider_arn)
        if match is None or not roles:
            raise ValueError(f"{provider_arn} is not a provider of this identity")
        account, name = match.group(1), match.group(2)
        qualifier = name_qualifier(self.issuer, account, name)
        context = dict(self.context)
        context.update({"saml:namequalifier": qualifier, "saml:doc": f"{account}/{name}"})
        return replace(
            self,
            account=account,
            provider_name=name,
            provider_arn=provider_arn,
            name_qualifier=qualifier,
            roles=roles,
            context=MappingProxyType(context),
        )


def name_qualifier(issuer: str, account: str, provider_name: str) -> str:
    """AWS's ``NameQualifier``: base64(SHA1(issuer + account + "/" + provider name))."""
    digest = hashlib.sha1(f"{issuer}{account}/{provider_name}".encode(), usedforsecurity=False)
    return base64.b64encode(digest.digest()).decode("ascii")


def invalid_token(message: str) -> StsError:
    """The Response is not a valid, verifiable SAML response for this broker."""
    return StsError("InvalidIdentityToken", message, 400)


def rejected_claim(message: str) -> StsError:
    """The signature is fine but a claim can't be accepted."""
    return StsError("IDPRejectedClaim", message, 403)


def _expired(now: float, expires: float) -> StsError:
    return StsError(
        "ExpiredTokenException",
        f"Token expired: current date/time {iso8601(now)} must be before the expiration "
        f"date/time {iso8601(expires)}",
        400,
    )


@dataclass(frozen=True)
class _Provider:
    """A configured provider, resolved once: where it is, what it accepts."""

    account: str
    name: str
    arn: str
    config: SamlProviderConfig
    audiences: frozenset[str]


@dataclass(frozen=True)
class _Verified:
    """A signature that held: the signed element (re-parsed) and the certificate used."""

    element: etree._Element
    certificate: x509.Certificate


# --------------------------------------------------------------------------- verifier


class SamlVerifier:
    """Verifies SAML Responses against the SAML providers of every account."""

    def __init__(
        self, config: BrokerConfig, clock: Clock, *, http: httpx.AsyncClient | None = None
    ) -> None:
        self.sp_entity_id = f"{config.public_url}/saml/metadata"
        self.acs_url = f"{config.public_url}/saml/acs"
        self._clock = clock
        self._skew = config.limits.clock_skew_seconds
        self._max_bytes = config.saml.max_response_bytes
        self._owned_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(follow_redirects=False)
        self._metadata = MetadataSource(
            clock, self._http, refresh_seconds=config.saml.metadata_refresh_seconds
        )
        self._sp_files = (config.saml.sp_key_file, config.saml.sp_cert_file)
        self._sp_credentials: SpCredentials | None = None
        self._providers: dict[str, _Provider] = {}
        for account, account_config in sorted(config.accounts.items()):
            for name, provider in sorted(account_config.saml_providers.items()):
                arn = SamlProviderConfig.arn(account, name)
                self._providers[arn] = _Provider(
                    account=account,
                    name=name,
                    arn=arn,
                    config=provider,
                    audiences=frozenset({self.sp_entity_id, *provider.audiences}),
                )
        self._signature_configs: dict[bytes, SignatureConfiguration] = {}
        if self._providers:
            # Load (or make, with its warning) the SP key pair at start-up, not at first login.
            _ = self.sp_credentials

    async def verify(
        self,
        saml_response: str,
        *,
        provider_arn: str | None,
        in_response_to: str | None = None,
        api: bool,
    ) -> SamlIdentity:
        """The identity in ``saml_response`` if every rule holds; otherwise an :class:`StsError`.

        ``provider_arn`` is ``AssumeRoleWithSAML``'s ``PrincipalArn``; None at the ACS,
        where the providers are those whose metadata entity ID is the signed Issuer.
        ``in_response_to`` is the AuthnRequest ID the browser session expects (ACS only;
        None there means an unsolicited response). With ``api`` InResponseTo is not
        checked, as AWS's API accepts SP- and IdP-initiated assertions alike.
        """
        root = self._parse(saml_response)
        _check_status(root)
        issuer_hint = _issuer_hint(root)
        candidates = await self._candidates(provider_arn, issuer_hint)
        response_signature, carrier = _response_shape(root)
        certificates = _certificates_of(candidates)

        response_view = root
        used: list[x509.Certificate] = []
        if response_signature is not None:
            verified = self._verify_signature(root, response_signature, certificates, "Response")
            response_view = verified.element
            used.append(verified.certificate)
            response_signature_view, carrier = _response_shape(response_view)
            if response_signature_view is not None:
                raise invalid_token("The Response carries more than one signature.")

        if carrier.tag == f"{{{SAML}}}EncryptedAssertion":
            allow_cbc = all(p.config.allow_cbc_encryption for p, _ in candidates)
            assertion = self._decrypt(carrier, allow_cbc=allow_cbc)
        else:
            assertion = carrier
        assertion_signature = _assertion_signature(assertion)
        if assertion_signature is not None:
            verified = self._verify_signature(
                assertion, assertion_signature, certificates, "Assertion"
            )
            assertion = verified.element
            used.append(verified.certificate)
        elif response_signature is None:
            raise invalid_token(
                "The SAML response is not signed: neither the Response nor the Assertion "
                "carries a signature."
            )
        if (
            _assertion_signature(assertion) is not None
            or assertion.find(f".//{{{DS}}}Signature") is not None
        ):
            raise invalid_token("The Assertion carries more than one signature.")

        signers = [
            (provider, metadata)
            for provider, metadata in candidates
            if all(cert in metadata.certificates for cert in used)
        ]
        if not signers:
            raise invalid_token(
                "The Response and the Assertion are signed by keys of different identity providers."
            )
        return self._identity(
            response_view,
            assertion,
            signers,
            response_signed=response_signature is not None,
            in_response_to=in_response_to,
            api=api,
        )

    @property
    def sp_credentials(self) -> SpCredentials:
        """The SP key pair; made on first use when no SAML provider is configured, so an
        API-only broker neither generates a key nor warns about an ephemeral one."""
        if self._sp_credentials is None:
            key_file, cert_file = self._sp_files
            self._sp_credentials = load_sp_credentials(
                key_file, cert_file, entity_id=self.sp_entity_id, now=self._clock.time()
            )
        return self._sp_credentials

    async def idp_metadata(self, provider_arn: str) -> IdpMetadata:
        """The metadata of one configured provider (SSO endpoints for SP-initiated login)."""
        provider = self._providers.get(provider_arn)
        if provider is None:
            raise invalid_token(f"No SAML provider {_short(provider_arn)} exists.")
        return await self._metadata.get(provider.config.metadata_source, provider_arn=provider.arn)

    def provider_arns(self) -> tuple[str, ...]:
        """Every configured SAML provider ARN, in (account, name) order."""
        return tuple(self._providers)

    async def aclose(self) -> None:
        """Stop metadata loads and close the HTTP client if this verifier made it."""
        await self._metadata.aclose()
        if self._owned_http:
            await self._http.aclose()

    # -- steps ----------------------------------------------------------------------------

    def _parse(self, saml_response: str) -> etree._Element:
        if not isinstance(saml_response, str) or len(saml_response) < _MIN_RESPONSE_CHARS:
            raise validation_error("The SAML response is empty or too short.")
        if len(saml_response) > 2 * self._max_bytes:
            raise validation_error(f"The SAML response is larger than {self._max_bytes} bytes.")
        compact = "".join(saml_response.split())
        if len(compact) > (self._max_bytes + 2) // 3 * 4:
            raise validation_error(f"The SAML response is larger than {self._max_bytes} bytes.")
        try:
            raw = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise validation_error("The SAML response is not valid base64.") from None
        try:
            return parse_xml(raw, max_bytes=self._max_bytes, what="SAML response").root
        except XmlRefused as exc:
            raise invalid_token(str(exc)) from None

    async def _candidates(
        self, provider_arn: str | None, issuer_hint: str | None
    ) -> list[tuple[_Provider, IdpMetadata]]:
        """The providers this Response may come from, with their metadata."""
        if provider_arn is not None:
            if not _PROVIDER_ARN.fullmatch(provider_arn):
                raise validation_error(
                    f"PrincipalArn {_short(provider_arn)} is not a SAML provider ARN "
                    "(arn:aws:iam::ACCOUNT:saml-provider/NAME)."
                )
            provider = self._providers.get(provider_arn)
            if provider is None:
                raise invalid_token(f"No SAML provider {_short(provider_arn)} exists.")
            metadata = await self._metadata.get(
                provider.config.metadata_source, provider_arn=provider.arn
            )
            return [(provider, metadata)]
        if issuer_hint is None:
            raise invalid_token("The SAML response names no Issuer.")
        found: list[tuple[_Provider, IdpMetadata]] = []
        for provider in self._providers.values():
            metadata = await self._metadata.get(
                provider.config.metadata_source, provider_arn=provider.arn
            )
            if metadata.entity_id == issuer_hint:
                found.append((provider, metadata))
        if not found:
            raise invalid_token(f"No SAML provider is configured for issuer {_short(issuer_hint)}.")
        return found

    def _verify_signature(
        self,
        signed: etree._Element,
        signature: etree._Element,
        certificates: list[x509.Certificate],
        what: str,
    ) -> _Verified:
        """Verify ``signed``'s enveloped signature with metadata certificates only."""
        _check_signature_shape(signed, signature, what)
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
            return _Verified(element=element, certificate=certificate)
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

    def _decrypt(self, carrier: etree._Element, *, allow_cbc: bool) -> etree._Element:
        try:
            plaintext = decrypt_assertion(carrier, self.sp_credentials.key, allow_cbc=allow_cbc)
        except DecryptionRefused as exc:
            raise invalid_token(str(exc)) from None
        try:
            parsed = parse_xml(plaintext, max_bytes=self._max_bytes, what="decrypted assertion")
        except XmlRefused as exc:
            raise invalid_token(str(exc)) from None
        if parsed.root.tag != f"{{{SAML}}}Assertion":
            raise invalid_token("The EncryptedAssertion does not hold an Assertion.")
        if parsed.root.find(f".//{{{SAML}}}Assertion") is not None:
            raise invalid_token("The decrypted assertion contains another assertion.")
        return parsed.root

    def _identity(
        self,
        response: etree._Element,
        assertion: etree._Element,
        signers: list[tuple[_Provider, IdpMetadata]],
        *,
        response_signed: bool,
        in_response_to: str | None,
        api: bool,
    ) -> SamlIdentity:
        now = self._clock.time()
        _check_status(response)
        entity_id = signers[0][1].entity_id
        issuer = _issuer(assertion, "Assertion")
        if issuer != entity_id:
            raise invalid_token(
                f"The assertion's Issuer {_short(issuer or '')} is not the entity ID of the "
                f"identity provider whose key signed it ({_short(entity_id)})."
            )
        response_issuer = _issuer(response, "Response")
        if response_issuer is not None and response_issuer != entity_id:
            raise invalid_token("The Response's Issuer differs from the assertion's Issuer.")
        assertion_id = assertion.get("ID") or ""
        if not assertion_id or assertion.get("Version") != "2.0":
            raise invalid_token("The assertion must have an ID and Version 2.0.")
        issued = _instant(assertion.get("IssueInstant"), "Assertion IssueInstant")
        if issued > now + self._skew:
            raise invalid_token("The assertion was issued in the future; check the IdP clock.")

        subject = _one(assertion, f"{{{SAML}}}Subject", "Subject")
        name_id = _one(subject, f"{{{SAML}}}NameID", "Subject NameID")
        subject_text = _text(name_id, "NameID")
        if not 1 <= len(subject_text) <= 1024:
            raise invalid_token("The NameID must be 1 to 1024 characters.")
        name_format = (
            name_id.get("Format") or "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
        )
        subject_type = name_format.removeprefix(NAMEID_PREFIX)

        confirmation = self._confirmation(subject, now)
        conditions = self._conditions(assertion, now)
        session_end = self._authn(assertion, now)
        destination = response.get("Destination")
        if response_signed and destination is None:
            raise invalid_token("A signed Response must carry a Destination.")
        response_irt = response.get("InResponseTo")

        accepted: list[_Provider] = []
        refusal: StsError | None = None
        for provider, _ in signers:
            problem = self._provider_problem(
                provider,
                recipient=confirmation.recipient,
                destination=destination,
                audiences=conditions.audiences,
                confirmation_irt=confirmation.in_response_to,
                response_irt=response_irt,
                expected_irt=in_response_to,
                api=api,
            )
            if problem is None:
                accepted.append(provider)
            elif refusal is None:
                refusal = problem
        if not accepted:
            assert refusal is not None
            raise refusal

        attributes, aws = _attributes(assertion)
        roles = _roles(aws.get(ROLE, ()), accepted)
        tags, transitive = _tags(aws)
        first = accepted[0]
        qualifier = name_qualifier(issuer, first.account, first.name)
        context: dict[str, ContextValue] = {
            "saml:aud": confirmation.recipient,
            "saml:iss": issuer,
            "saml:sub": subject_text,
            "saml:sub_type": subject_type,
            "saml:namequalifier": qualifier,
            "saml:doc": f"{first.account}/{first.name}",
        }
        context.update(_context_attributes(attributes))
        return SamlIdentity(
            issuer=issuer,
            account=first.account,
            provider_name=first.name,
            provider_arn=first.arn,
            subject=subject_text,
            subject_type=subject_type,
            audience=confirmation.recipient,
            name_qualifier=qualifier,
            roles=roles,
            session_name=_session_name(aws),
            session_duration=_session_duration(aws),
            session_not_on_or_after=session_end,
            source_identity=_source_identity(aws),
            session_tags=MappingProxyType(tags),
            transitive_tag_keys=transitive,
            context=MappingProxyType(context),
            assertion_id=assertion_id,
            not_on_or_after=int(confirmation.not_on_or_after),
            in_response_to=confirmation.in_response_to or response_irt,
            attributes=MappingProxyType(attributes),
            single_use=conditions.one_time_use or any(p.config.single_use for p in accepted),
        )

    def _confirmation(self, subject: etree._Element, now: float) -> _Confirmation:
        confirmations = subject.findall(f"{{{SAML}}}SubjectConfirmation")
        if len(confirmations) != 1:
            raise invalid_token(
                "The assertion must have exactly one SubjectConfirmation "
                f"(found {len(confirmations)})."
            )
        confirmation = confirmations[0]
        if confirmation.get("Method") != BEARER:
            raise invalid_token("The SubjectConfirmation method must be bearer.")
        data = _one(confirmation, f"{{{SAML}}}SubjectConfirmationData", "SubjectConfirmationData")
        if data.get("NotBefore") is not None:
            raise invalid_token("A bearer SubjectConfirmationData must not have NotBefore.")
        recipient = data.get("Recipient")
        if not recipient:
            raise invalid_token("The SubjectConfirmationData must have a Recipient.")
        not_on_or_after = _instant(data.get("NotOnOrAfter"), "SubjectConfirmationData NotOnOrAfter")
        if now >= not_on_or_after + self._skew:
            raise _expired(now, not_on_or_after)
        return _Confirmation(
            recipient=recipient,
            not_on_or_after=not_on_or_after,
            in_response_to=data.get("InResponseTo"),
        )

    def _conditions(self, assertion: etree._Element, now: float) -> _Conditions:
        conditions = _one(assertion, f"{{{SAML}}}Conditions", "Conditions")
        not_before = conditions.get("NotBefore")
        if not_before is not None:
            start = _instant(not_before, "Conditions NotBefore")
            if now + self._skew < start:
                raise invalid_token(
                    f"The assertion is not valid before {iso8601(start)} (now {iso8601(now)})."
                )
        not_on_or_after = conditions.get("NotOnOrAfter")
        if not_on_or_after is not None:
            end = _instant(not_on_or_after, "Conditions NotOnOrAfter")
            if now >= end + self._skew:
                raise _expired(now, end)
        restrictions: list[frozenset[str]] = []
        one_time_use = False
        for child in conditions:
            if child.tag == f"{{{SAML}}}AudienceRestriction":
                values = [_text(a, "Audience") for a in child if a.tag == f"{{{SAML}}}Audience"]
                if not values or len(values) != len(child):
                    raise invalid_token("An AudienceRestriction must hold only Audience elements.")
                restrictions.append(frozenset(values))
            elif child.tag == f"{{{SAML}}}OneTimeUse":
                one_time_use = True
            elif child.tag != f"{{{SAML}}}ProxyRestriction":
                raise invalid_token(
                    "The assertion has a condition the broker does not understand; "
                    "SAML requires refusing it."
                )
        if not restrictions:
            raise invalid_token("The assertion must have an AudienceRestriction.")
        return _Conditions(audiences=tuple(restrictions), one_time_use=one_time_use)

    def _authn(self, assertion: etree._Element, now: float) -> int | None:
        statements = assertion.findall(f"{{{SAML}}}AuthnStatement")
        if len(statements) != 1:
            raise invalid_token(
                f"The assertion must have exactly one AuthnStatement (found {len(statements)})."
            )
        session_end = statements[0].get("SessionNotOnOrAfter")
        if session_end is None:
            return None
        end = _instant(session_end, "AuthnStatement SessionNotOnOrAfter")
        if now >= end + self._skew:
            raise _expired(now, end)
        return int(end)

    def _provider_problem(
        self,
        provider: _Provider,
        *,
        recipient: str,
        destination: str | None,
        audiences: tuple[frozenset[str], ...],
        confirmation_irt: str | None,
        response_irt: str | None,
        expected_irt: str | None,
        api: bool,
    ) -> StsError | None:
        """Why this provider can't accept the assertion (None when it can)."""
        if not self._recipient_ok(provider, recipient):
            return invalid_token(
                f"The SubjectConfirmationData Recipient {_short(recipient)} is not this "
                f"broker's ACS URL ({self.acs_url})."
            )
        if destination is not None and not self._recipient_ok(provider, destination):
            return invalid_token(
                f"The Response Destination {_short(destination)} is not this broker's ACS "
                f"URL ({self.acs_url})."
            )
        for restriction in audiences:
            if restriction.isdisjoint(provider.audiences):
                return invalid_token(
                    "An AudienceRestriction does not name this broker "
                    f"({self.sp_entity_id}) or another audience configured for {provider.arn}."
                )
        if api:
            return None
        if expected_irt is None:
            if confirmation_irt is not None or response_irt is not None:
                return invalid_token(
                    "The response answers an authentication request this browser session "
                    "did not make (InResponseTo)."
                )
            if not provider.config.idp_initiated:
                return invalid_token(
                    f"Unsolicited (IdP-initiated) responses are not accepted for {provider.arn}; "
                    "start the sign-in at the broker, or set idp_initiated."
                )
            return None
        if confirmation_irt != expected_irt or response_irt not in (None, expected_irt):
            return invalid_token(
                "The response's InResponseTo does not match the authentication request of "
                "this browser session."
            )
        return None

    def _recipient_ok(self, provider: _Provider, value: str) -> bool:
        if value == self.acs_url:
            return True
        return provider.config.aws_audience and AWS_RECIPIENT.fullmatch(value) is not None


@dataclass(frozen=True)
class _Confirmation:
    recipient: str
    not_on_or_after: float
    in_response_to: str | None


@dataclass(frozen=True)
class _Conditions:
    audiences: tuple[frozenset[str], ...]
    one_time_use: bool


# --------------------------------------------------------------------------- shape


def _check_status(response: etree._Element) -> None:
    if response.tag != f"{{{SAMLP}}}Response":
        raise invalid_token("The SAML message is not a samlp:Response.")
    if response.get("Version") != "2.0" or not response.get("ID"):
        raise invalid_token("The Response must have an ID and Version 2.0.")
    status = response.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode")
    value = status.get("Value") if status is not None else None
    if value != STATUS_SUCCESS:
        shown = _short(value.rsplit(":", 1)[-1]) if value else "missing"
        raise invalid_token(f"The identity provider did not report success (status {shown}).")


def _issuer_hint(root: etree._Element) -> str | None:
    """The (unverified) Issuer, only to pick candidate providers before verification."""
    for path in (f"{{{SAML}}}Issuer", f"{{{SAML}}}Assertion/{{{SAML}}}Issuer"):
        element = root.find(path)
        if element is not None and element.text:
            return str(element.text)
    return None


def _response_shape(root: etree._Element) -> tuple[etree._Element | None, etree._Element]:
    """(the Response's own Signature or None, the one Assertion/EncryptedAssertion child)."""
    assertions = [
        *root.iter(f"{{{SAML}}}Assertion"),
        *root.iter(f"{{{SAML}}}EncryptedAssertion"),
    ]
    if len(assertions) != 1:
        raise invalid_token(
            f"The Response must hold exactly one assertion (found {len(assertions)})."
        )
    carrier = assertions[0]
    if carrier.getparent() is not root:
        raise invalid_token("The assertion must be a direct child of the Response.")
    signatures = list(root.iter(f"{{{DS}}}Signature"))
    own = [s for s in signatures if s.getparent() is root]
    inner = [s for s in signatures if s.getparent() is carrier]
    if len(own) > 1 or len(inner) > 1 or len(own) + len(inner) != len(signatures):
        raise invalid_token(
            "The Response has signatures in unexpected places; only one on the Response and "
            "one on the Assertion are accepted."
        )
    if carrier.tag == f"{{{SAML}}}EncryptedAssertion" and inner:
        raise invalid_token("An EncryptedAssertion must not carry a signature of its own.")
    return (own[0] if own else None), carrier


def _assertion_signature(assertion: etree._Element) -> etree._Element | None:
    found = [child for child in assertion if child.tag == f"{{{DS}}}Signature"]
    if len(found) > 1:
        raise invalid_token("The Assertion carries more than one signature.")
    return found[0] if found else None


def _check_signature_shape(signed: etree._Element, signature: etree._Element, what: str) -> None:
    """Refuse every signature form beyond the one SAML needs, before any crypto runs."""
    if any(child.tag not in _SIGNATURE_CHILDREN for child in signature):
        raise invalid_token(
            f"The {what} signature has unexpected elements "
            "(only SignedInfo, SignatureValue and KeyInfo are accepted)."
        )
    info = _one(signature, f"{{{DS}}}SignedInfo", f"{what} signature SignedInfo")
    c14n = _one(info, f"{{{DS}}}CanonicalizationMethod", "CanonicalizationMethod")
    if c14n.get("Algorithm") != EXC_C14N:
        raise invalid_token(f"The {what} signature must use exclusive canonicalization.")
    method = _one(info, f"{{{DS}}}SignatureMethod", "SignatureMethod").get("Algorithm") or ""
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
    digest = _one(reference, f"{{{DS}}}DigestMethod", "DigestMethod").get("Algorithm") or ""
    if digest not in _DIGEST_URIS:
        raise invalid_token(
            f"The {what} signature's digest algorithm is not accepted; use SHA-256, SHA-384 "
            "or SHA-512."
        )


def _certificates_of(candidates: Iterable[tuple[_Provider, IdpMetadata]]) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for _, metadata in candidates:
        out.extend(cert for cert in metadata.certificates if cert not in out)
    return out


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


# --------------------------------------------------------------------------- reading


def _one(parent: etree._Element, tag: str, what: str) -> etree._Element:
    found = parent.findall(tag)
    if len(found) != 1:
        raise invalid_token(f"The SAML response must have exactly one {what} (found {len(found)}).")
    return found[0]


def _text(element: etree._Element, what: str) -> str:
    """An element's whole text; child elements (or anything but one text node) are refused."""
    if len(element) > 0:
        raise invalid_token(f"The {what} must be plain text.")
    return str(element.text or "")


def _issuer(parent: etree._Element, what: str) -> str | None:
    found = parent.findall(f"{{{SAML}}}Issuer")
    if not found:
        if what == "Assertion":
            raise invalid_token("The assertion has no Issuer.")
        return None
    if len(found) > 1:
        raise invalid_token(f"The {what} has more than one Issuer.")
    issuer = found[0]
    if issuer.get("Format") not in (None, ENTITY_FORMAT):
        raise invalid_token(f"The {what} Issuer's Format must be the entity format.")
    return _text(issuer, f"{what} Issuer")


def _instant(value: str | None, what: str) -> float:
    """An ``xs:dateTime`` in UTC (``Z``), as SAML requires, as POSIX seconds."""
    match = _DATETIME.fullmatch(value or "")
    if match is None:
        raise invalid_token(f"The {what} is missing or not a UTC date/time.")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise invalid_token(f"The {what} is not a valid date/time.") from None
    fraction = float(match.group(7)) if match.group(7) else 0.0
    return moment.timestamp() + fraction


def _attributes(
    assertion: etree._Element,
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """(every attribute by Name, the AWS ones), from AttributeStatements of the assertion only."""
    merged: dict[str, list[str]] = {}
    aws: dict[str, tuple[str, ...]] = {}
    total = 0
    for statement in assertion.findall(f"{{{SAML}}}AttributeStatement"):
        for attribute in statement:
            if attribute.tag == f"{{{SAML}}}EncryptedAttribute":
                raise invalid_token("Encrypted attributes are not supported.")
            if attribute.tag != f"{{{SAML}}}Attribute":
                continue
            name = attribute.get("Name") or ""
            aws_name = _aws_name(name)
            values: list[str] = []
            for value in attribute.findall(f"{{{SAML}}}AttributeValue"):
                if len(value) > 0:
                    if aws_name:
                        raise rejected_claim(f"The {_short(name)} attribute values must be text.")
                    continue
                values.append(str(value.text or ""))
            total += len(values)
            if total > MAX_ATTRIBUTE_VALUES:
                raise invalid_token(
                    f"The assertion has more than {MAX_ATTRIBUTE_VALUES} attribute values."
                )
            if aws_name:
                if name in aws:
                    raise rejected_claim(f"The {_short(name)} attribute appears more than once.")
                aws[name] = tuple(values)
            merged.setdefault(name, []).extend(values)
    if (
        ROLE not in aws
        and assertion.find(f".//{{{SAML}}}Advice//{{{SAML}}}Attribute[@Name='{ROLE}']") is not None
    ):
        raise rejected_claim("The Role attribute is only inside Advice, which is never read.")
    return {name: tuple(values) for name, values in merged.items()}, aws


def _aws_name(name: str) -> bool:
    """True for AWS's attribute names; refuses names that differ from one only in case."""
    if not name.lower().startswith(AWS_ATTRIBUTES.lower()):
        return False
    if name in _AWS_NAMES or (name.startswith(PRINCIPAL_TAG) and len(name) > len(PRINCIPAL_TAG)):
        return True
    folded = name.lower()
    if any(folded == known.lower() for known in _AWS_NAMES) or folded.startswith(
        PRINCIPAL_TAG.lower()
    ):
        raise rejected_claim(
            f"The attribute {_short(name)} differs from AWS's name only in case; "
            "AWS attribute names are case-sensitive."
        )
    return False


def _roles(values: tuple[str, ...], providers: list[_Provider]) -> tuple[SamlRole, ...]:
    if len(values) > MAX_ROLE_VALUES:
        raise rejected_claim(f"The Role attribute has more than {MAX_ROLE_VALUES} values.")
    by_arn = {provider.arn: provider for provider in providers}
    roles: list[SamlRole] = []
    for value in values:
        parts = value.split(",")
        if len(parts) != 2:
            raise rejected_claim(
                f"Role value {_short(value)} must be a role ARN and a SAML provider ARN, "
                "separated by a comma."
            )
        role_arn, provider_arn = (parts[1], parts[0]) if ":saml-provider/" in parts[0] else parts
        role_match = _ROLE_ARN.fullmatch(role_arn)
        provider_match = _PROVIDER_ARN.fullmatch(provider_arn)
        if role_match is None or provider_match is None:
            raise rejected_claim(f"Role value {_short(value)} does not hold well-formed ARNs.")
        if role_match.group(1) != provider_match.group(1):
            raise rejected_claim(
                f"Role value {_short(value)} pairs a role with a provider of another account."
            )
        if provider_arn in by_arn:
            role = SamlRole(role_arn=role_arn, provider_arn=provider_arn)
            if role not in roles:
                roles.append(role)
    if not roles:
        names = ", ".join(sorted(by_arn))
        raise rejected_claim(f"The assertion's Role attribute names no role for {names}.")
    return tuple(roles)


def _single(aws: Mapping[str, tuple[str, ...]], name: str) -> str | None:
    values = aws.get(name)
    if values is None:
        return None
    if len(values) != 1:
        raise rejected_claim(
            f"The {name.removeprefix(AWS_ATTRIBUTES)} attribute must have exactly one value."
        )
    return values[0]


def _session_name(aws: Mapping[str, tuple[str, ...]]) -> str | None:
    value = _single(aws, ROLE_SESSION_NAME)
    if value is not None and not _SESSION_NAME.fullmatch(value):
        raise rejected_claim(
            f"RoleSessionName must be 2 to 64 of letters, digits and +=,.@_- (got {_short(value)})."
        )
    return value


def _session_duration(aws: Mapping[str, tuple[str, ...]]) -> int | None:
    value = _single(aws, SESSION_DURATION)
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{3,5}", value, re.ASCII) or not 900 <= int(value) <= 43200:
        raise rejected_claim(f"SessionDuration must be 900 to 43200 seconds (got {_short(value)}).")
    return int(value)


def _source_identity(aws: Mapping[str, tuple[str, ...]]) -> str | None:
    value = _single(aws, SOURCE_IDENTITY)
    if value is not None and (
        not _SESSION_NAME.fullmatch(value) or value.lower().startswith("aws:")
    ):
        raise rejected_claim(
            "SourceIdentity must be 2 to 64 of letters, digits and +=,.@_- and must not start "
            "with aws:."
        )
    return value


def _tags(aws: Mapping[str, tuple[str, ...]]) -> tuple[dict[str, str], tuple[str, ...]]:
    tags: dict[str, str] = {}
    folded: set[str] = set()
    for name in aws:
        if not name.startswith(PRINCIPAL_TAG):
            continue
        key = name.removeprefix(PRINCIPAL_TAG)
        value = _single(aws, name) or ""
        if not _TAG_KEY.fullmatch(key) or len(value) > 256:
            raise rejected_claim(
                f"Session tag {_short(key)}: keys are 1-128 and values at most 256 characters."
            )
        if key.lower() in folded:
            raise rejected_claim(f"Session tag {_short(key)} is given twice (keys ignore case).")
        folded.add(key.lower())
        tags[key] = value
    if len(tags) > MAX_SESSION_TAGS:
        raise rejected_claim(f"At most {MAX_SESSION_TAGS} session tags are accepted.")
    transitive = aws.get(TRANSITIVE_TAG_KEYS, ())
    for key in transitive:
        if key.lower() not in folded:
            raise rejected_claim(f"Transitive tag key {_short(key)} is not a session tag.")
    return tags, tuple(transitive)


def _context_attributes(attributes: Mapping[str, tuple[str, ...]]) -> dict[str, ContextValue]:
    collected: dict[str, list[str]] = {}
    for name, values in attributes.items():
        key = CONTEXT_ATTRIBUTES.get(name) or _FRIENDLY_CONTEXT.get(name.lower())
        if key is not None and values:
            collected.setdefault(key, []).extend(values)
    return {
        key: values[0] if len(values) == 1 else tuple(values) for key, values in collected.items()
    }


def _short(text: str) -> str:
    return repr(text if len(text) <= 64 else text[:61] + "...")
