"""Ending one's own sessions: the flow decides whether the caller's session is among them, both front ends obey."""

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.test import Client

from accounts.exceptions import ReauthenticationRequired, SessionNotFound
from accounts.flows.device_sessions import start_device_session
from accounts.flows.own_sessions import end_other_sessions, end_own_session
from accounts.flows.reauthentication import (
    NEEDS_RECENT_AUTHENTICATION,
    SensitiveAction,
    did_recently_authenticate,
    record_authentication,
    require_recent_authentication,
)
from accounts.models import DeviceSession
from tests.support.accounts import force_page_login
from tests.support.api import assert_api_error, bearer, login, refresh_cookie_value, session_id_of

SESSIONS_URL = "/api/auth/sessions/"
PAST_THE_WINDOW = timedelta(seconds=settings.ACCOUNTS_REAUTHENTICATION_WINDOW + 60)


def _device(user):
    return start_device_session(user=user, ip_address="127.0.0.1", user_agent="pytest").session


def _live(session) -> bool:
    return DeviceSession.objects.live().filter(pk=session.pk).exists()


# --- The flow -------------------------------------------------------------------------------------


def test_ending_the_current_session_needs_no_recent_authentication_and_says_so(user):
    with time_machine.travel("2026-06-01 12:00", tick=False) as traveller:
        current = _device(user)
        traveller.shift(PAST_THE_WINDOW)
        ended = end_own_session(user=user, session_id=str(current.pk), current_session_id=current.pk)
    assert ended.includes_current and ended.count == 1
    assert not _live(current)
    current.refresh_from_db()
    assert current.revoked_reason == DeviceSession.EndReason.LOGOUT


def test_ending_another_session_needs_a_recent_authentication(user):
    with time_machine.travel("2026-06-01 12:00", tick=False) as traveller:
        current, other = _device(user), _device(user)
        traveller.shift(PAST_THE_WINDOW)
        with pytest.raises(ReauthenticationRequired):
            end_own_session(user=user, session_id=str(other.pk), current_session_id=str(current.pk))
        assert _live(other)
        record_authentication(session_id=current.pk)
        ended = end_own_session(user=user, session_id=str(other.pk), current_session_id=str(current.pk))
        assert not ended.includes_current
        assert not _live(other) and _live(current)
    other.refresh_from_db()
    assert other.revoked_reason == DeviceSession.EndReason.ENDED_BY_USER


def test_a_malformed_session_id_is_not_found_only_after_the_reauthentication_check(user):
    with time_machine.travel("2026-06-01 12:00", tick=False) as traveller:
        current = _device(user)
        with pytest.raises(SessionNotFound):
            end_own_session(user=user, session_id="not-a-uuid", current_session_id=current.pk)
        traveller.shift(PAST_THE_WINDOW)
        # Stale: the same answer as for any other session, so ids cannot be probed without the password.
        with pytest.raises(ReauthenticationRequired):
            end_own_session(user=user, session_id="not-a-uuid", current_session_id=current.pk)


def test_someone_elses_session_is_not_found_and_stays_live(user, make_user):
    bob_session = _device(make_user(email="bob@example.com"))
    current = _device(user)
    with pytest.raises(SessionNotFound):
        end_own_session(user=user, session_id=str(bob_session.pk), current_session_id=current.pk)
    assert _live(bob_session)


def test_ending_the_other_sessions_keeps_the_current_one_and_needs_a_recent_authentication(user):
    with time_machine.travel("2026-06-01 12:00", tick=False) as traveller:
        current, others = _device(user), [_device(user), _device(user)]
        traveller.shift(PAST_THE_WINDOW)
        with pytest.raises(ReauthenticationRequired):
            end_other_sessions(user=user, current_session_id=current.pk)
        assert all(_live(session) for session in others)
        record_authentication(session_id=current.pk)
        ended = end_other_sessions(user=user, current_session_id=current.pk)
        assert ended.count == 2 and not ended.includes_current
        assert _live(current) and not any(_live(session) for session in others)


# --- The guard ------------------------------------------------------------------------------------


