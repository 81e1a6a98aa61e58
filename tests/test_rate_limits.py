"""Rate limits of the account actions, through the pages and the API alike.

Every limit is one counter shared by the page and the API of its action:
sign-in failures per account and per IP, sign-ups per IP, reset and
verification mails per address and per IP, refreshes per device session and
password confirmations per user. A refused request is a 429 (JSON with
``rate_limited`` on the API, a friendly page on the site) with Retry-After, and
leaves a RATE_LIMITED audit event. Also: the key functions (ip_key with IPv6
/64 grouping, address_key as a keyed hash), what each action does when the
counters cannot be reached (allow / deny / skip) and RATELIMIT_ENABLE=False.

The clock is frozen for every test: django-ratelimit counts in fixed windows,
and a window ending in the middle of a test would reset its counter.
"""

import logging
import re
from datetime import UTC, datetime
from html import unescape

import django_ratelimit.core
import pytest
import time_machine
from django.conf import settings as django_settings
from django.forms.forms import NON_FIELD_ERRORS
from django.test import Client
from django_redis.cache import RedisCache

from accounts.audit import email_fingerprint
from accounts.models import (
    DeviceSession,
    EmailVerificationToken,
    PasswordResetToken,
    SecurityEvent,
    User,
)
from accounts.rate_limits import address_key, ip_key
from tests.support.accounts import STRONG_PASSWORD, sha256
from tests.support.api import (
    ME_URL,
    REFRESH_URL,
    access_token_for,
    api_client,
    bearer,
    csrf_header,
    login,
    login_response,
    post_json,
    refresh_cookie_value,
)
from tests.support.mail import delivered, links_in, token_from_link
from tests.support.pages import browser, submit, without_csrf

pytestmark = pytest.mark.django_db

START = datetime(2032, 3, 1, 10, 0, 0, tzinfo=UTC)

ALICE = "alice@example.com"
BOB = "bob@example.com"
UNA = "una@example.com"
NOBODY = "nobody@example.com"
WRONG_PASSWORD = "not the right passphrase at all"
NEW_PASSWORD = "a completely different passphrase"
OTHER_IP = "198.51.100.77"

# Pages
LOGIN_PAGE = "/accounts/login/"
SIGNUP_PAGE = "/accounts/signup/"
SIGNUP_DONE_PAGE = "/accounts/signup/done/"
RESET_PAGE = "/accounts/password/reset/"
RESET_SENT_PAGE = "/accounts/password/reset/sent/"
RESEND_PAGE = "/accounts/verify-email/resend/"
RESEND_SENT_PAGE = "/accounts/verify-email/sent/"
PASSWORD_CHANGE_PAGE = "/accounts/password/change/"
EMAIL_CHANGE_PAGE = "/accounts/email/change/"
DELETE_PAGE = "/accounts/delete/"
REAUTH_PAGE = "/accounts/reauthenticate/"

# API
REGISTER_API = "/api/auth/register/"
RESET_API = "/api/auth/password/reset/"
RESET_CONFIRM_API = "/api/auth/password/reset/confirm/"
RESEND_API = "/api/auth/email/verify/resend/"
REAUTH_API = "/api/auth/reauthenticate/"
PASSWORD_CHANGE_API = "/api/auth/password/change/"
EMAIL_CHANGE_API = "/api/auth/email/change/"

RESET_ACCEPTED = {"detail": "If the address has an account, a reset link is on its way."}
RESEND_ACCEPTED = {"detail": "If the address needs verifying, a new link is on its way."}

_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


# --- Fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clock():
    """A frozen clock, so that no counter window ends in the middle of a test."""
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def api():
    return api_client()


@pytest.fixture
def page():
    return browser()


@pytest.fixture
def unverified(make_user):
    return make_user(email=UNA, name="Una", verified=False)


def set_rates(settings, **rates) -> None:
    settings.ACCOUNTS_RATE_LIMITS = {**settings.ACCOUNTS_RATE_LIMITS, **rates}


def window_of(limit_name: str) -> int:
    """The length in seconds of the window of a limit, from its configured rate ("5/5m" -> 300)."""
    _count, multiplier, unit = re.fullmatch(
        r"(\d+)/(\d*)([smhd])", django_settings.ACCOUNTS_RATE_LIMITS[limit_name]
    ).groups()
    return int(multiplier or 1) * _PERIOD_SECONDS[unit]


def retry_after_of(response, limit_name: str) -> int:
    value = response["Retry-After"]
    assert re.fullmatch(r"[1-9][0-9]*", value), value
    seconds = int(value)
    assert 1 <= seconds <= window_of(limit_name), (seconds, window_of(limit_name))
    return seconds


def assert_api_limited(response, limit_name: str) -> int:
    """The API's 429: the error shape with code rate_limited and an integer Retry-After within the window."""
    assert response.status_code == 429, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "detail"}, body
    assert body["code"] == "rate_limited"
    assert isinstance(body["detail"], str) and "Too many attempts" in body["detail"]
    refresh_cookie = response.cookies.get(django_settings.ACCOUNTS_REFRESH_COOKIE_NAME)
    if limit_name == "refresh_per_session":
        # The refused refresh still leaves the client holding the session's one live token.
        assert refresh_cookie is not None
        assert DeviceSession.objects.live().filter(refresh_token_hash=sha256(refresh_cookie.value)).exists()
    else:
        assert refresh_cookie is None
    return retry_after_of(response, limit_name)


def assert_page_limited(response, limit_name: str) -> int:
    """The site's 429: the friendly page (with a way to reset the password) and Retry-After."""
    assert response.status_code == 429, response.content[:500]
    assert response["Content-Type"].startswith("text/html")
    html = unescape(response.content.decode())
    assert "<h1>Too many attempts</h1>" in html
    assert f'href="{RESET_PAGE}"' in html
    seconds = retry_after_of(response, limit_name)
    minutes = max(1, round(seconds / 60))
    assert f"about {minutes} minute" in html
    return seconds


def limited_events(limit_name: str):
    return SecurityEvent.objects.filter(kind=SecurityEvent.Kind.RATE_LIMITED, detail__limit=limit_name)


def assert_page_sign_in_failed(response) -> None:
    assert response.status_code == 200, response.status_code
    assert response.context["form"].has_error(NON_FIELD_ERRORS, "invalid_credentials")


def assert_api_sign_in_failed(response) -> None:
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "invalid_credentials"


def page_sign_in(client: Client, email: str = ALICE, password: str = STRONG_PASSWORD, **extra):
    return submit(client, LOGIN_PAGE, {"email": email, "password": password}, **extra)


