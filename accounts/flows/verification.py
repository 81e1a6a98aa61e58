"""Email verification: sending the link, resending it, and confirming it."""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.exceptions import TokenInvalid
from accounts.flows.email_tokens import find_redeemable_token, issue_token, mark_token_used
from accounts.mail import send_account_email, site_link
from accounts.models import EmailVerificationToken, User


def send_verification_email(*, user: User) -> None:
    """Issue a fresh verification token (retiring older ones) and email its link."""
    with transaction.atomic():
        raw = issue_token(
            model=EmailVerificationToken,
            user=user,
            lifetime_seconds=settings.ACCOUNTS_EMAIL_VERIFICATION_TIMEOUT,
            email=user.email,
        )
    send_account_email(
        template="verify_email",
        to=user.email,
        context={
            "user": user,
            "link": site_link("accounts:verify_email", token=raw),
            "valid_hours": settings.ACCOUNTS_EMAIL_VERIFICATION_TIMEOUT // 3600,
        },
    )


def resend_verification_email(*, email: str) -> None:
    """Send a new link if ``email`` belongs to an active, unverified account.

    Returns nothing and raises nothing in every case, so that callers answer
    identically whether or not the address has an account.
    """
    user = User.objects.find_by_email(email)
    if user is not None and user.is_active and not user.email_verified:
        send_verification_email(user=user)


def check_verification_token(*, token: object) -> EmailVerificationToken:
    """The redeemable verification token for ``token``, without using it up."""
    row = find_redeemable_token(model=EmailVerificationToken, raw_token=token)
    if row.email != row.user.email:
        # Sent to an address the account no longer has.
        raise TokenInvalid
    return row


def verify_email(*, token: object) -> User:
    """Redeem a verification token and mark the address verified."""
    with transaction.atomic():
        row = check_verification_token(token=token)
        mark_token_used(row)
        user = row.user
        if user.email_verified_at is None:
            user.email_verified_at = timezone.now()
            user.save(update_fields=["email_verified_at"])
    return user
