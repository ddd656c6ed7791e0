"""A real OIDC provider for tests: issuers, token minting, presets and hostile tokens."""

from __future__ import annotations

from idp_fixtures.oidc import hostile, presets
from idp_fixtures.oidc.app import create_app
from idp_fixtures.oidc.directory import (
    DEFAULT_CLIENTS,
    DEFAULT_USERS,
    Client,
    Directory,
    User,
    load_directory,
    parse_directory,
)
from idp_fixtures.oidc.keys import Alg, SigningKey, generate_key
from idp_fixtures.oidc.presets import (
    AWS_TAGS_CLAIM,
    aws_tags,
    cognito_identity,
    cognito_user_pool,
    github_actions,
    google,
)
from idp_fixtures.oidc.provider import (
    AuthorizationRequest,
    Clock,
    OAuthError,
    OidcProvider,
    TokenResponse,
    s256,
)
from idp_fixtures.oidc.server import OidcServer, serve_in_thread

__all__ = [
    "AWS_TAGS_CLAIM",
    "DEFAULT_CLIENTS",
    "DEFAULT_USERS",
    "Alg",
    "AuthorizationRequest",
    "Client",
    "Clock",
    "Directory",
    "OAuthError",
    "OidcProvider",
    "OidcServer",
    "SigningKey",
    "TokenResponse",
    "User",
    "aws_tags",
    "cognito_identity",
    "cognito_user_pool",
    "create_app",
    "generate_key",
    "github_actions",
    "google",
    "hostile",
    "load_directory",
    "parse_directory",
    "presets",
    "s256",
    "serve_in_thread",
]
