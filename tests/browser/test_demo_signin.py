"""The demo clicked through in Chromium: SAML to the console, Google-style OIDC to credentials.

Everything runs in one broker process built from ``config/demo.yaml``: the sign-in page,
the fixture IdPs under ``/_demo/``, the role picker, the console landing page and the
credentials page. The credentials the page shows are then used with boto3 against the
same broker, so "the page shows keys" means "the keys work".
"""

from __future__ import annotations

import re

import boto3
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Demo, Screenshots
from tests.browser.flows import (
    ALICE,
    BOB,
    DEV,
    PROD,
    font_size,
    pick_user,
    provider_button,
    role_arn,
    role_form,
    sign_in,
    text_lines,
)


def test_saml_corp_sso_to_the_console_landing_page(
    page: Page, demo: Demo, shot: Screenshots
) -> None:
    sign_in(page, demo, shot, "Corp SSO", ALICE)

    # Exactly the roles of alice's Role attribute, grouped under both accounts.
    for account, name in ((DEV, "Dev"), (DEV, "ReadOnly"), (PROD, "ReadOnly")):
        expect(role_form(page, role_arn(account, name))).to_have_count(1)
    expect(page.locator('form input[name="role"]')).to_have_count(3)
    expect(page.get_by_role("heading", name=re.compile(rf"dev.*{DEV}"))).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile(rf"prod.*{PROD}"))).to_be_visible()
    shot(page, "roles")

    role_form(page, role_arn(DEV, "Dev")).get_by_role("button", name="Console").click()

    page.wait_for_url(re.compile(rf"^{re.escape(demo.at('/console'))}"))
    expect(page.get_by_role("heading", name="Console")).to_be_visible()
    expect(
        page.get_by_text(f"arn:aws:sts::{DEV}:assumed-role/Dev/alice@example.com")
    ).to_be_visible()
    expect(page.get_by_text(role_arn(DEV, "Dev"), exact=True)).to_be_visible()
    # The header says who this console session is, and is no dead end.
    expect(page.locator("header")).to_contain_text("alice@example.com · Dev")
    expect(page.get_by_role("link", name="Switch role")).to_be_visible()
    shot(page, "console")

    page.get_by_role("button", name="Sign out of console").click()
    page.wait_for_url(demo.at("/"))
    expect(page.get_by_text("Continue as")).to_be_visible()  # the broker sign-in stays
    page.goto(demo.at("/console"))
    page.wait_for_url(demo.at("/"))  # the console session does not


def test_google_oidc_to_credentials_that_work_with_boto3(
    page: Page, demo: Demo, shot: Screenshots
) -> None:
    sign_in(page, demo, shot, "Google", ALICE)
    # Google users get what the trust policies grant: ReadOnly by audience, Dev by email.
    expect(page.locator('form input[name="role"]')).to_have_count(2)
    shot(page, "roles")

    role_form(page, role_arn(DEV, "ReadOnly")).get_by_role("button", name="Credentials").click()

    heading = page.get_by_role("heading", name=re.compile("Credentials for"))
    expect(heading).to_be_visible()
    page.wait_for_load_state()  # the stylesheet too: the layout is measured next
    assert text_lines(heading) == 1, "the title breaks before the role name"
    assert font_size(page.locator(".role-arn")) == font_size(page.locator(".session-arn"))
    # The copy blocks wrap instead of hiding the end of the session token off to the side.
    for block in page.locator("pre").all():
        assert block.evaluate("(el) => el.scrollWidth <= el.clientWidth")
    expiry = page.locator("dd").filter(has=page.locator("time"))
    # Two changes in a row: the script filled the countdown in (or it ticked), then it ticks.
    for _ in range(2):
        expect(expiry).not_to_have_text(expiry.inner_text())
    expect(page.get_by_role("button", name="Copy").first).to_be_visible()
    shot(page, "credentials")

    text = page.locator("body").inner_text()
    exports = dict(re.findall(r"^export (AWS_[A-Z_]+)='?([^'\s]+)'?$", text, re.MULTILINE))
    assert exports["AWS_ENDPOINT_URL_STS"] == demo.url
    sts = boto3.client(
        "sts",
        endpoint_url=exports["AWS_ENDPOINT_URL_STS"],
        region_name="us-east-1",
        aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=exports["AWS_SESSION_TOKEN"],
    )
    assert (
        sts.get_caller_identity()["Arn"]
        == f"arn:aws:sts::{DEV}:assumed-role/ReadOnly/alice@example.com"
    )

    page.get_by_role("link", name="Open console").click()
    page.wait_for_url(re.compile(rf"^{re.escape(demo.at('/console'))}"))
    expect(
        page.get_by_text(f"arn:aws:sts::{DEV}:assumed-role/ReadOnly/alice@example.com")
    ).to_be_visible()
    shot(page, "console")


