"""Steps of the demo as a person clicks them, shared by the browser tests.

Elements are found the way a person finds them (button and link names, labels) plus the
few form fields the pages' contract names (``role`` on each role's form), so a restyled
page keeps these steps working.
"""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import Demo, Screenshots

DEV = "111111111111"
PROD = "222222222222"
ALICE = "Alice Example (alice@example.com)"
BOB = "Bob Example (bob@example.com)"


def role_arn(account: str, name: str) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


def provider_button(page: Page, label: str) -> Locator:
    """The sign-in page's button for a login provider (a link styled as a button)."""
    return page.get_by_role("link", name=re.compile(rf"^\s*{re.escape(label)}\b"))


def pick_user(page: Page, shot: Screenshots, who: str, step: str) -> None:
    """On a fixture IdP's login page: sign in as ``who`` (its button text)."""
    button = page.get_by_role("button", name=f"Sign in as {who}")
    expect(button).to_be_visible()
    shot(page, step)
    button.click()


def sign_in(page: Page, demo: Demo, shot: Screenshots, label: str, who: str) -> None:
    """From the sign-in page through a demo IdP to the role picker."""
    page.goto(demo.at("/"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, "signin")
    provider_button(page, label).click()
    pick_user(page, shot, who, "idp-login")
    page.wait_for_url(demo.at("/roles"))
    expect(page.get_by_role("heading", name="Choose a role")).to_be_visible()


def role_form(page: Page, arn: str) -> Locator:
    """The role picker's form for one role."""
    return page.locator("form").filter(has=page.locator(f'input[name="role"][value="{arn}"]'))


def text_lines(element: Locator) -> int:
    """How many lines the element's text is laid out on (1: it did not wrap)."""
    return int(
        element.evaluate(
            """(el) => {
                const range = document.createRange();
                range.selectNodeContents(el);
                const rects = [...range.getClientRects()].filter((r) => r.width > 0);
                return new Set(rects.map((r) => Math.round(r.bottom))).size;
            }"""
        )
    )


def font_size(element: Locator) -> str:
    return str(element.evaluate("(el) => getComputedStyle(el).fontSize"))
