"""Attack record 2: a password chosen before the address was proven never survives someone else proving it.

An intruder registers the owner's address with the intruder's password and
never verifies it. Whichever email the owner follows, the owner ends up with
a password of their own and the intruder's stops working; the browser (or
API client) that signed up verifies with the link alone.
"""

from datetime import timedelta
from io import StringIO
from urllib.parse import urlsplit

import pytest
import time_machine
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from accounts.models import SecurityEvent, User
from tests.support.accounts import STRONG_PASSWORD
from tests.support.api import api_client, bearer, login_response, post_json
from tests.support.mail import link_in, mails_to, token_in

pytestmark = pytest.mark.django_db

VICTIM = "victim@example.com"
INTRUDER_PASSWORD = "the intruder's own passphrase"
OWNER_PASSWORD = "the owner's chosen passphrase"
REGISTER_URL = "/api/auth/register/"
VERIFY_URL = "/api/auth/email/verify/"
CONFIRM = "/accounts/verify-email/confirm/"


def page_sign_up(client: Client, email: str, password: str, name: str = "Someone"):
    form = {"email": email, "name": name, "password1": password, "password2": password}
    return client.post("/accounts/signup/", form)


def intruder_registers_the_victims_address(mailoutbox) -> Client:
    intruder = api_client()
    body = {"email": VICTIM, "password": INTRUDER_PASSWORD, "name": "Intruder"}
    assert post_json(intruder, REGISTER_URL, body).status_code == 202
    return intruder


def open_link(client: Client, link: str):
    return client.get(urlsplit(link).path)


def signs_in(email: str, password: str) -> bool:
    return login_response(api_client(), email, password).status_code == 200


# --- The reproduction: every email the owner can follow ends in the owner's own password -------------------


def test_the_account_exists_email_leads_straight_to_a_new_password(mailoutbox):
    intruder_registers_the_victims_address(mailoutbox)
    owner = Client()
    assert page_sign_up(owner, VICTIM, OWNER_PASSWORD).status_code == 302
    exists = mails_to(mailoutbox, VICTIM)[-1]
    assert "tried to create a new" in exists.body
    assert "/verify-email/resend/" not in exists.body
    opened = open_link(owner, link_in(exists, "/accounts/password/reset/"))
    assert opened.status_code == 302
    done = owner.post(opened["Location"], {"password1": OWNER_PASSWORD, "password2": OWNER_PASSWORD})
    assert done.status_code == 302
    account = User.objects.get(email=VICTIM)
    assert account.email_verified
    assert account.name == ""  # chosen by someone who never proved the address
    assert signs_in(VICTIM, OWNER_PASSWORD)
    assert not signs_in(VICTIM, INTRUDER_PASSWORD)


def test_the_intruders_verification_email_opened_by_the_owner_needs_a_password(mailoutbox):
    intruder_registers_the_victims_address(mailoutbox)
    [verification] = mails_to(mailoutbox, VICTIM)
    owner = Client()
    assert open_link(owner, link_in(verification, "/verify-email/")).status_code == 302
    page = owner.get(CONFIRM)
    assert page.status_code == 200
    body = page.content.decode()
    assert "I know the password" in body and "Choose a new password" in body
    # The plain button of the signing-up browser does not work here.
    refused = owner.post(CONFIRM)
    assert refused.status_code == 400
    assert not User.objects.get(email=VICTIM).email_verified
    # A new password replaces the intruder's and verifies the address.
    done = owner.post(
        CONFIRM, {"proof": "new_password", "new-password1": OWNER_PASSWORD, "new-password2": OWNER_PASSWORD}
    )
    assert done.status_code == 302 and done["Location"] == "/accounts/login/"
    assert User.objects.get(email=VICTIM).email_verified
    assert signs_in(VICTIM, OWNER_PASSWORD)
    assert not signs_in(VICTIM, INTRUDER_PASSWORD)
    [event] = SecurityEvent.objects.filter(kind="email_verified")
    assert event.detail == {"proved_by": "new_password", "sessions_ended": 0}


def test_a_resent_verification_link_opened_by_the_owner_needs_a_password_too(mailoutbox):
    intruder_registers_the_victims_address(mailoutbox)
    mailoutbox.clear()
    owner = Client()
    owner.post("/accounts/verify-email/resend/", {"email": VICTIM})
    [resent] = mails_to(mailoutbox, VICTIM)
    open_link(owner, link_in(resent, "/verify-email/"))
    response = owner.post(CONFIRM, {"proof": "password", "current-password": OWNER_PASSWORD})
    assert response.status_code == 400  # the owner does not know the intruder's password
    assert "The password is not correct." in response.content.decode()
    assert not User.objects.get(email=VICTIM).email_verified
    owner.post(CONFIRM, {"proof": "new_password", "new-password1": OWNER_PASSWORD, "new-password2": OWNER_PASSWORD})
    assert signs_in(VICTIM, OWNER_PASSWORD)
    assert not signs_in(VICTIM, INTRUDER_PASSWORD)


