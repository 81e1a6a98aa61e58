"""Self-service account pages: profile, password and email change, devices, re-authentication,
recent security activity and account deletion, driven through real (CSRF-checked) page sign-ins."""

import re
from datetime import UTC, datetime, timedelta
from html import escape
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.conf import settings as django_settings
from django.forms.forms import NON_FIELD_ERRORS
from django.test import Client
from django.utils import timezone

from accounts.audit import email_fingerprint
from accounts.exceptions import InvalidCredentials
from accounts.flows.signin import DEVICE_SESSION_KEY
from accounts.models import DeviceSession, EmailVerificationToken, PasswordResetToken, SecurityEvent, User
from tests.support.accounts import STRONG_PASSWORD, force_page_login
from tests.support.api import api_client, bearer
from tests.support.api import login as api_login
from tests.support.html import parse_page
from tests.support.mail import link_path_in, links_in, mails_to, without_device_notices
from tests.support.pages import browser, submit
from todos.models import Todo

pytestmark = pytest.mark.django_db

ALICE = "alice@example.com"
BOB = "bob@example.com"
NEW_ADDRESS = "new.person@example.com"
NEW_PASSWORD = "a completely different passphrase"
WRONG_PASSWORD = "not the right passphrase at all"

HOME = "/"
LOGIN = "/accounts/login/"
SIGNUP = "/accounts/signup/"
ACCOUNT = "/accounts/"
PROFILE = "/accounts/profile/"
PASSWORD_CHANGE = "/accounts/password/change/"
PASSWORD_RESET = "/accounts/password/reset/"
EMAIL_CHANGE = "/accounts/email/change/"
EMAIL_CHANGE_SENT = "/accounts/email/change/sent/"
VERIFY_CONFIRM = "/accounts/verify-email/confirm/"
SESSIONS = "/accounts/sessions/"
END_OTHERS = "/accounts/sessions/end-others/"
REAUTHENTICATE = "/accounts/reauthenticate/"
DELETE = "/accounts/delete/"
ME_API = "/api/auth/me/"

START = datetime(2031, 5, 1, 9, 0, 0, tzinfo=UTC)
WINDOW = 5 * 60
PAST_THE_WINDOW = WINDOW + 60

FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0"
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
)


# --- Helpers ------------------------------------------------------------------------------


def sign_in(client: Client, email: str = ALICE, password: str = STRONG_PASSWORD, **extra) -> str:
    """Sign in through the login page; return the id of the device session it opened."""
    response = submit(client, LOGIN, {"email": email, "password": password}, **extra)
    assert response.status_code == 302, response.content
    return client.session[DEVICE_SESSION_KEY]


def signed_in_browser(email: str = ALICE, password: str = STRONG_PASSWORD, **extra) -> tuple[Client, str]:
    client = browser()
    return client, sign_in(client, email, password, **extra)


def is_signed_in(client: Client) -> bool:
    response = client.get(ACCOUNT)
    if response.status_code == 200:
        return True
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)
    return False


def api_session(email: str = ALICE, password: str = STRONG_PASSWORD, **extra) -> tuple[Client, str]:
    """Sign in through the API in a CSRF-enforcing client; return it and the access token."""
    client = api_client()
    return client, api_login(client, email, password, **extra)


def api_token_works(access: str) -> bool:
    response = api_client().get(ME_API, **bearer(access))
    if response.status_code == 200:
        return True
    assert response.status_code == 401
    assert response.json()["code"] == "session_ended"
    return False


def session_live(session_id: str) -> bool:
    return DeviceSession.objects.get(pk=session_id).revoked_at is None


def end_url(session_id) -> str:
    return f"/accounts/sessions/{session_id}/end/"


def assert_form_error(response, field: str, code: str) -> None:
    """The page was shown again with this error (by code) on this field, visible in the HTML."""
    assert response.status_code == 200, response.status_code
    form = response.context["form"]
    assert form.has_error(field, code), form.errors.as_data()
    html = response.content.decode()
    for message in form.errors[field]:
        assert escape(message) in html


def page_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def assert_redirects_to_reauthentication(response, next_path: str = SESSIONS) -> None:
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == REAUTHENTICATE
    assert parse_qs(location.query) == {"next": [next_path]}


def has_verification_link(message) -> bool:
    return any("/verify-email/" in link for link in links_in(message))


def confirm_in_browser(client: Client, link_path: str):
    """Open an emailed verification link and press the button; the last response."""
    response = client.get(link_path)
    if response.status_code != 302:
        return response
    assert response["Location"] == VERIFY_CONFIRM
    response = client.get(VERIFY_CONFIRM)
    if response.status_code != 200:
        return response
    if response.context["needs_password"]:
        # Not signed in as the account here: confirming a move takes its password.
        return submit(client, VERIFY_CONFIRM, {"proof": "password", "current-password": STRONG_PASSWORD})
    return submit(client, VERIFY_CONFIRM)


def request_email_change(client: Client, new_email: str = NEW_ADDRESS, password: str = STRONG_PASSWORD):
    return submit(client, EMAIL_CHANGE, {"new_email": new_email, "password": password})


def change_password(client: Client, current=STRONG_PASSWORD, new=NEW_PASSWORD, again=None):
    return submit(
        client,
        PASSWORD_CHANGE,
        {"current_password": current, "password1": new, "password2": new if again is None else again},
    )


def page_sign_in_fails_generically(email: str, password: str) -> bool:
    response = submit(browser(), LOGIN, {"email": email, "password": password})
    if response.status_code == 302:
        return False
    assert_form_error(response, NON_FIELD_ERRORS, InvalidCredentials.code)
    return True


def events_of(user, kind) -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(user=user, kind=kind))


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


_SESSION_ROW = re.compile(r'<li class="session( current)?">(.*?)</li>', re.S)
_END_ACTION = re.compile(r'action="/accounts/sessions/([^/"]+)/end/"')


