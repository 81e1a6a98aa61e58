"""Two app processes (``manage.py runserver``) on free ports, sharing the test database and this process's Redis.

The processes come from bench/harness.py, the harness the fault, soak and timing scripts and the
benchmark start their servers with. Needs a database other processes can open (PostgreSQL): the
tests that use it run in CI's PostgreSQL + Redis pass.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from bench.harness import Reply, Runserver, cookies_of

NETWORK_TIMEOUT = 10
STARTUP_TIMEOUT = 20

__all__ = ["NETWORK_TIMEOUT", "Reply", "Runserver", "cookies_of", "shared_database_url", "two_servers"]


def shared_database_url() -> str:
    """The URL of the test database (skips the test when it is not one other processes can open)."""
    db = connection.settings_dict
    if connection.vendor != "postgresql":
        pytest.skip("the servers need a database that other processes can open (the Redis pass uses PostgreSQL)")
    credentials = quote(db["USER"] or "postgres", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextmanager
def two_servers(*, threaded: bool = False, **extra_env: str) -> Iterator[list[Runserver]]:
    """Servers "a" and "b" (DEBUG on, emails kept in memory); ``threaded`` keeps runserver's request
    threads, so that each server also races with itself. ``extra_env`` overrides settings."""
    cache = settings.CACHES["default"]
    env = {
        **os.environ,
        "DEBUG": "true",
        "DATABASE_URL": shared_database_url(),
        "CONN_MAX_AGE": "0",
        "REDIS_URL": cache["LOCATION"],
        "CACHE_KEY_PREFIX": cache["KEY_PREFIX"],
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    started: list[Runserver] = []
    try:
        for name in ("a", "b"):
            started.append(Runserver(env, name, threaded=threaded, timeout=STARTUP_TIMEOUT))
        for server in started:
            try:
                server.wait_until_ready()
            except RuntimeError as error:
                pytest.fail(str(error))
        yield started
    finally:
        for server in started:
            server.stop()
