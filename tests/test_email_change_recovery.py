"""Attack record 1: a pending email change must not survive the owner's recovery; the owner is told at once and can
undo it.

An intruder who knows the password signs in and asks to move the account to
their own address. Each reproduction below took the account over before the
fix; each now leaves the owner in control.
"""

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.conf import settings as django_settings
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from accounts.exceptions import TokenInvalid
from accounts.flows.email_change import cancel_email_change
from accounts.flows.email_tokens import issue_token
from accounts.flows.password_reset import reset_password
from accounts.flows.security_reset import security_reset
from accounts.flows.verification import Purpose, Verifier, verify_email
from accounts.models import DeviceSession, EmailVerificationToken, PasswordResetToken, SecurityEvent, User
from tests.support.accounts import STRONG_PASSWORD, force_page_login
from tests.support.api import ME_URL, api_client, bearer, csrf_header, login, login_response, post_json
from tests.support.mail import link_in, mails_to, token_in

pytestmark = pytest.mark.django_db

OWNER = "owner@example.com"
INTRUDER = "intruder@evil.example"
OWNER_NEW_PASSWORD = "the owner's brand new passphrase"
INTRUDER_PASSWORD = "the intruder's own passphrase"
CHANGE_URL = "/api/auth/email/change/"
VERIFY_URL = "/api/auth/email/verify/"
CANCEL_URL = "/api/auth/email/change/cancel/"
RESET_URL = "/api/auth/password/reset/"
RESET_CONFIRM_URL = "/api/auth/password/reset/confirm/"


@pytest.fixture
def owner(make_user):
    return make_user(email=OWNER, name="Olivia")


