"""What people do with their own device sessions: end one, or end all the others.

Modelled on django-allauth's ``usersessions/internal/flows/sessions.py``. The flow
decides whether the caller's own session is among those ended; the page view then
signs the browser out and the API view clears the refresh cookie, alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from accounts.client_info import ClientInfo
from accounts.exceptions import SessionNotFound
from accounts.flows.device_sessions import EndReason, as_session_uuid, end_device_session
from accounts.flows.reauthentication import SensitiveAction, require_recent_authentication
from accounts.flows.security_reset import security_reset
from accounts.models import User
from accounts.revocation import SessionId


@dataclass(frozen=True)
class SessionsEnded:
    count: int
    # The session making the request is one of them: the caller is now signed out.
    includes_current: bool


def end_own_session(
    *,
    user: User | int,
    session_id: SessionId,
    current_session_id: SessionId | None,
    client: ClientInfo | None = None,
) -> SessionsEnded:
    """End one of the user's sessions. Their own current one is a sign-out and needs
    nothing more; any other needs a recent authentication on the current device
    (whoever picked up an unlocked phone must not throw the owner's laptop out)."""
    current = as_session_uuid(current_session_id)
    target = as_session_uuid(session_id)
    ends_current = target is not None and target == current
    if not ends_current:
        require_recent_authentication(session_id=current, action=SensitiveAction.END_OTHER_SESSION)
    if target is None:
        raise SessionNotFound
    reason = EndReason.LOGOUT if ends_current else EndReason.ENDED_BY_USER
    end_device_session(user=user, session_id=target, reason=reason, client=client)
    return SessionsEnded(count=1, includes_current=ends_current)


def end_other_sessions(
    *, user: User, current_session_id: SessionId | None, client: ClientInfo | None = None
) -> SessionsEnded:
    """End every session but the current one, and make every unused emailed link useless.

    Needs a recent authentication on the current device.
    """
    current = as_session_uuid(current_session_id)
    require_recent_authentication(session_id=current, action=SensitiveAction.END_OTHER_SESSIONS)
    ended = security_reset(user=user, reason=EndReason.ENDED_BY_USER, keep_session_id=current, client=client)
    return SessionsEnded(count=ended, includes_current=False)  # the current one is the one kept
