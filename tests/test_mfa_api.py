"""Two-factor authentication (TOTP and recovery codes) through the JSON API: setup, sign-in, step-up, abuse."""

import functools
import io
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import django_ratelimit.core
import jwt
import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts import rate_limits
from accounts.access_tokens import verified_access_token
from accounts.client_info import ClientInfo
from accounts.encryption import key_id_of
from accounts.exceptions import InvalidCode, MfaNotEnabled, PendingSignInInvalid, TokenInvalid, TotpSetupRequired
from accounts.flows.device_sessions import start_device_session
from accounts.flows.email_tokens import issue_token
from accounts.flows.mfa import begin_totp_setup, confirm_totp, disable_totp, regenerate_recovery_codes
from accounts.flows.password_reset import reset_password
from accounts.flows.pending import start_pending_sign_in
from accounts.flows.second_factor import (
    Method,
    has_mfa,
    normalize_code,
    prove_second_factor,
    recovery_codes_left,
    use_recovery_code,
)
from accounts.flows.signin import SignedIn, complete_second_step
from accounts.models import (
    DeviceSession,
    PasswordResetToken,
    PendingSignIn,
    RecoveryCode,
    SecurityEvent,
    TotpAuthenticator,
    User,
)
from tests.support.accounts import STRONG_PASSWORD
from tests.support.api import (
    access_token_for,
    api_client,
    assert_api_error,
    bearer,
    csrf_header,
    delete_json,
    login,
    login_response,
    post_json,
    refresh,
    refresh_cookie_value,
    session_of,
)
from tests.support.mail import mails_to, without_device_notices
from tests.support.mfa import enable_totp, totp_code
from tests.support.races import run_at_once

pytestmark = pytest.mark.django_db

# A stopped clock (the clock fixture): the server and totp_code() see the same time step until a
# test moves it, and no rate-limit window ends in the middle of a test.
START = datetime(2033, 6, 1, 12, 0, 10, tzinfo=UTC)

ALICE = "alice@example.com"
BOB = "bob@example.com"
NOBODY = "nobody@example.com"
WRONG_PASSWORD = "not the right passphrase at all"
OTHER_IP = "198.51.100.77"

MFA_URL = "/api/auth/mfa/"
SETUP_URL = "/api/auth/mfa/totp/setup/"
CONFIRM_URL = "/api/auth/mfa/totp/confirm/"
TOTP_URL = "/api/auth/mfa/totp/"
RECOVERY_CODES_URL = "/api/auth/mfa/recovery-codes/"
VERIFY_URL = "/api/auth/mfa/verify/"
REAUTHENTICATE_URL = "/api/auth/reauthenticate/"
SESSIONS_URL = "/api/auth/sessions/"
ME_URL = "/api/auth/me/"

PENDING_COOKIE = "todo_mfa_pending"
STEP = timedelta(seconds=30)
PAST_THE_WINDOW = timedelta(minutes=5, seconds=1)
RECOVERY_CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")
MFA_AMR = ["pwd", "otp", "mfa"]


# --- Fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _stopped_clock(clock):
    return clock


@pytest.fixture
def long_access_tokens(settings):
    """Access tokens outlive a time travel past the re-authentication window."""
    settings.JWT_ACCESS_TOKEN_LIFETIME = 3600


@dataclass
class MfaAccount:
    user: User
    secret: str
    codes: list[str]

    def code(self, steps: int = 0) -> str:
        return totp_code(self.secret, steps=steps)


@pytest.fixture
def alice(user) -> MfaAccount:
    """Alice with an authenticator app and ten recovery codes."""
    secret, codes = enable_totp(user, recovery_codes=True)
    return MfaAccount(user, secret, codes)


@pytest.fixture
def bob(make_user) -> User:
    """Bob, without a second factor."""
    return make_user(email=BOB, name="Bob")


@dataclass(frozen=True)
class MfaState:
    confirmed: bool
    codes: int

    @classmethod
    def of(cls, user: User) -> "MfaState":
        return cls(confirmed=has_mfa(user), codes=recovery_codes_left(user))


def set_rates(settings, **rates) -> None:
    settings.ACCOUNTS_RATE_LIMITS = {**settings.ACCOUNTS_RATE_LIMITS, **rates}


def pending_client(email: str = ALICE, password: str = STRONG_PASSWORD, **defaults) -> Client:
    """A client past the password step: it holds the pending sign-in cookie."""
    client = api_client(**defaults)
    response = login_response(client, email, password)
    assert response.status_code == 202, response.content
    assert client.cookies[PENDING_COOKIE].value
    return client


def verify(client: Client, code):
    return post_json(client, VERIFY_URL, {"code": code}, **csrf_header(client))


def mfa_signed_in(account: MfaAccount, *, steps: int = 0, **defaults) -> tuple[Client, str]:
    """A client signed in with the password and a TOTP code; its access token."""
    client = pending_client(account.user.email, **defaults)
    response = verify(client, account.code(steps))
    assert response.status_code == 200, response.content
    return client, response.json()["access"]


def reauthenticate(access: str, **data):
    return post_json(api_client(), REAUTHENTICATE_URL, data, **bearer(access))


def claims(access: str) -> dict:
    return jwt.decode(access, options={"verify_signature": False})


def wrong_code(secret: str) -> str:
    """A six-digit code that none of the accepted time steps shows."""
    accepted = {totp_code(secret, steps=steps) for steps in (-1, 0, 1)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in accepted)


def assert_sign_in_expired(response) -> None:
    assert_api_error(response, 401, "sign_in_expired")
    cleared = response.cookies[PENDING_COOKIE]
    assert cleared.value == ""
    assert cleared["max-age"] == 0
    assert cleared["path"] == "/api/auth/"
    assert "access" not in response.json()
    assert django_settings.ACCOUNTS_REFRESH_COOKIE_NAME not in response.cookies


def assert_invalid_code(response) -> dict:
    body = assert_api_error(response, 400, "invalid_code", fields={"code"}, exactly=True)
    assert django_settings.ACCOUNTS_REFRESH_COOKIE_NAME not in response.cookies
    return body


def setup_and_confirm(access: str) -> tuple[str, list[str]]:
    """Turn on an authenticator app through the API; its secret and the recovery codes."""
    client = api_client()
    setup = post_json(client, SETUP_URL, **bearer(access))
    assert setup.status_code == 200, setup.content
    secret = setup.json()["secret"]
    confirm = post_json(client, CONFIRM_URL, {"code": totp_code(secret)}, **bearer(access))
    assert confirm.status_code == 200, confirm.content
    return secret, confirm.json()["recovery_codes"]


def events(kind: str, user: User):
    return SecurityEvent.objects.filter(kind=kind, user=user)


def mfa_table_dump() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM mfa_totp")
        return repr(cursor.fetchall())


# --- Status, setup and confirmation ------------------------------------------------------------


def test_status_of_an_account_without_mfa_is_off_with_no_codes(bob):
    response = api_client().get(MFA_URL, **bearer(access_token_for(bob)))
    assert response.status_code == 200
    assert response.json() == {"enabled": False, "totp_enabled": False, "passkeys": 0, "recovery_codes_remaining": 0}


@pytest.mark.parametrize(
    ("method", "url"),
    [("get", MFA_URL), ("post", SETUP_URL), ("post", CONFIRM_URL), ("delete", TOTP_URL), ("post", RECOVERY_CODES_URL)],
)
def test_mfa_management_needs_an_access_token(alice, method, url):
    response = getattr(api_client(), method)(url, {"code": alice.code()}, content_type="application/json")
    assert_api_error(response, 401, "not_authenticated")
    assert MfaState.of(alice.user) == MfaState(confirmed=True, codes=10)


