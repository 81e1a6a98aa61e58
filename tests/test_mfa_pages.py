"""Two-factor authentication on the pages (sign-in's second step, the security page) and in the admin."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import pyotp
import pytest
import segno
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, Permission
from django.test import Client

from accounts.audit import EventKind
from accounts.flows.second_factor import has_mfa, recovery_codes_left, totp_secret_of
from accounts.flows.signin import DEVICE_SESSION_KEY
from accounts.models import DeviceSession, PendingSignIn, RecoveryCode, SecurityEvent, TotpAuthenticator, User
from accounts.views import PENDING_SIGN_IN_KEY
from tests.support.accounts import STRONG_PASSWORD, force_page_login
from tests.support.html import parse_page, text_of
from tests.support.mail import mails_to
from tests.support.mfa import enable_totp, totp_code
from tests.support.pages import browser, csrf_in, submit

pytestmark = pytest.mark.django_db

START = datetime(2031, 6, 2, 9, 0, 0, tzinfo=UTC)
WINDOW = 5 * 60
PAST_THE_WINDOW = timedelta(seconds=WINDOW + 1)

ALICE = "alice@example.com"
LOGIN = "/accounts/login/"
LOGIN_MFA = "/accounts/login/mfa/"
ACCOUNT = "/accounts/"
SECURITY = "/accounts/security/"
TOTP_SETUP = "/accounts/security/totp/"
TOTP_DISABLE = "/accounts/security/totp/disable/"
RECOVERY_CODES = "/accounts/security/recovery-codes/"
REAUTHENTICATE = "/accounts/reauthenticate/"
SESSIONS = "/accounts/sessions/"
ADMIN = "/admin/"
ADMIN_LOGIN = "/admin/login/"
USERS = "/admin/accounts/user/"

STAFF_IP = "192.0.2.71"
STAFF_UA = "SupportDesk/4.0 (X11; Linux)"
WRONG_CODE = "000000"
RECOVERY_SHAPE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")
TWO_FACTOR_WORDS = "password + one-time code (two-factor)"


# --- Helpers ---------------------------------------------------------------------------------------


@dataclass
class Enrolled:
    """An account with a confirmed authenticator app: its secret and its ten recovery codes."""

    user: User
    secret: str
    codes: list[str]


def enrol(user: User) -> Enrolled:
    secret, codes = enable_totp(user, recovery_codes=True)
    return Enrolled(user=user, secret=secret, codes=codes)


def another_code(secret: str) -> str:
    """A code of the secret other than the current one's (the next time step's, still accepted)."""
    return totp_code(secret, steps=1)


def where(response) -> tuple[str, dict[str, list[str]]]:
    """The path and the query of a redirect's Location."""
    assert response.status_code == 302, (response.status_code, response.content[:500])
    location = urlsplit(response["Location"])
    return location.path, parse_qs(location.query)


def with_query(path: str, **query: str) -> str:
    return f"{path}?{urlencode(query)}" if query else path


def page_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def password_step(client: Client, email: str = ALICE, password: str = STRONG_PASSWORD, next_url: str | None = None):
    """The sign-in page's form, as a browser posts it (with the hidden next of the page it came from)."""
    data = {"email": email, "password": password}
    if next_url:
        data["next"] = next_url
    path = with_query(LOGIN, next=next_url) if next_url else LOGIN
    return submit(client, path, data)


def code_step(client: Client, code: str, next_url: str | None = None):
    """The second step's form."""
    data = {"code": code}
    if next_url:
        data["next"] = next_url
    path = with_query(LOGIN_MFA, next=next_url) if next_url else LOGIN_MFA
    return submit(client, path, data)


def sign_in_with_code(client: Client, email: str, code: str, next_url: str | None = None):
    response = password_step(client, email, next_url=next_url)
    assert where(response)[0] == LOGIN_MFA
    return code_step(client, code, next_url=next_url)


def is_signed_in(client: Client) -> bool:
    response = client.get(ACCOUNT)
    if response.status_code == 200:
        return True
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == LOGIN
    return False


def reauthenticate_with_code(client: Client, code: str, next_url: str):
    path = with_query(REAUTHENTICATE, next=next_url, factor="code")
    return submit(client, path, {"code": code, "proof": "code", "next": next_url})


def assert_sent_to_code_reauthentication(response, next_url: str) -> None:
    assert where(response) == (REAUTHENTICATE, {"next": [next_url], "factor": ["code"]})


def assert_form_error(response, message: str) -> None:
    assert response.status_code == 200, response.status_code
    assert response.context["form"].has_error("code"), response.context["form"].errors
    assert escape(message) in response.content.decode()


def secret_on(response) -> str:
    match = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', response.content.decode())
    assert match is not None, "no key on the setup page"
    return match.group(1)


def codes_on(response) -> list[str]:
    block = re.search(r'<ul class="recovery-codes" id="recovery-codes">(.*?)</ul>', response.content.decode(), re.S)
    assert block is not None, "no recovery codes on the page"
    return re.findall(r"<code>([^<]+)</code>", block.group(1))


def download_of(response) -> tuple[str, str]:
    """The recovery codes' download link: its decoded text and its file name."""
    (link,) = [dict(attrs) for tag, attrs in parse_page(response).tags if tag == "a" and "download" in dict(attrs)]
    prefix = "data:text/plain;charset=utf-8,"
    assert link["href"].startswith(prefix), link["href"][:60]
    return unquote(link["href"][len(prefix) :]), link["download"]


def start_setup(client: Client):
    """Press "Set up an authenticator app" on the security page; the setup page it leads to."""
    response = submit(client, TOTP_SETUP, {"start": "1"})
    assert where(response) == (TOTP_SETUP, {})
    page = client.get(TOTP_SETUP)
    assert page.status_code == 200
    return page


def events(kind: str, **filters) -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(kind=kind, **filters).order_by("id"))


def amr_cells(response) -> list[str]:
    return [text_of(cell) for cell in re.findall(r'<dd class="amr">(.*?)</dd>', response.content.decode(), re.S)]


def mfa_cell(response, email: str) -> str:
    """The 2FA column of ``email``'s row on the user changelist: "yes" or "no"."""
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", response.content.decode(), re.S):
        if f">{email}<" in row:
            cell = re.search(r'<td class="field-mfa">(.*?)</td>', row, re.S)
            assert cell is not None, row
            icon = re.search(r"icon-(yes|no)\.svg", cell.group(1))
            assert icon is not None, cell.group(1)
            return icon.group(1)
    raise AssertionError(f"{email} is not listed")


def listed(response) -> list[str]:
    assert response.status_code == 200, response.status_code
    return sorted(user.email for user in response.context["cl"].result_list)


def own_forms(response) -> list:
    """The page's forms but the header's sign-out form."""
    return [form for form in parse_page(response).forms if form.attrs.get("action") != "/accounts/logout/"]


