"""Test-run environment and the fixtures shared by the whole suite."""

import os
import re

import pytest


def pytest_configure(config):
    # The suite runs on the embedded default (local development settings)
    # unless DATABASE_URL / REDIS_URL point it at PostgreSQL and Redis.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "true")
    import django
    from django.conf import settings

    settings.INSTALLED_APPS  # noqa: B018  (load settings so pytest-django sets Django up)
    django.setup()


def pytest_sessionfinish(session, exitstatus):
    """In CI's PostgreSQL + Redis pass every test must run: a skip there means a test that only
    that pass can run (row locks, shared counters, two servers) silently did not."""
    if not (os.environ.get("CI") and os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and exitstatus == pytest.ExitCode.OK:
        names = "\n  ".join(report.nodeid for report in skipped[:20])
        reporter.ensure_newline()
        reporter.write_line(f"{len(skipped)} test(s) skipped in the full-stack CI pass:\n  {names}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


STRONG_PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters and revocation state must not leak between tests."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def password() -> str:
    return STRONG_PASSWORD


@pytest.fixture
def make_user(db):
    """Create a user; verified unless told otherwise."""
    from django.utils import timezone

    from accounts.models import User

    def make(email="alice@example.com", password=STRONG_PASSWORD, name="Alice", verified=True, **extra):
        user = User.objects.create_user(email=email, password=password, name=name, **extra)
        if verified:
            user.email_verified_at = timezone.now()
            user.save(update_fields=["email_verified_at"])
        return user

    return make


@pytest.fixture
def user(make_user):
    return make_user()


_LINK = re.compile(r"https?://[^\s\"'<>]+")


def links_in(message) -> list[str]:
    """Every absolute link in an email's text body."""
    return _LINK.findall(message.body)


def token_from_link(link: str) -> str:
    return link.rstrip("/").rsplit("/", 1)[-1]


def force_page_login(client, user, *, user_agent: str = "pytest"):
    """Sign ``client`` in to the pages as ``user`` without the form, the way a real
    sign-in does: a Django session tied to a new device session (a page session
    without one is signed out). Returns the device session."""
    import time

    from accounts.flows.device_sessions import start_device_session
    from accounts.flows.signin import DEVICE_SESSION_KEY, PAGE_USE_KEY

    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    issued = start_device_session(user=user, ip_address="127.0.0.1", user_agent=user_agent, via="page")
    session = client.session
    session[DEVICE_SESSION_KEY] = str(issued.session.pk)
    session[PAGE_USE_KEY] = int(time.time())
    session.save()
    return issued.session


@pytest.fixture
def admin_client(db, admin_user):
    """pytest-django's admin_client, signed in the way the product signs people in (a device session)."""
    from django.test import Client

    client = Client()
    force_page_login(client, admin_user)
    return client
