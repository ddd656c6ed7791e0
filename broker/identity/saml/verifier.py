"""SAML: a base64 ``<samlp:Response>`` in, a verified, immutable :class:`SamlIdentity` out.

This adapter is the only code that touches SAML XML. ``AssumeRoleWithSAML`` is unsigned,
so the Response is the whole proof; the order below is what keeps signature wrapping
(XSW), parser differentials and comment truncation out:

1. **Gate** (:mod:`broker.identity.saml.xml`): strict base64, size cap, no DOCTYPE or
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
   only (:mod:`broker.identity.saml.metadata`); a certificate in the message's ``KeyInfo``
   is at most an ordering hint and never verifies anything. Every signature present must
   verify, and at least one must cover the assertion.
4. **Read only what was verified**: from here on the code sees signxml's ``signed_xml``
   (the canonicalized signed element, re-parsed), never the posted tree. If only the
   Response is signed, the assertion is taken from inside the verified Response copy. An
   ``EncryptedAssertion`` is decrypted (:mod:`broker.identity.saml.crypto`) and its
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
                                        passed beyond the skew, or the assertion is older
                                        than ``saml.max_assertion_lifetime_seconds``
``IDPRejectedClaim``            403     signature fine, a claim refused: no Role for this
                                        provider, Role ARNs malformed or in another
                                        account, RoleSessionName, SessionDuration,
                                        SourceIdentity or tags out of bounds
``IDPCommunicationError``       400     the provider's metadata was never loadable
==============================  ======  =================================================

Messages name the rule and at most a short, quoted value; never the XML, never a key.
"""

from __future__ import annotations

import asyncio
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
from lxml import etree  # type: ignore[import-untyped,unused-ignore]

from broker.clock import Clock, iso8601
from broker.config import BrokerConfig, SamlProviderConfig
from broker.errors import StsError, invalid_token, quoted, validation_error
from broker.iam import ContextValue
from broker.identity.claims import Claims, normalise, pointer_condition_keys, pointer_context
from broker.identity.saml.attributes import (
    PROVIDER_ARN,
    ROLE,
    SamlRole,
    context_attributes,
    read_attributes,
    roles_of,
    session_duration,
    session_name,
    session_tags,
    source_identity,
)
from broker.identity.saml.crypto import (
    DecryptionRefused,
    SpCredentials,
    decrypt_assertion,
    load_sp_credentials,
)
from broker.identity.saml.metadata import IdpMetadata, MetadataSource
from broker.identity.saml.signature import SignatureChecker, assertion_signature
from broker.identity.saml.xml import DS, SAML, SAMLP, XmlRefused, one_child, parse_xml, plain_text
from broker.identity.templates import with_templates
from broker.observability import Check

STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
NAMEID_PREFIX = "urn:oasis:names:tc:SAML:2.0:nameid-format:"
ENTITY_FORMAT = NAMEID_PREFIX + "entity"


AWS_RECIPIENT = re.compile(
    r"https://(?:[a-z]{2,4}(?:-[a-z]+)+-[0-9]{1,2}\.)?signin\.aws\.amazon\.com/saml", re.ASCII
)
"""AWS's sign-in ACS, global or regional: a valid Recipient only for AWS-audience providers."""

_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?Z", re.ASCII
)
_MIN_RESPONSE_CHARS = 4