def session_rows(response) -> list[dict]:
    """The devices page as [{"id", "current", "text"}] in page order."""
    rows = []
    for match in _SESSION_ROW.finditer(response.content.decode()):
        rows.append(
            {
                "id": _END_ACTION.search(match.group(2)).group(1),
                "current": bool(match.group(1)),
                "text": text_of(match.group(2)),
            }
        )
    return rows


_EVENT_ROW = re.compile(r"<ul class=\"events\">(.*?)</ul>", re.S)


def activity_lines(response) -> list[str]:
    block = _EVENT_ROW.search(response.content.decode())
    if block is None:
        return []
    return [text_of(item) for item in re.findall(r"<li>(.*?)</li>", block.group(1), re.S)]


@pytest.fixture
def bob(make_user):
    return make_user(email=BOB, name="Bob")


# --- Anonymous visitors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", [PROFILE, PASSWORD_CHANGE, EMAIL_CHANGE, EMAIL_CHANGE_SENT, SESSIONS, REAUTHENTICATE, DELETE]
)
def test_self_service_pages_send_anonymous_visitors_to_sign_in(path):
    response = browser().get(path)
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == LOGIN
    assert parse_qs(location.query) == {"next": [path]}


@pytest.mark.parametrize("path", [PROFILE, PASSWORD_CHANGE, EMAIL_CHANGE, END_OTHERS, DELETE])
def test_anonymous_posts_change_nothing_and_go_to_sign_in(user, path, mailoutbox):
    response = submit(
        browser(),
        path,
        {
            "name": "Mallory",
            "current_password": STRONG_PASSWORD,
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            "new_email": NEW_ADDRESS,
            "password": STRONG_PASSWORD,
            "confirm": "on",
        },
    )
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == LOGIN
    user.refresh_from_db()
    assert (user.name, user.email) == ("Alice", ALICE)
    assert user.check_password(STRONG_PASSWORD)
    assert mailoutbox == []


# --- Every new page: no JavaScript, labelled inputs, CSRF --------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        PROFILE,
        PASSWORD_CHANGE,
        EMAIL_CHANGE,
        EMAIL_CHANGE_SENT,
        SESSIONS,
        f"{REAUTHENTICATE}?next={SESSIONS}",
        DELETE,
        ACCOUNT,
    ],
)
def test_self_service_pages_have_no_scripts_and_label_every_input(user, path):
    client, _ = signed_in_browser()
    api_session()  # a second device, so the devices page shows its end-others form too
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = parse_page(response)
    assert page.scripts == 0
    assert b"<script" not in response.content.lower()
    visible = [attrs for attrs in page.inputs if attrs.get("type") not in {"hidden", "submit", "button"}]
    for attrs in visible:
        assert attrs.get("id") and attrs["id"] in page.label_targets, attrs
    for attrs in page.inputs:
        if attrs.get("type") == "password":
            assert "value" not in attrs  # never prefilled


@pytest.mark.parametrize(
    ("path", "expected_inputs"),
    [
        (PROFILE, {"name"}),
        (PASSWORD_CHANGE, {"current_password", "password1", "password2"}),
        (EMAIL_CHANGE, {"new_email", "password"}),
        (REAUTHENTICATE, {"password"}),
        (DELETE, {"password", "confirm"}),
    ],
)
def test_self_service_forms_ask_for_exactly_their_inputs(user, path, expected_inputs):
    client, _ = signed_in_browser()
    page = parse_page(client.get(path))
    visible = {attrs["name"] for attrs in page.inputs if attrs.get("type") not in {"hidden", "submit", "button"}}
    assert visible == expected_inputs


def test_delete_page_confirmation_is_a_labelled_checkbox(user):
    client, _ = signed_in_browser()
    page = parse_page(client.get(DELETE))
    confirm = next(attrs for attrs in page.inputs if attrs.get("name") == "confirm")
    assert confirm["type"] == "checkbox"
    assert confirm["id"] in page.label_targets


def test_verification_confirm_page_for_a_new_address_has_no_scripts(user, mailoutbox):
    client, _ = signed_in_browser()
    request_email_change(client)
    assert client.get(link_path_in(mailoutbox[-1], "/verify-email/")).status_code == 302
    response = client.get(VERIFY_CONFIRM)
    assert response.status_code == 200
    assert parse_page(response).scripts == 0


@pytest.mark.parametrize(
    ("path", "data"),
    [
        (PROFILE, {"name": "Mallory"}),
        (PASSWORD_CHANGE, {"current_password": STRONG_PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}),
        (EMAIL_CHANGE, {"new_email": NEW_ADDRESS, "password": STRONG_PASSWORD}),
        (END_OTHERS, {}),
        (DELETE, {"password": STRONG_PASSWORD, "confirm": "on"}),
    ],
)
def test_self_service_posts_without_the_csrf_token_are_refused(user, path, data, mailoutbox):
    client, _ = signed_in_browser()
    _, other_access = api_session()
    mailoutbox.clear()
    response = client.post(path, data)
    assert response.status_code == 403
    user.refresh_from_db()
    assert (user.name, user.email) == ("Alice", ALICE)
    assert user.check_password(STRONG_PASSWORD)
    assert api_token_works(other_access)
    assert mailoutbox == []


def test_ending_a_session_without_the_csrf_token_is_refused(user):
    client, _ = signed_in_browser()
    _, other = signed_in_browser()
    assert client.post(end_url(other)).status_code == 403
    assert session_live(other)


# --- Profile ------------------------------------------------------------------------------------


def test_profile_page_shows_the_current_name(user):
    client, _ = signed_in_browser()
    page = parse_page(client.get(PROFILE))
    name_input = next(attrs for attrs in page.inputs if attrs.get("name") == "name")
    assert name_input["value"] == "Alice"


def test_profile_saves_the_stripped_name_and_shows_it(user):
    client, _ = signed_in_browser()
    response = submit(client, PROFILE, {"name": "   Alice Smith \t "})
    assert response.status_code == 302
    assert response["Location"] == ACCOUNT
    user.refresh_from_db()
    assert user.name == "Alice Smith"
    home = client.get(ACCOUNT)
    assert "Alice Smith" in home.content.decode()
    assert "Your name has been saved." in page_messages(home)


