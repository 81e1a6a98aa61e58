"""Django's Redis cache with one client object per connection pool instead of one per operation."""

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class ReusedClientRedisCacheClient(RedisCacheClient):
    """Django builds a new ``redis.Redis`` for every cache call; on the hot path (every
    API request checks its session's state, every refresh counts a rate limit) that
    construction costs more CPU than the network round trip itself. A client is only a
    thread-safe facade over its connection pool, so one per pool is enough."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(pool)
        if client is None:
            client = self._clients[pool] = self._client(connection_pool=pool)
        return client


class ReusedClientRedisCache(RedisCache):
    """``django.core.cache.backends.redis.RedisCache``, built on ReusedClientRedisCacheClient."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusedClientRedisCacheClient
