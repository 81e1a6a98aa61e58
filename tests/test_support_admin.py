"""The admin as support staff use it: the Support group's least-privilege permissions, finding and
reading users, the per-user actions (each audited with the acting staff member), the read-only
device-session and security-event pages, everything a Support member must not be able to do
(edit, grant, delete, see passwords or token hashes, read todos), what even a superuser cannot
do, and how staff sign in to and out of the admin through the product's own pages.

Every request goes through the admin's own views with a CSRF-enforcing client.
"""

import importlib
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from accounts.audit import EventKind, email_fingerprint
from accounts.exceptions import StaffAccountProtected
from accounts.flows import account_deletion, account_status
from accounts.flows import support as support_flows
from accounts.flows.device_sessions import end_device_session, end_user_sessions, start_device_session
from accounts.models import DeviceSession, EmailVerificationToken, PasswordResetToken, SecurityEvent, User
from accounts.tokens import hash_token
from tests.support.accounts import STRONG_PASSWORD, force_page_login
from tests.support.api import REFRESH_URL, bearer, csrf_header, login_response, post_json
from tests.support.mail import links_in, token_from_link
from tests.support.mfa import enable_totp, totp_code
from tests.support.pages import csrf_in
from todos.models import Todo

pytestmark = pytest.mark.django_db

SUPPORT_PERMISSIONS = {
    "accounts.view_user",
    "accounts.view_devicesession",
    "accounts.view_securityevent",
    "accounts.end_user_sessions",
    "accounts.send_password_reset",
    "accounts.resend_verification",
    "accounts.mark_email_verified",
    "accounts.change_user_active",
    "accounts.reset_user_mfa",
    "accounts.view_outboundemail",
    "accounts.view_undeliverableaddress",
    "accounts.clear_undeliverable_address",
}
STAFF_IP = "192.0.2.44"
STAFF_UA = "SupportDesk/3.2 (Macintosh)"
ADMIN = "/admin/"
USERS = "/admin/accounts/user/"
SESSIONS = "/admin/accounts/devicesession/"
EVENTS = "/admin/accounts/securityevent/"
LOGIN_PAGE = "/accounts/login/"
ME_URL = "/api/auth/me/"


# --- Fixtures and helpers ----------------------------------------------------------------------------


@pytest.fixture
def support_group() -> Group:
    return Group.objects.get(name="Support")


@pytest.fixture
def support(make_user, support_group) -> User:
    member = make_user(email="sam@support.example", name="Sam Support", is_staff=True)
    member.groups.add(support_group)
    return member


@pytest.fixture
def superuser(make_user) -> User:
    return make_user(email="root@support.example", name="Root", is_staff=True, is_superuser=True)


def staff_client(member: User) -> Client:
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR=STAFF_IP, HTTP_USER_AGENT=STAFF_UA)
    force_page_login(client, member)
    return client


@pytest.fixture
def desk(support) -> Client:
    """The Support member's browser, signed in."""
    return staff_client(support)


@pytest.fixture
def root(superuser) -> Client:
    return staff_client(superuser)


@pytest.fixture
def bob(make_user) -> User:
    return make_user(
        email="bob@example.com", name="Bobby Tables", verified=False, date_joined=datetime(2031, 5, 20, tzinfo=UTC)
    )


@pytest.fixture
def alice(make_user) -> User:
    return make_user(email="alice@example.com", name="Alice Liddell", date_joined=datetime(2030, 1, 10, tzinfo=UTC))


def csrf_from(response) -> str:
    return csrf_in(response.content.decode())


def page_token(client: Client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, path
    return csrf_from(response)


def cookie_token(client: Client) -> str:
    """A valid CSRF token for ``client`` when the page it posts from has no form."""
    if "csrftoken" not in client.cookies:
        client.get(ADMIN)
    return client.cookies["csrftoken"].value


def run_action(client: Client, action: str, targets, changelist: str = USERS):
    token = page_token(client, changelist)
    return client.post(
        changelist,
        {"action": action, "_selected_action": [t.pk for t in targets], "csrfmiddlewaretoken": token},
    )


def listed(response) -> list[str]:
    """The emails of the users on a user changelist page."""
    assert response.status_code == 200
    return sorted(user.email for user in response.context["cl"].result_list)


def get_me(access: str):
    return Client().get(ME_URL, **bearer(access))


def sign_in_api(email: str, password: str = STRONG_PASSWORD) -> Client:
    client = Client(enforce_csrf_checks=True)
    response = login_response(client, email, password)
    assert response.status_code == 200, response.content
    client.access = response.json()["access"]
    return client


def refresh(client: Client):
    return post_json(client, REFRESH_URL, **csrf_header(client))


def staff_actions(**filters) -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(kind=EventKind.STAFF_ACTION, **filters).order_by("id"))


def assert_staff_action(event: SecurityEvent, *, staff: User, user: User, detail: dict) -> None:
    assert event.kind == "staff_action"
    assert event.actor_id == staff.pk
    assert event.user_id == user.pk
    assert event.detail == detail
    assert event.ip_address == STAFF_IP
    assert event.user_agent == STAFF_UA


class _Inputs(HTMLParser):
    """Every editable form control on a page: (tag, name, type)."""

    def __init__(self):
        super().__init__()
        self.controls: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in {"input", "select", "textarea"} and attrs.get("name"):
            self.controls.append((tag, attrs["name"], attrs.get("type", "")))


def editable_names(response) -> set[str]:
    parser = _Inputs()
    parser.feed(response.content.decode())
    return {name for tag, name, kind in parser.controls if kind != "hidden"}


def action_names(response) -> set[str]:
    """The actions a changelist page offers."""
    assert response.status_code == 200
    form = response.context["action_form"]
    if form is None:
        return set()
    return {value for value, _label in form.fields["action"].choices if value}


# --- The Support group ----------------------------------------------------------------------------------


def test_support_group_has_exactly_the_support_permissions(support_group):
    granted = {
        f"{p.content_type.app_label}.{p.codename}" for p in support_group.permissions.select_related("content_type")
    }
    assert granted == SUPPORT_PERMISSIONS


