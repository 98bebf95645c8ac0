"""Prometheus metrics of reconciliation (served at /metrics).

The per-gateway figures an operator alerts on are read from the database
when scraped, so every process (web, worker, beat) reports the same truth:
the last reconciled bill day, the open discrepancies, and the days raising
an alarm. Runs are counted by the process that ran them.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, time

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from payments.gateways.base import BEIJING

runs = Counter("shop_reconciliation_runs_total", "Reconciliation runs, by gateway and outcome.",
               ["gateway", "outcome"])


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(
            "shop_reconciliation_last_reconciled_day_timestamp_seconds",
            "Start (00:00 Beijing) of the newest bill day reconciled (matched or no bill), by gateway.",
            labels=["gateway"]),
        GaugeMetricFamily(
            "shop_reconciliation_open_discrepancies", "Discrepancies open, by gateway.", labels=["gateway"]),
        GaugeMetricFamily(
            "shop_reconciliation_alarms", "Bill days raising an alarm (late, no bill, reopened), by gateway.",
            labels=["gateway"]),
    )


class ReconciliationCollector(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registering asks for the names; answer without the database.
        yield from _families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db import DatabaseError
        from django.db.models import Count, Max, Q

        from reconciliation.models import FINISHED_STATUSES, DiscrepancyStatus, Statement

        last_day, open_count, alarms = _families()
        try:
            rows = Statement.objects.values("gateway").annotate(
                last=Max("day", filter=Q(status__in=FINISHED_STATUSES)),
                open=Count("discrepancies", filter=Q(discrepancies__status=DiscrepancyStatus.OPEN)),
            )
            alarm_rows = dict(Statement.objects.exclude(alarm="").values("gateway").annotate(
                n=Count("pk")).values_list("gateway", "n"))
            for row in rows:
                if row["last"] is not None:
                    start = datetime.combine(row["last"], time.min, tzinfo=BEIJING)
                    last_day.add_metric([row["gateway"]], start.timestamp())
                open_count.add_metric([row["gateway"]], row["open"])
                alarms.add_metric([row["gateway"]], alarm_rows.get(row["gateway"], 0))
        except DatabaseError:
            # A scrape during a database outage reports what it can: nothing.
            pass
        yield last_day
        yield open_count
        yield alarms
