"""The issuer's two public documents: OIDC discovery and the JWKS, both cacheable.

Relying parties (and a second broker listing this one in ``oidc_providers``) fetch
``{public_url}/.well-known/openid-configuration``, then the ``jwks_uri`` it names. Both
documents change only when the config does, so they are rendered once and served with a
``Cache-Control: max-age`` equal to ``issuer.jwks_max_age_seconds``: the same period the
rotation procedure waits between steps, which is what keeps a cached key set current enough.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.issuer.tokens import DISCOVERY_PATH, JWKS_PATH, WebIdentityIssuer


def routes(issuer: WebIdentityIssuer) -> list[Route]:
    """GET (and HEAD) routes for discovery and the JWKS, at the root of the app."""
    headers = {"Cache-Control": f"public, max-age={issuer.jwks_max_age}"}
    discovery = _document(issuer.discovery())
    jwks = _document(issuer.jwks())

    async def serve_discovery(request: Request) -> Response:
        return Response(discovery, media_type="application/json", headers=headers)

    async def serve_jwks(request: Request) -> Response:
        return Response(jwks, media_type="application/json", headers=headers)

    return [
        Route(DISCOVERY_PATH, serve_discovery, methods=["GET"]),
        Route(JWKS_PATH, serve_jwks, methods=["GET"]),
    ]


def _document(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
