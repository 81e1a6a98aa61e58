"""Password reset pages: requesting a link, choosing a new password, and every way a link can fail."""

import io
import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.contrib.auth import authenticate
from django.contrib.messages import get_messages
from django.core.mail.backends.base import BaseEmailBackend
from django.test import Client

from accounts.flows.password_reset import request_password_reset
from accounts.flows.verification import send_verification_email
from accounts.models import PasswordResetToken
from accounts.tokens import generate_token
from tests.support.accounts import force_page_login
from tests.support.mail import deliver_outbox, install_unreachable_email, link_in, token_from_link, token_in
from tests.support.pages import headers_but_the_clock

RESET_URL = "/accounts/password/reset/"
SENT_URL = "/accounts/password/reset/sent/"
SET_URL = "/accounts/password/reset/set-password/"
LOGIN_URL = "/accounts/login/"
NEW_PASSWORD = "a completely different passphrase"
START = datetime(2030, 6, 1, 8, 0, 0, tzinfo=UTC)


class EchoingEmailBackend(BaseEmailBackend):
    """Fails with an error that quotes the whole message, as some ESP clients do."""

    attempted: list = []

    def send_messages(self, email_messages):
        type(self).attempted.extend(email_messages)
        raise RuntimeError(f"provider rejected payload: {email_messages[0].body}")


@pytest.fixture(autouse=True)
def _site_url(settings):
    settings.SITE_URL = "https://todo.example"


def reset_link(mailoutbox) -> str:
    return link_in(mailoutbox[-1], "/password/reset/")


def issue_link(user, mailoutbox) -> str:
    """Email ``user`` a reset link; return its path."""
    request_password_reset(email=user.email)
    return urlsplit(reset_link(mailoutbox)).path


def link_path(token: str) -> str:
    return f"/accounts/password/reset/{token}/"


def open_link(client, user, mailoutbox) -> str:
    """Follow a fresh reset link in ``client``; return the raw token."""
    path = issue_link(user, mailoutbox)
    response = client.get(path)
    assert response.status_code == 302
    return token_from_link(path)


def choose(client, password1, password2=None):
    return client.post(SET_URL, {"password1": password1, "password2": password2 or password1})


def assert_invalid_page(response, text: str | None = None):
    assert response.status_code == 400
    body = response.content.decode()
    assert "This reset link cannot be used" in body
    assert f'href="{RESET_URL}"' in body
    if text is not None:
        assert text in body


def signs_in(user, password) -> bool:
    return authenticate(None, username=user.email, password=password) is not None


def token_row(user) -> PasswordResetToken:
    return PasswordResetToken.objects.get(user=user)


# --- requesting a link ---------------------------------------------------------------


def test_reset_request_page_shows_email_form(client, db):
    response = client.get(RESET_URL)
    assert response.status_code == 200
    assert 'name="email"' in response.content.decode()


def test_known_user_gets_reset_link_on_site_url(client, user, mailoutbox):
    response = client.post(RESET_URL, {"email": user.email})
    assert response.status_code == 302
    assert response["Location"] == SENT_URL
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [user.email]
    link = reset_link(mailoutbox)
    assert link.startswith("https://todo.example/accounts/password/reset/")
    assert len(token_from_link(link)) == 43
    assert link in mailoutbox[0].alternatives[0][0]


def test_reset_link_ignores_host_header(client, user, mailoutbox, settings):
    settings.ALLOWED_HOSTS = ["evil.example", "testserver"]
    client.post(RESET_URL, {"email": user.email}, HTTP_HOST="evil.example")
    assert reset_link(mailoutbox).startswith("https://todo.example/")
    assert "evil.example" not in mailoutbox[0].body
    assert "evil.example" not in mailoutbox[0].alternatives[0][0]


def test_reset_request_answers_identically_for_known_unknown_and_inactive(client, make_user, mailoutbox):
    make_user(email="known@example.com")
    make_user(email="inactive@example.com", name="Ina", is_active=False)
    responses = [
        client.post(RESET_URL, {"email": email})
        for email in ("known@example.com", "nobody@example.com", "inactive@example.com")
    ]
    for response in responses:
        assert response.status_code == 302
        assert response["Location"] == SENT_URL
    assert len({r.content for r in responses}) == 1
    assert len({headers_but_the_clock(r) for r in responses}) == 1
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["known@example.com"]


def test_unknown_address_gets_no_email(client, db, mailoutbox):
    assert client.post(RESET_URL, {"email": "nobody@example.com"})["Location"] == SENT_URL
    assert mailoutbox == []
    assert not PasswordResetToken.objects.exists()


