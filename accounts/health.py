"""Health checks: /healthz/ (process alive) and /readyz/ (database and cache reachable; the email queue's state)."""

import logging

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse

from accounts.outbox import queue_health

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    """Alive: answers without touching the database or the cache."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """Ready to serve: the database answers a query and the cache a round trip."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        checks["database"] = "ok"
    except Exception as error:
        logger.warning("Readiness: database unavailable (%s).", type(error).__name__)
        checks["database"] = "unavailable"
    try:
        cache.set("readyz:probe", "1", timeout=5)
        checks["cache"] = "ok" if cache.get("readyz:probe") == "1" else "unavailable"
    except Exception as error:
        logger.warning("Readiness: cache unavailable (%s).", type(error).__name__)
        checks["cache"] = "unavailable"
    ready = all(value == "ok" for value in checks.values())
    if not ready:
        return JsonResponse({"status": "unavailable", **checks}, status=503)
    return JsonResponse({"status": "ok", **checks, "email_queue": _email_queue()})


def _email_queue() -> dict[str, object]:
    """The outbox, for monitoring: a stuck queue (the worker is down, or the provider refuses
    everything) is reported here but does not make this instance unready: it can still serve."""
    health = queue_health()
    if health.stuck:
        logger.warning("Readiness: the email queue is stuck (oldest due %ss ago).", health.oldest_due_seconds)
    return {
        "status": "stuck" if health.stuck else "ok",
        "waiting": health.waiting,
        "oldest_due_seconds": health.oldest_due_seconds,
        "failed_last_day": health.failed_last_day,
    }
