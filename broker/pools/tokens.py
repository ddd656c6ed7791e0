"""The OpenID tokens an identity pool issues (GetOpenIdToken and its developer variant).

They are what Cognito issues, as AWS documents them (Cognito developer guide, "Role trust
and permissions"): ``iss`` ``https://cognito-identity.amazonaws.com``, ``aud`` the pool ID,
``sub`` the identity ID, and ``amr`` ``["authenticated", PROVIDER, ...]`` or
``["unauthenticated"]``, so AWS's identity-pool trust policies (``cognito-identity.
amazonaws.com:aud``, ``:amr``) admit them verbatim. The broker's issuer signs them with the
keys it publishes (:mod:`broker.issuer`), and the broker's own ``AssumeRoleWithWebIdentity``
verifies them with those keys (:meth:`broker.identity.WebIdentityVerifier._pool_provider`).
Session tags and a SourceIdentity travel in AWS's claims for them, which that verifier reads
like any provider's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from broker.identity.oidc import COGNITO_IDENTITY_ISSUER
from broker.issuer import WebIdentityIssuer, aws_id_token_claims

OPEN_ID_TOKEN_SECONDS: Final = 600
"""GetOpenIdToken's tokens live ten minutes, as Cognito's do."""
DEVELOPER_TOKEN_SECONDS: Final = 900
"""GetOpenIdTokenForDeveloperIdentity's default ``TokenDuration`` (AWS: 15 minutes)."""


def mint_pool_token(
    issuer: WebIdentityIssuer,
    *,
    now: float,
    pool_id: str,
    identity_id: str,
    amr: Sequence[str],
    lifetime: int,
    tags: Mapping[str, str] | None = None,
    transitive_tag_keys: Sequence[str] = (),
    source_identity: str | None = None,
) -> str:
    claims = aws_id_token_claims(
        issuer=COGNITO_IDENTITY_ISSUER,
        subject=identity_id,
        audience=pool_id,
        now=now,
        lifetime=lifetime,
        tags=tags or {},
        transitive_tag_keys=transitive_tag_keys,
        source_identity=source_identity,
    )
    claims["amr"] = list(amr)
    return issuer.sign(claims)
