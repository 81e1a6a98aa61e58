"""Re-authentication: what counts as recent, which actions need it, and the one guard both front ends call.

Modelled on django-allauth's ``account/internal/flows/reauthentication.py``, but the
moment of the last authentication is kept on the device session (``authenticated_at``),
not in a browser session, so that the pages and the API (which has no Django
session) answer the same. A sign-in sets it (``start_device_session``), and so does
every flow that checks the current password again (``confirm_password``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.utils import timezone

from accounts.client_info import ClientInfo
from accounts.exceptions import InvalidPassword, ReauthenticationRequired
from accounts.flows.device_sessions import as_session_uuid
from accounts.models import DeviceSession, User
from accounts.rate_limits import PASSWORD_CONFIRM_USER, RateLimited, hit, record_rate_limited
from accounts.revocation import SessionId


class SensitiveAction(StrEnum):
    """Actions that could hand the account to someone at the keyboard of a signed-in device."""

    # Need a sign-in or password entry on this device within the window:
    END_OTHER_SESSION = "end_other_session"
    END_OTHER_SESSIONS = "end_other_sessions"
    # Take the current password with the request itself (the form has a password field):
    CHANGE_PASSWORD = "change_password"  # noqa: S105 an action name
    CHANGE_EMAIL = "change_email"
    DELETE_ACCOUNT = "delete_account"


# Which actions the window applies to. The others ask for the password every time
# (confirm_password), which is stronger; entering it there also opens the window.
NEEDS_RECENT_AUTHENTICATION = frozenset({SensitiveAction.END_OTHER_SESSION, SensitiveAction.END_OTHER_SESSIONS})
NEEDS_THE_PASSWORD = frozenset(SensitiveAction) - NEEDS_RECENT_AUTHENTICATION


def recent_since(now: datetime | None = None) -> datetime:
    """Authentication at or after this moment counts as recent."""
    return (now or timezone.now()) - timedelta(seconds=settings.ACCOUNTS_REAUTHENTICATION_WINDOW)


def did_recently_authenticate(*, session_id: SessionId | None) -> bool:
    """Whether this live device session signed in or confirmed the password within the window."""
    session_uuid = as_session_uuid(session_id)
    if session_uuid is None:
        return False
    return DeviceSession.objects.live().filter(pk=session_uuid, authenticated_at__gte=recent_since()).exists()


def require_recent_authentication(*, session_id: SessionId | None, action: SensitiveAction) -> None:
    """The guard: ReauthenticationRequired when ``action`` needs a recent authentication this device lacks.

    The page view turns the error into a redirect to the password page (and back);
    the API answers 403 with its code, and the client calls POST /api/auth/reauthenticate/.
    """
    if action in NEEDS_THE_PASSWORD:
        # A programming error, not the person's: a recent sign-in must never stand in for the password.
        raise ValueError(f"{action} takes the password itself (confirm_password), not a recent authentication.")
    if not did_recently_authenticate(session_id=session_id):
        raise ReauthenticationRequired


def record_authentication(*, session_id: SessionId | None) -> None:
    """The person just proved who they are on this device: the window starts again."""
    session_uuid = as_session_uuid(session_id)
    if session_uuid is not None:
        DeviceSession.objects.filter(pk=session_uuid).update(authenticated_at=timezone.now())


def confirm_password(*, user: User, password: str, field: str = "password", client: ClientInfo | None = None) -> None:
    """Check the current password again before a sensitive action (limited per user)."""
    try:
        hit(PASSWORD_CONFIRM_USER, f"user:{user.pk}", record=False)
    except RateLimited:
        record_rate_limited(PASSWORD_CONFIRM_USER, client=client, user=user)
        raise
    if not isinstance(password, str) or not user.check_password(password):
        raise InvalidPassword(field=field)


def reauthenticate(
    *, user: User, session_id: SessionId | None, password: str, client: ClientInfo | None = None
) -> None:
    """Password entry that opens the window for sensitive actions on this device."""
    confirm_password(user=user, password=password, client=client)
    record_authentication(session_id=session_id)
