"""Self-service through the JSON API: profile, password and email change (confirmed with the emailed
token), device sessions with re-authentication, recent security events, account deletion, and the schema."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.conf import settings as django_settings
from django.test import Client

from accounts.audit import email_fingerprint, record_event
from accounts.flows.signin import DEVICE_SESSION_KEY
from accounts.models import DeviceSession, EmailVerificationToken, PasswordResetToken, SecurityEvent, User
from tests.support.accounts import STRONG_PASSWORD
from tests.support.api import (
    ME_URL,
    api_client,
    assert_api_error,
    bearer,
    get_me,
    login,
    login_response,
    patch_json,
    post_json,
    refresh,
    refresh_cookie_value,
    session_id_of,
)
from tests.support.mail import link_in, links_in, mails_to, token_from_link, without_device_notices
from todos.models import Todo

pytestmark = pytest.mark.django_db

ALICE = "alice@example.com"
BOB = "bob@example.com"
NEW_ADDRESS = "new.person@example.com"
NEW_PASSWORD = "a completely different passphrase"
WRONG_PASSWORD = "not the right passphrase at all"

PASSWORD_CHANGE_URL = "/api/auth/password/change/"
EMAIL_CHANGE_URL = "/api/auth/email/change/"
EMAIL_VERIFY_URL = "/api/auth/email/verify/"
RESET_URL = "/api/auth/password/reset/"
RESET_CONFIRM_URL = "/api/auth/password/reset/confirm/"
REGISTER_URL = "/api/auth/register/"
SESSIONS_URL = "/api/auth/sessions/"
REVOKE_OTHERS_URL = "/api/auth/sessions/revoke-others/"
REAUTHENTICATE_URL = "/api/auth/reauthenticate/"
EVENTS_URL = "/api/auth/events/"
SCHEMA_URL = "/api/schema/"
PAGE_LOGIN = "/accounts/login/"
PAGE_ACCOUNT = "/accounts/"

START = datetime(2031, 5, 1, 9, 0, 0, tzinfo=UTC)
PAST_THE_WINDOW = 6 * 60
EMAIL_CHANGE_ACCEPTED = {"detail": "Check the new address for a confirmation link."}


# --- Helpers ------------------------------------------------------------------------------


@pytest.fixture
def client() -> Client:
    return api_client()


@pytest.fixture
def bob(make_user):
    return make_user(email=BOB, name="Bob")


@pytest.fixture
def long_access_tokens(settings):
    """Access tokens outlive a six-minute time travel, so only re-authentication is at stake."""
    settings.JWT_ACCESS_TOKEN_LIFETIME = 3600


def device(email: str = ALICE, password: str = STRONG_PASSWORD, **extra) -> tuple[Client, str]:
    """Another signed-in API client (it holds its own refresh cookie) and its access token."""
    other = api_client()
    return other, login(other, email, password, **extra)


def page_browser(email: str = ALICE, password: str = STRONG_PASSWORD) -> Client:
    """A browser signed in through the login page (which opens a device session)."""
    browser = Client()
    response = browser.post(PAGE_LOGIN, {"email": email, "password": password})
    assert response.status_code == 302, response.content
    return browser


def page_signed_in(browser: Client) -> bool:
    return browser.get(PAGE_ACCOUNT).status_code == 200


def session_live(session_id: str) -> bool:
    return DeviceSession.objects.get(pk=session_id).revoked_at is None


def token_works(access_token: str) -> bool:
    response = get_me(access_token)
    if response.status_code == 200:
        return True
    assert_error(response, 401, "session_ended")
    return False


def assert_error(response, status: int, code: str, *, fields: set[str] | None = None) -> dict:
    """The API's error shape with this status and code (and exactly these field names, if given)."""
    return assert_api_error(response, status, code, fields=fields, exactly=True)


def delete_json(client: Client, path: str, data=None, **extra):
    return client.delete(path, {} if data is None else data, content_type="application/json", **extra)


def change_password(client: Client, access: str, current=STRONG_PASSWORD, new=NEW_PASSWORD):
    return post_json(client, PASSWORD_CHANGE_URL, {"current_password": current, "new_password": new}, **bearer(access))


def change_email(client: Client, access: str, new_email=NEW_ADDRESS, password=STRONG_PASSWORD):
    return post_json(client, EMAIL_CHANGE_URL, {"new_email": new_email, "password": password}, **bearer(access))


def reauthenticate(client: Client, access: str, password=STRONG_PASSWORD):
    return post_json(client, REAUTHENTICATE_URL, {"password": password}, **bearer(access))


def end_session(client: Client, access: str, session_id: str):
    return client.delete(f"{SESSIONS_URL}{session_id}/", **bearer(access))


def revoke_others(client: Client, access: str):
    return post_json(client, REVOKE_OTHERS_URL, **bearer(access))


