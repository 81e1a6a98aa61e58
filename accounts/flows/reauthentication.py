"""Re-authentication: what counts as recent, which actions need it, and the one guard both front ends call.

Modelled on django-allauth's ``account/internal/flows/reauthentication.py``, but the
moment of the last authentication is kept on the device session (``authenticated_at``),
not in a browser session, so that the pages and the API (which has no Django
session) answer the same. A sign-in sets it (``start_device_session``), and so does
every flow that checks the current password again (``confirm_password``).

A second factor proven on the device (at sign-in or by re-authenticating with a code) is kept
beside it (``second_factor_at``): managing the second factors of an account that has them needs
that one to be recent, so a password alone (known to an intruder, perhaps) cannot remove them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import amr as methods
from accounts.client_info import ClientInfo
from accounts.exceptions import InvalidPassword, PasskeyUnknown, ReauthenticationRequired, SecondFactorRequired
from accounts.flows.account_lock import lock_account
from accounts.flows.device_sessions import as_session_uuid
from accounts.flows.second_factor import has_mfa, prove_second_factor
from accounts.models import DeviceSession, Passkey, User
from accounts.rate_limits import PASSWORD_CONFIRM_USER, RateLimited, hit, record_rate_limited
from accounts.revocation import SessionId


class SensitiveAction(StrEnum):
    """Actions that could hand the account to someone at the keyboard of a signed-in device."""

    # Need a sign-in or password entry on this device within the window:
    END_OTHER_SESSION = "end_other_session"
    END_OTHER_SESSIONS = "end_other_sessions"
    # Setting up, turning off or replacing second factors (and their recovery codes):
    MANAGE_MFA = "manage_mfa"
    # Connecting or disconnecting a provider (a way to sign in without the password):
    MANAGE_SIGN_IN_METHODS = "manage_sign_in_methods"
    # Take the current password with the request itself (the form has a password field):
    CHANGE_PASSWORD = "change_password"  # noqa: S105 an action name
    CHANGE_EMAIL = "change_email"
    DELETE_ACCOUNT = "delete_account"


# Which actions the window applies to. The others ask for the password every time
# (confirm_password), which is stronger; entering it there also opens the window.
NEEDS_RECENT_AUTHENTICATION = frozenset(
    {
        SensitiveAction.END_OTHER_SESSION,
        SensitiveAction.END_OTHER_SESSIONS,
        SensitiveAction.MANAGE_MFA,
        SensitiveAction.MANAGE_SIGN_IN_METHODS,
    }
)
# For an account with a second factor, these need that factor within the window, not just any sign-in.
NEEDS_A_RECENT_SECOND_FACTOR = frozenset({SensitiveAction.MANAGE_MFA, SensitiveAction.MANAGE_SIGN_IN_METHODS})
NEEDS_THE_PASSWORD = frozenset(SensitiveAction) - NEEDS_RECENT_AUTHENTICATION


def recent_since(now: datetime | None = None) -> datetime:
    """Authentication at or after this moment counts as recent."""
    return (now or timezone.now()) - timedelta(seconds=settings.ACCOUNTS_REAUTHENTICATION_WINDOW)


def did_recently_authenticate(*, session_id: SessionId | None, second_factor: bool = False) -> bool:
    """Whether this live device session signed in or confirmed the password (``second_factor``:
    proved a second factor) within the window."""
    session_uuid = as_session_uuid(session_id)
    if session_uuid is None:
        return False
    recent = {"second_factor_at__gte" if second_factor else "authenticated_at__gte": recent_since()}
    return DeviceSession.objects.live().filter(pk=session_uuid, **recent).exists()


def require_recent_authentication(
    *, session_id: SessionId | None, action: SensitiveAction, user: User | None = None
) -> None:
    """The guard: ReauthenticationRequired when ``action`` needs a recent authentication this device lacks.

    The page view turns the error into a redirect to the password page (and back);
    the API answers 403 with its code, and the client calls POST /api/auth/reauthenticate/.
    """
    if action in NEEDS_THE_PASSWORD:
        # A programming error, not the person's: a recent sign-in must never stand in for the password.
        raise ValueError(f"{action} takes the password itself (confirm_password), not a recent authentication.")
    if action in NEEDS_A_RECENT_SECOND_FACTOR and user is None:
        raise ValueError(f"{action} depends on the account's factors: pass the user.")
    if action in NEEDS_A_RECENT_SECOND_FACTOR and user is not None and has_mfa(user):
        require_recent_second_factor(user=user, session_id=session_id)
    elif not did_recently_authenticate(session_id=session_id):
        raise ReauthenticationRequired


def require_recent_second_factor(*, user: User, session_id: SessionId | None) -> None:
    """For an account with a second factor: SecondFactorRequired unless it was proven on this device
    within the window.

    What changes who controls the account (its address, its password, its factors, deleting it)
    needs every factor the account has (ASVS 5.0 7.5.1), not only the password, which an intruder
    holding a stolen session may know too. Accounts without one are unaffected."""
    if has_mfa(user) and not did_recently_authenticate(session_id=session_id, second_factor=True):
        raise SecondFactorRequired


def record_authentication(
    *, session_id: SessionId | None, amr: list[str] | None = None, passkey: Passkey | None = None
) -> None:
    """The person just proved who they are on this device (``amr``: with what, a password unless
    said): the window starts again, and the session's methods gain these. ``passkey``: the one
    proven (or just added) here, which the session now rests on: removing it ends the session."""
    session_uuid = as_session_uuid(session_id)
    if session_uuid is None:
        return
    amr = amr or [methods.PASSWORD]
    now = timezone.now()
    with transaction.atomic():
        if passkey is not None:
            # In turn with the passkey's removal (account, then session, as the removal locks them):
            # a session cannot come to rest on a passkey that is being removed.
            lock_account(passkey.user_id)
            if not Passkey.objects.filter(pk=passkey.pk).exists():
                raise PasskeyUnknown
        session = DeviceSession.objects.select_for_update().filter(pk=session_uuid).first()
        if session is None:
            return
        session.authenticated_at = now
        session.amr = methods.combine(session.amr, amr)
        fields = ["authenticated_at", "amr"]
        if methods.proves_second_factor(amr):
            session.second_factor_at = now
            fields.append("second_factor_at")
        if passkey is not None:
            session.passkey = passkey
            fields.append("passkey")
        session.save(update_fields=fields)


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
    *,
    user: User,
    session_id: SessionId | None,
    password: str | None = None,
    code: str | None = None,
    client: ClientInfo | None = None,
) -> None:
    """The password or a second-factor code, entered again: opens the window for sensitive actions
    on this device (a code also the one for managing second factors)."""
    if code is not None:
        prove_second_factor(user=user, code=code, client=client)
        record_authentication(session_id=session_id, amr=[methods.ONE_TIME_CODE])
        return
    confirm_password(user=user, password=password or "", client=client)
    record_authentication(session_id=session_id, amr=[methods.PASSWORD])
