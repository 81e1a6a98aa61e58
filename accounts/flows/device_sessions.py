"""Device sessions: starting them, rotating their refresh tokens, ending them."""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts.access_tokens import AccessToken
from accounts.audit import EventKind, record_event
from accounts.client_info import ClientInfo
from accounts.exceptions import PasskeyUnknown, RefreshTokenInvalid, RefreshTokenReused, SessionNotFound
from accounts.flows.account_lock import lock_account
from accounts.models import USER_AGENT_MAX_LENGTH, DeviceSession, Passkey, RotatedRefreshToken, User
from accounts.rate_limits import REFRESH_SESSION, RateLimited, hit, ip_key, record_rate_limited
from accounts.revocation import SessionId, mark_sessions_ended
from accounts.tokens import (
    generate_token,
    hash_token,
    is_sealed_successor,
    is_well_formed,
    seal_successor,
    token_matches,
    unseal_successor,
)

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
    # The session's one live refresh token: new at sign-in and at a rotation,
    # the same successor again for a replay of the just-rotated token.
    refresh_token: str


class RefreshRateLimited(RateLimited):
    """The session refreshes too often: no access token this time.

    The token was rotated all the same (the answer is decided after the one
    statement that rotates it), so the 429 carries the live successor in the
    cookie; the client is never left holding a token that would read as reuse.
    """

    def __init__(self, error: RateLimited, refresh_token: str):
        super().__init__(error.retry_after)
        self.refresh_token = refresh_token


def _access_token_for(session: DeviceSession, user: User) -> tuple[str, datetime]:
    token = AccessToken.for_session(
        user_id=user.pk,
        session_id=session.pk,
        email_verified=user.email_verified,
        amr=session.amr,
        auth_time=session.authenticated_at,
    )
    return str(token), token.expires_at


def start_device_session(
    *,
    user: User,
    ip_address: str | None,
    user_agent: str,
    via: str = "api",
    amr: list[str] | None = None,
    second_factor: bool = False,
    passkey: Passkey | None = None,
) -> IssuedTokens:
    """Open a device session for a user who has just proven who they are (``amr``: how; a password
    unless said otherwise; ``passkey``: the one it signed in with, if any)."""
    now = timezone.now()
    amr = list(amr) if amr is not None else ["pwd"]
    refresh = generate_token()
    with transaction.atomic():
        if passkey is not None:
            # In turn with the passkey's removal, which holds the account's row too: either this
            # session exists when the removal ends the passkey's sessions, or the passkey is gone.
            lock_account(user)
            if not Passkey.objects.filter(pk=passkey.pk).exists():
                raise PasskeyUnknown
        session = DeviceSession.objects.create(
            user=user,
            created_at=now,
            last_used_at=now,
            authenticated_at=now,
            amr=amr,
            second_factor_at=now if second_factor else None,
            passkey=passkey,
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
            amr=" ".join(amr),
        )
    access, access_expires_at = _access_token_for(session, user)
    return IssuedTokens(
        session=session, access_token=access, access_expires_at=access_expires_at, refresh_token=refresh
    )


# Error reports (a DEBUG page, an admin email, an error tracker) must not show the tokens.
@sensitive_variables("refresh_token", "successor")
def rotate_refresh_token(*, refresh_token: str, ip_address: str | None, user_agent: str) -> IssuedTokens:
    """Exchange a refresh token for its successor and a fresh access token.

    The successor is random; it is kept beside the rotated token's hash, sealed
    so that only the presented token itself unseals it (tokens.seal_successor).
    So every presentation of the just-rotated token within the grace window by
    the client that rotated it (same user agent) gets the same successor: a
    retry after a lost answer and concurrent tabs all converge on the one live
    token. Any other presentation of an exchanged token is reuse (it was
    copied) and ends the session. The rotation is one conditional UPDATE, so
    two processes presenting one token can never both rotate it.
    """
    if not is_well_formed(refresh_token):
        raise RefreshTokenInvalid
    client = ClientInfo(ip_address=ip_address, user_agent=user_agent[:USER_AGENT_MAX_LENGTH])
    presented_hash = hash_token(refresh_token)
    successor = generate_token()
    now = timezone.now()
    claimed = _claim_rotation(
        presented_hash=presented_hash,
        successor=successor,
        sealed=seal_successor(successor, presented=refresh_token),
        client=client,
        now=now,
    )
    if claimed is None:
        session, successor = _replayed_session(
            refresh_token=refresh_token, presented_hash=presented_hash, client=client, now=now
        )
    else:
        session = claimed
    try:
        hit(REFRESH_SESSION, f"session:{session.pk}", record=False)
    except RateLimited as error:
        record_rate_limited(REFRESH_SESSION, client=client, user=User(pk=session.user_id))
        raise RefreshRateLimited(error, successor) from None
    access, access_expires_at = _access_token_for(session, session.user)
    return IssuedTokens(
        session=session, access_token=access, access_expires_at=access_expires_at, refresh_token=successor
    )


