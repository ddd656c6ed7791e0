"""The broker as an OIDC issuer: GetWebIdentityToken JWTs, their keys, discovery and JWKS.

Public names live here; the modules behind them are implementation detail.
"""

from __future__ import annotations

from broker.issuer.keys import IssuerKeys, SigningKey
from broker.issuer.routes import routes
from broker.issuer.tokens import CLAIM_NAMESPACE, WebIdentityIssuer, aws_id_token_claims

__all__ = [
    "CLAIM_NAMESPACE",
    "IssuerKeys",
    "SigningKey",
    "WebIdentityIssuer",
    "aws_id_token_claims",
    "routes",
]
