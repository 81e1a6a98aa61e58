"""Signing in with an emailed code or link: asking for them, and redeeming either.

Asking answers the same for every address and looks the address up only after the answer
(accounts.background): its owner gets a code and a link, an address without an account a short
"no account here" email. Both kinds of request leave a row (for no account, one with no user
and a code nobody was sent), so trying a code does the same work for every address, and
every failure is the same SignInCodeInvalid.

A code is 8 characters from an alphabet without look-alikes (about 39 bits); it works for
ACCOUNTS_EMAIL_SIGN_IN_TIMEOUT, only the newest one of an address works, and it takes
ACCOUNTS_EMAIL_SIGN_IN_ATTEMPTS tries, each spent by one conditional UPDATE before the code is
compared, so concurrent guesses cannot get more. The link (256 bits) is the same row's other
key: its GET only shows a button (link scanners open links), its POST signs in. Either one uses
the row up.

It is one factor (``otp``): finish_first_factor sends an account with a second factor on to its
second step, and alone it is no second factor for what needs one (it proves the mailbox, as a
reset does). Signing in to an unverified account proves its address, so, unless the browser
holds the sign-up proof (it chose the password), whatever whoever signed up with the address
chose goes first (pre-account takeover): the password, the name, second factors and providers,
as when a verification link replaces the password.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.views.decorators.debug import sensitive_variables

from accounts import amr as methods
from accounts.audit import EventKind, email_fingerprint, record_event
from accounts.background import after_answer
from accounts.client_info import ClientInfo
from accounts.exceptions import SignInCodeInvalid, TokenInvalid
from accounts.flows.account_lock import lock_account
from accounts.flows.email_tokens import find_redeemable_token, mark_token_used
from accounts.flows.signin import SecondStepRequired, SignedIn, finish_first_factor
from accounts.flows.verification import holds_signup_proof, verify_unproven_address
from accounts.mail import send_account_email, site_link
from accounts.models import EmailSignInCode, User
from accounts.rate_limits import (
    NO_ACCOUNT_MAIL_ADDRESS,
    SIGN_IN_CODE_IP,
    SIGN_IN_CODE_MAIL_ADDRESS,
    SIGN_IN_CODE_MAIL_IP,
    RateLimited,
    RateLimitUnavailable,
    address_key,
    check,
    count,
    hit,
    ip_key,
    may_send_link,
)
from accounts.tokens import generate_token, hash_token

# No I, L, O, U, 0 or 1: nothing that reads as another character, or spells much.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
CODE_LENGTH = 8
_CODE_SALT = "accounts.flows.email_sign_in.code"
# What people type between the groups, or paste around the code.
_SEPARATORS = re.compile(r"[\s-]+")


def generate_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def format_code(code: str) -> str:
    """``ABCDEFGH`` as it is shown in the email: ``ABCD-EFGH``."""
    half = CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


def normalize_code(code: object) -> str | None:
    """The code as issued (upper case, no separators), or None for input that cannot be one."""
    if not isinstance(code, str) or len(code) > 4 * CODE_LENGTH:
        return None
    cleaned = _SEPARATORS.sub("", code).upper()
    if len(cleaned) != CODE_LENGTH or any(character not in CODE_ALPHABET for character in cleaned):
        return None
    return cleaned


@sensitive_variables("code")
def _code_hash(token_hash: str, code: str) -> str:
    # Keyed, and bound to its row: with 39 bits, a plain hash in a copied table would be guessed offline.
    return salted_hmac(_CODE_SALT, f"{token_hash}:{code}", algorithm="sha256").hexdigest()


# --- Asking for a code --------------------------------------------------------------------------


def request_email_sign_in(*, email: str, client: ClientInfo | None = None) -> None:
    """Email a sign-in code and link to ``email`` if it has an active account (a short "no account
    here" email if it has none).

    Returns nothing and raises nothing but RateLimited (past the per-address or per-IP limit,
    alike for every address): the caller answers the same for every address, and everything
    that depends on the account happens after the answer.
    """
    client = client or ClientInfo()
    if may_send_link(per_address=SIGN_IN_CODE_MAIL_ADDRESS, per_ip=SIGN_IN_CODE_MAIL_IP, email=email, client=client):
        after_answer(lambda: _send_sign_in_code(email=email, client=client), name="email sign-in")


@sensitive_variables("code", "token")
def _send_sign_in_code(*, email: str, client: ClientInfo) -> None:
    user = User.objects.find_by_email(email)
    account = user if user is not None and user.is_active else None
    tell_no_account = user is None and _may_tell_no_account(email)
    with transaction.atomic():
        record_event(
            kind=EventKind.SIGN_IN_CODE_REQUESTED, user=account, client=client, email=email, account=bool(account)
        )
        code, token = _issue(user=account, email=account.email if account else email)
        if account is not None:
            send_account_email(
                template="email_login",
                to=account.email,
                context={
                    "code": format_code(code),
                    "link": site_link("accounts:login_email_link", token=token),
                    "valid_minutes": settings.ACCOUNTS_EMAIL_SIGN_IN_TIMEOUT // 60,
                    "verifies_address": not account.email_verified,
                },
                greet=account,
            )
        elif tell_no_account:  # a deactivated account gets nothing, as with a reset
            send_account_email(
                template="email_login_no_account",
                to=email,
                context={"email": email, "signup_link": site_link("accounts:signup")},
            )


def _may_tell_no_account(email: str) -> bool:
    try:
        hit(NO_ACCOUNT_MAIL_ADDRESS, address_key(email), record=False)
    except (RateLimited, RateLimitUnavailable):
        return False  # its code row is written all the same: a wrong code still does the same work
    return True


def _issue(*, user: User | None, email: str) -> tuple[str, str]:
    """A new code and link for ``email``; the address's older unused ones stop working."""
    address_key = email_fingerprint(email)
    EmailSignInCode.objects.filter(address_key=address_key, used_at__isnull=True).delete()
    code, token = generate_code(), generate_token()
    token_hash = hash_token(token)
    EmailSignInCode.objects.create(
        user=user,
        address_key=address_key,
        token_hash=token_hash,
        code_hash=_code_hash(token_hash, code),
        expires_at=timezone.now() + timedelta(seconds=settings.ACCOUNTS_EMAIL_SIGN_IN_TIMEOUT),
        attempts_left=settings.ACCOUNTS_EMAIL_SIGN_IN_ATTEMPTS,
    )
    return code, token


# --- Signing in with the code ---------------------------------------------------------------------


@sensitive_variables("code", "normalized")
def authenticate_email_code(
    *, email: str, code: object, client: ClientInfo, signup_proof: str | None = None
) -> SignedIn | SecondStepRequired:
    """A sign-in with the code emailed to ``email``.

    SignInCodeInvalid for a wrong, expired, used-up or replaced code and for an address without
    an account, alike; RateLimited past the client's limit of wrong codes. ``signup_proof``: the
    client's sign-up proof cookie, if any (see _redeem).
    """
    check(SIGN_IN_CODE_IP, ip_key(client.ip_address), client=client, email=email)
    row = _newest_for(email)
    normalized = normalize_code(code)
    if (
        row is None
        or normalized is None
        or not _spend_attempt(row)
        or not constant_time_compare(row.code_hash, _code_hash(row.token_hash, normalized))
        or row.user is None  # no code was sent: nothing can be right
    ):
        count(SIGN_IN_CODE_IP, ip_key(client.ip_address))
        with transaction.atomic():
            record_event(
                kind=EventKind.SIGN_IN_FAILED,
                user=row.user if row is not None else None,
                client=client,
                email=email,
                reason=SignInCodeInvalid.code,
                method="email_code",
            )
        raise SignInCodeInvalid
    try:
        user = _redeem(row, client, signup_proof)
    except TokenInvalid:
        raise SignInCodeInvalid from None  # used by the link meanwhile, or the account changed
    return finish_first_factor(user=user, amr=[methods.ONE_TIME_CODE], by_mailbox=True)


def _newest_for(email: str) -> EmailSignInCode | None:
    # The newest, used or not: when one used up is the newest, an older one left by two requests
    # at the same moment must not work instead (spending a try on a used one fails).
    return (
        EmailSignInCode.objects.select_related("user")
        .filter(address_key=email_fingerprint(email), expires_at__gt=timezone.now())
        .order_by("-created_at")
        .first()
    )


def _spend_attempt(row: EmailSignInCode) -> bool:
    """One try of this code, counted before it is compared: False once none is left."""
    spent = EmailSignInCode.objects.filter(
        pk=row.pk, used_at__isnull=True, expires_at__gt=timezone.now(), attempts_left__gt=0
    ).update(attempts_left=F("attempts_left") - 1)
    return spent == 1


# --- Signing in with the link -------------------------------------------------------------------


@sensitive_variables("token")
def check_email_sign_in_link(*, token: str | None) -> EmailSignInCode:
    """The row of an emailed sign-in link that can still be used, without using it up; TokenInvalid
    (or its TokenUsed, TokenExpired) otherwise."""
    row = find_redeemable_token(model=EmailSignInCode, raw_token=token)
    if EmailSignInCode.objects.filter(address_key=row.address_key, created_at__gt=row.created_at).exists():
        # Two asked at the same moment can both be left; only the newest works, as for the code.
        raise TokenInvalid("A newer sign-in email was sent since: use the link in that one.")
    _check_still_for(row, row.user)
    return row


@sensitive_variables("token")
def authenticate_email_link(
    *, token: str | None, client: ClientInfo, signup_proof: str | None = None
) -> SignedIn | SecondStepRequired:
    """A sign-in with the emailed link (its POST); TokenInvalid if it cannot be used (any more)."""
    user = _redeem(check_email_sign_in_link(token=token), client, signup_proof)
    return finish_first_factor(user=user, amr=[methods.ONE_TIME_CODE], by_mailbox=True)


# --- Either way ---------------------------------------------------------------------------------------


def _check_still_for(row: EmailSignInCode, user: User | None) -> None:
    # The address it went to must still be the account's: after a change, the old mailbox may be someone else's.
    if user is None or not user.is_active or not constant_time_compare(row.address_key, email_fingerprint(user.email)):
        raise TokenInvalid


def _redeem(row: EmailSignInCode, client: ClientInfo, signup_proof: str | None) -> User:
    """Use ``row`` up (once, of any number of concurrent tries) and prove its account's address.

    An unverified account keeps what it has only if this client holds its sign-up proof (it chose
    the password); otherwise what the sign-up chose goes (see the module docstring)."""
    assert row.user_id is not None  # noqa: S101 the callers refuse rows without an account
    with transaction.atomic():
        lock_account(row.user_id)  # serialised with security resets and address changes
        user = User.objects.get(pk=row.user_id)
        _check_still_for(row, user)
        mark_token_used(row)  # TokenUsed for all but one of concurrent tries
        verify_unproven_address(
            user=user,
            proved_by="sign_in_code",
            client=client,
            replace_password=not holds_signup_proof(user, signup_proof),
        )
    return user
