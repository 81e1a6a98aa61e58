"""What only a real browser can check: cookie visibility, console and CSP cleanliness, accessibility
(axe-core), keyboard-only use, and layouts 320 px wide. Screenshots land in artifacts/screenshots/."""

import re

import pytest
from playwright.sync_api import expect

from tests.support.accounts import STRONG_PASSWORD
from tests.support.browser import (
    NARROW,
    assert_accessible,
    assert_clean,
    forget_console,
    horizontal_overflow,
    screenshot,
    sign_in_in_app,
    sign_in_on_page,
    wait_for_quiet_network,
)
from tests.support.mfa import enable_totp, totp_code

EMAIL = "alice@example.com"
PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36"
)
LONG_WORD = "Supercalifragilisticexpialidocious" * 4  # no break opportunity: must wrap, not scroll


@pytest.fixture
def alice(site, make_user):
    """A verified user with a few todos and a second device (a phone) signed in."""
    from accounts.flows.device_sessions import start_device_session
    from todos.models import Todo

    user = make_user(email=EMAIL, name="Alice")
    Todo.objects.create(owner=user, title="Buy milk", notes="Two litres, semi-skimmed.")
    Todo.objects.create(owner=user, title="Call the plumber", completed=True)
    Todo.objects.create(owner=user, title=LONG_WORD, notes=LONG_WORD)
    start_device_session(user=user, ip_address="203.0.113.7", user_agent=PHONE_UA)
    return user


@pytest.fixture
def staff(site, make_user):
    """A superuser with an authenticator app (the admin opens only after its code); ``totp_secret`` is its key."""
    user = make_user(email="support@example.com", name="Support", is_staff=True, is_superuser=True)
    user.totp_secret = enable_totp(user)
    return user


def _focus_is_visible(page) -> bool:
    return page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"


def _tab_to(page, selector: str, presses: int = 15) -> None:
    """Press Tab (and only Tab) until the element matching ``selector`` has the focus."""
    for _ in range(presses):
        if page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


# --- The refresh cookie ------------------------------------------------------------


@pytest.mark.parametrize("where", ["app", "pages"])
def test_the_refresh_cookie_is_invisible_to_scripts(where, page, context, site, alice):
    if where == "app":
        page.goto("/app/")
        sign_in_in_app(page, EMAIL, STRONG_PASSWORD)
    else:
        sign_in_on_page(page, EMAIL, STRONG_PASSWORD, next_path="/app/")
        expect(page.get_by_role("heading", name="Your todos", exact=True)).to_be_visible()

    script_cookies = page.evaluate("document.cookie")
    assert "todo_refresh" not in script_cookies
    assert "todo_has_session=1" in script_cookies  # the harmless hint is what scripts get
    refresh = {cookie["name"]: cookie for cookie in context.cookies()}["todo_refresh"]
    assert refresh["httpOnly"] is True
    assert refresh["path"] == "/api/auth/"
    assert refresh["sameSite"] == "Strict"
    assert_clean(page)


# --- Every page: clean, accessible, and readable 320 px wide ----------------------------

ANYONE, USER, STAFF = "anyone", "user", "staff"

# (screenshot name, path, who looks, what shows the page is ready, statuses it is meant to answer)
PAGES = [
    ("home", "/", ANYONE, "heading=Todo", ()),
    ("signup", "/accounts/signup/", ANYONE, "heading=Create an account", ()),
    ("login", "/accounts/login/", ANYONE, "heading=Sign in", ()),
    ("password-reset", "/accounts/password/reset/", ANYONE, "heading=Forgot your password?", ()),
    ("resend-verification", "/accounts/verify-email/resend/", ANYONE, "heading=Resend the verification email", ()),
    ("check-inbox-signup", "/accounts/signup/done/", ANYONE, "heading=Check your inbox", ()),
    ("check-inbox-verification", "/accounts/verify-email/sent/", ANYONE, "heading=Check your inbox", ()),
    ("check-inbox-password-reset", "/accounts/password/reset/sent/", ANYONE, "heading=Check your inbox", ()),
    (
        "verify-email-invalid",
        "/accounts/verify-email/this-is-not-a-valid-token/",
        ANYONE,
        "heading=This verification link cannot be used",
        (400,),
    ),
    (
        "password-reset-invalid",
        "/accounts/password/reset/this-is-not-a-valid-token/",
        ANYONE,
        "heading=This reset link cannot be used",
        (400,),
    ),
    ("app-signed-out", "/app/", ANYONE, "heading=Sign in to your todos", ()),
    ("api-docs", "/api/docs/", ANYONE, "css=.swagger-ui .opblock", ()),
    ("account", "/accounts/", USER, "heading=Your account", ()),
    ("profile", "/accounts/profile/", USER, "heading=Your profile", ()),
    ("password-change", "/accounts/password/change/", USER, "heading=Change your password", ()),
    ("email-change", "/accounts/email/change/", USER, "heading=Change your email address", ()),
    ("check-inbox-email-change", "/accounts/email/change/sent/", USER, "heading=Check your inbox", ()),
    ("sessions", "/accounts/sessions/", USER, "heading=Your devices", ()),
    ("delete-account", "/accounts/delete/", USER, "heading=Delete your account", ()),
    ("reauthenticate", "/accounts/reauthenticate/", USER, "heading=Confirm it is you", ()),
    ("app-todos", "/app/", USER, "text=Call the plumber", ()),
    ("app-devices", "/app/#/devices", USER, "css=button[aria-label^='End this session on']", ()),
    ("admin", "/admin/", STAFF, "heading=Site administration", ()),
]


