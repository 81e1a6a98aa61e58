"""The Redis cache (django-redis) keeps one client per server, and still behaves as Django's cache."""

import time

import pytest
import redis
from django.conf import settings
from django.core.cache import caches
from django_redis.cache import RedisCache

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis; runs in CI's PostgreSQL + Redis pass")


def make_cache(location="redis://127.0.0.1:6379/9", **params):
    return RedisCache(location, {"KEY_PREFIX": "redis-cache-test", **params})


def built_clients(backend: RedisCache) -> list:
    return [client for client in backend.client._clients if client is not None]


def test_every_operation_gets_the_same_client():
    backend = make_cache()
    first = backend.client.get_client(write=False)
    assert backend.client.get_client(write=False) is first
    assert backend.client.get_client(write=True) is first  # one server: reads and writes share its pool


def test_each_server_has_its_own_client():
    backend = make_cache("redis://primary.invalid:6379/0,redis://replica.invalid:6379/0")
    writer = backend.client.get_client(write=True)
    reader = backend.client.get_client(write=False)
    assert writer is not reader
    assert writer.connection_pool is not reader.connection_pool
    assert backend.client.get_client(write=True) is writer
    assert backend.client.get_client(write=False) is reader


def test_clients_are_built_lazily_and_connect_lazily():
    backend = make_cache("redis://nowhere.invalid:6379/0")
    assert built_clients(backend) == []
    backend.client.get_client()  # no network yet: redis-py connects on the first command
    assert len(built_clients(backend)) == 1


def test_the_configured_options_reach_the_connections():
    backend = make_cache("redis://timeouts.invalid:6379/0", OPTIONS={"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1})
    connection_kwargs = backend.client.get_client().connection_pool.connection_kwargs
    assert connection_kwargs["socket_connect_timeout"] == 1
    assert connection_kwargs["socket_timeout"] == 1


def test_an_unreachable_server_raises_redis_own_error_quickly():
    """What the callers' "Redis is down" policies catch: redis-py's error, not django-redis's
    ConnectionInterrupted wrapper (IGNORE_EXCEPTIONS is off), and within the timeouts."""
    backend = make_cache("redis://127.0.0.1:1/0", OPTIONS={"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1})
    started = time.monotonic()
    for operation in (
        lambda: backend.get("key"),
        lambda: backend.add("key", 1),
        lambda: backend.incr("key"),
        lambda: backend.set_many({"key": 1}),
    ):
        with pytest.raises(redis.exceptions.ConnectionError):
            operation()
    assert time.monotonic() - started < 2


@needs_redis
def test_the_configured_cache_round_trips_through_redis():
    cache = caches["default"]
    assert isinstance(cache, RedisCache)
    client = cache.client.get_client(write=True)
    cache.set("answer", {"n": 42}, timeout=30)
    assert cache.get("answer") == {"n": 42}
    assert cache.add("answer", "other") is False
    assert cache.add("counter", 0) is True
    assert cache.incr("counter") == 1
    assert cache.incr("counter") == 2
    cache.delete_many(["answer", "counter"])
    assert cache.get("answer") is None
    assert cache.get("counter") is None
    assert built_clients(cache) == [client]  # every operation above went through one client


@needs_redis
def test_keys_carry_the_configured_prefix():
    cache = caches["default"]
    cache.set("prefixed", 1, timeout=30)
    client = cache.client.get_client(write=True)
    assert client.exists(f"{settings.CACHES['default']['KEY_PREFIX']}:1:prefixed") == 1
    cache.delete("prefixed")


@needs_redis
def test_incr_counts_existing_keys_and_refuses_missing_ones_like_djangos():
    cache = caches["default"]
    with pytest.raises(ValueError):
        cache.incr("never-set")
    assert cache.get("never-set") is None  # refusing did not create it
    cache.set("hits", 5, timeout=30)
    assert cache.incr("hits") == 6
    assert cache.incr("hits", 10) == 16
    assert cache.decr("hits", 7) == 9
    assert cache.get("hits") == 9
    cache.delete("hits")


@needs_redis
def test_incr_still_works_after_redis_forgets_its_scripts():
    cache = caches["default"]
    cache.set("hits", 1, timeout=30)
    assert cache.incr("hits") == 2
    cache.client.get_client(write=True).script_flush()  # as after a Redis restart or failover
    assert cache.incr("hits") == 3
    cache.delete("hits")


@needs_redis
def test_incr_is_one_round_trip():
    cache = caches["default"]
    cache.set("hits", 1, timeout=30)
    cache.incr("hits")
    client = cache.client.get_client(write=True)
    commands = []
    original = client.execute_command

    def counting(*args, **options):
        commands.append(args[0])
        return original(*args, **options)

    client.execute_command = counting
    try:
        assert cache.incr("hits") == 3
    finally:
        del client.execute_command
    # django-redis sends its EXISTS-then-INCRBY Lua script with EVAL: one atomic round trip
    # (Django's own Redis cache asks EXISTS, then INCRBY: two, with a race between them).
    assert commands == ["EVAL"]
    cache.delete("hits")


@needs_redis
def test_a_rate_limit_counter_is_one_round_trip_and_the_same_counter_as_django_ratelimits(monkeypatch):
    import uuid

    from django_ratelimit.core import get_usage

    from accounts.rate_limits import REFRESH_SESSION, _usage

    _usage(REFRESH_SESSION, f"session:{uuid.uuid4()}", increment=False)  # Redis has the script now
    key = f"session:{uuid.uuid4()}"
    client = caches["default"].client.get_client(write=True)
    commands = []
    original = client.execute_command
    monkeypatch.setattr(client, "execute_command", lambda *a, **k: commands.append(a[0]) or original(*a, **k))

    ours = _usage(REFRESH_SESSION, key, increment=True)
    assert commands == ["EVALSHA"]
    assert ours["count"] == 1
    theirs = get_usage(
        None, group=REFRESH_SESSION.name, key=lambda _group, _request: key, rate=REFRESH_SESSION.rate, increment=True
    )
    assert theirs["count"] == 2  # the one counter, under the key django-ratelimit computes
    assert theirs["limit"] == ours["limit"] == 60
    assert abs(theirs["time_left"] - ours["time_left"]) <= 1
    peeked = _usage(REFRESH_SESSION, key, increment=False)
    assert peeked["count"] == 2
    assert _usage(REFRESH_SESSION, key, increment=True)["count"] == 3


@needs_redis
def test_a_rate_limit_counter_always_expires(monkeypatch):
    """A counter that lost its expiry (it expired between two calls and was made again) gets it back."""
    import uuid

    from django_ratelimit import core

    from accounts.rate_limits import REFRESH_SESSION, _usage

    key = f"session:{uuid.uuid4()}"
    backend = caches["default"]
    client = backend.client.get_client(write=True)
    _most, period = core._split_rate(REFRESH_SESSION.rate)
    stored = backend.make_key(
        core._make_cache_key(REFRESH_SESSION.name, core._get_window(key, period), REFRESH_SESSION.rate, key, None)
    )
    assert _usage(REFRESH_SESSION, key, increment=False)["count"] == 0
    assert 0 < client.ttl(stored) <= period + core.EXPIRATION_FUDGE
    client.persist(stored)
    assert client.ttl(stored) == -1
    assert _usage(REFRESH_SESSION, key, increment=True)["count"] == 1
    assert 0 < client.ttl(stored) <= period + core.EXPIRATION_FUDGE
