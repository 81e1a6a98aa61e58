"""The Todo model, its database constraints, and the admin pages for todos and users."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from tests.support.accounts import force_page_login
from todos.models import TITLE_MAX_LENGTH, Todo

pytestmark = pytest.mark.django_db


def test_new_todo_has_owner_title_and_defaults(user):
    before = timezone.now()
    todo = Todo.objects.create(owner=user, title="Buy milk")
    todo.refresh_from_db()
    assert todo.owner == user
    assert todo.title == "Buy milk"
    assert str(todo) == "Buy milk"
    assert todo.notes == ""
    assert todo.completed is False
    assert before <= todo.created_at <= timezone.now()
    assert before <= todo.updated_at <= timezone.now()


def test_updated_at_moves_on_save_but_created_at_does_not(user):
    with time_machine.travel(datetime(2025, 1, 1, 12, tzinfo=UTC), tick=False):
        todo = Todo.objects.create(owner=user, title="Write report")
    with time_machine.travel(datetime(2025, 1, 2, 12, tzinfo=UTC), tick=False):
        todo.completed = True
        todo.save()
    todo.refresh_from_db()
    assert todo.created_at == datetime(2025, 1, 1, 12, tzinfo=UTC)
    assert todo.updated_at == datetime(2025, 1, 2, 12, tzinfo=UTC)
    assert todo.completed is True


def test_user_reaches_their_todos_through_the_related_name(make_user):
    alice = make_user()
    bob = make_user(email="bob@example.com", name="Bob")
    Todo.objects.create(owner=alice, title="Alice's")
    Todo.objects.create(owner=bob, title="Bob's")
    assert [todo.title for todo in alice.todos.all()] == ["Alice's"]
    assert [todo.title for todo in bob.todos.all()] == ["Bob's"]


def test_title_of_maximum_length_is_valid(user):
    todo = Todo(owner=user, title="x" * TITLE_MAX_LENGTH)
    todo.full_clean()
    assert TITLE_MAX_LENGTH == 200


def test_title_longer_than_maximum_fails_validation(user):
    todo = Todo(owner=user, title="x" * (TITLE_MAX_LENGTH + 1))
    with pytest.raises(ValidationError) as excinfo:
        todo.full_clean()
    assert "title" in excinfo.value.message_dict


def test_empty_title_fails_validation(user):
    with pytest.raises(ValidationError) as excinfo:
        Todo(owner=user, title="").full_clean()
    assert "title" in excinfo.value.message_dict


def test_empty_title_is_rejected_by_the_database(user):
    with pytest.raises(IntegrityError), transaction.atomic():
        Todo.objects.create(owner=user, title="")
    assert not Todo.objects.exists()


def test_title_cannot_be_emptied_by_a_bulk_update(user):
    Todo.objects.create(owner=user, title="Keep me")
    with pytest.raises(IntegrityError), transaction.atomic():
        Todo.objects.update(title="")
    assert Todo.objects.get().title == "Keep me"


def test_todo_without_owner_is_rejected_by_the_database():
    with pytest.raises(IntegrityError), transaction.atomic():
        Todo.objects.create(title="Orphan")


def test_deleting_the_user_deletes_their_todos_only(make_user):
    alice = make_user()
    bob = make_user(email="bob@example.com", name="Bob")
    Todo.objects.create(owner=alice, title="One")
    Todo.objects.create(owner=alice, title="Two")
    Todo.objects.create(owner=bob, title="Bob's")
    alice.delete()
    assert list(Todo.objects.values_list("title", flat=True)) == ["Bob's"]


def test_default_ordering_is_newest_first(user):
    # Created out of order so that the primary key alone would give the wrong answer.
    with time_machine.travel(datetime(2025, 3, 1, tzinfo=UTC), tick=False):
        Todo.objects.create(owner=user, title="newest")
    with time_machine.travel(datetime(2025, 1, 1, tzinfo=UTC), tick=False):
        Todo.objects.create(owner=user, title="oldest")
    with time_machine.travel(datetime(2025, 2, 1, tzinfo=UTC), tick=False):
        Todo.objects.create(owner=user, title="middle")
    assert list(Todo.objects.values_list("title", flat=True)) == ["newest", "middle", "oldest"]


def test_ties_in_creation_time_are_broken_by_newest_id(user):
    with time_machine.travel(datetime(2025, 1, 1, tzinfo=UTC), tick=False):
        first = Todo.objects.create(owner=user, title="first")
        second = Todo.objects.create(owner=user, title="second")
    assert list(Todo.objects.all()) == [second, first]


# --- Admin ----------------------------------------------------------------------------


def test_todo_admin_changelist_is_served(admin_client, user):
    Todo.objects.create(owner=user, title="Visible in admin")
    response = admin_client.get("/admin/todos/todo/")
    assert response.status_code == 200
    assert "Visible in admin" in response.content.decode()


def test_todo_admin_search_by_owner_email(admin_client, make_user):
    alice = make_user()
    bob = make_user(email="bob@example.com", name="Bob")
    Todo.objects.create(owner=alice, title="Alice task")
    Todo.objects.create(owner=bob, title="Bob task")
    content = admin_client.get("/admin/todos/todo/", {"q": "bob@example"}).content.decode()
    assert "Bob task" in content
    assert "Alice task" not in content


def test_todo_admin_change_page_is_served(admin_client, user):
    todo = Todo.objects.create(owner=user, title="Edit me")
    assert admin_client.get(f"/admin/todos/todo/{todo.pk}/change/").status_code == 200


def test_user_admin_changelist_is_served(admin_client, user):
    response = admin_client.get("/admin/accounts/user/")
    assert response.status_code == 200
    assert user.email in response.content.decode()


def test_user_admin_search_finds_alice(admin_client, make_user):
    make_user()
    make_user(email="bob@example.com", name="Bob")
    content = admin_client.get("/admin/accounts/user/", {"q": "alice"}).content.decode()
    assert "alice@example.com" in content
    assert "bob@example.com" not in content


def test_user_admin_search_for_an_unknown_name_finds_nobody(admin_client, user):
    content = admin_client.get("/admin/accounts/user/", {"q": "mallory"}).content.decode()
    assert "alice@example.com" not in content
    assert "0 results" in content


def test_user_admin_change_page_does_not_reveal_the_password_hash(admin_client, user):
    response = admin_client.get(f"/admin/accounts/user/{user.pk}/change/")
    assert response.status_code == 200
    stored_hash = User.objects.get(pk=user.pk).password
    assert stored_hash.rsplit("$", 1)[-1] not in response.content.decode()


def test_user_admin_add_page_is_served(admin_client):
    assert admin_client.get("/admin/accounts/user/add/").status_code == 200


@pytest.mark.parametrize("path", ["/admin/todos/todo/", "/admin/accounts/user/"])
def test_admin_is_closed_to_anonymous_visitors(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.parametrize("path", ["/admin/todos/todo/", "/admin/accounts/user/"])
def test_admin_is_closed_to_non_staff_users(client, user, path):
    force_page_login(client, user)
    response = client.get(path)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
