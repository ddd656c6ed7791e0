"""Responses shaped like the four IdP apps people federate into AWS with.

Each preset is a :class:`~idp_fixtures.saml.idp.Shape` (use it as an IdP's default with
``SamlIdp(..., shape=OKTA)``, so the browser flow answers in that shape too) and a
function minting one base64 response in it. The differences are the ones that break SPs
in practice:

- Okta (AWS Account Federation app): ``saml2p``/``saml2`` prefixes, IDs ``id`` + digits,
  Issuer with ``Format=entity``, NameID ``unspecified``, attribute ``NameFormat`` URI with
  ``xs:string`` values, role pairs *provider first*, Response **and** Assertion signed,
  milliseconds in timestamps, NotBefore 5 minutes back, EncryptedKey beside EncryptedData.
- Entra ID (AWS Single-Account Access gallery app): default namespaces, IDs ``_`` + UUID,
  NameID ``emailAddress`` (``persistent`` when configured), attributes without
  ``NameFormat`` or ``xsi:type``, extra ``schemas.xmlsoap.org`` / ``schemas.microsoft.com``
  claims (tenant, object ID, name, email, ...), only the **assertion** signed.
- ADFS: ``samlp`` Response with an unprefixed Assertion, ``Consent`` attribute, NameID
  ``persistent``, no ``NameFormat``, role pairs provider first, **assertion** signed
  (``SamlResponseSignature`` defaults to ``AssertionOnly``).
- Keycloak: ``samlp``/``saml`` prefixes, IDs ``ID_`` + UUID, NameID ``unspecified``
  (the "username" format), attribute ``NameFormat`` basic, RoleSessionName = username,
  only the **response** signed ("Sign documents" on, "Sign assertions" off by default).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Unpack

from cryptography import x509

from idp_fixtures.saml.directory import SamlUser
from idp_fixtures.saml.idp import (
    GENERIC,
    AssertionOptions,
    EncryptionAlg,
    SamlIdp,
    Shape,
    SignPlacement,
)
from idp_fixtures.saml.names import (
    AC_PASSWORD,
    AC_PASSWORD_PROTECTED,
    AC_UNSPECIFIED,
    ATTRNAME_BASIC,
    ATTRNAME_URI,
    AWS_ACS_URL,
    AWS_SP_ENTITY_ID,
    NAMEID_EMAIL,
    NAMEID_PERSISTENT,
    NAMEID_UNSPECIFIED,
)

_XMLSOAP = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
_MICROSOFT = "http://schemas.microsoft.com/identity/claims/"
_PASSWORD_METHOD = "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password"


def _entra_claims(user: SamlUser, idp_entity_id: str) -> Mapping[str, Sequence[str]]:
    """The claims Entra ID adds to every SAML token, derived stably from the user."""
    tenant = idp_entity_id.rstrip("/").rsplit("/", 1)[-1]
    try:
        tenant = str(uuid.UUID(tenant))
    except ValueError:
        tenant = str(uuid.uuid5(uuid.NAMESPACE_URL, idp_entity_id))
    email = user.email or user.username
    claims: dict[str, Sequence[str]] = {
        _MICROSOFT + "tenantid": [tenant],
        _MICROSOFT + "objectidentifier": [str(uuid.uuid5(uuid.NAMESPACE_DNS, user.username))],
        _MICROSOFT + "displayname": [user.display_name or user.username],
        _MICROSOFT + "identityprovider": [idp_entity_id],
        "http://schemas.microsoft.com/claims/authnmethodsreferences": [_PASSWORD_METHOD],
        _XMLSOAP + "emailaddress": [email],
        _XMLSOAP + "name": [email],
    }
    if user.given_name:
        claims[_XMLSOAP + "givenname"] = [user.given_name]
    if user.family_name:
        claims[_XMLSOAP + "surname"] = [user.family_name]
    return claims


OKTA = Shape(
    "okta",
    name_id_format=NAMEID_UNSPECIFIED,
    attribute_name_format=ATTRNAME_URI,
    sign="both",
    protocol_prefix="saml2p",
    assertion_prefix="saml2",
    id_prefix="id",
    id_style="digits",
    authn_context=AC_PASSWORD_PROTECTED,
    typed_values=True,
    role_order="provider,role",
    millis=True,
    not_before_skew=300,
    issuer_format=True,
    encrypted_key_beside=True,
)
"""Okta's AWS Account Federation app."""

