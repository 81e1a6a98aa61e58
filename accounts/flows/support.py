"""What support staff do for a user from the admin, each recorded with the acting staff member."""

from django.conf import settings
from django.db import transaction

from accounts.audit import EventKind, record_event
from accounts.client_info import ClientInfo
from accounts.flows.account_status import deactivate_user, reactivate_user
from accounts.flows.device_sessions import EndReason
from accounts.flows.password_reset import issue_password_reset_link, request_password_reset
from accounts.flows.security_reset import lock_account, security_reset
from accounts.flows.verification import prove_address, send_verification_email
from accounts.mail import send_account_email
from accounts.models import DeviceSession, User
from accounts.revocation import mark_sessions_ended


def _record(*, staff: User, user: User, action: str, client: ClientInfo | None, **detail) -> None:
    record_event(kind=EventKind.STAFF_ACTION, user=user, actor=staff, client=client, action=action, **detail)


def staff_end_sessions(*, staff: User, user: User, client: ClientInfo | None = None) -> int:
    """End every session and retire every unused emailed link of ``user``."""
    with transaction.atomic():
        ended = security_reset(user=user, reason=EndReason.ENDED_BY_STAFF, actor=staff, client=client, record=False)
        _record(staff=staff, user=user, action="end_sessions", client=client, sessions_ended=ended)
    return ended


def staff_send_password_reset(*, staff: User, user: User, client: ClientInfo | None = None) -> None:
    with transaction.atomic():
        _record(staff=staff, user=user, action="send_password_reset", client=client)
    request_password_reset(email=user.email, client=client)


def staff_resend_verification(*, staff: User, user: User, client: ClientInfo | None = None) -> bool:
    """False when there is nothing to verify (already verified or inactive)."""
    if user.email_verified or not user.is_active:
        return False
    with transaction.atomic():
        _record(staff=staff, user=user, action="resend_verification", client=client)
    send_verification_email(user=user)
    return True


def staff_mark_email_verified(*, staff: User, user: User, client: ClientInfo | None = None) -> bool:
    """Mark the address verified without the owner's link (false if it already is).

    Nobody proved they know the password, which was chosen before anyone
    proved the address (maybe by someone else), so it does not survive: the
    account gets an unusable password, every session and emailed link ends,
    and a link to choose a password goes to the address.
    """
    with transaction.atomic():
        lock_account(user)
        user.refresh_from_db()  # its owner may have just verified it, with a password they proved
        if user.email_verified:
            return False
        user.set_unusable_password()
        user.save(update_fields=["password"])
        ended = security_reset(user=user, reason=EndReason.ENDED_BY_STAFF, record=False)
        prove_address(user=user, password_replaced=True)
        link = issue_password_reset_link(user=user)
        _record(staff=staff, user=user, action="mark_email_verified", client=client, sessions_ended=ended)
    send_account_email(
        template="choose_password",
        to=user.email,
        context={"link": link, "valid_minutes": settings.ACCOUNTS_PASSWORD_RESET_TIMEOUT // 60},
        greet=user,
    )
    return True


def staff_deactivate(*, staff: User, user: User, client: ClientInfo | None = None) -> int:
    with transaction.atomic():
        ended = deactivate_user(user=user)
        _record(staff=staff, user=user, action="deactivate", client=client, sessions_ended=ended)
    return ended


def staff_reactivate(*, staff: User, user: User, client: ClientInfo | None = None) -> None:
    with transaction.atomic():
        reactivate_user(user=user)
        _record(staff=staff, user=user, action="reactivate", client=client)


def staff_delete_user(*, staff: User, user: User, client: ClientInfo | None = None) -> None:
    """Delete an account from the admin; its tokens stop working at once."""
    with transaction.atomic():
        session_ids = list(DeviceSession.objects.filter(user=user).values_list("pk", flat=True))
        record_event(
            kind=EventKind.ACCOUNT_DELETED, actor=staff, client=client, email=user.email, user_id=user.pk, by_staff=True
        )
        user.delete()
        mark_sessions_ended(session_ids)
