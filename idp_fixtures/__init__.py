"""Test identity providers (SAML IdP, OIDC provider) for the broker's tests and other projects' CI.

Empty until the web identity and SAML issues fill it.
"""
