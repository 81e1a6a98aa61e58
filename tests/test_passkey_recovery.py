"""A passkey someone else added must not outlive the owner's recovery, and a removed passkey's sessions end.

An intruder who knows the password signs in and adds a passkey of their own (attestation "none":
a script will do). A passkey signs in without the password, so a password reset no longer shuts
them out, and removing it needs a second factor the owner never had. The passkey-added notice
carries the owner's way out; removing a passkey ends the sessions it signed in.
"""

from datetime import UTC, datetime, timedelta

import pytest

from accounts.flows import passkeys, signin
from accounts.flows.second_factor import has_mfa, recovery_codes_left
from accounts.flows.support import staff_reset_mfa
from accounts.models import DeviceSession, EmailVerificationToken, Passkey, SecurityEvent, TotpAuthenticator, User
from tests.support.accounts import STRONG_PASSWORD, force_page_login
from tests.support.api import (
    REFRESH_URL,
    access_token_for,
    api_client,
    assert_api_error,
    bearer,
    csrf_header,
    delete_json,
    get_me,
    login,
    login_response,
    post_json,
    refresh_cookie_value,
    session_of,
)
from tests.support.mail import link_path_in, mails_to
from tests.support.mfa import enable_totp, totp_code
from tests.support.pages import browser, submit
from tests.support.passkeys import (
    LOGIN_PAGE,
    MFA_PASSKEY_OPTIONS_URL,
    PASSKEYS_URL,
    REAUTHENTICATE_OPTIONS_URL,
    REAUTHENTICATE_URL,
    REGISTER_OPTIONS_URL,
    REGISTER_URL,
    VERIFY_URL,
    add_passkey,
    api_passkey_sign_in,
    page_passkey_sign_in,
    soft_authenticator,
)

pytestmark = pytest.mark.django_db

START = datetime(2033, 8, 1, 9, 0, 0, tzinfo=UTC)
OWNER = "owner@example.com"
NEW_PASSWORD = "the owner's brand new passphrase"
NOT_ME = "/security/passkeys/not-me/"
NOT_ME_CONFIRM = "/accounts/security/passkeys/not-me/"


@pytest.fixture(autouse=True)
def _stopped_clock(clock):
    return clock


@pytest.fixture
def owner(make_user) -> User:
    return make_user(email=OWNER, name="Olivia")


def register_over_api(client, access: str, name: str):
    """Register a new software passkey through the API, as a script would; its authenticator."""
    key = soft_authenticator()
    options = post_json(client, REGISTER_OPTIONS_URL, **bearer(access))
    assert options.status_code == 200, options.content
    response = post_json(
        client, REGISTER_URL, {"credential": key.create(options.json()), "name": name}, **bearer(access)
    )
    assert response.status_code == 201, response.content
    return key


def newest_passkey_notice(mailoutbox):
    return [mail for mail in mails_to(mailoutbox, OWNER) if "passkey was added" in mail.subject.lower()][-1]


def newest_not_me_link(mailoutbox) -> str:
    return link_path_in(newest_passkey_notice(mailoutbox), NOT_ME)


def intruder_adds_a_passkey(mailoutbox, name: str = "Not yours", *, signed_in_with=None):
    """The intruder signs in with the known password (or, two-factor on, with their first passkey:
    both factors) and registers a software passkey over the API.

    Returns the intruder's authenticator and the "not me" link of the notice the owner got."""
    if signed_in_with is None:
        intruder = api_client(HTTP_USER_AGENT="python-requests/2.32")
        access = login(intruder, OWNER)
    else:
        signed_in, intruder = api_passkey_sign_in(signed_in_with)
        access = signed_in.json()["access"]
    return register_over_api(intruder, access, name), newest_not_me_link(mailoutbox)


def open_link(path: str):
    """The owner's browser follows the link: the token moves into the session, the form shows."""
    client = browser()
    response = client.get(path)
    assert response.status_code == 302 and response["Location"] == NOT_ME_CONFIRM, response
    return client, client.get(NOT_ME_CONFIRM)


