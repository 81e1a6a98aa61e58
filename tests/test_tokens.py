"""Emailed one-time tokens: shape, hashed storage, expiry, single use and invalidation."""

import base64
import hashlib
import string
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from accounts.exceptions import TokenExpired, TokenInvalid, TokenUsed
from accounts.flows.email_tokens import find_redeemable_token, issue_token, mark_token_used
from accounts.flows.password_reset import check_password_reset_token, request_password_reset, reset_password
from accounts.flows.passwords import set_new_password
from accounts.flows.security_reset import security_reset
from accounts.flows.verification import Verifier, check_verification_token, send_verification_email, verify_email
from accounts.models import EmailVerificationToken, PasswordResetToken
from accounts.tokens import generate_token, hash_token, is_well_formed, token_matches
from tests.support.accounts import STRONG_PASSWORD
from tests.support.mail import token_in

NEW_PASSWORD = "a completely different passphrase"
# Verifying an account created here (not by a sign-up in this client) needs its password.
KNOWS_THE_PASSWORD = Verifier(password=STRONG_PASSWORD)
URLSAFE = set(string.ascii_letters + string.digits + "-_")
START = datetime(2030, 1, 15, 12, 0, 0, tzinfo=UTC)


def issue_reset(user, mailoutbox) -> str:
    request_password_reset(email=user.email)
    return token_in(mailoutbox[-1], "/password/reset/")


def issue_verification(user, mailoutbox) -> str:
    send_verification_email(user=user)
    return token_in(mailoutbox[-1], "/verify-email/")


KINDS = {
    "reset": {
        "issue": issue_reset,
        "check": lambda token: check_password_reset_token(token=token),
        "model": PasswordResetToken,
        "table": "password_reset_tokens",
        "setting": "ACCOUNTS_PASSWORD_RESET_TIMEOUT",
        "verified": True,
    },
    "verification": {
        "issue": issue_verification,
        "check": lambda token: check_verification_token(token=token),
        "model": EmailVerificationToken,
        "table": "email_verification_tokens",
        "setting": "ACCOUNTS_EMAIL_VERIFICATION_TIMEOUT",
        "verified": False,
    },
}


@pytest.fixture(params=sorted(KINDS))
def kind(request):
    return KINDS[request.param]


@pytest.fixture
def kind_user(kind, make_user):
    return make_user(verified=kind["verified"])


# --- accounts.tokens unit tests ------------------------------------------------


def test_generate_token_is_43_urlsafe_chars_encoding_256_bits():
    token = generate_token()
    assert len(token) == 43
    assert set(token) <= URLSAFE
    assert len(base64.urlsafe_b64decode(token + "=")) == 32  # 256 random bits, >= 128


def test_generate_token_never_repeats():
    tokens = {generate_token() for _ in range(2000)}
    assert len(tokens) == 2000


def test_generated_tokens_are_well_formed():
    assert all(is_well_formed(generate_token()) for _ in range(200))


def test_hash_token_is_sha256_hex_digest():
    token = generate_token()
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert len(hash_token(token)) == 64


def test_hash_token_differs_for_different_tokens():
    token = generate_token()
    other = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert hash_token(token) != hash_token(other)


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        "abc",
        "A" * 42,
        "A" * 44,
        "A" * 200,
        "A" * 42 + "+",
        "A" * 42 + "/",
        "A" * 42 + "=",
        "A" * 42 + " ",
        "A" * 42 + ".",
        " " + "A" * 42,
        "A" * 42 + "\n",
        "é" * 43,
        "A" * 21 + "\x00" + "A" * 21,
    ],
    ids=lambda value: f"len{len(value)}-{value[-1:]!r}" if value else "empty",
)
def test_is_well_formed_rejects_wrong_length_or_characters(candidate):
    assert is_well_formed(candidate) is False


@pytest.mark.parametrize("candidate", [None, 123, 1.5, b"A" * 43, ["A" * 43], {"token": "A" * 43}])
def test_is_well_formed_rejects_non_strings(candidate):
    assert is_well_formed(candidate) is False


def test_is_well_formed_accepts_any_43_urlsafe_chars():
    assert is_well_formed("-_" + "a" * 20 + "Z" * 20 + "9") is True


def test_token_matches_its_own_hash():
    token = generate_token()
    assert token_matches(token, hash_token(token)) is True


def test_token_does_not_match_another_tokens_hash():
    assert token_matches(generate_token(), hash_token(generate_token())) is False


def test_token_with_one_character_changed_does_not_match():
    token = generate_token()
    tampered = ("B" if token[0] == "A" else "A") + token[1:]
    assert token_matches(tampered, hash_token(token)) is False


def test_token_does_not_match_its_raw_value_as_stored_hash():
    token = generate_token()
    assert token_matches(token, token) is False


# --- storage ---------------------------------------------------------------------


def test_emailed_token_is_43_chars_and_well_formed(kind, kind_user, mailoutbox):
    token = kind["issue"](kind_user, mailoutbox)
    assert len(token) == 43
    assert is_well_formed(token)


def test_token_stored_only_as_sha256_hash(kind, kind_user, mailoutbox):
    token = kind["issue"](kind_user, mailoutbox)
    row = kind["model"].objects.get(user=kind_user)
    assert row.token_hash == hashlib.sha256(token.encode("ascii")).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {kind['table']}")  # noqa: S608 (fixed table names)
        rows = cursor.fetchall()
    assert len(rows) == 1
    for value in rows[0]:
        assert token not in str(value)
        assert token.encode() not in (value if isinstance(value, bytes) else b"")


def test_each_issue_creates_a_different_token(kind, kind_user, mailoutbox):
    first = kind["issue"](kind_user, mailoutbox)
    second = kind["issue"](kind_user, mailoutbox)
    assert first != second


# --- expiry ------------------------------------------------------------------------


def test_default_lifetimes_are_one_hour_and_a_day(settings):
    assert settings.ACCOUNTS_PASSWORD_RESET_TIMEOUT == 60 * 60
    assert settings.ACCOUNTS_EMAIL_VERIFICATION_TIMEOUT == 24 * 60 * 60


def test_expires_at_is_issue_time_plus_configured_lifetime(kind, kind_user, mailoutbox, settings):
    lifetime = getattr(settings, kind["setting"])
    with time_machine.travel(START, tick=False):
        kind["issue"](kind_user, mailoutbox)
    row = kind["model"].objects.get(user=kind_user)
    assert row.expires_at == START + timedelta(seconds=lifetime)


def test_token_valid_one_second_before_expiry(kind, kind_user, mailoutbox, settings):
    lifetime = getattr(settings, kind["setting"])
    with time_machine.travel(START, tick=False):
        token = kind["issue"](kind_user, mailoutbox)
    with time_machine.travel(START + timedelta(seconds=lifetime - 1), tick=False):
        assert kind["check"](token).user == kind_user


def test_token_expired_at_expiry(kind, kind_user, mailoutbox, settings):
    lifetime = getattr(settings, kind["setting"])
    with time_machine.travel(START, tick=False):
        token = kind["issue"](kind_user, mailoutbox)
    with time_machine.travel(START + timedelta(seconds=lifetime), tick=False), pytest.raises(TokenExpired) as excinfo:
        kind["check"](token)
    assert excinfo.value.code == "token_expired"


def test_token_expired_long_after_expiry(kind, kind_user, mailoutbox, settings):
    lifetime = getattr(settings, kind["setting"])
    with time_machine.travel(START, tick=False):
        token = kind["issue"](kind_user, mailoutbox)
    with time_machine.travel(START + timedelta(seconds=lifetime, days=30), tick=False), pytest.raises(TokenExpired):
        kind["check"](token)


