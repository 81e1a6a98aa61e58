"""Sign-up: the page, the flow, its emails, and that it never reveals whether an address has an account."""

import logging
import re

import pytest
from django.test import Client

from accounts.exceptions import AccountError, InvalidEmail, PasswordRejected
from accounts.flows.signup import sign_up
from accounts.flows.verification import signup_proof
from accounts.models import EmailVerificationToken, User
from accounts.tokens import hash_token
from tests.support.accounts import STRONG_PASSWORD
from tests.support.mail import deliver_outbox, html_of, install_unreachable_email, links_in, token_from_link

pytestmark = pytest.mark.django_db

SIGNUP_URL = "/accounts/signup/"
DONE_URL = "/accounts/signup/done/"
SITE_URL = "https://todo.example"
VERIFY_LINK = re.compile(r"^https://todo\.example/accounts/verify-email/([A-Za-z0-9_-]{43})/$")


@pytest.fixture
def site(settings):
    settings.SITE_URL = SITE_URL
    settings.SITE_NAME = "Acme Todo"
    return settings


def signup_data(**overrides):
    data = {"email": "alice@example.com", "name": "Alice", "password1": STRONG_PASSWORD, "password2": STRONG_PASSWORD}
    data.update(overrides)
    return data


def post_signup(client, **overrides):
    return client.post(SIGNUP_URL, signup_data(**overrides))


# --- The page -------------------------------------------------------------------


def test_signup_page_renders_the_form_with_the_stylesheet(client):
    response = client.get(SIGNUP_URL)
    assert response.status_code == 200
    content = response.content.decode()
    for field in ("email", "name", "password1", "password2"):
        assert f'name="{field}"' in content
    assert 'rel="stylesheet"' in content
    assert "/static/css/site.css" in content
    assert "csrfmiddlewaretoken" in content


def test_signup_page_rejects_other_methods(client):
    assert client.put(SIGNUP_URL).status_code == 405


# --- A new address --------------------------------------------------------------


def test_new_address_redirects_to_check_inbox_page(client, mailoutbox):
    response = post_signup(client)
    assert response.status_code == 302
    assert response["Location"] == DONE_URL
    page = client.get(DONE_URL)
    assert page.status_code == 200
    assert "Check your inbox" in page.content.decode()


def test_new_address_creates_unverified_user_with_lowercase_email(client, mailoutbox):
    post_signup(client, email="  Alice.Smith@EXAMPLE.com ", name="  Alice Smith ")
    user = User.objects.get()
    assert user.email == "alice.smith@example.com"
    assert user.name == "Alice Smith"
    assert user.email_verified_at is None
    assert user.is_active
    assert not user.is_staff and not user.is_superuser


@pytest.mark.real_argon2
def test_new_address_password_is_hashed_with_argon2id(client, mailoutbox):
    post_signup(client)
    user = User.objects.get()
    assert user.password.startswith("argon2$argon2id$")
    assert "m=19456,t=2,p=1" in user.password
    assert STRONG_PASSWORD not in user.password
    assert user.check_password(STRONG_PASSWORD)


def test_new_address_does_not_sign_the_person_in(client, mailoutbox):
    post_signup(client)
    assert "_auth_user_id" not in client.session
    assert client.get("/accounts/").status_code == 302


def test_new_address_gets_exactly_one_verification_email_on_site_url(client, mailoutbox, site):
    post_signup(client, email="Alice@Example.com")
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["alice@example.com"]
    [link] = [link for link in links_in(message) if "/verify-email/" in link]
    assert link.startswith(SITE_URL + "/accounts/verify-email/")
    assert VERIFY_LINK.match(link)


def test_verification_link_token_belongs_to_the_new_user(client, mailoutbox, site):
    post_signup(client)
    [link] = [link for link in links_in(mailoutbox[0]) if "/verify-email/" in link]
    token = token_from_link(link)
    row = EmailVerificationToken.objects.get()
    assert row.user == User.objects.get()
    assert row.token_hash == hash_token(token)
    assert token not in row.token_hash
    assert row.email == "alice@example.com"
    assert row.used_at is None


def test_verification_email_has_text_and_html_with_site_name(client, mailoutbox, site):
    post_signup(client)
    message = mailoutbox[0]
    html = html_of(message)
    [link] = [link for link in links_in(message) if "/verify-email/" in link]
    assert "Acme Todo" in message.subject
    assert "Acme Todo" in message.body
    assert "Acme Todo" in html
    assert link in message.body
    assert f'href="{link}"' in html
    # The name was typed by whoever signed up, maybe not the address's owner: it does not open the email.
    assert message.body.startswith("Hello,\n")
    assert "Alice" not in message.body and "Alice" not in html


