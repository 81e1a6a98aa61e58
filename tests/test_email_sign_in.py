"""Signing in with an emailed code or link: the API, the pages, the rules of a code, and attacks on them."""

import functools
import re
from datetime import timedelta

import jwt
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.client_info import ClientInfo
from accounts.exceptions import SignInCodeInvalid
from accounts.flows.email_sign_in import (
    CODE_ALPHABET,
    authenticate_email_code,
    format_code,
    generate_code,
    normalize_code,
)
from accounts.flows.signin import SecondStepRequired, SignedIn
from accounts.log_redaction import redact
from accounts.models import EmailSignInCode, SecurityEvent, User
from tests.support.accounts import STRONG_PASSWORD
from tests.support.api import (
    assert_api_error,
    get_me,
    login_response,
    post_json,
)
from tests.support.mail import link_path_in, mails_to
from tests.support.mfa import enable_totp, totp_code
from tests.support.pages import browser, submit
from tests.support.races import run_at_once

pytestmark = pytest.mark.django_db

ALICE = "alice@example.com"
BOB = "bob@example.com"
NOBODY = "nobody@example.com"
REQUEST_URL = "/api/auth/login/email/"
VERIFY_URL = "/api/auth/login/email/verify/"
PAGE_URL = "/accounts/login/email/"
CODE_PAGE_URL = "/accounts/login/email/code/"
CONFIRM_URL = "/accounts/login/email/confirm/"
_CODE_IN_BODY = re.compile(r"^([A-Z0-9]{4}-[A-Z0-9]{4})$", re.MULTILINE)


def ask(email: str = ALICE, client: Client | None = None, **extra):
    return post_json(client or Client(), REQUEST_URL, {"email": email}, **extra)


def verify(code: str, email: str = ALICE, client: Client | None = None, **extra):
    return post_json(client or Client(), VERIFY_URL, {"email": email, "code": code}, **extra)


def sign_in_email(mailoutbox, email: str = ALICE):
    """The newest sign-in email to ``email``."""
    return [message for message in mails_to(mailoutbox, email) if "sign-in code" in message.subject][-1]


def code_in(message) -> str:
    return _CODE_IN_BODY.search(message.body).group(1)


def emailed_code(mailoutbox, email: str = ALICE, **extra) -> str:
    """Ask for a code for ``email`` and read it from the email."""
    assert ask(email, **extra).status_code == 202
    return code_in(sign_in_email(mailoutbox, email))


def emailed_link(mailoutbox, email: str = ALICE) -> str:
    assert ask(email).status_code == 202
    return link_path_in(sign_in_email(mailoutbox, email), "/login/email/")


def claims_of(response) -> dict:
    return jwt.decode(response.json()["access"], options={"verify_signature": False})


def row_of(email: str = ALICE) -> EmailSignInCode:
    from accounts.audit import email_fingerprint

    return EmailSignInCode.objects.get(address_key=email_fingerprint(email), used_at__isnull=True)


def wrong_code_for(code: str) -> str:
    replacement = "A" if code[0] != "A" else "B"
    return replacement + code[1:]


@pytest.fixture
def no_code_limits(settings):
    settings.ACCOUNTS_RATE_LIMITS = {
        **settings.ACCOUNTS_RATE_LIMITS,
        "sign_in_code_failures_per_ip": "100000/10m",
        "sign_in_code_mails_per_address": "100000/h",
        "sign_in_code_mails_per_ip": "100000/h",
    }


# --- Codes ------------------------------------------------------------------------------------------


def test_codes_are_eight_characters_without_look_alikes():
    codes = {generate_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(code) == 8 and set(code) <= set(CODE_ALPHABET) for code in codes)
    assert not set("ILOU01") & set(CODE_ALPHABET)
    assert format_code("ABCDEFGH") == "ABCD-EFGH"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("ABCD-EFGH", "ABCDEFGH"), ("abcd efgh", "ABCDEFGH"), (" abcdefgh ", "ABCDEFGH"), ("ab-cd-ef-gh", "ABCDEFGH")],
)
def test_a_code_is_read_whatever_its_case_and_separators(typed, expected):
    assert normalize_code(typed) == expected


@pytest.mark.parametrize("typed", ["", "ABCDEFG", "ABCDEFGHJ", "ABCDEFG0", "ABCDEFGI", None, 12345678, "A" * 200])
def test_input_that_cannot_be_a_code_is_none(typed):
    assert normalize_code(typed) is None


