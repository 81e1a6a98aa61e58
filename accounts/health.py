"""Health checks for load balancers: /healthz/ (process alive) and /readyz/ (database and cache reachable)."""

import logging

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse

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
    return JsonResponse({"status": "ok" if ready else "unavailable", **checks}, status=200 if ready else 503)
