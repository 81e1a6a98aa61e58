"""Passkeys on the pages: signing in, the second step, re-authenticating, managing them, the admin, and takeover."""

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from webauthn.helpers import bytes_to_base64url

from accounts.audit import EventKind
from accounts.flows.second_factor import has_mfa, recovery_codes_left
from accounts.models import DeviceSession, Passkey, SecurityEvent, User
from accounts.views import PENDING_SIGN_IN_KEY
from tests.support.accounts import STRONG_PASSWORD, force_page_login
from tests.support.html import parse_page, text_of
from tests.support.mail import mails_to
from tests.support.mfa import enable_totp
from tests.support.pages import browser, submit
from tests.support.passkeys import add_passkey, page_options, page_passkey_sign_in, soft_authenticator

pytestmark = pytest.mark.django_db

ALICE = "alice@example.com"
LOGIN = "/accounts/login/"
LOGIN_PASSKEY = "/accounts/login/passkey/"
LOGIN_PASSKEY_OPTIONS = "/accounts/login/passkey/options/"
LOGIN_MFA = "/accounts/login/mfa/"
LOGIN_MFA_OPTIONS = "/accounts/login/mfa/passkey/options/"
ACCOUNT = "/accounts/"
SECURITY = "/accounts/security/"
ADD = "/accounts/security/passkeys/add/"
ADD_OPTIONS = "/accounts/security/passkeys/options/"
REAUTHENTICATE = "/accounts/reauthenticate/"
REAUTHENTICATE_OPTIONS = "/accounts/reauthenticate/passkey/options/"
ADMIN = "/admin/"
PASSKEY_SCRIPT = "/static/accounts/passkeys.js"


def where(response) -> tuple[str, dict[str, list[str]]]:
    assert response.status_code == 302, (response.status_code, response.content[:300])
    location = urlsplit(response["Location"])
    return location.path, parse_qs(location.query)


def messages_after(client: Client, response) -> list[str]:
    page = client.get(response["Location"])
    return [str(message) for message in page.context["messages"]]


def is_signed_in(client: Client) -> bool:
    return client.get(ACCOUNT).status_code == 200


def latest_session(user: User) -> DeviceSession:
    return DeviceSession.objects.filter(user=user).order_by("-created_at").first()


def stale(session: DeviceSession) -> None:
    """Move the session's sign-in and second factor out of the re-authentication window."""
    long_ago = session.authenticated_at - timedelta(minutes=10)
    DeviceSession.objects.filter(pk=session.pk).update(authenticated_at=long_ago, second_factor_at=long_ago)


@pytest.fixture
def alice_key(user):
    """Alice's authenticator with one registered passkey (her first: two-factor is on)."""
    authenticator, _added = add_passkey(user, name="Work laptop")
    return authenticator


# --- The sign-in page ---------------------------------------------------------------------------------


def test_the_sign_in_page_offers_a_passkey_by_button_and_autofill_and_works_without_script(client):
    page = parse_page(client.get(LOGIN))
    (email,) = [attrs for attrs in page.inputs if attrs.get("name") == "email"]
    assert email["autocomplete"] == "username webauthn"
    form = page.form("passkey-sign-in")
    assert form.attrs["action"] == LOGIN_PASSKEY
    assert form.attrs["data-options-url"] == LOGIN_PASSKEY_OPTIONS
    assert "hidden" in form.attrs and "data-autofill" in form.attrs  # shown by the script only
    assert page.script_sources == [PASSKEY_SCRIPT]


def test_sign_in_options_name_no_account_and_require_user_verification(client, alice_key):
    client.get(LOGIN)
    body = page_options(client, LOGIN_PASSKEY_OPTIONS).json()
    assert body["rpId"] == "localhost"
    assert body["userVerification"] == "required"
    assert body.get("allowCredentials", []) == []


def test_sign_in_options_need_the_csrf_token(alice_key):
    client = browser()
    client.get(LOGIN)
    assert client.post(LOGIN_PASSKEY_OPTIONS).status_code == 403


def test_the_pages_options_past_the_rate_limit_are_a_json_429_for_the_script(settings):
    settings.ACCOUNTS_RATE_LIMITS = {**settings.ACCOUNTS_RATE_LIMITS, "passkey_prompts_per_ip": "2/10m"}
    client = browser()
    client.get(LOGIN)
    assert [page_options(client, LOGIN_PASSKEY_OPTIONS).status_code for _ in range(2)] == [200, 200]
    limited = page_options(client, LOGIN_PASSKEY_OPTIONS)
    assert limited.status_code == 429
    assert limited["Content-Type"] == "application/json"
    assert limited.json()["code"] == "rate_limited" and limited.json()["detail"]
    assert int(limited["Retry-After"]) > 0