def test_the_api_refuses_verification_without_the_password_from_another_client(mailoutbox):
    intruder_registers_the_victims_address(mailoutbox)
    token = token_in(mails_to(mailoutbox, VICTIM)[0], "/verify-email/")
    elsewhere = api_client()
    refused = post_json(elsewhere, VERIFY_URL, {"token": token})
    assert refused.status_code == 400
    assert refused.json()["code"] == "password_required"
    wrong = post_json(elsewhere, VERIFY_URL, {"token": token, "password": OWNER_PASSWORD})
    assert (wrong.status_code, wrong.json()["code"]) == (400, "invalid_password")
    weak = post_json(elsewhere, VERIFY_URL, {"token": token, "new_password": "short"})
    assert (weak.status_code, weak.json()["code"]) == (400, "password_rejected")
    assert not User.objects.get(email=VICTIM).email_verified
    done = post_json(elsewhere, VERIFY_URL, {"token": token, "new_password": OWNER_PASSWORD})
    assert done.status_code == 200
    assert signs_in(VICTIM, OWNER_PASSWORD)
    assert not signs_in(VICTIM, INTRUDER_PASSWORD)


def test_the_intruders_signed_in_sessions_end_when_the_owner_proves_the_address(settings, mailoutbox):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "optional"  # unverified accounts may sign in
    intruder_registers_the_victims_address(mailoutbox)
    squatter = api_client()
    access = login_response(squatter, VICTIM, INTRUDER_PASSWORD).json()["access"]
    assert api_client().get("/api/auth/me/", **bearer(access)).status_code == 200
    token = token_in(mails_to(mailoutbox, VICTIM)[0], "/verify-email/")
    assert post_json(api_client(), VERIFY_URL, {"token": token, "new_password": OWNER_PASSWORD}).status_code == 200
    assert api_client().get("/api/auth/me/", **bearer(access)).status_code == 401


def test_repeated_wrong_passwords_on_the_verify_page_are_rate_limited(mailoutbox):
    intruder_registers_the_victims_address(mailoutbox)
    token = token_in(mails_to(mailoutbox, VICTIM)[0], "/verify-email/")
    client = api_client()
    codes = [
        post_json(client, VERIFY_URL, {"token": token, "password": f"guess number {n}!"}).status_code for n in range(7)
    ]
    assert codes[:5] == [400] * 5
    assert codes[5:] == [429, 429]
    assert not User.objects.get(email=VICTIM).email_verified
    # The refusals are in the audit log (not rolled back with the verification).
    assert SecurityEvent.objects.filter(kind="rate_limited", user__email=VICTIM).count() == 2


# --- The one who signed up, and people who know the password ---------------------------------------------------


def test_the_browser_that_signed_up_verifies_with_the_link_alone(mailoutbox):
    browser = Client()
    response = page_sign_up(browser, "new@example.com", OWNER_PASSWORD, name="Nora")
    cookie = response.cookies[django_settings.ACCOUNTS_SIGNUP_PROOF_COOKIE_NAME]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    assert cookie["max-age"] == django_settings.ACCOUNTS_UNVERIFIED_ACCOUNT_RETENTION_DAYS * 86400
    open_link(browser, link_in(mailoutbox[0], "/verify-email/"))
    assert "Verify my email address" in browser.get(CONFIRM).content.decode()
    done = browser.post(CONFIRM)
    assert done.status_code == 302
    assert done.cookies[django_settings.ACCOUNTS_SIGNUP_PROOF_COOKIE_NAME].value == ""  # spent: cleared
    account = User.objects.get(email="new@example.com")
    assert account.email_verified and account.name == "Nora"
    assert signs_in("new@example.com", OWNER_PASSWORD)


def test_the_api_client_that_signed_up_verifies_with_the_token_alone(mailoutbox):
    spa = api_client()
    assert (
        post_json(spa, REGISTER_URL, {"email": "new@example.com", "password": OWNER_PASSWORD, "name": "N"}).status_code
        == 202
    )
    token = token_in(mailoutbox[0], "/verify-email/")
    assert post_json(spa, VERIFY_URL, {"token": token}).status_code == 200
    assert User.objects.get(email="new@example.com").email_verified


def test_the_owner_on_another_device_verifies_with_the_current_password(mailoutbox):
    page_sign_up(Client(), "new@example.com", OWNER_PASSWORD, name="Nora")
    phone = Client()
    open_link(phone, link_in(mailoutbox[0], "/verify-email/"))
    done = phone.post(CONFIRM, {"proof": "password", "current-password": OWNER_PASSWORD})
    assert done.status_code == 302
    account = User.objects.get(email="new@example.com")
    assert account.email_verified and account.name == "Nora"  # proven password: nothing replaced
    assert signs_in("new@example.com", OWNER_PASSWORD)


def test_the_proof_of_a_sign_up_matches_no_other_account(mailoutbox):
    """A browser that signed up for one address holds nothing that verifies another account."""
    intruder = intruder_registers_the_victims_address(mailoutbox)
    page_sign_up(Client(), "other@example.com", OWNER_PASSWORD)
    other_token = token_in(mails_to(mailoutbox, "other@example.com")[0], "/verify-email/")
    refused = post_json(intruder, VERIFY_URL, {"token": other_token})
    assert refused.json()["code"] == "password_required"


