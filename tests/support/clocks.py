"""A stopped clock for tests: frozen at a start, moved only forward, with Redis entries aged alike.

time-machine moves Python's clock, which the database queries and the local-memory cache read.
Redis keeps its own clock: each move ages its entries by hand, so that an entry that would have
expired meanwhile is gone there too (and one that would not, is not). Use ``stopped_clock(start)``
(or the ``clock`` fixture of conftest.py, stopped at the test module's START).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import time_machine
from django.core.cache import caches
from django.utils import timezone


class Clock:
    """The test's clock: stopped at ``start``, moved only forward, by at(), advance() or shift()."""

    def __init__(self, traveller, start: datetime):
        self._traveller = traveller
        self.start = start

    def now(self) -> datetime:
        return timezone.now()

    def at(self, since_start: timedelta) -> datetime:
        """Move to start + since_start; returns that moment."""
        self.advance(self.start + since_start - timezone.now())
        return timezone.now()

    def advance(self, delta: timedelta) -> None:
        assert delta >= timedelta(0), "the clock only moves forward"
        self._traveller.shift(delta)
        _age_redis_entries(delta)

    def shift(self, delta: timedelta | float) -> None:
        """time-machine's name for advance(); a number is seconds."""
        self.advance(delta if isinstance(delta, timedelta) else timedelta(seconds=delta))


@contextmanager
def stopped_clock(start: datetime) -> Iterator[Clock]:
    with time_machine.travel(start, tick=False) as traveller:
        yield Clock(traveller, start)


def _redis_client(cache):
    """The redis-py client behind the default cache, or None when it is not Redis."""
    client = getattr(cache, "client", None)  # django-redis
    if client is not None and hasattr(client, "get_client"):
        return client.get_client(write=True)
    inner = getattr(cache, "_cache", None)  # Django's RedisCache and the project's subclass of it
    if inner is not None and hasattr(inner, "get_client"):
        return inner.get_client(write=True)
    return None


def _age_redis_entries(delta: timedelta) -> None:
    cache = caches["default"]
    client = _redis_client(cache)
    if client is None:
        return
    elapsed_ms = int(delta.total_seconds() * 1000)
    for key in client.scan_iter(match=cache.make_key("*")):
        left_ms = client.pttl(key)
        if left_ms < 0:  # no expiry (-1), or expired meanwhile (-2)
            continue
        if left_ms <= elapsed_ms:
            client.delete(key)
        else:
            client.pexpire(key, left_ms - elapsed_ms)