def visible_inputs(response) -> list[dict]:
    """The attributes of every form control a person types into or ticks."""
    return [attrs for attrs in parse_page(response).inputs if attrs.get("type") not in {"hidden", "submit"}]


def visible_names(response) -> list[str]:
    return [attrs["name"] for attrs in visible_inputs(response)]


def action_names(response) -> set[str]:
    assert response.status_code == 200
    form = response.context["action_form"]
    return set() if form is None else {value for value, _label in form.fields["action"].choices if value}


def run_action(client: Client, action: str, targets: list[User]):
    page = client.get(USERS)
    assert page.status_code == 200
    return client.post(
        USERS,
        {
            "action": action,
            "_selected_action": [target.pk for target in targets],
            "csrfmiddlewaretoken": csrf_in(page.content.decode()),
        },
        follow=True,
    )


def staff_browser(member: User) -> Client:
    """A staff member's browser, signed in with an authenticator app on a two-factor session."""
    client = browser(REMOTE_ADDR=STAFF_IP, HTTP_USER_AGENT=STAFF_UA)
    force_page_login(client, member)
    return client


def opens_admin(client: Client) -> bool:
    response = client.get(ADMIN)
    if response.status_code == 200:
        assert "Todo support" in response.content.decode()
        return True
    assert response.status_code == 302
    return False


# --- Fixtures --------------------------------------------------------------------------------------


@pytest.fixture
def alice(user) -> Enrolled:
    """Alice, an ordinary user with an authenticator app and ten recovery codes."""
    return enrol(user)


@pytest.fixture
def signed_in_alice(alice) -> Client:
    """Alice's browser, signed in with her password only (a session that proved no second factor)."""
    client = browser()
    force_page_login(client, alice.user, second_factor=False)
    return client


@pytest.fixture
def plain(make_user) -> User:
    """Bob, without a second factor."""
    return make_user(email="bob@example.com", name="Bob")


@pytest.fixture
def plain_browser(plain) -> Client:
    client = browser()
    force_page_login(client, plain)
    return client


@pytest.fixture
def support(make_user) -> User:
    """A Support member also allowed to reset two-factor authentication (not a superuser)."""
    member = make_user(email="sam@support.example", name="Sam Support", is_staff=True)
    member.groups.add(Group.objects.get(name="Support"))
    member.user_permissions.add(Permission.objects.get(codename="reset_user_mfa"))
    return member


@pytest.fixture
def desk(support) -> Client:
    return staff_browser(support)


@pytest.fixture
def colleague(make_user) -> Enrolled:
    """Another staff member, with an authenticator app."""
    member = make_user(email="cat@support.example", name="Cat Colleague", is_staff=True)
    member.groups.add(Group.objects.get(name="Support"))
    return enrol(member)


@pytest.fixture
def superuser(make_user) -> User:
    return make_user(email="root@support.example", name="Root", is_staff=True, is_superuser=True)


@pytest.fixture
def root(superuser) -> Client:
    return staff_browser(superuser)


# --- Signing in: the second step -------------------------------------------------------------------


def test_the_right_password_of_an_mfa_account_leads_to_the_code_page_and_signs_nothing_in(alice):
    client = browser()
    response = password_step(client, next_url=SESSIONS)
    assert where(response) == (LOGIN_MFA, {"next": [SESSIONS]})
    assert django_settings.ACCOUNTS_REFRESH_COOKIE_NAME not in response.cookies
    assert not is_signed_in(client)
    assert DeviceSession.objects.filter(user=alice.user).count() == 0
    assert events(EventKind.SIGN_IN_SUCCEEDED) == []
    # The browser's session holds a handle of the pending sign-in, nothing that names the account.
    handle = client.session[PENDING_SIGN_IN_KEY]
    assert isinstance(handle, str) and len(handle) >= 32
    assert str(alice.user.pk) != handle and ALICE not in handle
    assert PendingSignIn.objects.filter(user=alice.user, completed_at__isnull=True).count() == 1


def test_the_code_page_asks_for_one_code_and_carries_next(alice):
    client = browser()
    password_step(client, next_url=SESSIONS)
    response = client.get(with_query(LOGIN_MFA, next=SESSIONS))
    assert response.status_code == 200
    page = parse_page(response)
    assert page.scripts == 0
    visible = visible_inputs(response)
    assert [attrs["name"] for attrs in visible] == ["code"]
    assert visible[0]["autocomplete"] == "one-time-code"
    assert visible[0]["id"] in page.label_targets
    assert "value" not in visible[0]
    (form,) = own_forms(response)
    assert form.data()["next"] == [SESSIONS]
    assert f"{LOGIN}?next={SESSIONS}" in page.links  # "Start again"


def test_the_right_app_code_signs_in_and_goes_on_to_next(alice):
    client = browser()
    password_step(client, next_url=SESSIONS)
    response = code_step(client, totp_code(alice.secret), next_url=SESSIONS)
    assert where(response) == (SESSIONS, {})
    refresh = response.cookies[django_settings.ACCOUNTS_REFRESH_COOKIE_NAME]
    assert refresh.value and refresh["httponly"] and refresh["path"] == django_settings.ACCOUNTS_REFRESH_COOKIE_PATH
    assert is_signed_in(client)
    assert PENDING_SIGN_IN_KEY not in client.session
    session = DeviceSession.objects.get(user=alice.user)
    assert str(session.pk) == client.session[DEVICE_SESSION_KEY]
    assert session.amr == ["pwd", "otp", "mfa"]
    assert session.second_factor_at is not None
    (signed_in,) = events(EventKind.SIGN_IN_SUCCEEDED)
    assert signed_in.user_id == alice.user.pk


def test_without_next_the_second_step_goes_to_the_account_page(alice):
    client = browser()
    assert where(password_step(client)) == (LOGIN_MFA, {})
    assert where(code_step(client, totp_code(alice.secret))) == (ACCOUNT, {})


@pytest.mark.parametrize("target", ["https://evil.example/phish", "//evil.example/phish"])
def test_an_off_site_next_is_dropped_on_both_steps(alice, target):
    client = browser()
    assert where(password_step(client, next_url=target)) == (LOGIN_MFA, {})
    response = code_step(client, totp_code(alice.secret), next_url=target)
    assert response["Location"] == ACCOUNT


def test_a_recovery_code_signs_in_once_and_the_owner_is_told(alice, mailoutbox):
    client = browser()
    typed = alice.codes[3].lower().replace("-", " ")  # as someone might type it
    response = sign_in_with_code(client, ALICE, typed)
    assert where(response) == (ACCOUNT, {})
    assert is_signed_in(client)
    assert recovery_codes_left(alice.user) == 9
    (notice,) = mails_to(mailoutbox, ALICE)
    assert "recovery code" in (notice.subject + notice.body).lower()
    assert "Unused recovery codes: 9 of 10." in text_of(client.get(SECURITY))
    # The same code never works again.
    again = sign_in_with_code(browser(), ALICE, alice.codes[3])
    assert_form_error(again, "That code is not correct.")


