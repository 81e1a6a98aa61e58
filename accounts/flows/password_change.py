"""Changing the password while signed in."""

from django.db import transaction

from accounts.audit import EventKind, record_event
from accounts.client_info import ClientInfo
from accounts.flows.device_sessions import EndReason
from accounts.flows.passwords import send_password_changed_notice, set_new_password, validate_new_password
from accounts.flows.reauthentication import confirm_password, record_authentication, require_recent_second_factor
from accounts.flows.security_reset import security_reset
from accounts.models import User
from accounts.revocation import SessionId


def change_password(
    *,
    user: User,
    current_password: str,
    new_password: str,
    session_id: SessionId | None = None,
    client: ClientInfo | None = None,
) -> int:
    """Replace the password; every other device session and every unused emailed
    link ends, this session stays.

    Returns how many sessions ended. A notice goes to the account's address.
    An account with a second factor needs it recently on this device too.
    """
    require_recent_second_factor(user=user, session_id=session_id)
    confirm_password(user=user, password=current_password, field="current_password", client=client)
    validate_new_password(password=new_password, user=user, field="new_password")
    with transaction.atomic():
        set_new_password(user=user, password=new_password)
        ended = security_reset(user=user, reason=EndReason.PASSWORD_CHANGED, keep_session_id=session_id, record=False)
        record_authentication(session_id=session_id)
        record_event(kind=EventKind.PASSWORD_CHANGED, user=user, client=client, sessions_ended=ended)
        send_password_changed_notice(user=user, all_devices_signed_out=False)
    return ended