def test_google_user_without_the_email_condition_gets_only_readonly(
    page: Page, demo: Demo, shot: Screenshots
) -> None:
    sign_in(page, demo, shot, "Google", BOB)
    expect(role_form(page, role_arn(DEV, "ReadOnly"))).to_have_count(1)
    expect(page.locator('form input[name="role"]')).to_have_count(1)
    shot(page, "roles")


def test_sign_in_page_remembers_the_last_provider(
    page: Page, demo: Demo, shot: Screenshots
) -> None:
    page.goto(demo.at("/"))
    provider_button(page, "Google").click()
    pick_user(page, shot, BOB, "idp-login")
    page.wait_for_url(demo.at("/roles"))

    page.goto(demo.at("/"))
    expect(page.get_by_text("Continue as")).to_be_visible()
    first = page.get_by_role("link").filter(has_text=re.compile("Corp SSO|Google")).first
    expect(first).to_contain_text("Google")
    expect(first).to_contain_text("Last used")
    shot(page, "signin-again")


def test_switch_role_without_a_new_idp_login_then_sign_out(
    page: Page, demo: Demo, shot: Screenshots
) -> None:
    sign_in(page, demo, shot, "Corp SSO", ALICE)
    role_form(page, role_arn(PROD, "ReadOnly")).get_by_role("button", name="Credentials").click()
    expect(page.get_by_text(f"arn:aws:sts::{PROD}:assumed-role/ReadOnly/")).to_be_visible()

    page.get_by_role("link", name="Switch role").click()
    page.wait_for_url(demo.at("/roles"))  # straight back: no IdP page on the way
    role_form(page, role_arn(DEV, "ReadOnly")).get_by_role("button", name="Console").click()
    expect(page.get_by_text(f"arn:aws:sts::{DEV}:assumed-role/ReadOnly/")).to_be_visible()

    page.get_by_role("link", name="Switch role").click()  # the console's header
    page.wait_for_url(demo.at("/roles"))
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.wait_for_url(demo.at("/"))
    expect(page.get_by_text("Continue as")).to_have_count(0)
    shot(page, "signed-out")
    page.goto(demo.at("/roles"))
    page.wait_for_url(demo.at("/"))  # no session: back to the sign-in page


@pytest.mark.viewport(375, 740)
def test_pages_fit_a_phone_screen(page: Page, demo: Demo, shot: Screenshots) -> None:
    def fits() -> bool:
        return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))

    def header_fits() -> None:
        brand = page.locator("header .brand")
        assert text_lines(brand) == 1, "the brand wraps in the header"
        for name in ("Sign out", "Switch role", "Sign out of console"):
            control = page.locator("header").get_by_text(name, exact=True)
            if control.count():
                assert text_lines(control) == 1, f"{name!r} wraps in the header"

    page.goto(demo.at("/"))
    assert fits(), "the sign-in page scrolls sideways at 375 px"
    shot(page, "signin")
    provider_button(page, "Corp SSO").click()
    expect(page.get_by_role("button", name=f"Sign in as {ALICE}")).to_be_visible()
    page.wait_for_load_state()
    assert fits(), "the demo IdP's page scrolls sideways at 375 px"
    pick_user(page, shot, ALICE, "idp-login")
    page.wait_for_url(demo.at("/roles"))
    assert fits(), "the role picker scrolls sideways at 375 px"
    header_fits()
    shot(page, "roles")
    role_form(page, role_arn(DEV, "Dev")).get_by_role("button", name="Credentials").click()
    expect(page.get_by_role("heading", name=re.compile("Credentials for"))).to_be_visible()
    page.wait_for_load_state()
    assert fits(), "the credentials page scrolls sideways at 375 px"
    header_fits()
    shot(page, "credentials")
    page.get_by_role("link", name="Open console").click()
    expect(page.get_by_role("button", name="Sign out of console")).to_be_visible()
    page.wait_for_load_state()
    assert fits(), "the console page scrolls sideways at 375 px"
    header_fits()
    shot(page, "console")