def test_a_wrong_code_shows_the_form_again_and_signs_nothing_in(alice, mailoutbox):
    client = browser()
    password_step(client)
    response = code_step(client, WRONG_CODE)
    assert_form_error(response, "That code is not correct. Try the newest code from your app, or a recovery code.")
    assert not is_signed_in(client)
    assert DeviceSession.objects.filter(user=alice.user).count() == 0
    assert len(events(EventKind.MFA_FAILED, user=alice.user)) == 1
    assert mailoutbox == []


@pytest.mark.parametrize("code", ["", "   "])
def test_an_empty_code_is_a_form_error_that_spends_no_attempt(alice, code):
    client = browser()
    password_step(client)
    response = code_step(client, code)
    assert response.status_code == 200
    assert response.context["form"].has_error("code", "required")
    assert PendingSignIn.objects.get(user=alice.user).attempts_left == django_settings.ACCOUNTS_MFA_PENDING_ATTEMPTS
    assert events(EventKind.MFA_FAILED) == []


def test_five_wrong_codes_end_the_pending_sign_in(alice):
    client = browser()
    password_step(client, next_url=SESSIONS)
    for _ in range(5):
        assert_form_error(code_step(client, WRONG_CODE, next_url=SESSIONS), "That code is not correct.")
    # The sign-in is over: not even the right code finishes it now.
    response = code_step(client, totp_code(alice.secret), next_url=SESSIONS)
    assert where(response) == (LOGIN, {"next": [SESSIONS]})
    assert PENDING_SIGN_IN_KEY not in client.session
    landed = client.get(response["Location"])
    assert "This sign-in has expired. Please sign in again." in page_messages(landed)
    assert not is_signed_in(client)
    # Starting again with the password gives a new pending sign-in that the right code finishes.
    assert where(sign_in_with_code(client, ALICE, totp_code(alice.secret), next_url=SESSIONS)) == (SESSIONS, {})


@pytest.mark.parametrize("method", ["get", "post"])
def test_the_code_page_without_a_pending_sign_in_sends_back_to_sign_in(alice, method):
    client = browser()
    if method == "get":
        response = client.get(with_query(LOGIN_MFA, next=SESSIONS))
    else:
        response = code_step(client, totp_code(alice.secret), next_url=SESSIONS)
    assert where(response) == (LOGIN, {"next": [SESSIONS]})
    assert "This sign-in has expired. Please sign in again." in page_messages(client.get(response["Location"]))
    assert not is_signed_in(client)
    assert DeviceSession.objects.count() == 0


def test_a_pending_sign_in_expires_after_its_lifetime(alice, clock):
    client = browser()
    password_step(client)
    clock.shift(django_settings.ACCOUNTS_MFA_PENDING_LIFETIME + 1)
    response = code_step(client, totp_code(alice.secret))
    assert where(response) == (LOGIN, {})
    assert not is_signed_in(client)


def test_a_pending_sign_in_just_inside_its_lifetime_still_completes(alice, clock):
    client = browser()
    password_step(client)
    clock.shift(django_settings.ACCOUNTS_MFA_PENDING_LIFETIME - 5)
    assert where(code_step(client, totp_code(alice.secret))) == (ACCOUNT, {})


def test_a_completed_pending_sign_in_cannot_be_completed_again_elsewhere(alice):
    first = browser()
    password_step(first)
    handle = first.session[PENDING_SIGN_IN_KEY]
    assert where(code_step(first, totp_code(alice.secret)))[0] == ACCOUNT
    # Someone who copied the handle into another browser's session gets nothing from it.
    other = browser()
    other.get(LOGIN)
    session = other.session
    session[PENDING_SIGN_IN_KEY] = handle
    session.save()
    response = code_step(other, another_code(alice.secret))
    assert where(response)[0] == LOGIN
    assert not is_signed_in(other)
    assert DeviceSession.objects.filter(user=alice.user).count() == 1


def test_an_app_code_that_signed_in_once_does_not_sign_in_again(alice):
    code = totp_code(alice.secret)
    assert where(sign_in_with_code(browser(), ALICE, code))[0] == ACCOUNT
    replay = browser()
    assert_form_error(sign_in_with_code(replay, ALICE, code), "That code is not correct.")
    assert not is_signed_in(replay)


def test_the_code_form_without_its_csrf_token_is_refused(alice):
    client = browser()
    password_step(client)
    response = client.post(LOGIN_MFA, {"code": totp_code(alice.secret)})
    assert response.status_code == 403
    assert not is_signed_in(client)
    assert PendingSignIn.objects.get(user=alice.user).completed_at is None


def test_a_wrong_password_never_reaches_the_second_step(alice):
    client = browser()
    response = password_step(client, password="not the right passphrase at all")
    assert response.status_code == 200
    assert PENDING_SIGN_IN_KEY not in client.session
    assert PendingSignIn.objects.count() == 0
    assert where(client.get(LOGIN_MFA))[0] == LOGIN


def test_an_account_without_mfa_signs_in_with_the_password_alone(plain):
    client = browser()
    response = password_step(client, plain.email, next_url=SESSIONS)
    assert where(response) == (SESSIONS, {})
    assert is_signed_in(client)
    assert PendingSignIn.objects.count() == 0
    assert DeviceSession.objects.get(user=plain).amr == ["pwd"]


def test_too_many_wrong_codes_for_one_account_get_the_rate_limited_page(alice, clock):
    # Ten wrong codes across two pending sign-ins reach the account's limit (10 per 15 minutes).
    for _ in range(2):
        client = browser()
        password_step(client)
        for _ in range(5):
            assert_form_error(code_step(client, WRONG_CODE), "That code is not correct.")
    client = browser()
    password_step(client)
    response = code_step(client, totp_code(alice.secret))
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert not is_signed_in(client)


def test_finishing_the_second_step_gives_the_browser_a_new_session_key(alice):
    client = browser()
    password_step(client)
    before = client.session.session_key
    code_step(client, totp_code(alice.secret))
    assert client.session.session_key != before
    assert is_signed_in(client)


def test_an_account_deactivated_between_the_steps_is_not_signed_in(alice):
    client = browser()
    password_step(client)
    User.objects.filter(pk=alice.user.pk).update(is_active=False)
    response = code_step(client, totp_code(alice.secret))
    assert where(response)[0] == LOGIN
    assert not is_signed_in(client)
    assert DeviceSession.objects.filter(user=alice.user).count() == 0


def test_a_handle_that_names_no_pending_sign_in_is_sent_back_to_sign_in(alice):
    client = browser()
    client.get(LOGIN)
    session = client.session
    session[PENDING_SIGN_IN_KEY] = "not-a-handle"
    session.save()
    assert where(code_step(client, totp_code(alice.secret)))[0] == LOGIN
    assert PENDING_SIGN_IN_KEY not in client.session
    assert not is_signed_in(client)


