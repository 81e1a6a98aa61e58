"""The client's IP address: REMOTE_ADDR, or the X-Forwarded-For entry of the outermost trusted proxy.

ACCOUNTS_TRUSTED_PROXY_COUNT=0 (the default) ignores X-Forwarded-For entirely;
with N trusted proxies the address is the N-th entry from the right, so
whatever a client writes further left never changes the answer. The chosen
address is what the per-IP rate limits count, and what device sessions and the
audit log record.
"""

from datetime import UTC, datetime

import pytest
from django.test import RequestFactory

from accounts.client_info import ClientInfo, client_ip
from accounts.models import DeviceSession, SecurityEvent
from tests.support.accounts import STRONG_PASSWORD
from tests.support.api import REFRESH_URL, api_client, csrf_header, login, login_response, post_json, session_of

ALICE = "alice@example.com"
WRONG_PASSWORD = "not the right passphrase at all"
PROXY = "10.0.0.2"
CLIENT = "203.0.113.9"
START = datetime(2032, 4, 1, 8, 0, 0, tzinfo=UTC)

# A clock stopped at START (conftest.py), so that no rate-limit window ends in the middle of a test.
pytestmark = pytest.mark.usefixtures("clock")


def request_from(remote_addr: str | None = PROXY, forwarded_for: str | None = None, **extra):
    meta = dict(extra)
    if forwarded_for is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded_for
    request = RequestFactory().get("/", **meta)
    if remote_addr is None:
        del request.META["REMOTE_ADDR"]
    else:
        request.META["REMOTE_ADDR"] = remote_addr
    return request


def trust(settings, proxies: int) -> None:
    settings.ACCOUNTS_TRUSTED_PROXY_COUNT = proxies


# --- No trusted proxy (the default) ----------------------------------------------------------------


def test_default_trusts_no_proxy():
    from django.conf import settings

    assert settings.ACCOUNTS_TRUSTED_PROXY_COUNT == 0


def test_default_returns_remote_addr():
    assert client_ip(request_from("198.51.100.7")) == "198.51.100.7"


@pytest.mark.parametrize(
    "forged",
    [CLIENT, f"1.1.1.1, {CLIENT}", "2001:db8::1", "garbage", "", " , ,"],
)
def test_default_ignores_x_forwarded_for_entirely(settings, forged):
    trust(settings, 0)
    assert client_ip(request_from("198.51.100.7", forged)) == "198.51.100.7"


def test_default_returns_an_ipv6_remote_addr_normalised():
    assert client_ip(request_from("2001:0DB8:0000:0000:0000:0000:0000:0001")) == "2001:db8::1"


@pytest.mark.parametrize("remote", [None, "", "unix:/run/app.sock", "not-an-ip"])
def test_missing_or_invalid_remote_addr_is_none(remote):
    assert client_ip(request_from(remote)) is None


def test_a_negative_proxy_count_is_treated_as_none(settings):
    trust(settings, -1)
    assert client_ip(request_from("198.51.100.7", CLIENT)) == "198.51.100.7"


# --- Trusted proxies ----------------------------------------------------------------------------------


def test_one_trusted_proxy_returns_the_rightmost_entry(settings):
    trust(settings, 1)
    assert client_ip(request_from(PROXY, CLIENT)) == CLIENT


def test_two_trusted_proxies_return_the_second_entry_from_the_right(settings):
    trust(settings, 2)
    assert client_ip(request_from(PROXY, f"{CLIENT}, 10.0.0.1")) == CLIENT
    assert client_ip(request_from(PROXY, f"192.0.2.1, {CLIENT}, 10.0.0.1")) == CLIENT