# --- Asking ---------------------------------------------------------------------------------------------


def test_the_owner_gets_a_code_and_a_link_stored_only_as_hashes(user, mailoutbox):
    response = ask()
    assert response.status_code == 202
    assert response.json() == {"detail": "Check your inbox: the email has a code to sign in with."}
    message = sign_in_email(mailoutbox)
    code = code_in(message)
    link = link_path_in(message, "/login/email/")
    token = link.rstrip("/").rsplit("/", 1)[-1]
    assert "10 minutes" in message.body
    assert code in message.alternatives[0][0] and token in message.alternatives[0][0]
    row = row_of()
    assert row.user == user and row.attempts_left == 5
    stored = " ".join(str(value) for value in EmailSignInCode.objects.values_list().get())
    assert code not in stored and code.replace("-", "") not in stored and token not in stored
    assert timedelta(minutes=9) < row.expires_at - timezone.now() <= timedelta(minutes=10)
    assert SecurityEvent.objects.filter(kind="sign_in_code_requested", user=user, detail__account=True).exists()


def test_an_address_without_an_account_gets_a_no_account_email(mailoutbox):
    assert ask(NOBODY).status_code == 202
    [message] = mails_to(mailoutbox, NOBODY)
    assert "No Todo account uses this address" in message.subject
    assert not _CODE_IN_BODY.search(message.body)
    assert "/accounts/signup/" in message.body
    # The same work as for an account: a row, with no user and a code nobody was sent.
    row = row_of(NOBODY)
    assert row.user is None


def test_no_account_emails_are_few_a_day_per_address(mailoutbox):
    for _ in range(3):
        assert ask(NOBODY).status_code == 202
    assert len(mails_to(mailoutbox, NOBODY)) == 2  # anyone can ask for them
    assert row_of(NOBODY).user is None  # the third still leaves its row: the same work for a wrong code


def test_a_deactivated_account_gets_nothing(make_user, mailoutbox):
    make_user(email=BOB, is_active=False)
    assert ask(BOB).status_code == 202
    assert mails_to(mailoutbox, BOB) == []
    assert row_of(BOB).user is None


@pytest.mark.parametrize("body", [{}, {"email": "not an address"}, {"email": ["a@example.com"]}, {"email": None}])
def test_asking_with_bad_input_is_a_400(body, mailoutbox):
    assert_api_error(post_json(Client(), REQUEST_URL, body), 400, "invalid_input", fields={"email"})
    assert not EmailSignInCode.objects.exists()


def test_asking_is_limited_per_address_alike_for_every_address(user, mailoutbox):
    for email in (ALICE, NOBODY):
        statuses = [ask(email, REMOTE_ADDR=f"10.0.0.{n}").status_code for n in range(6)]
        assert statuses == [202] * 5 + [429]
    assert len(mails_to(mailoutbox, ALICE)) == 5


def test_asking_is_limited_per_client(user, mailoutbox):
    statuses = [ask(f"person{n}@example.com").status_code for n in range(21)]
    assert statuses == [202] * 20 + [429]


def test_asking_again_replaces_the_older_code(user, mailoutbox):
    first = emailed_code(mailoutbox)
    second = emailed_code(mailoutbox)
    assert_api_error(verify(first), 400, "invalid_code", fields={"code"})
    assert verify(second).status_code == 200


# --- Signing in with the code --------------------------------------------------------------------------


def test_the_code_signs_in_like_a_password_with_amr_otp(user, mailoutbox):
    code = emailed_code(mailoutbox)
    client = Client()
    response = verify(code.lower().replace("-", " "), client=client)
    assert response.status_code == 200
    assert response.json()["user"]["email"] == ALICE
    assert claims_of(response)["amr"] == ["otp"]
    assert client.cookies[django_settings.ACCOUNTS_REFRESH_COOKIE_NAME].value
    assert get_me(response.json()["access"]).status_code == 200
    event = SecurityEvent.objects.get(kind="sign_in_succeeded", user=user)
    assert event.detail["amr"] == "otp"


def test_a_code_works_once(user, mailoutbox):
    code = emailed_code(mailoutbox)
    assert verify(code).status_code == 200
    assert_api_error(verify(code), 400, "invalid_code", fields={"code"})


