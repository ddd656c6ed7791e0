"""The pages of issue 14 in real Chromium, at desktop and phone width, with screenshots:
the device-code and approval pages (driven by the keyboard), ``login --all`` clicked
through with the CLI's answer page, the 404 and error pages, the console's countdown and
its way to Credentials, the credentials page's one-shell-at-a-time tabs (remembered), and
everything but the Copy buttons with JavaScript off.

The CLI is a real process with its own HOME, AWS files and ``$XDG_CONFIG_HOME``; the real
AWS CLI then uses the profiles it wrote, with no region in its environment.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.conftest import DESKTOP, Demo, Screenshots, open_page
from tests.browser.flows import (
    ALICE,
    DEV,
    PROD,
    font_size,
    pick_user,
    provider_button,
    role_arn,
    role_form,
    sign_in,
)
from tests.integration.cli_setup import CliHome, read_until, url_in

WAITING = "Waiting for you to approve"


@pytest.fixture
def user(user: CliHome) -> CliHome:
    """A fresh machine: no region anywhere but in the profiles the CLI writes."""
    user.env.pop("AWS_DEFAULT_REGION")
    return user


def _fits(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def _beside(radio: Locator, label: Locator) -> None:
    """The label is to the right of its radio button, on the same line, not below it."""
    r, lab = radio.bounding_box(), label.bounding_box()
    assert r is not None and lab is not None
    assert lab["x"] >= r["x"] + r["width"], (r, lab)
    assert lab["y"] < r["y"] + r["height"] and r["y"] < lab["y"] + lab["height"], (r, lab)


def _styled(page: Page) -> None:
    """The broker's stylesheet is applied (the card has its own background and border)."""
    card = page.locator(".card").first
    assert card.evaluate("(el) => getComputedStyle(el).backgroundColor") != "rgba(0, 0, 0, 0)"
    assert card.evaluate("(el) => getComputedStyle(el).borderTopStyle") == "solid"


def test_device_and_approval_pages_by_keyboard(
    sized_page: Page, demo: Demo, shot: Screenshots, user: CliHome
) -> None:
    page = sized_page
    proc = user.start(
        "login", "--broker", demo.url, "--provider", "corp", "--profile", "kbd", "--no-browser"
    )
    said = read_until(proc, WAITING)
    prompt = re.search(r"open (\S+)\nand enter the code:\s+(\S+)", said)
    assert prompt is not None, said
    verification, user_code = prompt.groups()

    page.goto(verification)
    provider_button(page, "Corp SSO").click()
    pick_user(page, shot, ALICE, "idp-login")
    page.wait_for_url(demo.at("/cli/device"))
    field = page.get_by_label(re.compile("^Code shown by"))
    # A proper code field: focused, large, monospace, as wide as the card.
    expect(field).to_be_focused()
    assert float(font_size(field).removesuffix("px")) >= 24
    assert "monospace" in field.evaluate("(el) => getComputedStyle(el).fontFamily")
    assert _fits(page)
    shot(page, "device")
    page.keyboard.type(user_code.lower().replace("-", " "))  # any case, any separator
    shot(page, "device-typed")
    page.keyboard.press("Enter")

    # The approval page: the code to compare, then the roles with labels beside radios.
    expect(page.get_by_role("heading", name="Approve CLI sign-in")).to_be_visible()
    expect(page.locator(".user-code")).to_have_text(user_code)
    radios = page.locator('input[type="radio"][name="role"]')
    expect(radios).to_have_count(3)
    for i in range(3):
        radio = radios.nth(i)
        _beside(radio, page.locator(f'label[for="{radio.get_attribute("id")}"]'))
    expect(radios.first).to_be_checked()
    expect(page.get_by_role("heading", name=re.compile(rf"dev \({DEV}\)"))).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile(rf"prod \({PROD}\)"))).to_be_visible()
    assert _fits(page)
    radios.first.focus()
    page.keyboard.press("ArrowDown")  # the second role: dev's ReadOnly
    expect(radios.nth(1)).to_be_checked()
    shot(page, "approve")
    page.keyboard.press("Enter")  # the form's first button: Approve

    expect(page.get_by_role("heading", name="Approved")).to_be_visible()
    expect(page.get_by_text("You can close this tab")).to_be_visible()
    assert _fits(page)
    shot(page, "approved")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"Signed in as arn:aws:sts::{DEV}:assumed-role/ReadOnly/alice@example.com" in err