@pytest.mark.parametrize(
    "client_written",
    ["1.2.3.4", "1.2.3.4, 5.6.7.8", "garbage", "2001:db8::bad", "127.0.0.1, 10.0.0.1", ", ,", "unknown, 999.1.1.1"],
)
def test_entries_the_client_prepends_never_change_the_answer(settings, client_written):
    trust(settings, 1)
    assert client_ip(request_from(PROXY, f"{client_written}, {CLIENT}")) == CLIENT
    trust(settings, 2)
    assert client_ip(request_from(PROXY, f"{client_written}, {CLIENT}, 10.0.0.1")) == CLIENT


@pytest.mark.parametrize(
    "proxies, forwarded", [(1, None), (1, ""), (1, " , "), (2, CLIENT), (3, f"{CLIENT}, 10.0.0.1")]
)
def test_fewer_entries_than_trusted_proxies_fall_back_to_remote_addr(settings, proxies, forwarded):
    trust(settings, proxies)
    assert client_ip(request_from(PROXY, forwarded)) == PROXY


@pytest.mark.parametrize(
    "invalid", ["not-an-ip", "203.0.113.9:443", "[2001:db8::1]", "999.0.0.1", "unknown", "203.0.113.9/24", "_hidden"]
)
def test_an_invalid_entry_falls_back_to_remote_addr(settings, invalid):
    trust(settings, 1)
    assert client_ip(request_from(PROXY, invalid)) == PROXY
    trust(settings, 2)
    assert client_ip(request_from(PROXY, f"{invalid}, 10.0.0.1")) == PROXY


@pytest.mark.parametrize("forwarded", [f"  {CLIENT}  ", f"1.1.1.1,{CLIENT}", f"1.1.1.1 ,  {CLIENT}\t", f" , ,{CLIENT}"])
def test_whitespace_and_empty_entries_are_ignored(settings, forwarded):
    trust(settings, 1)
    assert client_ip(request_from(PROXY, forwarded)) == CLIENT


@pytest.mark.parametrize(
    "entry, expected",
    [
        ("2001:db8::1", "2001:db8::1"),
        ("2001:0DB8:0:0::0001", "2001:db8::1"),
        ("::ffff:198.51.100.3", "::ffff:c633:6403"),
        ("::1", "::1"),
    ],
)
def test_ipv6_entries_are_returned_normalised(settings, entry, expected):
    trust(settings, 1)
    assert client_ip(request_from(PROXY, f"1.1.1.1, {entry}")) == expected


def test_ipv6_entry_with_two_proxies(settings):
    trust(settings, 2)
    assert client_ip(request_from("::1", "2001:db8:aa::5, fd00::2")) == "2001:db8:aa::5"


def test_client_info_carries_the_chosen_ip_and_the_user_agent(settings):
    trust(settings, 1)
    info = ClientInfo.from_request(request_from(PROXY, f"6.6.6.6, {CLIENT}", HTTP_USER_AGENT="curl/8"))
    assert info == ClientInfo(ip_address=CLIENT, user_agent="curl/8")


# --- What the chosen address is used for -------------------------------------------------------------


@pytest.mark.django_db
def test_a_forged_header_never_buys_extra_sign_in_attempts():
    """Default settings (30 failures per minute per IP): a new forged X-Forwarded-For on
    every attempt does not make the attempts come from new addresses."""
    client = api_client(REMOTE_ADDR="192.0.2.50")
    for number in range(30):
        response = login_response(
            client, f"guess{number}@example.com", WRONG_PASSWORD, HTTP_X_FORWARDED_FOR=f"10.{number}.0.1"
        )
        assert response.status_code == 401, (number, response.content)
    response = login_response(client, ALICE, WRONG_PASSWORD, HTTP_X_FORWARDED_FOR="10.200.0.1")
    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60
    event = SecurityEvent.objects.get(kind=SecurityEvent.Kind.RATE_LIMITED)
    assert event.detail == {"limit": "sign_in_failures_per_ip"}
    assert event.ip_address == "192.0.2.50"


