"""The SAML IdP on a loopback port, and a way to run it in a thread.

The socket is bound first (port 0, no race) so the entity ID and SSO URL, which embed
the port, are known before the IdP (and its metadata) is created.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from cryptography import x509
from starlette.applications import Starlette

from idp_fixtures.loopback import bind_socket, is_loopback, origin, running_in_thread
from idp_fixtures.oidc.provider import Clock
from idp_fixtures.saml.app import create_app
from idp_fixtures.saml.directory import SamlUser, ServiceProvider
from idp_fixtures.saml.idp import GENERIC, EncryptionAlg, SamlIdp, Shape, SignPlacement
from idp_fixtures.saml.keys import KeyAlg


class SamlServer:
    """One :class:`SamlIdp` served at ``{url}/saml/...``.

    The entity ID is the metadata URL (``{url}/saml/metadata``), the convention most
    IdPs follow, and the SSO URL is ``{url}/saml/sso``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        users: Iterable[SamlUser] | None = None,
        sps: Iterable[ServiceProvider] | None = None,
        clock: Clock | None = None,
        sign: SignPlacement | None = None,
        encrypt: bool = False,
        encryption_cert: x509.Certificate | None = None,
        encryption_alg: EncryptionAlg = "aes256-gcm",
        key_alg: KeyAlg = "RSA-2048",
        shape: Shape = GENERIC,
        auto_login: str | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._idp = SamlIdp(
            f"{self._base}/saml/metadata",
            users=users,
            sps=sps,
            clock=clock,
            sign=sign,
            encrypt=encrypt,
            encryption_cert=encryption_cert,
            encryption_alg=encryption_alg,
            key_alg=key_alg,
            shape=shape,
            sso_url=f"{self._base}/saml/sso",
            auto_login=auto_login,
        )
        self._app = create_app(self._idp)

    @property
    def url(self) -> str:
        """The server origin (``http://127.0.0.1:PORT``)."""
        return self._base

    @property
    def idp(self) -> SamlIdp:
        """The IdP this server answers for."""
        return self._idp

    @property
    def metadata_url(self) -> str:
        """Where the metadata is served (also the entity ID)."""
        return f"{self._base}/saml/metadata"

    @property
    def sso_url(self) -> str:
        """The SingleSignOnService endpoint (HTTP-Redirect and HTTP-POST)."""
        return f"{self._base}/saml/sso"

    @property
    def app(self) -> Starlette:
        """The ASGI app."""
        return self._app


@contextmanager
def serve_saml_in_thread(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    users: Iterable[SamlUser] | None = None,
    sps: Iterable[ServiceProvider] | None = None,
    clock: Clock | None = None,
    sign: SignPlacement | None = None,
    shape: Shape = GENERIC,
    auto_login: str | None = None,
) -> Iterator[SamlServer]:
    """Run a :class:`SamlServer` under uvicorn in a daemon thread; it stops on exit.

    Loopback only: a fixture IdP signs anyone in and must never be reachable from the
    network.
    """
    if not is_loopback(host):
        raise ValueError("serve_saml_in_thread binds loopback only (127.0.0.1, ::1, localhost)")
    sock = bind_socket(host, port)
    server = SamlServer(
        origin(host, sock.getsockname()[1]),
        users=users,
        sps=sps,
        clock=clock,
        sign=sign,
        shape=shape,
        auto_login=auto_login,
    )
    with running_in_thread(server.app, sock, what="SAML"):
        yield server
