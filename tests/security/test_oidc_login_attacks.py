"""Attacks on OIDC sign-in for people, each sent for real, each with its exact refusal.

Two kinds of peer run beside a live broker (uvicorn on loopback):

- the fixture OIDC provider (``idp_fixtures.oidc``), honest, for attacks on the browser
  leg: replayed or stolen ``state``, a missing or foreign ``iss`` (mix-up), IdP errors;
- a small hostile provider built here (discovery, JWKS and a token endpoint whose answer
  each test programs), for attacks on the back channel: ID tokens with the wrong nonce,
  issuer, key, audience or lifetime, a broken or oversized token endpoint, a lying
  discovery document. Its tokens are minted with ``idp_fixtures.oidc`` keys and hostile
  builders, so everything but the one broken rule is valid.

Every refusal is asserted as (status, reason code) and must leave no session behind.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from broker.clock import SystemClock
from broker.config import OidcSettings
from broker.identity.oidc.discovery import ProviderDiscovery
from idp_fixtures import Client, OidcProvider, User, hostile, s256, serve_in_thread
from idp_fixtures.loopback import bind_socket, origin, running_in_thread
from tests.integration.conftest import bind_loopback, free_port, stop_server
from tests.integration.test_oidc_login import (
    ALICE,
    Browser,
    LoginSetup,
    oidc_config,
    reason,
    sets_session,
    start_broker,
)
from tests.integration.test_web_identity import _trust

SECRET = "evil-app-secret-never-shown"
HOSTILE_DISCOVERY: dict[str, dict[str, Any]] = {
    "evil": {},
    "posty": {"token_endpoint_auth_methods_supported": ["client_secret_post"]},
    "liar": {"issuer": "https://accounts.example.com"},
    "gone": {"status": 503},
    "plain": {"authorization_endpoint": "http://idp.example/authorize"},
    "nopkce": {"code_challenge_methods_supported": ["plain"]},
    "down": {"token_endpoint": f"http://127.0.0.1:{free_port()}/token"},
    "flaky": {},
    "cold": {},
}
"""Hostile issuers by name and how their discovery document differs from an honest one."""


class HostileIssuer:
    """An issuer the test controls: discovery, JWKS, and what its token endpoint answers."""

    def __init__(self, base: str, name: str) -> None:
        self.name = name
        self.url = f"{base}/{name}"
        self.minter = OidcProvider(self.url, clients=[Client(f"{name}-app")])
        self.overrides = dict(HOSTILE_DISCOVERY[name])
        self.answer: Callable[[], Response] = lambda: PlainTextResponse("no answer set", 500)
        self.requests: list[tuple[dict[str, str], str | None]] = []
        """(form, Authorization header) of every token request received."""
        self.lock = threading.Lock()
        self.discoveries = 0
        """How many times the discovery document was asked for."""

    def discovery(self) -> Response:
        with self.lock:
            self.discoveries += 1
        document = self.minter.discovery() | {
            k: v for k, v in self.overrides.items() if k != "status"
        }
        return JSONResponse(document, status_code=self.overrides.get("status", 200))

    async def token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        with self.lock:
            self.requests.append((form, request.headers.get("authorization")))
        return self.answer()

    def tokens(self, id_token: str) -> None:
        """Make the token endpoint answer with ``id_token`` (a well-formed 200)."""
        body = {"access_token": "at", "token_type": "Bearer", "expires_in": 3600}
        self.answer = lambda: JSONResponse(body | {"id_token": id_token})


def hostile_app(issuers: dict[str, HostileIssuer]) -> Starlette:
    def issuer(request: Request) -> HostileIssuer:
        return issuers[str(request.path_params["name"])]

    async def discovery(request: Request) -> Response:
        return issuer(request).discovery()

    async def jwks(request: Request) -> Response:
        return JSONResponse(issuer(request).minter.jwks())

    async def token(request: Request) -> Response:
        return await issuer(request).token(request)

    return Starlette(
        routes=[
            Route("/{name}/.well-known/openid-configuration", discovery),
            Route("/{name}/jwks", jwks),
            Route("/{name}/token", token, methods=["POST"]),
        ]
    )


@dataclass
class Attack(LoginSetup):
    """:class:`LoginSetup` with the hostile issuers beside the fixture provider."""

    hostile: dict[str, HostileIssuer] = field(default_factory=dict)

    @property
    def corp(self) -> OidcProvider:
        return self.idp.issuer("corp")

    def started(self, name: str = "evil") -> tuple[Browser, dict[str, str]]:
        """A browser that started a login at ``name``, and the authorization request's query."""
        browser = self.browser()
        return browser, dict(parse_qsl(urlsplit(browser.start(name)).query))

    def callback(self, browser: Browser, name: str, **params: str) -> httpx.Response:
        return browser.callback(f"{self.url}/oidc/callback/{name}?{urlencode(params)}")