def test_profile_accepts_a_name_of_exactly_150_characters(user):
    client, _ = signed_in_browser()
    assert submit(client, PROFILE, {"name": "n" * 150}).status_code == 302
    user.refresh_from_db()
    assert user.name == "n" * 150


@pytest.mark.parametrize(
    ("name", "code"), [("", "required"), ("   ", "required"), ("\t\n", "required"), ("n" * 151, "max_length")]
)
def test_profile_rejects_an_empty_blank_or_too_long_name(user, name, code):
    client, _ = signed_in_browser()
    response = submit(client, PROFILE, {"name": name})
    assert_form_error(response, "name", code)
    user.refresh_from_db()
    assert user.name == "Alice"


def test_profile_change_touches_only_the_signed_in_users_name(user, bob):
    client, _ = signed_in_browser()
    submit(client, PROFILE, {"name": "Alicia"})
    bob.refresh_from_db()
    assert bob.name == "Bob"


# --- Change password ------------------------------------------------------------------------------


def test_password_change_with_wrong_current_password_is_a_form_error_and_changes_nothing(user, mailoutbox):
    client, _ = signed_in_browser()
    other, _ = signed_in_browser()
    response = change_password(client, current=WRONG_PASSWORD)
    assert_form_error(response, "current_password", "invalid_password")
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)
    assert not user.check_password(NEW_PASSWORD)
    assert is_signed_in(other)
    assert without_device_notices(mailoutbox) == []
    assert events_of(user, SecurityEvent.Kind.PASSWORD_CHANGED) == []


@pytest.mark.parametrize("weak", ["short pw", "password1234", "alice@example.com", "x" * 129])
def test_password_change_to_a_weak_password_is_rejected_and_changes_nothing(user, weak, mailoutbox):
    client, _ = signed_in_browser()
    other, _ = signed_in_browser()
    response = change_password(client, new=weak)
    assert_form_error(response, "password1", "password_rejected")
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)
    assert is_signed_in(other)
    assert without_device_notices(mailoutbox) == []


def test_password_change_with_mismatched_new_passwords_is_rejected(user, mailoutbox):
    client, _ = signed_in_browser()
    response = change_password(client, again=NEW_PASSWORD + "!")
    assert_form_error(response, "password2", "mismatch")
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)
    assert mailoutbox == []


def test_password_change_does_not_echo_any_password(user):
    client, _ = signed_in_browser()
    response = change_password(client, current=WRONG_PASSWORD, new="short pw")
    html = response.content.decode()
    assert WRONG_PASSWORD not in html
    assert "short pw" not in html


def test_password_change_replaces_the_password(user):
    client, _ = signed_in_browser()
    response = change_password(client)
    assert response.status_code == 302
    assert response["Location"] == ACCOUNT
    assert not page_sign_in_fails_generically(ALICE, NEW_PASSWORD)
    assert page_sign_in_fails_generically(ALICE, STRONG_PASSWORD)


def test_password_change_keeps_this_browser_signed_in_and_ends_every_other_device(user):
    client, here = signed_in_browser()
    other_browser, other_page_session = signed_in_browser()
    _other_api, other_access = api_session()
    response = change_password(client)
    assert "Your password has been changed. Other devices signed out: 2." in page_messages(client.get(ACCOUNT))
    assert response.status_code == 302
    assert is_signed_in(client)
    assert session_live(here)
    assert not is_signed_in(other_browser)
    assert not session_live(other_page_session)
    assert not api_token_works(other_access)
    reasons = set(
        DeviceSession.objects.filter(user=user, revoked_at__isnull=False).values_list("revoked_reason", flat=True)
    )
    assert reasons == {"password_changed"}


def test_password_change_sends_a_notice_to_the_account_address(user, mailoutbox):
    client, _ = signed_in_browser()
    change_password(client)
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == [ALICE]
    assert message.subject == f"Your {django_settings.SITE_NAME} password was changed"
    assert "Every other device" in message.body
    assert NEW_PASSWORD not in message.body


def test_password_change_invalidates_outstanding_reset_links(user, mailoutbox):
    client, _ = signed_in_browser()
    assert submit(browser(), PASSWORD_RESET, {"email": ALICE}).status_code == 302
    reset_link = link_path_in(mails_to(mailoutbox, ALICE)[-1], "/password/reset/")
    change_password(client)
    assert PasswordResetToken.objects.filter(user=user, used_at__isnull=True).count() == 0
    assert browser().get(reset_link).status_code == 400


def test_password_change_writes_a_password_changed_event(user):
    client, _ = signed_in_browser()
    signed_in_browser()
    change_password(
        client,
    )
    [event] = events_of(user, SecurityEvent.Kind.PASSWORD_CHANGED)
    assert event.detail == {"sessions_ended": 1}
    assert event.ip_address == "127.0.0.1"
    assert "password" not in str(event.detail).replace("sessions_ended", "")


# --- Change email -----------------------------------------------------------------------------------


def test_email_change_sends_a_confirmation_link_to_the_new_address_only(user, mailoutbox):
    client, _ = signed_in_browser()
    response = request_email_change(client)
    assert response.status_code == 302
    assert response["Location"] == EMAIL_CHANGE_SENT
    [message] = mails_to(mailoutbox, NEW_ADDRESS)
    assert message.subject == f"Confirm your new email address for {django_settings.SITE_NAME}"
    link = link_path_in(message, "/verify-email/")
    assert re.fullmatch(r"/accounts/verify-email/[^/]+/", link)
    # The current address is told, with a way to cancel, but gets no confirmation link.
    [notice] = mails_to(mailoutbox, ALICE)
    assert not has_verification_link(notice)
    assert len(mailoutbox) == 2
    token = EmailVerificationToken.objects.get(user=user, used_at__isnull=True, purpose="change")
    assert (token.purpose, token.email) == ("change", NEW_ADDRESS)
    user.refresh_from_db()
    assert user.email == ALICE