def test_the_code_page_escapes_the_next_it_carries(alice):
    client = browser()
    target = '/accounts/?x="><script>alert(1)</script>'
    password_step(client, next_url=target)
    response = client.get(LOGIN_MFA, {"next": target})
    assert response.status_code == 200
    html = response.content.decode()
    assert "<script>alert(1)" not in html
    assert own_forms(response)[0].data()["next"] == [target]


def test_wrong_codes_are_kept_out_of_the_audit_log(alice, root):
    typed = "ZZZZ-ZZZZ-ZZZZ"  # the shape of a recovery code, someone else's perhaps
    client = browser()
    password_step(client)
    code_step(client, typed)
    (failed,) = events(EventKind.MFA_FAILED, user=alice.user)
    assert typed not in str(failed.detail) and "ZZZZ" not in str(failed.detail)
    page = root.get("/admin/accounts/securityevent/")
    assert page.status_code == 200
    assert "ZZZZ" not in page.content.decode()


def test_the_devices_page_says_how_each_session_signed_in(alice):
    client = browser(HTTP_USER_AGENT="Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0")
    sign_in_with_code(client, ALICE, totp_code(alice.secret))
    assert amr_cells(client.get(SESSIONS)) == [TWO_FACTOR_WORDS]


def test_the_devices_page_of_a_password_only_session_says_password(signed_in_alice):
    assert amr_cells(signed_in_alice.get(SESSIONS)) == ["password"]


# --- The security page -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [SECURITY, TOTP_SETUP])
def test_the_security_pages_send_anonymous_visitors_to_sign_in(path):
    response = browser().get(path)
    assert where(response) == (LOGIN, {"next": [path]})


@pytest.mark.parametrize("path", [TOTP_SETUP, TOTP_DISABLE, RECOVERY_CODES])
def test_anonymous_posts_to_the_security_forms_change_nothing(alice, path):
    response = submit(browser(), path, {"start": "1", "code": totp_code(alice.secret)})
    assert where(response)[0] == LOGIN
    assert has_mfa(alice.user)
    assert recovery_codes_left(alice.user) == 10


def test_the_security_page_of_an_account_without_mfa_offers_the_setup(plain_browser):
    response = plain_browser.get(SECURITY)
    assert response.status_code == 200
    text = text_of(response)
    assert "off Add a second step to signing in" in text
    (form,) = own_forms(response)
    assert form.attrs["action"] == TOTP_SETUP
    assert form.data()["start"] == ["1"]
    assert "recovery-codes-remaining" not in response.content.decode()


def test_the_security_page_with_mfa_on_shows_the_codes_left_and_never_a_secret(alice, signed_in_alice):
    response = signed_in_alice.get(SECURITY)
    assert response.status_code == 200
    text = text_of(response)
    assert "on Signing in with your password also needs a code from your authenticator app." in text
    assert "Unused recovery codes: 10 of 10." in text
    assert sorted(form.attrs["action"] for form in own_forms(response)) == sorted([RECOVERY_CODES, TOTP_DISABLE])
    html = response.content.decode()
    assert alice.secret not in html
    assert not any(code in html for code in alice.codes)
    assert TotpAuthenticator.objects.get(user=alice.user).secret_encrypted not in html


def test_the_security_page_takes_no_post(signed_in_alice):
    assert submit(signed_in_alice, SECURITY).status_code == 405


# --- Setting up the authenticator app --------------------------------------------------------------


def test_starting_the_setup_shows_a_qr_code_and_the_key_of_a_new_unconfirmed_secret(plain, plain_browser):
    page = start_setup(plain_browser)
    secret = secret_on(page)
    authenticator = TotpAuthenticator.objects.get(user=plain)
    assert totp_secret_of(authenticator) == secret
    assert secret not in authenticator.secret_encrypted  # stored encrypted
    assert authenticator.confirmed_at is None
    assert not has_mfa(plain)
    # The QR code is an inline SVG of the otpauth URI for that key: no image from elsewhere, no script.
    html = page.content.decode()
    uri = pyotp.TOTP(secret).provisioning_uri(name=plain.email, issuer_name=django_settings.ACCOUNTS_MFA_TOTP_ISSUER)
    expected_svg = segno.make(uri, error="m").svg_inline(
        scale=4, dark="#000", light="#fff", title="QR code for your app"
    )
    assert expected_svg in html
    assert '<figure class="qr"><svg' in html
    assert parse_page(page).scripts == 0
    assert "<img" not in html


def test_confirming_the_setup_with_a_code_turns_mfa_on_and_shows_ten_codes_once(plain, plain_browser, mailoutbox):
    secret = secret_on(start_setup(plain_browser))
    response = submit(plain_browser, TOTP_SETUP, {"code": totp_code(secret)})
    assert response.status_code == 200
    assert "Two-factor authentication is on." in page_messages(response)
    codes = codes_on(response)
    assert len(codes) == 10 == len(set(codes))
    assert all(RECOVERY_SHAPE.match(code) for code in codes), codes
    text, filename = download_of(response)
    assert filename == "recovery-codes.txt"
    assert text == "\n".join(codes) + "\n"
    assert has_mfa(plain)
    assert recovery_codes_left(plain) == 10
    assert len(events(EventKind.MFA_ENABLED, user=plain)) == 1
    assert len(mails_to(mailoutbox, plain.email)) == 1
    # Shown this once: the security page now says "on" and lists none of them.
    security = plain_browser.get(SECURITY)
    assert "Unused recovery codes: 10 of 10." in text_of(security)
    assert not any(code in security.content.decode() for code in codes)
    # And each code signs in.
    assert where(sign_in_with_code(browser(), plain.email, codes[0]))[0] == ACCOUNT


def test_confirming_the_setup_makes_this_session_two_factor(plain, plain_browser):
    secret = secret_on(start_setup(plain_browser))
    submit(plain_browser, TOTP_SETUP, {"code": totp_code(secret)})
    assert amr_cells(plain_browser.get(SESSIONS)) == [TWO_FACTOR_WORDS]


def test_a_wrong_code_at_setup_leaves_mfa_off_and_the_same_key_on_the_page(plain, plain_browser, mailoutbox):
    secret = secret_on(start_setup(plain_browser))
    response = submit(plain_browser, TOTP_SETUP, {"code": WRONG_CODE})
    assert_form_error(response, "That code is not correct.")
    assert secret_on(response) == secret
    assert not has_mfa(plain)
    assert RecoveryCode.objects.filter(user=plain).count() == 0
    assert events(EventKind.MFA_ENABLED) == []
    assert mailoutbox == []


def test_starting_again_replaces_the_key_and_a_code_of_the_old_one_is_refused(plain, plain_browser):
    old = secret_on(start_setup(plain_browser))
    new = secret_on(start_setup(plain_browser))
    assert new != old
    assert_form_error(submit(plain_browser, TOTP_SETUP, {"code": totp_code(old)}), "That code is not correct.")
    assert not has_mfa(plain)
    assert submit(plain_browser, TOTP_SETUP, {"code": totp_code(new)}).status_code == 200
    assert has_mfa(plain)