def test_a_wrong_code_is_refused_and_recorded(user, mailoutbox):
    code = emailed_code(mailoutbox)
    assert_api_error(verify(wrong_code_for(code)), 400, "invalid_code", fields={"code"})
    assert row_of().attempts_left == 4
    event = SecurityEvent.objects.get(kind="sign_in_failed", user=user)
    assert event.detail == {"reason": "invalid_code", "method": "email_code"}


def test_five_wrong_codes_use_the_code_up(user, mailoutbox):
    code = emailed_code(mailoutbox)
    for _ in range(5):
        assert_api_error(verify(wrong_code_for(code)), 400, "invalid_code", fields={"code"})
    assert_api_error(verify(code), 400, "invalid_code", fields={"code"})
    assert row_of().attempts_left == 0


def test_input_that_cannot_be_a_code_spends_no_attempt(user, mailoutbox):
    emailed_code(mailoutbox)
    assert_api_error(verify("ABCD-EFG"), 400, "invalid_code", fields={"code"})
    assert row_of().attempts_left == 5


def test_an_expired_code_is_refused(user, mailoutbox):
    code = emailed_code(mailoutbox)
    EmailSignInCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_api_error(verify(code), 400, "invalid_code", fields={"code"})


def test_a_code_works_only_for_the_address_it_was_sent_to(user, make_user, mailoutbox):
    make_user(email=BOB, name="Bob")
    code = emailed_code(mailoutbox)
    emailed_code(mailoutbox, BOB)
    assert_api_error(verify(code, email=BOB), 400, "invalid_code", fields={"code"})


def test_a_code_stops_working_once_the_address_changed(user, mailoutbox):
    code = emailed_code(mailoutbox)
    User.objects.filter(pk=user.pk).update(email="alice.new@example.com")
    assert_api_error(verify(code), 400, "invalid_code", fields={"code"})
    assert_api_error(verify(code, email="alice.new@example.com"), 400, "invalid_code", fields={"code"})


def test_a_password_reset_ends_the_code(user, mailoutbox):
    from accounts.flows.password_reset import issue_password_reset_link, reset_password

    code = emailed_code(mailoutbox)
    token = issue_password_reset_link(user=user).rstrip("/").rsplit("/", 1)[-1]
    reset_password(token=token, password="a whole new passphrase")
    assert_api_error(verify(code), 400, "invalid_code", fields={"code"})


def test_a_deactivated_account_cannot_use_a_code_sent_before(user, mailoutbox):
    code = emailed_code(mailoutbox)
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert_api_error(verify(code), 400, "invalid_code", fields={"code"})


@pytest.mark.parametrize(
    "body", [{"email": ALICE}, {"code": "ABCD-EFGH"}, {"email": ALICE, "code": 12345678}, {"email": "x", "code": "y"}]
)
def test_verifying_with_bad_input_is_a_400(user, body):
    response = post_json(Client(), VERIFY_URL, body)
    assert response.status_code == 400 and response.json()["code"] == "invalid_input"


def test_wrong_codes_are_limited_per_client(user, mailoutbox, settings):
    settings.ACCOUNTS_RATE_LIMITS = {**settings.ACCOUNTS_RATE_LIMITS, "sign_in_code_failures_per_ip": "3/10m"}
    code = emailed_code(mailoutbox)
    statuses = [verify(wrong_code_for(code), email=NOBODY).status_code for _ in range(3)]
    assert statuses == [400] * 3
    response = verify(code)
    assert response.status_code == 429 and response.json()["code"] == "rate_limited"
    assert verify(code, REMOTE_ADDR="10.9.9.9").status_code == 200  # another client


def test_an_account_with_mfa_still_passes_the_second_step(user, mailoutbox):
    secret = enable_totp(user)
    code = emailed_code(mailoutbox)
    client = Client()
    response = verify(code, client=client)
    assert response.status_code == 202
    assert response.json()["status"] == "mfa_required"
    assert "access" not in response.json()
    finished = post_json(client, "/api/auth/mfa/verify/", {"code": totp_code(secret)}, **csrf_of(client))
    assert finished.status_code == 200, finished.content
    assert "otp" in claims_of(finished)["amr"]


def csrf_of(client: Client) -> dict:
    from tests.support.api import csrf_header

    return csrf_header(client)


