"""Two-factor authentication in a browser: enrolling, signing in with a code on the pages and in the SPA, the admin."""

import re
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from accounts.flows.second_factor import has_mfa
from tests.support.accounts import STRONG_PASSWORD
from tests.support.browser import (
    NARROW,
    assert_accessible,
    assert_clean,
    email_to,
    heading,
    horizontal_overflow,
    screenshot,
    sign_in_on_page,
    wait_for_quiet_network,
)
from tests.support.mail import delivered
from tests.support.mfa import enable_totp, totp_code, wrong_code

EMAIL = "robin@example.com"
STAFF_EMAIL = "support@example.com"
PASSWORD = STRONG_PASSWORD
WRONG_CODE = "That code is not correct. Try the newest code from your app, or a recovery code."
RECOVERY_CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")
TWO_FACTOR_SESSION = "password + one-time code (two-factor)"


def check_the_page(page, name: str, *, settled: bool = False) -> None:
    """What every page of the site is held to: a clean console and CSP, no sideways scrolling at
    320 px, nothing serious for axe-core; screenshots in artifacts/screenshots/. ``settled``: the
    caller has waited for what the page shows, without wait_for_quiet_network (see _app_second_step)."""
    if not settled:
        wait_for_quiet_network(page)
    assert_clean(page)
    screenshot(page, name)
    before = page.viewport_size
    try:
        page.set_viewport_size(NARROW)
        assert horizontal_overflow(page) <= 0, f"{page.url} scrolls sideways at 320 px"
        assert_accessible(page)
    finally:
        page.set_viewport_size(before)
    assert_clean(page)


def enter_password(page, email: str, *, next_path: str | None = None) -> None:
    """The first step on /accounts/login/ for an account with a second factor: on to the code page."""
    page.goto("/accounts/login/" + (f"?next={next_path}" if next_path else ""))
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(heading(page, "Two-factor authentication")).to_be_visible()
    query = re.escape("?" + urlencode({"next": next_path})) if next_path else ""  # the code page keeps ?next=
    expect(page).to_have_url(re.compile(r"/accounts/login/mfa/" + query + "$"))


def enter_code(page, code: str) -> None:
    page.get_by_label("Code", exact=True).fill(code)
    page.get_by_role("button", name="Verify").click()