def test_changing_the_setting_changes_the_lifetime(kind, kind_user, mailoutbox, settings):
    setattr(settings, kind["setting"], 600)
    with time_machine.travel(START, tick=False):
        token = kind["issue"](kind_user, mailoutbox)
    with time_machine.travel(START + timedelta(seconds=599), tick=False):
        kind["check"](token)
    with time_machine.travel(START + timedelta(seconds=600), tick=False), pytest.raises(TokenExpired):
        kind["check"](token)


def test_reset_email_states_the_configured_lifetime(make_user, mailoutbox, settings):
    settings.ACCOUNTS_PASSWORD_RESET_TIMEOUT = 30 * 60
    request_password_reset(email=make_user().email)
    assert "30 minutes" in mailoutbox[0].body


def test_verification_email_states_the_configured_lifetime(make_user, mailoutbox, settings):
    settings.ACCOUNTS_EMAIL_VERIFICATION_TIMEOUT = 48 * 3600
    send_verification_email(user=make_user(verified=False))
    assert "48 hours" in mailoutbox[0].body


def test_expired_reset_token_cannot_reset_password(make_user, mailoutbox, password):
    user = make_user()
    with time_machine.travel(START, tick=False):
        token = issue_reset(user, mailoutbox)
    with time_machine.travel(START + timedelta(hours=1), tick=False), pytest.raises(TokenExpired):
        reset_password(token=token, password=NEW_PASSWORD)
    user.refresh_from_db()
    assert user.check_password(password)


def test_expired_verification_token_cannot_verify(make_user, mailoutbox):
    user = make_user(verified=False)
    with time_machine.travel(START, tick=False):
        token = issue_verification(user, mailoutbox)
    with time_machine.travel(START + timedelta(hours=24), tick=False), pytest.raises(TokenExpired):
        verify_email(token=token, verifier=KNOWS_THE_PASSWORD)
    user.refresh_from_db()
    assert user.email_verified_at is None


# --- single use ------------------------------------------------------------------


def test_verification_token_is_single_use(make_user, mailoutbox):
    user = make_user(verified=False)
    token = issue_verification(user, mailoutbox)
    assert verify_email(token=token, verifier=KNOWS_THE_PASSWORD) == user
    with pytest.raises(TokenUsed) as excinfo:
        verify_email(token=token, verifier=KNOWS_THE_PASSWORD)
    assert excinfo.value.code == "token_used"


def test_reset_token_is_single_use(make_user, mailoutbox):
    user = make_user()
    token = issue_reset(user, mailoutbox)
    reset_password(token=token, password=NEW_PASSWORD)
    with pytest.raises(TokenUsed) as excinfo:
        reset_password(token=token, password="yet another long passphrase")
    assert excinfo.value.code == "token_used"
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_used_token_is_marked_with_time_of_use(make_user, mailoutbox):
    user = make_user(verified=False)
    with time_machine.travel(START, tick=False):
        token = issue_verification(user, mailoutbox)
    with time_machine.travel(START + timedelta(minutes=5), tick=False):
        verify_email(token=token, verifier=KNOWS_THE_PASSWORD)
    assert EmailVerificationToken.objects.get(user=user).used_at == START + timedelta(minutes=5)


def test_two_racing_redemptions_of_one_token_only_one_wins(kind, kind_user, mailoutbox):
    token = kind["issue"](kind_user, mailoutbox)
    first = kind["check"](token)
    second = kind["check"](token)  # both loaded before either is used
    mark_token_used(first)
    with pytest.raises(TokenUsed):
        mark_token_used(second)


def test_checking_a_token_does_not_use_it(kind, kind_user, mailoutbox):
    token = kind["issue"](kind_user, mailoutbox)
    for _ in range(3):
        kind["check"](token)
    assert kind["model"].objects.get(user=kind_user).used_at is None


# --- invalidation ------------------------------------------------------------------


def test_new_token_invalidates_previous_unused_one(kind, kind_user, mailoutbox):
    old = kind["issue"](kind_user, mailoutbox)
    new = kind["issue"](kind_user, mailoutbox)
    with pytest.raises(TokenInvalid) as excinfo:
        kind["check"](old)
    assert excinfo.value.code == "token_invalid"
    assert kind["check"](new).user == kind_user
    assert kind["model"].objects.filter(user=kind_user, used_at__isnull=True).count() == 1