def test_verification_link_never_uses_the_request_host_header(client, mailoutbox, site):
    site.ALLOWED_HOSTS = ["attacker.example", "testserver"]
    response = client.post(SIGNUP_URL, signup_data(), HTTP_HOST="attacker.example")
    assert response.status_code == 302
    message = mailoutbox[0]
    assert "attacker.example" not in message.body
    assert "attacker.example" not in html_of(message)
    links = links_in(message)
    assert links
    assert all(link.startswith(SITE_URL + "/") for link in links)


def test_fullwidth_email_is_normalised_to_ascii(client, mailoutbox):
    response = post_signup(client, email="ａｌｉｃｅ@example.com")
    assert response.status_code == 302
    assert User.objects.get().email == "alice@example.com"
    assert mailoutbox[0].to == ["alice@example.com"]


def test_password_of_exactly_128_characters_is_accepted_without_truncation(client, mailoutbox):
    password = ("correct horse battery staple " * 5)[:128]
    assert len(password) == 128
    response = post_signup(client, password1=password, password2=password)
    assert response.status_code == 302
    user = User.objects.get()
    assert user.check_password(password)
    assert not user.check_password(password[:127])
    assert len(mailoutbox) == 1


# --- An address that already has an account ----------------------------------------


@pytest.mark.parametrize("entered", ["alice@example.com", "ALICE@Example.COM", "ａｌｉｃｅ@example.com"])
def test_existing_address_gets_the_same_response_as_a_new_one(client, make_user, mailoutbox, entered):
    new = client.post(SIGNUP_URL, signup_data(email="newcomer@example.com"), follow=True)
    make_user(email="alice@example.com")
    existing = client.post(SIGNUP_URL, signup_data(email=entered), follow=True)

    assert existing.status_code == new.status_code == 200
    assert existing.redirect_chain == new.redirect_chain == [(DONE_URL, 302)]
    assert existing.content == new.content
    assert sorted(existing.cookies) == sorted(new.cookies)


def test_existing_address_redirect_is_identical_without_following(client, make_user, mailoutbox):
    new = post_signup(client, email="newcomer@example.com")
    make_user(email="alice@example.com")
    existing = post_signup(client, email="ALICE@Example.COM")
    assert existing.status_code == new.status_code == 302
    assert existing["Location"] == new["Location"] == DONE_URL
    assert existing.content == new.content


@pytest.mark.parametrize("entered", ["alice@example.com", "ALICE@Example.COM", "ａｌｉｃｅ@example.com"])
def test_existing_address_creates_no_user_and_changes_nothing(client, make_user, mailoutbox, entered):
    owner = make_user(email="alice@example.com", name="Alice")
    original_hash = owner.password
    post_signup(
        client, email=entered, name="Mallory", password1="a whole new passphrase", password2="a whole new passphrase"
    )
    assert User.objects.count() == 1
    owner.refresh_from_db()
    assert owner.password == original_hash
    assert owner.name == "Alice"
    assert owner.check_password(STRONG_PASSWORD)
    assert not owner.check_password("a whole new passphrase")


def test_existing_address_owner_gets_one_account_exists_email(client, make_user, mailoutbox, site):
    make_user(email="alice@example.com")
    post_signup(client, email="ALICE@Example.COM")
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["alice@example.com"]
    assert "tried to sign up" in message.subject
    assert "Acme Todo" in message.subject
    assert "no new one was created" in message.body
    assert f"{SITE_URL}/accounts/password/reset/" in links_in(message)
    assert f'href="{SITE_URL}/accounts/password/reset/"' in html_of(message)


def test_existing_address_email_contains_no_verification_token(client, make_user, mailoutbox, site):
    make_user(email="alice@example.com")
    post_signup(client)
    message = mailoutbox[0]
    assert not [link for link in links_in(message) if "/verify-email/" in link and "resend" not in link]
    assert EmailVerificationToken.objects.count() == 0


def test_existing_unverified_owner_is_led_straight_to_choosing_a_new_password(client, make_user, mailoutbox, site):
    make_user(email="alice@example.com", verified=False)
    post_signup(client)
    [set_password] = [link for link in links_in(mailoutbox[0]) if "/accounts/password/reset/" in link]
    assert re.fullmatch(rf"{SITE_URL}/accounts/password/reset/[A-Za-z0-9_-]{{43}}/", set_password)
    assert f"{SITE_URL}/accounts/verify-email/resend/" not in links_in(mailoutbox[0])
    assert f"{SITE_URL}/accounts/login/" not in links_in(mailoutbox[0])


def test_existing_verified_owner_is_not_offered_verification(client, make_user, mailoutbox, site):
    make_user(email="alice@example.com", verified=True)
    post_signup(client)
    assert f"{SITE_URL}/accounts/verify-email/resend/" not in links_in(mailoutbox[0])