_CLAIM_ROTATION_SQL = """
WITH claimed AS (
    UPDATE {sessions}
    SET refresh_token_hash = %s, rotated_at = %s, last_used_at = %s, ip_address = %s, user_agent = %s
    WHERE id = ({live_session}) AND refresh_token_hash = %s AND revoked_at IS NULL
    RETURNING id, user_id, amr, authenticated_at
), remembered AS (
    INSERT INTO {rotated} (token_hash, session_id, rotated_at, successor_sealed)
    SELECT %s, id, %s, %s FROM claimed
), forgotten AS (
    -- Only the latest rotation's successor is ever unsealed: the older ones go, so that no
    -- chain of them is kept (this does not see the row the INSERT above adds).
    UPDATE {rotated} SET successor_sealed = ''
    WHERE session_id = (SELECT id FROM claimed) AND successor_sealed <> ''
)
SELECT claimed.id, claimed.user_id, claimed.amr, claimed.authenticated_at, users.email_verified_at
FROM claimed JOIN {users} AS users ON users.id = claimed.user_id
"""


# Stand-ins for the values that change from one rotation to the next, so that the SQL of the
# claiming statement is compiled from DeviceSession.objects.live() once per process.
_AT = datetime(2000, 1, 1, tzinfo=UTC)
_PRESENTED = "presented-token-hash"


@functools.cache
def _claim_rotation_statement(idle_lifetime: int) -> tuple[str, tuple[Any, ...]]:
    """The claiming statement for PostgreSQL and its parameters with the stand-ins in them.

    Compiled from the one definition of a live session (it depends on the idle lifetime
    only through the stand-in values, which is why that is the cache key)."""
    live = DeviceSession.objects.live(_AT).filter(refresh_token_hash=_PRESENTED).values("pk")
    live_sql, live_params = live.query.sql_with_params()
    sql = _CLAIM_ROTATION_SQL.format(
        sessions=DeviceSession._meta.db_table,
        rotated=RotatedRefreshToken._meta.db_table,
        users=User._meta.db_table,
        live_session=live_sql,
    )
    return sql, tuple(live_params)


@sensitive_variables("successor", "sealed", "new_values")
def _claim_rotation(
    *, presented_hash: str, successor: str, sealed: str, client: ClientInfo, now: datetime
) -> DeviceSession | None:
    """Make ``successor`` the live token of the live session whose token is ``presented_hash``.

    None when no live session holds that token (it was rotated already, or never
    existed). On PostgreSQL this is one statement, so one round trip: the UPDATE
    takes the row lock and re-checks the token after waiting for a concurrent
    rotation, and the exchanged token is remembered in the same statement.
    """
    new_values = (hash_token(successor), now, now, client.ip_address, client.user_agent)
    if connection.vendor == "postgresql":
        idle_lifetime = settings.ACCOUNTS_REFRESH_IDLE_LIFETIME
        sql, live_params = _claim_rotation_statement(idle_lifetime)
        shift = now - _AT
        # The stand-ins replaced by this rotation's values: the time, times relative to it, the hash.
        params = [
            presented_hash if value == _PRESENTED else value + shift if isinstance(value, datetime) else value
            for value in live_params
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, (*new_values, *params, presented_hash, presented_hash, now, sealed))
            row = cursor.fetchone()
        if row is None:
            return None
        session_id, user_id, amr, authenticated_at, email_verified_at = row
        return DeviceSession(
            pk=session_id,
            # Django has psycopg read jsonb as text and decodes it in the field; a raw cursor must too.
            amr=json.loads(amr) if isinstance(amr, str) else amr,
            authenticated_at=authenticated_at,
            user=User(pk=user_id, email_verified_at=email_verified_at),
        )
    # Elsewhere (SQLite, which has no row locks but serialises writers): the
    # same conditional UPDATE inside a transaction.
    live = DeviceSession.objects.live(now).filter(refresh_token_hash=presented_hash).values("pk")
    with transaction.atomic():
        session = DeviceSession.objects.select_related("user").filter(pk__in=live).first()
        if session is None:
            return None
        claimed = DeviceSession.objects.filter(
            pk=session.pk, refresh_token_hash=presented_hash, revoked_at__isnull=True
        ).update(
            refresh_token_hash=new_values[0],
            rotated_at=now,
            last_used_at=now,
            ip_address=client.ip_address,
            user_agent=client.user_agent,
        )
        if claimed != 1:
            return None
        RotatedRefreshToken.objects.filter(session_id=session.pk).exclude(successor_sealed="").update(
            successor_sealed=""
        )
        RotatedRefreshToken.objects.create(
            token_hash=presented_hash, session_id=session.pk, rotated_at=now, successor_sealed=sealed
        )
    return session


