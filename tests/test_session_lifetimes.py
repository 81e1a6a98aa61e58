"""One definition of a live device session, seen through the pages and the API: a page session lives
exactly as long as its device session (idle and absolute lifetimes, ended elsewhere, user deactivated),
page use counts for the idle clock (written at most once a minute), a cached "live" never outlives the
moment the session ends by itself, and DeviceSession.objects.live() and DeviceSession.is_live() agree."""

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.utils import timezone

from accounts.exceptions import ReauthenticationRequired
from accounts.flows.account_status import deactivate_user, reactivate_user
from accounts.flows.device_sessions import (
    live_sessions,
    start_device_session,
)
from accounts.flows.reauthentication import SensitiveAction, record_authentication, require_recent_authentication
from accounts.flows.signin import DEVICE_SESSION_KEY, PAGE_USE_INTERVAL
from accounts.models import DeviceSession
from accounts.revocation import is_session_live
from accounts.tokens import generate_token, hash_token
from tests.support.accounts import STRONG_PASSWORD, force_page_login
from tests.support.api import ME_URL, api_client, bearer, post_json, refresh
from tests.support.api import assert_api_error as assert_error
from tests.support.api import login as api_login
from tests.support.pages import browser, submit

pytestmark = pytest.mark.django_db

ALICE = "alice@example.com"
BOB = "bob@example.com"

LOGIN = "/accounts/login/"
ACCOUNT = "/accounts/"
SESSIONS = "/accounts/sessions/"
END_OTHERS = "/accounts/sessions/end-others/"
SESSIONS_API = "/api/auth/sessions/"
REVOKE_OTHERS_API = "/api/auth/sessions/revoke-others/"
REAUTHENTICATE_API = "/api/auth/reauthenticate/"

START = datetime(2031, 5, 1, 9, 0, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
IDLE = timedelta(days=7)
ABSOLUTE = timedelta(days=30)
ACCESS_TOKEN_LIFETIME = timedelta(minutes=5)
# Short session lifetimes for the API tests, so that one access token (an hour) outlives its session.
SHORT_LIFETIME = timedelta(minutes=30)
LONG_ACCESS_TOKEN_LIFETIME = timedelta(hours=1)


@pytest.fixture(autouse=True)
def _default_lifetimes(settings):
    """Pin the lifetimes this file reasons about: environment variables could change them."""
    settings.ACCOUNTS_REFRESH_IDLE_LIFETIME = int(IDLE.total_seconds())
    settings.ACCOUNTS_REFRESH_ABSOLUTE_LIFETIME = int(ABSOLUTE.total_seconds())
    settings.JWT_ACCESS_TOKEN_LIFETIME = int(ACCESS_TOKEN_LIFETIME.total_seconds())


# --- Pages: the clock fixture (conftest.py) is stopped at START and ages Redis entries alike ---------


def sign_in(client: Client, email: str = ALICE) -> str:
    """Sign in through the login form; return the id of the device session it opened."""
    response = submit(client, LOGIN, {"email": email, "password": STRONG_PASSWORD})
    assert response.status_code == 302, response.content
    return client.session[DEVICE_SESSION_KEY]


def signed_in_browser(email: str = ALICE) -> tuple[Client, str]:
    client = browser()
    return client, sign_in(client, email)


def assert_signed_in(client: Client) -> None:
    response = client.get(ACCOUNT)
    assert response.status_code == 200, response.status_code


def assert_signed_out(client: Client) -> None:
    """The next page request goes to sign-in, and the page session itself is gone: flushed,
    not merely unable to load its user (which reactivating the user would undo)."""
    response = client.get(ACCOUNT)
    assert response.status_code == 302, response.status_code
    assert urlsplit(response["Location"]).path == LOGIN
    assert SESSION_KEY not in client.session


def listed_on_sessions_page(client: Client) -> set[str]:
    response = client.get(SESSIONS)
    assert response.status_code == 200, response.status_code
    return {str(row["session"].pk) for row in response.context["rows"]}


# --- API -----------------------------------------------------------------------------------------


def api_device(email: str = ALICE) -> tuple[Client, str, str]:
    """Sign in through the API; return the client (holding the refresh cookie), the access
    token and the id of the device session."""
    client = api_client()
    access = api_login(client, email)
    response = client.get(SESSIONS_API, **bearer(access))
    assert response.status_code == 200, response.content
    (current,) = [row["id"] for row in response.json() if row["current"]]
    return client, access, current


def listed_by_api(access: str) -> set[str]:
    response = api_client().get(SESSIONS_API, **bearer(access))
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()}