def test_support_member_holds_nothing_beyond_the_group(support):
    assert support.get_all_permissions() == SUPPORT_PERMISSIONS
    for forbidden in (
        "accounts.change_user",
        "accounts.delete_user",
        "accounts.add_user",
        "accounts.change_securityevent",
        "accounts.delete_securityevent",
        "accounts.add_securityevent",
        "accounts.change_devicesession",
        "accounts.delete_devicesession",
        "auth.change_group",
        "todos.view_todo",
        "todos.change_todo",
    ):
        assert not support.has_perm(forbidden), forbidden
    assert not any(perm.startswith("todos.") for perm in support.get_all_permissions())


def test_support_group_migration_is_repeatable_and_reversible(support_group):
    migration = importlib.import_module("accounts.migrations.0004_support_group")
    state_apps = MigrationExecutor(connection).loader.project_state(("accounts", "0004_support_group")).apps
    support_group.permissions.add(Permission.objects.get(codename="delete_user"))  # drift to be corrected
    migration.create_support_group(state_apps, None)
    migration.create_support_group(state_apps, None)
    assert Group.objects.filter(name="Support").count() == 1
    perms = {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name="Support").permissions.all()}
    # What 0004 granted; 0009 adds resetting two-factor authentication, 0014 seeing the email outbox,
    # 0016 seeing and clearing undeliverable addresses.
    assert perms == SUPPORT_PERMISSIONS - {
        "accounts.reset_user_mfa",
        "accounts.view_outboundemail",
        "accounts.view_undeliverableaddress",
        "accounts.clear_undeliverable_address",
    }
    migration.remove_support_group(state_apps, None)
    assert not Group.objects.filter(name="Support").exists()


# --- Finding and reading users ------------------------------------------------------------------------


def test_support_opens_the_admin_index_and_sees_only_accounts(desk):
    response = desk.get(ADMIN)
    assert response.status_code == 200
    body = response.content.decode()
    assert USERS in body and SESSIONS in body and EVENTS in body
    assert "/admin/todos/" not in body
    assert "/admin/auth/group/" not in body


def test_support_opens_the_user_changelist(desk, alice, bob, support):
    assert listed(desk.get(USERS)) == sorted([alice.email, bob.email, support.email])


def test_support_searches_users_by_email_and_by_name(desk, alice, bob):
    assert listed(desk.get(USERS, {"q": "alice@"})) == [alice.email]
    assert listed(desk.get(USERS, {"q": "Bobby"})) == [bob.email]
    assert listed(desk.get(USERS, {"q": "tables"})) == [bob.email]
    assert listed(desk.get(USERS, {"q": "nobody-like-this"})) == []


def test_support_filters_by_verified(desk, alice, bob, support):
    assert listed(desk.get(USERS, {"verified": "yes"})) == sorted([alice.email, support.email])
    assert listed(desk.get(USERS, {"verified": "no"})) == [bob.email]


def test_an_unknown_verified_value_filters_nothing(desk, alice, bob, support):
    assert listed(desk.get(USERS, {"verified": "maybe"})) == sorted([alice.email, bob.email, support.email])


def test_support_filters_by_active_and_staff(desk, alice, bob, support, make_user):
    gone = make_user(email="gone@example.com", name="Gone", is_active=False)
    assert listed(desk.get(USERS, {"is_active__exact": "0"})) == [gone.email]
    assert gone.email not in listed(desk.get(USERS, {"is_active__exact": "1"}))
    assert listed(desk.get(USERS, {"is_staff__exact": "1"})) == [support.email]
    assert support.email not in listed(desk.get(USERS, {"is_staff__exact": "0"}))


def test_support_filters_by_date_joined(desk, alice, bob):
    response = desk.get(
        USERS, {"date_joined__gte": "2031-01-01 00:00:00+00:00", "date_joined__lt": "2032-01-01 00:00:00+00:00"}
    )
    assert listed(response) == [bob.email]
    response = desk.get(
        USERS, {"date_joined__gte": "2030-01-01 00:00:00+00:00", "date_joined__lt": "2030-02-01 00:00:00+00:00"}
    )
    assert listed(response) == [alice.email]


def test_an_invalid_filter_value_is_refused_without_an_error_page(desk, alice):
    response = desk.get(USERS, {"date_joined__gte": "not-a-date"})
    assert response.status_code == 302
    assert "e=1" in response["Location"]


def test_support_sees_a_read_only_user_page_with_sessions_and_recent_events(desk, alice, superuser):
    start_device_session(
        user=alice, ip_address="198.51.100.77", user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"
    )
    root = staff_client(superuser)
    run_action(root, "send_password_reset", [alice])
    response = desk.get(f"{USERS}{alice.pk}/change/")
    assert response.status_code == 200
    body = response.content.decode()
    names = editable_names(response)
    assert "email" not in names and "name" not in names and "is_active" not in names
    assert not re.search(r'<input[^>]+name="email"', body)
    assert 'name="_save"' not in body
    assert 'value="Save"' not in body
    assert alice.email in body
    assert "198.51.100.77" in body  # the device sessions inline
    assert "device sessions" in body.lower()
    assert 'class="recent-events"' in body
    assert "Signed in" in body and "Staff action" in body
    assert f"by {superuser.email}" in body


def test_support_user_page_for_an_unknown_id_does_not_error(desk):
    response = desk.get(f"{USERS}999999/change/")
    assert response.status_code == 302
    assert response["Location"] == ADMIN


# --- Actions -----------------------------------------------------------------------------------------------


def test_support_ends_all_sessions_and_the_tokens_are_refused_at_once(desk, support, alice, bob):
    phone = sign_in_api(alice.email)
    laptop = sign_in_api(alice.email)
    bobs = start_device_session(user=bob, ip_address=None, user_agent="")
    assert get_me(phone.access).status_code == 200  # the "live" state is now cached
    response = run_action(desk, "end_all_sessions", [alice])
    assert response.status_code == 302
    sessions = DeviceSession.objects.filter(user=alice)
    assert sessions.count() == 2
    assert all(s.revoked_at is not None and s.revoked_reason == "ended_by_staff" for s in sessions)
    for device in (phone, laptop):
        refused = get_me(device.access)
        assert refused.status_code == 401
        assert refused.json()["code"] == "session_ended"
        assert refresh(device).status_code == 401
    assert DeviceSession.objects.get(pk=bobs.session.pk).revoked_at is None
    [event] = staff_actions()
    assert_staff_action(event, staff=support, user=alice, detail={"action": "end_sessions", "sessions_ended": 2})


