"""Changing the password while signed in."""

from django.db import transaction

from accounts.audit import EventKind, record_event
from accounts.client_info import ClientInfo
from accounts.exceptions import PasswordRejected
from accounts.flows.device_sessions import EndReason, confirm_password, end_user_sessions, mark_reauthenticated
from accounts.flows.passwords import set_new_password, validate_new_password
from accounts.mail import send_account_email, site_link
from accounts.models import User


def change_password(
    *,
    user: User,
    current_password: str,
    new_password: str,
    session_id: object = None,
    client: ClientInfo | None = None,
) -> int:
    """Replace the password; every other device session ends, this one stays.

    Returns how many sessions ended. A notice goes to the account's address.
    """
    confirm_password(user=user, password=current_password, field="current_password", client=client)
    try:
        validate_new_password(password=new_password, user=user)
    except PasswordRejected as error:
        raise PasswordRejected(error.messages, field="new_password") from None
    with transaction.atomic():
        set_new_password(user=user, password=new_password)
        ended = end_user_sessions(user=user, reason=EndReason.PASSWORD_CHANGED, keep_session_id=session_id, record=False)
        mark_reauthenticated(session_id=session_id)
        record_event(kind=EventKind.PASSWORD_CHANGED, user=user, client=client, sessions_ended=ended)
    send_account_email(
        template="password_changed",
        to=user.email,
        context={"user": user, "reset_link": site_link("accounts:password_reset"), "all_devices_signed_out": False},
    )
    return ended
