"""Hostile and malformed input to every JSON endpoint and account form: always a clean 4xx, nothing half-written."""

import json
from dataclasses import dataclass, field

import pytest
from django.conf import settings as django_settings
from django.test import Client

from accounts.flows.device_sessions import start_device_session
from accounts.flows.email_tokens import issue_token
from accounts.models import DeviceSession, EmailVerificationToken, PasswordResetToken, SecurityEvent, User
from tests.support.accounts import STRONG_PASSWORD
from tests.support.api import bearer
from todos.models import Todo

pytestmark = pytest.mark.django_db

ALICE = "alice@example.com"
NEW_PASSWORD = "an entirely new passphrase"
HUGE = 300 * 1024
NESTING = 100_000
ASCII_ONLY_MESSAGE = "Use an address with only ASCII characters before the @."


# --- The endpoints ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    fields: dict  # field name -> a valid value ("{reset_token}" etc. filled in per test)
    string_fields: tuple[str, ...]
    boolean_fields: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    authenticated: bool = False
    success: int = 200


ENDPOINTS = [
    Endpoint(
        "register",
        "post",
        "/api/auth/register/",
        {"email": "newcomer@example.com", "password": NEW_PASSWORD, "name": "Newcomer"},
        ("email", "password", "name"),
        required=("email", "password", "name"),
        success=202,
    ),
    Endpoint(
        "login",
        "post",
        "/api/auth/login/",
        {"email": ALICE, "password": STRONG_PASSWORD},
        ("email", "password"),
        required=("email", "password"),
    ),
    Endpoint(
        "password_reset",
        "post",
        "/api/auth/password/reset/",
        {"email": ALICE},
        ("email",),
        required=("email",),
        success=202,
    ),
    Endpoint(
        "password_reset_confirm",
        "post",
        "/api/auth/password/reset/confirm/",
        {"token": "{reset_token}", "password": NEW_PASSWORD},
        ("token", "password"),
        required=("token", "password"),
        success=204,
    ),
    Endpoint(
        "email_verify",
        "post",
        "/api/auth/email/verify/",
        {"token": "{verification_token}"},
        ("token",),
        required=("token",),
    ),
    Endpoint(
        "email_verify_resend",
        "post",
        "/api/auth/email/verify/resend/",
        {"email": "bob@example.com"},
        ("email",),
        required=("email",),
        success=202,
    ),
    Endpoint(
        "me_patch",
        "patch",
        "/api/auth/me/",
        {"name": "Alice B."},
        ("name",),
        required=("name",),
        authenticated=True,
    ),
    Endpoint(
        "password_change",
        "post",
        "/api/auth/password/change/",
        {"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD},
        ("current_password", "new_password"),
        required=("current_password", "new_password"),
        authenticated=True,
        success=204,
    ),
    Endpoint(
        "email_change",
        "post",
        "/api/auth/email/change/",
        {"new_email": "alice.new@example.com", "password": STRONG_PASSWORD},
        ("new_email", "password"),
        required=("new_email", "password"),
        authenticated=True,
        success=202,
    ),
    Endpoint(
        "reauthenticate",
        "post",
        "/api/auth/reauthenticate/",
        {"password": STRONG_PASSWORD},
        ("password",),
        required=("password",),
        authenticated=True,
        success=204,
    ),
    Endpoint(
        "todo_create",
        "post",
        "/api/todos/",
        {"title": "Walk the dog", "notes": "Twice", "completed": False},
        ("title", "notes"),
        ("completed",),
        required=("title",),
        authenticated=True,
        success=201,
    ),
    Endpoint(
        "todo_update",
        "patch",
        "/api/todos/{todo_id}/",
        {"title": "Buy oat milk", "notes": "Two", "completed": True},
        ("title", "notes"),
        ("completed",),
        authenticated=True,
    ),
]
NON_PARTIAL = [endpoint for endpoint in ENDPOINTS if endpoint.required]

OVER_LONG = {
    "email": "a" * 588 + "@example.com",
    "new_email": "a" * 588 + "@example.com",
    "password": "p" * 5000,
    "current_password": "p" * 5000,
    "new_password": "p" * 5000,
    "name": "n" * 500,
    "title": "t" * 201,
    "notes": "n" * 10_001,
    "token": "T" * 1000,
}


def endpoint_id(endpoint: Endpoint) -> str:
    return endpoint.name


def field_cases(attribute: str) -> list[tuple[Endpoint, str]]:
    return [(endpoint, name) for endpoint in ENDPOINTS for name in getattr(endpoint, attribute)]


def field_case_id(case) -> str:
    endpoint, name = case
    return f"{endpoint.name}.{name}"


# --- The world the requests run against ---------------------------------------------------------


@dataclass
class World:
    alice: User
    todo: Todo
    access: str
    values: dict = field(default_factory=dict)

    def body(self, endpoint: Endpoint) -> dict:
        return {
            name: value.format(**self.values) if isinstance(value, str) else value
            for name, value in endpoint.fields.items()
        }

    def path(self, endpoint: Endpoint) -> str:
        return endpoint.path.format(**self.values)


@pytest.fixture
def world(make_user) -> World:
    alice = make_user(email=ALICE)
    make_user(email="bob@example.com", name="Bob", verified=False)
    todo = Todo.objects.create(owner=alice, title="Buy milk", notes="One litre")
    access = start_device_session(user=alice, ip_address="127.0.0.1", user_agent="pytest").access_token
    reset_token = issue_token(model=PasswordResetToken, user=alice, lifetime_seconds=3600)
    verification_token = issue_token(
        model=EmailVerificationToken,
        user=alice,
        lifetime_seconds=3600,
        email=alice.email,
        purpose=EmailVerificationToken.Purpose.VERIFY,
    )
    values = {"todo_id": todo.pk, "reset_token": reset_token, "verification_token": verification_token}
    return World(alice=alice, todo=todo, access=access, values=values)


def snapshot() -> dict:
    """Everything a request could half-write."""
    return {
        "users": list(
            User.objects.order_by("pk").values_list("pk", "email", "name", "password", "email_verified_at", "is_active")
        ),
        "todos": list(Todo.objects.order_by("pk").values_list("pk", "title", "notes", "completed")),
        "device_sessions": list(
            DeviceSession.objects.order_by("pk").values_list("pk", "revoked_at", "authenticated_at")
        ),
        "reset_tokens": list(PasswordResetToken.objects.order_by("pk").values_list("pk", "used_at")),
        "verification_tokens": list(
            EmailVerificationToken.objects.order_by("pk").values_list("pk", "used_at", "email")
        ),
        "security_events": SecurityEvent.objects.count(),
    }


def send(world: World, endpoint: Endpoint, body: bytes | str, content_type: str = "application/json"):
    client = Client(raise_request_exception=False)
    extra = bearer(world.access) if endpoint.authenticated else {}
    return getattr(client, endpoint.method)(world.path(endpoint), body, content_type=content_type, **extra)


def assert_refused(response, status: int, code: str | set[str], before: dict, mailoutbox) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    codes = {code} if isinstance(code, str) else code
    assert body.get("code") in codes, body
    assert isinstance(body.get("detail"), str) and body["detail"]
    assert snapshot() == before, "the refused request changed stored data"
    assert mailoutbox == []
    return body


def dumps(data) -> str:
    return json.dumps(data, ensure_ascii=True)


# --- The baseline: each valid body works -----------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=endpoint_id)
def test_valid_body_is_accepted(world, endpoint):
    response = send(world, endpoint, dumps(world.body(endpoint)))
    assert response.status_code == endpoint.success, response.content


# --- Bodies that are not a JSON object ------------------------------------------------------------


NOT_AN_OBJECT = {
    "array": lambda body: dumps([body]),
    "empty_array": lambda body: "[]",
    "string": lambda body: dumps("hello"),
    "number": lambda body: "42",
    "boolean": lambda body: "true",
    "null": lambda body: "null",
}


@pytest.mark.parametrize("shape", list(NOT_AN_OBJECT))
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=endpoint_id)
def test_body_that_is_not_an_object_is_invalid_input(world, endpoint, shape, mailoutbox):
    before = snapshot()
    response = send(world, endpoint, NOT_AN_OBJECT[shape](world.body(endpoint)))
    body = assert_refused(response, 400, "invalid_input", before, mailoutbox)
    assert "non_field_errors" in body["fields"]