def test_setup_returns_a_new_secret_its_otpauth_uri_and_an_inline_qr_code_but_turns_nothing_on(bob):
    access = access_token_for(bob)
    response = post_json(api_client(), SETUP_URL, **bearer(access))
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"secret", "otpauth_uri", "qr_svg"}
    assert re.fullmatch(r"[A-Z2-7]{32}", body["secret"])
    uri = urlsplit(body["otpauth_uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    query = parse_qs(uri.query)
    assert query["secret"] == [body["secret"]]
    assert query["issuer"] == [django_settings.ACCOUNTS_MFA_TOTP_ISSUER]
    assert BOB.replace("@", "%40") in uri.path or BOB in uri.path
    assert body["qr_svg"].lstrip().startswith("<svg") and "<script" not in body["qr_svg"]
    assert api_client().get(MFA_URL, **bearer(access)).json() == {
        "enabled": False,
        "totp_enabled": False,
        "passkeys": 0,
        "recovery_codes_remaining": 0,
    }
    assert login_response(api_client(), BOB).status_code == 200  # not on until confirmed


def test_confirm_with_a_code_of_the_new_secret_turns_mfa_on_and_returns_ten_recovery_codes(bob):
    access = access_token_for(bob)
    secret = post_json(api_client(), SETUP_URL, **bearer(access)).json()["secret"]
    response = post_json(api_client(), CONFIRM_URL, {"code": totp_code(secret)}, **bearer(access))
    assert response.status_code == 200, response.content
    codes = response.json()["recovery_codes"]
    assert set(response.json()) == {"recovery_codes"}
    assert len(codes) == 10 == len(set(codes))
    assert all(RECOVERY_CODE.fullmatch(code) for code in codes), codes
    assert api_client().get(MFA_URL, **bearer(access)).json() == {
        "enabled": True,
        "totp_enabled": True,
        "passkeys": 0,
        "recovery_codes_remaining": 10,
    }
    assert login_response(api_client(), BOB).status_code == 202


def test_status_never_shows_the_secret_or_a_recovery_code(bob):
    access = access_token_for(bob)
    secret, codes = setup_and_confirm(access)
    response = api_client().get(MFA_URL, **bearer(access))
    assert set(response.json()) == {"enabled", "totp_enabled", "passkeys", "recovery_codes_remaining"}
    text = response.content.decode()
    assert secret not in text and secret.lower() not in text
    assert not any(code in text or code.replace("-", "") in text for code in codes)


def test_confirm_with_a_wrong_code_is_invalid_code_and_leaves_mfa_off(bob):
    access = access_token_for(bob)
    secret = post_json(api_client(), SETUP_URL, **bearer(access)).json()["secret"]
    assert_invalid_code(post_json(api_client(), CONFIRM_URL, {"code": wrong_code(secret)}, **bearer(access)))
    assert not has_mfa(bob)
    assert RecoveryCode.objects.filter(user=bob).count() == 0
    assert not events(SecurityEvent.Kind.MFA_ENABLED, bob).exists()
    # The setup is still there to confirm with the right code.
    assert post_json(api_client(), CONFIRM_URL, {"code": totp_code(secret)}, **bearer(access)).status_code == 200


def test_confirm_without_a_setup_is_totp_setup_required(bob):
    response = post_json(api_client(), CONFIRM_URL, {"code": "123456"}, **bearer(access_token_for(bob)))
    assert_api_error(response, 400, "totp_setup_required")
    assert not has_mfa(bob)


def test_confirming_a_second_time_is_totp_setup_required(bob, clock):
    access = access_token_for(bob)
    secret, _codes = setup_and_confirm(access)
    clock.advance(STEP)
    response = post_json(api_client(), CONFIRM_URL, {"code": totp_code(secret)}, **bearer(access))
    assert_api_error(response, 400, "totp_setup_required")
    assert recovery_codes_left(bob) == 10


@pytest.mark.parametrize("body", [{}, {"code": 123456}, {"code": None}, {"code": "1" * 65}, {"code": ["123456"]}])
def test_confirm_with_malformed_input_is_invalid_input(bob, body):
    access = access_token_for(bob)
    post_json(api_client(), SETUP_URL, **bearer(access))
    response = post_json(api_client(), CONFIRM_URL, body, **bearer(access))
    assert_api_error(response, 400, "invalid_input", fields={"code"}, exactly=True)
    assert not has_mfa(bob)


def test_setting_up_again_replaces_the_unconfirmed_secret(bob):
    access = access_token_for(bob)
    first = post_json(api_client(), SETUP_URL, **bearer(access)).json()["secret"]
    second = post_json(api_client(), SETUP_URL, **bearer(access)).json()["secret"]
    assert first != second
    assert_invalid_code(post_json(api_client(), CONFIRM_URL, {"code": totp_code(first)}, **bearer(access)))
    assert post_json(api_client(), CONFIRM_URL, {"code": totp_code(second)}, **bearer(access)).status_code == 200


def test_setup_while_an_app_is_on_is_totp_already_enabled(alice):
    _client, access = mfa_signed_in(alice)
    response = post_json(api_client(), SETUP_URL, **bearer(access))
    assert_api_error(response, 400, "totp_already_enabled")
    # The app in use is untouched.
    assert api_client().get(MFA_URL, **bearer(access)).json()["totp_enabled"] is True


def test_setup_for_an_mfa_account_without_a_recent_second_factor_is_reauthentication_required(alice):
    response = post_json(api_client(), SETUP_URL, **bearer(access_token_for(alice.user)))
    assert_api_error(response, 403, "reauthentication_required")


def test_setup_without_mfa_needs_a_recent_sign_in_and_a_password_reauthentication_opens_it(
    bob, clock, long_access_tokens
):
    access = login(api_client(), BOB)
    clock.advance(PAST_THE_WINDOW)
    response = post_json(api_client(), SETUP_URL, **bearer(access))
    assert_api_error(response, 403, "reauthentication_required")
    assert not PendingSignIn.objects.exists() and not has_mfa(bob)
    assert reauthenticate(access, password=STRONG_PASSWORD).status_code == 204
    assert post_json(api_client(), SETUP_URL, **bearer(access)).status_code == 200


def test_confirm_after_the_window_is_reauthentication_required(bob, clock, long_access_tokens):
    access = login(api_client(), BOB)
    secret = post_json(api_client(), SETUP_URL, **bearer(access)).json()["secret"]
    clock.advance(PAST_THE_WINDOW)
    response = post_json(api_client(), CONFIRM_URL, {"code": totp_code(secret)}, **bearer(access))
    assert_api_error(response, 403, "reauthentication_required")
    assert not has_mfa(bob)


def test_confirming_makes_the_session_two_factor_for_its_next_access_token(bob):
    client = api_client()
    access = login(client, BOB)
    assert claims(access)["amr"] == ["pwd"]
    setup_and_confirm(access)
    refreshed = refresh(client)
    assert refreshed.status_code == 200, refreshed.content
    assert verified_access_token(refreshed.json()["access"])["amr"] == MFA_AMR
    assert session_of(access).second_factor_at == timezone.now()
    # That second factor is recent: the codes can be replaced at once.
    assert post_json(api_client(), RECOVERY_CODES_URL, **bearer(access)).status_code == 200


# --- Secrets at rest and key rotation ------------------------------------------------------------


def test_the_totp_secret_is_encrypted_at_rest_under_the_first_keys_id(bob):
    access = access_token_for(bob)
    pending_secret = post_json(api_client(), SETUP_URL, **bearer(access)).json()["secret"]
    assert pending_secret not in mfa_table_dump()  # encrypted before it is even confirmed
    secret, _codes = setup_and_confirm(access)
    dump = mfa_table_dump()
    assert secret not in dump and secret.lower() not in dump
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_encrypted, secret_key_id FROM mfa_totp WHERE user_id = %s", [bob.pk])
        ciphertext, key_id = cursor.fetchone()
    assert key_id == key_id_of(django_settings.MFA_ENCRYPTION_KEYS[0])
    assert len(key_id) == 16
    assert Fernet(django_settings.MFA_ENCRYPTION_KEYS[0]).decrypt(ciphertext.encode()).decode() == secret


def test_recovery_codes_are_stored_only_as_keyed_hashes(alice):
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM mfa_recovery_codes")
        dump = repr(cursor.fetchall())
    assert RecoveryCode.objects.filter(user=alice.user).count() == 10
    for code in alice.codes:
        assert code not in dump and code.replace("-", "") not in dump and code.lower() not in dump


def test_a_new_first_key_still_opens_secrets_made_under_the_old_one(alice, settings):
    old = list(settings.MFA_ENCRYPTION_KEYS)
    new = Fernet.generate_key().decode()
    settings.MFA_ENCRYPTION_KEYS = [new, *old]
    _client, access = mfa_signed_in(alice)
    assert claims(access)["amr"] == MFA_AMR


def test_rotate_mfa_keys_reencrypts_every_secret_under_the_first_key(alice, make_user, settings, clock):
    old = list(settings.MFA_ENCRYPTION_KEYS)
    setting_up = make_user(email="setting.up@example.com")
    begin_totp_setup(user=setting_up, session_id=password_session(setting_up))
    turned_off = make_user(email="turned.off@example.com")
    enable_totp(turned_off)
    disable_totp(user=turned_off, session_id=start_mfa_session(turned_off))
    before = dict(TotpAuthenticator.objects.values_list("user_id", "secret_encrypted"))
    new = Fernet.generate_key().decode()
    settings.MFA_ENCRYPTION_KEYS = [new, *old]

    out = io.StringIO()
    call_command("rotate_mfa_keys", stdout=out)

    assert f"Re-encrypted 2 secret(s) under key {key_id_of(new)}." in out.getvalue()
    rows = {row.user_id: row for row in TotpAuthenticator.objects.all()}
    for user in (alice.user, setting_up):
        assert rows[user.pk].secret_key_id == key_id_of(new)
        assert rows[user.pk].secret_encrypted != before[user.pk]
    assert (rows[turned_off.pk].secret_encrypted, rows[turned_off.pk].secret_key_id) == ("", "")
    again = io.StringIO()
    call_command("rotate_mfa_keys", stdout=again)
    assert "Re-encrypted 0 secret(s)" in again.getvalue()
    # The old key can go: codes still sign in with the new one alone.
    settings.MFA_ENCRYPTION_KEYS = [new]
    _client, access = mfa_signed_in(alice)
    assert claims(access)["amr"] == MFA_AMR


def password_session(user: User):
    """A fresh password-only device session of ``user`` (its id), for calling the flows directly."""
    return start_device_session(user=user, ip_address="127.0.0.1", user_agent="pytest").session.pk


def test_a_secret_under_a_removed_key_refuses_its_codes_and_rotation_reports_it(alice, make_user, settings):
    old = list(settings.MFA_ENCRYPTION_KEYS)
    new = Fernet.generate_key().decode()
    settings.MFA_ENCRYPTION_KEYS = [new]  # the old key removed before rotating
    carol = make_user(email="carol@example.com")
    enable_totp(carol)  # a secret under the new key
    client = pending_client()
    assert_invalid_code(verify(client, alice.code()))
    assert events(SecurityEvent.Kind.MFA_FAILED, alice.user).count() == 1

    with pytest.raises(CommandError, match=r"1 secret\(s\) could not be decrypted"):
        call_command("rotate_mfa_keys", stdout=io.StringIO())

    row = TotpAuthenticator.objects.get(user=alice.user)
    assert row.secret_key_id == key_id_of(old[0])  # left as it was, for the key to come back
    settings.MFA_ENCRYPTION_KEYS = [new, *old]
    assert verify(client, alice.code()).status_code == 200


def test_recovery_codes_still_sign_in_when_the_app_secret_cannot_be_decrypted(alice, settings):
    settings.MFA_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    response = verify(pending_client(), alice.codes[0])
    assert response.status_code == 200, response.content


# --- Signing in: the pending sign-in ----------------------------------------------------------------


def test_login_of_an_mfa_account_is_202_with_only_a_pending_cookie(alice):
    client = api_client()
    response = login_response(client)
    assert response.status_code == 202, response.content
    assert response.json() == {"status": "mfa_required", "methods": ["totp", "recovery_code"]}
    cookie = response.cookies[PENDING_COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/api/auth/"
    assert cookie["max-age"] == 600
    assert django_settings.ACCOUNTS_REFRESH_COOKIE_NAME not in response.cookies
    assert refresh_cookie_value(client) is None
    assert not DeviceSession.objects.exists()
    assert not events(SecurityEvent.Kind.SIGN_IN_SUCCEEDED, alice.user).exists()
    (pending,) = PendingSignIn.objects.all()
    assert pending.user == alice.user and pending.amr == ["pwd"] and pending.attempts_left == 5
    assert cookie.value not in pending.handle_hash  # only its hash is stored
    assert pending.expires_at == timezone.now() + timedelta(minutes=10)


def test_login_offers_recovery_codes_even_when_none_is_left(user):
    """Someone who only knows the password must not learn how many recovery codes are left."""
    enable_totp(user)
    response = login_response(api_client())
    assert response.status_code == 202
    assert response.json() == {"status": "mfa_required", "methods": ["totp", "recovery_code"]}


def test_login_of_an_account_without_mfa_signs_in_at_once(bob):
    response = login_response(api_client(), BOB)
    assert response.status_code == 200, response.content
    assert response.json()["access"]
    assert PENDING_COOKIE not in response.cookies or response.cookies[PENDING_COOKIE].value == ""
    assert not PendingSignIn.objects.exists()


def test_verify_with_a_totp_code_signs_in_like_login(alice):
    client = pending_client()
    response = verify(client, alice.code())
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= {"access", "user"}
    assert body["user"]["email"] == ALICE
    assert refresh_cookie_value(client)
    assert client.cookies[PENDING_COOKIE].value == ""  # cleared
    (session,) = DeviceSession.objects.filter(user=alice.user)
    assert session.amr == MFA_AMR and session.second_factor_at == timezone.now()
    assert session_of(body["access"]) == session
    assert api_client().get(ME_URL, **bearer(body["access"])).status_code == 200
    assert events(SecurityEvent.Kind.SIGN_IN_SUCCEEDED, alice.user).count() == 1
    assert PendingSignIn.objects.get().completed_at == timezone.now()


def test_a_totp_code_typed_with_a_space_is_accepted(alice):
    code = alice.code()
    assert verify(pending_client(), f"{code[:3]} {code[3:]}").status_code == 200


def test_access_tokens_carry_amr_and_auth_time(alice, bob, clock):
    password_only = login(api_client(), BOB)
    token = verified_access_token(password_only)
    assert token["amr"] == ["pwd"]
    assert token["auth_time"] == int(START.timestamp())
    client = pending_client()
    clock.advance(timedelta(seconds=20))
    two_factor = verified_access_token(verify(client, alice.code()).json()["access"])
    assert two_factor["amr"] == MFA_AMR
    assert two_factor["auth_time"] == int(START.timestamp()) + 20


def test_a_refreshed_access_token_keeps_the_amr_of_the_sign_in(alice, clock):
    client, _access = mfa_signed_in(alice)
    clock.advance(timedelta(seconds=40))
    response = refresh(client)
    assert response.status_code == 200, response.content
    token = verified_access_token(response.json()["access"])
    assert token["amr"] == MFA_AMR
    assert token["auth_time"] == int(START.timestamp())


def test_the_session_list_shows_how_and_when_each_device_signed_in(alice, clock):
    password_only = access_token_for(alice.user)
    clock.advance(timedelta(seconds=30))
    _client, access = mfa_signed_in(alice)
    rows = {row["id"]: row for row in api_client().get(SESSIONS_URL, **bearer(access)).json()}
    mine = rows[str(session_of(access).pk)]
    other = rows[str(session_of(password_only).pk)]
    assert mine["current"] is True and mine["amr"] == MFA_AMR
    assert datetime.fromisoformat(mine["authenticated_at"].replace("Z", "+00:00")) == START + timedelta(seconds=30)
    assert other["amr"] == ["pwd"]
    assert datetime.fromisoformat(other["authenticated_at"].replace("Z", "+00:00")) == START


def test_verify_without_the_csrf_header_is_403_and_spends_no_attempt(alice):
    client = pending_client()
    response = post_json(client, VERIFY_URL, {"code": alice.code()})
    assert_api_error(response, 403, "csrf_failed")
    assert PendingSignIn.objects.get().attempts_left == 5
    assert not DeviceSession.objects.exists()
    assert verify(client, alice.code()).status_code == 200  # the code was not used up


@pytest.mark.parametrize("cookie", [None, "", "garbage", "x" * 43])
def test_verify_without_a_live_pending_cookie_is_sign_in_expired(alice, cookie):
    client = api_client()
    if cookie is not None:
        client.cookies[PENDING_COOKIE] = cookie
    assert_sign_in_expired(verify(client, alice.code()))
    assert not DeviceSession.objects.exists()
    assert not events(SecurityEvent.Kind.MFA_FAILED, alice.user).exists()


def test_a_pending_cookie_of_a_finished_sign_in_is_refused(alice, clock):
    client = pending_client()
    handle = client.cookies[PENDING_COOKIE].value
    assert verify(client, alice.code()).status_code == 200
    clock.advance(STEP)
    replay = api_client()
    replay.cookies[PENDING_COOKIE] = handle
    assert_sign_in_expired(verify(replay, alice.code()))  # a fresh, unused code
    assert DeviceSession.objects.filter(user=alice.user).count() == 1


@pytest.mark.parametrize("body", [{}, {"code": 123456}, {"code": "9" * 65}])
def test_verify_with_malformed_input_is_invalid_input_and_spends_no_attempt(alice, body):
    client = pending_client()
    response = post_json(client, VERIFY_URL, body, **csrf_header(client))
    assert_api_error(response, 400, "invalid_input", fields={"code"}, exactly=True)
    assert PendingSignIn.objects.get().attempts_left == 5


def test_a_wrong_code_is_invalid_code_and_spends_one_attempt(alice):
    client = pending_client()
    assert_invalid_code(verify(client, wrong_code(alice.secret)))
    assert PendingSignIn.objects.get().attempts_left == 4
    assert client.cookies[PENDING_COOKIE].value  # kept: the person may try again
    assert verify(client, alice.code()).status_code == 200


def test_four_wrong_codes_still_let_the_right_one_in(alice):
    client = pending_client()
    for _ in range(4):
        assert_invalid_code(verify(client, wrong_code(alice.secret)))
    assert verify(client, alice.code()).status_code == 200


def test_after_five_wrong_codes_even_the_right_one_is_sign_in_expired(alice):
    client = pending_client()
    for _ in range(5):
        assert_invalid_code(verify(client, wrong_code(alice.secret)))
    assert_sign_in_expired(verify(client, alice.code()))
    assert not DeviceSession.objects.exists()
    # The right code was not used up by the refused attempt: a new sign-in takes it.
    assert verify(pending_client(), alice.code()).status_code == 200


def test_a_pending_sign_in_still_works_just_before_ten_minutes(alice, clock):
    client = pending_client()
    clock.advance(timedelta(minutes=10) - timedelta(seconds=1))
    assert verify(client, alice.code()).status_code == 200


def test_a_pending_sign_in_expires_after_ten_minutes(alice, clock):
    client = pending_client()
    handle = client.cookies[PENDING_COOKIE].value
    clock.advance(timedelta(minutes=10))
    client.cookies[PENDING_COOKIE] = handle  # a client that ignores the cookie's max-age
    assert_sign_in_expired(verify(client, alice.code()))
    assert not DeviceSession.objects.exists()
    assert not events(SecurityEvent.Kind.MFA_FAILED, alice.user).exists()
    assert verify(pending_client(), alice.code()).status_code == 200  # the code was not used up


def test_a_fourth_pending_sign_in_ends_the_oldest(alice, clock):
    """Each password entry must not bring another five attempts: three may wait at once."""
    clients = []
    for _ in range(4):
        clients.append(pending_client())
        clock.advance(timedelta(seconds=1))
    assert_sign_in_expired(verify(clients[0], alice.code()))
    assert_invalid_code(verify(clients[1], wrong_code(alice.secret)))
    assert verify(clients[3], alice.code()).status_code == 200


def test_the_pending_sign_in_of_a_deactivated_account_is_refused(alice):
    client = pending_client()
    User.objects.filter(pk=alice.user.pk).update(is_active=False)
    assert_sign_in_expired(verify(client, alice.code()))
    assert not DeviceSession.objects.exists()
    assert TotpAuthenticator.objects.get(user=alice.user).last_used_step is None  # the code was not used up


def test_a_code_of_mfa_turned_off_meanwhile_does_not_finish_the_pending_sign_in(alice):
    client = pending_client()
    disable_totp(user=alice.user, session_id=start_mfa_session(alice.user))
    assert_invalid_code(verify(client, alice.codes[0]))
    assert_invalid_code(verify(client, alice.code()))
    assert DeviceSession.objects.filter(user=alice.user).count() == 1  # only the one that turned it off


def start_mfa_session(user: User):
    """A device session that proved its second factor just now (its id)."""
    issued = start_device_session(
        user=user, ip_address="127.0.0.1", user_agent="pytest", amr=MFA_AMR, second_factor=True
    )
    return issued.session.pk


# --- TOTP codes: once each, and a little drift -------------------------------------------------


def test_the_same_totp_code_cannot_sign_in_twice(alice):
    assert verify(pending_client(), alice.code()).status_code == 200
    second = pending_client()
    assert_invalid_code(verify(second, alice.code()))
    assert DeviceSession.objects.filter(user=alice.user).count() == 1


def test_the_code_that_confirmed_the_app_cannot_sign_in(bob):
    access = access_token_for(bob)
    secret = post_json(api_client(), SETUP_URL, **bearer(access)).json()["secret"]
    code = totp_code(secret)
    assert post_json(api_client(), CONFIRM_URL, {"code": code}, **bearer(access)).status_code == 200
    assert_invalid_code(verify(pending_client(BOB), code))


def test_a_code_of_an_earlier_step_is_refused_after_a_later_one_was_used(alice, clock):
    assert verify(pending_client(), alice.code(steps=1)).status_code == 200
    client = pending_client()
    assert_invalid_code(verify(client, alice.code(steps=0)))
    assert_invalid_code(verify(client, alice.code(steps=-1)))
    clock.advance(2 * STEP)
    assert verify(client, alice.code()).status_code == 200


@pytest.mark.parametrize("steps", [-1, 1])
def test_a_code_one_step_off_is_accepted(alice, steps):
    assert verify(pending_client(), alice.code(steps=steps)).status_code == 200


@pytest.mark.parametrize("steps", [-2, 2, -3, 3])
def test_a_code_two_or_more_steps_off_is_refused(alice, steps):
    assert_invalid_code(verify(pending_client(), alice.code(steps=steps)))


def test_a_code_used_to_sign_in_cannot_reauthenticate(alice):
    code = alice.code()
    _client, access = mfa_signed_in(alice)
    assert_invalid_code(reauthenticate(access, code=code))


# --- Recovery codes ------------------------------------------------------------------------------


def test_a_recovery_code_signs_in_once(alice):
    client = pending_client()
    response = verify(client, alice.codes[0])
    assert response.status_code == 200, response.content
    assert verified_access_token(response.json()["access"])["amr"] == MFA_AMR
    assert recovery_codes_left(alice.user) == 9
    assert_invalid_code(verify(pending_client(), alice.codes[0]))
    assert recovery_codes_left(alice.user) == 9


@pytest.mark.parametrize(
    "typed",
    [
        str.lower,
        lambda code: code.replace("-", ""),
        lambda code: code.replace("-", "").lower(),
        lambda code: code.replace("-", " "),
        lambda code: f"  {code} ",
    ],
    ids=["lower-case", "no-hyphens", "lower-case-no-hyphens", "spaces", "padded"],
)
def test_a_recovery_code_is_accepted_as_people_type_it(alice, typed):
    assert verify(pending_client(), typed(alice.codes[3])).status_code == 200
    assert_invalid_code(verify(pending_client(), alice.codes[3]))  # and it is used up


def test_recovery_codes_remaining_counts_down_to_zero(alice, mailoutbox):
    _client, access = mfa_signed_in(alice)
    for used, code in enumerate(alice.codes[:2], start=1):
        assert verify(pending_client(), code).status_code == 200
        assert api_client().get(MFA_URL, **bearer(access)).json() == {
            "enabled": True,
            "totp_enabled": True,
            "passkeys": 0,
            "recovery_codes_remaining": 10 - used,
        }
    assert all(use_recovery_code(user=alice.user, code=normalize_code(code)) for code in alice.codes[2:9])
    assert login_response(api_client()).json()["methods"] == ["totp", "recovery_code"]
    assert verify(pending_client(), alice.codes[9]).status_code == 200
    assert api_client().get(MFA_URL, **bearer(access)).json() == {
        "enabled": True,
        "totp_enabled": True,
        "passkeys": 0,
        "recovery_codes_remaining": 0,
    }
    assert login_response(api_client()).json()["methods"] == ["totp", "recovery_code"]  # nothing told
    assert "No unused codes are left" in mails_to(mailoutbox, ALICE)[-1].body
    assert "8 unused codes left" in mails_to(mailoutbox, ALICE)[-2].body


def test_a_recovery_code_of_another_account_is_refused(alice, make_user):
    _secret, bobs_codes = enable_totp(make_user(email=BOB, name="Bob"), recovery_codes=True)
    assert_invalid_code(verify(pending_client(), bobs_codes[0]))
    assert recovery_codes_left(User.objects.get(email=BOB)) == 10


def test_regenerating_replaces_the_whole_set(alice):
    _client, access = mfa_signed_in(alice)
    response = post_json(api_client(), RECOVERY_CODES_URL, **bearer(access))
    assert response.status_code == 200, response.content
    fresh = response.json()["recovery_codes"]
    assert len(fresh) == 10 and all(RECOVERY_CODE.fullmatch(code) for code in fresh)
    assert not set(fresh) & set(alice.codes)
    assert RecoveryCode.objects.filter(user=alice.user).count() == 10
    for old in alice.codes[:3]:
        assert_invalid_code(verify(pending_client(), old))
    assert verify(pending_client(), fresh[0]).status_code == 200
    assert recovery_codes_left(alice.user) == 9


def test_regenerating_brings_the_count_back_to_ten(alice):
    assert verify(pending_client(), alice.codes[0]).status_code == 200
    _client, access = mfa_signed_in(alice)
    assert post_json(api_client(), RECOVERY_CODES_URL, **bearer(access)).status_code == 200
    assert api_client().get(MFA_URL, **bearer(access)).json()["recovery_codes_remaining"] == 10


def test_regenerating_without_mfa_is_mfa_not_enabled(bob):
    response = post_json(api_client(), RECOVERY_CODES_URL, **bearer(login(api_client(), BOB)))
    assert_api_error(response, 400, "mfa_not_enabled")
    assert not RecoveryCode.objects.exists()


# --- Step-up: managing second factors needs a recent second factor on this device ----------------


def test_a_fresh_two_factor_sign_in_can_turn_mfa_off(alice):
    _client, access = mfa_signed_in(alice)
    response = delete_json(api_client(), TOTP_URL, **bearer(access))
    assert response.status_code == 204, response.content
    assert api_client().get(MFA_URL, **bearer(access)).json() == {
        "enabled": False,
        "totp_enabled": False,
        "passkeys": 0,
        "recovery_codes_remaining": 0,
    }
    assert not RecoveryCode.objects.filter(user=alice.user).exists()
    row = TotpAuthenticator.objects.get(user=alice.user)
    assert (row.secret_encrypted, row.secret_key_id, row.confirmed_at) == ("", "", None)
    assert login_response(api_client()).status_code == 200


def test_turning_mfa_off_when_it_is_off_is_mfa_not_enabled(bob):
    response = delete_json(api_client(), TOTP_URL, **bearer(login(api_client(), BOB)))
    assert_api_error(response, 400, "mfa_not_enabled")
    assert not events(SecurityEvent.Kind.MFA_DISABLED, bob).exists()


def test_after_the_window_managing_mfa_needs_a_code_again(alice, clock, long_access_tokens, mailoutbox):
    _client, access = mfa_signed_in(alice)
    clock.advance(PAST_THE_WINDOW)
    assert_api_error(delete_json(api_client(), TOTP_URL, **bearer(access)), 403, "reauthentication_required")
    assert_api_error(post_json(api_client(), RECOVERY_CODES_URL, **bearer(access)), 403, "reauthentication_required")
    assert has_mfa(alice.user) and recovery_codes_left(alice.user) == 10
    assert mailoutbox == []
    assert reauthenticate(access, code=alice.code()).status_code == 204
    assert delete_json(api_client(), TOTP_URL, **bearer(access)).status_code == 204


def test_the_password_alone_never_opens_mfa_management_of_an_mfa_account(alice, clock, long_access_tokens):
    _client, access = mfa_signed_in(alice)
    clock.advance(PAST_THE_WINDOW)
    assert reauthenticate(access, password=STRONG_PASSWORD).status_code == 204
    assert_api_error(delete_json(api_client(), TOTP_URL, **bearer(access)), 403, "reauthentication_required")
    assert_api_error(post_json(api_client(), RECOVERY_CODES_URL, **bearer(access)), 403, "reauthentication_required")
    assert has_mfa(alice.user)
    # The password did open the window for what it guards: ending another session.
    assert post_json(api_client(), "/api/auth/sessions/revoke-others/", **bearer(access)).status_code == 204


def test_a_password_only_session_of_an_mfa_account_cannot_manage_it_until_a_code(alice):
    access = access_token_for(alice.user)  # signed in just now, but with the password only
    assert_api_error(delete_json(api_client(), TOTP_URL, **bearer(access)), 403, "reauthentication_required")
    assert_api_error(post_json(api_client(), RECOVERY_CODES_URL, **bearer(access)), 403, "reauthentication_required")
    assert reauthenticate(access, code=alice.codes[0]).status_code == 204  # a recovery code counts too
    assert session_of(access).amr == MFA_AMR
    assert post_json(api_client(), RECOVERY_CODES_URL, **bearer(access)).status_code == 200


def test_a_recent_second_factor_on_another_device_does_not_count(alice, clock, long_access_tokens):
    _client, stale = mfa_signed_in(alice)
    clock.advance(PAST_THE_WINDOW)
    _other, fresh = mfa_signed_in(alice)
    assert_api_error(delete_json(api_client(), TOTP_URL, **bearer(stale)), 403, "reauthentication_required")
    assert delete_json(api_client(), TOTP_URL, **bearer(fresh)).status_code == 204


def test_a_password_only_session_of_an_mfa_account_cannot_change_the_password_or_delete_it(alice):
    access = access_token_for(alice.user)
    change = post_json(
        api_client(),
        "/api/auth/password/change/",
        {"current_password": STRONG_PASSWORD, "new_password": "a completely different passphrase"},
        **bearer(access),
    )
    assert_api_error(change, 403, "reauthentication_required")
    deletion = delete_json(api_client(), ME_URL, {"password": STRONG_PASSWORD}, **bearer(access))
    assert_api_error(deletion, 403, "reauthentication_required")
    assert User.objects.get(pk=alice.user.pk).check_password(STRONG_PASSWORD)
    assert reauthenticate(access, code=alice.code()).status_code == 204
    change = post_json(
        api_client(),
        "/api/auth/password/change/",
        {"current_password": STRONG_PASSWORD, "new_password": "a completely different passphrase"},
        **bearer(access),
    )
    assert change.status_code == 204, change.content


def test_reauthenticating_with_a_wrong_code_is_invalid_code_and_opens_nothing(alice, clock, long_access_tokens):
    _client, access = mfa_signed_in(alice)
    clock.advance(PAST_THE_WINDOW)
    assert_invalid_code(reauthenticate(access, code=wrong_code(alice.secret)))
    assert_invalid_code(reauthenticate(access, code="ABCD-EFGH-JKMN"))
    assert_api_error(delete_json(api_client(), TOTP_URL, **bearer(access)), 403, "reauthentication_required")
    assert events(SecurityEvent.Kind.MFA_FAILED, alice.user).count() == 2


def test_reauthenticating_with_a_code_without_mfa_is_invalid_code(bob):
    assert_invalid_code(reauthenticate(login(api_client(), BOB), code="123456"))


def test_reauthenticating_with_both_a_password_and_a_code_is_invalid_input(alice):
    access = access_token_for(alice.user)
    response = reauthenticate(access, password=STRONG_PASSWORD, code=alice.code())
    assert_api_error(response, 400, "invalid_input", fields={"code"}, exactly=True)
    assert session_of(access).second_factor_at is None
    assert reauthenticate(access, code=alice.code()).status_code == 204  # the code was not used up


# --- Audit events and emails ------------------------------------------------------------------------


def test_each_change_and_each_code_leaves_an_audit_event_without_secret_or_code(bob):
    client = api_client()
    access = login(client, BOB)
    secret, codes = setup_and_confirm(access)
    regenerated = post_json(api_client(), RECOVERY_CODES_URL, **bearer(access)).json()["recovery_codes"]
    wrong = wrong_code(secret)
    pending = pending_client(BOB)
    assert_invalid_code(verify(pending, wrong))
    assert verify(pending, regenerated[0]).status_code == 200
    assert delete_json(api_client(), TOTP_URL, **bearer(access)).status_code == 204

    kinds = SecurityEvent.Kind
    for kind in (kinds.MFA_ENABLED, kinds.RECOVERY_CODES_REGENERATED, kinds.MFA_FAILED, kinds.MFA_DISABLED):
        assert events(kind, bob).count() == 1, kind
    assert events(kinds.MFA_ENABLED, bob).get().detail.get("method") == "totp"
    used = events(kinds.RECOVERY_CODE_USED, bob).get()
    assert used.detail.get("remaining") == 9
    assert used.ip_address == "127.0.0.1"
    written = json.dumps(list(SecurityEvent.objects.values("detail", "user_agent", "email_hash")))
    for needle in [secret, secret.lower(), totp_code(secret), wrong, *codes, *regenerated]:
        assert needle not in written and needle.replace("-", "") not in written, needle


def test_the_account_address_is_emailed_on_every_change_and_recovery_code_use(bob, mailoutbox):
    access = login(api_client(), BOB)
    secret, _codes = setup_and_confirm(access)
    regenerated = post_json(api_client(), RECOVERY_CODES_URL, **bearer(access)).json()["recovery_codes"]
    assert verify(pending_client(BOB), regenerated[0]).status_code == 200
    assert delete_json(api_client(), TOTP_URL, **bearer(access)).status_code == 204

    subjects = [message.subject for message in mails_to(mailoutbox, BOB)]
    assert len(subjects) == len(without_device_notices(mailoutbox)) == 4
    assert "Two-factor authentication is on" in subjects[0]
    assert "New recovery codes" in subjects[1]
    assert "A recovery code was used" in subjects[2]
    assert "Two-factor authentication is off" in subjects[3]
    assert "9 unused codes left" in mails_to(mailoutbox, BOB)[2].body
    for message in mailoutbox:
        assert secret not in message.body
        assert not any(code in message.body or code.replace("-", "") in message.body for code in regenerated)


def test_no_email_for_a_totp_sign_in_or_a_refused_change(alice, mailoutbox):
    client = pending_client()
    assert_invalid_code(verify(client, wrong_code(alice.secret)))
    assert verify(client, alice.code()).status_code == 200
    assert_api_error(
        delete_json(api_client(), TOTP_URL, **bearer(access_token_for(alice.user))), 403, "reauthentication_required"
    )
    assert mailoutbox == []


def test_turning_mfa_on_retires_an_unused_password_reset_link(bob):
    access = login(api_client(), BOB)
    link = issue_token(model=PasswordResetToken, user=bob, lifetime_seconds=3600)
    setup_and_confirm(access)
    with pytest.raises(TokenInvalid):
        reset_password(token=link, password="an intruder's new passphrase")
    assert User.objects.get(pk=bob.pk).check_password(STRONG_PASSWORD)


# --- Nothing to learn from the answers ---------------------------------------------------------------


def test_a_wrong_password_of_an_mfa_account_answers_like_any_other(alice, bob):
    answers = [login_response(api_client(), email, WRONG_PASSWORD) for email in (ALICE, BOB, NOBODY)]
    assert [answer.status_code for answer in answers] == [401, 401, 401]
    assert answers[0].json() == answers[1].json() == answers[2].json()
    assert answers[0].json()["code"] == "invalid_credentials"
    assert {tuple(sorted(answer.cookies)) for answer in answers} == {()}
    assert not PendingSignIn.objects.exists()


def test_invalid_code_is_the_same_answer_for_every_kind_of_wrong_code(alice):
    assert verify(pending_client(), alice.codes[0]).status_code == 200  # used up
    assert verify(pending_client(), alice.code()).status_code == 200  # this step used up
    client = pending_client()
    attempts = {
        "wrong": wrong_code(alice.secret),
        "replayed": alice.code(),
        "recovery-shaped garbage": "ABCD-EFGH-JKMN",
        "used recovery code": alice.codes[0],
        "no shape at all": "hello?",
    }
    bodies = {}
    for name, code in attempts.items():
        response = verify(client if len(bodies) < 4 else pending_client(), code)
        bodies[name] = assert_invalid_code(response)
    assert len({json.dumps(body, sort_keys=True) for body in bodies.values()}) == 1, bodies


# --- Rate limits ---------------------------------------------------------------------------------------


def test_wrong_codes_across_pending_sign_ins_hit_the_account_limit(alice, clock):
    """The default: ten wrong codes per account in 15 minutes, whichever pending sign-in they came with."""
    for _ in range(2):
        client = pending_client()
        for _ in range(5):
            assert_invalid_code(verify(client, wrong_code(alice.secret)))
    limited = verify(pending_client(), alice.code())
    assert_api_error(limited, 429, "rate_limited")
    assert 1 <= int(limited["Retry-After"]) <= 15 * 60 + 1
    assert not DeviceSession.objects.exists()
    assert SecurityEvent.objects.filter(
        kind=SecurityEvent.Kind.RATE_LIMITED, detail__limit="mfa_codes_per_account"
    ).exists()
    # Once the window has passed, the account gets in again.
    clock.advance(timedelta(minutes=15, seconds=1))
    assert verify(pending_client(), alice.code()).status_code == 200


def test_wrong_reauthentication_codes_count_against_the_same_account_limit(alice, settings):
    set_rates(settings, mfa_codes_per_account="3/15m")
    access = access_token_for(alice.user)
    for _ in range(2):
        assert_invalid_code(reauthenticate(access, code=wrong_code(alice.secret)))
    client = pending_client()
    assert_invalid_code(verify(client, wrong_code(alice.secret)))
    assert_api_error(verify(client, alice.code()), 429, "rate_limited")
    assert_api_error(reauthenticate(access, code=alice.code()), 429, "rate_limited")


def test_the_account_limit_holds_even_for_the_right_code_and_leaves_other_accounts_alone(alice, make_user, settings):
    set_rates(settings, mfa_codes_per_account="2/15m")
    carol = make_user(email="carol@example.com")
    carols_secret = enable_totp(carol)
    client = pending_client()
    for _ in range(2):
        assert_invalid_code(verify(client, wrong_code(alice.secret)))
    assert_api_error(verify(client, alice.code()), 429, "rate_limited")
    assert verify(pending_client("carol@example.com"), totp_code(carols_secret)).status_code == 200


def test_wrong_codes_from_one_ip_hit_its_limit_for_every_account(alice, make_user, settings):
    set_rates(settings, mfa_codes_per_ip="4/10m")
    carol = make_user(email="carol@example.com")
    carols_secret = enable_totp(carol)
    for _ in range(2):
        assert_invalid_code(verify(pending_client(), wrong_code(alice.secret)))
        assert_invalid_code(verify(pending_client("carol@example.com"), wrong_code(carols_secret)))
    limited = verify(pending_client("carol@example.com"), totp_code(carols_secret))
    assert_api_error(limited, 429, "rate_limited")
    assert SecurityEvent.objects.filter(kind=SecurityEvent.Kind.RATE_LIMITED, detail__limit="mfa_codes_per_ip").exists()
    # Another network is not held back.
    elsewhere = pending_client("carol@example.com", REMOTE_ADDR=OTHER_IP)
    assert verify(elsewhere, totp_code(carols_secret)).status_code == 200


def test_right_codes_do_not_use_up_the_account_limit(alice, settings):
    set_rates(settings, mfa_codes_per_account="2/15m")
    for steps in (-1, 0, 1):  # three right codes, each of a later step, at one instant
        mfa_signed_in(alice, steps=steps)
    assert DeviceSession.objects.filter(user=alice.user).count() == 3
    client = pending_client()
    for _ in range(2):
        assert_invalid_code(verify(client, wrong_code(alice.secret)))
    assert_api_error(verify(pending_client(), alice.code(steps=1)), 429, "rate_limited")


def test_the_daily_account_limit_outlasts_the_short_window(alice, settings, clock):
    set_rates(settings, mfa_codes_per_account="100/15m", mfa_codes_per_account_per_day="4/d")
    with_window_left(clock, f"user:{alice.user.pk}", period=24 * 60 * 60, needed=timedelta(minutes=20))
    client = pending_client()
    for _ in range(4):
        assert_invalid_code(verify(client, wrong_code(alice.secret)))
    assert_api_error(verify(client, alice.code()), 429, "rate_limited")
    clock.advance(timedelta(minutes=16))
    assert_api_error(verify(pending_client(), alice.code()), 429, "rate_limited")
    assert SecurityEvent.objects.filter(
        kind=SecurityEvent.Kind.RATE_LIMITED, detail__limit="mfa_codes_per_account_per_day"
    ).exists()
    clock.advance(timedelta(days=1))
    assert verify(pending_client(), alice.code()).status_code == 200


def with_window_left(clock, key: str, *, period: int, needed: timedelta) -> None:
    """Move the clock on, if need be, so that the fixed rate-limit window of ``key`` (django-ratelimit
    offsets each key's windows) has at least ``needed`` left: a test spanning ``needed`` then stays in it."""
    left = django_ratelimit.core._get_window(key, period) - time.time()
    if left < needed.total_seconds():
        clock.advance(timedelta(seconds=left + 1))


@pytest.mark.parametrize("limit_name", ["mfa_codes_per_account", "mfa_codes_per_account_per_day", "mfa_codes_per_ip"])
def test_codes_are_refused_when_a_rate_limit_counter_is_unreachable(alice, monkeypatch, limit_name):
    counted = rate_limits._usage

    def usage(limit, key, *, increment):
        return None if limit.name == limit_name else counted(limit, key, increment=increment)

    monkeypatch.setattr(rate_limits, "_usage", usage)
    client = pending_client()
    assert_api_error(verify(client, alice.code()), 429, "rate_limited")
    assert_api_error(reauthenticate(access_token_for(alice.user), code=alice.code()), 429, "rate_limited")
    assert not DeviceSession.objects.filter(second_factor_at__isnull=False).exists()
    monkeypatch.undo()
    assert verify(client, alice.code()).status_code == 200  # the code was never used up


def test_the_password_step_goes_ahead_without_counters_but_the_code_step_does_not(alice, monkeypatch):
    def unreachable(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr("accounts.rate_limits.get_usage", unreachable)
    monkeypatch.setattr("accounts.rate_limits._redis_usage", unreachable)
    client = pending_client()
    assert_api_error(verify(client, alice.codes[0]), 429, "rate_limited")
    assert recovery_codes_left(alice.user) == 10


# --- Races on PostgreSQL ---------------------------------------------------------------------------

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL row locks; runs in CI's PostgreSQL pass"
)
ROUNDS = 8
OPEN_AT_ONCE = 3  # pending sign-ins one account may have open at once


def racing(test):
    """A test of concurrent requests: PostgreSQL only, with committed data every thread can see."""
    return on_postgresql(pytest.mark.django_db(transaction=True)(test))


@pytest.fixture
def no_limits(settings):
    set_rates(
        settings,
        mfa_codes_per_account="100000/15m",
        mfa_codes_per_account_per_day="100000/d",
        mfa_codes_per_ip="100000/10m",
    )


def outcome_names(outcomes) -> list[str]:
    names = []
    for outcome in outcomes:
        if outcome.error is None:
            names.append("won")
        elif isinstance(outcome.error, InvalidCode):
            names.append("invalid_code")
        elif isinstance(outcome.error, PendingSignInInvalid):
            names.append("sign_in_expired")
        elif isinstance(outcome.error, TotpSetupRequired):
            names.append("totp_setup_required")
        else:
            raise outcome.error
    return names


def open_pending_sign_ins(user: User, clock) -> list[str]:
    """As many pending sign-ins as may be open at once, a second apart (the oldest ends first)."""
    handles = []
    for _ in range(OPEN_AT_ONCE):
        clock.advance(timedelta(seconds=1))
        handles.append(start_pending_sign_in(user=user, amr=["pwd"]))
    return handles


def finish(handle: str, code: str):
    return functools.partial(complete_second_step, handle=handle, code=code, client=ClientInfo())


@racing
def test_one_totp_code_on_several_pending_sign_ins_at_once_signs_in_once(alice, clock, no_limits):
    for _ in range(ROUNDS):
        clock.advance(STEP)
        handles = open_pending_sign_ins(alice.user, clock)
        outcomes = run_at_once([finish(handle, alice.code()) for handle in handles])
        assert sorted(outcome_names(outcomes)) == ["invalid_code"] * (OPEN_AT_ONCE - 1) + ["won"], outcomes
        (won,) = [outcome.value for outcome in outcomes if outcome.error is None]
        assert isinstance(won, SignedIn) and won.amr == MFA_AMR


@racing
def test_one_totp_code_proved_twice_at_once_is_accepted_once(alice, clock, no_limits):
    for _ in range(ROUNDS):
        clock.advance(STEP)
        code = alice.code()
        prove = functools.partial(prove_second_factor, user=alice.user, code=code)
        outcomes = run_at_once([prove, prove])
        assert sorted(outcome_names(outcomes)) == ["invalid_code", "won"], outcomes
        assert [outcome.value for outcome in outcomes if outcome.error is None] == [Method.TOTP]


@racing
def test_concurrent_codes_on_one_pending_sign_in_get_five_attempts_in_all(alice, no_limits):
    for _ in range(ROUNDS // 2):
        handle = start_pending_sign_in(user=alice.user, amr=["pwd"])
        outcomes = run_at_once([finish(handle, wrong_code(alice.secret)) for _ in range(12)])
        assert sorted(outcome_names(outcomes)) == ["invalid_code"] * 5 + ["sign_in_expired"] * 7, outcomes
        assert PendingSignIn.objects.get(handle_hash__isnull=False, attempts_left=0, completed_at=None)
        PendingSignIn.objects.all().delete()
    assert events(SecurityEvent.Kind.MFA_FAILED, alice.user).count() == 5 * (ROUNDS // 2)


@racing
def test_one_recovery_code_on_several_pending_sign_ins_at_once_signs_in_once(alice, clock, no_limits, mailoutbox):
    for code in alice.codes[:ROUNDS]:
        handles = open_pending_sign_ins(alice.user, clock)
        outcomes = run_at_once([finish(handle, code) for handle in handles])
        assert sorted(outcome_names(outcomes)) == ["invalid_code"] * (OPEN_AT_ONCE - 1) + ["won"], outcomes
    assert recovery_codes_left(alice.user) == 10 - ROUNDS
    assert events(SecurityEvent.Kind.RECOVERY_CODE_USED, alice.user).count() == ROUNDS
    assert len(mails_to(mailoutbox, ALICE)) == ROUNDS


@racing
def test_one_pending_cookie_and_code_sent_by_five_clients_at_once_signs_in_once(alice, no_limits):
    first = pending_client()
    handle = first.cookies[PENDING_COOKIE].value
    csrf = csrf_header(first)
    clients = []
    for _ in range(5):
        client = api_client()
        client.cookies["csrftoken"] = first.cookies["csrftoken"].value
        client.cookies[PENDING_COOKIE] = handle
        clients.append(client)
    code = alice.code()
    outcomes = run_at_once(
        [functools.partial(post_json, client, VERIFY_URL, {"code": code}, **csrf) for client in clients]
    )
    assert [outcome.error for outcome in outcomes] == [None] * 5
    statuses = sorted(outcome.value.status_code for outcome in outcomes)
    # The others were refused: the code used (400), or, arriving after the winner, the sign-in finished (401).
    assert statuses[0] == 200 and set(statuses[1:]) <= {400, 401}, [outcome.value.content for outcome in outcomes]
    assert DeviceSession.objects.filter(user=alice.user).count() == 1


@racing
def test_wrong_codes_sent_at_once_with_one_pending_cookie_get_400_or_401_never_an_error(alice, no_limits):
    first = pending_client()
    csrf = csrf_header(first)
    clients = []
    for _ in range(10):
        client = api_client()
        client.cookies["csrftoken"] = first.cookies["csrftoken"].value
        client.cookies[PENDING_COOKIE] = first.cookies[PENDING_COOKIE].value
        clients.append(client)
    wrong = wrong_code(alice.secret)
    outcomes = run_at_once(
        [functools.partial(post_json, client, VERIFY_URL, {"code": wrong}, **csrf) for client in clients]
    )
    assert [outcome.error for outcome in outcomes] == [None] * 10
    statuses = sorted(outcome.value.status_code for outcome in outcomes)
    assert statuses == [400] * 5 + [401] * 5, statuses
    assert PendingSignIn.objects.get().attempts_left == 0


@racing
def test_one_pending_sign_in_finished_with_two_good_codes_at_once_opens_one_session(alice, clock, no_limits):
    for round_ in range(ROUNDS):
        clock.advance(STEP)
        handle = start_pending_sign_in(user=alice.user, amr=["pwd"])
        outcomes = run_at_once([finish(handle, alice.code()), finish(handle, alice.codes[round_])])
        assert sorted(outcome_names(outcomes)) == ["sign_in_expired", "won"], outcomes
    assert PendingSignIn.objects.filter(completed_at__isnull=False).count() == ROUNDS


@racing
def test_confirming_one_setup_twice_at_once_turns_it_on_once(make_user, clock):
    for round_ in range(ROUNDS):
        person = make_user(email=f"racer{round_}@example.com")
        session_id = password_session(person)
        secret = begin_totp_setup(user=person, session_id=session_id).secret
        confirm = [
            functools.partial(confirm_totp, user=person, code=totp_code(secret, steps=steps), session_id=session_id)
            for steps in (0, 1)
        ]
        outcomes = run_at_once(confirm)
        names = outcome_names(outcomes)
        assert names.count("won") == 1 and set(names) <= {"won", "invalid_code", "totp_setup_required"}, outcomes
        (codes,) = [outcome.value for outcome in outcomes if outcome.error is None]
        assert RecoveryCode.objects.filter(user=person).count() == 10
        assert all(prove_second_factor(user=person, code=code) is Method.RECOVERY_CODE for code in codes[:2])
        assert events(SecurityEvent.Kind.MFA_ENABLED, person).count() == 1


@racing
def test_turning_mfa_off_while_regenerating_codes_leaves_no_code_behind(make_user):
    for round_ in range(ROUNDS):
        person = make_user(email=f"racer{round_}@example.com")
        enable_totp(person, recovery_codes=True)
        session_id = start_mfa_session(person)
        outcomes = run_at_once(
            [
                functools.partial(disable_totp, user=person, session_id=session_id),
                functools.partial(regenerate_recovery_codes, user=person, session_id=session_id),
            ]
        )
        assert outcomes[0].error is None, outcomes
        assert outcomes[1].error is None or isinstance(outcomes[1].error, MfaNotEnabled), outcomes
        assert not has_mfa(person)
        assert RecoveryCode.objects.filter(user=person).count() == 0
