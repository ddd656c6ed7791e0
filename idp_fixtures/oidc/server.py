"""Several fixture issuers behind one loopback port, and a way to run them in a thread.

One port for ``/google``, ``/cognito``, ``/github``, ``/corp`` keeps test set-up cheap and
mirrors how a broker is configured with several providers. The socket is bound first
(port 0, no race) so the issuer URLs are known before any provider is created.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from starlette.applications import Starlette

from idp_fixtures.loopback import bind_socket, is_loopback, origin, running_in_thread
from idp_fixtures.oidc.app import create_app
from idp_fixtures.oidc.directory import Client, User
from idp_fixtures.oidc.keys import Alg
from idp_fixtures.oidc.provider import Clock, OidcProvider

__all__ = ["OidcServer", "bind_socket", "is_loopback", "origin", "serve_in_thread"]
"""The loopback helpers moved to :mod:`idp_fixtures.loopback`; still exported from here,
where the command line (and any caller written before the move) imports them."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class OidcServer:
    """A registry of issuers named by path segment, served by :attr:`app`.

    ``base_url`` is the server origin (``http://127.0.0.1:PORT``); issuer ``name`` is at
    exactly ``{base_url}/{name}``.
    """

    def __init__(self, base_url: str) -> None:
        self._base = base_url.rstrip("/")
        self._issuers: dict[str, OidcProvider] = {}
        self._lock = threading.Lock()
        self._app = create_app(self._lookup)

    @property
    def url(self) -> str:
        """The server origin; issuers live under it."""
        return self._base

    @property
    def app(self) -> Starlette:
        """The ASGI app serving every issuer, including ones added later."""
        return self._app

    @property
    def issuers(self) -> Mapping[str, OidcProvider]:
        """Issuers by name (a copy)."""
        with self._lock:
            return dict(self._issuers)

    def issuer(self, name: str) -> OidcProvider:
        """The issuer called ``name``; ``KeyError`` if there is none."""
        with self._lock:
            try:
                return self._issuers[name]
            except KeyError:
                raise KeyError(f"no issuer named {name!r}") from None

    def add_issuer(
        self,
        name: str,
        *,
        users: Iterable[User] | None = None,
        clients: Iterable[Client] | None = None,
        alg: Alg = "RS256",
        auto_login: str | None = None,
        clock: Clock | None = None,
        jwks_max_age: int = 300,
        replace: bool = False,
    ) -> OidcProvider:
        """Create issuer ``{url}/{name}`` with its own fresh keys and return it.

        Refuses an existing name unless ``replace`` (a silent replacement would change keys
        under a relying party that cached them).
        """
        if not _NAME.fullmatch(name):
            raise ValueError("issuer name must be 1-63 of [A-Za-z0-9._-], not starting with . _ -")
        provider = OidcProvider(
            f"{self._base}/{name}",
            users=users,
            clients=clients,
            alg=alg,
            auto_login=auto_login,
            clock=clock,
            jwks_max_age=jwks_max_age,
        )
        with self._lock:
            if name in self._issuers and not replace:
                raise ValueError(f"issuer {name!r} already exists")
            self._issuers[name] = provider
        return provider

    def _lookup(self, name: str) -> OidcProvider | None:
        with self._lock:
            return self._issuers.get(name)


@contextmanager
def serve_in_thread(host: str = "127.0.0.1", port: int = 0) -> Iterator[OidcServer]:
    """Run an empty :class:`OidcServer` under uvicorn in a daemon thread.

    Only loopback hosts are accepted: a fixture provider signs anyone in and must never
    be reachable from the network. Add issuers to the yielded server; it stops on exit.
    """
    if not is_loopback(host):
        raise ValueError("serve_in_thread binds loopback only (127.0.0.1, ::1, localhost)")
    sock = bind_socket(host, port)
    server = OidcServer(origin(host, sock.getsockname()[1]))
    with running_in_thread(server.app, sock, what="OIDC"):
        yield server
