"""Identity adapters: each verifies one kind of proof and says who the caller is.

Every proof ends as one of two values: a :class:`Caller` (a SigV4-signed call, with the
long-term key or sealed session it was made with) or a :class:`FederatedIdentity` (a SAML
assertion or an OIDC ID token, verified). Everything after this layer (the STS engine, the
pages, the authorization API) reads those values and never the raw proof, so this package
imports nothing from them. Public names live here.
"""

from __future__ import annotations

from broker.identity.caller import Caller, authenticate
from broker.identity.federated import FederatedIdentity
from broker.identity.oidc import WebIdentity, WebIdentityVerifier
from broker.identity.revocation import Revocation, SessionRevocations
from broker.identity.saml import SamlIdentity, SamlRole, SamlVerifier
from broker.identity.session_tokens import SessionClaims, TokenInvalidError, TokenSealer
from broker.identity.sigv4 import SignatureClaim, read_signature, verify_signature

__all__ = [
    "Caller",
    "FederatedIdentity",
    "Revocation",
    "SamlIdentity",
    "SamlRole",
    "SamlVerifier",
    "SessionClaims",
    "SessionRevocations",
    "SignatureClaim",
    "TokenInvalidError",
    "TokenSealer",
    "WebIdentity",
    "WebIdentityVerifier",
    "authenticate",
    "read_signature",
    "verify_signature",
]