def test_a_passkey_signs_in_with_both_factors_and_goes_to_next(user, alice_key):
    client = browser()
    client.get(LOGIN)
    body = page_options(client, LOGIN_PASSKEY_OPTIONS).json()
    response = submit(
        client, LOGIN_PASSKEY, {"credential": json.dumps(alice_key.get(body)), "next": "/accounts/sessions/"}
    )
    assert where(response)[0] == "/accounts/sessions/"
    session = latest_session(user)
    assert session.amr == ["hwk", "user", "mfa"]
    assert session.second_factor_at is not None
    assert SecurityEvent.objects.filter(user=user, kind=EventKind.SIGN_IN_SUCCEEDED).exists()
    assert "passkey (two-factor)" in client.get("/accounts/sessions/").content.decode()


def test_a_passkey_without_user_verification_does_not_sign_in(user, alice_key):
    client = browser()
    response = page_passkey_sign_in(client, alice_key, user_verified=False)
    assert where(response)[0] == LOGIN
    assert messages_after(client, response) == [
        "That passkey could not be verified. Try again, or sign in another way."
    ]
    assert not is_signed_in(client)
    assert SecurityEvent.objects.filter(user=user, kind=EventKind.PASSKEY_REFUSED).exists()


def test_a_removed_passkey_is_refused_with_its_own_message(user, alice_key):
    Passkey.objects.filter(user=user).delete()
    client = browser()
    response = page_passkey_sign_in(client, alice_key)
    assert messages_after(client, response) == [
        "That passkey is not registered here. It may have been removed; sign in another way."
    ]
    assert not is_signed_in(client)


@pytest.mark.parametrize(
    "credential",
    ["", "not json", "[]", '{"id": 1}', "{}" * 40000, "[" * 20000 + "]" * 20000],
    ids=["empty", "not json", "a list", "wrong types", "too long", "nested deep"],
)
def test_garbage_instead_of_a_passkey_is_refused_on_the_page_not_a_500(credential):
    client = browser()
    client.get(LOGIN)
    response = submit(client, LOGIN_PASSKEY, {"credential": credential})
    assert where(response)[0] == LOGIN
    assert not is_signed_in(client)


def test_a_replayed_page_answer_is_refused(user, alice_key):
    client = browser()
    client.get(LOGIN)
    answer = json.dumps(alice_key.get(page_options(client, LOGIN_PASSKEY_OPTIONS).json()))
    assert where(submit(client, LOGIN_PASSKEY, {"credential": answer}))[0] == ACCOUNT
    other = browser()
    other.get(LOGIN)
    response = submit(other, LOGIN_PASSKEY, {"credential": answer})
    assert messages_after(other, response) == ["That passkey prompt has expired. Please try again."]
    assert not is_signed_in(other)


# --- The second step ----------------------------------------------------------------------------------


def test_after_the_password_the_second_step_offers_the_passkey_and_accepts_it(user, alice_key):
    client = browser()
    response = submit(client, LOGIN, {"email": ALICE, "password": STRONG_PASSWORD}, open_first=True)
    assert where(response)[0] == LOGIN_MFA
    second_step = client.get(LOGIN_MFA)
    page = parse_page(second_step)
    assert page.form("passkey-second-step").attrs["data-options-url"] == LOGIN_MFA_OPTIONS
    assert "authenticator app" not in text_of(second_step) and "One of your recovery codes." in text_of(second_step)
    assert page.script_sources == [PASSKEY_SCRIPT]
    body = page_options(client, LOGIN_MFA_OPTIONS).json()
    assert body["userVerification"] == "preferred"
    assert [entry["id"] for entry in body["allowCredentials"]] == [
        bytes_to_base64url(bytes(Passkey.objects.get(user=user).credential_id))
    ]
    response = submit(client, LOGIN_MFA, {"credential": json.dumps(alice_key.get(body, user_verified=False))})
    assert where(response)[0] == ACCOUNT
    assert latest_session(user).amr == ["pwd", "hwk", "mfa"]
    assert PENDING_SIGN_IN_KEY not in client.session


def test_second_step_options_without_a_pending_sign_in_are_a_json_401():
    client = browser()
    client.get(LOGIN)
    response = page_options(client, LOGIN_MFA_OPTIONS)
    assert response.status_code == 401
    assert response.json()["code"] == "sign_in_expired"