@pytest.fixture(scope="module")
def attack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Attack]:
    sock = bind_loopback()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    hostile_sock = bind_socket("127.0.0.1", 0)
    base = origin("127.0.0.1", hostile_sock.getsockname()[1])
    issuers = {name: HostileIssuer(base, name) for name in HOSTILE_DISCOVERY}
    with (
        serve_in_thread() as idp,
        running_in_thread(hostile_app(issuers), hostile_sock, what="hostile"),
    ):
        google = idp.add_issuer(
            "google",
            users=[User(ALICE, email="alice@example.com")],
            clients=[Client("broker-web", (f"{url}/oidc/callback/google",), secret="web-s")],
        )
        corp = idp.add_issuer(
            "corp", clients=[Client("corp-app", (f"{url}/oidc/callback/corp",), secret="corp-s")]
        )
        providers: list[dict[str, Any]] = [
            # evil-app is registered for google too: a token google issued to evil-app passes
            # the API's checks, so only the login's own issuer check can refuse it.
            {"url": google.issuer, "kind": "google", "client_ids": ["broker-web", "evil-app"]},
            {"url": corp.issuer, "client_ids": ["corp-app"]},
        ]
        logins: dict[str, Any] = {
            "google": {
                "label": "Google",
                "oidc": {"url": google.issuer, "client_id": "broker-web", "client_secret": "web-s"},
            },
            "corp": {
                "label": "Corp",
                "oidc": {"url": corp.issuer, "client_id": "corp-app", "client_secret": "corp-s"},
            },
        }
        for name, issuer in issuers.items():
            client_ids = [f"{name}-app", "other-app"] if name == "evil" else [f"{name}-app"]
            providers.append({"url": issuer.url, "client_ids": client_ids})
            logins[name] = {
                "label": f"Hostile {name}",
                "oidc": {"url": issuer.url, "client_id": f"{name}-app", "client_secret": SECRET},
            }
        config = oidc_config(
            url,
            providers=providers,
            logins=logins,
            roles={"Anyone": {"trust_policy": _trust("accounts.google.com")}},
        )
        broker_url, running, clock = start_broker(config, tmp_path_factory.mktemp("attacks"), sock)
        setup = Attack(url=broker_url, idp=idp, hostile=issuers, clock=clock)
        try:
            yield setup
        finally:
            setup.close()
            stop_server(running)


def refused(response: httpx.Response, browser: Browser) -> tuple[int, str]:
    """(status, reason code) of a refusal, after checking it left no session behind."""
    assert not sets_session(response)
    assert not browser.signed_in()
    return response.status_code, reason(response)


# -- the browser leg (honest provider) ------------------------------------------------------


def test_unknown_provider_name(attack: Attack) -> None:
    browser = attack.browser()
    for path in ("/oidc/login/nope", "/oidc/callback/nope?code=c&state=s"):
        response = browser.http.get(f"{attack.url}{path}")
        assert refused(response, browser) == (404, "UnknownLoginProvider")
        assert "nope" not in response.text


def test_state_replay(attack: Attack) -> None:
    browser = attack.browser()
    callback = browser.authorize(browser.start("google"), ALICE)
    first = browser.callback(callback)
    assert first.status_code == 303 and sets_session(first)
    second = browser.callback(callback)
    assert second.status_code == 400 and reason(second) == "LoginHandleReplayed"
    assert not sets_session(second)


def test_state_from_another_browser(attack: Attack) -> None:
    """Login CSRF: the attacker signs in as themselves and feeds the victim the callback."""
    attacker = attack.browser()
    stolen = attacker.authorize(attacker.start("google"), ALICE)
    victim = attack.browser()
    assert refused(victim.callback(stolen), victim) == (400, "LoginCookieMissing")

    attacker_again = attacker.authorize(attacker.start("google"), ALICE)
    victim_with_own_login = attack.browser()
    victim_with_own_login.start("google")  # the victim has a login cookie of their own
    response = victim_with_own_login.callback(attacker_again)
    assert refused(response, victim_with_own_login) == (400, "LoginBrowserMismatch")


