"""/metrics for Prometheus: every process counted, access restricted.

With PROMETHEUS_MULTIPROC_DIR set (a directory shared by every gunicorn
worker and Celery worker of the host, emptied when gunicorn starts:
config/gunicorn.conf.py), prometheus_client's multiprocess collector sums
each counter over all processes, and exports the gauges the worker sets
(the money invariants, the outbox backlog, the stalled-refund reserve) with
their most recent value. Without it, one process's own metrics.

Access: a request from an address in METRICS_ALLOWED_IPS (CIDRs, default
loopback only; read through TRUSTED_PROXIES) or one bearing METRICS_TOKEN
(`Authorization: Bearer <token>`); anyone else gets a 403.
"""
import hmac
import os

from django.conf import settings
from django.http import HttpResponse, HttpResponseForbidden
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from shop.client_ip import address_in, client_ip, parse_networks


def metrics_access_allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return True
    return address_in(client_ip(request), parse_networks(tuple(settings.METRICS_ALLOWED_IPS)))


@never_cache
def metrics(request):
    if not metrics_access_allowed(request):
        return HttpResponseForbidden("metrics: not allowed from here")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        # Read from the database at scrape time, the same for every process
        # (the single-process registry has it from ReconciliationConfig.ready).
        from reconciliation.metrics import ReconciliationCollector

        registry.register(ReconciliationCollector())
    else:
        registry = REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
