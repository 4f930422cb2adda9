"""The browser tests' shared fixtures, a pytest plugin (``tests/conftest.py`` loads it): one
Streamlit server and one headless chromium per test process, however many browser test files run
in it (two sync Playwright sessions cannot share a thread), and a fresh page per test."""

from __future__ import annotations

import re

import pytest

from tests.browser_support import ARTIFACTS, VIEWPORT, screenshot


@pytest.fixture(scope="session")
def server():
    from browser.server import StreamlitServer

    app = StreamlitServer(ARTIFACTS / "streamlit.log").start()
    try:
        yield app
    finally:
        app.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    from browser.server import launch_chromium

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, server, request):
    """A fresh session on the app; its screenshot is saved whatever the outcome."""
    yield from _session(browser, server, request, "light")


@pytest.fixture
def themed_page(browser, server, request):
    """A fresh session on the app in the system theme ``request.param`` ("light" or "dark"), which
    Streamlit's default theme follows (parametrize with ``indirect=True``)."""
    yield from _session(browser, server, request, request.param)


def _session(browser, server, request, scheme: str):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True, color_scheme=scheme)
    page = context.new_page()
    page.set_default_timeout(30_000)
    js_errors: list[str] = []
    page.on("pageerror", lambda exc: js_errors.append(str(exc)))
    page.goto(server.url)
    try:
        yield page
    finally:
        try:
            screenshot(page, ARTIFACTS / f"{safe_name(request.node.name)}.png")
        finally:
            context.close()
    assert not js_errors, f"JavaScript errors in the page: {js_errors}"


def safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_")