def test_a_totp_only_account_gets_no_passkey_on_the_second_step(user):
    enable_totp(user)
    client = browser()
    submit(client, LOGIN, {"email": ALICE, "password": STRONG_PASSWORD}, open_first=True)
    page = parse_page(client.get(LOGIN_MFA))
    assert all(form.attrs.get("id") != "passkey-second-step" for form in page.forms)
    assert page.script_sources == []
    response = page_options(client, LOGIN_MFA_OPTIONS)
    assert (response.status_code, response.json()["code"]) == (400, "no_passkey")


def test_another_accounts_passkey_does_not_finish_the_second_step(user, alice_key, make_user):
    bob = make_user(email="bob@example.com")
    bob_key, _ = add_passkey(bob)
    client = browser()
    submit(client, LOGIN, {"email": ALICE, "password": STRONG_PASSWORD}, open_first=True)
    body = page_options(client, LOGIN_MFA_OPTIONS).json()
    response = submit(client, LOGIN_MFA, {"credential": json.dumps(bob_key.get({**body, "allowCredentials": []}))})
    assert where(response)[0] == LOGIN_MFA
    assert not is_signed_in(client)


# --- The security page and managing passkeys -----------------------------------------------------------


def test_the_security_page_lists_passkeys_with_when_added_last_used_and_synced(user, alice_key):
    add_passkey(user, soft_authenticator(backup_eligible=True, backed_up=True), name="Phone")
    client = browser()
    force_page_login(client, user, second_factor=True)
    html = client.get(SECURITY).content.decode()
    assert "Work laptop" in html and "this device only" in html
    assert "Phone" in html and "synced" in html
    assert "not used yet" in html
    assert "Signing in with your password also needs a passkey." in " ".join(html.split())


def test_adding_a_passkey_needs_a_recent_sign_in(user):
    client = browser()
    session = force_page_login(client, user)
    stale(session)
    path, query = where(client.get(ADD))
    assert path == REAUTHENTICATE and query["next"] == [ADD]


def test_adding_the_first_passkey_turns_two_factor_on_and_shows_recovery_codes(user, mailoutbox):
    client = browser()
    force_page_login(client, user)
    page = parse_page(client.get(ADD))
    assert page.form("passkey-create").attrs["data-options-url"] == ADD_OPTIONS
    authenticator = soft_authenticator()
    creation = page_options(client, ADD_OPTIONS).json()
    assert creation["authenticatorSelection"]["residentKey"] == "required"
    credential = json.dumps(authenticator.create(creation))
    response = submit(client, ADD, {"name": "  Work   laptop ", "credential": credential})
    assert response.status_code == 200
    assert len(response.context["codes"]) == 10
    assert Passkey.objects.get(user=user).name == "Work laptop"
    assert has_mfa(user) and recovery_codes_left(user) == 10
    assert [mail.subject for mail in mails_to(mailoutbox, ALICE)] == ["A passkey was added to your Todo account"]


def test_adding_without_a_created_passkey_shows_a_form_error(user):
    client = browser()
    force_page_login(client, user)
    response = submit(client, ADD, {"name": "Laptop", "credential": ""}, open_first=True)
    assert response.status_code == 200
    assert "Create the passkey first" in response.content.decode()
    assert not Passkey.objects.exists()


def test_a_refused_new_passkey_shows_the_error_above_the_form(user):
    client = browser()
    force_page_login(client, user)
    creation = page_options(client, ADD_OPTIONS).json()
    credential = json.dumps(soft_authenticator(origin="https://evil.example").create(creation))
    response = submit(client, ADD, {"name": "Laptop", "credential": credential})
    assert response.status_code == 200
    assert "That passkey could not be verified." in response.content.decode()
    assert not Passkey.objects.exists()


def test_add_options_after_the_window_closed_are_a_json_403(user):
    client = browser()
    session = force_page_login(client, user)
    client.get(SECURITY)
    stale(session)
    response = page_options(client, ADD_OPTIONS)
    assert response.status_code == 403
    assert response.json()["code"] == "reauthentication_required"


def test_renaming_a_passkey(user, alice_key):
    passkey = Passkey.objects.get(user=user)
    client = browser()
    force_page_login(client, user)
    path = f"/accounts/security/passkeys/{passkey.pk}/rename/"
    assert "Work laptop" in client.get(path).content.decode()
    assert where(submit(client, path, {"name": "Old laptop"}))[0] == SECURITY
    assert Passkey.objects.get(pk=passkey.pk).name == "Old laptop"
    response = submit(client, path, {"name": "\x07"})
    assert response.status_code == 200 and "Name the passkey" in response.content.decode()


def test_renaming_another_accounts_passkey_is_a_404(user, make_user):
    bob = make_user(email="bob@example.com")
    add_passkey(bob)
    client = browser()
    force_page_login(client, user)
    passkey = Passkey.objects.get(user=bob)
    assert client.get(f"/accounts/security/passkeys/{passkey.pk}/rename/").status_code == 404
    assert client.get("/accounts/security/passkeys/not-a-uuid/rename/").status_code == 404


