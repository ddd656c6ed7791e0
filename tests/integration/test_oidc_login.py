"""OIDC sign-in for people against a live broker and live fixture OIDC providers.

The broker runs under uvicorn on loopback; the fixture issuers (``idp_fixtures.oidc``) run
in their own server thread and are reached over real HTTP (discovery, login page, token
endpoint, JWKS). httpx with a cookie jar plays the browser and follows each redirect by
hand, so every hop (302 to the provider, the provider's login form, the callback, the 303
to the role picker) is asserted.

The helpers here (:func:`oidc_config`, :class:`Browser`, :class:`LoginSetup`,
:func:`reason`) are shared with ``tests/security/test_oidc_login_attacks.py``.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
import yaml

from broker.app import create_app
from broker.config import load_config
from idp_fixtures import Client, OidcProvider, OidcServer, User, serve_in_thread
from tests.integration.conftest import DEV, OffsetClock, bind_loopback, start_server, stop_server
from tests.integration.test_people import _csrf
from tests.integration.test_web_identity import _trust

ALICE = "110000000000000000001"
"""Google subjects are numeric strings."""
BOB = "110000000000000000002"
GOOGLE_READER = f"arn:aws:iam::{DEV}:role/GoogleReader"
GOOGLE_ADMIN = f"arn:aws:iam::{DEV}:role/GoogleAdmin"
COGNITO_READER = f"arn:aws:iam::{DEV}:role/CognitoReader"
COGNITO_ADMIN = f"arn:aws:iam::{DEV}:role/CognitoAdmin"
ROLE_ARN = re.compile(r'<code class="role-arn">([^<]+)</code>')
SESSION_COOKIE = "sts-broker"


def oidc_config(
    public_url: str,
    *,
    providers: list[dict[str, Any]],
    logins: dict[str, Any],
    roles: dict[str, Any],
) -> dict[str, Any]:
    """A broker config with DEV trusting ``providers`` and signing people in via ``logins``."""
    return {
        "public_url": public_url,
        "token_keys": [{"id": "oidc1", "secret": base64.b64encode(os.urandom(32)).decode()}],
        "login": {"providers": logins},
        "accounts": {
            DEV: {"alias": "dev", "oidc_providers": providers, "roles": roles},
        },
    }


def start_broker(config: dict[str, Any], folder: Path, sock: Any) -> tuple[str, Any, OffsetClock]:
    path = folder / "broker.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    clock = OffsetClock()
    url, running = start_server(create_app(load_config(path), clock=clock), sock)
    return url, running, clock


def reason(response: httpx.Response) -> str:
    """The stable reason code an error page shows."""
    found = re.search(r"Reason code: <code>([^<]*)</code>", response.text)
    assert found is not None, response.text[:500]
    return found.group(1)


def sets_session(response: httpx.Response) -> bool:
    return any(
        value.startswith(f"{SESSION_COOKIE}=") for value in response.headers.get_list("set-cookie")
    )


@dataclass
class Browser:
    """httpx with a cookie jar, redirects followed by hand (each hop is asserted)."""

    broker: str
    http: httpx.Client = field(default_factory=lambda: httpx.Client(follow_redirects=False))

    def start(self, name: str, return_to: str | None = None) -> str:
        """``/oidc/login/NAME``: the authorization URL the broker redirects to."""
        query = f"?{urlencode({'return_to': return_to})}" if return_to else ""
        response = self.http.get(f"{self.broker}/oidc/login/{name}{query}")
        assert response.status_code == 302, response.text[:500]
        return response.headers["location"]

    def authorize(self, authorization_url: str, user: str) -> str:
        """Sign in at the fixture provider's login page as ``user``; the callback URL."""
        page = self.http.get(authorization_url)
        assert page.status_code == 200, page.text[:500]
        assert 'name="sub"' in page.text
        form = dict(parse_qsl(urlsplit(authorization_url).query)) | {"sub": user}
        endpoint = authorization_url.split("?", 1)[0]
        answer = self.http.post(endpoint, data=form)
        assert answer.status_code == 303, answer.text[:500]
        callback: str = answer.headers["location"]
        assert callback.startswith(f"{self.broker}/oidc/callback/")
        return callback

    def callback(self, url: str) -> httpx.Response:
        return self.http.get(url)

    def sign_in(self, name: str, user: str, return_to: str | None = None) -> httpx.Response:
        """The whole login; the broker's answer to the callback."""
        return self.callback(self.authorize(self.start(name, return_to), user))

    def roles(self) -> list[str]:
        """The role ARNs the role picker offers this browser's session."""
        page = self.http.get(f"{self.broker}/roles")
        assert page.status_code == 200, page.status_code
        return ROLE_ARN.findall(page.text)

    def assume(self, role_arn: str) -> httpx.Response:
        """``POST /assume`` for 15 min credentials, with the role picker's CSRF token."""
        page = self.http.get(f"{self.broker}/roles")
        return self.http.post(
            f"{self.broker}/assume",
            data={
                "csrf_token": _csrf(page.text),
                "role": role_arn,
                "duration": "900",
                "target": "credentials",
            },
            headers={"origin": self.broker},
        )

    def signed_in(self) -> bool:
        """True when ``/roles`` shows a picker (200), False when it sends to sign-in (303)."""
        status = self.http.get(f"{self.broker}/roles").status_code
        assert status in (200, 303)
        return status == 200


