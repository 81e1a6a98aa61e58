"""Sign-in, sign-out and the account page: credentials, sessions, redirects and hash upgrades."""

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher, make_password
from django.contrib.sessions.backends.db import SessionStore

from accounts.exceptions import EmailNotVerified, InvalidCredentials
from accounts.flows.signin import authenticate_user
from accounts.hashers import ConfiguredArgon2PasswordHasher
from accounts.models import User
from tests.support.accounts import STRONG_PASSWORD, force_page_login
from tests.support.pages import browser, csrf_from_page
from tests.support.pages import without_csrf as _without_csrf

pytestmark = pytest.mark.django_db

LOGIN_URL = "/accounts/login/"
LOGOUT_URL = "/accounts/logout/"
HOME_URL = "/accounts/"
GENERIC_ERROR = "The email address or password is not correct."
WRONG_PASSWORD = "not the right passphrase"
CONFIGURED_PARAMS = "m=19456,t=2,p=1"


class WeakArgon2PasswordHasher(ConfiguredArgon2PasswordHasher):
    """Argon2id with parameters below the configured ones (an older deployment's hashes)."""

    time_cost = 1
    memory_cost = 8192
    parallelism = 1


def sign_in(client, email="alice@example.com", password=STRONG_PASSWORD, **extra):
    return client.post(LOGIN_URL, {"email": email, "password": password, **extra})


def without_csrf(response) -> str:
    return _without_csrf(response.content.decode())


def signed_in_user_id(client):
    return client.session.get("_auth_user_id")


# --- The page -------------------------------------------------------------------


def test_login_page_renders_the_form(client):
    response = client.get(LOGIN_URL)
    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="email"' in content
    assert 'name="password"' in content
    assert "/static/css/site.css" in content
    assert 'name="next"' not in content


# --- Right credentials -------------------------------------------------------------


@pytest.mark.parametrize(
    "entered", ["alice@example.com", "ALICE@Example.COM", " Alice@example.com ", "ａｌｉｃｅ@example.com"]
)
def test_right_credentials_sign_in_and_redirect_to_account(client, user, entered):
    response = sign_in(client, email=entered)
    assert response.status_code == 302
    assert response["Location"] == HOME_URL
    assert signed_in_user_id(client) == str(user.pk)
    assert client.get(HOME_URL).status_code == 200


def test_sign_in_changes_the_session_key(client, user):
    anonymous = client.session
    anonymous["probe"] = "anonymous data"
    anonymous.save()
    before = client.cookies["sessionid"].value
    assert before == anonymous.session_key

    response = sign_in(client)
    assert response.status_code == 302
    after = client.cookies["sessionid"].value
    assert after != before
    assert not SessionStore().exists(before)
    assert SessionStore(after).get("_auth_user_id") == str(user.pk)


def test_sign_in_from_another_users_session_does_not_keep_their_session(client, make_user):
    bob = make_user(email="bob@example.com", name="Bob")
    alice = make_user(email="alice@example.com")
    force_page_login(client, bob)
    before = client.cookies["sessionid"].value
    sign_in(client, email="alice@example.com")
    assert client.cookies["sessionid"].value != before
    assert signed_in_user_id(client) == str(alice.pk)


def test_right_credentials_run_the_hasher_once(client, user, hash_counter):
    hash_counter.calls = 0
    sign_in(client)
    assert hash_counter.calls == 1


# --- Wrong credentials -------------------------------------------------------------


def test_unknown_email_wrong_password_and_inactive_user_look_identical(client, make_user):
    unknown = sign_in(client, password=WRONG_PASSWORD)

    alice = make_user(email="alice@example.com")
    wrong_password = sign_in(client, password=WRONG_PASSWORD)

    alice.is_active = False
    alice.save(update_fields=["is_active"])
    inactive = sign_in(client, password=STRONG_PASSWORD)

    assert unknown.status_code == wrong_password.status_code == inactive.status_code == 200
    assert without_csrf(unknown) == without_csrf(wrong_password) == without_csrf(inactive)
    assert GENERIC_ERROR in without_csrf(unknown)


def test_csrf_regex_really_removes_the_token(client):
    # Guard for the comparison above: two renderings differ only by the token.
    first, second = client.get(LOGIN_URL), client.get(LOGIN_URL)
    assert 'name="csrfmiddlewaretoken" value=""' in without_csrf(first)
    assert without_csrf(first) == without_csrf(second)