def row(session_id) -> DeviceSession:
    return DeviceSession.objects.select_related("user").get(pk=session_id)


def live_ids() -> set[str]:
    return {str(pk) for pk in DeviceSession.objects.live().values_list("pk", flat=True)}


# --- 1. A page sign-in left unused for the idle lifetime ------------------------------------------


def test_page_sign_in_still_works_just_before_the_idle_lifetime(user, clock):
    laptop, laptop_session = signed_in_browser()
    now = clock.at(IDLE - SECOND)
    _, phone_access, _ = api_device()
    assert laptop_session in listed_by_api(phone_access)
    assert_signed_in(laptop)
    # The request counted as use: the idle clock starts again.
    assert row(laptop_session).last_used_at == now


def test_page_sign_in_unused_for_the_idle_lifetime_is_signed_out_and_no_longer_listed(user, clock):
    laptop, laptop_session = signed_in_browser()
    clock.at(IDLE)
    _, phone_access, phone_session = api_device()
    desktop, desktop_session = signed_in_browser()
    # Listed nowhere, even before the laptop comes back: the lists use the same definition.
    assert listed_by_api(phone_access) == {phone_session, desktop_session}
    assert listed_on_sessions_page(desktop) == {phone_session, desktop_session}
    assert_signed_out(laptop)
    # The refused request did not count as use: it must not revive the session.
    assert row(laptop_session).last_used_at == START
    assert laptop_session not in live_ids()


def test_the_sessions_page_of_an_idle_expired_page_sign_in_goes_to_sign_in(user, clock):
    laptop, _ = signed_in_browser()
    clock.at(IDLE + SECOND)
    response = laptop.get(SESSIONS)
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == LOGIN


# --- 2. Page use counts for the idle clock, never for the absolute one ----------------------------


def test_page_used_every_two_days_stays_signed_in_past_the_idle_lifetime(user, clock):
    laptop, laptop_session = signed_in_browser()
    for day in range(2, 29, 2):
        now = clock.at(day * DAY)
        assert_signed_in(laptop)
        assert row(laptop_session).last_used_at == now
    assert laptop_session in live_ids()


def test_idle_lifetime_runs_from_the_last_page_use(user, clock):
    laptop, _ = signed_in_browser()
    clock.at(3 * DAY)
    assert_signed_in(laptop)
    clock.at(3 * DAY + IDLE)
    assert_signed_out(laptop)


def test_page_used_daily_is_signed_out_at_the_absolute_lifetime(user, clock):
    laptop, laptop_session = signed_in_browser()
    for day in range(1, 30):
        clock.at(day * DAY)
        assert_signed_in(laptop)
    # Used a second before the end: "live" is now cached, but for no longer than that second.
    clock.at(ABSOLUTE - SECOND)
    assert_signed_in(laptop)
    clock.at(ABSOLUTE)
    assert_signed_out(laptop)
    assert row(laptop_session).expires_at == START + ABSOLUTE


# --- 3. Page use is written at most once a minute -------------------------------------------------


def test_page_use_writes_last_used_at_at_most_once_a_minute(user, clock):
    laptop, laptop_session = signed_in_browser()
    assert PAGE_USE_INTERVAL == 60
    clock.at(10 * SECOND)
    assert_signed_in(laptop)
    assert row(laptop_session).last_used_at == START  # the sign-in was the last use
    first = clock.at(61 * SECOND)
    assert_signed_in(laptop)
    assert row(laptop_session).last_used_at == first
    clock.at(71 * SECOND)  # ten seconds later: not written again
    assert_signed_in(laptop)
    assert row(laptop_session).last_used_at == first
    second = clock.at(first - START + 61 * SECOND)
    assert_signed_in(laptop)
    assert row(laptop_session).last_used_at == second


def test_page_use_interval_is_sixty_seconds_to_the_second(user, clock):
    laptop, laptop_session = signed_in_browser()
    clock.at(59 * SECOND)
    assert_signed_in(laptop)
    assert row(laptop_session).last_used_at == START
    now = clock.at(60 * SECOND)
    assert_signed_in(laptop)
    assert row(laptop_session).last_used_at == now


# --- 4. A page session ended from another device --------------------------------------------------


def test_page_session_ended_through_the_api_from_another_device_is_signed_out_at_its_next_request(user, clock):
    laptop, laptop_session = signed_in_browser()
    assert_signed_in(laptop)  # "live" is now in the cache: ending the session must overwrite it
    phone, phone_access, phone_session = api_device()
    # The phone signed in just now: recent enough to end another session without the password.
    response = phone.delete(f"{SESSIONS_API}{laptop_session}/", **bearer(phone_access))
    assert response.status_code == 204, response.content
    assert listed_by_api(phone_access) == {phone_session}
    assert_signed_out(laptop)
    assert row(laptop_session).revoked_reason == DeviceSession.EndReason.ENDED_BY_USER


