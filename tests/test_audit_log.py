"""The security audit log: what each event kind records when produced through the real pages,
API and flows (kind, user, actor, client address and user agent, time, detail), that an event
is written in the same transaction as its change, that no row ever holds a password, a token,
a token hash or an address in clear text, and how long events are kept (purge_auth_data).

The rate_limited kind is not covered here.
"""

import json
from datetime import UTC, datetime, timedelta
from io import StringIO
from urllib.parse import urlsplit

import pytest
import time_machine
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import Client

import accounts.flows.account_deletion as account_deletion_module
import accounts.flows.password_change as password_change_module
import accounts.flows.password_reset as password_reset_module
import accounts.flows.support as support_module
import accounts.flows.verification as verification_module
from accounts.audit import EventKind, email_fingerprint, recent_events_of, record_event
from accounts.client_info import ClientInfo
from accounts.flows.account_deletion import delete_account
from accounts.flows.device_sessions import start_device_session
from accounts.flows.password_change import change_password
from accounts.flows.password_reset import request_password_reset, reset_password
from accounts.flows.support import staff_deactivate
from accounts.flows.verification import Verifier, send_verification_email, verify_email
from accounts.models import (
    DeviceSession,
    EmailVerificationToken,
    PasswordResetToken,
    RotatedRefreshToken,
    SecurityEvent,
    User,
)
from tests.support.accounts import STRONG_PASSWORD, force_page_login, sha256
from tests.support.api import (
    LOGOUT_URL,
    ME_URL,
    REFRESH_URL,
    bearer,
    csrf_header,
    login_response,
    post_json,
    refresh_cookie_value,
)
from tests.support.mail import links_in, token_from_link
from tests.support.pages import csrf_from_page

pytestmark = pytest.mark.django_db

