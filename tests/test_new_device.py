"""New-device sign-in notices: the device cookie, a returning browser recognised without a notice, a new one
telling the owner (when, device, IP, the devices page and a reset), the daily cap, and sign-out keeping it."""

import pytest
from django.conf import settings
from django.test import Client

from accounts.models import KnownDevice
from accounts.tokens import hash_token
from tests.support.accounts import STRONG_PASSWORD
from tests.support.api import LOGOUT_URL, api_client, csrf_header, login, login_response, post_json
from tests.support.mail import device_notices_to, html_of, mails_to
from tests.support.pages import browser, submit

pytestmark = pytest.mark.django_db

ALICE = "alice@example.com"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
PHONE_IP = "198.51.100.23"


def device_cookie(client: Client) -> str | None:
    morsel = client.cookies.get(settings.ACCOUNTS_DEVICE_COOKIE_NAME)
    return morsel.value if morsel is not None and morsel.value else None


def sign_in(client: Client, **extra) -> str:
    return login(client, ALICE, STRONG_PASSWORD, **extra)


def test_the_first_sign_in_is_remembered_silently_with_an_httponly_cookie(user, mailoutbox):
    client = api_client()
    response = login_response(client, ALICE, STRONG_PASSWORD, HTTP_USER_AGENT=FIREFOX)
    assert response.status_code == 200
    cookie = response.cookies[settings.ACCOUNTS_DEVICE_COOKIE_NAME]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    assert cookie["max-age"] == 400 * 24 * 60 * 60
    assert device_notices_to(mailoutbox, ALICE) == []
    # Only the id's hash is kept.
    [device] = KnownDevice.objects.filter(user=user)
    assert device.device_hash == hash_token(cookie.value) and cookie.value not in device.device_hash
    assert device.user_agent == FIREFOX


def test_a_returning_browser_is_recognised_without_a_notice(user, mailoutbox):
    client = api_client()
    sign_in(client)
    first = device_cookie(client)
    sign_in(client)
    sign_in(client)
    assert device_notices_to(mailoutbox, ALICE) == []
    assert device_cookie(client) == first  # the same id, its cookie renewed
    assert KnownDevice.objects.filter(user=user).count() == 1


def test_a_new_browser_tells_the_owner_when_from_what_and_where(user, mailoutbox):
    sign_in(api_client(), HTTP_USER_AGENT=FIREFOX)
    sign_in(api_client(), HTTP_USER_AGENT=SAFARI, REMOTE_ADDR=PHONE_IP)
    [notice] = device_notices_to(mailoutbox, ALICE)
    assert "Safari 18 on iOS" in notice.body
    assert PHONE_IP in notice.body and "UTC" in notice.body
    assert f"{settings.SITE_URL}/accounts/sessions/" in notice.body
    assert f"{settings.SITE_URL}/accounts/password/reset/" in notice.body
    assert "Hello Alice" in notice.body
    assert f'href="{settings.SITE_URL}/accounts/sessions/"' in html_of(notice)
    assert KnownDevice.objects.filter(user=user).count() == 2


def test_a_page_sign_in_counts_the_same(user, mailoutbox):
    sign_in(api_client())
    page = browser(HTTP_USER_AGENT=FIREFOX)
    response = submit(page, "/accounts/login/", {"email": ALICE, "password": STRONG_PASSWORD}, open_first=True)
    assert response.status_code == 302
    assert len(device_notices_to(mailoutbox, ALICE)) == 1
    assert device_cookie(page)
    submit(page, "/accounts/logout/")
    submit(page, "/accounts/login/", {"email": ALICE, "password": STRONG_PASSWORD}, open_first=True)
    assert len(device_notices_to(mailoutbox, ALICE)) == 1  # the same browser again


def test_signing_out_keeps_the_device_cookie(user, mailoutbox):
    sign_in(api_client())
    client = api_client()
    sign_in(client)
    assert post_json(client, LOGOUT_URL, **csrf_header(client)).status_code == 204
    sign_in(client)
    assert len(device_notices_to(mailoutbox, ALICE)) == 1  # only for the second browser's first sign-in


@pytest.mark.parametrize("forged", ["garbage", "x" * 43 + "!", "a" * 400, ""])
def test_a_cookie_not_of_our_making_is_a_new_device_and_gets_a_fresh_id(user, mailoutbox, forged):
    sign_in(api_client())
    client = api_client()
    client.cookies[settings.ACCOUNTS_DEVICE_COOKIE_NAME] = forged
    sign_in(client)
    assert len(device_notices_to(mailoutbox, ALICE)) == 1
    assert device_cookie(client) not in (None, forged)


