"""SAML 2.0 for the broker: verifying IdP responses, the IdPs' metadata, and the SP side.

The face of the package. Behind it: :mod:`~broker.identity.saml.verifier` (a Response in,
a :class:`SamlIdentity` out), :mod:`~broker.identity.saml.xml` (the hardened XML gate),
:mod:`~broker.identity.saml.crypto` (SP keys, assertion decryption),
:mod:`~broker.identity.saml.metadata` (the IdP keys and endpoints) and
:mod:`~broker.identity.saml.sp` (AuthnRequests and the broker's SP metadata).
"""

from __future__ import annotations

from broker.identity.saml.attributes import SamlRole
from broker.identity.saml.crypto import SpCredentials, load_sp_credentials
from broker.identity.saml.metadata import (
    IdpMetadata,
    MetadataError,
    MetadataSource,
    metadata_file_problems,
    parse_metadata,
)
from broker.identity.saml.verifier import SamlIdentity, SamlVerifier, name_qualifier

__all__ = [
    "IdpMetadata",
    "MetadataError",
    "MetadataSource",
    "SamlIdentity",
    "SamlRole",
    "SamlVerifier",
    "SpCredentials",
    "load_sp_credentials",
    "metadata_file_problems",
    "name_qualifier",
    "parse_metadata",
]
