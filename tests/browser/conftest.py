"""Browser-test fixtures: chromium through Playwright, the live server; the checks are in tests/support/browser.py.

Every test here is marked ``browser``. Without chromium (or axe-core, from
``npm ci --prefix tests/browser``) the tests are skipped locally and fail in CI.
The browser is Debian's chromium (never a Playwright download); the site is
pytest-django's ``live_server``, which runs in a thread of this process, so the
emails it sends land in ``django.core.mail.outbox``.
"""

import os
from pathlib import Path

import pytest

from tests.support.browser import (
    BROWSER_TESTS,
    CHROMIUM_ARGS,
    CSP_RECORDER,
    DESKTOP,
    instrument,
    missing_requirement,
)

# Playwright's sync API keeps an event loop in this thread; the tests still
# use the ORM synchronously (as pytest-playwright users do).
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if BROWSER_TESTS in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_requirements():
    problem = missing_requirement()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {problem}")
        pytest.skip(problem)


@pytest.fixture(scope="package")
def browser(browser_requirements):
    """One chromium for every browser test (each test gets fresh profiles: ``new_context``).
    Playwright's sync API keeps an event loop running in this thread while it is
    started; stopping it after this package keeps that loop away from the rest of the suite."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()
    playwright.stop()


@pytest.fixture
def site(live_server, transactional_db):
    """The live server's origin (http://localhost:<port>)."""
    return live_server.url


@pytest.fixture
def new_context(browser, site):
    """new_context(width=1280, height=800) -> a fresh browser profile (another device)."""
    contexts = []

    def make(width=DESKTOP["width"], height=DESKTOP["height"], **options):
        context = browser.new_context(viewport={"width": width, "height": height}, base_url=site, **options)
        context.set_default_timeout(10_000)
        context.add_init_script(CSP_RECORDER)
        context.on("page", instrument)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def context(new_context):
    return new_context()


@pytest.fixture
def page(context):
    return context.new_page()