def test_the_setup_page_without_a_setup_begun_goes_to_the_security_page(plain, plain_browser):
    assert where(plain_browser.get(TOTP_SETUP)) == (SECURITY, {})
    assert where(submit(plain_browser, TOTP_SETUP, {"code": "123456"})) == (SECURITY, {})
    assert not has_mfa(plain)


def test_the_setup_needs_a_recent_sign_in(plain, clock):
    client = browser()
    force_page_login(client, plain)
    clock.shift(PAST_THE_WINDOW)
    response = submit(client, TOTP_SETUP, {"start": "1"})
    assert where(response) == (REAUTHENTICATE, {"next": [TOTP_SETUP]})  # the password: no code to ask for
    assert not TotpAuthenticator.objects.filter(user=plain).exclude(secret_encrypted="").exists()
    # The password entered again opens it.
    assert visible_names(client.get(response["Location"])) == ["password"]
    confirmed = submit(client, with_query(REAUTHENTICATE, next=TOTP_SETUP), {"password": STRONG_PASSWORD})
    assert where(confirmed) == (TOTP_SETUP, {})
    assert secret_on(start_setup(client))


def test_the_setup_page_and_its_confirmation_need_a_recent_sign_in_too(plain, clock):
    client = browser()
    force_page_login(client, plain)
    secret = secret_on(start_setup(client))
    clock.shift(PAST_THE_WINDOW)
    assert where(client.get(TOTP_SETUP)) == (REAUTHENTICATE, {"next": [TOTP_SETUP]})
    response = submit(client, TOTP_SETUP, {"code": totp_code(secret)})
    assert where(response) == (REAUTHENTICATE, {"next": [TOTP_SETUP]})
    assert not has_mfa(plain)


def test_starting_a_setup_while_mfa_is_on_changes_nothing(alice):
    client = browser()
    force_page_login(client, alice.user, second_factor=True)
    stored = TotpAuthenticator.objects.get(user=alice.user).secret_encrypted
    response = submit(client, TOTP_SETUP, {"start": "1"})
    assert where(response) == (SECURITY, {})
    assert where(client.get(TOTP_SETUP)) == (SECURITY, {})
    authenticator = TotpAuthenticator.objects.get(user=alice.user)
    assert authenticator.secret_encrypted == stored
    assert totp_secret_of(authenticator) == alice.secret
    assert has_mfa(alice.user)


def test_the_pages_that_show_a_key_or_codes_are_never_stored(plain, plain_browser):
    setup = start_setup(plain_browser)
    assert "no-store" in setup["Cache-Control"]
    codes = submit(plain_browser, TOTP_SETUP, {"code": totp_code(secret_on(setup))})
    assert "no-store" in codes["Cache-Control"]


def test_a_mfa_reset_between_the_steps_leaves_a_sign_in_with_the_password_alone(alice, desk):
    client = browser()
    password_step(client)
    run_action(desk, "reset_mfa", [alice.user])
    assert_form_error(code_step(client, totp_code(alice.secret)), "That code is not correct.")
    assert not is_signed_in(client)
    assert where(password_step(client))[0] == ACCOUNT


def test_the_setup_form_without_its_csrf_token_is_refused(plain, plain_browser):
    start_setup(plain_browser)
    assert plain_browser.post(TOTP_SETUP, {"start": "1"}).status_code == 403


# --- Turning it off and new recovery codes: a recent second factor -------------------------------


@pytest.mark.parametrize("path", [TOTP_DISABLE, RECOVERY_CODES])
def test_a_password_only_session_is_asked_for_a_code_first(alice, signed_in_alice, mailoutbox, path):
    response = submit(signed_in_alice, path)
    assert_sent_to_code_reauthentication(response, SECURITY)
    assert has_mfa(alice.user)
    assert recovery_codes_left(alice.user) == 10
    assert mailoutbox == []
    assert events(EventKind.MFA_DISABLED) == events(EventKind.RECOVERY_CODES_REGENERATED) == []


def test_the_code_page_for_managing_factors_asks_for_a_code(signed_in_alice):
    response = signed_in_alice.get(with_query(REAUTHENTICATE, next=SECURITY, factor="code"))
    assert response.status_code == 200
    (form,) = own_forms(response)
    assert form.data()["proof"] == ["code"]
    assert form.data()["next"] == [SECURITY]
    assert visible_names(response) == ["code"]
    assert "enter a code from your authenticator app" in text_of(response)


def test_after_a_code_turning_mfa_off_works(alice, signed_in_alice, mailoutbox):
    response = reauthenticate_with_code(signed_in_alice, totp_code(alice.secret), SECURITY)
    assert where(response) == (SECURITY, {})
    response = submit(signed_in_alice, TOTP_DISABLE)
    assert where(response) == (SECURITY, {})
    landed = signed_in_alice.get(SECURITY)
    assert "Two-factor authentication is off." in page_messages(landed)
    assert "off Add a second step to signing in" in text_of(landed)
    assert not has_mfa(alice.user)
    assert RecoveryCode.objects.filter(user=alice.user).count() == 0
    (disabled,) = events(EventKind.MFA_DISABLED, user=alice.user)
    assert disabled.actor_id is None
    assert len(mails_to(mailoutbox, ALICE)) == 1
    # Signing in takes the password alone now.
    assert where(password_step(browser()))[0] == ACCOUNT


def test_after_a_code_new_recovery_codes_replace_the_old_ones(alice, signed_in_alice, mailoutbox):
    reauthenticate_with_code(signed_in_alice, totp_code(alice.secret), SECURITY)
    response = submit(signed_in_alice, RECOVERY_CODES)
    assert response.status_code == 200
    assert "New recovery codes are ready. The earlier ones no longer work." in page_messages(response)
    new_codes = codes_on(response)
    assert len(new_codes) == 10 and not set(new_codes) & set(alice.codes)
    assert download_of(response) == ("\n".join(new_codes) + "\n", "recovery-codes.txt")
    assert len(events(EventKind.RECOVERY_CODES_REGENERATED, user=alice.user)) == 1
    assert len(mails_to(mailoutbox, ALICE)) == 1
    assert has_mfa(alice.user)
    assert_form_error(sign_in_with_code(browser(), ALICE, alice.codes[0]), "That code is not correct.")
    assert where(sign_in_with_code(browser(), ALICE, new_codes[0]))[0] == ACCOUNT


def test_a_recovery_code_also_confirms_it_is_you(alice, signed_in_alice):
    assert where(reauthenticate_with_code(signed_in_alice, alice.codes[0], SECURITY)) == (SECURITY, {})
    assert where(submit(signed_in_alice, TOTP_DISABLE)) == (SECURITY, {})
    assert not has_mfa(alice.user)