def page_signed_in(email: str = ALICE, password: str = STRONG_PASSWORD) -> Client:
    client = browser()
    response = page_sign_in(client, email, password)
    assert response.status_code == 302, response.content[:500]
    return client


def page_sign_up(client: Client, email: str, **extra):
    return submit(
        client,
        SIGNUP_PAGE,
        {"email": email, "name": "Newton", "password1": STRONG_PASSWORD, "password2": STRONG_PASSWORD},
        **extra,
    )


def api_sign_up(client: Client, email: str, **extra):
    return post_json(client, REGISTER_API, {"email": email, "password": STRONG_PASSWORD, "name": "Newton"}, **extra)


def refresh(client: Client, header: dict):
    return post_json(client, REFRESH_URL, **header)


def without_minutes(html: str) -> str:
    return re.sub(r"about \d+ minutes?", "about N minutes", html)


# --- The keys ---------------------------------------------------------------------------------


def test_ip_key_uses_an_ipv4_address_exactly():
    assert ip_key("203.0.113.7") == "ip4:203.0.113.7"
    assert ip_key("203.0.113.7") != ip_key("203.0.113.8")


def test_ip_key_groups_ipv6_addresses_of_one_64_network():
    first = ip_key("2001:db8:1:2::1")
    assert first == ip_key("2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert first == ip_key("2001:0db8:0001:0002:abcd:0000:0000:0042")
    assert first == "ip6:2001:db8:1:2::"


def test_ip_key_separates_ipv6_addresses_of_different_64_networks():
    assert ip_key("2001:db8:1:2::1") != ip_key("2001:db8:1:3::1")
    assert ip_key("2001:db8:1:2::1") != ip_key("2001:db9:1:2::1")


def test_ip_key_of_an_ipv4_mapped_ipv6_address_is_the_ipv4_key():
    assert ip_key("::ffff:1.2.3.4") == ip_key("1.2.3.4") == "ip4:1.2.3.4"
    assert ip_key("::ffff:1.2.3.4") != ip_key("::ffff:1.2.3.5")


@pytest.mark.parametrize("missing", [None, ""])
def test_ip_key_of_an_unknown_address(missing):
    assert ip_key(missing) == "ip:unknown"


def test_ip_key_refuses_something_that_is_not_an_address():
    with pytest.raises(ValueError):
        ip_key("not-an-ip")


@pytest.mark.parametrize("variant", ["Alice@Example.com", "  alice@example.com  ", "ALICE@EXAMPLE.COM\t"])
def test_address_key_is_the_same_for_case_and_whitespace_variants(variant):
    assert address_key(variant) == address_key(ALICE)


def test_address_key_differs_between_addresses():
    keys = {address_key(address) for address in (ALICE, BOB, "alice@example.org", "alice+1@example.com")}
    assert len(keys) == 4


def test_address_key_contains_no_part_of_the_address():
    key = address_key("margaret.hamilton@apollo-guidance.example")
    assert key.startswith("email:")
    for part in ("margaret", "hamilton", "apollo", "guidance", "example", "@"):
        assert part not in key.lower()


def test_address_key_is_keyed_with_the_secret_key(settings):
    before = address_key(ALICE)
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    assert address_key(ALICE) != before
    assert address_key(ALICE) == "email:" + email_fingerprint(ALICE)


# --- Sign-in failures per account ------------------------------------------------------------


def test_default_limit_five_wrong_api_sign_ins_then_429_even_with_the_right_password(api, user, hash_counter):
    for _ in range(5):
        assert_api_sign_in_failed(login_response(api, ALICE, WRONG_PASSWORD))
    hash_counter.calls = 0
    response = login_response(api, ALICE, STRONG_PASSWORD)
    assert_api_limited(response, "sign_in_failures_per_account")
    assert hash_counter.calls == 0
    assert not DeviceSession.objects.filter(user=user).exists()


def test_default_limit_five_wrong_page_sign_ins_then_429_page_even_with_the_right_password(page, user):
    for _ in range(5):
        assert_page_sign_in_failed(page_sign_in(page, ALICE, WRONG_PASSWORD))
    response = page_sign_in(page, ALICE, STRONG_PASSWORD)
    assert_page_limited(response, "sign_in_failures_per_account")
    assert "_auth_user_id" not in page.session
    assert not DeviceSession.objects.filter(user=user).exists()


def test_four_wrong_sign_ins_still_let_the_right_password_in(api, user):
    for _ in range(4):
        assert_api_sign_in_failed(login_response(api, ALICE, WRONG_PASSWORD))
    assert login_response(api, ALICE, STRONG_PASSWORD).status_code == 200


@pytest.mark.parametrize("blocked_on", ["page", "api"])
def test_page_and_api_sign_in_failures_share_one_counter_per_account(api, page, user, blocked_on):
    for _ in range(3):
        assert_page_sign_in_failed(page_sign_in(page, ALICE, WRONG_PASSWORD))
    for _ in range(2):
        assert_api_sign_in_failed(login_response(api, ALICE, WRONG_PASSWORD))
    if blocked_on == "page":
        assert_page_limited(page_sign_in(page, ALICE, STRONG_PASSWORD), "sign_in_failures_per_account")
    else:
        assert_api_limited(login_response(api, ALICE, STRONG_PASSWORD), "sign_in_failures_per_account")


def test_case_and_whitespace_variants_of_the_address_count_together(api, page, user):
    assert_api_sign_in_failed(login_response(api, "Alice@Example.com", WRONG_PASSWORD))
    assert_api_sign_in_failed(login_response(api, "  alice@example.com ", WRONG_PASSWORD))
    assert_page_sign_in_failed(page_sign_in(page, "ALICE@EXAMPLE.COM", WRONG_PASSWORD))
    assert_page_sign_in_failed(page_sign_in(page, "  aLiCe@example.COM  ", WRONG_PASSWORD))
    assert_api_sign_in_failed(login_response(api, ALICE, WRONG_PASSWORD))
    assert_api_limited(login_response(api, ALICE, STRONG_PASSWORD), "sign_in_failures_per_account")
    assert_api_limited(login_response(api, "ALICE@example.com", STRONG_PASSWORD), "sign_in_failures_per_account")


def test_limit_for_an_unknown_address_behaves_exactly_like_for_a_known_one(user):
    outcomes = {}
    for address in (ALICE, NOBODY):
        api, page = api_client(), browser()
        failures = [login_response(api, address, WRONG_PASSWORD) for _ in range(5)]
        assert all(response.status_code == 401 for response in failures)
        limited_api = login_response(api, address, WRONG_PASSWORD)
        limited_page = page_sign_in(page, address, WRONG_PASSWORD)
        outcomes[address] = {
            "failure_bodies": [response.json() for response in failures],
            "api_status": limited_api.status_code,
            "api_body": limited_api.json(),
            "api_retry_after": assert_api_limited(limited_api, "sign_in_failures_per_account"),
            "page_status": limited_page.status_code,
            "page_html": without_minutes(without_csrf(limited_page.content.decode())),
            "page_retry_after": assert_page_limited(limited_page, "sign_in_failures_per_account"),
        }
    known, unknown = outcomes[ALICE], outcomes[NOBODY]
    for field in ("failure_bodies", "api_status", "api_body", "page_status", "page_html"):
        assert known[field] == unknown[field], field
    for outcome in (known, unknown):
        assert 1 <= outcome["api_retry_after"] <= 300
        assert 1 <= outcome["page_retry_after"] <= 300
    # Neither audit event says whether the address has an account.
    events = limited_events("sign_in_failures_per_account")
    assert {event.user_id for event in events} == {None}
    assert {event.email_hash for event in events} == {email_fingerprint(ALICE), email_fingerprint(NOBODY)}


def test_one_accounts_limit_does_not_block_other_accounts(api, user, make_user):
    make_user(email=BOB, name="Bob")
    for _ in range(5):
        assert_api_sign_in_failed(login_response(api, ALICE, WRONG_PASSWORD))
    assert_api_limited(login_response(api, ALICE, STRONG_PASSWORD), "sign_in_failures_per_account")
    assert login_response(api, BOB, STRONG_PASSWORD).status_code == 200


def test_blocked_sign_in_records_a_rate_limited_event_and_no_failure(api, page, user):
    for _ in range(5):
        assert_api_sign_in_failed(login_response(api, ALICE, WRONG_PASSWORD, HTTP_USER_AGENT="agent/1"))
    failures_before = SecurityEvent.objects.filter(kind=SecurityEvent.Kind.SIGN_IN_FAILED).count()
    assert failures_before == 5
    assert not limited_events("sign_in_failures_per_account").exists()

    assert_api_limited(
        login_response(api, ALICE, STRONG_PASSWORD, HTTP_USER_AGENT="agent/1"), "sign_in_failures_per_account"
    )
    assert_page_limited(page_sign_in(page, ALICE, WRONG_PASSWORD), "sign_in_failures_per_account")

    events = list(limited_events("sign_in_failures_per_account").order_by("id"))
    assert len(events) == 2
    assert events[0].detail == {"limit": "sign_in_failures_per_account"}
    assert events[0].ip_address == "127.0.0.1"
    assert events[0].user_agent == "agent/1"
    assert events[0].email_hash == email_fingerprint(ALICE)
    # The blocked attempts never reached the password check, so they are not failures.
    assert SecurityEvent.objects.filter(kind=SecurityEvent.Kind.SIGN_IN_FAILED).count() == failures_before


def test_blocked_sign_in_does_not_run_the_password_hasher(api, page, user, hash_counter):
    assert_api_sign_in_failed(login_response(api, ALICE, WRONG_PASSWORD))
    assert hash_counter.calls == 1  # the counting hasher is really the one in use
    for _ in range(4):
        assert_api_sign_in_failed(login_response(api, ALICE, WRONG_PASSWORD))
    hash_counter.calls = 0
    assert_api_limited(login_response(api, ALICE, STRONG_PASSWORD), "sign_in_failures_per_account")
    assert_page_limited(page_sign_in(page, ALICE, WRONG_PASSWORD), "sign_in_failures_per_account")
    assert hash_counter.calls == 0


def test_sign_in_counter_resets_after_the_window(api, user, clock):
    for _ in range(5):
        assert_api_sign_in_failed(login_response(api, ALICE, WRONG_PASSWORD))
    assert_api_limited(login_response(api, ALICE, STRONG_PASSWORD), "sign_in_failures_per_account")
    clock.shift(window_of("sign_in_failures_per_account") + 1)
    assert login_response(api, ALICE, STRONG_PASSWORD).status_code == 200
    # A fresh window: five new failures are needed for the next block.
    for _ in range(4):
        assert_api_sign_in_failed(login_response(api, ALICE, WRONG_PASSWORD))
    assert login_response(api, ALICE, STRONG_PASSWORD).status_code == 200


def test_sign_in_stays_refused_until_just_before_retry_after_has_passed(api, user, clock):
    for _ in range(5):
        assert_api_sign_in_failed(login_response(api, ALICE, WRONG_PASSWORD))
    retry_after = assert_api_limited(login_response(api, ALICE, STRONG_PASSWORD), "sign_in_failures_per_account")
    clock.shift(retry_after - 1)
    later = assert_api_limited(login_response(api, ALICE, STRONG_PASSWORD), "sign_in_failures_per_account")
    assert later <= retry_after


def test_sign_in_is_allowed_once_retry_after_seconds_have_passed(api, user, clock):
    """A client that waits exactly the Retry-After it was given must not be refused again."""
    for _ in range(5):
        assert_api_sign_in_failed(login_response(api, ALICE, WRONG_PASSWORD))
    retry_after = assert_api_limited(login_response(api, ALICE, STRONG_PASSWORD), "sign_in_failures_per_account")
    clock.shift(retry_after)
    response = login_response(api, ALICE, STRONG_PASSWORD)
    assert response.status_code == 200, (response.status_code, response.get("Retry-After"))


def test_ten_successful_sign_ins_in_a_row_are_never_limited(api, page, user):
    for attempt in range(10):
        if attempt % 2:
            assert login_response(api, ALICE, STRONG_PASSWORD).status_code == 200
        else:
            assert page_sign_in(browser(), ALICE, STRONG_PASSWORD).status_code == 302
    assert DeviceSession.objects.filter(user=user).count() == 10
    assert not SecurityEvent.objects.filter(kind=SecurityEvent.Kind.RATE_LIMITED).exists()
    # Successes counted nothing: a full five failures are still needed for a block.
    for _ in range(4):
        assert_api_sign_in_failed(login_response(api, ALICE, WRONG_PASSWORD))
    assert login_response(api, ALICE, STRONG_PASSWORD).status_code == 200


def test_a_successful_sign_in_does_not_reset_the_failure_counter(api, user):
    """The code only counts failures and never clears the counter: four failures, a success and
    one more failure make five, and the next attempt is refused even with the right password."""
    for _ in range(4):
        assert_api_sign_in_failed(login_response(api, ALICE, WRONG_PASSWORD))
    assert login_response(api, ALICE, STRONG_PASSWORD).status_code == 200
    assert_api_sign_in_failed(login_response(api, ALICE, WRONG_PASSWORD))
    assert_api_limited(login_response(api, ALICE, STRONG_PASSWORD), "sign_in_failures_per_account")


def test_right_password_of_an_unverified_account_is_not_counted_as_a_failure(api, unverified):
    for _ in range(7):
        response = login_response(api, UNA, STRONG_PASSWORD)
        assert response.status_code == 403
        assert response.json()["code"] == "email_not_verified"
    assert not SecurityEvent.objects.filter(kind=SecurityEvent.Kind.RATE_LIMITED).exists()


# --- Sign-in failures per IP ---------------------------------------------------------------


def test_default_limit_thirty_failures_from_one_ip_then_429_for_any_address(api, user):
    for number in range(30):
        assert_api_sign_in_failed(login_response(api, f"guess{number}@example.com", WRONG_PASSWORD))
    assert_api_limited(login_response(api, ALICE, STRONG_PASSWORD), "sign_in_failures_per_ip")
    assert limited_events("sign_in_failures_per_ip").count() == 1


@pytest.mark.parametrize("blocked_on", ["page", "api"])
def test_page_and_api_sign_in_failures_share_one_counter_per_ip(api, page, user, settings, blocked_on):
    set_rates(settings, sign_in_failures_per_ip="3/m")
    assert_page_sign_in_failed(page_sign_in(page, "one@example.com", WRONG_PASSWORD))
    assert_api_sign_in_failed(login_response(api, "two@example.com", WRONG_PASSWORD))
    assert_page_sign_in_failed(page_sign_in(page, "three@example.com", WRONG_PASSWORD))
    if blocked_on == "page":
        assert_page_limited(page_sign_in(page, ALICE, STRONG_PASSWORD), "sign_in_failures_per_ip")
    else:
        assert_api_limited(login_response(api, ALICE, STRONG_PASSWORD), "sign_in_failures_per_ip")
    event = limited_events("sign_in_failures_per_ip").get()
    assert event.ip_address == "127.0.0.1"


def test_per_ip_limit_does_not_block_other_ips(api, user, settings):
    set_rates(settings, sign_in_failures_per_ip="2/m")
    for number in range(2):
        assert_api_sign_in_failed(login_response(api, f"guess{number}@example.com", WRONG_PASSWORD))
    assert_api_limited(login_response(api, ALICE, STRONG_PASSWORD), "sign_in_failures_per_ip")
    assert login_response(api_client(REMOTE_ADDR=OTHER_IP), ALICE, STRONG_PASSWORD).status_code == 200


def test_ipv6_clients_of_one_64_network_share_the_per_ip_counter(user, settings):
    set_rates(settings, sign_in_failures_per_ip="2/m")
    assert_api_sign_in_failed(
        login_response(api_client(REMOTE_ADDR="2001:db8:5:6::1"), "a@example.com", WRONG_PASSWORD)
    )
    assert_api_sign_in_failed(
        login_response(api_client(REMOTE_ADDR="2001:db8:5:6::2"), "b@example.com", WRONG_PASSWORD)
    )
    assert_api_limited(
        login_response(api_client(REMOTE_ADDR="2001:db8:5:6:ffff::9"), ALICE, STRONG_PASSWORD),
        "sign_in_failures_per_ip",
    )
    # The neighbouring /64 is someone else.
    assert login_response(api_client(REMOTE_ADDR="2001:db8:5:7::1"), ALICE, STRONG_PASSWORD).status_code == 200


def test_ipv4_mapped_ipv6_client_shares_the_counter_of_its_ipv4_address(user, settings):
    set_rates(settings, sign_in_failures_per_ip="2/m")
    assert_api_sign_in_failed(login_response(api_client(REMOTE_ADDR="192.0.2.10"), "a@example.com", WRONG_PASSWORD))
    assert_api_sign_in_failed(
        login_response(api_client(REMOTE_ADDR="::ffff:192.0.2.10"), "b@example.com", WRONG_PASSWORD)
    )
    assert_api_limited(
        login_response(api_client(REMOTE_ADDR="192.0.2.10"), ALICE, STRONG_PASSWORD), "sign_in_failures_per_ip"
    )
    assert login_response(api_client(REMOTE_ADDR="192.0.2.11"), ALICE, STRONG_PASSWORD).status_code == 200


# --- Blocked from signing in, but not from resetting -------------------------------------------


def test_a_user_blocked_from_signing_in_can_still_reset_the_password(api, page, user, clock, mailoutbox):
    for _ in range(5):
        assert_api_sign_in_failed(login_response(api, ALICE, WRONG_PASSWORD))
    assert_page_limited(page_sign_in(page, ALICE, STRONG_PASSWORD), "sign_in_failures_per_account")

    response = submit(page, RESET_PAGE, {"email": ALICE})
    assert response.status_code == 302
    assert response["Location"] == RESET_SENT_PAGE
    api_reset = post_json(api, RESET_API, {"email": ALICE})
    assert api_reset.status_code == 202
    assert len(mailoutbox) == 2

    token = token_from_link(next(link for link in links_in(mailoutbox[-1]) if "/password/reset/" in link))
    done = post_json(api, RESET_CONFIRM_API, {"token": token, "password": NEW_PASSWORD})
    assert done.status_code == 204, done.content
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)

    # The reset does not clear the sign-in counter: the new password works once the window has passed.
    assert_api_limited(login_response(api, ALICE, NEW_PASSWORD), "sign_in_failures_per_account")
    clock.shift(window_of("sign_in_failures_per_account") + 1)
    assert login_response(api, ALICE, NEW_PASSWORD).status_code == 200


