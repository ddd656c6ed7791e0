"""Attacks a browser makes possible, made in a real browser against the demo.

CSRF: a page on another origin (a second server on loopback, so it is even *same-site*
with the broker and the session cookie's ``SameSite=Lax`` does not stop the post) submits
a form to ``/assume`` while the victim is signed in. Open redirect: a sign-in link whose
``return_to`` points off the broker. Chromium sends whatever headers it really sends;
nothing is forged by hand.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.browser.conftest import EVIL_ORIGIN, Demo, Screenshots
from tests.browser.flows import ALICE, DEV, pick_user, role_arn, sign_in
from tests.integration.conftest import start_server, stop_server

CORP = f"arn:aws:iam::{DEV}:saml-provider/Corp"


def _attacker_app(target: str) -> Starlette:
    """Pages that post a role assumption to ``target`` as soon as they load.

    ``/`` is a plain page; ``/quiet`` also asks for no referrer, the usual trick to make
    a browser drop ``Referer`` (Chromium then sends ``Origin: null``).
    """

    def form_page(meta: str) -> str:
        fields = {
            "role": role_arn(DEV, "Dev"),
            "duration": "3600",
            "target": "credentials",
            "csrf_token": "guessed-token",
        }
        inputs = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
            for name, value in fields.items()
        )
        return (
            f"<!doctype html><html><head>{meta}<title>Win a prize</title></head><body>"
            f'<form id="f" method="post" action="{html.escape(target)}">{inputs}</form>'
            '<script>document.getElementById("f").submit()</script></body></html>'
        )

    async def plain(request: Request) -> HTMLResponse:
        return HTMLResponse(form_page(""))

    async def quiet(request: Request) -> HTMLResponse:
        return HTMLResponse(form_page('<meta name="referrer" content="no-referrer">'))

    return Starlette(routes=[Route("/", plain), Route("/quiet", quiet)])


@pytest.fixture(scope="module")
def attacker(demo: Demo) -> Iterator[str]:
    url, running = start_server(_attacker_app(demo.at("/assume")))
    try:
        yield url
    finally:
        stop_server(running)


@pytest.mark.parametrize("path", ["/", "/quiet"])
def test_cross_origin_form_post_to_assume_is_refused(
    page: Page, demo: Demo, attacker: str, shot: Screenshots, path: str
) -> None:
    sign_in(page, demo, shot, "Corp SSO", ALICE)

    with page.expect_response(demo.at("/assume")) as posted:
        page.goto(f"{attacker}{path}")

    assert posted.value.status == 403
    page.wait_for_url(demo.at("/assume"))
    expect(page.get_by_text("CrossOriginRequest")).to_be_visible()
    # The broker's own error page (stylesheet loaded), with a way back.
    expect(page.get_by_role("heading", name="Request refused")).to_be_visible()
    page.wait_for_load_state()
    assert "system-ui" in page.evaluate("getComputedStyle(document.body).fontFamily")
    expect(page.get_by_role("link", name="Sign in", exact=True)).to_be_visible()
    assert "AWS_SECRET_ACCESS_KEY" not in page.content()
    shot(page, "refused")
    # The refusal costs the victim nothing: the session still works.
    page.goto(demo.at("/roles"))
    expect(page.get_by_role("heading", name="Choose a role")).to_be_visible()


@pytest.mark.parametrize(
    ("start", "return_to"),
    [
        ("/login/corp", f"{EVIL_ORIGIN}/"),
        ("/login/corp", "//evil.example/roles"),
        ("/login/google", f"{EVIL_ORIGIN}/roles"),
        ("/login/google", "/\\evil.example/roles"),
        # The protocols' own start URLs, which the sign-in page's links lead to.
        (f"/saml/login?{urlencode({'provider': CORP})}", f"{EVIL_ORIGIN}/roles"),
        ("/oidc/login/google", "//evil.example/roles"),
    ],
)
def test_login_return_to_off_the_broker_lands_on_the_role_picker(
    page: Page, demo: Demo, shot: Screenshots, start: str, return_to: str
) -> None:
    joiner = "&" if "?" in start else "?"
    page.goto(demo.at(f"{start}{joiner}{urlencode({'return_to': return_to})}"))
    pick_user(page, shot, ALICE, "idp-login")

    # Wherever the login ends, once it has left the IdP and the protocol endpoints.
    page.wait_for_url(
        lambda url: (
            not url.startswith(demo.at("/_demo/"))
            and not url.startswith((demo.at("/saml/acs"), demo.at("/oidc/callback/")))
        )
    )
    assert page.url == demo.at("/roles")
    expect(page.get_by_role("heading", name="Choose a role")).to_be_visible()
    shot(page, "roles")