# --- An account whose address was never proven (pre-account takeover) -----------------------------------


def test_signing_in_to_an_unverified_account_proves_it_and_drops_what_the_sign_up_chose(make_user, mailoutbox):
    victim = make_user(email=BOB, name="Not Bob", verified=False)  # made by someone else, with Bob's address
    enable_totp(victim)
    message_code = emailed_code(mailoutbox, BOB)
    assert "has not been verified yet" in sign_in_email(mailoutbox, BOB).body
    response = verify(message_code, email=BOB)
    assert response.status_code == 200  # no second step: the factor was not Bob's
    victim.refresh_from_db()
    assert victim.email_verified
    assert not victim.has_usable_password()
    assert victim.name == ""
    from accounts.flows.second_factor import has_mfa

    assert not has_mfa(victim)
    # Whoever signed up with the address cannot sign in with the password they chose.
    assert login_response(Client(), BOB, STRONG_PASSWORD).status_code == 401
    assert SecurityEvent.objects.filter(kind="email_verified", user=victim, detail__proved_by="sign_in_code").exists()


def test_the_squatters_known_devices_go_with_the_takeover(make_user, mailoutbox, settings):
    from accounts.models import KnownDevice

    settings.ACCOUNTS_EMAIL_VERIFICATION = "optional"  # the squatter could sign in unverified
    squatter = Client()
    make_user(email=BOB, name="Not Bob", verified=False)
    assert login_response(squatter, BOB, STRONG_PASSWORD).status_code == 200
    assert KnownDevice.objects.filter(user__email=BOB).count() == 1
    assert (
        verify(emailed_code(mailoutbox, BOB), email=BOB, client=Client(), HTTP_USER_AGENT="Bob's phone").status_code
        == 200
    )
    # Only Bob's own browser is known now: the squatter's would be a new device, and Bob would hear of it.
    [device] = KnownDevice.objects.filter(user__email=BOB)
    assert device.user_agent == "Bob's phone"


def test_a_squatters_sign_in_under_way_during_the_takeover_opens_no_session(
    make_user, mailoutbox, settings, monkeypatch
):
    """The squatter's password was right when checked, and the owner's code took the account over
    before the squatter's session opened: it must not open."""
    from accounts.flows import signin
    from accounts.models import DeviceSession

    settings.ACCOUNTS_EMAIL_VERIFICATION = "optional"
    make_user(email=BOB, name="Not Bob", verified=False)
    code = emailed_code(mailoutbox, BOB)
    real = signin.authenticate

    def owner_signs_in_by_code_meanwhile(request, **credentials):
        found = real(request, **credentials)
        authenticate_email_code(email=BOB, code=code, client=ClientInfo())
        return found

    monkeypatch.setattr(signin, "authenticate", owner_signs_in_by_code_meanwhile)
    assert_api_error(login_response(Client(), BOB, STRONG_PASSWORD), 401, "sign_in_expired")
    assert not DeviceSession.objects.filter(user__email=BOB).exists()


def test_a_verified_account_keeps_its_password_and_name(user, mailoutbox):
    assert verify(emailed_code(mailoutbox)).status_code == 200
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD) and user.name == "Alice"
    assert "has not been verified yet" not in sign_in_email(mailoutbox).body


def test_the_sign_up_browser_keeps_its_password_when_it_signs_in_by_code(mailoutbox):
    """The client holding the sign-up proof chose the password: proving the mailbox keeps it."""
    client = Client()
    body = {"email": BOB, "password": STRONG_PASSWORD, "name": "Bob"}
    assert post_json(client, "/api/auth/register/", body).status_code == 202
    assert verify(emailed_code(mailoutbox, BOB), email=BOB, client=client).status_code == 200
    bob = User.objects.get(email=BOB)
    assert bob.email_verified and bob.check_password(STRONG_PASSWORD) and bob.name == "Bob"
    assert SecurityEvent.objects.filter(kind="email_verified", user=bob, detail__proved_by="sign_in_code").exists()


def test_another_client_of_the_same_unverified_account_still_drops_the_password(mailoutbox):
    body = {"email": BOB, "password": STRONG_PASSWORD, "name": "Bob"}
    assert post_json(Client(), "/api/auth/register/", body).status_code == 202
    assert verify(emailed_code(mailoutbox, BOB), email=BOB, client=Client()).status_code == 200
    assert not User.objects.get(email=BOB).has_usable_password()