def test_a_wrong_code_on_the_confirmation_page_opens_nothing(alice, signed_in_alice):
    response = reauthenticate_with_code(signed_in_alice, WRONG_CODE, SECURITY)
    assert_form_error(response, "That code is not correct.")
    assert own_forms(response)[0].data()["proof"] == ["code"]  # still the code form
    assert_sent_to_code_reauthentication(submit(signed_in_alice, TOTP_DISABLE), SECURITY)
    assert has_mfa(alice.user)
    assert len(events(EventKind.MFA_FAILED, user=alice.user)) == 1


def test_a_code_entered_again_makes_a_password_only_session_two_factor(alice, signed_in_alice):
    reauthenticate_with_code(signed_in_alice, totp_code(alice.secret), SECURITY)
    assert amr_cells(signed_in_alice.get(SESSIONS)) == [TWO_FACTOR_WORDS]


def test_the_password_entered_again_does_not_stand_in_for_the_code(alice, signed_in_alice):
    response = submit(signed_in_alice, with_query(REAUTHENTICATE, next=SECURITY), {"password": STRONG_PASSWORD})
    assert where(response) == (SECURITY, {})
    assert_sent_to_code_reauthentication(submit(signed_in_alice, TOTP_DISABLE), SECURITY)
    assert_sent_to_code_reauthentication(submit(signed_in_alice, RECOVERY_CODES), SECURITY)
    assert has_mfa(alice.user)


def test_a_code_used_to_confirm_once_does_not_confirm_again(alice, signed_in_alice):
    code = totp_code(alice.secret)
    assert where(reauthenticate_with_code(signed_in_alice, code, SECURITY))[0] == SECURITY
    other = browser()
    force_page_login(other, alice.user, second_factor=False)
    assert_form_error(reauthenticate_with_code(other, code, SECURITY), "That code is not correct.")
    assert_sent_to_code_reauthentication(submit(other, TOTP_DISABLE), SECURITY)


def test_the_second_factor_of_the_sign_in_counts_only_for_five_minutes(alice, clock):
    client = browser()
    sign_in_with_code(client, ALICE, totp_code(alice.secret))
    clock.shift(PAST_THE_WINDOW)
    assert_sent_to_code_reauthentication(submit(client, RECOVERY_CODES), SECURITY)
    assert_sent_to_code_reauthentication(submit(client, TOTP_DISABLE), SECURITY)
    assert has_mfa(alice.user)
    clock.shift(30)  # the code of the sign-in's time step is used up: the next one
    assert where(reauthenticate_with_code(client, totp_code(alice.secret), SECURITY))[0] == SECURITY
    assert where(submit(client, TOTP_DISABLE)) == (SECURITY, {})
    assert not has_mfa(alice.user)


def test_a_fresh_two_factor_sign_in_manages_factors_without_asking_again(alice):
    client = browser()
    sign_in_with_code(client, ALICE, totp_code(alice.secret))
    assert submit(client, RECOVERY_CODES).status_code == 200
    assert where(submit(client, TOTP_DISABLE)) == (SECURITY, {})


@pytest.mark.parametrize("path", [TOTP_DISABLE, RECOVERY_CODES])
def test_the_factor_forms_take_no_get(signed_in_alice, alice, path):
    assert signed_in_alice.get(path).status_code == 405
    assert has_mfa(alice.user) and recovery_codes_left(alice.user) == 10


@pytest.mark.parametrize("path", [TOTP_DISABLE, RECOVERY_CODES])
def test_the_factor_forms_without_their_csrf_token_are_refused(alice, path):
    client = browser()
    force_page_login(client, alice.user, second_factor=True)
    assert client.post(path).status_code == 403
    assert has_mfa(alice.user) and recovery_codes_left(alice.user) == 10


@pytest.mark.parametrize("path", [TOTP_DISABLE, RECOVERY_CODES])
def test_the_factor_forms_of_an_account_whose_mfa_is_already_off_answer_with_the_security_page(alice, path, mailoutbox):
    # Two tabs on the security page: MFA is turned off in one (or by support), then a button pressed in the other.
    client = browser()
    force_page_login(client, alice.user, second_factor=True)
    assert where(submit(client, TOTP_DISABLE)) == (SECURITY, {})
    mailoutbox.clear()
    response = submit(client, path)
    assert where(response) == (SECURITY, {})
    assert not has_mfa(alice.user)
    assert RecoveryCode.objects.filter(user=alice.user).count() == 0
    assert mailoutbox == []


def test_the_code_page_of_an_account_without_mfa_asks_for_the_password(plain_browser):
    response = plain_browser.get(with_query(REAUTHENTICATE, next=SECURITY, factor="code"))
    assert response.status_code == 200
    assert visible_names(response) == ["password"]


# --- The admin: staff need a second factor, on the session that uses the admin ---------------------


def test_staff_without_mfa_opening_the_admin_are_sent_to_set_it_up(support):
    client = browser()
    force_page_login(client, support, second_factor=False)
    for path in (ADMIN, USERS):
        response = client.get(path, follow=True)
        assert [urlsplit(url).path for url, _ in response.redirect_chain][-1] == SECURITY, path
        assert response.status_code == 200
        assert "Todo support" not in response.content.decode()
        assert "Support staff need two-factor authentication: set up an authenticator app first." in page_messages(
            response
        )
    assert where(client.get(ADMIN_LOGIN)) == (SECURITY, {})


def test_staff_with_mfa_on_a_password_only_session_are_asked_for_a_code(support):
    enrolled = enrol(support)
    client = browser()
    force_page_login(client, support, second_factor=False)
    response = client.get(ADMIN, follow=True)
    final = response.redirect_chain[-1][0]
    assert urlsplit(final).path == REAUTHENTICATE
    assert parse_qs(urlsplit(final).query) == {"next": [ADMIN], "factor": ["code"]}
    assert "Todo support" not in response.content.decode()
    assert "The admin needs a code from your authenticator app on this device." in page_messages(response)
    assert visible_names(response) == ["code"]
    assert where(reauthenticate_with_code(client, totp_code(enrolled.secret), ADMIN)) == (ADMIN, {})
    assert opens_admin(client)
    assert client.get(USERS).status_code == 200
    session = DeviceSession.objects.get(pk=client.session[DEVICE_SESSION_KEY])
    assert "mfa" in session.amr


def test_a_wrong_code_or_the_password_does_not_open_the_admin(support):
    enrol(support)
    client = browser()
    force_page_login(client, support, second_factor=False)
    assert_form_error(reauthenticate_with_code(client, WRONG_CODE, ADMIN), "That code is not correct.")
    assert not opens_admin(client)
    assert where(submit(client, with_query(REAUTHENTICATE, next=ADMIN), {"password": STRONG_PASSWORD})) == (
        ADMIN,
        {},
    )
    assert not opens_admin(client)
    assert where(client.get(ADMIN_LOGIN, {"next": ADMIN})) == (REAUTHENTICATE, {"next": [ADMIN], "factor": ["code"]})