def test_configure_then_login_all_clicked_through(
    sized_page: Page, demo: Demo, shot: Screenshots, user: CliHome
) -> None:
    page = sized_page
    configured = user.run("configure", "--broker", demo.url, "--provider", "corp")
    assert configured.returncode == 0, configured.stderr
    proc = user.start("login", "--all")
    url = url_in(read_until(proc, WAITING), demo.at("/cli/authorize?"))
    page.goto(url)
    pick_user(page, shot, ALICE, "idp-login")
    page.wait_for_url(re.compile(rf"^{re.escape(demo.at('/cli/authorize?'))}"))
    expect(page.locator(".cli-question")).to_contain_text("all 3 roles below")
    expect(page.locator(".cli-all-roles .role")).to_have_count(3)
    assert _fits(page)
    shot(page, "approve-all")
    page.get_by_role("button", name="Approve").click()

    # The CLI's own page, on its loopback port, in the broker's style.
    page.wait_for_url(re.compile(r"^http://127\.0\.0\.1:\d+/callback\?"))
    expect(page.get_by_role("heading", name="Signed in")).to_be_visible()
    expect(page.get_by_text("You can close this tab")).to_be_visible()
    page.wait_for_load_state()
    _styled(page)
    assert _fits(page)
    shot(page, "cli-callback")

    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "3 profiles written" in err
    sessions = {
        "dev-Dev": f"arn:aws:sts::{DEV}:assumed-role/Dev/alice@example.com",
        "dev-ReadOnly": f"arn:aws:sts::{DEV}:assumed-role/ReadOnly/alice@example.com",
        "prod-ReadOnly": f"arn:aws:sts::{PROD}:assumed-role/ReadOnly/alice@example.com",
    }
    assert not any(k in user.env for k in ("AWS_REGION", "AWS_DEFAULT_REGION"))
    for profile, arn in sessions.items():
        assert user.caller(profile) == arn


def test_not_found_and_error_pages(sized_page: Page, demo: Demo, shot: Screenshots) -> None:
    page = sized_page
    answer = page.goto(demo.at("/no/such/page"))
    assert answer is not None and answer.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(page.locator(".status")).to_have_text("404")
    expect(page.get_by_text("There is no page at /no/such/page.")).to_be_visible()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    _styled(page)
    assert _fits(page)
    shot(page, "404")

    answer = page.goto(demo.at("/cli/authorize?port=80"))
    assert answer is not None and answer.status == 400
    expect(page.get_by_role("heading", name="Invalid CLI sign-in request")).to_be_visible()
    expect(page.get_by_text("port must be a number from 1024 to 65535")).to_be_visible()
    _styled(page)
    assert _fits(page)
    shot(page, "error")


def _alice_opens(page: Page, demo: Demo, shot: Screenshots, target: str) -> None:
    """alice signs in with Corp SSO and clicks ``target`` (Console, Credentials) for Dev."""
    sign_in(page, demo, shot, "Corp SSO", ALICE)
    role_form(page, role_arn(DEV, "Dev")).get_by_role("button", name=target).click()


def test_console_counts_down_and_leads_to_credentials(
    sized_page: Page, demo: Demo, shot: Screenshots
) -> None:
    page = sized_page
    _alice_opens(page, demo, shot, "Console")
    page.wait_for_url(re.compile(rf"^{re.escape(demo.at('/console'))}"))
    countdown = page.locator("[data-countdown-text]")
    for _ in range(2):  # filled in, then ticking
        expect(countdown).not_to_have_text(countdown.inner_text())
    expect(countdown).to_have_text(re.compile(r"^\(in (\d+:)?\d\d:\d\d\)$"))
    assert _fits(page)
    shot(page, "console")

    page.get_by_role("button", name="Credentials").click()
    expect(page.get_by_role("heading", name="Credentials for Dev")).to_be_visible()
    expect(page.locator(".session-arn")).to_have_text(
        f"arn:aws:sts::{DEV}:assumed-role/Dev/alice@example.com"
    )


