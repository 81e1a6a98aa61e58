"""The owner's recovery racing the intruder's pending link, on PostgreSQL: the account's row lock lets one win."""

import functools
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.exceptions import TokenInvalid
from accounts.flows.email_tokens import issue_token
from accounts.flows.password_reset import reset_password
from accounts.flows.verification import Purpose, Verifier, verify_email
from accounts.models import DeviceSession, EmailVerificationToken, PasswordResetToken, User
from tests.support.accounts import STRONG_PASSWORD
from tests.support.races import run_at_once

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs PostgreSQL row locks; runs in CI's PostgreSQL pass"
    ),
    pytest.mark.django_db(transaction=True),
]

ROUNDS = 15
INTRUDER = "intruder@evil.example"


def race(*calls) -> list:
    """Run the calls at once, each on its own thread and database connection; their outcomes in order."""
    return [
        "won" if outcome.error is None else "refused" if isinstance(outcome.error, TokenInvalid) else outcome.error
        for outcome in run_at_once(calls)
    ]


def test_a_password_reset_and_the_intruders_change_confirmation_never_both_win(make_user):
    for round_ in range(ROUNDS):
        owner = make_user(email=f"owner{round_}@example.com")
        asking = DeviceSession.objects.create(
            user=owner, expires_at=timezone.now() + timedelta(days=1), refresh_token_hash=f"{round_:064x}"
        )
        change = issue_token(
            model=EmailVerificationToken,
            user=owner,
            lifetime_seconds=3600,
            email=f"{round_}-{INTRUDER}",
            purpose=Purpose.CHANGE,
            session_id=asking.pk,
        )
        reset = issue_token(model=PasswordResetToken, user=owner, lifetime_seconds=3600)
        outcomes = race(
            functools.partial(reset_password, token=reset, password="the owner's new passphrase"),
            functools.partial(verify_email, token=change, verifier=Verifier(password=STRONG_PASSWORD)),
        )
        assert sorted(map(str, outcomes)) == ["refused", "won"], outcomes
        owner = User.objects.get(pk=owner.pk)
        reset_won = outcomes[0] == "won"
        # Exactly one outcome, never a mix: either the owner's password and address, or the change alone.
        assert owner.check_password("the owner's new passphrase") is reset_won
        assert (owner.email == f"owner{round_}@example.com") is reset_won