def test_a_code_proved_on_one_browser_does_not_open_the_admin_on_another(support):
    enrolled = enrol(support)
    first, second = browser(), browser()
    force_page_login(first, support, second_factor=False)
    force_page_login(second, support, second_factor=False)
    reauthenticate_with_code(first, totp_code(enrolled.secret), ADMIN)
    assert opens_admin(first)
    assert not opens_admin(second)


@pytest.mark.parametrize("enrolled", [False, True], ids=["without-mfa", "password-only-session"])
def test_staff_the_admin_turns_away_cannot_post_an_action_either(support, alice, enrolled, mailoutbox):
    if enrolled:
        enrol(support)
    client = browser()
    force_page_login(client, support, second_factor=False)
    client.get(LOGIN)  # a CSRF cookie
    response = client.post(
        USERS,
        {
            "action": "reset_mfa",
            "_selected_action": [alice.user.pk],
            "csrfmiddlewaretoken": client.cookies[django_settings.CSRF_COOKIE_NAME].value,
        },
    )
    assert where(response)[0] == ADMIN_LOGIN
    assert has_mfa(alice.user)
    assert events(EventKind.STAFF_ACTION) == []
    assert mails_to(mailoutbox, ALICE) == []


def test_a_new_superuser_sets_up_mfa_on_the_way_into_the_admin(db, mailoutbox):
    User.objects.create_superuser(email="owner@example.com", password=STRONG_PASSWORD, name="Owner")
    client = browser()
    # No second factor yet: the password alone signs in.
    response = client.get(ADMIN, follow=True)
    assert urlsplit(response.redirect_chain[-1][0]).path == LOGIN
    assert where(password_step(client, "owner@example.com", next_url=ADMIN)) == (ADMIN, {})
    # The admin sends them to set it up.
    response = client.get(ADMIN, follow=True)
    assert urlsplit(response.redirect_chain[-1][0]).path == SECURITY
    assert "Todo support" not in response.content.decode()
    setup = start_setup(client)
    codes_page = submit(client, TOTP_SETUP, {"code": totp_code(secret_on(setup))})
    assert len(codes_on(codes_page)) == 10
    # Confirming with a code was a second factor on this session: the admin opens, no further code.
    assert opens_admin(client)
    assert client.get(USERS).status_code == 200
    owner = User.objects.get(email="owner@example.com")
    assert has_mfa(owner)
    # A later sign-in asks for the code.
    later = browser()
    assert where(password_step(later, "owner@example.com", next_url=ADMIN))[0] == LOGIN_MFA
    assert not opens_admin(later)


def test_staff_whose_sign_in_is_older_than_the_window_confirm_the_password_before_setting_up(support, clock):
    client = browser()
    force_page_login(client, support, second_factor=False)
    clock.shift(PAST_THE_WINDOW)
    assert where(submit(client, TOTP_SETUP, {"start": "1"})) == (REAUTHENTICATE, {"next": [TOTP_SETUP]})
    submit(client, with_query(REAUTHENTICATE, next=TOTP_SETUP), {"password": STRONG_PASSWORD})
    submit(client, TOTP_SETUP, {"code": totp_code(secret_on(start_setup(client)))})
    assert opens_admin(client)


def test_an_mfa_staff_members_page_sign_in_lands_in_the_admin(support):
    enrolled = enrol(support)
    client = browser(REMOTE_ADDR=STAFF_IP, HTTP_USER_AGENT=STAFF_UA)
    page = client.get(ADMIN_LOGIN, {"next": ADMIN}, follow=True)
    assert urlsplit(page.redirect_chain[-1][0]).path == LOGIN
    assert where(password_step(client, support.email, next_url=ADMIN)) == (LOGIN_MFA, {"next": [ADMIN]})
    assert not opens_admin(client)  # not yet
    assert where(code_step(client, totp_code(enrolled.secret), next_url=ADMIN)) == (ADMIN, {})
    assert opens_admin(client)
    assert where(client.get(ADMIN_LOGIN, {"next": USERS})) == (USERS, {})
    (signed_in,) = events(EventKind.SIGN_IN_SUCCEEDED, user=support)
    assert signed_in.ip_address == STAFF_IP


def test_staff_who_turn_their_mfa_off_lose_the_admin(support):
    client = staff_browser(support)
    assert opens_admin(client)
    assert where(submit(client, TOTP_DISABLE)) == (SECURITY, {})
    response = client.get(ADMIN, follow=True)
    assert urlsplit(response.redirect_chain[-1][0]).path == SECURITY
    assert "Todo support" not in response.content.decode()


# --- The admin: what it shows of second factors ----------------------------------------------------


def test_the_user_list_has_a_2fa_column(desk, alice, plain):
    response = desk.get(USERS)
    assert response.status_code == 200
    header = re.search(
        r'<th scope="col"[^>]*class="[^"]*column-mfa[^"]*"[^>]*>(.*?)</th>', response.content.decode(), re.S
    )
    assert header is not None and "2FA" in text_of(header.group(1))
    assert mfa_cell(response, ALICE) == "yes"
    assert mfa_cell(response, plain.email) == "no"


def test_a_setup_not_confirmed_shows_as_off_in_the_list(desk, plain, plain_browser):
    start_setup(plain_browser)
    assert mfa_cell(desk.get(USERS), plain.email) == "no"
    assert plain.email in listed(desk.get(USERS, {"mfa": "no"}))


def test_the_user_page_says_whether_mfa_is_on_and_never_shows_a_secret(desk, alice, plain):
    sign_in_with_code(browser(), ALICE, alice.codes[0])
    response = desk.get(f"{USERS}{alice.user.pk}/change/")
    assert response.status_code == 200
    text = text_of(response)
    assert "two-factor authentication" in text.lower()
    assert "On: authenticator app; 9 of 10 recovery codes unused." in text
    html = response.content.decode()
    stored = TotpAuthenticator.objects.get(user=alice.user)
    assert alice.secret not in html
    assert stored.secret_encrypted not in html
    for code in alice.codes:
        assert code not in html and code.replace("-", "") not in html
    for row in RecoveryCode.objects.filter(user=alice.user):
        assert row.code_hash not in html
    assert "Off." in text_of(desk.get(f"{USERS}{plain.pk}/change/"))