MALFORMED = {
    "broken": lambda body: "{bad",
    "truncated": lambda body: dumps(body)[:-5],
    "trailing_garbage": lambda body: dumps(body) + "}",
    "single_quotes": lambda body: dumps(body).replace('"', "'"),
    "nan": lambda body: dumps(body)[:-1] + ', "x": NaN}',
    "infinity": lambda body: dumps(body)[:-1] + ', "x": Infinity}',
    "deep_array": lambda body: '{"x": ' + "[" * NESTING + "]" * NESTING + "}",
    "deep_top_level_array": lambda body: "[" * NESTING + "]" * NESTING,
}


@pytest.mark.parametrize("shape", list(MALFORMED))
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=endpoint_id)
def test_malformed_json_is_a_malformed_request(world, endpoint, shape, mailoutbox):
    before = snapshot()
    response = send(world, endpoint, MALFORMED[shape](world.body(endpoint)))
    assert_refused(response, 400, "malformed_request", before, mailoutbox)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=endpoint_id)
def test_invalid_utf8_is_a_malformed_request(world, endpoint, mailoutbox):
    before = snapshot()
    name = endpoint.string_fields[0]
    raw = dumps({**world.body(endpoint), name: "MARK"}).encode().replace(b"MARK", b"\xff\xfe\xc3(")
    response = send(world, endpoint, raw)
    assert_refused(response, 400, "malformed_request", before, mailoutbox)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=endpoint_id)
