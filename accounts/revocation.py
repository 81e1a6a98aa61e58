"""Whether a device session is still live, answered from the shared cache.

Every API request asks this, so a live session must not cost a database
query: the state of each session is kept in the cache (Redis in production).

- "live" in the cache is trusted. It can never outlive a revocation, because
  ending a session overwrites the entry with "ended" (inside the ending
  transaction, before it commits), and entries are only ever created with
  add(), which does not overwrite.
- "ended" is confirmed with the database, and never overwritten: if the
  transaction that wrote it rolled back, the session is still live, and the
  database says so. Only requests carrying an ended session's token pay for it.
- No entry (evicted, restarted, never set): the database decides and the
  answer is cached with add(). A "live" entry never outlives the moment the
  session would end by itself (idle or absolute lifetime): it is cached for
  at most the time left, and use only ever moves that moment later.
"""

import logging
import math
import uuid
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

logger = logging.getLogger(__name__)

# A device session's primary key, or the ``sid`` claim / page-session value that names it.
SessionId = uuid.UUID | str

_LIVE = "live"
_ENDED = "ended"


def _key(session_id: SessionId) -> str:
    return f"auth:session-state:{session_id}"


def _ttl() -> int:
    # After this long every access token that could name the session has
    # expired, so the entry has nothing left to protect.
    return settings.JWT_ACCESS_TOKEN_LIFETIME + 60


def _ends_at_in_database(session_id: SessionId) -> datetime | None:
    """When the live session ends by itself, or None if it is not live (or never existed)."""
    from accounts.models import DeviceSession

    try:
        session_uuid = uuid.UUID(str(session_id))
    except ValueError:
        return None
    row = DeviceSession.objects.live().filter(pk=session_uuid).values("expires_at", "last_used_at").first()
    if row is None:
        return None
    return DeviceSession(expires_at=row["expires_at"], last_used_at=row["last_used_at"]).ends_at


def is_session_live(session_id: SessionId) -> bool:
    """True while the session is live: not ended, within its idle and absolute lifetimes, of an active user."""
    key = _key(session_id)
    try:
        state = cache.get(key)
    except Exception as error:  # the cache is down: fall back to the database, never to "live"
        logger.warning("Session-state cache unavailable (%s); asking the database.", type(error).__name__)
        return _ends_at_in_database(session_id) is not None
    if state == _LIVE:
        return True
    ends_at = _ends_at_in_database(session_id)
    if state == _ENDED:
        return ends_at is not None
    if ends_at is None:
        entry, timeout = _ENDED, _ttl()
    else:
        entry, timeout = _LIVE, min(_ttl(), math.floor((ends_at - timezone.now()).total_seconds()))
    if timeout > 0:
        try:
            # add(), not set(): never overwrite an "ended" written meanwhile.
            cache.add(key, entry, timeout=timeout)
        except Exception as error:
            logger.warning("Could not cache a session state (%s).", type(error).__name__)
    return ends_at is not None


def mark_sessions_ended(session_ids: Iterable[SessionId]) -> None:
    """Publish that these sessions ended; call right after the database change,
    inside its transaction (see the module docstring for why that is safe)."""
    entries = {_key(session_id): _ENDED for session_id in session_ids}
    if not entries:
        return
    try:
        cache.set_many(entries, timeout=_ttl())
    except Exception as error:
        # Their "live" entries, if any, expire within one access-token lifetime.
        logger.error("Could not publish %d ended session(s) to the cache (%s).", len(entries), type(error).__name__)