def secure(path: str, password: str = NEW_PASSWORD):
    client, page = open_link(path)
    assert page.status_code == 200, page.content
    return client, submit(client, NOT_ME_CONFIRM, {"password1": password, "password2": password})


def events(kind: str, user: User):
    return SecurityEvent.objects.filter(kind=kind, user=user)


# --- Before the fix, this was the hole --------------------------------------------------------------


def test_a_password_reset_alone_does_not_shut_out_a_passkey_and_the_owner_is_asked_for_a_factor(owner, mailoutbox):
    key, _link = intruder_adds_a_passkey(mailoutbox)
    owner.set_password(NEW_PASSWORD)
    owner.save()
    # Signing in with the new password asks for a second step the owner cannot take...
    assert login_response(api_client(), OWNER, NEW_PASSWORD).status_code == 202
    # ...while the intruder's passkey still signs in: which is why the notice carries a way out.
    response, _client = api_passkey_sign_in(key)
    assert response.status_code == 200


# --- The way out -------------------------------------------------------------------------------------


def test_the_notice_link_removes_the_intruders_passkey_ends_every_session_and_sets_the_password(owner, mailoutbox):
    key, link = intruder_adds_a_passkey(mailoutbox)
    signed_in, intruder = api_passkey_sign_in(key)
    intruder_access = signed_in.json()["access"]
    intruder_session = session_of(intruder_access)
    assert intruder_session.passkey_id == Passkey.objects.get(user=owner).pk

    mailoutbox.clear()
    _client, response = secure(link)

    assert response.status_code == 302 and response["Location"] == LOGIN_PAGE
    assert not Passkey.objects.filter(user=owner).exists()
    assert not has_mfa(owner) and recovery_codes_left(owner) == 0
    assert not DeviceSession.objects.live().filter(user=owner).exists()
    intruder_session.refresh_from_db()
    assert intruder_session.revoked_reason == DeviceSession.EndReason.ACCOUNT_SECURED
    assert get_me(intruder_access).status_code == 401
    assert post_json(intruder, REFRESH_URL, **csrf_header(intruder)).status_code == 401
    refused, _client = api_passkey_sign_in(key)
    assert_api_error(refused, 401, "passkey_unknown")
    # The old password is the intruder's; the new one signs in, with no second step left to ask.
    assert login_response(api_client(), OWNER, STRONG_PASSWORD).status_code == 401
    assert login_response(api_client(), OWNER, NEW_PASSWORD).status_code == 200
    removed = events(SecurityEvent.Kind.PASSKEY_REMOVED, owner).get()
    assert removed.detail["by"] == "emailed link" and removed.detail["name"] == "Not yours"
    assert events(SecurityEvent.Kind.MFA_DISABLED, owner).get().detail["by"] == "emailed link"
    assert [mail.subject for mail in mails_to(mailoutbox, OWNER)] == ["Your Todo password was changed"]


def test_the_link_still_works_after_the_owner_reset_the_password_first(owner, mailoutbox):
    key, link = intruder_adds_a_passkey(mailoutbox)
    reset = post_json(api_client(), "/api/auth/password/reset/", {"email": OWNER})
    assert reset.status_code == 202
    reset_link = link_path_in(mails_to(mailoutbox, OWNER)[-1], "/password/reset/")
    token = reset_link.rstrip("/").rsplit("/", 1)[-1]
    confirmed = post_json(api_client(), "/api/auth/password/reset/confirm/", {"token": token, "password": NEW_PASSWORD})
    assert confirmed.status_code == 204, confirmed.content

    _client, response = secure(link, "yet another owner passphrase")

    assert response["Location"] == LOGIN_PAGE
    assert not Passkey.objects.filter(user=owner).exists()
    assert api_passkey_sign_in(key)[0].status_code == 401