def test_body_over_the_size_limit_is_refused(world, endpoint, mailoutbox):
    # An otherwise valid request, padded with an ignored field.
    raw = dumps({**world.body(endpoint), "padding": "x" * HUGE})
    assert len(raw) > django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    before = snapshot()
    response = send(world, endpoint, raw)
    assert_refused(response, 400, "bad_request", before, mailoutbox)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=endpoint_id)
def test_huge_field_value_is_refused(world, endpoint, mailoutbox):
    raw = dumps({**world.body(endpoint), endpoint.string_fields[0]: "x" * HUGE})
    before = snapshot()
    response = send(world, endpoint, raw)
    assert_refused(response, 400, {"bad_request", "invalid_input"}, before, mailoutbox)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=BoUnDaRy",
        "text/plain",
        "text/html",
        "application/xml",
        "application/octet-stream",
        "application/jsonp",
    ],
)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=endpoint_id)
def test_non_json_content_type_is_unsupported(world, endpoint, content_type, mailoutbox):
    before = snapshot()
    response = send(world, endpoint, dumps(world.body(endpoint)), content_type=content_type)
    assert_refused(response, 415, "unsupported_media_type", before, mailoutbox)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=endpoint_id)
def test_form_encoded_body_is_unsupported(world, endpoint, mailoutbox):
    before = snapshot()
    client = Client(raise_request_exception=False)
    extra = bearer(world.access) if endpoint.authenticated else {}
    if endpoint.method == "post":
        response = client.post(world.path(endpoint), world.body(endpoint), **extra)  # multipart, as a form would
    else:
        response = client.generic(
            endpoint.method.upper(), world.path(endpoint), "name=Mallory", "application/x-www-form-urlencoded", **extra
        )
    assert_refused(response, 415, "unsupported_media_type", before, mailoutbox)


# --- Missing fields -------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", NON_PARTIAL, ids=endpoint_id)
def test_empty_object_lists_every_required_field(world, endpoint, mailoutbox):
    before = snapshot()
    body = assert_refused(send(world, endpoint, "{}"), 400, "invalid_input", before, mailoutbox)
    assert set(body["fields"]) == set(endpoint.required)


@pytest.mark.parametrize("endpoint", NON_PARTIAL, ids=endpoint_id)
def test_empty_body_is_invalid_input(world, endpoint, mailoutbox):
    before = snapshot()
    body = assert_refused(send(world, endpoint, b""), 400, "invalid_input", before, mailoutbox)
    assert set(body["fields"]) == set(endpoint.required)


@pytest.mark.parametrize(
    "case",
    [(endpoint, name) for endpoint in NON_PARTIAL for name in endpoint.required],
    ids=field_case_id,
)
def test_missing_required_field_is_named(world, case, mailoutbox):
    endpoint, name = case
    body = {key: value for key, value in world.body(endpoint).items() if key != name}
    before = snapshot()
    answer = assert_refused(send(world, endpoint, dumps(body)), 400, "invalid_input", before, mailoutbox)
    assert list(answer["fields"]) == [name]


