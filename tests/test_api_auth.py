"""The accounts JSON API: registration, sign-in, refresh cookies, CSRF, sessions, reset, verification, errors,
schema."""

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import jwt
import pytest
import time_machine
from django.conf import settings as django_settings
from django.contrib.staticfiles import finders
from django.utils import timezone

from accounts.models import DeviceSession, EmailVerificationToken, PasswordResetToken, User
from accounts.tokens import hash_token
from tests.support.accounts import STRONG_PASSWORD
from tests.support.api import (
    CSRF_URL,
    LOGIN_URL,
    LOGOUT_URL,
    ME_URL,
    REFRESH_URL,
    access_token_for,
    api_client,
    bearer,
    csrf_header,
    fetch_csrf_token,
    get_me,
    login,
    login_response,
    patch_json,
    post_json,
    refresh_cookie_value,
    session_id_of,
    session_of,
)
from tests.support.api import assert_api_error as assert_error
from tests.support.mail import link_in, token_in

pytestmark = pytest.mark.django_db

REGISTER_URL = "/api/auth/register/"
SESSIONS_URL = "/api/auth/sessions/"
REVOKE_OTHERS_URL = "/api/auth/sessions/revoke-others/"
RESET_URL = "/api/auth/password/reset/"
RESET_CONFIRM_URL = "/api/auth/password/reset/confirm/"
VERIFY_URL = "/api/auth/email/verify/"
RESEND_URL = "/api/auth/email/verify/resend/"
SCHEMA_URL = "/api/schema/"
DOCS_URL = "/api/docs/"
NEW_PASSWORD = "a completely different passphrase"
WRONG_PASSWORD = "not the right passphrase at all"
START = datetime(2030, 5, 1, 12, 0, 0, tzinfo=UTC)
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


# What the API shows of a device session.
SESSION_FIELDS = {
    "id",
    "created_at",
    "last_used_at",
    "ip_address",
    "user_agent",
    "device",
    "current",
    "amr",
    "authenticated_at",
}


@pytest.fixture
def client():
    """Every API call in this module goes through a CSRF-enforcing client."""
    return api_client()


@pytest.fixture
def unverified(make_user):
    return make_user(email="una@example.com", name="Una", verified=False)


def cookie_name() -> str:
    return django_settings.ACCOUNTS_REFRESH_COOKIE_NAME


def session_of_cookie(refresh_token):
    return DeviceSession.objects.filter(refresh_token_hash=hash_token(refresh_token)).first()


def assert_cookie_cleared(response) -> None:
    morsel = response.cookies[cookie_name()]
    assert morsel.value == ""
    assert morsel["max-age"] == 0
    assert morsel["path"] == "/api/auth/"


def register(client, email="new@example.com", password=STRONG_PASSWORD, name="Newton"):
    return post_json(client, REGISTER_URL, {"email": email, "password": password, "name": name})


def reset_token_for(client, email, mailoutbox) -> str:
    response = post_json(client, RESET_URL, {"email": email})
    assert response.status_code == 202
    return token_in(mailoutbox[-1], "/password/reset/")


def refresh(client, **extra):
    return post_json(client, REFRESH_URL, **extra)


# --- Registration -------------------------------------------------------------------


def test_register_new_address_creates_unverified_user_and_sends_verification_email(client, mailoutbox):
    response = register(client, email="New@Example.com", name="  Newton  ")
    assert response.status_code == 202
    assert set(response.json()) == {"detail"}
    created = User.objects.get(email="new@example.com")
    assert created.name == "Newton"
    assert not created.email_verified
    assert created.check_password(STRONG_PASSWORD)
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["new@example.com"]
    assert "Verify your email address" in mailoutbox[0].subject
    assert "/accounts/verify-email/" in link_in(mailoutbox[0], "/verify-email/")


def test_register_does_not_sign_the_person_in(client, mailoutbox):
    response = register(client)
    assert response.status_code == 202
    assert cookie_name() not in response.cookies
    assert not DeviceSession.objects.exists()


@pytest.mark.parametrize("entered", ["alice@example.com", "ALICE@Example.COM"])
def test_register_existing_address_answers_exactly_like_a_new_one(client, user, mailoutbox, entered):
    new = register(client, email="fresh@example.com")
    existing = register(client, email=entered, password=NEW_PASSWORD, name="Mallory")
    assert existing.status_code == new.status_code == 202
    assert existing.content == new.content
    assert cookie_name() not in existing.cookies


@pytest.mark.parametrize("entered", ["alice@example.com", "ALICE@Example.COM"])
def test_register_existing_address_sends_account_exists_email_and_changes_nothing(client, user, mailoutbox, entered):
    response = register(client, email=entered, password=NEW_PASSWORD, name="Mallory")
    assert response.status_code == 202
    assert User.objects.count() == 1
    user.refresh_from_db()
    assert user.name == "Alice"
    assert user.check_password(STRONG_PASSWORD)
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["alice@example.com"]
    assert "tried to sign up" in mailoutbox[0].subject
    assert not EmailVerificationToken.objects.exists()


def test_register_invalid_email_is_invalid_input_on_the_email_field(client, mailoutbox):
    response = register(client, email="not-an-email")
    assert_error(response, 400, "invalid_input", fields={"email"})
    assert not User.objects.exists()
    assert mailoutbox == []


@pytest.mark.parametrize("weak", ["short", "password1234"])
def test_register_weak_password_is_rejected_with_reasons(client, mailoutbox, weak):
    response = register(client, password=weak)
    body = assert_error(response, 400, "password_rejected", fields={"password"})
    assert set(body["fields"]) == {"password"}
    assert not User.objects.exists()
    assert mailoutbox == []