# --- What an emailed code proves -----------------------------------------------------------------------


def test_an_emailed_code_alone_is_no_second_factor(user, mailoutbox):
    """It proves the mailbox, as a reset does: whoever reads the mailbox must not manage factors set up meanwhile."""
    from accounts.exceptions import SecondFactorRequired
    from accounts.flows.reauthentication import require_recent_second_factor
    from tests.support.api import session_of

    response = verify(emailed_code(mailoutbox))
    session = session_of(response.json()["access"])
    assert session.second_factor_at is None and session.authenticated_at is not None
    enable_totp(user)  # the owner turns two-factor on from another device
    with pytest.raises(SecondFactorRequired):
        require_recent_second_factor(user=user, session_id=session.pk)


def test_an_emailed_code_and_the_second_step_prove_a_second_factor(user, mailoutbox):
    from tests.support.api import csrf_header, session_of

    secret = enable_totp(user)
    client = Client()
    assert verify(emailed_code(mailoutbox), client=client).status_code == 202
    finished = post_json(client, "/api/auth/mfa/verify/", {"code": totp_code(secret)}, **csrf_header(client))
    assert session_of(finished.json()["access"]).second_factor_at is not None


# --- Only the newest --------------------------------------------------------------------------------


def newer_row_for(email: str, **fields) -> EmailSignInCode:
    """A newer row for ``email``, as two requests at the same moment can leave beside each other."""
    from accounts.audit import email_fingerprint

    return EmailSignInCode.objects.create(
        user=User.objects.get(email=email),
        address_key=email_fingerprint(email),
        token_hash="f" * 64,
        code_hash="0" * 64,
        created_at=timezone.now() + timedelta(seconds=1),
        expires_at=timezone.now() + timedelta(minutes=10),
        attempts_left=5,
        **fields,
    )


def test_an_older_link_left_beside_a_newer_one_does_not_work(user, mailoutbox):
    link = emailed_link(mailoutbox)
    newer_row_for(ALICE)
    response = Client().get(link)
    assert response.status_code == 400 and b"A newer sign-in email was sent since" in response.content


def test_an_older_code_does_not_work_once_the_newest_is_used(user, mailoutbox):
    code = emailed_code(mailoutbox)
    newer_row_for(ALICE, used_at=timezone.now())
    assert_api_error(verify(code), 400, "invalid_code", fields={"code"})


# --- The link (pages) -------------------------------------------------------------------------------------


def test_opening_the_link_only_shows_a_button(user, mailoutbox):
    link = emailed_link(mailoutbox)
    scanner = Client()
    for _ in range(3):  # a mail scanner, following redirects, more than once
        response = scanner.get(link, follow=True)
        assert response.status_code == 200
        assert b"Sign in to the account of" in response.content
        assert b"alice@example.com" in response.content
    assert scanner.head(link).status_code == 405
    assert row_of().used_at is None and not SecurityEvent.objects.filter(kind="sign_in_succeeded").exists()
    assert "_auth_user_id" not in scanner.session
    # The person's own browser still signs in with it.
    person = browser()
    assert person.get(link).status_code == 302
    response = submit(person, CONFIRM_URL)
    assert response.status_code == 302 and response["Location"] == "/accounts/"
    assert person.get("/accounts/").status_code == 200
    assert response["Referrer-Policy"] == "strict-origin"


def test_the_link_token_leaves_the_address_bar_for_a_new_session(user, mailoutbox):
    from importlib import import_module

    link = emailed_link(mailoutbox)
    store = import_module(django_settings.SESSION_ENGINE).SessionStore
    planted = store()  # a session someone planted in this browser, and can read
    planted["planted"] = True
    planted.save()
    client = Client()
    client.cookies[django_settings.SESSION_COOKIE_NAME] = planted.session_key
    response = client.get(link)
    assert response.status_code == 302 and response["Location"] == CONFIRM_URL
    assert client.cookies[django_settings.SESSION_COOKIE_NAME].value != planted.session_key
    assert "_email_sign_in_token" not in store(session_key=planted.session_key).load()
    assert client.get(CONFIRM_URL).status_code == 200  # the browser's new session holds it