@pytest.fixture(params=["unknown email", "wrong password", "inactive user"])
def failed_sign_in(request, make_user):
    """Credentials that must fail: (email, password)."""
    if request.param == "unknown email":
        make_user(email="someone.else@example.com")
        return "alice@example.com", STRONG_PASSWORD
    if request.param == "wrong password":
        make_user(email="alice@example.com")
        return "alice@example.com", WRONG_PASSWORD
    make_user(email="alice@example.com", is_active=False)
    return "alice@example.com", STRONG_PASSWORD


def test_failed_sign_in_shows_generic_error_and_does_not_sign_in(client, failed_sign_in):
    email, password = failed_sign_in
    response = sign_in(client, email=email, password=password)
    assert response.status_code == 200
    assert GENERIC_ERROR in response.content.decode()
    assert "verify your email" not in response.content.decode()
    assert "sessionid" not in client.cookies  # checked first: client.session would create one
    assert signed_in_user_id(client) is None


def test_failed_sign_in_runs_the_hasher_exactly_once(client, failed_sign_in, hash_counter):
    email, password = failed_sign_in
    hash_counter.calls = 0
    sign_in(client, email=email, password=password)
    assert hash_counter.calls == 1


def test_failed_sign_in_keeps_the_entered_email_but_not_the_password(client, user):
    response = sign_in(client, email="alice@example.com", password=WRONG_PASSWORD)
    content = response.content.decode()
    assert 'value="alice@example.com"' in content
    assert WRONG_PASSWORD not in content


def test_failed_sign_in_with_wrong_case_password_is_rejected(client, user):
    response = sign_in(client, password=STRONG_PASSWORD.upper())
    assert GENERIC_ERROR in response.content.decode()
    assert signed_in_user_id(client) is None


@pytest.mark.parametrize("missing", ["email", "password"])
def test_missing_field_is_a_form_error(client, user, missing, hash_counter):
    data = {"email": "alice@example.com", "password": STRONG_PASSWORD, missing: ""}
    response = client.post(LOGIN_URL, data)
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert signed_in_user_id(client) is None
    assert hash_counter.calls == 0


# --- Password length ----------------------------------------------------------------


def test_password_over_128_characters_is_a_form_error_without_hashing(client, user, hash_counter):
    hash_counter.calls = 0
    response = sign_in(client, password="x" * 129)
    assert response.status_code == 200
    content = response.content.decode()
    assert "Passwords are at most 128 characters." in content
    assert GENERIC_ERROR not in content
    assert hash_counter.calls == 0
    assert signed_in_user_id(client) is None


def test_password_of_128_characters_is_checked_normally(client, user, hash_counter):
    hash_counter.calls = 0
    response = sign_in(client, password="x" * 128)
    assert GENERIC_ERROR in response.content.decode()
    assert hash_counter.calls == 1


def test_user_with_128_character_password_can_sign_in(client, make_user):
    password = ("correct horse battery staple " * 5)[:128]
    make_user(email="alice@example.com", password=password)
    assert sign_in(client, password=password).status_code == 302
    assert signed_in_user_id(client) is not None


# --- Unverified addresses -----------------------------------------------------------


def test_unverified_user_with_right_password_is_told_to_verify(client, make_user, settings):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "mandatory"
    make_user(email="alice@example.com", verified=False)
    response = sign_in(client, email="Alice@Example.com")
    assert response.status_code == 200
    content = response.content.decode()
    assert "Please verify your email address before signing in." in content
    assert 'action="/accounts/verify-email/resend/"' in content
    assert '<input type="hidden" name="email" value="alice@example.com">' in content
    assert GENERIC_ERROR not in content
    assert signed_in_user_id(client) is None
    assert client.get(HOME_URL).status_code == 302


def test_mandatory_verification_is_the_default(client, make_user):
    make_user(email="alice@example.com", verified=False)
    response = sign_in(client)
    assert response.status_code == 200
    assert signed_in_user_id(client) is None


def test_unverified_user_with_wrong_password_gets_the_generic_error(client, make_user):
    unknown = sign_in(client, password=WRONG_PASSWORD)
    make_user(email="alice@example.com", verified=False)
    unverified = sign_in(client, password=WRONG_PASSWORD)
    assert unverified.status_code == 200
    assert GENERIC_ERROR in unverified.content.decode()
    assert "verify-email/resend" not in unverified.content.decode()
    assert without_csrf(unverified) == without_csrf(unknown)


