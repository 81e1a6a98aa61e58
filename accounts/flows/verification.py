"""Email verification: sending the link, resending it, and confirming it (also for a new address)."""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import EventKind, record_event
from accounts.client_info import ClientInfo
from accounts.email_address import mask_email
from accounts.exceptions import TokenInvalid
from accounts.flows.email_tokens import find_redeemable_token, issue_token, mark_token_used
from accounts.mail import send_account_email, site_link
from accounts.models import EmailVerificationToken, PasswordResetToken, User
from accounts.rate_limits import VERIFY_MAIL_ADDRESS, VERIFY_MAIL_IP, RateLimitUnavailable, address_key, hit, ip_key

Purpose = EmailVerificationToken.Purpose


def issue_verification_link(*, user: User, email: str, purpose: str) -> str:
    """A new verification link for ``email`` (retiring older unused ones of that purpose)."""
    raw = issue_token(
        model=EmailVerificationToken,
        user=user,
        lifetime_seconds=settings.ACCOUNTS_EMAIL_VERIFICATION_TIMEOUT,
        email=email,
        purpose=purpose,
    )
    return site_link("accounts:verify_email", token=raw)


def send_verification_email(*, user: User) -> None:
    """Issue a fresh verification token (retiring older ones) and email its link."""
    with transaction.atomic():
        link = issue_verification_link(user=user, email=user.email, purpose=Purpose.VERIFY)
    send_verification_link(user=user, link=link)


def send_verification_link(*, user: User, link: str) -> None:
    send_account_email(
        template="verify_email",
        to=user.email,
        context={
            "user": user,
            "link": link,
            "valid_hours": settings.ACCOUNTS_EMAIL_VERIFICATION_TIMEOUT // 3600,
        },
    )


def resend_verification_email(*, email: str, client: ClientInfo | None = None) -> None:
    """Send a new link if ``email`` belongs to an active, unverified account.

    Returns nothing in every case, so that callers answer identically whether
    or not the address has an account; past the per-address or per-IP limit,
    RateLimited (alike for every address).
    """
    client = client or ClientInfo()
    try:
        hit(VERIFY_MAIL_ADDRESS, address_key(email), client=client, email=email)
        hit(VERIFY_MAIL_IP, ip_key(client.ip_address), client=client, email=email)
    except RateLimitUnavailable:
        return  # counters unreachable: send nothing rather than send unlimited
    user = User.objects.find_by_email(email)
    if user is not None and user.is_active and not user.email_verified:
        send_verification_email(user=user)


def check_verification_token(*, token: object) -> EmailVerificationToken:
    """The redeemable verification token for ``token``, without using it up."""
    row = find_redeemable_token(model=EmailVerificationToken, raw_token=token)
    if row.purpose == Purpose.VERIFY and row.email != row.user.email:
        # Sent to an address the account no longer has.
        raise TokenInvalid
    if row.purpose == Purpose.CHANGE and row.email == row.user.email:
        raise TokenInvalid
    return row


def verify_email(*, token: object, client: ClientInfo | None = None) -> User:
    """Redeem a verification token: mark the address verified, or switch the
    account to the new address it confirms (and tell the old address)."""
    old_email = None
    with transaction.atomic():
        row = check_verification_token(token=token)
        mark_token_used(row)
        user = row.user
        if row.purpose == Purpose.CHANGE:
            old_email = user.email
            user.email = row.email
            user.email_verified_at = timezone.now()
            try:
                with transaction.atomic():
                    user.save(update_fields=["email", "email_verified_at"])
            except IntegrityError:
                # Someone registered the address meanwhile.
                raise TokenInvalid from None
            # Links sent to the old address must not act on the account any more.
            PasswordResetToken.objects.filter(user=user, used_at__isnull=True).delete()
            EmailVerificationToken.objects.filter(user=user, used_at__isnull=True).delete()
            record_event(kind=EventKind.EMAIL_CHANGE_CONFIRMED, user=user, client=client)
        elif user.email_verified_at is None:
            user.email_verified_at = timezone.now()
            user.save(update_fields=["email_verified_at"])
            record_event(kind=EventKind.EMAIL_VERIFIED, user=user, client=client)
    if old_email is not None:
        send_account_email(
            template="email_changed",
            to=old_email,
            context={"user": user, "new_email": mask_email(user.email), "reset_link": site_link("accounts:password_reset")},
        )
    return user