def test_inactive_user_gets_no_email(client, make_user, mailoutbox):
    make_user(is_active=False)
    assert client.post(RESET_URL, {"email": "alice@example.com"})["Location"] == SENT_URL
    assert mailoutbox == []
    assert not PasswordResetToken.objects.exists()


def test_reset_request_normalises_case_and_whitespace(client, user, mailoutbox):
    response = client.post(RESET_URL, {"email": "  ALICE@example.com "})
    assert response["Location"] == SENT_URL
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["alice@example.com"]


def test_reset_request_with_invalid_address_shows_form_error(client, db, mailoutbox):
    response = client.post(RESET_URL, {"email": "not an address"})
    assert response.status_code == 200
    assert "Enter a valid email address." in response.content.decode()
    assert mailoutbox == []


def test_sent_page_renders(client, db):
    response = client.get(SENT_URL)
    assert response.status_code == 200
    assert "If that address belongs to an account" in response.content.decode()


def test_failing_email_backend_still_redirects_and_logs_without_token(client, user, settings, caplog):
    unreachable = install_unreachable_email(settings)
    with caplog.at_level(logging.WARNING):
        response = client.post(RESET_URL, {"email": user.email})
        deliver_outbox()  # the worker's attempt
    assert response.status_code == 302
    assert response["Location"] == SENT_URL
    assert len(unreachable.attempted) == 1
    token = token_in(unreachable.attempted[0], "/reset/")
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors, "the failed send must be logged"
    assert "password_reset" in caplog.text
    assert "ConnectionRefusedError" in caplog.text
    assert token not in caplog.text


def test_failing_email_backend_answers_like_unknown_address(client, make_user, settings):
    make_user()
    install_unreachable_email(settings)
    failed = client.post(RESET_URL, {"email": "alice@example.com"})
    unknown = client.post(RESET_URL, {"email": "nobody@example.com"})
    assert (failed.status_code, failed["Location"], failed.content) == (
        unknown.status_code,
        unknown["Location"],
        unknown.content,
    )


def test_error_quoting_the_email_is_redacted_by_configured_console_handler(client, user, settings):
    settings.EMAIL_BACKEND = f"{__name__}.EchoingEmailBackend"
    EchoingEmailBackend.attempted = []
    console = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    stream = io.StringIO()
    previous = console.setStream(stream)
    try:
        response = client.post(RESET_URL, {"email": user.email})
        deliver_outbox()  # the worker's attempt
    finally:
        console.setStream(previous)
    assert response["Location"] == SENT_URL
    token = token_in(EchoingEmailBackend.attempted[0], "/reset/")
    output = stream.getvalue()
    assert "provider rejected payload" in output
    assert "[redacted]" in output
    assert token not in output


# --- opening the link ------------------------------------------------------------------


def test_link_redirects_to_set_password_page_without_token_in_url(client, user, mailoutbox):
    path = issue_link(user, mailoutbox)
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == SET_URL
    assert token_from_link(path) not in response["Location"]
    assert client.session["_password_reset_token"] == token_from_link(path)


def test_opening_link_does_not_consume_token(client, user, mailoutbox):
    path = issue_link(user, mailoutbox)
    for _ in range(3):
        assert Client().get(path).status_code == 302
    assert token_row(user).used_at is None
    assert client.get(path).status_code == 302
    assert choose(client, NEW_PASSWORD).status_code == 302
    assert signs_in(user, NEW_PASSWORD)


def test_link_and_set_password_responses_never_refer_with_the_token_path(client, user, mailoutbox):
    path = issue_link(user, mailoutbox)
    link_response = client.get(path)
    page_response = client.get(SET_URL)
    post_response = choose(client, NEW_PASSWORD)
    for response in (link_response, page_response, post_response):
        assert response["Referrer-Policy"] == "strict-origin"
        assert "no-store" in response["Cache-Control"]