def test_a_superusers_user_page_shows_no_secret_either(root, alice):
    response = root.get(f"{USERS}{alice.user.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "On: authenticator app; 10 of 10 recovery codes unused." in text_of(response)
    assert alice.secret not in html
    assert TotpAuthenticator.objects.get(user=alice.user).secret_encrypted not in html
    assert 'name="secret' not in html and 'name="totp' not in html


def test_a_superuser_still_opens_the_add_user_page(root):
    response = root.get(f"{USERS}add/")
    assert response.status_code == 200
    assert {"email", "name", "password1", "password2"} <= {attrs.get("name") for attrs in parse_page(response).inputs}


@pytest.mark.parametrize("model", ["totpauthenticator", "recoverycode", "pendingsignin"])
def test_the_second_factor_tables_are_not_in_the_admin(root, alice, model):
    assert root.get(f"/admin/accounts/{model}/").status_code == 404
    assert f"/admin/accounts/{model}/" not in root.get(ADMIN).content.decode()


def test_the_mfa_filter_lists_who_has_it_on_and_off(desk, support, alice, plain, make_user, colleague):
    pending = make_user(email="pending@example.com", name="Pending")
    TotpAuthenticator.objects.create(user=pending)  # a setup begun, never confirmed
    # Staff signed in to the admin have it on (support's own, the colleague's).
    assert listed(desk.get(USERS, {"mfa": "yes"})) == sorted([ALICE, support.email, colleague.user.email])
    assert listed(desk.get(USERS, {"mfa": "no"})) == sorted([plain.email, pending.email])
    assert len(listed(desk.get(USERS))) == 5


def test_the_list_sorts_by_the_2fa_column(desk, alice, plain):
    response = desk.get(USERS)
    columns = response.context["cl"].list_display
    index = columns.index("mfa")  # the admin numbers list_display columns from 0, the checkbox included
    ordered = [user.email for user in desk.get(USERS, {"o": str(index)}).context["cl"].result_list]
    assert ordered.index(plain.email) < ordered.index(ALICE)
    reverse = [user.email for user in desk.get(USERS, {"o": f"-{index}"}).context["cl"].result_list]
    assert reverse.index(ALICE) < reverse.index(plain.email)


@pytest.mark.parametrize(
    ("lookup", "probe"),
    [
        ("totp__secret_encrypted__startswith", lambda row: row.secret_encrypted[:2]),
        ("totp__secret_encrypted", lambda row: row.secret_encrypted),
        ("totp__secret_encrypted__gt", lambda row: "0"),
        ("totp__last_used_step__gte", lambda row: "0"),
    ],
    ids=["startswith", "exact", "gt", "last-step"],
)
@pytest.mark.parametrize("who", ["desk", "root"])
def test_second_factor_secret_lookups_are_refused_alike(request, alice, lookup, probe, who):
    client = request.getfixturevalue(who)
    sign_in_with_code(browser(), ALICE, totp_code(alice.secret))  # a last used step to probe for
    row = TotpAuthenticator.objects.get(user=alice.user)
    hit = client.get(USERS, {lookup: probe(row)})
    miss = client.get(USERS, {lookup: "zz"})
    assert hit.status_code == 400, (lookup, hit.status_code)
    assert (hit.status_code, hit.content) == (miss.status_code, miss.content)


def test_searching_users_for_a_secret_finds_nothing(desk, alice):
    row = TotpAuthenticator.objects.get(user=alice.user)
    for query in (alice.secret, row.secret_encrypted[:16], alice.codes[0]):
        assert listed(desk.get(USERS, {"q": query})) == [], query


# --- The admin: resetting someone's second factor --------------------------------------------------


def test_support_with_the_permission_resets_a_users_mfa(desk, support, alice, mailoutbox):
    assert "reset_mfa" in action_names(desk.get(USERS))
    response = run_action(desk, "reset_mfa", [alice.user])
    assert response.status_code == 200
    assert "Two-factor authentication reset (users who had it): 1 user(s)." in page_messages(response)
    assert not has_mfa(alice.user)
    assert RecoveryCode.objects.filter(user=alice.user).count() == 0
    (action,) = events(EventKind.STAFF_ACTION, user=alice.user)
    assert action.actor_id == support.pk
    assert action.detail == {"action": "reset_mfa", "sessions_ended": 0}
    assert (action.ip_address, action.user_agent) == (STAFF_IP, STAFF_UA)
    (disabled,) = events(EventKind.MFA_DISABLED, user=alice.user)
    assert disabled.actor_id == support.pk
    assert disabled.detail == {"by_staff": True}
    (notice,) = mails_to(mailoutbox, ALICE)
    assert "turned off two-factor authentication" in notice.subject
    assert "support" in notice.body.lower()
    # The user page says so, and the password alone signs in now.
    assert "Off." in text_of(desk.get(f"{USERS}{alice.user.pk}/change/"))
    assert where(password_step(browser()))[0] == ACCOUNT


def test_resetting_a_user_without_mfa_does_nothing(desk, plain, mailoutbox):
    response = run_action(desk, "reset_mfa", [plain])
    assert "Two-factor authentication reset (users who had it): 0 user(s)." in page_messages(response)
    assert events(EventKind.STAFF_ACTION) == events(EventKind.MFA_DISABLED) == []
    assert mails_to(mailoutbox, plain.email) == []


def test_support_cannot_reset_a_staff_members_mfa(desk, alice, colleague, mailoutbox):
    response = run_action(desk, "reset_mfa", [alice.user, colleague.user])
    messages = page_messages(response)
    assert "Skipped 1 staff account(s): only superusers act on staff." in messages
    assert "Two-factor authentication reset (users who had it): 1 user(s)." in messages
    assert has_mfa(colleague.user)
    assert recovery_codes_left(colleague.user) == 10
    assert not has_mfa(alice.user)
    assert events(EventKind.STAFF_ACTION, user=colleague.user) == []
    assert mails_to(mailoutbox, colleague.user.email) == []


def test_a_superuser_resets_a_staff_members_mfa(root, superuser, colleague, mailoutbox):
    colleague_browser = staff_browser(colleague.user)
    assert opens_admin(colleague_browser)
    response = run_action(root, "reset_mfa", [colleague.user])
    assert "Two-factor authentication reset (users who had it): 1 user(s)." in page_messages(response)
    assert not has_mfa(colleague.user)
    (action,) = events(EventKind.STAFF_ACTION, user=colleague.user)
    assert action.actor_id == superuser.pk and action.detail == {"action": "reset_mfa", "sessions_ended": 0}
    assert len(mails_to(mailoutbox, colleague.user.email)) == 1
    # Without a second factor the colleague is sent to set one up again, even on their two-factor session.
    response = colleague_browser.get(ADMIN, follow=True)
    assert urlsplit(response.redirect_chain[-1][0]).path == SECURITY


def test_staff_without_the_permission_are_not_offered_the_reset(make_user, alice):
    member = make_user(email="sue@support.example", name="Sue", is_staff=True)
    member.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "end_user_sessions"]))
    client = staff_browser(member)
    assert "reset_mfa" not in action_names(client.get(USERS))
    # Posting it anyway does nothing.
    response = run_action(client, "reset_mfa", [alice.user])
    assert response.status_code == 200
    assert has_mfa(alice.user)
    assert events(EventKind.STAFF_ACTION) == events(EventKind.MFA_DISABLED) == []


def test_the_reset_action_without_the_csrf_token_is_refused(desk, alice):
    response = desk.post(USERS, {"action": "reset_mfa", "_selected_action": [alice.user.pk]})
    assert response.status_code == 403
    assert has_mfa(alice.user)
