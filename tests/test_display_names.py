"""Display names are one line of printable text everywhere, and emails greet only a name their recipient chose."""

from collections.abc import Callable
from dataclasses import dataclass
from html import escape

import pytest
from django.test import Client
from django.utils import timezone

from accounts.mail import greeting_name
from accounts.models import User
from tests.support.accounts import STRONG_PASSWORD, force_page_login
from tests.support.api import ME_URL, access_token_for, api_client, bearer, login, patch_json, post_json
from tests.support.mail import html_of, mails_to
from tests.support.pages import browser
from tests.support.pages import submit as submit_form

pytestmark = pytest.mark.django_db

ALICE = "alice@example.com"
BOB = "bob@example.com"
NEWCOMER = "newcomer@example.com"
NEW_ADDRESS = "chosen.by.intruder@example.net"
OWNER_NAME = "Ada Lovelace"

SIGNUP_PAGE = "/accounts/signup/"
PROFILE_PAGE = "/accounts/profile/"
EMAIL_CHANGE_PAGE = "/accounts/email/change/"
REGISTER_URL = "/api/auth/register/"
EMAIL_CHANGE_URL = "/api/auth/email/change/"
RESET_URL = "/api/auth/password/reset/"
RESEND_URL = "/api/auth/email/verify/resend/"
ADMIN_USERS = "/admin/accounts/user/"

# The name from the attack record: it writes the intruder's own paragraph into
# a plain-text email sent to an address the intruder chose.
REPRODUCTION = "Bob,\n\nURGENT: your account is locked, unlock it at https://evil.example/unlock"
INJECTED = "URGENT"

NOT_ONE_PRINTABLE_LINE = {
    "line feed": "Bob\nSmith",
    "carriage return": "Bob\rSmith",
    "tab": "Bob\tSmith",
    "bell (a control)": "Bob\x07Smith",
    "line separator U+2028": "Bob\u2028Smith",
    "paragraph separator U+2029": "Bob\u2029Smith",
    "right-to-left override U+202E": "Bob\u202eSmith",
    "left-to-right isolate U+2066": "Bob\u2066Smith",
    "right-to-left mark U+200F": "Bob\u200fSmith",
    "the reproduction": REPRODUCTION,
}
REAL_NAMES = {
    "diaeresis": "Zoë",
    "accents and a space": "José María",
    "Persian with ZWNJ": "محمد\u200cرضا",
    "emoji family with ZWJ": "👨\u200d👩\u200d👧",
    "an emoji newer than this Python's Unicode database": "Shaky \U0001fae8",
    "150 characters": "n" * 150,
}


# --- Front ends -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrontEnd:
    """One way a person sets a display name: how to send one, how it answers, what is on record."""

    kind: str  # "page" or "api"
    send: Callable[[str], object]
    accepted_status: int
    stored_name: Callable[[], str | None]  # None: no account was created
    name_before: str | None


def submit(client: Client, path: str, data: dict):
    """Post a page form the way the browser does: after loading it, with the CSRF token of its cookie."""
    return submit_form(client, path, data, open_first=True)


def signup_on_page(name: str, email: str = NEWCOMER):
    data = {"email": email, "name": name, "password1": STRONG_PASSWORD, "password2": STRONG_PASSWORD}
    return submit(browser(), SIGNUP_PAGE, data)


def signup_through_api(name: str, email: str = NEWCOMER):
    return post_json(api_client(), REGISTER_URL, {"email": email, "password": STRONG_PASSWORD, "name": name})


def name_of(email: str) -> str | None:
    return User.objects.filter(email=email).values_list("name", flat=True).first()


def signed_in_browser(user: User) -> Client:
    client = browser()
    force_page_login(client, user)
    return client


def profile_page_of(user: User) -> Callable[[str], object]:
    page = signed_in_browser(user)
    return lambda name: submit(page, PROFILE_PAGE, {"name": name})


def profile_api_of(user: User) -> Callable[[str], object]:
    access = access_token_for(user)
    return lambda name: patch_json(api_client(), ME_URL, {"name": name}, **bearer(access))


