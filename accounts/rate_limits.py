"""Rate limits shared by the pages and the API of each action (django-ratelimit counters).

Counters live in the default cache: Redis in production, so every process and
host shares them. Keys are keyed hashes (addresses) or grouped IPs, never the
raw input. What happens when the cache cannot be reached is a deliberate choice
per action (``on_cache_failure``):

- ``allow``: the action goes ahead unlimited and the failure is logged. For
  sign-in, sign-up and refresh, where refusing everyone would be an outage and
  Argon2's cost still slows guessing.
- ``deny``: the action is refused. For confirming the current password while
  signed in (a stolen session must not get unlimited guesses) and for
  second-factor codes (cheap to guess, and the guesser knows the password).
- ``skip``: the request is answered as usual but its email is not sent. For
  reset and verification mails, so an outage cannot be used to flood inboxes
  and the answer still reveals nothing.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from django.conf import settings
from django.db import transaction

# django-ratelimit ships no type information.
from django_ratelimit import core as ratelimit_core  # type: ignore[import-untyped]
from django_ratelimit.core import get_usage  # type: ignore[import-untyped]
from django_redis.cache import RedisCache  # type: ignore[import-untyped]

from accounts.audit import EventKind, email_fingerprint, record_event
from accounts.client_info import ClientInfo

if TYPE_CHECKING:
    from accounts.models import User

logger = logging.getLogger(__name__)


class RateLimited(Exception):
    """Too many attempts; try again in ``retry_after`` seconds."""

    code = "rate_limited"
    message = "Too many attempts. Please wait a little and try again."

    def __init__(self, retry_after: int):
        super().__init__(self.message)
        self.retry_after = max(1, int(retry_after))


class RateLimitUnavailable(Exception):
    """The counters could not be read and the action's policy is ``skip``."""


@dataclass(frozen=True)
class Limit:
    name: str
    on_cache_failure: Literal["allow", "deny", "skip"]

    @property
    def rate(self) -> str:
        return settings.ACCOUNTS_RATE_LIMITS[self.name]


SIGN_IN_ACCOUNT = Limit("sign_in_failures_per_account", "allow")
SIGN_IN_IP = Limit("sign_in_failures_per_ip", "allow")
SIGN_UP_IP = Limit("sign_up_per_ip", "allow")
RESET_MAIL_ADDRESS = Limit("password_reset_mails_per_address", "skip")
RESET_MAIL_IP = Limit("password_reset_mails_per_ip", "skip")
VERIFY_MAIL_ADDRESS = Limit("verification_mails_per_address", "skip")
VERIFY_MAIL_IP = Limit("verification_mails_per_ip", "skip")
# Sign-up sends the owner of an existing address an email; limited like the others.
SIGN_UP_MAIL_ADDRESS = Limit("sign_up_mails_per_address", "skip")
# Sign-in codes: emailed like the links above; a wrong code's counter lets an unreachable cache
# through, because each code's own attempts are counted in the database.
SIGN_IN_CODE_MAIL_ADDRESS = Limit("sign_in_code_mails_per_address", "skip")
SIGN_IN_CODE_MAIL_IP = Limit("sign_in_code_mails_per_ip", "skip")
SIGN_IN_CODE_IP = Limit("sign_in_code_failures_per_ip", "allow")
# The "no account here" answer to a code asked for an address without one: counted after the
# answer (so it says nothing), and past it the email is silently not sent.
NO_ACCOUNT_MAIL_ADDRESS = Limit("no_account_mails_per_address", "skip")
REFRESH_SESSION = Limit("refresh_per_session", "allow")
PASSWORD_CONFIRM_USER = Limit("password_confirmation_per_user", "deny")
# Wrong second-factor codes. A code is cheap to guess and the guesser already knows the password:
# without the counters, nothing else would slow them, so an unreachable cache refuses.
MFA_ACCOUNT = Limit("mfa_codes_per_account", "deny")
MFA_ACCOUNT_DAY = Limit("mfa_codes_per_account_per_day", "deny")
MFA_IP = Limit("mfa_codes_per_ip", "deny")
# Passkey prompts: each stores a challenge, so a client asking for them without end is refused. A
# passkey's answer cannot be guessed; an unreachable cache does not keep people from signing in.
PASSKEY_IP = Limit("passkey_prompts_per_ip", "allow")
# Sign-ins with a provider begun: each makes the server call the provider, so they are bounded.
SOCIAL_IP = Limit("social_sign_ins_per_ip", "allow")


def ip_key(ip_address: str | None) -> str:
    """The client's address as a limit key: IPv6 grouped by /64 (one subscriber's
    network), IPv4 as is."""
    if not ip_address:
        return "ip:unknown"
    address = ipaddress.ip_address(ip_address)
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return f"ip4:{address.ipv4_mapped}"
        return "ip6:" + str(ipaddress.ip_network(f"{address}/64", strict=False).network_address)
    return f"ip4:{address}"


def address_key(email: str) -> str:
    """The same for known and unknown addresses, so limits reveal nothing."""
    return "email:" + email_fingerprint(email)


class Usage(TypedDict):
    """What django-ratelimit's get_usage() answers, as far as these limits read it."""

    count: int
    limit: int
    time_left: int


_UNLIMITED: Usage = {"count": 0, "limit": 1, "time_left": 0}


# Count (by ARGV[2]: 1, or 0 to read) and make sure the counter expires: its first use sets the
# window's expiry, and a counter found without one (it expired between two calls and INCRBY made
# it again) gets it too, so no counter ever outlives its window.
_COUNT_SCRIPT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


