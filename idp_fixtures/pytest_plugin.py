"""pytest fixtures for a real OIDC provider and a real SAML IdP on loopback.

Enable with ``pytest -p idp_fixtures.pytest_plugin``, ``pytest_plugins = [...]`` in a root
``conftest.py``, or the ``pytest11`` entry point. One server runs per test session (keys
are generated once, so relying parties may cache the JWKS across tests); each test gets
the ``default`` issuer reset to its initial state.

Override ``oidc_users_file`` in your ``conftest.py`` to load users and clients for the
``default`` issuer from a ``users.yaml``.

SAML: ``saml_idp_server`` (session) runs one :class:`~idp_fixtures.saml.SamlIdp` at
``{url}/saml/...``; ``saml_idp`` is that IdP, reset before and after each test (its
entity ID and initial signing certificate stay, so an SP may cache the metadata).
Override ``saml_users_file`` to load SAML users and SPs from a SAML ``users.yaml``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from idp_fixtures.oidc.directory import load_directory
from idp_fixtures.oidc.provider import OidcProvider
from idp_fixtures.oidc.server import OidcServer, serve_in_thread
from idp_fixtures.saml.directory import load_saml_directory
from idp_fixtures.saml.idp import SamlIdp
from idp_fixtures.saml.server import SamlServer, serve_saml_in_thread

DEFAULT_ISSUER = "default"
"""Name of the issuer :func:`oidc_provider` hands out (``{oidc_server.url}/default``)."""


@pytest.fixture(scope="session")
def oidc_users_file() -> Path | None:
    """Path of a ``users.yaml`` for the ``default`` issuer; ``None`` uses the built-in users."""
    return None


@pytest.fixture(scope="session")
def oidc_server(oidc_users_file: Path | None) -> Iterator[OidcServer]:
    """A multi-issuer OIDC server on ``127.0.0.1`` (free port) for the whole session.

    It already has the ``default`` issuer; add more with ``oidc_server.add_issuer(name)``.
    """
    with serve_in_thread("127.0.0.1", 0) as server:
        if oidc_users_file is None:
            server.add_issuer(DEFAULT_ISSUER)
        else:
            directory = load_directory(oidc_users_file)
            server.add_issuer(
                DEFAULT_ISSUER,
                users=directory.users or None,
                clients=directory.clients or None,
            )
        yield server


@pytest.fixture
def oidc_provider(oidc_server: OidcServer) -> Iterator[OidcProvider]:
    """The ``default`` issuer, reset before and after the test (keys, users, codes)."""
    provider = oidc_server.issuer(DEFAULT_ISSUER)
    provider.reset()
    yield provider
    provider.reset()


@pytest.fixture(scope="session")
def saml_users_file() -> Path | None:
    """Path of a SAML ``users.yaml`` (users and SPs); ``None`` uses the built-in ones."""
    return None


@pytest.fixture(scope="session")
def saml_idp_server(saml_users_file: Path | None) -> Iterator[SamlServer]:
    """A SAML IdP on ``127.0.0.1`` (free port) for the whole session: ``.url``,
    ``.idp``, ``.metadata_url`` (= entity ID), ``.sso_url``."""
    if saml_users_file is None:
        users, sps = None, None
    else:
        directory = load_saml_directory(saml_users_file)
        users, sps = directory.users or None, directory.sps or None
    with serve_saml_in_thread("127.0.0.1", 0, users=users, sps=sps) as server:
        yield server


@pytest.fixture
def saml_idp(saml_idp_server: SamlServer) -> Iterator[SamlIdp]:
    """The session IdP, reset before and after the test (signing key, users, SPs, pending
    logins, ``auto_login``, ``sign``, ``encrypt`` and ``shape``)."""
    idp = saml_idp_server.idp
    idp.reset()
    yield idp
    idp.reset()