def test_email_change_sent_page_says_to_check_the_new_address(user):
    client, _ = signed_in_browser()
    response = client.get(EMAIL_CHANGE_SENT)
    assert response.status_code == 200
    assert "confirmation link to the new address" in response.content.decode()


def test_email_change_with_a_wrong_password_is_a_form_error_and_sends_nothing(user, mailoutbox):
    client, _ = signed_in_browser()
    response = request_email_change(client, password=WRONG_PASSWORD)
    assert_form_error(response, "password", "invalid_password")
    assert mailoutbox == []
    assert not EmailVerificationToken.objects.filter(user=user).exists()
    assert events_of(user, SecurityEvent.Kind.EMAIL_CHANGE_REQUESTED) == []


@pytest.mark.parametrize("same", [ALICE, "ALICE@Example.COM", "  alice@example.com  "])
def test_email_change_to_the_current_address_is_email_unchanged(user, same, mailoutbox):
    client, _ = signed_in_browser()
    response = request_email_change(client, new_email=same)
    assert_form_error(response, "new_email", "email_unchanged")
    assert mailoutbox == []


@pytest.mark.parametrize("invalid", ["", "not-an-address", "two@@example.com", "spaces in@example.com", "nobody@"])
def test_email_change_to_an_invalid_address_is_a_form_error(user, invalid, mailoutbox):
    client, _ = signed_in_browser()
    response = request_email_change(client, new_email=invalid)
    assert response.status_code == 200
    assert response.context["form"].has_error("new_email")
    assert mailoutbox == []
    assert not EmailVerificationToken.objects.filter(user=user).exists()


def test_email_change_normalises_a_mixed_case_address(user, mailoutbox):
    client, _ = signed_in_browser()
    request_email_change(client, new_email="New.Person@EXAMPLE.Com")
    assert len(mails_to(mailoutbox, NEW_ADDRESS)) == 1
    assert (
        confirm_in_browser(client, link_path_in(mails_to(mailoutbox, NEW_ADDRESS)[0], "/verify-email/")).status_code
        == 302
    )
    user.refresh_from_db()
    assert user.email == NEW_ADDRESS


def test_until_confirmed_sign_in_keeps_using_the_old_address(user, mailoutbox):
    client, _ = signed_in_browser()
    request_email_change(client)
    assert not page_sign_in_fails_generically(ALICE, STRONG_PASSWORD)
    assert page_sign_in_fails_generically(NEW_ADDRESS, STRONG_PASSWORD)


def test_until_confirmed_password_reset_keeps_using_the_old_address(user, mailoutbox):
    client, _ = signed_in_browser()
    request_email_change(client)
    mailoutbox.clear()
    response = submit(browser(), PASSWORD_RESET, {"email": NEW_ADDRESS})
    assert response.status_code == 302
    assert mailoutbox == []
    submit(browser(), PASSWORD_RESET, {"email": ALICE})
    assert [message.to for message in mailoutbox] == [[ALICE]]
    assert "/accounts/password/reset/" in link_path_in(mailoutbox[0], "/password/reset/")


def test_confirming_the_link_switches_the_account_to_the_new_verified_address(user, mailoutbox):
    client, _ = signed_in_browser()
    request_email_change(client)
    link = link_path_in(mails_to(mailoutbox, NEW_ADDRESS)[0], "/verify-email/")
    response = client.get(link)
    assert response.status_code == 302
    assert response["Location"] == VERIFY_CONFIRM
    user.refresh_from_db()
    assert user.email == ALICE  # opening the link alone changes nothing
    confirm_page = client.get(VERIFY_CONFIRM)
    assert confirm_page.status_code == 200
    before = timezone.now()
    response = submit(client, VERIFY_CONFIRM)
    assert response.status_code == 302
    assert response["Location"] == ACCOUNT
    user.refresh_from_db()
    assert user.email == NEW_ADDRESS
    assert user.email_verified_at >= before  # verified by this confirmation
    assert NEW_ADDRESS in client.get(ACCOUNT).content.decode()


def test_confirming_a_change_tells_the_old_address_with_the_new_one_masked(user, mailoutbox):
    client, _ = signed_in_browser()
    request_email_change(client)
    confirm_in_browser(client, link_path_in(mails_to(mailoutbox, NEW_ADDRESS)[0], "/verify-email/"))
    [_requested, notice] = mails_to(mailoutbox, ALICE)
    assert notice.subject == f"The email address of your {django_settings.SITE_NAME} account was changed"
    assert "n***@example.com" in notice.body
    assert NEW_ADDRESS not in notice.body
    html_body = notice.alternatives[0][0]
    assert "n***@example.com" in html_body
    assert NEW_ADDRESS not in html_body
    assert len(mails_to(mailoutbox, NEW_ADDRESS)) == 1  # only the confirmation link


def test_after_confirming_sign_in_uses_the_new_address_and_not_the_old(user, mailoutbox):
    client, _ = signed_in_browser()
    request_email_change(client)
    confirm_in_browser(client, link_path_in(mails_to(mailoutbox, NEW_ADDRESS)[0], "/verify-email/"))
    assert not page_sign_in_fails_generically(NEW_ADDRESS, STRONG_PASSWORD)
    assert page_sign_in_fails_generically(ALICE, STRONG_PASSWORD)


def test_confirming_a_change_invalidates_reset_links_sent_to_the_old_address(user, mailoutbox):
    client, _ = signed_in_browser()
    request_email_change(client)
    change_link = link_path_in(mails_to(mailoutbox, NEW_ADDRESS)[0], "/verify-email/")
    submit(browser(), PASSWORD_RESET, {"email": ALICE})
    reset_link = link_path_in(mails_to(mailoutbox, ALICE)[-1], "/password/reset/")
    confirm_in_browser(client, change_link)
    assert browser().get(reset_link).status_code == 400


def test_confirmation_link_works_once(user, mailoutbox):
    client, _ = signed_in_browser()
    request_email_change(client)
    link = link_path_in(mails_to(mailoutbox, NEW_ADDRESS)[0], "/verify-email/")
    assert confirm_in_browser(client, link).status_code == 302
    again = confirm_in_browser(browser(), link)
    assert again.status_code == 400
    assert "accounts/verify_email_invalid.html" in [template.name for template in again.templates]