# --- Sign-ups per IP ---------------------------------------------------------------------------


def test_default_limit_ten_sign_ups_per_ip_shared_by_page_and_api(api, page, mailoutbox):
    for number in range(10):
        if number % 2:
            assert api_sign_up(api, f"new{number}@example.com").status_code == 202
        else:
            response = page_sign_up(page, f"new{number}@example.com")
            assert response.status_code == 302
            assert response["Location"] == SIGNUP_DONE_PAGE
    assert User.objects.count() == 10
    sent = len(mailoutbox)

    assert_api_limited(api_sign_up(api, "eleven@example.com"), "sign_up_per_ip")
    assert_page_limited(page_sign_up(page, "twelve@example.com"), "sign_up_per_ip")
    assert not User.objects.filter(email__in=["eleven@example.com", "twelve@example.com"]).exists()
    assert len(mailoutbox) == sent
    events = limited_events("sign_up_per_ip")
    assert events.count() == 2
    assert {event.ip_address for event in events} == {"127.0.0.1"}


def test_blocked_sign_up_of_an_existing_address_looks_the_same_and_sends_nothing(api, user, settings, mailoutbox):
    set_rates(settings, sign_up_per_ip="1/h")
    assert api_sign_up(api, "first@example.com").status_code == 202
    sent = len(mailoutbox)
    existing, new = api_sign_up(api, ALICE), api_sign_up(api, "second@example.com")
    assert_api_limited(existing, "sign_up_per_ip")
    assert_api_limited(new, "sign_up_per_ip")
    assert existing.json() == new.json()
    assert len(mailoutbox) == sent


