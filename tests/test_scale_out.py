"""Concurrent refreshes of one session on two app processes leave one live refresh token, which every client holds.

Two real servers (``manage.py runserver`` subprocesses, threaded, so each also
races with itself) use the test database and this process's Redis. Each round
fires 10 refreshes of the same cookie at once (a Barrier), alternating between
the servers; the next round uses the cookie the round produced. After every
round there is still exactly one device session, live, whose stored hash is
that of the new cookie, and every one of the 10 answers handed out that same cookie. Runs only in
the PostgreSQL + Redis pass.
"""

import functools

import pytest
from django.conf import settings
from django.db import connection

from accounts.models import DeviceSession
from accounts.tokens import hash_token
from tests.support.races import run_at_once
from tests.support.servers import NETWORK_TIMEOUT, Runserver, cookies_of, two_servers

pytestmark = pytest.mark.skipif(
    not settings.REDIS_URL or connection.vendor != "postgresql",
    reason="needs PostgreSQL and Redis; runs in CI's PostgreSQL + Redis pass",
)

THREADS = 10
ROUNDS = 5
REFRESH_COOKIE = settings.ACCOUNTS_REFRESH_COOKIE_NAME


@pytest.fixture
def servers(transactional_db):
    # 50 refreshes of one session in seconds are the point here; runserver's threads race each server with itself.
    with two_servers(threaded=True, RATE_LIMIT_REFRESH_PER_SESSION="1000/m") as started:
        yield started


def _refresh(server: Runserver, cookie_header: str, csrf: str) -> tuple[int, str | None, str]:
    """(status, the new refresh cookie or None, body text): any answer, JSON or not (a DEBUG 500 page)."""
    reply = server.request(
        "POST", "/api/auth/refresh/", headers={"Cookie": cookie_header, "X-CSRFToken": csrf}, timeout=NETWORK_TIMEOUT
    )
    return reply.status, reply.cookies.get(REFRESH_COOKIE) or None, (reply.text or str(reply.body))[:300]


def _refresh_all_at_once(servers, cookie_header: str, csrf: str) -> list:
    calls = [functools.partial(_refresh, servers[index % 2], cookie_header, csrf) for index in range(THREADS)]
    return [
        outcome.value if outcome.error is None else (0, None, repr(outcome.error)) for outcome in run_at_once(calls)
    ]


@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_on_two_servers_leave_one_live_refresh_token(servers, make_user, password):
    user = make_user(email="scale-out@example.com")
    server_a, server_b = servers
    status, headers, body = server_a.request("POST", "/api/auth/login/", {"email": user.email, "password": password})
    assert status == 200, body
    refresh_token = cookies_of(headers)[REFRESH_COOKIE]
    status, headers, _body = server_b.request("GET", "/api/auth/csrf/")
    assert status == 200
    csrf = cookies_of(headers)[settings.CSRF_COOKIE_NAME]

    for round_number in range(ROUNDS):
        cookie_header = f"{settings.CSRF_COOKIE_NAME}={csrf}; {REFRESH_COOKIE}={refresh_token}"
        answers = _refresh_all_at_once(servers, cookie_header, csrf)

        statuses = [status for status, _token, _body in answers]
        assert statuses == [200] * THREADS, (round_number, answers)
        assert all('"access"' in body for _s, _t, body in answers)
        new_tokens = sorted({token for _s, token, _b in answers if token})
        assert len(new_tokens) == 1, f"round {round_number}: {len(new_tokens)} new refresh cookies handed out"
        assert all(token == new_tokens[0] for _s, token, _b in answers), f"round {round_number}: a client was left out"

        sessions = list(DeviceSession.objects.filter(user=user))
        assert len(sessions) == 1, f"round {round_number}: {len(sessions)} device sessions"
        assert sessions[0].revoked_at is None, f"round {round_number}: session ended ({sessions[0].revoked_reason})"
        assert sessions[0].refresh_token_hash == hash_token(new_tokens[0])
        refresh_token = new_tokens[0]

    # The last round's cookie still works.
    cookie_header = f"{settings.CSRF_COOKIE_NAME}={csrf}; {REFRESH_COOKIE}={refresh_token}"
    status, token, body = _refresh(server_b, cookie_header, csrf)
    assert status == 200, body
    assert token
