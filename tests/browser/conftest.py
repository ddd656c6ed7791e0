"""Real Chromium against the demo: ``config/demo.yaml`` served by uvicorn on a free port.

The broker is built from the very file the README's quick start serves, with only
``STS_BROKER_PUBLIC_URL`` pointed at the port it got, so the demo IdPs mounted in it
(``/_demo/saml``, ``/_demo/oidc/google``) and the broker's self-fetch of their metadata and
keys are what a person clicking through the demo gets. Chromium is Debian's binary
driven by Playwright through ``executable_path`` (Playwright's own browser downloads are
not used), launched once per test module; each test gets a fresh context (no cookies).

Without Playwright or Chromium these tests skip with the reason; with
``STS_BROKER_REQUIRE_BROWSER=1`` (set by ``.ci/run``) they fail instead, so CI never
passes by skipping them. Every page a test visits is saved as a screenshot under
``tests/artifacts/screenshots/`` (or ``$STS_BROKER_ARTIFACTS/screenshots/``), and the
page of a failing test is saved as ``...-failed.png``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from broker.app import create_app
from broker.config import load_config
from tests.integration.conftest import bind_loopback, start_server, stop_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "config" / "demo.yaml"
REQUIRE_ENV = "STS_BROKER_REQUIRE_BROWSER"
CHROMIUM_ENV = "STS_BROKER_CHROMIUM"
ARTIFACTS_ENV = "STS_BROKER_ARTIFACTS"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
EVIL_ORIGIN = "https://evil.example"
"""Where an open redirect would send the browser; answered locally, never resolved."""
TIMEOUT_MS = 20_000


def unavailable(reason: str) -> NoReturn:
    """Skip with ``reason``, or fail when the environment says a browser is required."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1, so this is a failure)", pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str | None:
    """``$STS_BROKER_CHROMIUM``, else the first Chromium-like binary on ``PATH``."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured if Path(configured).is_file() else None
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def screenshot_dir() -> Path:
    base = os.environ.get(ARTIFACTS_ENV)
    return (Path(base) if base else ROOT / "tests" / "artifacts") / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test module.

    Not session-wide: Playwright's sync API runs an event loop in this thread while it is
    open, and later tests calling ``asyncio.run`` would find it running.
    """
    try:
        from playwright.sync_api import Error, sync_playwright  # noqa: PLC0415
    except ImportError:
        unavailable("Playwright is not installed: pip install -e '.[test]'")
    configured = os.environ.get(CHROMIUM_ENV)
    path = chromium_path()
    if configured and path is None:
        unavailable(f"${CHROMIUM_ENV} is {configured!r}, which is not a file")
    if path is None:
        unavailable(
            f"no Chromium found ({', '.join(CHROMIUM_NAMES)} on PATH, or ${CHROMIUM_ENV}): "
            "apt-get install chromium"
        )
    with sync_playwright() as playwright:
        try:
            # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
            launched = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        except Error as exc:
            unavailable(f"Chromium at {path} did not start: {exc.message.splitlines()[0]}")
        try:
            yield launched
        finally:
            launched.close()


@dataclass(frozen=True)
class Demo:
    """The demo broker as a browser sees it."""

    url: str

    def at(self, path: str) -> str:
        return f"{self.url}{path}"


@pytest.fixture(scope="session")
def demo() -> Iterator[Demo]:
    sock = bind_loopback()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = load_config(DEMO_CONFIG, environ={"STS_BROKER_PUBLIC_URL": url})
    _, running = start_server(create_app(config), sock)
    try:
        yield Demo(url)
    finally:
        stop_server(running)


class Screenshots:
    """Numbered full-page screenshots of one test: ``{test}-{n:02d}-{step}.png``."""

    def __init__(self, folder: Path, test_name: str) -> None:
        self.folder = folder
        self.prefix = re.sub(r"[^A-Za-z0-9_.-]+", "-", test_name).strip("-")
        self.taken: list[Path] = []

    def __call__(self, page: Page, step: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.prefix}-{len(self.taken) + 1:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


@pytest.fixture(scope="session")
def screenshots_folder() -> Path:
    """The screenshot folder, emptied of the last run's pictures (only ours: ``*.png``)."""
    folder = screenshot_dir()
    for old in folder.glob("*.png"):
        old.unlink()
    return folder


@pytest.fixture
def shot(screenshots_folder: Path, request: pytest.FixtureRequest) -> Screenshots:
    return Screenshots(screenshots_folder, request.node.name)


DESKTOP = (1100, 800)
PHONE = (375, 740)
SIZES = {"desktop": DESKTOP, "phone": PHONE}
"""The two widths every new page is looked at (and photographed) in."""


@contextmanager
def open_page(
    browser: Browser,
    shot: Screenshots,
    request: pytest.FixtureRequest,
    size: tuple[int, int],
    *,
    javascript: bool = True,
) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies) of ``size``; a failing test's last
    page is saved as a screenshot."""
    width, height = size
    context = browser.new_context(
        viewport={"width": width, "height": height}, java_script_enabled=javascript
    )
    # Were a redirect ever to leave the broker for evil.example, it lands on this page
    # (checked by URL in the tests) instead of waiting on DNS.
    context.route(
        f"{EVIL_ORIGIN}/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body="<h1>evil</h1>"),
    )
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    try:
        yield tab
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed and not tab.is_closed():
            shot(tab, "failed")
        context.close()


@pytest.fixture
def page(browser: Browser, shot: Screenshots, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies), laptop-sized unless the test is
    marked ``@pytest.mark.viewport(width, height)``."""
    marker = request.node.get_closest_marker("viewport")
    with open_page(browser, shot, request, marker.args if marker else DESKTOP) as tab:
        yield tab


@pytest.fixture(params=sorted(SIZES))
def sized_page(
    browser: Browser, shot: Screenshots, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """:func:`page`, once at desktop and once at phone width (the test id says which)."""
    with open_page(browser, shot, request, SIZES[request.param]) as tab:
        yield tab


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    """Keep the call phase's report on the item, so ``page`` can tell a failure apart."""
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "viewport(width, height): the browser page's size")