def test_sign_up_limit_is_per_ip(api, settings):
    set_rates(settings, sign_up_per_ip="2/h")
    assert api_sign_up(api, "a@example.com").status_code == 202
    assert api_sign_up(api, "b@example.com").status_code == 202
    assert_api_limited(api_sign_up(api, "c@example.com"), "sign_up_per_ip")
    assert api_sign_up(api_client(REMOTE_ADDR=OTHER_IP), "c@example.com").status_code == 202


def test_sign_up_counter_resets_after_the_window(api, settings, clock):
    set_rates(settings, sign_up_per_ip="1/h")
    assert api_sign_up(api, "a@example.com").status_code == 202
    assert_api_limited(api_sign_up(api, "b@example.com"), "sign_up_per_ip")
    clock.shift(3601)
    assert api_sign_up(api, "b@example.com").status_code == 202


# --- Password-reset mails ---------------------------------------------------------------------


@pytest.mark.parametrize("address", [ALICE, NOBODY], ids=["known", "unknown"])
def test_default_limit_three_reset_mails_per_address_shared_by_page_and_api(api, page, user, mailoutbox, address):
    assert post_json(api, RESET_API, {"email": address}).status_code == 202
    assert submit(page, RESET_PAGE, {"email": address.upper()})["Location"] == RESET_SENT_PAGE
    assert post_json(api, RESET_API, {"email": f"  {address}  "}).status_code == 202
    sent = len(mailoutbox)
    assert sent == (3 if address == ALICE else 0)

    assert_api_limited(post_json(api, RESET_API, {"email": address}), "password_reset_mails_per_address")
    assert_page_limited(submit(page, RESET_PAGE, {"email": address}), "password_reset_mails_per_address")
    assert len(mailoutbox) == sent
    assert PasswordResetToken.objects.count() == (1 if address == ALICE else 0)  # older ones are retired
    events = limited_events("password_reset_mails_per_address")
    assert events.count() == 2
    assert {event.email_hash for event in events} == {email_fingerprint(address)}


