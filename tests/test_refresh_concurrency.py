"""Concurrent refreshes of one refresh token (many tabs at once) on PostgreSQL: row locks make
exactly one request rotate the token, the others get the same successor within the grace window,
and the session is left with exactly one live refresh token, which every client holds."""

from dataclasses import dataclass, field

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from accounts.exceptions import RefreshTokenInvalid, RefreshTokenReused
from accounts.flows.device_sessions import rotate_refresh_token, start_device_session
from accounts.models import DeviceSession, RotatedRefreshToken, SecurityEvent
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
    held = {result.refresh_token for result in outcomes.results}
    assert len(held) == 1  # every client ends up holding the one live token
    assert held != {issued.refresh_token}
    assert all(result.access_token for result in outcomes.results)
    assert len({result.access_token for result in outcomes.results}) == THREADS
    assert all(str(result.session.pk) == str(issued.session.pk) for result in outcomes.results)
    assert DeviceSession.objects.filter(user=user).count() == 1
    assert_single_live_token(issued.session.pk, held.pop())
    assert list(RotatedRefreshToken.objects.values_list("token_hash", flat=True)) == [sha256(issued.refresh_token)]


def test_the_winning_token_keeps_working_after_the_race(user):
    issued = open_session(user)
    outcomes = run_at_once([rotate(issued.refresh_token) for _ in range(THREADS)])
    assert outcomes.errors == []
    (winner,) = {result.refresh_token for result in outcomes.results}
    following = rotate_refresh_token(refresh_token=winner, ip_address=None, user_agent="tab")
    assert following.refresh_token != winner
    assert_single_live_token(issued.session.pk, following.refresh_token)


def test_twenty_concurrent_http_refreshes_all_set_the_one_new_cookie(user):
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
    new_cookies = {response.cookies[cookie_name].value for response in outcomes.results}
    # Every tab's cookie jar gets the same live token, whichever answer arrives last.
    assert len(new_cookies) == 1
    assert all(client.cookies[cookie_name].value in new_cookies for client in clients)
    assert_single_live_token(issued.session.pk, new_cookies.pop())
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
        results = [result for result in outcomes.results if str(result.session.pk) == str(session_id)]
        assert len(results) == THREADS // 2
        held = {result.refresh_token for result in results}
        assert len(held) == 1, session_id
        assert_single_live_token(session_id, held.pop())
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


def test_concurrent_presentations_of_the_grandparent_token_within_the_window_end_the_session(user):
    issued = open_session(user)
    middle = rotate_refresh_token(refresh_token=issued.refresh_token, ip_address=None, user_agent="tab")
    rotate_refresh_token(refresh_token=middle.refresh_token, ip_address=None, user_agent="tab")

    outcomes = run_at_once([rotate(issued.refresh_token) for _ in range(THREADS)])

    assert outcomes.results == []
    assert all(isinstance(error, RefreshTokenInvalid) for error in outcomes.errors), outcomes.errors
    assert sum(isinstance(error, RefreshTokenReused) for error in outcomes.errors) >= 1
    assert DeviceSession.objects.get(pk=issued.session.pk).revoked_reason == "refresh_reuse"
    assert SecurityEvent.objects.filter(kind="refresh_reuse_detected").count() == 1


def test_a_thief_racing_the_owner_with_the_same_token_ends_the_session(user):
    """Concurrent presentations from two user agents: whoever loses the race to the other agent's
    rotation is reuse, so the session ends and neither keeps a working token."""
    issued = open_session(user)
    owner = [rotate(issued.refresh_token) for _ in range(THREADS // 2)]
    thief = [
        lambda: rotate_refresh_token(refresh_token=issued.refresh_token, ip_address="198.51.100.9", user_agent="curl")
        for _ in range(THREADS // 2)
    ]

    outcomes = run_at_once(owner + thief)

    assert any(isinstance(error, RefreshTokenReused) for error in outcomes.errors), outcomes.errors
    row = DeviceSession.objects.get(pk=issued.session.pk)
    assert row.revoked_reason == "refresh_reuse"
    for result in outcomes.results:
        with pytest.raises(RefreshTokenInvalid):
            rotate_refresh_token(refresh_token=result.refresh_token, ip_address=None, user_agent="tab")


def statements_of(call) -> list[tuple[str, bool]]:
    """Every statement ``call`` sends, and whether it ran inside a transaction (BEGIN and COMMIT
    are round trips of their own)."""
    seen: list[tuple[str, bool]] = []

    def record(execute, sql, params, many, context):
        seen.append((sql, connection.in_atomic_block))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        call()
    return seen


def test_an_http_refresh_is_one_database_round_trip(user):
    issued = open_session(user)
    client = Client(enforce_csrf_checks=True)
    assert client.get("/api/auth/csrf/").status_code == 200
    csrf = client.cookies["csrftoken"].value
    client.cookies[settings.ACCOUNTS_REFRESH_COOKIE_NAME] = issued.refresh_token
    responses = []

    statements = statements_of(lambda: responses.append(client.post(REFRESH_URL, HTTP_X_CSRFTOKEN=csrf)))

    assert responses[0].status_code == 200
    assert len(statements) == 1, statements
    assert statements[0][1] is False  # autocommit: no BEGIN, no COMMIT


def test_a_grace_answer_is_two_database_round_trips(user):
    issued = open_session(user)
    rotate_refresh_token(refresh_token=issued.refresh_token, ip_address=None, user_agent="tab")

    statements = statements_of(rotate(issued.refresh_token))

    assert len(statements) == 2, statements
    assert not any(in_transaction for _, in_transaction in statements)