@pytest.mark.parametrize("name", ["", "   ", "x" * 151])
def test_register_bad_name_is_rejected(client, mailoutbox, name):
    response = register(client, name=name)
    assert response.status_code == 400
    assert "name" in response.json()["fields"]
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", 5),
        ("email", True),
        ("email", ["alice@example.com"]),
        ("password", None),
        ("password", 123456789012345),
        ("password", {"value": STRONG_PASSWORD}),
        ("name", []),
        ("name", 5),
        ("name", None),
    ],
)
def test_register_wrong_json_types_are_invalid_input_never_500(client, mailoutbox, field, value):
    data = {"email": "new@example.com", "password": STRONG_PASSWORD, "name": "Newton", field: value}
    response = post_json(client, REGISTER_URL, data)
    body = assert_error(response, 400, "invalid_input", fields={field})
    assert set(body["fields"]) == {field}
    assert not User.objects.exists()
    assert mailoutbox == []


def test_register_missing_fields_are_each_reported(client, mailoutbox):
    response = post_json(client, REGISTER_URL, {})
    body = assert_error(response, 400, "invalid_input", fields={"email", "password", "name"})
    assert set(body["fields"]) == {"email", "password", "name"}


@pytest.mark.parametrize("raw", ["null", "[1, 2]", '"alice@example.com"', "5"])
def test_register_non_object_json_is_invalid_input(client, raw):
    response = client.post(REGISTER_URL, raw, content_type="application/json")
    assert_error(response, 400, "invalid_input", fields=set())
    assert not User.objects.exists()


# --- Sign-in ------------------------------------------------------------------------


def test_login_returns_access_token_expiry_and_profile(client, user):
    before = timezone.now()
    response = login_response(client)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "access_expires_at", "user"}
    assert body["user"] == {
        "id": user.pk,
        "email": "alice@example.com",
        "name": "Alice",
        "email_verified": True,
        "email_undeliverable": None,
    }
    expires = datetime.fromisoformat(body["access_expires_at"])
    lifetime = timedelta(seconds=django_settings.JWT_ACCESS_TOKEN_LIFETIME)
    assert before + lifetime - timedelta(seconds=5) <= expires <= timezone.now() + lifetime + timedelta(seconds=5)


def test_login_access_token_authenticates_api_requests(client, user):
    access = login(client)
    response = get_me(access, client)
    assert response.status_code == 200
    assert response.json()["email"] == "alice@example.com"


def test_login_email_is_case_insensitive(client, user):
    response = login_response(client, email="  ALICE@example.COM ")
    assert response.status_code == 200
    assert response.json()["user"]["id"] == user.pk


def test_login_opens_a_device_session_with_client_details(client, user):
    access = login(client, HTTP_USER_AGENT="TestBrowser/1.0")
    session = session_of(access)
    assert session.user == user
    assert session.user_agent == "TestBrowser/1.0"
    assert session.ip_address == "127.0.0.1"
    assert session.revoked_at is None


@pytest.mark.parametrize("secure", [True, False])
def test_login_sets_refresh_cookie_with_safe_attributes(client, user, settings, secure):
    settings.ACCOUNTS_REFRESH_COOKIE_SECURE = secure
    response = login_response(client)
    assert response.status_code == 200
    morsel = response.cookies[settings.ACCOUNTS_REFRESH_COOKIE_NAME]
    assert len(morsel.value) >= 40
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/api/auth/"
    assert bool(morsel["secure"]) is secure
    assert morsel["max-age"] == settings.ACCOUNTS_REFRESH_ABSOLUTE_LIFETIME
    set_cookie = next(
        line for line in str(response.cookies).splitlines() if settings.ACCOUNTS_REFRESH_COOKIE_NAME in line
    )
    assert ("Secure" in set_cookie) is secure
    assert "HttpOnly" in set_cookie


def test_refresh_cookie_name_follows_the_setting(client, user, settings):
    settings.ACCOUNTS_REFRESH_COOKIE_NAME = "custom_refresh"
    response = login_response(client)
    assert response.status_code == 200
    assert "custom_refresh" in response.cookies
    assert "todo_refresh" not in response.cookies


def test_login_body_never_contains_the_refresh_token(client, user):
    response = login_response(client)
    refresh_token = response.cookies[cookie_name()].value
    assert refresh_token not in response.content.decode()
    assert "refresh" not in response.json()


def test_wrong_password_unknown_email_and_inactive_user_get_one_identical_401(client, user, make_user):
    make_user(email="gone@example.com", is_active=False)
    wrong_password = login_response(client, password=WRONG_PASSWORD)
    unknown_email = login_response(client, email="nobody@example.com")
    inactive = login_response(client, email="gone@example.com")
    assert_error(wrong_password, 401, "invalid_credentials")
    assert unknown_email.status_code == inactive.status_code == 401
    assert wrong_password.content == unknown_email.content == inactive.content
    for response in (wrong_password, unknown_email, inactive):
        assert cookie_name() not in response.cookies
    assert not DeviceSession.objects.exists()


def test_unverified_user_with_right_password_is_told_to_verify(client, unverified):
    response = login_response(client, email="una@example.com")
    assert_error(response, 403, "email_not_verified")
    assert cookie_name() not in response.cookies
    assert not DeviceSession.objects.exists()


def test_unverified_user_with_wrong_password_gets_the_generic_401(client, user, unverified):
    unverified_wrong = login_response(client, email="una@example.com", password=WRONG_PASSWORD)
    verified_wrong = login_response(client, password=WRONG_PASSWORD)
    assert_error(unverified_wrong, 401, "invalid_credentials")
    assert unverified_wrong.content == verified_wrong.content


def test_unverified_user_signs_in_under_the_optional_policy(client, unverified, settings):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "optional"
    response = login_response(client, email="una@example.com")
    assert response.status_code == 200
    assert response.json()["user"]["email_verified"] is False
    assert cookie_name() in response.cookies