def test_confirmation_also_works_in_a_browser_that_is_not_signed_in(user, mailoutbox):
    client, _ = signed_in_browser()
    request_email_change(client)
    response = confirm_in_browser(browser(), link_path_in(mails_to(mailoutbox, NEW_ADDRESS)[0], "/verify-email/"))
    assert response.status_code == 302
    assert response["Location"] == LOGIN
    user.refresh_from_db()
    assert user.email == NEW_ADDRESS


def test_change_to_a_taken_address_answers_like_a_free_one(user, bob, mailoutbox):
    client, _ = signed_in_browser()
    free = request_email_change(client, new_email="free@example.com")
    taken = request_email_change(client, new_email=BOB)
    assert (taken.status_code, taken["Location"]) == (free.status_code, free["Location"]) == (302, EMAIL_CHANGE_SENT)


def test_change_to_a_taken_address_sends_no_link_and_tells_its_owner(user, bob, mailoutbox):
    client, _ = signed_in_browser()
    request_email_change(client, new_email="BOB@example.com")
    [notice] = mails_to(mailoutbox, BOB)
    assert notice.subject == f"Someone tried to move a {django_settings.SITE_NAME} account to your address"
    assert not has_verification_link(notice)
    assert ALICE not in notice.body
    assert not EmailVerificationToken.objects.filter(user=user, purpose="change").exists()
    [requested] = mails_to(mailoutbox, ALICE)  # told exactly as for a free address
    assert not has_verification_link(requested)
    user.refresh_from_db()
    bob.refresh_from_db()
    assert (user.email, bob.email) == (ALICE, BOB)


def test_change_link_is_refused_when_the_address_was_registered_meanwhile(user, mailoutbox):
    client, _ = signed_in_browser()
    request_email_change(client)
    link = link_path_in(mails_to(mailoutbox, NEW_ADDRESS)[0], "/verify-email/")
    registration = api_client().post(
        "/api/auth/register/",
        {"email": NEW_ADDRESS, "password": "another strong passphrase", "name": "Newcomer"},
        content_type="application/json",
    )
    assert registration.status_code == 202
    response = confirm_in_browser(client, link)
    assert response.status_code == 400
    assert "accounts/verify_email_invalid.html" in [template.name for template in response.templates]
    user.refresh_from_db()
    assert user.email == ALICE
    assert User.objects.get(email=NEW_ADDRESS).name == "Newcomer"
    assert events_of(user, SecurityEvent.Kind.EMAIL_CHANGE_CONFIRMED) == []
    assert [message.subject for message in mails_to(mailoutbox, ALICE)] == [
        f"Someone asked to change the email address of your {django_settings.SITE_NAME} account"
    ]


def test_a_newer_change_request_replaces_the_pending_link(user, mailoutbox):
    client, _ = signed_in_browser()
    request_email_change(client, new_email="first@example.com")
    request_email_change(client, new_email="second@example.com")
    first = link_path_in(mails_to(mailoutbox, "first@example.com")[0], "/verify-email/")
    second = link_path_in(mails_to(mailoutbox, "second@example.com")[0], "/verify-email/")
    assert confirm_in_browser(browser(), first).status_code == 400
    user.refresh_from_db()
    assert user.email == ALICE
    assert confirm_in_browser(browser(), second).status_code == 302
    user.refresh_from_db()
    assert user.email == "second@example.com"


def test_email_change_writes_requested_and_confirmed_events(user, mailoutbox):
    client, _ = signed_in_browser()
    request_email_change(client)
    [requested] = events_of(user, SecurityEvent.Kind.EMAIL_CHANGE_REQUESTED)
    assert requested.ip_address == "127.0.0.1"
    assert events_of(user, SecurityEvent.Kind.EMAIL_CHANGE_CONFIRMED) == []
    confirm_in_browser(client, link_path_in(mails_to(mailoutbox, NEW_ADDRESS)[0], "/verify-email/"))
    assert len(events_of(user, SecurityEvent.Kind.EMAIL_CHANGE_CONFIRMED)) == 1


# --- Devices ------------------------------------------------------------------------------------------


def test_devices_page_describes_each_live_session_and_marks_this_device(user, bob):
    with time_machine.travel(START, tick=False) as traveller:
        client, here = signed_in_browser(HTTP_USER_AGENT=FIREFOX_WINDOWS, REMOTE_ADDR="203.0.113.9")
        traveller.shift(60)
        _, _phone_access = api_session(HTTP_USER_AGENT=CHROME_ANDROID, REMOTE_ADDR="198.51.100.4")
        signed_in_browser(BOB, HTTP_USER_AGENT="BobBrowser/1.0", REMOTE_ADDR="192.0.2.200")
        traveller.shift(60)
        response = client.get(SESSIONS)
    assert response.status_code == 200
    rows = session_rows(response)
    assert len(rows) == 2  # Bob's session is not listed
    this, phone = rows  # most recently used first: opening this page is a use
    assert this["id"] == here and this["current"]
    assert "Firefox 132 on Windows" in this["text"]
    assert "this device" in this["text"]
    assert "203.0.113.9" in this["text"]
    assert "Signed in 1 May 2031, 09:00 UTC" in this["text"]
    assert "Last used 1 May 2031, 09:02 UTC" in this["text"]
    assert not phone["current"]
    assert "Chrome 131 on Android" in phone["text"]
    assert "this device" not in phone["text"]
    assert "198.51.100.4" in phone["text"]
    assert "Signed in 1 May 2031, 09:01 UTC" in phone["text"]
    assert "Last used 1 May 2031, 09:01 UTC" in phone["text"]
    html = response.content.decode()
    assert "BobBrowser" not in html and "192.0.2.200" not in html


def test_devices_page_escapes_a_hostile_user_agent(user):
    signed_in_browser(HTTP_USER_AGENT='<script>alert("x")</script>')
    client, _ = signed_in_browser()
    response = client.get(SESSIONS)
    assert parse_page(response).scripts == 0
    assert "&lt;script&gt;" in response.content.decode()