# --- Wrong types ----------------------------------------------------------------------------------


NOT_A_STRING = {
    "integer": 42,
    "float": 1.5,
    "true": True,
    "false": False,
    "object": {"a": "b"},
    "list": ["a"],
    "null": None,
}


@pytest.mark.parametrize("value", list(NOT_A_STRING))
@pytest.mark.parametrize("case", field_cases("string_fields"), ids=field_case_id)
def test_string_field_refuses_other_types(world, case, value, mailoutbox):
    endpoint, name = case
    before = snapshot()
    body = {**world.body(endpoint), name: NOT_A_STRING[value]}
    answer = assert_refused(send(world, endpoint, dumps(body)), 400, "invalid_input", before, mailoutbox)
    assert list(answer["fields"]) == [name]


NOT_A_BOOLEAN = {
    "string_true": "true",
    "string_false": "false",
    "one": 1,
    "zero": 0,
    "null": None,
    "list": [],
    "object": {},
}


@pytest.mark.parametrize("value", list(NOT_A_BOOLEAN))
@pytest.mark.parametrize("case", field_cases("boolean_fields"), ids=field_case_id)
def test_boolean_field_refuses_other_types(world, case, value, mailoutbox):
    endpoint, name = case
    before = snapshot()
    body = {**world.body(endpoint), name: NOT_A_BOOLEAN[value]}
    answer = assert_refused(send(world, endpoint, dumps(body)), 400, "invalid_input", before, mailoutbox)
    assert list(answer["fields"]) == [name]


# --- Hostile strings ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", field_cases("string_fields"), ids=field_case_id)
def test_over_long_field_is_refused(world, case, mailoutbox):
    endpoint, name = case
    before = snapshot()
    body = {**world.body(endpoint), name: OVER_LONG[name]}
    answer = assert_refused(send(world, endpoint, dumps(body)), 400, "invalid_input", before, mailoutbox)
    assert list(answer["fields"]) == [name]


def _with_marker(world: World, endpoint: Endpoint, name: str, raw_json_text: str) -> str:
    """The valid body with field ``name`` replaced by a value written as raw JSON text."""
    original = world.body(endpoint)[name]
    # Keep the value otherwise valid (an address stays address-shaped) so only the marker is wrong.
    value = original[:3] + "MARKER" + original[3:]
    return dumps({**world.body(endpoint), name: value}).replace("MARKER", raw_json_text)


@pytest.mark.parametrize("case", field_cases("string_fields"), ids=field_case_id)
def test_null_byte_in_a_string_is_refused(world, case, mailoutbox):
    endpoint, name = case
    before = snapshot()
    response = send(world, endpoint, _with_marker(world, endpoint, name, "\\u0000"))
    answer = assert_refused(response, 400, "invalid_input", before, mailoutbox)
    assert list(answer["fields"]) == [name]


@pytest.mark.parametrize("surrogate", ["\\ud800", "\\udfff", "\\udbff\\udbff"])
@pytest.mark.parametrize("case", field_cases("string_fields"), ids=field_case_id)
def test_lone_surrogate_in_a_string_is_refused(world, case, surrogate, mailoutbox):
    endpoint, name = case
    before = snapshot()
    response = send(world, endpoint, _with_marker(world, endpoint, name, surrogate))
    answer = assert_refused(response, 400, "invalid_input", before, mailoutbox)
    assert list(answer["fields"]) == [name]


# Where an emoji (a valid surrogate pair in JSON text) is ordinary text; elsewhere it makes
# an address or token invalid, or a current password wrong.
EMOJI_IS_TEXT = {
    ("register", "name"),
    ("register", "password"),
    ("password_reset_confirm", "password"),
    ("me_patch", "name"),
    ("password_change", "new_password"),
    ("todo_create", "title"),
    ("todo_create", "notes"),
    ("todo_update", "title"),
    ("todo_update", "notes"),
}


@pytest.mark.parametrize("case", field_cases("string_fields"), ids=field_case_id)
def test_a_valid_surrogate_pair_is_not_mistaken_for_a_lone_one(world, case):
    endpoint, name = case
    response = send(world, endpoint, _with_marker(world, endpoint, name, "\\ud83d\\ude00"))
    if (endpoint.name, name) in EMOJI_IS_TEXT:
        assert response.status_code == endpoint.success, response.content
    else:
        assert response.status_code in {400, 401}, response.content
        assert "code" in response.json()