def test_existing_address_email_ignores_the_request_host_header(client, make_user, mailoutbox, site):
    make_user(email="alice@example.com")
    site.ALLOWED_HOSTS = ["attacker.example", "testserver"]
    client.post(SIGNUP_URL, signup_data(), HTTP_HOST="attacker.example")
    message = mailoutbox[0]
    assert "attacker.example" not in message.body
    assert "attacker.example" not in html_of(message)


def test_hasher_runs_equally_often_for_new_and_existing_addresses(client, make_user, mailoutbox, hash_counter):
    make_user(email="alice@example.com")

    hash_counter.calls = 0
    post_signup(client, email="newcomer@example.com")
    for_new = hash_counter.calls

    hash_counter.calls = 0
    post_signup(client, email="ALICE@example.com")
    for_existing = hash_counter.calls

    assert for_new > 0
    assert for_new == for_existing


def test_counting_hasher_really_hashes_new_passwords(client, mailoutbox, hash_counter):
    post_signup(client)
    assert hash_counter.calls == 1
    assert User.objects.get().password.startswith("argon2$argon2id$")


# --- Invalid input --------------------------------------------------------------


INVALID_INPUT = {
    "mismatched passwords": (
        {"password2": STRONG_PASSWORD + "!"},
        "The two passwords do not match.",
    ),
    "password too short": (
        {"password1": "short pass1", "password2": "short pass1"},
        "This password is too short. It must contain at least 12 characters.",
    ),
    "password too long": (
        {"password1": "x" * 129, "password2": "x" * 129},
        "This password is too long. It must contain at most 128 characters.",
    ),
    "common password": (
        {"password1": "password1234", "password2": "password1234"},
        "This password is too common.",
    ),
    "password similar to email": (
        {
            "email": "bartholomew.featherstone@example.com",
            "password1": "bartholomew.featherstone",
            "password2": "bartholomew.featherstone",
        },
        "The password is too similar to the email address.",
    ),
    "password similar to name": (
        {"name": "Maximilian Oberhausen", "password1": "maximilianoberhausen", "password2": "maximilianoberhausen"},
        "The password is too similar to the display name.",
    ),
    "missing name": ({"name": ""}, "This field is required."),
    "blank name": ({"name": "   "}, "This field is required."),
    "name over 150 characters": ({"name": "N" * 151}, "Ensure this value has at most 150 characters"),
    "missing email": ({"email": ""}, "This field is required."),
    "missing password": ({"password1": "", "password2": ""}, "This field is required."),
    "not an email": ({"email": "not-an-email"}, "Enter a valid email address."),
    "two at signs": ({"email": "a@b@c"}, "Enter a valid email address."),
    "null byte": ({"email": "al\x00ice@example.com"}, "Null characters are not allowed."),
    "cyrillic local part": (
        {"email": "\u0430lice@example.com"},
        "Use an address with only ASCII characters before the @.",
    ),
    "space inside email": ({"email": "al ice@example.com"}, "Enter a valid email address."),
}


@pytest.mark.parametrize(("overrides", "message"), INVALID_INPUT.values(), ids=INVALID_INPUT.keys())
def test_invalid_input_shows_form_error_and_creates_nothing(client, mailoutbox, overrides, message):
    response = post_signup(client, **overrides)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert 'class="error"' in response.content.decode()
    assert User.objects.count() == 0
    assert EmailVerificationToken.objects.count() == 0
    assert mailoutbox == []


def test_invalid_input_for_an_existing_address_sends_nothing(client, make_user, mailoutbox):
    make_user(email="alice@example.com")
    response = post_signup(client, password1="short pass1", password2="short pass1")
    assert response.status_code == 200
    assert "too short" in response.content.decode()
    assert mailoutbox == []
    assert User.objects.count() == 1


def test_invalid_input_keeps_email_and_name_but_not_passwords(client, mailoutbox):
    response = post_signup(client, password2="something else entirely")
    content = response.content.decode()
    assert 'value="alice@example.com"' in content
    assert 'value="Alice"' in content
    assert STRONG_PASSWORD not in content
    assert "something else entirely" not in content


def test_cyrillic_lookalike_of_existing_address_is_rejected_not_registered(client, make_user, mailoutbox):
    make_user(email="alice@example.com")
    response = post_signup(client, email="\u0430lice@example.com")
    assert response.status_code == 200
    assert User.objects.count() == 1
    assert mailoutbox == []


def test_password_too_long_is_not_hashed(client, mailoutbox, hash_counter):
    post_signup(client, password1="x" * 129, password2="x" * 129)
    assert hash_counter.calls == 0


# --- Email delivery failure ---------------------------------------------------------


@pytest.fixture
def failing_email(settings):
    return install_unreachable_email(settings)