def test_reset_mail_limit_per_address_does_not_affect_other_addresses(api, user, make_user, mailoutbox):
    make_user(email=BOB, name="Bob")
    for _ in range(3):
        assert post_json(api, RESET_API, {"email": ALICE}).status_code == 202
    assert_api_limited(post_json(api, RESET_API, {"email": ALICE}), "password_reset_mails_per_address")
    assert post_json(api, RESET_API, {"email": BOB}).status_code == 202
    assert mailoutbox[-1].to == [BOB]


def test_default_limit_twenty_reset_mails_per_ip_shared_by_page_and_api(api, page, user, mailoutbox):
    for number in range(20):
        if number % 2:
            assert post_json(api, RESET_API, {"email": f"someone{number}@example.com"}).status_code == 202
        else:
            assert submit(page, RESET_PAGE, {"email": f"someone{number}@example.com"}).status_code == 302
    assert_api_limited(post_json(api, RESET_API, {"email": ALICE}), "password_reset_mails_per_ip")
    assert_page_limited(submit(page, RESET_PAGE, {"email": ALICE}), "password_reset_mails_per_ip")
    assert mailoutbox == []
    assert limited_events("password_reset_mails_per_ip").count() == 2
    # Another client is not affected.
    assert post_json(api_client(REMOTE_ADDR=OTHER_IP), RESET_API, {"email": ALICE}).status_code == 202
    assert [message.to for message in mailoutbox] == [[ALICE]]


def test_reset_mail_counter_resets_after_the_window(api, user, clock, mailoutbox):
    for _ in range(3):
        post_json(api, RESET_API, {"email": ALICE})
    assert_api_limited(post_json(api, RESET_API, {"email": ALICE}), "password_reset_mails_per_address")
    clock.shift(3601)
    assert post_json(api, RESET_API, {"email": ALICE}).status_code == 202
    assert len(mailoutbox) == 4


# --- Verification mails --------------------------------------------------------------------------


@pytest.mark.parametrize("address", [UNA, NOBODY], ids=["unverified", "unknown"])
def test_default_limit_three_verification_mails_per_address_shared_by_page_and_api(
    api, page, unverified, mailoutbox, address
):
    assert submit(page, RESEND_PAGE, {"email": address})["Location"] == RESEND_SENT_PAGE
    assert post_json(api, RESEND_API, {"email": address.upper()}).status_code == 202
    assert submit(page, RESEND_PAGE, {"email": f" {address} "})["Location"] == RESEND_SENT_PAGE
    sent = len(mailoutbox)
    assert sent == (3 if address == UNA else 0)

    assert_api_limited(post_json(api, RESEND_API, {"email": address}), "verification_mails_per_address")
    assert_page_limited(submit(page, RESEND_PAGE, {"email": address}), "verification_mails_per_address")
    assert len(mailoutbox) == sent
    assert limited_events("verification_mails_per_address").count() == 2


def test_default_limit_twenty_verification_mails_per_ip_shared_by_page_and_api(api, page, unverified, mailoutbox):
    for number in range(20):
        if number % 2:
            assert post_json(api, RESEND_API, {"email": f"someone{number}@example.com"}).status_code == 202
        else:
            assert submit(page, RESEND_PAGE, {"email": f"someone{number}@example.com"}).status_code == 302
    assert_page_limited(submit(page, RESEND_PAGE, {"email": UNA}), "verification_mails_per_ip")
    assert_api_limited(post_json(api, RESEND_API, {"email": UNA}), "verification_mails_per_ip")
    assert mailoutbox == []
    assert limited_events("verification_mails_per_ip").count() == 2
    assert post_json(api_client(REMOTE_ADDR=OTHER_IP), RESEND_API, {"email": UNA}).status_code == 202
    assert [message.to for message in mailoutbox] == [[UNA]]