def test_the_confirm_page_says_which_account_this_browser_is_signed_in_as(user, make_user, mailoutbox):
    from tests.support.accounts import force_page_login

    make_user(email="mallory@example.com", name="Mallory")
    link = emailed_link(mailoutbox, "mallory@example.com")  # Mallory sends her own link to Alice
    alice_browser = browser()
    force_page_login(alice_browser, user)
    page = alice_browser.get(link, follow=True).content.decode()
    assert "mallory@example.com" in page
    assert "This browser is signed in as <strong>alice@example.com</strong>" in page


def test_the_link_works_once_and_uses_the_code_up_too(user, mailoutbox):
    assert ask().status_code == 202
    message = sign_in_email(mailoutbox)
    link, code = link_path_in(message, "/login/email/"), code_in(message)
    person = browser()
    person.get(link)
    assert submit(person, CONFIRM_URL).status_code == 302
    again = browser()
    response = again.get(link)
    assert response.status_code == 400 and b"This link has already been used." in response.content
    assert_api_error(verify(code), 400, "invalid_code", fields={"code"})


def test_a_post_to_the_link_itself_is_refused(user, mailoutbox):
    link = emailed_link(mailoutbox)
    person = browser()
    assert submit(person, link).status_code == 405
    assert row_of().used_at is None


@pytest.mark.parametrize("token", ["x" * 43, "short", "A" * 43])
def test_an_unknown_link_shows_the_invalid_page(token):
    response = Client().get(f"/accounts/login/email/{token}/")
    assert response.status_code == 400
    assert b"This sign-in link cannot be used" in response.content


def test_the_confirm_page_without_a_link_is_the_invalid_page():
    assert Client().get(CONFIRM_URL).status_code == 400


def test_an_expired_link_says_so(user, mailoutbox):
    link = emailed_link(mailoutbox)
    EmailSignInCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = Client().get(link)
    assert response.status_code == 400 and b"This link has expired." in response.content


def test_the_link_expiring_between_the_button_and_its_press_is_refused(user, mailoutbox):
    link = emailed_link(mailoutbox)
    person = browser()
    person.get(link)
    EmailSignInCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = submit(person, CONFIRM_URL)
    assert response.status_code == 400
    assert "_auth_user_id" not in person.session


def test_the_link_of_an_account_with_mfa_goes_on_to_the_second_step(user, mailoutbox):
    enable_totp(user)
    link = emailed_link(mailoutbox)
    person = browser()
    person.get(link)
    response = submit(person, CONFIRM_URL)
    assert response.status_code == 302 and response["Location"] == "/accounts/login/mfa/"
    assert "_auth_user_id" not in person.session
    assert b"One more step" in person.get("/accounts/login/mfa/").content


def test_the_confirm_post_needs_the_csrf_token(user, mailoutbox):
    link = emailed_link(mailoutbox)
    person = browser()
    person.get(link)
    assert person.post(CONFIRM_URL).status_code == 403
    assert row_of().used_at is None


def test_the_link_in_logs_is_redacted():
    line = '"GET /accounts/login/email/OrtmpJly0UGl6kr3kiBDNpHyY7mXqDTBS7Y1jaCTDUE/ HTTP/1.1" 302'
    assert "OrtmpJly0UGl6kr3kiBDNpHyY7mXqDTBS7Y1jaCTDUE" not in redact(line)
    assert "/accounts/login/email/confirm/" in redact("GET /accounts/login/email/confirm/ HTTP/1.1")


# --- The pages with the code ----------------------------------------------------------------------------


def test_the_sign_in_page_offers_an_emailed_code():
    assert b'href="/accounts/login/email/"' in Client().get("/accounts/login/").content


def test_signing_in_with_the_code_on_the_pages(user, mailoutbox):
    person = browser()
    response = submit(person, PAGE_URL, {"email": ALICE, "next": "/accounts/sessions/"}, open_first=True)
    assert response.status_code == 302
    assert response["Location"] == f"{CODE_PAGE_URL}?next=%2Faccounts%2Fsessions%2F"
    page = person.get(response["Location"])
    assert page.status_code == 200 and ALICE.encode() in page.content
    code = code_in(sign_in_email(mailoutbox))
    wrong = submit(person, CODE_PAGE_URL, {"code": wrong_code_for(code)})
    assert wrong.status_code == 200 and SignInCodeInvalid.message.encode() in wrong.content.replace(b"&#x27;", b"'")
    done = submit(person, CODE_PAGE_URL, {"code": code, "next": "/accounts/sessions/"})
    assert done.status_code == 302 and done["Location"] == "/accounts/sessions/"
    assert person.get("/accounts/sessions/").status_code == 200


