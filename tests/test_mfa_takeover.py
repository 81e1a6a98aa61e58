"""Two-factor accounts against an intruder who knows the password: what needs the second factor, and races."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.exceptions import InvalidCode, SecondFactorRequired, TotpSetupRequired
from accounts.flows import mfa as mfa_flows
from accounts.flows.account_deletion import delete_account
from accounts.flows.email_change import request_email_change
from accounts.flows.password_change import change_password
from accounts.flows.pending import OPEN_PER_ACCOUNT, start_pending_sign_in
from accounts.flows.second_factor import prove_second_factor, totp_secret_of
from accounts.flows.signin import complete_second_step
from accounts.flows.support import AdminAccess, admin_access
from accounts.models import DeviceSession, PendingSignIn, TotpAuthenticator, User
from accounts.rate_limits import RateLimited
from tests.support.accounts import STRONG_PASSWORD, force_page_login
from tests.support.api import api_client, bearer, delete_json, login_response, post_json
from tests.support.mfa import enable_totp, totp_code
from tests.support.races import run_at_once

pytestmark = pytest.mark.django_db

START = timezone.now().replace(microsecond=0)
NEW_PASSWORD = "an entirely new passphrase 42"
on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL row locks; runs in CI's PostgreSQL pass"
)


def password_session(user) -> DeviceSession:
    """A device session of ``user`` that signed in with the password only (signed in before MFA, or a
    session whose second factor is older than the window)."""
    from accounts.flows.device_sessions import start_device_session

    return start_device_session(user=user, ip_address="198.51.100.7", user_agent="intruder", amr=["pwd"]).session


# --- What changes who controls the account needs the second factor ----------------------------------


@pytest.mark.parametrize(
    "change",
    [
        lambda user, session: request_email_change(
            user=user, password=STRONG_PASSWORD, new_email="intruder@evil.example", session_id=session.pk
        ),
        lambda user, session: change_password(
            user=user, current_password=STRONG_PASSWORD, new_password=NEW_PASSWORD, session_id=session.pk
        ),
        lambda user, session: delete_account(user=user, password=STRONG_PASSWORD, session_id=session.pk),
    ],
    ids=["email change", "password change", "account deletion"],
)
def test_the_password_alone_does_not_change_an_mfa_account(user, change, mailoutbox):
    enable_totp(user)
    session = password_session(user)
    with pytest.raises(SecondFactorRequired):
        change(user, session)
    user.refresh_from_db()
    assert user.email == "alice@example.com"
    assert user.check_password(STRONG_PASSWORD)
    assert mailoutbox == []


def test_a_recent_code_on_the_device_lets_the_owner_change_the_password(user):
    secret = enable_totp(user)
    session = password_session(user)
    from accounts.flows.reauthentication import reauthenticate

    reauthenticate(user=user, session_id=session.pk, code=totp_code(secret))
    change_password(user=user, current_password=STRONG_PASSWORD, new_password=NEW_PASSWORD, session_id=session.pk)
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_a_code_from_another_device_does_not_count_here(user):
    secret = enable_totp(user)
    owner, intruder = password_session(user), password_session(user)
    from accounts.flows.reauthentication import reauthenticate

    reauthenticate(user=user, session_id=owner.pk, code=totp_code(secret))
    with pytest.raises(SecondFactorRequired):
        change_password(user=user, current_password=STRONG_PASSWORD, new_password=NEW_PASSWORD, session_id=intruder.pk)


def test_accounts_without_mfa_change_with_the_password_as_before(user):
    session = password_session(user)
    change_password(user=user, current_password=STRONG_PASSWORD, new_password=NEW_PASSWORD, session_id=session.pk)
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_the_api_answers_403_reauthentication_required_for_an_email_change_without_a_recent_code(user, clock, settings):
    settings.ACCOUNTS_REAUTHENTICATION_WINDOW = 60  # shorter than the access token's life
    secret = enable_totp(user)
    client = api_client()
    assert login_response(client).status_code == 202
    verified = post_json(client, "/api/auth/mfa/verify/", {"code": totp_code(secret)}, **csrf(client))
    access = verified.json()["access"]
    clock.advance(timedelta(minutes=2))  # the sign-in's second factor is no longer recent
    response = post_json(
        client,
        "/api/auth/email/change/",
        {"new_email": "intruder@evil.example", "password": STRONG_PASSWORD},
        **bearer(access),
    )
    assert response.status_code == 403
    assert response.json()["code"] == "reauthentication_required"
    deletion = delete_json(client, "/api/auth/me/", {"password": STRONG_PASSWORD}, **bearer(access))
    assert deletion.status_code == 403
    assert User.objects.filter(pk=user.pk).exists()


def test_the_page_sends_an_email_change_without_a_recent_code_to_enter_one(client, user, clock):
    enable_totp(user)
    force_page_login(client, user, second_factor=True)
    clock.advance(timedelta(minutes=6))
    from tests.support.pages import csrf_in

    page = client.get("/accounts/email/change/")
    response = client.post(
        "/accounts/email/change/",
        {
            "new_email": "intruder@evil.example",
            "password": STRONG_PASSWORD,
            "csrfmiddlewaretoken": csrf_in(page.content.decode()),
        },
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/reauthenticate/?")
    assert "factor=code" in response["Location"]


def csrf(client) -> dict:
    from tests.support.api import csrf_header

    return csrf_header(client)


# --- The admin needs a recent proof of the current factor ------------------------------------------


def test_the_admin_needs_a_second_factor_proven_in_the_last_12_hours(make_user, clock):
    staff = make_user(email="sam@support.example", is_staff=True)
    client = api_client()
    session = force_page_login(client, staff)
    assert admin_access(user=staff, session_id=session.pk) is AdminAccess.ALLOWED
    clock.advance(timedelta(hours=11, minutes=59))
    assert admin_access(user=staff, session_id=session.pk) is AdminAccess.ALLOWED
    clock.advance(timedelta(minutes=2))
    assert admin_access(user=staff, session_id=session.pk) is AdminAccess.PROVE_SECOND_FACTOR
    assert client.get("/admin/").status_code == 302


def test_a_proof_of_a_removed_factor_does_not_open_the_admin_for_its_successor(make_user, clock):
    staff = make_user(email="sam@support.example", is_staff=True)
    session = force_page_login(api_client(), staff)
    clock.advance(timedelta(minutes=1))
    TotpAuthenticator.objects.filter(user=staff).update(confirmed_at=None, secret_encrypted="")
    assert admin_access(user=staff, session_id=session.pk) is AdminAccess.ENROL_MFA
    clock.advance(timedelta(minutes=1))
    enable_totp(staff)  # set up again (by someone holding this session, perhaps)
    assert admin_access(user=staff, session_id=session.pk) is AdminAccess.PROVE_SECOND_FACTOR


def test_the_admin_refuses_an_ended_or_foreign_session(make_user):
    staff = make_user(email="sam@support.example", is_staff=True)
    other = make_user(email="kim@support.example", is_staff=True)
    session = force_page_login(api_client(), other)
    enable_totp(staff)
    assert admin_access(user=staff, session_id=session.pk) is AdminAccess.PROVE_SECOND_FACTOR
    assert admin_access(user=staff, session_id=None) is AdminAccess.PROVE_SECOND_FACTOR
    assert admin_access(user=staff, session_id="not-a-uuid") is AdminAccess.PROVE_SECOND_FACTOR
    assert admin_access(user=make_user(email="bob@example.com"), session_id=session.pk) is AdminAccess.NOT_STAFF


# --- Setup: only the secret the code proved turns on ------------------------------------------------


def test_a_setup_begun_meanwhile_is_not_the_one_a_code_turns_on(user, monkeypatch):
    session = password_session(user)
    mfa_flows.begin_totp_setup(user=user, session_id=session.pk)
    checked = totp_secret_of(TotpAuthenticator.objects.get(user=user))
    real_accept = mfa_flows.accept_totp

    def accept_then_another_setup(**kwargs):
        accepted = real_accept(**kwargs)
        mfa_flows.begin_totp_setup(user=user, session_id=session.pk)  # another tab, just after the check
        return accepted

    monkeypatch.setattr(mfa_flows, "accept_totp", accept_then_another_setup)
    with pytest.raises(TotpSetupRequired):
        mfa_flows.confirm_totp(user=user, code=totp_code(checked), session_id=session.pk)
    row = TotpAuthenticator.objects.get(user=user)
    assert row.confirmed_at is None
    assert totp_secret_of(row) != checked


# --- Limits: codes are counted before they are checked ---------------------------------------------


def test_at_most_three_sign_ins_wait_for_a_code_at_once(user):
    enable_totp(user)
    handles = [start_pending_sign_in(user=user, amr=["pwd"]) for _ in range(OPEN_PER_ACCOUNT + 2)]
    now = timezone.now()
    waiting = PendingSignIn.objects.filter(user=user, completed_at__isnull=True, expires_at__gt=now)
    assert waiting.count() == OPEN_PER_ACCOUNT
    from accounts.exceptions import PendingSignInInvalid
    from accounts.flows.pending import pending_sign_in

    with pytest.raises(PendingSignInInvalid):
        pending_sign_in(handles[0])
    assert pending_sign_in(handles[-1]).user == user


def test_right_codes_are_given_back_and_wrong_ones_stay_counted(user, settings):
    settings.ACCOUNTS_RATE_LIMITS = {
        **settings.ACCOUNTS_RATE_LIMITS,
        "mfa_codes_per_account": "2/15m",
        "mfa_codes_per_ip": "2/10m",
    }
    secret = enable_totp(user)
    assert prove_second_factor(user=user, code=totp_code(secret, steps=-1))
    assert prove_second_factor(user=user, code=totp_code(secret))
    with pytest.raises(InvalidCode):
        prove_second_factor(user=user, code="000000")
    assert prove_second_factor(user=user, code=totp_code(secret, steps=1))  # the owners behind one NAT too
    with pytest.raises(InvalidCode):
        prove_second_factor(user=user, code="000000")
    with pytest.raises(RateLimited):
        prove_second_factor(user=user, code="000000")


def test_a_password_reset_clears_the_wrong_codes_an_intruder_ran_up(user, settings):
    settings.ACCOUNTS_RATE_LIMITS = {**settings.ACCOUNTS_RATE_LIMITS, "mfa_codes_per_account": "2/15m"}
    secret = enable_totp(user)
    for _ in range(2):
        with pytest.raises(InvalidCode):
            prove_second_factor(user=user, code="000000")
    with pytest.raises(RateLimited):
        prove_second_factor(user=user, code=totp_code(secret))  # the owner is kept out
    from accounts.flows.device_sessions import EndReason
    from accounts.flows.security_reset import security_reset

    security_reset(user=user, reason=EndReason.PASSWORD_RESET)
    assert prove_second_factor(user=user, code=totp_code(secret, steps=1))


@pytest.mark.parametrize("code", ["١٢٣٤٥٦", "É", "12345६", "\u0000" * 6, "１２３４５６"])
def test_a_setup_code_in_other_scripts_is_a_wrong_code_not_an_error(user, code):
    session = password_session(user)
    mfa_flows.begin_totp_setup(user=user, session_id=session.pk)
    with pytest.raises(InvalidCode):
        mfa_flows.confirm_totp(user=user, code=code, session_id=session.pk)
    with pytest.raises(InvalidCode):
        prove_second_factor(user=user, code=code)


def test_the_api_answers_a_setup_code_in_other_scripts_with_400(user):
    client = api_client()
    access = login_response(client).json()["access"]
    assert post_json(client, "/api/auth/mfa/totp/setup/", **bearer(access)).status_code == 200
    response = post_json(client, "/api/auth/mfa/totp/confirm/", {"code": "١٢٣٤٥٦"}, **bearer(access))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_code"


# --- An account whose address nobody proved gets no second factor ----------------------------------


def test_an_unverified_account_cannot_set_up_a_second_factor(make_user, settings):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "optional"
    squatter = make_user(email="victim@example.com", verified=False)
    session = password_session(squatter)
    from accounts.exceptions import EmailNotVerified

    with pytest.raises(EmailNotVerified):
        mfa_flows.begin_totp_setup(user=squatter, session_id=session.pk)
    assert not TotpAuthenticator.objects.filter(user=squatter).exists()


def test_proving_the_address_with_a_new_password_removes_a_factor_set_before(make_user):
    squatter_account = make_user(email="victim@example.com", verified=False)
    enable_totp(squatter_account, recovery_codes=True)  # however it got there
    from accounts.flows.second_factor import has_mfa, recovery_codes_left
    from accounts.flows.verification import prove_address

    prove_address(user=squatter_account, password_replaced=True)
    assert not has_mfa(squatter_account)
    assert recovery_codes_left(squatter_account) == 0


def test_proving_the_address_with_the_password_keeps_the_factor(make_user):
    owner = make_user(email="owner@example.com", verified=False)
    enable_totp(owner)
    from accounts.flows.second_factor import has_mfa
    from accounts.flows.verification import prove_address

    prove_address(user=owner, password_replaced=False)
    assert has_mfa(owner)


def test_the_daily_limit_holds_after_the_window_resets(user, settings, clock):
    settings.ACCOUNTS_RATE_LIMITS = {
        **settings.ACCOUNTS_RATE_LIMITS,
        "mfa_codes_per_account": "2/15m",
        "mfa_codes_per_account_per_day": "3/d",
    }
    enable_totp(user)
    for _ in range(2):
        with pytest.raises(InvalidCode):
            prove_second_factor(user=user, code="000000")
    clock.advance(timedelta(minutes=16))
    with pytest.raises(InvalidCode):
        prove_second_factor(user=user, code="000000")
    with pytest.raises(RateLimited):
        prove_second_factor(user=user, code="000000")


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_codes_sent_at_once_on_many_pending_sign_ins_cannot_beat_the_account_limit(make_user, settings):
    settings.ACCOUNTS_RATE_LIMITS = {
        **settings.ACCOUNTS_RATE_LIMITS,
        "mfa_codes_per_account": "4/15m",
        "mfa_codes_per_ip": "1000/10m",
    }
    user = make_user(email="alice@example.com")
    enable_totp(user)
    handles = [start_pending_sign_in(user=user, amr=["pwd"]) for _ in range(OPEN_PER_ACCOUNT)]
    from accounts.client_info import ClientInfo

    calls = [
        lambda handle=handle, n=n: complete_second_step(
            handle=handle, code=f"{n:06d}", client=ClientInfo(ip_address=f"203.0.113.{n}")
        )
        for n in range(12)
        for handle in handles[n % len(handles) : n % len(handles) + 1]
    ]
    outcomes = run_at_once(calls)
    checked = [outcome for outcome in outcomes if isinstance(outcome.error, InvalidCode)]
    limited = [outcome for outcome in outcomes if isinstance(outcome.error, RateLimited)]
    assert len(checked) <= 4, [type(outcome.error).__name__ for outcome in outcomes]
    assert len(checked) + len(limited) + sum(
        1 for outcome in outcomes if type(outcome.error).__name__ == "PendingSignInInvalid"
    ) == len(outcomes)


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_codes_sent_at_once_on_one_pending_sign_in_spend_at_most_its_attempts(make_user, settings):
    settings.ACCOUNTS_RATE_LIMITS = {
        **settings.ACCOUNTS_RATE_LIMITS,
        "mfa_codes_per_account": "1000/15m",
        "mfa_codes_per_ip": "1000/10m",
    }
    user = make_user(email="alice@example.com")
    enable_totp(user)
    handle = start_pending_sign_in(user=user, amr=["pwd"])
    from accounts.client_info import ClientInfo
    from accounts.exceptions import PendingSignInInvalid

    outcomes = run_at_once(
        [lambda n=n: complete_second_step(handle=handle, code=f"{n:06d}", client=ClientInfo()) for n in range(12)]
    )
    errors = [type(outcome.error) for outcome in outcomes]
    assert errors.count(InvalidCode) == 5, errors
    assert errors.count(PendingSignInInvalid) == 7, errors
    assert PendingSignIn.objects.get(user=user).attempts_left == 0


@on_postgresql
def test_a_refreshed_access_token_keeps_the_sessions_methods_on_postgresql(user):
    from accounts.access_tokens import verified_access_token
    from accounts.flows.device_sessions import rotate_refresh_token, start_device_session

    issued = start_device_session(
        user=user, ip_address="127.0.0.1", user_agent="t", amr=["pwd", "otp", "mfa"], second_factor=True
    )
    rotated = rotate_refresh_token(refresh_token=issued.refresh_token, ip_address="127.0.0.1", user_agent="t")
    assert verified_access_token(rotated.access_token)["amr"] == ["pwd", "otp", "mfa"]


def test_a_refreshed_access_token_keeps_the_sessions_methods(user):
    from accounts.access_tokens import verified_access_token
    from accounts.flows.device_sessions import rotate_refresh_token, start_device_session

    issued = start_device_session(user=user, ip_address="127.0.0.1", user_agent="t", amr=["pwd", "otp", "mfa"])
    rotated = rotate_refresh_token(refresh_token=issued.refresh_token, ip_address="127.0.0.1", user_agent="t")
    token = verified_access_token(rotated.access_token)
    assert token["amr"] == ["pwd", "otp", "mfa"]
    assert token["auth_time"] == int(issued.session.authenticated_at.timestamp())


# --- After turning MFA on, the other devices can be signed out -------------------------------------


def test_turning_mfa_on_offers_to_sign_out_the_devices_that_signed_in_with_the_password(client, user):
    from tests.support.pages import csrf_in

    force_page_login(client, user)
    password_session(user)  # another device, signed in before
    page = client.post(
        "/accounts/security/totp/",
        {"start": "1", "csrfmiddlewaretoken": csrf_in(client.get("/accounts/security/").content.decode())},
    )
    assert page.status_code == 302
    secret = totp_secret_of(TotpAuthenticator.objects.get(user=user))
    setup = client.get("/accounts/security/totp/")
    codes_page = client.post(
        "/accounts/security/totp/", {"code": totp_code(secret), "csrfmiddlewaretoken": csrf_in(setup.content.decode())}
    )
    html = codes_page.content.decode()
    assert "1 other device signed in with just your password" in html
    ended = client.post("/accounts/sessions/end-others/", {"csrfmiddlewaretoken": csrf_in(codes_page.content.decode())})
    assert ended.status_code == 302
    assert DeviceSession.objects.live().filter(user=user).count() == 1


def test_with_no_other_device_the_codes_page_offers_nothing_to_sign_out(client, user):
    from tests.support.pages import csrf_in

    force_page_login(client, user)
    client.post(
        "/accounts/security/totp/",
        {"start": "1", "csrfmiddlewaretoken": csrf_in(client.get("/accounts/security/").content.decode())},
    )
    secret = totp_secret_of(TotpAuthenticator.objects.get(user=user))
    setup = client.get("/accounts/security/totp/")
    codes_page = client.post(
        "/accounts/security/totp/", {"code": totp_code(secret), "csrfmiddlewaretoken": csrf_in(setup.content.decode())}
    )
    assert codes_page.status_code == 200
    assert "Sign out all other devices" not in codes_page.content.decode()


def test_the_security_page_tells_an_unverified_account_to_verify_first(client, make_user, settings):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "optional"
    squatter = make_user(email="victim@example.com", verified=False)
    force_page_login(client, squatter)
    from tests.support.pages import csrf_in

    page = client.get("/accounts/security/")
    response = client.post(
        "/accounts/security/totp/", {"start": "1", "csrfmiddlewaretoken": csrf_in(page.content.decode())}
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/security/"
    assert "Verify your email address first" in client.get("/accounts/security/").content.decode()
    assert not TotpAuthenticator.objects.filter(user=squatter).exists()
