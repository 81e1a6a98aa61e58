"""Forgotten passwords: requesting a reset link and setting a new password with it."""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.audit import EventKind, record_event
from accounts.client_info import ClientInfo
from accounts.flows.device_sessions import EndReason, end_user_sessions
from accounts.flows.email_tokens import find_redeemable_token, issue_token, mark_token_used
from accounts.flows.passwords import set_new_password, validate_new_password
from accounts.mail import send_account_email, site_link
from accounts.models import PasswordResetToken, User
from accounts.rate_limits import RESET_MAIL_ADDRESS, RESET_MAIL_IP, RateLimitUnavailable, address_key, hit, ip_key


def request_password_reset(*, email: str, client: ClientInfo | None = None) -> None:
    """Email a reset link if ``email`` belongs to an active account.

    Returns nothing and raises nothing in every case, so the caller answers the
    same whether or not the address has an account. Past the per-address or
    per-IP limit, RateLimited (alike for known and unknown addresses).
    """
    client = client or ClientInfo()
    try:
        hit(RESET_MAIL_ADDRESS, address_key(email), client=client, email=email)
        hit(RESET_MAIL_IP, ip_key(client.ip_address), client=client, email=email)
    except RateLimitUnavailable:
        return  # counters unreachable: send nothing rather than send unlimited
    user = User.objects.find_by_email(email)
    if user is None or not user.is_active:
        with transaction.atomic():
            record_event(kind=EventKind.PASSWORD_RESET_REQUESTED, client=client, email=email, account=False)
        return
    with transaction.atomic():
        record_event(kind=EventKind.PASSWORD_RESET_REQUESTED, user=user, client=client, account=True)
        raw = issue_token(
            model=PasswordResetToken,
            user=user,
            lifetime_seconds=settings.ACCOUNTS_PASSWORD_RESET_TIMEOUT,
        )
    send_account_email(
        template="password_reset",
        to=user.email,
        context={
            "user": user,
            "link": site_link("accounts:password_reset_confirm", token=raw),
            "valid_minutes": settings.ACCOUNTS_PASSWORD_RESET_TIMEOUT // 60,
        },
    )


def check_password_reset_token(*, token: object) -> PasswordResetToken:
    """The redeemable reset token for ``token``, without using it up."""
    return find_redeemable_token(model=PasswordResetToken, raw_token=token)


def reset_password(*, token: object, password: str, client: ClientInfo | None = None) -> User:
    """Set a new password with a reset token; every existing session ends.

    The person is not signed in: they sign in with the new password. The link
    reached their inbox, so the address counts as verified from now on.
    """
    with transaction.atomic():
        row = check_password_reset_token(token=token)
        user = row.user
        validate_new_password(password=password, user=user)
        mark_token_used(row)
        set_new_password(user=user, password=password)
        ended = end_user_sessions(user=user, reason=EndReason.PASSWORD_RESET, record=False)
        if user.email_verified_at is None:
            user.email_verified_at = timezone.now()
            user.save(update_fields=["email_verified_at"])
        record_event(kind=EventKind.PASSWORD_RESET_COMPLETED, user=user, client=client, sessions_ended=ended)
    send_account_email(
        template="password_changed",
        to=user.email,
        context={"user": user, "reset_link": site_link("accounts:password_reset"), "all_devices_signed_out": True},
    )
    return user
