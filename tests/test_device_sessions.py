"""Device sessions and their rotating refresh tokens: hashed storage, rotation, reuse detection
and its grace window, idle and absolute expiry, deactivated users, the HTML sign-in and
sign-out that open and end a device session, ending sessions, and purging old auth data."""

from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client

from accounts.flows.account_status import deactivate_user
from accounts.flows.device_sessions import (
    end_user_sessions,
    live_sessions,
    start_device_session,
)
from accounts.flows.email_tokens import issue_token
from accounts.flows.password_reset import reset_password
from accounts.flows.signin import DEVICE_SESSION_KEY
from accounts.models import (
    DeviceSession,
    EmailVerificationToken,
    PasswordResetToken,
    RotatedRefreshToken,
    SecurityEvent,
    User,
)
from accounts.tokens import generate_token, hash_token, seal_successor, unseal_successor
from tests.support.accounts import STRONG_PASSWORD, sha256
from tests.support.api import CSRF_URL, REFRESH_URL, get_me
from tests.support.pages import browser as fresh_browser
from tests.support.pages import csrf_from_page

pytestmark = pytest.mark.django_db

API_LOGIN_URL = "/api/auth/login/"
SESSIONS_URL = "/api/auth/sessions/"
LOGIN_PAGE = "/accounts/login/"
LOGOUT_PAGE = "/accounts/logout/"
ACCOUNT_HOME = "/accounts/"
START = datetime(2031, 5, 1, 9, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
NEW_PASSWORD = "a completely different passphrase"


# --- Helpers ----------------------------------------------------------------------------


@pytest.fixture
def cookie_name(settings) -> str:
    return settings.ACCOUNTS_REFRESH_COOKIE_NAME


def django_settings():
    from django.conf import settings

    return settings


def open_session(user, **kwargs):
    return start_device_session(user=user, ip_address="203.0.113.7", user_agent="pytest-agent", **kwargs)


def spa_client(refresh_token: str | None = None) -> Client:
    """A browser tab of the SPA: it has the CSRF cookie and, optionally, a refresh cookie."""
    from django.conf import settings

    client = fresh_browser()
    assert client.get(CSRF_URL).status_code == 200
    if refresh_token is not None:
        client.cookies[settings.ACCOUNTS_REFRESH_COOKIE_NAME] = refresh_token
    return client


def post_refresh(client: Client, refresh_token: str | None = None, **extra):
    from django.conf import settings

    if refresh_token is not None:
        client.cookies[settings.ACCOUNTS_REFRESH_COOKIE_NAME] = refresh_token
    return client.post(REFRESH_URL, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value, **extra)


def set_refresh_cookie(response) -> str | None:
    """The refresh token a response sets, None if it sets none (an empty value clears it)."""
    from django.conf import settings

    morsel = response.cookies.get(settings.ACCOUNTS_REFRESH_COOKIE_NAME)
    return morsel.value if morsel is not None and morsel.value else None


def assert_cookie_cleared(response) -> None:
    from django.conf import settings

    morsel = response.cookies.get(settings.ACCOUNTS_REFRESH_COOKIE_NAME)
    assert morsel is not None
    assert morsel.value == ""
    assert str(morsel["max-age"]) == "0"


def assert_refresh_refused(response, code: str = "refresh_token_invalid") -> None:
    assert response.status_code == 401, response.content
    assert response.json()["code"] == code
    assert_cookie_cleared(response)


def session_row(issued) -> DeviceSession:
    return DeviceSession.objects.get(pk=issued.session.pk)


def rotate(client: Client) -> tuple[str, str]:
    """Refresh once; return (new refresh token, access token)."""
    response = post_refresh(client)
    assert response.status_code == 200, response.content
    new = set_refresh_cookie(response)
    assert new is not None
    return new, response.json()["access"]


def html_sign_in(client: Client, email: str = "alice@example.com", password: str = STRONG_PASSWORD, **extra):
    token = csrf_from_page(client, LOGIN_PAGE)
    return client.post(LOGIN_PAGE, {"email": email, "password": password, "csrfmiddlewaretoken": token}, **extra)


def redirects_to_login(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith(LOGIN_PAGE)


# --- Storage: only hashes ----------------------------------------------------------------------


def test_session_row_stores_only_the_hash_of_the_refresh_token(user, cookie_name):
    client = fresh_browser()
    response = client.post(
        API_LOGIN_URL, {"email": user.email, "password": STRONG_PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 200
    raw = set_refresh_cookie(response)
    assert raw is not None
    assert raw not in response.content.decode()  # never in a body either
    row = DeviceSession.objects.get(user=user)
    assert row.refresh_token_hash == sha256(raw)
    for column, value in DeviceSession.objects.filter(pk=row.pk).values().get().items():
        assert raw not in str(value), column


def test_rotated_tokens_are_remembered_only_by_hash(user):
    issued = open_session(user)
    client = spa_client(issued.refresh_token)
    new, _ = rotate(client)
    rotated = RotatedRefreshToken.objects.get(session_id=issued.session.pk)
    assert rotated.token_hash == sha256(issued.refresh_token)
    for table_row in (
        RotatedRefreshToken.objects.values().get(),
        DeviceSession.objects.filter(pk=issued.session.pk).values().get(),
    ):
        for value in table_row.values():
            assert issued.refresh_token not in str(value)
            assert new not in str(value)


def test_refresh_cookie_attributes(user, settings):
    issued = open_session(user)
    response = post_refresh(spa_client(issued.refresh_token))
    morsel = response.cookies[settings.ACCOUNTS_REFRESH_COOKIE_NAME]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/api/auth/"
    assert int(morsel["max-age"]) == settings.ACCOUNTS_REFRESH_ABSOLUTE_LIFETIME


# --- Rotation ------------------------------------------------------------------------------------


def test_every_refresh_sets_a_new_cookie_and_retires_the_old_one(user):
    issued = open_session(user)
    client = spa_client(issued.refresh_token)
    seen = [issued.refresh_token]
    for _ in range(3):
        new, access = rotate(client)
        assert new not in seen
        seen.append(new)
        row = session_row(issued)
        assert row.refresh_token_hash == sha256(new)
        assert all(row.refresh_token_hash != sha256(old) for old in seen[:-1])
        assert get_me(access).status_code == 200
    assert DeviceSession.objects.filter(user=user).count() == 1
    assert RotatedRefreshToken.objects.filter(session_id=issued.session.pk).count() == 3


def test_refresh_records_the_client_and_use(user):
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        traveller.shift(DAY)
        client = spa_client(issued.refresh_token)
        response = post_refresh(client, HTTP_USER_AGENT="NewBrowser/2.0", REMOTE_ADDR="198.51.100.9")
        assert response.status_code == 200
        row = session_row(issued)
        assert row.last_used_at == START + DAY
        assert row.rotated_at == START + DAY
        assert row.user_agent == "NewBrowser/2.0"
        assert row.ip_address == "198.51.100.9"
        assert row.created_at == START


def test_refresh_without_csrf_header_is_forbidden_and_rotates_nothing(user):
    issued = open_session(user)
    client = spa_client(issued.refresh_token)
    response = client.post(REFRESH_URL)
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"
    assert session_row(issued).refresh_token_hash == sha256(issued.refresh_token)


def test_refresh_with_a_wrong_csrf_header_is_forbidden(user):
    issued = open_session(user)
    client = spa_client(issued.refresh_token)
    response = client.post(REFRESH_URL, HTTP_X_CSRFTOKEN="x" * 32)
    assert response.status_code == 403
    assert session_row(issued).refresh_token_hash == sha256(issued.refresh_token)


def test_refresh_without_cookie_is_refused(user):
    assert_refresh_refused(post_refresh(spa_client()))


@pytest.mark.parametrize("cookie", ["garbage", "A" * 43, "A" * 44, "../../etc/passwd"])
def test_refresh_with_an_unknown_or_malformed_cookie_is_refused(user, cookie):
    issued = open_session(user)
    assert_refresh_refused(post_refresh(spa_client(), cookie))
    assert session_row(issued).revoked_at is None


def test_refresh_token_hash_in_the_cookie_is_refused(user):
    issued = open_session(user)
    assert_refresh_refused(post_refresh(spa_client(), sha256(issued.refresh_token)))


# --- Reuse detection -------------------------------------------------------------------------------


def test_reusing_a_rotated_token_after_the_grace_window_ends_the_session(user, settings):
    settings.ACCOUNTS_REFRESH_REUSE_GRACE = 0
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        client = spa_client(issued.refresh_token)
        traveller.shift(SECOND)
        newest, newest_access = rotate(client)
        assert get_me(newest_access).status_code == 200
        traveller.shift(SECOND)

        attacker = spa_client(issued.refresh_token)
        assert_refresh_refused(post_refresh(attacker), code="refresh_token_reused")

        row = session_row(issued)
        assert row.revoked_at == START + 2 * SECOND
        assert row.revoked_reason == "refresh_reuse"
        assert_refresh_refused(post_refresh(spa_client(newest)))
        response = get_me(newest_access)
        assert response.status_code == 401
        assert response.json()["code"] == "session_ended"
        response = get_me(issued.access_token)
        assert response.status_code == 401


def test_reuse_just_after_the_default_grace_window_ends_the_session(user):
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        newest, _ = rotate(spa_client(issued.refresh_token))
        traveller.shift(timedelta(seconds=10, microseconds=1))
        assert_refresh_refused(post_refresh(spa_client(issued.refresh_token)), code="refresh_token_reused")
        assert session_row(issued).revoked_reason == "refresh_reuse"
        assert_refresh_refused(post_refresh(spa_client(newest)))


def test_token_two_rotations_back_is_reuse_even_within_seconds(user):
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        client = spa_client(issued.refresh_token)
        traveller.shift(SECOND)
        rotate(client)
        traveller.shift(SECOND)
        newest, _ = rotate(client)
        traveller.shift(SECOND)  # well inside the grace window of the last rotation
        assert_refresh_refused(post_refresh(spa_client(issued.refresh_token)), code="refresh_token_reused")
        assert session_row(issued).revoked_reason == "refresh_reuse"
        assert_refresh_refused(post_refresh(spa_client(newest)))


def test_reuse_ends_only_that_session(user):
    with time_machine.travel(START, tick=False) as traveller:
        victim, other = open_session(user), open_session(user)
        rotate(spa_client(victim.refresh_token))
        traveller.shift(timedelta(seconds=11))
        assert_refresh_refused(post_refresh(spa_client(victim.refresh_token)), code="refresh_token_reused")
        assert session_row(other).revoked_at is None
        rotate(spa_client(other.refresh_token))


def test_replaying_the_reused_token_again_stays_refused(user, settings):
    settings.ACCOUNTS_REFRESH_REUSE_GRACE = 0
    issued = open_session(user)
    rotate(spa_client(issued.refresh_token))
    assert_refresh_refused(post_refresh(spa_client(issued.refresh_token)), code="refresh_token_reused")
    ended_at = session_row(issued).revoked_at
    assert_refresh_refused(post_refresh(spa_client(issued.refresh_token)))
    assert session_row(issued).revoked_at == ended_at  # ended once, not re-stamped


# --- The grace window: retries and concurrent tabs get the same successor -------------------------------


def test_just_rotated_token_within_the_grace_window_gets_the_same_successor(user):
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        first_tab = spa_client(issued.refresh_token)
        traveller.shift(SECOND)
        newest, _ = rotate(first_tab)
        traveller.shift(timedelta(seconds=5))

        second_tab = spa_client(issued.refresh_token)
        response = post_refresh(second_tab)
        assert response.status_code == 200
        assert set_refresh_cookie(response) == newest
        assert get_me(response.json()["access"]).status_code == 200

        row = session_row(issued)
        assert row.revoked_at is None
        assert row.refresh_token_hash == sha256(newest)
        assert DeviceSession.objects.filter(user=user).count() == 1
        assert RotatedRefreshToken.objects.filter(session_id=issued.session.pk).count() == 1

        newer, access = rotate(second_tab)  # the tab now holds the live token, and rotates it
        assert newer not in (newest, issued.refresh_token)
        assert get_me(access).status_code == 200


def test_lost_answer_then_retry_then_a_refresh_after_the_grace_window_succeeds(user):
    """A mobile client's refresh answer (and its Set-Cookie) is lost; the retry gets the cookie,
    and the client's next refresh, minutes later, is an ordinary rotation, not reuse."""
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        phone = spa_client(issued.refresh_token)
        traveller.shift(SECOND)
        answer = post_refresh(phone)
        assert answer.status_code == 200
        lost = set_refresh_cookie(answer)
        # The answer never arrived: the phone still holds the old token. (A fresh morsel, because
        # the test client shares the response's cookie objects with its jar.)
        phone.cookies = SimpleCookie({django_settings().ACCOUNTS_REFRESH_COOKIE_NAME: issued.refresh_token})
        phone.cookies.update(spa_client().cookies)

        traveller.shift(timedelta(seconds=3))
        retry = post_refresh(phone)
        assert retry.status_code == 200
        assert set_refresh_cookie(retry) == lost
        assert phone.cookies[django_settings().ACCOUNTS_REFRESH_COOKIE_NAME].value == lost

        traveller.shift(timedelta(minutes=4))
        later, access = rotate(phone)
        assert later != lost
        assert get_me(access).status_code == 200
        row = session_row(issued)
        assert row.revoked_at is None
        assert row.refresh_token_hash == sha256(later)
        assert not SecurityEvent.objects.filter(kind="refresh_reuse_detected").exists()


def test_grace_window_includes_its_last_second(user):
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        newest, _ = rotate(spa_client(issued.refresh_token))
        traveller.shift(timedelta(seconds=10))
        response = post_refresh(spa_client(issued.refresh_token))
        assert response.status_code == 200
        assert set_refresh_cookie(response) == newest
        assert session_row(issued).refresh_token_hash == sha256(newest)


def test_grace_answer_can_repeat_within_the_window(user):
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        newest, _ = rotate(spa_client(issued.refresh_token))
        for _ in range(3):
            traveller.shift(SECOND)
            response = post_refresh(spa_client(issued.refresh_token))
            assert response.status_code == 200
            assert set_refresh_cookie(response) == newest
        assert session_row(issued).refresh_token_hash == sha256(newest)
        assert session_row(issued).revoked_at is None


def test_grace_window_follows_the_setting(user, settings):
    settings.ACCOUNTS_REFRESH_REUSE_GRACE = 30
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        rotate(spa_client(issued.refresh_token))
        traveller.shift(timedelta(seconds=25))
        assert post_refresh(spa_client(issued.refresh_token)).status_code == 200
        traveller.shift(timedelta(seconds=6))
        assert_refresh_refused(post_refresh(spa_client(issued.refresh_token)), code="refresh_token_reused")


def test_grace_does_not_apply_to_an_ended_session(user):
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        rotate(spa_client(issued.refresh_token))
        end_user_sessions(user=user, reason="logout")
        traveller.shift(SECOND)
        assert_refresh_refused(post_refresh(spa_client(issued.refresh_token)))


def test_the_just_rotated_token_from_another_user_agent_within_the_grace_window_is_reuse(user):
    """The cookie left the browser: a thief who copied the token just before it rotated gets nothing."""
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        laptop = spa_client(issued.refresh_token)
        traveller.shift(SECOND)
        newest, newest_access = rotate(laptop)
        traveller.shift(SECOND)

        thief = spa_client(issued.refresh_token)
        response = post_refresh(thief, HTTP_USER_AGENT="curl/8.5")
        assert_refresh_refused(response, code="refresh_token_reused")
        assert set_refresh_cookie(response) is None

        row = session_row(issued)
        assert row.revoked_reason == "refresh_reuse"
        assert_refresh_refused(post_refresh(spa_client(newest)))
        assert get_me(newest_access).status_code == 401
        event = SecurityEvent.objects.get(kind="refresh_reuse_detected")
        assert event.detail["in_grace_from_another_client"] is True
        assert event.user_agent == "curl/8.5"


def test_a_retry_from_another_network_gets_the_successor_once_in_a_while(user):
    """A phone whose answer was lost may retry from another network (wifi to mobile) and keep its
    session; a token and user agent copied to another network cannot ride along every rotation."""
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        phone = spa_client(issued.refresh_token)
        traveller.shift(SECOND)
        first = set_refresh_cookie(post_refresh(phone, REMOTE_ADDR="198.51.100.20"))
        retry = post_refresh(spa_client(issued.refresh_token), REMOTE_ADDR="203.0.113.99")
        assert retry.status_code == 200
        assert set_refresh_cookie(retry) == first
        assert session_row(issued).split_replay_at == START + SECOND

        # Ten minutes later the same happens again: a rider, not a phone. Reuse.
        traveller.shift(timedelta(minutes=10))
        second = set_refresh_cookie(post_refresh(spa_client(first), REMOTE_ADDR="198.51.100.20"))
        ridden = post_refresh(spa_client(first), REMOTE_ADDR="203.0.113.99")
        assert_refresh_refused(ridden, code="refresh_token_reused")
        assert session_row(issued).revoked_reason == "refresh_reuse"
        assert_refresh_refused(post_refresh(spa_client(second), REMOTE_ADDR="198.51.100.20"))


def test_every_retry_of_one_rotation_from_the_new_network_counts_once(user):
    """Two tabs (or two retries) of a phone that moved from wifi to LTE as its answer was lost."""
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        traveller.shift(SECOND)
        newest = set_refresh_cookie(post_refresh(spa_client(issued.refresh_token), REMOTE_ADDR="192.0.2.10"))
        for _ in range(3):
            traveller.shift(timedelta(milliseconds=500))
            retry = post_refresh(spa_client(issued.refresh_token), REMOTE_ADDR="198.51.100.20")
            assert retry.status_code == 200
            assert set_refresh_cookie(retry) == newest
        assert session_row(issued).revoked_at is None


def test_another_network_is_allowed_again_after_the_allowance(user):
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        token = issued.refresh_token
        for _ in range(3):
            traveller.shift(timedelta(hours=1, seconds=1))
            newest = set_refresh_cookie(post_refresh(spa_client(token), REMOTE_ADDR="198.51.100.20"))
            retry = post_refresh(spa_client(token), REMOTE_ADDR="203.0.113.99")
            assert retry.status_code == 200
            assert set_refresh_cookie(retry) == newest
            token = newest
        assert session_row(issued).revoked_at is None


def test_retries_from_the_rotations_network_are_always_graced(user):
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        token = issued.refresh_token
        for _ in range(5):
            traveller.shift(timedelta(minutes=4))
            newest = set_refresh_cookie(post_refresh(spa_client(token), REMOTE_ADDR="2001:db8:1:2::10"))
            retry = post_refresh(spa_client(token), REMOTE_ADDR="2001:db8:1:2::99")  # the same /64
            assert set_refresh_cookie(retry) == newest
            token = newest
        row = session_row(issued)
        assert row.revoked_at is None
        assert row.split_replay_at is None


def test_a_non_ascii_user_agent_is_graced_like_any_other(user):
    """gunicorn decodes header bytes as latin-1: such agents must neither crash the grace answer
    nor keep a stale token from being recognised as reuse."""
    agent = "Mozilla/5.0 caf\xe9"
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        traveller.shift(SECOND)
        newest = set_refresh_cookie(post_refresh(spa_client(issued.refresh_token), HTTP_USER_AGENT=agent))
        retry = post_refresh(spa_client(issued.refresh_token), HTTP_USER_AGENT=agent)
        assert retry.status_code == 200
        assert set_refresh_cookie(retry) == newest
        thief = post_refresh(spa_client(issued.refresh_token), HTTP_USER_AGENT="x\xff")
        assert_refresh_refused(thief, code="refresh_token_reused")


def test_signing_out_with_an_already_rotated_token_ends_the_session(user):
    """A sign-out racing another tab's refresh, or after a thief rotated first, still ends it."""
    issued = open_session(user)
    newest, access = rotate(spa_client(issued.refresh_token))
    tab = spa_client(issued.refresh_token)
    response = tab.post("/api/auth/logout/", HTTP_X_CSRFTOKEN=tab.cookies["csrftoken"].value)
    assert response.status_code == 204
    assert session_row(issued).revoked_reason == "logout"
    assert_refresh_refused(post_refresh(spa_client(newest)))
    assert get_me(access).status_code == 401


def test_the_user_agent_that_rotated_is_the_one_that_counts(user):
    """The client that rotated (not the one that signed in) is the one whose retries are graced."""
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)  # signed in as "pytest-agent"
        app = spa_client(issued.refresh_token)
        traveller.shift(SECOND)
        response = post_refresh(app, HTTP_USER_AGENT="app/2.0")
        newest = set_refresh_cookie(response)
        traveller.shift(SECOND)
        retry = post_refresh(spa_client(issued.refresh_token), HTTP_USER_AGENT="app/2.0")
        assert retry.status_code == 200
        assert set_refresh_cookie(retry) == newest
        assert session_row(issued).user_agent == "app/2.0"


def test_an_old_reuse_event_says_it_was_outside_the_grace_window(user, settings):
    settings.ACCOUNTS_REFRESH_REUSE_GRACE = 0
    issued = open_session(user)
    rotate(spa_client(issued.refresh_token))
    assert_refresh_refused(post_refresh(spa_client(issued.refresh_token)), code="refresh_token_reused")
    event = SecurityEvent.objects.get(kind="refresh_reuse_detected")
    assert event.detail["in_grace_from_another_client"] is False


def test_the_successor_is_random_and_stored_only_as_a_hash_and_sealed(user):
    issued = open_session(user)
    newest, _ = rotate(spa_client(issued.refresh_token))
    assert session_row(issued).refresh_token_hash == sha256(newest)
    rotated = RotatedRefreshToken.objects.get(token_hash=sha256(issued.refresh_token))
    assert newest not in str(list(DeviceSession.objects.values_list()))
    assert newest not in str(list(RotatedRefreshToken.objects.values_list()))
    # Sealed with a pad only the presented token unlocks: another token unseals something else.
    assert newest in unseal_successor(rotated.successor_sealed, presented=issued.refresh_token)
    assert newest not in unseal_successor(rotated.successor_sealed, presented=generate_token())
    # Not derived from the presented token: a second session rotating gets an unrelated successor,
    # so the server key and an old token do not give the live one.
    other = open_session(user)
    other_newest, _ = rotate(spa_client(other.refresh_token))
    assert other_newest != newest
    assert_refresh_refused(post_refresh(spa_client(seal_successor(newest, presented=issued.refresh_token)[:43])))


def test_a_rotation_by_the_previous_release_is_neither_graced_nor_reuse_in_the_window(user):
    """During a rolling deploy the previous release inserts rotations without a sealed successor
    (the column's database default): a retry in the window is refused, the session kept."""
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        newest, _ = rotate(spa_client(issued.refresh_token))
        RotatedRefreshToken.objects.filter(session_id=issued.session.pk).update(successor_sealed="")
        traveller.shift(SECOND)
        assert_refresh_refused(post_refresh(spa_client(issued.refresh_token)))
        assert session_row(issued).revoked_at is None
        assert rotate(spa_client(newest))[0] != newest
        traveller.shift(timedelta(seconds=11))  # after the window it is reuse, as for any other
        assert_refresh_refused(post_refresh(spa_client(issued.refresh_token)), code="refresh_token_reused")


@pytest.mark.parametrize("damaged", ["zz" * 32, "00", "0" * 63, " " * 64, "A" * 64])
def test_a_damaged_sealed_successor_is_refused_without_ending_the_session(user, damaged):
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        rotate(spa_client(issued.refresh_token))
        RotatedRefreshToken.objects.filter(session_id=issued.session.pk).update(successor_sealed=damaged)
        traveller.shift(SECOND)
        assert_refresh_refused(post_refresh(spa_client(issued.refresh_token)))
        assert session_row(issued).revoked_at is None


def test_only_the_latest_rotation_keeps_its_sealed_successor(user):
    """Older sealed successors are never unsealed again; kept, they would be a chain that the
    server key, a database copy and one old token could walk to the live token."""
    issued = open_session(user)
    client = spa_client(issued.refresh_token)
    for _ in range(4):
        rotate(client)
    rows = RotatedRefreshToken.objects.filter(session_id=issued.session.pk).order_by("rotated_at", "successor_sealed")
    assert len(rows) == 4
    assert [bool(row.successor_sealed) for row in rows] == [False, False, False, True]


def test_a_row_inserted_without_the_sealed_successor_gets_the_database_default(user):
    from django.db import connection

    issued = open_session(user)
    # The previous release's INSERT, which names no successor_sealed column.
    columns = "(token_hash, session_id, rotated_at) VALUES (%s, %s, %s)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {RotatedRefreshToken._meta.db_table} {columns}",
            [sha256("old release"), issued.session.pk.hex, START],
        )
    assert RotatedRefreshToken.objects.get(token_hash=sha256("old release")).successor_sealed == ""


def test_a_retry_across_a_secret_key_rotation_still_gets_the_successor(user, settings):
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        newest, _ = rotate(spa_client(issued.refresh_token))
        old_key = settings.SECRET_KEY
        settings.SECRET_KEY = "the new server key, long enough to be a real one " * 2
        settings.SECRET_KEY_FALLBACKS = [old_key]
        traveller.shift(SECOND)
        response = post_refresh(spa_client(issued.refresh_token))
        assert response.status_code == 200
        assert set_refresh_cookie(response) == newest
        assert session_row(issued).revoked_at is None


def test_a_token_that_never_existed_cannot_be_replayed_into_a_session(user):
    """Only an exchanged token's own successor is handed out: presenting the successor's
    predecessor is the only way in, and that takes the token itself, not its hash."""
    issued = open_session(user)
    newest, _ = rotate(spa_client(issued.refresh_token))
    forged = generate_token()
    assert_refresh_refused(post_refresh(spa_client(forged)))
    assert_refresh_refused(post_refresh(spa_client(sha256(issued.refresh_token)[:43])))
    assert session_row(issued).revoked_at is None
    assert session_row(issued).refresh_token_hash == sha256(newest)


# --- Idle and absolute expiry --------------------------------------------------------------------


def test_refresh_just_before_the_idle_limit_works(user, settings):
    assert settings.ACCOUNTS_REFRESH_IDLE_LIFETIME == 7 * 24 * 60 * 60
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        traveller.shift(7 * DAY - SECOND)
        rotate(spa_client(issued.refresh_token))


def test_refresh_after_seven_idle_days_is_refused(user):
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        traveller.shift(7 * DAY)
        assert_refresh_refused(post_refresh(spa_client(issued.refresh_token)))
        row = session_row(issued)
        assert row.revoked_reason == ""  # simply expired, not treated as theft
        assert row.refresh_token_hash == sha256(issued.refresh_token)
        assert list(live_sessions(user=user)) == []


def test_idle_limit_follows_the_setting(user, settings):
    settings.ACCOUNTS_REFRESH_IDLE_LIFETIME = 3600
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        traveller.shift(timedelta(seconds=3599))
        token, _ = rotate(spa_client(issued.refresh_token))
        traveller.shift(timedelta(seconds=3601))
        assert_refresh_refused(post_refresh(spa_client(token)))


def test_use_keeps_the_idle_limit_moving(user):
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        client = spa_client(issued.refresh_token)
        for _ in range(4):  # 24 days in all, never 7 idle
            traveller.shift(6 * DAY)
            rotate(client)
        assert session_row(issued).last_used_at == START + 24 * DAY


def test_absolute_limit_does_not_move_with_use(user):
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        client = spa_client(issued.refresh_token)
        for _ in range(4):
            traveller.shift(6 * DAY)
            rotate(client)
        traveller.shift(6 * DAY - SECOND)  # 30 days minus a second since sign-in
        rotate(client)
        assert session_row(issued).expires_at == START + 30 * DAY
        traveller.shift(SECOND)  # exactly 30 days, last used a second ago
        assert_refresh_refused(post_refresh(client))


def test_absolute_limit_follows_the_setting(user, settings):
    settings.ACCOUNTS_REFRESH_ABSOLUTE_LIFETIME = 2 * 24 * 60 * 60
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        client = spa_client(issued.refresh_token)
        traveller.shift(DAY)
        rotate(client)
        traveller.shift(DAY - SECOND)
        rotate(client)
        traveller.shift(SECOND)
        assert_refresh_refused(post_refresh(client))


# --- Deactivated users -------------------------------------------------------------------------------


def test_session_of_a_deactivated_user_cannot_refresh(user):
    issued = open_session(user)
    assert deactivate_user(user=user) == 1
    assert_refresh_refused(post_refresh(spa_client(issued.refresh_token)))
    assert session_row(issued).revoked_reason == "user_deactivated"


def test_session_of_a_user_made_inactive_directly_cannot_refresh(user):
    issued = open_session(user)
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert_refresh_refused(post_refresh(spa_client(issued.refresh_token)))
    assert session_row(issued).refresh_token_hash == sha256(issued.refresh_token)


def test_rotated_token_of_a_deactivated_user_gets_no_grace(user):
    issued = open_session(user)
    rotate(spa_client(issued.refresh_token))
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert_refresh_refused(post_refresh(spa_client(issued.refresh_token)))


# --- HTML sign-in and sign-out ----------------------------------------------------------------------


def test_html_sign_in_opens_a_device_session_and_sets_the_refresh_cookie(user, cookie_name):
    browser = fresh_browser()
    response = html_sign_in(browser, HTTP_USER_AGENT="Firefox/140.0", REMOTE_ADDR="192.0.2.44")
    assert response.status_code == 302
    session = DeviceSession.objects.get(user=user)
    assert session.ip_address == "192.0.2.44"
    assert session.user_agent == "Firefox/140.0"
    assert session.revoked_at is None
    raw = set_refresh_cookie(response)
    assert raw is not None
    assert session.refresh_token_hash == sha256(raw)
    assert browser.session[DEVICE_SESSION_KEY] == str(session.pk)


def test_spa_continues_from_the_html_sign_in_without_the_password(user):
    browser = fresh_browser()
    assert html_sign_in(browser).status_code == 302
    response = browser.post(REFRESH_URL, HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value)
    assert response.status_code == 200
    me = get_me(response.json()["access"])
    assert me.status_code == 200
    assert me.json()["email"] == user.email
    assert DeviceSession.objects.filter(user=user).count() == 1


def test_failed_html_sign_in_opens_no_session(user, cookie_name):
    browser = fresh_browser()
    response = html_sign_in(browser, password="not the right passphrase")
    assert response.status_code == 200
    assert set_refresh_cookie(response) is None
    assert not DeviceSession.objects.exists()


def test_unverified_html_sign_in_opens_no_session(make_user):
    make_user(email="new@example.com", verified=False)
    browser = fresh_browser()
    response = html_sign_in(browser, email="new@example.com")
    assert response.status_code == 200
    assert set_refresh_cookie(response) is None
    assert not DeviceSession.objects.exists()


def test_ending_the_device_session_from_another_device_signs_the_pages_out(user):
    browser = fresh_browser()
    html_sign_in(browser)
    assert browser.get(ACCOUNT_HOME).status_code == 200
    browser_session = DeviceSession.objects.get(user=user)
    phone = open_session(user)
    response = fresh_browser().delete(
        f"{SESSIONS_URL}{browser_session.pk}/", HTTP_AUTHORIZATION=f"Bearer {phone.access_token}"
    )
    assert response.status_code == 204
    assert redirects_to_login(browser.get(ACCOUNT_HOME))
    assert browser.session.get("_auth_user_id") is None


def test_end_user_sessions_signs_the_pages_out(user):
    browser = fresh_browser()
    html_sign_in(browser)
    assert browser.get(ACCOUNT_HOME).status_code == 200
    end_user_sessions(user=user, reason="ended_by_staff")
    assert redirects_to_login(browser.get(ACCOUNT_HOME))


def test_pages_are_signed_out_even_when_the_cache_lost_the_revocation(user):
    browser = fresh_browser()
    html_sign_in(browser)
    assert browser.get(ACCOUNT_HOME).status_code == 200
    end_user_sessions(user=user, reason="ended_by_staff")
    from django.core.cache import cache

    cache.clear()
    assert redirects_to_login(browser.get(ACCOUNT_HOME))


def test_ending_another_session_keeps_the_pages_signed_in(user):
    browser = fresh_browser()
    html_sign_in(browser)
    browser_session = DeviceSession.objects.get(user=user)
    phone = open_session(user)
    assert end_user_sessions(user=user, reason="ended_by_user", keep_session_id=browser_session.pk) == 1
    assert session_row(phone).revoked_at is not None
    assert browser.get(ACCOUNT_HOME).status_code == 200


def test_html_sign_out_ends_the_device_session_and_clears_the_refresh_cookie(user):
    browser = fresh_browser()
    response = html_sign_in(browser)
    raw = set_refresh_cookie(response)
    session = DeviceSession.objects.get(user=user)
    response = browser.post(LOGOUT_PAGE, HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value)
    assert response.status_code == 302
    assert_cookie_cleared(response)
    session.refresh_from_db()
    assert session.revoked_at is not None
    assert session.revoked_reason == "logout"
    assert_refresh_refused(post_refresh(spa_client(raw)))
    assert redirects_to_login(browser.get(ACCOUNT_HOME))


def test_html_sign_out_leaves_other_devices_signed_in(user):
    phone = open_session(user)
    browser = fresh_browser()
    html_sign_in(browser)
    browser.post(LOGOUT_PAGE, HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value)
    assert session_row(phone).revoked_at is None
    rotate(spa_client(phone.refresh_token))


def test_html_sign_out_without_csrf_ends_nothing(user):
    browser = fresh_browser()
    html_sign_in(browser)
    response = browser.post(LOGOUT_PAGE)
    assert response.status_code == 403
    assert DeviceSession.objects.get(user=user).revoked_at is None


# --- Ending sessions -------------------------------------------------------------------------------


def test_password_reset_ends_every_session(make_user, user, settings):
    sessions = [open_session(user) for _ in range(3)]
    bystander = open_session(make_user(email="bob@example.com"))
    raw = issue_token(model=PasswordResetToken, user=user, lifetime_seconds=settings.ACCOUNTS_PASSWORD_RESET_TIMEOUT)
    reset_password(token=raw, password=NEW_PASSWORD)
    for issued in sessions:
        row = session_row(issued)
        assert row.revoked_at is not None
        assert row.revoked_reason == "password_reset"
        assert_refresh_refused(post_refresh(spa_client(issued.refresh_token)))
    assert session_row(bystander).revoked_at is None


def test_password_reset_with_a_rejected_password_ends_nothing(user, settings):
    from accounts.exceptions import PasswordRejected

    issued = open_session(user)
    raw = issue_token(model=PasswordResetToken, user=user, lifetime_seconds=settings.ACCOUNTS_PASSWORD_RESET_TIMEOUT)
    with pytest.raises(PasswordRejected):
        reset_password(token=raw, password="short")
    assert session_row(issued).revoked_at is None


def test_end_user_sessions_can_keep_one(user):
    keep, other1, other2 = open_session(user), open_session(user), open_session(user)
    assert end_user_sessions(user=user, reason="ended_by_user", keep_session_id=keep.session.pk) == 2
    assert session_row(keep).revoked_at is None
    assert session_row(other1).revoked_reason == "ended_by_user"
    assert session_row(other2).revoked_reason == "ended_by_user"
    assert [s.pk for s in live_sessions(user=user)] == [keep.session.pk]
    rotate(spa_client(keep.refresh_token))


def test_end_user_sessions_does_not_restamp_ended_sessions(user):
    issued = open_session(user)
    assert end_user_sessions(user=user, reason="logout") == 1
    first_end = session_row(issued).revoked_at
    assert end_user_sessions(user=user, reason="password_reset") == 0
    row = session_row(issued)
    assert row.revoked_at == first_end
    assert row.revoked_reason == "logout"


def test_session_list_shows_only_live_sessions_of_the_caller(make_user, user):
    current, ended = open_session(user), open_session(user)
    open_session(make_user(email="bob@example.com"))
    end_user_sessions(user=user, reason="logout", keep_session_id=current.session.pk)
    response = fresh_browser().get(SESSIONS_URL, HTTP_AUTHORIZATION=f"Bearer {current.access_token}")
    assert response.status_code == 200
    ids = [entry["id"] for entry in response.json()]
    assert ids == [str(current.session.pk)]
    assert str(ended.session.pk) not in response.content.decode()


# --- purge_auth_data ------------------------------------------------------------------------------


def make_session(user, *, created, last_used=None, revoked=None, lifetime=30 * DAY):
    return DeviceSession.objects.create(
        user=user,
        created_at=created,
        last_used_at=last_used or created,
        expires_at=created + lifetime,
        refresh_token_hash=hash_token(generate_token()),
        revoked_at=revoked,
        revoked_reason="logout" if revoked else "",
    )


def make_email_token(model, user, *, expires, used=None):
    extra = {"email": user.email} if model is EmailVerificationToken else {}
    return model.objects.create(
        user=user, token_hash=hash_token(generate_token()), expires_at=expires, used_at=used, **extra
    )


def purge(*args) -> str:
    out = StringIO()
    call_command("purge_auth_data", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def frozen_now(clock):
    """START, with the clock stopped there (conftest.py's clock)."""
    return START


def test_purge_deletes_long_ended_and_long_expired_sessions_and_keeps_the_rest(user, frozen_now):
    now = frozen_now
    live = make_session(user, created=now - DAY)
    recently_ended = make_session(user, created=now - 10 * DAY, revoked=now - DAY)
    ended_long_ago = make_session(user, created=now - 60 * DAY, revoked=now - 31 * DAY)
    expired_long_ago = make_session(user, created=now - 70 * DAY, last_used=now - 41 * DAY)
    idle_long_ago = make_session(user, created=now - 45 * DAY, last_used=now - 45 * DAY, lifetime=90 * DAY)
    recently_expired = make_session(user, created=now - 31 * DAY, last_used=now - 6 * DAY)
    rotated_live = RotatedRefreshToken.objects.create(
        token_hash=hash_token(generate_token()), session=live, rotated_at=now - DAY
    )
    RotatedRefreshToken.objects.create(
        token_hash=hash_token(generate_token()), session=ended_long_ago, rotated_at=now - 59 * DAY
    )

    output = purge()

    remaining = set(DeviceSession.objects.values_list("pk", flat=True))
    assert remaining == {live.pk, recently_ended.pk, recently_expired.pk}
    assert not {ended_long_ago.pk, expired_long_ago.pk, idle_long_ago.pk} & remaining
    assert list(RotatedRefreshToken.objects.values_list("pk", flat=True)) == [rotated_live.pk]
    assert "Deleted 3 device sessions." in output


def test_purge_follows_the_retention_setting(user, settings, frozen_now):
    settings.ACCOUNTS_ENDED_SESSION_RETENTION = 3600
    now = frozen_now
    within = make_session(user, created=now - DAY, revoked=now - timedelta(minutes=59))
    beyond = make_session(user, created=now - DAY, revoked=now - timedelta(minutes=61))
    purge()
    assert DeviceSession.objects.filter(pk=within.pk).exists()
    assert not DeviceSession.objects.filter(pk=beyond.pk).exists()


def test_purge_deletes_used_and_expired_email_tokens_and_keeps_usable_ones(user, make_user, frozen_now):
    now = frozen_now
    bob = make_user(email="bob@example.com")
    kept = []
    for model in (PasswordResetToken, EmailVerificationToken):
        make_email_token(model, user, expires=now + DAY, used=now - SECOND)
        make_email_token(model, user, expires=now - SECOND)
        make_email_token(model, bob, expires=now - DAY, used=now - 2 * DAY)
        kept.append(make_email_token(model, bob, expires=now + SECOND))

    output = purge()

    assert list(PasswordResetToken.objects.values_list("pk", flat=True)) == [kept[0].pk]
    assert list(EmailVerificationToken.objects.values_list("pk", flat=True)) == [kept[1].pk]
    assert "Deleted 3 password reset tokens." in output
    assert "Deleted 3 email verification tokens." in output


def test_purge_keeps_a_token_that_is_still_redeemable(user, settings):
    raw = issue_token(model=PasswordResetToken, user=user, lifetime_seconds=settings.ACCOUNTS_PASSWORD_RESET_TIMEOUT)
    purge()
    reset_password(token=raw, password=NEW_PASSWORD)  # still works after the purge
    assert PasswordResetToken.objects.get().used_at is not None


def test_purge_in_batches_of_one_deletes_every_dead_row(user, frozen_now):
    now = frozen_now
    dead = [make_session(user, created=now - 90 * DAY, revoked=now - 40 * DAY) for _ in range(5)]
    live = [make_session(user, created=now - DAY) for _ in range(2)]
    for _ in range(4):
        make_email_token(PasswordResetToken, user, expires=now - DAY)
    usable = make_email_token(PasswordResetToken, user, expires=now + DAY)

    output = purge("--batch-size", "1")

    assert set(DeviceSession.objects.values_list("pk", flat=True)) == {s.pk for s in live}
    assert not DeviceSession.objects.filter(pk__in=[s.pk for s in dead]).exists()
    assert list(PasswordResetToken.objects.values_list("pk", flat=True)) == [usable.pk]
    assert "Deleted 5 device sessions." in output
    assert "Deleted 4 password reset tokens." in output


def test_purge_twice_deletes_nothing_more(user, frozen_now):
    now = frozen_now
    make_session(user, created=now - 90 * DAY, revoked=now - 40 * DAY)
    live = make_session(user, created=now - DAY)
    purge()
    output = purge("--batch-size", "2")
    assert "Deleted 0 device sessions." in output
    assert list(DeviceSession.objects.values_list("pk", flat=True)) == [live.pk]


def test_purged_session_token_stays_refused(user):
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        end_user_sessions(user=user, reason="logout")
        traveller.shift(31 * DAY)
        purge()
        assert not DeviceSession.objects.exists()
        assert_refresh_refused(post_refresh(spa_client(issued.refresh_token)))
        response = get_me(issued.access_token)
        assert response.status_code == 401