def _counter_key(limit: Limit, key: str) -> tuple[str, int, int, int]:
    """django-ratelimit's cache key for ``key`` in the current window, with the limit, period and window end."""
    most, period = ratelimit_core._split_rate(limit.rate)
    window = ratelimit_core._get_window(key, period)
    return ratelimit_core._make_cache_key(limit.name, window, limit.rate, key, None), most, period, window


def _redis_usage(backend: Any, limit: Limit, key: str, *, increment: bool, amount: int | None = None) -> Usage:
    """django-ratelimit's counter in one Redis round trip (a script) instead of its two (``add``,
    then ``incr`` or ``get``): the same key, window, expiry and count, computed with its own functions.
    ``amount`` (instead of ``increment``) adds that much, -1 to give one back."""
    counter, most, period, window = _counter_key(limit, key)
    client = backend.client.get_client(write=True)
    step = amount if amount is not None else 1 if increment else 0
    count = client.register_script(_COUNT_SCRIPT)(
        keys=[backend.make_key(counter)], args=[period + ratelimit_core.EXPIRATION_FUDGE, step]
    )
    return {"count": int(count), "limit": most, "time_left": window - int(time.time())}


def _usage(limit: Limit, key: str, *, increment: bool) -> Usage | None:
    """django-ratelimit's counter, or None if the cache could not be reached."""
    if not getattr(settings, "RATELIMIT_ENABLE", True):
        return _UNLIMITED  # switched off (benchmarks); never in production
    try:
        usage: Usage | None
        backend = ratelimit_core.caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]
        if isinstance(backend, RedisCache):
            usage = _redis_usage(backend, limit, key, increment=increment)
        else:
            usage = get_usage(
                None, group=limit.name, key=lambda _group, _request: key, rate=limit.rate, increment=increment
            )
    except Exception as error:  # the cache's own errors (django-redis re-raises redis-py's, e.g. ConnectionError)
        logger.error("Rate-limit counter %s unavailable: %s", limit.name, type(error).__name__)
        return None
    if usage is None or usage.get("time_left") == -1:  # django-ratelimit's "could not count"
        logger.error("Rate-limit counter %s unavailable.", limit.name)
        return None
    return usage


def record_rate_limited(
    limit: Limit, *, client: ClientInfo | None = None, email: str | None = None, user: User | None = None
) -> None:
    """The audit event of a refused attempt, in its own transaction."""
    with transaction.atomic():
        record_event(kind=EventKind.RATE_LIMITED, user=user, client=client, email=email, limit=limit.name)


def _refuse(limit: Limit, usage: Usage, *, client: ClientInfo | None, email: str | None, record: bool) -> RateLimited:
    if record:
        record_rate_limited(limit, client=client, email=email)
    # django-ratelimit still counts the second at which the window ends as part
    # of it: one second more, so that waiting exactly Retry-After succeeds.
    return RateLimited(retry_after=max(1, math.ceil(usage["time_left"]) + 1))


def _on_failure(limit: Limit) -> None:
    if limit.on_cache_failure == "deny":
        raise RateLimited(retry_after=60)
    if limit.on_cache_failure == "skip":
        raise RateLimitUnavailable(limit.name)


def check(limit: Limit, key: str, *, client: ClientInfo | None = None, email: str | None = None) -> None:
    """Refuse if the counter has already reached the limit (does not count this attempt)."""
    usage = _usage(limit, key, increment=False)
    if usage is None:
        _on_failure(limit)
        return
    if usage["count"] >= usage["limit"]:
        raise _refuse(limit, usage, client=client, email=email, record=True)


def count(limit: Limit, key: str) -> None:
    """Count one attempt (a failure, for limits that count only failures)."""
    _usage(limit, key, increment=True)


def hit(
    limit: Limit, key: str, *, client: ClientInfo | None = None, email: str | None = None, record: bool = True
) -> None:
    """Count this attempt and refuse it if it goes over the limit.

    ``record=False`` inside a transaction that the refusal will roll back: the
    caller then records the event itself with record_rate_limited().
    """
    usage = _usage(limit, key, increment=True)
    if usage is None:
        _on_failure(limit)
        return
    if usage["count"] > usage["limit"]:
        raise _refuse(limit, usage, client=client, email=email, record=record)


def give_back(limit: Limit, key: str) -> None:
    """Uncount one attempt that hit() counted (it turned out to be one the limit is not about)."""
    _adjust(limit, key, forget=False)


def forget(limit: Limit, key: str) -> None:
    """Drop ``key``'s count in the current window (a security reset clears what an intruder ran up)."""
    _adjust(limit, key, forget=True)


def _adjust(limit: Limit, key: str, *, forget: bool) -> None:
    if not getattr(settings, "RATELIMIT_ENABLE", True):
        return
    try:
        backend = ratelimit_core.caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]
        counter = _counter_key(limit, key)[0]
        if forget:
            backend.delete(counter)
        elif isinstance(backend, RedisCache):
            _redis_usage(backend, limit, key, increment=False, amount=-1)
        else:
            with contextlib.suppress(ValueError):  # gone meanwhile (its window ended): nothing to give back
                backend.decr(counter)
    except Exception as error:  # the cache's own errors: the count stays, which errs on the safe side
        logger.error("Rate-limit counter %s could not be adjusted: %s", limit.name, type(error).__name__)


def may_send_link(*, per_address: Limit, per_ip: Limit, email: str, client: ClientInfo) -> bool:
    """Count one emailed link asked for ``email`` from this client, against both of its limits.

    RateLimited past either (alike for known and unknown addresses); False when the
    counters are unreachable: then send nothing rather than send without limit.
    """
    try:
        hit(per_address, address_key(email), client=client, email=email)
        hit(per_ip, ip_key(client.ip_address), client=client, email=email)
    except RateLimitUnavailable:
        return False
    return True
