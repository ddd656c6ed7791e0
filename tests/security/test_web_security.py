"""Browser-side attacks over real HTTP: CSRF, cross-origin posts, login CSRF, open redirects.

A small Starlette app built from the real ``broker.web`` pieces runs under uvicorn on a
loopback port; httpx plays the browsers (the victim's, the attacker's). Every attack is
sent for real and the exact refusal (code and status) is asserted.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from broker.clock import FrozenClock
from broker.config import BrokerConfig
from broker.store import MemoryStore
from broker.web import (
    BrowserSessions,
    CookiePolicy,
    LoginBinding,
    LoginBindingError,
    content_security_policy,
    safe_return_to,
    web_middleware,
)

RETURN_PREFIXES = ("/roles", "/credentials")
STS_XML = (
    b'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
    b"<GetCallerIdentityResult><Arn>arn:aws:iam::111111111111:user/alice</Arn>"
    b"</GetCallerIdentityResult></GetCallerIdentityResponse>"
)
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
}
IDP = "https://idp.example"
EVIL = "https://evil.example"


async def form_of(request: Request) -> dict[str, str]:
    """The urlencoded form (python-multipart is not a dependency; the pages need no files)."""
    return dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))


def build_app(public_url: str, clock: FrozenClock) -> tuple[Starlette, BrowserSessions]:
    """The web foundation wired the way the broker's app factory will wire it."""
    config = BrokerConfig.model_validate(
        {"public_url": public_url, "accounts": {}, "limits": {"max_body_bytes": 4096}},
        context={"base_dir": None},
    )
    store = MemoryStore(clock)
    sessions = BrowserSessions(
        store, clock, key=b"s" * 32, cookies=CookiePolicy.for_public_url(public_url)
    )
    binding = LoginBinding(store, clock, sessions.cookies, return_prefixes=RETURN_PREFIXES)

    async def page(request: Request) -> Response:
        session = await sessions.load(request)
        if session is None:
            return HTMLResponse("<p>anonymous</p>")
        user = session.data.get("user", "anonymous")
        return HTMLResponse(f"<p>user={user}</p><p>csrf={sessions.csrf_token(session)}</p>")

    async def start(request: Request) -> Response:
        """The sign-in page: an anonymous session so its form has a CSRF token."""
        response = HTMLResponse("")
        session = await sessions.create(request, response, {})
        response.body = f"<p>csrf={sessions.csrf_token(session)}</p>".encode()
        response.headers["content-length"] = str(len(response.body))
        return response

    async def login(request: Request) -> Response:
        form = await form_of(request)
        response = HTMLResponse("<p>signed in</p>")
        await sessions.create(request, response, {"user": form["user"]})
        return response

    async def echo(request: Request) -> Response:
        form = await form_of(request)
        return HTMLResponse(f"<p>note={form.get('note')}</p>")

    async def logout(request: Request) -> Response:
        response = HTMLResponse("<p>signed out</p>")
        await sessions.destroy(request, response)
        return response

    async def saml_begin(request: Request) -> Response:
        response = RedirectResponse("", status_code=303)
        handle = await binding.begin(
            request,
            response,
            kind="saml",
            request_id="_authn-1",
            return_to=request.query_params.get("return_to", "/"),
        )
        response.headers["location"] = f"{IDP}/sso?RelayState={handle}"
        return response

    async def saml_acs(request: Request) -> Response:
        form = await form_of(request)
        try:
            pending = await binding.finish(request, str(form.get("RelayState", "")), kind="saml")
        except LoginBindingError as exc:
            return HTMLResponse(f"<p>Code: {exc.code}</p>", status_code=400)
        response = RedirectResponse(pending.return_to, status_code=303)
        await sessions.create(request, response, {"user": str(form.get("user"))})
        return response

    async def oidc_begin(request: Request) -> Response:
        response = RedirectResponse("", status_code=303)
        handle = await binding.begin(
            request, response, kind="oidc", request_id="nonce-1", return_to="/credentials"
        )
        response.headers["location"] = f"{IDP}/authorize?state={handle}"
        return response

    async def oidc_callback(request: Request) -> Response:
        try:
            pending = await binding.finish(
                request, request.query_params.get("state", ""), kind="oidc"
            )
        except LoginBindingError as exc:
            return HTMLResponse(f"<p>Code: {exc.code}</p>", status_code=400)
        return RedirectResponse(pending.return_to, status_code=303)

    async def sts(request: Request) -> Response:
        await request.body()
        return Response(STS_XML, media_type="text/xml")

    async def loose_page(request: Request) -> Response:
        """A page that tries to set its own, weaker policy."""
        return HTMLResponse(
            "<p>x</p>",
            headers={"content-security-policy": "default-src *", "x-frame-options": "ALLOW"},
        )

    async def go(request: Request) -> Response:
        target = safe_return_to(request.query_params.get("return_to"), RETURN_PREFIXES)
        return RedirectResponse(target, status_code=303)

    app = Starlette(
        routes=[
            Route("/", sts, methods=["GET", "POST"]),
            Route("/sts", sts, methods=["GET", "POST"]),
            Route("/page", page),
            Route("/loose", loose_page),
            Route("/start", start),
            Route("/login", login, methods=["POST"]),
            Route("/echo", echo, methods=["POST", "PUT", "DELETE"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/saml/begin", saml_begin),
            Route("/saml/acs", saml_acs, methods=["POST"]),
            Route("/oidc/begin", oidc_begin),
            Route("/oidc/callback", oidc_callback),
            Route("/go", go),
        ],
        middleware=web_middleware(
            config,
            sessions,
            csrf_exempt={
                "/": "STS Query API: SigV4 or the assertion/token in the body, no cookie",
                "/sts": "STS Query API: SigV4 or the assertion/token in the body, no cookie",
                "/saml/acs": "cross-site POST from the IdP; bound by LoginBinding instead",
            },
        ),
    )
    return app, sessions


@dataclass
class Server:
    url: str
    clock: FrozenClock
    sessions: BrowserSessions


def serve(public_url_for: Any) -> Iterator[Server]:
    """Run the app on a loopback port; ``public_url_for(port)`` names its public URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    clock = FrozenClock(1_700_000_000.0)
    app, sessions = build_app(public_url_for(port), clock)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield Server(f"http://127.0.0.1:{port}", clock, sessions)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def local() -> Iterator[Server]:
    """public_url is the loopback address itself: plain-http development mode."""
    yield from serve(lambda port: f"http://127.0.0.1:{port}")


@pytest.fixture(scope="module")
def public() -> Iterator[Server]:
    """public_url is https (TLS terminates in front of it); the test talks to it directly."""
    yield from serve(lambda port: "https://sts.example.com")


class Browser:
    """One browser: its own cookie jar; forms carry our Origin, as browsers send it."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.client = httpx.Client(base_url=server.url, follow_redirects=False, timeout=10)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def post(
        self, path: str, data: dict[str, str], *, origin: str | None = "", **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if origin is not None:
            headers["origin"] = origin or self.server.url
        return self.client.post(path, data=data, headers=headers, **kwargs)

    def csrf(self, path: str = "/page") -> str:
        match = re.search(r"csrf=([A-Za-z0-9_-]+)", self.get(path).text)
        assert match, "no session"
        return match.group(1)

    def cookie(self, name: str = "sts-broker") -> str | None:
        return self.client.cookies.get(name)


def refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert f"<code>{code}</code>" in response.text, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CSP  # refusal pages get headers too


def set_cookie_named(response: httpx.Response, name: str) -> str:
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert len(found) == 1, response.headers.get_list("set-cookie")
    return found[0]


# --------------------------------------------------------------------------- headers


def test_html_pages_get_every_security_header(local: Server) -> None:
    response = Browser(local).get("/page")
    assert response.status_code == 200
    for name, value in PAGE_HEADERS.items():
        assert response.headers.get_list(name) == [value], name
    assert "strict-transport-security" not in response.headers  # http: HSTS would be ignored


def test_https_pages_add_hsts(public: Server) -> None:
    response = Browser(public).get("/page")
    assert response.headers["strict-transport-security"] == "max-age=31536000"
    assert response.headers["content-security-policy"] == CSP


def test_a_page_cannot_loosen_its_own_policy(local: Server) -> None:
    response = Browser(local).get("/loose")
    assert response.headers.get_list("content-security-policy") == [CSP]
    assert response.headers.get_list("x-frame-options") == ["DENY"]


@pytest.mark.parametrize("path", ["/", "/sts"])
def test_sts_xml_api_is_untouched_except_no_store(local: Server, path: str) -> None:
    browser = Browser(local)
    for response in (
        browser.get(path, params={"Action": "GetCallerIdentity"}),
        browser.post(path, {"Action": "GetCallerIdentity"}, origin=EVIL),
    ):
        assert response.status_code == 200
        assert response.content == STS_XML
        assert response.headers["content-type"] == "text/xml; charset=utf-8"
        assert response.headers["cache-control"] == "no-store"
        for name in PAGE_HEADERS.keys() - {"cache-control"}:
            assert name not in response.headers, name
        assert "strict-transport-security" not in response.headers


def test_form_targets_extend_form_action_and_refuse_injection() -> None:
    policy = content_security_policy([IDP, "http://127.0.0.1:9000"])
    assert "form-action 'self' https://idp.example http://127.0.0.1:9000;" in policy
    for bad in ("https://idp.example; script-src *", "*", "https://idp.example/path", "IDP"):
        with pytest.raises(ValueError, match="not an origin"):
            content_security_policy([bad])


# --------------------------------------------------------------------------- CSRF


def test_csrf_right_token_passes_and_the_body_reaches_the_route(local: Server) -> None:
    browser = Browser(local)
    browser.get("/start")
    token = browser.csrf()
    response = browser.post("/echo", {"csrf_token": token, "note": "kept intact"})
    assert response.status_code == 200
    assert response.text == "<p>note=kept intact</p>"


def test_csrf_missing_token_is_refused(local: Server) -> None:
    browser = Browser(local)
    browser.get("/start")
    refused(browser.post("/echo", {"note": "x"}), 403, "CsrfTokenMissing")
    refused(browser.post("/echo", {"csrf_token": "", "note": "x"}), 403, "CsrfTokenMissing")


def test_csrf_wrong_token_is_refused(local: Server) -> None:
    victim, attacker = Browser(local), Browser(local)
    victim.get("/start")
    attacker.get("/start")
    attackers_token = attacker.csrf()
    refused(victim.post("/echo", {"csrf_token": attackers_token}), 403, "CsrfTokenInvalid")
    refused(victim.post("/echo", {"csrf_token": "A" * 43}), 403, "CsrfTokenInvalid")
    token = victim.csrf()
    refused(victim.post("/echo", {"csrf_token": token[:-1]}), 403, "CsrfTokenInvalid")


def test_csrf_token_without_its_session_cookie_is_refused(local: Server) -> None:
    victim = Browser(local)
    victim.get("/start")
    token = victim.csrf()
    stranger = Browser(local)  # no session cookie at all
    refused(stranger.post("/echo", {"csrf_token": token}), 403, "CsrfTokenInvalid")


def test_csrf_token_only_counts_once_and_only_in_a_urlencoded_form(local: Server) -> None:
    browser = Browser(local)
    browser.get("/start")
    token = browser.csrf()
    twice = browser.client.post(
        "/echo",
        content=f"csrf_token={token}&csrf_token=other",
        headers={"content-type": "application/x-www-form-urlencoded", "origin": local.url},
    )
    refused(twice, 403, "CsrfTokenMissing")
    multipart = browser.client.post(
        "/echo",
        data={"csrf_token": token},
        files={"f": ("a.txt", b"x")},
        headers={"origin": local.url},
    )
    refused(multipart, 403, "CsrfTokenMissing")
    as_json = browser.client.post(
        "/echo", json={"csrf_token": token}, headers={"origin": local.url}
    )
    refused(as_json, 403, "CsrfTokenMissing")


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_every_unsafe_method_is_checked(local: Server, method: str) -> None:
    browser = Browser(local)
    browser.get("/start")
    refused(browser.client.request(method, "/echo"), 403, "CsrfTokenMissing")
    ok = browser.client.request(
        method,
        "/echo",
        content=f"csrf_token={browser.csrf()}&note=n",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert ok.status_code == 200


def test_oversized_form_is_refused_before_the_route(local: Server) -> None:
    browser = Browser(local)
    browser.get("/start")
    response = browser.post("/echo", {"csrf_token": browser.csrf(), "note": "x" * 5000})
    refused(response, 413, "RequestTooLarge")


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": EVIL},
        {"origin": "null"},  # sandboxed iframes and data: URLs
        {"origin": "http://127.0.0.1"},  # another port is another origin
        {"referer": f"{EVIL}/attack.html"},  # no Origin: the Referer decides
    ],
)
def test_cross_origin_form_posts_are_refused_even_with_a_valid_token(
    local: Server, headers: dict[str, str]
) -> None:
    browser = Browser(local)
    browser.get("/start")
    token = browser.csrf()
    response = browser.post("/echo", {"csrf_token": token}, origin=None, headers=headers)
    refused(response, 403, "CrossOriginRequest")


def test_same_origin_by_origin_or_referer_or_neither_is_accepted(local: Server) -> None:
    browser = Browser(local)
    browser.get("/start")
    token = browser.csrf()
    for headers in ({"origin": local.url}, {"referer": f"{local.url}/page"}, {}):
        response = browser.post("/echo", {"csrf_token": token}, origin=None, headers=headers)
        assert response.status_code == 200, headers


def test_saml_acs_is_explicitly_exempt_from_origin_and_token(local: Server) -> None:
    """The IdP's cross-site post reaches the ACS, which LoginBinding then judges."""
    browser = Browser(local)
    relay = parse_qs(urlsplit(browser.get("/saml/begin").headers["location"]).query)["RelayState"]
    response = browser.post("/saml/acs", {"RelayState": relay[0], "user": "alice"}, origin=IDP)
    assert response.status_code == 303
    # The same cross-site post to a non-exempt route is refused.
    refused(browser.post("/echo", {"note": "x"}, origin=IDP), 403, "CrossOriginRequest")


def test_exemptions_must_name_a_path_and_a_reason(local: Server) -> None:
    config = BrokerConfig.model_validate(
        {"public_url": "http://127.0.0.1:1", "accounts": {}}, context={"base_dir": None}
    )
    for exempt in ({"/saml/acs": " "}, {"saml/acs": "reason"}):
        middleware = web_middleware(config, local.sessions, csrf_exempt=exempt)[1]
        with pytest.raises(ValueError, match="absolute path with a reason"):
            middleware.cls(Starlette(), *middleware.args, **middleware.kwargs)


# --------------------------------------------------------------------------- sessions over HTTP


def test_cookie_flags_on_the_wire(local: Server, public: Server) -> None:
    header = set_cookie_named(Browser(local).get("/start"), "sts-broker")
    assert "HttpOnly" in header
    assert "SameSite=lax" in header
    assert "Path=/" in header
    assert "Secure" not in header
    assert "Domain" not in header
    header = set_cookie_named(Browser(public).get("/start"), "__Host-sts-broker")
    assert all(flag in header for flag in ("HttpOnly", "SameSite=lax", "Path=/", "Secure"))
    assert "Domain" not in header
    login = set_cookie_named(Browser(public).get("/saml/begin"), "__Host-sts-broker-login")
    assert all(flag in login for flag in ("HttpOnly", "SameSite=none", "Path=/", "Secure"))


def test_session_fixation_login_rotates_the_id(local: Server) -> None:
    attacker = Browser(local)
    attacker.get("/start")
    planted = attacker.cookie()
    assert planted is not None
    victim = Browser(local)
    planted_header = {"cookie": f"sts-broker={planted}"}  # the attacker fixed the victim's cookie
    response = victim.post(
        "/login", {"csrf_token": attacker.csrf(), "user": "alice"}, headers=planted_header
    )
    assert response.status_code == 200
    rotated = set_cookie_named(response, "sts-broker").split(";", 1)[0].split("=", 1)[1]
    assert rotated.split(".")[0] != planted.split(".")[0]
    page = victim.get("/page", headers={"cookie": f"sts-broker={rotated}"})
    assert "user=alice" in page.text
    assert attacker.get("/page").text == "<p>anonymous</p>"  # the planted ID was ended


def test_forged_session_cookie_is_anonymous(local: Server) -> None:
    browser = Browser(local)
    browser.get("/start")
    real = browser.cookie()
    assert real is not None
    session_id, mac = real.split(".")
    for forged in (f"{'A' * 43}.{mac}", f"{session_id}.{'A' * 22}", "x", "caf\xe9.\xff"):
        cookie = f"sts-broker={forged}".encode("latin-1")
        forger = Browser(local)  # an empty jar: only the forged cookie is sent
        response = forger.get("/page", headers={b"cookie": cookie})
        assert response.text == "<p>anonymous</p>", forged
        posted = forger.client.post(
            "/echo", data={"csrf_token": "\xe9" * 43}, headers={b"cookie": cookie}
        )
        refused(posted, 403, "CsrfTokenInvalid")


def test_logout_ends_the_session_on_the_server(local: Server) -> None:
    browser = Browser(local)
    browser.get("/start")
    browser.post("/login", {"csrf_token": browser.csrf(), "user": "alice"})
    copied = browser.cookie()
    response = browser.post("/logout", {"csrf_token": browser.csrf()})
    assert response.status_code == 200
    assert 'sts-broker=""' in set_cookie_named(response, "sts-broker")
    thief = Browser(local)
    thief.client.cookies.set("sts-broker", str(copied))  # a copy taken before logout
    assert thief.get("/page").text == "<p>anonymous</p>"


def test_idle_timeout_over_http(local: Server) -> None:
    browser = Browser(local)
    browser.get("/start")
    browser.post("/login", {"csrf_token": browser.csrf(), "user": "alice"})
    local.clock.advance(899)
    assert "user=alice" in browser.get("/page").text
    local.clock.advance(900)
    assert browser.get("/page").text == "<p>anonymous</p>"


# --------------------------------------------------------------------------- login binding


def saml_start(browser: Browser, return_to: str = "/roles/Dev") -> str:
    location = browser.get("/saml/begin", params={"return_to": return_to}).headers["location"]
    return parse_qs(urlsplit(location).query)["RelayState"][0]


def acs(browser: Browser, relay: str, user: str = "alice") -> httpx.Response:
    return browser.post("/saml/acs", {"RelayState": relay, "user": user}, origin=IDP)


def acs_code(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    match = re.search(r"Code: (\w+)", response.text)
    assert match
    return match.group(1)


def test_saml_login_flow_and_replay(local: Server) -> None:
    browser = Browser(local)
    relay = saml_start(browser)
    response = acs(browser, relay)
    assert response.status_code == 303
    assert response.headers["location"] == "/roles/Dev"
    assert "user=alice" in browser.get("/page").text
    assert acs_code(acs(browser, relay)) == "LoginHandleReplayed"


def test_login_csrf_handle_from_another_browser_is_refused(local: Server) -> None:
    attacker, victim = Browser(local), Browser(local)
    attackers_relay = saml_start(attacker)
    saml_start(victim)  # the victim has a login cookie of its own
    assert acs_code(acs(victim, attackers_relay, user="mallory")) == "LoginBrowserMismatch"
    assert victim.get("/page").text == "<p>anonymous</p>"


def test_expired_login_handle_is_refused(local: Server) -> None:
    browser = Browser(local)
    relay = saml_start(browser)
    local.clock.advance(601)
    assert acs_code(acs(browser, relay)) == "LoginHandleExpired"


def test_oidc_callback_needs_the_login_cookie(local: Server) -> None:
    browser = Browser(local)
    location = browser.get("/oidc/begin").headers["location"]
    state = parse_qs(urlsplit(location).query)["state"][0]
    stranger = Browser(local)
    response = stranger.get("/oidc/callback", params={"state": state})
    assert acs_code(response) == "LoginCookieMissing"
    fresh = parse_qs(urlsplit(browser.get("/oidc/begin").headers["location"]).query)["state"][0]
    response = browser.get("/oidc/callback", params={"state": fresh})
    assert (response.status_code, response.headers["location"]) == (303, "/credentials")


def test_https_saml_acs_needs_the_login_cookie(public: Server) -> None:
    browser = Browser(public)
    response = browser.get("/saml/begin")
    login = set_cookie_named(response, "__Host-sts-broker-login")
    cookie = login.split(";", 1)[0]
    relay = parse_qs(urlsplit(response.headers["location"]).query)["RelayState"][0]
    # httpx keeps Secure cookies off plain http; send them by hand as a browser on https would.
    assert acs_code(acs(browser, relay)) == "LoginCookieMissing"
    relay = saml_start(browser)
    ok = browser.post(
        "/saml/acs", {"RelayState": relay, "user": "a"}, origin=IDP, headers={"cookie": cookie}
    )
    # That second begin saw no cookie (httpx holds it back on http) and bound a new one.
    assert acs_code(ok) == "LoginBrowserMismatch"
    response = browser.get("/saml/begin", headers={b"cookie": cookie})
    relay = parse_qs(urlsplit(response.headers["location"]).query)["RelayState"][0]
    ok = browser.post(
        "/saml/acs", {"RelayState": relay, "user": "a"}, origin=IDP, headers={"cookie": cookie}
    )
    assert ok.status_code == 303


# --------------------------------------------------------------------------- open redirects

OPEN_REDIRECTS = [
    "//evil.example",
    "///evil.example",
    "////evil.example/roles",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "https://evil.example/roles",
    "http:evil.example",
    "https:/evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/%2F%2Fevil.example",
    "/%2f%2fevil.example",
    "/%5Cevil.example",
    "/%252F%252Fevil.example",
    "%2F%2Fevil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/\x00/evil.example",
    " /roles",
    "/roles\x0b",
    "/roles/../../evil.example",
    "/roles/%2e%2e/admin",
    "/roles/./../admin",
    "/roles//evil.example",
    "/roles@evil.example",
    "/roles-evil",
    "/rolesevil",
    "/admin",
    "/roles#@evil.example",
    "/\uff0f\uff0fevil.example",  # fullwidth solidus
    "/\u2215\u2215evil.example",  # division slash
    "/roles?next=%zz",
    "roles",
    "",
    "/" + "a" * 3000,
]


@pytest.mark.parametrize("payload", OPEN_REDIRECTS)
def test_open_redirect_payloads_fall_back_to_root(payload: str) -> None:
    assert safe_return_to(payload, RETURN_PREFIXES) == "/"


def test_safe_return_to_keeps_the_brokers_own_paths() -> None:
    for good in (
        "/roles",
        "/roles/",
        "/roles/Dev",
        "/roles/team+ops=1,a@b.c-d_e~f",
        "/credentials?role=arn%3Aaws%3Aiam%3A%3A111111111111%3Arole%2FDev&duration=3600",
    ):
        assert safe_return_to(good, RETURN_PREFIXES) == good
    assert safe_return_to(None, RETURN_PREFIXES) == "/"
    assert safe_return_to(["/roles"], RETURN_PREFIXES) == "/"
    assert safe_return_to("/anything", ["relative-prefix"]) == "/"
    assert safe_return_to("/roles", ["/roles/"]) == "/roles"


def test_open_redirects_over_http(local: Server) -> None:
    browser = Browser(local)
    for payload in OPEN_REDIRECTS:  # percent-encoded by httpx, decoded back by the server
        response = browser.get("/go", params={"return_to": payload})
        assert response.status_code == 303
        assert response.headers["location"] == "/", payload
    kept = browser.get("/go", params={"return_to": "/roles/Dev?x=1"})
    assert kept.headers["location"] == "/roles/Dev?x=1"
