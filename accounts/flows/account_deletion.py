"""Deleting an account: irreversible, confirmed by password, announced by email."""

from django.db import transaction

from accounts.audit import EventKind, record_event
from accounts.client_info import ClientInfo
from accounts.flows.device_sessions import confirm_password
from accounts.mail import send_account_email
from accounts.models import DeviceSession, User
from accounts.revocation import mark_sessions_ended


def delete_account(*, user: User, password: str, client: ClientInfo | None = None) -> None:
    """Delete the user with their todos, sessions and tokens.

    The audit log keeps the event, tied to a keyed hash of the address only.
    """
    confirm_password(user=user, password=password, client=client)
    email, user_id = user.email, user.pk
    with transaction.atomic():
        session_ids = list(DeviceSession.objects.filter(user=user).values_list("pk", flat=True))
        record_event(kind=EventKind.ACCOUNT_DELETED, client=client, email=email, user_id=user_id)
        user.delete()
        mark_sessions_ended(session_ids)
    send_account_email(template="account_deleted", to=email, context={}, greet=user)
