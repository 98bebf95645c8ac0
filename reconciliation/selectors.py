"""Reads the finance pages, the CSV exports, the banner and the metrics share."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from payments.gateways.base import BEIJING
from reconciliation.models import (
    FINISHED_STATUSES,
    KIND_MEANINGS,
    Discrepancy,
    DiscrepancyKind,
    DiscrepancyStatus,
    Statement,
    StatementAlarm,
    StatementLine,
)


def gateway_codes() -> list[str]:
    """The gateways with bills that are enabled, then any other one that has statements."""
    from reconciliation.services.statements import statement_gateways

    codes = [gateway.code for gateway in statement_gateways()]
    for code in Statement.objects.order_by("gateway").values_list("gateway", flat=True).distinct():
        if code not in codes:
            codes.append(code)
    return codes


def beijing_today() -> date:
    return timezone.now().astimezone(BEIJING).date()


@dataclass(frozen=True)
class CalendarDay:
    day: date
    cells: list[tuple[str, Any, int]]


def statement_calendar(*, codes: list[str], days: int = 31, until: date | None = None) -> list[CalendarDay]:
    """The last `days` bill days, newest first, each with every gateway's statement and open count."""
    until = until or beijing_today() - timedelta(days=1)
    since = until - timedelta(days=days - 1)
    statements = {(item.gateway, item.day): item for item in Statement.objects.filter(
        day__range=(since, until), gateway__in=codes).annotate(
        open_count=Count("discrepancies", filter=Q(discrepancies__status=DiscrepancyStatus.OPEN)))}
    calendar = []
    for offset in range(days):
        day = until - timedelta(days=offset)
        cells = []
        for code in codes:
            statement = statements.get((code, day))
            cells.append((code, statement, getattr(statement, "open_count", 0) if statement else 0))
        calendar.append(CalendarDay(day=day, cells=cells))
    return calendar


@dataclass(frozen=True)
class Totals:
    """One row of a day's totals: the bill beside ours."""

    label: str
    bill_count: int | None
    bill_minor: int | None
    local_count: int | None
    local_minor: int | None

    @property
    def agrees(self) -> bool:
        return self.bill_count == self.local_count and self.bill_minor == self.local_minor


def day_breakdown(statement: Statement) -> dict[str, Any]:
    """Discrepancies of a day by kind and by state (every kind and state listed, zeros included)."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for kind, status, count in statement.discrepancies.values_list("kind", "status").annotate(n=Count("pk")):
        counts[(kind, status)] = count
    return {
        "kinds": DiscrepancyKind.choices,
        "statuses": DiscrepancyStatus.choices,
        "rows": [(kind, label, KIND_MEANINGS[DiscrepancyKind(kind)],
                  [counts[(kind, status)] for status, _ in DiscrepancyStatus.choices])
                 for kind, label in DiscrepancyKind.choices],
    }


@dataclass
class DiscrepancyFilter:
    gateway: str = ""
    kind: str = ""
    status: str = ""
    # Open (or, once closed, were open) at least this many days.
    older_than_days: int | None = None
    day: date | None = None


def discrepancy_list(filters: DiscrepancyFilter) -> QuerySet[Discrepancy]:
    queryset = Discrepancy.objects.select_related("statement", "order", "payment", "refund", "decided_by")
    if filters.gateway:
        queryset = queryset.filter(statement__gateway=filters.gateway)
    if filters.kind:
        queryset = queryset.filter(kind=filters.kind)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.day:
        queryset = queryset.filter(statement__day=filters.day)
    if filters.older_than_days is not None:
        queryset = queryset.filter(opened_at__lte=timezone.now() - timedelta(days=filters.older_than_days))
    return queryset.order_by("-statement__day", "statement__gateway", "kind", "reference")


def days_open(discrepancy: Discrepancy, now: datetime | None = None) -> int | None:
    """Whole days a discrepancy has been (or was) open; None when it never was."""
    if discrepancy.opened_at is None:
        return None
    until = discrepancy.closed_at or now or timezone.now()
    return max((until - discrepancy.opened_at).days, 0)


def line_results(statement: Statement) -> dict[tuple[str, str], str]:
    """(kind, reference) -> "<discrepancy kind>: <state>" for the lines the day's discrepancies are about."""
    results: dict[tuple[str, str], list[str]] = defaultdict(list)
    for discrepancy in statement.discrepancies.exclude(kind=DiscrepancyKind.MISSING_AT_GATEWAY):
        results[(discrepancy.subject, discrepancy.reference)].append(
            f"{discrepancy.get_kind_display()}: {discrepancy.get_status_display()}")
    return {key: "; ".join(values) for key, values in results.items()}