def set_up_the_app(page) -> str:
    """From the security page (two-factor off): start the setup and read the key off the page."""
    expect(page.get_by_text("Add a second step to signing in")).to_be_visible()
    page.get_by_role("button", name="Set up an authenticator app").click()
    expect(heading(page, "Set up an authenticator app")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/accounts/security/totp/$"))
    qr = page.locator("figure.qr svg")
    expect(qr).to_be_visible()
    expect(qr.locator("title")).to_have_text("QR code for your app")
    box = qr.bounding_box()
    assert box["width"] >= 100 and box["height"] >= 100, f"a QR code too small to scan: {box}"
    secret = page.locator("#totp-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    return secret


def turn_on(page, secret: str, *, steps: int = 0) -> list[str]:
    """Type the app's code on the setup page; returns the recovery codes the next page shows."""
    page.get_by_label("Code from the app").fill(totp_code(secret, steps=steps))
    page.get_by_role("button", name="Turn on").click()
    expect(heading(page, "Your recovery codes")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Two-factor authentication is on.")
    items = page.locator("ul#recovery-codes li")
    expect(items).to_have_count(10)
    codes = [text.strip() for text in items.all_inner_texts()]
    assert all(RECOVERY_CODE.fullmatch(code) for code in codes), codes
    assert len(set(codes)) == 10, codes
    return codes


@pytest.fixture
def robin(site, make_user):
    return make_user(email=EMAIL, password=PASSWORD, name="Robin")


@pytest.fixture
def robin_with_app(robin):
    """Robin, with an authenticator app and recovery codes set up (as the setup pages leave them)."""
    secret, codes = enable_totp(robin, recovery_codes=True)
    return robin, secret, codes


# --- Enrolling ---------------------------------------------------------------------------------------


def test_turning_on_two_factor_authentication(page, robin):
    sign_in_on_page(page, EMAIL, PASSWORD)
    expect(heading(page, "Your account")).to_be_visible()
    page.get_by_role("link", name="Security and two-factor authentication").click()
    expect(heading(page, "Security")).to_be_visible()
    expect(page.locator(".badge", has_text="off")).to_be_visible()
    assert_clean(page)

    secret = set_up_the_app(page)
    assert_clean(page)

    codes = turn_on(page, secret)
    assert_clean(page)
    download_link = page.get_by_role("link", name="Download as a text file")
    expect(download_link).to_have_attribute("download", "recovery-codes.txt")
    with page.expect_download() as started:
        download_link.click()
    download = started.value
    assert download.failure() is None
    assert download.suggested_filename == "recovery-codes.txt"
    saved = Path(download.path()).read_text(encoding="utf-8")
    assert saved.split() == codes

    page.get_by_role("link", name="I have saved them").click()
    expect(heading(page, "Security")).to_be_visible()
    expect(page.locator(".badge", has_text="on")).to_be_visible()
    expect(
        page.get_by_text("Signing in with your password also needs a code from your authenticator app.")
    ).to_be_visible()
    expect(page.locator("#recovery-codes-remaining")).to_have_text("Unused recovery codes: 10 of 10.")
    expect(page.get_by_role("button", name="Set up an authenticator app")).to_have_count(0)
    assert_clean(page)
    assert has_mfa(robin)
    email_to(EMAIL, "Two-factor authentication is on")


def test_a_wrong_code_during_setup_leaves_two_factor_off(page, robin):
    sign_in_on_page(page, EMAIL, PASSWORD, next_path="/accounts/security/")
    expect(heading(page, "Security")).to_be_visible()
    secret = set_up_the_app(page)

    page.get_by_label("Code from the app").fill(wrong_code(secret))
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_text(WRONG_CODE)).to_be_visible()
    expect(heading(page, "Set up an authenticator app")).to_be_visible()
    expect(page.locator("#totp-secret")).to_have_text(secret)  # the same key: the app set up still fits
    expect(page.get_by_label("Code from the app")).to_be_visible()
    assert_clean(page)
    assert not has_mfa(robin)

    page.get_by_role("link", name="Cancel").click()
    expect(heading(page, "Security")).to_be_visible()
    expect(page.locator(".badge", has_text="off")).to_be_visible()
    expect(page.get_by_role("button", name="Set up an authenticator app")).to_be_visible()
    expect(page.locator("#recovery-codes-remaining")).to_have_count(0)
    assert_clean(page)
    assert not has_mfa(robin)
    assert not [m for m in delivered() if "Two-factor authentication is on" in m.subject]


# --- Signing in on the pages ------------------------------------------------------------------------


def test_signing_in_with_a_code_from_the_app_keeps_next(page, site, robin_with_app):
    _, secret, _ = robin_with_app
    enter_password(page, EMAIL, next_path="/accounts/sessions/")
    expect(
        page.get_by_role("navigation", name="Account").get_by_role("link", name="Sign in", exact=True)
    ).to_be_visible()
    assert_clean(page)

    enter_code(page, totp_code(secret))
    expect(page).to_have_url(f"{site}/accounts/sessions/")
    expect(heading(page, "Your devices")).to_be_visible()
    this_device = page.locator("li.session.current")
    expect(this_device).to_have_count(1)
    expect(this_device.locator(".amr")).to_have_text(TWO_FACTOR_SESSION)
    expect(page.locator("li.session")).to_have_count(1)
    assert_clean(page)


def test_signing_in_with_a_recovery_code_uses_it_up(page, site, robin_with_app):
    _, _, codes = robin_with_app
    first, second = codes[0], codes[1]

    enter_password(page, EMAIL)
    enter_code(page, first.replace("-", "").lower())  # typed sloppily, as people do
    expect(page).to_have_url(f"{site}/accounts/")
    expect(heading(page, "Your account")).to_be_visible()
    email_to(EMAIL, "A recovery code was used")
    page.get_by_role("link", name="Security and two-factor authentication").click()
    expect(page.locator("#recovery-codes-remaining")).to_have_text("Unused recovery codes: 9 of 10.")
    assert_clean(page)

    page.get_by_role("navigation", name="Account").get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")

    enter_password(page, EMAIL)
    enter_code(page, first)
    expect(page.get_by_text(WRONG_CODE)).to_be_visible()
    expect(heading(page, "Two-factor authentication")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/accounts/login/mfa/$"))
    expect(page.get_by_label("Code", exact=True)).to_be_visible()
    assert_clean(page)

    enter_code(page, second)  # the pending sign-in survives one wrong code
    expect(page).to_have_url(f"{site}/accounts/")
    expect(heading(page, "Your account")).to_be_visible()
    page.get_by_role("link", name="Security and two-factor authentication").click()
    expect(page.locator("#recovery-codes-remaining")).to_have_text("Unused recovery codes: 8 of 10.")
    assert_clean(page)


# --- The SPA ----------------------------------------------------------------------------------------


def test_the_app_asks_for_the_code_after_the_password(page, robin_with_app):
    from todos.models import Todo

    robin, secret, _ = robin_with_app
    Todo.objects.create(owner=robin, title="Water the plants")

    page.goto("/app/")
    expect(heading(page, "Sign in to your todos")).to_be_visible()
    page.locator("#signin-email").fill(EMAIL)
    page.locator("#signin-password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(heading(page, "Two-factor authentication")).to_be_visible()
    code_field = page.locator("#signin-code")
    expect(code_field).to_be_focused()
    expect(page.get_by_label("Code", exact=True)).to_be_visible()
    expect(page.get_by_role("navigation", name="App")).to_be_hidden()
    assert_clean(page)

    code_field.fill(wrong_code(secret))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_have_text(WRONG_CODE)
    expect(heading(page, "Two-factor authentication")).to_be_visible()
    expect(code_field).to_be_visible()
    expect(code_field).to_have_value("")
    expect(code_field).to_be_focused()
    expect(page.get_by_role("navigation", name="App")).to_be_hidden()
    assert_clean(page, allow_statuses=(400,))  # the refused code

    code_field.fill(totp_code(secret))
    page.get_by_role("button", name="Verify").click()
    expect(heading(page, "Your todos")).to_be_visible()
    expect(page.get_by_role("navigation", name="App")).to_be_visible()
    expect(page.get_by_text("Water the plants", exact=True)).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    assert_clean(page)

    page.reload()  # the session the second step started is a real one
    expect(heading(page, "Your todos")).to_be_visible()
    assert_clean(page)


def test_the_sign_in_page_with_a_code_lands_in_the_app(page, site, robin_with_app):
    _, secret, _ = robin_with_app
    enter_password(page, EMAIL, next_path="/app/")
    enter_code(page, totp_code(secret))
    expect(page).to_have_url(f"{site}/app/")
    expect(heading(page, "Your todos")).to_be_visible()  # started from the refresh cookie
    expect(page.get_by_role("navigation", name="App")).to_be_visible()
    expect(page.get_by_text("No todos yet. Add your first one above.")).to_be_visible()
    assert_clean(page)


# --- Support staff -----------------------------------------------------------------------------------


def test_staff_set_up_two_factor_before_the_admin_opens(page, site, make_user):
    staff = make_user(email=STAFF_EMAIL, password=PASSWORD, name="Support", is_staff=True, is_superuser=True)

    page.goto("/accounts/login/?next=/admin/")
    page.get_by_label("Email address").fill(STAFF_EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page).to_have_url(f"{site}/accounts/security/")
    expect(heading(page, "Security")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text(
        "Support staff need two-factor authentication: set up an authenticator app first."
    )
    assert_clean(page)

    page.goto("/admin/")  # still no admin without the second factor
    expect(page).to_have_url(f"{site}/accounts/security/")

    secret = set_up_the_app(page)
    turn_on(page, secret)
    page.get_by_role("link", name="I have saved them").click()
    expect(page.locator(".badge", has_text="on")).to_be_visible()

    page.goto("/admin/")
    expect(page).to_have_url(f"{site}/admin/")
    expect(page.get_by_role("link", name="Todo support")).to_be_visible()
    expect(heading(page, "Site administration")).to_be_visible()
    assert_clean(page)
    assert has_mfa(staff)


# --- Every new page: clean, accessible, and readable 320 px wide ---------------------------------------


def _security_off(page, make_user):
    make_user(email=EMAIL, password=PASSWORD)
    sign_in_on_page(page, EMAIL, PASSWORD, next_path="/accounts/security/")
    expect(heading(page, "Security")).to_be_visible()


def _totp_setup(page, make_user):
    _security_off(page, make_user)
    return set_up_the_app(page)


def _totp_setup_wrong_code(page, make_user):
    secret = _totp_setup(page, make_user)
    page.get_by_label("Code from the app").fill(wrong_code(secret))
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_text(WRONG_CODE)).to_be_visible()


def _recovery_codes(page, make_user):
    turn_on(page, _totp_setup(page, make_user))


def _security_on(page, make_user):
    _recovery_codes(page, make_user)
    page.get_by_role("link", name="I have saved them").click()
    expect(page.locator("#recovery-codes-remaining")).to_be_visible()


def _security_staff_sent_to_enrol(page, make_user):
    make_user(email=STAFF_EMAIL, password=PASSWORD, is_staff=True, is_superuser=True)
    page.goto("/accounts/login/?next=/admin/")
    page.get_by_label("Email address").fill(STAFF_EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Support staff need two-factor authentication")


def _login_code(page, make_user):
    enable_totp(make_user(email=EMAIL, password=PASSWORD))
    enter_password(page, EMAIL, next_path="/accounts/")


def _login_code_refused(page, make_user):
    secret = enable_totp(make_user(email=EMAIL, password=PASSWORD))
    enter_password(page, EMAIL)
    enter_code(page, wrong_code(secret))
    expect(page.get_by_text(WRONG_CODE)).to_be_visible()


def _reauthenticate_with_code(page, make_user):
    secret = enable_totp(make_user(email=EMAIL, password=PASSWORD))
    enter_password(page, EMAIL)
    enter_code(page, totp_code(secret))
    expect(heading(page, "Your account")).to_be_visible()
    page.goto("/accounts/reauthenticate/?factor=code&next=/accounts/security/")
    expect(heading(page, "Confirm it is you")).to_be_visible()
    expect(page.get_by_text("enter a code from your authenticator app (or a recovery code)")).to_be_visible()


def _app_second_step(page, make_user):
    secret = enable_totp(make_user(email=EMAIL, password=PASSWORD))
    page.goto("/app/")
    page.locator("#signin-email").fill(EMAIL)
    page.locator("#signin-password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.locator("#signin-code").fill(wrong_code(secret))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_have_text(WRONG_CODE)  # the last answer the page waited for
    assert_clean(page, allow_statuses=(400,))  # the refused code; the page check starts from here
    # No wait_for_quiet_network here: the app fetches /api/auth/csrf/ without reading the answer's body,
    # and chromium never reports such a request finished (Playwright gets its response, no requestfinished).


# (screenshot name, how a person gets there, whether that left the page settled)
PAGES = [
    ("mfa-security-off", _security_off, False),
    ("mfa-totp-setup", _totp_setup, False),
    ("mfa-totp-setup-wrong-code", _totp_setup_wrong_code, False),
    ("mfa-recovery-codes", _recovery_codes, False),
    ("mfa-security-on", _security_on, False),
    ("mfa-security-staff-sent-to-enrol", _security_staff_sent_to_enrol, False),
    ("mfa-login-code", _login_code, False),
    ("mfa-login-code-refused", _login_code_refused, False),
    ("mfa-reauthenticate-code", _reauthenticate_with_code, False),
    ("mfa-app-second-step", _app_second_step, True),
]


@pytest.mark.parametrize(("name", "reach", "settled"), PAGES, ids=[name for name, _, _ in PAGES])
def test_page_is_clean_accessible_and_fits_320px(name, reach, settled, page, site, make_user):
    reach(page, make_user)
    check_the_page(page, name, settled=settled)