def test_support_sends_a_password_reset_email_with_a_working_link(desk, support, alice, mailoutbox):
    response = run_action(desk, "send_password_reset", [alice])
    assert response.status_code == 302
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [alice.email]
    link = next(link for link in links_in(mailoutbox[0]) if "/accounts/password/reset/" in link)
    token = token_from_link(link)
    assert PasswordResetToken.objects.get(user=alice).token_hash == hash_token(token)
    opened = Client().get(urlsplit(link).path)
    assert opened.status_code == 302
    assert opened["Location"] == "/accounts/password/reset/set-password/"
    [event] = staff_actions()
    assert_staff_action(event, staff=support, user=alice, detail={"action": "send_password_reset"})
    assert SecurityEvent.objects.filter(kind=EventKind.PASSWORD_RESET_REQUESTED, user=alice).count() == 1


def test_support_resends_verification_only_to_unverified_active_users(desk, support, alice, bob, make_user, mailoutbox):
    dormant = make_user(email="dormant@example.com", name="Dormant", verified=False, is_active=False)
    response = run_action(desk, "resend_verification", [alice, bob, dormant])
    assert response.status_code == 302
    assert [message.to for message in mailoutbox] == [[bob.email]]
    link = next(link for link in links_in(mailoutbox[0]) if "/accounts/verify-email/" in link)
    assert EmailVerificationToken.objects.get(user=bob).token_hash == hash_token(token_from_link(link))
    assert not EmailVerificationToken.objects.filter(user__in=[alice, dormant]).exists()
    [event] = staff_actions()
    assert_staff_action(event, staff=support, user=bob, detail={"action": "resend_verification"})


def test_support_marks_an_address_verified(desk, support, alice, bob, mailoutbox):
    alice_verified_at = alice.email_verified_at
    response = run_action(desk, "mark_email_verified", [alice, bob])
    assert response.status_code == 302
    bob.refresh_from_db()
    alice.refresh_from_db()
    assert bob.email_verified
    assert alice.email_verified_at == alice_verified_at  # already verified: untouched
    [event] = staff_actions()
    assert_staff_action(event, staff=support, user=bob, detail={"action": "mark_email_verified", "sessions_ended": 0})
    # Nobody proved the password chosen before the address was proven: it is gone, and the
    # address's owner chooses a new one with the link only they receive.
    assert not bob.has_usable_password()
    assert login_response(Client(), bob.email, STRONG_PASSWORD).status_code == 401
    [message] = mailoutbox
    assert message.to == [bob.email]
    assert message.subject.startswith("Choose a password")
    link = next(link for link in links_in(message) if "/accounts/password/reset/" in link)
    reset = post_json(
        Client(),
        "/api/auth/password/reset/confirm/",
        {"token": token_from_link(link), "password": "bob's own new passphrase"},
    )
    assert reset.status_code == 204
    assert sign_in_api(bob.email, "bob's own new passphrase").access


def test_marking_verified_ends_the_sessions_of_whoever_knew_the_old_password(desk, support, bob, settings):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "optional"
    squatter = sign_in_api(bob.email)
    assert get_me(squatter.access).status_code == 200
    run_action(desk, "mark_email_verified", [bob])
    assert get_me(squatter.access).status_code == 401
    assert refresh(squatter).status_code == 401
    [event] = staff_actions()
    assert event.detail == {"action": "mark_email_verified", "sessions_ended": 1}


def test_support_deactivates_a_user_and_every_session_ends_at_once(desk, support, alice):
    phone = sign_in_api(alice.email)
    laptop = sign_in_api(alice.email)
    assert get_me(phone.access).status_code == 200
    response = run_action(desk, "deactivate", [alice])
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.is_active is False
    sessions = DeviceSession.objects.filter(user=alice)
    assert all(s.revoked_reason == "user_deactivated" for s in sessions)
    for device in (phone, laptop):
        assert get_me(device.access).status_code == 401
        assert refresh(device).status_code == 401
    assert login_response(Client(enforce_csrf_checks=True), alice.email, STRONG_PASSWORD).status_code == 401
    [event] = staff_actions()
    assert_staff_action(event, staff=support, user=alice, detail={"action": "deactivate", "sessions_ended": 2})


def test_deactivating_an_inactive_user_records_nothing(desk, make_user):
    gone = make_user(email="gone@example.com", name="Gone", is_active=False)
    run_action(desk, "deactivate", [gone])
    assert staff_actions() == []


def test_support_reactivates_a_user(desk, support, make_user, alice):
    gone = make_user(email="gone@example.com", name="Gone", is_active=False)
    response = run_action(desk, "reactivate", [gone, alice])
    assert response.status_code == 302
    gone.refresh_from_db()
    assert gone.is_active is True
    [event] = staff_actions()  # alice was active: nothing to do for her
    assert_staff_action(event, staff=support, user=gone, detail={"action": "reactivate"})
    assert sign_in_api(gone.email).access


def test_an_action_without_the_csrf_token_is_refused(desk, alice):
    sign_in_api(alice.email)
    response = desk.post(USERS, {"action": "deactivate", "_selected_action": [alice.pk]})
    assert response.status_code == 403
    alice.refresh_from_db()
    assert alice.is_active is True
    assert staff_actions() == []


def test_an_action_with_nothing_selected_does_nothing(desk, alice):
    token = page_token(desk, USERS)
    response = desk.post(USERS, {"action": "deactivate", "csrfmiddlewaretoken": token})
    assert response.status_code in {200, 302}
    alice.refresh_from_db()
    assert alice.is_active is True
    assert staff_actions() == []


def test_an_unknown_action_does_nothing(desk, alice):
    token = page_token(desk, USERS)
    response = desk.post(
        USERS, {"action": "delete_selected", "_selected_action": [alice.pk], "csrfmiddlewaretoken": token}
    )
    assert response.status_code in {200, 302}
    assert User.objects.filter(pk=alice.pk).exists()
    assert staff_actions() == []


