"""Test identity providers for the broker's tests and other projects' CI.

``idp_fixtures`` runs real identity providers on loopback so relying parties are tested
against real HTTP, real keys and real signatures without the internet. Today: a
multi-issuer OIDC provider (:mod:`idp_fixtures.oidc`), its pytest fixtures
(:mod:`idp_fixtures.pytest_plugin`) and a standalone server
(``python -m idp_fixtures oidc``). See ``idp_fixtures/README.md``.
"""

from __future__ import annotations

from idp_fixtures.oidc import (
    AWS_TAGS_CLAIM,
    DEFAULT_CLIENTS,
    DEFAULT_USERS,
    Client,
    Directory,
    OAuthError,
    OidcProvider,
    OidcServer,
    SigningKey,
    TokenResponse,
    User,
    aws_tags,
    cognito_identity,
    cognito_user_pool,
    generate_key,
    github_actions,
    google,
    hostile,
    load_directory,
    parse_directory,
    presets,
    s256,
    serve_in_thread,
)

__all__ = [
    "AWS_TAGS_CLAIM",
    "DEFAULT_CLIENTS",
    "DEFAULT_USERS",
    "Client",
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
