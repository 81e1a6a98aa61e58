"""An address the ESP reported as bouncing, in Chromium: the banner on the pages and in the todo app, and
its going once a delivery comes through; the report itself arrives over HTTP at the live server."""

import base64

import requests
from playwright.sync_api import expect

from tests.support.accounts import STRONG_PASSWORD
from tests.support.browser import assert_accessible, assert_clean, sign_in_in_app, sign_in_on_page

EMAIL = "bea@example.com"
SECRET = "esp-hook:Vq7mZ2rT9wXk4Lp3"


def report(site: str, record: dict) -> None:
    """Postmark's webhook, posted to the live server as Postmark would."""
    response = requests.post(
        f"{site}/anymail/postmark/tracking/",
        json={"MessageStream": "outbound", "Email": EMAIL, "Recipient": EMAIL, "Metadata": {}, **record},
        headers={"Authorization": "Basic " + base64.b64encode(SECRET.encode()).decode()},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_a_bounced_address_is_shown_on_the_pages_and_in_the_app_until_mail_gets_through(
    new_context, site, make_user, settings
):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": SECRET}
    settings.ANYMAIL_ESP = "postmark"
    make_user(email=EMAIL, name="Bea")
    report(site, {"RecordType": "Bounce", "ID": 1, "Type": "HardBounce", "Description": "Mailbox not found."})

    page = new_context().new_page()
    sign_in_on_page(page, EMAIL, STRONG_PASSWORD)
    banner = page.get_by_role("alert").filter(has_text="is not getting through")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(EMAIL)
    banner.get_by_role("link", name="change your address").click()
    expect(page).to_have_url(f"{site}/accounts/email/change/")
    assert_accessible(page)
    assert_clean(page)

    app = new_context().new_page()
    app.goto("/app/")
    sign_in_in_app(app, EMAIL, STRONG_PASSWORD)
    app_banner = app.locator("#mail-banner")
    expect(app_banner).to_be_visible()
    expect(app_banner).to_contain_text(EMAIL)
    assert_clean(app)

    report(site, {"RecordType": "Delivery", "MessageID": "m-2", "DeliveredAt": "2099-01-01T00:00:00Z"})
    page.reload()
    expect(page.get_by_text("is not getting through")).to_have_count(0)
    app.reload()
    expect(app.get_by_role("heading", name="Your todos", exact=True)).to_be_visible()
    expect(app.locator("#mail-banner")).to_be_hidden()
    assert_clean(app)


def test_an_address_nobody_reported_shows_no_banner(new_context, make_user):
    make_user(email=EMAIL, name="Bea")
    app = new_context().new_page()
    app.goto("/app/")
    sign_in_in_app(app, EMAIL, STRONG_PASSWORD)
    expect(app.locator("#mail-banner")).to_be_hidden()
    assert_clean(app)
