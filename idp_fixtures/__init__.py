"""Test identity providers for the broker's tests and other projects' CI.

``idp_fixtures`` runs real identity providers on loopback so relying parties are tested
against real HTTP, real keys and real signatures without the internet: a multi-issuer
OIDC provider (:mod:`idp_fixtures.oidc`), a SAML 2.0 IdP (:mod:`idp_fixtures.saml`;
its presets and hostile builders are ``saml_presets`` and ``saml_hostile`` here), their
pytest fixtures (:mod:`idp_fixtures.pytest_plugin`) and standalone servers
(``python -m idp_fixtures oidc|saml``). See ``idp_fixtures/README.md``.
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
from idp_fixtures.saml import (
    ADFS,
    AWS_ACS_URL,
    AWS_SP_ENTITY_ID,
    ENTRA_ID,
    GENERIC,
    KEYCLOAK,
    OKTA,
    SamlIdp,
    SamlServer,
    SamlUser,
    ServiceProvider,
    Shape,
    SigningCert,
    decode_response,
    generate_signing_cert,
    load_saml_directory,
    serve_saml_in_thread,
)
from idp_fixtures.saml import hostile as saml_hostile
from idp_fixtures.saml import presets as saml_presets

__all__ = [
    "ADFS",
    "AWS_ACS_URL",
    "AWS_SP_ENTITY_ID",
    "AWS_TAGS_CLAIM",
    "DEFAULT_CLIENTS",
    "DEFAULT_USERS",
    "ENTRA_ID",
    "GENERIC",
    "KEYCLOAK",
    "OKTA",
    "Client",
    "Directory",
    "OAuthError",
    "OidcProvider",
    "OidcServer",
    "SamlIdp",
    "SamlServer",
    "SamlUser",
    "ServiceProvider",
    "Shape",
    "SigningCert",
    "SigningKey",
    "TokenResponse",
    "User",
    "aws_tags",
    "cognito_identity",
    "cognito_user_pool",
    "decode_response",
    "generate_key",
    "generate_signing_cert",
    "github_actions",
    "google",
    "hostile",
    "load_directory",
    "load_saml_directory",
    "parse_directory",
    "presets",
    "s256",
    "saml_hostile",
    "saml_presets",
    "serve_in_thread",
    "serve_saml_in_thread",
]