def statement_lines(statement: Statement) -> Iterator[tuple[Any, ...]]:
    """Every line of the statement in file order, streamed (a server-side cursor on PostgreSQL)."""
    return StatementLine.objects.filter(statement=statement).order_by("line_no").values_list(
        "line_no", "kind", "out_trade_no", "out_refund_no", "gateway_trade_no", "gateway_refund_id",
        "amount_minor", "fee_minor", "currency", "occurred_at", "bill_status").iterator(chunk_size=5000)


# -- charts -------------------------------------------------------------------------


def daily_net(*, codes: list[str], days: int = 90, until: date | None = None) -> dict[str, list[tuple[date, int | None]]]:
    """Per gateway, the bill's net (paid − refunded − fees) of each reconciled day; None where none."""
    until = until or beijing_today() - timedelta(days=1)
    since = until - timedelta(days=days - 1)
    nets = {(item.gateway, item.day): item.bill_net.minor for item in Statement.objects.filter(
        day__range=(since, until), gateway__in=codes, status__in=FINISHED_STATUSES)}
    return {code: [(since + timedelta(days=n), nets.get((code, since + timedelta(days=n)))) for n in range(days)]
            for code in codes}


def open_over_time(*, days: int = 90, until: date | None = None) -> list[tuple[date, int]]:
    """How many discrepancies were open at the end of each of the last `days` days."""
    until = until or beijing_today()
    since = until - timedelta(days=days - 1)
    start = datetime.combine(since, time.min, tzinfo=BEIJING)
    spans: list[tuple[datetime, datetime | None]] = [
        (opened, closed) for opened, closed in Discrepancy.objects.filter(opened_at__isnull=False).filter(
            Q(closed_at__isnull=True) | Q(closed_at__gte=start)).values_list("opened_at", "closed_at")
        if opened is not None]
    points = []
    for offset in range(days):
        day = since + timedelta(days=offset)
        end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=BEIJING)
        points.append((day, sum(1 for opened, closed in spans if opened < end and (closed is None or closed >= end))))  # noqa: E501
    return points


# -- alarms ----------------------------------------------------------------------------


@dataclass
class Alarms:
    statements: list[Statement] = field(default_factory=list)
    late: list[tuple[str, date]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.statements or self.late)

    @property
    def count(self) -> int:
        return len(self.statements) + len(self.late)


def reconciliation_alarms(now: datetime | None = None) -> Alarms:
    """Days raising an alarm: recorded ones (late, no bill, reopened), and yesterday not reconciled past the alarm time.

    The second is worked out here as well, so the banner shows even when
    the daily job itself is not running.
    """
    from reconciliation.services.statements import last_bill_day, next_day_at, statement_gateways

    now = now or timezone.now()
    alarms = Alarms(statements=list(Statement.objects.exclude(alarm=StatementAlarm.NONE).order_by("-day", "gateway")))
    flagged = {(item.gateway, item.day) for item in alarms.statements}
    for gateway in statement_gateways():
        day = last_bill_day(gateway, now)
        if (gateway.code, day) in flagged or now < next_day_at(gateway, day, settings.RECONCILIATION_ALARM_AT):
            continue
        if not Statement.objects.filter(gateway=gateway.code, day=day, status__in=FINISHED_STATUSES).exists():
            alarms.late.append((gateway.code, day))
    return alarms
