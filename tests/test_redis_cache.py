"""The Redis cache backend keeps one client per connection pool, and still behaves as Django's cache."""

import pytest
from django.conf import settings
from django.core.cache import caches

from accounts.redis_cache import ReusedClientRedisCache

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis; runs in CI's PostgreSQL + Redis pass")


def make_cache(location="redis://127.0.0.1:6379/9", **params):
    return ReusedClientRedisCache(location, {"KEY_PREFIX": "redis-cache-test", **params})


def test_every_operation_gets_the_same_client():
    backend = make_cache()
    first = backend._cache.get_client("a")
    assert backend._cache.get_client("b") is first
    assert backend._cache.get_client("c", write=True) is first  # one server: reads and writes share its pool


def test_each_server_has_its_own_client():
    backend = make_cache("redis://primary.invalid:6379/0,redis://replica.invalid:6379/0")
    writer = backend._cache.get_client(write=True)
    reader = backend._cache.get_client()
    assert writer is not reader
    assert writer.connection_pool is not reader.connection_pool
    assert backend._cache.get_client(write=True) is writer
    assert backend._cache.get_client() is reader


def test_clients_are_built_lazily_and_connect_lazily():
    backend = make_cache("redis://nowhere.invalid:6379/0")
    assert backend._cache._clients == {}
    backend._cache.get_client()  # no network yet: redis-py connects on the first command
    assert len(backend._cache._clients) == 1


@needs_redis
def test_the_configured_cache_round_trips_through_redis():
    cache = caches["default"]
    assert isinstance(cache, ReusedClientRedisCache)
    cache.set("answer", {"n": 42}, timeout=30)
    assert cache.get("answer") == {"n": 42}
    assert cache.add("answer", "other") is False
    assert cache.add("counter", 0) is True
    assert cache.incr("counter") == 1
    assert cache.incr("counter") == 2
    cache.delete_many(["answer", "counter"])
    assert cache.get("answer") is None
    assert cache.get("counter") is None
    assert len(cache._cache._clients) == 1  # every operation above went through one client


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
    cache._cache.get_client(write=True).script_flush()  # as after a Redis restart or failover
    assert cache.incr("hits") == 3
    cache.delete("hits")


@needs_redis
def test_incr_is_one_round_trip():
    cache = caches["default"]
    cache.set("hits", 1, timeout=30)
    cache.incr("hits")  # loads the script once
    client = cache._cache.get_client(write=True)
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
    assert commands == ["EVALSHA"]
    cache.delete("hits")
