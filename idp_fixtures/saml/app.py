"""HTTP face of the fixture SAML IdP: metadata, SSO (Redirect and POST), IdP-initiated.

Routes (under ``/saml``): ``GET metadata``; ``GET|POST sso`` takes an AuthnRequest,
shows the login page (or signs the ``auto_login`` user straight in) and answers with the
auto-POST form to the request's ACS; ``POST login`` is the login page's form;
``GET idp-initiated?sp=ENTITY&user=U`` starts an unsolicited sign-in.

A response is posted only to an ACS URL registered for the requesting SP (exact match),
AuthnRequest signatures are verified whenever present, and the pending sign-in lives on
the server: the login page carries an opaque handle, never the ACS URL.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qsl, unquote_plus

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from idp_fixtures.saml.authn import (
    AuthnRequest,
    SamlRequestError,
    decode_post,
    decode_redirect,
    has_enveloped_signature,
    parse_authn_request,
    raw_query_values,
    verify_post_signature,
    verify_redirect_signature,
)
from idp_fixtures.saml.directory import ServiceProvider
from idp_fixtures.saml.idp import SamlIdp
from idp_fixtures.saml.names import BINDING_POST
from idp_fixtures.saml.pages import error_page, login_page, post_form_page

_MAX_BODY = 256 * 1024
_MAX_RELAY_STATE = 1024
_FORM = "application/x-www-form-urlencoded"
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def create_app(idp: SamlIdp) -> Starlette:
    """The ASGI app serving ``idp`` at ``/saml/...``."""
    endpoints = _Endpoints(idp)
    return Starlette(
        routes=[
            Route("/saml/metadata", endpoints.metadata),
            Route("/saml/sso", endpoints.sso, methods=["GET", "POST"]),
            Route("/saml/login", endpoints.login, methods=["POST"]),
            Route("/saml/idp-initiated", endpoints.idp_initiated),
        ]
    )


class _Endpoints:
    def __init__(self, idp: SamlIdp) -> None:
        self._idp = idp

    async def metadata(self, request: Request) -> Response:
        return Response(
            self._idp.metadata(),
            media_type="application/samlmetadata+xml",
            headers={"Cache-Control": "max-age=300"},
        )

    async def sso(self, request: Request) -> Response:
        try:
            if request.method == "GET":
                params, authn, sp = self._redirect_request(request.url.query)
            else:
                params, authn, sp = self._post_request(await _form_body(request))
            acs_url = _acs_for(authn, sp)
            if authn.destination is not None and authn.destination != self._idp.sso_url:
                raise SamlRequestError("AuthnRequest Destination is not this IdP's SSO URL")
            relay_state = _relay_state(params)
        except SamlRequestError as exc:
            return _error(exc)
        auto = self._idp.auto_login
        if auto is not None:
            return self._answer(auto, sp.entity_id, acs_url, authn.id, relay_state)
        handle = self._idp.hold_login(
            sp_entity_id=sp.entity_id, acs_url=acs_url, request_id=authn.id, relay_state=relay_state
        )
        return self._login_page(sp.entity_id, handle)

    async def login(self, request: Request) -> Response:
        try:
            params = _parse(await _form_body(request))
        except SamlRequestError as exc:
            return _error(exc)
        handle = params.get("handle", "")
        pending = self._idp.peek_login(handle)
        if pending is None:
            return _error(SamlRequestError("unknown or expired sign-in; start again at the SP"))
        username = params.get("user", "")
        if username not in self._idp.users:
            return self._login_page(pending.sp_entity_id, handle, "Choose one of the users.")
        taken = self._idp.take_login(handle)
        if taken is None:
            return _error(SamlRequestError("unknown or expired sign-in; start again at the SP"))
        return self._answer(
            username, taken.sp_entity_id, taken.acs_url, taken.request_id, taken.relay_state
        )

    async def idp_initiated(self, request: Request) -> Response:
        try:
            params = _parse(request.url.query)
            sp = self._sp(params.get("sp", ""))
            acs_url = params.get("acs") or sp.default_acs
            if acs_url not in sp.acs_urls:
                raise SamlRequestError("acs is not registered for this service provider")
            relay_state = _relay_state(params)
            username = params.get("user") or self._idp.auto_login
            if username is not None and username not in self._idp.users:
                raise SamlRequestError("unknown user")
        except SamlRequestError as exc:
            return _error(exc)
        if username is not None:
            return self._answer(username, sp.entity_id, acs_url, None, relay_state)
        handle = self._idp.hold_login(
            sp_entity_id=sp.entity_id, acs_url=acs_url, request_id=None, relay_state=relay_state
        )
        return self._login_page(sp.entity_id, handle)

    # -- helpers -------------------------------------------------------------------------

    def _sp(self, entity_id: str) -> ServiceProvider:
        sp = self._idp.sps.get(entity_id)
        if sp is None:
            raise SamlRequestError("unknown service provider (register it with register_sp)")
        return sp

    def _redirect_request(self, query: str) -> tuple[dict[str, str], AuthnRequest, ServiceProvider]:
        raw = raw_query_values(query)
        params = {name: unquote_plus(value) for name, value in raw.items()}
        if not params.get("SAMLRequest"):
            raise SamlRequestError("SAMLRequest is required")
        authn, _ = parse_authn_request(decode_redirect(params["SAMLRequest"]))
        sp = self._sp(authn.issuer)
        signature = params.get("Signature")
        if signature is not None or "SigAlg" in params:
            if signature is None or "SigAlg" not in params:
                raise SamlRequestError("Signature and SigAlg must come together")
            if sp.cert is None:
                raise SamlRequestError("signed request from an SP without a registered certificate")
            verify_redirect_signature(raw, params["SigAlg"], signature, sp.cert)
        return params, authn, sp

    def _post_request(self, body: str) -> tuple[dict[str, str], AuthnRequest, ServiceProvider]:
        params = _parse(body)
        if not params.get("SAMLRequest"):
            raise SamlRequestError("SAMLRequest is required")
        data = decode_post(params["SAMLRequest"])
        authn, root = parse_authn_request(data)
        sp = self._sp(authn.issuer)
        if has_enveloped_signature(root):
            if sp.cert is None:
                raise SamlRequestError("signed request from an SP without a registered certificate")
            verify_post_signature(data, root, sp.cert)
        return params, authn, sp

    def _login_page(self, sp_entity_id: str, handle: str, alert: str = "") -> Response:
        html = login_page(
            idp_entity_id=self._idp.entity_id,
            sp_entity_id=sp_entity_id,
            handle=handle,
            users=self._idp.users.values(),
            alert=alert,
        )
        headers = _PAGE_HEADERS | {
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"
        }
        return HTMLResponse(html, status_code=400 if alert else 200, headers=headers)

    def _answer(
        self,
        username: str,
        sp_entity_id: str,
        acs_url: str,
        request_id: str | None,
        relay_state: str | None,
    ) -> Response:
        try:
            saml_response = self._idp.response_b64(
                user=username, sp_entity_id=sp_entity_id, acs_url=acs_url, in_response_to=request_id
            )
        except ValueError as exc:  # e.g. encryption on but no SP certificate
            return _error(SamlRequestError(str(exc), 500))
        nonce = secrets.token_urlsafe(16)
        html = post_form_page(
            acs_url=acs_url, saml_response=saml_response, relay_state=relay_state, nonce=nonce
        )
        headers = _PAGE_HEADERS | {
            "Content-Security-Policy": (
                f"default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'"
            )
        }
        return HTMLResponse(html, headers=headers)


def _acs_for(authn: AuthnRequest, sp: ServiceProvider) -> str:
    if authn.protocol_binding is not None and authn.protocol_binding != BINDING_POST:
        raise SamlRequestError("only the HTTP-POST binding is supported for responses")
    if authn.acs_url is not None:
        if authn.acs_url not in sp.acs_urls:
            raise SamlRequestError("AssertionConsumerServiceURL is not registered for this SP")
        return authn.acs_url
    if authn.acs_index is not None:
        if authn.acs_index >= len(sp.acs_urls):
            raise SamlRequestError("AssertionConsumerServiceIndex is not registered for this SP")
        return sp.acs_urls[authn.acs_index]
    return sp.default_acs


def _relay_state(params: dict[str, str]) -> str | None:
    relay_state = params.get("RelayState")
    if relay_state is not None and len(relay_state) > _MAX_RELAY_STATE:
        raise SamlRequestError(f"RelayState is longer than {_MAX_RELAY_STATE} characters")
    return relay_state


def _error(exc: SamlRequestError) -> Response:
    headers = _PAGE_HEADERS | {
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"
    }
    return HTMLResponse(error_page(exc.message), status_code=exc.status, headers=headers)


async def _form_body(request: Request) -> str:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != _FORM:
        raise SamlRequestError(f"body must be {_FORM}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY:
            raise SamlRequestError("request body too large", 413)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise SamlRequestError("body is not UTF-8") from None


def _parse(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True):
        if name in out:
            raise SamlRequestError(f"parameter {name} is repeated")
        out[name] = value
    return out
