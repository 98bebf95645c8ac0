"""/healthz: is the database reachable, and Redis when it is configured."""
import logging

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

logger = logging.getLogger(__name__)


def _database_status() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # any failure means "not healthy", never a 500
        logger.exception("health check: database unreachable")
        return "error"
    return "ok"


def _redis_status() -> str:
    if not settings.REDIS_URL:
        return "not configured"
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2
        )
        client.ping()
    except Exception:
        logger.exception("health check: redis unreachable")
        return "error"
    return "ok"


def _worker_status() -> str:
    from shop.workers import worker_health

    try:
        return worker_health()
    except Exception:
        logger.exception("health check: worker heartbeat unreadable")
        return "error"


@never_cache
def healthz(request):
    """The web tier's health (database, Redis: 200 or 503) and, beside it, the workers'.

    `worker` (ok, stale, none, not configured) never makes the web tier
    unhealthy: a load balancer must not take web processes out because a
    worker is down; monitoring alerts on it.
    """
    checks = {"database": _database_status(), "redis": _redis_status()}
    healthy = all(value in ("ok", "not configured") for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "error", **checks, "worker": _worker_status()},
        status=200 if healthy else 503,
    )