def test_inactive_unverified_user_with_right_password_gets_the_generic_error(client, make_user):
    make_user(email="alice@example.com", verified=False, is_active=False)
    response = sign_in(client)
    assert GENERIC_ERROR in response.content.decode()
    assert "verify-email/resend" not in response.content.decode()


def test_unverified_user_signs_in_when_verification_is_optional(client, make_user, settings):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "optional"
    user = make_user(email="alice@example.com", verified=False)
    response = sign_in(client)
    assert response.status_code == 302
    assert response["Location"] == HOME_URL
    assert signed_in_user_id(client) == str(user.pk)
    assert "not verified" in client.get(HOME_URL).content.decode()


def test_optional_verification_still_rejects_wrong_password(client, make_user, settings):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "optional"
    make_user(email="alice@example.com", verified=False)
    response = sign_in(client, password=WRONG_PASSWORD)
    assert GENERIC_ERROR in response.content.decode()
    assert signed_in_user_id(client) is None


# --- The next parameter ---------------------------------------------------------------

SAFE_NEXT = "/some/page/"


def test_next_from_query_string_is_honoured(client, user):
    response = client.post(f"{LOGIN_URL}?next={SAFE_NEXT}", {"email": "alice@example.com", "password": STRONG_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == SAFE_NEXT


def test_next_from_hidden_field_is_honoured(client, user):
    response = sign_in(client, next=SAFE_NEXT)
    assert response.status_code == 302
    assert response["Location"] == SAFE_NEXT


@pytest.mark.parametrize("target", [SAFE_NEXT, "/accounts/"])
def test_login_page_carries_safe_next_into_the_form(client, target):
    response = client.get(f"{LOGIN_URL}?next={target}")
    assert f'<input type="hidden" name="next" value="{target}">' in response.content.decode()


def test_failed_sign_in_keeps_next_for_the_retry(client, user):
    response = sign_in(client, password=WRONG_PASSWORD, next=SAFE_NEXT)
    assert f'name="next" value="{SAFE_NEXT}"' in response.content.decode()


UNSAFE_NEXT = [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example",
    "\\\\evil.example",
    "javascript:alert(1)",
    "http://testserver.evil.example/",
    "https:///evil.example/",
]


@pytest.mark.parametrize("target", UNSAFE_NEXT)
def test_unsafe_next_in_post_is_ignored(client, user, target):
    response = sign_in(client, next=target)
    assert response.status_code == 302
    assert response["Location"] == HOME_URL
    assert signed_in_user_id(client) == str(user.pk)


@pytest.mark.parametrize("target", UNSAFE_NEXT)
def test_unsafe_next_in_query_is_ignored(client, user, target):
    response = client.post(
        LOGIN_URL, {"email": "alice@example.com", "password": STRONG_PASSWORD}, query_params={"next": target}
    )
    assert response.status_code == 302
    assert response["Location"] == HOME_URL


@pytest.mark.parametrize("target", UNSAFE_NEXT)
def test_unsafe_next_is_not_rendered_into_the_form(client, target):
    response = client.get(LOGIN_URL, query_params={"next": target})
    content = response.content.decode()
    assert 'name="next"' not in content
    assert "evil.example" not in content
    assert "javascript:" not in content


# --- Hash upgrades ----------------------------------------------------------------------


def _user_with_hash(make_user, encoded):
    user = make_user(email="alice@example.com")
    User.objects.filter(pk=user.pk).update(password=encoded)
    user.refresh_from_db()
    return user


@pytest.mark.real_argon2
def test_pbkdf2_hash_is_upgraded_to_configured_argon2_on_sign_in(client, make_user):
    user = _user_with_hash(make_user, make_password(STRONG_PASSWORD, hasher="pbkdf2_sha256"))
    assert user.password.startswith("pbkdf2_sha256$")

    assert sign_in(client).status_code == 302
    user.refresh_from_db()
    assert user.password.startswith("argon2$argon2id$")
    assert CONFIGURED_PARAMS in user.password
    assert user.check_password(STRONG_PASSWORD)


@pytest.mark.real_argon2
def test_weak_argon2_hash_is_upgraded_on_sign_in(client, make_user):
    old = make_password(STRONG_PASSWORD, hasher=WeakArgon2PasswordHasher())
    assert "m=8192,t=1,p=1" in old
    user = _user_with_hash(make_user, old)

    assert sign_in(client).status_code == 302
    user.refresh_from_db()
    assert user.password != old
    assert user.password.startswith("argon2$argon2id$")
    assert CONFIGURED_PARAMS in user.password
    assert user.check_password(STRONG_PASSWORD)


@pytest.mark.real_argon2
def test_django_default_argon2_hash_is_upgraded_on_sign_in(client, make_user):
    # Django's own Argon2 defaults differ from the configured ones.
    old = make_password(STRONG_PASSWORD, hasher=Argon2PasswordHasher())
    assert CONFIGURED_PARAMS not in old
    user = _user_with_hash(make_user, old)

    assert sign_in(client).status_code == 302
    user.refresh_from_db()
    assert CONFIGURED_PARAMS in user.password


@pytest.mark.real_argon2
def test_current_hash_is_not_rewritten_on_sign_in(client, user):
    before = user.password
    assert sign_in(client).status_code == 302
    user.refresh_from_db()
    assert user.password == before


@pytest.mark.real_argon2
def test_old_hash_is_not_upgraded_by_a_wrong_password(client, make_user):
    old = make_password(STRONG_PASSWORD, hasher="pbkdf2_sha256")
    user = _user_with_hash(make_user, old)
    response = sign_in(client, password=WRONG_PASSWORD)
    assert GENERIC_ERROR in response.content.decode()
    user.refresh_from_db()
    assert user.password == old


# --- Sign out ----------------------------------------------------------------------------


def test_logout_by_get_is_refused_and_keeps_the_session(client, user):
    force_page_login(client, user)
    response = client.get(LOGOUT_URL)
    assert response.status_code == 405
    assert signed_in_user_id(client) == str(user.pk)
    assert client.get(HOME_URL).status_code == 200


def test_logout_by_post_signs_out_and_redirects_home(client, user):
    force_page_login(client, user)
    session_before = client.cookies["sessionid"].value
    response = client.post(LOGOUT_URL)
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert signed_in_user_id(client) is None
    assert not SessionStore().exists(session_before)
    assert client.get(HOME_URL).status_code == 302


def test_logout_shows_signed_out_message(client, user):
    force_page_login(client, user)
    response = client.post(LOGOUT_URL, follow=True)
    assert "You are signed out." in response.content.decode()


def test_logout_without_csrf_token_is_forbidden(user):
    client = browser()
    force_page_login(client, user)
    response = client.post(LOGOUT_URL)
    assert response.status_code == 403
    assert client.session.get("_auth_user_id") == str(user.pk)


def test_logout_with_csrf_token_works_under_enforced_checks(user):
    client = browser()
    force_page_login(client, user)
    token = csrf_from_page(client, HOME_URL)
    response = client.post(LOGOUT_URL, {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert client.session.get("_auth_user_id") is None


def test_login_without_csrf_token_is_forbidden(user):
    client = browser()
    response = client.post(LOGIN_URL, {"email": "alice@example.com", "password": STRONG_PASSWORD})
    assert response.status_code == 403
    assert client.session.get("_auth_user_id") is None


# --- Account home -----------------------------------------------------------------------


def test_account_home_requires_sign_in(client):
    response = client.get(HOME_URL)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/accounts/"


def test_account_home_shows_email_and_name(client, make_user):
    user = make_user(email="alice@example.com", name="Alice Liddell")
    force_page_login(client, user)
    response = client.get(HOME_URL)
    assert response.status_code == 200
    content = response.content.decode()
    assert "alice@example.com" in content
    assert "Alice Liddell" in content
    assert '<span class="badge ok">verified</span>' in content


def test_account_home_escapes_the_name(client, make_user):
    user = make_user(email="alice@example.com", name="<script>alert(1)</script>")
    force_page_login(client, user)
    content = client.get(HOME_URL).content.decode()
    assert "<script>alert(1)</script>" not in content
    assert "&lt;script&gt;" in content


def test_account_home_is_not_cached(client, user):
    force_page_login(client, user)
    response = client.get(HOME_URL)
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]


# --- The flow, called directly ----------------------------------------------------------


def test_flow_authenticate_user_returns_the_user(user):
    assert authenticate_user(request=None, email="ALICE@example.com", password=STRONG_PASSWORD) == user


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("nobody@example.com", STRONG_PASSWORD),
        ("alice@example.com", WRONG_PASSWORD),
        ("not-an-email", STRONG_PASSWORD),
        ("alice@example.com", ""),
    ],
)
def test_flow_authenticate_user_raises_invalid_credentials(user, email, password):
    with pytest.raises(InvalidCredentials) as caught:
        authenticate_user(request=None, email=email, password=password)
    assert caught.value.code == "invalid_credentials"
    assert caught.value.message == GENERIC_ERROR


def test_flow_authenticate_user_rejects_inactive_user(make_user):
    make_user(email="alice@example.com", is_active=False)
    with pytest.raises(InvalidCredentials):
        authenticate_user(request=None, email="alice@example.com", password=STRONG_PASSWORD)


def test_flow_authenticate_user_raises_email_not_verified_after_right_password(make_user, settings):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "mandatory"
    unverified = make_user(email="alice@example.com", verified=False)
    with pytest.raises(EmailNotVerified) as caught:
        authenticate_user(request=None, email="alice@example.com", password=STRONG_PASSWORD)
    assert caught.value.code == "email_not_verified"
    assert caught.value.user == unverified


def test_flow_unverified_wrong_password_is_invalid_credentials_not_unverified(make_user):
    make_user(email="alice@example.com", verified=False)
    with pytest.raises(InvalidCredentials) as caught:
        authenticate_user(request=None, email="alice@example.com", password=WRONG_PASSWORD)
    assert not isinstance(caught.value, EmailNotVerified)


def test_flow_authenticate_user_accepts_unverified_when_optional(make_user, settings):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "optional"
    unverified = make_user(email="alice@example.com", verified=False)
    assert authenticate_user(request=None, email="alice@example.com", password=STRONG_PASSWORD) == unverified


# --- The account changing while a sign-in is under way ----------------------------------------------


def change_during_password_check(monkeypatch, change) -> None:
    """Run ``change(user)`` right after the password is found right, as a reset (or a deactivation)
    committing while this sign-in's Argon2 hash was being computed would."""
    from accounts.flows import signin

    real = signin.authenticate

    def authenticate_then_change(request, **credentials):
        user = real(request, **credentials)
        if user is not None:
            change(User.objects.get(pk=user.pk))
        return user

    monkeypatch.setattr(signin, "authenticate", authenticate_then_change)


def reset_meanwhile(user) -> None:
    user.set_password("the owner's new passphrase")
    user.save(update_fields=["password"])


def deactivated_meanwhile(user) -> None:
    user.is_active = False
    user.save(update_fields=["is_active"])


@pytest.mark.parametrize("change", [reset_meanwhile, deactivated_meanwhile], ids=["reset", "deactivated"])
def test_an_api_sign_in_under_way_when_the_account_changes_opens_no_session(user, monkeypatch, change):
    from accounts.models import DeviceSession
    from tests.support.api import api_client, assert_api_error, login_response

    change_during_password_check(monkeypatch, change)
    client = api_client()
    assert_api_error(login_response(client, "alice@example.com", STRONG_PASSWORD), 401, "sign_in_expired")
    assert not DeviceSession.objects.exists()
    assert "todo_refresh" not in client.cookies or not client.cookies["todo_refresh"].value


@pytest.mark.parametrize("change", [reset_meanwhile, deactivated_meanwhile], ids=["reset", "deactivated"])
def test_a_page_sign_in_under_way_when_the_account_changes_signs_nothing_in(user, monkeypatch, change):
    from accounts.models import DeviceSession
    from tests.support.pages import submit

    change_during_password_check(monkeypatch, change)
    page = browser()
    response = submit(
        page,
        "/accounts/login/?next=/accounts/sessions/",
        {"email": "alice@example.com", "password": STRONG_PASSWORD},
        open_first=True,
    )
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=%2Faccounts%2Fsessions%2F"
    assert "changed while you were signing in" in page.get(response["Location"]).content.decode()
    assert "_auth_user_id" not in page.session
    assert not DeviceSession.objects.exists()


def test_an_unchanged_account_still_signs_in(user, monkeypatch):
    from tests.support.api import api_client, login_response

    change_during_password_check(monkeypatch, lambda user: None)
    assert login_response(api_client(), "alice@example.com", STRONG_PASSWORD).status_code == 200