@pytest.fixture(params=["sign-up page", "sign-up API", "profile page", "profile API"])
def front_end(request, make_user) -> FrontEnd:
    if request.param == "sign-up page":
        return FrontEnd("page", signup_on_page, 302, lambda: name_of(NEWCOMER), None)
    if request.param == "sign-up API":
        return FrontEnd("api", signup_through_api, 202, lambda: name_of(NEWCOMER), None)
    alice = make_user(email=ALICE, name="Alice")
    if request.param == "profile page":
        return FrontEnd("page", profile_page_of(alice), 302, lambda: name_of(ALICE), "Alice")
    return FrontEnd("api", profile_api_of(alice), 200, lambda: name_of(ALICE), "Alice")


def assert_name_refused(front_end: FrontEnd, response, code: str) -> None:
    """A page shows the form again with ``code`` on the name field; the API answers 400, ``code``, about ``name``."""
    if front_end.kind == "page":
        assert response.status_code == 200, response.status_code
        form = response.context["form"]
        assert form.has_error("name", code), form.errors.as_data()
        html = response.content.decode()
        assert all(escape(message) in html for message in form.errors["name"])
    else:
        assert response.status_code == 400, response.content
        body = response.json()
        assert body["code"] == code, body
        assert set(body["fields"]) == {"name"}, body


# --- Mail helpers -----------------------------------------------------------------------------------


def assert_greets_no_one(message, *names: str) -> None:
    """The email opens with a bare "Hello," (text and HTML), and none of ``names`` appears anywhere in it."""
    html = html_of(message)
    assert message.body.startswith("Hello,\n"), message.body[:80]
    assert "<p>Hello,</p>" in html
    for name in names:
        for part in name.split():
            assert part not in message.subject and part not in message.body, part
            assert part not in html and escape(part) not in html, part


def assert_greets(message, name: str) -> None:
    assert message.body.startswith(f"Hello {name},\n"), message.body[:80]
    assert f"<p>Hello {escape(name)},</p>" in html_of(message)


def nothing_injected(mailoutbox) -> bool:
    return not any(
        INJECTED in text for message in mailoutbox for text in (message.subject, message.body, html_of(message))
    )


# --- Which names each front end takes -------------------------------------------------------------------


@pytest.mark.parametrize("name", NOT_ONE_PRINTABLE_LINE.values(), ids=NOT_ONE_PRINTABLE_LINE.keys())
def test_a_name_that_is_not_one_printable_line_is_refused_and_nothing_happens(front_end, name, mailoutbox):
    assert_name_refused(front_end, front_end.send(name), "invalid_name")
    assert front_end.stored_name() == front_end.name_before
    assert mailoutbox == []


def test_a_name_with_a_nul_is_refused_by_the_framework_before_the_name_rule(front_end, mailoutbox):
    # Django forms and DRF both refuse NUL themselves, with their own code; never a 500.
    code = "null_characters_not_allowed" if front_end.kind == "page" else "invalid_input"
    assert_name_refused(front_end, front_end.send("Bob\x00Smith"), code)
    assert front_end.stored_name() == front_end.name_before
    assert mailoutbox == []


@pytest.mark.parametrize(
    ("name", "page_code"), [("n" * 151, "max_length"), ("     ", "required")], ids=["151 characters", "only spaces"]
)
def test_an_overlong_or_blank_name_is_refused(front_end, name, page_code, mailoutbox):
    assert_name_refused(front_end, front_end.send(name), page_code if front_end.kind == "page" else "invalid_input")
    assert front_end.stored_name() == front_end.name_before
    assert mailoutbox == []


@pytest.mark.parametrize("name", REAL_NAMES.values(), ids=REAL_NAMES.keys())
def test_real_names_are_accepted_and_stored_as_typed(front_end, name):
    response = front_end.send(name)
    assert response.status_code == front_end.accepted_status, response.content
    assert front_end.stored_name() == name


# --- Whom emails greet ----------------------------------------------------------------------------------