def test_the_code_page_without_an_address_asks_for_one():
    response = Client().get(CODE_PAGE_URL)
    assert response.status_code == 302 and response["Location"] == PAGE_URL


def test_the_page_form_refuses_a_bad_address(mailoutbox):
    response = submit(browser(), PAGE_URL, {"email": "not an address"})
    assert response.status_code == 200 and b"has-error" in response.content
    assert not EmailSignInCode.objects.exists()


def test_the_code_page_with_mfa_goes_on_to_the_second_step(user, mailoutbox):
    enable_totp(user)
    person = browser()
    submit(person, PAGE_URL, {"email": ALICE})
    response = submit(person, CODE_PAGE_URL, {"code": code_in(sign_in_email(mailoutbox))})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/mfa/"


def test_the_page_asks_again_within_its_limit(user, mailoutbox, settings):
    settings.ACCOUNTS_RATE_LIMITS = {**settings.ACCOUNTS_RATE_LIMITS, "sign_in_code_mails_per_address": "1/h"}
    person = browser()
    assert submit(person, PAGE_URL, {"email": ALICE}).status_code == 302
    assert submit(person, PAGE_URL, {"email": ALICE}).status_code == 429


# --- Housekeeping -------------------------------------------------------------------------------------


def test_purge_removes_used_and_expired_codes(user, mailoutbox, no_code_limits):
    assert verify(emailed_code(mailoutbox)).status_code == 200
    assert ask(NOBODY).status_code == 202
    EmailSignInCode.objects.filter(user=None).update(expires_at=timezone.now() - timedelta(seconds=1))
    emailed_code(mailoutbox)  # live: kept
    call_command("purge_auth_data", verbosity=0)
    assert list(EmailSignInCode.objects.values_list("user", "used_at")) == [(user.pk, None)]


# --- Races on PostgreSQL ---------------------------------------------------------------------------

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL row locks; runs in CI's PostgreSQL pass"
)


def racing(test):
    return on_postgresql(pytest.mark.django_db(transaction=True)(test))


def try_code(code: str, email: str = ALICE):
    return functools.partial(authenticate_email_code, email=email, code=code, client=ClientInfo())


@racing
def test_concurrent_wrong_codes_get_five_attempts_in_all(user, mailoutbox, no_code_limits):
    for _ in range(4):
        code = emailed_code(mailoutbox)
        outcomes = run_at_once([try_code(wrong_code_for(code))] * 12)
        assert all(isinstance(outcome.error, SignInCodeInvalid) for outcome in outcomes), outcomes
        assert row_of().attempts_left == 0
        # Had the count lost an update, the right code would now still work.
        with pytest.raises(SignInCodeInvalid):
            authenticate_email_code(email=ALICE, code=code, client=ClientInfo())


@racing
def test_the_right_code_sent_at_once_signs_in_once(user, mailoutbox, no_code_limits):
    for _ in range(4):
        code = emailed_code(mailoutbox)
        outcomes = run_at_once([try_code(code)] * 6)
        won = [outcome.value for outcome in outcomes if outcome.error is None]
        assert len(won) == 1 and isinstance(won[0], SignedIn), outcomes
        assert all(isinstance(outcome.error, SignInCodeInvalid) for outcome in outcomes if outcome.error), outcomes


@racing
def test_the_code_and_the_link_at_once_sign_in_once(user, mailoutbox, no_code_limits):
    from accounts.flows.email_sign_in import authenticate_email_link

    for _ in range(4):
        assert ask().status_code == 202
        message = sign_in_email(mailoutbox)
        token = link_path_in(message, "/login/email/").rstrip("/").rsplit("/", 1)[-1]
        link = functools.partial(authenticate_email_link, token=token, client=ClientInfo())
        outcomes = run_at_once([try_code(code_in(message)), link, link])
        won = [outcome.value for outcome in outcomes if outcome.error is None]
        assert len(won) == 1 and isinstance(won[0], SignedIn | SecondStepRequired), outcomes
