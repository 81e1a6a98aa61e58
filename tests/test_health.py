"""Health and readiness endpoints, and the 503 answer while the database is unreachable."""

import pytest
from django.db import OperationalError, connection
from django.test import Client


@pytest.fixture
def client_without_exceptions():
    return Client(raise_request_exception=False)


def test_healthz_answers_without_the_database(client, db, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_database_and_cache(client):
    response = client.get("/readyz/")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "cache": "ok",
        "email_queue": {"status": "ok", "waiting": 0, "oldest_due_seconds": 0, "failed_last_day": 0},
    }


def _email(**fields):
    from accounts.models import OutboundEmail

    return OutboundEmail.objects.create(template="t", to="someone@example.com", **fields)


@pytest.mark.django_db
def test_readyz_shows_a_stuck_email_queue_without_leaving_the_rotation(client, settings):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import OutboundEmail

    _email(next_attempt_at=timezone.now() + timedelta(minutes=5))  # a retry, not due: not stuck
    _email(status=OutboundEmail.Status.FAILED)
    assert client.get("/readyz/").json()["email_queue"] == {
        "status": "ok",
        "waiting": 1,
        "oldest_due_seconds": 0,
        "failed_last_day": 1,
    }
    settings.ACCOUNTS_EMAIL_STUCK_SECONDS = 300
    _email(next_attempt_at=timezone.now() - timedelta(minutes=10))  # due 10 minutes ago: no worker sends
    response = client.get("/readyz/")
    assert response.status_code == 200  # this instance can still serve
    queue = response.json()["email_queue"]
    assert queue["status"] == "stuck" and queue["waiting"] == 2 and 590 <= queue["oldest_due_seconds"] <= 610


@pytest.mark.django_db
def test_an_attempt_whose_lease_ran_out_counts_as_due(client):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import OutboundEmail

    long_ago = timezone.now() - timedelta(hours=1)
    _email(status=OutboundEmail.Status.SENDING, next_attempt_at=long_ago, lease_until=long_ago)
    assert client.get("/readyz/").json()["email_queue"]["status"] == "stuck"


@pytest.mark.django_db
def test_readyz_is_503_when_the_database_fails(client, monkeypatch):
    def broken_cursor(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", broken_cursor)
    response = client.get("/readyz/")
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"


@pytest.mark.django_db
def test_readyz_is_503_when_the_cache_fails(client, monkeypatch):
    from django.core.cache import cache

    def broken(*args, **kwargs):
        raise ConnectionError("redis down")

    monkeypatch.setattr(cache, "set", broken)
    response = client.get("/readyz/")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "cache": "unavailable"}


def _unreachable_database(monkeypatch):
    """Every query fails as if the server were down, and no connection is open."""

    def refuse(*args, **kwargs):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr("todos.api.TodoViewSet.get_queryset", refuse)
    monkeypatch.setattr(type(connection), "connection", None, raising=False)


@pytest.mark.django_db
def test_api_answers_503_json_with_retry_after_while_the_database_is_down(
    client_without_exceptions, make_user, monkeypatch
):
    from tests.support.api import access_token_for

    token = access_token_for(make_user())
    _unreachable_database(monkeypatch)
    response = client_without_exceptions.get("/api/todos/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 503
    assert response.json() == {
        "code": "service_unavailable",
        "detail": "The service is briefly unavailable. Please retry.",
    }
    assert response["Retry-After"] == "5"


@pytest.mark.django_db
def test_a_failing_query_on_a_healthy_connection_is_still_a_500(client_without_exceptions, make_user, monkeypatch):
    from tests.support.api import access_token_for

    token = access_token_for(make_user())

    def failing_query(*args, **kwargs):
        raise OperationalError("division by zero")

    monkeypatch.setattr("todos.api.TodoViewSet.get_queryset", failing_query)
    connection.ensure_connection()
    response = client_without_exceptions.get("/api/todos/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 500
    assert response.json()["code"] == "server_error"


def test_pages_answer_a_503_page_while_the_database_is_down(client_without_exceptions, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr("django.views.generic.base.TemplateView.get", refuse)
    monkeypatch.setattr(type(connection), "connection", None, raising=False)
    response = client_without_exceptions.get("/")
    assert response.status_code == 503
    assert b"briefly unavailable" in response.content
    assert response["Retry-After"] == "5"
