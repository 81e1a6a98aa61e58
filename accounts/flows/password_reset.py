"""Forgotten passwords: requesting a reset link and setting a new password with it."""

from django.conf import settings
from django.db import transaction

from accounts.audit import EventKind, record_event
from accounts.background import after_answer
from accounts.client_info import ClientInfo
from accounts.flows.account_lock import lock_account
from accounts.flows.device_sessions import EndReason
from accounts.flows.email_tokens import find_redeemable_token, issue_token, mark_token_used
from accounts.flows.passwords import send_password_changed_notice, set_new_password, validate_new_password
from accounts.flows.security_reset import security_reset
from accounts.flows.verification import prove_address
from accounts.mail import send_account_email, site_link
from accounts.models import PasswordResetToken, User
from accounts.rate_limits import RESET_MAIL_ADDRESS, RESET_MAIL_IP, may_send_link


def request_password_reset(*, email: str, client: ClientInfo | None = None) -> None:
    """Email a reset link if ``email`` belongs to an active account.

    Returns nothing and raises nothing in every case, so the caller answers the
    same whether or not the address has an account; everything that depends on
    the account (the lookup, the audit event, the token, the email) happens
    after the answer, so the answer also takes the same time. Past the
    per-address or per-IP limit, RateLimited (alike for known and unknown
    addresses).
    """
    client = client or ClientInfo()
    if may_send_link(per_address=RESET_MAIL_ADDRESS, per_ip=RESET_MAIL_IP, email=email, client=client):
        after_answer(lambda: _send_password_reset(email=email, client=client), name="password reset")


def _send_password_reset(*, email: str, client: ClientInfo) -> None:
    user = User.objects.find_by_email(email)
    if user is None or not user.is_active:
        with transaction.atomic():
            record_event(kind=EventKind.PASSWORD_RESET_REQUESTED, client=client, email=email, account=False)
        return
    with transaction.atomic():
        record_event(kind=EventKind.PASSWORD_RESET_REQUESTED, user=user, client=client, account=True)
        link = issue_password_reset_link(user=user)
        send_password_reset_link(user=user, link=link)


def issue_password_reset_link(*, user: User) -> str:
    """A new reset link for ``user`` (older unused ones stop working)."""
    raw = issue_token(model=PasswordResetToken, user=user, lifetime_seconds=settings.ACCOUNTS_PASSWORD_RESET_TIMEOUT)
    return site_link("accounts:password_reset_confirm", token=raw)


def send_password_reset_link(*, user: User, link: str) -> None:
    send_account_email(
        template="password_reset",
        to=user.email,
        context={"link": link, "valid_minutes": settings.ACCOUNTS_PASSWORD_RESET_TIMEOUT // 60},
        greet=user,
    )


def check_password_reset_token(*, token: str | None) -> PasswordResetToken:
    """The redeemable reset token for ``token``, without using it up."""
    return find_redeemable_token(model=PasswordResetToken, raw_token=token)


def reset_password(*, token: str | None, password: str, client: ClientInfo | None = None) -> User:
    """Set a new password with a reset token; every session and every other
    unused emailed link of the account ends.

    The person is not signed in: they sign in with the new password. The link
    reached their inbox, so the address counts as proven from now on.
    """
    with transaction.atomic():
        row = check_password_reset_token(token=token)
        lock_account(row.user_id)
        row = check_password_reset_token(token=token)  # again, under the lock
        user = row.user
        validate_new_password(password=password, user=user)
        mark_token_used(row)
        set_new_password(user=user, password=password)
        ended = security_reset(user=user, reason=EndReason.PASSWORD_RESET, record=False)
        prove_address(user=user, password_replaced=True)
        record_event(kind=EventKind.PASSWORD_RESET_COMPLETED, user=user, client=client, sessions_ended=ended)
        send_password_changed_notice(user=user, all_devices_signed_out=True)
    return user
