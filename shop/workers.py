"""Is a Celery worker alive? Its own heartbeat, as /healthz reports it."""
from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from shop.models import WorkerHeartbeat


def worker_heartbeat_record(*, hostname: str, pid: int, started_at: datetime) -> None:
    """Called by the worker itself every WORKER_HEARTBEAT_SECONDS."""
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"pid": pid, "started_at": started_at, "seen_at": timezone.now()})


def worker_health(*, now: datetime | None = None) -> str:
    """ok (a worker was seen within three heartbeats), stale, none, or not configured (no broker)."""
    if not settings.REDIS_URL:
        return "not configured"
    now = now or timezone.now()
    last = WorkerHeartbeat.objects.order_by("-seen_at").values_list("seen_at", flat=True).first()
    if last is None:
        return "none"
    return "ok" if now - last <= timedelta(seconds=3 * settings.WORKER_HEARTBEAT_SECONDS) else "stale"