def test_following_the_link_uses_nothing_up_until_the_form_is_sent(owner, mailoutbox):
    _key, link = intruder_adds_a_passkey(mailoutbox)
    # A link scanner, then the owner twice: only the POST does anything.
    assert browser().get(link).status_code == 302
    client, page = open_link(link)
    assert "Not yours" in page.content.decode()
    assert client.get(NOT_ME_CONFIRM).status_code == 200
    assert Passkey.objects.filter(user=owner).exists()
    assert EmailVerificationToken.objects.get(user=owner, purpose="remove_passkey").used_at is None
    token = link.rstrip("/").rsplit("/", 1)[-1]
    assert not EmailVerificationToken.objects.filter(token_hash=token).exists()  # only its hash is kept
    assert submit(client, NOT_ME_CONFIRM, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}).status_code == 302
    assert not Passkey.objects.filter(user=owner).exists()


def test_the_page_warns_when_the_passkey_is_the_only_second_factor(owner, mailoutbox):
    _key, link = intruder_adds_a_passkey(mailoutbox)
    _client, page = open_link(link)
    text = " ".join(page.content.decode().split())
    assert "The account has no other second factor: two-factor authentication turns off" in text


def test_the_page_says_the_other_factors_stay_when_there_are_some(owner, mailoutbox):
    enable_totp(owner)
    add_passkey(owner)
    _client, page = open_link(newest_not_me_link(mailoutbox))
    text = " ".join(page.content.decode().split())
    assert "Your older passkeys, your authenticator app and your recovery codes stay." in text
    assert "no other second factor" not in text


def test_the_link_works_once(owner, mailoutbox):
    _key, link = intruder_adds_a_passkey(mailoutbox)
    secure(link)
    response = browser().get(link)
    assert response.status_code == 400
    assert "This link cannot be used" in response.content.decode()


def test_a_weak_new_password_is_a_form_error_and_changes_nothing(owner, mailoutbox):
    _key, link = intruder_adds_a_passkey(mailoutbox)
    client, response = secure(link, "password")
    assert response.status_code == 200
    assert response.context["form"].errors["password1"]
    assert Passkey.objects.filter(user=owner).exists()
    assert EmailVerificationToken.objects.get(user=owner, purpose="remove_passkey").used_at is None
    owner.refresh_from_db()
    assert owner.check_password(STRONG_PASSWORD)
    # The form is still there, with the link's token kept: a better password works.
    assert submit(client, NOT_ME_CONFIRM, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}).status_code == 302
    assert not Passkey.objects.filter(user=owner).exists()


def test_mismatched_passwords_are_a_form_error(owner, mailoutbox):
    _key, link = intruder_adds_a_passkey(mailoutbox)
    client, _page = open_link(link)
    response = submit(client, NOT_ME_CONFIRM, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD + "!"})
    assert response.status_code == 200 and response.context["form"].errors
    assert Passkey.objects.filter(user=owner).exists()


def test_the_link_expires_after_a_day(owner, mailoutbox, clock, settings):
    assert settings.ACCOUNTS_PASSKEY_NOT_ME_TIMEOUT == 24 * 60 * 60
    _key, link = intruder_adds_a_passkey(mailoutbox)
    clock.advance(timedelta(seconds=settings.ACCOUNTS_PASSKEY_NOT_ME_TIMEOUT + 1))
    response = browser().get(link)
    assert response.status_code == 400
    assert Passkey.objects.filter(user=owner).exists()


def test_the_link_works_until_its_last_minute(owner, mailoutbox, clock, settings):
    _key, link = intruder_adds_a_passkey(mailoutbox)
    clock.advance(timedelta(seconds=settings.ACCOUNTS_PASSKEY_NOT_ME_TIMEOUT - 60))
    secure(link)
    assert not Passkey.objects.filter(user=owner).exists()


def test_a_link_whose_passkey_was_removed_already_is_not_valid(owner, mailoutbox):
    _key, link = intruder_adds_a_passkey(mailoutbox)
    Passkey.objects.filter(user=owner).delete()
    assert browser().get(link).status_code == 400