def test_the_proof_no_longer_matches_once_the_password_changed(mailoutbox):
    spa = api_client()
    post_json(spa, REGISTER_URL, {"email": "new@example.com", "password": OWNER_PASSWORD, "name": "N"})
    account = User.objects.get(email="new@example.com")
    account.set_password("a password set elsewhere")
    account.save()
    token = token_in(mailoutbox[0], "/verify-email/")
    assert post_json(spa, VERIFY_URL, {"token": token}).json()["code"] == "password_required"


def test_a_sign_up_for_an_existing_address_sets_a_proof_cookie_of_the_same_shape(make_user, mailoutbox):
    make_user(email="taken@example.com")
    new = post_json(api_client(), REGISTER_URL, {"email": "fresh@example.com", "password": OWNER_PASSWORD, "name": "N"})
    taken = post_json(
        api_client(), REGISTER_URL, {"email": "taken@example.com", "password": OWNER_PASSWORD, "name": "N"}
    )
    name = django_settings.ACCOUNTS_SIGNUP_PROOF_COOKIE_NAME
    fresh_cookie, taken_cookie = new.cookies[name], taken.cookies[name]
    assert len(fresh_cookie.value) == len(taken_cookie.value) == 64
    assert {k: v for k, v in fresh_cookie.items() if k != "expires"} == {
        k: v for k, v in taken_cookie.items() if k != "expires"
    }


# --- Abandoned unverified accounts are purged ----------------------------------------------------------------


def purge() -> str:
    out = StringIO()
    call_command("purge_auth_data", stdout=out)
    return out.getvalue()


def test_purge_deletes_unverified_accounts_never_signed_in_after_seven_days(make_user, settings):
    now = timezone.now()
    days = settings.ACCOUNTS_UNVERIFIED_ACCOUNT_RETENTION_DAYS
    assert days == 7
    old = make_user(email="old@example.com", verified=False, date_joined=now - timedelta(days=days, minutes=1))
    recent = make_user(email="recent@example.com", verified=False, date_joined=now - timedelta(days=days - 1))
    verified = make_user(email="verified@example.com", date_joined=now - timedelta(days=90))
    signed_in = make_user(
        email="used@example.com", verified=False, date_joined=now - timedelta(days=90), last_login=now
    )
    staff = make_user(email="staff@example.com", verified=False, is_staff=True, date_joined=now - timedelta(days=90))
    output = purge()
    assert "Deleted 1 unverified accounts never signed in to." in output
    assert set(User.objects.values_list("email", flat=True)) == {
        recent.email,
        verified.email,
        signed_in.email,
        staff.email,
    }
    [event] = SecurityEvent.objects.filter(kind="account_deleted")
    assert (
        event.user_id is None and event.email_hash and event.detail == {"user_id": old.pk, "reason": "never_verified"}
    )


def test_purge_keeps_unverified_accounts_for_the_configured_time(make_user, settings):
    settings.ACCOUNTS_UNVERIFIED_ACCOUNT_RETENTION_DAYS = 30
    make_user(email="old@example.com", verified=False, date_joined=timezone.now() - timedelta(days=10))
    purge()
    assert User.objects.filter(email="old@example.com").exists()


def test_an_api_sign_in_counts_as_signing_in_for_the_purge(make_user, settings):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "optional"
    user = make_user(email="api@example.com", verified=False, date_joined=timezone.now() - timedelta(days=30))
    assert login_response(api_client(), "api@example.com", STRONG_PASSWORD).status_code == 200
    user.refresh_from_db()
    assert user.last_login is not None
    purge()
    assert User.objects.filter(pk=user.pk).exists()


def test_a_purged_squatters_address_can_be_registered_by_its_owner(mailoutbox):
    with time_machine.travel(timezone.now() - timedelta(days=8)):
        intruder_registers_the_victims_address(mailoutbox)
    purge()
    mailoutbox.clear()
    owner = Client()
    page_sign_up(owner, VICTIM, OWNER_PASSWORD, name="Vic")
    open_link(owner, link_in(mails_to(mailoutbox, VICTIM)[0], "/verify-email/"))
    assert owner.post(CONFIRM).status_code == 302
    assert signs_in(VICTIM, OWNER_PASSWORD)


def test_a_new_password_sent_with_the_sign_up_proof_is_applied_not_ignored(mailoutbox):
    spa = api_client()
    post_json(spa, REGISTER_URL, {"email": "new@example.com", "password": OWNER_PASSWORD, "name": "N"})
    token = token_in(mailoutbox[0], "/verify-email/")
    body = {"token": token, "new_password": "a second thought passphrase"}
    assert post_json(spa, VERIFY_URL, body).status_code == 200
    assert signs_in("new@example.com", "a second thought passphrase")
    assert not signs_in("new@example.com", OWNER_PASSWORD)