ENTRA_ID = Shape(
    "entra_id",
    name_id_format=NAMEID_EMAIL,
    attribute_name_format=None,
    sign="assertion",
    protocol_prefix="samlp",
    assertion_prefix=None,
    id_prefix="_",
    id_style="uuid",
    authn_context=AC_PASSWORD,
    typed_values=False,
    millis=True,
    not_before_skew=300,
    extra_claims=_entra_claims,
)
"""Microsoft Entra ID's AWS Single-Account Access app."""

ADFS = Shape(
    "adfs",
    name_id_format=NAMEID_PERSISTENT,
    attribute_name_format=None,
    sign="assertion",
    protocol_prefix="samlp",
    assertion_prefix=None,
    id_prefix="_",
    id_style="uuid",
    authn_context=AC_PASSWORD_PROTECTED,
    typed_values=False,
    role_order="provider,role",
    millis=True,
    consent=True,
)
"""AD FS with a relying party trust for AWS (claim rules from AWS's ADFS guide)."""

KEYCLOAK = Shape(
    "keycloak",
    name_id_format=NAMEID_UNSPECIFIED,
    attribute_name_format=ATTRNAME_BASIC,
    sign="response",
    protocol_prefix="samlp",
    assertion_prefix="saml",
    id_prefix="ID_",
    id_style="uuid",
    authn_context=AC_UNSPECIFIED,
    typed_values=True,
    session_name_from="username",
)
"""Keycloak with a SAML client for AWS (default client signature settings)."""

SHAPES: Mapping[str, Shape] = {
    shape.name: shape for shape in (GENERIC, OKTA, ENTRA_ID, ADFS, KEYCLOAK)
}
"""Every shape by name (``generic`` is the IdP's own), for the CLI's ``--preset``."""


def _preset(  # noqa: PLR0917 (positional on purpose, see the docstring)
    idp: SamlIdp,
    shape: Shape,
    user: str | SamlUser,
    sp_entity_id: str,
    acs_url: str,
    sign: SignPlacement | None,
    encrypt: bool | EncryptionAlg | None,
    encryption_cert: x509.Certificate | None,
    options: AssertionOptions,
    /,
) -> str:
    """What every preset function does: the IdP's response in ``shape``, with the shape's
    signature placement unless the caller chose one. Positional, in the order of the public
    parameters, so each preset's body stays one line."""
    options["shape"] = shape
    return idp.response_b64(
        user=user,
        sp_entity_id=sp_entity_id,
        acs_url=acs_url,
        sign=sign or shape.sign,
        encrypt=encrypt,
        encryption_cert=encryption_cert,
        **options,
    )


def okta(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    sign: SignPlacement | None = None,
    encrypt: bool | EncryptionAlg | None = None,
    encryption_cert: x509.Certificate | None = None,
    **options: Unpack[AssertionOptions],
) -> str:
    """A response shaped like Okta's AWS app (see the module doc), base64."""
    return _preset(idp, OKTA, user, sp_entity_id, acs_url, sign, encrypt, encryption_cert, options)


def entra_id(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    sign: SignPlacement | None = None,
    encrypt: bool | EncryptionAlg | None = None,
    encryption_cert: x509.Certificate | None = None,
    persistent: bool = False,
    **options: Unpack[AssertionOptions],
) -> str:
    """A response shaped like Entra ID's AWS app; ``persistent`` switches the NameID
    format from ``emailAddress`` to ``persistent`` (the other common configuration)."""
    if persistent and "name_id_format" not in options:
        options["name_id_format"] = NAMEID_PERSISTENT
    return _preset(
        idp, ENTRA_ID, user, sp_entity_id, acs_url, sign, encrypt, encryption_cert, options
    )


def adfs(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    sign: SignPlacement | None = None,
    encrypt: bool | EncryptionAlg | None = None,
    encryption_cert: x509.Certificate | None = None,
    **options: Unpack[AssertionOptions],
) -> str:
    """A response shaped like AD FS for AWS (assertion signed, as ADFS does by default)."""
    return _preset(idp, ADFS, user, sp_entity_id, acs_url, sign, encrypt, encryption_cert, options)


def keycloak(
    idp: SamlIdp,
    *,
    user: str | SamlUser = "alice",
    sp_entity_id: str = AWS_SP_ENTITY_ID,
    acs_url: str = AWS_ACS_URL,
    sign: SignPlacement | None = None,
    encrypt: bool | EncryptionAlg | None = None,
    encryption_cert: x509.Certificate | None = None,
    **options: Unpack[AssertionOptions],
) -> str:
    """A response shaped like Keycloak's SAML client for AWS (only the response signed)."""
    return _preset(
        idp, KEYCLOAK, user, sp_entity_id, acs_url, sign, encrypt, encryption_cert, options
    )
