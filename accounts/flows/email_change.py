"""Changing the account's email address: confirm the password, then prove the new address."""

from django.conf import settings
from django.db import transaction

from accounts.audit import EventKind, record_event
from accounts.client_info import ClientInfo
from accounts.email_address import InvalidEmailAddress, normalize_email
from accounts.exceptions import EmailUnchanged, InvalidEmail
from accounts.flows.device_sessions import confirm_password, mark_reauthenticated
from accounts.flows.verification import Purpose, issue_verification_link
from accounts.mail import send_account_email, site_link
from accounts.models import EmailVerificationToken, User


def request_email_change(
    *,
    user: User,
    password: str,
    new_email: str,
    session_id: object = None,
    client: ClientInfo | None = None,
) -> None:
    """Send a confirmation link to ``new_email``; the account keeps its address until then.

    If another account has ``new_email``, the answer is the same and that
    account's owner is told instead, so the flow never reveals who is registered.
    """
    try:
        canonical = normalize_email(new_email)
    except InvalidEmailAddress as error:
        raise InvalidEmail(str(error), field="new_email") from None
    confirm_password(user=user, password=password, client=client)
    if canonical == user.email:
        raise EmailUnchanged
    owner = User.objects.find_by_email(canonical)
    with transaction.atomic():
        mark_reauthenticated(session_id=session_id)
        record_event(kind=EventKind.EMAIL_CHANGE_REQUESTED, user=user, client=client)
        if owner is None:
            link = issue_verification_link(user=user, email=canonical, purpose=Purpose.CHANGE)
        else:
            # The newest request wins either way: an older link to another address stops working.
            EmailVerificationToken.objects.filter(user=user, purpose=Purpose.CHANGE, used_at__isnull=True).delete()
            link = None
    if owner is None:
        send_account_email(
            template="email_change_confirm",
            to=canonical,
            context={
                "user": user,
                "link": link,
                "valid_hours": settings.ACCOUNTS_EMAIL_VERIFICATION_TIMEOUT // 3600,
            },
        )
    else:
        send_account_email(
            template="email_change_taken",
            to=owner.email,
            context={"user": owner, "reset_link": site_link("accounts:password_reset")},
        )