# --------------------------------------------------------------------------- values


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
    """When the assertion stops being acceptable: the earliest of SubjectConfirmationData's
    and Conditions' NotOnOrAfter and IssueInstant + ``saml.max_assertion_lifetime_seconds``.
    Replay-cache entries live until then (plus a margin)."""
    in_response_to: str | None
    attributes: Mapping[str, tuple[str, ...]]
    claims: Claims
    """The attributes as claims (``Name`` -> list of values), after the provider's
    normalisers: what identity-pool rules, ``saml:/pointer`` keys and templates read."""
    single_use: bool
    """Redeem the assertion ID once (per role at the API): the provider's ``single_use``,
    or the assertion's ``OneTimeUse`` condition."""

    def for_provider(self, provider_arn: str) -> SamlIdentity:
        """This identity as seen by one of its providers (its roles only, its keys)."""
        if provider_arn == self.provider_arn:
            return self
        match = PROVIDER_ARN.fullmatch(provider_arn)
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
        self._max_lifetime = config.saml.max_assertion_lifetime_seconds
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
        self._pointer_keys = pointer_condition_keys(
            (
                role.trust_policy
                for account_config in config.accounts.values()
                for role in account_config.roles.values()
            ),
            "saml",
        )
        self._signatures = SignatureChecker()
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
            verified = self._signatures.verify(root, response_signature, certificates, "Response")
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
        signature = assertion_signature(assertion)
        if signature is not None:
            verified = self._signatures.verify(assertion, signature, certificates, "Assertion")
            assertion = verified.element
            used.append(verified.certificate)
        elif response_signature is None:
            raise invalid_token(
                "The SAML response is not signed: neither the Response nor the Assertion "
                "carries a signature."
            )
        if (
            assertion_signature(assertion) is not None
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
            raise invalid_token(f"No SAML provider {quoted(provider_arn)} exists.")
        return await self._metadata.get(provider.config.metadata_source, provider_arn=provider.arn)

    async def metadata_checks(self, *, wait: float) -> list[Check]:
        """One readiness check per configured provider: is its metadata loaded? A due
        refresh is started, waited for at most ``wait`` seconds."""
        providers = list(self._providers.values())
        problems = await asyncio.gather(
            *(
                self._metadata.check(p.config.metadata_source, provider_arn=p.arn, wait=wait)
                for p in providers
            )
        )
        return [
            Check("saml_metadata", p.arn, problem)
            for p, problem in zip(providers, problems, strict=True)
        ]

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
            if not PROVIDER_ARN.fullmatch(provider_arn):
                raise validation_error(
                    f"PrincipalArn {quoted(provider_arn)} is not a SAML provider ARN "
                    "(arn:aws:iam::ACCOUNT:saml-provider/NAME)."
                )
            provider = self._providers.get(provider_arn)
            if provider is None:
                raise invalid_token(f"No SAML provider {quoted(provider_arn)} exists.")
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
            raise invalid_token(f"No SAML provider is configured for issuer {quoted(issuer_hint)}.")
        return found

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
                f"The assertion's Issuer {quoted(issuer or '')} is not the entity ID of the "
                f"identity provider whose key signed it ({quoted(entity_id)})."
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

        subject = one_child(assertion, f"{{{SAML}}}Subject", "Subject")
        name_id = one_child(subject, f"{{{SAML}}}NameID", "Subject NameID")
        subject_text = plain_text(name_id, "NameID")
        if not 1 <= len(subject_text) <= 1024:
            raise invalid_token("The NameID must be 1 to 1024 characters.")
        name_format = (
            name_id.get("Format") or "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
        )
        subject_type = name_format.removeprefix(NAMEID_PREFIX)

        confirmation = self._confirmation(subject, now)
        conditions = self._conditions(assertion, now)
        session_end = self._authn(assertion, now)
        # After the IdP's own bounds, so an expiry it wrote is reported in its words first.
        lifetime_end = issued + self._max_lifetime
        if now >= lifetime_end + self._skew:
            raise StsError(
                "ExpiredTokenException",
                f"Token expired: the assertion was issued at {iso8601(issued)}, more than "
                f"{self._max_lifetime} seconds before the current date/time {iso8601(now)} "
                "(saml.max_assertion_lifetime_seconds); sign in again for a fresh one.",
                400,
            )
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

        attributes, aws = read_attributes(assertion)
        roles = roles_of(aws.get(ROLE, ()), [p.arn for p in accepted])
        tags, transitive = session_tags(aws)
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
        context.update(context_attributes(attributes))
        claims = normalise(
            {name: list(values) for name, values in attributes.items()}, first.config.claims
        )
        tags, transitive, templated_source = with_templates(
            first.config.session, claims, tags, transitive, source_identity(aws)
        )
        if self._pointer_keys:
            context.update(pointer_context(claims, self._pointer_keys))
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
            session_name=session_name(aws),
            session_duration=session_duration(aws),
            session_not_on_or_after=session_end,
            source_identity=templated_source,
            session_tags=MappingProxyType(tags),
            transitive_tag_keys=transitive,
            context=MappingProxyType(context),
            assertion_id=assertion_id,
            # The earliest end any bound gives: the IdP's two NotOnOrAfter values and the
            # broker's own lifetime cap, so no replay record outlives what it guards.
            not_on_or_after=int(
                min(
                    confirmation.not_on_or_after,
                    conditions.not_on_or_after or confirmation.not_on_or_after,
                    lifetime_end,
                )
            ),
            in_response_to=confirmation.in_response_to or response_irt,
            attributes=MappingProxyType(attributes),
            claims=claims,
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
        data = one_child(
            confirmation, f"{{{SAML}}}SubjectConfirmationData", "SubjectConfirmationData"
        )
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
        conditions = one_child(assertion, f"{{{SAML}}}Conditions", "Conditions")
        not_before = conditions.get("NotBefore")
        if not_before is not None:
            start = _instant(not_before, "Conditions NotBefore")
            if now + self._skew < start:
                raise invalid_token(
                    f"The assertion is not valid before {iso8601(start)} (now {iso8601(now)})."
                )
        not_on_or_after = conditions.get("NotOnOrAfter")
        end: float | None = None
        if not_on_or_after is not None:
            end = _instant(not_on_or_after, "Conditions NotOnOrAfter")
            if now >= end + self._skew:
                raise _expired(now, end)
        restrictions: list[frozenset[str]] = []
        one_time_use = False
        for child in conditions:
            if child.tag == f"{{{SAML}}}AudienceRestriction":
                values = [
                    plain_text(a, "Audience") for a in child if a.tag == f"{{{SAML}}}Audience"
                ]
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
        return _Conditions(
            audiences=tuple(restrictions), one_time_use=one_time_use, not_on_or_after=end
        )

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
                f"The SubjectConfirmationData Recipient {quoted(recipient)} is not this "
                f"broker's ACS URL ({self.acs_url})."
            )
        if destination is not None and not self._recipient_ok(provider, destination):
            return invalid_token(
                f"The Response Destination {quoted(destination)} is not this broker's ACS "
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
    not_on_or_after: float | None


# --------------------------------------------------------------------------- shape


def _check_status(response: etree._Element) -> None:
    if response.tag != f"{{{SAMLP}}}Response":
        raise invalid_token("The SAML message is not a samlp:Response.")
    if response.get("Version") != "2.0" or not response.get("ID"):
        raise invalid_token("The Response must have an ID and Version 2.0.")
    status = response.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode")
    value = status.get("Value") if status is not None else None
    if value != STATUS_SUCCESS:
        shown = quoted(value.rsplit(":", 1)[-1]) if value else "missing"
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


def _certificates_of(candidates: Iterable[tuple[_Provider, IdpMetadata]]) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for _, metadata in candidates:
        out.extend(cert for cert in metadata.certificates if cert not in out)
    return out


# --------------------------------------------------------------------------- reading


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
    return plain_text(issuer, f"{what} Issuer")


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
