"""What support staff do for a user from the admin, each recorded with the acting staff member."""

from django.db import transaction
from django.utils import timezone

from accounts.audit import EventKind, record_event
from accounts.client_info import ClientInfo
from accounts.flows.account_status import deactivate_user, reactivate_user
from accounts.flows.device_sessions import EndReason, end_user_sessions
from accounts.flows.password_reset import request_password_reset
from accounts.flows.verification import send_verification_email
from accounts.models import DeviceSession, User
from accounts.revocation import mark_sessions_ended


def _record(*, staff: User, user: User, action: str, client: ClientInfo | None, **detail) -> None:
    record_event(kind=EventKind.STAFF_ACTION, user=user, actor=staff, client=client, action=action, **detail)


def staff_end_sessions(*, staff: User, user: User, client: ClientInfo | None = None) -> int:
    with transaction.atomic():
        ended = end_user_sessions(user=user, reason=EndReason.ENDED_BY_STAFF, actor=staff, client=client, record=False)
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
    if user.email_verified:
        return False
    with transaction.atomic():
        user.email_verified_at = timezone.now()
        user.save(update_fields=["email_verified_at"])
        _record(staff=staff, user=user, action="mark_email_verified", client=client)
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
