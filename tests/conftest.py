"""Test-run environment, hooks and the fixtures shared by the whole suite (helpers live in tests/support/)."""

import os

import pytest


def pytest_configure(config):
    # The suite runs on the embedded default (local development settings)
    # unless DATABASE_URL / REDIS_URL point it at PostgreSQL and Redis.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "true")
    # The production outbox (emails and their tasks in the database); ``mailoutbox`` sends what is due.
    os.environ.setdefault("ACCOUNTS_EMAIL_QUEUE", "database")
    import django
    from django.conf import settings

    settings.INSTALLED_APPS  # noqa: B018  (load settings so pytest-django sets Django up)
    django.setup()

    # pytest-xdist runs the suite in workers gw0, gw1, ...: each keeps its Redis keys under its own
    # prefix, as pytest-django gives each its own test database. A worker has set Django up before
    # this hook (it inherits DJANGO_SETTINGS_MODULE), so the prefix is an override: its signal
    # rebuilds the cache handler that AccountsConfig.ready() already used.
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and "KEY_PREFIX" in settings.CACHES["default"]:
        from django.test.utils import override_settings

        prefix = f"{settings.CACHES['default']['KEY_PREFIX']}-{worker}"
        os.environ["CACHE_KEY_PREFIX"] = prefix
        override_settings(
            CACHES={**settings.CACHES, "default": {**settings.CACHES["default"], "KEY_PREFIX": prefix}}
        ).enable()

    from tests.support.hashers import use_fast_argon2

    # The product's Argon2id hasher at Argon2's lowest cost; tests marked real_argon2 get the real one.
    use_fast_argon2()


def pytest_sessionfinish(session, exitstatus):
    """In CI's PostgreSQL + Redis pass every test must run: a skip there means a test that only
    that pass can run (row locks, shared counters, two servers) silently did not."""
    if not (os.environ.get("CI") and os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        return
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: its reports reach the controller, which checks them all
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and exitstatus == pytest.ExitCode.OK:
        names = "\n  ".join(report.nodeid for report in skipped[:20])
        reporter.ensure_newline()
        reporter.write_line(f"{len(skipped)} test(s) skipped in the full-stack CI pass:\n  {names}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _argon2_cost(request):
    """The real Argon2id cost for tests marked ``real_argon2`` (the rest of the suite runs it cheaply)."""
    if request.node.get_closest_marker("real_argon2") is None:
        yield
        return
    from tests.support.hashers import real_argon2

    with real_argon2():
        yield


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters and revocation state (the cache's and this process's view) must not leak
    between tests."""
    from django.core.cache import cache

    from accounts.revocation import local_view

    # On Redis, only this run's keys (its prefix): clear() is FLUSHDB, which would also empty the
    # other xdist workers' keys, and anyone else's on the same database.
    clear_cache = (lambda: cache.delete_pattern("*")) if hasattr(cache, "delete_pattern") else cache.clear

    def clear() -> None:
        clear_cache()
        local_view.forget_all()

    clear()
    yield
    clear()


@pytest.fixture
def mailoutbox(mailoutbox):
    """pytest-django's outbox, read after the email outbox has sent everything due (as the worker would)."""
    from tests.support.mail import DeliveredMail

    return DeliveredMail()


@pytest.fixture
def password() -> str:
    from tests.support.accounts import STRONG_PASSWORD

    return STRONG_PASSWORD


@pytest.fixture
def make_user(db):
    """Create a user; verified unless told otherwise."""
    from django.utils import timezone

    from accounts.models import User
    from tests.support.accounts import STRONG_PASSWORD

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


@pytest.fixture
def admin_client(db, admin_user):
    """pytest-django's admin_client, signed in the way the product signs people in (a device session)."""
    from django.test import Client

    from tests.support.accounts import force_page_login

    client = Client()
    force_page_login(client, admin_user)
    return client


@pytest.fixture
def hash_counter(settings):
    """The configured password hasher, counting its work: ``hash_counter.calls`` (set it to 0 to start over)."""
    from tests.support.hashers import install_counting_hasher

    return install_counting_hasher(settings)


@pytest.fixture
def clock(request):
    """A stopped clock at the test module's START, moved only forward (tests/support/clocks.py)."""
    from tests.support.clocks import stopped_clock

    with stopped_clock(request.module.START) as stopped:
        yield stopped


@pytest.fixture(scope="session")
def oidc_provider():
    """A real OpenID Connect provider (django-oauth-toolkit) in its own process, one per xdist worker and run:
    ``Provider`` in tests/support/oidc.py."""
    from tests.support.oidc import start_provider

    with start_provider() as started:
        yield started


@pytest.fixture
def provider(oidc_provider):
    """The run's OpenID Connect provider with its fault mode off."""
    oidc_provider.reset()
    yield oidc_provider