def test_reset_and_verification_mails_have_separate_counters(api, unverified, mailoutbox):
    for _ in range(3):
        assert post_json(api, RESET_API, {"email": UNA}).status_code == 202
        assert post_json(api, RESEND_API, {"email": UNA}).status_code == 202
    assert len(mailoutbox) == 6
    assert_api_limited(post_json(api, RESET_API, {"email": UNA}), "password_reset_mails_per_address")
    assert_api_limited(post_json(api, RESEND_API, {"email": UNA}), "verification_mails_per_address")
    assert len(mailoutbox) == 6


def test_verification_mail_counter_resets_after_the_window(api, unverified, clock, mailoutbox):
    for _ in range(3):
        post_json(api, RESEND_API, {"email": UNA})
    assert_api_limited(post_json(api, RESEND_API, {"email": UNA}), "verification_mails_per_address")
    clock.shift(3601)
    assert post_json(api, RESEND_API, {"email": UNA}).status_code == 202
    assert len(mailoutbox) == 4


# --- Refreshes per device session ----------------------------------------------------------------


def test_default_limit_sixty_refreshes_per_session_per_minute(api, user):
    login(api)
    header = csrf_header(api)
    for _ in range(60):
        assert refresh(api, header).status_code == 200
    cookie_before = refresh_cookie_value(api)
    refused = refresh(api, header)
    assert_api_limited(refused, "refresh_per_session")
    # The refused refresh issued no access token and ended nothing. The token was rotated
    # (one statement decides), so the answer carries its successor: the client holds the live token.
    assert "access" not in refused.json()
    assert refresh_cookie_value(api) != cookie_before
    row = DeviceSession.objects.get(user=user)
    assert row.revoked_at is None
    assert row.refresh_token_hash == sha256(refresh_cookie_value(api))


def test_refused_refresh_keeps_the_cookie_usable_after_the_window(api, user, settings, clock):
    set_rates(settings, refresh_per_session="2/m")
    access = login(api)
    header = csrf_header(api)
    assert refresh(api, header).status_code == 200
    assert refresh(api, header).status_code == 200
    assert_api_limited(refresh(api, header), "refresh_per_session")
    assert api.get(ME_URL, **bearer(access)).status_code == 200
    clock.shift(61)
    assert refresh(api, header).status_code == 200


def test_grace_window_answers_count_against_the_refresh_limit(api, user, settings):
    set_rates(settings, refresh_per_session="3/m")
    login(api)
    header = csrf_header(api)
    first_token = refresh_cookie_value(api)
    assert refresh(api, header).status_code == 200  # 1: rotation
    current_token = refresh_cookie_value(api)
    cookie = django_settings.ACCOUNTS_REFRESH_COOKIE_NAME
    for _ in range(2):  # 2 and 3: a concurrent tab presenting the just-replaced token
        api.cookies[cookie] = first_token
        response = refresh(api, header)
        assert response.status_code == 200
        assert response.cookies[cookie].value == current_token
    api.cookies[cookie] = current_token
    limited = refresh(api, header)
    assert_api_limited(limited, "refresh_per_session")
    live_token = limited.cookies[cookie].value
    # A retry of the refused refresh is a grace answer for the token it rotated: refused too,
    # with the same live token in the cookie.
    api.cookies[cookie] = current_token
    retried = refresh(api, header)
    assert_api_limited(retried, "refresh_per_session")
    assert retried.cookies[cookie].value == live_token


def test_refresh_limit_is_per_device_session(user, settings):
    set_rates(settings, refresh_per_session="1/m")
    laptop, phone = api_client(), api_client()
    login(laptop)
    login(phone)
    laptop_header, phone_header = csrf_header(laptop), csrf_header(phone)
    assert refresh(laptop, laptop_header).status_code == 200
    assert_api_limited(refresh(laptop, laptop_header), "refresh_per_session")
    assert refresh(phone, phone_header).status_code == 200


def test_page_sign_in_session_is_limited_when_its_refresh_cookie_is_used(page, user, settings):
    """The refresh cookie a page sign-in hands to the site's SPA counts against the same limit."""
    set_rates(settings, refresh_per_session="2/m")
    assert page_sign_in(page, ALICE, STRONG_PASSWORD).status_code == 302
    header = csrf_header(page)
    assert refresh(page, header).status_code == 200
    assert refresh(page, header).status_code == 200
    assert_api_limited(refresh(page, header), "refresh_per_session")


def test_blocked_refresh_records_a_rate_limited_event_for_the_user(api, user, settings):
    set_rates(settings, refresh_per_session="1/m")
    login(api, HTTP_USER_AGENT="spa/1")
    header = csrf_header(api)
    assert refresh(api, header).status_code == 200
    assert_api_limited(post_json(api, REFRESH_URL, HTTP_USER_AGENT="spa/2", **header), "refresh_per_session")
    event = limited_events("refresh_per_session").get()
    assert event.user == user
    assert event.ip_address == "127.0.0.1"
    assert event.user_agent == "spa/2"


# --- Password confirmation per user --------------------------------------------------------------


def test_default_limit_five_password_confirmations_then_429_even_with_the_right_password(user):
    api = api_client()
    access = access_token_for(user)
    for _ in range(5):
        response = post_json(
            api,
            PASSWORD_CHANGE_API,
            {"current_password": WRONG_PASSWORD, "new_password": NEW_PASSWORD},
            **bearer(access),
        )
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_password"
    response = post_json(
        api, PASSWORD_CHANGE_API, {"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD}, **bearer(access)
    )
    assert_api_limited(response, "password_confirmation_per_user")
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)