def _without(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    return f"{base}?{urlencode([(k, v) for k, v in parse_qsl(query) if k != name])}"


def _replaced(url: str, name: str, value: str) -> str:
    base, _, query = url.partition("?")
    pairs = [(k, value if k == name else v) for k, v in parse_qsl(query)]
    return f"{base}?{urlencode(pairs)}"


def test_missing_state(attack: Attack) -> None:
    browser = attack.browser()
    callback = browser.authorize(browser.start("google"), ALICE)
    response = browser.callback(_without(callback, "state"))
    assert refused(response, browser) == (400, "LoginHandleMalformed")


def test_iss_missing_when_the_provider_announces_it(attack: Attack) -> None:
    browser = attack.browser()
    callback = browser.authorize(browser.start("google"), ALICE)
    assert refused(browser.callback(_without(callback, "iss")), browser) == (400, "IssuerMissing")
    # The handle was consumed by the refused attempt: the genuine answer can't follow it.
    assert reason(browser.callback(callback)) == "LoginHandleReplayed"
    assert not browser.signed_in()


@pytest.mark.parametrize("iss", ["corp", "trailing-slash", "hostile"])
def test_iss_of_another_issuer_is_a_mix_up(attack: Attack, iss: str) -> None:
    browser = attack.browser()
    callback = browser.authorize(browser.start("google"), ALICE)
    other = {
        "corp": attack.corp.issuer,
        "trailing-slash": attack.google.issuer + "/",
        "hostile": attack.hostile["evil"].url,
    }[iss]
    response = browser.callback(_replaced(callback, "iss", other))
    assert refused(response, browser) == (400, "IssuerMismatch")


def test_state_of_one_provider_at_another_providers_callback(attack: Attack) -> None:
    browser = attack.browser()
    callback = browser.authorize(browser.start("google"), ALICE)
    moved = callback.replace("/oidc/callback/google", "/oidc/callback/corp")
    moved = _replaced(moved, "iss", attack.corp.issuer)
    assert refused(browser.callback(moved), browser) == (400, "LoginProviderMismatch")


def test_idp_error_access_denied(attack: Attack) -> None:
    browser, query = attack.started("google")
    response = attack.callback(
        browser,
        "google",
        error="access_denied",
        error_description="The user cancelled",
        state=query["state"],
        iss=attack.google.issuer,
    )
    assert refused(response, browser) == (403, "IdentityProviderError")
    assert "access_denied" in response.text and "The user cancelled" in response.text


def test_idp_error_text_is_bounded_and_escaped(attack: Attack) -> None:
    browser, query = attack.started("google")
    response = attack.callback(
        browser,
        "google",
        error="<script>alert(1)</script>" + "x" * 100,
        error_description="Call +1 555 0100 <b>now</b>\n" + "y" * 300,
        state=query["state"],
        iss=attack.google.issuer,
    )
    assert refused(response, browser) == (502, "IdentityProviderError")
    assert "unknown_error" in response.text
    assert "<script>alert" not in response.text and "Call +1" not in response.text


def test_repeated_parameters(attack: Attack) -> None:
    browser = attack.browser()
    callback = browser.authorize(browser.start("google"), ALICE)
    response = browser.callback(callback + "&code=second-code")
    assert refused(response, browser) == (400, "MalformedCallback")


# -- the back channel (hostile provider) ----------------------------------------------------


def _sign_in_with(
    attack: Attack, mint: Callable[[HostileIssuer, OidcProvider, str], str]
) -> tuple[Browser, httpx.Response]:
    evil = attack.hostile["evil"]
    browser, query = attack.started("evil")
    evil.tokens(mint(evil, attack.google, query["nonce"]))
    response = attack.callback(browser, "evil", code="c0de", state=query["state"], iss=evil.url)
    return browser, response


def test_hostile_setup_accepts_a_valid_token(attack: Attack) -> None:
    """The control: everything right, the login succeeds (so each refusal below is one rule)."""
    browser, response = _sign_in_with(
        attack, lambda evil, _, nonce: evil.minter.id_token("mallory", nonce=nonce)
    )
    assert response.status_code == 303 and sets_session(response)
    assert browser.signed_in()


TOKENS: dict[str, tuple[Callable[[HostileIssuer, OidcProvider, str], str], int, str]] = {
    "nonce-mismatch": (lambda e, _, n: e.minter.id_token(nonce="x" + n), 403, "NonceMismatch"),
    "nonce-missing": (lambda e, _, n: e.minter.id_token(), 403, "NonceMismatch"),
    "another-issuer": (
        lambda _, google, n: google.id_token(ALICE, aud="evil-app", nonce=n),
        403,
        "IdTokenIssuerMismatch",
    ),
    "another-key": (
        lambda e, _, n: hostile.foreign_key(e.minter, nonce=n),
        403,
        "InvalidIdentityToken",
    ),
    "another-key-same-kid": (
        lambda e, _, n: hostile.foreign_key(e.minter, kid_in_jwks=True, nonce=n),
        403,
        "InvalidIdentityToken",
    ),
    "aud-another-registered-client": (
        lambda e, _, n: e.minter.id_token(aud="other-app", nonce=n),
        403,
        "IdTokenAudienceMismatch",
    ),
    "azp-another-client": (
        lambda e, _, n: e.minter.id_token(aud=["evil-app", "other-app"], azp="other-app", nonce=n),
        403,
        "IdTokenAudienceMismatch",
    ),
    "aud-unregistered": (
        lambda e, _, n: e.minter.id_token(aud="stranger", nonce=n),
        403,
        "IDPRejectedClaim",
    ),
    "expired": (lambda e, _, n: hostile.expired(e.minter, nonce=n), 403, "ExpiredTokenException"),
    "alg-none": (lambda e, _, n: hostile.alg_none(e.minter, nonce=n), 403, "InvalidIdentityToken"),
    "not-a-jwt": (lambda e, _, n: "not.a-jwt", 403, "InvalidIdentityToken"),
}


@pytest.mark.parametrize("case", sorted(TOKENS))
def test_hostile_id_token(attack: Attack, case: str) -> None:
    mint, status, code = TOKENS[case]
    browser, response = _sign_in_with(attack, mint)
    assert refused(response, browser) == (status, code)


def _json(body: Any, status: int = 200) -> Callable[[], Response]:
    return lambda: JSONResponse(body, status_code=status)


ANSWERS: dict[str, tuple[Callable[[], Response], int, str]] = {
    "http-500": (lambda: PlainTextResponse("boom", 500), 502, "TokenEndpointUnavailable"),
    "html-200": (lambda: PlainTextResponse("<html>", 200), 502, "TokenEndpointUnavailable"),
    "redirect": (
        lambda: RedirectResponse("https://evil.example/token", 307),
        502,
        "TokenEndpointUnavailable",
    ),
    "oversized": (
        _json({"access_token": "a" * 200_000, "token_type": "Bearer"}),
        502,
        "TokenEndpointUnavailable",
    ),
    "bad-expires-in": (
        _json({"access_token": "a", "token_type": "Bearer", "expires_in": "soon", "id_token": "x"}),
        502,
        "TokenEndpointUnavailable",
    ),
    "no-id-token": (_json({"access_token": "a", "token_type": "Bearer"}), 502, "NoIdToken"),
    "id-token-not-a-string": (
        _json({"access_token": "a", "token_type": "Bearer", "id_token": 7}),
        502,
        "NoIdToken",
    ),
    "invalid-grant": (_json({"error": "invalid_grant"}, 400), 400, "TokenExchangeRefused"),
}


@pytest.mark.parametrize("case", sorted(ANSWERS))
def test_broken_token_endpoint(attack: Attack, case: str, caplog: pytest.LogCaptureFixture) -> None:
    answer, status, code = ANSWERS[case]
    evil = attack.hostile["evil"]
    browser, query = attack.started("evil")
    evil.answer = answer
    with caplog.at_level(logging.DEBUG):
        response = attack.callback(
            browser, "evil", code="secret-code-42", state=query["state"], iss=evil.url
        )
    assert refused(response, browser) == (status, code)
    # What the servers logged (this thread is the browser, whose own URLs hold the code).
    logged = "\n".join(
        r.getMessage() for r in caplog.records if r.threadName != threading.current_thread().name
    )
    assert "OIDC login via evil refused" in logged
    for secret in (SECRET, "secret-code-42"):
        assert secret not in response.text
        assert secret not in logged


def test_token_endpoint_down(attack: Attack) -> None:
    browser, query = attack.started("down")
    down = attack.hostile["down"]
    response = attack.callback(browser, "down", code="c", state=query["state"], iss=down.url)
    assert refused(response, browser) == (502, "TokenEndpointUnavailable")
    assert "Hostile down" in response.text


@pytest.mark.parametrize(("name", "auth"), [("evil", "basic"), ("posty", "post")])
def test_code_is_redeemed_with_the_verifier_and_client_auth(
    attack: Attack, name: str, auth: str
) -> None:
    """PKCE S256 verifier and the client authentication the provider supports."""
    issuer = attack.hostile[name]
    browser, query = attack.started(name)
    issuer.tokens(issuer.minter.id_token("mallory", nonce=query["nonce"]))
    with issuer.lock:
        issuer.requests.clear()
    response = attack.callback(browser, name, code="the-code", state=query["state"], iss=issuer.url)
    assert response.status_code == 303
    [(form, authorization)] = issuer.requests
    assert form["grant_type"] == "authorization_code"
    assert form["code"] == "the-code"
    assert form["redirect_uri"] == f"{attack.url}/oidc/callback/{name}"
    assert s256(form["code_verifier"]) == query["code_challenge"]
    assert 43 <= len(form["code_verifier"]) <= 128
    if auth == "basic":
        assert authorization is not None and authorization.startswith("Basic ")
        assert "client_secret" not in form
    else:
        assert authorization is None
        assert form["client_id"] == f"{name}-app" and form["client_secret"] == SECRET


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("liar", "https://accounts.example.com"),
        ("gone", "HTTP 503"),
        ("plain", "authorization_endpoint"),
        ("nopkce", "PKCE"),
    ],
)
def test_unusable_discovery(attack: Attack, name: str, detail: str) -> None:
    browser = attack.browser()
    for path in (f"/oidc/login/{name}", f"/oidc/callback/{name}?code=c&state=s"):
        response = browser.http.get(f"{attack.url}{path}")
        assert refused(response, browser) == (502, "OidcDiscoveryFailed")
        assert f"Hostile {name}" in response.text and detail in response.text