def test_a_well_formed_id_no_account_has_seen_is_replaced(user, mailoutbox):
    """Someone who planted an id they know in the owner's browser must not get it remembered."""
    sign_in(api_client())
    planted = "P" * 43
    client = api_client()
    client.cookies[settings.ACCOUNTS_DEVICE_COOKIE_NAME] = planted
    sign_in(client)
    assert device_cookie(client) not in (None, planted)
    assert not KnownDevice.objects.filter(device_hash=hash_token(planted)).exists()
    intruder = api_client()
    intruder.cookies[settings.ACCOUNTS_DEVICE_COOKIE_NAME] = planted
    sign_in(intruder)
    assert len(device_notices_to(mailoutbox, ALICE)) == 2  # both were new devices


def test_an_account_that_signed_in_before_is_told_of_its_next_device_even_with_none_known(user, mailoutbox):
    """No silent "first device" for an account that signed in before devices were remembered."""
    from django.utils import timezone

    user.last_login = timezone.now()
    user.save(update_fields=["last_login"])
    sign_in(api_client())
    assert len(device_notices_to(mailoutbox, ALICE)) == 1


def test_the_notice_never_carries_the_raw_user_agent(user, mailoutbox):
    sign_in(api_client())
    sign_in(api_client(), HTTP_USER_AGENT="It was your IT admin, ignore this https://evil.example")
    [notice] = device_notices_to(mailoutbox, ALICE)
    assert "IT admin" not in notice.body and "evil.example" not in notice.body
    assert "Unknown device" in notice.body


def test_an_id_this_account_never_saw_is_new_to_it(user, make_user, mailoutbox):
    make_user(email="bob@example.com")
    sign_in(api_client())  # Alice's usual browser
    shared = api_client()
    login(shared, "bob@example.com", STRONG_PASSWORD)  # Bob's first device: silent
    sign_in(shared)  # the browser is known, but not to Alice
    assert len(device_notices_to(mailoutbox, ALICE)) == 1
    assert device_notices_to(mailoutbox, "bob@example.com") == []


def test_notices_are_capped_per_day_but_every_device_is_remembered(user, settings, mailoutbox):
    settings.ACCOUNTS_NEW_DEVICE_NOTICES_PER_DAY = 2
    for _ in range(5):
        sign_in(api_client())
    assert KnownDevice.objects.filter(user=user).count() == 5
    # The first device is silent; then two notices, then none.
    assert len(device_notices_to(mailoutbox, ALICE)) == 2


def test_an_account_with_mfa_is_told_only_once_the_second_step_is_done(user, mailoutbox):
    from tests.support.mfa import enable_totp, totp_code

    sign_in(api_client())  # the usual browser
    secret = enable_totp(user)
    client = api_client()
    assert login_response(client, ALICE, STRONG_PASSWORD).status_code == 202
    assert device_notices_to(mailoutbox, ALICE) == []  # only the password so far: nobody is signed in
    assert KnownDevice.objects.filter(user=user).count() == 1
    finished = post_json(client, "/api/auth/mfa/verify/", {"code": totp_code(secret)}, **csrf_header(client))
    assert finished.status_code == 200
    assert len(device_notices_to(mailoutbox, ALICE)) == 1


def test_a_failed_sign_in_remembers_nothing_and_tells_no_one(user, mailoutbox):
    sign_in(api_client())
    assert login_response(api_client(), ALICE, "wrong password").status_code == 401
    assert KnownDevice.objects.filter(user=user).count() == 1
    assert device_notices_to(mailoutbox, ALICE) == []


def test_the_notice_is_not_among_the_other_account_emails(user, mailoutbox):
    sign_in(api_client())
    sign_in(api_client())
    assert mails_to(mailoutbox, ALICE) == []


def test_purging_forgets_devices_unseen_for_longer_than_their_cookie_lasts(user):
    import io
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    sign_in(api_client())
    sign_in(api_client())
    old, recent = KnownDevice.objects.filter(user=user).order_by("pk")
    KnownDevice.objects.filter(pk=old.pk).update(
        last_seen_at=timezone.now() - timedelta(seconds=settings.ACCOUNTS_DEVICE_COOKIE_AGE + 60)
    )
    out = io.StringIO()
    call_command("purge_auth_data", stdout=out)
    assert "Deleted 1 known devices." in out.getvalue()
    assert list(KnownDevice.objects.filter(user=user)) == [recent]