PUBLIC_ENDPOINTS = [endpoint for endpoint in ENDPOINTS if not endpoint.authenticated]


@pytest.mark.parametrize("endpoint", PUBLIC_ENDPOINTS, ids=endpoint_id)
def test_non_json_on_a_public_endpoint_never_becomes_a_server_error(world, endpoint, mailoutbox):
    before = snapshot()
    for raw in (b"\x00\x01\x02", b"\xef\xbb\xbf{}", "\ufeff{}".encode(), b'{"email": "\\u00"}', b"{" * 50):
        response = send(world, endpoint, raw)
        assert 400 <= response.status_code < 500, (raw, response.content)
        assert "code" in response.json()
    assert snapshot() == before
    assert mailoutbox == []


# --- Forms ----------------------------------------------------------------------------------------


FORM_PAGES = {
    "signup": (
        "/accounts/signup/",
        {"email": "newcomer@example.com", "name": "Newcomer", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    ),
    "login": ("/accounts/login/", {"email": ALICE, "password": STRONG_PASSWORD}),
    "password_reset": ("/accounts/password/reset/", {"email": ALICE}),
    "resend_verification": ("/accounts/verify-email/resend/", {"email": "bob@example.com"}),
}
FORM_FIELD_CASES = [(page, name) for page, (_, data) in FORM_PAGES.items() for name in data]


def page_post(page: str, data: dict):
    path, _ = FORM_PAGES[page]
    return Client(raise_request_exception=False).post(path, data)


def form_errors(response) -> dict:
    assert response.status_code == 200, (response.status_code, response.content[:300])
    assert response.context is not None
    return dict(response.context["form"].errors)


@pytest.mark.parametrize("page", list(FORM_PAGES))
def test_valid_form_gets_the_normal_answer(world, page):
    _path, data = FORM_PAGES[page]
    response = page_post(page, data)
    assert response.status_code == 302, form_errors(response)


@pytest.mark.parametrize("case", FORM_FIELD_CASES, ids=lambda case: f"{case[0]}.{case[1]}")
def test_null_byte_in_a_form_field_is_a_form_error(world, case, mailoutbox):
    page, name = case
    _, data = FORM_PAGES[page]
    before = snapshot()
    response = page_post(page, {**data, name: data[name][:3] + "\x00" + data[name][3:]})
    assert name in form_errors(response)
    assert snapshot() == before
    assert mailoutbox == []


FORM_OVER_LONG = {
    "email": "a" * 588 + "@example.com",
    "name": "n" * 500,
    "password": "p" * 5000,
    "password1": "p" * 5000,
    "password2": "p" * 5000,
}


@pytest.mark.parametrize("case", FORM_FIELD_CASES, ids=lambda case: f"{case[0]}.{case[1]}")
def test_over_long_form_field_is_a_form_error(world, case, mailoutbox):
    page, name = case
    _, data = FORM_PAGES[page]
    before = snapshot()
    response = page_post(page, {**data, name: FORM_OVER_LONG[name]})
    assert name in form_errors(response)
    assert snapshot() == before
    assert mailoutbox == []


INVALID_ADDRESSES = {
    "space": "alice@exa mple.com",
    "double_at": "alice@@example.com",
    "no_at": "alice.example.com",
    "no_domain": "alice@",
    "no_local_part": "@example.com",
    "markup": "<script>@example.com",
    "empty_label": "alice@example..com",
    "control_character": "ali\x07ce@example.com",
    "zero_width_space": "alice\u200b@example.com",
    "right_to_left_override": "\u202ealice@example.com",
    "private_use": "alice\ue000@example.com",
    "newline_header_injection": "alice@example.com\nBcc: mallory@example.com",
    "cyrillic_look_alike": "\u0430lice@example.com",
    "greek_look_alike": "\u03b1lice@example.com",
    "local_part_over_64": "a" * 65 + "@example.com",
}


@pytest.mark.parametrize("address", list(INVALID_ADDRESSES))
@pytest.mark.parametrize("page", list(FORM_PAGES))
def test_invalid_address_is_a_form_error(world, page, address, mailoutbox):
    _, data = FORM_PAGES[page]
    before = snapshot()
    response = page_post(page, {**data, "email": INVALID_ADDRESSES[address]})
    assert "email" in form_errors(response)
    assert snapshot() == before
    assert mailoutbox == []


@pytest.mark.parametrize("page", list(FORM_PAGES))
def test_cyrillic_look_alike_of_an_existing_address_is_rejected_with_a_clear_message(world, page, mailoutbox):
    _, data = FORM_PAGES[page]
    response = page_post(page, {**data, "email": "\u0430lice@example.com"})
    assert form_errors(response)["email"] == [ASCII_ONLY_MESSAGE]
    assert User.objects.filter(email__icontains="lice@example.com").count() == 1
    assert mailoutbox == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/auth/register/", {"email": "\u0430lice@example.com", "password": NEW_PASSWORD, "name": "Mallory"}),
        ("/api/auth/login/", {"email": "\u0430lice@example.com", "password": STRONG_PASSWORD}),
        ("/api/auth/password/reset/", {"email": "\u0430lice@example.com"}),
        ("/api/auth/email/verify/resend/", {"email": "\u0430lice@example.com"}),
    ],
)
def test_cyrillic_look_alike_is_rejected_by_the_api(world, path, body, mailoutbox):
    before = snapshot()
    response = Client(raise_request_exception=False).post(path, body, content_type="application/json")
    answer = assert_refused(response, 400, "invalid_input", before, mailoutbox)
    assert answer["fields"] == {"email": [ASCII_ONLY_MESSAGE]}