def test_password_confirmations_of_every_action_on_page_and_api_share_one_counter(user, mailoutbox):
    api = api_client()
    access = access_token_for(user)
    page = page_signed_in()

    response = post_json(
        api, PASSWORD_CHANGE_API, {"current_password": WRONG_PASSWORD, "new_password": NEW_PASSWORD}, **bearer(access)
    )
    assert response.json()["code"] == "invalid_password"  # 1: change password (API)
    response = post_json(
        api, EMAIL_CHANGE_API, {"new_email": "new@example.com", "password": WRONG_PASSWORD}, **bearer(access)
    )
    assert response.json()["code"] == "invalid_password"  # 2: change email (API)
    response = submit(page, DELETE_PAGE, {"password": WRONG_PASSWORD, "confirm": "on"})
    assert response.status_code == 200 and response.context["form"].has_error("password", "invalid_password")  # 3
    response = submit(page, REAUTH_PAGE, {"password": WRONG_PASSWORD})
    assert response.status_code == 200 and response.context["form"].has_error("password", "invalid_password")  # 4
    assert (
        post_json(api, REAUTH_API, {"password": STRONG_PASSWORD}, **bearer(access)).status_code == 204
    )  # 5: counts too

    assert_page_limited(
        submit(
            page,
            PASSWORD_CHANGE_PAGE,
            {"current_password": STRONG_PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        ),
        "password_confirmation_per_user",
    )
    assert_page_limited(
        submit(page, EMAIL_CHANGE_PAGE, {"new_email": "new@example.com", "password": STRONG_PASSWORD}),
        "password_confirmation_per_user",
    )
    assert_api_limited(
        api.delete(ME_URL, {"password": STRONG_PASSWORD}, content_type="application/json", **bearer(access)),
        "password_confirmation_per_user",
    )
    assert_api_limited(
        post_json(api, REAUTH_API, {"password": STRONG_PASSWORD}, **bearer(access)), "password_confirmation_per_user"
    )
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)
    assert user.email == ALICE
    assert not EmailVerificationToken.objects.filter(user=user).exists()
    assert mailoutbox == []


def test_password_confirmation_limit_is_per_user(user, make_user):
    bob = make_user(email=BOB, name="Bob")
    api = api_client()
    alice_access, bob_access = access_token_for(user), access_token_for(bob)
    for _ in range(5):
        post_json(api, REAUTH_API, {"password": WRONG_PASSWORD}, **bearer(alice_access))
    assert_api_limited(
        post_json(api, REAUTH_API, {"password": STRONG_PASSWORD}, **bearer(alice_access)),
        "password_confirmation_per_user",
    )
    assert post_json(api, REAUTH_API, {"password": STRONG_PASSWORD}, **bearer(bob_access)).status_code == 204


def test_password_confirmation_limit_follows_the_user_across_sessions(user):
    api = api_client()
    first, second = access_token_for(user), access_token_for(user)
    for _ in range(5):
        post_json(api, REAUTH_API, {"password": WRONG_PASSWORD}, **bearer(first))
    assert_api_limited(
        post_json(api, REAUTH_API, {"password": STRONG_PASSWORD}, **bearer(second)), "password_confirmation_per_user"
    )


def test_password_confirmation_counter_resets_after_the_window(user, clock):
    api = api_client()
    access = access_token_for(user)
    for _ in range(5):
        post_json(api, REAUTH_API, {"password": WRONG_PASSWORD}, **bearer(access))
    assert_api_limited(
        post_json(api, REAUTH_API, {"password": STRONG_PASSWORD}, **bearer(access)), "password_confirmation_per_user"
    )
    clock.shift(61)
    assert post_json(api, REAUTH_API, {"password": STRONG_PASSWORD}, **bearer(access)).status_code == 204


def test_blocked_password_confirmation_records_a_rate_limited_event(user):
    api = api_client()
    access = access_token_for(user)
    for _ in range(5):
        post_json(api, REAUTH_API, {"password": WRONG_PASSWORD}, **bearer(access))
    assert_api_limited(
        post_json(api, REAUTH_API, {"password": STRONG_PASSWORD}, **bearer(access)), "password_confirmation_per_user"
    )
    event = limited_events("password_confirmation_per_user").get()
    assert event.detail == {"limit": "password_confirmation_per_user"}


def test_blocked_password_confirmation_event_names_the_user_and_the_client(user):
    """A per-user limit's event must say whose account was being guessed at, and from where."""
    api = api_client(HTTP_USER_AGENT="thief/1")
    access = access_token_for(user)
    for _ in range(5):
        post_json(api, REAUTH_API, {"password": WRONG_PASSWORD}, **bearer(access))
    assert_api_limited(
        post_json(api, REAUTH_API, {"password": WRONG_PASSWORD}, **bearer(access)), "password_confirmation_per_user"
    )
    event = limited_events("password_confirmation_per_user").get()
    assert event.user_id == user.pk
    assert event.ip_address == "127.0.0.1"
    assert event.user_agent == "thief/1"


# --- Counters unreachable ----------------------------------------------------------------------