def verify(token: str, password: str | None = STRONG_PASSWORD):
    """Redeem an emailed token from a fresh client, with the account's password (which a
    change, or a verification away from the signing-up client, asks for)."""
    body = {"token": token} if password is None else {"token": token, "password": password}
    return post_json(api_client(), EMAIL_VERIFY_URL, body)


def sign_in_status(email: str, password: str) -> tuple[int, str | None]:
    response = login_response(api_client(), email, password)
    return response.status_code, response.json().get("code")


GENERIC_FAILURE = (401, "invalid_credentials")


def verification_token_in(message) -> str:
    link = link_in(message, "/verify-email/")
    return token_from_link(link)


def reset_token_for(mailoutbox, address: str = ALICE) -> str:
    assert post_json(api_client(), RESET_URL, {"email": address}).status_code == 202
    link = link_in(mails_to(mailoutbox, address)[-1], "/password/reset/")
    return token_from_link(link)


def events_of(user, kind) -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(user=user, kind=kind))


# --- Profile ----------------------------------------------------------------------------------


def test_patch_me_saves_the_stripped_name(client, user):
    access = login(client)
    response = patch_json(client, ME_URL, {"name": "  Alice Smith\t "}, **bearer(access))
    assert response.status_code == 200
    assert response.json() == {
        "id": user.pk,
        "email": ALICE,
        "name": "Alice Smith",
        "email_verified": True,
        "email_undeliverable": None,
    }
    assert get_me(access).json()["name"] == "Alice Smith"


@pytest.mark.parametrize("name", ["", "   ", "n" * 151, 7, None, ["Alice"]])
def test_patch_me_refuses_a_bad_name_and_changes_nothing(client, user, name):
    access = login(client)
    response = patch_json(client, ME_URL, {"name": name}, **bearer(access))
    assert_error(response, 400, "invalid_input", fields={"name"})
    user.refresh_from_db()
    assert user.name == "Alice"


def test_patch_me_with_the_token_of_an_ended_session_is_refused(client, user):
    access = login(client)
    assert end_session(client, access, session_id_of(access)).status_code == 204
    assert_error(patch_json(client, ME_URL, {"name": "Mallory"}, **bearer(access)), 401, "session_ended")
    user.refresh_from_db()
    assert user.name == "Alice"


# --- Change password ---------------------------------------------------------------------------


def test_password_change_with_a_wrong_current_password_is_invalid_password_and_changes_nothing(
    client, user, mailoutbox
):
    access = login(client)
    _, other_access = device()
    response = change_password(client, access, current=WRONG_PASSWORD)
    body = assert_error(response, 400, "invalid_password", fields={"current_password"})
    assert body["fields"]["current_password"] == ["The password is not correct."]
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)
    assert token_works(other_access)
    assert without_device_notices(mailoutbox) == []
    assert events_of(user, SecurityEvent.Kind.PASSWORD_CHANGED) == []


@pytest.mark.parametrize(
    ("weak", "reason"),
    [("short pw", "too short"), ("password1234", "too common"), ("alice@example.com", "too similar")],
)
def test_password_change_to_a_weak_password_is_password_rejected_and_changes_nothing(
    client, user, weak, reason, mailoutbox
):
    access = login(client)
    _, other_access = device()
    response = change_password(client, access, new=weak)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "password_rejected"
    assert reason in body["detail"]
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)
    assert token_works(other_access)
    assert without_device_notices(mailoutbox) == []


def test_password_rejected_names_the_new_password_field_of_the_request(client, user):
    """The SPA maps `fields` onto its inputs; the request calls the new password `new_password`."""
    access = login(client)
    response = change_password(client, access, new="short pw")
    assert_error(response, 400, "password_rejected", fields={"new_password"})


@pytest.mark.parametrize(
    ("data", "bad_fields"),
    [
        ({}, {"current_password", "new_password"}),
        ({"current_password": STRONG_PASSWORD}, {"new_password"}),
        ({"new_password": NEW_PASSWORD}, {"current_password"}),
        ({"current_password": 1, "new_password": NEW_PASSWORD}, {"current_password"}),
        ({"current_password": STRONG_PASSWORD, "new_password": None}, {"new_password"}),
    ],
)
def test_password_change_with_missing_or_wrongly_typed_fields_is_invalid_input(client, user, data, bad_fields):
    access = login(client)
    response = post_json(client, PASSWORD_CHANGE_URL, data, **bearer(access))
    assert_error(response, 400, "invalid_input", fields=bad_fields)
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)