def test_refusal_pages_show_no_secret(attack: Attack) -> None:
    evil = attack.hostile["evil"]
    browser, query = attack.started("evil")
    evil.tokens(evil.minter.id_token(nonce="wrong"))
    response = attack.callback(browser, "evil", code="c0de-xyz", state=query["state"], iss=evil.url)
    assert response.status_code == 403
    for secret in (SECRET, "c0de-xyz", query["state"], query["nonce"]):
        assert secret not in response.text
    assert json.dumps(evil.requests[-1][0]).count("c0de-xyz") == 1  # it did reach the IdP


def test_discovery_outage_serves_last_known_good_then_fails_closed(attack: Attack) -> None:
    """Like key sets: a provider down past the TTL is tolerated for last_known_good_seconds
    (defaults: 3600 s fresh, 21600 s more), then its logins are refused."""
    flaky = attack.hostile["flaky"]
    browser = attack.browser()
    before = attack.clock.offset
    try:
        assert browser.http.get(f"{attack.url}/oidc/login/flaky").status_code == 302
        flaky.overrides["status"] = 503
        attack.clock.offset = before + 3600 + 60
        asked = flaky.discoveries
        assert browser.http.get(f"{attack.url}/oidc/login/flaky").status_code == 302
        assert flaky.discoveries == asked + 1  # it did try, and kept the old document
        attack.clock.offset = before + 3600 + 21600 + 120
        response = browser.http.get(f"{attack.url}/oidc/login/flaky")
        assert refused(response, browser) == (502, "OidcDiscoveryFailed")
        assert "HTTP 503" in response.text
        # Within refresh_interval_seconds (30 s) of that attempt, the provider is not asked.
        asked = flaky.discoveries
        assert browser.http.get(f"{attack.url}/oidc/login/flaky").status_code == 502
        assert flaky.discoveries == asked
    finally:
        attack.clock.offset = before
        flaky.overrides.pop("status", None)


def test_concurrent_cold_logins_share_one_discovery_fetch(attack: Attack) -> None:
    """Logins arriving while the document is being fetched wait for that fetch."""
    cold = attack.hostile["cold"]

    async def many() -> list[str]:
        async with httpx.AsyncClient() as http:
            discovery = ProviderDiscovery(OidcSettings(), SystemClock(), http)
            found = await asyncio.gather(*(discovery.metadata(cold.url) for _ in range(8)))
            return [metadata.token_endpoint for metadata in found]

    assert asyncio.run(many()) == [f"{cold.url}/token"] * 8
    assert cold.discoveries == 1
