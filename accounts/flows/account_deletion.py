"""Deleting an account: irreversible, by its owner (password-confirmed, announced by email) or by staff."""

from typing import Any

from django.db import transaction

from accounts.audit import EventKind, record_event
from accounts.client_info import ClientInfo
from accounts.flows.deliverability import forget_address
from accounts.flows.reauthentication import confirm_password, require_recent_second_factor
from accounts.mail import send_account_email
from accounts.models import DeviceSession, User
from accounts.revocation import SessionId, mark_sessions_ended


def erase_account(*, user: User, client: ClientInfo | None = None, actor: User | None = None, **detail: Any) -> None:
    """Delete the user with their todos, sessions and tokens; their access tokens stop working at once.

    The audit log keeps the event, tied to a keyed hash of the address only
    (``actor`` and ``detail`` say who deleted it and why, when not its owner).
    One transaction: if anything fails, the account and its sessions stay.
    """
    with transaction.atomic():
        session_ids = list(DeviceSession.objects.filter(user=user).values_list("pk", flat=True))
        record_event(
            kind=EventKind.ACCOUNT_DELETED, actor=actor, client=client, email=user.email, user_id=user.pk, **detail
        )
        user.delete()
        mark_sessions_ended(session_ids)


def delete_account(
    *, user: User, password: str, session_id: SessionId | None = None, client: ClientInfo | None = None
) -> None:
    """The owner deletes their account, confirming it with their password (and, if it has one, a
    recent second factor on this device); the address is told."""
    require_recent_second_factor(user=user, session_id=session_id)
    confirm_password(user=user, password=password, client=client)
    email = user.email
    with transaction.atomic():
        erase_account(user=user, client=client)
        send_account_email(template="account_deleted", to=email, context={}, greet=user)
        # After the farewell, which obeys them; then what the ESPs said about the address goes too.
        forget_address(address=email)
