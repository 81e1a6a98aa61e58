"""Two app processes share rate-limit counters and session revocation through Redis.

Two real servers (``manage.py runserver`` subprocesses) use the test database
and the same Redis as this test process. Wrong sign-ins sent alternately to
either count against one limit, and a session ended on one server is refused
on the other at once. Runs only in the PostgreSQL + Redis pass.
"""

import time

import pytest
from django.conf import settings
from django_ratelimit.core import _get_window

from accounts.rate_limits import address_key
from tests.support.servers import cookies_of as _cookies
from tests.support.servers import two_servers

pytestmark = pytest.mark.skipif(
    not settings.REDIS_URL,
    reason="needs Redis; runs in CI's PostgreSQL + Redis pass",
)

WRONG_PASSWORD = "not the right passphrase at all"


@pytest.fixture
def servers():
    with two_servers() as started:
        yield started


def _address_with_time_to_spare(seconds: int = 60) -> str:
    """An address whose sign-in window (5 minutes, with a per-key offset) does not end during the test."""
    period = 5 * 60
    for number in range(100):
        email = f"shared{number}@example.com"
        if _get_window(address_key(email), period) - int(time.time()) >= seconds:
            return email
    raise AssertionError("no address with a window far enough from its end")


@pytest.mark.django_db(transaction=True)
def test_wrong_sign_ins_on_two_servers_count_against_one_limit(servers, make_user):
    assert settings.ACCOUNTS_RATE_LIMITS["sign_in_failures_per_account"] == "5/5m"
    email = _address_with_time_to_spare()
    make_user(email=email)
    credentials = {"email": email, "password": WRONG_PASSWORD}
    for attempt in range(5):
        status, _headers, body = servers[attempt % 2].request("POST", "/api/auth/login/", credentials)
        assert status == 401, (attempt, status, body)
        assert body["code"] == "invalid_credentials"
    for server in servers:
        status, headers, body = server.request("POST", "/api/auth/login/", credentials)
        assert status == 429, (server.base, status, body)
        assert body["code"] == "rate_limited"
        assert 1 <= int(headers["Retry-After"]) <= 300


@pytest.mark.django_db(transaction=True)
def test_a_session_ended_on_one_server_is_refused_on_the_other_at_once(servers, make_user, password):
    user = make_user(email="shared-session@example.com")
    server_a, server_b = servers

    status, headers, body = server_a.request("POST", "/api/auth/login/", {"email": user.email, "password": password})
    assert status == 200, body
    access = body["access"]
    refresh_cookie = _cookies(headers)[settings.ACCOUNTS_REFRESH_COOKIE_NAME]
    assert refresh_cookie

    status, _headers, body = server_b.request("GET", "/api/auth/me/", headers={"Authorization": f"Bearer {access}"})
    assert status == 200, body  # server B now holds "live" for this session in the shared cache
    assert body["email"] == user.email

    status, headers, _body = server_a.request("GET", "/api/auth/csrf/")
    assert status == 200
    csrf = _cookies(headers)[settings.CSRF_COOKIE_NAME]
    cookie_header = f"{settings.CSRF_COOKIE_NAME}={csrf}; {settings.ACCOUNTS_REFRESH_COOKIE_NAME}={refresh_cookie}"
    status, _headers, body = server_a.request(
        "POST", "/api/auth/logout/", headers={"Cookie": cookie_header, "X-CSRFToken": csrf}
    )
    assert status == 204, body

    status, _headers, body = server_b.request("GET", "/api/auth/me/", headers={"Authorization": f"Bearer {access}"})
    assert status == 401, body
    assert body["code"] == "session_ended"