def test_new_token_for_one_user_leaves_other_users_tokens_valid(kind, make_user, mailoutbox):
    alice = make_user(verified=kind["verified"])
    bob = make_user(email="bob@example.com", name="Bob", verified=kind["verified"])
    alice_token = kind["issue"](alice, mailoutbox)
    kind["issue"](bob, mailoutbox)
    assert kind["check"](alice_token).user == alice


def test_new_verification_token_leaves_reset_token_valid(make_user, mailoutbox):
    user = make_user(verified=False)
    reset_token = issue_reset(user, mailoutbox)
    issue_verification(user, mailoutbox)
    assert check_password_reset_token(token=reset_token).user == user


def test_new_reset_token_leaves_verification_token_valid(make_user, mailoutbox):
    user = make_user(verified=False)
    verification_token = issue_verification(user, mailoutbox)
    issue_reset(user, mailoutbox)
    assert check_verification_token(token=verification_token).user == user


def test_a_new_password_and_its_security_reset_invalidate_outstanding_reset_tokens(make_user, mailoutbox):
    user = make_user()
    token = issue_reset(user, mailoutbox)
    set_new_password(user=user, password=NEW_PASSWORD)
    security_reset(user=user, reason="password_changed")
    with pytest.raises(TokenInvalid):
        check_password_reset_token(token=token)
    with pytest.raises(TokenInvalid):
        reset_password(token=token, password="yet another long passphrase")
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_completing_a_reset_invalidates_other_outstanding_reset_tokens(make_user, mailoutbox):
    user = make_user()
    token = issue_reset(user, mailoutbox)
    # A second outstanding token (issued outside the flow, which would retire the first).
    other = generate_token()
    PasswordResetToken.objects.create(
        user=user, token_hash=hash_token(other), expires_at=timezone.now() + timedelta(hours=1)
    )
    check_password_reset_token(token=other)
    reset_password(token=token, password=NEW_PASSWORD)
    with pytest.raises(TokenInvalid):
        check_password_reset_token(token=other)
    assert not PasswordResetToken.objects.filter(user=user, used_at__isnull=True).exists()


def test_set_new_password_leaves_other_users_reset_tokens_valid(make_user, mailoutbox):
    alice = make_user()
    bob = make_user(email="bob@example.com", name="Bob")
    bob_token = issue_reset(bob, mailoutbox)
    set_new_password(user=alice, password=NEW_PASSWORD)
    assert check_password_reset_token(token=bob_token).user == bob


def test_token_of_deactivated_user_is_invalid(kind, kind_user, mailoutbox):
    token = kind["issue"](kind_user, mailoutbox)
    kind_user.is_active = False
    kind_user.save(update_fields=["is_active"])
    with pytest.raises(TokenInvalid):
        kind["check"](token)


def test_token_of_one_kind_is_invalid_as_the_other_kind(make_user, mailoutbox):
    user = make_user(verified=False)
    reset_token = issue_reset(user, mailoutbox)
    verification_token = issue_verification(user, mailoutbox)
    with pytest.raises(TokenInvalid):
        check_verification_token(token=reset_token)
    with pytest.raises(TokenInvalid):
        check_password_reset_token(token=verification_token)


@pytest.mark.parametrize("raw", [None, "", "abc", "A" * 200, 12345, b"bytes"])
def test_find_redeemable_token_rejects_malformed_input(db, raw):
    with pytest.raises(TokenInvalid):
        find_redeemable_token(model=PasswordResetToken, raw_token=raw)


def test_issue_token_returns_raw_token_whose_hash_is_stored(make_user):
    user = make_user()
    raw = issue_token(model=PasswordResetToken, user=user, lifetime_seconds=60)
    assert PasswordResetToken.objects.get(user=user).token_hash == hash_token(raw)