def test_support_sees_exactly_the_support_actions(desk, alice):
    assert action_names(desk.get(USERS)) == {
        "end_all_sessions",
        "send_password_reset",
        "resend_verification",
        "mark_email_verified",
        "deactivate",
        "reactivate",
        "reset_mfa",
    }


def test_staff_without_the_support_group_cannot_open_users_or_run_actions(make_user, alice):
    bare = make_user(email="intern@support.example", name="Intern", is_staff=True)
    client = staff_client(bare)
    assert client.get(USERS).status_code == 403
    response = client.post(
        USERS, {"action": "deactivate", "_selected_action": [alice.pk], "csrfmiddlewaretoken": cookie_token(client)}
    )
    assert response.status_code == 403
    alice.refresh_from_db()
    assert alice.is_active is True
    assert staff_actions() == []


# --- Device sessions and security events ------------------------------------------------------------------


def test_support_views_device_sessions_without_their_token_hashes(desk, alice):
    device = sign_in_api(alice.email)
    assert refresh(device).status_code == 200  # leaves a rotated hash behind too
    session = DeviceSession.objects.get(user=alice)
    listing = desk.get(SESSIONS)
    assert listing.status_code == 200
    detail = desk.get(f"{SESSIONS}{session.pk}/change/")
    assert detail.status_code == 200
    user_page = desk.get(f"{USERS}{alice.pk}/change/")
    for response in (listing, detail, user_page):
        body = response.content.decode()
        assert alice.email in body
        assert session.refresh_token_hash not in body
        assert "refresh_token_hash" not in body and "token_hash" not in body
    assert 'name="_save"' not in detail.content.decode()
    assert "rotated_at" not in editable_names(detail)


def test_support_ends_one_device_session_from_the_session_list(desk, support, alice):
    first = sign_in_api(alice.email)
    second = sign_in_api(alice.email)
    target = DeviceSession.objects.filter(user=alice).order_by("created_at").first()
    response = run_action(desk, "end_sessions", [target], changelist=SESSIONS)
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.revoked_reason == "ended_by_staff"
    statuses = sorted([get_me(first.access).status_code, get_me(second.access).status_code])
    assert statuses == [200, 401]
    event = SecurityEvent.objects.get(kind=EventKind.SESSION_ENDED)
    assert event.actor_id == support.pk and event.user_id == alice.pk
    assert event.detail == {"session": str(target.pk), "reason": "ended_by_staff"}


def test_support_views_security_events_read_only(desk, alice):
    sign_in_api(alice.email)
    event = SecurityEvent.objects.get(kind=EventKind.SIGN_IN_SUCCEEDED, user=alice)
    listing = desk.get(EVENTS)
    assert listing.status_code == 200
    assert alice.email in listing.content.decode()
    detail = desk.get(f"{EVENTS}{event.pk}/change/")
    assert detail.status_code == 200
    body = detail.content.decode()
    assert 'name="_save"' not in body
    assert editable_names(detail) == set()
    assert f"{EVENTS}{event.pk}/delete/" not in body


def test_support_token_models_are_not_in_the_admin(desk, alice, mailoutbox):
    run_action(desk, "send_password_reset", [alice])
    for path in (
        "/admin/accounts/emailverificationtoken/",
        "/admin/accounts/passwordresettoken/",
        "/admin/accounts/rotatedrefreshtoken/",
    ):
        response = desk.get(path)
        assert response.status_code == 404, path
    assert (
        PasswordResetToken.objects.get(user=alice).token_hash
        not in desk.get(f"{USERS}{alice.pk}/change/").content.decode()
    )


# --- What Support cannot do ------------------------------------------------------------------------------