def test_login_malformed_json_is_400_malformed_request(client, user):
    response = client.post(LOGIN_URL, '{"email": "alice@example.com", ', content_type="application/json")
    assert_error(response, 400, "malformed_request")
    assert cookie_name() not in response.cookies


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=BoUnDaRy"],
)
def test_login_non_json_body_is_415_even_with_right_credentials(client, user, content_type):
    # A cross-site HTML form can send exactly these content types without a CORS preflight.
    if content_type.startswith("multipart"):
        data = (
            '--BoUnDaRy\r\nContent-Disposition: form-data; name="email"\r\n\r\nalice@example.com\r\n'
            f'--BoUnDaRy\r\nContent-Disposition: form-data; name="password"\r\n\r\n{STRONG_PASSWORD}\r\n'
            "--BoUnDaRy--\r\n"
        )
    elif content_type == "text/plain":
        data = json.dumps({"email": "alice@example.com", "password": STRONG_PASSWORD})
    else:
        data = urlencode({"email": "alice@example.com", "password": STRONG_PASSWORD})
    response = client.post(LOGIN_URL, data, content_type=content_type)
    assert_error(response, 415, "unsupported_media_type")
    assert cookie_name() not in response.cookies
    assert not DeviceSession.objects.exists()


@pytest.mark.parametrize(
    "data",
    [
        {"email": 5, "password": STRONG_PASSWORD},
        {"email": "alice@example.com", "password": None},
        {"email": "alice@example.com", "password": ["x"]},
        {"email": "alice@example.com"},
        {},
    ],
)
def test_login_wrong_types_or_missing_fields_are_invalid_input(client, user, data):
    response = post_json(client, LOGIN_URL, data)
    assert_error(response, 400, "invalid_input", fields=set())
    assert not DeviceSession.objects.exists()


def test_login_password_over_the_maximum_length_is_invalid_input(client, user, settings):
    response = login_response(client, password="x" * (settings.ACCOUNTS_PASSWORD_MAX_LENGTH + 1))
    assert_error(response, 400, "invalid_input", fields={"password"})


def test_login_rejects_get(client, user):
    response = client.get(LOGIN_URL)
    assert_error(response, 405, "method_not_allowed")


# --- CSRF cookie ---------------------------------------------------------------------


def test_csrf_endpoint_sets_the_csrftoken_cookie(client):
    response = client.get(CSRF_URL)
    assert response.status_code == 200
    morsel = response.cookies["csrftoken"]
    assert len(morsel.value) >= 32
    assert client.cookies["csrftoken"].value == morsel.value


# --- Refresh -------------------------------------------------------------------------


def test_refresh_returns_a_new_access_token_and_rotates_the_cookie(client, user):
    first_access = login(client)
    old_refresh = refresh_cookie_value(client)
    response = refresh(client, **csrf_header(client))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "access_expires_at"}
    assert body["access"] != first_access
    new_refresh = response.cookies[cookie_name()].value
    assert new_refresh and new_refresh != old_refresh
    morsel = response.cookies[cookie_name()]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/api/auth/"
    assert old_refresh not in response.content.decode()
    assert new_refresh not in response.content.decode()


def test_refreshed_access_token_works_and_names_the_same_session(client, user):
    first_access = login(client)
    response = refresh(client, **csrf_header(client))
    new_access = response.json()["access"]
    assert get_me(new_access, client).status_code == 200
    assert session_id_of(new_access) == session_id_of(first_access)


def test_refresh_can_be_repeated_with_each_new_cookie(client, user):
    login(client)
    header = csrf_header(client)
    seen = {refresh_cookie_value(client)}
    for _ in range(3):
        response = refresh(client, **header)
        assert response.status_code == 200
        seen.add(refresh_cookie_value(client))
    assert len(seen) == 4


def test_refresh_without_csrf_header_is_403_and_does_not_rotate(client, user):
    login(client)
    fetch_csrf_token(client)
    before = refresh_cookie_value(client)
    response = refresh(client)
    assert_error(response, 403, "csrf_failed")
    assert cookie_name() not in response.cookies
    assert session_of_cookie(before).revoked_at is None
    assert refresh(client, **csrf_header(client)).status_code == 200


def test_refresh_with_a_wrong_csrf_header_is_403(client, user):
    login(client)
    fetch_csrf_token(client)
    response = refresh(client, HTTP_X_CSRFTOKEN="x" * 64)
    assert_error(response, 403, "csrf_failed")


def test_refresh_with_csrf_header_but_no_csrf_cookie_is_403(client, user):
    login(client)
    other = api_client()
    token = fetch_csrf_token(other)  # a real token, but not this client's cookie
    response = refresh(client, HTTP_X_CSRFTOKEN=token)
    assert_error(response, 403, "csrf_failed")


def test_refresh_without_a_cookie_is_401_and_clears_it(client):
    response = refresh(client, **csrf_header(client))
    assert_error(response, 401, "refresh_token_invalid")
    assert_cookie_cleared(response)


@pytest.mark.parametrize(
    "cookie_value",
    ["A" * 43, "garbage", "x" * 5000, "../../etc/passwd", "%00"],
)
def test_refresh_with_an_unknown_or_garbage_cookie_is_401_and_clears_it(client, user, cookie_value):
    login(client)
    header = csrf_header(client)
    client.cookies[cookie_name()] = cookie_value
    response = refresh(client, **header)
    assert_error(response, 401, "refresh_token_invalid")
    assert_cookie_cleared(response)
    assert refresh_cookie_value(client) is None


def test_refresh_with_an_inactive_users_cookie_is_401(client, user):
    login(client)
    User.objects.filter(pk=user.pk).update(is_active=False)
    response = refresh(client, **csrf_header(client))
    assert_error(response, 401, "refresh_token_invalid")
    assert_cookie_cleared(response)


