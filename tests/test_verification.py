"""Email verification pages: the emailed link, the confirm button, invalid links and resending."""

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.test import Client

from accounts.exceptions import TokenUsed
from accounts.flows.password_reset import request_password_reset
from accounts.flows.verification import Verifier, send_verification_email, verify_email
from accounts.models import EmailVerificationToken, User
from accounts.tokens import generate_token
from tests.support.accounts import STRONG_PASSWORD, force_page_login
from tests.support.mail import link_in, token_from_link, token_in
from tests.support.pages import headers_but_the_clock

CONFIRM_URL = "/accounts/verify-email/confirm/"
RESEND_URL = "/accounts/verify-email/resend/"
SENT_URL = "/accounts/verify-email/sent/"
LOGIN_URL = "/accounts/login/"
START = datetime(2030, 3, 1, 9, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _site_url(settings):
    settings.SITE_URL = "https://todo.example"


@pytest.fixture
def unverified(client, db, mailoutbox):
    """Alice, unverified, signed up through the page in ``client`` (which therefore holds her sign-up proof)."""
    form = {"email": "alice@example.com", "name": "Alice", "password1": STRONG_PASSWORD, "password2": STRONG_PASSWORD}
    assert client.post("/accounts/signup/", form).status_code == 302
    mailoutbox.clear()
    return User.objects.get(email="alice@example.com")


def verification_link(mailoutbox) -> str:
    return link_in(mailoutbox[-1], "/verify-email/")


def issue_link(user, mailoutbox) -> str:
    """Send ``user`` a verification email; return the path of its link."""
    send_verification_email(user=user)
    return urlsplit(verification_link(mailoutbox)).path


def verify_path(token: str) -> str:
    return f"/accounts/verify-email/{token}/"


def assert_invalid_page(response, text: str | None = None):
    assert response.status_code == 400
    body = response.content.decode()
    assert "This verification link cannot be used" in body
    assert f'action="{RESEND_URL}"' in body
    assert 'name="email"' in body
    if text is not None:
        assert text in body


def reload(user):
    user.refresh_from_db()
    return user


# --- the emailed link -------------------------------------------------------------


def test_emailed_link_is_on_site_url(unverified, mailoutbox):
    send_verification_email(user=unverified)
    link = verification_link(mailoutbox)
    assert link.startswith("https://todo.example/accounts/verify-email/")
    assert link.endswith("/")
    assert len(token_from_link(link)) == 43
    assert mailoutbox[0].to == [unverified.email]
    html = mailoutbox[0].alternatives[0][0]
    assert link in html


def test_emailed_link_ignores_host_header(db, client, mailoutbox, settings):
    settings.ALLOWED_HOSTS = ["evil.example", "testserver"]
    response = client.post(
        "/accounts/signup/",
        {"email": "bob@example.com", "name": "Bob", "password1": STRONG_PASSWORD, "password2": STRONG_PASSWORD},
        HTTP_HOST="evil.example",
    )
    assert response.status_code == 302
    assert verification_link(mailoutbox).startswith("https://todo.example/accounts/verify-email/")
    assert "evil.example" not in mailoutbox[0].body
    assert "evil.example" not in mailoutbox[0].alternatives[0][0]


def test_get_link_redirects_to_confirm_page_without_verifying(client, unverified, mailoutbox):
    path = issue_link(unverified, mailoutbox)
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == CONFIRM_URL
    assert reload(unverified).email_verified_at is None
    assert EmailVerificationToken.objects.get(user=unverified).used_at is None


def test_confirm_page_shows_a_post_button_and_does_not_verify(client, unverified, mailoutbox):
    client.get(issue_link(unverified, mailoutbox))
    response = client.get(CONFIRM_URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert '<form method="post">' in body
    assert "Verify my email address" in body
    assert token_from_link(verification_link(mailoutbox)) not in body
    assert reload(unverified).email_verified_at is None
    assert EmailVerificationToken.objects.get(user=unverified).used_at is None


def test_link_scanner_that_only_gets_leaves_token_usable(client, unverified, mailoutbox):
    path = issue_link(unverified, mailoutbox)
    scanner = Client()
    for _ in range(3):
        assert scanner.get(path).status_code == 302
        assert scanner.get(CONFIRM_URL).status_code == 200
    assert reload(unverified).email_verified_at is None

    person = client  # the browser that signed up
    person.get(path)
    response = person.post(CONFIRM_URL)
    assert response.status_code == 302
    assert reload(unverified).email_verified_at is not None


def test_post_confirm_verifies_and_redirects_to_login_with_message(client, unverified, mailoutbox):
    client.get(issue_link(unverified, mailoutbox))
    response = client.post(CONFIRM_URL)
    assert response.status_code == 302
    assert response["Location"] == LOGIN_URL
    assert reload(unverified).email_verified_at is not None
    assert EmailVerificationToken.objects.get(user=unverified).used_at is not None
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Your email address is verified."]
    page = client.get(LOGIN_URL)
    assert "Your email address is verified." in page.content.decode()


def test_verified_user_can_then_sign_in(client, unverified, mailoutbox, password):
    client.get(issue_link(unverified, mailoutbox))
    client.post(CONFIRM_URL)
    response = client.post(LOGIN_URL, {"email": unverified.email, "password": password})
    assert response.status_code == 302
    assert client.get("/accounts/").status_code == 200


def test_unverified_user_cannot_sign_in_before_confirming(client, unverified, mailoutbox, password):
    client.get(issue_link(unverified, mailoutbox))
    client.get(CONFIRM_URL)
    response = client.post(LOGIN_URL, {"email": unverified.email, "password": password})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_signed_in_user_confirming_goes_to_account_page(client, unverified, mailoutbox):
    force_page_login(client, unverified)
    client.get(issue_link(unverified, mailoutbox))
    response = client.post(CONFIRM_URL)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/"
    assert reload(unverified).email_verified_at is not None


def test_token_is_not_in_redirect_location(client, unverified, mailoutbox):
    path = issue_link(unverified, mailoutbox)
    token = token_from_link(path)
    response = client.get(path)
    assert token not in response["Location"]


def test_link_and_confirm_responses_never_refer_with_the_token_path_and_are_not_stored(client, unverified, mailoutbox):
    path = issue_link(unverified, mailoutbox)
    responses = [client.get(path), client.get(CONFIRM_URL), client.post(CONFIRM_URL)]
    for response in responses:
        assert response["Referrer-Policy"] == "strict-origin"
        assert "no-store" in response["Cache-Control"]


def test_invalid_link_page_never_refers_with_its_path_and_is_not_stored(client, db):
    response = client.get(verify_path(generate_token()))
    assert response.status_code == 400
    assert response["Referrer-Policy"] == "strict-origin"
    assert "no-store" in response["Cache-Control"]


# --- links that cannot be used ------------------------------------------------------


def test_used_link_shows_invalid_page(client, unverified, mailoutbox):
    path = issue_link(unverified, mailoutbox)
    client.get(path)
    client.post(CONFIRM_URL)
    response = Client().get(path)
    assert_invalid_page(response, "already been used")


def test_post_confirm_twice_second_is_invalid(client, unverified, mailoutbox):
    client.get(issue_link(unverified, mailoutbox))
    assert client.post(CONFIRM_URL).status_code == 302
    assert_invalid_page(client.post(CONFIRM_URL))


def test_expired_link_shows_invalid_page(client, unverified, mailoutbox):
    with time_machine.travel(START, tick=False):
        path = issue_link(unverified, mailoutbox)
    with time_machine.travel(START + timedelta(hours=24), tick=False):
        response = client.get(path)
    assert_invalid_page(response, "expired")
    assert reload(unverified).email_verified_at is None


def test_link_still_works_just_before_expiry(client, unverified, mailoutbox):
    with time_machine.travel(START, tick=False):
        path = issue_link(unverified, mailoutbox)
    with time_machine.travel(START + timedelta(hours=24) - timedelta(seconds=1), tick=False):
        assert client.get(path).status_code == 302
        assert client.post(CONFIRM_URL).status_code == 302
    assert reload(unverified).email_verified_at is not None


def test_link_expiring_between_get_and_post_does_not_verify(client, unverified, mailoutbox):
    with time_machine.travel(START, tick=False):
        path = issue_link(unverified, mailoutbox)
    with time_machine.travel(START + timedelta(hours=23, minutes=59), tick=False):
        assert client.get(path).status_code == 302
    with time_machine.travel(START + timedelta(hours=24, minutes=1), tick=False):
        response = client.post(CONFIRM_URL)
    assert_invalid_page(response, "expired")
    assert reload(unverified).email_verified_at is None


def test_shorter_configured_lifetime_applies_to_pages(client, unverified, mailoutbox, settings):
    settings.ACCOUNTS_EMAIL_VERIFICATION_TIMEOUT = 3600
    with time_machine.travel(START, tick=False):
        path = issue_link(unverified, mailoutbox)
    with time_machine.travel(START + timedelta(hours=1), tick=False):
        assert_invalid_page(client.get(path), "expired")


def test_unknown_token_shows_invalid_page(client, db):
    assert_invalid_page(client.get(verify_path(generate_token())), "not valid")


def test_tampered_token_shows_invalid_page_and_does_not_verify(client, unverified, mailoutbox):
    token = token_from_link(issue_link(unverified, mailoutbox))
    tampered = token[:10] + ("a" if token[10] != "a" else "b") + token[11:]
    assert_invalid_page(client.get(verify_path(tampered)), "not valid")
    assert reload(unverified).email_verified_at is None


@pytest.mark.parametrize(
    "token",
    ["abc", "A" * 200, "A" * 42, "A" * 44, "A" * 42 + "~", "%20" * 3, "..", "A" * 42 + "%00"],
    ids=["short", "200-chars", "42-chars", "44-chars", "tilde", "spaces", "dots", "nul"],
)
def test_malformed_token_shows_invalid_page_not_500(client, db, token):
    assert_invalid_page(client.get(verify_path(token)))


def test_password_reset_token_on_verify_url_is_invalid(client, make_user, mailoutbox):
    user = make_user(verified=False)
    request_password_reset(email=user.email)
    reset_token = token_in(mailoutbox[-1], "/password/reset/")
    assert_invalid_page(client.get(verify_path(reset_token)), "not valid")
    assert reload(user).email_verified_at is None


def test_other_users_token_verifies_that_user_not_the_signed_in_one(client, make_user, mailoutbox):
    alice = make_user(verified=False)
    bob = make_user(email="bob@example.com", name="Bob", verified=False)
    force_page_login(client, alice)
    client.get(issue_link(bob, mailoutbox))
    response = client.post(CONFIRM_URL, {"proof": "password", "current-password": STRONG_PASSWORD})
    assert response.status_code == 302
    assert reload(bob).email_verified_at is not None
    assert reload(alice).email_verified_at is None


def test_post_confirm_without_token_in_session_is_invalid(client, db):
    assert_invalid_page(client.post(CONFIRM_URL))


def test_get_confirm_without_token_in_session_is_invalid(client, db):
    assert_invalid_page(client.get(CONFIRM_URL))


def test_post_to_emailed_link_is_not_allowed_and_does_not_verify(client, unverified, mailoutbox):
    response = client.post(issue_link(unverified, mailoutbox))
    assert response.status_code == 405
    assert reload(unverified).email_verified_at is None


def test_link_sent_to_previous_address_is_invalid(client, unverified, mailoutbox):
    path = issue_link(unverified, mailoutbox)
    unverified.email = "alice.new@example.com"
    unverified.save(update_fields=["email"])
    assert_invalid_page(client.get(path))
    assert reload(unverified).email_verified_at is None


def test_address_change_between_get_and_post_prevents_verification(client, unverified, mailoutbox):
    client.get(issue_link(unverified, mailoutbox))
    unverified.email = "alice.new@example.com"
    unverified.save(update_fields=["email"])
    assert_invalid_page(client.post(CONFIRM_URL))
    assert reload(unverified).email_verified_at is None


def test_link_of_deactivated_account_is_invalid(client, unverified, mailoutbox):
    path = issue_link(unverified, mailoutbox)
    unverified.is_active = False
    unverified.save(update_fields=["is_active"])
    assert_invalid_page(client.get(path))
    assert reload(unverified).email_verified_at is None


def test_verify_email_twice_with_same_token_raises_token_used(unverified, mailoutbox):
    token = token_from_link(issue_link(unverified, mailoutbox))
    verify_email(token=token, verifier=Verifier(password=STRONG_PASSWORD))
    with pytest.raises(TokenUsed) as excinfo:
        verify_email(token=token, verifier=Verifier(password=STRONG_PASSWORD))
    assert excinfo.value.code == "token_used"


# --- resending ---------------------------------------------------------------------


def test_resend_page_shows_email_form(client, db):
    response = client.get(RESEND_URL)
    assert response.status_code == 200
    assert 'name="email"' in response.content.decode()


def test_resend_answers_identically_for_unknown_verified_and_unverified(client, make_user, mailoutbox):
    make_user(email="verified@example.com", verified=True)
    make_user(email="unverified@example.com", name="Una", verified=False)
    responses = [
        client.post(RESEND_URL, {"email": email})
        for email in ("nobody@example.com", "verified@example.com", "unverified@example.com")
    ]
    for response in responses:
        assert response.status_code == 302
        assert response["Location"] == SENT_URL
    assert len({r.content for r in responses}) == 1
    assert len({headers_but_the_clock(r) for r in responses}) == 1
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["unverified@example.com"]


def test_resend_sent_page_is_the_same_for_everyone(client, db):
    response = client.get(SENT_URL)
    assert response.status_code == 200
    assert "If that address belongs to an account that still needs verifying" in response.content.decode()


def test_resend_to_unknown_address_sends_nothing(client, db, mailoutbox):
    response = client.post(RESEND_URL, {"email": "nobody@example.com"})
    assert response["Location"] == SENT_URL
    assert mailoutbox == []


def test_resend_to_verified_address_sends_nothing(client, make_user, mailoutbox):
    make_user()
    response = client.post(RESEND_URL, {"email": "alice@example.com"})
    assert response["Location"] == SENT_URL
    assert mailoutbox == []


def test_resend_to_deactivated_unverified_account_sends_nothing(client, make_user, mailoutbox):
    make_user(verified=False, is_active=False)
    response = client.post(RESEND_URL, {"email": "alice@example.com"})
    assert response["Location"] == SENT_URL
    assert mailoutbox == []


def test_resend_normalises_case_and_whitespace(client, unverified, mailoutbox):
    response = client.post(RESEND_URL, {"email": "  ALICE@Example.COM "})
    assert response["Location"] == SENT_URL
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["alice@example.com"]


def test_resend_with_invalid_address_shows_form_error(client, db, mailoutbox):
    response = client.post(RESEND_URL, {"email": "not an address"})
    assert response.status_code == 200
    assert "Enter a valid email address." in response.content.decode()
    assert mailoutbox == []


def test_resent_link_works_and_previous_link_is_invalid(client, unverified, mailoutbox):
    old_path = issue_link(unverified, mailoutbox)
    Client().post(RESEND_URL, {"email": unverified.email})
    new_link = verification_link(mailoutbox)
    assert new_link.startswith("https://todo.example/accounts/verify-email/")
    new_path = urlsplit(new_link).path
    assert new_path != old_path

    assert_invalid_page(Client().get(old_path), "not valid")

    person = client  # the browser that signed up
    assert person.get(new_path).status_code == 302
    assert person.post(CONFIRM_URL).status_code == 302
    assert reload(unverified).email_verified_at is not None


def test_old_link_opened_before_resend_cannot_be_confirmed_after_it(client, unverified, mailoutbox):
    client.get(issue_link(unverified, mailoutbox))  # old token now in this session
    Client().post(RESEND_URL, {"email": unverified.email})
    assert_invalid_page(client.post(CONFIRM_URL))
    assert reload(unverified).email_verified_at is None


def test_resend_form_on_invalid_page_sends_a_new_link(client, unverified, mailoutbox):
    page = client.get(verify_path("abc"))
    assert_invalid_page(page)
    response = client.post(RESEND_URL, {"email": unverified.email})
    assert response["Location"] == SENT_URL
    assert len(mailoutbox) == 1
    assert "/accounts/verify-email/" in verification_link(mailoutbox)
