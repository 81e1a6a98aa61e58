"""Fuzzing the API against its own OpenAPI schema: no server error, every answer as documented."""

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Bounded so that the run stays within CI's budget; derandomized so a failure
# reproduces on the next run.
FUZZ_SETTINGS = hypothesis_settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@pytest.fixture(autouse=True)
def _keep_the_test_transaction_open():
    """Requests go through the real WSGI application, whose request signals
    would close the database connection that holds the test's transaction
    (Django's own test client detaches them the same way)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def access_token(make_user):
    """A verified user's live session, with a few todos to find."""
    from accounts.flows.device_sessions import start_device_session
    from todos.models import Todo

    user = make_user(email="fuzz@example.com")
    Todo.objects.bulk_create(Todo(owner=user, title=f"Todo {number}") for number in range(3))
    return start_device_session(user=user, ip_address="127.0.0.1", user_agent="fuzz").access_token


@pytest.mark.django_db
@schema.parametrize()
@FUZZ_SETTINGS
def test_api_without_credentials(case):
    case.call_and_validate(checks=CHECKS)


@pytest.mark.django_db
@schema.parametrize()
@FUZZ_SETTINGS
def test_api_with_an_access_token(case, access_token):
    case.call_and_validate(headers={"Authorization": f"Bearer {access_token}"}, checks=CHECKS)
