"""The life of an account, as a person lives it in a browser: from signing up to deleting the account,
through the todo app, two tabs, a second device, a forgotten password and a new address.

The journey is told in chapters; each starts from what it needs (an account made in the database,
signed in through the browser) and shares nothing with the others, so that one broken step does not
hide the rest. Emails are read from django.core.delivered() (the live server runs in this process);
the database is read only to confirm what the person was told.
"""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import DeviceSession, User
from tests.support.accounts import STRONG_PASSWORD
from tests.support.browser import (
    assert_clean,
    email_to,
    heading,
    path_of,
    sign_in_in_app,
    sign_in_on_page,
    wait_for_quiet_network,
)
from tests.support.mail import links_in
from todos.models import Todo

EMAIL = "sam@example.com"
NEW_EMAIL = "sam.elsewhere@example.com"
PASSWORD = STRONG_PASSWORD
RESET_PASSWORD = "a fresh passphrase chosen after a reset"
CHANGED_PASSWORD = "and a third passphrase for good measure"
PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36"
)
WRONG = "The email address or password is not correct."


def open_link(page, message) -> None:
    (link,) = links_in(message)
    page.goto(path_of(link))


def todo_items(page):
    return page.get_by_role("list", name="Todos").get_by_role("listitem")


def live_sessions(email: str):
    return DeviceSession.objects.filter(user__email=email, revoked_at__isnull=True)


@pytest.fixture
def sam(site, make_user):
    """A verified account, as it is after signing up and opening the verification link."""
    return make_user(email=EMAIL, password=PASSWORD, name="Sam")