def test_removing_a_passkey_needs_a_recent_second_factor_which_a_passkey_gives(user, alice_key, mailoutbox):
    passkey = Passkey.objects.get(user=user)
    remove = f"/accounts/security/passkeys/{passkey.pk}/remove/"
    client = browser()
    session = force_page_login(client, user, second_factor=True)
    stale(session)
    path, query = where(submit(client, remove, {}))
    assert path == REAUTHENTICATE and query["factor"] == ["code"]
    page = parse_page(client.get(f"{REAUTHENTICATE}?next={SECURITY}&factor=code"))
    assert page.form("passkey-reauthenticate").attrs["data-options-url"] == REAUTHENTICATE_OPTIONS
    body = page_options(client, REAUTHENTICATE_OPTIONS).json()
    response = submit(
        client, REAUTHENTICATE, {"proof": "passkey", "credential": json.dumps(alice_key.get(body)), "next": SECURITY}
    )
    assert where(response)[0] == SECURITY
    assert where(submit(client, remove, {}))[0] == SECURITY
    assert not Passkey.objects.filter(user=user).exists()
    assert not has_mfa(user) and recovery_codes_left(user) == 0
    assert "A passkey was removed from your Todo account" in [mail.subject for mail in mails_to(mailoutbox, ALICE)]


def test_the_code_page_of_a_passkey_only_account_names_the_passkey_and_recovery_codes_not_an_app(user, alice_key):
    client = browser()
    force_page_login(client, user, second_factor=True)
    text = text_of(client.get(f"{REAUTHENTICATE}?factor=code"))
    assert "enter a recovery code, or use your passkey, to continue" in text
    assert "authenticator app" not in text and "One of your recovery codes." in text
    text = text_of(client.get(REAUTHENTICATE))
    assert "Use a recovery code instead" in text and "Use your passkey instead" in text


def test_the_code_page_of_an_account_with_both_names_all_three(user, alice_key):
    enable_totp(user)
    client = browser()
    force_page_login(client, user, second_factor=True)
    text = text_of(client.get(f"{REAUTHENTICATE}?factor=code"))
    assert "a code from your authenticator app (or a recovery code), or use your passkey, to continue" in text
    assert "The 6-digit code from your authenticator app, or one of your recovery codes." in text
    assert "Use a code from your authenticator app instead" in text_of(client.get(REAUTHENTICATE))


def test_a_refused_passkey_on_the_reauthenticate_page_opens_nothing(user, alice_key):
    client = browser()
    session = force_page_login(client, user, second_factor=True)
    stale(session)
    client.get(REAUTHENTICATE)
    body = page_options(client, REAUTHENTICATE_OPTIONS).json()
    answer = json.dumps(alice_key.get(body, tamper_signature=True))
    response = submit(client, REAUTHENTICATE, {"proof": "passkey", "credential": answer})
    assert where(response)[0] == REAUTHENTICATE
    passkey = Passkey.objects.get(user=user)
    assert where(submit(client, f"/accounts/security/passkeys/{passkey.pk}/remove/", {}))[0] == REAUTHENTICATE


# --- Staff, and who controls the account ---------------------------------------------------------------


def test_a_staff_passkey_sign_in_satisfies_the_admins_two_factor_rule(make_user):
    member = make_user(email="staff@example.com", is_staff=True)
    authenticator, _ = add_passkey(member)
    client = browser()
    assert where(page_passkey_sign_in(client, authenticator))[0] == ACCOUNT
    assert client.get(ADMIN).status_code == 200


def test_proving_the_address_with_a_new_password_removes_passkeys_added_before(make_user):
    from accounts.flows.verification import prove_address

    squatter_account = make_user(email="victim@example.com", verified=False)
    Passkey.objects.create(
        user=squatter_account, name="squatter", credential_id=b"c" * 16, public_key=b"k", user_handle=b"h"
    )
    prove_address(user=squatter_account, password_replaced=True)
    assert not Passkey.objects.filter(user=squatter_account).exists()
    assert not has_mfa(squatter_account)


def test_an_unverified_account_cannot_add_a_passkey(make_user):
    owner = make_user(email="new@example.com", verified=False)
    client = browser()
    force_page_login(client, owner)
    assert where(client.get(ADD))[0] == SECURITY
    client.get(SECURITY)
    response = page_options(client, ADD_OPTIONS)
    assert (response.status_code, response.json()["code"]) == (403, "email_not_verified")