@dataclass
class LoginSetup:
    """A running broker and fixture provider, and the browsers opened against it."""

    url: str
    idp: OidcServer
    clock: OffsetClock
    opened: list[Browser] = field(default_factory=list)

    @property
    def google(self) -> OidcProvider:
        return self.idp.issuer("google")

    def browser(self) -> Browser:
        """A new browser (empty cookie jar), closed when the module's broker stops."""
        browser = Browser(self.url)
        self.opened.append(browser)
        return browser

    def close(self) -> None:
        for browser in self.opened:
            browser.http.close()


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoginSetup]:
    sock = bind_loopback()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with serve_in_thread() as idp:
        google = idp.add_issuer(
            "google",
            users=[
                User(ALICE, email="alice@example.com", name="Alice"),
                # An address the provider never verified: not a name, not a condition key.
                User(BOB, email="bob@example.com", claims={"email_verified": False}),
            ],
            clients=[
                Client("broker-web", (f"{url}/oidc/callback/google",), secret="web-secret"),
                Client("broker-narrow", (f"{url}/oidc/callback/narrow",), secret="n-secret"),
            ],
        )
        cognito = idp.add_issuer(
            "cognito",
            users=[
                User(
                    "carol",
                    email="carol@example.com",
                    claims={"cognito:roles": [COGNITO_READER], "cognito:username": "carol.c"},
                ),
                User("dave", email="dave@example.com"),
                User("erin", email="erin@example.com", claims={"cognito:roles": COGNITO_ADMIN}),
            ],
            # A public client: PKCE is its only proof at the token endpoint.
            clients=[Client("cognito-app", (f"{url}/oidc/callback/cognito",))],
        )
        config = oidc_config(
            url,
            providers=[
                {
                    "url": google.issuer,
                    "kind": "google",
                    "client_ids": ["broker-web", "broker-narrow"],
                },
                {"url": cognito.issuer, "kind": "generic", "client_ids": ["cognito-app"]},
            ],
            logins={
                "google": {
                    "label": "Google",
                    "oidc": {
                        "url": google.issuer,
                        "client_id": "broker-web",
                        "client_secret": "web-secret",
                    },
                },
                "narrow": {
                    "label": "Google (readers only)",
                    "oidc": {
                        "url": google.issuer,
                        "client_id": "broker-narrow",
                        "client_secret": "n-secret",
                    },
                    "roles": [f"arn:aws:iam::{DEV}:role/*Reader"],
                },
                "cognito": {
                    "label": "Cognito",
                    "oidc": {
                        "url": cognito.issuer,
                        "client_id": "cognito-app",
                        "roles_claim": "cognito:roles",
                        "session_name_claim": "cognito:username",
                    },
                },
            },
            roles={
                "GoogleReader": {"trust_policy": _trust("accounts.google.com")},
                "GoogleAdmin": {
                    "trust_policy": _trust(
                        "accounts.google.com",
                        {"StringEquals": {"accounts.google.com:email": "alice@example.com"}},
                    )
                },
                "CognitoReader": {
                    "trust_policy": _trust(
                        f"arn:aws:iam::{DEV}:oidc-provider/{cognito.issuer.split('://')[1]}"
                    )
                },
                "CognitoAdmin": {
                    "trust_policy": _trust(
                        f"arn:aws:iam::{DEV}:oidc-provider/{cognito.issuer.split('://')[1]}"
                    )
                },
            },
        )
        broker_url, running, clock = start_broker(
            config, tmp_path_factory.mktemp("oidc-login"), sock
        )
        setup = LoginSetup(url=broker_url, idp=idp, clock=clock)
        try:
            yield setup
        finally:
            setup.close()
            stop_server(running)