def test_ending_a_page_session_without_recent_authentication_is_refused_and_keeps_it(user, clock, settings):
    settings.JWT_ACCESS_TOKEN_LIFETIME = int(LONG_ACCESS_TOKEN_LIFETIME.total_seconds())
    laptop, laptop_session = signed_in_browser()
    phone, phone_access, _ = api_device()
    clock.at(6 * MINUTE)  # past the five-minute window since the phone signed in
    response = phone.delete(f"{SESSIONS_API}{laptop_session}/", **bearer(phone_access))
    assert_error(response, 403, "reauthentication_required")
    assert_signed_in(laptop)
    assert laptop_session in listed_by_api(phone_access)


def test_another_user_cannot_end_a_page_session(user, make_user, clock):
    make_user(email=BOB, name="Bob")
    laptop, laptop_session = signed_in_browser()
    bobs_phone, bobs_access, _ = api_device(BOB)
    response = bobs_phone.delete(f"{SESSIONS_API}{laptop_session}/", **bearer(bobs_access))
    assert_error(response, 404, "not_found")
    assert_signed_in(laptop)


# --- 5. A page session without a device session ---------------------------------------------------


def _ended_device_session(user) -> str:
    issued = start_device_session(user=user, ip_address="127.0.0.1", user_agent="pytest")
    DeviceSession.objects.filter(pk=issued.session.pk).update(revoked_at=timezone.now(), revoked_reason="logout")
    return str(issued.session.pk)


@pytest.mark.parametrize(
    "device_session",
    [
        pytest.param(lambda user: None, id="missing"),
        pytest.param(lambda user: "not-a-uuid", id="not-a-uuid"),
        pytest.param(lambda user: str(uuid.uuid4()), id="unknown"),
        pytest.param(_ended_device_session, id="ended"),
    ],
)
def test_page_session_without_a_live_device_session_is_not_honoured(user, device_session):
    client = browser()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    value = device_session(user)
    if value is not None:
        session = client.session
        session[DEVICE_SESSION_KEY] = value
        session.save()
    assert_signed_out(client)


def test_page_session_with_a_live_device_session_is_honoured(user):
    # The control for the test above: the same sign-in, with a device session, works.
    client = browser()
    force_page_login(client, user)
    assert_signed_in(client)


# --- 6. A deactivated user ------------------------------------------------------------------------
#
# Two ways in. The flow (accounts.flows.account_status.deactivate_user) ends every device session and
# publishes the end to the cache, so the pages are signed out at once. A direct save() (a shell, a
# data migration) publishes nothing: then what bounds a cached "live" is its lifetime in the cache,
# at most one access-token lifetime plus a minute. Both matter: the first is the normal path, the
# second shows the cache can never keep a deactivated user signed in for longer than that.


def deactivate_directly(user) -> None:
    user.is_active = False
    user.save(update_fields=["is_active"])


def reactivate_directly(user) -> None:
    user.is_active = True
    user.save(update_fields=["is_active"])


def longest_cached_live() -> timedelta:
    # accounts.revocation: "live" is cached for at most one access-token lifetime plus a minute.
    return timedelta(seconds=django_settings.JWT_ACCESS_TOKEN_LIFETIME + 60)


def test_directly_deactivated_user_is_signed_out_of_the_pages(user, clock):
    laptop, _ = signed_in_browser()
    deactivate_directly(user)
    assert_signed_out(laptop)
    # Signed out for good: reactivating does not bring the old page session back.
    reactivate_directly(user)
    assert_signed_out(laptop)


def test_directly_deactivated_user_with_a_cached_live_is_signed_out_once_that_entry_expires(user, clock):
    laptop, laptop_session = signed_in_browser()
    assert_signed_in(laptop)  # caches "live"
    deactivate_directly(user)
    clock.advance(longest_cached_live() + SECOND)
    assert_signed_out(laptop)
    reactivate_directly(user)
    assert_signed_out(laptop)
    # The device session itself was never ended: it is simply live again, as the definition says.
    assert row(laptop_session).revoked_at is None


def test_user_deactivated_through_the_flow_is_signed_out_at_once_despite_a_cached_live(user, clock):
    laptop, laptop_session = signed_in_browser()
    assert_signed_in(laptop)  # caches "live"
    deactivate_user(user=user)
    assert_signed_out(laptop)
    reactivate_user(user=user)
    assert_signed_out(laptop)
    assert row(laptop_session).revoked_reason == DeviceSession.EndReason.USER_DEACTIVATED


