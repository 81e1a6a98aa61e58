"""Security headers, cookies, CORS and deployment checks on every page and every API endpoint."""

import base64
import json
import secrets
import string
from dataclasses import dataclass, field

import pytest
from django.conf import settings as django_settings
from django.test import Client

from accounts.flows.device_sessions import start_device_session
from accounts.flows.email_tokens import issue_token
from accounts.models import EmailVerificationToken, PasswordResetToken, SecurityEvent, User
from tests.support.accounts import STRONG_PASSWORD, force_page_login
from tests.support.api import (
    LOGIN_URL,
    LOGOUT_URL,
    REFRESH_URL,
    api_client,
    bearer,
    csrf_header,
    login,
    patch_json,
    post_json,
    put_json,
)
from tests.support.html import parse_page
from tests.support.processes import clean_env, run_in_project
from todos.models import Todo

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "an entirely new passphrase"
EVIL_ORIGIN = "https://evil.example"
APP_ORIGIN = "https://app.example"
CORS_RESPONSE_HEADERS = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Expose-Headers",
    "Access-Control-Max-Age",
)


# --- Assertions -------------------------------------------------------------------------------


def csp_directives(response) -> dict[str, list[str]]:
    assert "Content-Security-Policy" in response, "no Content-Security-Policy header"
    directives = {}
    for part in response["Content-Security-Policy"].split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