START = datetime(2031, 6, 1, 12, 0, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
LATER = START + MINUTE
IP = "203.0.113.9"
UA = "AuditBrowser/1.0 (X11; Linux x86_64)"
OTHER_IP = "198.51.100.23"
OTHER_UA = "OtherDevice/7.1 (Android 14)"
NEW_PASSWORD = "an entirely new passphrase here"
NEWER_PASSWORD = "yet another long passphrase now"
WRONG_PASSWORD = "definitely not the right one"
LOGIN_PAGE = "/accounts/login/"
LOGOUT_PAGE = "/accounts/logout/"
SESSIONS_API = "/api/auth/sessions/"
REVOKE_OTHERS_API = "/api/auth/sessions/revoke-others/"
PASSWORD_RESET_API = "/api/auth/password/reset/"
PASSWORD_RESET_CONFIRM_API = "/api/auth/password/reset/confirm/"
PASSWORD_CHANGE_API = "/api/auth/password/change/"
EMAIL_CHANGE_API = "/api/auth/email/change/"
EMAIL_VERIFY_API = "/api/auth/email/verify/"
REGISTER_API = "/api/auth/register/"


# --- Helpers ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clock():
    """Every test runs on a stopped clock at START; tests shift it before the request they check."""
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def device(ip: str = IP, agent: str = UA) -> Client:
    """A browser or app on one device: every request carries its address and user agent."""
    return Client(enforce_csrf_checks=True, REMOTE_ADDR=ip, HTTP_USER_AGENT=agent)


def page_sign_in(client: Client, email: str = "alice@example.com", password: str = STRONG_PASSWORD):
    token = csrf_from_page(client, LOGIN_PAGE)
    return client.post(LOGIN_PAGE, {"email": email, "password": password, "csrfmiddlewaretoken": token})


def page_sign_out(client: Client):
    token = csrf_from_page(client, "/accounts/")
    return client.post(LOGOUT_PAGE, {"csrfmiddlewaretoken": token})


def api_sign_in(client: Client, email: str = "alice@example.com", password: str = STRONG_PASSWORD) -> str:
    response = login_response(client, email, password)
    assert response.status_code == 200, response.content
    return response.json()["access"]


def only_event(kind: str) -> SecurityEvent:
    events = list(SecurityEvent.objects.filter(kind=kind))
    assert len(events) == 1, [(e.kind, e.detail) for e in events]
    return events[0]


def assert_event(
    event: SecurityEvent,
    *,
    kind: str,
    user,
    detail: dict,
    actor=None,
    ip: str | None = IP,
    agent: str = UA,
    at: datetime = LATER,
    email_hash: str = "",
) -> None:
    assert event.kind == kind
    assert event.user_id == (user.pk if user is not None else None)
    assert event.actor_id == (actor.pk if actor is not None else None)
    assert event.ip_address == ip
    assert event.user_agent == agent
    assert event.created_at == at
    assert event.detail == detail
    assert event.email_hash == email_hash


def mailed_token(mailoutbox, fragment: str) -> str:
    link = next(link for link in links_in(mailoutbox[-1]) if fragment in link)
    return token_from_link(link)


# --- sign_in_succeeded ------------------------------------------------------------------------------


def test_page_sign_in_records_success_with_the_request_client_and_session(clock, user):
    clock.shift(MINUTE)
    response = page_sign_in(device())
    assert response.status_code == 302
    session = DeviceSession.objects.get(user=user)
    assert_event(
        only_event(EventKind.SIGN_IN_SUCCEEDED),
        kind="sign_in_succeeded",
        user=user,
        detail={"session": str(session.pk), "via": "page", "amr": "pwd"},
    )


def test_api_sign_in_records_success_via_api(clock, user):
    clock.shift(MINUTE)
    api_sign_in(device(OTHER_IP, OTHER_UA))
    session = DeviceSession.objects.get(user=user)
    assert_event(
        only_event(EventKind.SIGN_IN_SUCCEEDED),
        kind="sign_in_succeeded",
        user=user,
        detail={"session": str(session.pk), "via": "api", "amr": "pwd"},
        ip=OTHER_IP,
        agent=OTHER_UA,
    )


def test_each_sign_in_records_its_own_session(user):
    api_sign_in(device())
    api_sign_in(device(OTHER_IP, OTHER_UA))
    events = SecurityEvent.objects.filter(kind=EventKind.SIGN_IN_SUCCEEDED)
    assert {e.detail["session"] for e in events} == {
        str(pk) for pk in DeviceSession.objects.values_list("pk", flat=True)
    }
    assert {e.ip_address for e in events} == {IP, OTHER_IP}


# --- sign_in_failed ---------------------------------------------------------------------------------


def test_wrong_password_for_a_known_user_records_a_failure_tied_to_the_user(clock, user):
    clock.shift(MINUTE)
    response = login_response(device(), user.email, WRONG_PASSWORD)
    assert response.status_code == 401
    assert_event(
        only_event(EventKind.SIGN_IN_FAILED),
        kind="sign_in_failed",
        user=user,
        detail={"reason": "invalid_credentials"},
    )
    assert not SecurityEvent.objects.filter(kind=EventKind.SIGN_IN_SUCCEEDED).exists()
    assert not DeviceSession.objects.exists()


def test_wrong_password_on_the_page_records_a_failure_too(clock, user):
    clock.shift(MINUTE)
    response = page_sign_in(device(), user.email, WRONG_PASSWORD)
    assert response.status_code == 200  # the form again, with an error
    assert_event(
        only_event(EventKind.SIGN_IN_FAILED),
        kind="sign_in_failed",
        user=user,
        detail={"reason": "invalid_credentials"},
    )


def test_unknown_address_records_a_failure_with_only_a_fingerprint(clock, db):
    address = "nobody@example.com"
    clock.shift(MINUTE)
    response = login_response(device(), address, WRONG_PASSWORD)
    assert response.status_code == 401
    event = only_event(EventKind.SIGN_IN_FAILED)
    assert_event(
        event,
        kind="sign_in_failed",
        user=None,
        detail={"reason": "invalid_credentials"},
        email_hash=email_fingerprint(address),
    )
    assert len(event.email_hash) == 64
    assert address not in event.email_hash
    assert event.email_hash != sha256(address)  # keyed, not a plain digest anyone can recompute


def test_fingerprint_is_the_same_for_case_and_whitespace_variants_of_one_address(db):
    login_response(device(), " Ghost@Example.COM ", WRONG_PASSWORD)
    page_sign_in(device(), "GHOST@example.com", WRONG_PASSWORD)
    login_response(device(), "ghost@example.com", WRONG_PASSWORD)
    hashes = list(SecurityEvent.objects.filter(kind=EventKind.SIGN_IN_FAILED).values_list("email_hash", flat=True))
    assert len(hashes) == 3
    assert set(hashes) == {email_fingerprint("ghost@example.com")}
    assert email_fingerprint("  GHOST@EXAMPLE.COM\t") == email_fingerprint("ghost@example.com")


def test_fingerprint_differs_for_another_address(db):
    login_response(device(), "ghost@example.com", WRONG_PASSWORD)
    login_response(device(), "spectre@example.com", WRONG_PASSWORD)
    hashes = set(SecurityEvent.objects.filter(kind=EventKind.SIGN_IN_FAILED).values_list("email_hash", flat=True))
    assert hashes == {email_fingerprint("ghost@example.com"), email_fingerprint("spectre@example.com")}
    assert email_fingerprint("ghost@example.com") != email_fingerprint("ghost@example.org")


def test_fingerprint_depends_on_the_secret_key(settings):
    before = email_fingerprint("ghost@example.com")
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    assert email_fingerprint("ghost@example.com") != before


def test_unverified_user_with_the_right_password_records_email_not_verified(clock, make_user):
    unverified = make_user(verified=False)
    clock.shift(MINUTE)
    response = login_response(device(), unverified.email, STRONG_PASSWORD)
    assert response.status_code == 403
    assert response.json()["code"] == "email_not_verified"
    assert_event(
        only_event(EventKind.SIGN_IN_FAILED),
        kind="sign_in_failed",
        user=unverified,
        detail={"reason": "email_not_verified"},
    )
    assert not DeviceSession.objects.exists()


def test_unverified_user_with_a_wrong_password_records_invalid_credentials_only(make_user):
    unverified = make_user(verified=False)
    assert login_response(device(), unverified.email, WRONG_PASSWORD).status_code == 401
    assert only_event(EventKind.SIGN_IN_FAILED).detail == {"reason": "invalid_credentials"}


def test_successful_sign_in_records_no_failure(user):
    api_sign_in(device())
    assert not SecurityEvent.objects.filter(kind=EventKind.SIGN_IN_FAILED).exists()


# --- sign_out ------------------------------------------------------------------------------------------


def test_page_sign_out_records_sign_out_from_the_signing_out_request(clock, user):
    browser = device()
    clock.shift(MINUTE)
    assert page_sign_in(browser).status_code == 302
    session = DeviceSession.objects.get(user=user)
    browser.defaults.update(REMOTE_ADDR=OTHER_IP, HTTP_USER_AGENT=OTHER_UA)
    response = page_sign_out(browser)
    assert response.status_code == 302
    assert_event(
        only_event(EventKind.SIGN_OUT),
        kind="sign_out",
        user=user,
        detail={"session": str(session.pk), "reason": "logout"},
        ip=OTHER_IP,
        agent=OTHER_UA,
    )


def test_api_sign_out_records_sign_out(clock, user):
    spa = device()
    api_sign_in(spa)
    session = DeviceSession.objects.get(user=user)
    clock.shift(MINUTE)
    response = post_json(spa, LOGOUT_URL, **csrf_header(spa))
    assert response.status_code == 204
    assert_event(
        only_event(EventKind.SIGN_OUT),
        kind="sign_out",
        user=user,
        detail={"session": str(session.pk), "reason": "logout"},
    )


def test_signing_out_twice_records_one_sign_out(user):
    spa = device()
    api_sign_in(spa)
    old_cookie = refresh_cookie_value(spa)
    assert post_json(spa, LOGOUT_URL, **csrf_header(spa)).status_code == 204
    spa.cookies[django_settings.ACCOUNTS_REFRESH_COOKIE_NAME] = old_cookie
    assert post_json(spa, LOGOUT_URL, **csrf_header(spa)).status_code == 204
    assert SecurityEvent.objects.filter(kind=EventKind.SIGN_OUT).count() == 1


def test_api_sign_out_without_a_refresh_cookie_records_nothing(user):
    spa = device()
    assert post_json(spa, LOGOUT_URL, **csrf_header(spa)).status_code == 204
    assert not SecurityEvent.objects.filter(kind=EventKind.SIGN_OUT).exists()


def test_page_sign_out_without_a_device_session_records_nothing(user):
    browser = device()
    browser.force_login(user, backend="django.contrib.auth.backends.ModelBackend")  # no sign-in makes such a session
    assert browser.get("/accounts/").status_code == 302  # it is not honoured: signed out, silently
    assert not SecurityEvent.objects.filter(kind=EventKind.SIGN_OUT).exists()


# --- refresh_reuse_detected ------------------------------------------------------------------------------


def test_reusing_a_rotated_refresh_token_after_the_grace_window_is_recorded(clock, user, settings):
    spa = device()
    api_sign_in(spa)
    stolen = refresh_cookie_value(spa)
    assert post_json(spa, REFRESH_URL, **csrf_header(spa)).status_code == 200
    clock.shift(timedelta(seconds=settings.ACCOUNTS_REFRESH_REUSE_GRACE + 1))
    attacker = device(OTHER_IP, OTHER_UA)
    attacker.cookies[settings.ACCOUNTS_REFRESH_COOKIE_NAME] = stolen
    response = post_json(attacker, REFRESH_URL, **csrf_header(attacker))
    assert response.status_code == 401
    assert response.json()["code"] == "refresh_token_reused"
    session = DeviceSession.objects.get(user=user)
    assert session.revoked_reason == "refresh_reuse"
    assert_event(
        only_event(EventKind.REFRESH_REUSE_DETECTED),
        kind="refresh_reuse_detected",
        user=user,
        detail={"session": str(session.pk), "in_grace_from_another_client": False},
        ip=OTHER_IP,
        agent=OTHER_UA,
        at=START + timedelta(seconds=settings.ACCOUNTS_REFRESH_REUSE_GRACE + 1),
    )


def test_presenting_the_just_rotated_token_within_the_grace_window_is_not_reuse(clock, user, settings):
    spa = device()
    api_sign_in(spa)
    previous = refresh_cookie_value(spa)
    assert post_json(spa, REFRESH_URL, **csrf_header(spa)).status_code == 200
    clock.shift(SECOND)
    other_tab = device()
    other_tab.cookies[settings.ACCOUNTS_REFRESH_COOKIE_NAME] = previous
    assert post_json(other_tab, REFRESH_URL, **csrf_header(other_tab)).status_code == 200
    assert not SecurityEvent.objects.filter(kind=EventKind.REFRESH_REUSE_DETECTED).exists()


def test_ordinary_refresh_records_no_event(user):
    spa = device()
    api_sign_in(spa)
    before = SecurityEvent.objects.count()
    assert post_json(spa, REFRESH_URL, **csrf_header(spa)).status_code == 200
    assert SecurityEvent.objects.count() == before


# --- session_ended ----------------------------------------------------------------------------------------


def test_ending_another_session_through_the_api_is_recorded(clock, user):
    other_device = device(OTHER_IP, OTHER_UA)
    api_sign_in(other_device)
    other = DeviceSession.objects.get(user=user)
    access = api_sign_in(device())
    clock.shift(MINUTE)
    response = device().delete(f"{SESSIONS_API}{other.pk}/", **bearer(access))
    assert response.status_code == 204
    assert_event(
        only_event(EventKind.SESSION_ENDED),
        kind="session_ended",
        user=user,
        detail={"session": str(other.pk), "reason": "ended_by_user"},
    )


def test_ending_an_unknown_or_foreign_session_records_nothing(user, make_user):
    bob = make_user(email="bob@example.com", name="Bob")
    api_sign_in(device(), bob.email)
    bobs = DeviceSession.objects.get(user=bob)
    access = api_sign_in(device())
    for target in (bobs.pk, "00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        assert device().delete(f"{SESSIONS_API}{target}/", **bearer(access)).status_code == 404
    assert not SecurityEvent.objects.filter(kind=EventKind.SESSION_ENDED).exists()
    assert DeviceSession.objects.get(pk=bobs.pk).revoked_at is None


def test_revoking_all_other_sessions_records_how_many_ended(clock, user):
    for _ in range(2):
        api_sign_in(device(OTHER_IP, OTHER_UA))
    access = api_sign_in(device())
    clock.shift(MINUTE)
    response = post_json(device(), REVOKE_OTHERS_API, **bearer(access))
    assert response.status_code == 204
    assert_event(
        only_event(EventKind.SESSION_ENDED),
        kind="session_ended",
        user=user,
        detail={"sessions": 2, "reason": "ended_by_user"},
    )


def test_revoking_others_when_there_are_none_records_nothing(user):
    access = api_sign_in(device())
    assert post_json(device(), REVOKE_OTHERS_API, **bearer(access)).status_code == 204
    assert not SecurityEvent.objects.filter(kind=EventKind.SESSION_ENDED).exists()


# --- password_reset_requested and password_reset_completed -------------------------------------------------


def test_reset_request_for_a_known_address_is_tied_to_the_user(clock, user, mailoutbox):
    clock.shift(MINUTE)
    response = post_json(device(), PASSWORD_RESET_API, {"email": "  ALICE@example.com "})
    assert response.status_code == 202
    assert len(mailoutbox) == 1
    assert_event(
        only_event(EventKind.PASSWORD_RESET_REQUESTED),
        kind="password_reset_requested",
        user=user,
        detail={"account": True},
    )


def test_reset_request_for_an_unknown_address_keeps_only_its_fingerprint(clock, db, mailoutbox):
    clock.shift(MINUTE)
    response = post_json(device(), PASSWORD_RESET_API, {"email": "stranger@example.com"})
    assert response.status_code == 202
    assert mailoutbox == []
    assert_event(
        only_event(EventKind.PASSWORD_RESET_REQUESTED),
        kind="password_reset_requested",
        user=None,
        detail={"account": False},
        email_hash=email_fingerprint("stranger@example.com"),
    )


def test_reset_request_for_an_inactive_account_is_logged_like_an_unknown_address(make_user, mailoutbox):
    make_user(email="gone@example.com", is_active=False)
    post_json(device(), PASSWORD_RESET_API, {"email": "gone@example.com"})
    event = only_event(EventKind.PASSWORD_RESET_REQUESTED)
    assert event.user is None
    assert event.email_hash == email_fingerprint("gone@example.com")
    assert event.detail == {"account": False}


def test_completing_a_reset_is_recorded_with_the_sessions_it_ended(clock, user, mailoutbox):
    api_sign_in(device(OTHER_IP, OTHER_UA))
    post_json(device(), PASSWORD_RESET_API, {"email": user.email})
    token = mailed_token(mailoutbox, "/password/reset/")
    clock.shift(MINUTE)
    response = post_json(device(), PASSWORD_RESET_CONFIRM_API, {"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 204
    assert_event(
        only_event(EventKind.PASSWORD_RESET_COMPLETED),
        kind="password_reset_completed",
        user=user,
        detail={"sessions_ended": 1},
    )


def test_a_failed_reset_records_no_completion(user, mailoutbox):
    post_json(device(), PASSWORD_RESET_API, {"email": user.email})
    token = mailed_token(mailoutbox, "/password/reset/")
    assert (
        post_json(device(), PASSWORD_RESET_CONFIRM_API, {"token": "x" * 43, "password": NEW_PASSWORD}).status_code
        == 400
    )
    assert post_json(device(), PASSWORD_RESET_CONFIRM_API, {"token": token, "password": "short"}).status_code == 400
    assert not SecurityEvent.objects.filter(kind=EventKind.PASSWORD_RESET_COMPLETED).exists()


# --- password_changed --------------------------------------------------------------------------------------


def test_changing_the_password_is_recorded(clock, user):
    api_sign_in(device(OTHER_IP, OTHER_UA))
    access = api_sign_in(device())
    clock.shift(MINUTE)
    response = post_json(
        device(),
        PASSWORD_CHANGE_API,
        {"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD},
        **bearer(access),
    )
    assert response.status_code == 204
    assert_event(
        only_event(EventKind.PASSWORD_CHANGED),
        kind="password_changed",
        user=user,
        detail={"sessions_ended": 1},
    )


def test_a_refused_password_change_records_nothing(user):
    access = api_sign_in(device())
    response = post_json(
        device(),
        PASSWORD_CHANGE_API,
        {"current_password": WRONG_PASSWORD, "new_password": NEW_PASSWORD},
        **bearer(access),
    )
    assert response.status_code == 400
    response = post_json(
        device(), PASSWORD_CHANGE_API, {"current_password": STRONG_PASSWORD, "new_password": "short"}, **bearer(access)
    )
    assert response.status_code == 400
    assert not SecurityEvent.objects.filter(kind=EventKind.PASSWORD_CHANGED).exists()


# --- email_change_requested, email_change_confirmed, email_verified ---------------------------------------


def test_requesting_an_email_change_is_recorded_without_the_new_address(clock, user, mailoutbox):
    access = api_sign_in(device())
    clock.shift(MINUTE)
    response = post_json(
        device(),
        EMAIL_CHANGE_API,
        {"new_email": "alice.new@example.com", "password": STRONG_PASSWORD},
        **bearer(access),
    )
    assert response.status_code == 202
    event = only_event(EventKind.EMAIL_CHANGE_REQUESTED)
    assert_event(event, kind="email_change_requested", user=user, detail={})
    assert "alice.new" not in json.dumps(event.detail) + event.email_hash


def test_requesting_a_change_to_a_taken_address_is_recorded_alike(user, make_user, mailoutbox):
    make_user(email="taken@example.com", name="Taken")
    access = api_sign_in(device())
    response = post_json(
        device(), EMAIL_CHANGE_API, {"new_email": "taken@example.com", "password": STRONG_PASSWORD}, **bearer(access)
    )
    assert response.status_code == 202
    event = only_event(EventKind.EMAIL_CHANGE_REQUESTED)
    assert event.user == user
    assert event.detail == {}
    assert event.email_hash == ""


def test_an_email_change_with_the_wrong_password_records_nothing(user):
    access = api_sign_in(device())
    response = post_json(
        device(), EMAIL_CHANGE_API, {"new_email": "alice.new@example.com", "password": WRONG_PASSWORD}, **bearer(access)
    )
    assert response.status_code == 400
    assert not SecurityEvent.objects.filter(kind=EventKind.EMAIL_CHANGE_REQUESTED).exists()


def test_confirming_an_email_change_is_recorded(clock, user, mailoutbox):
    access = api_sign_in(device())
    post_json(
        device(),
        EMAIL_CHANGE_API,
        {"new_email": "alice.new@example.com", "password": STRONG_PASSWORD},
        **bearer(access),
    )
    token = mailed_token(mailoutbox, "/verify-email/")
    clock.shift(MINUTE)
    response = post_json(device(OTHER_IP, OTHER_UA), EMAIL_VERIFY_API, {"token": token, "password": STRONG_PASSWORD})
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.email == "alice.new@example.com"
    assert_event(
        only_event(EventKind.EMAIL_CHANGE_CONFIRMED),
        kind="email_change_confirmed",
        user=user,
        detail={},
        ip=OTHER_IP,
        agent=OTHER_UA,
    )
    assert not SecurityEvent.objects.filter(kind=EventKind.EMAIL_VERIFIED).exists()


def test_verifying_the_address_on_the_page_is_recorded_once(clock, db, mailoutbox):
    browser = device()  # signs up through the API, then opens the link: the same browser
    signup = post_json(
        browser, REGISTER_API, {"email": "carol@example.com", "password": STRONG_PASSWORD, "name": "Carol"}
    )
    assert signup.status_code == 202
    carol = User.objects.get(email="carol@example.com")
    path = urlsplit(next(link for link in links_in(mailoutbox[-1]) if "/verify-email/" in link)).path
    clock.shift(MINUTE)
    assert browser.get(path).status_code == 302
    token = csrf_from_page(browser, "/accounts/verify-email/confirm/")
    response = browser.post("/accounts/verify-email/confirm/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    carol.refresh_from_db()
    assert carol.email_verified
    assert_event(
        only_event(EventKind.EMAIL_VERIFIED), kind="email_verified", user=carol, detail={"proved_by": "sign_up_proof"}
    )
    # The link is single-use: opening it again records nothing more.
    assert device().get(path).status_code == 400
    assert SecurityEvent.objects.filter(kind=EventKind.EMAIL_VERIFIED).count() == 1


def test_an_invalid_verification_token_records_nothing(db):
    assert post_json(device(), EMAIL_VERIFY_API, {"token": "A" * 43}).status_code == 400
    assert not SecurityEvent.objects.exists()


# --- account_deleted ----------------------------------------------------------------------------------------


def test_deleting_the_account_keeps_only_a_fingerprint_of_the_address(clock, user):
    user_id, email = user.pk, user.email
    access = api_sign_in(device())
    clock.shift(MINUTE)
    response = device().delete(ME_URL, {"password": STRONG_PASSWORD}, content_type="application/json", **bearer(access))
    assert response.status_code == 204
    assert not User.objects.filter(pk=user_id).exists()
    event = only_event(EventKind.ACCOUNT_DELETED)
    assert_event(
        event,
        kind="account_deleted",
        user=None,
        detail={"user_id": user_id},
        email_hash=email_fingerprint(email),
    )
    # Earlier events of the account survive, detached from the deleted row.
    sign_in = only_event(EventKind.SIGN_IN_SUCCEEDED)
    assert sign_in.user_id is None


def test_a_refused_deletion_records_nothing(user):
    access = api_sign_in(device())
    response = device().delete(ME_URL, {"password": WRONG_PASSWORD}, content_type="application/json", **bearer(access))
    assert response.status_code == 400
    assert User.objects.filter(pk=user.pk).exists()
    assert not SecurityEvent.objects.filter(kind=EventKind.ACCOUNT_DELETED).exists()


# --- staff_action ------------------------------------------------------------------------------------------


def test_a_staff_action_in_the_admin_is_recorded_with_the_acting_staff_member(clock, user, make_user):
    staff = make_user(email="root@example.com", name="Root", is_staff=True, is_superuser=True)
    api_sign_in(device(OTHER_IP, OTHER_UA))
    admin = device()
    force_page_login(admin, staff)
    token = csrf_from_page(admin, "/admin/accounts/user/")
    clock.shift(MINUTE)
    response = admin.post(
        "/admin/accounts/user/",
        {"action": "end_all_sessions", "_selected_action": [user.pk], "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    assert_event(
        only_event(EventKind.STAFF_ACTION),
        kind="staff_action",
        user=user,
        actor=staff,
        detail={"action": "end_sessions", "sessions_ended": 1},
    )
    # The staff action is the one record of it: no separate session_ended event.
    assert not SecurityEvent.objects.filter(kind=EventKind.SESSION_ENDED).exists()


def test_each_staff_action_names_itself(user, make_user):
    staff = make_user(email="root@example.com", name="Root", is_staff=True, is_superuser=True)
    admin = device()
    force_page_login(admin, staff)
    for action in ("deactivate", "reactivate"):
        token = csrf_from_page(admin, "/admin/accounts/user/")
        admin.post(
            "/admin/accounts/user/", {"action": action, "_selected_action": [user.pk], "csrfmiddlewaretoken": token}
        )
    events = SecurityEvent.objects.filter(kind=EventKind.STAFF_ACTION).order_by("created_at", "id")
    assert [e.detail["action"] for e in events] == ["deactivate", "reactivate"]
    assert {e.actor_id for e in events} == {staff.pk}


def test_staff_actions_are_not_shown_to_the_user_as_their_own_activity(user, make_user):
    staff = make_user(email="root@example.com", name="Root", is_staff=True, is_superuser=True)
    api_sign_in(device())
    staff_deactivate(staff=staff, user=user, client=ClientInfo(ip_address=IP, user_agent=UA))
    kinds = [event.kind for event in recent_events_of(user=user)]
    assert kinds == ["sign_in_succeeded"]


# --- One transaction with the change --------------------------------------------------------------------------


def write_then_fail(module, monkeypatch):
    """Make the flow's own record_event write its row and then fail, inside the flow's transaction."""
    real = module.record_event

    def failing(**kwargs):
        real(**kwargs)
        assert SecurityEvent.objects.filter(kind=kwargs["kind"]).exists()  # it was written...
        raise RuntimeError("database went away")

    monkeypatch.setattr(module, "record_event", failing)


def get_me(access: str):
    return device().get(ME_URL, **bearer(access))


def test_password_change_that_fails_after_writing_its_event_leaves_neither(user, monkeypatch):
    here = start_device_session(user=user, ip_address=IP, user_agent=UA)
    other = start_device_session(user=user, ip_address=OTHER_IP, user_agent=OTHER_UA)
    write_then_fail(password_change_module, monkeypatch)
    with pytest.raises(RuntimeError):
        change_password(
            user=user, current_password=STRONG_PASSWORD, new_password=NEW_PASSWORD, session_id=here.session.pk
        )
    assert not SecurityEvent.objects.filter(kind=EventKind.PASSWORD_CHANGED).exists()
    fresh = User.objects.get(pk=user.pk)
    assert fresh.check_password(STRONG_PASSWORD)
    assert not fresh.check_password(NEW_PASSWORD)
    assert DeviceSession.objects.get(pk=other.session.pk).revoked_at is None


def test_password_change_that_fails_while_ending_sessions_records_nothing(user, monkeypatch):
    here = start_device_session(user=user, ip_address=IP, user_agent=UA)

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(password_change_module, "security_reset", broken)
    with pytest.raises(RuntimeError):
        change_password(
            user=user, current_password=STRONG_PASSWORD, new_password=NEW_PASSWORD, session_id=here.session.pk
        )
    assert not SecurityEvent.objects.filter(kind=EventKind.PASSWORD_CHANGED).exists()
    assert User.objects.get(pk=user.pk).check_password(STRONG_PASSWORD)


def test_a_rolled_back_password_change_leaves_other_devices_signed_in(user, monkeypatch):
    """Sessions whose ending was rolled back must keep working, for the API as well as in the database."""
    here = start_device_session(user=user, ip_address=IP, user_agent=UA)
    other = start_device_session(user=user, ip_address=OTHER_IP, user_agent=OTHER_UA)
    assert get_me(other.access_token).status_code == 200
    write_then_fail(password_change_module, monkeypatch)
    with pytest.raises(RuntimeError):
        change_password(
            user=user, current_password=STRONG_PASSWORD, new_password=NEW_PASSWORD, session_id=here.session.pk
        )
    assert DeviceSession.objects.get(pk=other.session.pk).revoked_at is None
    response = get_me(other.access_token)
    assert response.status_code == 200, response.json()


def test_password_reset_that_fails_after_writing_its_event_leaves_neither(user, mailoutbox, monkeypatch):
    request_password_reset(email=user.email)
    token = mailed_token(mailoutbox, "/password/reset/")
    write_then_fail(password_reset_module, monkeypatch)
    with pytest.raises(RuntimeError):
        reset_password(token=token, password=NEW_PASSWORD)
    assert not SecurityEvent.objects.filter(kind=EventKind.PASSWORD_RESET_COMPLETED).exists()
    assert User.objects.get(pk=user.pk).check_password(STRONG_PASSWORD)
    assert PasswordResetToken.objects.get(user=user).used_at is None


def test_verification_that_fails_after_writing_its_event_leaves_neither(make_user, mailoutbox, monkeypatch):
    unverified = make_user(verified=False)
    send_verification_email(user=unverified)
    token = mailed_token(mailoutbox, "/verify-email/")
    write_then_fail(verification_module, monkeypatch)
    with pytest.raises(RuntimeError):
        verify_email(token=token, verifier=Verifier(password=STRONG_PASSWORD))
    assert not SecurityEvent.objects.filter(kind=EventKind.EMAIL_VERIFIED).exists()
    assert User.objects.get(pk=unverified.pk).email_verified_at is None
    assert EmailVerificationToken.objects.get(user=unverified).used_at is None


def test_deletion_that_fails_after_writing_its_event_leaves_the_account(user, monkeypatch):
    def broken(ids):
        raise RuntimeError("cache went away")

    monkeypatch.setattr(account_deletion_module, "mark_sessions_ended", broken)
    user_id = user.pk
    with pytest.raises(RuntimeError):
        delete_account(user=user, password=STRONG_PASSWORD)
    assert User.objects.filter(pk=user_id).exists()
    assert not SecurityEvent.objects.filter(kind=EventKind.ACCOUNT_DELETED).exists()


def test_staff_deactivation_that_fails_after_writing_its_event_leaves_the_user_active(user, make_user, monkeypatch):
    staff = make_user(email="root@example.com", name="Root", is_staff=True, is_superuser=True)
    session = start_device_session(user=user, ip_address=IP, user_agent=UA)
    write_then_fail(support_module, monkeypatch)
    with pytest.raises(RuntimeError):
        staff_deactivate(staff=staff, user=user)
    assert User.objects.get(pk=user.pk).is_active is True
    assert DeviceSession.objects.get(pk=session.session.pk).revoked_at is None
    assert not SecurityEvent.objects.filter(kind=EventKind.STAFF_ACTION).exists()


# --- No secrets, whatever happens -------------------------------------------------------------------------------


def test_a_full_journey_leaves_no_secret_in_the_audit_log(clock, db, mailoutbox, settings):
    email, new_email = "dana@example.com", "dana.renamed@example.com"
    passwords = {STRONG_PASSWORD, NEW_PASSWORD, NEWER_PASSWORD, WRONG_PASSWORD}
    raw_tokens: set[str] = set()
    hashes: set[str] = set()

    def collect_stored_hashes():
        hashes.update(DeviceSession.objects.values_list("refresh_token_hash", flat=True))
        hashes.update(RotatedRefreshToken.objects.values_list("token_hash", flat=True))
        hashes.update(PasswordResetToken.objects.values_list("token_hash", flat=True))
        hashes.update(EmailVerificationToken.objects.values_list("token_hash", flat=True))

    def keep_cookie(client):
        value = refresh_cookie_value(client)
        if value:
            raw_tokens.add(value)

    def keep_mailed(fragment):
        token = mailed_token(mailoutbox, fragment)
        raw_tokens.add(token)
        collect_stored_hashes()
        return token

    # Sign up; try to sign in before verifying, and with a wrong password.
    spa = device()
    assert (
        post_json(spa, REGISTER_API, {"email": email, "password": STRONG_PASSWORD, "name": "Dana"}).status_code == 202
    )
    verify_token = keep_mailed("/verify-email/")
    assert login_response(spa, email, STRONG_PASSWORD).status_code == 403
    assert login_response(spa, email, WRONG_PASSWORD).status_code == 401
    assert post_json(spa, EMAIL_VERIFY_API, {"token": verify_token}).status_code == 200

    # Sign in on the page and through the API; refresh, then replay an old refresh token.
    browser = device(OTHER_IP, OTHER_UA)
    assert page_sign_in(browser, email).status_code == 302
    raw_tokens.add(browser.cookies[django_settings.ACCOUNTS_REFRESH_COOKIE_NAME].value)
    raw_tokens.add(browser.cookies[django_settings.SESSION_COOKIE_NAME].value)
    raw_tokens.add(api_sign_in(spa, email))
    keep_cookie(spa)
    collect_stored_hashes()
    first_refresh = refresh_cookie_value(spa)
    refreshed = post_json(spa, REFRESH_URL, **csrf_header(spa))
    assert refreshed.status_code == 200
    raw_tokens.add(refreshed.json()["access"])
    keep_cookie(spa)
    collect_stored_hashes()
    clock.shift(timedelta(seconds=settings.ACCOUNTS_REFRESH_REUSE_GRACE + 1))
    thief = device("192.0.2.66", "Thief/1.0")
    thief.cookies[settings.ACCOUNTS_REFRESH_COOKIE_NAME] = first_refresh
    assert post_json(thief, REFRESH_URL, **csrf_header(thief)).status_code == 401
    assert page_sign_out(browser).status_code == 302

    # Forgotten password: request a link (also for an unknown address) and use it.
    assert post_json(spa, PASSWORD_RESET_API, {"email": email}).status_code == 202
    assert post_json(spa, PASSWORD_RESET_API, {"email": "who@example.com"}).status_code == 202
    reset_token = keep_mailed("/password/reset/")
    response = post_json(spa, PASSWORD_RESET_CONFIRM_API, {"token": reset_token, "password": NEW_PASSWORD})
    assert response.status_code == 204

    # Signed in again: change the password, change the address, then delete the account.
    spa = device()
    access = api_sign_in(spa, email, NEW_PASSWORD)
    raw_tokens.add(access)
    keep_cookie(spa)
    collect_stored_hashes()
    response = post_json(
        spa, PASSWORD_CHANGE_API, {"current_password": NEW_PASSWORD, "new_password": NEWER_PASSWORD}, **bearer(access)
    )
    assert response.status_code == 204
    response = post_json(spa, EMAIL_CHANGE_API, {"new_email": new_email, "password": NEWER_PASSWORD}, **bearer(access))
    assert response.status_code == 202
    change_token = keep_mailed("/verify-email/")
    assert post_json(spa, EMAIL_VERIFY_API, {"token": change_token, "password": NEWER_PASSWORD}).status_code == 200
    collect_stored_hashes()
    response = spa.delete(ME_URL, {"password": NEWER_PASSWORD}, content_type="application/json", **bearer(access))
    assert response.status_code == 204

    raw_tokens.discard("")
    hashes.discard("")
    hashes.update(sha256(token) for token in raw_tokens)
    assert len(raw_tokens) >= 8 and len(hashes) >= 8
    kinds = set(SecurityEvent.objects.values_list("kind", flat=True))
    assert kinds >= {
        "sign_in_failed",
        "email_verified",
        "sign_in_succeeded",
        "refresh_reuse_detected",
        "sign_out",
        "password_reset_requested",
        "password_reset_completed",
        "password_changed",
        "email_change_requested",
        "email_change_confirmed",
        "account_deleted",
    }
    secrets = passwords | raw_tokens | hashes
    addresses = {email, new_email, "who@example.com", "dana", "who@"}
    rows = list(SecurityEvent.objects.values())
    assert len(rows) >= 12
    for row in rows:
        texts = {column: (json.dumps(value) if column == "detail" else str(value)) for column, value in row.items()}
        for column, text in texts.items():
            for secret in secrets:
                assert secret not in text, f"{row['kind']}.{column} holds a secret"
            for address in addresses:
                assert address not in text.lower(), f"{row['kind']}.{column} holds an address"
        for key in row["detail"]:
            assert not any(word in key.lower() for word in ("password", "token", "hash", "secret", "email"))
    deleted = SecurityEvent.objects.get(kind=EventKind.ACCOUNT_DELETED)
    assert deleted.email_hash == email_fingerprint(new_email)


@pytest.mark.parametrize(
    "key", ["password", "new_password", "Token", "refresh_token_hash", "hash", "client_secret", "PASSWORD_OLD"]
)
def test_record_event_refuses_detail_keys_that_could_hold_secrets(user, key):
    with pytest.raises(ValueError):
        record_event(kind=EventKind.SIGN_IN_SUCCEEDED, user=user, **{key: "whatever"})
    assert not SecurityEvent.objects.exists()


def test_record_event_keeps_safe_details_and_bounds_their_size(user):
    event = record_event(
        kind=EventKind.SIGN_IN_SUCCEEDED,
        user=user,
        client=ClientInfo(ip_address="2001:db8::1", user_agent="U" * 600),
        via="api",
        count=3,
        flag=True,
        nothing=None,
        note="n" * 500,
    )
    event.refresh_from_db()
    assert event.detail == {"via": "api", "count": 3, "flag": True, "nothing": None, "note": "n" * 200}
    assert event.user_agent == "U" * 512
    assert event.ip_address == "2001:db8::1"


def test_record_event_stores_an_address_only_as_a_fingerprint_and_only_without_a_user(user):
    with_user = record_event(kind=EventKind.SIGN_IN_FAILED, user=user, email=user.email)
    without = record_event(kind=EventKind.SIGN_IN_FAILED, email="Someone@Example.com")
    assert with_user.email_hash == ""
    assert without.email_hash == email_fingerprint("someone@example.com")
    for event in (with_user, without):
        assert "example.com" not in json.dumps(SecurityEvent.objects.filter(pk=event.pk).values().get(), default=str)


# --- Retention -----------------------------------------------------------------------------------------------


def event_at(moment: datetime) -> SecurityEvent:
    with time_machine.travel(moment, tick=False):
        return record_event(kind=EventKind.SIGN_IN_FAILED, email="someone@example.com", reason="invalid_credentials")


def purge(now: datetime) -> str:
    out = StringIO()
    with time_machine.travel(now, tick=False):
        call_command("purge_auth_data", stdout=out)
    return out.getvalue()


def test_purge_deletes_events_older_than_the_default_retention_and_keeps_newer(db, settings):
    assert settings.ACCOUNTS_AUDIT_RETENTION_DAYS == 180
    now = START
    too_old = event_at(now - timedelta(days=180, seconds=1))
    much_too_old = event_at(now - timedelta(days=400))
    just_kept = event_at(now - timedelta(days=179, hours=23))
    recent = event_at(now - timedelta(days=1))
    output = purge(now)
    remaining = set(SecurityEvent.objects.values_list("pk", flat=True))
    assert remaining == {just_kept.pk, recent.pk}
    assert too_old.pk not in remaining and much_too_old.pk not in remaining
    assert "Deleted 2 security events." in output


def test_purge_honours_a_changed_retention(db, settings):
    settings.ACCOUNTS_AUDIT_RETENTION_DAYS = 30
    now = START
    old = event_at(now - timedelta(days=31))
    kept = event_at(now - timedelta(days=29))
    purge(now)
    assert list(SecurityEvent.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not SecurityEvent.objects.filter(pk=old.pk).exists()


def test_purge_with_a_longer_retention_keeps_what_the_default_would_delete(db, settings):
    settings.ACCOUNTS_AUDIT_RETENTION_DAYS = 365
    now = START
    event = event_at(now - timedelta(days=200))
    purge(now)
    assert SecurityEvent.objects.filter(pk=event.pk).exists()


def test_purge_deletes_nothing_when_every_event_is_recent(db):
    events = [event_at(START - timedelta(hours=hours)) for hours in (0, 1, 48)]
    output = purge(START)
    assert SecurityEvent.objects.count() == len(events)
    assert "Deleted 0 security events." in output
