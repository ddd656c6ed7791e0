"""A real SAML 2.0 IdP for tests: metadata, signed (and encrypted) responses, AWS-app
presets, hostile responses, and an SSO endpoint with a login page."""

from __future__ import annotations

from idp_fixtures.saml import hostile, presets
from idp_fixtures.saml.app import create_app
from idp_fixtures.saml.authn import AuthnRequest, SamlRequestError
from idp_fixtures.saml.directory import (
    DEFAULT_SPS,
    DEFAULT_USERS,
    FIXTURE_ACCOUNT,
    FIXTURE_PROVIDER_ARN,
    SamlDirectory,
    SamlUser,
    ServiceProvider,
    load_saml_directory,
    parse_role_pair,
    parse_saml_directory,
)
from idp_fixtures.saml.idp import (
    GENERIC,
    AssertionOptions,
    EncryptionAlg,
    LoginRequest,
    SamlIdp,
    Shape,
    SignPlacement,
    decode_response,
    encrypt_assertion,
    sign_xml,
)
from idp_fixtures.saml.keys import KeyAlg, SigningCert, generate_signing_cert
from idp_fixtures.saml.names import AWS_ACS_URL, AWS_SP_ENTITY_ID, NSMAP
from idp_fixtures.saml.presets import ADFS, ENTRA_ID, KEYCLOAK, OKTA, SHAPES
from idp_fixtures.saml.server import SamlServer, serve_saml_in_thread

__all__ = [
    "ADFS",
    "AWS_ACS_URL",
    "AWS_SP_ENTITY_ID",
    "DEFAULT_SPS",
    "DEFAULT_USERS",
    "ENTRA_ID",
    "FIXTURE_ACCOUNT",
    "FIXTURE_PROVIDER_ARN",
    "GENERIC",
    "KEYCLOAK",
    "NSMAP",
    "OKTA",
    "SHAPES",
    "AssertionOptions",
    "AuthnRequest",
    "EncryptionAlg",
    "KeyAlg",
    "LoginRequest",
    "SamlDirectory",
    "SamlIdp",
    "SamlRequestError",
    "SamlServer",
    "SamlUser",
    "ServiceProvider",
    "Shape",
    "SignPlacement",
    "SigningCert",
    "create_app",
    "decode_response",
    "encrypt_assertion",
    "generate_signing_cert",
    "hostile",
    "load_saml_directory",
    "parse_role_pair",
    "parse_saml_directory",
    "presets",
    "serve_saml_in_thread",
    "sign_xml",
]
