"""The todo JSON API: listing, filtering, ordering, paging, CRUD, ownership, verification policy and query cost."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import DeviceSession
from tests.support.api import access_token_for, api_client, bearer, login, patch_json, post_json, put_json
from tests.support.api import assert_api_error as assert_error
from todos.models import Todo

pytestmark = pytest.mark.django_db

TODOS_URL = "/api/todos/"
BASE_TIME = datetime(2020, 1, 1, 9, 0, 0, tzinfo=UTC)
TODO_FIELDS = {"id", "title", "notes", "completed", "created_at", "updated_at"}


@pytest.fixture
def client():
    return api_client()


@pytest.fixture
def bob(make_user):
    return make_user(email="bob@example.com", name="Bob")


@pytest.fixture
def auth(user) -> dict:
    """Bearer header of a fresh device session of Alice (verified)."""
    return bearer(access_token_for(user))


@pytest.fixture
def bobs_todo(bob) -> Todo:
    return Todo.objects.create(owner=bob, title="Bob's secret", notes="private", completed=False)


def detail_url(todo_or_id) -> str:
    return f"{TODOS_URL}{getattr(todo_or_id, 'pk', todo_or_id)}/"


def make_todo(owner, title="Task", *, completed=False, minutes=0, notes=""):
    """A todo whose created_at/updated_at are BASE_TIME + ``minutes`` (so orderings are deterministic)."""
    todo = Todo.objects.create(owner=owner, title=title, completed=completed, notes=notes)
    moment = BASE_TIME + timedelta(minutes=minutes)
    Todo.objects.filter(pk=todo.pk).update(created_at=moment, updated_at=moment)
    todo.refresh_from_db()
    return todo


def titles(response) -> list[str]:
    return [item["title"] for item in response.json()["results"]]


# --- Listing and paging ----------------------------------------------------------------


def test_empty_list_is_a_paginated_envelope(client, auth):
    response = client.get(TODOS_URL, **auth)
    assert response.status_code == 200
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_list_shows_the_callers_todos_with_all_fields(client, user, auth):
    todo = make_todo(user, "Buy milk", notes="2 litres", completed=True)
    response = client.get(TODOS_URL, **auth)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    [item] = body["results"]
    assert set(item) == TODO_FIELDS
    assert item["id"] == todo.pk
    assert item["title"] == "Buy milk"
    assert item["notes"] == "2 litres"
    assert item["completed"] is True


def test_list_never_shows_other_peoples_todos(client, user, bob, auth):
    make_todo(user, "Mine")
    for index in range(3):
        make_todo(bob, f"Bob's {index}")
    response = client.get(TODOS_URL, **auth)
    assert response.json()["count"] == 1
    assert titles(response) == ["Mine"]
    assert client.get(TODOS_URL, {"page_size": 100, "ordering": "title"}, **auth).json()["count"] == 1


def test_list_is_paged_by_20_by_default(client, user, auth):
    for index in range(25):
        make_todo(user, f"Task {index:02d}", minutes=index)
    first = client.get(TODOS_URL, **auth).json()
    assert first["count"] == 25
    assert len(first["results"]) == 20
    assert first["previous"] is None
    assert "page=2" in first["next"]
    second = client.get(TODOS_URL, {"page": 2}, **auth).json()
    assert len(second["results"]) == 5
    assert second["next"] is None
    assert second["previous"] is not None
    seen = [item["id"] for item in first["results"] + second["results"]]
    assert len(set(seen)) == 25


def test_page_size_parameter_sets_the_page_length(client, user, auth):
    for index in range(7):
        make_todo(user, f"Task {index}", minutes=index)
    body = client.get(TODOS_URL, {"page_size": 3}, **auth).json()
    assert body["count"] == 7
    assert len(body["results"]) == 3
    assert "page_size=3" in body["next"]


def test_page_size_is_capped_at_100(client, user, auth):
    Todo.objects.bulk_create(Todo(owner=user, title=f"Task {index}") for index in range(105))
    body = client.get(TODOS_URL, {"page_size": 1000}, **auth).json()
    assert body["count"] == 105
    assert len(body["results"]) == 100


def test_page_past_the_end_is_404(client, user, auth):
    make_todo(user)
    assert_error(client.get(TODOS_URL, {"page": 5}, **auth), 404, "not_found")


# --- Filtering and ordering ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [("true", ["Done"]), ("false", ["Open"]), ("True", ["Done"]), ("0", ["Open"])]
)
def test_filter_by_completed(client, user, auth, value, expected):
    make_todo(user, "Done", completed=True)
    make_todo(user, "Open", completed=False)
    response = client.get(TODOS_URL, {"completed": value}, **auth)
    assert response.status_code == 200
    assert titles(response) == expected
    assert response.json()["count"] == 1


@pytest.mark.parametrize("value", ["maybe", "", "yes", "2"])
def test_invalid_completed_filter_is_400(client, user, auth, value):
    make_todo(user)
    response = client.get(TODOS_URL, {"completed": value}, **auth)
    assert_error(response, 400, "invalid_input", fields={"completed"})


def test_default_ordering_is_newest_first(client, user, auth):
    make_todo(user, "Old", minutes=0)
    make_todo(user, "New", minutes=10)
    make_todo(user, "Middle", minutes=5)
    assert titles(client.get(TODOS_URL, **auth)) == ["New", "Middle", "Old"]


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("title", ["Apple", "Banana", "Cherry"]),
        ("-title", ["Cherry", "Banana", "Apple"]),
        ("created_at", ["Banana", "Cherry", "Apple"]),
        ("-created_at", ["Apple", "Cherry", "Banana"]),
    ],
)
def test_ordering_parameter(client, user, auth, ordering, expected):
    make_todo(user, "Banana", minutes=1)
    make_todo(user, "Cherry", minutes=2)
    make_todo(user, "Apple", minutes=3)
    response = client.get(TODOS_URL, {"ordering": ordering}, **auth)
    assert response.status_code == 200
    assert titles(response) == expected


@pytest.mark.parametrize(("ordering", "expected"), [("updated_at", ["A", "C", "B"]), ("-updated_at", ["B", "C", "A"])])
def test_ordering_by_updated_at(client, user, auth, ordering, expected):
    for title, minutes in [("A", 1), ("B", 3), ("C", 2)]:
        todo = make_todo(user, title)
        Todo.objects.filter(pk=todo.pk).update(updated_at=BASE_TIME + timedelta(minutes=minutes))
    assert titles(client.get(TODOS_URL, {"ordering": ordering}, **auth)) == expected


@pytest.mark.parametrize("ordering", ["owner", "owner__password", "notes", "id;drop", "", "title,-id"])
def test_invalid_ordering_is_400(client, user, auth, ordering):
    make_todo(user)
    response = client.get(TODOS_URL, {"ordering": ordering}, **auth)
    assert_error(response, 400, "invalid_input", fields={"ordering"})


# --- Creating ---------------------------------------------------------------------------


def test_create_returns_201_and_stores_the_todo_for_the_caller(client, user, auth):
    response = post_json(client, TODOS_URL, {"title": "Write tests", "notes": "lots"}, **auth)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == TODO_FIELDS
    assert body["title"] == "Write tests"
    assert body["notes"] == "lots"
    assert body["completed"] is False
    todo = Todo.objects.get(pk=body["id"])
    assert todo.owner_id == user.pk
    assert todo.title == "Write tests"


def test_create_with_completed_true(client, auth):
    response = post_json(client, TODOS_URL, {"title": "Already done", "completed": True}, **auth)
    assert response.status_code == 201
    assert Todo.objects.get(pk=response.json()["id"]).completed is True


def test_create_ignores_owner_and_read_only_fields_in_the_body(client, user, bob, auth):
    response = post_json(
        client,
        TODOS_URL,
        {"title": "Mine", "owner": bob.pk, "owner_id": bob.pk, "id": 999_999, "created_at": "2000-01-01T00:00:00Z"},
        **auth,
    )
    assert response.status_code == 201
    todo = Todo.objects.get(pk=response.json()["id"])
    assert todo.owner_id == user.pk
    assert todo.pk != 999_999
    assert todo.created_at.year != 2000
    assert not Todo.objects.filter(owner=bob).exists()


def test_create_accepts_a_title_of_exactly_200_characters(client, auth):
    response = post_json(client, TODOS_URL, {"title": "t" * 200}, **auth)
    assert response.status_code == 201
    assert Todo.objects.get().title == "t" * 200


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "t" * 201}, "title"),
        ({"title": 5}, "title"),
        ({"title": None}, "title"),
        ({"title": ["a"]}, "title"),
        ({}, "title"),
        ({"title": "ok", "completed": "yes"}, "completed"),
        ({"title": "ok", "completed": "true"}, "completed"),
        ({"title": "ok", "completed": 1}, "completed"),
        ({"title": "ok", "completed": None}, "completed"),
        ({"title": "ok", "notes": 5}, "notes"),
        ({"title": "ok", "notes": "n" * 10_001}, "notes"),
    ],
)
def test_create_with_invalid_data_is_400_and_creates_nothing(client, auth, data, field):
    response = post_json(client, TODOS_URL, data, **auth)
    body = assert_error(response, 400, "invalid_input", fields={field})
    assert set(body["fields"]) == {field}
    assert not Todo.objects.exists()


def test_create_with_malformed_json_is_400(client, auth):
    response = client.post(TODOS_URL, '{"title": ', content_type="application/json", **auth)
    assert_error(response, 400, "malformed_request")
    assert not Todo.objects.exists()


def test_create_with_a_form_body_is_415(client, auth):
    response = client.post(TODOS_URL, "title=x", content_type="application/x-www-form-urlencoded", **auth)
    assert_error(response, 415, "unsupported_media_type")
    assert not Todo.objects.exists()


# --- Reading, updating, deleting one todo -------------------------------------------------


def test_retrieve_own_todo(client, user, auth):
    todo = make_todo(user, "Read me", notes="details")
    response = client.get(detail_url(todo), **auth)
    assert response.status_code == 200
    assert response.json()["id"] == todo.pk
    assert response.json()["title"] == "Read me"
    assert response.json()["notes"] == "details"


def test_put_replaces_the_todo(client, user, auth):
    todo = make_todo(user, "Old title", notes="old notes")
    response = put_json(client, detail_url(todo), {"title": "New title", "notes": "", "completed": True}, **auth)
    assert response.status_code == 200
    assert response.json()["title"] == "New title"
    todo.refresh_from_db()
    assert (todo.title, todo.notes, todo.completed) == ("New title", "", True)
    assert todo.updated_at > BASE_TIME


def test_put_without_a_title_is_400(client, user, auth):
    todo = make_todo(user, "Keep me")
    response = put_json(client, detail_url(todo), {"completed": True}, **auth)
    assert_error(response, 400, "invalid_input", fields={"title"})
    todo.refresh_from_db()
    assert (todo.title, todo.completed) == ("Keep me", False)


def test_patch_changes_only_the_given_fields(client, user, auth):
    todo = make_todo(user, "Title stays", notes="notes stay")
    response = patch_json(client, detail_url(todo), {"completed": True}, **auth)
    assert response.status_code == 200
    todo.refresh_from_db()
    assert (todo.title, todo.notes, todo.completed) == ("Title stays", "notes stay", True)


@pytest.mark.parametrize("data", [{"title": ""}, {"title": "t" * 201}, {"completed": "yes"}, {"completed": 0}])
def test_patch_with_invalid_data_is_400_and_changes_nothing(client, user, auth, data):
    todo = make_todo(user, "Unchanged")
    response = patch_json(client, detail_url(todo), data, **auth)
    assert_error(response, 400, "invalid_input", fields=set(data))
    todo.refresh_from_db()
    assert (todo.title, todo.completed) == ("Unchanged", False)


def test_patch_cannot_move_a_todo_to_another_owner(client, user, bob, auth):
    todo = make_todo(user, "Mine")
    response = patch_json(client, detail_url(todo), {"owner": bob.pk, "title": "Still mine"}, **auth)
    assert response.status_code == 200
    todo.refresh_from_db()
    assert todo.owner_id == user.pk
    assert todo.title == "Still mine"


def test_delete_own_todo(client, user, auth):
    todo = make_todo(user)
    response = client.delete(detail_url(todo), **auth)
    assert response.status_code == 204
    assert response.content == b""
    assert not Todo.objects.filter(pk=todo.pk).exists()
    assert_error(client.get(detail_url(todo), **auth), 404, "not_found")


def test_unknown_todo_id_is_404(client, auth):
    assert_error(client.get(detail_url(123_456), **auth), 404, "not_found")


# --- Other people's todos -------------------------------------------------------------------


def assert_unchanged(todo: Todo) -> None:
    fresh = Todo.objects.get(pk=todo.pk)
    assert (fresh.owner_id, fresh.title, fresh.notes, fresh.completed) == (
        todo.owner_id,
        todo.title,
        todo.notes,
        todo.completed,
    )


def test_get_another_users_todo_is_404(client, auth, bobs_todo):
    response = client.get(detail_url(bobs_todo), **auth)
    assert_error(response, 404, "not_found")
    assert "secret" not in response.content.decode()


def test_patch_another_users_todo_is_404_and_changes_nothing(client, auth, bobs_todo):
    response = patch_json(client, detail_url(bobs_todo), {"title": "Hacked", "completed": True}, **auth)
    assert_error(response, 404, "not_found")
    assert_unchanged(bobs_todo)


def test_put_another_users_todo_is_404_and_changes_nothing(client, auth, bobs_todo):
    response = put_json(client, detail_url(bobs_todo), {"title": "Hacked", "notes": "", "completed": True}, **auth)
    assert_error(response, 404, "not_found")
    assert_unchanged(bobs_todo)


def test_delete_another_users_todo_is_404_and_keeps_it(client, auth, bobs_todo):
    response = client.delete(detail_url(bobs_todo), **auth)
    assert_error(response, 404, "not_found")
    assert_unchanged(bobs_todo)


def test_another_users_todo_and_a_missing_one_look_the_same(client, auth, bobs_todo):
    foreign = client.get(detail_url(bobs_todo), **auth)
    missing = client.get(detail_url(bobs_todo.pk + 1000), **auth)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.content == missing.content


# --- Authentication and the verification policy -------------------------------------------


@pytest.mark.parametrize(
    ("method", "path_kind"),
    [
        ("get", "list"),
        ("post", "list"),
        ("get", "detail"),
        ("patch", "detail"),
        ("put", "detail"),
        ("delete", "detail"),
    ],
)
def test_unauthenticated_requests_are_401_and_change_nothing(client, user, method, path_kind):
    todo = make_todo(user, "Untouched")
    path = TODOS_URL if path_kind == "list" else detail_url(todo)
    response = getattr(client, method)(
        path, {"title": "x"} if method != "get" else None, content_type="application/json"
    )
    assert_error(response, 401, "not_authenticated")
    assert Todo.objects.count() == 1
    assert_unchanged(todo)


def test_invalid_bearer_token_is_401(client, user):
    response = client.get(TODOS_URL, **bearer("not.a.jwt"))
    assert_error(response, 401, "access_token_invalid")


def test_token_of_an_ended_session_is_401(client, user):
    access = access_token_for(user)
    assert client.get(TODOS_URL, **bearer(access)).status_code == 200
    assert post_json(client, "/api/auth/sessions/revoke-others/", **bearer(access_token_for(user))).status_code == 204
    assert_error(client.get(TODOS_URL, **bearer(access)), 401, "session_ended")


def test_todos_work_with_a_token_from_the_login_endpoint(client, user):
    access = login(client)
    response = post_json(client, TODOS_URL, {"title": "Via login"}, **bearer(access))
    assert response.status_code == 201
    assert Todo.objects.get().owner_id == user.pk


@pytest.fixture
def unverified_auth(make_user) -> dict:
    unverified = make_user(email="una@example.com", name="Una", verified=False)
    return bearer(access_token_for(unverified))


@pytest.mark.parametrize(("method", "data"), [("get", None), ("post", {"title": "Nope"})])
def test_unverified_token_is_403_under_the_mandatory_policy(client, settings, unverified_auth, method, data):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "mandatory"
    response = getattr(client, method)(TODOS_URL, data, content_type="application/json", **unverified_auth)
    assert_error(response, 403, "email_not_verified")
    assert not Todo.objects.exists()


def test_unverified_token_is_allowed_under_the_optional_policy(client, settings, unverified_auth):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "optional"
    assert client.get(TODOS_URL, **unverified_auth).status_code == 200
    response = post_json(client, TODOS_URL, {"title": "Allowed"}, **unverified_auth)
    assert response.status_code == 201
    assert Todo.objects.get().title == "Allowed"


# --- Query cost ------------------------------------------------------------------------------


def test_warm_cache_list_runs_only_the_views_own_queries(client, user, django_assert_num_queries):
    make_todo(user, "One")
    make_todo(user, "Two", minutes=1)
    auth = bearer(access_token_for(user))
    with CaptureQueriesContext(connection) as cold:
        assert client.get(TODOS_URL, **auth).status_code == 200
    assert any('"sessions"' in query["sql"] for query in cold.captured_queries)  # cache was filled from the DB

    with django_assert_num_queries(2) as warm:
        response = client.get(TODOS_URL, **auth)
    assert response.status_code == 200
    assert response.json()["count"] == 2
    for query in warm.captured_queries:
        sql = query["sql"]
        assert '"todos_todo"' in sql, sql
        assert '"sessions"' not in sql, sql
        assert '"accounts_user"' not in sql, sql
        assert "django_session" not in sql, sql


def test_warm_cache_detail_runs_one_query(client, user, django_assert_num_queries):
    todo = make_todo(user)
    auth = bearer(access_token_for(user))
    assert client.get(detail_url(todo), **auth).status_code == 200
    with django_assert_num_queries(1) as warm:
        assert client.get(detail_url(todo), **auth).status_code == 200
    assert '"todos_todo"' in warm.captured_queries[0]["sql"]


def test_session_ended_while_cache_is_warm_is_still_refused(client, user):
    access = access_token_for(user)
    assert client.get(TODOS_URL, **bearer(access)).status_code == 200
    session_id = DeviceSession.objects.get().pk
    other = access_token_for(user)
    assert client.delete(f"/api/auth/sessions/{session_id}/", **bearer(other)).status_code == 204
    assert_error(client.get(TODOS_URL, **bearer(access)), 401, "session_ended")


@pytest.mark.parametrize("notes", ["", "multi\nline notes ✓"])
def test_the_fast_representation_is_the_one_drf_would_give(user, notes):
    """TodoSerializer reads its fields directly; DRF's own ModelSerializer must agree, key order included."""
    from rest_framework import serializers

    from todos.api import TodoSerializer

    class StockTodoSerializer(serializers.ModelSerializer):
        class Meta:
            model = Todo
            fields = TodoSerializer.Meta.fields

    todo = Todo.objects.create(owner=user, title="Buy milk", notes=notes, completed=True)
    Todo.objects.filter(pk=todo.pk).update(created_at=datetime(2031, 5, 1, 9, 0, 0, 123456, tzinfo=UTC))
    todo.refresh_from_db()
    ours, stock = TodoSerializer(todo).data, StockTodoSerializer(todo).data
    assert list(ours.items()) == list(stock.items())
    assert ours["created_at"] == "2031-05-01T09:00:00.123456Z"
