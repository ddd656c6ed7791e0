"""OpenID Connect ID tokens: verification, the issuers' keys, and each issuer's conventions.

The face of the package. Behind it: :mod:`~broker.identity.oidc.verifier` (a JWT in, a
:class:`WebIdentity` out), :mod:`~broker.identity.oidc.keys` (JWKS fetched, cached and
refreshed), :mod:`~broker.identity.oidc.conventions` (Google, Cognito, GitHub Actions:
their claim checks and condition keys) and :mod:`~broker.identity.oidc.discovery` (the
provider documents browser sign-in needs).
"""

from __future__ import annotations

from broker.identity.oidc.conventions import (
    COGNITO_IDENTITY_ISSUER,
    SOURCE_IDENTITY_CLAIM,
    TAGS_CLAIM,
)
from broker.identity.oidc.keys import KeySource, VerificationKey, parse_jwks
from broker.identity.oidc.verifier import WebIdentity, WebIdentityVerifier

__all__ = [
    "COGNITO_IDENTITY_ISSUER",
    "SOURCE_IDENTITY_CLAIM",
    "TAGS_CLAIM",
    "KeySource",
    "VerificationKey",
    "WebIdentity",
    "WebIdentityVerifier",
    "parse_jwks",
]
