"""The per-process view of live sessions: trusted only while its Redis subscription is up, emptied by
every reconnect, never overwritten by a lookup that raced an invalidation, and fed by ended sessions'
ids published on Redis; a live session then costs no cache round trip."""

import os
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path
from unittest import mock

import pytest
import redis
from django.conf import settings
from django.core.cache import cache

from accounts import revocation
from accounts.flows.device_sessions import end_device_session, start_device_session
from accounts.models import DeviceSession
from accounts.revocation import LocalSessionView, ended_channel, is_session_live, local_view
from bench.harness import PrivateRedis, wait_until

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis; runs in CI's PostgreSQL + Redis pass")


def a_session_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def connected_view():
    view = LocalSessionView()
    view.connected = True
    return view


# --- The view's own rules (no Redis needed) -----------------------------------------------------------


def test_a_remembered_live_session_is_known_until_it_would_end(connected_view):
    session_id = a_session_id()
    connected_view.remember(session_id, time.time() + 60, generation=connected_view.generation)
    assert connected_view.is_known_live(session_id) is True
    with mock.patch("accounts.revocation.time.time", return_value=time.time() + 61):
        assert connected_view.is_known_live(session_id) is False


def test_nothing_is_known_while_the_channel_is_down(connected_view):
    session_id = a_session_id()
    connected_view.remember(session_id, time.time() + 60, generation=connected_view.generation)
    connected_view.connected = False
    assert connected_view.is_known_live(session_id) is False


def test_nothing_is_remembered_while_the_channel_is_down():
    view = LocalSessionView()
    session_id = a_session_id()
    view.remember(session_id, time.time() + 60, generation=view.generation)
    view.connected = True
    assert view.is_known_live(session_id) is False


def test_a_lookup_that_raced_an_invalidation_is_not_remembered(connected_view):
    session_id = a_session_id()
    generation = connected_view.generation  # the lookup starts
    connected_view.forget([session_id])  # the session ends meanwhile
    connected_view.remember(session_id, time.time() + 60, generation=generation)  # the stale answer
    assert connected_view.is_known_live(session_id) is False


def test_an_invalidation_forgets_only_the_sessions_it_names(connected_view):
    ended, other = a_session_id(), a_session_id()
    for session_id in (ended, other):
        connected_view.remember(session_id, time.time() + 60, generation=connected_view.generation)
    connected_view._receive({"type": "message", "data": f"{ended},{a_session_id()}".encode()})
    assert connected_view.is_known_live(ended) is False
    assert connected_view.is_known_live(other) is True


def test_a_resubscription_empties_the_view(connected_view):
    session_id = a_session_id()
    connected_view.remember(session_id, time.time() + 60, generation=connected_view.generation)
    connected_view._receive({"type": "subscribe", "data": 1})
    assert connected_view.connected is True
    assert connected_view.is_known_live(session_id) is False


def test_an_entry_lasts_at_most_one_access_token_lifetime(connected_view):
    session_id = a_session_id()
    connected_view.remember(session_id, time.time() + 86400, generation=connected_view.generation)
    later = time.time() + settings.JWT_ACCESS_TOKEN_LIFETIME + 61
    with mock.patch("accounts.revocation.time.time", return_value=later):
        assert connected_view.is_known_live(session_id) is False


def test_a_full_view_starts_again_empty(connected_view):
    first = a_session_id()
    connected_view.remember(first, time.time() + 60, generation=connected_view.generation)
    with mock.patch.object(LocalSessionView, "MAX_ENTRIES", 1):
        connected_view.remember(a_session_id(), time.time() + 60, generation=connected_view.generation)
    assert connected_view.is_known_live(first) is False


def test_without_redis_there_is_no_view_and_every_check_asks_the_cache(user, settings, monkeypatch):
    # The embedded default's cache, in whichever pass this runs, and a process that has not yet
    # looked at any session (this test process's own view may be subscribed to the Redis pass's).
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "view"}}
    fresh = LocalSessionView()
    monkeypatch.setattr(revocation, "local_view", fresh)
    issued = start_device_session(user=user, ip_address=None, user_agent="pytest")
    with mock.patch.object(cache, "get", wraps=cache.get) as cache_get:
        for _ in range(3):
            assert is_session_live(issued.session.pk) is True
    assert cache_get.call_count == 3
    assert fresh.connected is False
    assert fresh.thread is None  # no subscriber without Redis


# --- The subscriber, against the real Redis -----------------------------------------------------------