@pytest.mark.parametrize("page", list(FORM_PAGES))
@pytest.mark.parametrize("raw", [b"%ff%fe%40example.com", b"%ed%a0%80lice%40example.com", b"alice%c0%80%40example.com"])
def test_invalid_utf8_in_a_form_body_is_a_form_error(world, page, raw, mailoutbox):
    path, data = FORM_PAGES[page]
    others = "&".join(f"{key}={value.replace(' ', '+')}" for key, value in data.items() if key != "email")
    body = b"email=" + raw + (b"&" + others.encode() if others else b"")
    before = snapshot()
    response = Client(raise_request_exception=False).post(path, body, content_type="application/x-www-form-urlencoded")
    assert "email" in form_errors(response)
    assert snapshot() == before
    assert mailoutbox == []


@pytest.mark.parametrize("page", list(FORM_PAGES))
def test_form_body_over_the_size_limit_is_a_client_error(world, page, mailoutbox):
    _path, data = FORM_PAGES[page]
    before = snapshot()
    response = page_post(page, {**data, "padding": "x" * HUGE})
    assert response.status_code == 400
    assert snapshot() == before
    assert mailoutbox == []


@pytest.mark.parametrize("page", list(FORM_PAGES))
def test_blank_form_fields_are_all_required(world, page, mailoutbox):
    _path, data = FORM_PAGES[page]
    before = snapshot()
    response = page_post(page, dict.fromkeys(data, ""))
    assert set(form_errors(response)) == set(data)
    assert snapshot() == before
    assert mailoutbox == []


@pytest.mark.parametrize("page", list(FORM_PAGES))
def test_post_without_any_field_shows_the_form_again(world, page, mailoutbox):
    before = snapshot()
    response = page_post(page, {})
    assert response.status_code == 200
    assert "form" in response.context
    assert snapshot() == before
    assert mailoutbox == []


# --- One normalisation everywhere -----------------------------------------------------------------


VARIANTS = {
    "upper_case": "ALICE@EXAMPLE.COM",
    "mixed_case_with_spaces": "  Alice@Example.Com ",
    "full_width_local_part": "\uff41\uff4c\uff49\uff43\uff45@example.com",
    "full_width_everything": (
        "\uff21\uff2c\uff29\uff23\uff25\uff20\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25\uff0e\uff23\uff2f\uff2d"
    ),
    "trailing_dot_domain": "alice@example.com.",
}


@pytest.fixture(params=list(VARIANTS))
def variant(request) -> str:
    return VARIANTS[request.param]


def api_post(path: str, body: dict):
    return Client().post(path, body, content_type="application/json")


