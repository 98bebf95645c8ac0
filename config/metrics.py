"""/metrics for Prometheus.

With several gunicorn workers, set PROMETHEUS_MULTIPROC_DIR to a directory
shared by them so the counters are summed across processes. Restrict access
to the scraper at the proxy; nothing secret is exported.
"""
import os

from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess


def metrics(request):
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