def test_sign_up_verify_and_land_in_the_app(new_context, site):
    page = new_context().new_page()
    page.goto("/accounts/signup/")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Name", exact=True).fill("Sam")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(heading(page, "Check your inbox")).to_be_visible()
    expect(page.get_by_text("Open the link in it to verify your address")).to_be_visible()
    assert_clean(page)

    # Not verified yet: the right password is answered with a new-link offer, not a session.
    page.goto("/accounts/login/?next=/app/")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_text("Please verify your email address before signing in.")).to_be_visible()

    open_link(page, email_to(EMAIL, "Verify your email address"))
    expect(heading(page, "Verify your email address")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/accounts/verify-email/confirm/$"))  # the token left the address bar
    page.get_by_role("button", name="Verify my email address").click()
    expect(page.get_by_text("Your email address is verified.")).to_be_visible()
    expect(heading(page, "Sign in")).to_be_visible()
    assert User.objects.get(email=EMAIL).email_verified
    assert_clean(page)

    sign_in_on_page(page, EMAIL, PASSWORD, next_path="/app/")
    expect(page).to_have_url(f"{site}/app/")
    expect(heading(page, "Your todos")).to_be_visible()  # the app started from the refresh cookie
    expect(page.get_by_role("navigation", name="App")).to_be_visible()
    expect(page.get_by_text("No todos yet. Add your first one above.")).to_be_visible()
    assert_clean(page)


def test_todos_in_the_app_survive_reloads_and_two_tabs(new_context, site, sam):
    laptop = new_context()
    page = laptop.new_page()
    sign_in_on_page(page, EMAIL, PASSWORD, next_path="/app/")
    expect(page).to_have_url(f"{site}/app/")
    expect(heading(page, "Your todos")).to_be_visible()

    # --- Add, edit, complete, filter, delete ---------------------------------------------
    todos = todo_items(page)
    expect(page.get_by_text("No todos yet. Add your first one above.")).to_be_visible()

    page.get_by_label("New todo").fill("   ")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text("Give the todo a title.")
    expect(page.get_by_label("New todo")).to_be_focused()

    page.get_by_label("New todo").fill("Buy milk")
    page.get_by_label("Notes (optional)").fill("Two litres")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(todos).to_have_count(1)
    expect(page.get_by_role("alert")).to_have_count(0)
    page.get_by_label("New todo").fill("Call mum")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(todos).to_have_count(2)
    expect(todos.first).to_contain_text("Call mum")  # newest first
    expect(todos.filter(has_text="Buy milk")).to_contain_text("Two litres")
    expect(page.get_by_text("No todos yet.")).to_be_hidden()

    page.get_by_role("button", name="Edit “Buy milk”").click()
    expect(page.get_by_label("Title", exact=True)).to_be_focused()
    page.get_by_label("Title", exact=True).fill("Buy oat milk")
    page.get_by_label("Notes", exact=True).fill("One litre, barista edition")
    page.get_by_role("button", name="Save").click()
    expect(todos.filter(has_text="Buy oat milk")).to_contain_text("One litre, barista edition")
    expect(page.get_by_text("Buy milk", exact=True)).to_have_count(0)

    page.get_by_role("checkbox", name="Buy oat milk").check()
    expect(todos.filter(has_text="Buy oat milk")).to_have_class(re.compile(r"\bdone\b"))
    expect(page.get_by_role("checkbox", name="Buy oat milk")).to_be_checked()

    page.get_by_role("radio", name="Open").check()
    expect(todos).to_have_count(1)
    expect(todos.first).to_contain_text("Call mum")
    page.get_by_role("radio", name="Completed").check()
    expect(todos).to_have_count(1)
    expect(todos.first).to_contain_text("Buy oat milk")
    page.get_by_role("radio", name="All").check()
    expect(todos).to_have_count(2)

    page.get_by_role("button", name="Delete “Buy oat milk”").click()
    expect(todos).to_have_count(1)
    page.get_by_role("radio", name="Completed").check()
    expect(page.get_by_text("No completed todos yet.")).to_be_visible()
    expect(todos).to_have_count(0)
    page.get_by_role("radio", name="All").check()
    expect(todos).to_have_count(1)
    assert list(Todo.objects.filter(owner=sam).values_list("title", "notes", "completed")) == [("Call mum", "", False)]
    assert_clean(page)

    # --- A reload keeps the session ---------------------------------------------------------
    page.reload()
    expect(heading(page, "Your todos")).to_be_visible()
    expect(todos).to_have_count(1)
    expect(todos.first).to_contain_text("Call mum")
    assert_clean(page)

    # --- Two tabs reloading at the same moment both stay signed in --------------------------
    second_tab = laptop.new_page()
    second_tab.goto("/app/")
    expect(heading(second_tab, "Your todos")).to_be_visible()
    with page.expect_navigation(), second_tab.expect_navigation():
        page.evaluate("setTimeout(() => location.reload(), 0)")
        second_tab.evaluate("setTimeout(() => location.reload(), 0)")
    for tab in (page, second_tab):
        expect(heading(tab, "Your todos")).to_be_visible()
        expect(todo_items(tab)).to_have_count(1)
        assert_clean(tab)
    assert DeviceSession.objects.filter(user=sam).count() == 1
    assert live_sessions(EMAIL).count() == 1
    # The cookie the browser holds now is the live one: a third refresh works.
    third = page.evaluate(
        """async () => {
          const csrf = decodeURIComponent(document.cookie.match(/(?:^|; )csrftoken=([^;]+)/)[1]);
          const response = await fetch("/api/auth/refresh/", {method: "POST", headers: {"X-CSRFToken": csrf}});
          return response.status;
        }"""
    )
    assert third == 200
    assert live_sessions(EMAIL).count() == 1
    second_tab.reload()
    expect(heading(second_tab, "Your todos")).to_be_visible()
    assert_clean(second_tab)


def test_ending_another_device_from_the_app(new_context, sam):
    page = new_context().new_page()
    sign_in_on_page(page, EMAIL, PASSWORD, next_path="/app/")
    expect(heading(page, "Your todos")).to_be_visible()

    phone_page = new_context(width=390, height=800, user_agent=PHONE_UA).new_page()
    phone_page.goto("/app/")
    sign_in_in_app(phone_page, EMAIL, PASSWORD)
    assert live_sessions(EMAIL).count() == 2

    # The laptop signed in longer ago than the re-authentication window. On SQLite the live server
    # shares this thread's connection, so write only once neither page has a request in flight.
    wait_for_quiet_network(page)
    wait_for_quiet_network(phone_page)
    live_sessions(EMAIL).exclude(user_agent=PHONE_UA).update(authenticated_at=timezone.now() - timedelta(minutes=10))
    page.get_by_role("link", name="Devices").click()
    expect(heading(page, "Your devices")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out of this device")).to_be_visible()
    end_phone = page.get_by_role("button", name=re.compile(r"^End this session on .*Android"))
    expect(end_phone).to_have_count(1)
    end_phone.click()
    expect(page.get_by_text("For your security, enter your password again to continue.")).to_be_visible()
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    page.get_by_label("Password", exact=True).fill("not my password")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_have_text("That password is not correct.")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(end_phone).to_have_count(0)
    expect(page.locator("#announcer")).to_have_text(re.compile(r"^Ended the session on .*Android"))
    expect(page.get_by_role("button", name="Sign out of this device")).to_be_visible()
    assert live_sessions(EMAIL).count() == 1
    # The refused DELETE (403: password needed) and the wrong password (400) were meant to happen.
    assert_clean(page, allow_statuses=(400, 403))

    # The phone learns it at its next request.
    phone_page.get_by_label("New todo").fill("Written after the session ended")
    phone_page.get_by_role("button", name="Add", exact=True).click()
    expect(heading(phone_page, "Sign in to your todos")).to_be_visible()
    expect(phone_page.get_by_role("navigation", name="App")).to_be_hidden()
    assert not Todo.objects.filter(title="Written after the session ended").exists()
    assert_clean(phone_page, allow_statuses=(401,))

    # The laptop carries on.
    page.get_by_role("link", name="Todos").click()
    page.get_by_label("New todo").fill("Written on the laptop")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(todo_items(page)).to_have_count(1)
    assert_clean(page)


def test_a_forgotten_password_ends_every_session(new_context, site, sam):
    page = new_context().new_page()
    sign_in_on_page(page, EMAIL, PASSWORD, next_path="/app/")
    expect(heading(page, "Your todos")).to_be_visible()

    phone_page = new_context(width=390, height=800, user_agent=PHONE_UA).new_page()
    phone_page.goto("/app/")
    expect(heading(phone_page, "Sign in to your todos")).to_be_visible()
    phone_page.get_by_role("link", name="Forgot your password?").click()
    expect(heading(phone_page, "Forgot your password?")).to_be_visible()
    phone_page.get_by_label("Email address").fill(EMAIL)
    phone_page.get_by_role("button", name="Send the link").click()
    expect(heading(phone_page, "Check your inbox")).to_be_visible()
    open_link(phone_page, email_to(EMAIL, "Reset your Todo password"))
    expect(heading(phone_page, "Choose a new password")).to_be_visible()
    expect(phone_page).to_have_url(re.compile(r"/accounts/password/reset/set-password/$"))
    phone_page.get_by_label("New password", exact=True).fill(RESET_PASSWORD)
    phone_page.get_by_label("New password again").fill(RESET_PASSWORD)
    phone_page.get_by_role("button", name="Change my password").click()
    expect(phone_page.get_by_text("Your password has been changed. Sign in with the new password.")).to_be_visible()
    expect(phone_page).to_have_url(re.compile(r"/accounts/login/$"))
    assert_clean(phone_page)
    assert live_sessions(EMAIL).count() == 0

    # The laptop's session is gone, in the app and on the pages.
    assert_clean(page)
    page.goto("/app/")
    expect(heading(page, "Sign in to your todos")).to_be_visible()
    assert_clean(page, allow_statuses=(401,))  # the refresh the app tried was refused
    page.goto("/accounts/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/accounts/$"))
    expect(heading(page, "Sign in")).to_be_visible()

    # The old password no longer works; the new one does.
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text(WRONG)
    page.get_by_label("Password", exact=True).fill(RESET_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(heading(page, "Your account")).to_be_visible()
    expect(page).to_have_url(f"{site}/accounts/")
    assert_clean(page)


def test_changing_the_email_address(new_context, sam):
    page = new_context().new_page()
    sign_in_on_page(page, EMAIL, PASSWORD)
    expect(heading(page, "Your account")).to_be_visible()

    page.get_by_role("link", name="Change your email address").click()
    expect(heading(page, "Change your email address")).to_be_visible()
    page.get_by_label("New email address").fill(NEW_EMAIL)
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_role("button", name="Send the confirmation link").click()
    expect(heading(page, "Check your inbox")).to_be_visible()
    expect(page.get_by_text("We have sent a confirmation link to the new address.")).to_be_visible()
    assert User.objects.filter(email=EMAIL).exists()  # nothing changes until the link is opened

    open_link(page, email_to(NEW_EMAIL, "Confirm your new email address"))
    expect(heading(page, "Confirm your new email address")).to_be_visible()
    page.get_by_role("button", name="Confirm my new address").click()
    expect(heading(page, "Your account")).to_be_visible()
    expect(page.get_by_text("Your email address is verified.")).to_be_visible()
    expect(page.locator(".details")).to_contain_text(NEW_EMAIL)
    email_to(EMAIL, "The email address of your Todo account was changed")  # the old address is told
    assert_clean(page)

    # Signed out, the old address is no longer an account; the new one signs in.
    page.get_by_role("navigation", name="Account").get_by_role("button", name="Sign out").click()
    expect(
        page.get_by_role("navigation", name="Account").get_by_role("link", name="Sign in", exact=True)
    ).to_be_visible()
    page.goto("/accounts/login/")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text(WRONG)
    sign_in_on_page(page, NEW_EMAIL, PASSWORD)
    expect(heading(page, "Your account")).to_be_visible()
    assert_clean(page)


def test_changing_the_password_then_deleting_the_account(new_context, site, sam):
    page = new_context().new_page()
    sign_in_on_page(page, EMAIL, PASSWORD)
    expect(heading(page, "Your account")).to_be_visible()

    page.get_by_role("link", name="Change your password").click()
    expect(heading(page, "Change your password")).to_be_visible()
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill(CHANGED_PASSWORD)
    page.get_by_label("New password again").fill(CHANGED_PASSWORD)
    page.get_by_role("button", name="Change my password").click()
    expect(heading(page, "Your account")).to_be_visible()  # this device stays signed in
    expect(page.get_by_text(re.compile(r"^Your password has been changed\."))).to_be_visible()
    email_to(EMAIL, "Your Todo password was changed")
    assert_clean(page)

    page.goto("/app/")  # the app follows the same device session
    expect(heading(page, "Your todos")).to_be_visible()
    page.get_by_label("New todo").fill("Cancel the newspaper")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(todo_items(page)).to_have_count(1)
    page.get_by_role("link", name="Account").click()

    page.get_by_role("link", name="Delete your account").click()
    expect(heading(page, "Delete your account")).to_be_visible()
    page.get_by_label("Current password").fill(CHANGED_PASSWORD)
    page.get_by_label("I understand that my account and all my todos will be deleted for good.").check()
    page.get_by_role("button", name="Delete my account").click()
    expect(page).to_have_url(f"{site}/")
    expect(
        page.get_by_role("navigation", name="Account").get_by_role("link", name="Sign in", exact=True)
    ).to_be_visible()
    assert not User.objects.filter(email=EMAIL).exists()
    assert not Todo.objects.exists()
    email_to(EMAIL, "Your Todo account was deleted")
    assert_clean(page)

    page.goto("/accounts/login/")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(CHANGED_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text(WRONG)
    page.goto("/app/")
    expect(heading(page, "Sign in to your todos")).to_be_visible()
    assert_clean(page)  # no session hint left behind, so the app tried no refresh


@pytest.mark.parametrize(
    ("action", "confirmation"),
    [("sign out", "You are signed out."), ("delete the account", "Your account has been deleted.")],
)
def test_the_pages_confirm_signing_out_and_deleting(action, confirmation, new_context, site, sam):
    page = new_context().new_page()
    sign_in_on_page(page, EMAIL, PASSWORD)
    if action == "sign out":
        page.get_by_role("navigation", name="Account").get_by_role("button", name="Sign out").click()
    else:
        page.goto("/accounts/delete/")
        page.get_by_label("Current password").fill(PASSWORD)
        page.get_by_label("I understand that my account and all my todos will be deleted for good.").check()
        page.get_by_role("button", name="Delete my account").click()
    expect(page).to_have_url(f"{site}/")
    expect(page.get_by_role("status")).to_have_text(confirmation)


def test_a_bad_link_page_sends_a_new_verification_link(new_context, make_user):
    make_user(email=EMAIL, password=PASSWORD, verified=False)
    page = new_context().new_page()
    page.goto("/accounts/verify-email/an-old-or-mistyped-token/")
    expect(heading(page, "This verification link cannot be used")).to_be_visible()
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_role("button", name="Send a new verification link").click()
    expect(heading(page, "Check your inbox")).to_be_visible()
    email_to(EMAIL, "Verify your email address")


def test_signing_out_in_one_tab_signs_out_every_tab(new_context, sam):
    laptop = new_context()
    first = laptop.new_page()
    first.goto("/app/")
    sign_in_in_app(first, EMAIL, PASSWORD)
    second = laptop.new_page()
    second.goto("/app/")
    expect(heading(second, "Your todos")).to_be_visible()

    first.get_by_role("navigation", name="App").get_by_role("button", name="Sign out").click()

    for tab in (first, second):
        expect(heading(tab, "Sign in to your todos")).to_be_visible()
        expect(tab.get_by_role("navigation", name="App")).to_be_hidden()
    assert live_sessions(EMAIL).count() == 0
    second.reload()
    expect(heading(second, "Sign in to your todos")).to_be_visible()
    for tab in (first, second):
        assert_clean(tab)