def intruder_asks_for_the_change(mailoutbox) -> tuple[Client, str, str]:
    """The intruder signs in with the known password and asks to move the account to their address.

    Returns their client, their access token and the change token that reached their inbox.
    """
    intruder = api_client(HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0")
    access = login(intruder, OWNER)
    response = post_json(intruder, CHANGE_URL, {"new_email": INTRUDER, "password": STRONG_PASSWORD}, **bearer(access))
    assert response.status_code == 202
    [confirmation] = mails_to(mailoutbox, INTRUDER)
    return intruder, access, token_in(confirmation, "/verify-email/")


def intruder_confirms(token: str):
    """From the intruder's inbox, with the password they know (a change is confirmed with it)."""
    return post_json(api_client(), VERIFY_URL, {"token": token, "password": STRONG_PASSWORD})


def reset_by_email(mailoutbox, address: str, password: str):
    assert post_json(api_client(), RESET_URL, {"email": address}).status_code == 202
    token = token_in(mails_to(mailoutbox, address)[-1], "/password/reset/")
    return post_json(api_client(), RESET_CONFIRM_URL, {"token": token, "password": password})


def assert_owner_keeps_the_account(mailoutbox, owner: User) -> None:
    owner.refresh_from_db()
    assert owner.email == OWNER
    mailoutbox.clear()
    # The intruder's address has no account to reset: nothing reaches it.
    assert post_json(api_client(), RESET_URL, {"email": INTRUDER}).status_code == 202
    assert mails_to(mailoutbox, INTRUDER) == []


def cancel_token_in(mailoutbox) -> str:
    [notice] = [m for m in mails_to(mailoutbox, OWNER) if "/email/change/cancel/" in m.body]
    return token_in(notice, "/email/change/cancel/")


# --- The reproductions: every security reset ends the pending change -----------------------------------


def test_the_owners_password_reset_kills_the_intruders_pending_change(owner, mailoutbox):
    _, _, change_token = intruder_asks_for_the_change(mailoutbox)
    assert reset_by_email(mailoutbox, OWNER, OWNER_NEW_PASSWORD).status_code == 204
    response = intruder_confirms(change_token)
    assert response.status_code == 400
    assert response.json()["code"] == "token_invalid"
    assert_owner_keeps_the_account(mailoutbox, owner)


def test_a_password_change_signing_out_other_devices_kills_the_pending_change(owner, mailoutbox):
    _, intruder_access, change_token = intruder_asks_for_the_change(mailoutbox)
    laptop = api_client()
    access = login(laptop, OWNER)
    body = {"current_password": STRONG_PASSWORD, "new_password": OWNER_NEW_PASSWORD}
    assert post_json(laptop, "/api/auth/password/change/", body, **bearer(access)).status_code == 204
    assert intruder_confirms(change_token).status_code == 400
    assert api_client().get(ME_URL, **bearer(intruder_access)).status_code == 401
    assert_owner_keeps_the_account(mailoutbox, owner)


def test_signing_out_all_other_devices_kills_the_pending_change(owner, mailoutbox):
    _, _, change_token = intruder_asks_for_the_change(mailoutbox)
    laptop = api_client()
    access = login(laptop, OWNER)
    assert post_json(laptop, "/api/auth/sessions/revoke-others/", **bearer(access)).status_code == 204
    assert intruder_confirms(change_token).status_code == 400
    assert_owner_keeps_the_account(mailoutbox, owner)


def test_signing_out_other_devices_on_the_page_kills_the_pending_change(owner, mailoutbox):
    _, _, change_token = intruder_asks_for_the_change(mailoutbox)
    page = Client()
    page.post("/accounts/login/", {"email": OWNER, "password": STRONG_PASSWORD})
    assert page.post("/accounts/sessions/end-others/").status_code == 302
    assert intruder_confirms(change_token).status_code == 400
    assert_owner_keeps_the_account(mailoutbox, owner)


def test_supports_end_sessions_kills_the_pending_change(owner, make_user, mailoutbox):
    _, _, change_token = intruder_asks_for_the_change(mailoutbox)
    staff = make_user(email="sam@support.example", name="Sam", is_staff=True)
    staff.groups.add(Group.objects.get(name="Support"))
    desk = Client()
    force_page_login(desk, staff)
    response = desk.post(
        "/admin/accounts/user/", {"action": "end_all_sessions", "_selected_action": [owner.pk], "index": 0}
    )
    assert response.status_code == 302
    assert intruder_confirms(change_token).status_code == 400
    assert_owner_keeps_the_account(mailoutbox, owner)


def test_deactivating_and_reactivating_kills_the_pending_change(owner, make_user, mailoutbox):
    _, _, change_token = intruder_asks_for_the_change(mailoutbox)
    root = make_user(email="root@support.example", name="Root", is_staff=True, is_superuser=True)
    desk = Client()
    force_page_login(desk, root)
    for action in ("deactivate", "reactivate"):
        response = desk.post("/admin/accounts/user/", {"action": action, "_selected_action": [owner.pk], "index": 0})
        assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.is_active
    assert intruder_confirms(change_token).status_code == 400
    assert_owner_keeps_the_account(mailoutbox, owner)


SECURITY_RESETS = {
    "password_reset": lambda user, link: reset_password(token=link, password=OWNER_NEW_PASSWORD),
    "password_change": lambda user, link: security_reset(user=user, reason="password_changed"),
    "end_all_sessions": lambda user, link: security_reset(user=user, reason="ended_by_user"),
    "deactivation": lambda user, link: __import__(
        "accounts.flows.account_status", fromlist=["deactivate_user"]
    ).deactivate_user(user=user),
}


@pytest.mark.parametrize("reset", SECURITY_RESETS, ids=list(SECURITY_RESETS))
def test_every_security_reset_retires_every_unused_emailed_link_but_the_one_used(owner, reset):
    """Reset, verification and email-change links alike; the reset link being redeemed is the one used."""
    session = DeviceSession.objects.create(
        user=owner, expires_at=timezone.now() + timedelta(days=1), refresh_token_hash="x" * 64
    )
    reset_link = issue_token(model=PasswordResetToken, user=owner, lifetime_seconds=3600)
    for purpose, email in ((Purpose.VERIFY, OWNER), (Purpose.CHANGE, INTRUDER)):
        issue_token(
            model=EmailVerificationToken,
            user=owner,
            lifetime_seconds=3600,
            email=email,
            purpose=purpose,
            session_id=session.pk,
        )
    SECURITY_RESETS[reset](owner, reset_link)
    assert not PasswordResetToken.objects.filter(user=owner, used_at__isnull=True).exists()
    assert not EmailVerificationToken.objects.filter(user=owner, used_at__isnull=True).exists()
    if reset == "password_reset":
        assert PasswordResetToken.objects.get(user=owner).used_at is not None


def test_a_confirmed_change_retires_the_other_links_but_keeps_the_owners_way_back(owner, mailoutbox):
    _, _, change_token = intruder_asks_for_the_change(mailoutbox)
    post_json(api_client(), RESET_URL, {"email": OWNER})
    assert intruder_confirms(change_token).status_code == 200
    assert not PasswordResetToken.objects.filter(user=owner, used_at__isnull=True).exists()
    [undo] = EmailVerificationToken.objects.filter(user=owner, used_at__isnull=True)
    assert (undo.purpose, undo.email) == (Purpose.CANCEL_CHANGE, OWNER)


# --- The owner is told at once, and can cancel -----------------------------------------------------------


def test_asking_for_a_change_tells_the_current_address_at_once_with_a_cancel_link(owner, mailoutbox):
    intruder_asks_for_the_change(mailoutbox)
    [notice] = mails_to(mailoutbox, OWNER)
    assert notice.subject == f"Someone asked to change the email address of your {django_settings.SITE_NAME} account"
    assert "i***@evil.example" in notice.body
    assert INTRUDER not in notice.body and INTRUDER not in notice.alternatives[0][0]
    assert "Firefox 132 on Linux" in notice.body
    assert "Not you" in notice.body or "NOT you" in notice.body
    cancel = link_in(notice, "/email/change/cancel/")
    assert cancel.startswith(f"{django_settings.SITE_URL}/accounts/email/change/cancel/")
    assert f'href="{cancel}"' in notice.alternatives[0][0]
    assert notice.body.startswith("Hello Olivia,")  # the owner's own name, to the owner's own address


def test_cancelling_a_pending_change_keeps_the_address_replaces_the_password_and_ends_every_session(owner, mailoutbox):
    intruder, intruder_access, change_token = intruder_asks_for_the_change(mailoutbox)
    page = Client()
    path = urlsplit(link_in(mails_to(mailoutbox, OWNER)[0], "/email/change/cancel/")).path
    opened = page.get(path)
    assert opened.status_code == 302
    assert opened["Location"] == "/accounts/email/change/cancel/"
    form = page.get(opened["Location"])
    assert form.status_code == 200
    assert OWNER in form.content.decode()
    done = page.post(opened["Location"], {"password1": OWNER_NEW_PASSWORD, "password2": OWNER_NEW_PASSWORD})
    assert done.status_code == 302
    assert done["Location"] == "/accounts/login/"

    assert intruder_confirms(change_token).status_code == 400
    assert api_client().get(ME_URL, **bearer(intruder_access)).status_code == 401
    assert post_json(intruder, "/api/auth/refresh/", **csrf_header(intruder)).status_code == 401
    assert login_response(api_client(), OWNER, STRONG_PASSWORD).status_code == 401
    assert login_response(api_client(), OWNER, OWNER_NEW_PASSWORD).status_code == 200
    [event] = SecurityEvent.objects.filter(kind="email_change_cancelled")
    assert event.detail == {"undone": False, "sessions_ended": 1}
    # The link works once.
    assert page.get(path).status_code == 400


def test_the_undo_link_moves_a_change_the_intruder_already_confirmed_back(owner, mailoutbox):
    _intruder, intruder_access, change_token = intruder_asks_for_the_change(mailoutbox)
    assert intruder_confirms(change_token).status_code == 200  # the intruder was quick
    owner.refresh_from_db()
    assert owner.email == INTRUDER
    # ...and even reset the password through their new address.
    assert reset_by_email(mailoutbox, INTRUDER, INTRUDER_PASSWORD).status_code == 204

    response = post_json(
        api_client(), CANCEL_URL, {"token": cancel_token_in(mailoutbox), "new_password": OWNER_NEW_PASSWORD}
    )
    assert response.status_code == 200, response.content
    owner.refresh_from_db()
    assert owner.email == OWNER and owner.email_verified
    assert login_response(api_client(), INTRUDER, INTRUDER_PASSWORD).status_code == 401
    assert login_response(api_client(), OWNER, INTRUDER_PASSWORD).status_code == 401
    assert login_response(api_client(), OWNER, OWNER_NEW_PASSWORD).status_code == 200
    assert api_client().get(ME_URL, **bearer(intruder_access)).status_code == 401
    # The address it had moved to hears that it moved back; the owner hears of the new password.
    [undone] = [m for m in mails_to(mailoutbox, INTRUDER) if "moved back" in m.subject]
    assert "o***@example.com" in undone.body
    assert any("password was changed" in m.subject for m in mails_to(mailoutbox, OWNER))
    [event] = SecurityEvent.objects.filter(kind="email_change_cancelled")
    assert event.detail["undone"] is True


def test_the_undo_link_works_for_its_whole_lifetime_and_not_after(owner, mailoutbox, settings):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        _, _, change_token = intruder_asks_for_the_change(mailoutbox)
        assert intruder_confirms(change_token).status_code == 200
        token = cancel_token_in(mailoutbox)
    lifetime = timedelta(seconds=settings.ACCOUNTS_EMAIL_CHANGE_UNDO_TIMEOUT)
    with time_machine.travel(start + lifetime, tick=False):
        late = post_json(api_client(), CANCEL_URL, {"token": token, "new_password": OWNER_NEW_PASSWORD})
    assert late.status_code == 400 and late.json()["code"] == "token_expired"
    with time_machine.travel(start + lifetime - timedelta(seconds=1), tick=False):
        in_time = post_json(api_client(), CANCEL_URL, {"token": token, "new_password": OWNER_NEW_PASSWORD})
    assert in_time.status_code == 200
    owner.refresh_from_db()
    assert owner.email == OWNER


def test_registering_the_old_address_meanwhile_does_not_block_the_undo(owner, mailoutbox):
    """Someone (the intruder) registers the freed address and never verifies it: the link proves the mailbox."""
    _, _, change_token = intruder_asks_for_the_change(mailoutbox)
    assert intruder_confirms(change_token).status_code == 200
    token = cancel_token_in(mailoutbox)
    squatter = {"email": OWNER, "password": "squatter passphrase 9", "name": "S"}
    assert post_json(api_client(), "/api/auth/register/", squatter).status_code == 202
    squatter_id = User.objects.get(email=OWNER).pk
    response = post_json(api_client(), CANCEL_URL, {"token": token, "new_password": OWNER_NEW_PASSWORD})
    assert response.status_code == 200, response.content
    owner.refresh_from_db()
    assert owner.email == OWNER
    assert not User.objects.filter(pk=squatter_id).exists()
    assert SecurityEvent.objects.filter(kind="account_deleted", detail__reason="address_reclaimed").count() == 1
    assert login_response(api_client(), OWNER, OWNER_NEW_PASSWORD).status_code == 200


def test_undo_is_refused_clearly_when_a_verified_account_holds_the_old_address(owner, make_user, mailoutbox):
    _, _, change_token = intruder_asks_for_the_change(mailoutbox)
    assert intruder_confirms(change_token).status_code == 200
    token = cancel_token_in(mailoutbox)
    make_user(email=OWNER, name="A proven holder")  # only the mailbox's holder could have verified it
    response = post_json(api_client(), CANCEL_URL, {"token": token, "new_password": OWNER_NEW_PASSWORD})
    assert response.status_code == 400
    assert response.json()["code"] == "token_invalid"
    assert "contact support" in response.json()["detail"]
    owner.refresh_from_db()
    assert owner.email == INTRUDER  # nothing half-done
    assert not owner.check_password(OWNER_NEW_PASSWORD)
    assert EmailVerificationToken.objects.get(user=owner, purpose=Purpose.CANCEL_CHANGE, email=OWNER).used_at is None


def test_the_intruder_cannot_retire_the_owners_undo_link_with_an_undo_link_of_their_own(owner, mailoutbox):
    intruder, intruder_access, change_token = intruder_asks_for_the_change(mailoutbox)
    assert intruder_confirms(change_token).status_code == 200
    owners_link = cancel_token_in(mailoutbox)
    # Now at the intruder's address, the account asks for another change: that notice (and its
    # undo link) goes to the intruder, who uses it to "secure" the account with a password of theirs.
    body = {"new_email": "elsewhere@evil.example", "password": STRONG_PASSWORD}
    assert post_json(intruder, CHANGE_URL, body, **bearer(intruder_access)).status_code == 202
    [notice] = [m for m in mails_to(mailoutbox, INTRUDER) if "/email/change/cancel/" in m.body]
    intruders_link = token_in(notice, "/email/change/cancel/")
    assert (
        post_json(api_client(), CANCEL_URL, {"token": intruders_link, "new_password": INTRUDER_PASSWORD}).status_code
        == 200
    )
    # The owner's older link still leads back.
    response = post_json(api_client(), CANCEL_URL, {"token": owners_link, "new_password": OWNER_NEW_PASSWORD})
    assert response.status_code == 200, response.content
    owner.refresh_from_db()
    assert owner.email == OWNER
    assert login_response(api_client(), OWNER, OWNER_NEW_PASSWORD).status_code == 200
    # ...and every undo link sent after the owner's is gone: the intruder has no way back.
    assert not EmailVerificationToken.objects.filter(user=owner, used_at__isnull=True).exists()


def test_deactivating_the_account_does_not_outlast_the_undo_link(owner, mailoutbox):
    _, _, change_token = intruder_asks_for_the_change(mailoutbox)
    assert intruder_confirms(change_token).status_code == 200
    token = cancel_token_in(mailoutbox)
    User.objects.filter(pk=owner.pk).update(is_active=False)
    response = post_json(api_client(), CANCEL_URL, {"token": token, "new_password": OWNER_NEW_PASSWORD})
    assert response.status_code == 200, response.content
    owner.refresh_from_db()
    assert (owner.email, owner.is_active) == (OWNER, False)  # back at the owner's address; support reactivates
    assert owner.check_password(OWNER_NEW_PASSWORD)


def test_cancelling_needs_a_password_the_policy_accepts(owner, mailoutbox):
    intruder_asks_for_the_change(mailoutbox)
    token = cancel_token_in(mailoutbox)
    response = post_json(api_client(), CANCEL_URL, {"token": token, "new_password": "short"})
    assert response.status_code == 400
    assert response.json()["code"] == "password_rejected"
    assert EmailVerificationToken.objects.get(user=owner, purpose=Purpose.CANCEL_CHANGE).used_at is None


@pytest.mark.parametrize("token", ["", "x" * 43, "not a token", "A" * 300])
def test_a_bad_cancel_token_is_a_clear_400(owner, token):
    response = post_json(api_client(), CANCEL_URL, {"token": token, "new_password": OWNER_NEW_PASSWORD})
    assert response.status_code == 400
    assert response.json()["code"] in {"token_invalid", "invalid_input"}


def test_a_bad_cancel_link_on_the_page_is_a_clear_400(db):
    response = Client().get("/accounts/email/change/cancel/" + "A" * 43 + "/")
    assert response.status_code == 400
    assert "This link cannot be used" in response.content.decode()
    assert Client().get("/accounts/email/change/cancel/").status_code == 400


def test_other_emailed_links_do_not_work_as_cancel_links_nor_cancel_links_as_verification(owner, mailoutbox):
    _, _, change_token = intruder_asks_for_the_change(mailoutbox)
    cancel = cancel_token_in(mailoutbox)
    refused = post_json(api_client(), CANCEL_URL, {"token": change_token, "new_password": OWNER_NEW_PASSWORD})
    assert refused.status_code == 400
    with pytest.raises(TokenInvalid):
        verify_email(token=cancel)
    owner.refresh_from_db()
    assert owner.email == OWNER


# --- Confirming needs the session that asked to be live ---------------------------------------------------


def test_the_change_link_dies_when_the_asking_device_signs_out(owner, mailoutbox):
    intruder, _, change_token = intruder_asks_for_the_change(mailoutbox)
    assert post_json(intruder, "/api/auth/logout/", **csrf_header(intruder)).status_code == 204
    response = intruder_confirms(change_token)
    assert response.status_code == 400
    assert "signed out" in response.json()["detail"]
    assert_owner_keeps_the_account(mailoutbox, owner)


def test_the_change_link_dies_when_the_owner_ends_that_one_device(owner, mailoutbox):
    _, _intruder_access, change_token = intruder_asks_for_the_change(mailoutbox)
    intruder_session = DeviceSession.objects.get(user=owner, revoked_at__isnull=True)
    laptop = api_client()
    access = login(laptop, OWNER)
    response = laptop.delete(f"/api/auth/sessions/{intruder_session.pk}/", **bearer(access))
    assert response.status_code == 204
    assert intruder_confirms(change_token).status_code == 400


def test_the_change_link_dies_with_an_idle_asking_session(owner, mailoutbox, settings):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        _, _, change_token = intruder_asks_for_the_change(mailoutbox)
    settings.ACCOUNTS_EMAIL_VERIFICATION_TIMEOUT = 30 * 24 * 3600  # the link itself would still be valid
    settings.ACCOUNTS_REFRESH_IDLE_LIFETIME = 3600
    with time_machine.travel(start + timedelta(hours=2), tick=False):
        assert intruder_confirms(change_token).status_code == 400


def test_the_change_link_works_while_the_asking_session_lives_from_any_browser(owner, mailoutbox):
    _, _, change_token = intruder_asks_for_the_change(mailoutbox)
    assert intruder_confirms(change_token).status_code == 200
    owner.refresh_from_db()
    assert owner.email == INTRUDER


def test_a_change_asked_without_a_device_session_cannot_be_confirmed(owner):
    """Defence in depth: a token row with no asking session (none can be made by the flows) never confirms."""
    raw = issue_token(
        model=EmailVerificationToken, user=owner, lifetime_seconds=3600, email=INTRUDER, purpose=Purpose.CHANGE
    )
    with pytest.raises(TokenInvalid):
        verify_email(token=raw)


def test_a_security_reset_and_a_change_confirmation_never_both_win(owner, mailoutbox):
    """On one thread: whichever runs first makes the other fail (threads race it on PostgreSQL below)."""
    _, _, change_token = intruder_asks_for_the_change(mailoutbox)
    post_json(api_client(), RESET_URL, {"email": OWNER})
    reset_token = token_in(mails_to(mailoutbox, OWNER)[-1], "/password/reset/")
    verify_email(token=change_token, verifier=Verifier(password=STRONG_PASSWORD))
    with pytest.raises(TokenInvalid):
        reset_password(token=reset_token, password=OWNER_NEW_PASSWORD)


def test_cancel_then_a_new_request_starts_clean(owner, mailoutbox):
    intruder_asks_for_the_change(mailoutbox)
    cancel_email_change(token=cancel_token_in(mailoutbox), new_password=OWNER_NEW_PASSWORD)
    mailoutbox.clear()
    laptop = api_client()
    access = login(laptop, OWNER, OWNER_NEW_PASSWORD)
    response = post_json(
        laptop, CHANGE_URL, {"new_email": "olivia@new.example", "password": OWNER_NEW_PASSWORD}, **bearer(access)
    )
    assert response.status_code == 202
    token = token_in(mails_to(mailoutbox, "olivia@new.example")[0], "/verify-email/")
    assert post_json(api_client(), VERIFY_URL, {"token": token, "password": OWNER_NEW_PASSWORD}).status_code == 200
    owner.refresh_from_db()
    assert owner.email == "olivia@new.example"


# --- Confirming a move needs the account's password (or its signed-in browser) ------------------------------


def test_a_victim_cannot_confirm_a_move_of_someone_elses_account_onto_their_address(make_user, mailoutbox):
    """An intruder's own account asks to move onto the victim's address; the victim just presses the button."""
    make_user(email=INTRUDER, name="Mallory")
    intruder = api_client()
    access = login(intruder, INTRUDER)
    body = {"new_email": OWNER, "password": STRONG_PASSWORD}
    assert post_json(intruder, CHANGE_URL, body, **bearer(access)).status_code == 202
    victim = Client()
    assert victim.get(urlsplit(link_in(mails_to(mailoutbox, OWNER)[0], "/verify-email/")).path).status_code == 302
    page = victim.get("/accounts/verify-email/confirm/")
    assert "enter the account's password" in page.content.decode()
    assert victim.post("/accounts/verify-email/confirm/").status_code == 400
    api = post_json(api_client(), VERIFY_URL, {"token": token_in(mails_to(mailoutbox, OWNER)[0], "/verify-email/")})
    assert (api.status_code, api.json()["code"]) == (400, "password_required")
    assert not User.objects.filter(email=OWNER).exists()
    assert User.objects.get(email=INTRUDER).email_verified


def test_confirming_a_move_in_the_signed_in_browser_needs_no_password(owner, mailoutbox):
    page = Client()
    page.post("/accounts/login/", {"email": OWNER, "password": STRONG_PASSWORD})
    page.post("/accounts/email/change/", {"new_email": "olivia@new.example", "password": STRONG_PASSWORD})
    page.get(urlsplit(link_in(mails_to(mailoutbox, "olivia@new.example")[0], "/verify-email/")).path)
    assert page.post("/accounts/verify-email/confirm/").status_code == 302
    owner.refresh_from_db()
    assert owner.email == "olivia@new.example"


def test_a_wrong_password_does_not_confirm_a_move(owner, mailoutbox):
    _, _, change_token = intruder_asks_for_the_change(mailoutbox)
    response = post_json(api_client(), VERIFY_URL, {"token": change_token, "password": "not the password at all"})
    assert (response.status_code, response.json()["code"]) == (400, "invalid_password")
    owner.refresh_from_db()
    assert owner.email == OWNER
    assert EmailVerificationToken.objects.get(user=owner, purpose=Purpose.CHANGE).used_at is None


def test_the_notice_never_carries_the_requesting_clients_own_words(owner, mailoutbox):
    """A user agent is the client's to choose: an unrecognised one is "Unknown device" in the mail."""
    intruder = api_client(HTTP_USER_AGENT="SAFE - support test. To cancel: https://evil.example/c")
    access = login(intruder, OWNER)
    post_json(intruder, CHANGE_URL, {"new_email": INTRUDER, "password": STRONG_PASSWORD}, **bearer(access))
    [notice] = mails_to(mailoutbox, OWNER)
    for body in (notice.body, notice.alternatives[0][0]):
        assert "support test" not in body and "evil.example/c" not in body
    assert "Unknown device" in notice.body


# --- Second read: clocks, unproven addresses, used accounts, lost notices -------------------------------------


def test_a_later_undo_link_stamped_by_a_slow_clock_still_goes_when_the_owners_is_used(owner, mailoutbox):
    """Which undo links came later is told by row ids, never by an app server's clock."""
    intruder, intruder_access, change_token = intruder_asks_for_the_change(mailoutbox)
    assert intruder_confirms(change_token).status_code == 200
    owners_link = cancel_token_in(mailoutbox)
    with time_machine.travel(timezone.now() - timedelta(minutes=5)):  # a server whose clock is behind
        body = {"new_email": "elsewhere@evil.example", "password": STRONG_PASSWORD}
        assert post_json(intruder, CHANGE_URL, body, **bearer(intruder_access)).status_code == 202
    [notice] = [m for m in mails_to(mailoutbox, INTRUDER) if "/email/change/cancel/" in m.body]
    intruders_link = token_in(notice, "/email/change/cancel/")
    assert (
        post_json(api_client(), CANCEL_URL, {"token": owners_link, "new_password": OWNER_NEW_PASSWORD}).status_code
        == 200
    )
    refused = post_json(api_client(), CANCEL_URL, {"token": intruders_link, "new_password": INTRUDER_PASSWORD})
    assert refused.status_code == 400
    owner.refresh_from_db()
    assert owner.email == OWNER and owner.check_password(OWNER_NEW_PASSWORD)


def test_a_never_verified_address_can_cancel_a_pending_change_but_not_undo_a_confirmed_one(
    make_user, settings, mailoutbox
):
    """A typo's owner must not take the account back once its owner moved to their real address."""
    settings.ACCOUNTS_EMAIL_VERIFICATION = "optional"
    typo = "owner@gmial.example"
    account = make_user(email=typo, name="Olivia", verified=False)
    page = api_client()
    access = login(page, typo)
    body = {"new_email": OWNER, "password": STRONG_PASSWORD}
    assert post_json(page, CHANGE_URL, body, **bearer(access)).status_code == 202
    [notice] = mails_to(mailoutbox, typo)
    typo_link = token_in(notice, "/email/change/cancel/")
    confirm = token_in(mails_to(mailoutbox, OWNER)[0], "/verify-email/")
    assert post_json(api_client(), VERIFY_URL, {"token": confirm, "password": STRONG_PASSWORD}).status_code == 200
    response = post_json(api_client(), CANCEL_URL, {"token": typo_link, "new_password": "the typo owner's pass 1"})
    assert response.status_code == 400
    assert "cannot move the account back" in response.json()["detail"]
    account.refresh_from_db()
    assert account.email == OWNER and account.check_password(STRONG_PASSWORD)


def test_a_pending_change_from_a_never_verified_address_can_still_be_cancelled(make_user, settings, mailoutbox):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "optional"
    account = make_user(email=OWNER, name="Olivia", verified=False)
    page = api_client()
    access = login(page, OWNER)
    post_json(page, CHANGE_URL, {"new_email": INTRUDER, "password": STRONG_PASSWORD}, **bearer(access))
    response = post_json(
        api_client(), CANCEL_URL, {"token": cancel_token_in(mailoutbox), "new_password": OWNER_NEW_PASSWORD}
    )
    assert response.status_code == 200
    account.refresh_from_db()
    assert account.email == OWNER and account.email_verified and account.name == ""  # proven now; unproven name gone


def test_an_account_in_use_at_the_old_address_is_never_deleted_by_an_undo(owner, settings, mailoutbox):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "optional"
    _, _, change_token = intruder_asks_for_the_change(mailoutbox)
    assert intruder_confirms(change_token).status_code == 200
    token = cancel_token_in(mailoutbox)
    newcomer = {"email": OWNER, "password": "newcomer passphrase 9", "name": "N"}
    assert post_json(api_client(), "/api/auth/register/", newcomer).status_code == 202
    assert login_response(api_client(), OWNER, "newcomer passphrase 9").status_code == 200  # signed in: in use
    response = post_json(api_client(), CANCEL_URL, {"token": token, "new_password": OWNER_NEW_PASSWORD})
    assert response.status_code == 400 and "contact support" in response.json()["detail"]
    assert User.objects.filter(email=OWNER).exclude(pk=owner.pk).exists()


class RefusingTheCurrentAddress:
    """An email backend whose provider refuses mail to one address (the owner's)."""

    sent: list = []

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        for message in messages:
            if message.to == [OWNER]:
                raise ConnectionRefusedError("provider refused the owner's address")
            RefusingTheCurrentAddress.sent.append(message)
        return len(messages)


def test_no_change_can_be_confirmed_when_the_current_address_was_not_told(owner, settings):
    from accounts.models import OutboundEmail
    from accounts.outbox import WAITED_FOR_FAILED
    from tests.support.mail import deliver_outbox

    settings.EMAIL_BACKEND = f"{__name__}.RefusingTheCurrentAddress"
    settings.ACCOUNTS_EMAIL_MAX_ATTEMPTS = 1  # the provider refuses the owner's address for good
    RefusingTheCurrentAddress.sent = []
    intruder = api_client()
    access = login(intruder, OWNER)
    response = post_json(intruder, CHANGE_URL, {"new_email": INTRUDER, "password": STRONG_PASSWORD}, **bearer(access))
    assert response.status_code == 202  # the same answer: the notice is sent after it
    deliver_outbox()
    assert RefusingTheCurrentAddress.sent == []  # no confirmation link went out
    notice = OutboundEmail.objects.get(template="email_change_requested")
    confirmation = OutboundEmail.objects.get(template="email_change_confirm")
    assert notice.status == confirmation.status == OutboundEmail.Status.FAILED
    assert confirmation.last_error == WAITED_FOR_FAILED and confirmation.attempts == 0
    assert confirmation.content_encrypted == ""  # the unsent link is gone with it


def test_the_confirmation_goes_out_only_after_the_notice_to_the_current_address(owner, settings):
    from accounts.models import OutboundEmail
    from accounts.outbox import deliver

    settings.EMAIL_BACKEND = f"{__name__}.RefusingTheCurrentAddress"
    RefusingTheCurrentAddress.sent = []
    intruder = api_client()
    access = login(intruder, OWNER)
    post_json(intruder, CHANGE_URL, {"new_email": INTRUDER, "password": STRONG_PASSWORD}, **bearer(access))
    confirmation = OutboundEmail.objects.get(template="email_change_confirm")
    deliver(email_id=confirmation.pk)  # its task runs first: it waits
    confirmation.refresh_from_db()
    assert confirmation.status == OutboundEmail.Status.QUEUED and confirmation.attempts == 0
    assert RefusingTheCurrentAddress.sent == []
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    deliver(email_id=OutboundEmail.objects.get(template="email_change_requested").pk)
    deliver(email_id=confirmation.pk)
    confirmation.refresh_from_db()
    assert confirmation.status == OutboundEmail.Status.SENT