def wait_connected(view: LocalSessionView, timeout: float = 10) -> None:
    view.is_known_live(a_session_id())  # starts the subscriber
    assert wait_until(lambda: view.connected, timeout=timeout, interval=0.02), "the subscriber never connected"


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_live_session_costs_no_cache_round_trip_once_known(user):
    wait_connected(local_view)
    issued = start_device_session(user=user, ip_address=None, user_agent="pytest")
    assert is_session_live(issued.session.pk) is True  # looked up once
    with mock.patch.object(cache, "get", wraps=cache.get) as cache_get:
        for _ in range(5):
            assert is_session_live(issued.session.pk) is True
    assert cache_get.call_count == 0


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_session_ended_here_is_refused_here_at_once(user):
    wait_connected(local_view)
    issued = start_device_session(user=user, ip_address=None, user_agent="pytest")
    assert is_session_live(issued.session.pk) is True
    end_device_session(user=user, session_id=issued.session.pk, reason="logout")
    assert is_session_live(issued.session.pk) is False


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_session_ended_by_another_process_is_forgotten_when_its_id_is_published(user):
    wait_connected(local_view)
    issued = start_device_session(user=user, ip_address=None, user_agent="pytest")
    assert is_session_live(issued.session.pk) is True
    assert local_view.is_known_live(str(issued.session.pk)) is True
    # What another process's ending does: the database, the cache entry, the message; not this view.
    DeviceSession.objects.filter(pk=issued.session.pk).update(revoked_at=issued.session.created_at)
    cache.set(revocation._key(issued.session.pk), "ended")
    began = time.monotonic()
    redis.Redis.from_url(settings.REDIS_URL).publish(ended_channel(), str(issued.session.pk))

    assert wait_until(lambda: not is_session_live(issued.session.pk), timeout=2, interval=0.001)
    assert time.monotonic() - began < 1


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_an_ended_entry_in_the_cache_is_never_remembered_as_live(user):
    """The ending transaction writes "ended" before it commits: the database still says live,
    which is answered, but not remembered."""
    wait_connected(local_view)
    issued = start_device_session(user=user, ip_address=None, user_agent="pytest")
    cache.set(revocation._key(issued.session.pk), "ended")
    assert is_session_live(issued.session.pk) is True  # not committed yet, as far as the database says
    assert local_view.is_known_live(str(issued.session.pk)) is False


@pytest.fixture
def private_redis():
    root = Path(tempfile.mkdtemp(prefix="session-view-"))
    server = PrivateRedis(root)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def view_on(server: PrivateRedis) -> LocalSessionView:
    return LocalSessionView(
        redis_client=lambda: redis.Redis(port=server.port, socket_timeout=1, socket_connect_timeout=1)
    )


def test_the_view_fails_closed_while_redis_is_down_and_starts_empty_when_it_is_back(private_redis):
    view = view_on(private_redis)
    wait_connected(view)
    session_id = a_session_id()
    view.remember(session_id, time.time() + 60, generation=view.generation)
    assert view.is_known_live(session_id) is True

    private_redis.stop()
    assert wait_until(lambda: not view.connected, timeout=view.DEAD_AFTER + 3, interval=0.02)
    assert view.is_known_live(session_id) is False

    private_redis.start()
    assert wait_until(lambda: view.connected, timeout=10, interval=0.05)
    assert view.is_known_live(session_id) is False  # messages sent meanwhile were lost: nothing is trusted


def test_the_view_fails_closed_when_redis_stops_answering(private_redis):
    view = view_on(private_redis)
    wait_connected(view)
    session_id = a_session_id()
    view.remember(session_id, time.time() + 60, generation=view.generation)
    os.kill(private_redis.process.pid, signal.SIGSTOP)  # hung: the connection stays open, nothing answers
    try:
        assert wait_until(lambda: not view.connected, timeout=view.DEAD_AFTER + 3, interval=0.02)
        assert view.is_known_live(session_id) is False
    finally:
        os.kill(private_redis.process.pid, signal.SIGCONT)
    assert wait_until(lambda: view.connected, timeout=10, interval=0.05)


def test_the_view_hears_ids_published_on_its_channel(private_redis):
    view = view_on(private_redis)
    wait_connected(view)
    ended, other = a_session_id(), a_session_id()
    for session_id in (ended, other):
        view.remember(session_id, time.time() + 60, generation=view.generation)
    redis.Redis(port=private_redis.port).publish(ended_channel(), ended)
    assert wait_until(lambda: not view.is_known_live(ended), timeout=2, interval=0.001)
    assert view.is_known_live(other) is True


def test_a_forked_child_starts_with_an_untrusted_empty_view():
    """gunicorn forks its workers; a fork from a process whose view was trusted must not inherit it."""
    session_id = a_session_id()
    was_connected = local_view.connected
    local_view.connected = True
    local_view.remember(session_id, time.time() + 60, generation=local_view.generation)
    try:
        assert local_view.is_known_live(session_id) is True
        child = os.fork()
        if child == 0:  # the child: report through the exit status, never return into pytest
            os._exit(0 if not local_view.connected and not local_view.is_known_live(session_id) else 1)
        _pid, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        local_view.forget_all()
        local_view.connected = was_connected


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # it dies, as the test wants
def test_if_the_subscriber_thread_dies_nothing_is_trusted():
    def dies():
        raise SystemExit("the thread ends (not an Exception: it is not caught as a connection error)")

    view = LocalSessionView(redis_client=dies)
    view.connected = True
    view._ensure_listening()  # starts the thread, which dies at once
    assert view.thread is not None
    view.thread.join(timeout=5)
    assert not view.thread.is_alive()
    assert view._pid is None
    assert view.connected is False


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_an_end_whose_first_publish_was_lost_is_published_again_after_the_commit(user, monkeypatch):
    other_process = LocalSessionView()
    wait_connected(other_process)
    issued = start_device_session(user=user, ip_address=None, user_agent="pytest")
    session_id = str(issued.session.pk)
    other_process.remember(session_id, time.time() + 60, generation=other_process.generation)
    client = revocation._cache_redis_client()
    real_publish, attempts = client.publish, []

    def flaky_publish(channel, message):
        attempts.append(message)
        if len(attempts) == 1:
            raise redis.exceptions.TimeoutError("Timeout reading from socket")
        return real_publish(channel, message)

    monkeypatch.setattr(client, "publish", flaky_publish)
    end_device_session(user=user, session_id=issued.session.pk, reason="logout")

    assert attempts == [session_id, session_id]
    assert wait_until(lambda: not other_process.is_known_live(session_id), timeout=2, interval=0.001)
    assert cache.get(revocation._key(session_id)) == "ended"