def test_devices_page_does_not_list_ended_sessions(user):
    client, _ = signed_in_browser()
    other, other_id = signed_in_browser()
    submit(other, "/accounts/logout/")
    ids = [row["id"] for row in session_rows(client.get(SESSIONS))]
    assert other_id not in ids
    assert len(ids) == 1


def test_ending_another_session_signs_that_browser_out(user):
    client, here = signed_in_browser()
    other, other_id = signed_in_browser()
    response = submit(client, end_url(other_id))
    assert response.status_code == 302
    assert response["Location"] == SESSIONS
    assert "The session has been ended." in page_messages(client.get(SESSIONS))
    assert not is_signed_in(other)
    assert DeviceSession.objects.get(pk=other_id).revoked_reason == "ended_by_user"
    assert is_signed_in(client)
    assert session_live(here)


def test_ending_an_api_session_refuses_its_access_token_at_once(user):
    client, _ = signed_in_browser()
    _, access = api_session()
    session_id = DeviceSession.objects.filter(user=user).exclude(pk=client.session[DEVICE_SESSION_KEY]).get().pk
    assert api_token_works(access)
    submit(client, end_url(session_id))
    assert not api_token_works(access)


def test_ending_another_session_writes_a_session_ended_event(user):
    client, _ = signed_in_browser()
    _, other_id = signed_in_browser()
    submit(client, end_url(other_id))
    [event] = events_of(user, SecurityEvent.Kind.SESSION_ENDED)
    assert event.detail == {"session": other_id, "reason": "ended_by_user"}


def test_ending_the_current_session_signs_this_browser_out(user):
    client, here = signed_in_browser()
    _, other_id = signed_in_browser()
    response = submit(client, end_url(here))
    assert response.status_code == 302
    assert response["Location"] == HOME
    cookie = response.cookies[django_settings.ACCOUNTS_REFRESH_COOKIE_NAME]
    assert cookie.value == "" and cookie["max-age"] == 0
    assert not is_signed_in(client)
    assert DeviceSession.objects.get(pk=here).revoked_reason == "logout"
    assert session_live(other_id)


def test_end_others_ends_every_other_session_and_keeps_this_one(user, bob):
    client, here = signed_in_browser()
    other, _ = signed_in_browser()
    _, access = api_session()
    _, bobs = signed_in_browser(BOB)
    response = submit(client, END_OTHERS)
    assert response.status_code == 302
    assert response["Location"] == SESSIONS
    follow = client.get(SESSIONS)
    assert "Other sessions ended: 2. Links we had emailed you and not yet used no longer work." in page_messages(follow)
    assert [row["id"] for row in session_rows(follow)] == [here]
    assert is_signed_in(client)
    assert not is_signed_in(other)
    assert not api_token_works(access)
    assert session_live(bobs)


def test_ending_another_users_session_is_refused_and_ends_nothing(user, bob):
    client, _ = signed_in_browser()
    bobs_browser, bobs_session = signed_in_browser(BOB)
    response = submit(client, end_url(bobs_session))
    assert response.status_code == 302
    assert "That session does not exist or has already ended." in page_messages(client.get(SESSIONS))
    assert session_live(bobs_session)
    assert is_signed_in(bobs_browser)
    assert events_of(bob, SecurityEvent.Kind.SESSION_ENDED) == []


