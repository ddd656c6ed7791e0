"""``sts-broker login`` with its browser step clicked in real Chromium against the demo.

``tests/integration/test_cli_login.py`` drives the same flows with httpx as the browser;
here the pages a person sees are the ones that must work: the demo SAML IdP's button, the
broker's confirmation page and its Approve button, the redirect to the CLI's loopback port
(which the confirmation page's CSP has to allow as a form target, or Chromium blocks it),
the CLI's own answer page, and the device flow's code form. The CLI is a real process with
its own HOME and AWS files; the real AWS CLI then uses the profiles it wrote.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, expect

from tests.browser.conftest import Demo, Screenshots
from tests.browser.flows import ALICE, DEV, pick_user, provider_button, role_arn
from tests.integration.cli_setup import CliHome, read_until, url_in

DEV_ROLE = role_arn(DEV, "Dev")
DEV_SESSION = f"arn:aws:sts::{DEV}:assumed-role/Dev/alice@example.com"
"""What the demo's Corp SSO makes of alice in Dev (session name = her email)."""
WAITING = "Waiting for you to approve"
"""The CLI's last line before it blocks on the browser (loopback) or on polling (device)."""


def _approve(page: Page, shot: Screenshots, step: str) -> None:
    """On the broker's confirmation page (signed in as alice, one role): click Approve."""
    expect(page.get_by_role("heading", name="Approve CLI sign-in")).to_be_visible()
    expect(page.locator(".who")).to_have_text(re.compile(r"Signed in as\s+alice@example\.com"))
    expect(page.locator("code.role-arn")).to_have_text(DEV_ROLE)
    shot(page, step)
    page.get_by_role("button", name="Approve").click()


def test_login_in_chromium_writes_profiles_the_aws_cli_uses_and_refreshes(
    page: Page, demo: Demo, shot: Screenshots, user: CliHome
) -> None:
    proc = user.start(
        "login", "--broker", demo.url, "--provider", "corp", "--role", DEV_ROLE,
        "--profile", "work",
    )  # fmt: skip
    url = url_in(read_until(proc, WAITING), demo.at("/cli/authorize?"))
    port = parse_qs(urlsplit(url).query)["port"][0]

    # No broker session yet: the CLI's URL leads through Corp SSO and back to the question.
    page.goto(url)
    pick_user(page, shot, ALICE, "idp-login")
    page.wait_for_url(re.compile(rf"^{re.escape(demo.at('/cli/authorize?'))}"))
    expect(page.locator(".cli-question")).to_have_text(
        f"Send credentials for Dev to the sts-broker CLI on this computer (port {port})?"
    )
    _approve(page, shot, "approve")

    # The broker's 303 takes Chromium to the CLI's listener, which answers the tab.
    page.wait_for_url(re.compile(rf"^http://127\.0\.0\.1:{port}/callback\?"))
    expect(page.get_by_role("heading", name="Signed in")).to_be_visible()
    expect(page.get_by_text("you can close this tab")).to_be_visible()
    shot(page, "cli-answer")

    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"Signed in as {DEV_SESSION}" in err
    assert out == ""
    # $BROWSER was asked to open exactly the URL Chromium was given.
    assert user.opened.read_text().splitlines() == [url]

    # Both profiles login writes: static keys, and credential_process.
    assert user.caller("work-static", demo.url) == DEV_SESSION
    assert user.caller("work", demo.url) == DEV_SESSION

    # The cached credentials expire: credential_process gets new ones with the refresh token.
    before = user.cache("work")
    expired = {
        **before,
        "credentials": {**before["credentials"], "Expiration": "2020-01-01T00:00:00Z"},
    }
    user.cache_file("work").write_text(json.dumps(expired))
    assert user.caller("work", demo.url) == DEV_SESSION
    after = user.cache("work")
    assert after["credentials"]["AccessKeyId"] != before["credentials"]["AccessKeyId"]
    assert after["refresh_token"] != before["refresh_token"]


def test_device_login_typed_into_chromium(
    page: Page, demo: Demo, shot: Screenshots, user: CliHome
) -> None:
    proc = user.start(
        "login", "--broker", demo.url, "--provider", "corp", "--role", DEV_ROLE,
        "--profile", "dev", "--no-browser",
    )  # fmt: skip
    said = read_until(proc, WAITING)
    prompt = re.search(r"open (\S+)\nand enter the code:\s+(\S+)", said)
    assert prompt is not None, said
    verification, user_code = prompt.groups()
    assert verification == demo.at("/cli/device")

    # Another device with no session: the sign-in page first, then back to the code form.
    page.goto(verification)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, "signin")
    provider_button(page, "Corp SSO").click()
    pick_user(page, shot, ALICE, "idp-login")
    page.wait_for_url(demo.at("/cli/device"))
    expect(page.get_by_role("heading", name="Connect a terminal")).to_be_visible()
    page.get_by_label(re.compile("^Code shown by")).fill(user_code)
    shot(page, "code-typed")
    page.get_by_role("button", name="Continue").click()

    # The confirmation names the code, for the person to match against the terminal.
    expect(page.locator(".user-code")).to_have_text(user_code)
    _approve(page, shot, "approve")
    expect(page.get_by_role("heading", name="Approved")).to_be_visible()
    expect(page.get_by_text("You can close this tab")).to_be_visible()
    shot(page, "approved")

    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"Signed in as {DEV_SESSION}" in err
    assert not user.opened.exists()  # --no-browser opens nothing
    assert user.caller("dev", demo.url) == DEV_SESSION