def test_reused_refresh_token_within_the_grace_window_gets_access_and_the_same_new_cookie(client, user):
    login(client)
    header = csrf_header(client)
    old_refresh = refresh_cookie_value(client)
    assert refresh(client, **header).status_code == 200
    new_refresh = refresh_cookie_value(client)
    client.cookies[cookie_name()] = old_refresh  # a concurrent tab still holding the previous token
    response = refresh(client, **header)
    assert response.status_code == 200
    assert get_me(response.json()["access"], client).status_code == 200
    assert response.cookies[cookie_name()].value == new_refresh


def test_reused_refresh_token_after_the_grace_window_ends_the_session(client, user, settings):
    with time_machine.travel(START, tick=False) as traveller:
        access = login(client)
        header = csrf_header(client)
        old_refresh = refresh_cookie_value(client)
        rotated = refresh(client, **header)
        assert rotated.status_code == 200
        current_refresh = refresh_cookie_value(client)
        traveller.shift(settings.ACCOUNTS_REFRESH_REUSE_GRACE + 1)
        client.cookies[cookie_name()] = old_refresh
        response = refresh(client, **header)
        assert_error(response, 401, "refresh_token_reused")
        assert_cookie_cleared(response)
        assert_error(get_me(access, client), 401, "session_ended")
        assert_error(get_me(rotated.json()["access"], client), 401, "session_ended")
        client.cookies[cookie_name()] = current_refresh  # even the legitimate holder is signed out
        assert_error(refresh(client, **header), 401, "refresh_token_invalid")


def test_refresh_after_the_idle_lifetime_is_401(client, user, settings):
    with time_machine.travel(START, tick=False) as traveller:
        login(client)
        header = csrf_header(client)
        traveller.shift(settings.ACCOUNTS_REFRESH_IDLE_LIFETIME + 1)
        response = refresh(client, **header)
        assert_error(response, 401, "refresh_token_invalid")


# --- Sign-out ------------------------------------------------------------------------


def test_logout_is_204_and_clears_the_cookie(client, user):
    login(client)
    response = post_json(client, LOGOUT_URL, **csrf_header(client))
    assert response.status_code == 204
    assert response.content == b""
    assert_cookie_cleared(response)
    assert refresh_cookie_value(client) is None


def test_logout_ends_the_session_so_its_access_token_is_refused_at_once(client, user):
    access = login(client)
    assert get_me(access, client).status_code == 200  # warms the session-state cache with "live"
    assert post_json(client, LOGOUT_URL, **csrf_header(client)).status_code == 204
    assert_error(get_me(access, client), 401, "session_ended")
    session = session_of(access)
    assert session.revoked_at is not None
    assert session.revoked_reason == "logout"


def test_logout_makes_the_old_refresh_cookie_useless(client, user):
    login(client)
    header = csrf_header(client)
    old_refresh = refresh_cookie_value(client)
    assert post_json(client, LOGOUT_URL, **header).status_code == 204
    client.cookies[cookie_name()] = old_refresh
    response = refresh(client, **header)
    assert_error(response, 401, "refresh_token_invalid")


def test_logout_ends_only_this_device(client, user):
    access_here = login(client)
    other_device = api_client()
    access_there = login(other_device)
    assert post_json(client, LOGOUT_URL, **csrf_header(client)).status_code == 204
    assert get_me(access_here, client).status_code == 401
    assert get_me(access_there, other_device).status_code == 200
    assert refresh(other_device, **csrf_header(other_device)).status_code == 200


def test_logout_without_a_cookie_is_still_204(client):
    response = post_json(client, LOGOUT_URL, **csrf_header(client))
    assert response.status_code == 204
    assert_cookie_cleared(response)


def test_logout_with_a_garbage_cookie_is_still_204(client):
    header = csrf_header(client)
    client.cookies[cookie_name()] = "garbage"
    assert post_json(client, LOGOUT_URL, **header).status_code == 204


def test_logout_without_csrf_is_403_and_the_session_stays_live(client, user):
    access = login(client)
    fetch_csrf_token(client)
    response = post_json(client, LOGOUT_URL)
    assert_error(response, 403, "csrf_failed")
    assert cookie_name() not in response.cookies
    assert get_me(access, client).status_code == 200
    assert session_of(access).revoked_at is None


def test_logout_with_a_wrong_csrf_header_is_403(client, user):
    access = login(client)
    fetch_csrf_token(client)
    response = post_json(client, LOGOUT_URL, HTTP_X_CSRFTOKEN="wrong" * 10)
    assert_error(response, 403, "csrf_failed")
    assert session_of(access).revoked_at is None


# --- Profile -------------------------------------------------------------------------


def test_me_returns_the_profile(client, user):
    response = get_me(access_token_for(user), client)
    assert response.status_code == 200
    assert response.json() == {
        "id": user.pk,
        "email": "alice@example.com",
        "name": "Alice",
        "email_verified": True,
        "email_undeliverable": None,
    }


def test_patch_me_changes_the_name_stripped(client, user):
    access = access_token_for(user)
    response = patch_json(client, ME_URL, {"name": "  Alice Smith \t"}, **bearer(access))
    assert response.status_code == 200
    assert response.json()["name"] == "Alice Smith"
    user.refresh_from_db()
    assert user.name == "Alice Smith"
    assert get_me(access, client).json()["name"] == "Alice Smith"


def test_patch_me_accepts_a_name_of_exactly_150_characters(client, user):
    response = patch_json(client, ME_URL, {"name": "n" * 150}, **bearer(access_token_for(user)))
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.name == "n" * 150


@pytest.mark.parametrize("name", ["", "   ", "n" * 151, 5, None, ["Alice"], {"first": "A"}])
def test_patch_me_bad_name_is_400_and_changes_nothing(client, user, name):
    response = patch_json(client, ME_URL, {"name": name}, **bearer(access_token_for(user)))
    assert_error(response, 400, "invalid_input", fields={"name"})
    user.refresh_from_db()
    assert user.name == "Alice"