def user_form_data(user: User, **changes) -> dict:
    data = {
        "email": user.email,
        "name": user.name,
        "email_verified_at_0": "",
        "email_verified_at_1": "",
        "is_active": "on",
        "DeviceSession-TOTAL_FORMS": "0",
        "DeviceSession-INITIAL_FORMS": "0",
        "DeviceSession-MIN_NUM_FORMS": "0",
        "DeviceSession-MAX_NUM_FORMS": "0",
        "device_sessions-TOTAL_FORMS": "0",
        "device_sessions-INITIAL_FORMS": "0",
        "device_sessions-MIN_NUM_FORMS": "0",
        "device_sessions-MAX_NUM_FORMS": "0",
        "_save": "Save",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_support_cannot_post_a_change_to_a_user(desk, alice):
    token = cookie_token(desk)
    response = desk.post(
        f"{USERS}{alice.pk}/change/",
        user_form_data(alice, email="mallory@example.com", name="Mallory", is_active=None, csrfmiddlewaretoken=token),
    )
    assert response.status_code == 403
    fresh = User.objects.get(pk=alice.pk)
    assert (fresh.email, fresh.name, fresh.is_active) == (alice.email, alice.name, True)


def test_support_cannot_grant_staff_or_superuser_status(desk, support, alice, support_group):
    token = cookie_token(desk)
    for target in (alice, support):
        response = desk.post(
            f"{USERS}{target.pk}/change/",
            user_form_data(
                target, is_staff="on", is_superuser="on", groups=[support_group.pk], csrfmiddlewaretoken=token
            ),
        )
        assert response.status_code == 403
    alice.refresh_from_db()
    support.refresh_from_db()
    assert (alice.is_staff, alice.is_superuser) == (False, False)
    assert alice.groups.count() == 0
    assert support.is_superuser is False
    assert support.get_all_permissions() == SUPPORT_PERMISSIONS


def test_support_cannot_reach_a_password_form(desk, alice):
    response = desk.get(f"{USERS}{alice.pk}/password/", follow=True)
    assert response.status_code == 200
    assert urlsplit(response.redirect_chain[-1][0]).path == ADMIN  # "no such user" on the index
    body = response.content.decode()
    assert 'type="password"' not in body
    assert 'name="password1"' not in body
    token = cookie_token(desk)
    desk.post(
        f"{USERS}{alice.pk}/password/",
        {"password1": "hijacked passphrase 123", "password2": "hijacked passphrase 123", "csrfmiddlewaretoken": token},
    )
    assert User.objects.get(pk=alice.pk).check_password(STRONG_PASSWORD)


def test_the_admin_sets_no_password_of_its_own(support):
    """Passwords change only through the audited product flow, never through an admin form
    (which would skip the audit event, the notice email and ending the other sessions)."""
    other_device = sign_in_api(support.email)
    client = staff_client(support)
    client.post(
        f"{ADMIN}password_change/",
        {
            "old_password": STRONG_PASSWORD,
            "new_password1": "a fresh staff passphrase 42",
            "new_password2": "a fresh staff passphrase 42",
            "csrfmiddlewaretoken": cookie_token(client),
        },
    )
    changed = User.objects.get(pk=support.pk).check_password("a fresh staff passphrase 42")
    recorded = SecurityEvent.objects.filter(kind=EventKind.PASSWORD_CHANGED, user=support).exists()
    other_still_live = get_me(other_device.access).status_code == 200
    assert (changed, recorded, other_still_live) == (False, False, True), "password set by the admin, unaudited"
    response = client.get(f"{ADMIN}password_change/", follow=True)
    assert 'name="new_password1"' not in response.content.decode()


def test_the_user_page_shows_no_password_hash(desk, alice):
    body = desk.get(f"{USERS}{alice.pk}/change/").content.decode()
    assert "argon2" not in body.lower()
    assert "pbkdf2" not in body.lower()
    for fragment in alice.password.split("$"):
        if len(fragment) >= 8:
            assert fragment not in body
    assert "Set." in body  # the password status, not the hash


def test_support_cannot_delete_a_user(desk, alice):
    path = f"{USERS}{alice.pk}/delete/"
    assert desk.get(path).status_code == 403
    assert desk.post(path, {"post": "yes", "csrfmiddlewaretoken": cookie_token(desk)}).status_code == 403
    assert User.objects.filter(pk=alice.pk).exists()
    assert not SecurityEvent.objects.filter(kind=EventKind.ACCOUNT_DELETED).exists()


def test_support_cannot_add_a_user(desk):
    path = f"{USERS}add/"
    assert desk.get(path).status_code == 403
    response = desk.post(
        path,
        {
            "email": "new@example.com",
            "name": "New",
            "password1": STRONG_PASSWORD,
            "password2": STRONG_PASSWORD,
            "csrfmiddlewaretoken": cookie_token(desk),
        },
    )
    assert response.status_code == 403
    assert not User.objects.filter(email="new@example.com").exists()


def test_support_cannot_delete_or_edit_security_events(desk, alice):
    sign_in_api(alice.email)
    event = SecurityEvent.objects.get(kind=EventKind.SIGN_IN_SUCCEEDED, user=alice)
    listing = desk.get(EVENTS)
    assert "delete_selected" not in action_names(listing)
    assert desk.get(f"{EVENTS}{event.pk}/delete/").status_code == 403
    token = cookie_token(desk)
    assert desk.post(f"{EVENTS}{event.pk}/delete/", {"post": "yes", "csrfmiddlewaretoken": token}).status_code == 403
    response = desk.post(
        f"{EVENTS}{event.pk}/change/",
        {"kind": "sign_out", "detail": "{}", "ip_address": "10.0.0.1", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 403
    desk.post(
        EVENTS,
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes", "csrfmiddlewaretoken": token},
    )
    event.refresh_from_db()
    assert event.kind == "sign_in_succeeded"
    assert event.ip_address == "127.0.0.1"


def test_support_cannot_add_security_events_or_sessions(desk):
    assert desk.get(f"{EVENTS}add/").status_code == 403
    assert desk.get(f"{SESSIONS}add/").status_code == 403


def test_support_cannot_view_todos(desk, alice):
    Todo.objects.create(owner=alice, title="Secret plans")
    response = desk.get("/admin/todos/todo/")
    assert response.status_code == 403
    assert "Secret plans" not in response.content.decode()


# --- What a superuser can and cannot do -----------------------------------------------------------------------


def test_not_even_a_superuser_can_delete_security_events(root, alice):
    sign_in_api(alice.email)
    event = SecurityEvent.objects.get(kind=EventKind.SIGN_IN_SUCCEEDED, user=alice)
    assert "delete_selected" not in action_names(root.get(EVENTS))
    assert root.get(f"{EVENTS}{event.pk}/delete/").status_code == 403
    token = cookie_token(root)
    assert root.post(f"{EVENTS}{event.pk}/delete/", {"post": "yes", "csrfmiddlewaretoken": token}).status_code == 403
    assert SecurityEvent.objects.filter(pk=event.pk).exists()
    page = root.get(f"{EVENTS}{event.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()


def superuser_form(client: Client, user: User) -> dict:
    """The user change form as the superuser's browser would submit it."""
    response = client.get(f"{USERS}{user.pk}/change/")
    assert response.status_code == 200
    form = response.context["adminform"].form
    data = {}
    for name in form.fields:
        value = form.initial.get(name)
        if name in {"is_active", "is_staff", "is_superuser"}:
            if value:
                data[name] = "on"
        elif name in {"groups", "user_permissions"}:
            data[name] = [getattr(v, "pk", v) for v in (value or [])]
        elif name == "email_verified_at":
            data["email_verified_at_0"] = value.strftime("%Y-%m-%d") if value else ""
            data["email_verified_at_1"] = value.strftime("%H:%M:%S") if value else ""
        elif value is not None:
            data[name] = value
    for formset in response.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        for name, value in management.initial.items():
            data[f"{management.prefix}-{name}"] = value
    data["csrfmiddlewaretoken"] = csrf_from(response)
    data["_save"] = "Save"
    return data


def test_a_superuser_can_edit_a_user(root, alice):
    data = superuser_form(root, alice)
    data["name"] = "Alice Renamed"
    response = root.post(f"{USERS}{alice.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    alice.refresh_from_db()
    assert alice.name == "Alice Renamed"
    assert alice.is_active is True
    assert staff_actions() == []  # an ordinary edit is not a deactivation


def test_a_superuser_deactivating_through_the_form_ends_every_session_and_is_recorded(root, superuser, alice):
    phone = sign_in_api(alice.email)
    laptop = sign_in_api(alice.email)
    assert get_me(phone.access).status_code == 200
    data = superuser_form(root, alice)
    del data["is_active"]
    response = root.post(f"{USERS}{alice.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    alice.refresh_from_db()
    assert alice.is_active is False
    assert all(s.revoked_reason == "user_deactivated" for s in DeviceSession.objects.filter(user=alice))
    for device in (phone, laptop):
        refused = get_me(device.access)
        assert refused.status_code == 401
        assert refused.json()["code"] == "session_ended"
    [event] = staff_actions()
    assert_staff_action(event, staff=superuser, user=alice, detail={"action": "deactivate", "sessions_ended": 2})


# --- Signing in to and out of the admin ------------------------------------------------------------------------


def test_a_signed_in_non_staff_user_is_sent_to_the_sign_in_page(alice):
    client = Client(enforce_csrf_checks=True)
    force_page_login(client, alice)
    response = client.get(ADMIN, follow=True)
    final = response.redirect_chain[-1][0]
    assert urlsplit(final).path == LOGIN_PAGE
    assert "next=%2Fadmin%2F" in final
    assert response.status_code == 200
    assert "Todo support" not in response.content.decode()
    assert client.get(USERS).status_code == 302


def test_an_anonymous_visitor_is_sent_to_the_sign_in_page(db):
    response = Client().get(USERS, follow=True)
    assert urlsplit(response.redirect_chain[-1][0]).path == LOGIN_PAGE
    assert response.status_code == 200


def test_admin_login_redirects_to_the_product_sign_in_page(db):
    response = Client().get("/admin/login/", {"next": "/admin/"})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2F"


def _second_step(client: Client, secret: str, *, next_path: str | None = None):
    """Post the authenticator app's code on the sign-in's second page (staff always have one)."""
    url = "/accounts/login/mfa/" + (f"?next={next_path}" if next_path else "")
    data = {"code": totp_code(secret), "csrfmiddlewaretoken": cookie_token(client)}
    if next_path:
        data["next"] = next_path
    return client.post(url, data)


def test_staff_signing_in_on_the_product_page_land_in_the_admin(support):
    secret = enable_totp(support)
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR=STAFF_IP, HTTP_USER_AGENT=STAFF_UA)
    page = client.get("/admin/login/", {"next": "/admin/"}, follow=True)
    assert page.status_code == 200
    token = csrf_from(page)
    assert 'name="next" value="/admin/"' in page.content.decode()
    response = client.post(
        "/accounts/login/?next=%2Fadmin%2F",
        {"email": support.email, "password": STRONG_PASSWORD, "next": "/admin/", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/mfa/?next=%2Fadmin%2F"
    assert client.get(ADMIN).status_code == 302  # the password alone opens nothing
    response = _second_step(client, secret, next_path="/admin/")
    assert response.status_code == 302
    assert response["Location"] == ADMIN
    index = client.get(ADMIN)
    assert index.status_code == 200
    assert "Todo support" in index.content.decode()
    signed_in = SecurityEvent.objects.get(kind=EventKind.SIGN_IN_SUCCEEDED)
    assert signed_in.user_id == support.pk
    assert signed_in.detail["via"] == "page"
    # Once signed in, the admin's login URL goes straight to the admin.
    again = client.get("/admin/login/", {"next": "/admin/accounts/user/"})
    assert again.status_code == 302
    assert again["Location"] == USERS


def test_staff_with_a_wrong_password_do_not_get_in(support):
    client = Client(enforce_csrf_checks=True)
    token = page_token(client, LOGIN_PAGE)
    response = client.post(
        "/accounts/login/?next=%2Fadmin%2F",
        {
            "email": support.email,
            "password": "not the password at all",
            "next": "/admin/",
            "csrfmiddlewaretoken": token,
        },
    )
    assert response.status_code == 200
    assert client.get(ADMIN).status_code == 302


def test_admin_login_never_redirects_signed_in_staff_off_site(desk):
    for target in ("https://evil.example/phish", "//evil.example/phish"):
        response = desk.get("/admin/login/", {"next": target})
        assert response.status_code == 302
        location = response["Location"]
        assert urlsplit(location).netloc in {"", "testserver"}, location
        assert "evil.example" not in urlsplit(location).netloc


def test_admin_logout_signs_out_through_the_product_logout(support):
    secret = enable_totp(support)
    client = Client(enforce_csrf_checks=True)
    token = page_token(client, LOGIN_PAGE)
    client.post(LOGIN_PAGE, {"email": support.email, "password": STRONG_PASSWORD, "csrfmiddlewaretoken": token})
    assert _second_step(client, secret).status_code == 302
    session = DeviceSession.objects.get(user=support)
    assert client.get(f"{ADMIN}logout/").status_code == 405  # never on a GET
    assert client.get(ADMIN).status_code == 200
    response = client.post(f"{ADMIN}logout/", {"csrfmiddlewaretoken": cookie_token(client)})
    assert response.status_code == 302
    session.refresh_from_db()
    assert session.revoked_reason == "logout"
    assert SecurityEvent.objects.filter(kind=EventKind.SIGN_OUT, user=support).count() == 1
    assert client.get(ADMIN).status_code == 302


def test_admin_pages_cannot_be_framed(desk, alice):
    for path in (ADMIN, USERS, f"{USERS}{alice.pk}/change/", EVENTS, SESSIONS):
        assert desk.get(path)["X-Frame-Options"] == "DENY", path
    assert Client().get("/admin/login/")["X-Frame-Options"] == "DENY"


def test_marking_verified_leaves_an_account_its_owner_verified_meanwhile_alone(support, bob, mailoutbox):
    """The owner verified (proving their password) between support's page load and the action."""
    from accounts.flows.support import staff_mark_email_verified

    stale = User.objects.get(pk=bob.pk)
    User.objects.filter(pk=bob.pk).update(email_verified_at=datetime(2031, 5, 21, tzinfo=UTC))
    assert staff_mark_email_verified(staff=support, user=stale) is False
    bob.refresh_from_db()
    assert bob.check_password(STRONG_PASSWORD)
    assert mailoutbox == []
    assert staff_actions() == []


# --- Support acts on users, not on staff ---------------------------------------------------------------


@pytest.fixture
def colleague(make_user) -> User:
    return make_user(email="kim@support.example", name="Kim Colleague", is_staff=True)


@pytest.fixture
def owner(make_user) -> User:
    """A superuser without staff status: still not someone support acts on."""
    return make_user(email="owner@support.example", name="Owner", is_superuser=True)


def shown_messages(client: Client, response) -> list[str]:
    """The messages the page after an action shows."""
    assert response.status_code == 302
    return [str(message) for message in client.get(response["Location"]).context["messages"]]


def open_session(user: User) -> DeviceSession:
    return start_device_session(user=user, ip_address=None, user_agent="").session


def test_support_actions_leave_staff_and_superuser_accounts_alone(desk, support, alice, colleague, owner):
    sessions = {user.pk: open_session(user) for user in (alice, colleague, owner)}
    response = run_action(desk, "end_all_sessions", [alice, colleague, owner])
    assert shown_messages(desk, response) == [
        "Skipped 2 staff account(s): only superusers act on staff.",
        "Sessions ended: 1 user(s).",
    ]
    revoked = {pk: DeviceSession.objects.get(pk=s.pk).revoked_at is not None for pk, s in sessions.items()}
    assert revoked == {alice.pk: True, colleague.pk: False, owner.pk: False}
    [event] = staff_actions()
    assert_staff_action(event, staff=support, user=alice, detail={"action": "end_sessions", "sessions_ended": 1})
    run_action(desk, "deactivate", [colleague, owner])
    assert User.objects.filter(pk__in=[colleague.pk, owner.pk], is_active=True).count() == 2


def test_a_superuser_acts_on_staff_accounts(root, superuser, colleague):
    open_session(colleague)
    response = run_action(root, "deactivate", [colleague])
    assert shown_messages(root, response) == ["Deactivated: 1 user(s)."]
    colleague.refresh_from_db()
    assert colleague.is_active is False
    [event] = staff_actions()
    assert_staff_action(event, staff=superuser, user=colleague, detail={"action": "deactivate", "sessions_ended": 1})


def test_support_ends_no_session_of_a_staff_account_from_the_session_list(desk, support, alice, colleague, owner):
    alices, colleagues, owners = open_session(alice), open_session(colleague), open_session(owner)
    response = run_action(desk, "end_sessions", [alices, colleagues, owners], changelist=SESSIONS)
    assert shown_messages(desk, response) == [
        "Skipped 2 session(s) of staff accounts: only superusers act on staff.",
        "Sessions ended: 1.",
    ]
    assert DeviceSession.objects.get(pk=alices.pk).revoked_reason == "ended_by_staff"
    assert DeviceSession.objects.filter(pk__in=[colleagues.pk, owners.pk], revoked_at__isnull=True).count() == 2
    [event] = SecurityEvent.objects.filter(kind=EventKind.SESSION_ENDED)
    assert (event.actor_id, event.user_id) == (support.pk, alice.pk)


def test_a_superuser_ends_a_staff_session_from_the_session_list(root, superuser, colleague):
    session = open_session(colleague)
    response = run_action(root, "end_sessions", [session], changelist=SESSIONS)
    assert shown_messages(root, response) == ["Sessions ended: 1."]
    assert DeviceSession.objects.get(pk=session.pk).revoked_reason == "ended_by_staff"
    event = SecurityEvent.objects.get(kind=EventKind.SESSION_ENDED)
    assert (event.actor_id, event.user_id) == (superuser.pk, colleague.pk)
    assert event.detail == {"session": str(session.pk), "reason": "ended_by_staff"}


def test_ending_sessions_already_ended_counts_and_records_nothing(desk, alice):
    session = open_session(alice)
    end_user_sessions(user=alice, reason="logout")
    response = run_action(desk, "end_sessions", [session], changelist=SESSIONS)
    assert shown_messages(desk, response) == ["Sessions ended: 0."]
    assert DeviceSession.objects.get(pk=session.pk).revoked_reason == "logout"
    assert not SecurityEvent.objects.filter(kind=EventKind.SESSION_ENDED, actor__isnull=False).exists()


def test_a_session_that_ends_while_support_ends_it_is_not_counted(support, alice, monkeypatch):
    session = open_session(alice)

    def signed_out_meanwhile(**kwargs):
        end_user_sessions(user=alice, reason="logout")  # between the selection and the end
        end_device_session(**kwargs)

    monkeypatch.setattr(support_flows, "end_device_session", signed_out_meanwhile)
    outcome = support_flows.staff_end_device_sessions(
        staff=support, sessions=DeviceSession.objects.filter(pk=session.pk)
    )
    assert outcome == support_flows.Outcome(done=0, skipped_staff=0)
    assert DeviceSession.objects.get(pk=session.pk).revoked_reason == "logout"
    assert not SecurityEvent.objects.filter(kind=EventKind.SESSION_ENDED, actor__isnull=False).exists()


# --- Deactivating through the form is one transaction -----------------------------------------------------


def failing_security_reset(monkeypatch) -> None:
    def broken(**kwargs):
        raise RuntimeError("cache went away")

    monkeypatch.setattr(account_status, "security_reset", broken)


def test_a_form_deactivation_that_cannot_end_the_sessions_changes_nothing(root, alice, monkeypatch):
    phone = sign_in_api(alice.email)
    data = superuser_form(root, alice)
    del data["is_active"]
    data["name"] = "Alice Renamed"
    failing_security_reset(monkeypatch)
    with pytest.raises(RuntimeError):
        root.post(f"{USERS}{alice.pk}/change/", data)
    fresh = User.objects.get(pk=alice.pk)
    assert (fresh.is_active, fresh.name) == (True, "Alice Liddell")
    assert DeviceSession.objects.get(user=alice).revoked_at is None
    assert get_me(phone.access).status_code == 200
    assert staff_actions() == []


def test_saving_a_deactivating_edit_that_fails_leaves_neither_the_edit_nor_the_deactivation(
    superuser, alice, monkeypatch
):
    session = open_session(alice)
    alice.is_active, alice.name = False, "Alice Renamed"
    failing_security_reset(monkeypatch)
    with pytest.raises(RuntimeError):
        support_flows.staff_save_user(staff=superuser, user=alice)
    fresh = User.objects.get(pk=alice.pk)
    assert (fresh.is_active, fresh.name) == (True, "Alice Liddell")
    assert DeviceSession.objects.get(pk=session.pk).revoked_at is None
    assert staff_actions() == []


def test_saving_an_already_inactive_user_is_no_deactivation(superuser, make_user):
    gone = make_user(email="gone@example.com", name="Gone", is_active=False)
    gone.name = "Gone For Good"
    support_flows.staff_save_user(staff=superuser, user=gone)
    assert User.objects.get(pk=gone.pk).name == "Gone For Good"
    assert staff_actions() == []


# --- Deleting a user from the admin ------------------------------------------------------------------------


def test_a_superuser_deletes_a_user_recorded_with_the_actor_and_without_the_owners_email(
    root, superuser, alice, mailoutbox
):
    device = sign_in_api(alice.email)
    user_id, email = alice.pk, alice.email
    mails_before = len(mailoutbox)
    path = f"{USERS}{alice.pk}/delete/"
    response = root.post(path, {"post": "yes", "csrfmiddlewaretoken": page_token(root, path)})
    assert response.status_code == 302
    assert not User.objects.filter(pk=user_id).exists()
    event = SecurityEvent.objects.get(kind=EventKind.ACCOUNT_DELETED)
    assert (event.actor_id, event.user_id) == (superuser.pk, None)
    assert event.detail == {"user_id": user_id, "by_staff": True}
    assert event.email_hash == email_fingerprint(email)
    assert (event.ip_address, event.user_agent) == (STAFF_IP, STAFF_UA)
    assert get_me(device.access).status_code == 401
    assert len(mailoutbox) == mails_before  # "deleted, as you asked" is for owners who asked


def test_a_superuser_deletes_several_users_at_once(root, superuser, alice, bob):
    token = page_token(root, USERS)
    response = root.post(
        USERS,
        {
            "action": "delete_selected",
            "_selected_action": [alice.pk, bob.pk],
            "post": "yes",
            "csrfmiddlewaretoken": token,
        },
    )
    assert response.status_code == 302
    assert not User.objects.filter(pk__in=[alice.pk, bob.pk]).exists()
    events = SecurityEvent.objects.filter(kind=EventKind.ACCOUNT_DELETED)
    assert sorted(event.detail["user_id"] for event in events) == sorted([alice.pk, bob.pk])
    assert {event.actor_id for event in events} == {superuser.pk}


def test_a_staff_deletion_that_fails_leaves_the_account(superuser, alice, monkeypatch):
    def broken(ids):
        raise RuntimeError("cache went away")

    session, user_id = open_session(alice), alice.pk
    monkeypatch.setattr(account_deletion, "mark_sessions_ended", broken)
    with pytest.raises(RuntimeError):
        support_flows.staff_delete_user(staff=superuser, user=alice)
    assert DeviceSession.objects.filter(pk=session.pk, user_id=user_id, revoked_at__isnull=True).exists()
    assert not SecurityEvent.objects.filter(kind=EventKind.ACCOUNT_DELETED).exists()


# --- A staff member with Django's change and delete permissions still cannot act on staff ---------------


@pytest.fixture
def manager(make_user, support_group) -> User:
    """Support plus the stock change and delete permissions a superuser might grant a "user manager"."""
    member = make_user(email="mgr@support.example", name="Manager", is_staff=True)
    member.groups.add(support_group)
    member.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="accounts", codename__in=["change_user", "delete_user"])
    )
    return member


@pytest.fixture
def office(manager) -> Client:
    return staff_client(manager)


def test_a_manager_cannot_edit_a_superuser_through_the_change_form(office, superuser):
    token = cookie_token(office)
    response = office.post(
        f"{USERS}{superuser.pk}/change/",
        user_form_data(superuser, email="mgr-owned@example.com", csrfmiddlewaretoken=token),
    )
    assert response.status_code == 403
    assert User.objects.get(pk=superuser.pk).email == superuser.email


def test_a_manager_cannot_delete_a_superuser_or_a_selection_holding_one(office, superuser, alice):
    path = f"{USERS}{superuser.pk}/delete/"
    response = office.post(path, {"post": "yes", "csrfmiddlewaretoken": cookie_token(office)})
    assert response.status_code == 403
    response = office.post(
        USERS,
        {
            "action": "delete_selected",
            "_selected_action": [alice.pk, superuser.pk],
            "post": "yes",
            "csrfmiddlewaretoken": cookie_token(office),
        },
    )
    assert response.status_code in (200, 403)  # Django's "you lack permission" page, never a deletion
    assert User.objects.filter(pk__in=[alice.pk, superuser.pk]).count() == 2
    assert not SecurityEvent.objects.filter(kind=EventKind.ACCOUNT_DELETED).exists()


def test_a_manager_still_edits_and_deletes_ordinary_accounts(office, alice, bob):
    token = page_token(office, f"{USERS}{alice.pk}/change/")
    response = office.post(
        f"{USERS}{alice.pk}/change/", user_form_data(alice, name="Alice L.", csrfmiddlewaretoken=token)
    )
    assert response.status_code == 302
    assert User.objects.get(pk=alice.pk).name == "Alice L."
    path = f"{USERS}{bob.pk}/delete/"
    assert office.post(path, {"post": "yes", "csrfmiddlewaretoken": page_token(office, path)}).status_code == 302
    assert not User.objects.filter(pk=bob.pk).exists()


def test_a_superuser_still_edits_staff_through_the_change_form(root, support):
    token = page_token(root, f"{USERS}{support.pk}/change/")
    response = root.post(
        f"{USERS}{support.pk}/change/",
        user_form_data(support, name="Sam S.", is_staff="on", csrfmiddlewaretoken=token),
    )
    assert response.status_code == 302
    assert User.objects.get(pk=support.pk).name == "Sam S."


@pytest.mark.parametrize("flow", ["save", "delete"])
def test_the_support_flows_refuse_a_staff_target_themselves(support, superuser, flow):
    with pytest.raises(StaffAccountProtected):
        if flow == "save":
            superuser.email = "mgr-owned@example.com"
            support_flows.staff_save_user(staff=support, user=superuser)
        else:
            support_flows.staff_delete_user(staff=support, user=superuser)
    stored = User.objects.get(pk=superuser.pk)
    assert stored.email == "root@support.example" and stored.is_superuser