def test_sign_up_page_stores_the_canonical_address(db, variant, mailoutbox):
    response = Client().post(
        "/accounts/signup/", {"email": variant, "name": "Alice", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    assert response.status_code == 302
    assert list(User.objects.values_list("email", flat=True)) == [ALICE]
    assert [message.to for message in mailoutbox] == [[ALICE]]


def test_api_register_stores_the_canonical_address(db, variant, mailoutbox):
    response = api_post("/api/auth/register/", {"email": variant, "password": NEW_PASSWORD, "name": "Alice"})
    assert response.status_code == 202
    assert list(User.objects.values_list("email", flat=True)) == [ALICE]
    assert [message.to for message in mailoutbox] == [[ALICE]]


def test_sign_up_page_and_api_register_find_the_same_existing_account(world, variant, mailoutbox):
    users_before = User.objects.count()
    page = Client().post(
        "/accounts/signup/", {"email": variant, "name": "Alice", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    api = api_post("/api/auth/register/", {"email": variant, "password": NEW_PASSWORD, "name": "Alice"})
    assert (page.status_code, api.status_code) == (302, 202)
    assert User.objects.count() == users_before
    assert [message.to for message in mailoutbox] == [[ALICE], [ALICE]]
    assert all(message.subject.startswith("Someone tried to sign up") for message in mailoutbox)


def test_sign_in_page_signs_in_the_same_account(world, variant):
    client = Client()
    response = client.post("/accounts/login/", {"email": variant, "password": STRONG_PASSWORD})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(world.alice.pk)


def test_api_login_signs_in_the_same_account(world, variant):
    response = api_post("/api/auth/login/", {"email": variant, "password": STRONG_PASSWORD})
    assert response.status_code == 200
    assert response.json()["user"]["id"] == world.alice.pk
    assert response.json()["user"]["email"] == ALICE


def test_reset_page_and_api_mail_the_same_account(world, variant, mailoutbox):
    page = Client().post("/accounts/password/reset/", {"email": variant})
    api = api_post("/api/auth/password/reset/", {"email": variant})
    assert (page.status_code, api.status_code) == (302, 202)
    assert [message.to for message in mailoutbox] == [[ALICE], [ALICE]]
    assert PasswordResetToken.objects.filter(user=world.alice, used_at__isnull=True).count() == 1


def test_resend_page_and_api_mail_the_same_account(make_user, variant, mailoutbox):
    alice = make_user(email=ALICE, verified=False)
    page = Client().post("/accounts/verify-email/resend/", {"email": variant})
    api = api_post("/api/auth/email/verify/resend/", {"email": variant})
    assert (page.status_code, api.status_code) == (302, 202)
    assert [message.to for message in mailoutbox] == [[ALICE], [ALICE]]
    assert EmailVerificationToken.objects.filter(user=alice, used_at__isnull=True).count() == 1


def test_a_different_address_is_not_folded_into_the_account(world, mailoutbox):
    response = api_post("/api/auth/login/", {"email": "alice@example.co", "password": STRONG_PASSWORD})
    assert response.status_code == 401
    response = api_post("/api/auth/password/reset/", {"email": "alice+tag@example.com"})
    assert response.status_code == 202
    assert mailoutbox == []


# --- Identifiers and query parameters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/api/todos/abc/", 404),
        ("get", "/api/todos/-1/", 404),
        ("get", "/api/todos/99999999999999999999999/", 404),
        ("patch", "/api/todos/99999999999999999999999/", 404),
        ("delete", "/api/todos/%00/", 404),
        ("delete", "/api/auth/sessions/not-a-uuid/", 404),
        ("delete", "/api/auth/sessions/99999999999999999999999/", 404),
        ("get", "/api/todos/?page=0", 404),
        ("get", "/api/todos/?page=abc", 404),
        ("get", "/api/todos/?page=99999999999999999999", 404),
        ("get", "/api/todos/?completed=%00", 400),
        ("get", "/api/todos/?completed=maybe", 400),
        ("get", "/api/todos/?ordering=%00", 400),
        ("get", "/api/todos/?ordering=owner__password", 400),
    ],
)
def test_hostile_identifiers_and_query_parameters_are_client_errors(world, method, path, status, mailoutbox):
    before = snapshot()
    client = Client(raise_request_exception=False)
    kwargs = {"content_type": "application/json"} if method == "patch" else {}
    args = ("{}",) if method == "patch" else ()
    response = getattr(client, method)(path, *args, **kwargs, **bearer(world.access))
    assert_refused(response, status, {"not_found", "invalid_input"}, before, mailoutbox)