def test_email_failure_for_new_address_still_redirects_and_logs_without_token(client, failing_email, caplog):
    caplog.set_level(logging.WARNING)
    response = post_signup(client)
    deliver_outbox()  # the worker's attempt
    assert response.status_code == 302
    assert response["Location"] == DONE_URL
    assert User.objects.filter(email="alice@example.com").exists()

    [message] = failing_email.attempted
    [link] = [link for link in links_in(message) if "/verify-email/" in link]
    token = token_from_link(link)
    errors = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert errors, "the failed send must be logged"
    assert token not in caplog.text
    assert link not in caplog.text


def test_email_failure_for_existing_address_gives_the_same_redirect(client, make_user, failing_email, caplog):
    make_user(email="alice@example.com")
    caplog.set_level(logging.WARNING)
    response = post_signup(client, email="ALICE@example.com")
    deliver_outbox()  # the worker's attempt
    assert response.status_code == 302
    assert response["Location"] == DONE_URL
    assert len(failing_email.attempted) == 1
    assert any(record.levelno >= logging.WARNING for record in caplog.records)
    assert User.objects.count() == 1


# --- The flow, called directly ----------------------------------------------------


def test_flow_sign_up_creates_unverified_user_and_returns_its_sign_up_proof(mailoutbox):
    proof = sign_up(email="Bob@Example.com", password=STRONG_PASSWORD, name=" Bob ")
    user = User.objects.get()
    assert proof == signup_proof(user.password)
    assert (user.email, user.name, user.email_verified_at) == ("bob@example.com", "Bob", None)
    assert len(mailoutbox) == 1


def test_flow_sign_up_for_existing_address_returns_a_proof_of_nothing_and_sends_notice(make_user, mailoutbox):
    existing = make_user(email="bob@example.com", name="Bob")
    proof = sign_up(email="BOB@example.com", password=STRONG_PASSWORD, name="Robert")
    assert re.fullmatch(r"[0-9a-f]{64}", proof)  # shaped like a real one
    assert proof != signup_proof(existing.password)
    assert User.objects.get().name == "Bob"
    assert [m.to for m in mailoutbox] == [["bob@example.com"]]
    assert "tried to sign up" in mailoutbox[0].subject


@pytest.mark.parametrize("email", ["not-an-email", "a@b@c", "al\x00ice@example.com", "\u0430lice@example.com", ""])
def test_flow_sign_up_rejects_invalid_email(mailoutbox, email):
    with pytest.raises(InvalidEmail) as caught:
        sign_up(email=email, password=STRONG_PASSWORD, name="Alice")
    assert caught.value.code == "invalid_email"
    assert caught.value.field == "email"
    assert User.objects.count() == 0
    assert mailoutbox == []


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("short pass1", "too short"),
        ("x" * 129, "too long"),
        ("password1234", "too common"),
        ("alice.wonderland", "too similar"),
    ],
)
def test_flow_sign_up_rejects_weak_password(mailoutbox, password, expected):
    with pytest.raises(PasswordRejected) as caught:
        sign_up(email="alice.wonderland@example.com", password=password, name="Alice")
    assert caught.value.code == "password_rejected"
    assert caught.value.field == "password"
    assert any(expected in message for message in caught.value.messages)
    assert User.objects.count() == 0
    assert mailoutbox == []


@pytest.mark.parametrize("name", ["", "   ", "N" * 151])
def test_flow_sign_up_rejects_bad_name(mailoutbox, name):
    with pytest.raises(AccountError) as caught:
        sign_up(email="alice@example.com", password=STRONG_PASSWORD, name=name)
    assert caught.value.field == "name"
    assert User.objects.count() == 0
    assert mailoutbox == []


def test_flow_sign_up_accepts_name_of_exactly_150_characters(mailoutbox):
    sign_up(email="alice@example.com", password=STRONG_PASSWORD, name="N" * 150)
    assert User.objects.get().name == "N" * 150


def test_the_account_exists_email_is_limited_per_address(user, mailoutbox, settings):
    """Repeated sign-ups for an existing address cannot flood its owner's inbox,
    and the answer stays the same as for a new address."""
    settings.ACCOUNTS_RATE_LIMITS = {**settings.ACCOUNTS_RATE_LIMITS, "sign_up_mails_per_address": "2/h"}
    answers = [
        Client().post(
            SIGNUP_URL,
            {"email": user.email, "name": "Someone", "password1": STRONG_PASSWORD, "password2": STRONG_PASSWORD},
        )
        for _ in range(4)
    ]
    assert [response.status_code for response in answers] == [302, 302, 302, 302]
    assert {response["Location"] for response in answers} == {DONE_URL}
    assert [message.to for message in mailoutbox] == [[user.email], [user.email]]
