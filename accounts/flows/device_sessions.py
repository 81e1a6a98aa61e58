"""Device sessions: starting them, rotating their refresh tokens, ending them."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.access_tokens import AccessToken
from accounts.audit import EventKind, record_event
from accounts.client_info import ClientInfo
from accounts.exceptions import RefreshTokenInvalid, RefreshTokenReused, SessionNotFound
from accounts.models import USER_AGENT_MAX_LENGTH, DeviceSession, RotatedRefreshToken, User
from accounts.rate_limits import REFRESH_SESSION, RateLimited, hit, record_rate_limited
from accounts.revocation import SessionId, mark_sessions_ended
from accounts.tokens import generate_token, hash_token, is_well_formed

logger = logging.getLogger(__name__)
EndReason = DeviceSession.EndReason


def as_session_uuid(session_id: SessionId | None) -> uuid.UUID | None:
    """A device session id from a cookie, a token claim or a URL; None when it is not one."""
    if session_id is None or isinstance(session_id, uuid.UUID):
        return session_id
    try:
        return uuid.UUID(str(session_id))
    except ValueError:
        return None


@dataclass(frozen=True)
class IssuedTokens:
    session: DeviceSession
    access_token: str
    access_expires_at: datetime
    # None when a concurrent tab presented the just-rotated token within the
    # grace window: it gets an access token, the session keeps one refresh token.
    refresh_token: str | None


def _access_token_for(session: DeviceSession, user: User) -> tuple[str, datetime]:
    token = AccessToken.for_session(user_id=user.pk, session_id=session.pk, email_verified=user.email_verified)
    return str(token), token.expires_at


def start_device_session(*, user: User, ip_address: str | None, user_agent: str, via: str = "api") -> IssuedTokens:
    """Open a device session for a user who has just proven who they are."""
    now = timezone.now()
    refresh = generate_token()
    with transaction.atomic():
        session = DeviceSession.objects.create(
            user=user,
            created_at=now,
            last_used_at=now,
            authenticated_at=now,
            expires_at=now + timedelta(seconds=settings.ACCOUNTS_REFRESH_ABSOLUTE_LIFETIME),
            ip_address=ip_address,
            user_agent=user_agent[:USER_AGENT_MAX_LENGTH],
            refresh_token_hash=hash_token(refresh),
        )
        record_event(
            kind=EventKind.SIGN_IN_SUCCEEDED,
            user=user,
            client=ClientInfo(ip_address=ip_address, user_agent=user_agent),
            session=session.pk,
            via=via,
        )
    access, access_expires_at = _access_token_for(session, user)
    return IssuedTokens(
        session=session, access_token=access, access_expires_at=access_expires_at, refresh_token=refresh
    )


def rotate_refresh_token(*, refresh_token: str, ip_address: str | None, user_agent: str) -> IssuedTokens:
    """Exchange a refresh token for a new one and a fresh access token.

    A token that was already exchanged ends the whole session (it was copied),
    except the one just replaced, presented again within the grace window by a
    concurrent tab: that gets an access token and no new refresh token. Rows
    are locked, so this holds across many processes on PostgreSQL.
    """
    if not is_well_formed(refresh_token):
        raise RefreshTokenInvalid
    client = ClientInfo(ip_address=ip_address, user_agent=user_agent)
    try:
        return _rotate(presented_hash=hash_token(refresh_token), client=client)
    except _RefreshLimited as limited:
        record_rate_limited(REFRESH_SESSION, client=client, user=limited.user)
        raise limited.error from None


class _RefreshLimited(Exception):
    """Leaves the refresh transaction (rolling it back) when the session is over its limit."""

    def __init__(self, error: RateLimited, user: User):
        super().__init__(error.message)
        self.error, self.user = error, user


def _limit_refresh(session: DeviceSession) -> None:
    try:
        hit(REFRESH_SESSION, f"session:{session.pk}", record=False)
    except RateLimited as error:
        raise _RefreshLimited(error, session.user) from None


def _rotate(*, presented_hash: str, client: ClientInfo) -> IssuedTokens:
    now = timezone.now()
    ip_address, user_agent = client.ip_address, client.user_agent
    reused_session_id = None
    with transaction.atomic():
        session = (
            DeviceSession.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(refresh_token_hash=presented_hash)
            .first()
        )
        if session is not None:
            if not session.is_live(now):
                raise RefreshTokenInvalid
            _limit_refresh(session)
            new_refresh = generate_token()
            # Conditional, so that without row locks (SQLite) a lost race is
            # noticed instead of forking the session into two live tokens.
            claimed = DeviceSession.objects.filter(pk=session.pk, refresh_token_hash=presented_hash).update(
                refresh_token_hash=hash_token(new_refresh),
                rotated_at=now,
                last_used_at=now,
                ip_address=ip_address,
                user_agent=user_agent[:USER_AGENT_MAX_LENGTH],
            )
            if claimed == 1:
                RotatedRefreshToken.objects.create(token_hash=presented_hash, session_id=session.pk, rotated_at=now)
                access, access_expires_at = _access_token_for(session, session.user)
                return IssuedTokens(
                    session=session, access_token=access, access_expires_at=access_expires_at, refresh_token=new_refresh
                )
        rotated = RotatedRefreshToken.objects.filter(token_hash=presented_hash).first()
        if rotated is None:
            raise RefreshTokenInvalid
        session = (
            DeviceSession.objects.select_for_update(of=("self",)).select_related("user").get(pk=rotated.session_id)
        )
        if not session.is_live(now):
            raise RefreshTokenInvalid
        grace = timedelta(seconds=settings.ACCOUNTS_REFRESH_REUSE_GRACE)
        if rotated.rotated_at == session.rotated_at and now - rotated.rotated_at <= grace:
            _limit_refresh(session)
            access, access_expires_at = _access_token_for(session, session.user)
            return IssuedTokens(
                session=session, access_token=access, access_expires_at=access_expires_at, refresh_token=None
            )
        _end_sessions(DeviceSession.objects.filter(pk=session.pk), reason=EndReason.REFRESH_REUSE, now=now)
        record_event(kind=EventKind.REFRESH_REUSE_DETECTED, user=session.user, client=client, session=session.pk)
        reused_session_id = session.pk
    logger.warning("Refresh token reuse detected; device session %s ended.", reused_session_id)
    raise RefreshTokenReused


def _end_sessions(sessions: QuerySet[DeviceSession], *, reason: str, now: datetime | None = None) -> list[uuid.UUID]:
    now = now or timezone.now()
    ids = list(sessions.filter(revoked_at__isnull=True).values_list("pk", flat=True))
    if ids:
        DeviceSession.objects.filter(pk__in=ids, revoked_at__isnull=True).update(revoked_at=now, revoked_reason=reason)
        mark_sessions_ended(ids)
    return ids


def _record_ended(
    *, user_id: int, ids: list[uuid.UUID], reason: str, client: ClientInfo | None, actor: User | None
) -> None:
    if not ids:
        return
    kind = EventKind.SIGN_OUT if reason == EndReason.LOGOUT else EventKind.SESSION_ENDED
    detail: dict[str, Any] = {"session": ids[0]} if len(ids) == 1 else {"sessions": len(ids)}
    record_event(kind=kind, user=User(pk=user_id), actor=actor, client=client, reason=reason, **detail)


def end_session_by_refresh_token(
    *, refresh_token: str, reason: str = EndReason.LOGOUT, client: ClientInfo | None = None
) -> DeviceSession | None:
    """End the session this refresh token belongs to, if any (sign-out)."""
    if not is_well_formed(refresh_token):
        return None
    session = DeviceSession.objects.filter(refresh_token_hash=hash_token(refresh_token)).first()
    if session is None:
        return None
    with transaction.atomic():
        ids = _end_sessions(DeviceSession.objects.filter(pk=session.pk), reason=reason)
        _record_ended(user_id=session.user_id, ids=ids, reason=reason, client=client, actor=None)
    return session


def end_device_session(
    *,
    user: User | int,
    session_id: SessionId,
    reason: str,
    client: ClientInfo | None = None,
    actor: User | None = None,
) -> None:
    """End one of ``user``'s live sessions; SessionNotFound if it is not theirs or already ended."""
    session_uuid = as_session_uuid(session_id)
    if session_uuid is None:
        raise SessionNotFound
    user_id = user if isinstance(user, int) else user.pk
    sessions = DeviceSession.objects.filter(pk=session_uuid, user_id=user_id, revoked_at__isnull=True)
    if not sessions.exists():
        raise SessionNotFound
    with transaction.atomic():
        ids = _end_sessions(sessions, reason=reason)
        _record_ended(user_id=user_id, ids=ids, reason=reason, client=client, actor=actor)


