"""Passkeys in chromium with its virtual authenticator: adding, signing in, the second step, removing, the SPA."""

import json
import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.flows.second_factor import has_mfa, recovery_codes_left
from accounts.models import DeviceSession, Passkey
from tests.support.accounts import STRONG_PASSWORD
from tests.support.browser import assert_clean, heading, sign_in_on_page

EMAIL = "robin@example.com"
PASSWORD = STRONG_PASSWORD
NAME = "Work laptop"
NOT_REGISTERED = "That passkey is not registered here. It may have been removed; sign in another way."
SIGN_IN_ANSWER = re.compile(r"/accounts/login/passkey/$")
SIGN_IN_OPTIONS = re.compile(r"/accounts/login/passkey/options/$")

# Runs before any script of every page: remember each navigator.credentials.get() call's mediation
# in the tab's sessionStorage (it survives the form submissions that follow a ceremony), so a test
# can tell the autofill request ("conditional") from the one a button starts ("optional").
PASSKEY_REQUEST_RECORDER = """
if (navigator.credentials) {
  const get = navigator.credentials.get.bind(navigator.credentials);
  navigator.credentials.get = (options) => {
    const calls = JSON.parse(sessionStorage.getItem("passkeyRequests") || "[]");
    calls.push({ path: location.pathname, mediation: (options && options.mediation) || "optional" });
    sessionStorage.setItem("passkeyRequests", JSON.stringify(calls));
    return get(options);
  };
}
"""


@pytest.fixture(autouse=True)
def relying_party(settings, site):
    """The live server (in this process) is the relying party: localhost, on the live server's origin."""
    settings.WEBAUTHN_RP_ID = "localhost"
    settings.WEBAUTHN_ORIGINS = [site]


@pytest.fixture
def robin(site, make_user):
    return make_user(email=EMAIL, password=PASSWORD, name="Robin")


class Authenticator:
    """Chromium's virtual authenticator for one page: a platform one (internal) that verifies its
    user. It lives as long as its CDP session; its credentials survive the page's navigations.

    With presence simulated it answers every request at once, the autofill (conditional) one too;
    without, a request waits, and stays waiting when presence comes back: only later ones are answered.
    """

    def __init__(self, page):
        self.page = page
        page.add_init_script(PASSKEY_REQUEST_RECORDER)
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("WebAuthn.enable", {"enableUI": False})
        self.id = self.cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )["authenticatorId"]

    def credentials(self) -> list[dict]:
        return self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.id})["credentials"]

    def presence(self, present: bool) -> None:
        """Whether the authenticator answers new requests on its own (as a person touching it would)."""
        self.cdp.send("WebAuthn.setAutomaticPresenceSimulation", {"authenticatorId": self.id, "enabled": present})

    def requests(self) -> list[dict]:
        """The navigator.credentials.get() calls in this tab so far: their page and mediation."""
        return json.loads(self.page.evaluate("sessionStorage.getItem('passkeyRequests') || '[]'"))

    def forget_requests(self) -> None:
        self.page.evaluate("sessionStorage.removeItem('passkeyRequests')")

    def wait_for_autofill_request(self) -> None:
        """The sign-in page has asked for a passkey in the background (conditional mediation)."""
        self.page.wait_for_function(
            """() => JSON.parse(sessionStorage.getItem("passkeyRequests") || "[]")
                       .some((call) => call.mediation === "conditional")"""
        )


@pytest.fixture
def authenticator(page):
    return Authenticator(page)


def two_factor_badge(page, state: str):
    """The security page's on/off badge (each passkey row has a badge too)."""
    return page.locator(".badge", has_text=re.compile(rf"^{state}$"))


def live_session(user) -> DeviceSession:
    sessions = list(DeviceSession.objects.live().filter(user=user).order_by("-created_at"))
    assert sessions, f"{user.email} has no live device session"
    return sessions[0]


def sign_out(page) -> None:
    page.get_by_role("navigation", name="Account").get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")