def test_set_password_page_shows_two_password_fields(client, user, mailoutbox):
    token = open_link(client, user, mailoutbox)
    response = client.get(SET_URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="password1"' in body
    assert 'name="password2"' in body
    assert 'type="password"' in body
    assert token not in body


def test_post_to_link_url_is_not_allowed(client, user, mailoutbox, password):
    path = issue_link(user, mailoutbox)
    response = client.post(path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 405
    assert signs_in(user, password)


# --- completing the reset ----------------------------------------------------------------


def test_completing_reset_changes_password(client, user, mailoutbox, password):
    open_link(client, user, mailoutbox)
    choose(client, NEW_PASSWORD)
    assert signs_in(user, NEW_PASSWORD)
    assert not signs_in(user, password)


def test_completing_reset_redirects_to_login_signed_out_with_message(client, user, mailoutbox):
    open_link(client, user, mailoutbox)
    response = choose(client, NEW_PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == LOGIN_URL
    assert "_auth_user_id" not in client.session
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Your password has been changed. Sign in with the new password."
    ]
    account = client.get("/accounts/")
    assert account.status_code == 302
    assert account["Location"].startswith(LOGIN_URL)


def test_new_password_signs_in_through_login_page(client, user, mailoutbox):
    open_link(client, user, mailoutbox)
    choose(client, NEW_PASSWORD)
    response = client.post(LOGIN_URL, {"email": user.email, "password": NEW_PASSWORD})
    assert response.status_code == 302
    assert client.get("/accounts/").status_code == 200


def test_old_password_fails_on_login_page(client, user, mailoutbox, password):
    open_link(client, user, mailoutbox)
    choose(client, NEW_PASSWORD)
    response = client.post(LOGIN_URL, {"email": user.email, "password": password})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_completing_reset_sends_password_changed_notice(client, user, mailoutbox):
    token = open_link(client, user, mailoutbox)
    choose(client, NEW_PASSWORD)
    assert len(mailoutbox) == 2
    notice = mailoutbox[1]
    assert notice.to == [user.email]
    assert "password was changed" in notice.subject
    assert "password of your" in notice.body
    assert token not in notice.body
    assert "https://todo.example/accounts/password/reset/" in notice.body


def test_completing_reset_ends_every_existing_session(client, user, mailoutbox):
    laptop = Client()
    force_page_login(laptop, user)
    phone = Client()
    force_page_login(phone, user)
    assert laptop.get("/accounts/").status_code == 200
    assert phone.get("/accounts/").status_code == 200

    open_link(client, user, mailoutbox)
    choose(client, NEW_PASSWORD)

    for other in (laptop, phone):
        response = other.get("/accounts/")
        assert response.status_code == 302
        assert response["Location"].startswith(LOGIN_URL)


def test_reset_while_signed_in_on_same_browser_signs_out(client, user, mailoutbox):
    force_page_login(client, user)
    open_link(client, user, mailoutbox)
    choose(client, NEW_PASSWORD)
    response = client.get("/accounts/")
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN_URL)


def test_unverified_user_completing_reset_becomes_verified(client, make_user, mailoutbox):
    unverified = make_user(verified=False)
    open_link(client, unverified, mailoutbox)
    choose(client, NEW_PASSWORD)
    unverified.refresh_from_db()
    assert unverified.email_verified_at is not None
    assert signs_in(unverified, NEW_PASSWORD)


def test_verified_at_is_kept_when_verified_user_resets(client, user, mailoutbox):
    verified_at = user.email_verified_at
    open_link(client, user, mailoutbox)
    choose(client, NEW_PASSWORD)
    user.refresh_from_db()
    assert user.email_verified_at == verified_at


def test_reset_token_is_single_use(client, user, mailoutbox):
    path = issue_link(user, mailoutbox)
    client.get(path)
    choose(client, NEW_PASSWORD)
    again = Client()
    assert_invalid_page(again.get(path), "already been used")
    assert_invalid_page(again.get(SET_URL))
    assert signs_in(user, NEW_PASSWORD)


def test_set_password_page_after_completion_is_invalid(client, user, mailoutbox):
    open_link(client, user, mailoutbox)
    choose(client, NEW_PASSWORD)
    assert_invalid_page(choose(client, "yet another long passphrase"))
    assert signs_in(user, NEW_PASSWORD)


def test_same_token_in_two_browsers_only_one_reset_succeeds(user, mailoutbox):
    path = issue_link(user, mailoutbox)
    first, second = Client(), Client()
    first.get(path)
    second.get(path)
    assert choose(first, NEW_PASSWORD).status_code == 302
    assert_invalid_page(choose(second, "yet another long passphrase"))
    assert signs_in(user, NEW_PASSWORD)


# --- rejected new passwords ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("password1", "password2", "error"),
    [
        ("short", "short", "too short"),
        ("password1234", "password1234", "too common"),
        ("alice@example.com", "alice@example.com", "too similar"),
        ("Tr0ub4dor&3-" * 11, "Tr0ub4dor&3-" * 11, "too long"),
        (NEW_PASSWORD, NEW_PASSWORD + "!", "do not match"),
        ("", "", "This field is required."),
    ],
    ids=["short", "common", "similar-to-email", "too-long", "mismatch", "empty"],
)
def test_rejected_password_shows_error_and_keeps_token(client, user, mailoutbox, password, password1, password2, error):
    open_link(client, user, mailoutbox)
    response = client.post(SET_URL, {"password1": password1, "password2": password2})
    assert response.status_code == 200
    body = response.content.decode()
    assert error in body
    assert 'name="password1"' in body
    assert token_row(user).used_at is None
    assert signs_in(user, password)
    assert not mailoutbox[1:], "no password-changed notice for a rejected password"

    response = choose(client, NEW_PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == LOGIN_URL
    assert signs_in(user, NEW_PASSWORD)


def test_rejected_password_is_not_echoed_back(client, user, mailoutbox):
    open_link(client, user, mailoutbox)
    response = client.post(SET_URL, {"password1": "secretvalue1", "password2": "secretvalue2"})
    assert "secretvalue1" not in response.content.decode()


# --- links that cannot be used ---------------------------------------------------------------


def test_expired_link_shows_invalid_page(client, user, mailoutbox):
    with time_machine.travel(START, tick=False):
        path = issue_link(user, mailoutbox)
    with time_machine.travel(START + timedelta(hours=1), tick=False):
        response = client.get(path)
    assert_invalid_page(response, "expired")


def test_link_works_just_before_expiry(client, user, mailoutbox):
    with time_machine.travel(START, tick=False):
        path = issue_link(user, mailoutbox)
    with time_machine.travel(START + timedelta(hours=1) - timedelta(seconds=1), tick=False):
        assert client.get(path).status_code == 302
        assert choose(client, NEW_PASSWORD).status_code == 302
    assert signs_in(user, NEW_PASSWORD)


def test_link_expiring_while_form_is_open_does_not_reset(client, user, mailoutbox, password):
    with time_machine.travel(START, tick=False):
        path = issue_link(user, mailoutbox)
    with time_machine.travel(START + timedelta(minutes=59), tick=False):
        assert client.get(path).status_code == 302
        assert client.get(SET_URL).status_code == 200
    with time_machine.travel(START + timedelta(minutes=61), tick=False):
        response = choose(client, NEW_PASSWORD)
    assert_invalid_page(response, "expired")
    assert signs_in(user, password)


def test_configured_reset_lifetime_applies_to_pages(client, user, mailoutbox, settings):
    settings.ACCOUNTS_PASSWORD_RESET_TIMEOUT = 300
    with time_machine.travel(START, tick=False):
        path = issue_link(user, mailoutbox)
    with time_machine.travel(START + timedelta(seconds=300), tick=False):
        assert_invalid_page(client.get(path), "expired")


def test_unknown_token_shows_invalid_page(client, db):
    assert_invalid_page(client.get(link_path(generate_token())), "not valid")


def test_tampered_token_shows_invalid_page(client, user, mailoutbox, password):
    token = token_from_link(issue_link(user, mailoutbox))
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert_invalid_page(client.get(link_path(tampered)), "not valid")
    assert_invalid_page(choose(client, NEW_PASSWORD))
    assert signs_in(user, password)


@pytest.mark.parametrize(
    "token",
    ["abc", "A" * 200, "A" * 42, "A" * 44, "A" * 42 + "*", "%20%20", "A" * 42 + "%00"],
    ids=["short", "200-chars", "42-chars", "44-chars", "star", "spaces", "nul"],
)
def test_malformed_token_shows_invalid_page_not_500(client, db, token):
    assert_invalid_page(client.get(link_path(token)))


def test_verification_token_on_reset_url_is_invalid(client, make_user, mailoutbox, password):
    user = make_user(verified=False)
    send_verification_email(user=user)
    verification_token = token_in(mailoutbox[-1], "/verify-email/")
    assert_invalid_page(client.get(link_path(verification_token)), "not valid")
    assert signs_in(user, password)


def test_superseded_link_is_invalid(client, user, mailoutbox):
    old_path = issue_link(user, mailoutbox)
    new_path = issue_link(user, mailoutbox)
    assert_invalid_page(client.get(old_path), "not valid")
    assert client.get(new_path).status_code == 302


def test_link_opened_before_a_newer_request_cannot_be_used(client, user, mailoutbox, password):
    open_link(client, user, mailoutbox)
    issue_link(user, mailoutbox)
    assert_invalid_page(choose(client, NEW_PASSWORD))
    assert signs_in(user, password)


def test_link_of_deactivated_user_is_invalid(client, user, mailoutbox, password):
    path = issue_link(user, mailoutbox)
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert_invalid_page(client.get(path))


def test_set_password_without_token_in_session_is_invalid(client, user, password):
    assert_invalid_page(client.get(SET_URL))
    assert_invalid_page(choose(client, NEW_PASSWORD))
    assert signs_in(user, password)


def test_invalid_link_clears_a_previously_opened_token(client, user, mailoutbox, password):
    open_link(client, user, mailoutbox)
    assert_invalid_page(client.get(link_path("abc")))
    assert_invalid_page(choose(client, NEW_PASSWORD))
    assert signs_in(user, password)
