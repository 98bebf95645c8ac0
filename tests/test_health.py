import pytest
from django.test import override_settings


@pytest.mark.django_db
def test_healthz_reports_database_and_unconfigured_redis(client):
    with override_settings(REDIS_URL=""):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "not configured"}


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