@pytest.mark.parametrize("bogus", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_ending_a_session_that_does_not_exist_shows_a_message(user, bogus):
    client, here = signed_in_browser()
    submit(client, end_url(bogus))
    assert "That session does not exist or has already ended." in page_messages(client.get(SESSIONS))
    assert session_live(here)


@pytest.mark.parametrize("path", ["end-one", END_OTHERS])
def test_get_on_the_end_urls_is_405_and_ends_nothing(user, path):
    client, here = signed_in_browser()
    _, other_id = signed_in_browser()
    url = end_url(other_id) if path == "end-one" else path
    assert client.get(url).status_code == 405
    assert session_live(other_id)
    assert session_live(here)


def test_end_others_button_is_shown_only_when_there_are_other_devices(user):
    client, _ = signed_in_browser()
    assert END_OTHERS not in client.get(SESSIONS).content.decode()
    signed_in_browser()
    assert END_OTHERS in client.get(SESSIONS).content.decode()


# --- Re-authentication ------------------------------------------------------------------------------------


def test_ending_other_sessions_within_five_minutes_of_sign_in_needs_no_password(user):
    with time_machine.travel(START, tick=False) as traveller:
        client, _ = signed_in_browser()
        _, first = signed_in_browser()
        _, second = signed_in_browser()
        traveller.shift(WINDOW - 60)
        assert submit(client, end_url(first))["Location"] == SESSIONS
        assert submit(client, END_OTHERS)["Location"] == SESSIONS
    assert not session_live(first)
    assert not session_live(second)


@pytest.mark.parametrize("action", ["end-one", "end-others"])
def test_ending_other_sessions_six_minutes_after_sign_in_asks_for_the_password(user, action):
    with time_machine.travel(START, tick=False) as traveller:
        client, _here = signed_in_browser()
        other, other_id = signed_in_browser()
        traveller.shift(PAST_THE_WINDOW)
        response = submit(client, end_url(other_id) if action == "end-one" else END_OTHERS)
        assert_redirects_to_reauthentication(response)
        assert "For your security, please enter your password again." in page_messages(client.get(SESSIONS))
        assert session_live(other_id)
        assert is_signed_in(other)
        assert is_signed_in(client)
        assert events_of(user, SecurityEvent.Kind.SESSION_ENDED) == []


def test_after_entering_the_password_ending_other_sessions_works(user):
    with time_machine.travel(START, tick=False) as traveller:
        client, here = signed_in_browser()
        other, other_id = signed_in_browser()
        traveller.shift(PAST_THE_WINDOW)
        redirect = submit(client, end_url(other_id))
        form_page = client.get(redirect["Location"])
        assert form_page.status_code == 200
        hidden_next = [attrs for attrs in parse_page(form_page).inputs if attrs.get("name") == "next"]
        assert hidden_next == [{"type": "hidden", "name": "next", "value": SESSIONS}]
        response = submit(client, REAUTHENTICATE, {"password": STRONG_PASSWORD, "next": SESSIONS})
        assert response.status_code == 302
        assert response["Location"] == SESSIONS
        assert DeviceSession.objects.get(pk=here).authenticated_at == START + timedelta(seconds=PAST_THE_WINDOW)
        assert submit(client, end_url(other_id))["Location"] == SESSIONS
    assert not session_live(other_id)
    assert not is_signed_in(other)


def test_reauthentication_with_a_wrong_password_is_a_form_error_and_opens_nothing(user):
    with time_machine.travel(START, tick=False) as traveller:
        client, _ = signed_in_browser()
        _, other_id = signed_in_browser()
        traveller.shift(PAST_THE_WINDOW)
        response = submit(client, REAUTHENTICATE, {"password": WRONG_PASSWORD, "next": SESSIONS})
        assert_form_error(response, "password", "invalid_password")
        assert WRONG_PASSWORD not in response.content.decode()
        assert_redirects_to_reauthentication(submit(client, END_OTHERS))
    assert session_live(other_id)


def test_reauthentication_on_one_browser_does_not_open_the_window_on_another(user):
    with time_machine.travel(START, tick=False) as traveller:
        first, _ = signed_in_browser()
        second, _ = signed_in_browser()
        _, third = signed_in_browser()
        traveller.shift(PAST_THE_WINDOW)
        submit(first, REAUTHENTICATE, {"password": STRONG_PASSWORD, "next": SESSIONS})
        assert_redirects_to_reauthentication(submit(second, end_url(third)))
    assert session_live(third)


def test_reauthentication_window_closes_again_after_five_minutes(user):
    with time_machine.travel(START, tick=False) as traveller:
        client, _ = signed_in_browser()
        _, other_id = signed_in_browser()
        traveller.shift(PAST_THE_WINDOW)
        submit(client, REAUTHENTICATE, {"password": STRONG_PASSWORD})
        traveller.shift(PAST_THE_WINDOW)
        assert_redirects_to_reauthentication(submit(client, end_url(other_id)))
    assert session_live(other_id)


def test_reauthentication_escapes_the_next_url_it_carries(user):
    client, _ = signed_in_browser()
    response = client.get(REAUTHENTICATE, {"next": '/accounts/sessions/?x="><script>alert(1)</script>'})
    assert response.status_code == 200
    assert parse_page(response).scripts == 0


def test_a_page_session_without_a_device_session_is_signed_out(user):
    """No sign-in makes one; such a session could not be listed or ended from the devices page."""
    client = browser()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    assert not is_signed_in(client)
    response = submit(client, REAUTHENTICATE, {"password": STRONG_PASSWORD, "next": SESSIONS})
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)
    assert not DeviceSession.objects.filter(user=user).exists()


def test_reauthenticating_with_a_wrong_password_creates_and_freshens_nothing(user):
    with time_machine.travel(START, tick=False) as traveller:
        client, here = signed_in_browser()
        traveller.shift(settings_window() + 60)
        response = submit(client, REAUTHENTICATE, {"password": WRONG_PASSWORD, "next": SESSIONS})
        assert_form_error(response, "password", "invalid_password")
        assert DeviceSession.objects.filter(user=user).count() == 1
        assert DeviceSession.objects.get(pk=here).authenticated_at == START
        assert_redirects_to_reauthentication(submit(client, END_OTHERS))


def settings_window() -> int:
    return django_settings.ACCOUNTS_REAUTHENTICATION_WINDOW


@pytest.mark.parametrize("next_url", ["https://evil.example/steal", "//evil.example/", ""])
def test_reauthentication_never_redirects_off_site(user, next_url):
    client, _ = signed_in_browser()
    response = submit(client, REAUTHENTICATE, {"password": STRONG_PASSWORD, "next": next_url})
    assert response.status_code == 302
    assert response["Location"] == ACCOUNT


def test_ending_the_current_session_never_needs_the_password(user):
    with time_machine.travel(START, tick=False) as traveller:
        client, here = signed_in_browser()
        traveller.shift(PAST_THE_WINDOW)
        response = submit(client, end_url(here))
        assert response["Location"] == HOME
        assert not is_signed_in(client)
    assert not session_live(here)


def test_password_change_counts_as_entering_the_password(user):
    with time_machine.travel(START, tick=False) as traveller:
        client, _ = signed_in_browser()
        traveller.shift(PAST_THE_WINDOW)
        assert change_password(client).status_code == 302
        _, later = signed_in_browser(password=NEW_PASSWORD)
        response = submit(client, END_OTHERS)
        assert response["Location"] == SESSIONS
    assert not session_live(later)


def test_email_change_request_counts_as_entering_the_password(user, mailoutbox):
    with time_machine.travel(START, tick=False) as traveller:
        client, _ = signed_in_browser()
        _, other_id = signed_in_browser()
        traveller.shift(PAST_THE_WINDOW)
        assert request_email_change(client).status_code == 302
        assert submit(client, end_url(other_id))["Location"] == SESSIONS
    assert not session_live(other_id)


def test_a_failed_password_change_does_not_count_as_entering_the_password(user):
    with time_machine.travel(START, tick=False) as traveller:
        client, _ = signed_in_browser()
        _, other_id = signed_in_browser()
        traveller.shift(PAST_THE_WINDOW)
        assert change_password(client, current=WRONG_PASSWORD).status_code == 200
        assert_redirects_to_reauthentication(submit(client, END_OTHERS))
    assert session_live(other_id)


# --- Recent security activity ------------------------------------------------------------------------------