def test_password_change_without_an_access_token_is_401(client, user):
    response = post_json(
        client, PASSWORD_CHANGE_URL, {"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert_error(response, 401, "not_authenticated")
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)


def test_password_change_replaces_the_password(client, user):
    access = login(client)
    assert change_password(client, access).status_code == 204
    assert sign_in_status(ALICE, NEW_PASSWORD)[0] == 200
    assert sign_in_status(ALICE, STRONG_PASSWORD) == GENERIC_FAILURE


def test_password_change_keeps_this_session_and_ends_every_other(client, user):
    access = login(client)
    other_client, other_access = device()
    browser = page_browser()
    assert change_password(client, access).status_code == 204
    assert token_works(access)
    assert refresh(client).status_code == 200
    assert not token_works(other_access)
    assert_error(refresh(other_client), 401, "refresh_token_invalid")
    assert not page_signed_in(browser)
    assert session_live(session_id_of(access))


def test_password_change_sends_a_notice_to_the_account_address(client, user, mailoutbox):
    access = login(client)
    change_password(client, access)
    [message] = mailoutbox
    assert message.to == [ALICE]
    assert message.subject == f"Your {django_settings.SITE_NAME} password was changed"
    assert NEW_PASSWORD not in message.body


def test_password_change_invalidates_outstanding_reset_tokens(client, user, mailoutbox):
    access = login(client)
    token = reset_token_for(mailoutbox)
    change_password(client, access)
    assert not PasswordResetToken.objects.filter(user=user, used_at__isnull=True).exists()
    response = post_json(api_client(), RESET_CONFIRM_URL, {"token": token, "password": "yet another new passphrase"})
    assert_error(response, 400, "token_invalid", fields={"token"})
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_password_change_writes_a_password_changed_event(client, user):
    access = login(client)
    device()
    device()
    post_json(
        client,
        PASSWORD_CHANGE_URL,
        {"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD},
        HTTP_USER_AGENT="SPA/2.0",
        REMOTE_ADDR="203.0.113.30",
        **bearer(access),
    )
    [event] = events_of(user, SecurityEvent.Kind.PASSWORD_CHANGED)
    assert event.detail == {"sessions_ended": 2}
    assert (event.user_agent, event.ip_address) == ("SPA/2.0", "203.0.113.30")


# --- Change email ------------------------------------------------------------------------------------


def test_email_change_answers_202_and_sends_a_link_to_the_new_address(client, user, mailoutbox):
    access = login(client)
    response = change_email(client, access)
    assert response.status_code == 202
    assert response.json() == EMAIL_CHANGE_ACCEPTED
    [message] = mails_to(mailoutbox, NEW_ADDRESS)
    assert message.to == [NEW_ADDRESS]
    link = link_in(message, "/verify-email/")
    assert link.startswith(f"{django_settings.SITE_URL}/accounts/verify-email/")
    assert get_me(access).json()["email"] == ALICE


def test_email_change_with_a_wrong_password_is_invalid_password_and_sends_nothing(client, user, mailoutbox):
    access = login(client)
    response = change_email(client, access, password=WRONG_PASSWORD)
    assert_error(response, 400, "invalid_password", fields={"password"})
    assert mailoutbox == []
    assert not EmailVerificationToken.objects.filter(user=user).exists()


def test_email_change_without_the_password_is_invalid_input(client, user, mailoutbox):
    access = login(client)
    response = post_json(client, EMAIL_CHANGE_URL, {"new_email": NEW_ADDRESS}, **bearer(access))
    assert_error(response, 400, "invalid_input", fields={"password"})
    assert mailoutbox == []


@pytest.mark.parametrize("same", [ALICE, "Alice@EXAMPLE.com"])
def test_email_change_to_the_current_address_is_email_unchanged(client, user, same, mailoutbox):
    access = login(client)
    response = change_email(client, access, new_email=same)
    assert_error(response, 400, "email_unchanged", fields={"new_email"})
    assert mailoutbox == []


@pytest.mark.parametrize("invalid", ["", "not-an-address", "a@b@example.com", 42, None])
def test_email_change_to_an_invalid_address_is_invalid_input(client, user, invalid, mailoutbox):
    access = login(client)
    response = change_email(client, access, new_email=invalid)
    assert_error(response, 400, "invalid_input", fields={"new_email"})
    assert mailoutbox == []


def test_email_change_normalises_a_mixed_case_address(client, user, mailoutbox):
    access = login(client)
    change_email(client, access, new_email="NEW.Person@Example.COM")
    [message] = mails_to(mailoutbox, NEW_ADDRESS)
    assert message.to == [NEW_ADDRESS]
    assert verify(verification_token_in(message)).status_code == 200
    assert get_me(access).json()["email"] == NEW_ADDRESS


def test_email_change_without_an_access_token_is_401(client, user, mailoutbox):
    response = post_json(client, EMAIL_CHANGE_URL, {"new_email": NEW_ADDRESS, "password": STRONG_PASSWORD})
    assert_error(response, 401, "not_authenticated")
    assert mailoutbox == []


def test_until_confirmed_sign_in_and_reset_keep_using_the_old_address(client, user, mailoutbox):
    access = login(client)
    change_email(client, access)
    mailoutbox.clear()
    assert sign_in_status(ALICE, STRONG_PASSWORD)[0] == 200
    assert sign_in_status(NEW_ADDRESS, STRONG_PASSWORD) == GENERIC_FAILURE
    assert post_json(api_client(), RESET_URL, {"email": NEW_ADDRESS}).status_code == 202
    assert without_device_notices(mailoutbox) == []
    assert post_json(api_client(), RESET_URL, {"email": ALICE}).status_code == 202
    assert [message.to for message in without_device_notices(mailoutbox)] == [[ALICE]]


def test_verifying_the_token_switches_to_the_new_verified_address(client, user, mailoutbox):
    access = login(client)
    change_email(client, access)
    response = verify(verification_token_in(mails_to(mailoutbox, NEW_ADDRESS)[0]))
    assert response.status_code == 200
    assert response.json() == {"detail": "Your email address is verified."}
    user.refresh_from_db()
    assert user.email == NEW_ADDRESS
    assert user.email_verified
    assert get_me(access).json() == {
        "id": user.pk,
        "email": NEW_ADDRESS,
        "name": "Alice",
        "email_verified": True,
        "email_undeliverable": None,
    }


def test_verifying_a_change_tells_the_old_address_with_the_new_one_masked(client, user, mailoutbox):
    access = login(client)
    change_email(client, access)
    verify(verification_token_in(mails_to(mailoutbox, NEW_ADDRESS)[0]))
    [_requested, notice] = mails_to(mailoutbox, ALICE)
    assert notice.subject == f"The email address of your {django_settings.SITE_NAME} account was changed"
    assert "n***@example.com" in notice.body
    assert NEW_ADDRESS not in notice.body
    assert not any("/verify-email/" in link for link in links_in(notice))


def test_after_verifying_sign_in_uses_the_new_address_and_not_the_old(client, user, mailoutbox):
    access = login(client)
    change_email(client, access)
    verify(verification_token_in(mails_to(mailoutbox, NEW_ADDRESS)[0]))
    assert sign_in_status(NEW_ADDRESS, STRONG_PASSWORD)[0] == 200
    assert sign_in_status(ALICE, STRONG_PASSWORD) == GENERIC_FAILURE


def test_change_token_works_only_once(client, user, mailoutbox):
    access = login(client)
    change_email(client, access)
    token = verification_token_in(mails_to(mailoutbox, NEW_ADDRESS)[0])
    assert verify(token).status_code == 200
    assert_error(verify(token), 400, "token_used", fields={"token"})


def test_change_to_a_taken_address_answers_exactly_like_a_free_one(client, user, bob, mailoutbox):
    access = login(client)
    free = change_email(client, access, new_email="free@example.com")
    taken = change_email(client, access, new_email=BOB)
    assert (taken.status_code, taken.json()) == (free.status_code, free.json()) == (202, EMAIL_CHANGE_ACCEPTED)


def test_change_to_a_taken_address_sends_no_link_and_tells_its_owner(client, user, bob, mailoutbox):
    access = login(client)
    change_email(client, access, new_email=BOB)
    [notice] = mails_to(mailoutbox, BOB)
    assert notice.subject == f"Someone tried to move a {django_settings.SITE_NAME} account to your address"
    assert not any("/verify-email/" in link for link in links_in(notice))
    assert not EmailVerificationToken.objects.filter(user=user, purpose=EmailVerificationToken.Purpose.CHANGE).exists()
    # The account's own address is told as for a free address (with its way to cancel).
    [requested] = mails_to(mailoutbox, ALICE)
    assert "/email/change/cancel/" in requested.body
    assert get_me(access).json()["email"] == ALICE


def test_change_token_is_refused_once_the_address_was_registered_meanwhile(client, user, mailoutbox):
    access = login(client)
    change_email(client, access)
    token = verification_token_in(mails_to(mailoutbox, NEW_ADDRESS)[0])
    registration = post_json(
        api_client(), REGISTER_URL, {"email": NEW_ADDRESS, "password": "another strong passphrase", "name": "Newcomer"}
    )
    assert registration.status_code == 202
    assert_error(verify(token), 400, "token_invalid", fields={"token"})
    user.refresh_from_db()
    assert user.email == ALICE
    assert User.objects.get(email=NEW_ADDRESS).name == "Newcomer"
    assert [message.subject for message in mails_to(mailoutbox, ALICE)] == [
        f"Someone asked to change the email address of your {django_settings.SITE_NAME} account"
    ]
    assert sign_in_status(ALICE, STRONG_PASSWORD)[0] == 200


def test_a_newer_change_request_replaces_the_pending_token(client, user, mailoutbox):
    access = login(client)
    change_email(client, access, new_email="first@example.com")
    change_email(client, access, new_email="second@example.com")
    first = verification_token_in(mails_to(mailoutbox, "first@example.com")[0])
    second = verification_token_in(mails_to(mailoutbox, "second@example.com")[0])
    assert_error(verify(first), 400, "token_invalid", fields={"token"})
    assert get_me(access).json()["email"] == ALICE
    assert verify(second).status_code == 200
    assert get_me(access).json()["email"] == "second@example.com"


def test_a_newer_change_request_to_a_taken_address_also_retires_the_pending_token(client, user, bob, mailoutbox):
    """A mistyped first address must not stay able to take the account over once the person asked again."""
    access = login(client)
    change_email(client, access, new_email="typo@example.com")
    pending = verification_token_in(mails_to(mailoutbox, "typo@example.com")[0])
    assert change_email(client, access, new_email=BOB).status_code == 202
    assert_error(verify(pending), 400, "token_invalid", fields={"token"})
    assert get_me(access).json()["email"] == ALICE


def test_a_failed_change_request_leaves_the_pending_token_alone(client, user, mailoutbox):
    access = login(client)
    change_email(client, access)
    pending = verification_token_in(mails_to(mailoutbox, NEW_ADDRESS)[0])
    assert change_email(client, access, new_email="other@example.com", password=WRONG_PASSWORD).status_code == 400
    assert verify(pending).status_code == 200
    assert get_me(access).json()["email"] == NEW_ADDRESS


def test_email_change_writes_requested_and_confirmed_events(client, user, mailoutbox):
    access = login(client)
    change_email(client, access)
    assert len(events_of(user, SecurityEvent.Kind.EMAIL_CHANGE_REQUESTED)) == 1
    assert events_of(user, SecurityEvent.Kind.EMAIL_CHANGE_CONFIRMED) == []
    verify(verification_token_in(mails_to(mailoutbox, NEW_ADDRESS)[0]))
    assert len(events_of(user, SecurityEvent.Kind.EMAIL_CHANGE_CONFIRMED)) == 1
    for event in SecurityEvent.objects.filter(user=user):
        assert NEW_ADDRESS not in str(event.detail)


# --- Device sessions -------------------------------------------------------------------------------------


def test_sessions_list_marks_the_current_one_and_shows_client_details(client, user, bob):
    access = login(client, HTTP_USER_AGENT="Here/1.0", REMOTE_ADDR="203.0.113.5")
    _, other_access = device(HTTP_USER_AGENT="There/2.0", REMOTE_ADDR="198.51.100.6")
    device(BOB)
    response = client.get(SESSIONS_URL, **bearer(access))
    assert response.status_code == 200
    rows = {row["id"]: row for row in response.json()}
    assert set(rows) == {session_id_of(access), session_id_of(other_access)}
    here, there = rows[session_id_of(access)], rows[session_id_of(other_access)]
    assert set(here) == {
        "id",
        "created_at",
        "last_used_at",
        "ip_address",
        "user_agent",
        "device",
        "current",
        "amr",
        "authenticated_at",
    }
    assert here["amr"] == ["pwd"]
    assert (here["current"], here["user_agent"], here["ip_address"]) == (True, "Here/1.0", "203.0.113.5")
    assert (there["current"], there["user_agent"], there["ip_address"]) == (False, "There/2.0", "198.51.100.6")


def test_ending_another_session_within_the_window_refuses_its_token_at_once(client, user):
    access = login(client)
    _, other_access = device()
    assert end_session(client, access, session_id_of(other_access)).status_code == 204
    assert not token_works(other_access)
    assert token_works(access)


def test_ending_another_users_session_is_404_and_ends_nothing(client, user, bob):
    access = login(client)
    _, bobs_access = device(BOB)
    assert_error(end_session(client, access, session_id_of(bobs_access)), 404, "not_found")
    assert token_works(bobs_access)


@pytest.mark.parametrize("bogus", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_ending_a_session_that_does_not_exist_is_404(client, user, bogus):
    access = login(client)
    assert_error(end_session(client, access, bogus), 404, "not_found")
    assert token_works(access)


def test_revoke_others_within_the_window_ends_every_other_session_and_keeps_this_one(client, user, bob):
    access = login(client)
    other_client, other_access = device()
    browser = page_browser()
    _, bobs_access = device(BOB)
    assert revoke_others(client, access).status_code == 204
    assert not token_works(other_access)
    assert not page_signed_in(browser)
    assert_error(refresh(other_client), 401, "refresh_token_invalid")
    assert token_works(access)
    assert refresh(client).status_code == 200
    assert token_works(bobs_access)


# --- Re-authentication --------------------------------------------------------------------------------------


def test_ending_other_sessions_four_minutes_after_sign_in_needs_no_password(client, user, long_access_tokens):
    with time_machine.travel(START, tick=False) as traveller:
        access = login(client)
        _, first = device()
        _, second = device()
        traveller.shift(4 * 60)
        assert end_session(client, access, session_id_of(first)).status_code == 204
        assert revoke_others(client, access).status_code == 204
        assert not token_works(second)


@pytest.mark.parametrize("action", ["delete-one", "revoke-others"])
def test_ending_other_sessions_six_minutes_after_sign_in_is_reauthentication_required(
    client, user, long_access_tokens, action
):
    with time_machine.travel(START, tick=False) as traveller:
        access = login(client)
        _, other_access = device()
        traveller.shift(PAST_THE_WINDOW)
        if action == "delete-one":
            response = end_session(client, access, session_id_of(other_access))
        else:
            response = revoke_others(client, access)
        assert_error(response, 403, "reauthentication_required")
        assert token_works(other_access)
        assert token_works(access)
        assert events_of(user, SecurityEvent.Kind.SESSION_ENDED) == []


def test_after_reauthenticating_ending_other_sessions_works(client, user, long_access_tokens):
    with time_machine.travel(START, tick=False) as traveller:
        access = login(client)
        _, first = device()
        _, second = device()
        traveller.shift(PAST_THE_WINDOW)
        assert reauthenticate(client, access).status_code == 204
        assert end_session(client, access, session_id_of(first)).status_code == 204
        assert revoke_others(client, access).status_code == 204
        assert not token_works(first)
        assert not token_works(second)
        assert token_works(access)


def test_reauthentication_with_a_wrong_password_is_invalid_password_and_opens_nothing(client, user, long_access_tokens):
    with time_machine.travel(START, tick=False) as traveller:
        access = login(client)
        _, other_access = device()
        traveller.shift(PAST_THE_WINDOW)
        assert_error(reauthenticate(client, access, WRONG_PASSWORD), 400, "invalid_password", fields={"password"})
        assert_error(revoke_others(client, access), 403, "reauthentication_required")
        assert token_works(other_access)


@pytest.mark.parametrize("data", [{}, {"password": None}, {"password": 12345}])
def test_reauthentication_without_a_password_string_is_invalid_input(client, user, data):
    access = login(client)
    assert_error(
        post_json(client, REAUTHENTICATE_URL, data, **bearer(access)), 400, "invalid_input", fields={"password"}
    )


def test_reauthentication_without_an_access_token_is_401(client, user):
    assert_error(post_json(client, REAUTHENTICATE_URL, {"password": STRONG_PASSWORD}), 401, "not_authenticated")


def test_the_reauthentication_window_follows_the_setting(client, user, settings):
    settings.ACCOUNTS_REAUTHENTICATION_WINDOW = 60
    with time_machine.travel(START, tick=False) as traveller:
        access = login(client)
        _, other_access = device()
        traveller.shift(90)
        assert_error(revoke_others(client, access), 403, "reauthentication_required")
        assert token_works(other_access)


def test_refreshing_the_access_token_is_not_reauthentication(client, user):
    with time_machine.travel(START, tick=False) as traveller:
        login(client)
        _, _other_access = device()
        traveller.shift(PAST_THE_WINDOW)
        fresh = refresh(client)
        assert fresh.status_code == 200
        access = fresh.json()["access"]
        assert_error(revoke_others(client, access), 403, "reauthentication_required")
        assert reauthenticate(client, access).status_code == 204
        assert revoke_others(client, access).status_code == 204


def test_reauthenticating_one_device_does_not_open_the_window_on_another(client, user, long_access_tokens):
    with time_machine.travel(START, tick=False) as traveller:
        access = login(client)
        second_client, second_access = device()
        _, third_access = device()
        traveller.shift(PAST_THE_WINDOW)
        assert reauthenticate(client, access).status_code == 204
        response = end_session(second_client, second_access, session_id_of(third_access))
        assert_error(response, 403, "reauthentication_required")
        assert token_works(third_access)


def test_ending_your_own_current_session_needs_no_reauthentication(client, user, long_access_tokens):
    with time_machine.travel(START, tick=False) as traveller:
        access = login(client)
        traveller.shift(PAST_THE_WINDOW)
        assert end_session(client, access, session_id_of(access)).status_code == 204
        assert not token_works(access)


def test_password_change_counts_as_entering_the_password(client, user, long_access_tokens):
    with time_machine.travel(START, tick=False) as traveller:
        access = login(client)
        traveller.shift(PAST_THE_WINDOW)
        assert change_password(client, access).status_code == 204
        _, later_access = device(password=NEW_PASSWORD)
        assert revoke_others(client, access).status_code == 204
        assert not token_works(later_access)


def test_email_change_request_counts_as_entering_the_password(client, user, long_access_tokens, mailoutbox):
    with time_machine.travel(START, tick=False) as traveller:
        access = login(client)
        _, other_access = device()
        traveller.shift(PAST_THE_WINDOW)
        assert change_email(client, access).status_code == 202
        assert end_session(client, access, session_id_of(other_access)).status_code == 204
        assert not token_works(other_access)


def test_a_wrong_password_in_a_password_change_does_not_count(client, user, long_access_tokens):
    with time_machine.travel(START, tick=False) as traveller:
        access = login(client)
        _, other_access = device()
        traveller.shift(PAST_THE_WINDOW)
        assert change_password(client, access, current=WRONG_PASSWORD).status_code == 400
        assert_error(revoke_others(client, access), 403, "reauthentication_required")
        assert token_works(other_access)


# --- Recent security activity ---------------------------------------------------------------------------------


def test_events_lists_own_activity_newest_first_with_client_details(client, user, bob, mailoutbox, long_access_tokens):
    with time_machine.travel(START, tick=False) as traveller:
        access = login(client, HTTP_USER_AGENT="SPA/1.0", REMOTE_ADDR="203.0.113.20")
        traveller.shift(60)
        login_response(api_client(), ALICE, WRONG_PASSWORD, HTTP_USER_AGENT="Guesser/0.1", REMOTE_ADDR="203.0.113.66")
        traveller.shift(60)
        change_password(client, access)
        traveller.shift(60)
        change_email(client, access, password=NEW_PASSWORD)
        traveller.shift(60)
        _, other_access = device(password=NEW_PASSWORD)
        traveller.shift(60)
        end_session(client, access, session_id_of(other_access))
        login_response(api_client(), BOB, WRONG_PASSWORD, REMOTE_ADDR="198.51.100.77")
        device(BOB)
        response = client.get(EVENTS_URL, **bearer(access))
    assert response.status_code == 200
    events = response.json()
    assert [event["kind"] for event in events] == [
        "session_ended",
        "sign_in_succeeded",
        "email_change_requested",
        "password_changed",
        "sign_in_failed",
        "sign_in_succeeded",
    ]
    for event in events:
        assert set(event) == {"kind", "description", "created_at", "ip_address", "user_agent"}
    assert [event["description"] for event in events][-2:] == ["Sign-in failed", "Signed in"]
    assert events[-1]["created_at"].startswith("2031-05-01T09:00:00")
    assert (events[-1]["ip_address"], events[-1]["user_agent"]) == ("203.0.113.20", "SPA/1.0")
    assert (events[-2]["ip_address"], events[-2]["user_agent"]) == ("203.0.113.66", "Guesser/0.1")
    assert events[0]["created_at"].startswith("2031-05-01T09:05:00")
    assert "198.51.100.77" not in response.content.decode()


def test_events_never_include_another_users_activity(client, user, bob):
    device(BOB, REMOTE_ADDR="198.51.100.77")
    login_response(api_client(), BOB, WRONG_PASSWORD)
    access = login(client)
    events = client.get(EVENTS_URL, **bearer(access)).json()
    assert [event["kind"] for event in events] == ["sign_in_succeeded"]


def test_events_return_at_most_the_twenty_latest(client, user):
    access = login(client)
    for _ in range(25):
        record_event(kind=SecurityEvent.Kind.SIGN_OUT, user=user)
    events = client.get(EVENTS_URL, **bearer(access)).json()
    assert len(events) == 20
    assert all(event["kind"] == "sign_out" for event in events)


def test_events_without_an_access_token_is_401(client, user):
    assert_error(client.get(EVENTS_URL), 401, "not_authenticated")


# --- Delete account --------------------------------------------------------------------------------------------


def test_delete_with_a_wrong_password_is_invalid_password_and_deletes_nothing(client, user, mailoutbox):
    access = login(client)
    Todo.objects.create(owner=user, title="Keep me")
    assert_error(
        delete_json(client, ME_URL, {"password": WRONG_PASSWORD}, **bearer(access)),
        400,
        "invalid_password",
        fields={"password"},
    )
    assert User.objects.filter(pk=user.pk).exists()
    assert Todo.objects.filter(owner=user).count() == 1
    assert token_works(access)
    assert mailoutbox == []


@pytest.mark.parametrize("data", [{}, {"password": None}, {"password": ["x"]}])
def test_delete_without_a_password_is_invalid_input(client, user, data, mailoutbox):
    access = login(client)
    assert_error(delete_json(client, ME_URL, data, **bearer(access)), 400, "invalid_input", fields={"password"})
    assert User.objects.filter(pk=user.pk).exists()
    assert mailoutbox == []


def test_delete_without_an_access_token_is_401(client, user):
    assert_error(delete_json(client, ME_URL, {"password": STRONG_PASSWORD}), 401, "not_authenticated")
    assert User.objects.filter(pk=user.pk).exists()


def test_delete_removes_the_account_todos_and_sessions_and_clears_the_cookie(client, user, bob, mailoutbox):
    access = login(client)
    other_client, other_access = device()
    browser = page_browser()
    Todo.objects.create(owner=user, title="Mine")
    Todo.objects.create(owner=bob, title="Bob's")
    response = delete_json(client, ME_URL, {"password": STRONG_PASSWORD}, **bearer(access))
    assert response.status_code == 204
    cookie = response.cookies[django_settings.ACCOUNTS_REFRESH_COOKIE_NAME]
    assert cookie.value == "" and cookie["max-age"] == 0 and cookie["path"] == "/api/auth/"
    assert refresh_cookie_value(client) is None
    assert not User.objects.filter(pk=user.pk).exists()
    assert list(Todo.objects.values_list("title", flat=True)) == ["Bob's"]
    assert not DeviceSession.objects.filter(user_id=user.pk).exists()
    assert not token_works(access)
    assert not token_works(other_access)
    assert_error(refresh(other_client), 401, "refresh_token_invalid")
    assert not page_signed_in(browser)


def test_delete_sends_a_confirmation_email(client, user, mailoutbox):
    access = login(client)
    delete_json(client, ME_URL, {"password": STRONG_PASSWORD}, **bearer(access))
    [message] = mailoutbox
    assert message.to == [ALICE]
    assert message.subject == f"Your {django_settings.SITE_NAME} account was deleted"


def test_delete_writes_an_account_deleted_event_keyed_by_a_hash_only(client, user):
    access = login(client)
    delete_json(client, ME_URL, {"password": STRONG_PASSWORD}, **bearer(access))
    [event] = SecurityEvent.objects.filter(kind=SecurityEvent.Kind.ACCOUNT_DELETED)
    assert event.user_id is None
    assert event.email_hash == email_fingerprint(ALICE)
    assert len(event.email_hash) == 64
    assert ALICE not in event.email_hash and "alice" not in str(event.detail)


def test_after_deletion_sign_in_fails_generically_and_the_address_can_register_again(client, user, mailoutbox):
    access = login(client)
    delete_json(client, ME_URL, {"password": STRONG_PASSWORD}, **bearer(access))
    assert sign_in_status(ALICE, STRONG_PASSWORD) == GENERIC_FAILURE
    mailoutbox.clear()
    newcomer = api_client()
    response = post_json(newcomer, REGISTER_URL, {"email": ALICE, "password": NEW_PASSWORD, "name": "Alice II"})
    assert response.status_code == 202
    again = User.objects.get(email=ALICE)
    assert again.pk != user.pk and not again.email_verified
    [message] = mailoutbox
    assert message.to == [ALICE]
    token = verification_token_in(message)
    assert post_json(newcomer, EMAIL_VERIFY_URL, {"token": token}).status_code == 200
    assert sign_in_status(ALICE, NEW_PASSWORD)[0] == 200


# --- Schema ------------------------------------------------------------------------------------------------------

SELF_SERVICE_OPERATIONS = [
    ("/api/auth/me/", "get"),
    ("/api/auth/me/", "patch"),
    ("/api/auth/me/", "delete"),
    ("/api/auth/password/change/", "post"),
    ("/api/auth/email/change/", "post"),
    ("/api/auth/email/verify/", "post"),
    ("/api/auth/sessions/", "get"),
    ("/api/auth/sessions/{session_id}/", "delete"),
    ("/api/auth/sessions/revoke-others/", "post"),
    ("/api/auth/reauthenticate/", "post"),
    ("/api/auth/events/", "get"),
]


@pytest.fixture
def schema(client) -> dict:
    response = client.get(SCHEMA_URL, {"format": "json"})
    assert response.status_code == 200
    return response.json()


def resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def request_properties(schema: dict, path: str, method: str) -> set[str]:
    body = schema["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    return set(resolve(schema, body)["properties"])


@pytest.mark.parametrize(("path", "method"), SELF_SERVICE_OPERATIONS)
def test_schema_documents_every_self_service_operation(schema, path, method):
    assert method in schema["paths"][path]


@pytest.mark.parametrize(
    ("path", "method", "properties"),
    [
        ("/api/auth/password/change/", "post", {"current_password", "new_password"}),
        ("/api/auth/email/change/", "post", {"new_email", "password"}),
        ("/api/auth/reauthenticate/", "post", {"password", "code", "credential"}),
        ("/api/auth/me/", "delete", {"password"}),
        ("/api/auth/me/", "patch", {"name"}),
    ],
)
def test_schema_documents_the_request_bodies(schema, path, method, properties):
    assert request_properties(schema, path, method) == properties


@pytest.mark.parametrize(
    ("path", "method"), [("/api/auth/sessions/{session_id}/", "delete"), ("/api/auth/sessions/revoke-others/", "post")]
)
def test_schema_documents_reauthentication_required(schema, path, method):
    assert "403" in schema["paths"][path][method]["responses"]
    assert "reauthentication_required" in schema["paths"][path][method]["responses"]["403"]["description"]


def test_schema_documents_the_event_fields(schema):
    response = schema["paths"]["/api/auth/events/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert response["type"] == "array"
    assert set(resolve(schema, response["items"])["properties"]) == {
        "kind",
        "description",
        "created_at",
        "ip_address",
        "user_agent",
    }


def test_page_session_id_is_the_device_session_the_api_lists(client, user):
    """The page sign-in opens a device session that the API can see and end."""
    browser = page_browser()
    page_session = browser.session[DEVICE_SESSION_KEY]
    access = login(client)
    listed = {row["id"] for row in client.get(SESSIONS_URL, **bearer(access)).json()}
    assert page_session in listed
    assert end_session(client, access, page_session).status_code == 204
    assert not page_signed_in(browser)
