"""Authorization for resource servers: IAM checks over the broker's credentials, and AWS's
encoded authorization messages for denies.

A resource server asks ``POST /authz/check`` (or uses :class:`RequireIamPermission`)
instead of re-implementing IAM; a refused caller gets an encoded message that someone
allowed ``sts:DecodeAuthorizationMessage`` can decode. Public names live here.
"""

from __future__ import annotations

from broker.authz.client import (
    AuthzClient,
    AuthzError,
    CheckOutcome,
    PrincipalInfo,
    presign_caller_identity,
)
from broker.authz.middleware import PROOF_HEADER, RequireIamPermission
from broker.authz.routes import AuthzApi, openapi_document
from broker.authz.service import AuthzService, CheckResult, is_reserved_key

__all__ = [
    "PROOF_HEADER",
    "AuthzApi",
    "AuthzClient",
    "AuthzError",
    "AuthzService",
    "CheckOutcome",
    "CheckResult",
    "PrincipalInfo",
    "RequireIamPermission",
    "is_reserved_key",
    "openapi_document",
    "presign_caller_identity",
]