def test_only_the_accounts_own_verified_address_is_greeted_by_name(make_user):
    # No front end mails an account's name to another address today; this guards the rule itself.
    owner = make_user(email=ALICE, name=OWNER_NAME)
    unproven = make_user(email=BOB, name="Bob Unproven", verified=False)
    assert greeting_name(owner, ALICE) == OWNER_NAME
    assert greeting_name(owner, NEW_ADDRESS) == ""
    assert greeting_name(unproven, BOB) == ""
    assert greeting_name(None, BOB) == ""


@pytest.mark.parametrize(
    ("sign_up", "accepted"),
    [pytest.param(signup_on_page, 302, id="page"), pytest.param(signup_through_api, 202, id="API")],
)
def test_the_verification_email_after_sign_up_greets_no_one(sign_up, accepted, mailoutbox):
    # Whoever signs up types the name, and may not own the address it goes to.
    assert sign_up("Quentin Blake").status_code == accepted
    [message] = mails_to(mailoutbox, NEWCOMER)
    assert "/verify-email/" in message.body
    assert_greets_no_one(message, "Quentin Blake")


def request_change_through_api(user: User):
    client = api_client()
    access = login(client, user.email)
    data = {"new_email": NEW_ADDRESS, "password": STRONG_PASSWORD}
    return post_json(client, EMAIL_CHANGE_URL, data, **bearer(access))


def request_change_on_page(user: User):
    return submit(signed_in_browser(user), EMAIL_CHANGE_PAGE, {"new_email": NEW_ADDRESS, "password": STRONG_PASSWORD})


@pytest.mark.parametrize(
    ("request_change", "accepted"),
    [pytest.param(request_change_on_page, 302, id="page"), pytest.param(request_change_through_api, 202, id="API")],
)
def test_the_email_change_confirmation_to_a_new_address_greets_no_one(make_user, request_change, accepted, mailoutbox):
    owner = make_user(email=ALICE, name=OWNER_NAME)
    assert request_change(owner).status_code == accepted
    [confirmation] = mails_to(mailoutbox, NEW_ADDRESS)
    assert "/verify-email/" in confirmation.body
    assert_greets_no_one(confirmation, OWNER_NAME)
    # The notice to the account's own proven address still greets its owner.
    [notice] = mails_to(mailoutbox, ALICE)
    assert_greets(notice, OWNER_NAME)


def test_the_password_reset_email_to_a_verified_account_greets_it_by_name(make_user, mailoutbox):
    make_user(email=ALICE, name=OWNER_NAME)
    assert post_json(api_client(), RESET_URL, {"email": ALICE}).status_code == 202
    [message] = mails_to(mailoutbox, ALICE)
    assert "/password/reset/" in message.body
    assert_greets(message, OWNER_NAME)


def test_the_account_exists_email_for_an_unverified_account_does_not_greet_its_unproven_name(make_user, mailoutbox):
    # Whoever signed up first chose this name without proving the address.
    make_user(email=BOB, name="Bob Unproven", verified=False)
    assert signup_through_api("Mallory Second", email=BOB).status_code == 202
    [message] = mails_to(mailoutbox, BOB)
    assert "already have an account" in message.body
    assert_greets_no_one(message, "Bob Unproven", "Mallory Second")


def test_the_account_exists_email_for_a_verified_account_greets_its_owner(make_user, mailoutbox):
    make_user(email=ALICE, name=OWNER_NAME)
    assert signup_through_api("Mallory Second", email=ALICE).status_code == 202
    [message] = mails_to(mailoutbox, ALICE)
    assert_greets(message, OWNER_NAME)
    assert "Mallory" not in message.body and "Mallory" not in html_of(message)


