"""Cognito-compatible identity pools: the JSON API, identity IDs, and claims -> role mapping.

An identity pool trades a login (an OIDC ID token, a SAML response, a developer-vouched
user) for an identity ID and then for credentials, choosing the role by AWS's role-mapping
grammar (token or rules mode). Logins are verified by the broker's own verifiers and
credentials come from its one STS engine, so nothing here verifies a signature or mints a
key. Public names live here.
"""

from __future__ import annotations

from broker.pools.api import CognitoApi, is_cognito_request
from broker.pools.directory import Pool, PoolDirectory, pool_config_problems
from broker.pools.identities import PoolIdentities
from broker.pools.logins import LoginVerifier
from broker.pools.mapping import RoleChoice, choose_role
from broker.pools.model import CognitoModel
from broker.pools.service import PoolService

__all__ = [
    "CognitoApi",
    "CognitoModel",
    "LoginVerifier",
    "Pool",
    "PoolDirectory",
    "PoolIdentities",
    "PoolService",
    "RoleChoice",
    "choose_role",
    "is_cognito_request",
    "pool_config_problems",
]
