"""No admin changelist URL lets staff filter or search by a password hash or a token hash, even a superuser."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db.models.constants import LOOKUP_SEP
from django.test import Client

from accounts.admin import SECRET_FIELDS
from accounts.flows.device_sessions import EndReason, end_device_session, start_device_session
from accounts.models import DeviceSession, User
from tests.support.accounts import force_page_login
from todos.models import Todo

pytestmark = pytest.mark.django_db

USERS = "/admin/accounts/user/"
SESSIONS = "/admin/accounts/devicesession/"
EVENTS = "/admin/accounts/securityevent/"
TODOS = "/admin/todos/todo/"
# No hex digest and no password hash starts with "z": the answer for a value that matches nothing.
NO_MATCH = "zz"


# --- Fixtures and helpers ----------------------------------------------------------------------------


def staff_client(member: User) -> Client:
    client = Client(enforce_csrf_checks=True)
    force_page_login(client, member)
    return client


@pytest.fixture
def superuser_client(make_user) -> Client:
    return staff_client(make_user(email="root@support.example", name="Root", is_staff=True, is_superuser=True))


@pytest.fixture(params=["support member", "superuser"])
def staff(request, make_user) -> Client:
    """A signed-in admin browser: a Support-group member's, then a superuser's."""
    if request.param == "superuser":
        return request.getfixturevalue("superuser_client")
    member = make_user(email="sam@support.example", name="Sam Support", is_staff=True)
    member.groups.add(Group.objects.get(name="Support"))
    return staff_client(member)


@pytest.fixture
def alice(make_user) -> User:
    return make_user(email="alice@example.com", name="Alice")


@pytest.fixture
def session(alice) -> DeviceSession:
    """A live device session of Alice's, with a real refresh-token hash to probe for."""
    return start_device_session(user=alice, ip_address="127.0.0.1", user_agent="x").session


@pytest.fixture
def signed_out_session(alice) -> DeviceSession:
    ended = start_device_session(user=alice, ip_address="127.0.0.1", user_agent="x").session
    end_device_session(user=alice, session_id=ended.pk, reason=EndReason.LOGOUT)
    return ended


def assert_refused_alike(client: Client, path: str, lookup: str, matching: str, not_matching: str = NO_MATCH) -> None:
    """A value that matches a row and one that matches none get the same 400: nothing to read a secret by."""
    hit = client.get(path, {lookup: matching})
    miss = client.get(path, {lookup: not_matching})
    assert hit.status_code == 400, (lookup, hit.status_code)
    assert (hit.status_code, hit.content) == (miss.status_code, miss.content)


def listed(response) -> list:
    assert response.status_code == 200, response.status_code
    return list(response.context["cl"].result_list)


def field_parts(entry) -> set[str]:
    """The field names a search_fields / list_filter / date_hierarchy entry goes through (filter classes name none)."""
    if not isinstance(entry, str):
        entry = entry[0] if isinstance(entry, tuple) else None
    return set(entry.lstrip("^=@").split(LOOKUP_SEP)) if entry else set()


# --- Refresh-token hashes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lookup", "probe"),
    [
        ("refresh_token_hash__startswith", lambda digest: digest[:2]),
        ("refresh_token_hash", lambda digest: digest),
        ("refresh_token_hash__gt", lambda digest: "0"),  # every hex digest sorts after "0", none after "zz"
        ("refresh_token_hash__regex", lambda digest: f"^{digest[:2]}"),
    ],
    ids=["startswith", "exact", "gt", "regex"],
)
def test_a_refresh_token_hash_lookup_answers_the_same_for_a_real_and_a_wrong_value(staff, session, lookup, probe):
    assert_refused_alike(staff, SESSIONS, lookup, probe(session.refresh_token_hash))


@pytest.mark.parametrize(
    ("path", "lookup"),
    [
        (USERS, "device_sessions__refresh_token_hash__startswith"),
        (EVENTS, "user__device_sessions__refresh_token_hash__startswith"),
    ],
)
def test_a_refresh_token_hash_lookup_through_a_relation_is_refused(staff, session, path, lookup):
    assert_refused_alike(staff, path, lookup, session.refresh_token_hash[:2])


# --- Password hashes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "lookup"),
    [
        (USERS, "password__startswith"),
        (SESSIONS, "user__password__startswith"),
        (EVENTS, "user__password__startswith"),
    ],
)
def test_a_password_hash_lookup_is_refused(staff, alice, session, path, lookup):
    assert alice.password.startswith("argon2")  # the probe would match Alice's row
    assert_refused_alike(staff, path, lookup, "argon2")


def test_a_password_hash_lookup_through_the_owner_of_a_todo_is_refused(superuser_client, alice):
    # Support may not read todos at all; a superuser may, but not filter them by their owner's hash.
    Todo.objects.create(owner=alice, title="Buy milk")
    assert alice.password.startswith("argon2")
    assert_refused_alike(superuser_client, TODOS, "owner__password__startswith", "argon2")


# --- Ordinary filtering and searching still work -----------------------------------------------------------


def test_ordinary_filters_still_work(staff, alice, session, signed_out_session):
    assert listed(staff.get(SESSIONS, {"revoked_reason": "logout"})) == [signed_out_session]
    assert alice in listed(staff.get(USERS, {"is_active__exact": "1"}))
    # The user page links to a user's events this way.
    events = listed(staff.get(EVENTS, {"user__id__exact": str(alice.pk)}))
    assert events and {event.user_id for event in events} == {alice.pk}


def test_ordinary_todo_filters_still_work_for_a_superuser(superuser_client, alice):
    todo = Todo.objects.create(owner=alice, title="Buy milk")
    assert listed(superuser_client.get(TODOS, {"completed__exact": "0"})) == [todo]


@pytest.mark.parametrize("path", [SESSIONS, USERS, EVENTS])
def test_searching_for_a_refresh_token_hash_finds_nothing(staff, session, path):
    digest = session.refresh_token_hash
    for query in (digest[:16], digest):
        assert listed(staff.get(path, {"q": query})) == [], query


def test_searching_sessions_by_ip_address_still_finds_them(staff, session):
    # Shows that the search above ran and found nothing, rather than failing to search at all.
    assert session in listed(staff.get(SESSIONS, {"q": "127.0.0.1"}))


def test_no_registered_admin_searches_or_filters_by_a_secret_field():
    for model, model_admin in admin.site._registry.items():
        entries = [*model_admin.search_fields, *model_admin.list_filter, model_admin.date_hierarchy]
        used = set().union(*(field_parts(entry) for entry in entries))
        assert not used & SECRET_FIELDS, model.__name__