def _shell_block(page: Page, shell: str) -> Locator:
    return page.locator(f"pre#{shell}")


def test_credentials_page_shows_one_shell_at_a_time_and_remembers_it(
    sized_page: Page, demo: Demo, shot: Screenshots
) -> None:
    page = sized_page
    _alice_opens(page, demo, shot, "Credentials")
    expect(page.get_by_role("heading", name="Credentials for Dev")).to_be_visible()
    page.wait_for_load_state()
    bash, fish, powershell = (_shell_block(page, s) for s in ("bash", "fish", "powershell"))
    expect(bash).to_be_visible()
    expect(fish).to_be_hidden()
    expect(powershell).to_be_hidden()
    box = bash.bounding_box()
    height = page.viewport_size["height"] if page.viewport_size else 0
    assert box is not None
    if page.viewport_size == {"width": DESKTOP[0], "height": DESKTOP[1]}:
        assert box["y"] + box["height"] <= height, "the keys are not above the fold"
    else:
        assert box["y"] < height, "the keys do not start above the fold"
    assert _fits(page)
    # The tabs and the Copy button share one row: no tab is pushed onto a line of its own.
    tops = []
    for name in ("bash", "fish", "powershell"):
        tab = page.locator(f'label[for="shell-{name}"]').bounding_box()
        assert tab is not None
        tops.append(tab["y"])
    assert max(tops) - min(tops) < 5, tops
    shot(page, "credentials")

    page.locator('label[for="shell-fish"]').click()
    expect(fish).to_be_visible()
    expect(bash).to_be_hidden()
    expect(fish).to_contain_text("set -gx AWS_ACCESS_KEY_ID ")
    page.locator("#shell-fish").focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#shell-powershell")).to_be_checked()
    expect(powershell).to_be_visible()
    shot(page, "credentials-powershell")

    # Back to the role picker and Credentials again: the shell chosen last is shown.
    page.get_by_role("link", name="Switch role").click()
    role_form(page, role_arn(DEV, "ReadOnly")).get_by_role("button", name="Credentials").click()
    expect(page.get_by_role("heading", name="Credentials for ReadOnly")).to_be_visible()
    expect(powershell).to_be_visible()
    expect(bash).to_be_hidden()


def test_the_pages_work_without_javascript(
    browser: Browser, demo: Demo, shot: Screenshots, request: pytest.FixtureRequest
) -> None:
    with open_page(browser, shot, request, DESKTOP, javascript=False) as page:
        page.goto(demo.at("/"))
        provider_button(page, "Google").click()
        pick_user(page, shot, ALICE, "idp-login")
        page.wait_for_url(demo.at("/roles"))
        role_form(page, role_arn(DEV, "Dev")).get_by_role("button", name="Credentials").click()
        expect(page.get_by_role("heading", name="Credentials for Dev")).to_be_visible()
        # Tabs are radio buttons and CSS: they switch with no script; Copy needs one.
        expect(_shell_block(page, "bash")).to_be_visible()
        page.locator('label[for="shell-powershell"]').click()
        expect(_shell_block(page, "powershell")).to_be_visible()
        expect(_shell_block(page, "bash")).to_be_hidden()
        expect(page.get_by_role("button", name="Copy")).to_have_count(0)
        shot(page, "credentials-no-js")

        page.get_by_role("link", name="Open console").click()
        expect(page.get_by_role("heading", name="Console")).to_be_visible()
        expect(page.locator("time.expires")).to_contain_text("UTC")  # the time, no countdown
        page.get_by_role("button", name="Credentials").click()
        expect(page.get_by_role("heading", name="Credentials for Dev")).to_be_visible()

        page.goto(demo.at("/cli/device"))
        page.get_by_label(re.compile("^Code shown by")).fill("BCDF-GHJK")
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_text("No waiting terminal has this code")).to_be_visible()
        shot(page, "device-no-js")