class _RaisingCache:
    """A cache backend whose server is down."""

    def add(self, *args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    incr = get = add


class _SilentCache:
    """A cache backend that answers nothing (as redis-py does for some failures)."""

    def add(self, *args, **kwargs):
        return False

    def incr(self, *args, **kwargs):
        return None

    def get(self, key, default=None, **kwargs):
        return None


def _redis_down() -> RedisCache:
    """The production backend (django-redis, with config/settings.py's timeouts) where no Redis listens."""
    options = {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1}
    return RedisCache("redis://127.0.0.1:1/0", {"KEY_PREFIX": "rate-limits-redis-down", "OPTIONS": options})


@pytest.fixture(params=["get_usage_raises", "cache_raises", "cache_answers_nothing", "redis_down"])
def counters_unreachable(request, monkeypatch, caplog):
    """The rate-limit counters cannot be read; every other use of the cache still works."""
    if request.param == "get_usage_raises":

        def unreachable(*args, **kwargs):
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

        monkeypatch.setattr("accounts.rate_limits.get_usage", unreachable)
        monkeypatch.setattr("accounts.rate_limits._redis_usage", unreachable)  # its one-round-trip twin
    else:
        broken = {"cache_raises": _RaisingCache, "cache_answers_nothing": _SilentCache, "redis_down": _redis_down}
        monkeypatch.setattr(django_ratelimit.core, "caches", {"default": broken[request.param]()})
    caplog.set_level(logging.ERROR, logger="accounts.rate_limits")
    return caplog


def rate_limit_errors(caplog, limit_name: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "accounts.rate_limits"
        and record.levelno == logging.ERROR
        and limit_name in record.getMessage()
    ]


def test_sign_in_goes_ahead_when_the_counters_are_unreachable(api, page, user, settings, counters_unreachable):
    set_rates(settings, sign_in_failures_per_account="1/5m", sign_in_failures_per_ip="1/m")
    for _ in range(3):
        assert_api_sign_in_failed(login_response(api, ALICE, WRONG_PASSWORD))
        assert_page_sign_in_failed(page_sign_in(page, ALICE, WRONG_PASSWORD))
    assert login_response(api, ALICE, STRONG_PASSWORD).status_code == 200
    assert page_sign_in(page, ALICE, STRONG_PASSWORD).status_code == 302
    assert rate_limit_errors(counters_unreachable, "sign_in_failures_per_account")
    assert rate_limit_errors(counters_unreachable, "sign_in_failures_per_ip")
    assert not SecurityEvent.objects.filter(kind=SecurityEvent.Kind.RATE_LIMITED).exists()


def test_sign_up_goes_ahead_when_the_counters_are_unreachable(api, page, settings, counters_unreachable, mailoutbox):
    set_rates(settings, sign_up_per_ip="1/h")
    assert api_sign_up(api, "a@example.com").status_code == 202
    assert api_sign_up(api, "b@example.com").status_code == 202
    assert page_sign_up(page, "c@example.com")["Location"] == SIGNUP_DONE_PAGE
    assert User.objects.filter(email__in=["a@example.com", "b@example.com", "c@example.com"]).count() == 3
    assert len(mailoutbox) == 3  # sign-up's verification mail is not one of the limited mails
    assert rate_limit_errors(counters_unreachable, "sign_up_per_ip")


def test_refresh_goes_ahead_when_the_counters_are_unreachable(api, user, settings, counters_unreachable):
    set_rates(settings, refresh_per_session="1/m")
    login(api)
    header = csrf_header(api)
    for _ in range(3):
        assert refresh(api, header).status_code == 200
    assert rate_limit_errors(counters_unreachable, "refresh_per_session")


def test_password_confirmation_is_refused_when_the_counters_are_unreachable(user, counters_unreachable, mailoutbox):
    api = api_client()
    access = access_token_for(user)
    page = page_signed_in()
    response = post_json(api, REAUTH_API, {"password": STRONG_PASSWORD}, **bearer(access))
    assert assert_api_limited(response, "password_confirmation_per_user") == 60
    response = post_json(
        api, PASSWORD_CHANGE_API, {"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD}, **bearer(access)
    )
    assert_api_limited(response, "password_confirmation_per_user")
    assert_api_limited(
        api.delete(ME_URL, {"password": STRONG_PASSWORD}, content_type="application/json", **bearer(access)),
        "password_confirmation_per_user",
    )
    assert_page_limited(submit(page, REAUTH_PAGE, {"password": STRONG_PASSWORD}), "password_confirmation_per_user")
    assert_page_limited(
        submit(page, EMAIL_CHANGE_PAGE, {"new_email": "new@example.com", "password": STRONG_PASSWORD}),
        "password_confirmation_per_user",
    )
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)
    assert user.email == ALICE
    assert mailoutbox == []
    assert rate_limit_errors(counters_unreachable, "password_confirmation_per_user")


def test_reset_request_answers_as_usual_but_sends_nothing_when_the_counters_are_unreachable(
    api, page, user, counters_unreachable
):
    response = submit(page, RESET_PAGE, {"email": ALICE})
    assert response.status_code == 302
    assert response["Location"] == RESET_SENT_PAGE
    response = post_json(api, RESET_API, {"email": ALICE})
    assert response.status_code == 202
    assert response.json() == RESET_ACCEPTED
    assert delivered() == []
    assert not PasswordResetToken.objects.exists()
    assert rate_limit_errors(counters_unreachable, "password_reset_mails_per_address")


def test_verification_request_answers_as_usual_but_sends_nothing_when_the_counters_are_unreachable(
    api, page, unverified, counters_unreachable
):
    response = submit(page, RESEND_PAGE, {"email": UNA})
    assert response.status_code == 302
    assert response["Location"] == RESEND_SENT_PAGE
    response = post_json(api, RESEND_API, {"email": UNA})
    assert response.status_code == 202
    assert response.json() == RESEND_ACCEPTED
    assert delivered() == []
    assert not EmailVerificationToken.objects.exists()
    assert rate_limit_errors(counters_unreachable, "verification_mails_per_address")


def test_with_the_counters_reachable_the_same_requests_do_send(api, page, user, unverified, mailoutbox):
    """The counterpart of the two tests above: the same answers, and this time the mails go out."""
    assert submit(page, RESET_PAGE, {"email": ALICE})["Location"] == RESET_SENT_PAGE
    assert post_json(api, RESET_API, {"email": ALICE}).json() == RESET_ACCEPTED
    assert submit(page, RESEND_PAGE, {"email": UNA})["Location"] == RESEND_SENT_PAGE
    assert post_json(api, RESEND_API, {"email": UNA}).json() == RESEND_ACCEPTED
    assert [message.to for message in mailoutbox] == [[ALICE], [ALICE], [UNA], [UNA]]


# --- Rate limiting switched off ------------------------------------------------------------------


@pytest.fixture
def rate_limiting_off(settings, caplog):
    settings.RATELIMIT_ENABLE = False
    caplog.set_level(logging.ERROR, logger="accounts.rate_limits")
    yield
    assert not [record for record in caplog.records if record.name == "accounts.rate_limits"]
    assert not SecurityEvent.objects.filter(kind=SecurityEvent.Kind.RATE_LIMITED).exists()


def test_switched_off_sign_in_is_never_limited(api, page, user, rate_limiting_off):
    for _ in range(4):
        assert_api_sign_in_failed(login_response(api, ALICE, WRONG_PASSWORD))
        assert_page_sign_in_failed(page_sign_in(page, ALICE, WRONG_PASSWORD))
    assert login_response(api, ALICE, STRONG_PASSWORD).status_code == 200


def test_switched_off_sign_up_and_mails_are_never_limited(api, page, user, settings, rate_limiting_off, mailoutbox):
    set_rates(settings, sign_up_per_ip="1/h")
    for number in range(3):
        assert api_sign_up(api, f"new{number}@example.com").status_code == 202
    for _ in range(5):
        assert post_json(api, RESET_API, {"email": ALICE}).status_code == 202
        assert post_json(api, RESEND_API, {"email": "new0@example.com"}).status_code == 202
    assert len([message for message in mailoutbox if message.to == [ALICE]]) == 5
    assert len([message for message in mailoutbox if message.to == ["new0@example.com"]]) == 6


def test_switched_off_refresh_and_password_confirmation_are_never_limited(api, user, settings, rate_limiting_off):
    set_rates(settings, refresh_per_session="1/m")
    access = login(api)
    header = csrf_header(api)
    for _ in range(3):
        assert refresh(api, header).status_code == 200
    for _ in range(7):
        response = post_json(api, REAUTH_API, {"password": WRONG_PASSWORD}, **bearer(access))
        assert response.status_code == 400
    assert post_json(api, REAUTH_API, {"password": STRONG_PASSWORD}, **bearer(access)).status_code == 204