def end_user_sessions(
    *,
    user: User | int,
    reason: str,
    keep_session_id: SessionId | None = None,
    client: ClientInfo | None = None,
    actor: User | None = None,
    record: bool = True,
) -> int:
    """End every live session of ``user`` except ``keep_session_id``; returns how many.

    ``record=False`` when the calling flow writes its own event for the change.
    """
    user_id = user if isinstance(user, int) else user.pk
    sessions = DeviceSession.objects.filter(user_id=user_id)
    keep = as_session_uuid(keep_session_id)
    if keep is not None:
        sessions = sessions.exclude(pk=keep)
    with transaction.atomic():
        ids = _end_sessions(sessions, reason=reason)
        if record:
            _record_ended(user_id=user_id, ids=ids, reason=reason, client=client, actor=actor)
    return len(ids)


def live_sessions(*, user: User | int) -> QuerySet[DeviceSession]:
    """The user's sessions that can still be used, most recently used first."""
    user_id = user if isinstance(user, int) else user.pk
    return DeviceSession.objects.live().filter(user_id=user_id).order_by("-last_used_at")


def note_page_use(*, session_id: str) -> None:
    """Using the pages counts as using the device session: its idle lifetime starts again."""
    session_uuid = as_session_uuid(session_id)
    if session_uuid is None:
        return
    DeviceSession.objects.filter(pk=session_uuid, revoked_at__isnull=True).update(last_used_at=timezone.now())