def add_passkey(page, name: str = NAME) -> list[str]:
    """Signed in recently, two-factor off: add a passkey on the security page; returns the recovery
    codes the first one brings."""
    page.goto("/accounts/security/")
    expect(heading(page, "Security")).to_be_visible()
    page.get_by_role("link", name="Add a passkey").click()
    expect(heading(page, "Add a passkey")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/accounts/security/passkeys/add/$"))
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create the passkey").click()
    expect(heading(page, "Your recovery codes")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text(f"Passkey “{name}” added.")
    items = page.locator("ul#recovery-codes li")
    expect(items).to_have_count(10)
    return [text.strip() for text in items.all_inner_texts()]


def with_a_passkey(page, authenticator) -> None:
    """Robin signed in with the password, added a passkey (the virtual authenticator holds it) and signed out."""
    sign_in_on_page(page, EMAIL, PASSWORD)
    add_passkey(page)
    page.get_by_role("link", name="I have saved them").click()
    expect(heading(page, "Security")).to_be_visible()
    sign_out(page)
    assert len(authenticator.credentials()) == 1
    authenticator.forget_requests()


def open_sign_in_page_quietly(page, authenticator, path: str = "/accounts/login/") -> None:
    """Open the sign-in page with the authenticator out of reach until its autofill request is
    waiting (that one then stays unanswered), then in reach again for what the person does next."""
    authenticator.presence(False)
    page.goto(path)
    authenticator.wait_for_autofill_request()
    authenticator.presence(True)


def sign_in_with_the_passkey_button(page, site, authenticator) -> None:
    open_sign_in_page_quietly(page, authenticator)
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page).to_have_url(f"{site}/accounts/")
    expect(heading(page, "Your account")).to_be_visible()


def amr_of(user) -> set[str]:
    return set(live_session(user).amr)


# --- Adding one ------------------------------------------------------------------------------------


def test_adding_a_passkey_on_the_security_page(page, site, robin, authenticator):
    sign_in_on_page(page, EMAIL, PASSWORD)
    expect(heading(page, "Your account")).to_be_visible()
    assert not has_mfa(robin)

    codes = add_passkey(page)
    assert len(set(codes)) == 10, codes
    assert_clean(page)

    page.get_by_role("link", name="I have saved them").click()
    expect(page).to_have_url(f"{site}/accounts/security/")
    rows = page.locator(".passkey-row")
    expect(rows).to_have_count(1)
    expect(rows.locator(".passkey-name")).to_have_text(NAME)
    expect(rows).to_contain_text("not used yet")
    expect(two_factor_badge(page, "on")).to_be_visible()
    expect(page.get_by_text("Signing in with your password also needs a passkey.")).to_be_visible()
    expect(page.locator("#recovery-codes-remaining")).to_have_text("Unused recovery codes: 10 of 10.")
    assert_clean(page)

    credentials = authenticator.credentials()
    assert len(credentials) == 1, credentials
    assert credentials[0]["isResidentCredential"] is True
    assert credentials[0]["rpId"] == "localhost"
    assert [passkey.name for passkey in Passkey.objects.filter(user=robin)] == [NAME]
    assert has_mfa(robin)
    assert recovery_codes_left(robin) == 10


# --- Signing in with one ---------------------------------------------------------------------------


def test_signing_in_with_the_passkey_button(page, site, robin, authenticator):
    with_a_passkey(page, authenticator)
    sign_in_with_the_passkey_button(page, site, authenticator)
    assert_clean(page)

    # The click ended the waiting autofill request and asked anew.
    assert [call["mediation"] for call in authenticator.requests()] == ["conditional", "optional"]
    amr = amr_of(robin)
    assert {"user", "mfa"} <= amr and {"hwk", "swk"} & amr, amr
    assert "pwd" not in amr, amr
    assert Passkey.objects.get(user=robin).last_used_at is not None


def test_signing_in_through_autofill(page, site, robin, authenticator):
    with_a_passkey(page, authenticator)
    with page.expect_request(SIGN_IN_ANSWER) as answer:
        page.goto("/accounts/login/")  # nothing clicked: the autofill request is answered
    assert answer.value.method == "POST"
    expect(page).to_have_url(f"{site}/accounts/")
    expect(heading(page, "Your account")).to_be_visible()
    assert_clean(page)

    assert authenticator.requests() == [{"path": "/accounts/login/", "mediation": "conditional"}]
    amr = amr_of(robin)
    assert {"user", "mfa"} <= amr and {"hwk", "swk"} & amr, amr


def test_a_passkey_as_the_second_step_after_the_password(page, site, robin, authenticator):
    with_a_passkey(page, authenticator)
    open_sign_in_page_quietly(page, authenticator, "/accounts/login/?next=/accounts/sessions/")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(heading(page, "Two-factor authentication")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/accounts/login/mfa/\?next=%2Faccounts%2Fsessions%2F$"))
    expect(page.get_by_text("One more step: confirm it is you with your passkey")).to_be_visible()
    assert_clean(page)

    page.get_by_role("button", name="Use your passkey").click()
    expect(page).to_have_url(f"{site}/accounts/sessions/")
    expect(heading(page, "Your devices")).to_be_visible()
    expect(page.locator("li.session.current .amr")).to_have_text("password + passkey (two-factor)")
    assert_clean(page)

    amr = amr_of(robin)
    assert {"pwd", "mfa"} <= amr and {"hwk", "swk"} & amr, amr


# --- Removing one ----------------------------------------------------------------------------------


def remove_the_passkey(page):
    expect(heading(page, "Security")).to_be_visible()
    page.locator(".passkey-row", has_text=NAME).get_by_role("button", name=f"Remove {NAME}").click()


def check_removed(page, site, robin, authenticator):
    expect(page).to_have_url(f"{site}/accounts/security/")
    expect(page.get_by_role("status")).to_have_text("Passkey removed. It no longer signs in to your account.")
    expect(page.locator(".passkey-row")).to_have_count(0)
    expect(page.get_by_text("You have no passkeys yet.")).to_be_visible()
    expect(two_factor_badge(page, "off")).to_be_visible()
    expect(page.locator("#recovery-codes-remaining")).to_have_count(0)
    assert_clean(page)
    assert not Passkey.objects.filter(user=robin).exists()
    assert not has_mfa(robin)
    assert len(authenticator.credentials()) == 1  # the site cannot delete it from the device


def test_removing_a_passkey_just_after_signing_in_with_it(page, site, robin, authenticator):
    with_a_passkey(page, authenticator)
    sign_in_with_the_passkey_button(page, site, authenticator)
    page.goto("/accounts/security/")
    remove_the_passkey(page)
    check_removed(page, site, robin, authenticator)


def test_removing_a_passkey_later_asks_for_it_again(page, site, robin, authenticator):
    with_a_passkey(page, authenticator)
    sign_in_with_the_passkey_button(page, site, authenticator)
    earlier = timezone.now() - timedelta(minutes=10)
    DeviceSession.objects.filter(pk=live_session(robin).pk).update(authenticated_at=earlier, second_factor_at=earlier)

    page.goto("/accounts/security/")
    remove_the_passkey(page)
    expect(heading(page, "Confirm it is you")).to_be_visible()
    expect(page).to_have_url(
        f"{site}/accounts/reauthenticate/?" + urlencode({"next": "/accounts/security/", "factor": "code"})
    )
    expect(page.get_by_role("status")).not_to_be_empty()  # why it asks
    assert Passkey.objects.filter(user=robin).exists()
    assert_clean(page)

    page.get_by_role("button", name="Use your passkey instead").click()
    expect(page).to_have_url(f"{site}/accounts/security/")
    session = live_session(robin)
    assert session.second_factor_at > earlier and session.authenticated_at > earlier
    assert Passkey.objects.filter(user=robin).exists()  # confirming was all; now the removal
    assert_clean(page)

    remove_the_passkey(page)
    check_removed(page, site, robin, authenticator)


# --- The SPA ---------------------------------------------------------------------------------------


def test_the_app_signs_in_with_a_passkey(page, site, robin, authenticator):
    from todos.models import Todo

    with_a_passkey(page, authenticator)
    Todo.objects.create(owner=robin, title="Water the plants")

    page.goto("/app/")
    expect(heading(page, "Sign in to your todos")).to_be_visible()
    assert_clean(page)
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(heading(page, "Your todos")).to_be_visible()
    expect(page.get_by_role("navigation", name="App")).to_be_visible()
    expect(page.get_by_text("Water the plants", exact=True)).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    assert_clean(page)

    assert authenticator.requests() == [{"path": "/app/", "mediation": "optional"}]
    amr = amr_of(robin)
    assert {"user", "mfa"} <= amr and {"hwk", "swk"} & amr, amr

    page.reload()  # a real session, kept by the refresh cookie
    expect(heading(page, "Your todos")).to_be_visible()
    assert_clean(page)


# --- Refused ---------------------------------------------------------------------------------------


def test_a_passkey_removed_meanwhile_is_refused_with_a_message(page, site, robin, authenticator):
    with_a_passkey(page, authenticator)
    Passkey.objects.all().delete()  # removed elsewhere; the device still holds it
    open_sign_in_page_quietly(page, authenticator)

    def out_of_reach_then_continue(route):
        # The sign-in page comes back, with its autofill request, which must wait this time.
        authenticator.presence(False)
        route.continue_()

    page.route(SIGN_IN_ANSWER, out_of_reach_then_continue)
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.get_by_role("status")).to_have_text(NOT_REGISTERED)
    expect(page).to_have_url(f"{site}/accounts/login/")
    expect(heading(page, "Sign in")).to_be_visible()
    expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_visible()
    expect(page.get_by_label("Email address")).to_be_visible()
    assert_clean(page)
    assert not DeviceSession.objects.filter(user=robin, revoked_at__isnull=True).exists()

    page.goto("/accounts/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/accounts/$"))


def test_the_app_shows_why_a_passkey_is_refused(page, site, robin, authenticator):
    with_a_passkey(page, authenticator)
    Passkey.objects.all().delete()

    page.goto("/app/")
    expect(heading(page, "Sign in to your todos")).to_be_visible()
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.get_by_role("alert")).to_have_text(NOT_REGISTERED)
    expect(heading(page, "Sign in to your todos")).to_be_visible()
    expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_enabled()
    expect(page.get_by_role("navigation", name="App")).to_be_hidden()
    assert_clean(page, allow_statuses=(401,))  # the refused passkey, answered as a refused password is
    assert not DeviceSession.objects.filter(user=robin, revoked_at__isnull=True).exists()
