"""Concurrent refreshes of one refresh token (many tabs at once) on PostgreSQL: row locks make
exactly one request rotate the token, the others get an access token within the grace window,
and the session is left with exactly one live refresh token."""

from dataclasses import dataclass, field

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from accounts.exceptions import RefreshTokenInvalid
from accounts.flows.device_sessions import rotate_refresh_token, start_device_session
from accounts.models import DeviceSession, RotatedRefreshToken
from tests.support import races
from tests.support.accounts import sha256
from tests.support.api import ME_URL, REFRESH_URL

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs PostgreSQL row locks; runs in CI's PostgreSQL pass"
    ),
    pytest.mark.django_db(transaction=True),
]

THREADS = 20


@dataclass
class Outcomes:
    results: list = field(default_factory=list)  # what the calls returned, in call order
    errors: list = field(default_factory=list)  # what the others raised


def run_at_once(calls) -> Outcomes:
    """Run every callable in its own thread, released together by a barrier (a hung one fails the test)."""
    outcomes = Outcomes()
    for outcome in races.run_at_once(calls):
        if outcome.error is None:
            outcomes.results.append(outcome.value)
        else:
            outcomes.errors.append(outcome.error)
    return outcomes


def rotate(token: str):
    return lambda: rotate_refresh_token(refresh_token=token, ip_address="127.0.0.1", user_agent="tab")


def open_session(user):
    return start_device_session(user=user, ip_address="127.0.0.1", user_agent="pytest")


def assert_single_live_token(session_id, new_token: str) -> None:
    row = DeviceSession.objects.get(pk=session_id)
    assert row.revoked_at is None
    assert row.revoked_reason == ""
    assert row.refresh_token_hash == sha256(new_token)
    assert DeviceSession.objects.filter(refresh_token_hash=sha256(new_token)).count() == 1


def test_twenty_concurrent_rotations_of_one_token_rotate_it_once(user):
    issued = open_session(user)

    outcomes = run_at_once([rotate(issued.refresh_token) for _ in range(THREADS)])

    assert outcomes.errors == []
    assert len(outcomes.results) == THREADS
    rotated = [result for result in outcomes.results if result.refresh_token is not None]
    graced = [result for result in outcomes.results if result.refresh_token is None]
    assert len(rotated) == 1
    assert len(graced) == THREADS - 1
    assert all(result.access_token for result in outcomes.results)
    assert all(result.session.pk == issued.session.pk for result in outcomes.results)
    assert DeviceSession.objects.filter(user=user).count() == 1
    assert_single_live_token(issued.session.pk, rotated[0].refresh_token)
    assert list(RotatedRefreshToken.objects.values_list("token_hash", flat=True)) == [sha256(issued.refresh_token)]


def test_the_winning_token_keeps_working_after_the_race(user):
    issued = open_session(user)
    outcomes = run_at_once([rotate(issued.refresh_token) for _ in range(THREADS)])
    assert outcomes.errors == []
    (winner,) = [result.refresh_token for result in outcomes.results if result.refresh_token is not None]
    following = rotate_refresh_token(refresh_token=winner, ip_address=None, user_agent="tab")
    assert following.refresh_token not in (None, winner)
    assert_single_live_token(issued.session.pk, following.refresh_token)


def test_twenty_concurrent_http_refreshes_set_one_new_cookie(user):
    issued = open_session(user)
    cookie_name = settings.ACCOUNTS_REFRESH_COOKIE_NAME
    first = Client(enforce_csrf_checks=True)
    assert first.get("/api/auth/csrf/").status_code == 200
    csrf = first.cookies["csrftoken"].value
    clients = []
    for _ in range(THREADS):
        client = Client(enforce_csrf_checks=True)
        client.cookies["csrftoken"] = csrf
        client.cookies[cookie_name] = issued.refresh_token
        clients.append(client)

    def post(client):
        return lambda: client.post(REFRESH_URL, HTTP_X_CSRFTOKEN=csrf)

    outcomes = run_at_once([post(client) for client in clients])

    assert outcomes.errors == []
    statuses = sorted(response.status_code for response in outcomes.results)
    assert statuses == [200] * THREADS, [
        response.content for response in outcomes.results if response.status_code != 200
    ]
    new_cookies = [
        response.cookies[cookie_name].value
        for response in outcomes.results
        if cookie_name in response.cookies and response.cookies[cookie_name].value
    ]
    assert len(new_cookies) == 1
    # The others neither set nor clear the cookie: the tab keeps what the winner set.
    assert sum(cookie_name in response.cookies for response in outcomes.results) == 1
    assert_single_live_token(issued.session.pk, new_cookies[0])
    for response in outcomes.results[:3]:
        me = Client().get(ME_URL, HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
        assert me.status_code == 200


def test_two_sessions_refreshing_concurrently_do_not_interfere(user, make_user):
    mine = open_session(user)
    other_device = open_session(user)
    bobs = open_session(make_user(email="bob@example.com"))
    tokens = {issued.session.pk: issued.refresh_token for issued in (mine, other_device, bobs)}

    calls = [rotate(token) for token in tokens.values() for _ in range(THREADS // 2)]
    outcomes = run_at_once(calls)

    assert outcomes.errors == []
    for session_id in tokens:
        results = [result for result in outcomes.results if result.session.pk == session_id]
        assert len(results) == THREADS // 2
        rotated = [result.refresh_token for result in results if result.refresh_token is not None]
        assert len(rotated) == 1, session_id
        assert_single_live_token(session_id, rotated[0])
    assert DeviceSession.objects.filter(revoked_at__isnull=False).count() == 0


def test_concurrent_replays_of_a_stale_token_end_the_session_and_issue_nothing(user, settings):
    settings.ACCOUNTS_REFRESH_REUSE_GRACE = 0
    issued = open_session(user)
    newest = rotate_refresh_token(refresh_token=issued.refresh_token, ip_address=None, user_agent="tab")
    rotate_refresh_token(refresh_token=newest.refresh_token, ip_address=None, user_agent="tab")

    outcomes = run_at_once([rotate(issued.refresh_token) for _ in range(THREADS)])

    assert outcomes.results == []
    assert len(outcomes.errors) == THREADS
    assert all(isinstance(error, RefreshTokenInvalid) for error in outcomes.errors), outcomes.errors
    row = DeviceSession.objects.get(pk=issued.session.pk)
    assert row.revoked_at is not None
    assert row.revoked_reason == "refresh_reuse"