def assert_security_headers(response, *, referrer_policy: str = "same-origin") -> None:
    csp = response.get("Content-Security-Policy", "")
    for required in (
        "default-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ):
        assert required in csp, f"CSP lacks {required!r}: {csp!r}"
    directives = csp_directives(response)
    assert directives["script-src"] == ["'self'"], directives["script-src"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert response.get("X-Content-Type-Options") == "nosniff"
    assert response.get("Referrer-Policy") == referrer_policy
    assert response.get("Cross-Origin-Opener-Policy") == "same-origin"
    assert response.get("X-Frame-Options") == "DENY"
    cache_control = [part.strip() for part in response.get("Cache-Control", "").split(",")]
    assert "no-store" in cache_control, response.get("Cache-Control")


@dataclass
class InlineCode:
    """Everything in a page that a CSP without 'unsafe-inline' would block (and the scripts it loads)."""

    inline_scripts: int = 0
    script_sources: list[str] = field(default_factory=list)
    style_blocks: int = 0
    style_attributes: list[str] = field(default_factory=list)
    event_handlers: list[str] = field(default_factory=list)
    javascript_urls: list[str] = field(default_factory=list)


def inline_code_of(response) -> InlineCode:
    found = InlineCode()
    for tag, attrs in parse_page(response).tags:
        named = dict(attrs)
        if tag == "script":
            if named.get("src"):
                found.script_sources.append(named["src"])
            else:
                found.inline_scripts += 1
        elif tag == "style":
            found.style_blocks += 1
        for name, value in attrs:
            if name == "style":
                found.style_attributes.append(f"<{tag} style={value!r}>")
            elif name.startswith("on"):
                found.event_handlers.append(f"<{tag} {name}>")
            elif name in {"href", "src", "action", "formaction"} and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                found.javascript_urls.append(f"<{tag} {name}={value!r}>")
    return found


def assert_no_inline_code(response) -> None:
    assert response["Content-Type"].startswith("text/html"), response["Content-Type"]
    finder = inline_code_of(response)
    assert finder.inline_scripts == 0, "inline <script> without src"
    assert finder.style_blocks == 0, "<style> block"
    assert finder.style_attributes == [], finder.style_attributes
    assert finder.event_handlers == [], finder.event_handlers
    assert finder.javascript_urls == [], finder.javascript_urls


def assert_no_cors_headers(response) -> None:
    present = [name for name in CORS_RESPONSE_HEADERS if name in response]
    assert present == [], present


# --- Fixtures ---------------------------------------------------------------------------------


@dataclass
class World:
    user: User
    staff: User
    todo: Todo
    session_id: str
    event_id: int


@pytest.fixture
def world(make_user) -> World:
    user = make_user()
    staff = User.objects.create_superuser(email="staff@example.com", password=STRONG_PASSWORD, name="Staff")
    todo = Todo.objects.create(owner=user, title="Buy milk")
    session = start_device_session(user=user, ip_address="127.0.0.1", user_agent="pytest").session
    event = SecurityEvent.objects.filter(user=user).latest("id")
    return World(user=user, staff=staff, todo=todo, session_id=str(session.pk), event_id=event.pk)


def client_for(world: World, who: str) -> Client:
    client = Client()
    if who == "user":
        force_page_login(client, world.user)
    elif who == "staff":
        force_page_login(client, world.staff)
    return client


# --- Pages ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    path: str
    who: str = "anonymous"
    status: int = 200

    def url(self, world: World) -> str:
        return self.path.format(
            user_id=world.user.pk, todo_id=world.todo.pk, session_id=world.session_id, event_id=world.event_id
        )


PAGES = [
    Page("/"),
    Page("/", who="user"),
    Page("/accounts/signup/"),
    Page("/accounts/login/"),
    Page("/accounts/password/reset/"),
    Page("/accounts/verify-email/resend/"),
    Page("/accounts/signup/done/"),
    Page("/accounts/verify-email/sent/"),
    Page("/accounts/password/reset/sent/"),
    Page("/accounts/email/change/sent/", who="user"),
    Page("/accounts/", who="user"),
    Page("/accounts/", status=302),
    Page("/accounts/profile/", who="user"),
    Page("/accounts/password/change/", who="user"),
    Page("/accounts/email/change/", who="user"),
    Page("/accounts/sessions/", who="user"),
    Page("/accounts/delete/", who="user"),
    Page("/accounts/reauthenticate/", who="user"),
    Page("/admin/", who="staff"),
    Page("/admin/", status=302),
    Page("/admin/accounts/user/", who="staff"),
    Page("/admin/accounts/user/add/", who="staff"),
    Page("/admin/accounts/user/{user_id}/change/", who="staff"),
    Page("/admin/accounts/user/{user_id}/delete/", who="staff"),
    Page("/admin/accounts/user/{user_id}/history/", who="staff"),
    Page("/admin/accounts/devicesession/", who="staff"),
    Page("/admin/accounts/devicesession/{session_id}/change/", who="staff"),
    Page("/admin/accounts/securityevent/", who="staff"),
    Page("/admin/accounts/securityevent/{event_id}/change/", who="staff"),
    Page("/admin/todos/todo/", who="staff"),
    Page("/admin/todos/todo/add/", who="staff"),
    Page("/admin/todos/todo/{todo_id}/change/", who="staff"),
    Page("/admin/todos/todo/{todo_id}/delete/", who="staff"),
    Page("/admin/auth/group/", who="staff"),
    Page("/admin/auth/group/add/", who="staff"),
    Page("/admin/password_change/", who="staff", status=302),
    Page("/api/docs/"),
    Page("/no/such/page/", status=404),
    Page("/accounts/verify-email/not-a-token/", status=400),
    Page("/accounts/password/reset/not-a-token/", status=400),
]


def page_id(page: Page) -> str:
    return f"{page.who}:{page.path}:{page.status}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_page_sends_the_security_headers(world, page):
    response = client_for(world, page.who).get(page.url(world))
    assert response.status_code == page.status
    referrer = "strict-origin" if "-token/" in page.path else "same-origin"
    assert_security_headers(response, referrer_policy=referrer)


@pytest.mark.parametrize("page", [page for page in PAGES if page.status != 302], ids=page_id)
def test_page_has_no_inline_script_or_style(world, page):
    response = client_for(world, page.who).get(page.url(world))
    assert response.status_code == page.status
    assert_no_inline_code(response)


def test_api_docs_load_their_scripts_from_this_site_only(world):
    response = Client().get("/api/docs/")
    finder = inline_code_of(response)
    assert finder.script_sources, "the docs page should load Swagger UI from files"
    for source in finder.script_sources:
        assert source.startswith("/"), source
        assert not source.startswith("//"), source


def test_rate_limited_page_sends_the_security_headers(world, settings):
    settings.ACCOUNTS_RATE_LIMITS = {**settings.ACCOUNTS_RATE_LIMITS, "sign_in_failures_per_account": "1/m"}
    client = Client()
    client.post("/accounts/login/", {"email": "alice@example.com", "password": "wrong wrong wrong"})
    response = client.post("/accounts/login/", {"email": "alice@example.com", "password": "wrong wrong wrong"})
    assert response.status_code == 429
    assert "Retry-After" in response
    assert_security_headers(response)
    assert_no_inline_code(response)


def test_failed_sign_in_page_sends_the_security_headers(world):
    response = Client().post("/accounts/login/", {"email": "alice@example.com", "password": "wrong wrong wrong"})
    assert response.status_code == 200
    assert_security_headers(response)
    assert_no_inline_code(response)


def test_invalid_sign_up_form_sends_the_security_headers(world):
    response = Client().post("/accounts/signup/", {"email": "not an address", "name": "", "password1": "x"})
    assert response.status_code == 200
    assert_security_headers(response)
    assert_no_inline_code(response)


# --- Pages that carried an emailed token --------------------------------------------------------


@pytest.fixture
def reset_token(world) -> str:
    return issue_token(model=PasswordResetToken, user=world.user, lifetime_seconds=3600)


@pytest.fixture
def verification_token(make_user) -> str:
    unverified = make_user(email="new@example.com", verified=False)
    return issue_token(
        model=EmailVerificationToken,
        user=unverified,
        lifetime_seconds=3600,
        email=unverified.email,
        purpose=EmailVerificationToken.Purpose.VERIFY,
    )


def test_password_reset_link_and_form_send_a_path_free_referrer_policy(reset_token):
    client = Client()
    link = client.get(f"/accounts/password/reset/{reset_token}/")
    assert link.status_code == 302
    assert_security_headers(link, referrer_policy="strict-origin")
    form = client.get(link["Location"])
    assert form.status_code == 200
    assert_security_headers(form, referrer_policy="strict-origin")
    assert_no_inline_code(form)


def test_password_reset_form_without_a_token_sends_no_referrer(world):
    response = Client().get("/accounts/password/reset/set-password/")
    assert response.status_code == 400
    assert_security_headers(response, referrer_policy="strict-origin")
    assert_no_inline_code(response)


def test_verification_link_and_confirm_page_send_a_path_free_referrer_policy(verification_token):
    client = Client()
    link = client.get(f"/accounts/verify-email/{verification_token}/")
    assert link.status_code == 302
    assert_security_headers(link, referrer_policy="strict-origin")
    confirm = client.get(link["Location"])
    assert confirm.status_code == 200
    assert_security_headers(confirm, referrer_policy="strict-origin")
    assert_no_inline_code(confirm)
    done = client.post(link["Location"], {"proof": "password", "current-password": STRONG_PASSWORD})
    assert done.status_code == 302
    assert_security_headers(done, referrer_policy="strict-origin")


def test_verification_confirm_page_without_a_token_sends_no_referrer(world):
    response = Client().get("/accounts/verify-email/confirm/")
    assert response.status_code == 400
    assert_security_headers(response, referrer_policy="strict-origin")
    assert_no_inline_code(response)


# --- API endpoints ------------------------------------------------------------------------------


def _fresh_session(world: World):
    return start_device_session(user=world.user, ip_address="127.0.0.1", user_agent="pytest")


def _auth(world: World) -> dict:
    return bearer(_fresh_session(world).access_token)


def call_register(world, client):
    return post_json(
        client, "/api/auth/register/", {"email": "newcomer@example.com", "password": NEW_PASSWORD, "name": "New"}
    )


def call_login(world, client):
    return post_json(client, LOGIN_URL, {"email": "alice@example.com", "password": STRONG_PASSWORD})


def call_refresh(world, client):
    login(client)
    return client.post(REFRESH_URL, **csrf_header(client))


def call_logout(world, client):
    login(client)
    return client.post(LOGOUT_URL, **csrf_header(client))


def call_csrf(world, client):
    return client.get("/api/auth/csrf/")


def call_sessions(world, client):
    return client.get("/api/auth/sessions/", **_auth(world))


def call_revoke_others(world, client):
    return client.post("/api/auth/sessions/revoke-others/", **_auth(world))


def call_end_session(world, client):
    issued = _fresh_session(world)
    return client.delete(f"/api/auth/sessions/{issued.session.pk}/", **bearer(issued.access_token))


def call_me(world, client):
    return client.get("/api/auth/me/", **_auth(world))


def call_me_patch(world, client):
    return patch_json(client, "/api/auth/me/", {"name": "Alice B."}, **_auth(world))


def call_me_delete(world, client):
    return client.delete(
        "/api/auth/me/", {"password": STRONG_PASSWORD}, content_type="application/json", **_auth(world)
    )


def call_events(world, client):
    return client.get("/api/auth/events/", **_auth(world))


def call_reauthenticate(world, client):
    return post_json(client, "/api/auth/reauthenticate/", {"password": STRONG_PASSWORD}, **_auth(world))


def call_password_change(world, client):
    body = {"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD}
    return post_json(client, "/api/auth/password/change/", body, **_auth(world))


def call_email_change(world, client):
    body = {"new_email": "alice.new@example.com", "password": STRONG_PASSWORD}
    return post_json(client, "/api/auth/email/change/", body, **_auth(world))


def call_password_reset(world, client):
    return post_json(client, "/api/auth/password/reset/", {"email": "alice@example.com"})


def call_password_reset_confirm(world, client):
    token = issue_token(model=PasswordResetToken, user=world.user, lifetime_seconds=3600)
    return post_json(client, "/api/auth/password/reset/confirm/", {"token": token, "password": NEW_PASSWORD})


def call_email_verify(world, client):
    token = issue_token(
        model=EmailVerificationToken,
        user=world.user,
        lifetime_seconds=3600,
        email=world.user.email,
        purpose=EmailVerificationToken.Purpose.VERIFY,
    )
    return post_json(client, "/api/auth/email/verify/", {"token": token})


def call_email_verify_resend(world, client):
    return post_json(client, "/api/auth/email/verify/resend/", {"email": "alice@example.com"})


def call_todo_list(world, client):
    return client.get("/api/todos/", **_auth(world))


def call_todo_create(world, client):
    return post_json(client, "/api/todos/", {"title": "Walk the dog"}, **_auth(world))


def call_todo_detail(world, client):
    return client.get(f"/api/todos/{world.todo.pk}/", **_auth(world))


def call_todo_patch(world, client):
    return patch_json(client, f"/api/todos/{world.todo.pk}/", {"completed": True}, **_auth(world))


def call_todo_put(world, client):
    return put_json(client, f"/api/todos/{world.todo.pk}/", {"title": "Buy oat milk"}, **_auth(world))


def call_todo_delete(world, client):
    return client.delete(f"/api/todos/{world.todo.pk}/", **_auth(world))


def call_schema(world, client):
    return client.get("/api/schema/")


def call_jwks(world, client):
    return client.get("/.well-known/jwks.json")


# Error answers.


def call_invalid_input(world, client):
    return post_json(client, LOGIN_URL, {"email": "not an address", "password": ""})


def call_malformed_json(world, client):
    return client.post(LOGIN_URL, "{bad", content_type="application/json")


def call_wrong_credentials(world, client):
    return post_json(client, LOGIN_URL, {"email": "alice@example.com", "password": "wrong wrong wrong"})


def call_without_token(world, client):
    return client.get("/api/auth/me/")


def call_with_a_bad_token(world, client):
    return client.get("/api/auth/me/", HTTP_AUTHORIZATION="Bearer not.a.jwt")


def call_refresh_without_csrf(world, client):
    login(client)
    return client.post(REFRESH_URL)


def call_unknown_api_path(world, client):
    return client.get("/api/no/such/endpoint/")


def call_unknown_todo(world, client):
    return client.get("/api/todos/999999/", **_auth(world))


def call_wrong_method(world, client):
    return client.get(LOGIN_URL)


def call_unsupported_media_type(world, client):
    return client.post(LOGIN_URL, {"email": "alice@example.com", "password": STRONG_PASSWORD})


def call_over_the_rate_limit(world, client):
    for _ in range(5):  # the default limit: 5 failures per address in 5 minutes
        assert call_wrong_credentials(world, client).status_code == 401
    return call_wrong_credentials(world, client)


API_CALLS = [
    (call_register, 202),
    (call_login, 200),
    (call_refresh, 200),
    (call_logout, 204),
    (call_csrf, 200),
    (call_sessions, 200),
    (call_revoke_others, 204),
    (call_end_session, 204),
    (call_me, 200),
    (call_me_patch, 200),
    (call_me_delete, 204),
    (call_events, 200),
    (call_reauthenticate, 204),
    (call_password_change, 204),
    (call_email_change, 202),
    (call_password_reset, 202),
    (call_password_reset_confirm, 204),
    (call_email_verify, 200),
    (call_email_verify_resend, 202),
    (call_todo_list, 200),
    (call_todo_create, 201),
    (call_todo_detail, 200),
    (call_todo_patch, 200),
    (call_todo_put, 200),
    (call_todo_delete, 204),
    (call_schema, 200),
    (call_jwks, 404),
    (call_invalid_input, 400),
    (call_malformed_json, 400),
    (call_wrong_credentials, 401),
    (call_without_token, 401),
    (call_with_a_bad_token, 401),
    (call_refresh_without_csrf, 403),
    (call_unknown_api_path, 404),
    (call_unknown_todo, 404),
    (call_wrong_method, 405),
    (call_unsupported_media_type, 415),
    (call_over_the_rate_limit, 429),
]


@pytest.mark.parametrize(
    ("call", "status"), API_CALLS, ids=[call.__name__.removeprefix("call_") for call, _ in API_CALLS]
)
def test_api_response_sends_the_security_headers(world, call, status):
    response = call(world, api_client())
    assert response.status_code == status, response.content
    assert_security_headers(response)


@pytest.mark.parametrize(
    ("call", "status"),
    [(call, status) for call, status in API_CALLS if status >= 400 and call is not call_jwks],
    ids=[call.__name__.removeprefix("call_") for call, status in API_CALLS if status >= 400 and call is not call_jwks],
)
def test_api_error_is_json_with_a_code(world, call, status):
    response = call(world, api_client())
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    assert isinstance(response.json().get("code"), str)


# --- Sign-out clears the site's data ---------------------------------------------------------------


def test_page_sign_out_sends_clear_site_data(world):
    client = Client()
    force_page_login(client, world.user)
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Clear-Site-Data"] == '"cache", "storage"'
    assert_security_headers(response)


def test_api_sign_out_sends_clear_site_data(world):
    client = api_client()
    login(client)
    response = client.post(LOGOUT_URL, **csrf_header(client))
    assert response.status_code == 204
    # Cookies go one by one (the refresh cookie, a page session's), so the device cookie stays.
    assert response["Clear-Site-Data"] == '"cache", "storage"'
    assert response.cookies[django_settings.ACCOUNTS_REFRESH_COOKIE_NAME]["max-age"] == 0
    assert response.cookies[django_settings.SESSION_COOKIE_NAME]["max-age"] == 0
    assert django_settings.ACCOUNTS_DEVICE_COOKIE_NAME not in response.cookies


def test_api_sign_out_without_csrf_is_refused_and_clears_nothing(world):
    client = api_client()
    login(client)
    response = client.post(LOGOUT_URL)
    assert response.status_code == 403
    assert "Clear-Site-Data" not in response


def test_page_sign_out_by_get_is_refused_and_clears_nothing(world):
    client = Client()
    force_page_login(client, world.user)
    response = client.get("/accounts/logout/")
    assert response.status_code == 405
    assert "Clear-Site-Data" not in response
    assert client.get("/accounts/").status_code == 200


@pytest.mark.parametrize("path", ["/accounts/login/", "/api/auth/me/", "/api/auth/csrf/"])
def test_ordinary_responses_do_not_clear_site_data(world, path):
    assert "Clear-Site-Data" not in Client().get(path)


# --- Cookies ----------------------------------------------------------------------------------


def test_session_cookie_is_http_only_and_same_site_lax(world):
    response = Client().post("/accounts/login/", {"email": "alice@example.com", "password": STRONG_PASSWORD})
    assert response.status_code == 302
    cookie = response.cookies[django_settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["secure"] == ""  # local development (DEBUG) serves plain HTTP


def test_session_cookie_is_secure_when_configured_as_in_production(world, settings):
    settings.SESSION_COOKIE_SECURE = True
    response = Client().post("/accounts/login/", {"email": "alice@example.com", "password": STRONG_PASSWORD})
    cookie = response.cookies[django_settings.SESSION_COOKIE_NAME]
    assert cookie["secure"] is True
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"


def test_csrf_cookie_is_readable_by_the_spa_and_same_site_lax(world):
    response = Client().get("/api/auth/csrf/")
    cookie = response.cookies[django_settings.CSRF_COOKIE_NAME]
    assert cookie["httponly"] == ""
    assert cookie["samesite"] == "Lax"
    assert cookie.value


def test_csrf_cookie_is_secure_when_configured_as_in_production(world, settings):
    settings.CSRF_COOKIE_SECURE = True
    cookie = Client().get("/accounts/login/").cookies[django_settings.CSRF_COOKIE_NAME]
    assert cookie["secure"] is True
    assert cookie["httponly"] == ""


@pytest.mark.parametrize("via", ["api", "page"])
def test_refresh_cookie_is_http_only_strict_and_scoped_to_the_auth_api(world, via):
    client = api_client() if via == "api" else Client()
    if via == "api":
        response = post_json(client, LOGIN_URL, {"email": "alice@example.com", "password": STRONG_PASSWORD})
    else:
        response = client.post("/accounts/login/", {"email": "alice@example.com", "password": STRONG_PASSWORD})
    cookie = response.cookies[django_settings.ACCOUNTS_REFRESH_COOKIE_NAME]
    assert cookie.value
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/api/auth/"


def test_refresh_cookie_is_secure_when_configured_as_in_production(world, settings):
    settings.ACCOUNTS_REFRESH_COOKIE_SECURE = True
    response = post_json(api_client(), LOGIN_URL, {"email": "alice@example.com", "password": STRONG_PASSWORD})
    assert response.cookies[django_settings.ACCOUNTS_REFRESH_COOKIE_NAME]["secure"] is True


def test_refresh_token_never_appears_in_the_body(world):
    response = post_json(api_client(), LOGIN_URL, {"email": "alice@example.com", "password": STRONG_PASSWORD})
    refresh = response.cookies[django_settings.ACCOUNTS_REFRESH_COOKIE_NAME].value
    assert refresh not in response.content.decode()


def test_failed_sign_in_sets_no_refresh_cookie(world):
    response = post_json(api_client(), LOGIN_URL, {"email": "alice@example.com", "password": "wrong wrong wrong"})
    assert response.status_code == 401
    assert django_settings.ACCOUNTS_REFRESH_COOKIE_NAME not in response.cookies


def test_sign_out_expires_the_refresh_cookie_on_its_own_path(world):
    client = api_client()
    login(client)
    response = client.post(LOGOUT_URL, **csrf_header(client))
    cookie = response.cookies[django_settings.ACCOUNTS_REFRESH_COOKIE_NAME]
    assert cookie.value == ""
    assert cookie["max-age"] == 0
    assert cookie["path"] == "/api/auth/"


# --- CORS ---------------------------------------------------------------------------------------


def test_no_cors_headers_for_a_foreign_origin_by_default(world):
    response = post_json(
        api_client(), LOGIN_URL, {"email": "alice@example.com", "password": STRONG_PASSWORD}, HTTP_ORIGIN=EVIL_ORIGIN
    )
    assert_no_cors_headers(response)


def test_preflight_from_a_foreign_origin_gets_no_allow_headers_by_default(world):
    response = Client().options(
        LOGIN_URL,
        HTTP_ORIGIN=EVIL_ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type, x-csrftoken",
    )
    assert response.status_code < 500
    assert_no_cors_headers(response)


def test_listed_origin_gets_cors_headers_on_the_api(world, settings):
    settings.CORS_ALLOWED_ORIGINS = [APP_ORIGIN]
    response = post_json(
        api_client(), LOGIN_URL, {"email": "alice@example.com", "password": STRONG_PASSWORD}, HTTP_ORIGIN=APP_ORIGIN
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "Access-Control-Allow-Credentials" not in response  # credentials stay off unless configured
    assert "origin" in response.get("Vary", "").lower()


def test_listed_origin_preflight_is_allowed(world, settings):
    settings.CORS_ALLOWED_ORIGINS = [APP_ORIGIN]
    response = Client().options(
        LOGIN_URL,
        HTTP_ORIGIN=APP_ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "POST" in response["Access-Control-Allow-Methods"]


@pytest.mark.parametrize("origin", [EVIL_ORIGIN, "http://app.example", "https://app.example.evil.example", "null"])
def test_unlisted_origins_get_no_cors_headers_when_one_is_listed(world, settings, origin):
    settings.CORS_ALLOWED_ORIGINS = [APP_ORIGIN]
    response = post_json(
        api_client(), LOGIN_URL, {"email": "alice@example.com", "password": STRONG_PASSWORD}, HTTP_ORIGIN=origin
    )
    assert_no_cors_headers(response)
    preflight = Client().options(LOGIN_URL, HTTP_ORIGIN=origin, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert_no_cors_headers(preflight)


@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/accounts/signup/", "/admin/", "/.well-known/jwks.json"])
def test_no_cors_headers_outside_the_api_even_for_a_listed_origin(world, settings, path):
    settings.CORS_ALLOWED_ORIGINS = [APP_ORIGIN]
    assert_no_cors_headers(Client().get(path, HTTP_ORIGIN=APP_ORIGIN))
    preflight = Client().options(path, HTTP_ORIGIN=APP_ORIGIN, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert_no_cors_headers(preflight)


# --- Production settings ------------------------------------------------------------------------


def _random(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def production_env(**extra: str) -> dict[str, str]:
    return clean_env(
        DEBUG="false",
        SECRET_KEY=_random(64),
        JWT_SIGNING_KEY=_random(48),
        MFA_ENCRYPTION_KEYS=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        ALLOWED_HOSTS="todo.example",
        SITE_URL="https://todo.example",
        ANYMAIL_ESP="postmark",
        ANYMAIL_POSTMARK_SERVER_TOKEN="x",
        **extra,
    )


def test_production_settings_pass_the_deployment_checks_without_warnings():
    result = run_in_project(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_deployment_checks_do_fail_on_a_weakened_production_setting():
    """The check above is able to fail: HSTS switched off is reported."""
    result = run_in_project(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(SECURE_HSTS_SECONDS="0")
    )
    assert result.returncode != 0
    assert "security.W004" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def production_security_settings() -> dict:
    code = (
        "import json, config.settings as s; print(json.dumps({name: getattr(s, name) for name in ("
        "'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_HSTS_PRELOAD', 'SECURE_SSL_REDIRECT', "
        "'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'ACCOUNTS_REFRESH_COOKIE_SECURE', "
        "'ACCOUNTS_EMAIL_IN_BACKGROUND')}))"
    )
    result = run_in_project(["-c", code], production_env())
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_turns_on_https_only_cookies_and_redirects(production_security_settings):
    assert production_security_settings == {
        "SECURE_HSTS_SECONDS": production_security_settings["SECURE_HSTS_SECONDS"],
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SECURE_SSL_REDIRECT": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "ACCOUNTS_REFRESH_COOKIE_SECURE": True,
        "ACCOUNTS_EMAIL_IN_BACKGROUND": True,
    }
    assert production_security_settings["SECURE_HSTS_SECONDS"] >= 31536000


@pytest.fixture
def production_hsts(settings, production_security_settings):
    for name in ("SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD"):
        setattr(settings, name, production_security_settings[name])


def hsts_parts(response) -> dict[str, str]:
    parts = {}
    for part in response["Strict-Transport-Security"].split(";"):
        name, _, value = part.strip().partition("=")
        parts[name.lower()] = value
    return parts


@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/api/auth/csrf/", "/api/auth/me/"])
def test_secure_requests_get_hsts_with_production_settings(world, production_hsts, path):
    response = Client().get(path, secure=True)
    assert "Strict-Transport-Security" in response
    parts = hsts_parts(response)
    assert int(parts["max-age"]) >= 31536000
    assert "includesubdomains" in parts
    assert "preload" in parts


def test_plain_http_requests_get_no_hsts(world, production_hsts):
    assert "Strict-Transport-Security" not in Client().get("/accounts/login/")


def test_local_development_sends_no_hsts(world):
    assert "Strict-Transport-Security" not in Client().get("/accounts/login/", secure=True)


def test_production_redirects_plain_http_to_https(world, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = Client().get("/accounts/login/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/accounts/login/"
