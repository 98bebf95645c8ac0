import pytest
from django.test import override_settings


@pytest.mark.django_db
def test_healthz_reports_database_and_unconfigured_redis(client):
    with override_settings(REDIS_URL=""):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "not configured",
                               "worker": "not configured"}


@pytest.mark.django_db
def test_healthz_checks_redis_when_configured(client):
    with override_settings(REDIS_URL="redis://127.0.0.1:6379/15"):
        response = client.get("/healthz")
    assert response.json()["redis"] == "ok"


@pytest.mark.django_db
def test_healthz_is_503_when_redis_is_unreachable(client):
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["redis"] == "error"


@pytest.mark.django_db
def test_healthz_shows_the_workers_own_heartbeat(client, settings):
    from datetime import timedelta

    from django.utils import timezone

    from shop.models import WorkerHeartbeat

    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    assert client.get("/healthz").json()["worker"] == "none"
    WorkerHeartbeat.objects.create(hostname="celery@a", pid=1, started_at=timezone.now(), seen_at=timezone.now())
    assert client.get("/healthz").json()["worker"] == "ok"
    WorkerHeartbeat.objects.update(seen_at=timezone.now() - timedelta(seconds=3 * settings.WORKER_HEARTBEAT_SECONDS + 1))
    response = client.get("/healthz")
    # A dead worker is reported, but never takes the web tier out of rotation.
    assert (response.status_code, response.json()["worker"]) == (200, "stale")
