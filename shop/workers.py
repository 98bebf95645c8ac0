"""Is a Celery worker alive? Its own heartbeat, as /healthz reports it."""
from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from shop.models import WorkerHeartbeat


def worker_heartbeat_record(*, hostname: str, pid: int, started_at: datetime, consuming: bool = True) -> None:
    """Called by the worker itself every WORKER_HEARTBEAT_SECONDS."""
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname,
        defaults={"pid": pid, "started_at": started_at, "seen_at": timezone.now(), "consuming": consuming})


def worker_health(*, now: datetime | None = None) -> str:
    """How the workers are, from their heartbeats.

    ok: one beat within three intervals while taking tasks; reconnecting:
    alive, but its consumer is not running (the broker is away); stale: no
    recent beat; none: never seen; not configured: no broker (tasks run
    in-process).
    """
    if not settings.REDIS_URL:
        return "not configured"
    now = now or timezone.now()
    recent = now - timedelta(seconds=3 * settings.WORKER_HEARTBEAT_SECONDS)
    beats = WorkerHeartbeat.objects.all()
    if not beats.exists():
        return "none"
    if beats.filter(seen_at__gte=recent, consuming=True).exists():
        return "ok"
    return "reconnecting" if beats.filter(seen_at__gte=recent).exists() else "stale"
