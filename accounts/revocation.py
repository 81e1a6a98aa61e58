"""Whether a device session is still live: a per-process view, the shared cache, then the database.

Every API request asks this, so a live session must cost neither a database
query nor, in the common case, a network round trip.

The per-process view (``local_view``), used only with Redis:

- it remembers sessions the cache or the database has just called live, until
  the moment they would end by themselves (at most one access-token lifetime);
- ending a session publishes its id on a Redis channel, and a thread in every
  process drops it from that process's view the moment the message arrives
  (bench/revocation_bound.py measures how long that takes across two servers);
- it is consulted only while that thread's subscription is up and answering
  pings. Disconnected, every check goes to the cache or the database (fails
  closed), and on reconnecting the view starts empty, because messages sent
  meanwhile were lost;
- an answer is remembered only if no invalidation arrived while it was being
  looked up (a generation counter), so a publish racing a lookup is never
  overwritten by the stale answer.

The shared cache (Redis in production) beneath it:

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
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

# A device session's primary key, or the ``sid`` claim / page-session value that names it.
SessionId = uuid.UUID | str

_LIVE = "live"
_ENDED = "ended"
_ENDED_CHANNEL = "auth:session-ended"


def ended_channel() -> str:
    """The Redis channel on which ended sessions' ids are published (under the cache's key prefix)."""
    return cache.make_key(_ENDED_CHANNEL)


def _key(session_id: SessionId) -> str:
    return f"auth:session-state:{session_id}"


def _live_entry(ends_at: float) -> str:
    # "live:<when it ends by itself>", so that a process can remember it until then.
    return f"{_LIVE}:{ends_at:.0f}"


def _live_until(state: object) -> float | None:
    """When a cached "live" entry says the session ends by itself; None for anything else."""
    if not isinstance(state, str) or not state.startswith(_LIVE + ":"):
        return None
    try:
        return float(state[len(_LIVE) + 1 :])
    except ValueError:
        return None


class LocalSessionView:
    """This process's memory of live sessions, trusted only while the invalidation channel is up."""

    # Bounds the memory: a full view starts again empty, which only costs cache lookups.
    MAX_ENTRIES = 20_000
    # The subscriber pings this often when the channel is quiet, and calls the
    # channel dead (and the view unusable) when nothing came back for DEAD_AFTER.
    PING_INTERVAL = 1.0
    DEAD_AFTER = 3.0
    RECONNECT_DELAY = 0.5

    def __init__(self, redis_client: Callable[[], Any] | None = None) -> None:
        # The client to subscribe with; by default the cache's own Redis (tests pass another).
        self._redis_client = redis_client or _cache_redis_client
        self._live_until: dict[str, float] = {}
        self.generation = 0
        self.connected = False
        self._pid: int | None = None
        self.thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # --- what requests use --------------------------------------------------------------------------

    def is_known_live(self, session_id: str) -> bool:
        if not self.connected:
            self._ensure_listening()
            return False
        until = self._live_until.get(session_id)
        if until is None:
            return False
        if until > time.time():
            return True
        self._live_until.pop(session_id, None)
        return False

    def remember(self, session_id: str, until: float, *, generation: int) -> None:
        """Remember a live answer looked up since ``generation``, unless an invalidation came meanwhile."""
        if not self.connected or generation != self.generation:
            return
        if len(self._live_until) >= self.MAX_ENTRIES:
            self._live_until.clear()
        self._live_until[session_id] = min(until, time.time() + _ttl())
        # Checked again after writing: an invalidation between the first check and the
        # write bumped the generation, and must win.
        if generation != self.generation:
            self._live_until.pop(session_id, None)

    def forget(self, session_ids: Iterable[str]) -> None:
        self.generation += 1
        for session_id in session_ids:
            self._live_until.pop(session_id, None)

    def forget_all(self) -> None:
        self.generation += 1
        self._live_until.clear()

    def reset(self, *, connected: bool) -> None:
        self.generation += 1
        self.connected = connected
        self._live_until.clear()

    # --- the subscriber thread ------------------------------------------------------------------------

    def _ensure_listening(self) -> None:
        """Start this process's subscriber once (again after a fork); only with Redis as the cache."""
        if self._pid == os.getpid() or (self._redis_client is _cache_redis_client and not _cache_is_redis()):
            return
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self.reset(connected=False)
            self.thread = threading.Thread(target=self._listen_forever, name="session-ended-subscriber", daemon=True)
            self.thread.start()

    def _listen_forever(self) -> None:
        try:
            while self._pid == os.getpid():
                try:
                    self._listen()
                except Exception as error:
                    if self.connected:
                        logger.warning("Session-ended channel lost (%s); checking every request.", type(error).__name__)
                self.reset(connected=False)
                time.sleep(self.RECONNECT_DELAY)
        finally:
            # However this thread ends, nothing is trusted without it (the next check starts another).
            self._pid = None
            self.reset(connected=False)

    def after_fork_in_child(self) -> None:
        """A forked process has none of its parent's threads: it starts with an empty, untrusted view."""
        self._pid = None
        self._start_lock = threading.Lock()
        self.reset(connected=False)

    def _listen(self) -> None:
        pubsub = self._redis_client().pubsub()
        try:
            pubsub.subscribe(ended_channel())
            heard_at = pinged_at = time.monotonic()
            while self._pid == os.getpid():
                message = pubsub.get_message(timeout=self.PING_INTERVAL)
                now = time.monotonic()
                if message is not None:
                    heard_at = now
                    self._receive(message)
                elif now - heard_at > self.DEAD_AFTER:
                    raise TimeoutError("no answer to pings")
                if now - pinged_at >= self.PING_INTERVAL:
                    pubsub.ping()
                    pinged_at = now
        finally:
            pubsub.close()

    def _receive(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            # (Re)subscribed: whatever was published before now is lost to us.
            self.reset(connected=True)
        elif kind == "message":
            data = message.get("data") or b""
            text = data.decode() if isinstance(data, bytes) else str(data)
            self.forget(text.split(","))


def _cache_is_redis() -> bool:
    return str(settings.CACHES["default"]["BACKEND"]).startswith("django_redis.")


def _cache_redis_client() -> Any:
    from django_redis import get_redis_connection  # type: ignore[import-untyped]

    return get_redis_connection("default")


local_view = LocalSessionView()
os.register_at_fork(after_in_child=local_view.after_fork_in_child)


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
    name = str(session_id)
    if local_view.is_known_live(name):
        return True
    generation = local_view.generation
    key = _key(session_id)
    try:
        state = cache.get(key)
    except Exception as error:  # the cache is down: fall back to the database, never to "live"
        logger.warning("Session-state cache unavailable (%s); asking the database.", type(error).__name__)
        return _ends_at_in_database(session_id) is not None
    until = _live_until(state)
    if until is not None:
        local_view.remember(name, until, generation=generation)
        return True
    if state == _LIVE:  # written before entries said when they end
        return True
    ends_at = _ends_at_in_database(session_id)
    if state == _ENDED:
        return ends_at is not None
    if ends_at is None:
        entry, timeout = _ENDED, _ttl()
    else:
        entry, timeout = (
            _live_entry(ends_at.timestamp()),
            min(_ttl(), math.floor((ends_at - timezone.now()).total_seconds())),
        )
    if timeout > 0:
        try:
            # add(), not set(): never overwrite an "ended" written meanwhile.
            added = cache.add(key, entry, timeout=timeout)
        except Exception as error:
            logger.warning("Could not cache a session state (%s).", type(error).__name__)
        else:
            if added and ends_at is not None:
                local_view.remember(name, ends_at.timestamp(), generation=generation)
    return ends_at is not None


def mark_sessions_ended(session_ids: Iterable[SessionId]) -> None:
    """Publish that these sessions ended; call right after the database change,
    inside its transaction (see the module docstring for why that is safe).

    Published again once the transaction commits: if the first attempt was lost
    (a Redis hiccup, the entry evicted before the commit), the second one still
    reaches the cache and every process's view.
    """
    names = [str(session_id) for session_id in session_ids]
    if not names:
        return
    _publish_ended(names)
    transaction.on_commit(lambda: _publish_ended(names))


def _publish_ended(names: list[str]) -> None:
    local_view.forget(names)
    entries = {_key(name): _ENDED for name in names}
    try:
        cache.set_many(entries, timeout=_ttl())
        if _cache_is_redis():
            _cache_redis_client().publish(ended_channel(), ",".join(names))
    except Exception as error:
        # Their "live" entries, if any, expire within one access-token lifetime, and every
        # process's view of them with it.
        logger.error("Could not publish %d ended session(s) to the cache (%s).", len(entries), type(error).__name__)
