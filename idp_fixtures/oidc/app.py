"""HTTP face of the fixture issuers: discovery, JWKS, authorize, token, userinfo.

One Starlette app serves any number of issuers at ``{base}/{name}``; each request looks
its issuer up by name at request time, so issuers added after start-up are served too.
This module only parses and answers HTTP; the protocol state lives in
:class:`~idp_fixtures.oidc.provider.OidcProvider`.

Request bodies are parsed by hand (``application/x-www-form-urlencoded`` only, bounded in
size, repeated parameters refused as RFC 6749 section 3.1 requires), which also keeps the
app free of a multipart dependency.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from idp_fixtures.oidc.pages import error_page, login_page
from idp_fixtures.oidc.provider import (
    AuthorizationRequest,
    OAuthError,
    OidcProvider,
    valid_pkce_value,
)

Resolver = Callable[[str], OidcProvider | None]
"""Maps an issuer name (the first path segment) to its provider, or ``None``."""

_MAX_BODY = 64 * 1024
_FORM = "application/x-www-form-urlencoded"
_AUTH_PARAMS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
)
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "Referrer-Policy": "no-referrer",
}


class _PageError(Exception):
    """An authorization error that must not be redirected (client or redirect_uri bad)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class _RedirectError(Exception):
    """An authorization error reported to the client's (already verified) redirect_uri."""

    def __init__(self, error: str, description: str, redirect_uri: str, state: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state


def create_app(resolve: Resolver) -> Starlette:
    """The ASGI app for every issuer ``resolve`` knows, at ``/{name}/...``."""
    endpoints = _Endpoints(resolve)
    prefix = "/{issuer_name}"
    return Starlette(
        routes=[
            Route(f"{prefix}/.well-known/openid-configuration", endpoints.discovery),
            Route(f"{prefix}/jwks", endpoints.jwks),
            Route(f"{prefix}/authorize", endpoints.authorize, methods=["GET", "POST"]),
            Route(f"{prefix}/token", endpoints.token, methods=["POST"]),
            Route(f"{prefix}/userinfo", endpoints.userinfo, methods=["GET", "POST"]),
        ]
    )


class _Endpoints:
    def __init__(self, resolve: Resolver) -> None:
        self._resolve = resolve

    def _provider(self, request: Request) -> OidcProvider | None:
        return self._resolve(str(request.path_params["issuer_name"]))

    async def discovery(self, request: Request) -> Response:
        provider = self._provider(request)
        if provider is None:
            return _not_found()
        return JSONResponse(
            provider.discovery(), headers={"Cache-Control": f"max-age={provider.jwks_max_age}"}
        )

    async def jwks(self, request: Request) -> Response:
        provider = self._provider(request)
        if provider is None:
            return _not_found()
        return JSONResponse(
            provider.jwks(), headers={"Cache-Control": f"public, max-age={provider.jwks_max_age}"}
        )

    async def authorize(self, request: Request) -> Response:
        provider = self._provider(request)
        if provider is None:
            return _not_found()
        try:
            if request.method == "GET":
                params = _parse(request.url.query)
            else:
                params = _parse(await _form_body(request))
            auth = _authorization_request(provider, params)
            sub = _chosen_subject(provider, params, auth, posted=request.method == "POST")
        except _PageError as exc:
            html = error_page(exc.error, exc.description)
            return HTMLResponse(html, status_code=400, headers=_PAGE_HEADERS)
        except OAuthError as exc:
            html = error_page(exc.error, exc.description)
            return HTMLResponse(html, status_code=exc.status, headers=_PAGE_HEADERS)
        except _RedirectError as exc:
            query = {"error": exc.error, "error_description": exc.description}
            return _redirect(exc.redirect_uri, query, exc.state, provider, request.method)
        if sub is None:
            alert = "Choose a user or type a subject." if request.method == "POST" else ""
            html = login_page(
                issuer=provider.issuer,
                client_id=auth.client_id,
                params={k: params[k] for k in _AUTH_PARAMS if k in params},
                users=provider.users.values(),
                alert=alert,
            )
            return HTMLResponse(html, status_code=400 if alert else 200, headers=_PAGE_HEADERS)
        code = provider.issue_code(auth, sub)
        return _redirect(auth.redirect_uri, {"code": code}, auth.state, provider, request.method)

    async def token(self, request: Request) -> Response:
        provider = self._provider(request)
        if provider is None:
            return _not_found()
        try:
            params = _parse(await _form_body(request))
            client_id, secret = _client_credentials(request, params)
            provider.authenticate_client(client_id, secret)
            if params.get("grant_type") != "authorization_code":
                raise OAuthError("unsupported_grant_type", "only authorization_code is supported")
            code = params.get("code")
            redirect_uri = params.get("redirect_uri")
            if not code or not redirect_uri:
                raise OAuthError("invalid_request", "code and redirect_uri are required")
            result = provider.redeem_code(
                code,
                client_id=client_id,
                redirect_uri=redirect_uri,
                code_verifier=params.get("code_verifier"),
            )
        except OAuthError as exc:
            headers = {"Cache-Control": "no-store"}
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="token"'
            body = {"error": exc.error, "error_description": exc.description}
            return JSONResponse(body, status_code=exc.status, headers=headers)
        return JSONResponse(
            result.as_json(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
        )

    async def userinfo(self, request: Request) -> Response:
        provider = self._provider(request)
        if provider is None:
            return _not_found()
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return Response(
                status_code=401, headers={"WWW-Authenticate": 'Bearer realm="userinfo"'}
            )
        info = provider.userinfo(token.strip())
        if info is None:
            challenge = 'Bearer error="invalid_token", error_description="unknown or expired"'
            return Response(status_code=401, headers={"WWW-Authenticate": challenge})
        return JSONResponse(info, headers={"Cache-Control": "no-store"})


def _not_found() -> Response:
    body = {"error": "not_found", "error_description": "no such issuer"}
    return JSONResponse(body, status_code=404)


async def _form_body(request: Request) -> str:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != _FORM:
        raise OAuthError("invalid_request", f"body must be {_FORM}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY:
            raise OAuthError("invalid_request", "request body too large")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "body is not UTF-8") from None


def _parse(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True):
        if name in out:
            raise OAuthError("invalid_request", f"parameter {name} is repeated")
        out[name] = value
    return out


def _authorization_request(
    provider: OidcProvider, params: Mapping[str, str]
) -> AuthorizationRequest:
    client_id = params.get("client_id", "")
    client = provider.clients.get(client_id)
    if client is None:
        raise _PageError("invalid_request", "unknown or missing client_id")
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uris:
        raise _PageError("invalid_request", "redirect_uri is not registered for this client")
    state = params.get("state", "")

    def refuse(error: str, description: str) -> _RedirectError:
        return _RedirectError(error, description, redirect_uri, state)

    if params.get("response_type") != "code":
        raise refuse("unsupported_response_type", "only response_type=code is supported")
    scope = params.get("scope", "")
    if "openid" not in scope.split(" "):
        raise refuse("invalid_scope", "scope must contain openid")
    if not state:
        raise refuse("invalid_request", "state is required")
    nonce = params.get("nonce", "")
    if not nonce:
        raise refuse("invalid_request", "nonce is required")
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if method is not None and method != "S256":
        raise refuse("invalid_request", "code_challenge_method must be S256")
    if challenge is not None:
        if method is None:
            raise refuse("invalid_request", "code_challenge_method=S256 is required")
        if not valid_pkce_value(challenge):
            raise refuse("invalid_request", "malformed code_challenge")
    elif method is not None:
        raise refuse("invalid_request", "code_challenge is missing")
    elif client.public:
        raise refuse("invalid_request", "public clients must use PKCE (S256)")
    return AuthorizationRequest(client_id, redirect_uri, scope, state, nonce, challenge)


def _chosen_subject(
    provider: OidcProvider, params: Mapping[str, str], auth: AuthorizationRequest, *, posted: bool
) -> str | None:
    """Who signs in: the posted choice, or a non-interactive login; ``None`` shows the page."""
    if posted:
        picked = params.get("sub", "").strip()
        return picked or None
    prompts = params.get("prompt", "").split()
    if "none" in prompts:
        sub = params.get("login_hint") or provider.auto_login
        if not sub:
            raise _RedirectError(
                "login_required", "prompt=none needs login_hint", auth.redirect_uri, auth.state
            )
        return sub
    if provider.auto_login and "login" not in prompts:
        return provider.auto_login
    return None


def _redirect(
    redirect_uri: str, query: dict[str, str], state: str, provider: OidcProvider, method: str
) -> Response:
    """Redirect with ``state`` and the RFC 9207 ``iss``; 303 after a POST so it becomes GET."""
    values: dict[str, Any] = dict(query)
    if state:
        values["state"] = state
    values["iss"] = provider.issuer
    joiner = "&" if "?" in redirect_uri else "?"
    location = f"{redirect_uri}{joiner}{urlencode(values)}"
    return RedirectResponse(location, status_code=303 if method == "POST" else 302)


def _client_credentials(request: Request, params: Mapping[str, str]) -> tuple[str, str | None]:
    """``(client_id, secret)`` from exactly one of Basic, POST body, or none (public)."""
    header = request.headers.get("authorization")
    form_id = params.get("client_id")
    form_secret = params.get("client_secret")
    if header is not None:
        if form_secret is not None:
            raise OAuthError("invalid_request", "use one client authentication method only")
        client_id, secret = _basic(header)
        if form_id is not None and form_id != client_id:
            raise OAuthError("invalid_client", "client_id does not match the credentials", 401)
        return client_id, secret
    if not form_id:
        raise OAuthError("invalid_client", "client authentication required", 401)
    return form_id, form_secret


def _basic(header: str) -> tuple[str, str]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise OAuthError("invalid_client", "unsupported Authorization scheme", 401)
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "malformed Basic credentials", 401)
    # RFC 6749 section 2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote_plus(user), unquote_plus(password)
