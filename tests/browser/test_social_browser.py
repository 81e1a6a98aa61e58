"""Signing in with a provider in chromium: the pages and the SPA through the real local OpenID provider
(tests/support/oidc.py) and its consent page, and a refused consent.

The provider (127.0.0.1:<port>) is another origin than the live server (localhost:<port>). Its pages are
not the app's: it serves no favicon.ico and DOT's consent page links a stylesheet nothing serves (404s in
the console), so the console is checked on the app's pages only, and forgotten while the browser is at
the provider. CSP violations are recorded for every document the tab shows, so the app's form-action
(which Chromium applies to the button's POST and to the redirect to the provider that answers it) is
checked too.
"""

import re

import pytest
from playwright.sync_api import expect

from accounts.models import SocialIdentity, User
from tests.support.browser import assert_clean, forget_console, heading
from tests.support.oidc import PROVIDER_PASSWORD
from tests.support.social import CALLBACK, use_acme

ALICE = "alice@example.com"
ALICE_NAME = "Alice Liddell"
DENIED = "You did not allow the sign-in"
CALLBACK_URL = re.compile(re.escape(CALLBACK) + r"\?")

# Runs before any script of every document: hand each CSP violation to the test at once, so one in
# a document the tab has since left (the app's page whose form went to the provider) is not lost.
CSP_REPORTER = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__reportCspViolation({
    document: document.location.href,
    directive: event.violatedDirective,
    blocked: event.blockedURI,
  });
});
"""


@pytest.fixture
def acme(settings, site, provider):
    """The local provider as "acme", with its consent page; the callback the app sends is on the live server."""
    settings.SITE_URL = site  # the redirect URI (and the client registered for it) are built from SITE_URL
    use_acme(settings, provider, skip_consent=False, trust_email=True)
    return provider


@pytest.fixture
def alice_at_provider(acme) -> str:
    """Alice's account at the provider (her address verified there); her ``sub``."""
    return acme.add_user(email=ALICE, email_verified=True, name=ALICE_NAME)


@pytest.fixture
def csp_violations(context) -> list[dict]:
    """Every CSP violation in the test's tab, whichever document it happened in."""
    violations: list[dict] = []
    context.expose_binding("__reportCspViolation", lambda source, violation: violations.append(violation))
    context.add_init_script(CSP_REPORTER)
    return violations


@pytest.fixture
def console_errors(page) -> list[tuple[str, str]]:
    """The tab's console errors with where each comes from (the document's or the failed resource's URL)."""
    errors: list[tuple[str, str]] = []
    page.on(
        "console",
        lambda message: (
            errors.append((message.text, message.location.get("url") or "")) if message.type == "error" else None
        ),
    )
    return errors


def at_provider(provider, path: str) -> re.Pattern:
    return re.compile("^" + re.escape(provider.base_url + path))


def leave_for_provider(page, provider, csp_violations, console_errors) -> None:
    """Press "Sign in with Acme" on the app's page: the provider's sign-in page, and nothing refused on the way."""
    assert_clean(page)  # the app's page, before it goes
    console_errors.clear()
    page.get_by_role("button", name="Sign in with Acme", exact=True).click()
    try:
        expect(page).to_have_url(at_provider(provider, "/accounts/login/"))
    except AssertionError as stuck:  # a refused form-action keeps the page where it was: say so
        raise AssertionError(f"{stuck}\nCSP violations: {csp_violations}\nconsole errors: {console_errors}") from None
    expect(heading(page, "Sign in to the test provider")).to_be_visible()
    assert not csp_violations, f"CSP violations on the way to the provider: {csp_violations}"
    # Chromium reports a refused form-action in the console too; the provider's own pages (its missing
    # favicon.ico, DOT's missing stylesheet) are not the app's.
    not_the_providers = [(text, url) for text, url in console_errors if not url.startswith(provider.base_url + "/")]
    assert not not_the_providers, f"console errors on the way to the provider: {not_the_providers}"
    forget_console(page)


def sign_in_at_provider(page, provider, email: str) -> None:
    """Sign in on the provider's own page: its consent page next (loaded, with its missing stylesheet)."""
    form = page.locator("#login-form")
    form.get_by_label("Email").fill(email)
    form.get_by_label("Password").fill(PROVIDER_PASSWORD)
    form.get_by_role("button", name="Sign in", exact=True).click()
    expect(page).to_have_url(at_provider(provider, "/o/authorize/"))
    expect(page.get_by_role("button", name="Authorize", exact=True)).to_be_visible()
    page.wait_for_load_state("load")  # its stylesheet's 404 has reached the console
    forget_console(page)  # the provider's noise, not the app's