def test_only_the_listed_actions_are_guarded_by_the_window(user):
    assert {
        SensitiveAction.END_OTHER_SESSION,
        SensitiveAction.END_OTHER_SESSIONS,
        SensitiveAction.MANAGE_MFA,
        SensitiveAction.MANAGE_SIGN_IN_METHODS,
    } == NEEDS_RECENT_AUTHENTICATION
    session = _device(user)  # just signed in: recent
    for action in set(SensitiveAction) - NEEDS_RECENT_AUTHENTICATION:
        # Their flows take the password every time; a recent sign-in must never stand in for it.
        with pytest.raises(ValueError, match="takes the password"):
            require_recent_authentication(session_id=session.pk, action=action)


@pytest.mark.parametrize("session_id", [None, "", "garbage", "00000000-0000-0000-0000-000000000000"])
def test_no_session_or_an_unknown_one_never_counts_as_recent(db, session_id):
    assert not did_recently_authenticate(session_id=session_id)
    with pytest.raises(ReauthenticationRequired):
        require_recent_authentication(session_id=session_id, action=SensitiveAction.END_OTHER_SESSIONS)
    record_authentication(session_id=session_id)  # nothing to record, and no error


def test_the_window_ends_exactly_when_the_setting_says(user):
    with time_machine.travel("2026-06-01 12:00", tick=False) as traveller:
        session = _device(user)
        traveller.shift(timedelta(seconds=settings.ACCOUNTS_REAUTHENTICATION_WINDOW))
        assert did_recently_authenticate(session_id=session.pk)
        traveller.shift(timedelta(seconds=1))
        assert not did_recently_authenticate(session_id=session.pk)


# --- The API and the pages answer alike -----------------------------------------------------------


def test_the_api_clears_the_refresh_cookie_when_the_caller_ends_its_own_session(client, user):
    access = login(client)
    assert refresh_cookie_value(client)
    response = client.delete(f"{SESSIONS_URL}{session_id_of(access)}/", **bearer(access))
    assert response.status_code == 204
    cookie = response.cookies[settings.ACCOUNTS_REFRESH_COOKIE_NAME]
    assert cookie.value == "" and cookie["max-age"] == 0
    assert response["Clear-Site-Data"] == '"cache", "storage"'
    assert response.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == 0
    assert_api_error(client.get("/api/auth/me/", **bearer(access)), 401, "session_ended")


def test_the_api_keeps_the_refresh_cookie_when_the_caller_ends_another_session(client, user):
    other_access = login(Client())
    access = login(client)
    response = client.delete(f"{SESSIONS_URL}{session_id_of(other_access)}/", **bearer(access))
    assert response.status_code == 204
    assert settings.ACCOUNTS_REFRESH_COOKIE_NAME not in response.cookies
    assert not response.has_header("Clear-Site-Data")
    assert client.get("/api/auth/me/", **bearer(access)).status_code == 200


def test_the_page_signs_out_when_the_caller_ends_its_own_session(client, user):
    force_page_login(client, user)
    current = client.session["_device_session_id"]
    response = client.post(f"/accounts/sessions/{current}/end/")
    assert response.status_code == 302 and response["Location"] == "/"
    assert settings.ACCOUNTS_REFRESH_COOKIE_NAME in response.cookies
    assert response.cookies[settings.ACCOUNTS_REFRESH_COOKIE_NAME].value == ""
    assert "_auth_user_id" not in client.session
    assert not DeviceSession.objects.live().filter(pk=current).exists()


def test_the_page_stays_signed_in_when_the_caller_ends_another_session(client, user):
    other = _device(user)
    force_page_login(client, user)
    response = client.post(f"/accounts/sessions/{other.pk}/end/")
    assert response.status_code == 302 and response["Location"] == "/accounts/sessions/"
    assert client.session["_auth_user_id"] == str(user.pk)
    assert not _live(other)


def test_the_passwords_on_the_verify_page_stay_out_of_error_reports(rf):
    from django.views.debug import SafeExceptionReporterFilter

    from accounts.views import VerifyEmailView

    request = rf.post(
        "/accounts/verify-email/confirm/",
        {"proof": "new_password", "current-password": "a", "new-password1": "b", "new-password2": "c"},
    )
    request.session = {}
    VerifyEmailView.as_view()(request)  # the decorator marks the request's sensitive parameters
    shown = SafeExceptionReporterFilter().get_post_parameters(request)
    assert {shown[name] for name in ("current-password", "new-password1", "new-password2")} == {"********************"}
    assert shown["proof"] == "new_password"