# --- 7. The API: access tokens and refresh after a lifetime ---------------------------------------


def test_access_token_is_refused_at_the_idle_lifetime_even_though_live_was_cached(user, clock, settings):
    settings.ACCOUNTS_REFRESH_IDLE_LIFETIME = int(SHORT_LIFETIME.total_seconds())
    settings.JWT_ACCESS_TOKEN_LIFETIME = int(LONG_ACCESS_TOKEN_LIFETIME.total_seconds())
    _, access, _ = api_device()
    clock.at(SHORT_LIFETIME - SECOND)
    assert api_client().get(ME_URL, **bearer(access)).status_code == 200  # caches "live"
    clock.at(SHORT_LIFETIME)
    # session_ended, not access_token_invalid: the token itself is still good for half an hour.
    assert_error(api_client().get(ME_URL, **bearer(access)), 401, "session_ended")


def test_access_token_is_refused_at_the_absolute_lifetime_even_though_used_and_cached(user, clock, settings):
    settings.ACCOUNTS_REFRESH_ABSOLUTE_LIFETIME = int(SHORT_LIFETIME.total_seconds())
    settings.JWT_ACCESS_TOKEN_LIFETIME = int(LONG_ACCESS_TOKEN_LIFETIME.total_seconds())
    phone, _, _ = api_device()
    clock.at(SHORT_LIFETIME - 10 * MINUTE)
    response = refresh(phone)  # use: it moves the idle end, not the absolute one
    assert response.status_code == 200, response.content
    access = response.json()["access"]
    clock.at(SHORT_LIFETIME - SECOND)
    assert api_client().get(ME_URL, **bearer(access)).status_code == 200  # caches "live"
    clock.at(SHORT_LIFETIME)
    assert_error(api_client().get(ME_URL, **bearer(access)), 401, "session_ended")
    assert_error(refresh(phone), 401, "refresh_token_invalid")


def test_refresh_from_a_page_sign_in_is_refused_at_the_idle_lifetime(user, clock):
    # The login form also sets the refresh cookie, for an SPA on this site: one device session.
    laptop, laptop_session = signed_in_browser()
    clock.at(IDLE)
    assert_error(refresh(laptop), 401, "refresh_token_invalid")
    assert_signed_out(laptop)
    assert row(laptop_session).revoked_reason == ""  # simply over, not treated as theft


def test_refresh_just_before_the_idle_lifetime_keeps_the_pages_signed_in(user, clock):
    laptop, _ = signed_in_browser()
    clock.at(IDLE - SECOND)
    assert refresh(laptop).status_code == 200
    # The SPA's use counted for the device session the pages depend on.
    clock.at(IDLE + DAY)
    assert_signed_in(laptop)


# --- 8. Recent authentication is no use to a session that is not live ------------------------------


ENDING_OTHERS = SensitiveAction.END_OTHER_SESSIONS


def test_require_recent_authentication_refuses_an_idle_expired_session_authenticated_seconds_ago(user, clock, settings):
    settings.ACCOUNTS_REFRESH_IDLE_LIFETIME = int(SHORT_LIFETIME.total_seconds())
    session_id = start_device_session(user=user, ip_address=None, user_agent="pytest").session.pk
    clock.at(SHORT_LIFETIME - 10 * SECOND)
    record_authentication(session_id=session_id)  # password entry: not use for the idle clock
    require_recent_authentication(session_id=session_id, action=ENDING_OTHERS)  # within the window and live
    clock.at(SHORT_LIFETIME)
    # Still well within the five-minute window, but the session is no longer live.
    with pytest.raises(ReauthenticationRequired):
        require_recent_authentication(session_id=session_id, action=ENDING_OTHERS)


def test_ending_other_sessions_through_the_api_from_an_idle_expired_session_is_refused(user, clock, settings):
    settings.ACCOUNTS_REFRESH_IDLE_LIFETIME = int(SHORT_LIFETIME.total_seconds())
    settings.JWT_ACCESS_TOKEN_LIFETIME = int(LONG_ACCESS_TOKEN_LIFETIME.total_seconds())
    phone, phone_access, _ = api_device()
    clock.at(SHORT_LIFETIME - 10 * SECOND)
    response = post_json(phone, REAUTHENTICATE_API, {"password": STRONG_PASSWORD}, **bearer(phone_access))
    assert response.status_code == 204, response.content
    laptop, laptop_session = signed_in_browser()
    clock.at(SHORT_LIFETIME)
    # What is observable: the access token check comes first and refuses the ended session.
    assert_error(post_json(phone, REVOKE_OTHERS_API, **bearer(phone_access)), 401, "session_ended")
    assert row(laptop_session).revoked_at is None
    assert_signed_in(laptop)