def _wait_until_ready(page, ready: str) -> None:
    kind, _, value = ready.partition("=")
    if kind == "heading":
        expect(page.get_by_role("heading", name=value, exact=True)).to_be_visible()
    elif kind == "text":
        expect(page.get_by_text(value, exact=True)).to_be_visible()
    else:
        expect(page.locator(value).first).to_be_visible()


@pytest.mark.parametrize(("name", "path", "who", "ready", "statuses"), PAGES, ids=[p[0] for p in PAGES])
def test_page_is_clean_accessible_and_fits_320px(name, path, who, ready, statuses, page, request):
    if who == USER:
        request.getfixturevalue("alice")
        sign_in_on_page(page, EMAIL, STRONG_PASSWORD)
    elif who == STAFF:
        staff = request.getfixturevalue("staff")
        page.goto("/accounts/login/")
        page.get_by_label("Email address").fill(staff.email)
        page.get_by_label("Password", exact=True).fill(STRONG_PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        expect(page).to_have_url(re.compile(r"/accounts/login/mfa/$"))
        page.get_by_label("Code", exact=True).fill(totp_code(staff.totp_secret))
        page.get_by_role("button", name="Verify").click()
        expect(page).not_to_have_url(re.compile(r"/accounts/login/"))
    else:
        request.getfixturevalue("site")
    forget_console(page)

    page.goto(path)
    _wait_until_ready(page, ready)
    wait_for_quiet_network(page)

    assert_clean(page, allow_statuses=statuses)
    screenshot(page, name)
    page.set_viewport_size(NARROW)
    assert horizontal_overflow(page) <= 0, f"{path} scrolls sideways at 320 px"
    assert_accessible(page)
    assert_clean(page, allow_statuses=statuses)  # resizing and axe changed nothing either


# --- Keyboard only ---------------------------------------------------------------------


def test_keyboard_only_sign_in_on_the_sign_in_page(page, alice):
    page.goto("/accounts/login/?next=/accounts/")

    _tab_to(page, "#id_email")
    assert _focus_is_visible(page)
    page.keyboard.type(EMAIL)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "id_password"
    assert _focus_is_visible(page)
    page.keyboard.type(STRONG_PASSWORD)
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", name="Your account", exact=True)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/accounts/$"))
    assert_clean(page)


def test_keyboard_only_sign_in_in_the_app(page, alice):
    page.goto("/app/")
    expect(page.get_by_role("heading", name="Sign in to your todos", exact=True)).to_be_focused()

    _tab_to(page, "#signin-email")
    assert _focus_is_visible(page)
    page.keyboard.type(EMAIL)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "signin-password"
    assert _focus_is_visible(page)
    page.keyboard.type(STRONG_PASSWORD)
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", name="Your todos", exact=True)).to_be_visible()
    expect(page.get_by_text("Buy milk", exact=True)).to_be_visible()
    # The view change moved the focus to the new heading; Tab goes on from there, visibly.
    expect(page.get_by_role("heading", name="Your todos", exact=True)).to_be_focused()
    _tab_to(page, "#new-todo-title")
    assert _focus_is_visible(page)
    page.keyboard.type("Typed without a mouse")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Typed without a mouse", exact=True)).to_be_visible()
    assert_clean(page)


def test_the_skip_link_appears_on_the_first_tab(page, site):
    page.goto("/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    assert _focus_is_visible(page)


# --- 320 px wide -----------------------------------------------------------------------


def test_the_app_needs_no_sideways_scrolling_at_320px(new_context, alice):
    page = new_context(width=NARROW["width"], height=640).new_page()
    page.goto("/app/")
    expect(page.get_by_role("heading", name="Sign in to your todos", exact=True)).to_be_visible()
    assert horizontal_overflow(page) <= 0

    sign_in_in_app(page, EMAIL, STRONG_PASSWORD)
    page.get_by_label("New todo").fill("Another " + LONG_WORD[:150])
    page.get_by_label("Notes (optional)").fill(LONG_WORD * 3)
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_text("Another " + LONG_WORD[:150], exact=True)).to_be_visible()
    assert horizontal_overflow(page) <= 0

    page.get_by_role("button", name="Edit “Buy milk”").click()
    expect(page.get_by_label("Title", exact=True)).to_be_focused()
    assert horizontal_overflow(page) <= 0

    page.get_by_role("link", name="Devices").click()
    expect(page.get_by_role("heading", name="Your devices", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name=re.compile(r"^End this session on"))).to_be_visible()
    assert horizontal_overflow(page) <= 0
    assert_clean(page)
