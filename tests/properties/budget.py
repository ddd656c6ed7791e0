"""What the property tests share: how many examples each runs (a share of the loaded
profile's budget) and the codes an identity provider's proof may be refused with."""

from __future__ import annotations

from hypothesis import settings


def budget(percent: int) -> int:
    """``percent`` of the profile's ``max_examples`` (at least 10), for costlier tests."""
    return max(10, settings.default.max_examples * percent // 100)


IDP_CODES = frozenset(
    {
        "ValidationError",
        "InvalidIdentityToken",
        "IDPRejectedClaim",
        "ExpiredTokenException",
        "IDPCommunicationError",
    }
)
"""What the SAML and web identity verifiers answer a bad proof with (their docstrings'
tables): anything else would be a bug, a 500 at the API."""