def test_the_reproduction_name_cannot_reach_any_outbox_mail(make_user, mailoutbox):
    """The intruder's playbook: set the name anywhere, then make the product mail addresses of their choosing."""
    intruder = make_user(email=ALICE, name="Alice")
    assert signup_on_page(REPRODUCTION, email=BOB).status_code == 200
    assert signup_through_api(REPRODUCTION, email=BOB).status_code == 400
    assert submit(signed_in_browser(intruder), PROFILE_PAGE, {"name": REPRODUCTION}).status_code == 200
    access = access_token_for(intruder)
    assert patch_json(api_client(), ME_URL, {"name": REPRODUCTION}, **bearer(access)).status_code == 400
    # Every mail the intruder can still trigger, to addresses they pick.
    assert signup_through_api("Plain Name", email=BOB).status_code == 202
    assert post_json(api_client(), RESEND_URL, {"email": BOB}).status_code == 202
    assert request_change_through_api(intruder).status_code == 202
    assert post_json(api_client(), RESET_URL, {"email": ALICE}).status_code == 202
    assert {address for message in mailoutbox for address in message.to} == {ALICE, BOB, NEW_ADDRESS}
    assert nothing_injected(mailoutbox)
    assert name_of(ALICE) == "Alice" and name_of(BOB) == "Plain Name"


def resend_verification(email: str):
    return post_json(api_client(), RESEND_URL, {"email": email})


def ask_for_a_password_reset(email: str):
    return post_json(api_client(), RESET_URL, {"email": email})


def sign_up_again(email: str):
    return signup_through_api("Someone Else", email=email)


@pytest.mark.parametrize(
    "trigger", [resend_verification, ask_for_a_password_reset, sign_up_again], ids=["resend", "reset", "sign-up again"]
)
def test_a_multi_line_name_stored_before_the_rule_never_opens_an_email(make_user, trigger, mailoutbox):
    bob = make_user(email=BOB, name="Bob", verified=False)
    # Written past the rule, as rows from before it were.
    User.objects.filter(pk=bob.pk).update(name=REPRODUCTION)
    assert trigger(BOB).status_code == 202
    [message] = mails_to(mailoutbox, BOB)
    assert_greets_no_one(message)
    assert nothing_injected(mailoutbox)


def test_a_multi_line_name_stored_before_the_rule_on_a_verified_account_never_opens_its_mail(make_user, mailoutbox):
    bob = make_user(email=BOB, name="Bob", verified=True)
    User.objects.filter(pk=bob.pk).update(name=REPRODUCTION)
    assert ask_for_a_password_reset(BOB).status_code == 202
    [message] = mails_to(mailoutbox, BOB)
    assert_greets_no_one(message)
    assert nothing_injected(mailoutbox)


# --- The admin's user forms ------------------------------------------------------------------------


def admin_change_form(user: User, name: str) -> dict:
    """The admin's user change form for a superuser, as it stands, with ``name`` typed in."""
    verified_at = timezone.localtime(user.email_verified_at)
    no_inline_rows = ("TOTAL_FORMS", "INITIAL_FORMS", "MIN_NUM_FORMS", "MAX_NUM_FORMS")
    return {
        "email": user.email,
        "name": name,
        "email_verified_at_0": f"{verified_at:%Y-%m-%d}",
        "email_verified_at_1": f"{verified_at:%H:%M:%S}",
        "is_active": "on",
        **{f"device_sessions-{count}": "0" for count in no_inline_rows},
    }


def admin_add_form(email: str, name: str) -> dict:
    passwords = {"password1": STRONG_PASSWORD, "password2": STRONG_PASSWORD}
    return {"email": email, "name": name, "usable_password": "true", **passwords}


def test_the_admin_user_forms_refuse_a_multi_line_name_too(make_user):
    """The admin's add and change forms take names by the same rule (a superuser could store one otherwise)."""
    root = signed_in_browser(make_user(email="root@support.example", name="Root", is_staff=True, is_superuser=True))
    alice = make_user(email=ALICE, name="Alice")
    change = submit(root, f"{ADMIN_USERS}{alice.pk}/change/", admin_change_form(alice, REPRODUCTION))
    add = submit(root, f"{ADMIN_USERS}add/", admin_add_form(NEWCOMER, REPRODUCTION))
    assert (name_of(ALICE), name_of(NEWCOMER)) == ("Alice", None)
    for response in (change, add):
        assert response.status_code == 200 and response.context["adminform"].form.has_error("name")
