"""Signing in with an emailed code or link, in Chromium: on the pages, in the todo app, with a second
factor, and with a link a mail scanner opened first. Emails are read from delivered() (the live server
runs in this process)."""

import re

import requests
from playwright.sync_api import expect

from accounts.models import EmailSignInCode
from tests.support.browser import assert_accessible, assert_clean, email_to, heading, path_of
from tests.support.mail import links_in
from tests.support.mfa import enable_totp, totp_code

EMAIL = "cleo@example.com"
NOBODY = "nobody@example.com"
_CODE = re.compile(r"^([A-Z0-9]{4}-[A-Z0-9]{4})$", re.MULTILINE)


def code_for(address: str = EMAIL) -> str:
    return _CODE.search(email_to(address, "sign-in code").body).group(1)


def ask_on_page(page, address: str = EMAIL) -> None:
    page.goto("/accounts/login/")
    page.get_by_role("link", name="Email me a sign-in code instead").click()
    expect(heading(page, "Sign in with an emailed code")).to_be_visible()
    page.get_by_label("Email address").fill(address)
    page.get_by_role("button", name="Email me a code").click()
    expect(heading(page, "Check your inbox")).to_be_visible()


def test_signing_in_with_the_emailed_code_on_the_pages(new_context, site, make_user):
    make_user(email=EMAIL, name="Cleo")
    page = new_context().new_page()
    ask_on_page(page)
    expect(page.get_by_text(EMAIL)).to_be_visible()
    assert_accessible(page)

    page.get_by_label("Sign-in code").fill("AAAA-AAAA")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_text("That code is not right, or it has expired.")).to_be_visible()

    page.get_by_label("Sign-in code").fill(code_for().lower())  # as someone might type it
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(heading(page, "Your account")).to_be_visible()
    expect(page).to_have_url(f"{site}/accounts/")
    assert_clean(page)


def test_the_emailed_link_signs_in_only_when_its_button_is_pressed(new_context, site, make_user):
    make_user(email=EMAIL, name="Cleo")
    page = new_context().new_page()
    ask_on_page(page)
    (link,) = links_in(email_to(EMAIL, "sign-in code"))

    # A mail scanner follows the link before the person does: it gets the page, and uses nothing up.
    scanned = requests.get(f"{site}{path_of(link)}", timeout=10)
    assert scanned.status_code == 200 and "Sign in to the account of" in scanned.text
    assert EmailSignInCode.objects.get().used_at is None

    phone = new_context(width=390, height=800).new_page()  # the person opens the email on another device
    phone.goto(path_of(link))
    expect(phone).to_have_url(re.compile(r"/accounts/login/email/confirm/$"))  # the token left the address bar
    expect(phone.get_by_text(EMAIL)).to_be_visible()
    assert_accessible(phone)
    phone.get_by_role("button", name="Sign in", exact=True).click()
    expect(heading(phone, "Your account")).to_be_visible()
    assert_clean(phone)

    # Used once: the link and the code both stop working.
    again = new_context().new_page()
    again.goto(path_of(link))
    expect(heading(again, "This sign-in link cannot be used")).to_be_visible()
    expect(again.get_by_text("This link has already been used.")).to_be_visible()
    assert_clean(again, allow_statuses=(400,))


def test_an_account_with_two_factor_authentication_still_takes_its_second_step(new_context, site, make_user):
    user = make_user(email=EMAIL, name="Cleo")
    secret = enable_totp(user)
    page = new_context().new_page()
    ask_on_page(page)
    page.get_by_label("Sign-in code").fill(code_for())
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(heading(page, "Two-factor authentication")).to_be_visible()
    expect(page.get_by_text("One more step")).to_be_visible()
    page.get_by_label("Code").fill(totp_code(secret))
    page.get_by_role("button", name="Verify the code").click()
    expect(heading(page, "Your account")).to_be_visible()
    assert_clean(page)


def test_signing_in_with_an_emailed_code_in_the_app(new_context, site, make_user):
    make_user(email=EMAIL, name="Cleo")
    app = new_context().new_page()
    app.goto("/app/")
    expect(heading(app, "Sign in to your todos")).to_be_visible()
    app.get_by_label("Email address").fill(EMAIL)
    app.get_by_role("button", name="Email me a sign-in code").click()
    expect(heading(app, "Sign in with an emailed code")).to_be_visible()
    expect(app.get_by_label("Email address")).to_have_value(EMAIL)
    app.get_by_role("button", name="Email me a code").click()
    expect(heading(app, "Check your inbox")).to_be_visible()
    assert_accessible(app)

    app.get_by_label("Sign-in code").fill("BBBB-BBBB")
    app.get_by_role("button", name="Sign in", exact=True).click()
    expect(app.get_by_role("alert")).to_contain_text("That code is not right, or it has expired.")
    app.get_by_label("Sign-in code").fill(code_for())
    app.get_by_role("button", name="Sign in", exact=True).click()
    expect(heading(app, "Your todos")).to_be_visible()
    expect(app.get_by_role("navigation", name="App")).to_be_visible()
    assert_clean(app, allow_statuses=(400,))  # the wrong code's answer


def test_an_address_without_an_account_looks_the_same_and_gets_told(new_context, site):
    app = new_context().new_page()
    app.goto("/app/")
    app.get_by_role("button", name="Email me a sign-in code").click()
    app.get_by_label("Email address").fill(NOBODY)
    app.get_by_role("button", name="Email me a code").click()
    expect(heading(app, "Check your inbox")).to_be_visible()
    expect(app.get_by_text(NOBODY)).to_be_visible()
    assert email_to(NOBODY, "No Todo account uses this address")
    app.get_by_label("Sign-in code").fill("CCCC-CCCC")
    app.get_by_role("button", name="Sign in", exact=True).click()
    expect(app.get_by_role("alert")).to_contain_text("That code is not right, or it has expired.")
    assert_clean(app, allow_statuses=(400,))