def test_the_link_stops_working_once_the_address_changed(owner, mailoutbox):
    """The old mailbox may be someone else's now (a job left behind): it must not strip a factor."""
    _key, link = intruder_adds_a_passkey(mailoutbox)
    client, _page = open_link(link)
    User.objects.filter(pk=owner.pk).update(email="olivia@new.example")
    response = submit(client, NOT_ME_CONFIRM, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 400
    assert "address has changed since this link was sent" in response.content.decode()
    assert Passkey.objects.filter(user=owner).exists()
    owner.refresh_from_db()
    assert owner.check_password(STRONG_PASSWORD)


def test_the_link_removes_the_passkeys_added_after_it_too(owner, mailoutbox, clock):
    """Adding the first gives a recent second factor: the intruder adds a second at once."""
    first_key, first_link = intruder_adds_a_passkey(mailoutbox, name="First")
    clock.advance(timedelta(seconds=3))
    second_key, _second_link = intruder_adds_a_passkey(mailoutbox, "Second", signed_in_with=first_key)
    _client, page = open_link(first_link)
    assert "Passkeys added after it are removed too" in page.content.decode()
    assert "Second" in page.content.decode()

    secure(first_link)

    assert not Passkey.objects.filter(user=owner).exists()
    assert not has_mfa(owner) and recovery_codes_left(owner) == 0
    assert api_passkey_sign_in(second_key)[0].status_code == 401
    removed = events(SecurityEvent.Kind.PASSKEY_REMOVED, owner)
    assert sorted(event.detail["name"] for event in removed) == ["First", "Second"]


def test_a_later_passkeys_link_removes_only_it_and_survives_the_other_links_reset(owner, mailoutbox, clock):
    first_key, _first_link = intruder_adds_a_passkey(mailoutbox, name="First")
    clock.advance(timedelta(seconds=3))
    second_key, second_link = intruder_adds_a_passkey(mailoutbox, "Second", signed_in_with=first_key)
    owner.set_password(NEW_PASSWORD)  # a security reset in between retires other links, not this one
    owner.save()

    secure(second_link, "a third owner passphrase")

    assert list(Passkey.objects.filter(user=owner).values_list("name", flat=True)) == ["First"]
    assert has_mfa(owner)
    assert api_passkey_sign_in(second_key)[0].status_code == 401


def test_a_link_cannot_take_away_two_factor_the_account_had_before_its_passkey(owner, mailoutbox):
    """The owner had an app, added a passkey, then removed the app: the mailbox's reader must not
    use the passkey's link to leave the account with no second factor."""
    enable_totp(owner)
    add_passkey(owner, name="Mine")
    link = newest_not_me_link(mailoutbox)
    TotpAuthenticator.objects.filter(user=owner).delete()

    response = browser().get(link)

    assert response.status_code == 400
    assert "which it had before this passkey was added" in response.content.decode()
    assert Passkey.objects.filter(user=owner).exists()
    owner.refresh_from_db()
    assert owner.check_password(STRONG_PASSWORD)


def test_the_link_leaves_the_owners_other_factors_on(owner, mailoutbox):
    """Whoever reads the mailbox cannot use the link to turn two-factor off: only that passkey goes."""
    secret = enable_totp(owner)
    codes_before = recovery_codes_left(owner)
    add_passkey(owner, name="Added while signed in")
    link = newest_not_me_link(mailoutbox)

    client, response = secure(link)

    assert not Passkey.objects.filter(user=owner).exists()
    assert has_mfa(owner) and recovery_codes_left(owner) == codes_before
    [message] = [str(message) for message in client.get(response["Location"]).context["messages"]]
    assert "Two-factor authentication is still on" in message and "contact support" in message
    client = api_client()
    assert login_response(client, OWNER, NEW_PASSWORD).status_code == 202
    verified = post_json(client, VERIFY_URL, {"code": totp_code(secret)}, **csrf_header(client))
    assert verified.status_code == 200, verified.content


def test_the_link_secures_a_deactivated_account_too(owner, mailoutbox):
    _key, link = intruder_adds_a_passkey(mailoutbox)
    User.objects.filter(pk=owner.pk).update(is_active=False)
    client, response = secure(link)
    assert response["Location"] == LOGIN_PAGE
    assert not Passkey.objects.filter(user=owner).exists()
    messages = [str(message) for message in client.get(LOGIN_PAGE).context["messages"]]
    assert any("deactivated" in message for message in messages)


def test_the_notice_names_the_link_and_how_long_it_works(owner, mailoutbox, settings):
    intruder_adds_a_passkey(mailoutbox)
    notice = newest_passkey_notice(mailoutbox)
    assert "it works for 24 hours; after that, contact support" in notice.body
    assert "signs out every device and sets a new password" in notice.body


# --- A removed passkey's sessions end ---------------------------------------------------------------


def test_removing_a_passkey_ends_the_sessions_it_signed_in_and_no_others(owner, mailoutbox):
    key, _added = add_passkey(owner, name="Old laptop")
    passkey = Passkey.objects.get(user=owner)
    by_passkey, _client = api_passkey_sign_in(key)
    by_passkey_session = session_of(by_passkey.json()["access"])
    # The password, then the passkey as the second step.
    pending = api_client()
    assert login_response(pending, OWNER).status_code == 202
    options = post_json(pending, MFA_PASSKEY_OPTIONS_URL, **csrf_header(pending)).json()
    second_step = post_json(pending, VERIFY_URL, {"credential": key.get(options)}, **csrf_header(pending))
    assert second_step.status_code == 200, second_step.content
    second_step_session = session_of(second_step.json()["access"])
    assert {by_passkey_session.passkey_id, second_step_session.passkey_id} == {passkey.pk}
    # A session the passkey did not sign in, from which the owner removes it.
    here = access_token_for(owner, second_factor=True)
    mailoutbox.clear()

    response = delete_json(api_client(), f"{PASSKEYS_URL}{passkey.pk}/", **bearer(here))

    assert response.status_code == 204, response.content
    for ended in (by_passkey_session, second_step_session):
        ended.refresh_from_db()
        assert ended.revoked_reason == DeviceSession.EndReason.PASSKEY_REMOVED
    assert get_me(here).status_code == 200
    assert get_me(by_passkey.json()["access"]).status_code == 401
    # The two it signed in, and the one add_passkey registered it on.
    assert events(SecurityEvent.Kind.PASSKEY_REMOVED, owner).get().detail["sessions_ended"] == 3
    [notice] = mails_to(mailoutbox, OWNER)
    assert "the 3 devices signed in with it were signed out" in notice.body


def test_removing_the_passkey_from_the_session_it_signed_in_keeps_that_session(owner, mailoutbox):
    key, _added = add_passkey(owner)
    passkey = Passkey.objects.get(user=owner)
    signed_in, _client = api_passkey_sign_in(key)
    access = signed_in.json()["access"]

    response = delete_json(api_client(), f"{PASSKEYS_URL}{passkey.pk}/", **bearer(access))

    assert response.status_code == 204, response.content
    assert get_me(access).status_code == 200
    session = session_of(access)
    assert session.revoked_at is None and session.passkey_id is None
    # Only the session add_passkey registered it on ended.
    assert "the 1 device signed in with it was signed out" in mails_to(mailoutbox, OWNER)[-1].body


def test_a_password_and_code_session_does_not_remember_a_passkey(owner):
    secret = enable_totp(owner)
    client = api_client()
    assert login_response(client, OWNER).status_code == 202
    response = post_json(client, VERIFY_URL, {"code": totp_code(secret)}, **csrf_header(client))
    assert response.status_code == 200
    assert session_of(response.json()["access"]).passkey_id is None


def test_supports_reset_of_two_factor_ends_the_sessions_passkeys_signed_in(owner, make_user, mailoutbox):
    key, _added = add_passkey(owner)
    by_passkey, _client = api_passkey_sign_in(key)
    by_password = access_token_for(owner)
    staff = make_user(email="support@example.com", is_staff=True, is_superuser=True)

    assert staff_reset_mfa(staff=staff, user=owner) is True

    assert get_me(by_passkey.json()["access"]).status_code == 401
    assert get_me(by_password).status_code == 200
    action = SecurityEvent.objects.get(kind=SecurityEvent.Kind.STAFF_ACTION, user=owner)
    assert action.detail == {"action": "reset_mfa", "sessions_ended": 2}  # and the one that added it
    assert "devices that signed in with a passkey were signed out" in mails_to(mailoutbox, OWNER)[-1].body


def test_a_page_session_signed_in_with_a_passkey_ends_with_it(owner):
    key, _added = add_passkey(owner)
    passkey = Passkey.objects.get(user=owner)
    client = browser()
    assert page_passkey_sign_in(client, key).status_code == 302
    assert client.get("/accounts/").status_code == 200
    remover = browser()
    force_page_login(remover, owner, second_factor=True)
    assert submit(remover, f"/accounts/security/passkeys/{passkey.pk}/remove/", {}).status_code == 302
    assert client.get("/accounts/").status_code == 302  # signed out: its device session ended
    assert remover.get("/accounts/").status_code == 200


def test_removing_a_passkey_ends_the_session_that_added_it_and_one_that_re_authenticated_with_it(owner):
    key, _added = add_passkey(owner)  # on a session of its own, which now rests on the passkey
    passkey = Passkey.objects.get(user=owner)
    [adding_session] = DeviceSession.objects.filter(user=owner, passkey=passkey)
    by_password = access_token_for(owner)
    options = post_json(api_client(), REAUTHENTICATE_OPTIONS_URL, **bearer(by_password)).json()
    response = post_json(api_client(), REAUTHENTICATE_URL, {"credential": key.get(options)}, **bearer(by_password))
    assert response.status_code == 204, response.content
    assert session_of(by_password).passkey_id == passkey.pk
    here = access_token_for(owner, second_factor=True)

    assert delete_json(api_client(), f"{PASSKEYS_URL}{passkey.pk}/", **bearer(here)).status_code == 204

    adding_session.refresh_from_db()
    assert adding_session.revoked_reason == DeviceSession.EndReason.PASSKEY_REMOVED
    assert get_me(by_password).status_code == 401
    assert get_me(here).status_code == 200


def _removed_right_after_it_was_checked(monkeypatch):
    """The passkey's removal commits between its answer's check and the new session (a race)."""
    finish = signin.finish_first_factor

    def then_removed(**arguments):
        step = finish(**arguments)
        Passkey.objects.filter(pk=arguments["passkey"].pk).delete()
        return step

    monkeypatch.setattr(signin, "finish_first_factor", then_removed)


def test_a_passkey_removed_as_its_api_sign_in_finishes_opens_no_session(owner, monkeypatch):
    key, _added = add_passkey(owner)
    sessions_before = DeviceSession.objects.filter(user=owner).count()
    _removed_right_after_it_was_checked(monkeypatch)

    response, client = api_passkey_sign_in(key)

    assert_api_error(response, 401, "passkey_unknown")
    assert DeviceSession.objects.filter(user=owner).count() == sessions_before
    assert refresh_cookie_value(client) is None


def test_a_passkey_removed_as_its_page_sign_in_finishes_signs_nothing_in(owner, monkeypatch):
    key, _added = add_passkey(owner)
    sessions_before = DeviceSession.objects.filter(user=owner).count()
    _removed_right_after_it_was_checked(monkeypatch)
    client = browser()

    response = page_passkey_sign_in(client, key)

    assert response.status_code == 302 and response["Location"] == LOGIN_PAGE
    assert client.get("/accounts/").status_code == 302
    assert DeviceSession.objects.filter(user=owner).count() == sessions_before


def test_re_authenticating_with_a_passkey_removed_meanwhile_is_refused(owner, monkeypatch):
    key, _added = add_passkey(owner)
    access = access_token_for(owner)
    prove = passkeys.prove_passkey

    def then_removed(**arguments):
        proof = prove(**arguments)
        Passkey.objects.filter(pk=proof.passkey.pk).delete()
        return proof

    monkeypatch.setattr(passkeys, "prove_passkey", then_removed)
    options = post_json(api_client(), REAUTHENTICATE_OPTIONS_URL, **bearer(access)).json()
    response = post_json(api_client(), REAUTHENTICATE_URL, {"credential": key.get(options)}, **bearer(access))

    assert_api_error(response, 401, "passkey_unknown")
    session = session_of(access)
    assert session.passkey_id is None and session.second_factor_at is None