@pytest.mark.django_db
def test_behind_a_trusted_proxy_the_per_ip_limit_counts_the_forwarded_client(settings):
    trust(settings, 1)
    settings.ACCOUNTS_RATE_LIMITS = {**settings.ACCOUNTS_RATE_LIMITS, "sign_in_failures_per_ip": "3/m"}
    client = api_client(REMOTE_ADDR=PROXY)  # every request arrives from the proxy
    for number in range(3):
        forged = f"10.{number}.0.1, {CLIENT}"  # the client varies what it writes; the proxy appends its address
        assert (
            login_response(
                client, f"guess{number}@example.com", WRONG_PASSWORD, HTTP_X_FORWARDED_FOR=forged
            ).status_code
            == 401
        )
    blocked = login_response(client, "guess9@example.com", WRONG_PASSWORD, HTTP_X_FORWARDED_FOR=f"8.8.8.8, {CLIENT}")
    assert blocked.status_code == 429
    # Another client behind the same proxy has its own counter.
    other = login_response(client, "guess9@example.com", WRONG_PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.20")
    assert other.status_code == 401
    assert SecurityEvent.objects.get(kind=SecurityEvent.Kind.RATE_LIMITED).ip_address == CLIENT


@pytest.mark.django_db
def test_sign_in_behind_a_trusted_proxy_records_the_forwarded_client(user, settings):
    trust(settings, 1)
    client = api_client(REMOTE_ADDR=PROXY)
    failed = login_response(client, ALICE, WRONG_PASSWORD, HTTP_X_FORWARDED_FOR=f"6.6.6.6, {CLIENT}")
    assert failed.status_code == 401
    access = login(client, ALICE, STRONG_PASSWORD, HTTP_X_FORWARDED_FOR=f"6.6.6.6, {CLIENT}", HTTP_USER_AGENT="ua/1")
    session = session_of(access)
    assert session.ip_address == CLIENT
    assert session.user_agent == "ua/1"
    succeeded = SecurityEvent.objects.get(kind=SecurityEvent.Kind.SIGN_IN_SUCCEEDED)
    assert succeeded.ip_address == CLIENT
    assert SecurityEvent.objects.get(kind=SecurityEvent.Kind.SIGN_IN_FAILED).ip_address == CLIENT
    assert not SecurityEvent.objects.filter(ip_address__in=[PROXY, "6.6.6.6"]).exists()


@pytest.mark.django_db
def test_refresh_behind_a_trusted_proxy_updates_the_session_to_the_forwarded_client(user, settings):
    trust(settings, 1)
    client = api_client(REMOTE_ADDR=PROXY)
    access = login(client, ALICE, STRONG_PASSWORD, HTTP_X_FORWARDED_FOR=CLIENT)
    response = post_json(client, REFRESH_URL, HTTP_X_FORWARDED_FOR="6.6.6.6, 2001:db8::77", **csrf_header(client))
    assert response.status_code == 200
    assert session_of(access).ip_address == "2001:db8::77"


@pytest.mark.django_db
def test_sign_in_without_a_trusted_proxy_records_remote_addr_not_the_forged_header(user):
    client = api_client(REMOTE_ADDR="192.0.2.50")
    access = login(client, ALICE, STRONG_PASSWORD, HTTP_X_FORWARDED_FOR=CLIENT)
    assert session_of(access).ip_address == "192.0.2.50"
    assert SecurityEvent.objects.get(kind=SecurityEvent.Kind.SIGN_IN_SUCCEEDED).ip_address == "192.0.2.50"


@pytest.mark.django_db
def test_page_sign_in_behind_a_trusted_proxy_records_the_forwarded_client(user, client, settings):
    trust(settings, 2)
    response = client.post(
        "/accounts/login/",
        {"email": ALICE, "password": STRONG_PASSWORD},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=f"6.6.6.6, {CLIENT}, 10.0.0.1",
    )
    assert response.status_code == 302
    assert DeviceSession.objects.get(user=user).ip_address == CLIENT
