"""Identity adapters: each verifies one kind of proof and says who the caller is.

Public names live here; the modules behind them are implementation detail.
"""

from __future__ import annotations

from broker.identity.oidc import WebIdentity, WebIdentityVerifier
from broker.identity.saml import SamlIdentity, SamlRole, SamlVerifier
from broker.identity.sigv4 import SignatureClaim, read_signature, verify_signature

__all__ = [
    "SamlIdentity",
    "SamlRole",
    "SamlVerifier",
    "SignatureClaim",
    "WebIdentity",
    "WebIdentityVerifier",
    "read_signature",
    "verify_signature",
]