def test_google_login_reaches_the_role_picker(people: LoginSetup) -> None:
    browser = people.browser()
    assert not browser.signed_in()
    authorization = browser.start("google")
    parts = urlsplit(authorization)
    query = dict(parse_qsl(parts.query))
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{people.google.issuer}/authorize"
    assert query["response_type"] == "code"
    assert query["client_id"] == "broker-web"
    assert query["redirect_uri"] == f"{people.url}/oidc/callback/google"
    assert query["scope"] == "openid email profile"
    assert query["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", query["code_challenge"])
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", query["state"])
    assert len(query["nonce"]) >= 32 and query["nonce"] != query["state"]
    # The verifier never leaves the broker: nothing in the URL is it or derives from it
    # except the S256 challenge.
    assert set(query) == {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
    }

    done = browser.callback(browser.authorize(authorization, ALICE))
    assert done.status_code == 303
    assert done.headers["location"] == "/roles"
    assert sets_session(done)
    page = browser.http.get(f"{people.url}/roles")
    assert page.status_code == 200
    assert "alice@example.com" in page.text
    assert sorted(ROLE_ARN.findall(page.text)) == [GOOGLE_ADMIN, GOOGLE_READER]


def test_signed_in_person_gets_credentials_with_the_email_as_session_name(
    people: LoginSetup,
) -> None:
    browser = people.browser()
    assert browser.sign_in("google", ALICE).status_code == 303
    answer = browser.assume(GOOGLE_READER)
    assert answer.status_code == 200, answer.text[:500]
    assert f"arn:aws:sts::{DEV}:assumed-role/GoogleReader/alice@example.com" in answer.text


def test_unverified_email_is_neither_the_name_nor_a_condition(people: LoginSetup) -> None:
    browser = people.browser()
    assert browser.sign_in("google", BOB).status_code == 303
    page = browser.http.get(f"{people.url}/roles")
    # Shown by subject, and GoogleAdmin's email condition cannot match an unverified address.
    assert BOB in page.text and "bob@example.com" not in page.text
    assert ROLE_ARN.findall(page.text) == [GOOGLE_READER]


def test_roles_patterns_of_the_login_narrow_the_offer(people: LoginSetup) -> None:
    browser = people.browser()
    done = browser.sign_in("narrow", ALICE)
    assert done.status_code == 303
    # Same person, same trust policies as via "google": the login's patterns drop GoogleAdmin.
    assert browser.roles() == [GOOGLE_READER]


def test_roles_claim_narrows_the_offer(people: LoginSetup) -> None:
    browser = people.browser()
    assert browser.sign_in("cognito", "carol").status_code == 303
    # Both Cognito roles trust the provider; the token's cognito:roles lists only one.
    assert browser.roles() == [COGNITO_READER]


@pytest.mark.parametrize("user", ["dave", "erin"])
def test_missing_or_malformed_roles_claim_offers_no_role(people: LoginSetup, user: str) -> None:
    """dave has no cognito:roles claim, erin has a string instead of a list: fail closed."""
    browser = people.browser()
    assert browser.sign_in("cognito", user).status_code == 303
    assert browser.signed_in()
    assert browser.roles() == []


def test_session_name_claim_and_public_client(people: LoginSetup) -> None:
    """cognito-app has no secret (PKCE only); the session name comes from cognito:username."""
    browser = people.browser()
    assert browser.sign_in("cognito", "carol").status_code == 303
    answer = browser.assume(COGNITO_READER)
    assert answer.status_code == 200, answer.text[:500]
    assert "assumed-role/CognitoReader/carol.c" in answer.text


@pytest.mark.parametrize(
    ("return_to", "lands"),
    [
        ("/cli", "/cli"),
        ("https://evil.example/roles", "/roles"),
        ("//evil.example", "/roles"),
        ("/logout", "/roles"),
    ],
)
def test_return_to_is_kept_only_when_allow_listed(
    people: LoginSetup, return_to: str, lands: str
) -> None:
    browser = people.browser()
    done = browser.sign_in("google", ALICE, return_to=return_to)
    assert done.status_code == 303
    assert done.headers["location"] == lands


def test_two_tabs_sign_in_at_once(people: LoginSetup) -> None:
    """Two logins started by one browser both finish (one login cookie, two handles)."""
    browser = people.browser()
    first = browser.authorize(browser.start("google"), ALICE)
    second = browser.authorize(browser.start("cognito"), "carol")
    assert browser.callback(first).status_code == 303
    assert browser.callback(second).status_code == 303
    assert browser.roles() == [COGNITO_READER]


def test_discovery_is_cached(people: LoginSetup) -> None:
    """Logins do not each refetch the provider's discovery document."""
    browser = people.browser()
    browser.start("google")  # fetched by now, whichever test ran first
    seen: list[str] = []
    original = people.google.discovery

    def counting() -> dict[str, Any]:
        seen.append("discovery")
        return original()

    people.google.discovery = counting
    try:
        for _ in range(3):
            browser.start("google")
    finally:
        del people.google.discovery
    assert seen == []
