"""The security audit log: recording events without secrets, and reading them back.

Not django-auditlog or django-simple-history: they record changes to model rows,
while this log records security events (a failed sign-in, a reuse of a refresh
token, a staff action), many of which change no row, keyed by a hash of the
address rather than the address itself.
"""

import uuid

from django.db.models import QuerySet
from django.utils.crypto import salted_hmac

from accounts.client_info import ClientInfo
from accounts.email_address import InvalidEmailAddress, normalize_email
from accounts.models import USER_AGENT_MAX_LENGTH, SecurityEvent, User

EventKind = SecurityEvent.Kind
_DETAIL_STRING_LIMIT = 200
# Detail keys that must never be written, whatever a caller passes.
_FORBIDDEN_DETAIL_WORDS = ("password", "token", "hash", "secret")
# What callers may put in an event's detail; everything but a number, a flag
# or None is stored as (at most _DETAIL_STRING_LIMIT characters of) text.
DetailValue = str | int | bool | uuid.UUID | None


def email_fingerprint(email: str) -> str:
    """A keyed hash of an address: the same address gives the same value, but
    the log cannot be turned back into addresses without SECRET_KEY."""
    try:
        canonical = normalize_email(email)
    except InvalidEmailAddress:
        canonical = str(email).strip().lower()
    return salted_hmac("accounts.audit.email", canonical, algorithm="sha256").hexdigest()


def _clean_detail(detail: dict[str, DetailValue]) -> dict[str, str | int | bool | None]:
    cleaned: dict[str, str | int | bool | None] = {}
    for key, value in detail.items():
        if any(word in key.lower() for word in _FORBIDDEN_DETAIL_WORDS):
            raise ValueError(f"Refusing to write {key!r} to the audit log.")
        if isinstance(value, (bool, int)) or value is None:
            cleaned[key] = value
        else:
            cleaned[key] = str(value)[:_DETAIL_STRING_LIMIT]
    return cleaned


def record_event(
    *,
    kind: str,
    user: User | None = None,
    actor: User | None = None,
    client: ClientInfo | None = None,
    email: str | None = None,
    **detail: DetailValue,
) -> SecurityEvent:
    """Write one event. Call it inside the transaction of the change it records.

    ``email`` is stored only as a keyed hash, and only when no user is known.
    """
    client = client or ClientInfo()
    return SecurityEvent.objects.create(
        kind=kind,
        user=user,
        actor=actor,
        email_hash=email_fingerprint(email) if email and user is None else "",
        ip_address=client.ip_address,
        user_agent=client.user_agent[:USER_AGENT_MAX_LENGTH],
        detail=_clean_detail(detail),
    )


# What a person sees of their own account under "recent security activity".
USER_VISIBLE_KINDS = [
    EventKind.SIGN_IN_SUCCEEDED,
    EventKind.SIGN_IN_FAILED,
    EventKind.SIGN_OUT,
    EventKind.REFRESH_REUSE_DETECTED,
    EventKind.SESSION_ENDED,
    EventKind.PASSWORD_RESET_COMPLETED,
    EventKind.PASSWORD_CHANGED,
    EventKind.EMAIL_CHANGE_REQUESTED,
    EventKind.EMAIL_CHANGE_CONFIRMED,
    EventKind.EMAIL_CHANGE_CANCELLED,
    EventKind.EMAIL_VERIFIED,
    EventKind.MFA_ENABLED,
    EventKind.MFA_DISABLED,
    EventKind.MFA_FAILED,
    EventKind.RECOVERY_CODES_REGENERATED,
    EventKind.RECOVERY_CODE_USED,
    EventKind.PASSKEY_ADDED,
    EventKind.PASSKEY_REMOVED,
    EventKind.PASSKEY_RENAMED,
    EventKind.PASSKEY_REFUSED,
    EventKind.SOCIAL_CONNECTED,
    EventKind.SOCIAL_DISCONNECTED,
    EventKind.SOCIAL_FAILED,
]


def recent_events_of(*, user: User | int, limit: int = 10) -> QuerySet[SecurityEvent]:
    """The user's own latest security events, newest first."""
    user_id = user if isinstance(user, int) else user.pk
    return SecurityEvent.objects.filter(user_id=user_id, kind__in=USER_VISIBLE_KINDS).order_by("-created_at", "-id")[
        :limit
    ]