def test_account_page_lists_own_security_events_newest_first(user, bob, mailoutbox):
    with time_machine.travel(START, tick=False) as traveller:
        client, _ = signed_in_browser(REMOTE_ADDR="203.0.113.10")
        traveller.shift(60)
        submit(browser(), LOGIN, {"email": ALICE, "password": WRONG_PASSWORD}, REMOTE_ADDR="203.0.113.66")
        traveller.shift(60)
        change_password(
            client,
        )
        traveller.shift(60)
        request_email_change(client, password=NEW_PASSWORD)
        traveller.shift(60)
        _, other_id = signed_in_browser(password=NEW_PASSWORD, REMOTE_ADDR="203.0.113.11")
        traveller.shift(60)
        submit(client, end_url(other_id))
        # Bob's activity, which Alice must never see.
        signed_in_browser(BOB, REMOTE_ADDR="198.51.100.77")
        submit(browser(), LOGIN, {"email": BOB, "password": WRONG_PASSWORD}, REMOTE_ADDR="198.51.100.77")
        response = client.get(ACCOUNT)
    lines = activity_lines(response)
    assert lines == [
        "1 May 2031, 09:05 UTC — Session ended from 127.0.0.1",
        "1 May 2031, 09:04 UTC — Signed in from 203.0.113.11",
        "1 May 2031, 09:03 UTC — Email change requested from 127.0.0.1",
        "1 May 2031, 09:02 UTC — Password changed from 127.0.0.1",
        "1 May 2031, 09:01 UTC — Sign-in failed from 203.0.113.66",
        "1 May 2031, 09:00 UTC — Signed in from 203.0.113.10",
    ]
    assert "198.51.100.77" not in response.content.decode()


def test_account_page_shows_nothing_of_other_users(user, bob):
    signed_in_browser(BOB, REMOTE_ADDR="198.51.100.77")
    client = browser()
    force_page_login(client, user)
    response = client.get(ACCOUNT)
    [own_sign_in] = activity_lines(response)
    assert own_sign_in.endswith("Signed in from 127.0.0.1")
    assert "198.51.100.77" not in response.content.decode()


def test_account_page_does_not_show_internal_events(user, mailoutbox):
    client, _ = signed_in_browser()
    submit(browser(), PASSWORD_RESET, {"email": ALICE}, REMOTE_ADDR="203.0.113.99")
    lines = activity_lines(client.get(ACCOUNT))
    assert len(lines) == 1
    assert "Signed in" in lines[0]
    assert "203.0.113.99" not in " ".join(lines)


# --- Delete account -----------------------------------------------------------------------------------------


def test_delete_without_the_confirmation_checkbox_is_a_form_error_and_deletes_nothing(user, mailoutbox):
    client, _ = signed_in_browser()
    response = submit(client, DELETE, {"password": STRONG_PASSWORD})
    assert_form_error(response, "confirm", "required")
    assert User.objects.filter(pk=user.pk).exists()
    assert is_signed_in(client)
    assert mailoutbox == []


def test_delete_with_a_wrong_password_is_a_form_error_and_deletes_nothing(user, mailoutbox):
    client, _ = signed_in_browser()
    Todo.objects.create(owner=user, title="Keep me")
    response = submit(client, DELETE, {"password": WRONG_PASSWORD, "confirm": "on"})
    assert_form_error(response, "password", "invalid_password")
    assert User.objects.filter(pk=user.pk).exists()
    assert Todo.objects.filter(owner=user).count() == 1
    assert is_signed_in(client)
    assert mailoutbox == []
    assert not SecurityEvent.objects.filter(kind=SecurityEvent.Kind.ACCOUNT_DELETED).exists()


def test_delete_removes_the_user_their_todos_and_sessions_and_signs_out(user, bob, mailoutbox):
    client, _here = signed_in_browser()
    other_browser, _ = signed_in_browser()
    _, access = api_session()
    Todo.objects.create(owner=user, title="Mine")
    Todo.objects.create(owner=bob, title="Bob's")
    response = submit(client, DELETE, {"password": STRONG_PASSWORD, "confirm": "on"})
    assert response.status_code == 302
    assert response["Location"] == HOME
    cookie = response.cookies[django_settings.ACCOUNTS_REFRESH_COOKIE_NAME]
    assert cookie.value == "" and cookie["max-age"] == 0
    assert not User.objects.filter(pk=user.pk).exists()
    assert not Todo.objects.filter(title="Mine").exists()
    assert Todo.objects.filter(owner=bob).count() == 1
    assert not DeviceSession.objects.filter(user_id=user.pk).exists()
    assert not is_signed_in(client)
    assert not is_signed_in(other_browser)
    assert not api_token_works(access)
    assert "Your account has been deleted." in page_messages(client.get(HOME))


def test_delete_sends_a_confirmation_to_the_address(user, mailoutbox):
    client, _ = signed_in_browser()
    submit(client, DELETE, {"password": STRONG_PASSWORD, "confirm": "on"})
    [message] = mailoutbox
    assert message.to == [ALICE]
    assert message.subject == f"Your {django_settings.SITE_NAME} account was deleted"
    assert "Hello Alice" in message.body


def test_delete_writes_an_account_deleted_event_without_the_address(user):
    client, _ = signed_in_browser()
    submit(client, DELETE, {"password": STRONG_PASSWORD, "confirm": "on"})
    [event] = SecurityEvent.objects.filter(kind=SecurityEvent.Kind.ACCOUNT_DELETED)
    assert event.user is None
    assert event.email_hash
    assert event.email_hash == email_fingerprint(ALICE)
    assert "alice" not in event.email_hash
    assert "alice" not in str(event.detail).lower()


def test_after_deletion_signing_in_fails_generically_and_the_address_can_sign_up_again(user, mailoutbox):
    client, _ = signed_in_browser()
    submit(client, DELETE, {"password": STRONG_PASSWORD, "confirm": "on"})
    assert page_sign_in_fails_generically(ALICE, STRONG_PASSWORD)
    mailoutbox.clear()
    response = submit(
        browser(),
        SIGNUP,
        {"email": ALICE, "name": "Alice Again", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    again = User.objects.get(email=ALICE)
    assert again.pk != user.pk
    assert again.name == "Alice Again"
    assert not again.email_verified
    [message] = mailoutbox
    assert message.to == [ALICE]
    assert has_verification_link(message)