def answer_consent(page, button: str):
    """Press Authorize or Cancel on DOT's consent page; the app's answer at the callback."""
    with page.expect_response(CALLBACK_URL) as callback:
        page.get_by_role("button", name=button, exact=True).click()
    return callback.value


def test_signing_up_with_a_provider_on_the_pages_through_its_consent_page(
    page, site, acme, alice_at_provider, csp_violations, console_errors
):
    page.goto("/accounts/login/")
    expect(heading(page, "Sign in")).to_be_visible()
    leave_for_provider(page, acme, csp_violations, console_errors)
    sign_in_at_provider(page, acme, ALICE)

    callback = answer_consent(page, "Authorize")
    assert callback.status == 302, f"{callback.status} at {callback.url}"
    expect(page).to_have_url(f"{site}/accounts/")  # LOGIN_REDIRECT_URL: the account's home
    expect(heading(page, "Your account")).to_be_visible()
    assert_clean(page)

    user = User.objects.get(email=ALICE)
    assert user.email_verified  # the provider verified the address
    assert user.name == ALICE_NAME
    assert not user.has_usable_password()
    identity = SocialIdentity.objects.get(user=user)
    assert (identity.provider, identity.issuer, identity.subject) == ("acme", acme.issuer, alice_at_provider)

    page.goto("/accounts/security/")
    expect(heading(page, "Security")).to_be_visible()
    expect(page.get_by_role("heading", name="Sign-in providers", exact=True)).to_be_visible()
    row = page.locator("li.identity-row[data-provider='acme']")
    expect(row).to_have_count(1)
    expect(row.locator("strong")).to_have_text("Acme")
    expect(row).to_contain_text(ALICE)
    expect(row.get_by_role("button", name="Disconnect Acme", exact=True)).to_be_visible()
    assert_clean(page)
    assert not csp_violations, csp_violations


def test_signing_in_with_a_provider_in_the_app_comes_back_signed_in(
    page, site, acme, alice_at_provider, csp_violations, console_errors
):
    page.goto("/app/")
    expect(heading(page, "Sign in to your todos")).to_be_visible()
    # Fetched after the view shows (/api/auth/social/providers/).
    expect(page.get_by_role("button", name="Sign in with Acme", exact=True)).to_be_visible()
    leave_for_provider(page, acme, csp_violations, console_errors)
    sign_in_at_provider(page, acme, ALICE)

    callback = answer_consent(page, "Authorize")
    assert callback.status == 302, f"{callback.status} at {callback.url}"
    expect(page).to_have_url(f"{site}/app/")
    # The app started from the refresh cookie the callback set: the signed-in view, not its sign-in form.
    expect(heading(page, "Your todos")).to_be_visible()
    expect(page.get_by_role("navigation", name="App").get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_text("No todos yet. Add your first one above.")).to_be_visible()
    assert_clean(page)
    assert not csp_violations, csp_violations

    user = User.objects.get(email=ALICE)
    assert SocialIdentity.objects.filter(user=user, provider="acme", subject=alice_at_provider).exists()


def test_refusing_at_the_consent_page_signs_nobody_in(
    page, site, acme, alice_at_provider, csp_violations, console_errors
):
    page.goto("/accounts/login/")
    leave_for_provider(page, acme, csp_violations, console_errors)
    sign_in_at_provider(page, acme, ALICE)

    callback = answer_consent(page, "Cancel")
    assert callback.status == 400, f"{callback.status} at {callback.url}"
    expect(page).to_have_url(re.compile(re.escape(f"{site}{CALLBACK}") + r"\?.*error=access_denied"))
    expect(heading(page, "That did not work")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text(DENIED)
    expect(page.get_by_role("link", name="Back to sign in")).to_be_visible()
    assert_clean(page, allow_statuses=(400,))  # the error page's own status
    assert not csp_violations, csp_violations

    assert not User.objects.filter(email=ALICE).exists()
    assert not SocialIdentity.objects.exists()
    page.goto("/accounts/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/accounts/$"))
    assert_clean(page)