@sensitive_variables("refresh_token", "successor")
def _replayed_session(
    *, refresh_token: str, presented_hash: str, client: ClientInfo, now: datetime
) -> tuple[DeviceSession, str]:
    """The session and its live token, for the just-rotated token presented again in grace by
    the client that rotated it; RefreshTokenReused (the session ends) for any other exchanged token."""
    rotated = RotatedRefreshToken.objects.select_related("session__user").filter(token_hash=presented_hash).first()
    if rotated is None or not rotated.session.is_live(now):
        raise RefreshTokenInvalid
    session = rotated.session
    grace = timedelta(seconds=settings.ACCOUNTS_REFRESH_REUSE_GRACE)
    just_rotated = rotated.rotated_at == session.rotated_at and now - rotated.rotated_at <= grace
    # The user agent is not a secret: a plain comparison (compare_digest refuses non-ASCII text).
    if just_rotated and session.user_agent == client.user_agent:
        if not is_sealed_successor(rotated.successor_sealed):
            # Rotated by a process of the previous release (a rolling deploy), which kept no
            # successor (or the value is damaged): this client cannot be given it, but it is no
            # thief either.
            raise RefreshTokenInvalid
        unsealed = unseal_successor(rotated.successor_sealed, presented=refresh_token)
        successor = next((token for token in unsealed if token_matches(token, session.refresh_token_hash)), None)
        if successor is not None and _may_replay_from(session, client=client, now=now):
            return session, successor
    _end_reused_session(session.pk, client=client, now=now, in_grace=just_rotated)
    raise RefreshTokenReused


# A thief who copied the token and the user agent could ride along with the owner by presenting
# each just-rotated token within the grace window. From the rotation's network that is the
# owner's own retry or tab; from another network it is allowed once in this long (a phone
# switching networks as its answer was lost), and the second time is reuse.
SPLIT_REPLAY_ALLOWANCE = timedelta(hours=1)


def _may_replay_from(session: DeviceSession, *, client: ClientInfo, now: datetime) -> bool:
    if session.ip_address is None or ip_key(client.ip_address) == ip_key(session.ip_address):
        return True
    # Claimed for this rotation in one conditional UPDATE: any number of replays of one rotation
    # (two tabs retrying over the new network) count once, and concurrent replays of two
    # rotations cannot both pass.
    allowed = (
        DeviceSession.objects.filter(pk=session.pk, rotated_at=session.rotated_at)
        .filter(
            Q(split_replay_at__isnull=True)
            | Q(split_replay_at=session.rotated_at)
            | Q(split_replay_at__lte=now - SPLIT_REPLAY_ALLOWANCE)
        )
        .update(split_replay_at=session.rotated_at)
    )
    return allowed == 1


def _end_reused_session(session_id: uuid.UUID, *, client: ClientInfo, now: datetime, in_grace: bool) -> None:
    with transaction.atomic():
        session = DeviceSession.objects.select_for_update(of=("self",)).select_related("user").get(pk=session_id)
        if not session.is_live(now):
            raise RefreshTokenInvalid  # ended meanwhile (a concurrent replay of the same copy)
        _end_sessions(DeviceSession.objects.filter(pk=session.pk), reason=EndReason.REFRESH_REUSE, now=now)
        record_event(
            kind=EventKind.REFRESH_REUSE_DETECTED,
            user=session.user,
            client=client,
            session=session.pk,
            in_grace_from_another_client=in_grace,
        )
    logger.warning("Refresh token reuse detected; device session %s ended.", session_id)


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
    """End the session this refresh token belongs to, if any (sign-out).

    A token already rotated counts too: a sign-out racing a refresh in another tab, or after a
    thief rotated first, still ends the session."""
    if not is_well_formed(refresh_token):
        return None
    presented_hash = hash_token(refresh_token)
    session = DeviceSession.objects.filter(refresh_token_hash=presented_hash).first()
    if session is None:
        rotated = RotatedRefreshToken.objects.select_related("session").filter(token_hash=presented_hash).first()
        session = rotated.session if rotated is not None else None
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
    opened_with: Iterable[Passkey] | None = None,
) -> int:
    """End every live session of ``user`` except ``keep_session_id`` (only those that signed in
    with one of the passkeys ``opened_with``, if given); returns how many.

    ``record=False`` when the calling flow writes its own event for the change.
    """
    user_id = user if isinstance(user, int) else user.pk
    sessions = DeviceSession.objects.filter(user_id=user_id)
    if opened_with is not None:
        sessions = sessions.filter(passkey__in=[passkey.pk for passkey in opened_with])
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