def test_patch_me_ignores_email_and_verification_fields(client, user):
    access = access_token_for(user)
    response = patch_json(
        client, ME_URL, {"name": "Al", "email": "evil@example.com", "email_verified": False}, **bearer(access)
    )
    assert response.status_code == 200
    assert response.json()["email"] == "alice@example.com"
    user.refresh_from_db()
    assert user.name == "Al"
    assert user.email == "alice@example.com"
    assert user.email_verified


def test_me_without_a_token_is_401_not_authenticated(client):
    response = client.get(ME_URL)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_patch_me_without_a_token_is_401(client, user):
    response = patch_json(client, ME_URL, {"name": "Mallory"})
    assert_error(response, 401, "not_authenticated")
    user.refresh_from_db()
    assert user.name == "Alice"


@pytest.mark.parametrize("raw", ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."])
def test_me_with_an_invalid_token_is_401_access_token_invalid(client, raw):
    response = client.get(ME_URL, **bearer(raw))
    assert_error(response, 401, "access_token_invalid")


def test_me_with_a_token_signed_by_another_key_is_401(client, user):
    genuine = access_token_for(user)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    header = jwt.get_unverified_header(genuine)
    forged = jwt.encode(claims, "an attacker's own key of more than 32 bytes", algorithm="HS256", headers=header)
    response = get_me(forged, client)
    assert_error(response, 401, "access_token_invalid")


def test_me_with_an_expired_token_is_401(client, user, settings):
    with time_machine.travel(START, tick=False) as traveller:
        access = access_token_for(user)
        assert get_me(access, client).status_code == 200
        traveller.shift(settings.JWT_ACCESS_TOKEN_LIFETIME + 1)
        assert_error(get_me(access, client), 401, "access_token_invalid")


# --- Device sessions -----------------------------------------------------------------


def test_sessions_lists_the_callers_live_sessions_marking_the_current_one(client, user, make_user):
    bob = make_user(email="bob@example.com", name="Bob")
    access_here = login(client, HTTP_USER_AGENT="Here/1.0")
    other_device = api_client()
    access_there = login(other_device, HTTP_USER_AGENT="There/2.0")
    access_token_for(bob, user_agent="Bob/1.0")
    response = client.get(SESSIONS_URL, **bearer(access_here))
    assert response.status_code == 200
    sessions = response.json()
    assert isinstance(sessions, list)
    assert {item["id"] for item in sessions} == {session_id_of(access_here), session_id_of(access_there)}
    for item in sessions:
        assert set(item) == SESSION_FIELDS
        assert item["ip_address"] == "127.0.0.1"
    current = [item for item in sessions if item["current"]]
    assert len(current) == 1
    assert current[0]["id"] == session_id_of(access_here)
    assert current[0]["user_agent"] == "Here/1.0"
    assert next(item for item in sessions if not item["current"])["user_agent"] == "There/2.0"


def test_sessions_current_flag_follows_the_caller(client, user):
    first = access_token_for(user)
    second = access_token_for(user)
    listed = client.get(SESSIONS_URL, **bearer(second)).json()
    assert [item["id"] for item in listed if item["current"]] == [session_id_of(second)]
    assert session_id_of(first) in {item["id"] for item in listed}


def test_sessions_list_leaves_out_ended_sessions(client, user):
    access = access_token_for(user)
    ended = access_token_for(user)
    DeviceSession.objects.filter(pk=session_id_of(ended)).update(revoked_at=timezone.now())
    listed = client.get(SESSIONS_URL, **bearer(access)).json()
    assert [item["id"] for item in listed] == [session_id_of(access)]


def test_sessions_list_needs_a_token(client):
    assert_error(client.get(SESSIONS_URL), 401, "not_authenticated")


def test_delete_session_ends_it_and_its_access_token_is_refused_at_once(client, user):
    access = access_token_for(user)
    other = access_token_for(user)
    assert get_me(other, client).status_code == 200  # "live" is cached now
    response = client.delete(f"{SESSIONS_URL}{session_id_of(other)}/", **bearer(access))
    assert response.status_code == 204
    assert_error(get_me(other, client), 401, "session_ended")
    assert get_me(access, client).status_code == 200
    listed = client.get(SESSIONS_URL, **bearer(access)).json()
    assert [item["id"] for item in listed] == [session_id_of(access)]
    assert session_of(other).revoked_reason == "ended_by_user"


def test_deleted_sessions_refresh_cookie_is_refused(client, user):
    login(client)
    header = csrf_header(client)
    access = access_token_for(user)
    session_id = DeviceSession.objects.exclude(pk=session_id_of(access)).get().pk
    assert client.delete(f"{SESSIONS_URL}{session_id}/", **bearer(access)).status_code == 204
    assert_error(refresh(client, **header), 401, "refresh_token_invalid")


def test_delete_another_users_session_is_404_and_leaves_it_live(client, user, make_user):
    bob = make_user(email="bob@example.com", name="Bob")
    access = access_token_for(user)
    bobs = access_token_for(bob)
    response = client.delete(f"{SESSIONS_URL}{session_id_of(bobs)}/", **bearer(access))
    assert_error(response, 404, "not_found")
    assert session_of(bobs).revoked_at is None
    assert get_me(bobs, client).status_code == 200


@pytest.mark.parametrize(
    "session_id",
    [pytest.param(str(uuid.uuid4()), id="unknown"), "not-a-uuid", "1"],  # a fixed id: xdist workers collect alike
)
def test_delete_unknown_or_malformed_session_id_is_404(client, user, session_id):
    access = access_token_for(user)
    response = client.delete(f"{SESSIONS_URL}{session_id}/", **bearer(access))
    assert_error(response, 404, "not_found")
    assert get_me(access, client).status_code == 200


def test_delete_session_needs_a_token(client, user):
    access = access_token_for(user)
    response = client.delete(f"{SESSIONS_URL}{session_id_of(access)}/")
    assert_error(response, 401, "not_authenticated")
    assert session_of(access).revoked_at is None


def test_revoke_others_ends_every_session_but_the_current_one(client, user, make_user):
    bob = make_user(email="bob@example.com", name="Bob")
    current = access_token_for(user)
    others = [access_token_for(user) for _ in range(3)]
    bobs = access_token_for(bob)
    for token in others:
        assert get_me(token, client).status_code == 200
    response = post_json(client, REVOKE_OTHERS_URL, **bearer(current))
    assert response.status_code == 204
    for token in others:
        assert_error(get_me(token, client), 401, "session_ended")
    assert get_me(current, client).status_code == 200
    assert get_me(bobs, client).status_code == 200
    listed = client.get(SESSIONS_URL, **bearer(current)).json()
    assert [item["id"] for item in listed] == [session_id_of(current)]


def test_revoke_others_needs_a_token(client, user):
    access = access_token_for(user)
    assert_error(post_json(client, REVOKE_OTHERS_URL), 401, "not_authenticated")
    assert session_of(access).revoked_at is None


# --- Password reset ------------------------------------------------------------------


def test_password_reset_request_is_identical_for_known_and_unknown_addresses(client, user, mailoutbox):
    known = post_json(client, RESET_URL, {"email": "ALICE@example.com"})
    unknown = post_json(client, RESET_URL, {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.content == unknown.content
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["alice@example.com"]
    assert "/password/reset/" in link_in(mailoutbox[0], "/password/reset/")


@pytest.mark.parametrize("data", [{}, {"email": 5}, {"email": "not-an-email"}, {"email": None}])
def test_password_reset_request_bad_input_is_400(client, mailoutbox, data):
    assert_error(post_json(client, RESET_URL, data), 400, "invalid_input", fields={"email"})
    assert mailoutbox == []


def test_password_reset_confirm_changes_the_password(client, user, mailoutbox):
    token = reset_token_for(client, "alice@example.com", mailoutbox)
    response = post_json(client, RESET_CONFIRM_URL, {"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 204
    assert response.content == b""
    assert_error(login_response(client, password=STRONG_PASSWORD), 401, "invalid_credentials")
    assert login_response(client, password=NEW_PASSWORD).status_code == 200


def test_password_reset_confirm_ends_every_device_session(client, user, mailoutbox):
    access_here = login(client)
    header = csrf_header(client)
    access_there = access_token_for(user)
    assert get_me(access_here, client).status_code == 200
    assert get_me(access_there, client).status_code == 200
    token = reset_token_for(api_client(), "alice@example.com", mailoutbox)
    assert post_json(api_client(), RESET_CONFIRM_URL, {"token": token, "password": NEW_PASSWORD}).status_code == 204
    assert_error(get_me(access_here, client), 401, "session_ended")
    assert_error(get_me(access_there, client), 401, "session_ended")
    assert_error(refresh(client, **header), 401, "refresh_token_invalid")
    assert not DeviceSession.objects.filter(revoked_at__isnull=True).exists()


def test_password_reset_confirm_does_not_sign_in(client, user, mailoutbox):
    token = reset_token_for(client, "alice@example.com", mailoutbox)
    response = post_json(client, RESET_CONFIRM_URL, {"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 204
    assert cookie_name() not in response.cookies
    assert not DeviceSession.objects.exists()


def test_password_reset_token_cannot_be_used_twice(client, user, mailoutbox):
    token = reset_token_for(client, "alice@example.com", mailoutbox)
    assert post_json(client, RESET_CONFIRM_URL, {"token": token, "password": NEW_PASSWORD}).status_code == 204
    response = post_json(client, RESET_CONFIRM_URL, {"token": token, "password": "yet another good passphrase"})
    assert_error(response, 400, "token_used", fields={"token"})
    assert login_response(client, password=NEW_PASSWORD).status_code == 200


@pytest.mark.parametrize("token", ["A" * 43, "garbage", "", "x" * 300])
def test_password_reset_confirm_with_a_bad_token_is_400(client, user, token):
    response = post_json(client, RESET_CONFIRM_URL, {"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 400
    assert response.json()["code"] in {"token_invalid", "invalid_input"}
    assert "token" in response.json()["fields"]
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)


def test_password_reset_confirm_with_an_unknown_token_is_token_invalid(client, user):
    response = post_json(client, RESET_CONFIRM_URL, {"token": "A" * 43, "password": NEW_PASSWORD})
    assert_error(response, 400, "token_invalid", fields={"token"})


def test_password_reset_confirm_with_an_expired_token_is_token_expired(client, user, mailoutbox):
    token = reset_token_for(client, "alice@example.com", mailoutbox)
    PasswordResetToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = post_json(client, RESET_CONFIRM_URL, {"token": token, "password": NEW_PASSWORD})
    assert_error(response, 400, "token_expired", fields={"token"})
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)


def test_password_reset_confirm_with_a_weak_password_keeps_the_token_usable(client, user, mailoutbox):
    token = reset_token_for(client, "alice@example.com", mailoutbox)
    response = post_json(client, RESET_CONFIRM_URL, {"token": token, "password": "short"})
    assert_error(response, 400, "password_rejected", fields={"password"})
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)
    assert post_json(client, RESET_CONFIRM_URL, {"token": token, "password": NEW_PASSWORD}).status_code == 204
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


@pytest.mark.parametrize(
    "data", [{"token": 5, "password": NEW_PASSWORD}, {"password": NEW_PASSWORD}, {"token": "A" * 43, "password": None}]
)
def test_password_reset_confirm_wrong_types_are_invalid_input(client, user, data):
    assert_error(post_json(client, RESET_CONFIRM_URL, data), 400, "invalid_input", fields=set())


# --- Email verification --------------------------------------------------------------


def test_verify_email_with_the_emailed_token_verifies_the_user(client, mailoutbox):
    register(client)
    token = token_in(mailoutbox[0], "/verify-email/")
    assert_error(login_response(client, email="new@example.com"), 403, "email_not_verified")
    response = post_json(client, VERIFY_URL, {"token": token})
    assert response.status_code == 200
    assert set(response.json()) == {"detail"}
    assert User.objects.get(email="new@example.com").email_verified
    assert login_response(client, email="new@example.com").status_code == 200


def test_verify_email_token_cannot_be_reused(client, mailoutbox):
    register(client)
    token = token_in(mailoutbox[0], "/verify-email/")
    assert post_json(client, VERIFY_URL, {"token": token}).status_code == 200
    assert_error(post_json(client, VERIFY_URL, {"token": token}), 400, "token_used", fields={"token"})


def test_verify_email_with_an_unknown_token_is_token_invalid(client, unverified):
    assert_error(post_json(client, VERIFY_URL, {"token": "B" * 43}), 400, "token_invalid", fields={"token"})
    unverified.refresh_from_db()
    assert not unverified.email_verified


def test_verify_email_with_an_expired_token_is_token_expired(client, mailoutbox):
    register(client)
    token = token_in(mailoutbox[0], "/verify-email/")
    EmailVerificationToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(post_json(client, VERIFY_URL, {"token": token}), 400, "token_expired", fields={"token"})
    assert not User.objects.get(email="new@example.com").email_verified


def test_verify_email_does_not_accept_a_password_reset_token(client, unverified, mailoutbox):
    reset_token = reset_token_for(client, "una@example.com", mailoutbox)
    assert_error(post_json(client, VERIFY_URL, {"token": reset_token}), 400, "token_invalid", fields={"token"})
    unverified.refresh_from_db()
    assert not unverified.email_verified


@pytest.mark.parametrize("data", [{}, {"token": 5}, {"token": None}, {"token": ["x"]}])
def test_verify_email_wrong_types_are_invalid_input(client, data):
    assert_error(post_json(client, VERIFY_URL, data), 400, "invalid_input", fields={"token"})


def test_resend_verification_is_identical_for_unknown_verified_and_unverified(client, user, unverified, mailoutbox):
    for_unknown = post_json(client, RESEND_URL, {"email": "nobody@example.com"})
    for_verified = post_json(client, RESEND_URL, {"email": "alice@example.com"})
    assert mailoutbox == []
    for_unverified = post_json(client, RESEND_URL, {"email": "UNA@example.com"})
    assert for_unknown.status_code == for_verified.status_code == for_unverified.status_code == 202
    assert for_unknown.content == for_verified.content == for_unverified.content
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["una@example.com"]


def test_resent_verification_link_works(client, unverified, mailoutbox):
    post_json(client, RESEND_URL, {"email": "una@example.com"})
    token = token_in(mailoutbox[-1], "/verify-email/")
    # Not the client that signed up (the fixture made the account): the password shows it is theirs.
    assert post_json(client, VERIFY_URL, {"token": token, "password": STRONG_PASSWORD}).status_code == 200
    unverified.refresh_from_db()
    assert unverified.email_verified


@pytest.mark.parametrize("data", [{}, {"email": 5}, {"email": "nope"}])
def test_resend_verification_bad_input_is_400(client, unverified, mailoutbox, data):
    assert_error(post_json(client, RESEND_URL, data), 400, "invalid_input", fields={"email"})
    assert mailoutbox == []


# --- Caching and the error shape -----------------------------------------------------


def _auth_requests(client, user):
    """(label, response) for a spread of successful and failing /api/auth/ requests."""
    access = access_token_for(user)
    yield "login ok", login_response(client)
    yield "login 401", login_response(client, password=WRONG_PASSWORD)
    yield "login 400", post_json(client, LOGIN_URL, {"email": 5})
    yield "login malformed", client.post(LOGIN_URL, "{", content_type="application/json")
    yield "login 415", client.post(LOGIN_URL, "a=b", content_type="application/x-www-form-urlencoded")
    yield "login 405", client.get(LOGIN_URL)
    yield "csrf", client.get(CSRF_URL)
    yield "refresh 403", refresh(client)
    yield "refresh ok", refresh(client, **csrf_header(client))
    yield "me ok", get_me(access, client)
    yield "me 401", client.get(ME_URL)
    yield "sessions ok", client.get(SESSIONS_URL, **bearer(access))
    yield "session 404", client.delete(f"{SESSIONS_URL}{uuid.uuid4()}/", **bearer(access))
    yield "register", register(client)
    yield "reset", post_json(client, RESET_URL, {"email": "nobody@example.com"})
    yield "reset confirm 400", post_json(client, RESET_CONFIRM_URL, {"token": "A" * 43, "password": NEW_PASSWORD})
    yield "verify 400", post_json(client, VERIFY_URL, {"token": "A" * 43})
    yield "resend", post_json(client, RESEND_URL, {"email": "nobody@example.com"})
    yield "logout", post_json(client, LOGOUT_URL, **csrf_header(client))
    yield "refresh 401", refresh(client, **csrf_header(client))
    yield "unknown auth path", client.get("/api/auth/no-such-endpoint/")


def test_every_auth_response_is_marked_no_store(client, user, mailoutbox):
    for label, response in _auth_requests(client, user):
        assert "no-store" in response.get("Cache-Control", ""), label


def test_every_auth_error_has_exactly_code_and_detail_plus_fields_only_for_400(client, user, mailoutbox):
    errors = 0
    for label, response in _auth_requests(client, user):
        if response.status_code < 400:
            continue
        errors += 1
        body = response.json()
        assert isinstance(body.get("code"), str) and body["code"], label
        assert isinstance(body.get("detail"), str) and body["detail"], label
        if "fields" in body:
            assert response.status_code == 400, label
            assert set(body) == {"code", "detail", "fields"}, label
            assert isinstance(body["fields"], dict) and body["fields"], label
        else:
            assert set(body) == {"code", "detail"}, label
    assert errors >= 12


@pytest.mark.parametrize("path", ["/api/nothing-here/", "/api/auth/nothing-here/", "/api/todos/a/b/c/"])
def test_unknown_api_path_is_json_404(client, path):
    response = client.get(path)
    assert_error(response, 404, "not_found")
    assert "no-store" in response["Cache-Control"]


def test_unknown_page_outside_the_api_is_not_json(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_jwks_is_404_with_hs256(client, settings):
    assert settings.JWT_ALGORITHM == "HS256"
    assert client.get("/.well-known/jwks.json").status_code == 404


# --- OpenAPI schema and docs ---------------------------------------------------------

EXPECTED_OPERATIONS = {
    "/api/auth/register/": {"post"},
    "/api/auth/login/": {"post"},
    "/api/auth/refresh/": {"post"},
    "/api/auth/logout/": {"post"},
    "/api/auth/csrf/": {"get"},
    "/api/auth/me/": {"get", "patch"},
    "/api/auth/sessions/": {"get"},
    "/api/auth/sessions/{session_id}/": {"delete"},
    "/api/auth/sessions/revoke-others/": {"post"},
    "/api/auth/password/reset/": {"post"},
    "/api/auth/password/reset/confirm/": {"post"},
    "/api/auth/email/verify/": {"post"},
    "/api/auth/email/verify/resend/": {"post"},
    "/api/todos/": {"get", "post"},
    "/api/todos/{id}/": {"get", "put", "patch", "delete"},
}


@pytest.fixture
def schema(client) -> dict:
    response = client.get(SCHEMA_URL, {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_schema_is_yaml_by_default(client):
    response = client.get(SCHEMA_URL)
    assert response.status_code == 200
    assert "yaml" in response["Content-Type"] or "openapi" in response["Content-Type"]
    assert re.match(rb"openapi: 3\.\d+\.\d+\n", response.content)


@pytest.mark.parametrize(
    "request_kwargs",
    [{"data": {"format": "json"}}, {"HTTP_ACCEPT": "application/vnd.oai.openapi+json"}],
)
def test_schema_is_available_as_json(client, request_kwargs):
    response = client.get(SCHEMA_URL, **request_kwargs)
    assert response.status_code == 200
    document = json.loads(response.content)
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"]


def test_schema_documents_every_path_with_its_methods(schema):
    documented = {path: set(item) & HTTP_METHODS for path, item in schema["paths"].items()}
    for path, methods in EXPECTED_OPERATIONS.items():
        assert methods <= documented.get(path, set()), path


def test_schema_security_schemes(schema, settings):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["accessToken"]["type"] == "http"
    assert schemes["accessToken"]["scheme"] == "bearer"
    assert schemes["refreshCookie"] == {"type": "apiKey", "in": "cookie", "name": settings.ACCOUNTS_REFRESH_COOKIE_NAME}
    assert schemes["csrfHeader"]["type"] == "apiKey"
    assert schemes["csrfHeader"]["in"] == "header"
    assert schemes["csrfHeader"]["name"] == "X-CSRFToken"


@pytest.mark.parametrize("path", ["/api/auth/refresh/", "/api/auth/logout/"])
def test_schema_refresh_and_logout_take_the_cookie_and_csrf_header(schema, settings, path):
    operation = schema["paths"][path]["post"]
    parameters = {(parameter["in"], parameter["name"]) for parameter in operation["parameters"]}
    assert ("cookie", settings.ACCOUNTS_REFRESH_COOKIE_NAME) in parameters
    assert ("header", "X-CSRFToken") in parameters
    assert {"refreshCookie": [], "csrfHeader": []} in operation["security"]


@pytest.mark.parametrize(
    ("path", "method"),
    [("/api/todos/", "get"), ("/api/todos/{id}/", "delete"), ("/api/auth/me/", "get"), ("/api/auth/sessions/", "get")],
)
def test_schema_protected_operations_require_the_access_token(schema, path, method):
    assert {"accessToken": []} in schema["paths"][path][method]["security"]


def test_schema_error_component_and_its_use(schema):
    schemas = schema["components"]["schemas"]
    error_name = next(name for name in schemas if "Error" in name)
    error = schemas[error_name]
    assert {"code", "detail", "fields"} <= set(error["properties"])
    assert set(error["required"]) == {"code", "detail"}
    reference = f"#/components/schemas/{error_name}"
    login_401 = schema["paths"]["/api/auth/login/"]["post"]["responses"]["401"]
    assert login_401["content"]["application/json"]["schema"]["$ref"] == reference


def test_schema_login_response_has_no_refresh_token(schema):
    login_200 = schema["paths"]["/api/auth/login/"]["post"]["responses"]["200"]
    name = login_200["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][name]["properties"]) == {"access", "access_expires_at", "user"}


def test_docs_page_loads_only_local_assets(client):
    response = client.get(DOCS_URL)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assets = re.findall(r'<(?:script|link)\b[^>]*?\b(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 3
    # The page's own start-up script is served by the view itself (no inline script under the CSP).
    scripts = [asset for asset in assets if not asset.startswith("/static/")]
    assert [script.replace("&amp;", "&") for script in scripts] == ["/api/docs/?script="]
    for asset in assets:
        if asset.startswith("/static/"):
            assert finders.find(asset.removeprefix("/static/")) is not None, asset
    assert not re.search(r"https?://", html)
    assert "<script>" not in html and "<style>" not in html
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in script.content.decode()