def test_ending_other_sessions_from_an_idle_expired_page_session_signs_it_out_and_ends_nothing(user, clock):
    laptop, _ = signed_in_browser()
    clock.at(IDLE)
    desktop, desktop_session = signed_in_browser()
    response = submit(laptop, END_OTHERS)
    # To sign-in, not to re-authentication: the page session is over, whatever the window says.
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == LOGIN
    assert row(desktop_session).revoked_at is None
    assert_signed_in(desktop)
    assert_signed_out(laptop)


# --- 9. One definition: the query and the row agree ----------------------------------------------


def make_row(user, *, last_used: datetime, expires: datetime, revoked: datetime | None = None) -> DeviceSession:
    return DeviceSession.objects.create(
        user=user,
        created_at=min(last_used, expires - ABSOLUTE),
        last_used_at=last_used,
        expires_at=expires,
        refresh_token_hash=hash_token(generate_token()),
        revoked_at=revoked,
        revoked_reason="logout" if revoked else "",
    )


CASES = {
    # name: (last used, absolute end, revoked, owner active, live?)
    "fresh": (START, START + ABSOLUTE, None, True, True),
    "a second from both ends": (START - IDLE + SECOND, START + SECOND, None, True, True),
    "revoked": (START, START + ABSOLUTE, START - SECOND, True, False),
    "idle, exactly at the limit": (START - IDLE, START + ABSOLUTE, None, True, False),
    "idle, past the limit": (START - IDLE - SECOND, START + ABSOLUTE, None, True, False),
    "absolute, exactly at the limit": (START, START, None, True, False),
    "absolute, past the limit": (START, START - SECOND, None, True, False),
    "owner inactive": (START, START + ABSOLUTE, None, False, False),
}


@pytest.mark.parametrize("case", CASES)
def test_live_query_and_is_live_agree(make_user, clock, case):
    last_used, expires, revoked, active, expected = CASES[case]
    session = make_row(make_user(is_active=active), last_used=last_used, expires=expires, revoked=revoked)
    loaded = row(session.pk)
    assert DeviceSession.objects.live().filter(pk=session.pk).exists() is expected
    assert DeviceSession.objects.live(START).filter(pk=session.pk).exists() is expected
    assert loaded.is_live() is expected
    assert loaded.is_live(START) is expected
    assert (session in live_sessions(user=loaded.user)) is expected
    # And the cache in front of them (empty here) answers the same.
    assert is_session_live(session.pk) is expected


@pytest.mark.parametrize(
    "last_used, expires",
    [
        pytest.param(START, START + ABSOLUTE, id="idle end first"),
        pytest.param(START, START + DAY, id="absolute end first"),
    ],
)
def test_both_definitions_switch_at_ends_at(user, last_used, expires):
    session = row(make_row(user, last_used=last_used, expires=expires).pk)
    assert session.ends_at == min(expires, last_used + IDLE)
    just_before = session.ends_at - timedelta(microseconds=1)
    for moment, expected in [(just_before, True), (session.ends_at, False)]:
        assert DeviceSession.objects.live(moment).filter(pk=session.pk).exists() is expected
        assert session.is_live(moment) is expected


def test_both_definitions_follow_the_idle_setting(user, settings):
    session = row(make_row(user, last_used=START, expires=START + ABSOLUTE).pk)
    settings.ACCOUNTS_REFRESH_IDLE_LIFETIME = 3600
    for moment, expected in [(START + timedelta(seconds=3599), True), (START + timedelta(seconds=3600), False)]:
        assert DeviceSession.objects.live(moment).filter(pk=session.pk).exists() is expected
        assert session.is_live(moment) is expected


def test_signing_in_again_in_the_same_browser_ends_the_device_session_it_replaces(make_user):
    """Its refresh cookie is replaced, so nothing could use it; it must not linger in the devices list."""
    user = make_user()
    page = Client()
    for _ in range(2):
        assert page.post("/accounts/login/", {"email": user.email, "password": STRONG_PASSWORD}).status_code == 302
    first, second = DeviceSession.objects.filter(user=user).order_by("created_at")
    assert first.revoked_at is not None and first.revoked_reason == "ended_by_user"
    assert second.revoked_at is None
    assert [session.pk for session in live_sessions(user=user)] == [second.pk]
    assert page.get("/accounts/").status_code == 200
